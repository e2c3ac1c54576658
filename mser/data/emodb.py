"""EmoDB (Berlin Database of Emotional Speech) to Kaldi data dirs with speaker-independent folds.

Read under the corpus root (download.zip from emodb.bilderbar.info, unpacked):
  wav/<speaker><text><emotion><version>.wav   e.g. 03a01Fa.wav: speaker 03, text a01,
                                              emotion F, version a (16 kHz mono)
Documented totals: 535 utterances of 10 actors (03 08 09 10 11 12 13 14 15 16); 10 German
sentences (texts below, from the corpus documentation); 7 emotions W anger (Ärger), L boredom
(Langeweile), E disgust (Ekel), A fear (Angst), F happiness (Freude), T sadness (Trauer),
N neutral.

Protocol: leave-one-speaker-out, 10 folds (``num_folds=10``; fewer folds group the speakers,
gender-balanced), dev = the next fold's speaker(s). EmoBox's 5 EmoDB folds come from fold lists
outside this distribution and put every speaker in every test fold (speaker-dependent), so they
are not followed.
"""
import os
import re

from mser.data.corpus import (Corpus, Skips, Utterance, add_skip_bad_audio, add_speaker_folds,
                              audio_duration, check_counts, register, wav_files, write_corpus)
from mser.io.datadir import DataDirError
from mser.data.folds import balanced_groups, speaker_group_folds

SPEAKERS = {"03": "M", "08": "F", "09": "F", "10": "M", "11": "M", "12": "M", "13": "F",
            "14": "F", "15": "M", "16": "F"}
TEXTS = {
    "a01": "Der Lappen liegt auf dem Eisschrank.",
    "a02": "Das will sie am Mittwoch abgeben.",
    "a04": "Heute abend könnte ich es ihm sagen.",
    "a05": "Das schwarze Stück Papier befindet sich da oben neben dem Holzstück.",
    "a07": "In sieben Stunden wird es soweit sein.",
    "b01": "Was sind denn das für Tüten, die da unter dem Tisch stehen?",
    "b02": "Sie haben es gerade hochgetragen und jetzt gehen sie wieder runter.",
    "b03": "An den Wochenenden bin ich jetzt immer nach Hause gefahren und habe Agnes besucht.",
    "b09": "Ich will das eben wegbringen und dann mit Karl was trinken gehen.",
    "b10": "Die wird auf dem Platz sein, wo wir sie immer hinlegen.",
}
EMOTIONS = {"N": "neu", "F": "hap", "W": "ang", "T": "sad", "A": "fea", "E": "dis", "L": "bor"}
CLASSES = tuple(EMOTIONS.values())
DOCUMENTED_TOTALS = {"utterances": 535, "speakers": 10}
NAME_RE = re.compile(r"(\d\d)([ab]\d\d)([A-Z])([a-z])")


def load_emodb(root, skip_bad_audio=False):
    """(utterances, skips, counts) of every recording under ``<root>/wav``."""
    utts, skips, speakers, files = [], Skips(), set(), 0
    for stem, path in wav_files(os.path.join(root, "wav"), skips,
                                "unpack EmoDB's download.zip there (set EMODB in db.sh)"):
        match = NAME_RE.fullmatch(stem)
        if (match is None or match.group(1) not in SPEAKERS or match.group(2) not in TEXTS
                or match.group(3) not in EMOTIONS):
            raise DataDirError(f"{path}: not an EmoDB file name "
                               f"<speaker><text><emotion><version>.wav (e.g. 03a01Fa.wav)")
        speaker, text, emotion, _ = match.groups()
        files += 1
        speakers.add(speaker)
        duration = audio_duration(path, stem, skips, skip_bad=skip_bad_audio)
        if duration is not None:
            utts.append(Utterance(stem, speaker, speaker, EMOTIONS[emotion], TEXTS[text],
                                  os.path.abspath(path), duration))
    return utts, skips, {"utterances": files, "speakers": len(speakers)}


def prepare_emodb(root, out_dir, num_folds=10, dev_speakers=1, expected_counts=DOCUMENTED_TOTALS,
                  skip_bad_audio=False):
    """Write ``<out_dir>/all``, the fold dirs and ``protocol``; return the utterances."""
    utts, skips, counts = load_emodb(root, skip_bad_audio)
    check_counts(counts, expected_counts, f"{root}/wav")
    groups = balanced_groups({u.speaker for u in utts}, num_folds, SPEAKERS)
    folds = speaker_group_folds(utts, groups, dev_speakers)
    loso = all(len(g) == 1 for g in groups)
    protocol = {"corpus": "EmoDB", "headline": "ua", "metrics": ("ua", "wa"),
                "description": ("leave-one-speaker-out, " if loso else "speaker-independent, ")
                + f"{len(groups)} folds, dev = {dev_speakers} speaker(s) of the next fold"}
    write_corpus(out_dir, utts, CLASSES, folds, protocol, skips,
                 by=("speaker", lambda u: u.speaker))
    return utts


def add_arguments(parser):
    add_speaker_folds(parser)
    add_skip_bad_audio(parser)


register(Corpus("emodb", prepare_emodb, add_arguments, __doc__, DOCUMENTED_TOTALS))
