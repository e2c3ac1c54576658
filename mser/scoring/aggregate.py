"""Scores of an experiment: per fold, pooled, mean +/- sample std over folds; scores.json/.txt,
headed by the corpus's headline metric (data/protocol ``headline``)."""
import json
import os

import numpy as np

from mser.scoring.decodes import (CALIBRATED_POSTERIORS, decoded_conditions, decoded_tasks,
                                  load_condition, load_posteriors, load_task, subset_suffix)
from mser.scoring.plots import plot_confusions
from mser.utils.calibration import (ECE_BINS, expected_calibration_error, load_temperatures,
                                    negative_log_likelihood, plot_reliability)
from mser.utils.config import load_config
from mser.utils.fileio import atomic_open, atomic_write_text
from mser.utils.metrics import score
from mser.utils.tasks import METRIC_NAMES, TASK_TYPES

SUMMARY_METRICS = ("ua", "wa", "macro_f1", "weighted_f1")
POSTERIORS = ("posteriors", CALIBRATED_POSTERIORS)


def _summary(fold_scores, metrics=SUMMARY_METRICS):
    values = {m: np.array([s[m] for s in fold_scores]) for m in metrics}
    ddof = 1 if len(fold_scores) > 1 else 0  # sample std over folds
    return ({m: float(v.mean()) for m, v in values.items()},
            {m: float(v.std(ddof=ddof)) for m, v in values.items()})


def score_condition(exp_dir, folds, condition, subset="test"):
    """Scores of one condition on test subset ``subset`` over ``folds``; None if no fold has it."""
    per_fold, pooled = [], {"utts": [], "ref": [], "pred": []}
    probs = {name: [] for name in POSTERIORS}
    classes = None
    for fold in folds:
        fold_dir = os.path.join(exp_dir, f"fold{fold}")
        loaded = load_condition(fold_dir, condition, subset)
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
        for name, found in probs.items():
            found.append(load_posteriors(fold_dir, condition, utts, name, subset))
    mean, std = _summary(per_fold)
    ref, pred = np.concatenate(pooled["ref"]), np.concatenate(pooled["pred"])
    result = {"folds": per_fold, "mean": mean, "std": std, "pooled": score(ref, pred, classes),
              "classes": classes, "_pooled_predictions": (pooled["utts"], ref, pred)}
    tasks = {task: scored for task, kind in decoded_tasks(
        os.path.join(exp_dir, f"fold{folds[0]}"), condition, subset).items()
        if (scored := score_task(exp_dir, folds, condition, task, kind, subset)) is not None}
    if tasks:
        result["tasks"] = tasks
    if all(p is not None for p in probs["posteriors"]):
        result["_pooled_posteriors"] = {name: np.concatenate(found) for name, found in probs.items()
                                        if all(p is not None for p in found)}
        result["calibration"] = pooled_calibration(result["_pooled_posteriors"], ref, [
            load_temperatures(os.path.join(exp_dir, f"fold{fold}")).get(condition)
            for fold in folds])
    return result


def score_task(exp_dir, folds, condition, task, kind, subset="test"):
    """An auxiliary task's scores under ``condition`` over ``folds``, as
    :func:`score_condition`'s (its type's metrics; ``_pooled_predictions``: class indices or
    numbers); None when the test sets have no labels of it."""
    task_kind = TASK_TYPES[kind]
    loaded = {fold: load_task(os.path.join(exp_dir, f"fold{fold}"), condition, task, kind, subset)
              for fold in folds}
    if any(found is None for found in loaded.values()):
        return None
    # A classification's classes are each fold's training labels: pooled, the folds' indices
    # and one-hot columns are mapped onto their union.
    classes = (sorted({c for *_, fold_classes in loaded.values() for c in fold_classes})
               if kind == "classification" else None)
    per_fold, utts, refs, preds = [], [], [], []
    for fold, (fold_utts, ref, outputs, fold_classes) in loaded.items():
        if classes:
            columns = [classes.index(c) for c in fold_classes]
            ref = np.array(columns)[ref]
            outputs = np.eye(len(classes))[np.array(columns)[outputs.argmax(-1)]]
        per_fold.append(dict(fold=int(fold), **task_kind.score(ref, outputs, classes)))
        utts += [f"fold{fold}/{u}" for u in fold_utts]
        refs.append(ref)
        preds.append(outputs)
    ref, outputs = np.concatenate(refs), np.concatenate(preds)
    mean, std = _summary(per_fold, task_kind.metrics)
    pred = outputs.argmax(-1) if classes else outputs[:, 0]
    return {"type": kind, "folds": per_fold, "mean": mean, "std": std,
            "pooled": task_kind.score(ref, outputs, classes), "classes": classes,
            "headline": task_kind.headline, "_pooled_predictions": (utts, ref, pred)}


