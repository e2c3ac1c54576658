"""How much faster can hf_ssl get on this CPU? The limits behind bench_feats.py's SSL rows.

    tools/venv/bin/python bench/bench_ssl_ceiling.py [--num-utts 40] [--seed 0]

On the same tiny random wav2vec2 as bench_feats.py and random 1-8 s utterances, prints:

- the sgemm ceiling: GFLOP/s of a 2048^3 fp32 matmul with torch's default threads;
- the CNN front end (mser's ChannelsLastFeatureEncoder vs the model's own): wall time and the
  GFLOP/s of its convolutions' multiply-adds, to compare with that ceiling;
- the whole model (output_hidden_states) eager vs with the transformer encoder under
  torch.compile(dynamic=True): compile time (first call), steady-state time over all utterances
  (second pass) and the largest difference from eager.

Wall times are the median of 3 passes.
"""
import argparse
import statistics
import tempfile
import time

import numpy as np
import torch

from bench_feats import make_model


def median_seconds(fn, passes=3):
    times = []
    for _ in range(passes):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sgemm_gflops(size=2048):
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    return 2 * size ** 3 / median_seconds(lambda: a @ b, passes=5) / 1e9


def front_end_gflop(encoder, num_samples):
    """Multiply-adds (x2) of the front end's convolutions for one utterance."""
    flop = 0
    for layer in encoder.conv_layers:
        conv = layer.conv
        num_samples = (num_samples - conv.kernel_size[0]) // conv.stride[0] + 1
        flop += 2 * num_samples * conv.kernel_size[0] * conv.in_channels * conv.out_channels
    return flop / 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-utts", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from transformers import AutoModel

    from mser.features.hf_ssl import ChannelsLastFeatureEncoder

    rng = np.random.default_rng(args.seed)
    waves = [torch.from_numpy((0.1 * rng.standard_normal(int(s * 16000))).astype(np.float32))[None]
             for s in rng.uniform(1, 8, args.num_utts)]
    audio_seconds = sum(w.shape[1] for w in waves) / 16000
    with tempfile.TemporaryDirectory() as model_dir:
        make_model(model_dir)
        model = AutoModel.from_pretrained(model_dir).eval()
    print(f"# {args.num_utts} utterances, {audio_seconds:.0f} s of audio, torch "
          f"{torch.__version__} with {torch.get_num_threads()} threads\n")
    print(f"sgemm ceiling (2048^3 fp32): {sgemm_gflops():.0f} GFLOP/s")

    original = model.feature_extractor
    gflop = sum(front_end_gflop(original, w.shape[1]) for w in waves)
    with torch.inference_mode():
        for name, encoder in (("model's own", original),
                              ("mser ChannelsLastFeatureEncoder", ChannelsLastFeatureEncoder(original))):
            seconds = median_seconds(lambda: [encoder(w) for w in waves])
            print(f"CNN front end, {name}: {seconds:.2f} s, {gflop / seconds:.0f} GFLOP/s of "
                  f"convolution ({gflop:.0f} GFLOP)")

        def run_model():
            return [model(w, output_hidden_states=True).hidden_states[-1] for w in waves]

        eager_out = run_model()
        eager = median_seconds(run_model)
        model.encoder = torch.compile(model.encoder, dynamic=True)
        start = time.perf_counter()
        model(waves[0])
        compile_seconds = time.perf_counter() - start
        run_model()  # shapes not seen by the first call
        compiled = median_seconds(run_model)
        diff = max((a - b).abs().max().item() for a, b in zip(run_model(), eager_out))
    print(f"whole model, eager: {eager:.2f} s ({audio_seconds / eager:.0f} audio s / wall s)")
    print(f"whole model, encoder under torch.compile: first call {compile_seconds:.1f} s, then "
          f"{compiled:.2f} s ({eager / compiled:.2f}x eager), max |difference| {diff:.1e}")


if __name__ == "__main__":
    main()
