"""Labelled clips of your own as a corpus, without code: a CSV/TSV table or class folders.

table: a CSV or TSV (by extension; a header line names the columns) with one row per clip: its
  audio path (relative to --audio-dir, default the table's directory), label, speaker and,
  optionally, transcript and official split (train / dev / test).
    python -m mser.bin.prepare_corpus table /corpora/nEMO data --table data.tsv \\
        --audio-dir samples --path-column file_id --label-column emotion \\
        --speaker-column speaker_id --text-column raw_text
folders: ``<root>/<label>/<file>.wav`` (the audiofolder layout of Hugging Face datasets); the
  speaker is the first group of --speaker-pattern matched against the file name.
    python -m mser.bin.prepare_corpus folders /corpora/my_clips data --speaker-pattern '^([^_]+)_'

Classes: every label found, sorted, or --classes a,b,c (in that order; rows of other labels are
skipped, counted and named). Folds: a split column gives the official split as one fold;
otherwise --num-folds speaker folds in which every test and dev set holds every class, the clips
of each class spread as evenly as the speakers allow (mser.data.folds.class_balanced_groups;
the classes too few speakers have are named), dev = --dev-speakers of the next fold's group
('all', the default: the whole group). Unreadable audio is an error naming the file, or with
--skip-bad-audio a named skip; no transcripts: no ``text`` (train an audio-only model).
"""
import csv
import os
import re

from mser.data.corpus import (Corpus, Skips, Utterance, add_skip_bad_audio, audio_duration,
                              check_counts, positive_int, register, speaker_token,
                              write_corpus)
from mser.data.folds import class_balanced_groups, official_folds, speaker_group_folds
from mser.io.datadir import DataDirError

SPLITS = ("train", "dev", "test")
COUNT_KEYS = ("utterances", "speakers")


def dev_speakers_arg(text):
    """An argparse type: 'all' or a positive number of speakers."""
    return text if text == "all" else positive_int(text)


def read_rows(path):
    """The rows of a CSV / TSV file (by extension; cells stripped) as dicts of its header."""
    if not os.path.isfile(path):
        raise DataDirError(f"{path}: no such table; give --table (relative to the corpus root)")
    delimiter = "\t" if path.lower().endswith((".tsv", ".tab")) else ","
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f, delimiter=delimiter)
        rows = [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in reader]
        header = [name.strip() for name in reader.fieldnames or ()]
    return header, rows


def table_records(root, table, audio_dir, path_column, label_column, speaker_column,
                  text_column, split_column):
    """(name, relative audio path, audio path, label, speaker, text, split) of every row of
    ``<root>/<table>``."""
    path = os.path.join(root, table)
    header, rows = read_rows(path)
    wanted = {"--path-column": path_column, "--label-column": label_column,
              "--speaker-column": speaker_column, "--text-column": text_column}
    missing = [f"{option} {name}" for option, name in wanted.items()
               if name and name not in header]
    if missing:
        raise DataDirError(f"{path}: no column {', '.join(missing)}; its columns: "
                           f"{', '.join(header)}")
    base = os.path.join(root, audio_dir) if audio_dir else os.path.dirname(path)
    has_split = split_column in header
    for line, row in enumerate(rows, 2):
        if not row[path_column] or not row[label_column] or not row[speaker_column]:
            raise DataDirError(f"{path} line {line}: empty path, label or speaker cell")
        yield (f"{path}:{line}", row[path_column], os.path.join(base, row[path_column]),
               row[label_column],
               row[speaker_column], row[text_column] if text_column else "",
               row[split_column] if has_split else "")


def folder_records(root, speaker_pattern):
    """(name, relative path, audio path, label, speaker, "", "") of every
    ``<root>/<label>/<file>.wav``."""
    if not speaker_pattern:
        raise DataDirError("folders: give --speaker-pattern, a regular expression whose first "
                           "group is the speaker in a file name (speaker-independent folds "
                           "need the speakers)")
    pattern = re.compile(speaker_pattern)
    if not os.path.isdir(root):
        raise DataDirError(f"{root}: no such directory")
    labels = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d))
                    and not d.startswith("."))
    if not labels:
        raise DataDirError(f"{root}: no class folders (<root>/<label>/<file>.wav)")
    for label in labels:
        for name in sorted(os.listdir(os.path.join(root, label))):
            if not name.lower().endswith(".wav"):
                continue
            match = pattern.search(name)
            if match is None or not match.groups() or not match.group(1):
                raise DataDirError(f"{root}/{label}/{name}: --speaker-pattern {speaker_pattern!r} "
                                   f"finds no speaker (group 1) in the file name")
            yield (f"{label}/{name}", f"{label}/{name}", os.path.join(root, label, name), label,
                   match.group(1), "", "")


