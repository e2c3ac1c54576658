"""Checkpoints: atomic saves, safe loads, resume discovery, pruning (a trained model is loaded
by :func:`mser.nets.load_model`).

Layout of an experiment dir::

    <exp-dir>/config.yaml               resolved config (model_conf, feature infos, classes, ...)
    <exp-dir>/checkpoints/epoch<N>.pt   every epoch (the last few and the best are kept)
    <exp-dir>/best.pt                   the model selected on the dev set: the best epoch, or
                                        with average_checkpoints N the mean of the N best

A checkpoint is a dict with ``model`` (state dict, normalisation statistics included),
``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``state`` (best metric, history, ...),
``seed``, ``world_size`` and ``git_commit``: tensors and plain Python types only, so that every
read is ``torch.load(weights_only=True)``, which cannot execute code. Random states are not
stored: the trainer reseeds every epoch from (seed, epoch, rank).
"""
import os
import pickle
import re
import shutil

import torch

from mser.utils.fileio import atomic_open

CHECKPOINT_RE = re.compile(r"epoch(\d+)\.pt$")


def save_checkpoint(path, checkpoint):
    with atomic_open(path, "wb") as f:
        torch.save(checkpoint, f)


class UnsafeCheckpointError(ValueError):
    """A checkpoint that only an unpickling able to run code could read."""


def load_checkpoint(path, device="cpu"):
    """The checkpoint dict at ``path``, read with ``weights_only=True``: tensors and plain
    types only; a file holding other Python objects is refused, never executed."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    try:
        return torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeCheckpointError(
            f"{path}: holds Python objects besides tensors and plain values, and mser never loads "
            f"a checkpoint in a way that can run code (torch.load weights_only=False). A "
            f"checkpoint of an older mser (random states in 'rng_states') or from an untrusted "
            f"source does this. Re-train, or, only if you made this file yourself, strip the "
            f"objects once: python -c \"import torch; c = torch.load('{path}', "
            f"weights_only=False); c.pop('rng_states', None); torch.save(c, '{path}')\" "
            f"({refused_global(e)})") from None


def refused_global(error):
    """The object torch's safe unpickler refused, from its message."""
    match = re.search(r"GLOBAL ([\w.]+)", str(error))
    return f"refused: {match.group(1)}" if match else f"refused: {type(error).__name__}"


def checkpoint_path(exp_dir, epoch):
    return os.path.join(exp_dir, "checkpoints", f"epoch{epoch}.pt")


def saved_epochs(exp_dir):
    directory = os.path.join(exp_dir, "checkpoints")
    if not os.path.isdir(directory):
        return []
    return sorted(int(m.group(1)) for m in map(CHECKPOINT_RE.match, os.listdir(directory)) if m)


def prune_checkpoints(exp_dir, keep_last, protect=()):
    """Delete epoch checkpoints except the last ``keep_last`` and the epochs in ``protect``."""
    epochs = saved_epochs(exp_dir)
    for epoch in epochs[:-keep_last] if keep_last > 0 else epochs:
        if epoch not in protect:
            os.remove(checkpoint_path(exp_dir, epoch))


def copy_checkpoint(source, target):
    """Atomically replace ``target`` with a copy of the checkpoint file ``source``."""
    with open(source, "rb") as src, atomic_open(target, "wb") as dst:
        shutil.copyfileobj(src, dst)


def average_checkpoints(paths):
    """The mean of the models in the checkpoints at ``paths`` (floating-point entries; others,
    such as integer counters, from the first) and their epochs; the rest of the checkpoint dict
    (optimiser, state, ...) is the first one's, with ``averaged_epochs`` added."""
    checkpoints = [load_checkpoint(path) for path in paths]
    first = checkpoints[0]
    model = {}
    for key, value in first["model"].items():
        if value.is_floating_point():
            total = sum(c["model"][key].double() for c in checkpoints)
            model[key] = (total / len(checkpoints)).to(value.dtype)
        else:
            model[key] = value
    return {**first, "model": model, "averaged_epochs": [c["epoch"] for c in checkpoints]}