def pooled_calibration(posteriors, ref, temperatures):
    """ECE and NLL over the pooled test utterances of the raw posteriors and, where every fold
    has them, the calibrated ones; the folds' dev-fitted temperatures."""
    raw = posteriors["posteriors"]
    out = {"ece": expected_calibration_error(raw, ref), "nll": negative_log_likelihood(raw, ref),
           "ece_bins": ECE_BINS}
    calibrated = posteriors.get(CALIBRATED_POSTERIORS)
    if calibrated is not None:
        out.update(ece_calibrated=expected_calibration_error(calibrated, ref),
                   nll_calibrated=negative_log_likelihood(calibrated, ref),
                   temperatures=temperatures)
    return out


def score_experiment(exp_dir, folds, subset="test", headline="ua"):
    """Score every decoded condition; the main one is the full set of streams (``both``) or the
    model's single stream, the others are kept under their names (``conditions`` lists all)."""
    first = os.path.join(exp_dir, f"fold{folds[0]}") if folds else exp_dir
    results = {c: r for c in decoded_conditions(first, subset)
               if (r := score_condition(exp_dir, folds, c, subset)) is not None}
    if not results:
        raise ValueError(f"{exp_dir}: nothing decoded for folds {' '.join(map(str, folds))}; "
                         f"run the decoding stage first")
    main = next(iter(results))
    top = dict(results[main])
    top.update(tag=os.path.basename(os.path.normpath(exp_dir)), condition=main, subset=subset,
               headline=headline, conditions=list(results))
    top.update(results)  # the main condition under its name too (an audio-only model's column)
    return top


def score_wer(folds, reference_dir, hypothesis_dir):
    """WER of each fold's ASR test transcripts against the gold ones (``{fold}`` in the two data
    dir names is the fold), mean +/- sample std over folds and pooled over them."""
    from mser.scoring.wer import data_dir_wer

    per_fold = []
    for fold in folds:
        ref, hyp = (d.format(fold=fold) for d in (reference_dir, hypothesis_dir))
        errors = data_dir_wer(ref, hyp)
        per_fold.append(dict(fold=int(fold), **errors.as_dict(), not_transcribed=errors.missing))
    values = np.array([f["wer"] for f in per_fold])
    counts = {k: sum(f[k] for f in per_fold)
              for k in ("substitutions", "deletions", "insertions", "reference_words")}
    errors = counts["substitutions"] + counts["deletions"] + counts["insertions"]
    return {"folds": per_fold, "mean": float(values.mean()),
            "std": float(values.std(ddof=1 if len(values) > 1 else 0)),
            "pooled": errors / counts["reference_words"] if counts["reference_words"] else None,
            "reference": reference_dir, "hypothesis": hypothesis_dir}


def training_record(exp_dir, folds):
    """The ``train_config`` and ``git_commit`` of the first fold's config.yaml; None without one."""
    path = os.path.join(exp_dir, f"fold{folds[0]}", "config.yaml")
    if not os.path.exists(path):
        return None
    config = load_config(path)
    return {key: config.get(key) for key in ("train_config", "git_commit")}


def panels(scores):
    """(name, result) of the main condition, then of the other decoded ones."""
    return [(scores["condition"], scores)] + [(c, scores[c]) for c in other_conditions(scores)]


def other_conditions(scores):
    """The decoded conditions besides the main one (older scores: audio_only / text_only)."""
    names = scores.get("conditions") or [c for c in ("audio_only", "text_only") if c in scores]
    return [c for c in names if c != scores["condition"]]


def _public(scores):
    """Drop the private pooled-prediction arrays before writing JSON."""
    def public(result):
        out = {k: v for k, v in result.items() if not k.startswith("_")}
        if "tasks" in result:
            out["tasks"] = {t: public(r) for t, r in result["tasks"].items()}
        return out
    out = public(scores)
    out.update({c: public(scores[c]) for c in scores.get("conditions", ())})
    return out


def headline_first(headline):
    """The summary metrics with ``headline`` first."""
    return (headline, *(m for m in SUMMARY_METRICS if m != headline))


