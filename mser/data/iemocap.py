"""IEMOCAP (IEMOCAP_full_release layout) to Kaldi data dirs, with cross-validation folds.

Read under the corpus root, for N in 1..5:
  SessionN/dialog/EmoEvaluation/<dialog>.txt    consensus lines
      "[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, 2.5000, 2.5000]"
      (header lines and the evaluator lines below each consensus line are ignored; a line that
      looks like a label line, starting with "[" or holding an utterance id, must parse)
  SessionN/dialog/transcriptions/<dialog>.txt   "Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me."
      (lines without a labelled utterance id, e.g. "..._MXX0 [...]: ...", are skipped)
  SessionN/sentences/wav/<dialog>/<utt>.wav

The speaker of an utterance is its session plus the letter of its last id field
(Ses03M_impro08b_F000 is spoken by Ses03F); utterance ids become ``<spk>_<orig id>``.

Transcript overlap: the scripted dialogues (``_script<NN>``) are read in every session, so under
leave-one-session-out many test transcripts occur verbatim in training (21.1% on the real
corpus), which inflates text results. Stage 0 reports that share per fold and overall
(:func:`transcript_overlap`; texts compared after :func:`normalize_transcript`). With
``text_disjoint`` every training or dev utterance whose normalised, non-empty transcript occurs
in the fold's test set is dropped (counted per fold), so no test transcript is seen in training;
the test sets stay the standard ones. The rule is textual, so it also drops common improvised
lines ("Yeah.") that match a test line.

Counts (labelled utterances with a wav and a transcript, speakers) are checked only when
``expected_counts`` gives them: copies differ, and the demo corpus shares this layout.
"""
import glob
import logging
import os
import random
import re
from collections import Counter
from dataclasses import replace

from tqdm import tqdm

from mser.data.corpus import (Corpus, Utterance, check_counts, fraction, read_duration, register,
                              write_corpus)
from mser.io.datadir import DataDirError, c_sort_key

# name -> (class names in classes.txt order, corpus label -> class)
CLASS_SETS = {
    "4class": (("neu", "hap", "ang", "sad"),
               {"neu": "neu", "hap": "hap", "exc": "hap", "ang": "ang", "sad": "sad"}),
    "4class_noexc": (("neu", "hap", "ang", "sad"),
                     {"neu": "neu", "hap": "hap", "ang": "ang", "sad": "sad"}),
    "6class": (("neu", "hap", "ang", "sad", "exc", "fru"),
               {e: e for e in ("neu", "hap", "ang", "sad", "exc", "fru")}),
}
SESSIONS = tuple(range(1, 6))
COUNT_KEYS = ("utterances", "speakers")

UTT_ID_RE = re.compile(r"Ses(\d\d)[FM]_\S+_([FM])\d{3}")
LABEL_RE = re.compile(r"\[\s*(\d+(?:\.\d*)?)\s*-\s*\d+(?:\.\d*)?\s*\]\s+(\S+)\s+([A-Za-z]+)\s+"
                      r"\[\s*(\d+(?:\.\d*)?)\s*,\s*(\d+(?:\.\d*)?)\s*,\s*(\d+(?:\.\d*)?)\s*\]")
DIMENSIONS = ("valence", "arousal", "dominance")  # the [V, A, D] of a label line, 1-5 scale
LABEL_LIKE_RE = re.compile(r"^\[|Ses\d\d[FM]_\S*_[FM]\d{3}")
TRANSCRIPT_RE = re.compile(r"(Ses\d\d[FM]_\S+_[FM]\d{3})\s*\[[^\]]*\]\s*:(.*)")
NOISE_TAG_RE = re.compile(r"\[[A-Za-z_]+\]")
NOT_WORD_RE = re.compile(r"[^\w' ]+")


def parse_utt_id(orig_id):
    """``Ses03M_impro08b_F000`` -> (``Ses03``, ``Ses03F``); None if not a labelled-utterance id."""
    match = UTT_ID_RE.fullmatch(orig_id)
    if match is None:
        return None
    session = f"Ses{match.group(1)}"
    return session, session + match.group(2)


def _read_lines(path):
    # Universal newlines handle CRLF; stray non-UTF-8 bytes must not abort a 10k-file corpus.
    with open(path, encoding="utf-8", errors="replace") as f:
        return [line.strip() for line in f]


