"""Emotion over long recordings (mser-timeline): speech segments (Silero VAD), their transcripts
(ASR) and emotions, written per recording as a table, JSON, a plot and a Kaldi data dir.

    mser-timeline --model-dir exp/<tag>/fold1 call.wav --out-dir timeline/
    mser-timeline --model-dir exported/ --wav-scp wav.scp --out-dir timeline/ --asr /models/whisper-small
    # known segments and transcripts (Kaldi segments + text) instead of the VAD and the ASR
    mser-timeline --model-dir exported/ --wav-scp wav.scp --segments segments --text-file text --out-dir out/
    # many recordings: job 2 of 4 of wav.scp, then one data dir of them all (utils/timeline.sh)
    mser-timeline --model-dir exported/ --wav-scp wav.scp --out-dir out/ --nj 4 --job 2
    mser-timeline --model-dir exported/ --wav-scp wav.scp --out-dir out/ --merge

Per recording <out-dir>/<rec>/: timeline.tsv and timeline.csv (segment start end transcript
emotion p(<class>)... modalities error), timeline.json, timeline.png and data/ (segments, text,
utt2emo, utt2spk, utt2dur, wav.scp as sox trim commands, recordings.scp, classes.txt, skipped).
--merge writes <out-dir>/data of all recordings. A finished recording (same options and audio
entry) is not redone. A recording that cannot be read is named with the reason (also in
<out-dir>/<rec>/error), the others are still processed, and the exit status is then 1.
--asr none (or a model without text) runs audio only; a segment whose transcript is empty runs
audio only too.
"""
import argparse
import dataclasses
import hashlib
import json
import logging
import os
import sys

from tqdm import tqdm

from mser.bin.transcribe import add_asr_engine_options
from mser.io.datadir import DataDirError, read_table, validate_data_dir
from mser.utils.fileio import atomic_write_text
from mser.utils.logging import setup_logging
from mser.vad import SegmentOptions

FINGERPRINT_FILE = ".done"


def add_segment_options(parser):
    """The segmenter's options (shared with mser-serve)."""
    group = parser.add_argument_group("segments")
    group.add_argument("--segmenter", choices=("vad", "fixed"), default="vad",
                       help="vad: Silero VAD speech segments; fixed: windows of --window s")
    group.add_argument("--window", type=float, default=5.0, help="fixed window length (s)")
    defaults = SegmentOptions()
    for field in dataclasses.fields(SegmentOptions):
        group.add_argument(f"--{field.name.replace('_', '-')}", type=float,
                           default=getattr(defaults, field.name),
                           help=f"(default {getattr(defaults, field.name)})")
    group.add_argument("--batch-size", type=int, default=8,
                       help="segments read and transcribed at once")


def segment_options(args):
    return SegmentOptions(**{f.name: getattr(args, f.name)
                             for f in dataclasses.fields(SegmentOptions)}).check()


def add_model_options(parser):
    """The model and ASR options (shared with mser-serve)."""
    parser.add_argument("--model-dir", required=True,
                        help="exp/<tag>/fold<k> (uses best.pt) or an exported model dir")
    parser.add_argument("--checkpoint", help="weights file inside --model-dir")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="onnxruntime: --model-dir is an ONNX export (mser-export-onnx)")
    parser.add_argument("--asr", default="packaged:whisper-tiny.en",
                        help="speech recogniser: packaged:whisper-tiny.en (default), "
                             "packaged:whisper-base, a local Whisper/CTC dir, or none")
    parser.add_argument("--language", default="en", help="multilingual Whisper only")
    add_asr_engine_options(parser)
    parser.add_argument("--num-threads", type=int, default=0,
                        help="torch CPU threads (0: torch's default)")
    add_segment_options(parser)


