"""The exported ONNX model (mser-export-onnx) against torch on the same stored features: the
posteriors' largest difference, and utterances/s of each at batch 1 (a server, a timeline
segment) and at a decoding batch, on the same cores in one run.

    tools/venv/bin/python bench/bench_onnx.py --model-dir egs/meld/exp/text_only_mpnet/fold1 \\
        --data-dir egs/meld/data/fold1/test [--max-utts 500] [--batch-size 32] [--threads 2]

Run from the repository root; the model dir's feats.scp paths are relative to its recipe dir
(exp/<tag>/fold<k> -> the recipe is two levels up). The ONNX file is written next to the model
(<model-dir>/model.onnx) unless it exists. Torch runs the model as decoding does (eval mode,
inference_mode, the streams each utterance has); both use --threads threads.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch

from mser.io.datadir import read_table
from mser.io.storage import open_feats
from mser.nets import load_model
from mser.utils.calibration import softmax
from mser.utils.onnx_model import OnnxEmotionModel


def read_samples(model_dir, config, streams, data_dir, max_utts):
    recipe = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(model_dir))))
    utts = sorted(read_table(os.path.join(data_dir, "utt2spk")))[:max_utts]
    cwd = os.getcwd()
    os.chdir(recipe)
    try:
        feats = {m: open_feats(config[f"{m}_feats"]) for m in streams}
        return [{m: np.asarray(feats[m][u], np.float32) for m in streams} for u in utts]
    finally:
        os.chdir(cwd)


def timed(function, batches, repeats=3):
    """The best of ``repeats`` wall-clock passes over ``batches`` (the machine is shared)."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for batch in batches:
            function(batch)
        best = min(best, time.perf_counter() - start)
    return best


def torch_logits(model, streams):
    def run(samples):
        batch = {}
        for m in streams:
            lens = [len(s[m]) for s in samples]
            padded = np.zeros((len(samples), max(lens), samples[0][m].shape[1]), np.float32)
            for i, s in enumerate(samples):
                padded[i, :lens[i]] = s[m]
            batch[m], batch[f"{m}_lens"] = torch.from_numpy(padded), torch.tensor(lens)
        with torch.inference_mode():
            return model(batch, streams=streams)["logits"].float().numpy()
    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--data-dir", required=True, help="whose utterances are scored")
    parser.add_argument("--max-utts", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    path = os.path.join(args.model_dir, "model.onnx")
    if not os.path.exists(path):
        from mser.onnx_export import export_onnx

        start = time.perf_counter()
        export_onnx(args.model_dir, path)
        print(f"export: {time.perf_counter() - start:.1f} s, {os.path.getsize(path) / 1e6:.1f} MB")
    model, config = load_model(args.model_dir)
    streams = list(model.modalities)
    samples = read_samples(args.model_dir, config, streams, args.data_dir, args.max_utts)
    runner = OnnxEmotionModel(path, threads=args.threads)
    run_torch = torch_logits(model, streams)
    by_length = sorted(samples, key=lambda s: -len(s[streams[0]]))
    batches = {1: [[s] for s in samples],
               args.batch_size: [by_length[i:i + args.batch_size]
                                 for i in range(0, len(by_length), args.batch_size)]}
    difference = max(float(np.abs(softmax(runner.logits(b)) - softmax(run_torch(b))).max())
                     for b in batches[args.batch_size])
    frames = {m: np.mean([len(s[m]) for s in samples]) for m in streams}
    print(f"{args.model_dir}: {len(samples)} utterances of {args.data_dir} "
          f"(mean frames {', '.join(f'{m} {f:.0f}' for m, f in frames.items())}), "
          f"{args.threads} thread(s); largest posterior difference onnxruntime - torch "
          f"{difference:.2e}")
    print(f"{'batch':>6} {'torch utt/s':>12} {'onnxruntime utt/s':>18} {'speed-up':>9}")
    for size, groups in batches.items():
        seconds = {name: timed(function, groups) for name, function in
                   (("torch", run_torch), ("onnxruntime", runner.logits))}
        print(f"{size:>6} {len(samples) / seconds['torch']:>12.1f} "
              f"{len(samples) / seconds['onnxruntime']:>18.1f} "
              f"{seconds['torch'] / seconds['onnxruntime']:>8.2f}x")


if __name__ == "__main__":
    sys.exit(main())
