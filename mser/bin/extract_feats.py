"""Extract features for one part of a data dir (job JOB of NJ) into <out-dir>/feats.JOB.{ark,scp}.

    python -m mser.bin.extract_feats --config conf/feats/fbank.yaml --data-dir data/all \
        --out-dir dump/fbank --nj 4 --job 2 [--device cpu|cuda] [--num-threads 1]

Run every job through the job runner and merge with utils/dump_feats.sh. See mser.features.
"""
import argparse
import sys

from mser.io.datadir import DataDirError
from mser.features import FeatureConfigError, load_config_file
from mser.features.dump import run_job
from mser.utils.logging import setup_logging


def add_common_args(parser):
    """Options shared with merge_feats (they must agree, as they define the dump)."""
    parser.add_argument("--config", required=True, help="feature config (conf/feats/*.yaml)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--nj", type=int, required=True, help="number of parallel jobs")
    parser.add_argument("--model-dir", default=None, help="overrides model_dir: of the config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="overrides a key of the config (a YAML value), e.g. "
                             "truncation_side=left; repeatable")
    parser.add_argument("--verbose", type=int, default=1)


def parse_overrides(items):
    """{key: YAML value} of ``KEY=VALUE`` strings."""
    import yaml

    overrides = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise FeatureConfigError(f"--set {item!r}: expected KEY=VALUE")
        overrides[key] = yaml.safe_load(value)
    return overrides


def load_config(args):
    return load_config_file(args.config, {**parse_overrides(args.set), "model_dir": args.model_dir})


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_common_args(parser)
    parser.add_argument("--job", type=int, required=True, help="this job's index, 1..nj")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default)")
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if args.num_threads > 0:
        import torch

        torch.set_num_threads(args.num_threads)
    try:
        run_job(load_config(args), args.data_dir, args.out_dir, args.nj, args.job, args.device)
    except (DataDirError, FeatureConfigError, FileNotFoundError) as e:
        sys.exit(f"extract_feats (job {args.job}/{args.nj}): {e}")


if __name__ == "__main__":
    main()
