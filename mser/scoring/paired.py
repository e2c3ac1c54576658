"""Paired significance tests of two experiments over the same pooled test utterances."""
import os

from mser.scoring.aggregate import score_condition, score_experiment
from mser.utils.metrics import mcnemar_test, paired_bootstrap


def _scored(exp_dir, folds, condition):
    """score_experiment (its main condition) or, with ``condition``, that condition's scores."""
    if condition is None:
        return score_experiment(exp_dir, folds)
    scores = score_condition(exp_dir, folds, condition)
    if scores is None:
        raise ValueError(f"{exp_dir}: condition {condition} was not decoded")
    return dict(scores, tag=os.path.basename(os.path.normpath(exp_dir)), condition=condition)


def compare_experiments(exp_a, exp_b, folds, condition=None, metric="ua", num_samples=1000,
                        seed=0):
    """Paired tests of exp_a vs exp_b over the pooled test utterances of their main conditions,
    or of both decoded under ``condition`` (e.g. audio_only: the other modality removed)."""
    a, b = _scored(exp_a, folds, condition), _scored(exp_b, folds, condition)
    utts_a, ref, pred_a = a["_pooled_predictions"]
    utts_b, _, pred_b = b["_pooled_predictions"]
    if utts_a != utts_b:
        raise ValueError(f"{exp_a} and {exp_b} were not decoded on the same utterances")
    a_only, b_only, p_mcnemar = mcnemar_test(ref, pred_a, pred_b)
    diff, interval, p_boot = paired_bootstrap(ref, pred_a, pred_b, len(a["classes"]), metric,
                                                 num_samples=num_samples, seed=seed)
    return {"a": a["tag"], "b": b["tag"], "num_utts": len(ref), "metric": metric, "diff": diff,
            "diff_95ci": interval, "p_bootstrap": p_boot, "a_right_b_wrong": a_only,
            "b_right_a_wrong": b_only, "p_mcnemar": p_mcnemar}
