"""``<data>/protocol``: how a recipe is evaluated, written by stage 0 and read by stages 4-5.

A Kaldi-style ``key value`` table (``awk '$1 == "tests"' data/protocol`` reads it in shell)::

    corpus RAVDESS
    description leave-4-actors-out, 6 folds (EmoBox speaker groups), dev = 2 actors of the next fold
    folds fold1 fold2 fold3 fold4 fold5 fold6
    tests test
    headline ua
    metrics ua wa
    classes neu cal hap sad ang fea dis sur

``tests``: the subsets of each fold that stage 4 decodes (MSP-Podcast: ``test test2``);
``headline``: the metric the corpus reports first (scores.txt, RESULTS.md); ``metrics``: the ones
it also reports. Metric names are those of :func:`mser.utils.metrics.score`.
"""
import os

from mser.io.datadir import read_table
from mser.utils.fileio import atomic_write_text

KEYS = ("corpus", "description", "folds", "tests", "headline", "metrics", "classes")
LIST_KEYS = ("folds", "tests", "metrics", "classes")
METRICS = ("ua", "wa", "macro_f1", "weighted_f1")


def write_protocol(out_dir, corpus, description, folds, headline, metrics, classes):
    """Write ``<out_dir>/protocol``; ``folds``: {fold name: {subset: ...}} (the subsets other
    than train and dev of the first fold are its ``tests``)."""
    if headline not in METRICS or not set(metrics) <= set(METRICS):
        raise ValueError(f"headline {headline!r} / metrics {metrics}: expected names of {METRICS}")
    tests = [name for name in next(iter(folds.values())) if name not in ("train", "dev")]
    fields = {"corpus": corpus, "description": " ".join(description.split()),
              "folds": " ".join(folds), "tests": " ".join(tests), "headline": headline,
              "metrics": " ".join(metrics), "classes": " ".join(classes)}
    atomic_write_text(os.path.join(out_dir, "protocol"),
                      "".join(f"{key} {value}\n" for key, value in fields.items()))


def read_protocol(path):
    """``{key: value}`` of a protocol file, the ``LIST_KEYS`` as lists; a clear error if it is
    missing or incomplete."""
    if not os.path.exists(path):
        raise ValueError(f"{path}: not found; stage 0 (local/data.sh) writes the evaluation "
                         f"protocol there (see mser/data/protocol.py)")
    protocol = read_table(path, allow_empty_value=True)
    missing = [key for key in KEYS if not protocol.get(key)]
    if missing:
        raise ValueError(f"{path}: no {', '.join(missing)} line; stage 0 writes it with "
                         f"mser.data.protocol.write_protocol (re-run stage 0)")
    for key in LIST_KEYS:
        protocol[key] = protocol[key].split()
    if protocol["headline"] not in METRICS:
        raise ValueError(f"{path}: headline {protocol['headline']!r} is not one of {METRICS}")
    return protocol
