"""Paired significance tests of two experiments over the same pooled test utterances."""
import os

from mser.scoring.aggregate import score_condition, score_experiment
from mser.utils.metrics import mcnemar_test, paired_bootstrap
from mser.utils.tasks import PRIMARY, TASK_TYPES


def _scored(exp_dir, folds, condition, task=PRIMARY):
    """score_experiment (its main condition) or, with ``condition``, that condition's scores;
    of an auxiliary ``task``, its scores under that condition."""
    tag = os.path.basename(os.path.normpath(exp_dir))
    if condition is None:
        scores = score_experiment(exp_dir, folds)
    else:
        scores = score_condition(exp_dir, folds, condition)
        if scores is None:
            raise ValueError(f"{exp_dir}: condition {condition} was not decoded")
        scores = dict(scores, tag=tag, condition=condition)
    if task == PRIMARY:
        return scores
    if task not in scores.get("tasks", {}):
        raise ValueError(f"{exp_dir}: no scores of task {task} (not one of its model's tasks, "
                         f"or its test sets have no utt2{task})")
    return dict(scores["tasks"][task], tag=tag)


def _runs(exps, folds, condition, task=PRIMARY):
    """The scores of one experiment or of its runs (a list: one per training seed), checked to
    be decoded on the same utterances: (scores of each run, utterances, reference)."""
    exps = [exps] if isinstance(exps, str) else list(exps)
    runs = [_scored(exp, folds, condition, task) for exp in exps]
    utts, ref, _ = runs[0]["_pooled_predictions"]
    for exp, run in zip(exps[1:], runs[1:]):
        if run["_pooled_predictions"][0] != utts:
            raise ValueError(f"{exp} was not decoded on the same utterances as {exps[0]}")
    return runs, utts, ref


def _summary(run, metric):
    return {"tag": run["tag"], "fold_mean": run["mean"][metric], "fold_std": run["std"][metric],
            "pooled": run["pooled"][metric]}


def compare_experiments(exp_a, exp_b, folds, condition=None, metric="ua", num_samples=1000,
                        seed=0, task=PRIMARY):
    """Paired tests of exp_a vs exp_b over the pooled test utterances of their main conditions,
    or of both decoded under ``condition`` (e.g. audio_only: the other modality removed), on
    the emotion categories or an auxiliary ``task`` (its type's metrics; a regression task:
    the bootstrap of the difference in CCC, PCC or MAE, no McNemar).

    ``exp_a`` / ``exp_b``: an experiment dir, or a list of them (the same config trained with
    different seeds): the bootstrap then scores all runs' predictions together and resamples
    utterances with all their runs (:func:`paired_bootstrap`); McNemar's test, which pairs one
    prediction per utterance, is given for single runs only (None otherwise)."""
    runs_a, utts_a, ref = _runs(exp_a, folds, condition, task)
    runs_b, utts_b, _ = _runs(exp_b, folds, condition, task)
    kind_name = runs_a[0].get("type", "classification")
    kind = TASK_TYPES[kind_name]
    if metric not in kind.metrics:
        raise ValueError(f"--metric {metric}: task {task} is scored by {', '.join(kind.metrics)}")
    if utts_a != utts_b:
        raise ValueError(f"{exp_a} and {exp_b} were not decoded on the same utterances")
    pred_a = [run["_pooled_predictions"][2] for run in runs_a]
    pred_b = [run["_pooled_predictions"][2] for run in runs_b]
    a_only = b_only = p_mcnemar = None
    if len(runs_a) == len(runs_b) == 1 and runs_a[0]["classes"]:
        a_only, b_only, p_mcnemar = mcnemar_test(ref, pred_a[0], pred_b[0])
    diff, interval, p_boot = paired_bootstrap(ref, pred_a, pred_b, len(runs_a[0]["classes"] or ()),
                                              metric, num_samples=num_samples, seed=seed)
    return {"a": "+".join(run["tag"] for run in runs_a), "task": task, "type": kind_name,
            "b": "+".join(run["tag"] for run in runs_b), "num_utts": len(ref),
            "runs_a": [_summary(run, metric) for run in runs_a],
            "runs_b": [_summary(run, metric) for run in runs_b], "metric": metric, "diff": diff,
            "diff_95ci": interval, "p_bootstrap": p_boot, "a_right_b_wrong": a_only,
            "b_right_a_wrong": b_only, "p_mcnemar": p_mcnemar}