def load_records(records, classes, skip_bad_audio):
    """(utterances, skips, counts, classes) of the records; ``classes`` '' keeps every label."""
    records = list(records)
    chosen = [c.strip() for c in classes.split(",") if c.strip()] if classes else \
        sorted({r[3] for r in records})
    utts, skips, ids = [], Skips(), set()
    for name, relative, path, label, speaker, text, split in records:
        if label not in chosen:
            skips.add(name, f"label {label} not in --classes")
            continue
        speaker = speaker_token(speaker)
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", os.path.splitext(relative)[0]).strip("-")
        utt_id = stem if stem.startswith(speaker) else f"{speaker}_{stem}"
        if utt_id in ids:
            raise DataDirError(f"{name}: utterance id {utt_id} (speaker + path) occurs twice; "
                               f"is the clip listed twice?")
        duration = audio_duration(path, name, skips, skip_bad=skip_bad_audio)
        if duration is None:
            continue
        ids.add(utt_id)
        utts.append(Utterance(utt_id, speaker, speaker, label, " ".join(text.split()),
                              os.path.abspath(path), duration, split))
    counts = {"utterances": len(utts), "speakers": len({u.speaker for u in utts})}
    absent = [c for c in chosen if not any(u.label == c for u in utts)]
    if absent:
        raise DataDirError(f"--classes {','.join(absent)}: no usable clip has that label")
    return utts, skips, counts, tuple(chosen)


def folds_of(utts, classes, num_folds, dev_speakers):
    """(folds, protocol description): the official split if the clips carry one, else speaker
    folds that hold every class."""
    splits = {u.split for u in utts}
    if splits != {""}:
        if "" in splits or not splits <= set(SPLITS) or "test" not in splits:
            raise DataDirError(f"split column: values {sorted(splits)}; expected train, dev and "
                               f"test on every row (or no split column: speaker folds)")
        return official_folds(utts), "the table's own train / dev / test split"
    speakers = len({u.speaker for u in utts})
    num_folds = min(num_folds, speakers)
    if dev_speakers == "all" and num_folds < 3:
        raise DataDirError(f"{num_folds} speaker folds with dev = the whole next group leave no "
                           f"training speakers; use at least 3 folds (there are {speakers} "
                           f"speakers) or --dev-speakers N")
    groups = class_balanced_groups(utts, num_folds, classes)
    folds = speaker_group_folds(utts, groups, dev_speakers)
    dev = "the next fold's group" if dev_speakers == "all" else \
        f"{dev_speakers} speaker(s) of the next fold's group"
    return folds, (f"{num_folds} speaker folds ({speakers} speakers, every class in every test "
                   f"and dev set), dev = {dev}")


def prepare_records(records, name, out_dir, classes, num_folds, dev_speakers, expected_counts,
                    skip_bad_audio):
    utts, skips, counts, classes = load_records(records, classes, skip_bad_audio)
    check_counts(counts, expected_counts, name)
    folds, description = folds_of(utts, classes, num_folds, dev_speakers)
    protocol = {"corpus": name, "headline": "ua", "metrics": ("ua", "wa"),
                "description": description}
    if not any(u.text for u in utts):
        for u in utts:
            u.text = None
    write_corpus(out_dir, utts, classes, folds, protocol, skips,
                 by=("speaker", lambda u: u.speaker))
    return utts


def prepare_table(root, out_dir, table="data.csv", audio_dir="", path_column="path",
                  label_column="label", speaker_column="speaker", text_column="",
                  split_column="split", classes="", num_folds=5, dev_speakers="all",
                  name="", expected_counts=None, skip_bad_audio=False):
    """Write ``<out_dir>/all``, the folds and ``protocol`` of the clips a table lists."""
    records = table_records(root, table, audio_dir, path_column, label_column, speaker_column,
                            text_column, split_column)
    return prepare_records(records, name or os.path.basename(os.path.abspath(root)), out_dir,
                           classes, num_folds, dev_speakers, expected_counts or {},
                           skip_bad_audio)


def prepare_folders(root, out_dir, speaker_pattern="", classes="", num_folds=5,
                    dev_speakers="all", name="", expected_counts=None, skip_bad_audio=False):
    """Write ``<out_dir>/all``, the folds and ``protocol`` of ``<root>/<label>/<file>.wav``."""
    return prepare_records(folder_records(root, speaker_pattern),
                           name or os.path.basename(os.path.abspath(root)), out_dir, classes,
                           num_folds, dev_speakers, expected_counts or {}, skip_bad_audio)


def add_common_arguments(parser):
    parser.add_argument("--classes", help="labels to keep, in this order (default: all, sorted)")
    parser.add_argument("--num-folds", type=int,
                        help="speaker folds, at most the speakers (default: %(default)s)")
    parser.add_argument("--dev-speakers", type=dev_speakers_arg,
                        help="speakers of the next fold's group held out as dev, or 'all' "
                             "(default: %(default)s)")
    parser.add_argument("--name", help="the corpus's name in RESULTS.md (default: the root's)")
    add_skip_bad_audio(parser)


def add_table_arguments(parser):
    parser.add_argument("--table", help="CSV / TSV under the root (default: %(default)s)")
    parser.add_argument("--audio-dir", help="where the paths start, under the root (default: "
                                            "the table's directory)")
    for column, what in (("path", "audio file"), ("label", "emotion"), ("speaker", "speaker"),
                         ("text", "transcript; '' for none"),
                         ("split", "train/dev/test; used when present")):
        parser.add_argument(f"--{column}-column", help=f"column of the {what} "
                                                       f"(default: %(default)s)")
    add_common_arguments(parser)


def add_folder_arguments(parser):
    parser.add_argument("--speaker-pattern",
                        help="regular expression; group 1 is the speaker in a file name")
    add_common_arguments(parser)


register(Corpus("table", prepare_table, add_table_arguments, __doc__, count_keys=COUNT_KEYS))
register(Corpus("folders", prepare_folders, add_folder_arguments, __doc__,
                count_keys=COUNT_KEYS))
