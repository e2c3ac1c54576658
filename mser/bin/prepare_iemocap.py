"""An alias: ``prepare_iemocap --iemocap DIR DATA [options]`` runs
``prepare_corpus iemocap DIR DATA [options]`` (its --help lists the options).
Example:  python -m mser.bin.prepare_iemocap --iemocap /corpora/IEMOCAP_full_release data
"""
import argparse
import sys

from mser.bin import prepare_corpus
from mser.io.datadir import DataDirError
from mser.utils.logging import setup_logging


def main(argv=None):
    alias = argparse.ArgumentParser(prog="prepare_iemocap", add_help=False, allow_abbrev=False)
    alias.add_argument("--iemocap", metavar="DIR")
    known, rest = alias.parse_known_args(argv)
    if known.iemocap is None and not {"-h", "--help"} & set(rest):
        alias.error("--iemocap DIR is required (the corpus root; set IEMOCAP in db.sh)")
    root = [] if known.iemocap is None else [known.iemocap]
    args = prepare_corpus.get_parser().parse_args(["iemocap", *root, *rest])
    setup_logging(args.verbose)
    try:
        prepare_corpus.prepare(args)
    except DataDirError as e:
        sys.exit(f"prepare_iemocap: {e}")


if __name__ == "__main__":
    main()
