"""CREMA-D to Kaldi data dirs with speaker-independent folds.

Read under the corpus root (a git-lfs clone of github.com/CheyneyComputerScience/CREMA-D):
  AudioWAV/<actor>_<sentence>_<emotion>_<level>.wav   e.g. 1001_DFA_ANG_XX.wav (16 kHz mono)
  VideoDemographics.csv                              ActorID, Age, Sex, ... (optional: gender
                                                     balance of the folds)
Documented totals: 7,442 clips of 91 actors (1001..1091); 12 fixed sentences (texts below, from
the corpus README), 6 emotions ANG DIS FEA HAP NEU SAD, levels LO MD HI XX (unspecified).
Documented problems, handled as named skips: 1076_MTI_NEU_XX does not play and 1076_MTI_SAD_XX
has no sound (corpus issue #8): skipped when unreadable or silent; 1040_ITH_SAD_X.wav is a
misnamed 1040_ITH_SAD_XX (issue #6, renamed in later copies): read as XX. A Git LFS pointer in
place of a wav (a clone without git-lfs, issue #3) is an error that says how to fix the clone.

Protocol: EmoBox (Interspeech 2024) publishes a single, speaker-dependent split for CREMA-D
(a stratified random 25% of the clips as test, every actor on both sides), so it is not
followed: mser makes ``num_folds`` speaker-independent folds (actors sorted by gender then id,
dealt round-robin), dev = ``dev_speakers`` actors of the next fold's group.
"""
import csv
import logging
import os
import re

from mser.data.corpus import (Corpus, Skips, Utterance, add_skip_bad_audio, add_speaker_folds,
                              audio_duration, check_counts, register, wav_files, write_corpus)
from mser.io.datadir import DataDirError
from mser.data.folds import balanced_groups, speaker_group_folds

SENTENCES = {
    "IEO": "It's eleven o'clock.",
    "TIE": "That is exactly what happened.",
    "IOM": "I'm on my way to the meeting.",
    "IWW": "I wonder what this is about.",
    "TAI": "The airplane is almost full.",
    "MTI": "Maybe tomorrow it will be cold.",
    "IWL": "I would like a new alarm clock.",
    "ITH": "I think I have a doctor's appointment.",
    "DFA": "Don't forget a jacket.",
    "ITS": "I think I've seen this before.",
    "TSI": "The surface is slick.",
    "WSI": "We'll stop in a couple of minutes.",
}
EMOTIONS = {"NEU": "neu", "HAP": "hap", "ANG": "ang", "SAD": "sad", "FEA": "fea", "DIS": "dis"}
CLASSES = tuple(EMOTIONS.values())
LEVELS = ("LO", "MD", "HI", "XX")
DOCUMENTED_TOTALS = {"clips": 7442, "actors": 91}
DOCUMENTED_PROBLEMS = {"1076_MTI_NEU_XX": "does not play, CREMA-D issue #8",
                       "1076_MTI_SAD_XX": "no sound, CREMA-D issue #8"}
MISNAMED = {"1040_ITH_SAD_X": "1040_ITH_SAD_XX"}  # CREMA-D issue #6
NAME_RE = re.compile(r"(\d{4})_([A-Z]{3})_([A-Z]{3})_([A-Z]{2})")


def read_genders(root):
    """``{actor: "F"|"M"}`` from VideoDemographics.csv, ``{}`` if the file is absent."""
    path = os.path.join(root, "VideoDemographics.csv")
    if not os.path.isfile(path):
        logging.warning("%s not found: the folds are not gender-balanced", path)
        return {}
    genders = {}
    with open(path, encoding="utf-8-sig", newline="") as f:
        for lineno, row in enumerate(csv.DictReader(f), 2):
            sex = (row.get("Sex") or "").strip().lower()
            if not (row.get("ActorID") or "").strip().isdigit() or sex not in ("male", "female"):
                raise DataDirError(f"{path}:{lineno}: expected ActorID (number) and Sex "
                                   f"(Male/Female), got {row}")
            genders[row["ActorID"].strip()] = "M" if sex == "male" else "F"
    return genders


def load_crema_d(root, skip_bad_audio=False):
    """(utterances, skips, counts) of every clip under ``<root>/AudioWAV``."""
    utts, skips, actors, clips = [], Skips(), set(), 0
    for stem, path in wav_files(os.path.join(root, "AudioWAV"), skips,
                                "pass the root of a CREMA-D clone (set CREMA_D in db.sh)"):
        clips += 1
        if stem in MISNAMED:
            logging.warning("%s.wav: misnamed (CREMA-D issue #6), read as %s", stem, MISNAMED[stem])
            stem = MISNAMED[stem]
        match = NAME_RE.fullmatch(stem)
        if (match is None or match.group(2) not in SENTENCES or match.group(3) not in EMOTIONS
                or match.group(4) not in LEVELS):
            raise DataDirError(f"{path}: not a CREMA-D clip name "
                               f"<actor>_<sentence>_<emotion>_<level>.wav")
        actor, sentence, emotion, _ = match.groups()
        actors.add(actor)
        duration = audio_duration(path, stem, skips, DOCUMENTED_PROBLEMS.get(stem), skip_bad_audio)
        if duration is not None:
            utts.append(Utterance(stem, actor, actor, EMOTIONS[emotion], SENTENCES[sentence],
                                  os.path.abspath(path), duration))
    return utts, skips, {"clips": clips, "actors": len(actors)}


def prepare_crema_d(root, out_dir, num_folds=5, dev_speakers=9, expected_counts=DOCUMENTED_TOTALS,
                    skip_bad_audio=False):
    """Write ``<out_dir>/all``, ``fold1..fold<num_folds>`` and ``protocol``; return the utts."""
    utts, skips, counts = load_crema_d(root, skip_bad_audio)
    check_counts(counts, expected_counts, f"{root}/AudioWAV")
    groups = balanced_groups({u.speaker for u in utts}, num_folds, read_genders(root))
    folds = speaker_group_folds(utts, groups, dev_speakers)
    protocol = {"corpus": "CREMA-D", "headline": "ua", "metrics": ("ua", "wa"),
                "description": f"speaker-independent, {num_folds} folds of actors "
                               f"(gender-balanced, not EmoBox: its CREMA-D split is "
                               f"speaker-dependent), dev = {dev_speakers} actors of the next fold"}
    test_fold = {utt: fold for fold, subsets in folds.items() for utt in subsets["test"]}
    write_corpus(out_dir, utts, CLASSES, folds, protocol, skips,
                 by=("test fold", lambda u: test_fold[u.utt_id]))
    return utts


def add_arguments(parser):
    add_speaker_folds(parser)
    add_skip_bad_audio(parser)


register(Corpus("crema_d", prepare_crema_d, add_arguments, __doc__, DOCUMENTED_TOTALS))
