"""Score a decoded experiment (UA, WA, macro-F1, weighted F1, per-class recall, confusion; per
fold, pooled, mean +/- std) on each test subset of data/protocol, headed by its headline metric,
into exp/<tag>/scores.{json,txt} + confusion.png (scores_<subset>.* for a further subset such as
MSP-Podcast's test2; with --wer-dirs also the WER of ASR test transcripts), and rebuild
RESULTS.md from every tag under the same exp/ (mser/scoring/results_md.py says from what)."""
import argparse
import logging
import os
import sys

from mser.data.protocol import read_protocol
from mser.scoring.aggregate import write_experiment_scores
from mser.scoring.results_md import write_results_md
from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp-dir", required=True, help="exp/<tag> holding fold<k>/decode")
    parser.add_argument("--folds", default="1 2 3 4 5", help="space-separated fold numbers")
    parser.add_argument("--results", help="RESULTS.md to rebuild from every exp/*/scores.json")
    parser.add_argument("--protocol-file", default="data/protocol",
                        help="the evaluation protocol written by stage 0: test subsets, headline "
                             "metric, description (mser/data/protocol.py); needed with "
                             "--results, else the subset 'test' is scored with headline UA "
                             "when it does not exist")
    parser.add_argument("--reference-tag", help="the tag this one is tested against in RESULTS.md, "
                        "recorded in its scores.json (default: none, and no reference test)")
    parser.add_argument("--probe-tag", help="the linear probe of this tag's modalities on the "
                        "same features (conf/tuning/probe*.yaml), tested against in RESULTS.md "
                        "when it was trained; recorded in its scores.json")
    parser.add_argument("--wer-dirs", nargs=2, metavar=("GOLD_DIR", "ASR_DIR"),
                        help="the test data dirs with gold and with ASR transcripts, '{fold}' "
                        "for the fold (e.g. data/fold{fold}/test data/fold{fold}/asr/test): "
                        "adds the WER of the test text per fold")
    parser.add_argument("--notes", help="a Markdown file put under RESULTS.md's header as it is "
                        "(the recipes' local/results_notes.md: published anchors, run times)")
    parser.add_argument("--title", default=None, help="RESULTS.md title (default: recipe dir name)")
    args = parser.parse_args(argv)
    setup_logging()
    folds = [int(f) for f in args.folds.split()]
    try:
        if args.results or os.path.exists(args.protocol_file):
            protocol = read_protocol(args.protocol_file)
        else:
            logging.info("%s not found: scoring subset 'test', headline UA", args.protocol_file)
            protocol = {"tests": ["test"], "headline": "ua"}
        for subset in protocol["tests"]:
            write_experiment_scores(args.exp_dir, folds, subset, protocol["headline"],
                                    args.wer_dirs if subset == "test" else None,
                                    args.reference_tag, args.probe_tag)
    except (ValueError, FileNotFoundError) as e:
        sys.exit(f"score: {e}")
    logging.info("wrote %s/scores*.json, scores*.txt and confusion*.png (%s)", args.exp_dir,
                 ", ".join(protocol["tests"]))
    if args.results:
        exp_root = os.path.dirname(os.path.normpath(args.exp_dir))
        title = args.title or f"Results: {os.path.basename(os.getcwd())}"
        notes = None
        if args.notes:
            with open(args.notes, encoding="utf-8") as f:
                notes = f.read()
        write_results_md(args.results, exp_root, folds, title, protocol, notes)
        logging.info("rebuilt %s from %s", args.results, exp_root)


if __name__ == "__main__":
    main()
