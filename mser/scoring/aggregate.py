"""Scores of an experiment: per fold, pooled, mean +/- sample std over folds; scores.json/.txt."""
import json
import os

import numpy as np

from mser.scoring.decodes import load_condition
from mser.scoring.plots import plot_confusions
from mser.utils.conditions import CONDITIONS
from mser.utils.fileio import atomic_open, atomic_write_text
from mser.utils.metrics import score

SUMMARY_METRICS = ("ua", "wa", "macro_f1")
SINGLE_CONDITIONS = ("audio_only", "text_only")


def _summary(fold_scores):
    values = {m: np.array([s[m] for s in fold_scores]) for m in SUMMARY_METRICS}
    ddof = 1 if len(fold_scores) > 1 else 0  # sample std over folds
    return ({m: float(v.mean()) for m, v in values.items()},
            {m: float(v.std(ddof=ddof)) for m, v in values.items()})


def score_condition(exp_dir, folds, condition):
    """Scores of one condition over ``folds``; None if no fold has it."""
    per_fold, pooled = [], {"utts": [], "ref": [], "pred": []}
    classes = None
    for fold in folds:
        loaded = load_condition(os.path.join(exp_dir, f"fold{fold}"), condition)
        if loaded is None:
            if per_fold:
                raise ValueError(f"{exp_dir}/fold{fold}: condition {condition} was not decoded "
                                 f"but other folds have it; re-run the decoding stage")
            return None
        utts, ref, pred, classes = loaded
        per_fold.append(dict(fold=int(fold), **score(ref, pred, classes)))
        pooled["utts"] += [f"fold{fold}/{u}" for u in utts]
        pooled["ref"].append(ref)
        pooled["pred"].append(pred)
    mean, std = _summary(per_fold)
    ref, pred = np.concatenate(pooled["ref"]), np.concatenate(pooled["pred"])
    return {"folds": per_fold, "mean": mean, "std": std, "pooled": score(ref, pred, classes),
            "classes": classes, "_pooled_predictions": (pooled["utts"], ref, pred)}


def score_experiment(exp_dir, folds):
    """Score every decoded condition; the main one is ``both`` or the model's single modality."""
    results = {c: r for c in CONDITIONS if (r := score_condition(exp_dir, folds, c)) is not None}
    if not results:
        raise ValueError(f"{exp_dir}: nothing decoded for folds {' '.join(map(str, folds))}; "
                         f"run the decoding stage first")
    main = "both" if "both" in results else next(iter(results))
    top = dict(results[main])
    top.update(tag=os.path.basename(os.path.normpath(exp_dir)), condition=main)
    for condition in SINGLE_CONDITIONS:
        if condition in results:
            top[condition] = results[condition]
    return top


def panels(scores):
    """(name, result) of the main condition, then the single-modality ones it does not repeat."""
    return [(scores["condition"], scores)] + [
        (c, scores[c]) for c in SINGLE_CONDITIONS if c in scores and c != scores["condition"]]


def _public(scores):
    """Drop the private pooled-prediction arrays before writing JSON."""
    out = {k: v for k, v in scores.items() if not k.startswith("_")}
    for condition in SINGLE_CONDITIONS:
        if condition in out:
            out[condition] = _public(out[condition])
    return out


def format_scores(scores):
    lines = [f"{scores['tag']}: {len(scores['folds'])} fold(s), main condition {scores['condition']}",
             f"{'condition':<12} {'fold':>5} {'UA':>7} {'WA':>7} {'F1':>7}"]
    for name, result in panels(scores):
        for fold in result["folds"]:
            lines.append(f"{name:<12} {fold['fold']:>5} {100 * fold['ua']:7.2f} "
                         f"{100 * fold['wa']:7.2f} {100 * fold['macro_f1']:7.2f}")
        m, s = result["mean"], result["std"]
        lines.append(f"{name:<12} {'mean':>5} " + " ".join(
            f"{100 * m[k]:5.2f}+/-{100 * s[k]:.2f}" for k in SUMMARY_METRICS))
    return "\n".join(lines) + "\n"


def write_experiment_scores(exp_dir, folds):
    """Write scores.json, scores.txt and confusion.png under ``exp_dir``; return the scores."""
    scores = score_experiment(exp_dir, folds)
    with atomic_open(os.path.join(exp_dir, "scores.json"), "w", encoding="utf-8") as f:
        json.dump(_public(scores), f, indent=2)
    atomic_write_text(os.path.join(exp_dir, "scores.txt"), format_scores(scores))
    plot_confusions(scores["tag"], panels(scores), scores["classes"],
                    os.path.join(exp_dir, "confusion.png"))
    return scores
