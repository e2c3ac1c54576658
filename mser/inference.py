"""Emotion recognition on new recordings with a trained (or exported) model.

A model dir is either a training fold dir (``exp/<tag>/fold<k>``: config.yaml + best.pt) or an
exported dir (:func:`export_model`: config.yaml + model.pt). Everything comes from the saved
config: the classes, the network, and the feature extractors that made the training features
(``audio_info`` / ``text_info`` are the resolved feature configs)::

    from mser.inference import EmotionRecognizer
    recognizer = EmotionRecognizer("exp/train_fbank_minilm/fold1")
    result = recognizer.predict(waveform, sample_rate, text="I can't believe it")
    result.emotion, result.probabilities        # 'ang', {'ang': 0.81, 'hap': 0.05, ...}

The probabilities are temperature-scaled where the model dir has a calibration.yaml (fitted on
the dev set at the end of training, :mod:`mser.utils.calibration`; ``result.calibrated``),
else the softmax as trained.

Without a transcript, or with one that is empty once its tags are removed ("", "[LAUGHTER]";
:func:`mser.features.transcript.is_empty_transcript`, the rule the decoding stage uses too), a
two-modality model runs audio-only, the condition the random modality masking of training
prepares it for.

Audio shorter than one feature frame (fbank: 25 ms) is an :class:`InputError` saying the
minimum. Long recordings need no special handling: in eval mode the encoders' self-attention
never stores its (T, T) weights, so memory grows linearly with the duration, by about 0.9 MB
per second of audio with the demo's fbank + pitch (0.3 MB/s without pitch: Kaldi's pitch tracker
keeps every frame's state; ``bench/bench_infer_memory.py``), and results are those of the whole
recording, not of chunks.
"""
import logging
import os
import shutil

import torch

from mser.features import build_extractor
from mser.features.audio import resample, resampled_length
from mser.features.hf_common import PACKAGED_PREFIX, resolve_model_dir
from mser.features.transcript import is_empty_transcript
from mser.nets import MODALITIES, load_model
from mser.utils.calibration import CALIBRATION, load_temperatures, softmax
from mser.utils.checkpoint import load_checkpoint
from mser.utils.conditions import condition_name
from mser.utils.config import load_config
from mser.utils.fileio import atomic_open, atomic_write_text
from mser.utils.plotting import fitted_title, pyplot, save_figure
from mser.utils.prediction import (InputError, Prediction, check_utf8, mono_float,  # noqa: F401
                                   usable_streams)
from mser.utils.tasks import auxiliary, task_type

EXPORTED_WEIGHTS = "model.pt"
TRAINED_WEIGHTS = "best.pt"
BUNDLED_PRETRAINED = "pretrained"


def default_weights(model_dir):
    """model.pt in an exported dir, else best.pt (the epoch selected on the dev set)."""
    for name in (EXPORTED_WEIGHTS, TRAINED_WEIGHTS):
        if os.path.exists(os.path.join(model_dir, name)):
            return name
    raise FileNotFoundError(f"{model_dir}: neither {EXPORTED_WEIGHTS} nor {TRAINED_WEIGHTS} found; "
                            f"give a training fold dir (exp/<tag>/fold<k>) or an exported model dir")


def _localize_model_dir(feat_conf, base_dir):
    """A relative ``model_dir`` that exists under ``base_dir`` (a bundled export) made absolute."""
    model_dir = feat_conf.get("model_dir")
    if (model_dir and not model_dir.startswith(PACKAGED_PREFIX) and not os.path.isabs(model_dir)
            and os.path.isdir(os.path.join(base_dir, model_dir))):
        return {**feat_conf, "model_dir": os.path.join(base_dir, model_dir)}
    return feat_conf