def read_labels(path):
    """Consensus labels of one EmoEvaluation file: ``({orig id: (label, start in seconds,
    {valence, arousal, dominance: their mean rating as text})}, bad lines)``; a bad line
    (``"path:line: ..."``) looks like a label line (starts with "[" or holds an utterance id)
    but does not parse."""
    labels, bad = {}, []
    for lineno, line in enumerate(_read_lines(path), 1):
        if not LABEL_LIKE_RE.search(line):  # header, blank and evaluator (C-E1:, A-E2:, ...) lines
            continue
        match = LABEL_RE.fullmatch(line)
        if match is None or parse_utt_id(match.group(2)) is None:
            bad.append(f"{path}:{lineno}: cannot parse label line {line!r}; expected "
                       f"'[start - end]<TAB>SesNNX_<dialog>_XNNN<TAB>emo<TAB>[v, a, d]'")
            continue
        start, orig_id, label = float(match.group(1)), match.group(2), match.group(3).lower()
        if orig_id in labels:
            raise DataDirError(f"{path}:{lineno}: utterance {orig_id} is labelled twice")
        labels[orig_id] = label, start, {dim: f"{float(value):g}" for dim, value in
                                         zip(DIMENSIONS, match.group(4, 5, 6))}
    return labels, bad


def read_transcripts(path):
    """Transcripts of one transcription file: ``{orig id: (text, "path:line")}``; other lines
    are skipped."""
    texts = {}
    for lineno, line in enumerate(_read_lines(path), 1):
        match = TRANSCRIPT_RE.fullmatch(line)
        if match is None:
            continue
        orig_id, text = match.group(1), " ".join(match.group(2).split())
        if orig_id in texts:
            logging.warning("%s:%d: second transcript of %s ignored", path, lineno, orig_id)
            continue
        texts[orig_id] = (text, f"{path}:{lineno}")
    return texts


def strip_noise_tags(text):
    return " ".join(NOISE_TAG_RE.sub(" ", text).split())


def normalize_transcript(text):
    """Lower case, without tags and punctuation (apostrophes kept), spaces collapsed."""
    return " ".join(NOT_WORD_RE.sub(" ", strip_noise_tags(text).lower()).split())


def _texts(utts, utt_ids):
    """Normalised non-empty transcripts of ``utt_ids`` by utterance id."""
    texts = {u.utt_id: normalize_transcript(u.text) for u in utts if u.utt_id in utt_ids}
    return {utt: text for utt, text in texts.items() if text}


def transcript_overlap(utts, folds):
    """``{fold: (test utterances whose normalised transcript occurs in the fold's train or dev
    set, test utterances with a non-empty transcript)}``."""
    overlap = {}
    for fold, subsets in folds.items():
        seen = set(_texts(utts, subsets["train"] | subsets["dev"]).values())
        test = _texts(utts, subsets["test"])
        overlap[fold] = (sum(text in seen for text in test.values()), len(test))
    return overlap


def report_overlap(overlap, when):
    shown = [f"{fold} {100 * n / max(total, 1):.1f}% ({n}/{total})"
             for fold, (n, total) in overlap.items()]
    n, total = (sum(v[i] for v in overlap.values()) for i in (0, 1))
    logging.info("test transcripts found verbatim (normalised) in the same fold's train/dev "
                 "data%s: %.1f%% overall (%d/%d); %s", when, 100 * n / max(total, 1), n, total,
                 ", ".join(shown))


def drop_test_transcripts(utts, folds):
    """Drop from each fold's train and dev sets the utterances whose normalised transcript
    occurs in its test set; ``{fold: dropped count}``."""
    dropped = {}
    for fold, subsets in folds.items():
        test_texts = set(_texts(utts, subsets["test"]).values())
        pool = _texts(utts, subsets["train"] | subsets["dev"])
        drop = {utt for utt, text in pool.items() if text in test_texts}
        for subset in ("train", "dev"):
            subsets[subset] -= drop
            if not subsets[subset]:
                raise DataDirError(f"{fold}/{subset} is empty once the test transcripts are "
                                   f"removed (--text-disjoint); the corpus copy is too small")
        dropped[fold] = len(drop)
    return dropped


def describe_protocol(cv, dev, dev_fraction, seed, improvised_only, num_folds, dropped=None):
    """One line naming the folds, the dev set and the data restrictions (for RESULTS.md)."""
    text = {"session": f"leave-one-session-out, {num_folds} folds (speaker- and "
                       f"session-independent)",
            "speaker": f"leave-one-speaker-out, {num_folds} folds (the test speaker's session "
                       f"partner is in training)"}[cv]
    text += {"speaker": "; dev: one speaker of the next session",
             "fraction": f"; dev: a random {dev_fraction} of the training sessions (seed "
                         f"{seed})"}[dev]
    if improvised_only:
        text += "; improvised dialogs only"
    if dropped is not None:
        text += (f"; text-disjoint: train/dev utterances with a test transcript dropped "
                 f"({sum(dropped.values())} over the folds)")
    return text


