"""Peak RAM of training per feature-cache / DataLoader-worker setting, and the projected epoch
time of reading at IEMOCAP size and 10x.

    tools/venv/bin/python bench/bench_train_memory.py [--num-utts 64 128] [--epochs 2]

Random features of IEMOCAP's real shapes (bench_data_path.py: HuBERT-large 5x1024 at 50
frames/s, ~4.5 s; MPNet 4x768, ~20 tokens), dumped as ``storage: float16`` (and
``kaldi_compressed``, cached as float32), a train/dev data dir (dev: a quarter of train), then
``python -m mser.bin.train --config egs/iemocap/conf/train.yaml`` (the paper-scale model, its
batch of 32 utterances) for --epochs epochs per setting. Peak RAM = the largest sum of the
proportional set size (Pss: shared pages split between the processes that map them) over the
training process and its DataLoader workers, sampled every 0.1 s. Run at two corpus sizes, the
larger one the smaller one's training and dev utterance lengths repeated (so the same longest
batch: what grows is the corpus, not the batch), and extrapolated linearly (a + b x utterances) to IEMOCAP's 5531
utterances and 10x: a linear fit of two points, not a measurement at that size; the longest
batch of a real corpus (IEMOCAP: clips up to 35 s) adds to every row. Worker caches keep growing after --epochs until
each worker holds the whole corpus; the "bound" column is the cache estimate training checks
against --cache-memory-gb (feature bytes x max(1, workers)).

Reading: CPU time of the dataset + collate path (every train utterance once, no cache, one
torch thread as in a DataLoader worker) per storage, projected to one epoch at 5531 and 55310 utterances (CPU minutes; divide by the
DataLoader workers for the wall time when they have a core each).
"""
import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np
import torch
import yaml

from bench_data_path import IEMOCAP_UTTS, STREAMS, random_feats, utterance_lengths
from mser.io.datadir import write_data_dir
from mser.data.dataset import EmotionDataset, collate
from mser.io.storage import JobArkWriter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONF = os.path.join(ROOT, "egs", "iemocap", "conf", "train.yaml")
CLASSES = ("neu", "hap", "ang", "sad")
SETTINGS = [  # (name, storage, cache_feats, num_workers)
    ("no cache, 0 workers", "float16", False, 0),
    ("no cache, 2 workers", "float16", False, 2),
    ("cache float16, 0 workers", "float16", True, 0),
    ("cache float16, 2 workers", "float16", True, 2),
    ("cache kaldi_compressed (float32), 0 workers", "kaldi_compressed", True, 0),
]


def write_corpus(root, num_train, base_lengths, seed):
    """data/{train,dev} and dump/<stream>_<storage>/ for both storages: the training and dev
    utterance lengths of ``base_lengths`` (train first, then a quarter as many dev) each
    repeated; returns the dump scps."""
    num_utts = num_train + num_train // 4
    base_train = len(next(iter(base_lengths.values()))) * 4 // 5
    lengths = {stream: np.concatenate([np.resize(values[:base_train], num_train),
                                       np.resize(values[base_train:], num_utts - num_train)])
               for stream, values in base_lengths.items()}
    utts = [f"spk{i % 8}_utt{i:05d}" for i in range(num_utts)]
    for split, chosen in (("train", utts[:num_train]), ("dev", utts[num_train:])):
        split_dir = os.path.join(root, "data", split)
        write_data_dir(split_dir, {"utt2spk": {u: u.split("_")[0] for u in chosen},
                                   "utt2emo": {u: CLASSES[i % 4] for i, u in enumerate(chosen)}})
        with open(os.path.join(split_dir, "classes.txt"), "w") as f:
            f.writelines(c + "\n" for c in CLASSES)
    scps = {}
    for stream, (layers, dim) in STREAMS.items():
        for storage in ("float16", "kaldi_compressed"):
            out = os.path.join(root, "dump", f"{stream}_{storage}")
            os.makedirs(out)
            writer = JobArkWriter(out, 1, storage)
            feats_rng = np.random.default_rng(seed)
            rows_of = dict(zip(utts, lengths[stream]))
            for utt in sorted(utts):
                writer.write(utt, random_feats(feats_rng, int(rows_of[utt]), layers, dim))
            writer.commit({})
            os.rename(os.path.join(out, "feats.1.scp"), os.path.join(out, "feats.scp"))
            os.rename(os.path.join(out, "utt2num_frames.1"), os.path.join(out, "utt2num_frames"))
            with open(os.path.join(out, "feat_conf.yaml"), "w") as f:
                yaml.safe_dump({"modality": stream, "dim": dim, "num_layers": layers,
                                "storage": storage, "frame_rate": 50 if stream == "audio"
                                else None}, f)
            scps[stream, storage] = os.path.join(out, "feats.scp")
    return scps


