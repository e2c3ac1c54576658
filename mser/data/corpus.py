"""What the corpus preparations (IEMOCAP, MELD, MSP-Podcast, CREMA-D, RAVDESS, EmoDB) share.

Each corpus module parses its distribution into :class:`Utterance` records, reports every
dropped file through :class:`Skips` (counted, named on the console and in ``<data>/skipped``),
checks its counts against the documented totals (:func:`check_counts`) and hands the records to
:func:`write_corpus`, which writes ``<data>/all``, ``<data>/fold<k>/{train,dev,test}`` (an
official split is ``fold1``), ``<data>/protocol`` and ``<data>/skipped``. Each module ends with
``register(Corpus(...))``: its name, prepare function and command-line options, which
``python -m mser.bin.prepare_corpus <name>`` offers (the modules are listed in
:mod:`mser.data.corpora`).

``<data>/protocol`` (evaluation protocol, test subsets, headline metric): see
:mod:`mser.data.protocol`.
"""
import argparse
import logging
import os
import re
import shutil
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable

import soundfile

from mser.io.datadir import (TASK_LABELS, UTT_FILES, DataDirError, c_sort_key,
                              validate_data_dir, write_data_dir)
from mser.data.folds import missing_classes
from mser.data.protocol import write_protocol
from mser.utils.fileio import atomic_write_text

LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
SPEAKER_ID_RE = re.compile(r"[^A-Za-z0-9.]+")


@dataclass
class Utterance:
    utt_id: str    # begins with the speaker id
    speaker: str
    session: str   # recording unit: dialogue, podcast, speaker
    label: str     # class name as in classes.txt
    text: str      # transcript; None in a corpus without transcripts (no text file)
    wav: str       # a file libsndfile reads; None in a text-only corpus (no wav.scp)
    duration: float  # seconds; None until read (IEMOCAP reads it for the selected classes only)
    split: str = ""  # official partition (train, dev, test, ...), "" for fold-based corpora
    turn: tuple = None  # (dialogue id, position in it) in a corpus of dialogues (utt2turn)
    targets: dict = None  # labels of other tasks, {task: value} (utt2<task>: TASK_LABELS)


def speaker_token(name):
    """A free-text speaker name as an id without spaces: ``Mr. Geller`` -> ``Mr.Geller``."""
    token = SPEAKER_ID_RE.sub("-", name.strip()).strip("-")
    return token or "unknown"


class Skips:
    """Dropped source files by reason; nothing is dropped without being counted and named."""

    def __init__(self):
        self.items = []  # (name, reason)

    def add(self, name, reason):
        self.items.append((name, reason))

    def __len__(self):
        return len(self.items)

    def report(self, out_dir=None, show=5):
        """Log the skips per reason (count and the first names); write ``<out_dir>/skipped``."""
        by_reason = {}
        for name, reason in self.items:
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            more = f" and {len(names) - show} more" if len(names) > show else ""
            logging.warning("skipped %d: %s: %s%s", len(names), reason, ", ".join(names[:show]),
                            more)
        if out_dir is not None:
            atomic_write_text(os.path.join(out_dir, "skipped"),
                              "".join(f"{name} {reason}\n" for name, reason in self.items))


def parse_expected(spec, keys):
    """``"train=9989,dev=1109"`` -> ``{"train": 9989, "dev": 1109}``; ``"none"`` -> ``{}``."""
    if spec is None or spec.strip().lower() in ("", "none"):
        return {}
    expected = {}
    for item in spec.split(","):
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or key not in keys or not value.strip().isdigit():
            raise DataDirError(f"--expected-counts: cannot parse {item!r}; expected "
                               f"'key=count,...' with keys from {', '.join(keys)}, or 'none'")
        expected[key] = int(value)
    return expected


