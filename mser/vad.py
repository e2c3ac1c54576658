"""Speech segments of a long recording: the Silero VAD, then segments merged and split to the
bounds an emotion model was trained on; or fixed windows.

:class:`SpeechDetector` runs the pre-trained Silero VAD (``silero-vad``, MIT) that ships inside
its pinned wheel (``silero_vad/data/silero_vad.jit``, loaded from the installed package, never
from a hub) over an :class:`mser.features.audio.AudioSource` block by block at 16 kHz: one
speech probability per 32 ms window, the recurrent state carried across blocks, so memory is
bounded by the block, not by the recording. :func:`speech_segments` turns the probabilities
into segments with Silero's own post-processing (hysteresis threshold, minimum speech and
silence, padding, splitting at the longest pause beyond ``max_segment``), then merges segments
shorter than ``min_segment`` with a neighbour across pauses of at most ``merge_gap`` while the
result stays within ``max_segment``. Short segments that cannot be merged are kept, not dropped.
"""
import dataclasses
import logging
from importlib import resources

import numpy as np

VAD_RATE = 16000
WINDOW = 512                # samples per speech probability at 16 kHz (32 ms)
BLOCK_WINDOWS = 1875        # windows read from disk at once (60 s)
MODEL_FILE = "silero_vad.jit"


@dataclasses.dataclass
class SegmentOptions:
    """How speech becomes segments (seconds; see the module doc)."""
    threshold: float = 0.5      # speech probability that starts speech (Silero's default)
    min_speech: float = 0.25    # shorter bursts are not speech
    min_silence: float = 0.3    # shorter pauses do not end a segment
    padding: float = 0.1        # added to each side of a segment (within the pauses)
    min_segment: float = 1.0    # shorter segments are merged with a neighbour when possible
    max_segment: float = 15.0   # longer ones are split at their longest pause (or cut)
    merge_gap: float = 1.0      # the longest pause a merge may bridge

    def check(self):
        for name in ("min_speech", "min_silence", "padding", "min_segment", "merge_gap"):
            if getattr(self, name) < 0:
                raise ValueError(f"segment option {name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.threshold < 1:
            raise ValueError(f"segment option threshold must be in (0, 1), got {self.threshold}")
        if self.max_segment < max(1.0, self.min_segment):
            raise ValueError(f"segment option max_segment ({self.max_segment} s) must be at least "
                             f"1 s and at least min_segment ({self.min_segment} s)")
        return self


def _silero():
    """The silero_vad package, imported without its side effect: its model module sets torch to
    one thread for the whole process (torch.set_num_threads(1) at import)."""
    import torch

    threads = torch.get_num_threads()
    import silero_vad

    torch.set_num_threads(threads)
    return silero_vad


class SpeechDetector:
    """Speech probabilities of a recording, one per :data:`WINDOW` samples at 16 kHz. The model
    runs on ``num_threads`` torch threads (1: a 32 ms window is too small a job to share; more
    threads were several times slower on 2 cores), restored afterwards."""

    def __init__(self, num_threads=1):
        import torch

        _silero()
        path = resources.files("silero_vad.data").joinpath(MODEL_FILE)
        with resources.as_file(path) as model_path:
            # TorchScript of the pinned silero-vad wheel (installed from PyPI, sha-checked by pip)
            self.model = torch.jit.load(str(model_path), map_location="cpu").eval()
        self.num_threads = num_threads

    def probabilities(self, source, progress=None):
        """Speech probability of every 32 ms window of ``source`` (an AudioSource); the last
        window is zero-padded. ``progress(seconds)`` is called after each block."""
        import torch

        threads = torch.get_num_threads()
        if self.num_threads:
            torch.set_num_threads(self.num_threads)
        probs = []
        try:
            with torch.inference_mode():
                self.model.reset_states()
                for block in source.blocks(VAD_RATE, BLOCK_WINDOWS * WINDOW):
                    if len(block) % WINDOW:
                        block = np.pad(block, (0, WINDOW - len(block) % WINDOW))
                    chunks = torch.from_numpy(block).view(-1, WINDOW)
                    probs += [float(self.model(chunk, VAD_RATE)) for chunk in chunks]
                    if progress:
                        progress(len(block) / VAD_RATE)
        finally:
            torch.set_num_threads(threads)
        return np.asarray(probs, dtype=np.float32)


def speech_segments(probs, num_samples, options=None):
    """[(start, end)] in seconds of the speech in a recording of ``num_samples`` at 16 kHz,
    from its window probabilities (:meth:`SpeechDetector.probabilities`)."""
    options = (options or SegmentOptions()).check()
    speech = _silero().get_speech_timestamps_from_probs(
        list(map(float, probs)), sampling_rate=VAD_RATE, threshold=options.threshold,
        min_speech_duration_ms=1000 * options.min_speech,
        max_speech_duration_s=options.max_segment,
        min_silence_duration_ms=1000 * options.min_silence,
        speech_pad_ms=1000 * options.padding, audio_length_samples=num_samples)
    segments = [(s["start"] / VAD_RATE, s["end"] / VAD_RATE) for s in speech]
    return split_long(merge_short(segments, options), options.max_segment)


def merge_short(segments, options):
    """Segments shorter than ``min_segment`` joined to their nearer neighbour across a pause of
    at most ``merge_gap``, while the union stays within ``max_segment``."""
    segments = [list(s) for s in segments]
    changed = True
    while changed:
        changed = False
        for i, (start, end) in enumerate(segments):
            if end - start >= options.min_segment:
                continue
            candidates = []
            if i > 0:
                candidates.append((start - segments[i - 1][1], i - 1))
            if i + 1 < len(segments):
                candidates.append((segments[i + 1][0] - end, i + 1))
            for gap, j in sorted(candidates):
                first, second = sorted((i, j))
                union = segments[second][1] - segments[first][0]
                if gap <= options.merge_gap and union <= options.max_segment:
                    segments[first] = [segments[first][0], segments[second][1]]
                    del segments[second]
                    changed = True
                    break
            if changed:
                break
    return [tuple(s) for s in segments]


def split_long(segments, max_segment):
    """Segments longer than ``max_segment`` (after padding) cut into equal parts."""
    out = []
    for start, end in segments:
        parts = int(np.ceil((end - start) / max_segment - 1e-9))
        edges = np.linspace(start, end, max(parts, 1) + 1)
        out += list(zip(edges[:-1].tolist(), edges[1:].tolist()))
    return out


def fixed_segments(duration, window, min_segment=0.0):
    """Windows of ``window`` seconds over ``duration``; a last window shorter than
    ``min_segment`` is joined to the previous one."""
    if window <= 0:
        raise ValueError(f"fixed window must be > 0 s, got {window}")
    edges = list(np.arange(0.0, duration, window)) + [duration]
    if len(edges) > 2 and edges[-1] - edges[-2] < min_segment:
        del edges[-2]
    return [(float(a), float(b)) for a, b in zip(edges[:-1], edges[1:]) if b > a]


def detect(source, detector, options=None, progress=None):
    """Speech segments of an AudioSource: VAD probabilities, then :func:`speech_segments`."""
    probs = detector.probabilities(source, progress)
    segments = speech_segments(probs, source.length(VAD_RATE), options)
    logging.info("%s: %d speech segment(s), %.1f of %.1f s", source.name, len(segments),
                 sum(e - s for s, e in segments), source.duration)
    return segments
