"""Rewrite training YAMLs of the older form (``modalities:`` and the flat per-stream keys
``audio_subsampling``, ``normalize_text``, ``mask_audio_prob``, ...) into a ``streams:`` mapping,
in place, keeping every other line and comment:

    python -m mser.bin.migrate_config conf/train.yaml conf/tuning/*.yaml [--dry-run]

A file with a ``base:`` gets only what it changes: ``<stream>: null`` for a base stream its
``modalities`` leave out, ``<stream>: {mask_prob: 0.0}`` for a flat key it sets (merged over the
base's stream when the config is read). A linked file is rewritten where it lies. The rewritten
config trains the same model: the resolved model conf is unchanged (checked before writing).
"""
import argparse
import os
import re
import sys

import yaml

from mser.nets import LEGACY_KEYS, LEGACY_STREAM_KEYS, MODALITIES, legacy_keys, resolve_streams
from mser.utils.config import ConfigError, merge_configs, read_config_file
from mser.utils.fileio import atomic_write_text


def stream_names(conf, base_streams):
    """The streams of one older-form file: its ``modalities``, else the names its ``streams:``
    declares (in the older form they replaced the base's), else its base's (None: no base) or
    audio and text."""
    return (conf.get("modalities") or list(conf.get("streams") or {})
            or list(base_streams or MODALITIES))


def streams_patch(conf, base_streams):
    """The ``streams:`` mapping that replaces the older keys of one file's ``conf``;
    ``base_streams``: the stream names of its base chain (None: the file has no base)."""
    names = stream_names(conf, base_streams)
    if base_streams is None:  # a root config declares every stream
        patch = {name: {} for name in names}
    else:
        patch = {name: None for name in base_streams if name not in names}
        patch.update({name: {} for name in names if name not in base_streams})
    for key, (stream, option) in LEGACY_STREAM_KEYS.items():
        if key in conf and stream in names:
            patch.setdefault(stream, {})[option] = conf[key]
    for name, entry in (conf.get("streams") or {}).items():  # declared entries win
        patch[name] = entry if entry is None else {**(patch.get(name) or {}), **entry}
    order = [n for n in patch if patch[n] is None] + [n for n in names if n in patch]
    return {name: patch[name] for name in dict.fromkeys(order + list(patch))}


def render(patch):
    lines = ["streams:"]
    for name, entry in patch.items():
        flow = "null" if entry is None else yaml.safe_dump(
            entry, default_flow_style=True, sort_keys=False).strip()
        lines.append(f"  {name}: {flow}")
    return lines


def migrate_text(text, base_streams):
    """``text`` with its older keys (and any ``streams:`` block) replaced by one ``streams:``
    block where the first of them stood; None if it has none."""
    conf = yaml.safe_load(text) or {}
    if not any(key in conf for key in LEGACY_KEYS):
        return None
    patch = streams_patch(conf, base_streams)
    top_level = re.compile(r"^(%s)\s*:" % "|".join(map(re.escape, (*LEGACY_KEYS, "streams"))))
    out, removing, inserted = [], False, False
    for line in text.splitlines():
        if top_level.match(line):
            removing = True
            if not inserted and patch:
                out.extend(render(patch))
                inserted = True
            continue
        if removing and (line.startswith((" ", "\t", "-")) and line.strip()):
            continue  # the removed key's block continues
        removing = False
        out.append(line)
    return "\n".join(out) + "\n"


def migrate_file(path, dry_run=False):
    """Migrate one YAML; returns the new text, or None when there was nothing to do."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    conf = yaml.safe_load(text) or {}
    base = conf.get("base")
    base_streams = None
    if base:
        base_config = read_config_file(
            os.path.normpath(os.path.join(os.path.dirname(path), str(base))))[0]
        base_streams = resolve_streams(base_config.get("streams") or {}, legacy_keys(base_config))
    new = migrate_text(text, None if base_streams is None else list(base_streams))
    if new is None:
        return None
    before = older_form_streams(base_streams, conf)
    after = patched_streams(base_streams, (yaml.safe_load(new) or {}).get("streams") or {})
    if before != after:
        raise ConfigError(f"{path}: the rewritten config would resolve to other streams "
                          f"({after} instead of {before}); migrate it by hand")
    if not dry_run:
        atomic_write_text(os.path.realpath(path), new)
    return new


def older_form_streams(base_streams, conf):
    """The streams the older form of ``conf`` gives over its base's resolved streams (None: no
    base): its ``modalities`` pick them, its flat keys override them."""
    if base_streams is None:
        return resolve_streams(conf.get("streams") or {}, legacy_keys(conf))
    names = stream_names(conf, base_streams)
    streams = {name: dict(base_streams.get(name) or {}) for name in names}
    for key, (stream, option) in LEGACY_STREAM_KEYS.items():
        if key in conf and stream in streams:
            streams[stream][option] = conf[key]
    for name, entry in (conf.get("streams") or {}).items():
        streams[name] = {**streams.get(name, {}), **(entry or {})}
    return resolve_streams(streams)


def patched_streams(base_streams, patch):
    """The streams a ``streams:`` mapping gives over its base's resolved streams (None: no
    base), merged as a config with a base: is read."""
    if base_streams is None:
        return resolve_streams(patch)
    return resolve_streams(merge_configs({"streams": base_streams}, {"streams": patch})["streams"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("configs", nargs="+", help="training YAMLs (conf/train.yaml, conf/tuning/*.yaml)")
    parser.add_argument("--dry-run", action="store_true", help="print the new text, write nothing")
    args = parser.parse_args(argv)
    for path in args.configs:
        try:
            new = migrate_file(path, args.dry_run)
        except (ConfigError, OSError, yaml.YAMLError) as e:
            sys.exit(f"migrate_config: {e}")
        if new is None:
            print(f"{path}: already in the streams: form")
        elif args.dry_run:
            print(f"--- {path}\n{new}", end="")
        else:
            print(f"{path}: rewritten ({os.path.realpath(path)})")


if __name__ == "__main__":
    main()
