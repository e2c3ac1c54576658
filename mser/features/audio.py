"""Reading wav.scp entries as mono float32 waveforms in [-1, 1), and resampling.

A wav.scp value is a sound file path (anything libsndfile reads) or a Kaldi pipe command ending
in ``|`` whose standard output is a sound file. Multi-channel audio is averaged to mono.
"""
import io
import subprocess
from fractions import Fraction

import numpy as np
import soundfile
from scipy.signal import resample_poly

from mser.data.datadir import DataDirError


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
