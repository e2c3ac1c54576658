"""Reading dumped features: CPU time and disk size per storage option, header-only shape checks.

    tools/venv/bin/python bench/bench_data_path.py [--num-utts 300] [--repeats 3] [--seed 0]

Writes random features of IEMOCAP's real shapes with mser's own writer (JobArkWriter), once per
storage option (mser/io/storage.py):

- audio: HuBERT-large, 5 layers x 1024 at 50 frames/s, utterance durations log-normal with
         IEMOCAP's ~4.5 s mean (clipped to 0.6-35 s);
- text:  MPNet, 4 layers x 768, one row per token, ~20 tokens per utterance (Poisson).

Then reads every utterance in a shuffled order, as training does, through kaldiio's reader
(``np.asarray(kaldiio.load_scp(scp)[utt], dtype=float32)``), through ``open_feats`` (float32)
and as the dataset does (``open_feats(scp, dtype=None)``, cast by torch in ``collate``); --repeats
passes, the median CPU time (process time; the arks are in the page cache, so this is the CPU
cost of reading, not the disk). It also times the merge's shape check: ``read_shapes`` (headers
only) vs reading every matrix. Projections: the CPU time of one epoch's reading (audio + text)
for IEMOCAP's 4-class set (5531 utterances, ~7 h) and 10x that. Prints markdown tables.
"""
import argparse
import os
import shutil
import statistics
import tempfile
import time

import kaldiio
import numpy as np
import torch

from mser.io.storage import STORAGES, JobArkWriter, open_feats, read_shapes

IEMOCAP_UTTS = 5531  # the 4-class set (neutral, happy+excited, angry, sad), ~7 h
STREAMS = {"audio": (5, 1024), "text": (4, 768)}  # (layers, dim): HuBERT-large, MPNet
BASELINE = "kaldi_compressed"


def utterance_lengths(num_utts, rng):
    """(frames at 50/s, tokens) per utterance."""
    seconds = np.clip(rng.lognormal(np.log(4.5) - 0.65 ** 2 / 2, 0.65, num_utts), 0.6, 35.0)
    return {"audio": np.round(seconds * 50).astype(int),
            "text": np.maximum(3, rng.poisson(20, num_utts))}


def random_feats(rng, rows, layers, dim):
    """Hidden-state-like values: per-column offsets and scales, a few large columns."""
    scale = rng.lognormal(0, 0.7, layers * dim).astype(np.float32)
    offset = rng.normal(0, 0.3, layers * dim).astype(np.float32)
    return rng.standard_normal((rows, layers * dim), dtype=np.float32) * scale + offset


def write_dumps(root, lengths, seed):
    """One dump dir per (stream, storage); returns {(stream, storage): scp}, write CPU seconds."""
    scps, write_cpu = {}, {}
    for stream, (layers, dim) in STREAMS.items():
        writers = {}
        for storage in STORAGES:
            os.makedirs(os.path.join(root, stream, storage))
            writers[storage] = JobArkWriter(os.path.join(root, stream, storage), 1, storage)
        rng = np.random.default_rng(seed)
        for i, rows in enumerate(lengths[stream]):
            feats = random_feats(rng, int(rows), layers, dim)
            for storage, writer in writers.items():
                start = time.process_time()
                writer.write(f"spk{i % 10}_{i:05d}", feats)
                write_cpu[stream, storage] = write_cpu.get((stream, storage), 0.0) + \
                    time.process_time() - start
        for storage, writer in writers.items():
            writer.commit({})
            scps[stream, storage] = writer.paths["scp"]
    return scps, write_cpu


def cpu_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def read_all_kaldiio(scp, order):
    reader = kaldiio.load_scp(scp)
    for utt in order:
        np.asarray(reader[utt], dtype=np.float32)


def read_all_open_feats(scp, order):
    reader = open_feats(scp)
    for utt in order:
        reader[utt]  # noqa: B018 (the read is what is timed)


def read_all_stored_then_torch(scp, order):
    reader = open_feats(scp, dtype=None)
    for utt in order:
        torch.from_numpy(reader[utt]).float()


# The dataset's path today; mser's reader; mser's reader as stored + the cast in torch.
READERS = {"kaldiio": read_all_kaldiio, "open_feats": read_all_open_feats,
           "stored+torch": read_all_stored_then_torch}


