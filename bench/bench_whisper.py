"""Whisper on the demo corpus: encoder features (30 s padded window vs the utterance's own
length) and transcription, in audio seconds per wall second; extrapolated to the full corpus.

    tools/venv/bin/python bench/bench_whisper.py [--model packaged:whisper-tiny.en] \
        [--utts-per-session 12] [--num-threads 1] [--batch-size 8] [--seed 0]

Generates a small demo corpus (mser.bin.make_synth_iemocap + prepare_corpus iemocap, espeak-ng) and
runs, in this process, on its data/all:

- the packaged model's first-use conversion into an empty cache (timed once);
- feature extraction through the dump pipeline (mser.features.dump.run_job: reading wavs,
  log-mel, encoder, writing the ark) with whisper_window padded, then utterance (last layer);
  model load timed apart (the rates exclude it, the extrapolation adds it once per job); then the cosine similarity of the two feature sets, frame by frame
  (mean and 5th percentile) and of the utterance means;
- transcription through mser.asr.run_job (batched greedy decoding, --batch-size utterances
  per forward; Whisper always sees the 30 s window), and its WER against the gold text.

Each measurement runs with --num-threads torch threads (default 1: what each job of
utils/dump_feats.sh --nj 2 gets on 2 cores). With one thread, CPU seconds are what the task
costs on an idle core; wall seconds also count the time other processes took the core. The
extrapolation to the full demo corpus
(--full-utts, 1,350 labelled utterances at 300 per session) assumes the measured rate per job
and --full-jobs parallel jobs (default 2, one per core). Prints the load average, which other
processes on the machine raise.
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np


def run(cmd):
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def make_corpus(root, utts_per_session, seed):
    corpus, data = os.path.join(root, "corpus"), os.path.join(root, "data")
    run([sys.executable, "-m", "mser.bin.make_synth_iemocap", "--utts-per-session",
         str(utts_per_session), "--seed", str(seed), "--nj", "2", corpus])
    run([sys.executable, "-m", "mser.bin.prepare_corpus", "iemocap", corpus, data])
    return os.path.join(data, "all")


def audio_seconds(data_dir):
    from mser.io.datadir import read_table

    durations = read_table(os.path.join(data_dir, "utt2dur"))
    return sum(float(d) for d in durations.values()), len(durations)


def timed(function):
    """(result, wall seconds, CPU seconds of this process) of function()."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = function()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def extract(conf, data_dir, out_dir):
    """(model load seconds, extraction wall and CPU seconds without the job's own model load)
    of one dump job over data_dir."""
    from mser.features import extractor_class, resolve_config
    from mser.features.dump import merge, run_job

    conf = resolve_config(conf)
    _, load, load_cpu = timed(lambda: extractor_class(conf["extractor"])(conf))
    _, wall, cpu = timed(lambda: run_job(conf, data_dir, out_dir, 1, 1))
    merge(conf, data_dir, out_dir, 1)
    return load, wall - load, cpu - load_cpu


def cosine_report(padded_dir, utterance_dir):
    from mser.io.storage import open_feats

    padded = open_feats(os.path.join(padded_dir, "feats.scp"))
    utterance = open_feats(os.path.join(utterance_dir, "feats.scp"))
    frame_cos, mean_cos = [], []
    for utt in padded:
        a, b = padded[utt], utterance[utt]
        frame_cos.append((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1))
        ma, mb = a.mean(0), b.mean(0)
        mean_cos.append(ma @ mb / np.linalg.norm(ma) / np.linalg.norm(mb))
    frames = np.concatenate(frame_cos)
    return frames.mean(), np.percentile(frames, 5), np.mean(mean_cos), np.min(mean_cos)


def transcribe(model, data_dir, out_dir, batch_size):
    from mser.asr import SpeechRecognizer, merge, run_job
    from mser.scoring.wer import data_dir_wer

    recognizer, load, _ = timed(lambda: SpeechRecognizer(model, batch_size=batch_size))
    options = {"model_dir": model}
    _, wall, cpu = timed(lambda: run_job(lambda: recognizer, options, data_dir, out_dir, 1, 1))
    merge(options, data_dir, out_dir, 1)
    return load, wall, cpu, data_dir_wer(data_dir, out_dir)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="packaged:whisper-tiny.en")
    parser.add_argument("--utts-per-session", type=int, default=12)
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=8, help="ASR utterances per forward")
    parser.add_argument("--full-utts", type=int, default=1350)
    parser.add_argument("--full-jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-asr", action="store_true")
    args = parser.parse_args()
    import torch

    from mser.features.hf_common import resolve_model_dir

    torch.set_num_threads(args.num_threads)
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} cores); "
          f"torch threads: {args.num_threads}")
    with tempfile.TemporaryDirectory() as root:
        data_dir = make_corpus(root, args.utts_per_session, args.seed)
        seconds, num_utts = audio_seconds(data_dir)
        print(f"corpus: {num_utts} utterances, {seconds:.1f} s of audio "
              f"(mean {seconds / num_utts:.2f} s)")
        if args.model.startswith("packaged:"):
            os.environ["MSER_CACHE"] = os.path.join(root, "cache")
            start = time.perf_counter()
            resolve_model_dir(args.model, "")
            print(f"first use of {args.model}: converted in {time.perf_counter() - start:.1f} s")

        rows, dumps = [], {}
        for window in ("padded", "utterance"):
            conf = {"extractor": "hf_ssl", "model_dir": args.model, "layers": "last",
                    "whisper_window": window}
            dumps[window] = os.path.join(root, f"dump_{window}")
            rows.append((f"encoder features, {window} window",
                         *extract(conf, data_dir, dumps[window])))
        if not args.skip_asr:
            *timing, errors = transcribe(args.model, data_dir, os.path.join(root, "asr"),
                                         args.batch_size)
            rows.append((f"transcription (batch {args.batch_size}, greedy)", *timing))

        print(f"\n| task | audio s / wall s | audio s / CPU s | wall s | model load s | full "
              f"corpus, {args.full_jobs} jobs: min at the wall rate (at the CPU rate) |")
        print("|---|---:|---:|---:|---:|---:|")
        full_seconds = seconds / num_utts * args.full_utts
        for name, load, wall, cpu in rows:
            minutes = [(full_seconds * t / seconds / args.full_jobs + load) / 60 for t in (wall, cpu)]
            print(f"| {name} | {seconds / wall:.1f} | {seconds / cpu:.1f} | {wall:.1f} | "
                  f"{load:.1f} | {minutes[0]:.1f} ({minutes[1]:.1f}) |")
        frame_mean, frame_p5, utt_mean, utt_min = cosine_report(dumps["padded"],
                                                                dumps["utterance"])
        print(f"\nutterance vs padded window, last layer: frame cosine mean {frame_mean:.3f}, "
              f"5th percentile {frame_p5:.3f}; utterance-mean cosine mean {utt_mean:.3f}, "
              f"min {utt_min:.3f}")
        if not args.skip_asr:
            print(f"WER against the gold text: {100 * errors.wer:.1f}% "
                  f"({errors.reference_words} words, {errors.utterances} utterances)")
        print(f"full corpus: {args.full_utts} utterances, {full_seconds / 60:.1f} min of audio; "
              f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
