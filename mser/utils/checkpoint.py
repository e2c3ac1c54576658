"""Checkpoints: atomic saves, resume discovery, pruning, RNG state, and model loading.

Layout of an experiment dir::

    <exp-dir>/config.yaml               resolved config (model_conf, feature infos, classes, ...)
    <exp-dir>/checkpoints/epoch<N>.pt   every epoch (the last few and the best are kept)
    <exp-dir>/best.pt                   the epoch selected on the dev set

A checkpoint is a dict with ``model`` (state dict, normalisation statistics included),
``optimizer``, ``scheduler``, ``scaler``, ``epoch``, ``state`` (best metric, history, ...),
``rng_states`` (one per rank), ``seed`` and ``git_commit``.
"""
import os
import random
import re

import numpy as np
import torch

from mser.utils.config import load_config
from mser.utils.fileio import atomic_open

CHECKPOINT_RE = re.compile(r"epoch(\d+)\.pt$")


def save_checkpoint(path, checkpoint):
    with atomic_open(path, "wb") as f:
        torch.save(checkpoint, f)


def load_checkpoint(path, device="cpu"):
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: checkpoint not found")
    return torch.load(path, map_location=device, weights_only=False)


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


def rng_state(device):
    state = {"python": random.getstate(), "numpy": np.random.get_state(),
             "torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state, device):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def load_model(exp_dir, device="cpu", checkpoint="best.pt"):
    """(model in eval mode on ``device``, config dict) of a trained experiment dir.

    ``checkpoint`` is relative to ``exp_dir`` (e.g. ``checkpoints/epoch7.pt``) or absolute.
    """
    from mser.nets import build_model

    config = load_config(os.path.join(exp_dir, "config.yaml"))
    model = build_model(config["model_conf"], config.get("audio_info"), config.get("text_info"),
                        len(config["classes"]))
    state = load_checkpoint(os.path.join(exp_dir, checkpoint), device)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config
