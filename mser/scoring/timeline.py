"""Scoring a timeline against known segments: segment boundaries, speech coverage and the
frame-level emotion accuracy (for recordings built from labelled utterances,
``bench/eval_timeline.py``).

Reference and hypothesis are lists of (start, end, label) in seconds.

- boundary precision / recall / F1 within ``tolerance`` s: starts match starts, ends match ends,
  one to one (greedy, nearest first);
- coverage: the share of reference speech inside a hypothesis segment; speech precision: the
  share of hypothesis time inside reference speech;
- frame accuracy: over 10 ms frames of reference speech, the share whose covering hypothesis
  segment has the reference label (frames no segment covers count as errors); frame UA: the
  mean over the reference labels of that share.
"""
import numpy as np

FRAME = 0.01  # seconds


def _match(ref, hyp, tolerance):
    """Number of one-to-one pairs of ``ref`` and ``hyp`` points within ``tolerance``."""
    pairs = sorted((abs(r - h), i, j) for i, r in enumerate(ref) for j, h in enumerate(hyp)
                   if abs(r - h) <= tolerance)
    used_ref, used_hyp = set(), set()
    for _, i, j in pairs:
        if i not in used_ref and j not in used_hyp:
            used_ref.add(i)
            used_hyp.add(j)
    return len(used_ref)


def boundary_scores(reference, hypothesis, tolerance):
    """{"precision", "recall", "f1"} of the segment boundaries within ``tolerance`` seconds."""
    matched = sum(_match([r[k] for r in reference], [h[k] for h in hypothesis], tolerance)
                  for k in (0, 1))
    precision = matched / (2 * len(hypothesis)) if hypothesis else 0.0
    recall = matched / (2 * len(reference)) if reference else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def frame_labels(segments, num_frames, classes):
    """Per 10 ms frame: the index in ``classes`` of the covering segment's label, -1 for none
    (later segments win where they overlap)."""
    labels = np.full(num_frames, -1, dtype=np.int64)
    for start, end, label in segments:
        if label in classes:
            labels[int(round(start / FRAME)):int(round(end / FRAME))] = classes.index(label)
        else:  # a segment without a label (not classified) covers its frames with none
            labels[int(round(start / FRAME)):int(round(end / FRAME))] = -2
    return labels


def timeline_scores(reference, hypothesis, duration, tolerances=(0.2, 0.5)):
    """Boundary scores at each tolerance, coverage, speech precision, frame accuracy and UA."""
    classes = sorted({r[2] for r in reference} | {h[2] for h in hypothesis if h[2]})
    num_frames = int(np.ceil(duration / FRAME))
    ref = frame_labels(reference, num_frames, classes)
    hyp = frame_labels(hypothesis, num_frames, classes)
    speech, covered = ref >= 0, hyp != -1
    correct = speech & (ref == hyp)
    per_class = [correct[ref == k].mean() for k in range(len(classes)) if (ref == k).any()]
    scores = {f"boundary@{t:g}s": boundary_scores(reference, hypothesis, t) for t in tolerances}
    scores.update({
        "reference_segments": len(reference), "hypothesis_segments": len(hypothesis),
        "coverage": float((speech & covered).sum() / max(speech.sum(), 1)),
        "speech_precision": float((speech & covered).sum() / max(covered.sum(), 1)),
        "frame_accuracy": float(correct.sum() / max(speech.sum(), 1)),
        "frame_ua": float(np.mean(per_class)) if per_class else 0.0})
    return scores
