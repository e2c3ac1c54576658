"""Transcribe a Kaldi data dir: <out-data-dir> is a copy of <data-dir> whose text holds the
recognised transcripts (see mser.asr; unreadable wavs are listed in <out-data-dir>/skipped).

    # one process (all of wav.scp), then merged
    python -m mser.bin.transcribe --model-dir packaged:whisper-tiny.en data/all data/all_asr
    # parallel jobs, as utils/transcribe.sh runs them through $cmd, then the merge
    python -m mser.bin.transcribe --model-dir DIR --nj 4 --job 2 data/all data/all_asr
    python -m mser.bin.transcribe --model-dir DIR --nj 4 --merge data/all data/all_asr

--model-dir: packaged:whisper-tiny.en, packaged:whisper-base, or any local transformers ASR
dir (Whisper of any size, wav2vec2/HuBERT-CTC). With a reference text in <data-dir>, the merge
also logs the WER (mser.scoring.wer).
"""
import argparse
import os
import sys

from mser.io.datadir import DataDirError
from mser.features import FeatureConfigError
from mser.utils.logging import setup_logging


def add_asr_engine_options(parser):
    """How Whisper runs (shared with mser-timeline and mser-serve)."""
    from mser.asr import BACKENDS, DEFAULT_MIN_WINDOW

    parser.add_argument("--asr-backend", default="auto", choices=BACKENDS,
                        help="auto: CTranslate2 (int8 on CPU) for Whisper in its format (the "
                             "packaged models), else transformers")
    parser.add_argument("--asr-window", type=float, default=DEFAULT_MIN_WINDOW,
                        help="CTranslate2: shortest encoder window in seconds (each batch is "
                             "padded to its longest segment + 1 s, at least this; 30: Whisper's "
                             "own window)")


def options_of(args):
    """What the transcripts depend on (the jobs' fingerprint)."""
    return {"model_dir": args.model_dir, "language": args.language, "num_beams": args.num_beams,
            "backend": args.asr_backend, "window": args.asr_window}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir")
    parser.add_argument("out_dir")
    parser.add_argument("--model-dir", required=True,
                        help="packaged:whisper-tiny.en, packaged:whisper-base or a local dir")
    parser.add_argument("--nj", type=int, default=1, help="number of parallel jobs")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--job", type=int, help="run only this job (1..nj); merge with --merge")
    mode.add_argument("--merge", action="store_true", help="only merge the finished jobs")
    mode.add_argument("--check-done", action="store_true",
                      help="only report (exit status) whether <out-data-dir> is up to date")
    parser.add_argument("--ngpu", type=int, default=0, choices=(0, 1),
                        help="1: decode on cuda (one GPU per job)")
    parser.add_argument("--batch-size", type=int, default=8, help="utterances per forward")
    parser.add_argument("--language", default="en",
                        help="for multilingual Whisper ('' : detect); ignored by other models")
    parser.add_argument("--num-beams", type=int, default=1, help="beam size (Whisper)")
    add_asr_engine_options(parser)
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default)")
    parser.add_argument("--verbose", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    import torch

    from mser.asr import SpeechRecognizer, is_done, merge, run_job
    from mser.scoring.wer import data_dir_wer

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    options = options_of(args)
    device = "cuda" if args.ngpu else "cpu"
    if args.ngpu and not torch.cuda.is_available():
        sys.exit("transcribe: --ngpu 1 but torch sees no CUDA device; use --ngpu 0")

    def recognizer():
        return SpeechRecognizer(args.model_dir, device=device, batch_size=args.batch_size,
                                language=args.language or None, num_beams=args.num_beams,
                                backend=args.asr_backend, min_window=args.asr_window)

    try:
        if args.check_done:
            sys.exit(0 if is_done(options, args.data_dir, args.out_dir) else 1)
        jobs = [args.job] if args.job else [] if args.merge else range(1, args.nj + 1)
        for job in jobs:
            run_job(recognizer, options, args.data_dir, args.out_dir, args.nj, job)
        if not args.job:
            text, _ = merge(options, args.data_dir, args.out_dir, args.nj)
            if text and os.path.exists(os.path.join(args.data_dir, "text")):
                errors = data_dir_wer(args.data_dir, args.out_dir)
                print(f"WER of {args.out_dir}/text against {args.data_dir}/text: "
                      f"{100 * errors.wer:.2f}% ({errors.reference_words} words, "
                      f"{errors.utterances} utterances)", file=sys.stderr)
    except (DataDirError, FeatureConfigError, FileNotFoundError, ValueError) as e:
        sys.exit(f"transcribe: {e}")


if __name__ == "__main__":
    main()
