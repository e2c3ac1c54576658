"""MELD (MELD.Raw) to Kaldi data dirs with the official train/dev/test split.

Found by name at any depth under the corpus root (MELD.Raw.tar.gz and its train/dev/test
tarballs unpacked), each exactly once (identical copies are fine):
  train_sent_emo.csv, dev_sent_emo.csv, test_sent_emo.csv
      Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,
      StartTime,EndTime
  train_splits/, dev_splits_complete/, output_repeated_splits_test/   clips dia<D>_utt<U>.mp4
Documented totals: 9,989 / 1,109 / 2,610 CSV rows (train / dev / test); 7 emotions (neutral joy
surprise anger sadness disgust fear), 3 sentiments (neutral positive negative).

Audio: the first audio stream of each clip is decoded with PyAV (FFmpeg), averaged to mono and
resampled to 16 kHz, and written once as 16-bit wav to ``<wav_dir>/<split>/dia<D>_utt<U>.wav``
(``nj`` processes; a re-run reuses the wavs). Documented problems are named skips: dev
dia110_utt7 has no clip (MELD issues #22, #27), train dia125_utt3 is corrupted (#39). Any other
missing or undecodable clip is an error unless ``skip_bad_audio``. Clips without a CSV row (e.g.
dev dia66_utt9, "safe to ignore" in #22) are counted and named.

Text: the CSVs are UTF-8 with Windows-1252 debris. :func:`normalize_text` decodes a line that is
not valid UTF-8 as Windows-1252, repairs UTF-8 that was decoded as Windows-1252 / Latin-1 and
re-encoded ("heâ€™s", "he\\xe2\\x80\\x99s" -> "he’s"), maps stray C1 control characters to their
Windows-1252 punctuation (U+0092 -> ’), then writes typographic punctuation as ASCII (’ ‘ -> ',
“ ” -> ", – — -> -, … -> ..., no-break space -> space) and collapses white space. The log says
how many transcripts each step changed.

Text-only (``text_only``): only the three CSVs are needed (no clips, nothing decoded); the
data dirs have ``text`` but no ``wav.scp``, durations come from the CSV's StartTime/EndTime, and
a text-only model trains on them (``conf/tuning/text_only.yaml``; stage 1 is skipped).

Dialogues: utt2turn holds each utterance's dialogue (``<split>_dia<D>``) and Utterance_ID, the
order of the dialogue context stream (:mod:`mser.data.dialogue`).

Protocol: the official split (dev = the official dev set; MELD is split by dialogue, so the main
characters speak in all three), as EmoBox does; headline metric weighted F1.
"""
import csv
import io
import logging
import os
import re
from collections import Counter
from multiprocessing import Pool

import soundfile

from mser.data.corpus import (Corpus, Skips, Utterance, add_skip_bad_audio, check_counts,
                              positive_int, register, skip_or_fail, speaker_token,
                              write_corpus)
from mser.io.datadir import DataDirError
from mser.data.folds import official_folds
from mser.features.audio import decode_with_av
from mser.utils.fileio import atomic_open

SPLITS = {"train": ("train_sent_emo.csv", "train_splits"),
          "dev": ("dev_sent_emo.csv", "dev_splits_complete"),
          "test": ("test_sent_emo.csv", "output_repeated_splits_test")}
COLUMNS = ("Sr No.", "Utterance", "Speaker", "Emotion", "Sentiment", "Dialogue_ID", "Utterance_ID",
           "Season", "Episode", "StartTime", "EndTime")
CLASS_SETS = {"emotion": ("neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"),
              "sentiment": ("neutral", "positive", "negative")}
DOCUMENTED_TOTALS = {"train": 9989, "dev": 1109, "test": 2610}
DOCUMENTED_PROBLEMS = {("dev", 110, 7): "no clip in dev_splits_complete, MELD issues #22 #27",
                       ("train", 125, 3): "corrupted clip, MELD issue #39"}
CLIP_RE = re.compile(r"dia(\d+)_utt(\d+)\.mp4")
TIMESTAMP_RE = re.compile(r"(\d+):(\d\d):(\d\d),(\d{1,3})")  # 3 train rows have 2 digits
SAMPLE_RATE = 16000
LONG_CLIP_SECONDS = 30.0

