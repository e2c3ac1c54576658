"""Score a decoded experiment (UA, WA, macro-F1, per-class recall, confusion; per fold, pooled,
mean +/- std) into exp/<tag>/scores.{json,txt} + confusion.png, and regenerate RESULTS.md
(mser/scoring/results_md.py says which rows it keeps)."""
import argparse
import logging
import os
import sys

from mser.scoring.aggregate import write_experiment_scores
from mser.scoring.results_md import write_results_md
from mser.utils.logging import setup_logging


def read_protocol(path):
    if not os.path.exists(path):
        raise ValueError(f"{path}: not found; stage 0 (local/data.sh) writes the evaluation "
                         f"protocol there, one line (e.g. 'leave-one-session-out, 5 folds')")
    with open(path, encoding="utf-8") as f:
        protocol = " ".join(f.read().split())
    if not protocol:
        raise ValueError(f"{path}: empty; it should describe the evaluation protocol in one line")
    return protocol


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp-dir", required=True, help="exp/<tag> holding fold<k>/decode")
    parser.add_argument("--folds", default="1 2 3 4 5", help="space-separated fold numbers")
    parser.add_argument("--results", help="RESULTS.md to regenerate from every exp/*/scores.json")
    parser.add_argument("--protocol-file", default="data/protocol.txt",
                        help="one line describing the folds, written by stage 0 (for --results)")
    parser.add_argument("--reference-tag", help="tag the others are tested against in RESULTS.md "
                        "(default: the scored tag)")
    parser.add_argument("--title", default=None, help="RESULTS.md title (default: recipe dir name)")
    args = parser.parse_args(argv)
    setup_logging()
    folds = [int(f) for f in args.folds.split()]
    try:
        protocol = read_protocol(args.protocol_file) if args.results else None
        write_experiment_scores(args.exp_dir, folds)
    except ValueError as e:
        sys.exit(f"score: {e}")
    logging.info("wrote %s/scores.json, scores.txt and confusion.png", args.exp_dir)
    if args.results:
        exp_root = os.path.dirname(os.path.normpath(args.exp_dir))
        title = args.title or f"Results: {os.path.basename(os.getcwd())}"
        write_results_md(args.results, exp_root, folds,
                         args.reference_tag or os.path.basename(os.path.normpath(args.exp_dir)),
                         title, protocol)
        logging.info("regenerated %s", args.results)


if __name__ == "__main__":
    main()