def tree_pss(pid):
    """Sum of Pss (bytes) over ``pid`` and its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, stack = 0, [pid]
    while stack:
        current = stack.pop()
        stack += children.get(current, [])
        try:
            with open(f"/proc/{current}/smaps_rollup") as f:
                total += next(int(line.split()[1]) * 1024 for line in f
                              if line.startswith("Pss:"))
        except (OSError, StopIteration):
            pass
    return total


def peak_training_memory(root, scps, storage, cache, workers, epochs):
    exp = tempfile.mkdtemp(dir=root, prefix="exp")
    command = [sys.executable, "-m", "mser.bin.train", "--config", CONF,
               "--data-dir", os.path.join(root, "data"), "--exp-dir", exp,
               "--audio-feats", scps["audio", storage], "--text-feats", scps["text", storage],
               "--epochs", str(epochs), "--min-steps", "0", "--amp", "none",
               "--cache-feats", str(cache).lower(), "--num-workers", str(workers),
               "--cache-memory-gb", "1000", "--verbose", "0"]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONPATH": ROOT})
    peak = [0]

    def sample():
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_pss(proc.pid))
            time.sleep(0.1)
    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode:
        sys.exit(f"training failed ({' '.join(command)}):\n{err[-3000:]}")
    return peak[0]


def read_seconds_per_utt(root, scps, storage):
    """CPU seconds per utterance of the dataset + collate path, both streams, no cache, with one
    torch thread, as in a DataLoader worker."""
    torch.set_num_threads(1)
    dataset = EmotionDataset(os.path.join(root, "data", "train"),
                             {m: scps[m, storage] for m in STREAMS})
    start = time.process_time()
    for index in np.random.default_rng(0).permutation(len(dataset)):
        collate([dataset[int(index)]])
    return (time.process_time() - start) / len(dataset)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-utts", type=int, nargs=2, default=[64, 128],
                        help="training utterances of the two runs (dev: a quarter more)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    small, large = args.num_utts
    if large % small:
        parser.error("--num-utts: the second count must be a multiple of the first")
    base_lengths = utterance_lengths(small + small // 4, np.random.default_rng(args.seed))
    peaks, bounds, read = {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="bench_train_memory.") as tmp:
        for count in (small, large):
            root = os.path.join(tmp, str(count))
            scps = write_corpus(root, count, base_lengths, args.seed)
            for name, storage, cache, workers in SETTINGS:
                peaks[name, count] = peak_training_memory(root, scps, storage, cache, workers,
                                                          args.epochs)
                feats = {m: scps[m, storage] for m in STREAMS}
                bounds[name, count] = sum(EmotionDataset(os.path.join(root, "data", s), feats)
                                          .feature_bytes() for s in ("train", "dev")) * \
                    max(1, workers) if cache else 0
                print(f"{count} utts, {name}: peak {peaks[name, count] / 1e6:.0f} MB", flush=True)
            if count == large:
                read = {s: read_seconds_per_utt(root, scps, s) for s in ("float16",
                                                                          "kaldi_compressed")}
    print(f"\nCommand: {' '.join([os.path.basename(sys.executable), *sys.argv])}; "
          f"{args.epochs} epochs of egs/iemocap/conf/train.yaml on CPU; longest utterance "
          f"{base_lengths['audio'].max() / 50:.1f} s\n")
    print(f"| setting | peak MB, {small} / {large} train utts | MB per 1000 utts (fit) | "
          f"projected GB: IEMOCAP ({IEMOCAP_UTTS}) / 10x | cache bound GB: IEMOCAP / 10x |")
    print("|---|---:|---:|---:|---:|")
    for name, *_ in SETTINGS:
        slope = (peaks[name, large] - peaks[name, small]) / (large - small)
        base = peaks[name, small] - slope * small
        bound = bounds[name, large] / large
        projected = [(base + slope * n) / 1e9 for n in (IEMOCAP_UTTS, 10 * IEMOCAP_UTTS)]
        print(f"| {name} | {peaks[name, small] / 1e6:.0f} / {peaks[name, large] / 1e6:.0f} | "
              f"{slope * 1000 / 1e6:.0f} | {projected[0]:.1f} / {projected[1]:.1f} | "
              + (f"{bound * IEMOCAP_UTTS / 1e9:.1f} / {bound * 10 * IEMOCAP_UTTS / 1e9:.1f} |"
                 if bound else "- |"))
    print("\n| storage | read utt/CPU-s (audio + text, dataset + collate) | CPU min per epoch: "
          "IEMOCAP / 10x |")
    print("|---|---:|---:|")
    for storage, seconds in read.items():
        print(f"| {storage} | {1 / seconds:.0f} | {seconds * IEMOCAP_UTTS / 60:.1f} / "
              f"{seconds * 10 * IEMOCAP_UTTS / 60:.1f} |")


if __name__ == "__main__":
    main()
