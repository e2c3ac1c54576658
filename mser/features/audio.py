"""Reading wav.scp entries as mono float32 waveforms in [-1, 1), and resampling.

A wav.scp value is a sound file path (anything libsndfile reads) or a Kaldi pipe command ending
in ``|`` whose standard output is a sound file. Multi-channel audio is averaged to mono.
"""
import io
import os
import subprocess
from fractions import Fraction

import numpy as np
import soundfile
from scipy.signal import resample_poly

from mser.io.datadir import DataDirError


class NoSamplesError(ValueError):
    """A recording whose container decodes to no audio samples (a header without data)."""


class BadUtteranceError(DataDirError):
    """An utterance whose audio or text cannot be turned into features."""

    def __init__(self, utt, source, reason):
        self.utt, self.source, self.reason = utt, source, reason
        super().__init__(f"utterance {utt}: {source}: {reason}; fix or remove it "
                         f"(utils/fix_data_dir.sh), or set 'skip_bad: true' in the feature config "
                         f"to skip it (it is then listed in <dump_dir>/skipped)")


def _open(wav):
    if wav.endswith("|"):
        out = subprocess.run(wav[:-1], shell=True, capture_output=True, check=False)
        if out.returncode != 0:
            raise RuntimeError(f"command failed (exit {out.returncode}): "
                               f"{out.stderr.decode(errors='replace').strip()[-300:]}")
        return io.BytesIO(out.stdout)
    if not os.path.exists(wav):  # libsndfile would only say "System error."
        raise FileNotFoundError("no such file; fix the path in wav.scp (relative paths are "
                                "read from the current directory)")
    return wav


def audio_info(utt, wav):
    """(number of samples, sample rate) of an utterance's audio, without decoding a file."""
    try:
        if wav.endswith("|"):
            waveform, rate = read_wav(utt, wav)
            return len(waveform), rate
        info = soundfile.info(wav)
    except BadUtteranceError:
        raise
    except Exception as e:  # soundfile raises several types for unreadable audio
        raise BadUtteranceError(utt, wav, f"cannot read audio ({e})") from None
    if info.frames <= 0:
        raise BadUtteranceError(utt, wav, "audio has no samples")
    return info.frames, info.samplerate


def read_wav(utt, wav, sample_rate=None):
    """Mono float32 waveform of ``wav`` and its rate (resampled to ``sample_rate`` if given)."""
    try:
        waveform, rate = soundfile.read(_open(wav), dtype="float32", always_2d=True)
    except Exception as e:
        raise BadUtteranceError(utt, wav, f"cannot read audio ({e})") from None
    waveform = waveform.mean(axis=1) if waveform.shape[1] > 1 else waveform[:, 0]
    if waveform.size == 0:
        raise BadUtteranceError(utt, wav, "audio has no samples")
    if not np.isfinite(waveform).all():
        raise BadUtteranceError(utt, wav, "audio contains NaN or Inf samples")
    if sample_rate is not None and rate != sample_rate:
        return resample(waveform, rate, sample_rate), sample_rate
    return waveform, rate


def resample(waveform, from_rate, to_rate):
    """Polyphase resampling (scipy.signal.resample_poly) to ``to_rate``; float32 out."""
    if from_rate == to_rate:
        return np.asarray(waveform, dtype=np.float32)
    ratio = Fraction(int(to_rate), int(from_rate))
    out = resample_poly(np.asarray(waveform, dtype=np.float64), ratio.numerator, ratio.denominator)
    return out.astype(np.float32)


