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


def check_num_groups(num_groups, num_speakers):
    if not 2 <= num_groups <= num_speakers:
        raise DataDirError(f"cannot make {num_groups} speaker folds from {num_speakers} speakers; "
                           f"use 2..{num_speakers} folds")


def balanced_groups(speakers, num_groups, gender):
    """``num_groups`` speaker groups of near-equal size with the genders spread evenly:
    speakers sorted by gender then id are dealt round-robin; each group is gender-interleaved.
    As many groups as speakers is leave-one-speaker-out in speaker id order."""
    speakers = sorted(speakers, key=lambda s: (gender.get(s, "?"), c_sort_key(s)))
    check_num_groups(num_groups, len(speakers))
    if num_groups == len(speakers):  # leave-one-speaker-out, in speaker id order
        return [[spk] for spk in sorted(speakers, key=c_sort_key)]
    groups = [speakers[i::num_groups] for i in range(num_groups)]
    return [interleave_by_gender(group, gender) for group in groups]


def speaker_group_folds(utts, groups, dev_speakers):
    """Fold k tests on ``groups[k-1]``; dev: the first ``dev_speakers`` speakers of the next group
    (``"all"``: the whole next group)."""
    if len(groups) < 2:
        raise DataDirError(f"speaker folds need at least 2 speaker groups, found {groups}")
    found = {u.speaker for u in utts}
    listed = [spk for group in groups for spk in group]
    if len(set(listed)) != len(listed):
        raise DataDirError(f"a speaker is in two fold groups: {groups}")
    unlisted = sorted(found - set(listed), key=c_sort_key)
    if unlisted:
        raise DataDirError(f"speaker(s) {', '.join(unlisted)} belong to no fold group")
    if dev_speakers != "all" and dev_speakers < 1:
        raise DataDirError(f"--dev-speakers must be at least 1 or 'all', got {dev_speakers}")
    by_speaker = {}
    for u in utts:
        by_speaker.setdefault(u.speaker, set()).add(u.utt_id)
    folds = {}
    for k, group in enumerate(groups):
        next_group = groups[(k + 1) % len(groups)]
        dev_count = len(next_group) if dev_speakers == "all" else dev_speakers
        if dev_count > len(next_group):
            raise DataDirError(f"--dev-speakers {dev_speakers} exceeds the {len(next_group)} "
                               f"speaker(s) of the next fold group {next_group}")
        test_spk, dev_spk = set(group), set(next_group[:dev_count])
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


def class_balanced_groups(utts, num_groups, classes):
    """``num_groups`` speaker groups such that each holds every class of ``classes``, with the
    clips of each class spread as evenly as the speakers allow: speakers dealt largest first to
    the group that needs them most, then single moves and pairwise swaps of speakers while they
    lower the imbalance (sum over groups and classes of the squared shortfall or excess against
    an equal share, relative to that share). Deterministic. DataDirError, naming the class,
    when some group cannot hold every class."""
    counts = {}
    for u in utts:
        counts.setdefault(u.speaker, dict.fromkeys(classes, 0))[u.label] += 1
    speakers = sorted(counts, key=lambda s: (-sum(counts[s].values()), c_sort_key(s)))
    check_num_groups(num_groups, len(speakers))
    for c in classes:
        holders = sum(1 for s in speakers if counts[s][c])
        if holders < num_groups:
            raise DataDirError(f"class {c}: only {holders} speaker(s) have it, so {num_groups} "
                               f"speaker folds cannot all test on it; use --num-folds {holders} "
                               f"or fewer (at least 2), or leave the class out")
    share = {c: sum(counts[s][c] for s in speakers) / num_groups for c in classes}
    totals = [dict.fromkeys(classes, 0) for _ in range(num_groups)]

    def cost(group_counts):
        return sum((group_counts[c] - share[c]) ** 2 / share[c]
                   + (1e6 if group_counts[c] == 0 else 0) for c in classes)

    def moved(group_counts, spk, sign):
        return {c: group_counts[c] + sign * counts[spk][c] for c in classes}

    group_of = {}
    for spk in speakers:
        best = min(range(num_groups), key=lambda g: (
            cost(moved(totals[g], spk, 1)) - cost(totals[g]), sum(totals[g].values()), g))
        group_of[spk] = best
        totals[best] = moved(totals[best], spk, 1)
    improved = True
    while improved:
        improved = False
        for spk in speakers:
            g = group_of[spk]
            for h in range(num_groups):
                if h == g or sum(1 for s in group_of if group_of[s] == g) == 1:
                    continue
                gain = cost(totals[g]) + cost(totals[h]) - cost(moved(totals[g], spk, -1)) \
                    - cost(moved(totals[h], spk, 1))
                if gain > 1e-9:
                    totals[g], totals[h] = moved(totals[g], spk, -1), moved(totals[h], spk, 1)
                    group_of[spk], g, improved = h, h, True
        for i, a in enumerate(speakers):
            for b in speakers[i + 1:]:
                g, h = group_of[a], group_of[b]
                if g == h:
                    continue
                new_g = moved(moved(totals[g], a, -1), b, 1)
                new_h = moved(moved(totals[h], b, -1), a, 1)
                if cost(totals[g]) + cost(totals[h]) - cost(new_g) - cost(new_h) > 1e-9:
                    totals[g], totals[h] = new_g, new_h
                    group_of[a], group_of[b], improved = h, g, True
    for g, group_counts in enumerate(totals):
        lacking = [c for c in classes if group_counts[c] == 0]
        if lacking:
            raise DataDirError(f"no grouping of the {len(speakers)} speakers into {num_groups} "
                               f"folds gives every fold class(es) {', '.join(lacking)}; use "
                               f"fewer folds")
    groups = [sorted((s for s in speakers if group_of[s] == g), key=c_sort_key)
              for g in range(num_groups)]
    return sorted(groups, key=lambda group: c_sort_key(group[0]))


def missing_classes(utts, folds, classes):
    """[(fold, subset, [classes it lacks])] of every subset that lacks a class."""
    label = {u.utt_id: u.label for u in utts}
    return [(fold, subset, [c for c in classes if c not in {label[u] for u in ids}])
            for fold, subsets in folds.items() for subset, ids in subsets.items()
            if set(classes) - {label[u] for u in ids}]