def build_recognizer(args, options):
    """The TimelineRecognizer of the parsed model, ASR and segment options."""
    import torch

    from mser.timeline import TimelineRecognizer

    if args.num_threads > 0:
        torch.set_num_threads(args.num_threads)
    return TimelineRecognizer(
        args.model_dir, asr=None if args.asr == "none" else args.asr, device=args.device,
        segmenter=args.segmenter, options=options, window=args.window,
        batch_size=args.batch_size, language=args.language or None, checkpoint=args.checkpoint,
        asr_backend=args.asr_backend, asr_window=args.asr_window, backend=args.backend)


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_options(parser)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("wav", nargs="?", help="one recording (any format libsndfile reads)")
    source.add_argument("--wav-scp", help="Kaldi wav.scp of recordings (paths or pipe commands)")
    parser.add_argument("--out-dir", required=True, help="writes <out-dir>/<recording>/...")
    parser.add_argument("--segments", help="Kaldi segments file (<seg> <rec> <start> <end>): "
                                           "these segments instead of the segmenter's")
    parser.add_argument("--text-file", help="with --segments: Kaldi text of the segments "
                                            "(their transcripts instead of the ASR's)")
    parser.add_argument("--formats", default="tsv,csv,json,png,data",
                        help="outputs per recording (comma-separated)")
    parser.add_argument("--nj", type=int, default=1, help="number of jobs over --wav-scp")
    parser.add_argument("--job", type=int, help="run job JOB of --nj (1..nj)")
    parser.add_argument("--merge", action="store_true",
                        help="only merge the recordings' data dirs into <out-dir>/data")
    parser.add_argument("--verbose", type=int, default=1)
    return parser


def recordings(args):
    """{recording: wav entry} of this job."""
    from mser.io.shards import job_slice

    if args.wav is not None:
        if not os.path.exists(args.wav):
            raise FileNotFoundError(f"{args.wav}: no such file")
        name = "_".join(os.path.splitext(os.path.basename(args.wav))[0].split())
        return {name: args.wav}
    table = read_table(args.wav_scp)
    return job_slice(table, args.nj, args.job) if args.job else table


def given_segments(args):
    """{recording: ([(start, end)], [transcript] or None)} from --segments / --text-file."""
    if not args.segments:
        return {}
    texts = read_table(args.text_file, allow_empty_value=True) if args.text_file else None
    by_recording = {}
    for lineno, (seg, value) in enumerate(read_table(args.segments).items(), 1):
        fields = value.split()
        try:
            rec, start, end = fields[0], float(fields[1]), float(fields[2])
            assert len(fields) == 3 and 0 <= start < end
        except (IndexError, ValueError, AssertionError):
            raise DataDirError(f"{args.segments}:{lineno}: expected '<segment> <recording> "
                               f"<start> <end>' (seconds, start < end), got {seg} {value}") from None
        if texts is not None and seg not in texts:
            raise DataDirError(f"{args.text_file}: no transcript of segment {seg} "
                               f"({args.segments}:{lineno}); give every segment a line")
        spans, transcripts = by_recording.setdefault(rec, ([], [] if texts is not None else None))
        spans.append((start, end))
        if texts is not None:
            transcripts.append(texts[seg])
    return by_recording