def _session_dirs(root):
    session_dirs = [os.path.join(root, f"Session{n}") for n in SESSIONS]
    found = [d for d in session_dirs if os.path.isdir(os.path.join(d, "dialog", "EmoEvaluation"))]
    if not found:
        raise DataDirError(f"{root}: not an IEMOCAP_full_release directory (expected "
                           f"{root}/Session1/dialog/EmoEvaluation/*.txt); pass the corpus root "
                           f"(prepare_corpus iemocap DIR, or prepare_iemocap --iemocap DIR) "
                           f"or set IEMOCAP in db.sh")
    missing = sorted(set(session_dirs) - set(found))
    if missing:
        logging.warning("%s: sessions missing: %s", root, ", ".join(missing))
    return found


def _wav_path(session_dir, orig_id):
    dialog = orig_id.rsplit("_", 1)[0]
    return os.path.join(session_dir, "sentences", "wav", dialog, orig_id + ".wav")


def _label_problems(session_dir, labels, texts, improvised_only):
    """Utterances with a wav and a transcript but no label, as ``"path:line: ..."`` lines."""
    problems = []
    for orig_id, (_, where) in texts.items():
        if orig_id in labels or (improvised_only and "_impro" not in orig_id):
            continue
        if os.path.isfile(_wav_path(session_dir, orig_id)):
            label_file = os.path.join(session_dir, "dialog", "EmoEvaluation",
                                      orig_id.rsplit("_", 1)[0] + ".txt")
            problems.append(f"{where}: utterance {orig_id} has a wav and a transcript but no "
                            f"label (expected in {label_file})")
    return problems


def load_iemocap(root, improvised_only=False, skip_missing_wav=False, skip_missing_text=False,
                 skip_unlabelled=False):
    """Every labelled utterance (any label) under ``root``, sorted by utterance id; their
    durations are read later, for the selected classes only.

    Label-like lines that do not parse and utterances with a wav and a transcript but no label
    are each logged with file:line, and are an error unless ``skip_unlabelled``."""
    root = os.path.abspath(root)
    utts, no_wav, no_text, unlabelled = [], [], [], []
    for session_dir in _session_dirs(root):
        labels, texts = {}, {}
        for path in sorted(glob.glob(os.path.join(session_dir, "dialog", "EmoEvaluation", "*.txt"))):
            file_labels, bad = read_labels(path)
            if not file_labels:
                logging.warning("%s: no label line", path)
            unlabelled += bad
            for orig_id, label in file_labels.items():
                if orig_id in labels:
                    raise DataDirError(f"{path}: utterance {orig_id} is also labelled in another file")
                labels[orig_id] = label
        for path in sorted(glob.glob(os.path.join(session_dir, "dialog", "transcriptions", "*.txt"))):
            texts.update(read_transcripts(path))
        unlabelled += _label_problems(session_dir, labels, texts, improvised_only)
        for orig_id, (label, start, dimensions) in labels.items():
            dialog = orig_id.rsplit("_", 1)[0]
            if improvised_only and "_impro" not in dialog:
                continue
            session, speaker = parse_utt_id(orig_id)
            wav = _wav_path(session_dir, orig_id)
            if not os.path.isfile(wav):
                no_wav.append((orig_id, wav))
                continue
            if orig_id not in texts:
                no_text.append((orig_id, os.path.join(session_dir, "dialog", "transcriptions",
                                                      dialog + ".txt")))
                continue
            utts.append(Utterance(f"{speaker}_{orig_id}", speaker, session, label,
                                  texts[orig_id][0], wav, duration=None, turn=(dialog, start),
                                  targets=dimensions))
    _report_unlabelled(unlabelled, skip_unlabelled)
    for missing, skip, what, option in ((no_wav, skip_missing_wav, "wav", "--skip-missing-wav"),
                                        (no_text, skip_missing_text, "transcript", "--skip-missing-text")):
        if not missing:
            continue
        orig_id, path = missing[0]
        message = (f"{len(missing)} labelled utterance(s) have no {what}, e.g. {orig_id} "
                   f"(expected in {path})")
        if not skip:
            raise DataDirError(f"{message}; fix the corpus or pass {option} to drop them")
        logging.warning("%s; dropped (%s)", message, option)
    utts.sort(key=lambda u: c_sort_key(u.utt_id))
    return utts


