"""Training throughput and padding efficiency with and without length bucketing (CPU).

    tools/venv/bin/python bench/bench_train.py [--num-utts 600] [--max-frames 8000] [--epochs 2]

Random variable-length features shaped like the demo recipe's (audio: 84 dims at 100 frames/s,
1-8 s; text: 384 dims, 5-30 tokens), the default model of egs/synth_iemocap/conf/train.yaml
(the model defaults), the same batch budget (padded audio frames per batch) and the same seed
for both runs; only ``bucketing`` differs. Padding efficiency = real / padded audio frames.
Prints a markdown table.
"""
import argparse
import sys
import time

import numpy as np
import torch

from mser.data.dataset import LengthBucketBatchSampler, collate
from mser.nets import MODEL_DEFAULTS, build_model

AUDIO_INFO, TEXT_INFO = {"dim": 84, "num_layers": 1}, {"dim": 384, "num_layers": 1}


def make_items(num_utts, seed):
    rng = np.random.default_rng(seed)
    items = []
    for i in range(num_utts):
        frames, tokens = int(rng.uniform(1, 8) * 100), int(rng.integers(5, 31))
        items.append({"utt": f"utt{i}", "label": int(rng.integers(4)),
                      "audio": rng.normal(size=(frames, 84)).astype(np.float32),
                      "text": rng.normal(size=(tokens, 384)).astype(np.float32)})
    return items


def run(items, bucketing, args):
    torch.manual_seed(args.seed)
    model = build_model(MODEL_DEFAULTS, {"audio": AUDIO_INFO, "text": TEXT_INFO}, 4).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    lengths = [len(it["audio"]) for it in items]
    sampler = LengthBucketBatchSampler(lengths, max_frames=args.max_frames, bucketing=bucketing,
                                       seed=args.seed)
    real = padded = utts = 0
    start = time.time()
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        for indices in sampler:
            batch = collate([items[i] for i in indices])
            loss = model(batch)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            real += int(batch["audio_lens"].sum())
            padded += batch["audio"].shape[0] * batch["audio"].shape[1]
            utts += len(indices)
    elapsed = time.time() - start
    return {"utt/s": utts / elapsed, "efficiency": real / padded, "batches": len(sampler),
            "seconds": elapsed}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-utts", type=int, default=600)
    parser.add_argument("--max-frames", type=int, default=8000,
                        help="padded audio frames per batch (conf/train.yaml: 8000)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    items = make_items(args.num_utts, args.seed)
    rows = {name: run(items, bucketing, args) for name, bucketing in
            (("random batches", False), ("length-bucketed", True))}
    print(f"Command: {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}  "
          f"(torch {torch.__version__}, {torch.get_num_threads()} threads)\n")
    print("| batching | batches/epoch | padding efficiency | train utt/s | wall s |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(f"| {name} | {row['batches']} | {row['efficiency']:.3f} | {row['utt/s']:.1f} | "
              f"{row['seconds']:.1f} |")
    speedup = rows["length-bucketed"]["utt/s"] / rows["random batches"]["utt/s"]
    print(f"\nLength bucketing: {speedup:.2f}x throughput.")


if __name__ == "__main__":
    main()
