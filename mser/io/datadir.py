"""Kaldi-style data directories: reading, writing, validating, fixing, splitting.

A data dir holds one ``<utt-id> <value>`` table per file, sorted in C (byte) order:
wav.scp, text, utt2spk, spk2utt, utt2emo, utt2sess, utt2dur (and, after feature
extraction, feats.scp / utt2num_frames). Labels of other tasks are tables too, ``utt2<task>``
(:data:`TASK_LABELS`: IEMOCAP's utt2valence / utt2arousal / utt2dominance, MELD's
utt2sentiment, RAVDESS's utt2intensity), written where a corpus has them. A corpus of dialogues
adds utt2turn,
``<utt-id> <dialogue-id> <position>``: the utterance's dialogue and its place in it (a number
that orders the dialogue's turns: MELD's Utterance_ID, IEMOCAP's start time). Utterance ids begin with their speaker id so that
sorting by utterance also groups speakers.
"""
import logging
import os
import shutil
import unicodedata

from mser.utils.fileio import EncodingError, atomic_open, read_utf8_lines

# Per-utterance tables, in the order problems are reported.
UTT_FILES = ("wav.scp", "text", "utt2spk", "utt2emo", "utt2sess", "utt2dur", "utt2turn",
             "feats.scp", "utt2num_frames")
REQUIRED_FILES = ("utt2spk",)
# What an utterance is made of: its audio, or for a text-only corpus (MELD's CSVs) its transcript.
CONTENT_FILES = ("wav.scp", "text")
# Per-utterance labels of tasks besides the emotion class, as the corpora give them; the rated
# dimensions are numbers.
RATED_LABELS = ("utt2valence", "utt2arousal", "utt2dominance")
TASK_LABELS = (*RATED_LABELS, "utt2sentiment", "utt2intensity")


class DataDirError(ValueError):
    """Malformed input; the message names the file (and line) and how to fix it."""


def c_sort_key(key):
    """LC_ALL=C order: compare the UTF-8 bytes."""
    return key.encode("utf-8")


def read_table(path, allow_empty_value=False):
    """Read ``key value`` lines into an ordered dict; errors name ``path:line``."""
    table = {}
    try:
        lines = read_utf8_lines(path)
    except FileNotFoundError:
        raise DataDirError(f"{path}: file not found") from None
    except EncodingError as e:
        raise DataDirError(str(e)) from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            raise DataDirError(f"{path}:{lineno}: empty line; remove it")
        key, _, value = line.partition(" ")
        value = value.strip()
        if not key or (not value and not allow_empty_value):
            raise DataDirError(f"{path}:{lineno}: expected '<key> <value>', got {line!r}")
        if key in table:
            raise DataDirError(f"{path}:{lineno}: duplicate key {key!r} (first seen earlier "
                               f"in the file); run utils/fix_data_dir.sh")
        table[key] = value
    return table


def write_table(path, table):
    """Write a dict as ``key value`` lines in C order, atomically."""
    with atomic_open(path, "w", encoding="utf-8") as f:
        for key in sorted(table, key=c_sort_key):
            f.write(f"{key} {table[key]}\n")


def utt2spk_to_spk2utt(utt2spk):
    spk2utt = {}
    for utt in sorted(utt2spk, key=c_sort_key):
        spk2utt.setdefault(utt2spk[utt], []).append(utt)
    return {spk: " ".join(utts) for spk, utts in spk2utt.items()}


def write_data_dir(data_dir, tables):
    """Write per-utterance ``tables`` (file name -> dict) plus a derived spk2utt."""
    os.makedirs(data_dir, exist_ok=True)
    for name, table in tables.items():
        write_table(os.path.join(data_dir, name), table)
    if "utt2spk" in tables:
        write_table(os.path.join(data_dir, "spk2utt"), utt2spk_to_spk2utt(tables["utt2spk"]))


def read_data_dir(data_dir, names=UTT_FILES + TASK_LABELS):
    """Read the per-utterance tables of ``names`` that exist in ``data_dir``."""
    tables = {}
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.exists(path):
            tables[name] = read_table(path, allow_empty_value=(name == "text"))
    return tables


def parse_turn(value):
    """(dialogue id, position) of an utt2turn value, None if malformed."""
    fields = value.split()
    if len(fields) != 2:
        return None
    try:
        return fields[0], float(fields[1])
    except ValueError:
        return None


def _check_sorted(path, keys, problems):
    for lineno, (prev, cur) in enumerate(zip(keys, keys[1:]), 2):
        if c_sort_key(prev) > c_sort_key(cur):
            problems.append(f"{path}:{lineno}: not sorted in C order ({prev!r} before {cur!r}); "
                            f"run utils/fix_data_dir.sh")
            return


