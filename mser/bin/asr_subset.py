"""Copy data dirs (e.g. a fold's train, dev and test sets) with their transcripts taken from a
transcribed superset (``utils/transcribe.sh`` output, e.g. data/all_asr). Utterances the
recogniser skipped are named, left out and listed in ``<out>/skipped`` (mser.asr.asr_subset).
    python -m mser.bin.asr_subset data/all_asr data/fold1/test data/fold1/asr/test [...]"""
import argparse
import sys

from mser.asr import asr_subset
from mser.io.datadir import DataDirError
from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("asr_dir", help="transcribed data dir holding every utterance")
    parser.add_argument("pairs", nargs="+", metavar="DATA_DIR OUT_DIR",
                        help="pairs of a data dir (a subset of asr_dir) and its output dir")
    args = parser.parse_args(argv)
    if len(args.pairs) % 2:
        parser.error("expected pairs of <data_dir> <out_dir>")
    setup_logging()
    try:
        for data_dir, out_dir in zip(args.pairs[::2], args.pairs[1::2]):
            asr_subset(args.asr_dir, data_dir, out_dir)
    except (DataDirError, FileNotFoundError) as e:
        sys.exit(f"asr_subset: {e}")


if __name__ == "__main__":
    main()
