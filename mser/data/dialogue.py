"""Dialogue context: the turns before each utterance of its dialogue, as a second text stream.

The order comes from the data dir's utt2turn (``<utt> <dialogue> <position>``; MELD's
Utterance_ID, IEMOCAP's start time). The context of an utterance is the text of up to ``turns``
utterances before it in its dialogue, oldest first, each as ``<speaker>: <text>``, separated by
`` | ``, then ``<its own speaker>:`` (whose turn comes next, so that the same speaker's earlier
turns can be told apart); never the utterance itself or a later one. The first turn of a dialogue has only
that closing marker. Text features of the context keep its end when it is too long
(``truncation_side: left`` of the text extractor).

Only the utterances of the data dir are turns: where a corpus preparation left some out (IEMOCAP's
classes outside the 4, MELD's clips that do not decode), the context skips them.

The context must not cross the split: a dialogue whose utterances fall in two subsets of one
fold (train and test, say) is an error, since a test utterance would then see training turns and
a training utterance the test ones. MELD's and IEMOCAP's protocols keep every dialogue in one
subset.
"""
import glob
import logging
import os
import re

from mser.io.datadir import (DataDirError, parse_turn, read_data_dir, read_table,
                             validate_data_dir, write_data_dir)
from mser.utils.fileio import atomic_write_text

COPIED_TABLES = ("utt2spk", "utt2emo", "utt2sess", "utt2dur", "utt2turn")


def read_turns(data_dir):
    """{utt: (dialogue, position)} of ``<data_dir>/utt2turn``."""
    path = os.path.join(data_dir, "utt2turn")
    if not os.path.isfile(path):
        raise DataDirError(f"{path}: not found; a dialogue context needs each utterance's "
                           f"dialogue and position (the corpus preparation writes utt2turn for "
                           f"corpora of dialogues: MELD, IEMOCAP)")
    turns = {}
    for lineno, (utt, value) in enumerate(read_table(path).items(), 1):
        turn = parse_turn(value)
        if turn is None:
            raise DataDirError(f"{path}:{lineno}: expected '<utt> <dialogue-id> <position>', "
                               f"got {utt} {value!r}")
        turns[utt] = turn
    return turns


def dialogue_contexts(texts, speakers, turns, num_turns):
    """{utt: context text} (see the module docstring) of the utterances of ``turns``."""
    if num_turns < 1:
        raise ValueError(f"turns: {num_turns}; expected at least 1 previous turn")
    dialogues = {}
    for utt, (dialogue, position) in turns.items():
        dialogues.setdefault(dialogue, []).append((position, utt))
    contexts = {}
    for dialogue, members in dialogues.items():
        members.sort()
        for (position, utt), (next_position, next_utt) in zip(members, members[1:]):
            if position == next_position:
                raise DataDirError(f"utt2turn: {utt} and {next_utt} share position {position:g} "
                                   f"of dialogue {dialogue}; their order is unknown")
        for i, (_, utt) in enumerate(members):
            previous = [f"{speakers[u]}: {texts[u]}" for _, u in members[max(0, i - num_turns):i]]
            contexts[utt] = " | ".join(previous + [f"{speakers[utt]}:"])
    return contexts


def fold_subsets(data_root):
    """{"fold<k>/<subset>": set of utts} of every ``<data_root>/fold<k>/<subset>/utt2spk``."""
    subsets = {}
    for path in sorted(glob.glob(os.path.join(data_root, "fold*", "*", "utt2spk"))):
        fold_dir = os.path.dirname(path)
        if re.fullmatch(r"fold\d+", os.path.basename(os.path.dirname(fold_dir))):
            subsets[os.path.relpath(fold_dir, data_root)] = set(read_table(path))
    return subsets


def check_within_subsets(turns, subsets):
    """Raise if a dialogue has utterances in two subsets of one fold (``fold_subsets``)."""
    folds = {}
    for name, utts in subsets.items():
        fold, subset = name.split(os.sep)
        for utt in utts:
            folds.setdefault(fold, {})[utt] = subset
    for fold, subset_of in sorted(folds.items()):
        seen = {}
        for utt, (dialogue, _) in turns.items():
            if utt not in subset_of:
                continue
            first = seen.setdefault(dialogue, (subset_of[utt], utt))
            if first[0] != subset_of[utt]:
                raise DataDirError(
                    f"dialogue {dialogue} has {first[1]} in {fold}/{first[0]} and {utt} in "
                    f"{fold}/{subset_of[utt]}: a dialogue context would cross the split; use a "
                    f"protocol that keeps each dialogue in one subset, or no context stream")


def write_context_dir(data_dir, out_dir, num_turns, subsets=None):
    """``out_dir``: the utterances of ``data_dir`` with their dialogue context as ``text``
    (a data dir for text feature extraction); ``subsets`` (``fold_subsets``) are checked first.
    Returns the contexts."""
    turns = read_turns(data_dir)
    tables = read_data_dir(data_dir, ("text",) + COPIED_TABLES)
    if "text" not in tables:
        raise DataDirError(f"{data_dir}/text: not found; a dialogue context is made of the "
                           f"transcripts")
    for name in ("text", "utt2spk"):
        missing = sorted(set(turns) - set(tables[name]))
        if missing:
            raise DataDirError(f"{data_dir}/{name}: {len(missing)} utterance(s) of utt2turn "
                               f"missing, e.g. {missing[0]}; run utils/fix_data_dir.sh")
    if subsets:
        check_within_subsets(turns, subsets)
    contexts = dialogue_contexts(tables["text"], tables["utt2spk"], turns, num_turns)
    tables["text"] = contexts
    write_data_dir(out_dir, tables)
    classes = os.path.join(data_dir, "classes.txt")
    if os.path.isfile(classes):
        with open(classes, encoding="utf-8") as f:
            atomic_write_text(os.path.join(out_dir, "classes.txt"), f.read())
    problems = validate_data_dir(out_dir, check_wavs=False)
    if problems:
        raise DataDirError(f"{out_dir}: written data dir is invalid:\n  " + "\n  ".join(problems))
    dialogues = len({dialogue for dialogue, _ in turns.values()})
    logging.info("%s: the context of %d utterance(s) in %d dialogue(s), up to %d previous "
                 "turn(s) each (the first turn of each dialogue has none)", out_dir,
                 len(contexts), dialogues, num_turns)
    return contexts