def fingerprint(args, wav, given):
    options = {k: v for k, v in vars(args).items()
               if k not in ("wav", "wav_scp", "nj", "job", "merge", "verbose", "num_threads",
                            "out_dir", "device")}
    payload = json.dumps([options, wav, given], sort_keys=True, default=str)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def merge(args, recs):
    """<out-dir>/data of every recording; missing or failed ones are named and counted."""
    from mser.timeline import merge_data_dirs, output_paths

    done, problems = [], []
    for rec in recs:
        paths = output_paths(args.out_dir, rec)
        error = os.path.join(os.path.dirname(paths["json"]), "error")
        if os.path.exists(paths["json"]) and os.path.isdir(paths["data"]):
            done.append(paths["data"])
        elif os.path.exists(error):
            with open(error, encoding="utf-8") as f:
                problems.append(f"{rec}: {f.read().strip()}")
        else:
            problems.append(f"{rec}: not processed (no {paths['json']}); rerun its job")
    out = os.path.join(args.out_dir, "data")
    tables = merge_data_dirs(done, out)
    issues = validate_data_dir(out, check_wavs=False)
    if issues:
        raise DataDirError(f"{out}: " + "; ".join(issues))
    logging.info("%s: %d segment(s) of %d recording(s)", out, len(tables.get("utt2emo", {})),
                 len(done))
    for problem in problems:
        logging.error("left out of %s: %s", out, problem)
    return 1 if problems else 0


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    if args.text_file and not args.segments:
        parser.error("--text-file goes with --segments (transcripts of known segments)")
    if args.wav is not None and (args.nj != 1 or args.job or args.merge):
        parser.error("--nj / --job / --merge go with --wav-scp")
    if args.job is not None and not 1 <= args.job <= args.nj:
        parser.error(f"--job {args.job} is not in 1..{args.nj}")
    formats = args.formats.split(",")
    setup_logging(args.verbose)
    try:
        options = segment_options(args)
        recs = recordings(args)
        if args.merge:
            return merge(args, recs)
        given = given_segments(args)
    except (DataDirError, FileNotFoundError, ValueError) as e:
        sys.exit(f"mser-timeline: {e}")
    from mser.timeline import OUTPUT_FORMATS

    unknown = sorted(set(formats) - set(OUTPUT_FORMATS))
    if unknown:
        parser.error(f"--formats: unknown {unknown}; choose from {','.join(OUTPUT_FORMATS)}")
    missing = sorted(set(given) - set(recs)) if args.job is None else []
    if missing:
        logging.warning("%s: %d recording(s) not in the input, ignored: %s", args.segments,
                        len(missing), " ".join(missing[:10]))
    todo = pending(args, recs, given)
    if not todo:
        return 0
    return run_timelines(build_recognizer(args, options), todo, given, args.out_dir, formats)


def pending(args, recs, given):
    """{rec: (wav, fingerprint, its done file)} of the recordings not done with these options."""
    from mser.timeline import output_paths

    todo = {}
    for rec, wav in recs.items():
        stamp = fingerprint(args, wav, given.get(rec))
        paths = output_paths(args.out_dir, rec)
        done = os.path.join(os.path.dirname(paths["json"]), FINGERPRINT_FILE)
        if os.path.exists(done) and open(done).read().strip() == stamp:
            logging.info("%s: already done (%s); skipping", rec, done)
            continue
        todo[rec] = (wav, stamp, done)
    return todo


def run_timelines(recognizer, todo, given, out_dir, formats):
    """Write each pending recording's timeline; 1 if any failed (each named), else 0."""
    from mser.features.audio import BadUtteranceError
    from mser.timeline import write_outputs

    failed = 0
    for rec, (wav, stamp, done) in tqdm(todo.items(), desc="mser-timeline", unit="rec",
                                        disable=len(todo) == 1):
        error = os.path.join(os.path.dirname(done), "error")
        spans, transcripts = given.get(rec, (None, None))
        try:
            timeline = recognizer.timeline_file(wav, rec, segments=spans, transcripts=transcripts)
        except (BadUtteranceError, ValueError, OSError) as e:
            failed += 1
            reason = " ".join(str(getattr(e, "reason", None) or e).split())
            logging.error("%s: %s: %s", rec, wav, reason)
            atomic_write_text(error, f"{wav}: {reason}\n")
            continue
        paths = write_outputs(timeline, out_dir, formats)
        if os.path.exists(error):
            os.unlink(error)
        atomic_write_text(done, stamp + "\n")
        logging.info("%s: %d segment(s) (%d failed) -> %s", rec, len(timeline.segments),
                     len(timeline.failed()), os.path.dirname(next(iter(paths.values()))))
    if failed:
        logging.error("%d of %d recording(s) failed (reasons above and in <out-dir>/<rec>/error)",
                      failed, len(todo))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
