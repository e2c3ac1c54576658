"""Emotion recognition metrics and a paired significance test.

UA (unweighted accuracy) is the mean per-class recall over the classes that occur in the
reference; WA (weighted accuracy) is the overall accuracy. Labels are integer class indices.
Of numbers (a rated dimension): CCC (concordance correlation) and PCC (Pearson).
"""
import numpy as np


def confusion_matrix(y_true, y_pred, num_classes):
    """Counts with reference classes as rows and predictions as columns."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_true)} references but {len(y_pred)} predictions")
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (y_true, y_pred), 1)
    return matrix


def per_class_recall(y_true, y_pred, num_classes):
    """Recall per class; NaN for a class absent from the reference."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    support = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(matrix) / support, np.nan)


def unweighted_accuracy(y_true, y_pred, num_classes):
    """Mean recall over the classes present in the reference (a class absent is not a zero)."""
    recall = per_class_recall(y_true, y_pred, num_classes)
    return float(np.nanmean(recall)) if np.any(~np.isnan(recall)) else float("nan")


def weighted_accuracy(y_true, y_pred):
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return float(np.mean(y_true == y_pred)) if len(y_true) else float("nan")


def macro_f1(y_true, y_pred, num_classes):
    """Mean F1 over classes present in the reference or the predictions."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    denominator = support + predicted
    present = denominator > 0
    return float(np.mean(2 * tp[present] / denominator[present])) if present.any() else float("nan")


def weighted_f1(y_true, y_pred, num_classes):
    """F1 per class weighted by its reference count (MELD's headline metric)."""
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    tp = np.diag(matrix).astype(float)
    support, predicted = matrix.sum(axis=1), matrix.sum(axis=0)
    if support.sum() == 0:
        return float("nan")
    present = support > 0
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return float(np.dot(f1, support[present]) / support.sum())


def ccc(ref, pred):
    """Concordance correlation coefficient (numpy); NaN for fewer than two values."""
    ref, pred = np.asarray(ref, dtype=float), np.asarray(pred, dtype=float)
    if len(ref) < 2:
        return float("nan")
    covariance = np.mean((ref - ref.mean()) * (pred - pred.mean()))
    denominator = ref.var() + pred.var() + (ref.mean() - pred.mean()) ** 2
    return float(2 * covariance / denominator) if denominator > 0 else float("nan")


def pcc(ref, pred):
    """Pearson correlation; NaN where either side is constant."""
    ref, pred = np.asarray(ref, dtype=float), np.asarray(pred, dtype=float)
    if len(ref) < 2 or ref.std() == 0 or pred.std() == 0:
        return float("nan")
    return float(np.corrcoef(ref, pred)[0, 1])


def mae(ref, pred):
    """Mean absolute error; NaN of nothing."""
    ref, pred = np.asarray(ref, dtype=float), np.asarray(pred, dtype=float)
    return float(np.mean(np.abs(ref - pred))) if len(ref) else float("nan")


def score(y_true, y_pred, class_names):
    """All metrics of one set of predictions, as a JSON-friendly dict."""
    n = len(class_names)
    recall = per_class_recall(y_true, y_pred, n)
    return {
        "ua": unweighted_accuracy(y_true, y_pred, n),
        "wa": weighted_accuracy(y_true, y_pred),
        "macro_f1": macro_f1(y_true, y_pred, n),
        "weighted_f1": weighted_f1(y_true, y_pred, n),
        "recall": {c: (None if np.isnan(r) else float(r)) for c, r in zip(class_names, recall)},
        "confusion": confusion_matrix(y_true, y_pred, n).tolist(),
        "num_utts": int(len(y_true)),
    }


def mcnemar_test(y_true, pred_a, pred_b):
    """Exact two-sided McNemar test on paired correctness; returns (n_a_only, n_b_only, p)."""
    from scipy.stats import binomtest

    y_true, pred_a, pred_b = map(np.asarray, (y_true, pred_a, pred_b))
    correct_a, correct_b = pred_a == y_true, pred_b == y_true
    a_only, b_only = int(np.sum(correct_a & ~correct_b)), int(np.sum(~correct_a & correct_b))
    if a_only + b_only == 0:
        return a_only, b_only, 1.0
    return a_only, b_only, float(binomtest(a_only, a_only + b_only, 0.5).pvalue)


def paired_bootstrap(y_true, pred_a, pred_b, num_classes, metric="ua", num_samples=1000, seed=0):
    """Paired bootstrap over utterances of metric(a) - metric(b), ``metric`` one of
    :data:`PAIRED_METRICS` (ua, wa, macro_f1, weighted_f1).

    ``pred_a`` / ``pred_b``: one prediction per utterance, or (seeds, utterances) arrays of
    several training runs: the metric is then over every run's predictions, and a resample
    draws utterances, each with all its runs' predictions (the runs of one utterance are not
    independent samples).

    Returns (observed difference, 95% interval, two-sided p) where p is twice the share of
    resamples on the other side of zero from the observed difference, counted as (k + 1) /
    (num_samples + 1) so that it is never 0 (the smallest p this many resamples can show).
    """
    y_true = np.asarray(y_true)
    pred_a, pred_b = (np.atleast_2d(np.asarray(p)) for p in (pred_a, pred_b))
    function = PAIRED_METRICS[metric]

    def difference(idx):
        return (function(np.tile(y_true[idx], len(pred_a)), pred_a[:, idx].ravel(), num_classes)
                - function(np.tile(y_true[idx], len(pred_b)), pred_b[:, idx].ravel(),
                           num_classes))

    observed = difference(np.arange(len(y_true)))
    rng = np.random.default_rng(seed)
    diffs = np.empty(num_samples)
    for i in range(num_samples):
        diffs[i] = difference(rng.integers(0, len(y_true), len(y_true)))
    if observed == 0:
        p = 1.0
    else:
        beyond = np.sum(diffs <= 0) if observed > 0 else np.sum(diffs >= 0)
        p = min(1.0, 2 * float(beyond + 1) / (num_samples + 1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return float(observed), (float(low), float(high)), p


# Metrics of (y_true, y_pred, num_classes) that the paired bootstrap can compare: of classes,
# and of numbers (a regression task's; MAE: lower is better).
PAIRED_METRICS = {"ua": unweighted_accuracy, "wa": lambda y, p, _: weighted_accuracy(y, p),
                  "macro_f1": macro_f1, "weighted_f1": weighted_f1,
                  "ccc": lambda y, p, _: ccc(y, p), "pcc": lambda y, p, _: pcc(y, p),
                  "mae": lambda y, p, _: mae(y, p)}
