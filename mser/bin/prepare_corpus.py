"""Prepare Kaldi data dirs from a corpus as its owners distribute it.

Writes <data_dir>/all, <data_dir>/fold*/{train,dev,test} (an official split is fold1),
<data_dir>/protocol (the evaluation protocol and headline metric, "key value" lines) and
<data_dir>/skipped (every dropped source file with the reason). Stage 0 prints the counts and
checks them against the corpus's documented totals (--expected-counts overrides them).
Examples:
  python -m mser.bin.prepare_corpus meld /corpora/MELD.Raw data --nj 4
  python -m mser.bin.prepare_corpus msp_podcast /corpora/MSP-Podcast data --class-set 4class
  python -m mser.bin.prepare_corpus ravdess /corpora/RAVDESS data
"""
import argparse
import sys

from mser.data import crema_d, emodb, meld, msp_podcast, ravdess
from mser.data.corpus import parse_expected
from mser.data.datadir import DataDirError
from mser.utils.logging import setup_logging


def _totals(documented):
    text = ",".join(f"{k}={v}" for k, v in documented.items()) if documented else "none"
    return (f"documented totals to check, 'key=count,...' or 'none' (default: {text})")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    corpora = parser.add_subparsers(dest="corpus", required=True, metavar="CORPUS",
                                    help="meld, msp_podcast, crema_d, ravdess or emodb "
                                         "(CORPUS --help for its options)")
    parsers = {}
    for name, module in (("meld", meld), ("msp_podcast", msp_podcast), ("crema_d", crema_d),
                         ("ravdess", ravdess), ("emodb", emodb)):
        sub = corpora.add_parser(name, description=module.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
        sub.add_argument("root", help="the corpus root (set it in the recipe's db.sh)")
        sub.add_argument("data_dir", help="output directory")
        documented = getattr(module, "DOCUMENTED_TOTALS", {})
        sub.add_argument("--expected-counts", default=None, metavar="SPEC",
                         help=_totals(documented))
        sub.add_argument("--skip-bad-audio", action="store_true",
                         help="skip (and list) unreadable or missing audio the corpus does not "
                              "document as broken, instead of failing")
        sub.add_argument("--verbose", type=int, default=1)
        parsers[name] = sub
    parsers["meld"].add_argument("--label", choices=sorted(meld.CLASS_SETS), default="emotion",
                                 help="emotion (7 classes) or sentiment (3) (default: %(default)s)")
    parsers["meld"].add_argument("--wav-dir", default=None,
                                 help="where the 16 kHz wavs decoded from the mp4 clips go "
                                      "(default: <data_dir>/wav)")
    parsers["meld"].add_argument("--nj", type=int, default=1, help="decoding processes")
    parsers["meld"].add_argument("--text-only", action="store_true",
                                 help="from the three CSVs alone: transcripts, no clips and no "
                                      "wav.scp (train with conf/tuning/text_only.yaml)")
    parsers["msp_podcast"].add_argument("--class-set", choices=sorted(msp_podcast.CLASS_SETS),
                                        default="8class",
                                        help="8class: all but O and X; 4class: N H S A "
                                             "(default: %(default)s)")
    for name, folds, dev in (("crema_d", 5, 9), ("ravdess", 6, 2), ("emodb", 10, 1)):
        parsers[name].add_argument("--num-folds", type=int, default=folds,
                                   help="speaker folds (default: %(default)s)")
        parsers[name].add_argument("--dev-speakers", type=int, default=dev,
                                   help="speakers of the next fold's group held out as dev "
                                        "(default: %(default)s)")
    parsers["ravdess"].add_argument("--fold-groups", choices=("emobox", "balanced"),
                                    default="emobox",
                                    help="emobox: EmoBox's 6 groups of 4 actors (--num-folds "
                                         "ignored); balanced: --num-folds gender-balanced groups "
                                         "(default: %(default)s)")
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    if getattr(args, "nj", 1) < 1:
        sys.exit(f"prepare_corpus: --nj must be at least 1, got {args.nj}")
    module = {"meld": meld, "msp_podcast": msp_podcast, "crema_d": crema_d, "ravdess": ravdess,
              "emodb": emodb}[args.corpus]
    common = {"skip_bad_audio": args.skip_bad_audio}
    try:
        documented = getattr(module, "DOCUMENTED_TOTALS", {})
        keys = tuple(documented) or tuple(msp_podcast.PARTITIONS)
        common["expected_counts"] = (documented if args.expected_counts is None
                                     else parse_expected(args.expected_counts, keys))
        if args.corpus == "meld":
            meld.prepare_meld(args.root, args.data_dir, label=args.label, wav_dir=args.wav_dir,
                              nj=args.nj, text_only=args.text_only, **common)
        elif args.corpus == "msp_podcast":
            msp_podcast.prepare_msp_podcast(args.root, args.data_dir, class_set=args.class_set,
                                            **common)
        elif args.corpus == "crema_d":
            crema_d.prepare_crema_d(args.root, args.data_dir, num_folds=args.num_folds,
                                    dev_speakers=args.dev_speakers, **common)
        elif args.corpus == "ravdess":
            ravdess.prepare_ravdess(args.root, args.data_dir, fold_groups=args.fold_groups,
                                    num_folds=args.num_folds, dev_speakers=args.dev_speakers,
                                    **common)
        else:
            emodb.prepare_emodb(args.root, args.data_dir, num_folds=args.num_folds,
                                dev_speakers=args.dev_speakers, **common)
    except DataDirError as e:
        sys.exit(f"prepare_corpus {args.corpus}: {e}")


if __name__ == "__main__":
    main()
