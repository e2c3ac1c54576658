"""Scoring of decoded experiments: per fold, pooled, mean +/- std over folds, reports.

Layout read (written by ``mser.bin.decode``)::

    exp/<tag>/fold<k>/decode/classes.txt        class names, one per line (index order)
    exp/<tag>/fold<k>/decode/utt2emo            reference labels of the test set
    exp/<tag>/fold<k>/decode/<condition>/predictions   <utt> <label>
    exp/<tag>/fold<k>/decode/<condition>/posteriors    <utt> <p_0> ... <p_C-1>

Conditions: ``both`` (all modalities), ``audio_only``, ``text_only``. A single-modality model
only has its own condition, which is then its main result.
"""
import datetime
import glob
import json
import os
import platform

import numpy as np

from mser.data.datadir import read_table
from mser.data.dataset import read_classes
from mser.utils.conditions import CONDITIONS
from mser.utils.config import load_config
from mser.utils.fileio import atomic_open, atomic_write_text
from mser.utils.metrics import mcnemar_test, paired_bootstrap_ua, score
from mser.utils.plotting import pyplot, save_figure

SUMMARY_METRICS = ("ua", "wa", "macro_f1")


def load_condition(fold_dir, condition):
    """Return (utt ids, reference indices, predicted indices, classes) or None if not decoded."""
    decode = os.path.join(fold_dir, "decode")
    pred_path = os.path.join(decode, condition, "predictions")
    if not os.path.exists(pred_path):
        return None
    classes = read_classes(os.path.join(decode, "classes.txt"))
    index = {c: i for i, c in enumerate(classes)}
    refs, preds = read_table(os.path.join(decode, "utt2emo")), read_table(pred_path)
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise ValueError(f"{pred_path}: {len(missing)} test utterance(s) have no prediction "
                         f"(e.g. {missing[0]}); re-run the decoding stage")
    utts = sorted(refs)
    for utt in utts:
        for label, path in ((refs[utt], "utt2emo"), (preds[utt], pred_path)):
            if label not in index:
                raise ValueError(f"{path}: utterance {utt}: label {label!r} not in "
                                 f"{os.path.join(decode, 'classes.txt')}")
    return (utts, np.array([index[refs[u]] for u in utts]), np.array([index[preds[u]] for u in utts]),
            classes)


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
    for condition in ("audio_only", "text_only"):
        if condition in results:
            top[condition] = results[condition]
    return top


def _public(scores):
    """Drop the private pooled-prediction arrays before writing JSON."""
    out = {k: v for k, v in scores.items() if not k.startswith("_")}
    for condition in ("audio_only", "text_only"):
        if condition in out:
            out[condition] = _public(out[condition])
    return out


def format_scores(scores):
    lines = [f"{scores['tag']}: {len(scores['folds'])} fold(s), main condition {scores['condition']}",
             f"{'condition':<12} {'fold':>5} {'UA':>7} {'WA':>7} {'F1':>7}"]
    for name, result in [(scores["condition"], scores)] + [
            (c, scores[c]) for c in ("audio_only", "text_only")
            if c in scores and c != scores["condition"]]:
        for fold in result["folds"]:
            lines.append(f"{name:<12} {fold['fold']:>5} {100 * fold['ua']:7.2f} "
                         f"{100 * fold['wa']:7.2f} {100 * fold['macro_f1']:7.2f}")
        m, s = result["mean"], result["std"]
        lines.append(f"{name:<12} {'mean':>5} " + " ".join(
            f"{100 * m[k]:5.2f}+/-{100 * s[k]:.2f}" for k in SUMMARY_METRICS))
    return "\n".join(lines) + "\n"


def plot_confusions(scores, path):
    plt = pyplot()
    panels = [(scores["condition"], scores)] + [
        (c, scores[c]) for c in ("audio_only", "text_only") if c in scores and c != scores["condition"]]
    classes = scores["classes"]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4), squeeze=False)
    for ax, (name, result) in zip(axes[0], panels):
        counts = np.array(result["pooled"]["confusion"], dtype=float)
        rates = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
        for i in range(len(classes)):
            for j in range(len(classes)):
                ax.text(j, i, f"{100 * rates[i, j]:.0f}%\n({int(counts[i, j])})", ha="center",
                        va="center", fontsize=8, color="white" if rates[i, j] > 0.5 else "black")
        ax.set_xticks(range(len(classes)), classes)
        ax.set_yticks(range(len(classes)), classes)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        ax.set_title(f"{name}: UA {100 * result['pooled']['ua']:.1f} WA {100 * result['pooled']['wa']:.1f}")
    fig.suptitle(f"{scores['tag']} (pooled over {len(scores['folds'])} folds)")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)


def write_experiment_scores(exp_dir, folds):
    """Write scores.json, scores.txt and confusion.png under ``exp_dir``; return the scores."""
    scores = score_experiment(exp_dir, folds)
    with atomic_open(os.path.join(exp_dir, "scores.json"), "w", encoding="utf-8") as f:
        json.dump(_public(scores), f, indent=2)
    atomic_write_text(os.path.join(exp_dir, "scores.txt"), format_scores(scores))
    plot_confusions(scores, os.path.join(exp_dir, "confusion.png"))
    return scores


def _scored(exp_dir, folds, condition):
    """score_experiment (its main condition) or, with ``condition``, that condition's scores."""
    if condition is None:
        return score_experiment(exp_dir, folds)
    scores = score_condition(exp_dir, folds, condition)
    if scores is None:
        raise ValueError(f"{exp_dir}: condition {condition} was not decoded")
    return dict(scores, tag=os.path.basename(os.path.normpath(exp_dir)), condition=condition)


