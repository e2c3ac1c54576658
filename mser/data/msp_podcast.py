"""MSP-Podcast (release 1.11 / 1.12 layout) to Kaldi data dirs with the official partitions.

Read under the corpus root:
  Labels/labels_consensus.csv   FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set
  Audios/<FileName>             e.g. MSP-PODCAST_0001_0008.wav (16 kHz mono)
  Transcripts/<stem>.txt        the transcript of one speaking turn
EmoClass: A anger, S sadness, H happiness, U surprise, F fear, D disgust, C contempt, N neutral,
O other, X no agreement. Class sets: ``8class`` (all but O and X), ``4class`` (N H S A).
Split_Set: Train -> fold1/train, Development (Validation in older releases) -> fold1/dev,
Test1 -> fold1/test, Test2 -> fold1/test2 when it has labelled rows; rows of any other partition
(e.g. an unlabelled Test3) are named skips. SpkrID "Unknown" makes the turn its own speaker;
utt2sess holds the podcast (MSP-PODCAST_0001). A turn without a transcript keeps an empty text
(counted and named in the log); a missing or unreadable wav is an error unless skip_bad_audio.

The totals differ per release and are in each release's documentation: pass them as
``expected_counts`` ({Split_Set: rows}); without it the counts are printed, not checked.
Streaming: the CSV is read row by row and each wav's header once (audio is never decoded); only
one line of metadata per kept turn is held, for the sorted tables.
"""
import csv
import logging
import os
from collections import Counter

from mser.data.corpus import (Corpus, Skips, Utterance, add_skip_bad_audio, audio_duration,
                              check_counts, register, write_corpus)
from mser.io.datadir import DataDirError
from mser.data.folds import official_folds

CODES = {"N": "neu", "H": "hap", "S": "sad", "A": "ang", "U": "sur", "F": "fea", "D": "dis",
         "C": "con", "O": "oth", "X": "none"}
CLASS_SETS = {"8class": ("neu", "hap", "sad", "ang", "sur", "fea", "dis", "con"),
              "4class": ("neu", "hap", "sad", "ang")}
PARTITIONS = {"Train": "train", "Development": "dev", "Validation": "dev", "Test1": "test",
              "Test2": "test2"}
COLUMNS = ("FileName", "EmoClass", "SpkrID", "Split_Set")
DIMENSIONS = {"arousal": "EmoAct", "valence": "EmoVal", "dominance": "EmoDom"}  # utt2<task>


def speaker_id(spkr_id, stem):
    """Zero-padded ``spk00127`` (C order of speakers = of their utterances); unknown: the turn."""
    if spkr_id.strip().isdigit():
        return f"spk{int(spkr_id):05d}"
    if spkr_id.strip().lower() in ("", "unknown"):
        return f"unknown-{stem}"
    raise DataDirError(f"SpkrID {spkr_id!r} of {stem}: expected a number or 'Unknown'")


def read_transcript(path):
    if not os.path.isfile(path):
        return None
    with open(path, encoding="utf-8", errors="replace") as f:
        return " ".join(f.read().split())


def iter_rows(path):
    """(line number, row) of labels_consensus.csv, checked for the needed columns."""
    with open(path, encoding="utf-8-sig", newline="") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
        if missing:
            raise DataDirError(f"{path}: missing column(s) {', '.join(missing)}; expected the "
                               f"MSP-Podcast header FileName,EmoClass,...,SpkrID,Gender,Split_Set")
        for row in reader:
            yield reader.line_num, row


def dimensions(row, where):
    """{arousal, valence, dominance} of a row (EmoAct, EmoVal, EmoDom: mean ratings, 1-7), or
    None when the CSV has no such columns."""
    if not all(column in row for column in DIMENSIONS.values()):
        return None
    values = {dim: (row[column] or "").strip() for dim, column in DIMENSIONS.items()}
    for dim, value in values.items():
        try:
            float(value)
        except ValueError:
            raise DataDirError(f"{where}: {DIMENSIONS[dim]} {value!r} is not a number") from None
    return values