def check_counts(counts, expected, source):
    """Log ``counts``; raise if one differs from its documented total in ``expected``."""
    logging.info("%s: %s", source, ", ".join(f"{k} {v}" for k, v in counts.items()))
    wrong = [f"{k}: found {counts.get(k, 0)}, documented {v}" for k, v in expected.items()
             if counts.get(k, 0) != v]
    if wrong:
        raise DataDirError(f"{source}: counts differ from the documented totals "
                           f"({'; '.join(wrong)}); is the copy complete and unmodified? Pass "
                           f"--expected-counts with this copy's totals (or 'none') to prepare it "
                           f"anyway")
    if expected:
        logging.info("%s: counts match the documented totals", source)


def wav_files(directory, skips, missing_hint):
    """(stem, path) of the .wav files in ``directory``, sorted; other files are named skips."""
    if not os.path.isdir(directory):
        raise DataDirError(f"{directory}: no such directory; {missing_hint}")
    for name in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(name)
        if name.startswith(".") or ext.lower() != ".wav":
            skips.add(name, "not a .wav file")
            continue
        yield stem, os.path.join(directory, name)


def _read_problem(path, check_signal):
    """(duration, None) of a readable sound file, else (None, what is wrong)."""
    if not os.path.isfile(path):
        return None, "missing"
    try:
        info = soundfile.info(path)
        if info.frames <= 0:
            return None, "no samples"
        if check_signal:
            data, _ = soundfile.read(path, dtype="float32", always_2d=True)
            if float(abs(data).max()) <= 1e-4:
                return None, "silent"
    except Exception:  # soundfile raises several types for unreadable audio
        with open(path, "rb") as f:
            if f.read(len(LFS_POINTER)) == LFS_POINTER:
                raise DataDirError(f"{path} is a Git LFS pointer, not audio: clone the corpus with "
                                   f"git-lfs installed (git lfs install; git lfs pull)") from None
        return None, "unreadable"
    return info.frames / info.samplerate, None


def audio_duration(path, name, skips, documented_problem=None, skip_bad=False):
    """Duration in seconds of a sound file, or None (recorded in ``skips``) when it is unusable.

    A file the corpus owners document as broken (``documented_problem``) is skipped when it is
    missing, does not read or is silent; any other such file is an error unless ``skip_bad``.
    """
    duration, problem = _read_problem(path, check_signal=documented_problem is not None)
    if problem is None:
        return duration
    skip_or_fail(name, problem, path, skips, documented_problem, skip_bad)
    return None


def read_duration(path, name):
    """Duration in seconds of a sound file that must be usable (a corpus without
    --skip-bad-audio); otherwise an error naming ``name``, the file and what is wrong."""
    duration, problem = _read_problem(path, check_signal=False)
    if problem is not None:
        raise DataDirError(f"utterance {name}: {path}: {problem}; fix or replace the file")
    return duration


def skip_or_fail(name, problem, where, skips, documented_problem=None, skip_bad=False):
    """Record an unusable file as a named skip if documented (or ``skip_bad``), else raise an
    error that names ``where`` it is."""
    if documented_problem is not None:
        skips.add(name, f"documented as broken ({documented_problem}): {problem}")
    elif skip_bad:
        skips.add(name, f"bad audio ({problem}); --skip-bad-audio")
    else:
        raise DataDirError(f"{name}: {problem} ({where}); fix or remove the file, or pass "
                           f"--skip-bad-audio to skip such files (they are listed)")