def compare_experiments(exp_a, exp_b, folds, condition=None, num_samples=1000, seed=0):
    """Paired tests of exp_a vs exp_b over the pooled test utterances of their main conditions,
    or of both decoded under ``condition`` (e.g. audio_only: the other modality removed)."""
    a, b = _scored(exp_a, folds, condition), _scored(exp_b, folds, condition)
    utts_a, ref, pred_a = a["_pooled_predictions"]
    utts_b, _, pred_b = b["_pooled_predictions"]
    if utts_a != utts_b:
        raise ValueError(f"{exp_a} and {exp_b} were not decoded on the same utterances")
    a_only, b_only, p_mcnemar = mcnemar_test(ref, pred_a, pred_b)
    diff, interval, p_boot = paired_bootstrap_ua(ref, pred_a, pred_b, len(a["classes"]),
                                                 num_samples=num_samples, seed=seed)
    return {"a": a["tag"], "b": b["tag"], "num_utts": len(ref), "ua_diff": diff,
            "ua_diff_95ci": interval, "p_bootstrap_ua": p_boot, "a_right_b_wrong": a_only,
            "b_right_a_wrong": b_only, "p_mcnemar": p_mcnemar}


def _environment():
    import torch

    return (f"python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
            f"CUDA {'available' if torch.cuda.is_available() else 'not used'}")


def _training_record(exp_dir, folds):
    """(training config, short commit of the code that trained it) from the first fold's config."""
    path = os.path.join(exp_dir, f"fold{folds[0]}", "config.yaml")
    if not os.path.exists(path):
        return "?", "?"
    config = load_config(path)
    sha, dirty, mark = (config.get("git_commit") or "unknown").partition("+")
    return config.get("train_config") or "?", sha[:7] + dirty + mark


def _test_row(exp_dir, reference, folds, condition):
    """A markdown row of the paired tests of ``exp_dir`` against ``reference``."""
    try:
        c = compare_experiments(exp_dir, reference, folds, condition)
    except ValueError as e:
        return f"| {os.path.basename(exp_dir)} | {condition or '-'} | not comparable: {e} | | | |"
    return (f"| {c['a']} | {condition or 'main'} | {100 * c['ua_diff']:+.2f} "
            f"[{100 * c['ua_diff_95ci'][0]:+.2f}, {100 * c['ua_diff_95ci'][1]:+.2f}] | "
            f"{c['p_bootstrap_ua']:.3g} | {c['a_right_b_wrong']} / {c['b_right_a_wrong']} | "
            f"{c['p_mcnemar']:.3g} |")


def _pm(result, metric):
    if result is None:
        return "-"
    return f"{100 * result['mean'][metric]:.2f} ± {100 * result['std'][metric]:.2f}"


def write_results_md(path, exp_root, folds, reference_tag, title):
    """Regenerate RESULTS.md: one row per scored tag under ``exp_root``, significance vs reference."""
    rows, tags = [], []
    for scores_path in sorted(glob.glob(os.path.join(exp_root, "*", "scores.json"))):
        exp_dir = os.path.dirname(scores_path)
        try:
            scores = score_experiment(exp_dir, folds)
        except ValueError:  # scored on other folds or stale: leave it out of this table
            continue
        tags.append(exp_dir)
        train_config, commit = _training_record(exp_dir, folds)
        rows.append(
            f"| {scores['tag']} | {train_config} | {commit} | {scores['condition']} | "
            f"{_pm(scores, 'ua')} | {_pm(scores, 'wa')} | {_pm(scores, 'macro_f1')} | "
            f"{_pm(scores.get('audio_only'), 'ua')} | {_pm(scores.get('text_only'), 'ua')} |")
    reference = os.path.join(exp_root, reference_tag)
    others = [e for e in tags if os.path.normpath(e) != os.path.normpath(reference)]
    tests = [_test_row(exp_dir, reference, folds, None) for exp_dir in others]
    # Missing modality at test: each tag and the reference, both given one modality.
    single_tests = [_test_row(exp_dir, reference, folds, condition)
                    for condition in ("audio_only", "text_only") for exp_dir in others
                    if all(os.path.isdir(os.path.join(e, f"fold{folds[0]}", "decode", condition))
                           for e in (exp_dir, reference))]
    fold_list = " ".join(map(str, folds))
    text = [f"# {title}", "",
            "Generated by stage 5 (`python -m mser.bin.score`); do not edit by hand.", "",
            f"- folds: {fold_list} (leave-one-session-out; model selection on dev, never on test)",
            f"- environment: {_environment()}",
            f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}", "",
            "UA = mean per-class recall, WA = overall accuracy, F1 = macro F1; mean ± sample std "
            "over folds, in %. 'audio only' / 'text only' = the same model given one modality at "
            "test time. 'commit' = the mser commit that trained the tag.", "",
            "| tag | config | commit | condition | UA | WA | F1 | UA audio only | UA text only |",
            "|---|---|---|---|---|---|---|---|---|", *rows, ""]
    if tests:
        text += [f"Paired tests against `{reference_tag}` over the pooled test utterances "
                 "(bootstrap of UA difference, 1000 resamples; exact McNemar on correctness):", "",
                 "| tag | condition | ΔUA vs reference [95% CI] | p (bootstrap) | tag right only / "
                 "ref right only | p (McNemar) |", "|---|---|---|---|---|---|", *tests, ""]
    if single_tests:
        text += [f"The same with one modality at test, both `{reference_tag}` and the tag given "
                 "audio only or text only:", "",
                 "| tag | condition | ΔUA vs reference [95% CI] | p (bootstrap) | tag right only / "
                 "ref right only | p (McNemar) |", "|---|---|---|---|---|---|", *single_tests, ""]
    atomic_write_text(path, "\n".join(text))