class EmotionRecognizer:
    def __init__(self, model_dir, checkpoint=None, device="cpu"):
        self.device = torch.device(device)
        self.model, self.config = load_model(model_dir, self.device,
                                             checkpoint or default_weights(model_dir))
        self.classes = self.config["classes"]
        self.has_attention = self.config["model_conf"]["fusion"] == "query"  # emotion queries
        self.tasks = {t: spec["type"] for t, spec in auxiliary(self.model.tasks).items()}
        self.modalities = tuple(self.config["model_conf"]["modalities"])
        others = [m for m in self.modalities if m not in MODALITIES]
        if others:
            raise ValueError(f"{model_dir}: the model has stream(s) {others} besides audio and "
                             f"text; the recogniser extracts only those two from a wav and a "
                             f"transcript: decode dumped features with python -m mser.bin.decode")
        self.extractors = {
            m: build_extractor(_localize_model_dir(self.config[f"{m}_info"], model_dir), device)
            for m in self.modalities}
        # Temperature scaling fitted on dev (calibration.yaml of best.pt); another checkpoint
        # of the dir was not calibrated.
        self.temperatures = (load_temperatures(model_dir) if checkpoint in (
            None, TRAINED_WEIGHTS, EXPORTED_WEIGHTS) else {})
        logging.info("%s: probabilities %s", model_dir, "temperature-scaled (%s: %s)" % (
            CALIBRATION, ", ".join(f"{c} {t:.3f}" for c, t in self.temperatures.items()))
            if self.temperatures else f"as trained (no {CALIBRATION}: not calibrated)")

    def usable_modalities(self, has_audio, has_text):
        return usable_streams(self.modalities, has_audio, has_text)

    def has_transcript(self, text):
        """Whether ``text`` counts as a transcript (:func:`is_empty_transcript`, decode's rule)."""
        return not is_empty_transcript(text, self.config.get("text_info"))

    @torch.inference_mode()
    def predict(self, waveform=None, sample_rate=None, text=None, return_attention=False):
        """Emotion of one utterance: a waveform at any ``sample_rate`` (float or integer PCM,
        mono or channels: :func:`mono_float`) and/or its transcript.

        A missing or empty (tags only) transcript means audio-only; ``return_attention`` also
        returns where the emotion queries attend (query fusion only).
        """
        has_text = self.has_transcript(text)
        used = self.usable_modalities(waveform is not None, has_text)
        batch = {}
        for m in used:
            if m == "audio":
                extractor, waveform = self.extractors[m], mono_float(waveform)
                problem = extractor.length_problem(
                    resampled_length(len(waveform), sample_rate, extractor.sample_rate))
                if problem:
                    raise InputError(f"audio {problem}")
                feats = extractor.extract_wav(waveform, sample_rate)
            else:
                check_utf8(text)
                feats = self.extractors[m].extract_text(text)
            batch[m] = torch.from_numpy(feats).to(self.device)[None]
            batch[f"{m}_lens"] = torch.tensor([len(feats)], device=self.device)
        out = self.model(batch, streams=used, return_attention=return_attention)
        temperature = self.temperatures.get(condition_name(used, self.modalities))
        probs = softmax(out["logits"].float().cpu(), temperature or 1.0)[0]
        prediction = Prediction(
            emotion=self.classes[int(probs.argmax())],
            probabilities={c: float(p) for c, p in zip(self.classes, probs)}, modalities=used,
            duration=0.0 if waveform is None else len(waveform) / sample_rate,
            calibrated=temperature is not None,
            tasks={task: task_type(self.model.tasks[task]).prediction(
                values[0].float().cpu().numpy(), self.model.task_classes.get(task))
                for task, values in out.get("tasks", {}).items()} or None)
        if return_attention:
            if out.get("attention") is None:
                raise ValueError(f"fusion {self.config['model_conf']['fusion']!r} has no emotion "
                                 f"queries to plot; only 'query' fusion models have")
            prediction.attention = out["attention"][0].float().cpu().numpy()
            prediction.audio_frames = int(out["audio_lens_out"][0]) if "audio" in used else 0
            if "text" in used:
                prediction.text_tokens = self.extractors["text"].tokens(text)
        return prediction


class Transcriber:
    """A speech recogniser (:class:`mser.asr.SpeechRecognizer`: a local Whisper or wav2vec2-CTC
    dir, or ``packaged:whisper-tiny.en`` / ``packaged:whisper-base``) for utterances without a
    transcript."""

    def __init__(self, model_dir, device="cpu"):
        from mser.asr import SpeechRecognizer

        self.recognizer = SpeechRecognizer(model_dir, device=device)
        self.sample_rate = self.recognizer.sample_rate

    def __call__(self, waveform, sample_rate):
        return self.recognizer.transcribe([resample(waveform, sample_rate, self.sample_rate)])[0]


