"""Feature-extraction throughput and peak memory: mser's dump jobs vs the usual per-utterance loop.

    tools/venv/bin/python bench/bench_feats.py [--num-utts 160] [--repeats 3] [--seed 0]

Generates random-length (1-8 s) 16 kHz wavs and a tiny random wav2vec2 (built from a config,
nothing downloaded), then runs each method in its own subprocess on the same utterances:

- naive SSL:   per utterance, HF feature extractor + model(output_hidden_states=True) under
               torch.no_grad, np.save of the last layer;
- mser SSL:    mser.features.dump.run_job + merge (inference_mode, one ark, shapes read back),
               with the CPU default (one utterance per forward), with length-sorted batches of
               60 s, with a middle layer (the layers above it are not run), and as 2 jobs of 1
               thread each, as utils/dump_feats.sh --nj 2 runs it on 2 cores (the jobs' process
               start-up, imports and model load are inside its wall time);
- naive fbank: per utterance, kaldi-native-fbank + np.save;
- mser fbank:  run_job + merge with the fbank extractor.

Wall time covers processing; the mser rows also include the job's own model load, the naive rows
do not (conservative for mser). Peak memory is the maximum RSS of the largest process (for the
2-job row: of one job). Each method runs --repeats times, in interleaved rounds so that a slow
spell of the machine hits every method; the table gives the median wall time, the speed-up of the
medians and the range of the per-round speed-ups. Prints a markdown table.
"""
import argparse
import json
import multiprocessing
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

SSL_LAYER = 4  # the last of the tiny model's 4 layers, so no layers can be dropped


def make_corpus(root, num_utts, seed):
    import soundfile

    rng = np.random.default_rng(seed)
    data, wavs = os.path.join(root, "data"), os.path.join(root, "wavs")
    os.makedirs(data)
    os.makedirs(wavs)
    total = 0.0
    with open(os.path.join(data, "wav.scp"), "w") as scp, open(os.path.join(data, "utt2spk"), "w") as spk:
        for i in range(num_utts):
            seconds = rng.uniform(1, 8)
            total += seconds
            path = os.path.join(wavs, f"spk{i % 4}_{i:03d}.wav")
            soundfile.write(path, (0.1 * rng.standard_normal(int(seconds * 16000))).astype(np.float32),
                            16000, subtype="PCM_16")
            scp.write(f"spk{i % 4}_{i:03d} {path}\n")
            spk.write(f"spk{i % 4}_{i:03d} spk{i % 4}\n")
    # wav.scp must be sorted by utterance id (C order)
    for name in ("wav.scp", "utt2spk"):
        path = os.path.join(data, name)
        lines = sorted(open(path).readlines())
        open(path, "w").writelines(lines)
    return data, total


def make_model(path):
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                            intermediate_size=1024, conv_dim=(256,) * 7, feat_extract_norm="layer",
                            do_stable_layer_norm=True)
    Wav2Vec2Model(config).save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=True).save_pretrained(path)


def naive_ssl(data, model_dir, out):
    import soundfile
    import torch
    from transformers import AutoFeatureExtractor, AutoModel

    fe, model = AutoFeatureExtractor.from_pretrained(model_dir), AutoModel.from_pretrained(model_dir).eval()
    start = time.perf_counter()
    for line in open(os.path.join(data, "wav.scp")):
        utt, path = line.split()
        wave, rate = soundfile.read(path, dtype="float32")
        inputs = fe(wave, sampling_rate=rate, return_tensors="pt")
        with torch.no_grad():
            hidden = model(**inputs, output_hidden_states=True).hidden_states[SSL_LAYER]
        np.save(os.path.join(out, utt + ".npy"), hidden[0].numpy())
    return time.perf_counter() - start


def naive_fbank(data, model_dir, out):
    import kaldi_native_fbank as knf
    import soundfile

    opts = knf.FbankOptions()
    opts.frame_opts.dither = 0
    opts.mel_opts.num_bins = 80
    start = time.perf_counter()
    for line in open(os.path.join(data, "wav.scp")):
        utt, path = line.split()
        wave, rate = soundfile.read(path, dtype="float32")
        fbank = knf.OnlineFbank(opts)
        fbank.accept_waveform(rate, wave * 32768)
        fbank.input_finished()
        feats = np.array([fbank.get_frame(i) for i in range(fbank.num_frames_ready)])
        np.save(os.path.join(out, utt + ".npy"), feats)
    return time.perf_counter() - start


