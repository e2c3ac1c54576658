"""Calibrated probabilities: temperature scaling (Guo et al., 2017, "On calibration of modern
neural networks") fitted on the dev set, and the expected calibration error (ECE) with its
reliability diagram.

A model trained with class weights and label smoothing and selected on a small dev set is
rarely calibrated: its softmax says 0.9 where it is right 70 % of the time (or the reverse).
Dividing the logits by one temperature T > 0 per stream condition, chosen to minimise the dev
set's negative log-likelihood, fixes most of that without changing any prediction (the argmax
of logits / T is the argmax of the logits). The trainer fits T at the end of training on the
dev predictions of best.pt and writes ``<exp-dir>/calibration.yaml``; decoding, mser-infer,
the timeline and the page read it.
"""
import os

import numpy as np
import yaml
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax

from mser.utils.fileio import atomic_write_text

CALIBRATION = "calibration.yaml"
ECE_BINS = 15  # equal-width confidence bins, as Guo et al.
TEMPERATURE_RANGE = (0.05, 20.0)


def softmax(logits, temperature=1.0):
    """Row-wise softmax of ``logits / temperature`` (N, C), in float64."""
    return np.exp(log_softmax(np.asarray(logits, np.float64) / temperature, axis=-1))


def negative_log_likelihood(probs, labels):
    """Mean -log p(label) (probabilities floored at 1e-12)."""
    picked = np.asarray(probs)[np.arange(len(labels)), np.asarray(labels)]
    return float(-np.log(np.maximum(picked, 1e-12)).mean())


def fit_temperature(logits, labels):
    """The T in :data:`TEMPERATURE_RANGE` minimising the NLL of ``softmax(logits / T)`` on
    ``labels`` (a bounded 1-D search over log T)."""
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
    if len(labels) == 0:
        raise ValueError("temperature scaling needs at least one labelled utterance")
    rows = np.arange(len(labels))

    def nll(log_t):
        return -log_softmax(logits / np.exp(log_t), axis=-1)[rows, labels].mean()

    low, high = np.log(TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded",
                                        options={"xatol": 1e-4}).x))


def reliability(probs, labels, bins=ECE_BINS):
    """Per confidence bin (equal width on [0, 1]): utterances, mean confidence (the top
    probability) and accuracy; empty bins have count 0 and NaN means."""
    probs, labels = np.asarray(probs), np.asarray(labels)
    confidence, correct = probs.max(-1), probs.argmax(-1) == labels
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    counts = np.bincount(which, minlength=bins)
    with np.errstate(invalid="ignore"):
        mean_confidence = np.bincount(which, confidence, bins) / counts
        accuracy = np.bincount(which, correct, bins) / counts
    return counts, mean_confidence, accuracy


def expected_calibration_error(probs, labels, bins=ECE_BINS):
    """ECE: the utterance-weighted mean over bins of |accuracy - mean confidence|."""
    counts, confidence, accuracy = reliability(probs, labels, bins)
    used = counts > 0
    return float((counts[used] * np.abs(accuracy[used] - confidence[used])).sum() / counts.sum())


def calibration_summary(logits, labels, temperature):
    """ECE and NLL before and after dividing ``logits`` by ``temperature``."""
    before, after = softmax(logits), softmax(logits, temperature)
    return {"ece": expected_calibration_error(before, labels),
            "ece_calibrated": expected_calibration_error(after, labels),
            "nll": negative_log_likelihood(before, labels),
            "nll_calibrated": negative_log_likelihood(after, labels)}


def save_calibration(exp_dir, temperatures, summaries, utterances,
                     method="temperature scaling on dev"):
    """<exp_dir>/calibration.yaml: per condition its temperature and ECE / NLL before and after
    on the ``utterances`` it was fitted on."""
    conditions = {c: {"temperature": round(t, 6),
                      **{k: round(v, 6) for k, v in summaries[c].items()}}
                  for c, t in temperatures.items()}
    atomic_write_text(os.path.join(exp_dir, CALIBRATION), yaml.safe_dump(
        {"method": method, "fitted_on_utts": int(utterances),
         "ece_bins": ECE_BINS, "conditions": conditions}, sort_keys=False))


def load_temperatures(model_dir):
    """{condition: temperature} of ``model_dir``'s calibration.yaml; {} without one."""
    path = os.path.join(model_dir, CALIBRATION)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as f:
        saved = yaml.safe_load(f) or {}
    temperatures = {c: float(v["temperature"]) for c, v in (saved.get("conditions") or {}).items()}
    bad = {c: t for c, t in temperatures.items() if not t > 0}
    if bad:
        raise ValueError(f"{path}: temperatures must be positive, got {bad}; re-run training's "
                         f"calibration or remove the file")
    return temperatures


def plot_reliability(panels, path, bins=ECE_BINS):
    """Reliability diagrams side by side: ``panels`` = [(title, probs, labels)], each bar the
    accuracy of a confidence bin against the diagonal of perfect calibration, ECE in the title."""
    from mser.utils.plotting import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    edges = np.linspace(0, 1, bins + 1)
    for ax, (title, probs, labels) in zip(axes[0], panels):
        counts, confidence, accuracy = reliability(probs, labels, bins)
        ax.bar(edges[:-1], np.nan_to_num(accuracy), width=1 / bins, align="edge",
               edgecolor="black", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1, label="calibrated")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="confidence (top probability)",
               ylabel="accuracy",
               title=f"{title}\nECE {100 * expected_calibration_error(probs, labels, bins):.2f} %"
                     f", {len(labels)} utts")
        ax.legend(loc="upper left")
    fig.tight_layout()
    save_figure(fig, path, dpi=100)
