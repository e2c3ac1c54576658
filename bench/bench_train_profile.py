"""Where one fold's training time goes: ``mser.bin.train`` on a fold of a recipe's dumped
features for a few epochs, then the trainer's sections (reading and collating, forward,
backward, optimiser, dev evaluation, checkpoints, logging, checksums, plots, normalisation
statistics) from the run's ``.done``, with utterances per second of the training steps.

    tools/venv/bin/python bench/bench_train_profile.py [--recipe egs/ravdess] [--fold 1] \\
        [--epochs 5] [--threads 1] [--train-config conf/train.yaml] [--audio-feat whisper_base]
    tools/venv/bin/python bench/bench_train_profile.py --recipe egs/synth_iemocap \\
        --audio-feat whisper_tiny_utterance   # the demo, after its ./run.sh --stop_stage 2

Runs in the recipe dir (stages 0-2 done), writes bench/out/profile_<recipe>_fold<k>/.
Prints a markdown table.
"""
import argparse
import os
import shutil
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
STEP_SECTIONS = ("data", "forward", "backward", "optimiser", "logging")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="egs/ravdess")
    parser.add_argument("--fold", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of the run")
    parser.add_argument("--train-config", default="conf/train.yaml")
    parser.add_argument("--audio-feat", default="whisper_base")
    parser.add_argument("--text-feat", default="minilm")
    args = parser.parse_args()
    recipe = os.path.join(ROOT, args.recipe)
    feats = {m: f"dump/{name}/feats.scp"
             for m, name in (("audio", args.audio_feat), ("text", args.text_feat))}
    missing = [scp for scp in feats.values() if not os.path.exists(os.path.join(recipe, scp))]
    if missing:
        sys.exit(f"{recipe}: {', '.join(missing)} not found; run the recipe's stages 0-2 first")
    exp = os.path.join(ROOT, "bench", "out",
                       f"profile_{os.path.basename(recipe)}_fold{args.fold}")
    shutil.rmtree(exp, ignore_errors=True)
    command = [sys.executable, "-m", "mser.bin.train", "--config", args.train_config,
               "--data-dir", f"data/fold{args.fold}", "--audio-feats", feats["audio"],
               "--text-feats", feats["text"], "--exp-dir", exp, "--epochs", str(args.epochs),
               "--patience", "0", "--min-steps", "0", "--verbose", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ROOT}
    subprocess.run(command, cwd=recipe, env=env, check=True)
    with open(os.path.join(exp, ".done"), encoding="utf-8") as f:
        seconds = yaml.safe_load(f)["seconds"]
    with open(os.path.join(exp, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    train_utts = sum(1 for _ in open(os.path.join(recipe, f"data/fold{args.fold}/train/utt2spk"),
                                     encoding="utf-8"))
    total = sum(seconds.values())
    steps = sum(seconds.get(s, 0.0) for s in STEP_SECTIONS)
    model = config["model_conf"]
    print(f"\n{args.recipe} fold {args.fold}, {args.train_config} ({model['fusion']} fusion, "
          f"streams {'+'.join(model['streams'])}), {args.epochs} epochs, {train_utts} training "
          f"utterances, {args.threads} thread(s)\n")
    print("| section | s | % | s per epoch |")
    print("|---|---:|---:|---:|")
    for section, value in sorted(seconds.items(), key=lambda item: -item[1]):
        print(f"| {section} | {value:.2f} | {100 * value / total:.0f} | "
              f"{value / args.epochs:.2f} |")
    print(f"| total | {total:.2f} | 100 | {total / args.epochs:.2f} |")
    print(f"\ntraining steps ({' + '.join(STEP_SECTIONS)}): "
          f"{train_utts * args.epochs / steps:.1f} utterances/s per process")


if __name__ == "__main__":
    main()