def _check_ids(path, table, problems, values_are_ids=False):
    """Ids must be printable and space-free: a no-break or zero-width space makes a different id
    that looks the same."""
    bad = []
    for lineno, (key, value) in enumerate(table.items(), 1):
        for text in (key, value) if values_are_ids else (key,):
            chars = sorted({c for c in text if c.isspace() or not c.isprintable()})
            if chars:
                bad.append((lineno, text, chars))
    if bad:
        lineno, text, chars = bad[0]
        names = ", ".join(f"U+{ord(c):04X} {unicodedata.name(c, 'control character')}"
                          for c in chars)
        problems.append(f"{path}:{lineno}: {len(bad)} line(s) with an id holding a space or "
                        f"non-printable character, e.g. {text!r} ({names}); ids may only hold "
                        f"printable characters other than spaces")


def _check_labels(data_dir, utt2emo, problems):
    path = os.path.join(data_dir, "classes.txt")
    if not os.path.exists(path):
        return
    try:
        classes = {line.strip() for line in read_utf8_lines(path) if line.strip()}
    except EncodingError as e:
        problems.append(str(e))
        return
    by_label = {}
    for lineno, (utt, label) in enumerate(utt2emo.items(), 1):
        by_label.setdefault(label, []).append((lineno, utt))
    for label, lines in by_label.items():
        if label not in classes:
            lineno, utt = lines[0]
            problems.append(f"{data_dir}/utt2emo:{lineno}: {len(lines)} utterance(s) labelled "
                            f"{label!r}, which is not in classes.txt ({' '.join(sorted(classes))}),"
                            f" e.g. {utt}; fix utt2emo or classes.txt")


def pipe_commands(wav_scp):
    """``{utt: command}`` of the wav.scp entries that are shell commands (Kaldi's ``cmd |``)."""
    return {utt: wav[:-1].strip() for utt, wav in wav_scp.items() if wav.endswith("|")}


def _check_wavs(path, wav_scp, problems):
    import soundfile

    for lineno, (utt, wav) in enumerate(wav_scp.items(), 1):
        if wav.endswith("|"):  # a pipe command: checked when it runs
            continue
        try:
            info = soundfile.info(wav)
        except Exception as e:  # soundfile raises several types for unreadable audio
            problems.append(f"{path}:{lineno}: utterance {utt}: cannot read {wav}: {e}")
            continue
        if info.frames == 0:
            problems.append(f"{path}:{lineno}: utterance {utt}: {wav} has no samples")


def validate_data_dir(data_dir, check_wavs=True):
    """Return every problem found in ``data_dir`` (an empty list means valid)."""
    problems = []
    if not os.path.isdir(data_dir):
        return [f"{data_dir}: not a directory"]
    for name in REQUIRED_FILES:
        if not os.path.exists(os.path.join(data_dir, name)):
            problems.append(f"{data_dir}/{name}: required file is missing")
    if not any(os.path.exists(os.path.join(data_dir, name)) for name in CONTENT_FILES):
        problems.append(f"{data_dir}: neither wav.scp nor text; a data dir needs the audio, or "
                        f"for a text-only corpus the transcripts")
    tables = {}
    for name in UTT_FILES + TASK_LABELS + ("spk2utt",):
        path = os.path.join(data_dir, name)
        if not os.path.exists(path):
            continue
        try:
            tables[name] = read_table(path, allow_empty_value=(name == "text"))
        except DataDirError as e:
            problems.append(str(e))
            continue
        _check_sorted(path, list(tables[name]), problems)
        _check_ids(path, tables[name], problems, values_are_ids=(name == "utt2spk"))

    utt2spk = tables.get("utt2spk", {})
    for lineno, (utt, spk) in enumerate(utt2spk.items(), 1):
        if not utt.startswith(spk):
            problems.append(f"{data_dir}/utt2spk:{lineno}: utterance id {utt!r} does not begin "
                            f"with its speaker id {spk!r}")
    if "spk2utt" in tables and utt2spk and tables["spk2utt"] != utt2spk_to_spk2utt(utt2spk):
        problems.append(f"{data_dir}/spk2utt: disagrees with utt2spk; regenerate it with "
                        f"utils/utt2spk_to_spk2utt.sh or utils/fix_data_dir.sh")
    reference = "utt2spk" if "utt2spk" in tables else next(iter(tables), None)
    for name, table in tables.items():
        if name in ("spk2utt", reference):
            continue
        missing = set(tables[reference]) - set(table)
        extra = set(table) - set(tables[reference])
        for label, ids in (("missing from", missing), ("only in", extra)):
            if ids:
                example = sorted(ids, key=c_sort_key)[0]
                problems.append(f"{data_dir}/{name}: {len(ids)} utterance(s) {label} {name} "
                                f"compared with {reference} (e.g. {example}); run utils/fix_data_dir.sh")
    if "utt2emo" in tables:
        _check_labels(data_dir, tables["utt2emo"], problems)
    numeric = {"utt2dur": True, "utt2num_frames": True, **dict.fromkeys(RATED_LABELS, False)}
    for name, positive in numeric.items():  # table -> whether its numbers must be positive
        for lineno, (utt, value) in enumerate(tables.get(name, {}).items(), 1):
            try:
                ok = float(value) > 0 or not positive
            except ValueError:
                ok = False
            if not ok:
                problems.append(f"{data_dir}/{name}:{lineno}: utterance {utt}: expected "
                                f"{'a positive number' if positive else 'a number'}, got {value!r}")
    for lineno, (utt, value) in enumerate(tables.get("utt2turn", {}).items(), 1):
        if parse_turn(value) is None:
            problems.append(f"{data_dir}/utt2turn:{lineno}: utterance {utt}: expected "
                            f"'<dialogue-id> <position>' (a number), got {value!r}")
    if check_wavs and "wav.scp" in tables:
        _check_wavs(os.path.join(data_dir, "wav.scp"), tables["wav.scp"], problems)
    return problems