def mser_dump(conf):
    def run(data, model_dir, out):
        from mser.features import build_extractor, resolve_config
        from mser.features import dump

        overrides = {"model_dir": model_dir} if conf["extractor"] == "hf_ssl" else {}
        resolved = resolve_config({**conf, **overrides})
        build_extractor(resolved)  # warm-up (imports, file cache); run_job loads its own again
        start = time.perf_counter()
        dump.run_job(resolved, data, out, 1, 1)
        dump.merge(resolved, data, out, 1)
        return time.perf_counter() - start
    return run


def _one_thread_job(conf, data, out, nj, job):
    import torch

    from mser.features import dump

    torch.set_num_threads(1)
    dump.run_job(conf, data, out, nj, job)


def mser_dump_jobs(conf, nj):
    def run(data, model_dir, out):
        from mser.features import dump, resolve_config

        resolved = resolve_config({**conf, "model_dir": model_dir})
        start = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(nj) as pool:
            pool.starmap(_one_thread_job, [(resolved, data, out, nj, job) for job in range(1, nj + 1)])
        dump.merge(resolved, data, out, nj)
        return time.perf_counter() - start
    return run


# label -> (function, label of its baseline)
METHODS = {
    "naive SSL loop (layer 4)": (naive_ssl, None),
    "mser hf_ssl, CPU default (one utterance per forward)": (
        mser_dump({"extractor": "hf_ssl", "layers": SSL_LAYER}), "naive SSL loop (layer 4)"),
    "mser hf_ssl, batch_seconds: 60": (
        mser_dump({"extractor": "hf_ssl", "layers": SSL_LAYER, "batch_seconds": 60}),
        "naive SSL loop (layer 4)"),
    "mser hf_ssl, layer 2 (layers 3-4 dropped)": (
        mser_dump({"extractor": "hf_ssl", "layers": 2}), "naive SSL loop (layer 4)"),
    "mser hf_ssl, 2 jobs x 1 thread (dump_feats.sh --nj 2)": (
        mser_dump_jobs({"extractor": "hf_ssl", "layers": SSL_LAYER}, 2), "naive SSL loop (layer 4)"),
    "naive fbank loop": (naive_fbank, None),
    "mser fbank": (mser_dump({"extractor": "fbank"}), "naive fbank loop"),
}


def worker(method, data, model_dir, out):
    import logging

    logging.disable(logging.WARNING)
    os.makedirs(out)
    seconds = METHODS[method][0](data, model_dir, out)
    peak_mb = max(resource.getrusage(who).ru_maxrss
                  for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)) / 1024
    print(json.dumps({"wall": seconds, "peak_mb": peak_mb}))


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-utts", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(args.worker, args.data, args.model, args.out)

    import torch

    with tempfile.TemporaryDirectory() as root:
        data, audio_seconds = make_corpus(root, args.num_utts, args.seed)
        model_dir = os.path.join(root, "model")
        make_model(model_dir)
        walls, peaks = {m: [] for m in METHODS}, {m: 0.0 for m in METHODS}
        for round_ in range(args.repeats):
            for i, method in enumerate(METHODS):
                out = os.path.join(root, f"out{round_}_{i}")
                run = subprocess.run([sys.executable, __file__, "--worker", method, "--data", data,
                                      "--model", model_dir, "--out", out],
                                     capture_output=True, text=True, check=True)
                result = json.loads(run.stdout.strip().splitlines()[-1])
                walls[method].append(result["wall"])
                peaks[method] = max(peaks[method], result["peak_mb"])
                shutil.rmtree(out)
    print(f"# {args.num_utts} utterances, {audio_seconds:.0f} s of audio, {os.cpu_count()} CPU "
          f"core(s), torch {torch.__version__} with {torch.get_num_threads()} threads; tiny random "
          f"wav2vec2: hidden 256, 4 layers, conv dim 256, layer {SSL_LAYER}; {args.repeats} "
          f"interleaved round(s)\n")
    print("| method | median wall s | audio s / wall s | speed-up (range over rounds) | "
          "peak RSS MB |")
    print("|---|---:|---:|---:|---:|")
    for method, wall in walls.items():
        baseline = walls[METHODS[method][1] or method]
        per_round = [b / w for b, w in zip(baseline, wall)]
        median = statistics.median(wall)
        print(f"| {method} | {median:.1f} | {audio_seconds / median:.0f} | "
              f"{statistics.median(baseline) / median:.2f}x ({min(per_round):.2f}-"
              f"{max(per_round):.2f}) | {peaks[method]:.0f} |")
    print(f"\ncommand: {os.path.relpath(sys.executable)} {' '.join(sys.argv)}")


if __name__ == "__main__":
    main()
