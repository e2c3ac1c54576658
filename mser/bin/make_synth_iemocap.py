"""Generate the synthetic IEMOCAP-layout demo corpus (espeak-ng); prepare it with
``prepare_corpus iemocap``.

Re-running finishes an interrupted generation and skips a complete one (<corpus_dir>/.done);
a corpus generated with other options is refused.
Example:  python -m mser.bin.make_synth_iemocap --nj 2 --seed 0 corpus/IEMOCAP_synth
"""
import argparse
import sys

from mser.data.synth import SynthError, SynthOptions, generate_corpus
from mser.utils.logging import setup_logging


def get_parser():
    defaults = SynthOptions()
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus_dir", help="output corpus root (holds Session1..Session5)")
    parser.add_argument("--utts-per-session", type=int, default=defaults.utts_per_session,
                        help="labelled utterances per session, fru and xxx included "
                             "(default: %(default)s)")
    parser.add_argument("--text-specific", type=float, default=defaults.text_specific,
                        help="probability that the words of an angry or sad utterance name its "
                             "emotion rather than only a negative valence (default: %(default)s)")
    parser.add_argument("--voice-specific", type=float, default=defaults.voice_specific,
                        help="probability that the voice of a happy or angry utterance has its "
                             "emotion's quality rather than only high arousal "
                             "(default: %(default)s)")
    parser.add_argument("--snr-min", type=float, default=defaults.snr_min,
                        help="lowest SNR of the additive noise, dB (default: %(default)s)")
    parser.add_argument("--snr-max", type=float, default=defaults.snr_max,
                        help="highest SNR of the additive noise, dB (default: %(default)s)")
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--nj", type=int, default=1, help="parallel synthesis processes")
    parser.add_argument("--verbose", type=int, default=1)
    return parser


def main(argv=None):
    args = get_parser().parse_args(argv)
    setup_logging(args.verbose)
    options = SynthOptions(seed=args.seed, utts_per_session=args.utts_per_session,
                           text_specific=args.text_specific, voice_specific=args.voice_specific,
                           snr_min=args.snr_min, snr_max=args.snr_max)
    try:
        generate_corpus(args.corpus_dir, options, nj=args.nj)
    except SynthError as e:
        sys.exit(f"make_synth_iemocap: {e}")


if __name__ == "__main__":
    main()