def resampled_length(num_samples, from_rate, to_rate):
    """Number of samples :func:`resample` returns (ceil(n * up / down), as resample_poly)."""
    ratio = Fraction(int(to_rate), int(from_rate))
    return -(-num_samples * ratio.numerator // ratio.denominator)


def batches_by_length(lengths, budget, same_length=False):
    """Index groups, longest first, whose padded size (count * longest) stays within ``budget``
    (a longer item goes alone). ``same_length``: only equal lengths share a group (no padding)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    groups = []
    for i in order:
        group = groups[-1] if groups else None
        if (group and (len(group) + 1) * lengths[group[0]] <= budget
                and (not same_length or lengths[i] == lengths[group[0]])):
            group.append(i)
        else:
            groups.append([i])
    return groups


class AudioExtractor:
    """What every audio extractor shares: the modality and any-rate single-waveform extraction."""

    modality = "audio"
    sample_rate = 16000

    def extract_wav(self, waveform, sample_rate):
        """Features (T, L*D) of one mono waveform at ``sample_rate`` (resampled if needed)."""
        return self.extract_batch([resample(waveform, sample_rate, self.sample_rate)])[0]

    def min_samples(self):
        """The fewest samples (at ``sample_rate``) that give one feature frame."""
        high = 1
        while self.num_frames(high) == 0:
            high *= 2
        low = high // 2 + 1
        while low < high:
            middle = (low + high) // 2
            low, high = (low, middle) if self.num_frames(middle) > 0 else (middle + 1, high)
        return high

    def length_problem(self, num_samples):
        """Why ``num_samples`` (at ``sample_rate``) give no feature frame, or None if they do."""
        if self.num_frames(num_samples) > 0:
            return None
        return (f"too short ({num_samples / self.sample_rate:.3f} s) for a single feature frame; "
                f"the features need at least {self.min_samples() / self.sample_rate:.3f} s")


def decode_with_av(path, sample_rate):
    """Any container FFmpeg reads (mp4, webm/opus, m4a, mp3, ...) as 16-bit mono samples at
    ``sample_rate`` (PyAV, which bundles FFmpeg). Raises ValueError saying why it cannot
    (:class:`NoSamplesError` when the audio stream holds no samples)."""
    import av

    chunks, has_audio = [], True
    try:
        with av.open(path) as container:
            has_audio = bool(container.streams.audio)
            if has_audio:
                resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
                for frame in container.decode(container.streams.audio[0]):
                    chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]
    except (av.error.FFmpegError, ValueError, OSError) as e:
        raise ValueError(f"cannot decode ({type(e).__name__})") from None
    if not has_audio:
        raise ValueError("no audio stream")
    samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
    if samples.size == 0:
        raise NoSamplesError("no audio samples")
    return samples


class AudioSource:
    """One recording read in pieces, resampled on the way: a sound file is never held whole
    (seek and read; memory is bounded by the piece, not the recording), a Kaldi pipe command
    (``cmd |``) or a waveform given in memory is.

    ``read(start, end, rate)`` (samples at ``rate``) equals slicing :func:`resample` of the whole
    recording: each piece is resampled with enough context for the polyphase filter, cut on the
    resampler's grid."""

    def __init__(self, name, wav=None, waveform=None, sample_rate=None):
        self.name, self.wav, self._file = name, wav, None
        if waveform is None and wav.endswith("|"):
            waveform, sample_rate = read_wav(name, wav)
        if waveform is not None:
            self._waveform = np.asarray(waveform, dtype=np.float32)
            if self._waveform.ndim != 1 or self._waveform.size == 0:
                raise BadUtteranceError(name, wav or "waveform",
                                        "expected a non-empty mono waveform")
            self.sample_rate, self.num_samples = int(sample_rate), len(self._waveform)
            return
        self.num_samples, self.sample_rate = audio_info(name, wav)
        try:
            self._file = soundfile.SoundFile(wav)
        except Exception as e:
            raise BadUtteranceError(name, wav, f"cannot read audio ({e})") from None

    @property
    def duration(self):
        return self.num_samples / self.sample_rate

    def close(self):
        if self._file is not None:
            self._file.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _native(self, start, end):
        """Native-rate mono samples [start, end)."""
        start, end = max(0, start), min(self.num_samples, end)
        if self._file is None:
            return self._waveform[start:end]
        try:
            self._file.seek(start)
            block = self._file.read(end - start, dtype="float32", always_2d=True)
        except Exception as e:
            raise BadUtteranceError(self.name, self.wav, f"cannot read audio ({e})") from None
        block = block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]
        if not np.isfinite(block).all():
            raise BadUtteranceError(self.name, self.wav, "audio contains NaN or Inf samples")
        return block

    def length(self, rate):
        """Samples of the whole recording at ``rate``."""
        return resampled_length(self.num_samples, self.sample_rate, rate)

    def read(self, start, end, rate=None):
        """Mono float32 samples [start, end) at ``rate`` (default: the native rate)."""
        rate = rate or self.sample_rate
        end = min(end, self.length(rate))
        if start >= end:
            return np.zeros(0, np.float32)
        if rate == self.sample_rate:
            return np.asarray(self._native(start, end), dtype=np.float32)
        ratio = Fraction(int(rate), int(self.sample_rate))
        up, down = ratio.numerator, ratio.denominator
        # resample_poly's filter reaches 10 * max(up, down) / up input samples either side
        context = -(-(10 * max(up, down) // up + 2) // down) + 1      # in steps of `down`
        first = max(0, start // up - context)                         # input step of the piece
        last = -(-end // up) + context
        piece = resample(self._native(first * down, last * down), self.sample_rate, rate)
        return piece[start - first * up:end - first * up]

    def blocks(self, rate, block_samples):
        """The whole recording at ``rate`` in consecutive blocks of ``block_samples``."""
        total = self.length(rate)
        for start in range(0, total, block_samples):
            yield self.read(start, min(start + block_samples, total), rate)
