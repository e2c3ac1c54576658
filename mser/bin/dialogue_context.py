"""Write the dialogue context of every utterance as a data dir for text feature extraction.

    python -m mser.bin.dialogue_context --turns 5 data/all data/all_context5

The ``text`` of <out-dir> is, per utterance, up to --turns previous turns of its dialogue with
their speakers (utt2turn orders them; see mser.data.dialogue); the other tables are copied.
Every data/fold<k>/<subset> next to <data-dir> is checked first: a dialogue in two subsets of a
fold is an error (the context would cross the split). Written under <out-dir>.tmp, then moved.
"""
import argparse
import os
import shutil
import sys

from mser.data.dialogue import fold_subsets, write_context_dir
from mser.io.datadir import DataDirError
from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=5,
                        help="previous turns per utterance (default: %(default)s)")
    parser.add_argument("data_dir", help="a data dir with text, utt2spk and utt2turn")
    parser.add_argument("out_dir")
    args = parser.parse_args(argv)
    setup_logging()
    if args.turns < 1:
        parser.error(f"--turns {args.turns}: expected at least 1")
    tmp = args.out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        subsets = fold_subsets(os.path.dirname(os.path.abspath(args.data_dir)))
        write_context_dir(args.data_dir, tmp, args.turns, subsets)
    except DataDirError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        sys.exit(f"dialogue_context: {e}")
    shutil.rmtree(args.out_dir, ignore_errors=True)
    os.replace(tmp, args.out_dir)


if __name__ == "__main__":
    main()
