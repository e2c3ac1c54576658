"""Recognise emotions with an ONNX export (``mser-export-onnx``) on onnxruntime: a waveform and/or
a transcript in, a :class:`~mser.utils.prediction.Prediction` out, as
:class:`mser.inference.EmotionRecognizer` gives, without importing torch.

An export dir holds ``onnx.yaml`` (what each stream's front end is), ``model.onnx`` (the
fusion model, :mod:`mser.utils.onnx_model`) and per stream what its features need:
- ``fbank``: Kaldi fbank (+ pitch) computed here (kaldi-native-fbank), as in training;
- ``whisper``: Whisper's log-mel spectrogram in numpy (transformers.audio_utils, the numpy path
  of WhisperFeatureExtractor) and ``<stream>_encoder.onnx``, the encoder's stored layers, on the
  utterance's own length (``whisper_window: utterance``) up to Whisper's 30 s window;
- ``tokenizer``: the text encoder's tokenizer (``tokenizers``, its tokenizer.json) and
  ``<stream>_encoder.onnx``, the stored layers of its hidden states.
"""
import os

import numpy as np
import yaml

from mser.features import extractor_class, resolve_config
from mser.features.audio import resample
from mser.features.transcript import clean_transcript, is_empty_transcript
from mser.utils.onnx_model import OnnxEmotionModel, session_options
from mser.utils.prediction import InputError, Prediction, check_utf8, mono_float, usable_streams

MANIFEST = "onnx.yaml"


class FbankFrontend:
    def __init__(self, export_dir, spec, feat_conf, threads):
        conf = resolve_config(feat_conf)
        self.extractor = extractor_class(conf["extractor"])(conf)

    def length_problem(self, num_samples, sample_rate):
        rate = self.extractor.sample_rate
        return self.extractor.length_problem(round(num_samples * rate / sample_rate))

    def __call__(self, waveform, sample_rate):
        return self.extractor.extract_wav(waveform, sample_rate)


class WhisperFrontend:
    """Log-mel (numpy) and the encoder graph; frames of the utterance's own length."""

    def __init__(self, export_dir, spec, feat_conf, threads):
        import onnxruntime

        self.spec = spec
        self.mel_filters = np.load(os.path.join(export_dir, spec["mel_filters"]))
        self.session = onnxruntime.InferenceSession(
            os.path.join(export_dir, spec["encoder"]), session_options(threads),
            providers=["CPUExecutionProvider"])

    def num_frames(self, num_samples):
        return -(-(num_samples // self.spec["hop"]) // self.spec["stride"])

    def length_problem(self, num_samples, sample_rate):
        samples = round(num_samples * self.spec["sample_rate"] / sample_rate)
        seconds = samples / self.spec["sample_rate"]
        if self.num_frames(samples) == 0:
            return f"too short ({seconds:.3f} s) for a single feature frame"
        if self.num_frames(samples) > self.spec["max_frames"]:
            return (f"too long ({seconds:.1f} s) for Whisper's 30 s window, all the ONNX path "
                    f"runs; segment it (mser-timeline) or use the torch backend")
        return None

    def log_mel(self, wave):
        """As WhisperFeatureExtractor(padding="longest", truncation=False), numpy path."""
        from transformers.audio_utils import spectrogram, window_function

        n_fft = self.spec["n_fft"]
        log_spec = spectrogram(wave, window_function(n_fft, "hann"), frame_length=n_fft,
                               hop_length=self.spec["hop"], power=2.0,
                               mel_filters=self.mel_filters, log_mel="log10")[:, :-1]
        log_spec = np.maximum(log_spec, log_spec.max() - 8.0)
        return ((log_spec + 4.0) / 4.0).astype(np.float32)

    def __call__(self, waveform, sample_rate):
        wave = resample(waveform, sample_rate, self.spec["sample_rate"]).astype(np.float32)
        mel = self.log_mel(wave)
        feats = self.session.run(None, {"input_features": mel[None]})[0][0]
        return feats[:self.num_frames(len(wave))]


class TokenizerFrontend:
    """The tokenizer (special tokens included, cut at max_length) and the encoder graph."""

    def __init__(self, export_dir, spec, feat_conf, threads):
        import onnxruntime
        from tokenizers import Tokenizer

        self.feat_conf = feat_conf
        self.tokenizer = Tokenizer.from_file(os.path.join(export_dir, spec["tokenizer"]))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(spec["max_length"],
                                         direction=feat_conf.get("truncation_side", "right"))
        self.session = onnxruntime.InferenceSession(
            os.path.join(export_dir, spec["encoder"]), session_options(threads),
            providers=["CPUExecutionProvider"])

    def __call__(self, text):
        ids = np.array([self.tokenizer.encode(
            clean_transcript(text, self.feat_conf.get("tag_pattern"))).ids], np.int64)
        return self.session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids)})[0][0]


FRONTENDS = {"fbank": FbankFrontend, "whisper": WhisperFrontend, "tokenizer": TokenizerFrontend}


class OnnxEmotionRecognizer:
    """``predict(waveform, sample_rate, text)`` of an export dir; ``threads`` per graph (default
    OMP_NUM_THREADS, else onnxruntime's)."""

    def __init__(self, export_dir, threads=None):
        path = os.path.join(export_dir, MANIFEST)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"{path}: not found; {export_dir} is not an ONNX export "
                                    f"(mser-export-onnx --model-dir <model dir> --out-dir DIR)")
        with open(path, encoding="utf-8") as f:
            manifest = yaml.safe_load(f)
        self.model = OnnxEmotionModel(os.path.join(export_dir, manifest["model"]), threads)
        self.classes, self.modalities = self.model.classes, tuple(self.model.streams)
        self.temperatures, self.has_attention = self.model.temperatures, False
        self.tasks = {}  # an export holds the emotion head only
        unknown = [m for m in self.modalities if m not in ("audio", "text")]
        if unknown:
            raise ValueError(f"{export_dir}: stream(s) {unknown} besides audio and text; run the "
                             f"graph on their features with mser.utils.onnx_model")
        self.frontends = {m: FRONTENDS[spec["frontend"]](export_dir, spec,
                                                         self.model.feat_confs[m], threads)
                          for m, spec in manifest["streams"].items()}

    def has_transcript(self, text):
        return not is_empty_transcript(text, self.model.feat_confs.get("text"))

    def predict(self, waveform=None, sample_rate=None, text=None, return_attention=False):
        if return_attention:
            raise ValueError("the ONNX graph has no attention output; use the torch backend")
        used = usable_streams(self.modalities, waveform is not None, self.has_transcript(text))
        sample = {}
        if "audio" in used:
            waveform = mono_float(waveform)
            problem = self.frontends["audio"].length_problem(len(waveform), sample_rate)
            if problem:
                raise InputError(f"audio {problem}")
            sample["audio"] = self.frontends["audio"](waveform, sample_rate)
        if "text" in used:
            check_utf8(text)
            sample["text"] = self.frontends["text"](text)
        probs, (condition,) = self.model.predict([sample])
        calibrated = condition in self.model.temperatures
        return Prediction(emotion=self.classes[int(probs[0].argmax())],
                          probabilities={c: float(p) for c, p in zip(self.classes, probs[0])},
                          modalities=used, calibrated=calibrated,
                          duration=0.0 if waveform is None else len(waveform) / sample_rate)
