"""Paired significance test between two decoded experiments over the same test utterances:
paired bootstrap of the difference in --metric (default UA) and exact McNemar on per-utterance
correctness.

    python -m mser.bin.compare exp/train_x exp/probe_x --folds "1 2 3 4 5 6"
    # several seeds of each (comma-separated): every run's fold mean and pooled score, their
    # mean +/- std over seeds, and the bootstrap over utterances with all runs' predictions
    python -m mser.bin.compare exp/a,exp/a_seed1,exp/a_seed2 exp/b,exp/b_seed1,exp/b_seed2
    # an auxiliary task of the models (mser.utils.tasks): its own metrics
    python -m mser.bin.compare exp/a exp/b --task arousal --metric ccc
"""
import argparse
import json
import sys

import numpy as np

from mser.scoring.aggregate import METRIC_NAMES
from mser.scoring.paired import compare_experiments
from mser.utils.metrics import PAIRED_METRICS
from mser.utils.tasks import PRIMARY, TASK_TYPES, signed_text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("exp_a", help="an experiment dir, or the dirs of its seeds, comma-separated")
    parser.add_argument("exp_b", help="the same for the other experiment")
    parser.add_argument("--folds", default="1 2 3 4 5")
    parser.add_argument("--condition",
                        help="compare both experiments under this condition (both, audio_only, "
                             "text_only, ...: mser.utils.conditions; default: each one's main "
                             "condition)")
    parser.add_argument("--metric", choices=sorted(PAIRED_METRICS), default="ua",
                        help="metric of the bootstrap (a corpus's headline: weighted_f1 for MELD)")
    parser.add_argument("--task", default=PRIMARY,
                        help="the task compared: emotion (the categories) or an auxiliary task "
                             "of both models (its metrics: UA ... of a classification; ccc, pcc, "
                             "mae of a regression)")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = compare_experiments(args.exp_a.split(","), args.exp_b.split(","),
                                     [int(f) for f in args.folds.split()],
                                     condition=args.condition, metric=args.metric,
                                     num_samples=args.num_samples, seed=args.seed,
                                     task=args.task)
    except ValueError as e:
        sys.exit(f"compare: {e}")
    print(json.dumps(result, indent=2))
    name = METRIC_NAMES[args.metric]
    if args.task != PRIMARY:
        name = f"{args.task} {name}"
    kind = TASK_TYPES[result["type"]]
    value = kind.text
    for side in ("runs_a", "runs_b"):
        runs = result[side]
        for run in runs:
            print(f"{run['tag']}: {name} {value(run['fold_mean'])} +/- "
                  f"{value(run['fold_std'])} over folds, pooled {value(run['pooled'])}")
        if len(runs) > 1:
            for key, what in (("fold_mean", "fold means"), ("pooled", "pooled")):
                values = np.array([run[key] for run in runs])
                print(f"  {len(runs)} seeds, {what}: {value(values.mean())} +/- "
                      f"{value(values.std(ddof=1))}")
    mcnemar = "" if result["p_mcnemar"] is None else f", {result['p_mcnemar']:.3g} (McNemar)"
    low, high = (signed_text(kind, v) for v in result["diff_95ci"])
    print(f"{name}({result['a']}) - {name}({result['b']}) = {signed_text(kind, result['diff'])}, "
          f"95% CI [{low}, {high}], p = {result['p_bootstrap']:.3g} (bootstrap){mcnemar}")

if __name__ == "__main__":
    main()
