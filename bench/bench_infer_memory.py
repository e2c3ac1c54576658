"""Peak memory of mser-infer against the duration of one recording (CPU).

    tools/venv/bin/python bench/bench_infer_memory.py [--durations 10 60 150 300 600]
        [--reference-max 300] [--no-pitch]

The demo recipe's pipeline (egs/synth_iemocap: fbank + energy + pitch, the packaged MiniLM, the
default model of conf/train.yaml, random weights: memory does not depend on them), one
recording of noise with a transcript, ``--attention-plot`` included. Every duration runs in a
fresh process; "over 1 s" is its peak RSS minus the peak after recognising (and plotting) a
1 s recording in the same process, i.e. what the long recording itself costs. The reference
column runs the encoders through nn.TransformerEncoderLayer's own inference path (what mser
did before: it stores the T x T attention weights), up to --reference-max seconds.
``--no-pitch`` drops the 3 Kaldi pitch columns (Kaldi's pitch tracker keeps state for every
frame of the recording). Prints a markdown table.
"""
import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEXT = "I can't believe you did that, after everything we said"


def peak_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_model_dir(path, pitch):
    import torch
    import yaml

    from mser.features import build_extractor, derived_info
    from mser.nets import MODEL_DEFAULTS, build_model, feat_infos

    def info(conf):
        extractor = build_extractor(conf)
        return {**extractor.conf, **derived_info(extractor)}

    with open(os.path.join(ROOT, "egs", "synth_iemocap", "conf", "feats", "fbank.yaml")) as f:
        audio_conf = {**yaml.safe_load(f), "use_pitch": pitch}
    config = {"model_conf": dict(MODEL_DEFAULTS), "classes": ["neu", "hap", "ang", "sad"],
              "audio_info": info(audio_conf), "text_info": info({"extractor": "hf_text"})}
    torch.manual_seed(0)
    model = build_model(config["model_conf"], feat_infos(config), 4)
    torch.save({"model": model.state_dict(), "epoch": 1}, os.path.join(path, "best.pt"))
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f)


def use_module_attention():
    """The encoders as before: nn.TransformerEncoderLayer's forward in eval mode too."""
    from mser.nets.frontend import UnimodalEncoder

    def forward(self, x, pad_mask):
        for layer in self.layers:
            x = layer(x, src_key_padding_mask=pad_mask)
        return self.norm(x)
    UnimodalEncoder.forward = forward


def child(model_dir, seconds, reference):
    import torch

    from mser.inference import EmotionRecognizer, plot_query_attention

    if reference:
        use_module_attention()
    recognizer = EmotionRecognizer(model_dir)
    noise = np.random.default_rng(0).uniform(-0.1, 0.1, int(seconds * 16000)).astype(np.float32)
    plot = os.path.join(model_dir, "attention.png")
    plot_query_attention(recognizer.predict(noise[:16000], 16000, TEXT, True), plot)
    before = peak_mb()
    start = time.time()
    prediction = recognizer.predict(noise, 16000, TEXT, return_attention=True)
    plot_query_attention(prediction, plot)
    print(peak_mb(), peak_mb() - before, time.time() - start, prediction.audio_frames,
          torch.get_num_threads())


def measure(model_dir, seconds, reference):
    command = [sys.executable, __file__, "--child", model_dir, str(seconds)]
    out = subprocess.run(command + (["--reference"] if reference else []), capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT})
    peak, over, wall, positions, threads = out.stdout.split()
    return float(peak), float(over), float(wall), int(positions), int(threads)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--durations", type=float, nargs="+", default=[10, 60, 150, 300, 600])
    parser.add_argument("--reference-max", type=float, default=300,
                        help="longest duration run with the old attention (600 s: ~7.7 GB)")
    parser.add_argument("--no-pitch", action="store_true", help="fbank + energy only")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--reference", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], float(args.child[1]), args.reference)
    with tempfile.TemporaryDirectory() as model_dir:
        make_model_dir(model_dir, pitch=not args.no_pitch)
        rows = []
        for seconds in args.durations:
            peak, over, wall, positions, threads = measure(model_dir, seconds, False)
            reference = (f"{measure(model_dir, seconds, True)[1]:.0f}"
                         if seconds <= args.reference_max else "not run")
            rows.append(f"| {seconds:.0f} | {positions} | {peak:.0f} | {over:.0f} | {wall:.1f} | "
                        f"{reference} |")
    print(f"Command: {' '.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}  "
          f"({threads} torch threads)\n")
    print("| seconds | audio positions (after 4x subsampling) | peak RSS MB | over 1 s MB | "
          "wall s | over 1 s MB, module attention (before) |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
