"""Tasks: what a model predicts from its fused representation, one head each. A task type owns
its labels (the data dir's ``utt2<task>``; the emotion categories' is ``utt2emo``), its loss,
its metrics and the text of its decoded output; the trainer, decode and scoring loop over a
config's tasks and never ask what kind they are.

    tasks:                                               # a training config (default: emotion)
      emotion: {type: classification}                    # utt2emo, classes.txt: the model's categories
      sentiment: {type: classification, weight: 0.5}     # utt2sentiment; classes: those of train
      arousal: {type: regression, loss: ccc, weight: 0.5}  # utt2arousal, numbers

``emotion`` is the first task: the categories of ``classes.txt`` that model selection,
calibration, the stream conditions' scores and RESULTS.md are about; the others are auxiliary
heads on the same decoded queries, trained with their weighted losses, decoded and scored
beside it. An utterance without a label of an auxiliary task (no line in its ``utt2<task>``)
adds nothing to that task's loss or scores. Adding a task type: a class here with the methods
of :class:`Classification`, registered in :data:`TASK_TYPES`.
"""
import numpy as np
import torch

from mser.utils.metrics import ccc, mae, pcc, score as category_scores

PRIMARY = "emotion"


def labels_file(task):
    """The data-dir table of a task's labels: ``utt2emo`` for the emotion categories, else
    ``utt2<task>``."""
    return "utt2emo" if task == PRIMARY else f"utt2{task}"


class Classification:
    """Categories: cross-entropy, UA / WA / macro and weighted F1; decoded as the label."""
    losses = ("ce",)
    metrics = ("ua", "wa", "macro_f1", "weighted_f1")
    headline = "ua"
    missing = -1

    @staticmethod
    def text(value):
        """A metric's value as reported: a percentage."""
        return f"{100 * value:.2f}"

    @staticmethod
    def outputs(classes):
        return len(classes)

    @staticmethod
    def labelled(targets):
        """Which of ``targets`` (N,) are labels (not the missing value)."""
        return np.asarray(targets) >= 0

    @staticmethod
    def target(value, classes):
        """The class index of a label text; None if it is not one of ``classes``."""
        return classes.index(value) if value in classes else None

    @staticmethod
    def loss(output, target, spec):
        """Mean cross-entropy over the labelled utterances (target -1: none)."""
        return torch.nn.functional.cross_entropy(output.float(), target, ignore_index=-1)

    @staticmethod
    def score(ref, output, classes):
        """The emotion categories' metrics (:func:`mser.utils.metrics.score`: with per-class
        recall and the confusion matrix) of the argmax of ``output``."""
        return category_scores(ref, np.asarray(output).argmax(-1), classes)

    @staticmethod
    def prediction(row, classes):
        """The class of an output row (logits)."""
        return classes[int(np.argmax(row))]

    @staticmethod
    def read_prediction(text, classes):
        """The (1, C) one-hot row of a decoded label (what :meth:`score` takes)."""
        row = np.zeros(len(classes))
        row[classes.index(text)] = 1.0
        return row


class Regression:
    """A number per utterance (a rated dimension): concordance correlation (CCC) or squared
    error as the loss; CCC, Pearson correlation and mean absolute error as metrics."""
    losses = ("ccc", "mse")
    metrics = ("ccc", "pcc", "mae")
    headline = "ccc"
    missing = float("nan")

    @staticmethod
    def text(value):
        """A metric's value as reported: a correlation or an error in the labels' units."""
        return f"{value:.3f}"

    @staticmethod
    def outputs(classes):
        return 1

    @staticmethod
    def labelled(targets):
        return ~np.isnan(np.asarray(targets, dtype=float))

    @staticmethod
    def target(value, classes):
        try:
            number = float(value)
        except ValueError:
            return None
        return number if np.isfinite(number) else None

    @staticmethod
    def loss(output, target, spec):
        """1 - CCC of the batch's labelled utterances (the Odyssey 2024 challenge's objective),
        or their mean squared error; 0 (with a gradient path) for a batch without labels."""
        labelled = ~torch.isnan(target)
        pred, target = output.float()[:, 0][labelled], target[labelled].float()
        if len(target) < 2:
            return output.sum() * 0.0
        if spec["loss"] == "mse":
            return torch.mean((pred - target) ** 2)
        return 1.0 - concordance(pred, target)

    @staticmethod
    def score(ref, output, classes):
        ref, pred = np.asarray(ref, dtype=float), np.asarray(output, dtype=float).reshape(-1)
        return {"ccc": ccc(ref, pred), "pcc": pcc(ref, pred), "mae": mae(ref, pred),
                "num_utts": int(len(ref))}

    @staticmethod
    def prediction(row, classes):
        """The number of an output row (4 decimals)."""
        return round(float(row[0]), 4)

    @staticmethod
    def read_prediction(text, classes):
        return np.array([float(text)])


