"""The ONNX route (mser-export-onnx; mser-infer --backend onnxruntime) against torch, end to end
from the recordings and transcripts of a data dir: utterances/s, peak RSS and the scores of
each backend, each in its own process, one utterance at a time (as mser-infer and a server).

    tools/venv/bin/python bench/bench_onnx.py --model-dir egs/meld/exp/text_only_mpnet/fold1 \\
        --data-dir egs/meld/data/fold1/test [--max-utts 500] [--threads 2]

Backends: torch (mser.inference.EmotionRecognizer), onnxruntime fp32 and int8 (exports written
to <model-dir>/onnx and <model-dir>/onnx_int8 unless they exist; their export time printed).
Each uses --threads threads. Prints per backend: utterances/s (after one warm-up utterance),
peak RSS of its process, UA / WA / weighted F1 over the utterances, agreement of its emotions
with torch's and the largest posterior difference from torch.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np

BACKENDS = ("torch", "onnx_fp32", "onnx_int8")


def run_backend(args):
    """One backend in this process: prints JSON of its predictions and measurements."""
    import soundfile

    from mser.io.datadir import read_table

    os.environ["OMP_NUM_THREADS"] = str(args.threads)
    start = time.perf_counter()
    if args.backend == "torch":
        import torch

        from mser.inference import EmotionRecognizer

        torch.set_num_threads(args.threads)
        recognizer = EmotionRecognizer(args.model_dir)
    else:
        from mser.onnx_inference import OnnxEmotionRecognizer

        recognizer = OnnxEmotionRecognizer(args.export_dir, threads=args.threads)
    load_seconds = time.perf_counter() - start
    utts = sorted(read_table(os.path.join(args.data_dir, "utt2emo")))[:args.max_utts]
    wavs = (read_table(os.path.join(args.data_dir, "wav.scp"))
            if "audio" in recognizer.modalities else {})
    texts = (read_table(os.path.join(args.data_dir, "text"), allow_empty_value=True)
             if "text" in recognizer.modalities else {})
    inputs = []
    for utt in utts:
        waveform, rate = soundfile.read(wavs[utt], dtype="float32") if wavs else (None, None)
        inputs.append((waveform, rate, texts.get(utt)))
    recognizer.predict(*inputs[0])  # warm-up
    start = time.perf_counter()
    predictions = {utt: recognizer.predict(*x).probabilities for utt, x in zip(utts, inputs)}
    seconds = time.perf_counter() - start
    print(json.dumps({"load_seconds": load_seconds, "seconds": seconds,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                      "predictions": predictions}))


def scores(predictions, labels, classes):
    from mser.utils.metrics import score

    utts = sorted(predictions)
    truth = [classes.index(labels[u]) for u in utts]
    guess = [int(np.argmax([predictions[u][c] for c in classes])) for u in utts]
    return score(truth, guess, classes)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data-dir", required=True, help="utt2emo and wav.scp and/or text")
    parser.add_argument("--max-utts", type=int, default=500)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backend:
        return run_backend(args)

    from mser.io.datadir import read_table
    from mser.utils.config import load_config

    exports = {"onnx_fp32": os.path.join(args.model_dir, "onnx"),
               "onnx_int8": os.path.join(args.model_dir, "onnx_int8")}
    for backend, directory in exports.items():
        if not os.path.isdir(directory):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mser.bin.export_onnx", "--model-dir",
                            args.model_dir, "--out-dir", directory]
                           + (["--int8"] if backend == "onnx_int8" else []), check=True)
            print(f"{backend}: exported in {time.perf_counter() - start:.0f} s")
    results = {}
    for backend in BACKENDS:
        command = [sys.executable, __file__, "--model-dir", args.model_dir, "--data-dir",
                   args.data_dir, "--max-utts", str(args.max_utts), "--threads",
                   str(args.threads), "--backend", backend,
                   "--export-dir", exports.get(backend, "")]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[backend] = json.loads(out.strip().splitlines()[-1])
    labels = read_table(os.path.join(args.data_dir, "utt2emo"))
    classes = load_config(os.path.join(args.model_dir, "config.yaml"))["classes"]
    reference = results["torch"]["predictions"]
    count = len(reference)
    print(f"{args.model_dir} on {count} utterances of {args.data_dir}, {args.threads} thread(s), "
          f"one utterance at a time (UA / WA / wF1 over these utterances, %)")
    print(f"{'backend':>10} {'utt/s':>7} {'load s':>7} {'peak RSS MB':>12} {'UA':>6} {'WA':>6} "
          f"{'wF1':>6} {'same emotion':>13} {'max |dp|':>9}")
    for backend, result in results.items():
        metrics = scores(result["predictions"], labels, classes)
        same = np.mean([max(p, key=p.get) == max(reference[u], key=reference[u].get)
                        for u, p in result["predictions"].items()])
        worst = max(abs(p[c] - reference[u][c]) for u, p in result["predictions"].items()
                    for c in classes)
        print(f"{backend:>10} {count / result['seconds']:>7.1f} {result['load_seconds']:>7.1f} "
              f"{result['peak_rss_mb']:>12.0f} {100 * metrics['ua']:>6.2f} "
              f"{100 * metrics['wa']:>6.2f} {100 * metrics['weighted_f1']:>6.2f} "
              f"{100 * same:>12.1f}% {worst:>9.1e}")


if __name__ == "__main__":
    sys.exit(main())