def utterance_tables(utts):
    """The per-utterance tables of a data dir."""
    tables = {name: {} for name in ("wav.scp", "text", "utt2spk", "utt2emo", "utt2sess", "utt2dur",
                                    "utt2turn")}
    for u in utts:
        if u.utt_id in tables["utt2spk"]:
            raise DataDirError(f"utterance id {u.utt_id} occurs twice")
        if u.wav is not None:
            tables["wav.scp"][u.utt_id] = u.wav
        if u.text is not None:  # None: a corpus without transcripts writes no text
            tables["text"][u.utt_id] = u.text
        tables["utt2spk"][u.utt_id] = u.speaker
        tables["utt2emo"][u.utt_id] = u.label
        tables["utt2sess"][u.utt_id] = u.session
        tables["utt2dur"][u.utt_id] = f"{u.duration:.3f}"
        if u.turn is not None:
            tables["utt2turn"][u.utt_id] = f"{u.turn[0]} {u.turn[1]:g}"
        for task, value in (u.targets or {}).items():
            tables.setdefault(f"utt2{task}", {})[u.utt_id] = value
    for name in set(tables) - set(UTT_FILES):
        if name not in TASK_LABELS:
            raise DataDirError(f"{name}: no task label table of mser.io.datadir.TASK_LABELS")
        if len(tables[name]) != len(utts):
            missing = next(u.utt_id for u in utts if u.utt_id not in tables[name])
            raise DataDirError(f"{name}: {len(utts) - len(tables[name])} utterance(s) have no "
                               f"{name[4:]} label (e.g. {missing}); a corpus gives a task's "
                               f"label for every utterance or for none")
    if not tables["text"]:
        del tables["text"]
    if tables["utt2turn"] and len(tables["utt2turn"]) != len(utts):
        raise DataDirError("some utterances have a dialogue turn and some none (utt2turn)")
    if not tables["utt2turn"]:
        del tables["utt2turn"]
    if not tables["wav.scp"]:  # a text-only corpus
        del tables["wav.scp"]
    elif len(tables["wav.scp"]) != len(utts):
        raise DataDirError("some utterances have audio and some none; a corpus is either "
                           "speech or text-only")
    return tables


def _write_checked(data_dir, tables, classes, check_wavs):
    write_data_dir(data_dir, tables)
    atomic_write_text(os.path.join(data_dir, "classes.txt"), "".join(c + "\n" for c in classes))
    problems = validate_data_dir(data_dir, check_wavs=check_wavs)
    if problems:
        raise DataDirError(f"{data_dir}: written data dir is invalid:\n  " + "\n  ".join(problems))


