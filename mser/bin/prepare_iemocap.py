"""Prepare Kaldi data dirs from IEMOCAP_full_release: <data_dir>/all and <data_dir>/fold*/{train,dev,test},
and <data_dir>/protocol (mser/data/protocol.py). Also reports the share of test transcripts that
occur verbatim in the same fold's train/dev data (see --text-disjoint).

Every written dir holds wav.scp, text, utt2spk, spk2utt, utt2emo, utt2sess, utt2dur and classes.txt.
Example:  python -m mser.bin.prepare_iemocap --iemocap /corpora/IEMOCAP_full_release data
"""
import argparse
import sys

from mser.data.datadir import DataDirError
from mser.data.iemocap import CLASS_SETS, prepare_iemocap
from mser.utils.logging import setup_logging


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iemocap", required=True, metavar="DIR",
                        help="corpus root holding Session1..Session5 (set IEMOCAP in db.sh)")
    parser.add_argument("data_dir", help="output directory")
    parser.add_argument("--class-set", choices=sorted(CLASS_SETS), default="4class",
                        help="4class: neu hap(+exc) ang sad; 4class_noexc: hap without exc; "
                             "6class: neu hap ang sad exc fru (default: %(default)s)")
    parser.add_argument("--improvised-only", action="store_true",
                        help="keep the improvised dialogs only")
    parser.add_argument("--noise-tags", choices=("strip", "keep"), default="strip",
                        help="transcript tags such as [LAUGHTER] (default: %(default)s)")
    parser.add_argument("--cv", choices=("session", "speaker"), default="session",
                        help="session: 5 leave-one-session-out folds; speaker: 10 "
                             "leave-one-speaker-out folds (default: %(default)s)")
    parser.add_argument("--dev", choices=("speaker", "fraction"), default="speaker",
                        help="speaker: hold out one speaker of the session after the test "
                             "session; fraction: a stratified random part of the training "
                             "sessions (default: %(default)s)")
    parser.add_argument("--dev-fraction", type=float, default=0.1,
                        help="dev share with --dev fraction (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --dev fraction")
    parser.add_argument("--text-disjoint", action="store_true",
                        help="drop from each fold's train and dev sets every utterance whose "
                             "normalised transcript occurs in its test set (scripted lines are "
                             "read in every session), so no test transcript is seen in training")
    parser.add_argument("--corpus-name", default="IEMOCAP",
                        help="corpus name in <data_dir>/protocol (default: %(default)s)")
    parser.add_argument("--skip-missing-wav", action="store_true",
                        help="drop labelled utterances without a wav (with a warning) "
                             "instead of failing")
    parser.add_argument("--skip-missing-text", action="store_true",
                        help="drop labelled utterances without a transcript (with a warning) "
                             "instead of failing")
    parser.add_argument("--skip-unlabelled", action="store_true",
                        help="drop utterances with a wav and a transcript but no parsed label, "
                             "and ignore label lines that do not parse (each is still listed) "
                             "instead of failing")
    parser.add_argument("--verbose", type=int, default=1)
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    if not 0 < args.dev_fraction < 1:
        sys.exit(f"prepare_iemocap: --dev-fraction must be in (0, 1), got {args.dev_fraction}")
    try:
        prepare_iemocap(args.iemocap, args.data_dir, class_set=args.class_set,
                        improvised_only=args.improvised_only, noise_tags=args.noise_tags,
                        cv=args.cv, dev=args.dev, dev_fraction=args.dev_fraction, seed=args.seed,
                        text_disjoint=args.text_disjoint, corpus_name=args.corpus_name,
                        skip_missing_wav=args.skip_missing_wav,
                        skip_missing_text=args.skip_missing_text,
                        skip_unlabelled=args.skip_unlabelled)
    except DataDirError as e:
        sys.exit(f"prepare_iemocap: {e}")


if __name__ == "__main__":
    main()