def load_msp_podcast(root, class_set="8class", skip_bad_audio=False):
    """(utterances, skips, rows per Split_Set) of labels_consensus.csv."""
    labels = os.path.join(root, "Labels", "labels_consensus.csv")
    if not os.path.isfile(labels):
        raise DataDirError(f"{root}: Labels/labels_consensus.csv not found; pass the root of an "
                           f"MSP-Podcast release (1.11 / 1.12 layout; set MSP_PODCAST in db.sh)")
    classes = CLASS_SETS[class_set]
    utts, skips, counts, dropped, no_text = [], Skips(), Counter(), Counter(), []
    for lineno, row in iter_rows(labels):
        stem, ext = os.path.splitext(row["FileName"].strip())
        partition, code = row["Split_Set"].strip(), row["EmoClass"].strip()
        counts[partition] += 1
        if partition not in PARTITIONS:
            skips.add(stem, f"partition {partition!r} is not used (Train, Development, Test1, "
                            f"Test2)")
            continue
        if code not in CODES:
            raise DataDirError(f"{labels}:{lineno}: EmoClass {code!r} is not one of "
                               f"{' '.join(CODES)}")
        if CODES[code] not in classes:
            dropped[CODES[code]] += 1
            continue
        speaker = speaker_id(row["SpkrID"], stem)
        wav = os.path.join(root, "Audios", stem + (ext or ".wav"))
        duration = audio_duration(wav, stem, skips, skip_bad=skip_bad_audio)
        if duration is None:
            continue
        text = read_transcript(os.path.join(root, "Transcripts", stem + ".txt"))
        if text is None:
            no_text.append(stem)
        utt_id = speaker if speaker.startswith("unknown-") else f"{speaker}_{stem}"
        utts.append(Utterance(utt_id, speaker, stem.rsplit("_", 1)[0], CODES[code], text or "",
                              os.path.abspath(wav), duration, split=PARTITIONS[partition],
                              targets=dimensions(row, f"{labels}:{lineno}")))
    if dropped:
        logging.info("%s: rows of other classes dropped: %s", class_set,
                     ", ".join(f"{c} {n}" for c, n in sorted(dropped.items())))
    if no_text:
        logging.warning("%d turn(s) have no Transcripts/<name>.txt and keep an empty text: %s%s",
                        len(no_text), ", ".join(no_text[:5]), " ..." if len(no_text) > 5 else "")
    return utts, skips, dict(counts)


def prepare_msp_podcast(root, out_dir, class_set="8class", expected_counts=None,
                        skip_bad_audio=False):
    """Write ``<out_dir>/all``, ``fold1/{train,dev,test[,test2]}`` and ``protocol``."""
    utts, skips, counts = load_msp_podcast(root, class_set, skip_bad_audio)
    check_counts(counts, expected_counts or {}, f"{root}/Labels/labels_consensus.csv rows")
    classes = CLASS_SETS[class_set]
    extra = ("test2",) if any(u.split == "test2" for u in utts) else ()
    protocol = {"corpus": "MSP-Podcast", "headline": "macro_f1",
                "metrics": ("macro_f1", "ua", "wa"),
                "description": f"official partitions Train/Development/Test1"
                               f"{'/Test2' if extra else ''} ({class_set}; EmoBox uses Test1)"}
    write_corpus(out_dir, utts, classes, official_folds(utts, extra), protocol, skips,
                 by=("partition", lambda u: u.split))
    return utts


def add_arguments(parser):
    parser.add_argument("--class-set", choices=sorted(CLASS_SETS),
                        help="8class: all but O and X; 4class: N H S A (default: %(default)s)")
    add_skip_bad_audio(parser)


register(Corpus("msp_podcast", prepare_msp_podcast, add_arguments, __doc__,
                count_keys=tuple(PARTITIONS)))
