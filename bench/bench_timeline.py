"""Time and memory of the timeline (mser-timeline) on long recordings, per stage (CPU).

    tools/venv/bin/python bench/bench_timeline.py [--minutes 1 10 60] \\
        [--model-dir egs/synth_iemocap/exp/train_whisper_tiny_utterance_minilm/fold1] \\
        [--data-dir egs/synth_iemocap/data/all] [--asr packaged:whisper-tiny.en]
    # the RAVDESS default model on recordings of RAVDESS clips
    tools/venv/bin/python bench/bench_timeline.py \
        --model-dir egs/ravdess/exp/train_whisper_base_minilm/fold1 --data-dir egs/ravdess/data/all

Each recording is the data dir's utterances joined by pauses of 0.3-2.0 s (about 70 % speech),
written as a 16 kHz wav and read from disk as mser-timeline reads it; each duration runs in a
fresh process. Stages: VAD (Silero, over the whole file), ASR (the segments' transcripts, in
batches of 8), features (the model's extractors on each segment: Whisper tiny.en encoder frames
and MiniLM tokens for the demo model), model (the fusion network: predict minus its features).
Peak RSS of a stage is the highest resident memory of the process sampled (every 20 ms) while
that stage ran, so it includes the loaded models ("models loaded": after loading the VAD, the
ASR, the extractors and the network); "all" is the process's peak. The anchor: faster-whisper (``WhisperModel(...).transcribe``,
greedy, no timestamps, int8) transcribing the timeline's segments one by one in the same process
after the timeline, on the same CTranslate2 model and threads ("wall / anchor": the whole
timeline's time over the anchor's transcription alone). Prints a markdown table.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from mser.asr import DEFAULT_MIN_WINDOW

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STAGES = ("vad", "asr", "features", "model")
DEMO = os.path.join(ROOT, "egs", "synth_iemocap")


def make_recording(data_dir, minutes, path, seed=0):
    """Utterances of ``data_dir`` in random order with pauses, ``minutes`` long, as a wav."""
    import soundfile

    from mser.io.datadir import read_table
    from mser.features.audio import read_wav

    rng = np.random.default_rng(seed)
    items = list(read_table(os.path.join(data_dir, "wav.scp")).items())
    target, written = int(minutes * 60 * 16000), 0
    with soundfile.SoundFile(path, "w", 16000, 1, "PCM_16") as f:
        while written < target:
            utt, wav = items[rng.integers(len(items))]
            for piece in (np.zeros(int(rng.uniform(0.3, 2.0) * 16000), np.float32),
                          read_wav(utt, wav, 16000)[0]):
                piece = piece[:target - written]
                f.write(piece)
                written += len(piece)


class Meter:
    """Wall time per stage (nested calls count for the innermost) and peak RSS while in it."""

    def __init__(self):
        self.stack, self.seconds, self.peak = ["load"], {}, {}
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.running = True
        threading.Thread(target=self.sample, daemon=True).start()

    def rss_mb(self):
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self.page / 2 ** 20

    def sample(self):
        while self.running:
            stage = self.stack[-1]
            self.peak[stage] = max(self.peak.get(stage, 0), self.rss_mb())
            time.sleep(0.02)

    def wrap(self, obj, method, stage):
        inner = getattr(obj, method)

        def timed(*args, **kwargs):
            self.stack.append(stage)
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                elapsed = time.perf_counter() - start
                self.stack.pop()
                self.seconds[stage] = self.seconds.get(stage, 0) + elapsed
                outer = self.stack[-1]   # the enclosing stage's time excludes this one
                self.seconds[outer] = self.seconds.get(outer, 0) - elapsed
        setattr(obj, method, timed)


def anchor_seconds(asr, wav, segments):
    """Wall seconds of the faster-whisper anchor (bench_asr.faster_whisper_engine: greedy, no
    timestamps, int8, the same CTranslate2 model and threads) transcribing ``segments`` of
    ``wav`` one by one."""
    import torch

    from bench_asr import faster_whisper_engine
    from mser.features.audio import read_wav

    transcribe = faster_whisper_engine(asr, torch.get_num_threads())
    audio = read_wav("recording", wav, 16000)[0]
    pieces = [audio[int(s.start * 16000):int(s.end * 16000)] for s in segments]
    start = time.perf_counter()
    transcribe(pieces)
    return time.perf_counter() - start


def child(model_dir, asr, wav, backend, window, anchor):
    import torch

    from mser.timeline import TimelineRecognizer

    meter = Meter()
    timeline = TimelineRecognizer(model_dir, asr=None if asr == "none" else asr,
                                  asr_backend=backend, asr_window=float(window))
    meter.wrap(timeline.thread_detector(), "probabilities", "vad")
    if timeline.asr:
        meter.wrap(timeline.asr, "transcribe", "asr")
    meter.wrap(timeline.recognizer, "predict", "model")
    for extractor in timeline.recognizer.extractors.values():
        for method in ("extract_wav", "extract_text"):
            if hasattr(extractor, method):
                meter.wrap(extractor, method, "features")
    meter.stack = ["other"]
    start = time.perf_counter()
    result = timeline.timeline_file(wav, progress=False)
    wall = time.perf_counter() - start
    meter.running = False
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    anchor = anchor_seconds(asr, wav, result.segments) if timeline.asr and anchor == "yes" \
        else float("nan")
    print(result.duration, len(result.segments), wall, peak, meter.peak.get("load", 0), anchor,
          torch.get_num_threads(),
          *[meter.seconds.get(s, 0) for s in STAGES], *[meter.peak.get(s, 0) for s in STAGES])


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--model-dir", default=os.path.join(
        DEMO, "exp", "train_whisper_tiny_utterance_minilm", "fold1"))
    parser.add_argument("--data-dir", default=os.path.join(DEMO, "data", "all"))
    parser.add_argument("--asr", default="packaged:whisper-tiny.en")
    parser.add_argument("--asr-backend", default="auto", help="as mser-timeline's")
    parser.add_argument("--asr-window", type=float, default=DEFAULT_MIN_WINDOW,
                        help="as mser-timeline's")
    parser.add_argument("--no-anchor", action="store_true",
                        help="leave the faster-whisper anchor out (its columns say nan)")
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    for path, what in ((args.model_dir, "a trained model"), (args.data_dir, "demo utterances")):
        if not os.path.isdir(path):
            sys.exit(f"bench_timeline: {path}: not found; it needs {what}: run "
                     f"cd egs/synth_iemocap && ./run.sh first, or give --model-dir/--data-dir")
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for minutes in args.minutes:
            wav = os.path.join(work, f"{minutes:g}min.wav")
            make_recording(args.data_dir, minutes, wav)
            out = subprocess.run([sys.executable, __file__, "--child", args.model_dir, args.asr,
                                  wav, args.asr_backend, str(args.asr_window),
                                  "no" if args.no_anchor else "yes"],
                                 capture_output=True, text=True,
                                 env={**os.environ, "PYTHONPATH": ROOT})
            if out.returncode:
                sys.exit(f"bench_timeline: {minutes} min failed:\n{out.stderr[-3000:]}")
            values = out.stdout.split()
            duration, segments, wall, peak, loaded, anchor, threads = (float(v)
                                                                       for v in values[:7])
            seconds, peaks = values[7:11], values[11:15]
            os.unlink(wav)
            rows.append(f"| {minutes:g} | {int(segments)} | {wall:.0f} | {wall / duration:.3f} | "
                        f"{anchor:.0f} | {wall / anchor:.2f} | "
                        + " | ".join(f"{float(s):.1f}" for s in seconds)
                        + f" | {peak:.0f} | {loaded:.0f} | "
                        + " | ".join(f"{float(p):.0f}" for p in peaks) + " |")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Command: {' '.join(['bench/bench_timeline.py', *sys.argv[1:]])}  ({int(threads)} "
          f"torch threads, {os.cpu_count()} cores, load average at the end {load}; ASR "
          f"{args.asr}, backend {args.asr_backend}, window >= {args.asr_window:g} s)\n")
    print("| minutes | segments | wall s | RTF | anchor ASR s | wall / anchor | VAD s | ASR s | "
          "features s | model s | peak RSS MB (all) | models loaded MB | VAD MB | ASR MB | "
          "features MB | model MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
