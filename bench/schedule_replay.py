"""What a shorter schedule or another selection would have trained, replayed from runs that
kept every epoch's checkpoint (``--train_opts "--keep-checkpoints <epochs>"``): per fold, the
epoch at which ``--epochs E --patience P`` would have stopped and its best.pt (the mean of the
``--average-checkpoints`` best dev epochs up to there), written as a new tag that stages 4-5
decode and score like any other. ``--select-conditions`` ranks the epochs by the mean dev
metric of those conditions only (the history holds each condition's), e.g. without a
text-only condition that is at chance on a corpus of fixed sentences.

    tools/venv/bin/python bench/schedule_replay.py --recipe egs/ravdess \\
        --source exp/train_whisper_base_minilm --tag sched_e10p3_whisper_base_minilm \\
        --epochs 10 --patience 3 [--average-checkpoints 5]
    cd egs/ravdess && ./run.sh --stage 4 --tag sched_e10p3_whisper_base_minilm \\
        --reference_tag train_whisper_base_minilm

Exact, not an estimate, for the ``warmup`` (inverse-sqrt) schedule: the trainer reseeds every
epoch from (seed, epoch, rank) and the learning rate of a step does not depend on the run's
length, so the first epochs of a longer run are those a shorter one trains. (``cosine`` decays
to the last epoch: refused.) No calibration.yaml is written for the replayed best.pt (its
decodes have raw posteriors only). Prints per fold the epochs run and the share of the source's
epoch time that the shorter schedule would have taken.
"""
import argparse
import os
import shutil
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mser.train.trainer import DONE, best_epochs, is_better  # noqa: E402
from mser.utils.checkpoint import (average_checkpoints, checkpoint_path, load_checkpoint,  # noqa: E402
                                   save_checkpoint, saved_epochs)


def stop_epoch(history, metric, epochs, patience):
    """The last epoch ``--epochs`` / ``--patience`` would have run (the trainer's rule), or None
    when ``history`` ends before that rule does."""
    best, bad = None, 0
    for entry in history:
        if entry["epoch"] > epochs or (patience and bad >= patience):
            return entry["epoch"] - 1
        if is_better(metric, entry["dev_metric"], best):
            best, bad = entry["dev_metric"], 0
        else:
            bad += 1
    ended = history[-1]["epoch"] >= epochs or (patience and bad >= patience)
    return history[-1]["epoch"] if ended else None


def with_selection(history, metric, conditions):
    """``history`` with each epoch's dev_metric the mean ``metric`` of ``conditions``."""
    missing = [c for c in conditions if c not in history[0]["dev_conditions"]]
    if missing:
        sys.exit(f"--select-conditions: {missing} not in the run's dev conditions "
                 f"{list(history[0]['dev_conditions'])}")
    return [{**h, "dev_metric": sum(h["dev_conditions"][c][metric] for c in conditions)
             / len(conditions)} for h in history]


def replay_fold(source, target, epochs, patience, average, conditions=None):
    with open(os.path.join(source, "config.yaml"), encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if config["scheduler"] != "warmup":
        sys.exit(f"{source}: scheduler {config['scheduler']}: its learning rates depend on the "
                 f"run's length; only 'warmup' runs can be replayed")
    kept = saved_epochs(source)
    history = load_checkpoint(checkpoint_path(source, max(kept)))["state"]["history"]
    metric = config["select_metric"]
    if conditions:
        history = with_selection(history, metric, conditions)
        config["select_conditions"] = list(conditions)
    last = stop_epoch(history, metric, epochs, patience)
    ran_to = history[-1]["epoch"]
    if last is None:
        sys.exit(f"{source}: stopped at epoch {ran_to}, before {epochs} epochs with patience "
                 f"{patience} would have: replay from a longer or more patient run")
    chosen = best_epochs(history[:last], metric, average)
    missing = [e for e in chosen if e not in kept]
    if missing:
        sys.exit(f"{source}: no checkpoint of epoch(s) {missing}; train the source with "
                 f"--keep-checkpoints {config['epochs']}")
    os.makedirs(target, exist_ok=True)
    save_checkpoint(os.path.join(target, "best.pt"),
                    average_checkpoints([checkpoint_path(source, e) for e in chosen]))
    config.update(epochs=epochs, patience=patience, average_checkpoints=average,
                  replayed_from=os.path.abspath(source))
    with open(os.path.join(target, "config.yaml"), "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    with open(os.path.join(target, DONE), "w", encoding="utf-8") as f:
        yaml.safe_dump({"reason": "replayed", "epoch": last, "averaged_epochs": chosen}, f)
    seconds = [h["seconds"] for h in history]
    return last, ran_to, chosen, sum(seconds[:last]) / sum(seconds)


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="egs/ravdess")
    parser.add_argument("--source", required=True, help="exp/<tag> trained with every checkpoint")
    parser.add_argument("--tag", required=True, help="the replayed tag, written to exp/<tag>")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--patience", type=int, required=True)
    parser.add_argument("--average-checkpoints", type=int, default=5)
    parser.add_argument("--folds", default="", help="default: every fold<k> of --source")
    parser.add_argument("--select-conditions", nargs="+",
                        help="dev conditions whose mean metric selects (default: the run's)")
    args = parser.parse_args()
    recipe = os.path.join(ROOT, args.recipe)
    source = os.path.join(recipe, args.source)
    folds = args.folds.split() or sorted(
        (d[len("fold"):] for d in os.listdir(source) if d.startswith("fold")), key=int)
    target = os.path.join(recipe, "exp", args.tag)
    shutil.rmtree(target, ignore_errors=True)
    print("| fold | epochs run (source) | averaged epochs | share of the source's epoch time |")
    print("|---|---|---|---:|")
    shares = []
    for k in folds:
        last, ran_to, chosen, share = replay_fold(os.path.join(source, f"fold{k}"),
                                                  os.path.join(target, f"fold{k}"),
                                                  args.epochs, args.patience,
                                                  args.average_checkpoints,
                                                  args.select_conditions)
        shares.append(share)
        print(f"| {k} | {last} ({ran_to}) | {' '.join(map(str, chosen))} | {share:.2f} |")
    print(f"\n{args.tag}: --epochs {args.epochs} --patience {args.patience}"
          f"{' --select-conditions ' + ' '.join(args.select_conditions) if args.select_conditions else ''}: "
          f"{sum(shares) / len(shares):.2f} of the source's epoch time (mean over folds)")


if __name__ == "__main__":
    main()