def _report_unlabelled(problems, skip):
    """Log every label line that does not parse and every unlabelled utterance; fail unless
    ``skip``."""
    if not problems:
        return
    for problem in problems:
        logging.warning("%s", problem)
    message = (f"{len(problems)} label line(s) that do not parse or utterance(s) with a wav and "
               f"a transcript but no label (each listed above), e.g. {problems[0]}")
    if not skip:
        raise DataDirError(f"{message}; fix the corpus (an invisible character before '[' or an "
                           f"empty EmoEvaluation file?) or pass --skip-unlabelled to drop them")
    logging.warning("%d label line(s) or utterance(s) without a parsed label dropped "
                    "(--skip-unlabelled)", len(problems))


def select_classes(utts, class_set):
    """Keep and relabel the utterances of ``class_set``; log the dropped labels."""
    _, mapping = CLASS_SETS[class_set]
    kept = [u for u in utts if u.label in mapping]
    dropped = Counter(u.label for u in utts if u.label not in mapping)
    if dropped:
        logging.info("%s: dropped %d utterance(s): %s", class_set, sum(dropped.values()),
                     ", ".join(f"{label} {n}" for label, n in sorted(dropped.items())))
    return [replace(u, label=mapping[u.label]) for u in kept]


def _dev_by_fraction(utts, fraction, rng):
    """A seeded, emotion-stratified ``fraction`` of ``utts``."""
    dev = set()
    for label in sorted({u.label for u in utts}):
        members = sorted((u.utt_id for u in utts if u.label == label), key=c_sort_key)
        rng.shuffle(members)
        dev.update(members[:round(fraction * len(members))])
    return dev


def _held_out_speaker(speakers, session, gender):
    """``session``'s speaker of ``gender``, else its other speaker."""
    for spk in (session + gender, session + ("M" if gender == "F" else "F")):
        if spk in speakers:
            return spk
    raise DataDirError(f"no speaker of {session} left to hold out for dev; use --dev fraction")


def make_folds(utts, cv="session", dev="speaker", dev_fraction=0.1, seed=0):
    """``{fold name: {"train"|"dev"|"test": set of utt ids}}``.

    cv=session: fold<k> tests on session k (leave-one-session-out).
    cv=speaker: fold1..fold10 test on one speaker each, in sorted speaker order; the test
        speaker's session partner stays in training (speaker- but not session-independent).
    dev=speaker: the dev set is one speaker of the session after the test session (wrapping
        around); for cv=session the female speaker on odd folds and the male one on even folds,
        for cv=speaker the test speaker's gender, so both genders stay in training.
    dev=fraction: a seeded ``dev_fraction`` of the training sessions, stratified by emotion.
    """
    sessions = sorted({u.session for u in utts})
    speakers = sorted({u.speaker for u in utts})
    if len(sessions) < 2:
        raise DataDirError(f"cross-validation needs at least 2 sessions, found {sessions}")
    if cv == "session":
        tests = [(f"fold{int(s[3:])}", lambda u, s=s: u.session == s, s,
                  "F" if int(s[3:]) % 2 else "M") for s in sessions]
    elif cv == "speaker":
        tests = [(f"fold{i}", lambda u, spk=spk: u.speaker == spk, spk[:5], spk[5])
                 for i, spk in enumerate(speakers, 1)]
    else:
        raise ValueError(f"unknown cv {cv!r}")
    folds = {}
    for name, is_test, test_session, dev_gender in tests:
        test = {u.utt_id for u in utts if is_test(u)}
        pool = [u for u in utts if u.utt_id not in test]
        if dev == "speaker":
            next_session = sessions[(sessions.index(test_session) + 1) % len(sessions)]
            train_speakers = {u.speaker for u in pool}
            dev_speaker = _held_out_speaker(train_speakers, next_session, dev_gender)
            dev_set = {u.utt_id for u in pool if u.speaker == dev_speaker}
        elif dev == "fraction":
            dev_set = _dev_by_fraction(pool, dev_fraction, random.Random(f"{seed}/{name}"))
        else:
            raise ValueError(f"unknown dev {dev!r}")
        train = {u.utt_id for u in pool} - dev_set
        folds[name] = {"train": train, "dev": dev_set, "test": test}
    return folds


