"""Stage 3 (training) of a recipe at another commit and at the working tree, in the same run on
the same features and cores: wall time of each, and per fold the epochs run and seconds per
epoch.

    tools/venv/bin/python bench/bench_stage3.py --recipe egs/ravdess --base 903764b \\
        [--folds "1 2 3 4 5 6"] [--fold-jobs 2] [--train-config conf/train.yaml] [--order base,new] \\
        [--score]

The recipe's stages 0-2 must have run (data/, dump/). The base commit is checked out as a git
worktree under bench/out/ (its recipe dir gets links to this recipe's data/ and dump/, and runs
its own mser package from the worktree); each side trains exp/bench_<side> afresh in its recipe
dir, so nothing of a committed experiment is touched. Prints a markdown table; with --score
each side then decodes its test sets (stage 4, untimed) and the paired test of new against base
over the pooled test utterances is printed (``mser.bin.compare``).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EPOCH_LOG = re.compile(r"epoch (\d+)/\d+: .*, ([\d.]+) s \(")


def worktree(commit):
    """A checkout of ``commit`` under bench/out/ sharing this tree's tools/venv."""
    path = os.path.join(ROOT, "bench", "out", f"worktree-{commit}")
    if not os.path.isdir(path):
        subprocess.run(["git", "-C", ROOT, "worktree", "add", "--detach", path, commit],
                       check=True)
    venv = os.path.join(path, "tools", "venv")
    if not os.path.exists(venv):
        os.symlink(os.path.join(ROOT, "tools", "venv"), venv)
    return path


def recipe_dir(root, recipe, source):
    """``recipe`` in the tree at ``root``, with data/ and dump/ of ``source`` (the recipe dir
    here) when they are not its own."""
    path = os.path.join(root, recipe)
    for name in ("data", "dump"):
        target = os.path.join(path, name)
        if os.path.abspath(path) != os.path.abspath(source) and not os.path.exists(target):
            os.symlink(os.path.join(source, name), target)
    return path


def run_stage3(path, root, side, args):
    """Seconds of ``./run.sh --stage 3 --stop_stage 3`` in recipe dir ``path`` of tree ``root``;
    per fold (epochs, mean seconds per epoch)."""
    tag = f"bench_{side}"
    shutil.rmtree(os.path.join(path, "exp", tag), ignore_errors=True)
    command = ["./run.sh", "--stage", "3", "--stop_stage", "3", "--fold_jobs",
               str(args.fold_jobs), "--train_config", args.train_config, "--tag", tag]
    if args.folds:
        command += ["--folds", args.folds]
    env = {**os.environ, "PYTHONPATH": root}
    start = time.time()
    subprocess.run(command, cwd=path, env=env, check=True, stdout=subprocess.DEVNULL)
    seconds = time.time() - start
    folds = {}
    exp = os.path.join(path, "exp", tag)
    for name in sorted(os.listdir(exp)):
        log = os.path.join(exp, name, "train.log")
        if name.startswith("fold") and os.path.exists(log):
            with open(log, encoding="utf-8") as f:
                epochs = [float(m.group(2)) for m in map(EPOCH_LOG.search, f) if m]
            folds[name] = (len(epochs), sum(epochs) / max(1, len(epochs)))
    return seconds, folds


def decode(path, root, side, args):
    """Stage 4 of exp/bench_<side> in recipe dir ``path`` of tree ``root``; its exp dir."""
    tag = f"bench_{side}"
    command = ["./run.sh", "--stage", "4", "--stop_stage", "4", "--fold_jobs",
               str(args.fold_jobs), "--train_config", args.train_config, "--tag", tag]
    if args.folds:
        command += ["--folds", args.folds]
    subprocess.run(command, cwd=path, env={**os.environ, "PYTHONPATH": root}, check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.join(path, "exp", tag)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="egs/ravdess")
    parser.add_argument("--base", default="903764b",
                        help="commit(s) to compare with, comma-separated (the speed-up is against "
                             "the first)")
    parser.add_argument("--folds", default="", help="folds to train (default: all)")
    parser.add_argument("--fold-jobs", type=int, default=2)
    parser.add_argument("--train-config", default="conf/train.yaml")
    parser.add_argument("--order", default="base,new",
                        help="which side runs first (base: the --base commits in their order)")
    parser.add_argument("--score", action="store_true",
                        help="decode every side and print the paired test of new against each "
                             "base")
    args = parser.parse_args()
    here = os.path.join(ROOT, args.recipe)
    if not os.path.isdir(os.path.join(here, "dump")):
        sys.exit(f"{here}/dump: not found; run stages 0-2 of the recipe first")
    bases = args.base.split(",")
    trees = {f"base_{commit}": (recipe_dir(worktree(commit), args.recipe, here), worktree(commit))
             for commit in bases}
    trees["new"] = (here, ROOT)
    sides = [s for group in args.order.split(",")
             for s in ([f"base_{c}" for c in bases] if group == "base" else [group])]
    results = {}
    for side in sides:
        print(f"{time.strftime('%H:%M:%S')} stage 3 of {args.recipe} at {side}", flush=True)
        results[side] = run_stage3(*trees[side], side, args)
    new_commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
    print(f"\n{args.recipe}, {args.train_config}, folds {args.folds or 'all'}, "
          f"{args.fold_jobs} at once, {os.cpu_count()} CPUs\n")
    print(f"| side | commit | stage 3 s | speed-up over {bases[0]} | epochs per fold | "
          f"s per epoch (mean) |")
    print("|---|---|---:|---:|---|---:|")
    reference = results[f"base_{bases[0]}"][0]
    for side, (seconds, folds) in results.items():
        commit = side[len("base_"):] if side != "new" else f"{new_commit} + working tree"
        epochs = " ".join(str(e) for e, _ in folds.values())
        per_epoch = sum(s for _, s in folds.values()) / max(1, len(folds))
        print(f"| {side} | {commit} | {seconds:.0f} | {reference / seconds:.2f}x | "
              f"{epochs} | {per_epoch:.1f} |")

    if args.score:
        exps = {side: decode(*trees[side], side, args) for side in results}
        folds = args.folds or " ".join(sorted(
            name[len("fold"):] for name in os.listdir(exps["new"]) if name.startswith("fold")))
        for side in (s for s in results if s != "new"):
            print(f"\npaired test, new - {side} (python -m mser.bin.compare {exps['new']} "
                  f"{exps[side]} --folds '{folds}'):", flush=True)
            subprocess.run([sys.executable, "-m", "mser.bin.compare", exps["new"], exps[side],
                            "--folds", folds], cwd=here,
                           env={**os.environ, "PYTHONPATH": ROOT}, check=True)


if __name__ == "__main__":
    main()
