"""Reading one fold's decoded condition (layout: see mser.scoring)."""
import os

import numpy as np

from mser.io.datadir import read_classes, read_table
from mser.utils.conditions import condition_order
from mser.utils.tasks import TASK_TYPES, labels_file

CALIBRATED_POSTERIORS = "posteriors_calibrated"  # with calibration.yaml (mser.utils.calibration)


def subset_suffix(subset):
    """What names a fold's test subset (data/protocol ``tests``) in file and dir names: nothing
    for ``test``, ``_<subset>`` for another one (MSP-Podcast's ``test2``)."""
    return "" if subset == "test" else f"_{subset}"


def decode_name(subset):
    """Decode dir of a fold's test subset: ``decode``, ``decode_test2``, ..."""
    return f"decode{subset_suffix(subset)}"


def decoded_conditions(fold_dir, subset="test"):
    """The conditions decoded in ``fold_dir`` (those with predictions), the full set first."""
    decode = os.path.join(fold_dir, decode_name(subset))
    names = os.listdir(decode) if os.path.isdir(decode) else []
    return sorted((n for n in names if os.path.exists(os.path.join(decode, n, "predictions"))),
                  key=condition_order)


def load_condition(fold_dir, condition, subset="test"):
    """Return (utt ids, reference indices, predicted indices, classes) or None if not decoded."""
    decode = os.path.join(fold_dir, decode_name(subset))
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


def load_posteriors(fold_dir, condition, utts, name="posteriors", subset="test"):
    """(N, C) posteriors of ``utts`` from a decoded condition's ``name`` file; None without one."""
    path = os.path.join(fold_dir, decode_name(subset), condition, name)
    if not os.path.exists(path):
        return None
    table = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            utt, *values = line.split()
            table[utt] = [float(v) for v in values]
    missing = [u for u in utts if u not in table]
    if missing:
        raise ValueError(f"{path}: {len(missing)} test utterance(s) have no posteriors (e.g. "
                         f"{missing[0]}); re-run the decoding stage")
    return np.array([table[u] for u in utts])


def decoded_tasks(fold_dir, condition, subset="test"):
    """{task: type} of the auxiliary tasks decoded under ``condition`` (``predictions_<task>``;
    a classification has ``classes_<task>.txt`` beside it)."""
    cond_dir = os.path.join(fold_dir, decode_name(subset), condition)
    names = sorted(os.listdir(cond_dir)) if os.path.isdir(cond_dir) else []
    tasks = [n.removeprefix("predictions_") for n in names if n.startswith("predictions_")]
    return {task: "classification" if f"classes_{task}.txt" in names else "regression"
            for task in tasks}


def load_task(fold_dir, condition, task, kind, subset="test"):
    """(labelled utt ids, references (class indices or numbers), outputs (N, C): one-hot rows or
    numbers, classes or None) of an auxiliary task decoded under ``condition``; None when the
    test data dir had no labels of it."""
    decode = os.path.join(fold_dir, decode_name(subset))
    ref_path = os.path.join(decode, labels_file(task))
    if not os.path.exists(ref_path):
        return None
    pred_path = os.path.join(decode, condition, f"predictions_{task}")
    classes_path = os.path.join(decode, condition, f"classes_{task}.txt")
    classes = read_classes(classes_path) if kind == "classification" else None
    task_kind = TASK_TYPES[kind]
    refs, preds = read_table(ref_path), read_table(pred_path)
    missing = sorted(set(refs) - set(preds))
    if missing:
        raise ValueError(f"{pred_path}: {len(missing)} labelled test utterance(s) have no "
                         f"prediction (e.g. {missing[0]}); re-run the decoding stage")
    utts = sorted(refs)
    targets = [task_kind.target(refs[u], classes) for u in utts]
    unknown = [u for u, t in zip(utts, targets) if t is None]
    if unknown:
        raise ValueError(f"{ref_path}: utterance {unknown[0]}: {task} {refs[unknown[0]]!r} is "
                         + (f"not in {classes_path}" if classes else "not a number"))
    return (utts, np.array(targets),
            np.stack([task_kind.read_prediction(preds[u], classes) for u in utts]), classes)
