"""Configs of entry points: YAML file + command line (configargparse), strictly checked.

Precedence: command line > ``--config`` YAML > defaults. YAML keys use underscores
(``batch_size``); on the command line both ``--batch-size`` and ``--batch_size`` work. A YAML key
that is no option is an error naming the file, the key and the closest option.

A YAML may name a base config and hold only what differs (``base: ../train.yaml``, relative to the
YAML; bases may have bases): its keys override the base's; a mapping (``streams:``) is merged
entry by entry, each entry's keys over the base's, and ``<entry>: null`` removes one. A key an
entry point no longer knows (:func:`add_replaced`) fails with what replaced it.

    parser = make_parser(__doc__)
    add_options(parser, {"lr": (1e-3, "peak learning rate"), ...})
    args = parse_args(parser, argv)
"""
import argparse
import dataclasses
import difflib
import os
import subprocess
import sys

import configargparse
import yaml

from mser.utils.fileio import atomic_write_text


class ConfigError(ValueError):
    """A config that cannot be used; the message names the file and key."""


def str2bool(value):
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("true", "yes", "1"):
        return True
    if lowered in ("false", "no", "0"):
        return False
    raise configargparse.ArgumentTypeError(f"expected true or false, got {value!r}")


def yaml_mapping(value):
    """A mapping option from YAML flow text (``{video: {feats: x.scp}}``) or a YAML file's dict
    (configargparse hands those over as their Python repr, which YAML reads back)."""
    if isinstance(value, dict):
        return value
    try:
        mapping = yaml.safe_load(value)
    except yaml.YAMLError as e:
        raise configargparse.ArgumentTypeError(f"expected a YAML mapping, got {value!r}: {e}")
    if not isinstance(mapping, dict):
        raise configargparse.ArgumentTypeError(f"expected a YAML mapping, got {value!r}")
    return mapping


