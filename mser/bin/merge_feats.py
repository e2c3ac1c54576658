"""Merge the extraction jobs of a dump dir into feats.scp, utt2num_frames, skipped, feat_conf.yaml.

    python -m mser.bin.merge_feats --config conf/feats/fbank.yaml --data-dir data/all \
        --out-dir dump/fbank --nj 4
    python -m mser.bin.merge_feats ... --check-done   # exit 0 iff the dump is complete and current
"""
import argparse
import sys

from mser.bin.extract_feats import add_common_args, load_config
from mser.io.datadir import DataDirError
from mser.features import FeatureConfigError
from mser.features.dump import is_done, merge
from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--check-done", action="store_true",
                        help="only report (exit status) whether the merged dump is up to date")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    try:
        conf = load_config(args)
        if args.check_done:
            sys.exit(0 if is_done(conf, args.data_dir, args.out_dir) else 1)
        merge(conf, args.data_dir, args.out_dir, args.nj)
    except (DataDirError, FeatureConfigError, FileNotFoundError) as e:
        sys.exit(f"merge_feats: {e}")


if __name__ == "__main__":
    main()