TASK_TYPES = {"classification": Classification, "regression": Regression}
TASK_KEYS = ("type", "weight", "loss")
METRIC_NAMES = {"ua": "UA", "wa": "WA", "macro_f1": "F1", "weighted_f1": "wF1", "ccc": "CCC",
                "pcc": "PCC", "mae": "MAE"}


def concordance(pred, target):
    """Lin's concordance correlation coefficient of two 1-D tensors (population moments)."""
    pred_mean, target_mean = pred.mean(), target.mean()
    covariance = ((pred - pred_mean) * (target - target_mean)).mean()
    return 2 * covariance / (pred.var(unbiased=False) + target.var(unbiased=False)
                             + (pred_mean - target_mean) ** 2 + 1e-8)


class TaskConfigError(ValueError):
    """A ``tasks:`` section that cannot be trained; the message names the key."""


def resolve_tasks(declared):
    """{task: {type, weight, loss}} of a config's ``tasks`` ({} or None: emotion alone), each
    checked, ``emotion`` (a classification, which must be there) first, the others in their
    order."""
    declared = declared or {PRIMARY: {}}
    if not isinstance(declared, dict):
        raise TaskConfigError(f"tasks: expected a mapping of task name -> {{type, weight, loss}}, "
                              f"got {declared!r}")
    if PRIMARY not in declared:
        raise TaskConfigError(f"tasks: {list(declared)} without {PRIMARY} (the categories of "
                              f"classes.txt, which selection and scoring are about); a model "
                              f"without it is not supported yet")
    tasks = {}
    for name, given in sorted(declared.items(), key=lambda item: item[0] != PRIMARY):
        given = dict(given or {})
        if not str(name).isidentifier() or not str(name).islower():
            raise TaskConfigError(f"tasks: {name!r} is no task name (lower-case, its labels are "
                                  f"the data dir's utt2<name>)")
        unknown = sorted(set(given) - set(TASK_KEYS))
        if unknown:
            raise TaskConfigError(f"tasks.{name}: unknown key(s) {unknown}; allowed: "
                                  f"{list(TASK_KEYS)}")
        kind = given.get("type", "classification")
        if kind not in TASK_TYPES:
            raise TaskConfigError(f"tasks.{name}.type: {kind!r} is not one of {list(TASK_TYPES)}")
        if name == PRIMARY and kind != "classification":
            raise TaskConfigError(f"tasks.{PRIMARY}: the emotion categories are a "
                                  f"classification (got {kind!r})")
        loss = given.get("loss", TASK_TYPES[kind].losses[0])
        if loss not in TASK_TYPES[kind].losses:
            raise TaskConfigError(f"tasks.{name}.loss: {loss!r} is not one of "
                                  f"{list(TASK_TYPES[kind].losses)} (type {kind})")
        weight = given.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight <= 0:
            raise TaskConfigError(f"tasks.{name}.weight: {weight!r} is not a positive number")
        tasks[name] = {"type": kind, "weight": float(weight), "loss": loss}
    return tasks


def auxiliary(tasks):
    """The tasks besides the emotion categories, in order."""
    return {name: spec for name, spec in tasks.items() if name != PRIMARY}


def signed_text(kind, value):
    """A difference in a metric of task type ``kind``, as it reports it, with its sign."""
    return ("+" if value >= 0 else "") + kind.text(value)


def task_type(spec):
    return TASK_TYPES[spec["type"]]