def shapes_by_reading(scp):
    reader = open_feats(scp)
    return {utt: reader[utt].shape for utt in reader}


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-utts", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the cast is elementwise; a DataLoader worker has one thread
    rng = np.random.default_rng(args.seed)
    lengths = utterance_lengths(args.num_utts, rng)
    root = tempfile.mkdtemp(prefix="bench_data_path_")
    try:
        scps, write_cpu = write_dumps(root, lengths, args.seed)
        utts = list(open_feats(scps["audio", BASELINE]))
        order = [utts[i] for i in rng.permutation(len(utts))]
        size, read_cpu = {}, {}
        for (stream, storage), scp in scps.items():
            size[stream, storage] = os.path.getsize(scp.replace(".scp", ".ark"))
            for reader, fn in READERS.items():
                read_cpu[stream, storage, reader] = cpu_seconds(lambda: fn(scp, order),
                                                                args.repeats)
            assert read_shapes(scp) == shapes_by_reading(scp)
        check_cpu = {(storage, how): cpu_seconds(lambda: fn(scps["audio", storage]), args.repeats)
                     for storage in STORAGES
                     for how, fn in (("headers", read_shapes), ("reading", shapes_by_reading))}
    finally:
        shutil.rmtree(root)

    n = args.num_utts
    print(f"{n} utterances, {lengths['audio'].sum() / 50 / 3600:.2f} h "
          f"(mean {lengths['audio'].mean() / 50:.2f} s, {lengths['text'].mean():.1f} tokens); "
          f"median CPU time of {args.repeats} shuffled passes\n")
    print("Read utt/CPU-s: kaldiio = np.asarray(kaldiio.load_scp(scp)[utt], float32), "
          "open_feats = mser's reader (float32), stored+torch = open_feats(scp, dtype=None) "
          "then torch .float() (the dataset's path: collate casts); speed-up: of stored+torch "
          "over kaldi_compressed's\n")
    print("| storage | stream | MB on disk | size vs compressed | write utt/CPU-s | "
          "kaldiio | open_feats | stored+torch | speed-up (stored+torch) |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for storage in STORAGES:
        for stream in STREAMS:
            rates = " | ".join(f"{n / read_cpu[stream, storage, r]:.0f}" for r in READERS)
            speed_up = (read_cpu[stream, BASELINE, "stored+torch"]
                        / read_cpu[stream, storage, "stored+torch"])
            print(f"| {storage} | {stream} | {size[stream, storage] / 1e6:.1f} | "
                  f"{size[stream, storage] / size[stream, BASELINE]:.2f}x | "
                  f"{n / write_cpu[stream, storage]:.0f} | {rates} | {speed_up:.1f}x |")
    print("\nProjected CPU time of one epoch's reading (audio + text; stored+torch, the "
          "dataset's path) and disk size (audio + text):\n")
    print("| storage | IEMOCAP (5531 utt) read | IEMOCAP GB | 10x read | 10x GB |")
    print("|---|---:|---:|---:|---:|")
    for storage in STORAGES:
        per_utt = sum(read_cpu[stream, storage, "stored+torch"] for stream in STREAMS) / n
        gb = sum(size[stream, storage] for stream in STREAMS) / n * IEMOCAP_UTTS / 1e9
        print(f"| {storage} | {per_utt * IEMOCAP_UTTS / 60:.1f} min | {gb:.1f} | "
              f"{per_utt * IEMOCAP_UTTS * 10 / 60:.1f} min | {gb * 10:.0f} |")
    print("\nMerge shape check (audio), CPU time: matrix headers (read_shapes) vs reading every "
          "matrix:\n")
    print("| storage | headers ms/utt | reading ms/utt | 10x IEMOCAP headers | 10x reading |")
    print("|---|---:|---:|---:|---:|")
    for storage in STORAGES:
        headers, reading = check_cpu[storage, "headers"] / n, check_cpu[storage, "reading"] / n
        print(f"| {storage} | {headers * 1e3:.3f} | {reading * 1e3:.1f} | "
              f"{headers * IEMOCAP_UTTS * 10:.1f} s | {reading * IEMOCAP_UTTS * 10 / 60:.1f} min |")


if __name__ == "__main__":
    main()