def write_prepared(out_dir, tables, classes, folds):
    """Write ``<out_dir>/all`` and ``<out_dir>/<fold>/{train,dev,test}``, each validated.

    Everything is written under ``<out_dir>/.prepare.tmp`` first and then moved into place, so
    an interrupted run leaves the previous output intact; stale fold dirs are removed.
    """
    tmp = os.path.join(out_dir, ".prepare.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _write_checked(os.path.join(tmp, "all"), tables, classes, check_wavs=True)
    for fold, subsets in folds.items():
        for subset, utt_ids in subsets.items():
            # The wavs were opened for "all"; subsets only reference them again.
            _write_checked(os.path.join(tmp, fold, subset),
                           {name: {u: t[u] for u in utt_ids} for name, t in tables.items()},
                           classes, check_wavs=False)
    produced = ["all", *folds]
    stale = [d for d in os.listdir(out_dir) if re.fullmatch(r"fold\d+", d) and d not in produced]
    for name in produced + stale:
        shutil.rmtree(os.path.join(out_dir, name), ignore_errors=True)
    for name in produced:
        os.replace(os.path.join(tmp, name), os.path.join(out_dir, name))
    os.rmdir(tmp)
    if stale:
        logging.info("%s: removed stale %s", out_dir, ", ".join(sorted(stale)))


def count_table(utts, classes, column):
    """A class x ``column(utt)`` count table, as text."""
    columns = sorted({column(u) for u in utts}, key=c_sort_key)
    counts = Counter((u.label, column(u)) for u in utts)
    rows = [["class", *columns, "total"]]
    for c in classes:
        rows.append([c, *(str(counts[c, k]) for k in columns),
                     str(sum(counts[c, k] for k in columns))])
    rows.append(["total", *(str(sum(counts[c, k] for c in classes)) for k in columns),
                 str(len(utts))])
    width = max(7, *(len(cell) + 1 for row in rows for cell in row))
    return "\n".join("".join(cell.rjust(width) for cell in row) for row in rows)


def fold_class_table(utts, folds, classes):
    """Utterances per fold subset (rows) and class (columns), as text."""
    label = {u.utt_id: u.label for u in utts}
    rows = [["subset", *classes, "total"]]
    for fold, subsets in folds.items():
        for subset, ids in subsets.items():
            counts = Counter(label[u] for u in ids)
            rows.append([f"{fold}/{subset}", *(str(counts[c]) for c in classes), str(len(ids))])
    width = max(7, *(len(cell) + 1 for row in rows for cell in row))
    return "\n".join("".join(cell.rjust(width) for cell in row) for row in rows)


def write_corpus(out_dir, utts, classes, folds, protocol, skips, by):
    """Write the data dirs, ``protocol`` and ``skipped``; log the skips and the counts per fold
    and per class x ``by`` = (name, function of an utterance).

    ``protocol``: dict with corpus, description, headline, metrics (see mser.data.protocol).
    ``skips``: None for a corpus that names its drops on the console as it reads them and
    writes no ``skipped`` (IEMOCAP, whose drops are label-file problems, not source files).
    """
    if not utts:
        raise DataDirError(f"no utterance left to write to {out_dir}")
    for fold, subsets in folds.items():
        for subset, ids in subsets.items():
            if not ids:
                raise DataDirError(f"{fold}/{subset} is empty; the corpus copy is too small for "
                                   f"this protocol")
    os.makedirs(out_dir, exist_ok=True)
    write_prepared(out_dir, utterance_tables(utts), classes, folds)
    write_protocol(out_dir, folds=folds, classes=classes, **protocol)
    if skips is not None:
        skips.report(out_dir)
    sizes = ", ".join(f"{fold} " + "/".join(str(len(s)) for s in subsets.values())
                      for fold, subsets in folds.items())
    logging.info("%s: wrote all (%d utterances, %.1f h) and %s (%s: %s)", out_dir, len(utts),
                 sum(u.duration for u in utts) / 3600, ", ".join(folds),
                 "/".join(next(iter(folds.values()))), sizes)
    logging.info("utterances per class and %s:\n%s", by[0], count_table(utts, classes, by[1]))
    logging.info("utterances per fold and class:\n%s", fold_class_table(utts, folds, classes))
    for fold, subset, lacking in missing_classes(utts, folds, classes):
        logging.warning("%s/%s has no %s utterance: its UA averages the other classes and its "
                        "model selection (dev) or score (test) never sees them (RESULTS.md's "
                        "pooled column does not depend on it); speaker folds that hold every "
                        "class: mser.data.folds.class_balanced_groups", fold, subset,
                        ", ".join(lacking))


@dataclass(frozen=True)
class Corpus:
    """A corpus as ``prepare_corpus <name>`` offers it.

    ``prepare(root, out_dir, expected_counts=..., **options)`` prepares it; ``add_arguments``
    adds its own options to its subparser, each named (dest) as a parameter of ``prepare``,
    whose default the option shows and takes (one home per default).
    """
    name: str
    prepare: Callable
    add_arguments: Callable
    description: str  # its --help text: the module docstring
    documented_totals: dict = field(default_factory=dict)  # the default --expected-counts
    count_keys: tuple = ()  # what --expected-counts may name; default: the documented totals

    def expected_counts(self, spec):
        """The totals to check: the documented ones, or those of ``--expected-counts spec``."""
        if spec is None:
            return self.documented_totals
        return parse_expected(spec, self.count_keys or tuple(self.documented_totals))


REGISTRY = {}  # name -> Corpus


def register(corpus):
    if corpus.name in REGISTRY:
        raise ValueError(f"corpus {corpus.name!r} is registered twice (by "
                         f"{REGISTRY[corpus.name].prepare.__module__} and "
                         f"{corpus.prepare.__module__}); pick another name")
    REGISTRY[corpus.name] = corpus


def add_skip_bad_audio(parser):
    parser.add_argument("--skip-bad-audio", action="store_true",
                        help="skip (and list) unreadable or missing audio the corpus does not "
                             "document as broken, instead of failing")


def positive_int(text):
    """An argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def fraction(text):
    """An argparse type: a number strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1), got {value}")
    return value


def add_speaker_folds(parser):
    """The options of a corpus in speaker folds (CREMA-D, RAVDESS, EmoDB)."""
    parser.add_argument("--num-folds", type=int, help="speaker folds (default: %(default)s)")
    parser.add_argument("--dev-speakers", type=int,
                        help="speakers of the next fold's group held out as dev "
                             "(default: %(default)s)")
