"""Keep the utterances present in every file of a data dir, sort, regenerate spk2utt."""
import argparse
import sys

from mser.io.datadir import DataDirError, fix_data_dir
from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        dropped = fix_data_dir(args.data_dir)
    except DataDirError as e:
        sys.exit(f"fix_data_dir: {e}")
    summary = ", ".join(f"{name}: {n}" for name, n in dropped.items())
    print(f"fix_data_dir: {args.data_dir}: dropped per file: {summary}", file=sys.stderr)


if __name__ == "__main__":
    main()