def plot_query_attention(prediction, path, title=""):
    """Heat maps of the emotion queries' cross-attention (one row per query): acoustic frames on
    a time axis next to the transcript's tokens, each panel with its own colour scale and its
    share of the attention mass."""
    plt = pyplot()
    attention = prediction.attention
    num_queries = attention.shape[0]
    panels = [(name, weights) for name, weights in
              (("audio", attention[:, :prediction.audio_frames]),
               ("text", attention[:, prediction.audio_frames:])) if weights.shape[1] > 0]
    widths = [max(w.shape[1] // 3 if name == "audio" else w.shape[1], 8) for name, w in panels]
    fig, axes = plt.subplots(1, len(panels), squeeze=False, constrained_layout=True,
                             figsize=(min(4 + 0.15 * sum(widths), 18), 2.2 + 0.45 * num_queries),
                             gridspec_kw={"width_ratios": widths})
    for i, (ax, (name, weights)) in enumerate(zip(axes[0], panels)):
        options = {"aspect": "auto", "cmap": "viridis", "vmin": 0, "interpolation": "nearest"}
        if name == "audio":
            image = ax.imshow(weights, extent=(0, prediction.duration, num_queries - 0.5, -0.5),
                              **options)
            ax.set_xlabel("time (s)")
        else:
            image = ax.imshow(weights, **options)
            tokens = prediction.text_tokens or []
            labels = tokens if len(tokens) == weights.shape[1] else range(weights.shape[1])
            ax.set_xticks(range(weights.shape[1]), labels, rotation=60, ha="right", fontsize=8)
        mass = weights.sum(axis=1)
        ax.set_yticks(range(num_queries),
                      [f"q{k + 1}: {100 * m:.0f}%" for k, m in enumerate(mass)])
        ax.set_title(f"{name} ({100 * mass.mean():.0f}% of the attention)")
        fig.colorbar(image, ax=ax, fraction=0.05, pad=0.02)
    probs = ", ".join(f"{c} {p:.2f}" for c, p in prediction.probabilities.items())
    fitted_title(fig, f"{title + ': ' if title else ''}{prediction.emotion} ({probs})")
    save_figure(fig, path, dpi=110)


def export_model(exp_dir, out_dir, checkpoint=TRAINED_WEIGHTS, bundle_pretrained=False):
    """Write a self-describing model dir for :class:`EmotionRecognizer`: config.yaml and
    model.pt (weights, seed and commit; no optimiser state). ``bundle_pretrained`` copies the
    local pre-trained feature models (not ``packaged:`` ones) into ``<out_dir>/pretrained/``."""
    import yaml

    config = load_config(os.path.join(exp_dir, "config.yaml"))
    state = load_checkpoint(os.path.join(exp_dir, checkpoint))
    os.makedirs(out_dir, exist_ok=True)
    for modality in config["model_conf"]["modalities"]:
        info = config[f"{modality}_info"]
        source = info.get("model_dir")
        if not bundle_pretrained:
            continue
        if not source or source.startswith(PACKAGED_PREFIX):
            logging.info("--bundle-pretrained: nothing to copy for the %s features (%s: %s)",
                         modality, info.get("extractor"), source or "no model dir, its default: "
                         "computed, or a packaged model that tools/install.sh installs")
            continue
        target = os.path.join(BUNDLED_PRETRAINED, modality)
        shutil.copytree(resolve_model_dir(source, "<org>/<model>"),
                        os.path.join(out_dir, target), dirs_exist_ok=True)
        config[f"{modality}_info"] = {**info, "model_dir": target}
        logging.info("--bundle-pretrained: %s copied into %s", source, target)
    weights = {"model": state["model"], "epoch": state.get("epoch"), "seed": state.get("seed"),
               "git_commit": state.get("git_commit"), "exported_from": os.path.abspath(exp_dir)}
    with atomic_open(os.path.join(out_dir, EXPORTED_WEIGHTS), "wb") as f:
        torch.save(weights, f)
    atomic_write_text(os.path.join(out_dir, "config.yaml"), yaml.safe_dump(config, sort_keys=False))
    calibration = os.path.join(exp_dir, CALIBRATION)
    if checkpoint == TRAINED_WEIGHTS and os.path.exists(calibration):  # fitted for best.pt
        shutil.copyfile(calibration, os.path.join(out_dir, CALIBRATION))
    logging.info("exported %s (%s, epoch %s) to %s", exp_dir, checkpoint, state.get("epoch"), out_dir)
