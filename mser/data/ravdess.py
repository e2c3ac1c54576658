"""RAVDESS speech (audio-only) to Kaldi data dirs with speaker-independent folds.

Read under the corpus root (Audio_Speech_Actors_01-24.zip from zenodo.org/record/1188976,
unpacked; Actor_XX directories are found at any depth):
  Actor_XX/03-01-<emotion>-<intensity>-<statement>-<repetition>-<actor>.wav   (48 kHz mono)
Fields: modality 03 = audio-only, vocal channel 01 = speech; emotion 01 neutral, 02 calm,
03 happy, 04 sad, 05 angry, 06 fearful, 07 disgust, 08 surprised; intensity 01 normal, 02 strong;
statement 01 "Kids are talking by the door", 02 "Dogs are sitting by the door"; odd actors are
male. Documented totals: 1,440 speech files of 24 actors (60 each). Files of the other sets
(song, vocal channel 02; video modalities 01/02) found under the root are named skips.

Protocol (``fold_groups="emobox"``, the default): EmoBox's 6 folds of 4 actors, read from its
published fold lists (data/ravdess/fold_k); EmoBox trains on the other 20 actors without a dev
set, mser holds out ``dev_speakers`` actors of the next fold's group as dev (genders
alternating where the group has both), so training sees 18. ``fold_groups="balanced"``:
``num_folds`` gender-balanced groups.
"""
import os
import re

from mser.data.corpus import (Corpus, Skips, Utterance, add_skip_bad_audio, add_speaker_folds,
                              audio_duration, check_counts, register, write_corpus)
from mser.io.datadir import DataDirError
from mser.data.folds import balanced_groups, interleave_by_gender, speaker_group_folds

EMOTIONS = {"01": "neu", "02": "cal", "03": "hap", "04": "sad", "05": "ang", "06": "fea",
            "07": "dis", "08": "sur"}
CLASSES = tuple(EMOTIONS.values())
STATEMENTS = {"01": "Kids are talking by the door.", "02": "Dogs are sitting by the door."}
INTENSITIES = {"01": "normal", "02": "strong"}  # the neutral class is recorded at normal only
DOCUMENTED_TOTALS = {"files": 1440, "actors": 24}
# EmoBox's RAVDESS test groups (data/ravdess/fold_1..6, actor numbers)
EMOBOX_GROUPS = ((1, 11, 20, 21), (4, 10, 12, 14), (8, 9, 19, 23), (3, 5, 7, 24), (2, 15, 16, 18),
                 (6, 13, 17, 22))
NAME_RE = re.compile(r"(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)")
ACTOR_DIR_RE = re.compile(r"Actor_(\d\d)")


def speaker_id(actor):
    return f"Actor_{int(actor):02d}"


def load_ravdess(root, skip_bad_audio=False):
    """(utterances, skips, counts) of the speech files under ``root``."""
    utts, skips, actors, files = [], Skips(), set(), 0
    actor_dirs = sorted(os.path.join(d, sub) for d, subs, _ in os.walk(root) for sub in subs
                        if ACTOR_DIR_RE.fullmatch(sub))
    if not actor_dirs:
        raise DataDirError(f"{root}: no Actor_XX directory; unpack Audio_Speech_Actors_01-24.zip "
                           f"there (set RAVDESS in db.sh)")
    for actor_dir in actor_dirs:
        dir_actor = ACTOR_DIR_RE.fullmatch(os.path.basename(actor_dir)).group(1)
        for name in sorted(os.listdir(actor_dir)):
            stem, ext = os.path.splitext(name)
            path = os.path.join(actor_dir, name)
            match = NAME_RE.fullmatch(stem)
            if match is None:
                raise DataDirError(f"{path}: not a RAVDESS file name 03-01-<emotion>-"
                                   f"<intensity>-<statement>-<repetition>-<actor>.wav")
            modality, channel, emotion, intensity, statement, _, actor = match.groups()
            if (modality, channel, ext.lower()) != ("03", "01", ".wav"):
                what = "song" if channel == "02" else "video"
                skips.add(stem, f"{what} file (modality {modality}, vocal channel {channel}), "
                                f"not in the audio-only speech set")
                continue
            if (actor != dir_actor or emotion not in EMOTIONS or statement not in STATEMENTS
                    or intensity not in INTENSITIES):
                raise DataDirError(f"{path}: invalid field (emotion 01-08, intensity 01-02, "
                                   f"statement 01-02, actor = the directory's {dir_actor})")
            files += 1
            actors.add(actor)
            speaker = speaker_id(actor)
            duration = audio_duration(path, stem, skips, skip_bad=skip_bad_audio)
            if duration is not None:
                utts.append(Utterance(f"{speaker}_{stem}", speaker, speaker, EMOTIONS[emotion],
                                      STATEMENTS[statement], os.path.abspath(path), duration,
                                      targets={"intensity": INTENSITIES[intensity]}))
    return utts, skips, {"files": files, "actors": len(actors)}


def gender(speaker):
    return "M" if int(speaker[-2:]) % 2 else "F"


def prepare_ravdess(root, out_dir, fold_groups="emobox", num_folds=6, dev_speakers=2,
                    expected_counts=DOCUMENTED_TOTALS, skip_bad_audio=False):
    """Write ``<out_dir>/all``, the fold dirs and ``protocol``; return the utterances."""
    utts, skips, counts = load_ravdess(root, skip_bad_audio)
    check_counts(counts, expected_counts, root)
    speakers = {u.speaker for u in utts}
    genders = {spk: gender(spk) for spk in speakers}
    if fold_groups == "emobox":
        groups = [interleave_by_gender([speaker_id(a) for a in group if speaker_id(a) in speakers],
                                       genders) for group in EMOBOX_GROUPS]
        groups = [g for g in groups if g]
        description = (f"leave-4-actors-out, {len(groups)} folds (EmoBox speaker groups), "
                       f"dev = {dev_speakers} actors of the next fold")
    elif fold_groups == "balanced":
        groups = balanced_groups(speakers, num_folds, genders)
        description = (f"speaker-independent, {num_folds} gender-balanced folds of actors, "
                       f"dev = {dev_speakers} actors of the next fold")
    else:
        raise ValueError(f"unknown fold_groups {fold_groups!r}")
    folds = speaker_group_folds(utts, groups, dev_speakers)
    protocol = {"corpus": "RAVDESS", "description": description, "headline": "ua",
                "metrics": ("ua", "wa")}
    write_corpus(out_dir, utts, CLASSES, folds, protocol, skips,
                 by=("actor", lambda u: u.speaker[-2:]))
    return utts


def add_arguments(parser):
    add_speaker_folds(parser)
    parser.add_argument("--fold-groups", choices=("emobox", "balanced"),
                        help="emobox: EmoBox's 6 groups of 4 actors (--num-folds ignored); "
                             "balanced: --num-folds gender-balanced groups (default: %(default)s)")
    add_skip_bad_audio(parser)


register(Corpus("ravdess", prepare_ravdess, add_arguments, __doc__, DOCUMENTED_TOTALS))
