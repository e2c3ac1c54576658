"""Print a key of a config, resolved, for shell recipes (so no script greps YAML):

    python -m mser.bin.show_config conf/tuning/text_only.yaml modalities          # -> text
    python -m mser.bin.show_config exp/<tag>/fold1/config.yaml model_conf.fusion  # -> query

A training YAML is resolved as training resolves it (its base: chain, the trainer's defaults and
model options, strict keys); a config.yaml saved by training (it holds model_conf) is read as it
is, a dotted key going down. Lists print space-separated.
"""
import argparse
import sys

from mser.utils.config import ConfigError, load_config


def resolve(path, key):
    saved = load_config(path)
    if isinstance(saved, dict) and "model_conf" in saved:
        value = saved
        for part in key.split("."):
            if not isinstance(value, dict) or part not in value:
                raise ConfigError(f"{path}: no key {key!r}")
            value = value[part]
        return value
    from mser.bin.train import get_parser, model_conf_from_args
    from mser.utils.config import parse_args

    args = parse_args(get_parser(), ["--config", path])
    model_conf = model_conf_from_args(args)
    if key in model_conf:
        return model_conf[key]
    if not hasattr(args, key):
        raise ConfigError(f"{path}: {key!r} is no training option (see python -m mser.bin.train --help)")
    return getattr(args, key)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("config", help="a training YAML or a saved exp/<tag>/fold<k>/config.yaml")
    parser.add_argument("key", help="option name (training YAML) or dotted key (saved config)")
    args = parser.parse_args(argv)
    try:
        value = resolve(args.config, args.key)
    except ConfigError as e:
        sys.exit(f"show_config: {e}")
    print(" ".join(map(str, value)) if isinstance(value, (list, tuple)) else value)


if __name__ == "__main__":
    main()
