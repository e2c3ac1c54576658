"""Learning curve of a recipe: the default model and its linear probe trained on 10, 25, 50 and
100 % of each fold's training clips, on the same features, folds, dev and test sets.

    tools/venv/bin/python bench/learning_curve.py --recipe egs/ravdess \\
        [--fractions 0.1 0.25 0.5] [--configs conf/train.yaml conf/tuning/probe.yaml] \\
        [--run-opts "--nj 2"]

Needs the recipe's stages 0-2 done (data/, dump/). For a fraction p < 1 the script makes
``<recipe>/learning_curve/frac<p>/``, a recipe dir whose scripts, configs, dumps and fold dev and
test sets are links to the recipe's and whose ``data/fold<k>/train`` keeps p of each class's
training clips (at least one per class; a fixed random draw, the same for every config), and runs
its stages 3-5 (``./run.sh --stage 3 --train_config C``; a finished tag is not retrained). 100 %
is the recipe's own exp/. Prints per fraction and config the training clips, UA (mean ± std over
folds) and pooled UA, and the paired bootstrap of the model against the probe over the pooled
test utterances (mser.bin.compare); draws ``<recipe>/learning_curve.png``. The fraction dirs
(``learning_curve/``, git-ignored) keep their exp/ for re-runs.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

LINKED = ("conf", "dump", "local", "path.sh", "cmd.sh", "ser.sh", "utils", "db.sh", "run.sh")


def subset_train(source, target, fraction, seed=0):
    """``target``: the data dir ``source`` with ``fraction`` of each class's utterances."""
    from mser.io.datadir import read_data_dir, read_table, write_data_dir

    utt2emo = read_table(os.path.join(source, "utt2emo"))
    rng = np.random.default_rng(seed)
    keep = set()
    for label in sorted(set(utt2emo.values())):
        utts = sorted(u for u, e in utt2emo.items() if e == label)
        count = max(1, round(fraction * len(utts)))
        keep.update(rng.choice(utts, count, replace=False).tolist())
    tables = read_data_dir(source)
    write_data_dir(target, {name: {u: v for u, v in table.items() if u in keep}
                            for name, table in tables.items()})
    shutil.copyfile(os.path.join(source, "classes.txt"), os.path.join(target, "classes.txt"))
    return len(keep)


def make_fraction_recipe(recipe, fraction):
    """``<recipe>/learning_curve/frac<p>``: links to the recipe, a subset of each fold's train."""
    work = os.path.join(recipe, "learning_curve", f"frac{round(100 * fraction)}")
    os.makedirs(os.path.join(work, "data"), exist_ok=True)
    for name in LINKED:
        link = os.path.join(work, name)
        if not os.path.lexists(link):
            os.symlink(os.path.relpath(os.path.join(recipe, name), work), link)
    data, sizes = os.path.join(recipe, "data"), {}
    for name in sorted(os.listdir(data)):
        source, target = os.path.join(data, name), os.path.join(work, "data", name)
        if not name.startswith("fold"):
            if not os.path.lexists(target):
                os.symlink(os.path.relpath(source, os.path.dirname(target)), target)
            continue
        os.makedirs(target, exist_ok=True)
        for subset in os.listdir(source):
            if subset == "train":
                sizes[name] = subset_train(os.path.join(source, subset),
                                           os.path.join(target, subset), fraction)
            elif not os.path.lexists(os.path.join(target, subset)):
                os.symlink(os.path.relpath(os.path.join(source, subset), target),
                           os.path.join(target, subset))
    return work, sizes


def scores(exp):
    with open(os.path.join(exp, "scores.json")) as f:
        s = json.load(f)
    return s["mean"]["ua"], s["std"]["ua"], s["pooled"]["ua"]


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", required=True)
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.1, 0.25, 0.5])
    parser.add_argument("--configs", nargs=2, default=["conf/train.yaml", "conf/tuning/probe.yaml"],
                        metavar=("MODEL", "PROBE"))
    parser.add_argument("--tags", nargs=2, required=True, metavar=("MODEL_TAG", "PROBE_TAG"),
                        help="the tags these configs train (exp/<tag> of the recipe)")
    parser.add_argument("--run-opts", default="--nj 2", help="options of every ./run.sh")
    args = parser.parse_args()
    recipe = os.path.abspath(args.recipe)
    rows, curve = [], {tag: [] for tag in args.tags}
    for fraction in sorted(args.fractions) + [1.0]:
        if fraction < 1:
            work, sizes = make_fraction_recipe(recipe, fraction)
            for config, tag in zip(args.configs, args.tags):
                if not os.path.exists(os.path.join(work, "exp", tag, "scores.json")):
                    print(f"training {tag} on {100 * fraction:g} % ...", file=sys.stderr)
                    subprocess.run(["./run.sh", *args.run_opts.split(), "--stage", "3",
                                    "--train_config", config], cwd=work, check=True,
                                   stdout=subprocess.DEVNULL)
        else:
            work = recipe
            sizes = {f: len(open(os.path.join(recipe, "data", f, "train", "utt2emo")).readlines())
                     for f in os.listdir(os.path.join(recipe, "data")) if f.startswith("fold")}
        folds = " ".join(sorted((f[4:] for f in sizes), key=int))
        model, probe = (os.path.join(work, "exp", tag) for tag in args.tags)
        compare = subprocess.run([sys.executable, "-m", "mser.bin.compare", model, probe,
                                  "--folds", folds], capture_output=True, text=True, check=True)
        result = json.loads(compare.stdout[:compare.stdout.rindex("}") + 1])
        for tag, exp in zip(args.tags, (model, probe)):
            curve[tag].append((fraction, *scores(exp)))
        rows.append((fraction, int(np.mean(list(sizes.values()))), scores(model), scores(probe),
                     result))
    print(f"Command: bench/learning_curve.py {' '.join(sys.argv[1:])}\n")
    print(f"| training clips | per fold (mean) | {args.tags[0]} UA | pooled | {args.tags[1]} UA "
          f"| pooled | model - probe, pooled [95% CI] | p (bootstrap) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for fraction, size, m, p, r in rows:
        print(f"| {100 * fraction:g} % | {size} | {100 * m[0]:.2f} ± {100 * m[1]:.2f} | "
              f"{100 * m[2]:.2f} | {100 * p[0]:.2f} ± {100 * p[1]:.2f} | {100 * p[2]:.2f} | "
              f"{100 * r['diff']:+.2f} [{100 * r['diff_95ci'][0]:+.2f}, "
              f"{100 * r['diff_95ci'][1]:+.2f}] | {r['p_bootstrap']:.3g} |")
    plot(curve, [r[1] for r in rows], os.path.join(recipe, "learning_curve.png"),
         os.path.basename(recipe))


def plot(curve, sizes, path, name):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for tag, points in curve.items():
        points = np.array(points)
        ax.errorbar(sizes, 100 * points[:, 1], yerr=100 * points[:, 2], marker="o", capsize=3,
                    label=f"{tag} (fold mean ± std)")
        ax.plot(sizes, 100 * points[:, 3], linestyle="--", marker="x", label=f"{tag} pooled")
    ax.set_xscale("log")
    ax.set_xlabel("training clips per fold")
    ax.set_ylabel("UA %")
    ax.set_title(f"{name}: learning curve")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"\nplot: {path}")


if __name__ == "__main__":
    main()