def fix_data_dir(data_dir):
    """Keep the utterances present in every per-utterance table, sort, regenerate spk2utt.

    Originals go to ``<data_dir>/.backup``. Returns ``{file: number of utterances dropped}``.
    """
    tables = read_data_dir(data_dir)
    if not tables:
        raise DataDirError(f"{data_dir}: no per-utterance files ({', '.join(UTT_FILES)}) found")
    keep = set.intersection(*(set(t) for t in tables.values()))
    backup = os.path.join(data_dir, ".backup")
    os.makedirs(backup, exist_ok=True)
    dropped = {}
    for name, table in tables.items():
        shutil.copy2(os.path.join(data_dir, name), os.path.join(backup, name))
        dropped[name] = len(table) - len(keep)
        tables[name] = {k: v for k, v in table.items() if k in keep}
    write_data_dir(data_dir, tables)
    for name, count in dropped.items():
        if count:
            logging.warning("%s/%s: dropped %d utterance(s) not present in every file",
                            data_dir, name, count)
    logging.info("%s: kept %d utterance(s); originals in %s", data_dir, len(keep), backup)
    return dropped


def split_scp(scp_path, out_paths, utt2spk=None):
    """Split ``scp_path`` into ``len(out_paths)`` contiguous, near-equal parts.

    With ``utt2spk`` no speaker is split across parts (as Kaldi's ``split_scp.pl --utt2spk``).
    """
    try:
        lines = [line + "\n" for line in read_utf8_lines(scp_path) if line.strip()]
    except EncodingError as e:
        raise DataDirError(str(e)) from None
    n = len(out_paths)
    if n == 0:
        raise DataDirError("split_scp: no output files given")
    if utt2spk is None:
        groups = [[line] for line in lines]
    else:
        groups, last = [], None
        for lineno, line in enumerate(lines, 1):
            utt = line.split(maxsplit=1)[0]
            if utt not in utt2spk:
                raise DataDirError(f"{scp_path}:{lineno}: utterance {utt} is not in utt2spk")
            if utt2spk[utt] != last:
                groups.append([])
                last = utt2spk[utt]
            groups[-1].append(line)
    if len(groups) < n:
        raise DataDirError(f"{scp_path}: cannot split {len(groups)} "
                           f"{'speakers' if utt2spk else 'lines'} into {n} non-empty parts; "
                           f"use fewer jobs (--nj {len(groups)})")
    # Greedy boundaries that keep cumulative line counts close to i * total / n.
    total, parts, start = len(lines), [], 0
    counts = [len(g) for g in groups]
    for i in range(1, n):
        target, acc, end = total * i / n, sum(counts[:start]), start
        while end < len(groups) - (n - i) and acc + counts[end] <= target + counts[end] / 2:
            acc += counts[end]
            end += 1
        end = max(end, start + 1)
        parts.append(groups[start:end])
        start = end
    parts.append(groups[start:])
    for path, part in zip(out_paths, parts):
        with atomic_open(path, "w", encoding="utf-8") as f:
            for group in part:
                f.writelines(group)


def read_classes(path):
    """Class names of a classes.txt, in label-index order."""
    if not os.path.exists(path):
        raise DataDirError(f"{path}: not found; the data dir needs classes.txt (one class per "
                           f"line, in label-index order), written by data preparation")
    with open(path, encoding="utf-8") as f:
        classes = [line.strip() for line in f if line.strip()]
    if not classes or len(set(classes)) != len(classes):
        raise DataDirError(f"{path}: expected distinct class names, one per line; got {classes}")
    return classes
