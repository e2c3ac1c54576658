"""What an utterance-level prediction is and how its inputs are checked, shared by the torch
recogniser (:mod:`mser.inference`) and the onnxruntime one (:mod:`mser.onnx_inference`);
numpy only."""
import dataclasses

import numpy as np


class InputError(ValueError):
    """An utterance the model cannot take (too short, a transcript that is not UTF-8)."""


@dataclasses.dataclass
class Prediction:
    emotion: str
    probabilities: dict            # class -> posterior
    modalities: tuple              # the inputs the model used
    attention: np.ndarray = None   # (K, Ta' + Tt) last decoder layer, if asked for
    audio_frames: int = 0          # Ta': acoustic positions after subsampling
    text_tokens: list = None       # token strings (rows of the text features), if text was used
    duration: float = 0.0          # seconds of audio
    calibrated: bool = False       # probabilities temperature-scaled (the model dir's calibration.yaml)
    tasks: dict = None             # auxiliary task -> its class or number (mser.utils.tasks)

    def format(self):
        probs = " ".join(f"{c}={p:.3f}" for c, p in self.probabilities.items())
        tasks = "".join(f" {task}={value}" for task, value in (self.tasks or {}).items())
        return f"{self.emotion} {probs}{tasks} ({'+'.join(self.modalities)})"


def usable_streams(modalities, has_audio, has_text):
    """The model's streams among those given (a wav, a transcript); an error if none."""
    available = {"audio": has_audio, "text": has_text}
    used = tuple(m for m in modalities if available[m])
    if not used:
        need = " and/or ".join("a wav" if m == "audio" else "a transcript" for m in modalities)
        raise ValueError(f"this model uses {'+'.join(modalities)}; give it {need}")
    return used


MAX_CHANNELS = 16


def mono_float(waveform):
    """A waveform as mono float32 in [-1, 1]: integer PCM (int16, int32, uint8) scaled as
    soundfile reads it, a (samples, channels) or (channels, samples) array averaged over its
    channels (the smaller dimension)."""
    array = np.asarray(waveform)
    if array.dtype.kind in "iu":
        info = np.iinfo(array.dtype)
        offset = 0 if array.dtype.kind == "i" else (int(info.max) + 1) // 2
        array = (array.astype(np.float64) - offset) / (int(info.max) + 1 - offset)
    elif array.dtype.kind != "f":
        raise InputError(f"audio of dtype {array.dtype}: give float or integer PCM samples")
    if array.ndim == 2 and min(array.shape) <= MAX_CHANNELS:
        array = array.mean(axis=int(np.argmin(array.shape)))
    if array.ndim != 1:
        raise InputError(f"audio of shape {array.shape}: give mono samples (n,) or channels "
                         f"(n, c) / (c, n) with at most {MAX_CHANNELS} channels")
    return array.astype(np.float32)


def check_utf8(text):
    """Undecodable bytes reach Python strings as lone surrogates (command-line arguments)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        char = ord(text[e.start])
        byte = f"byte 0x{char - 0xDC00:02x}" if 0xDC80 <= char <= 0xDCFF else f"U+{char:04X}"
        raise InputError(f"transcript is not UTF-8 ({byte} at character {e.start}); give it in "
                         f"UTF-8, e.g. convert with iconv -f latin1 -t utf-8") from None