def make_parser(description):
    parser = configargparse.ArgumentParser(
        description=description,
        config_file_parser_class=configargparse.YAMLConfigFileParser,
        formatter_class=configargparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", is_config_file=True, help="YAML file of option: value lines")
    return parser


def option_strings(key):
    """``--batch-size`` and ``--batch_size`` (the YAML spelling) for key ``batch_size``."""
    return list(dict.fromkeys([f"--{key.replace('_', '-')}", f"--{key}"]))


@dataclasses.dataclass(frozen=True)
class Option:
    """One option: its default (which sets the type), help, allowed values (``choices``; for a
    list option, of each element), whether a resumed run may change it (``resumable``) and other
    spellings on the command line (``aliases``)."""
    default: object
    help: str
    choices: tuple = ()
    resumable: bool = False
    aliases: tuple = ()


def _choice(convert, choices):
    def check(value):
        value = convert(value)
        if value not in choices:
            raise configargparse.ArgumentTypeError(
                f"{value!r}: choose from {', '.join(map(str, choices))}")
        return value
    check.__name__ = convert.__name__  # argparse names the type in its own messages
    return check


def add_options(parser, options, group=None):
    """Add ``key -> Option`` (or ``key -> (default, help)``) options; the type follows the
    default (bool, list, ...)."""
    target = parser.add_argument_group(group) if group else parser
    for key, spec in options.items():
        spec = spec if isinstance(spec, Option) else Option(*spec)
        kwargs = {"dest": key, "default": spec.default, "help": spec.help}
        if isinstance(spec.default, bool):
            kwargs["type"] = str2bool
        elif isinstance(spec.default, dict):
            kwargs["type"] = yaml_mapping
        elif isinstance(spec.default, (list, tuple)):
            kwargs["nargs"] = "*"
            kwargs["type"] = type(spec.default[0]) if spec.default else str
        elif spec.default is not None:
            kwargs["type"] = type(spec.default)
        if spec.choices:
            kwargs["type"] = _choice(kwargs.get("type", str), spec.choices)
            kwargs["metavar"] = "{" + ",".join(map(str, spec.choices)) + "}"
        target.add_argument(*option_strings(key), *spec.aliases, **kwargs)


def add_replaced(parser, replaced):
    """Keys (``key -> what replaced it``) that a YAML or command line of ``parser`` may no
    longer give: :func:`parse_args` refuses them with that message."""
    parser.replaced_keys = {**getattr(parser, "replaced_keys", {}), **replaced}


def merge_configs(base, override):
    """``override``'s keys over ``base``'s; a mapping in both is merged entry by entry (an entry
    that is a mapping in both: its keys over the base's; ``None``: the entry removed)."""
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            entries = dict(base[key])
            for name, entry in value.items():
                if entry is None:
                    entries.pop(name, None)
                elif isinstance(entry, dict) and isinstance(entries.get(name), dict):
                    entries[name] = {**entries[name], **entry}
                else:
                    entries[name] = entry
            value = entries
        merged[key] = value
    return merged


def option_actions(parser):
    """{key as a YAML gives it (each spelling of an option, without dashes): its action}."""
    return {s.lstrip("-"): action for action in parser._actions for s in action.option_strings}


def read_config_file(path):
    """``(config, origin)``: the YAML at ``path`` merged over its ``base:`` chain; ``origin`` maps
    each key to the file that set it."""
    chain = []  # (path, its keys), the given file first
    while path is not None:
        if path in [p for p, _ in chain]:
            cycle = " -> ".join([p for p, _ in chain] + [path])
            raise ConfigError(f"{chain[0][0]}: base configs form a cycle: {cycle}")
        if not os.path.exists(path):
            named = f" (the base of {chain[-1][0]})" if chain else ""
            raise ConfigError(f"{path}: config file not found{named}")
        with open(path, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
        if not isinstance(conf, dict):
            raise ConfigError(f"{path}: expected 'key: value' lines, got a {type(conf).__name__}")
        chain.append((path, conf))
        base = conf.pop("base", None)
        path = os.path.normpath(os.path.join(os.path.dirname(path), str(base))) if base else None
    config, origin = {}, {}
    for source, conf in reversed(chain):
        config = merge_configs(config, conf)
        origin.update(dict.fromkeys(conf, source))
    return config, origin


def check_config_file(parser, path):
    """The merged config of ``path`` (see read_config_file); ConfigError for a missing file or a
    key that is not an option of ``parser``, naming the file that holds the key."""
    config, origin = read_config_file(path)
    keys = option_actions(parser)
    replaced = getattr(parser, "replaced_keys", {})
    for key in config:
        if key in replaced:
            raise ConfigError(f"{origin[key]}: {key!r} is gone: {replaced[key]}")
        if str(key) not in keys:
            close = difflib.get_close_matches(str(key), sorted(keys), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(f"{origin[key]}: unknown key {key!r}{hint} (see --help for the options)")
    return config, origin


def config_values(parser, config, origin):
    """``{dest: value}`` of a checked config (:func:`check_config_file`), each YAML value
    converted and checked by its option's type and choices as the same value on the command
    line would be; ConfigError naming the file and key."""
    actions = option_actions(parser)
    values = {}
    for key, value in config.items():
        action = actions[str(key)]
        listed = action.nargs in ("*", "+") or (isinstance(action.nargs, int) and action.nargs > 0)
        items = (value if isinstance(value, list) else [value]) if listed else [value]
        convert = action.type or (str2bool if isinstance(action.const, bool) else str)
        try:
            # Scalars as the command line gives them (text), so an option's type decides:
            # 'epochs: 1.5' is refused as '--epochs 1.5' is; mappings and booleans as they are.
            items = [v if v is None else convert(v if isinstance(v, (dict, bool)) else str(v))
                     for v in items]
        except (configargparse.ArgumentTypeError, TypeError, ValueError) as e:
            raise ConfigError(f"{origin[key]}: {key}: {value!r}: {e}") from None
        if action.choices is not None and any(v not in action.choices for v in items):
            raise ConfigError(f"{origin[key]}: {key}: {value!r}: choose from "
                              f"{', '.join(map(str, action.choices))}")
        values[action.dest] = items if listed else items[0]
    return values


def parse_args(parser, argv=None):
    """Parse ``argv`` with strict YAML keys (see the module docstring); exits on errors.
    ``args.config`` is the path given, also when it names a base."""
    for key, message in getattr(parser, "replaced_keys", {}).items():
        given = [a for a in (sys.argv[1:] if argv is None else argv)
                 if a.split("=")[0] in option_strings(key)]
        if given:
            parser.error(f"{given[0].split('=')[0]} is gone: {message}")
    pre = configargparse.ArgumentParser(add_help=False)
    pre.add_argument("--config")
    known, rest = pre.parse_known_args(argv)
    if not known.config:
        return parser.parse_args(argv)
    try:
        values = config_values(parser, *check_config_file(parser, known.config))
    except ConfigError as e:
        parser.error(str(e))
    # The config's values stand where the defaults would; the command line goes over them.
    return parser.parse_args(rest, namespace=argparse.Namespace(config=known.config, **values))


def save_config(path, config):
    """Write a config dict as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(config, sort_keys=False, allow_unicode=True))


def load_config(path):
    if not os.path.exists(path):
        raise ConfigError(f"{path}: not found; was training run with this --exp-dir?")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def git_commit(source=os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
    """``<sha>`` of the checkout holding ``source`` (the mser package), ``+dirty`` when ``source``
    has uncommitted changes (recipe outputs such as RESULTS.md do not count), or 'unknown'."""

    def git(*args):
        return subprocess.run(["git", "-C", source, *args], capture_output=True, text=True,
                              timeout=30)
    try:
        head = git("rev-parse", "HEAD")
        if head.returncode:
            return "unknown"
        dirty = git("diff-index", "--quiet", "HEAD", "--", source).returncode != 0
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    return head.stdout.strip() + ("+dirty" if dirty else "")
