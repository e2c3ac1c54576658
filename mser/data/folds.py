"""Speaker-independent cross-validation folds, and official splits in the same shape.

A fold dict maps a fold name to ``{"train"|"dev"|"test": set of utterance ids}`` (the shape
``mser.data.iemocap.make_folds`` returns). In :func:`speaker_group_folds` fold k tests on speaker
group k and takes its dev speakers from group k+1 (wrapping around), so dev never shares a speaker
with test and training never sees either.
"""
from mser.io.datadir import DataDirError, c_sort_key


def interleave_by_gender(speakers, gender):
    """``speakers`` reordered F, M, F, M, ... (each gender in sorted order, the rest last)."""
    by_gender = {}
    for spk in sorted(speakers, key=c_sort_key):
        by_gender.setdefault(gender.get(spk, "?"), []).append(spk)
    queues = [by_gender.pop(g, []) for g in ("F", "M")] + list(by_gender.values())
    order = []
    while any(queues):
        for queue in queues:
            if queue:
                order.append(queue.pop(0))
    return order


def balanced_groups(speakers, num_groups, gender):
    """``num_groups`` speaker groups of near-equal size with the genders spread evenly:
    speakers sorted by gender then id are dealt round-robin; each group is gender-interleaved.
    As many groups as speakers is leave-one-speaker-out in speaker id order."""
    speakers = sorted(speakers, key=lambda s: (gender.get(s, "?"), c_sort_key(s)))
    if not 2 <= num_groups <= len(speakers):
        raise DataDirError(f"cannot make {num_groups} speaker folds from {len(speakers)} speakers; "
                           f"use 2..{len(speakers)} folds")
    if num_groups == len(speakers):  # leave-one-speaker-out, in speaker id order
        return [[spk] for spk in sorted(speakers, key=c_sort_key)]
    groups = [speakers[i::num_groups] for i in range(num_groups)]
    return [interleave_by_gender(group, gender) for group in groups]


def speaker_group_folds(utts, groups, dev_speakers):
    """Fold k tests on ``groups[k-1]``; dev: the first ``dev_speakers`` speakers of the next group."""
    if len(groups) < 2:
        raise DataDirError(f"speaker folds need at least 2 speaker groups, found {groups}")
    found = {u.speaker for u in utts}
    listed = [spk for group in groups for spk in group]
    if len(set(listed)) != len(listed):
        raise DataDirError(f"a speaker is in two fold groups: {groups}")
    unlisted = sorted(found - set(listed), key=c_sort_key)
    if unlisted:
        raise DataDirError(f"speaker(s) {', '.join(unlisted)} belong to no fold group")
    if dev_speakers < 1:
        raise DataDirError(f"--dev-speakers must be at least 1, got {dev_speakers}")
    by_speaker = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, set()).add(u.utt_id)
    folds = {}
    for k, group in enumerate(groups):
        next_group = groups[(k + 1) % len(groups)]
        if dev_speakers > len(next_group):
            raise DataDirError(f"--dev-speakers {dev_speakers} exceeds the {len(next_group)} "
                               f"speaker(s) of the next fold group {next_group}")
        test_spk, dev_spk = set(group), set(next_group[:dev_speakers])
        subsets = {"train": set(), "dev": set(), "test": set()}
        for spk, ids in by_speaker.items():
            subsets["test" if spk in test_spk else "dev" if spk in dev_spk else "train"] |= ids
        folds[f"fold{k + 1}"] = subsets
    return folds


def official_folds(utts, extra_tests=()):
    """The official partition as one fold: ``fold1/{train,dev,test}`` plus ``extra_tests``."""
    subsets = {name: set() for name in ("train", "dev", "test", *extra_tests)}
    for u in utts:
        if u.split not in subsets:
            raise DataDirError(f"utterance {u.utt_id}: unknown partition {u.split!r}")
        subsets[u.split].add(u.utt_id)
    return {"fold1": subsets}