def prepare_iemocap(root, out_dir, class_set="4class", improvised_only=False, noise_tags="strip",
                    cv="session", dev="speaker", dev_fraction=0.1, seed=0, text_disjoint=False,
                    skip_missing_wav=False, skip_missing_text=False, skip_unlabelled=False,
                    corpus_name="IEMOCAP", expected_counts=None):
    """Prepare ``<out_dir>/all``, the fold dirs and ``protocol``; return the kept utterances."""
    classes, _ = CLASS_SETS[class_set]
    utts = load_iemocap(root, improvised_only, skip_missing_wav, skip_missing_text,
                        skip_unlabelled)
    check_counts({"utterances": len(utts), "speakers": len({u.speaker for u in utts})},
                 expected_counts or {}, f"{root}: labelled utterances"
                 + (" (improvised dialogs only)" if improvised_only else ""))
    utts = select_classes(utts, class_set)
    if not utts:
        raise DataDirError(f"{root}: no utterance of the classes {', '.join(classes)}")
    utts = [replace(u, duration=read_duration(u.wav, u.utt_id))
            for u in tqdm(utts, desc="reading wav headers", unit="utt", mininterval=2)]
    if noise_tags == "strip":
        utts = [replace(u, text=strip_noise_tags(u.text)) for u in utts]
    empty = sum(not u.text for u in utts)
    if empty:
        logging.info("%d utterance(s) have an empty transcript (kept with empty text)", empty)
    folds = make_folds(utts, cv, dev, dev_fraction, seed)
    report_overlap(transcript_overlap(utts, folds), "")
    dropped = None
    if text_disjoint:
        dropped = drop_test_transcripts(utts, folds)
        logging.info("--text-disjoint: dropped train/dev utterances whose transcript is in the "
                     "test set: %s", ", ".join(f"{f} {n}" for f, n in dropped.items()))
        report_overlap(transcript_overlap(utts, folds), " after --text-disjoint")
    description = describe_protocol(cv, dev, dev_fraction, seed, improvised_only, len(folds),
                                    dropped)
    protocol = {"corpus": corpus_name, "description": f"{class_set}, {description}",
                "headline": "ua", "metrics": ("ua", "wa")}
    write_corpus(out_dir, utts, classes, folds, protocol, None, by=("session", lambda u: u.session))
    return utts


def add_arguments(parser):
    parser.add_argument("--class-set", choices=sorted(CLASS_SETS),
                        help="4class: neu hap(+exc) ang sad; 4class_noexc: hap without exc; "
                             "6class: neu hap ang sad exc fru (default: %(default)s)")
    parser.add_argument("--improvised-only", action="store_true",
                        help="keep the improvised dialogs only")
    parser.add_argument("--noise-tags", choices=("strip", "keep"),
                        help="transcript tags such as [LAUGHTER] (default: %(default)s)")
    parser.add_argument("--cv", choices=("session", "speaker"),
                        help="session: 5 leave-one-session-out folds; speaker: 10 "
                             "leave-one-speaker-out folds (default: %(default)s)")
    parser.add_argument("--dev", choices=("speaker", "fraction"),
                        help="speaker: hold out one speaker of the session after the test "
                             "session; fraction: a stratified random part of the training "
                             "sessions (default: %(default)s)")
    parser.add_argument("--dev-fraction", type=fraction,
                        help="dev share with --dev fraction (default: %(default)s)")
    parser.add_argument("--seed", type=int, help="seed of --dev fraction")
    parser.add_argument("--text-disjoint", action="store_true",
                        help="drop from each fold's train and dev sets every utterance whose "
                             "normalised transcript occurs in its test set (scripted lines are "
                             "read in every session), so no test transcript is seen in training")
    parser.add_argument("--corpus-name",
                        help="corpus name in <data_dir>/protocol (default: %(default)s)")
    parser.add_argument("--skip-missing-wav", action="store_true",
                        help="drop labelled utterances without a wav (with a warning) "
                             "instead of failing")
    parser.add_argument("--skip-missing-text", action="store_true",
                        help="drop labelled utterances without a transcript (with a warning) "
                             "instead of failing")
    parser.add_argument("--skip-unlabelled", action="store_true",
                        help="drop utterances with a wav and a transcript but no parsed label, "
                             "and ignore label lines that do not parse (each is still listed) "
                             "instead of failing")


register(Corpus("iemocap", prepare_iemocap, add_arguments, __doc__, count_keys=COUNT_KEYS))