MOJIBAKE_RE = re.compile("[\u00c2-\u00f4][\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e"
                         "\u0192\u02c6\u02dc\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030"
                         "\u2039\u203a\u20ac\u2122]{1,3}")
C1_RE = re.compile("[\u0080-\u009f]")
ASCII_PUNCTUATION = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201a": "'", "\u2032": "'",
                                   "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u2033": '"',
                                   "\u2013": "-", "\u2014": "-", "\u2015": "-", "\u2026": "...",
                                   "\u00a0": " ", "\u00ad": ""})


def _to_byte(char):
    try:
        return char.encode("cp1252")
    except UnicodeEncodeError:
        return char.encode("latin-1")  # C1 controls that cp1252 leaves undefined


def _repair_mojibake(match):
    try:
        return b"".join(_to_byte(c) for c in match.group()).decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return match.group()


def _c1_to_cp1252(match):
    try:
        return match.group().encode("latin-1").decode("cp1252")
    except UnicodeDecodeError:  # 0x81 0x8d 0x8f 0x90 0x9d: undefined in Windows-1252
        return ""


def decode_line(raw):
    """A CSV line as text: UTF-8, or Windows-1252 (via Latin-1, C1 fixed later) when invalid."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("latin-1"), True


def normalize_text(text):
    """(ASCII-punctuated text, steps that changed it) -- see the module docstring."""
    steps = []
    for name, pattern, repl in (("mojibake", MOJIBAKE_RE, _repair_mojibake),
                                ("windows-1252", C1_RE, _c1_to_cp1252)):
        fixed = pattern.sub(repl, text)
        if fixed != text:
            steps.append(name)
            text = fixed
    ascii_text = " ".join(text.translate(ASCII_PUNCTUATION).split())
    if ascii_text != " ".join(text.split()):
        steps.append("punctuation")
    return ascii_text, steps


def find_by_name(root, names):
    """``{name: path}`` of each file or directory in ``names`` under ``root`` (exactly one each)."""
    found = {name: [] for name in names}
    for directory, subdirs, files in os.walk(root):
        for name in subdirs + files:
            if name in found:
                found[name].append(os.path.join(directory, name))
    paths = {}
    for name, hits in found.items():
        if not hits:
            raise DataDirError(f"{root}: {name} not found at any depth; unpack MELD.Raw.tar.gz "
                               f"and its train/dev/test tarballs there (set MELD in db.sh)")
        if len(hits) > 1 and not (all(os.path.isfile(h) for h in hits)
                                  and len({open(h, "rb").read() for h in hits}) == 1):
            raise DataDirError(f"{root}: {name} found {len(hits)} times with different content "
                               f"({', '.join(sorted(hits))}); keep one")
        paths[name] = sorted(hits)[0]
    return paths


def read_csv(path, split, counts):
    """The rows of one MELD CSV as dicts, text normalised; ``counts`` gathers the text fixes."""
    with open(path, "rb") as f:
        lines = []
        for raw in f.read().splitlines():
            line, cp1252 = decode_line(raw)
            counts["windows-1252 line"] += cp1252
            lines.append(line)
    reader = csv.DictReader(io.StringIO("\n".join(lines) + "\n"))
    missing = [c for c in COLUMNS if c not in (reader.fieldnames or ())]
    if missing:
        raise DataDirError(f"{path}: missing column(s) {', '.join(missing)}; expected the MELD "
                           f"header {','.join(COLUMNS)}")
    rows, seen = [], {}
    for row in reader:
        lineno = reader.line_num
        try:
            dia, utt = int(row["Dialogue_ID"]), int(row["Utterance_ID"])
        except (TypeError, ValueError):
            raise DataDirError(f"{path}:{lineno}: Dialogue_ID and Utterance_ID must be integers, "
                               f"got {row['Dialogue_ID']!r}, {row['Utterance_ID']!r}") from None
        if (dia, utt) in seen:
            raise DataDirError(f"{path}:{lineno}: dia{dia}_utt{utt} repeats line {seen[dia, utt]}")
        seen[dia, utt] = lineno
        for column in ("Emotion", "Sentiment"):
            classes = CLASS_SETS[column.lower()]
            if row[column] not in classes:
                raise DataDirError(f"{path}:{lineno}: {column} {row[column]!r} is not one of "
                                   f"{', '.join(classes)}")
        text, steps = normalize_text(row["Utterance"] or "")
        counts["transcripts"] += 1
        counts["changed"] += bool(steps)
        for step in steps:
            counts[step] += 1
        rows.append({"split": split, "dia": dia, "utt": utt, "speaker": row["Speaker"] or "",
                     "emotion": row["Emotion"], "sentiment": row["Sentiment"], "text": text,
                     "start": row["StartTime"], "end": row["EndTime"],
                     "where": f"{path}:{lineno}"})
    return rows


def subtitle_seconds(stamp, where):
    """Seconds of an ``H:MM:SS,mmm`` subtitle time stamp (the CSV's StartTime / EndTime); the
    digits after the comma are a decimal fraction."""
    match = TIMESTAMP_RE.fullmatch(stamp.strip())
    if match is None:
        raise DataDirError(f"{where}: time stamp {stamp!r} is not H:MM:SS,mmm")
    hours, minutes, seconds, fraction = match.groups()
    return int(hours) * 3600 + int(minutes) * 60 + int(seconds) + float("0." + fraction)


def dialogue_turn(row):
    """(dialogue id, position) of a CSV row: dialogues are numbered per split."""
    return f"{row['split']}_dia{row['dia']}", row["utt"]


def text_utterances(rows, label):
    """(utterances, skips) of a text-only corpus: every CSV row, no audio; the duration is the
    subtitle's (EndTime - StartTime), 0.001 s where the CSV's times are not increasing."""
    utts, skips, bad_times = [], Skips(), []
    for row in rows:
        name = f"{row['split']}/dia{row['dia']}_utt{row['utt']}"
        duration = (subtitle_seconds(row["end"], row["where"])
                    - subtitle_seconds(row["start"], row["where"]))
        if duration <= 0:
            bad_times.append(name)
            duration = 0.001
        speaker = speaker_token(row["speaker"])
        utts.append(Utterance(f"{speaker}_{name.replace('/', '_')}", speaker,
                              f"{row['split']}_dia{row['dia']}", row[label], row["text"], None,
                              duration, split=row["split"], turn=dialogue_turn(row),
                              targets={"sentiment": row["sentiment"]}))
    if bad_times:
        logging.warning("%d CSV row(s) end before they start (utt2dur 0.001 s; the text is "
                        "kept): %s", len(bad_times), ", ".join(bad_times[:5]))
    return utts, skips


def convert_clip(job):
    """Decode ``src`` (mp4) to a 16 kHz mono 16-bit wav at ``dst`` unless it exists.

    Returns (key, duration in seconds or None, problem or None).
    """
    key, src, dst = job
    if os.path.isfile(dst):
        info = soundfile.info(dst)
        return key, info.frames / info.samplerate, None
    if not os.path.isfile(src):
        return key, None, "no clip"
    try:
        samples = decode_with_av(src, SAMPLE_RATE)
    except ValueError as e:
        return key, None, str(e)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    with atomic_open(dst, "wb") as f:
        soundfile.write(f, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")
    return key, samples.size / SAMPLE_RATE, None


def read_meld(root, text_only=False):
    """(paths of the CSVs and clip folders (no folders when ``text_only``), CSV rows, rows per
    split)."""
    paths = find_by_name(root, [name for pair in SPLITS.values()
                                for name in (pair[:1] if text_only else pair)])
    text_counts, rows, counts = Counter(), [], {}
    for split, (csv_name, _) in SPLITS.items():
        split_rows = read_csv(paths[csv_name], split, text_counts)
        counts[split] = len(split_rows)
        rows += split_rows
    logging.info("text: %d of %d transcripts normalised (%d repaired mojibake, %d with "
                 "Windows-1252 control characters, %d typographic punctuation to ASCII; %d lines "
                 "not UTF-8)",
                 text_counts["changed"], text_counts["transcripts"], text_counts["mojibake"],
                 text_counts["windows-1252"], text_counts["punctuation"],
                 text_counts["windows-1252 line"])
    return paths, rows, counts


def decode_clips(paths, rows, wav_dir, label="emotion", nj=1, skip_bad_audio=False):
    """(utterances, skips): every CSV row whose clip decodes; the rest named skips or an error."""
    skips = Skips()
    labelled = {(r["split"], r["dia"], r["utt"]) for r in rows}
    for split, (_, clip_dir) in SPLITS.items():
        for name in sorted(os.listdir(paths[clip_dir])):
            match = CLIP_RE.fullmatch(name)
            if match is None or (split, int(match.group(1)), int(match.group(2))) not in labelled:
                skips.add(f"{split}/{name}", "clip without a CSV row, ignored (MELD issue #22)")
    jobs = [((r["split"], r["dia"], r["utt"]),
             os.path.join(paths[SPLITS[r["split"]][1]], f"dia{r['dia']}_utt{r['utt']}.mp4"),
             os.path.join(wav_dir, r["split"], f"dia{r['dia']}_utt{r['utt']}.wav")) for r in rows]
    if nj > 1:
        with Pool(nj) as pool:
            converted = list(pool.imap_unordered(convert_clip, jobs, chunksize=16))
    else:
        converted = [convert_clip(job) for job in jobs]
    results = {key: (duration, problem) for key, duration, problem in converted}
    utts, bad, long_clips = [], [], []
    for row, (key, src, wav) in zip(rows, jobs):
        duration, problem = results[key]
        name = f"{key[0]}/dia{key[1]}_utt{key[2]}"
        if problem is not None:
            try:
                skip_or_fail(name, problem, f"{src}, {row['where']}", skips,
                             DOCUMENTED_PROBLEMS.get(key), skip_bad_audio)
            except DataDirError as e:
                bad.append(str(e))
            continue
        if duration > LONG_CLIP_SECONDS:
            long_clips.append(f"{name} {duration:.0f} s")
        speaker = speaker_token(row["speaker"])
        utts.append(Utterance(f"{speaker}_{name.replace('/', '_')}", speaker,
                              f"{key[0]}_dia{key[1]}", row[label], row["text"],
                              os.path.abspath(wav), duration, split=key[0],
                              turn=dialogue_turn(row), targets={"sentiment": row["sentiment"]}))
    if bad:
        raise DataDirError(f"{len(bad)} clip(s) missing or undecodable; the first: {bad[0]}")
    if long_clips:
        logging.warning("%d clip(s) longer than %.0f s kept (MELD issue #20 reports clips cut "
                        "wrongly): %s", len(long_clips), LONG_CLIP_SECONDS,
                        ", ".join(long_clips[:5]))
    return utts, skips


def prepare_meld(root, out_dir, label="emotion", wav_dir=None, nj=1,
                 expected_counts=DOCUMENTED_TOTALS, skip_bad_audio=False, text_only=False):
    """Write ``<out_dir>/all``, ``fold1/{train,dev,test}`` and ``protocol``; return the utts.
    ``text_only``: from the CSVs alone (no clips, no wav.scp)."""
    paths, rows, counts = read_meld(root, text_only)
    check_counts(counts, expected_counts, f"{root} CSV rows")
    if text_only:
        utts, skips = text_utterances(rows, label)
    else:
        utts, skips = decode_clips(paths, rows, wav_dir or os.path.join(out_dir, "wav"), label,
                                   nj, skip_bad_audio)
    classes = CLASS_SETS[label]
    source = "transcripts only, " if text_only else ""
    protocol = {"corpus": "MELD", "headline": "weighted_f1", "metrics": ("weighted_f1", "wa", "ua"),
                "description": f"official train/dev/test split ({source}{label}, as EmoBox)"}
    write_corpus(out_dir, utts, classes, official_folds(utts), protocol, skips,
                 by=("split", lambda u: u.split))
    return utts


def add_arguments(parser):
    parser.add_argument("--label", choices=sorted(CLASS_SETS),
                        help="emotion (7 classes) or sentiment (3) (default: %(default)s)")
    parser.add_argument("--wav-dir",
                        help="where the 16 kHz wavs decoded from the mp4 clips go "
                             "(default: <data_dir>/wav)")
    parser.add_argument("--nj", type=positive_int, help="decoding processes")
    parser.add_argument("--text-only", action="store_true",
                        help="from the three CSVs alone: transcripts, no clips and no "
                             "wav.scp (train with conf/tuning/text_only.yaml)")
    add_skip_bad_audio(parser)


register(Corpus("meld", prepare_meld, add_arguments, __doc__, DOCUMENTED_TOTALS))