def format_scores(scores):
    metrics = headline_first(scores["headline"])
    lines = [f"{scores['tag']} on {scores['subset']}: {len(scores['folds'])} fold(s), main "
             f"condition {scores['condition']}, headline {METRIC_NAMES[metrics[0]]}",
             f"{'condition':<12} {'fold':>5} " + " ".join(f"{METRIC_NAMES[k]:>7}" for k in metrics)]
    for name, result in panels(scores):
        for fold in result["folds"]:
            lines.append(f"{name:<12} {fold['fold']:>5} " + " ".join(
                f"{100 * fold[k]:7.2f}" for k in metrics))
        m, s = result["mean"], result["std"]
        lines.append(f"{name:<12} {'mean':>5} " + " ".join(
            f"{100 * m[k]:5.2f}+/-{100 * s[k]:.2f}" for k in metrics))
    for task, result in scores.get("tasks", {}).items():
        metrics = TASK_TYPES[result["type"]].metrics
        lines.append(f"task {task} ({result['type']}), condition {scores['condition']}: "
                     f"mean+/-std over folds; pooled")
        value = TASK_TYPES[result["type"]].text
        lines.append(", ".join(f"{METRIC_NAMES[k]} {value(result['mean'][k])}+/-"
                               f"{value(result['std'][k])}; {value(result['pooled'][k])}"
                               for k in metrics))
    if "calibration" in scores:
        lines.append(f"calibration of {scores['condition']}: {calibration_text(scores['calibration'])}")
    if "wer" in scores:
        wer = scores["wer"]
        lines.append(f"WER of the ASR test text ({wer['hypothesis']} against {wer['reference']}):")
        for fold in wer["folds"]:
            missing = fold["not_transcribed"]
            lines.append(f"{'WER':<12} {fold['fold']:>5} {100 * fold['wer']:7.2f}  "
                         f"({fold['reference_words']} words, {fold['utterances']} utterances; "
                         f"{len(missing)} not transcribed{': ' if missing else ''}"
                         f"{' '.join(missing)})")
        lines.append(f"{'WER':<12} {'mean':>5} {100 * wer['mean']:5.2f}+/-{100 * wer['std']:.2f}")
    return "\n".join(lines) + "\n"


def calibration_text(calibration):
    """'ECE 9.12 % (NLL 0.812) raw, 3.05 % (0.701) calibrated' of a pooled calibration."""
    text = f"ECE {100 * calibration['ece']:.2f} % (NLL {calibration['nll']:.3f}) raw"
    if "ece_calibrated" in calibration:
        text += (f", {100 * calibration['ece_calibrated']:.2f} % "
                 f"({calibration['nll_calibrated']:.3f}) calibrated")
    return text


def write_experiment_scores(exp_dir, folds, subset="test", headline="ua", wer_dirs=None,
                            reference_tag=None, probe_tag=None):
    """Write scores.json, scores.txt, confusion.png and reliability.png (the main condition's
    calibration over the pooled test utterances, raw and calibrated) under ``exp_dir``
    (``scores_<subset>.*``, ``confusion_<subset>.png``, ... for a test subset other than
    ``test``); return the scores.
    ``wer_dirs``: (gold test dir, ASR test dir) with ``{fold}``, for the WER of the test text.
    ``reference_tag``: the tag RESULTS.md tests this one against, recorded in scores.json;
    ``probe_tag``: the linear probe it is also tested against. The training record (config and
    commit) goes in too, so RESULTS.md needs no more than the JSON and the decodes."""
    scores = score_experiment(exp_dir, folds, subset, headline)
    scores["trained"] = training_record(exp_dir, folds)
    if wer_dirs:
        scores["wer"] = score_wer(folds, *wer_dirs)
    if reference_tag:
        scores["reference_tag"] = reference_tag
    if probe_tag:
        scores["probe_tag"] = probe_tag
    suffix = subset_suffix(subset)
    with atomic_open(os.path.join(exp_dir, f"scores{suffix}.json"), "w", encoding="utf-8") as f:
        json.dump(_public(scores), f, indent=2)
    atomic_write_text(os.path.join(exp_dir, f"scores{suffix}.txt"), format_scores(scores))
    plot_confusions(f"{scores['tag']} ({subset})", panels(scores), scores["classes"],
                    os.path.join(exp_dir, f"confusion{suffix}.png"))
    posteriors = scores.get("_pooled_posteriors", {})
    if posteriors:
        ref = scores["_pooled_predictions"][1]
        plot_reliability([(f"{scores['tag']}, {scores['condition']}: "
                           f"{'raw' if name == 'posteriors' else 'calibrated'}", probs, ref)
                          for name, probs in posteriors.items()],
                         os.path.join(exp_dir, f"reliability{suffix}.png"))
    return scores
