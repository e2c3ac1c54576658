"""Paired significance test between two decoded experiments over the same test utterances:
paired bootstrap of the difference in --metric (default UA) and exact McNemar on per-utterance correctness."""
import argparse
import json
import sys

from mser.scoring.aggregate import METRIC_NAMES
from mser.scoring.paired import compare_experiments
from mser.utils.metrics import PAIRED_METRICS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("exp_a")
    parser.add_argument("exp_b")
    parser.add_argument("--folds", default="1 2 3 4 5")
    parser.add_argument("--condition",
                        help="compare both experiments under this condition (both, audio_only, "
                             "text_only, ...: mser.utils.conditions; default: each one's main "
                             "condition)")
    parser.add_argument("--metric", choices=sorted(PAIRED_METRICS), default="ua",
                        help="metric of the bootstrap (a corpus's headline: weighted_f1 for MELD)")
    parser.add_argument("--num-samples", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        result = compare_experiments(args.exp_a, args.exp_b, [int(f) for f in args.folds.split()],
                                     condition=args.condition, metric=args.metric,
                                     num_samples=args.num_samples, seed=args.seed)
    except ValueError as e:
        sys.exit(f"compare: {e}")
    print(json.dumps(result, indent=2))
    name = METRIC_NAMES[args.metric]
    print(f"{name}({result['a']}) - {name}({result['b']}) = {100 * result['diff']:+.2f} points, "
          f"95% CI [{100 * result['diff_95ci'][0]:+.2f}, {100 * result['diff_95ci'][1]:+.2f}], "
          f"p = {result['p_bootstrap']:.3g} (bootstrap), {result['p_mcnemar']:.3g} (McNemar)")


if __name__ == "__main__":
    main()
