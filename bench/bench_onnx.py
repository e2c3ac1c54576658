"""The ONNX route (mser-export-onnx; mser-infer --backend onnxruntime) against torch, end to end
from the recordings and transcripts of a data dir: utterances/s, peak RSS and the scores of
each backend, each in its own process, one utterance at a time (as mser-infer and a server).

    tools/venv/bin/python bench/bench_onnx.py --model-dir egs/meld/exp/text_only_mpnet/fold1 \\
        --data-dir egs/meld/data/fold1/test [--max-utts 500] [--threads 2]
    tools/venv/bin/python bench/bench_onnx.py --recipe egs/ravdess \\
        --tag train_whisper_base_minilm --folds 1 2 3 4 5 6

--recipe/--tag/--folds: each fold's model (exp/<tag>/fold<k>) on its test set
(data/fold<k>/test), then the pooled figures over every fold's test utterances, the fold mean
± std of UA, and int8 against fp32 (paired bootstrap of the UA difference, McNemar).

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


def truth_and_guess(predictions, labels, classes):
    """(gold class indices, argmax class indices) of ``predictions``' utterances, sorted."""
    utts = sorted(predictions)
    truth = np.array([classes.index(labels[u]) for u in utts])
    guess = np.array([int(np.argmax([predictions[u][c] for c in classes])) for u in utts])
    return truth, guess


def scores(predictions, labels, classes):
    from mser.utils.metrics import score

    return score(*truth_and_guess(predictions, labels, classes), classes)


def bench_model(model_dir, data_dir, max_utts, threads):
    """{backend: {seconds, load_seconds, peak_rss_mb, predictions}} of one model dir, each
    backend in its own process; the exports are written first where missing."""
    exports = {"onnx_fp32": os.path.join(model_dir, "onnx"),
               "onnx_int8": os.path.join(model_dir, "onnx_int8")}
    for backend, directory in exports.items():
        if not os.path.isdir(directory):
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "mser.bin.export_onnx", "--model-dir",
                            model_dir, "--out-dir", directory]
                           + (["--int8"] if backend == "onnx_int8" else []), check=True)
            print(f"{backend}: exported in {time.perf_counter() - start:.0f} s")
    results = {}
    for backend in BACKENDS:
        command = [sys.executable, __file__, "--model-dir", model_dir, "--data-dir", data_dir,
                   "--max-utts", str(max_utts), "--threads", str(threads), "--backend", backend,
                   "--export-dir", exports.get(backend, "")]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        results[backend] = json.loads(out.strip().splitlines()[-1])
    return results


def print_table(results, labels, classes):
    """One line per backend: speed, memory, scores, agreement with torch."""
    reference = results["torch"]["predictions"]
    print(f"{'backend':>10} {'utt/s':>7} {'load s':>7} {'peak RSS MB':>12} {'UA':>6} {'WA':>6} "
          f"{'wF1':>6} {'same emotion':>13} {'max |dp|':>9}")
    for backend, result in results.items():
        metrics = scores(result["predictions"], labels, classes)
        same = np.mean([max(p, key=p.get) == max(reference[u], key=reference[u].get)
                        for u, p in result["predictions"].items()])
        worst = max(abs(p[c] - reference[u][c]) for u, p in result["predictions"].items()
                    for c in classes)
        print(f"{backend:>10} {len(reference) / result['seconds']:>7.1f} "
              f"{result['load_seconds']:>7.1f} {result['peak_rss_mb']:>12.0f} "
              f"{100 * metrics['ua']:>6.2f} {100 * metrics['wa']:>6.2f} "
              f"{100 * metrics['weighted_f1']:>6.2f} {100 * same:>12.1f}% {worst:>9.1e}")


def print_pooled(per_fold, labels, classes):
    """Every fold's test utterances at once; UA fold mean ± std; int8 against fp32."""
    from mser.utils.metrics import mcnemar_test, paired_bootstrap

    pooled = {backend: {"seconds": sum(r[backend]["seconds"] for r in per_fold),
                        "load_seconds": float(np.mean([r[backend]["load_seconds"]
                                                       for r in per_fold])),
                        "peak_rss_mb": max(r[backend]["peak_rss_mb"] for r in per_fold),
                        "predictions": {u: p for r in per_fold
                                        for u, p in r[backend]["predictions"].items()}}
              for backend in BACKENDS}
    print(f"pooled over {len(per_fold)} folds ({len(pooled['torch']['predictions'])} test "
          f"utterances; load s: the mean, peak RSS: the largest)")
    print_table(pooled, labels, classes)
    for backend in BACKENDS:
        fold_ua = [100 * scores(r[backend]["predictions"], labels, classes)["ua"]
                   for r in per_fold]
        print(f"{backend:>10} UA fold mean {np.mean(fold_ua):.2f} ± {np.std(fold_ua, ddof=1):.2f}")
    truth, fp32 = truth_and_guess(pooled["onnx_fp32"]["predictions"], labels, classes)
    _, int8 = truth_and_guess(pooled["onnx_int8"]["predictions"], labels, classes)
    diff, (low, high), p = paired_bootstrap(truth, int8, fp32, len(classes))
    int8_only, fp32_only, p_mcnemar = mcnemar_test(truth, int8, fp32)
    print(f"int8 - fp32, pooled UA: {100 * diff:+.2f} [{100 * low:+.2f}, {100 * high:+.2f}] "
          f"(bootstrap p {p:.3g}); right only with int8 / fp32: {int8_only} / {fp32_only} "
          f"(McNemar p {p_mcnemar:.3g})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir")
    parser.add_argument("--data-dir", help="utt2emo and wav.scp and/or text")
    parser.add_argument("--recipe", help="a recipe dir: each fold's model on its test set")
    parser.add_argument("--tag", help="with --recipe: exp/<tag>")
    parser.add_argument("--folds", nargs="+", default=["1"], help="with --recipe")
    parser.add_argument("--max-utts", type=int, default=500)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    parser.add_argument("--backend", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--export-dir", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.backend:
        return run_backend(args)
    if args.recipe:
        if not args.tag:
            parser.error("--recipe needs --tag (exp/<tag>/fold<k>)")
        pairs = [(os.path.join(args.recipe, "exp", args.tag, f"fold{k}"),
                  os.path.join(args.recipe, "data", f"fold{k}", "test")) for k in args.folds]
    elif args.model_dir and args.data_dir:
        pairs = [(args.model_dir, args.data_dir)]
    else:
        parser.error("give --model-dir and --data-dir, or --recipe, --tag and --folds")

    from mser.io.datadir import read_table
    from mser.utils.config import load_config

    per_fold, labels = [], {}
    for model_dir, data_dir in pairs:
        results = bench_model(model_dir, data_dir, args.max_utts, args.threads)
        fold_labels = read_table(os.path.join(data_dir, "utt2emo"))
        classes = load_config(os.path.join(model_dir, "config.yaml"))["classes"]
        print(f"{model_dir} on {len(results['torch']['predictions'])} utterances of {data_dir}, "
              f"{args.threads} thread(s), one utterance at a time (UA / WA / wF1 over these "
              f"utterances, %)", flush=True)
        print_table(results, fold_labels, classes)
        per_fold.append(results)
        labels.update(fold_labels)
    if len(per_fold) > 1:
        print_pooled(per_fold, labels, classes)


if __name__ == "__main__":
    sys.exit(main())
