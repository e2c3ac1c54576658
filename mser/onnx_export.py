"""Export a trained model dir to ONNX (torch.onnx, the dynamo exporter), checked against torch
with onnxruntime before anything is kept; run it with
:class:`mser.onnx_inference.OnnxEmotionRecognizer` (wav / transcript in) or
:class:`mser.utils.onnx_model.OnnxEmotionModel` (stored features in), neither imports torch.

``<out-dir>/model.onnx`` is the model in eval mode over every stream at once, with dynamic batch
and frame counts: inputs ``<s>``, ``<s>_lens``, ``<s>_keep`` per stream, output ``logits`` (see
:mod:`mser.utils.onnx_model`); it is checked on random inputs of several lengths under every
stream condition (posteriors within ``TOLERANCE``). Unless ``features`` is off, each stream's
feature extractor goes beside it (:mod:`mser.onnx_inference`: fbank as it is, the Whisper
encoder and a text encoder as graphs of their stored layers, with the log-mel filters and the
tokenizer), listed in ``onnx.yaml``, and the whole recogniser is checked against the torch one
on a generated utterance (``END_TO_END_TOLERANCE``). ``int8``: the graphs' weights dynamically
quantised to int8 (onnxruntime.quantization), checked for agreeing predictions only.
"""
import json
import logging
import os
import shutil

import numpy as np
import torch
import yaml

from mser.features.hf_common import select_layers
from mser.features.hf_ssl import WHISPER_HOP, WHISPER_STRIDE, whisper_encoder_hidden_states
from mser.inference import EXPORTED_WEIGHTS, TRAINED_WEIGHTS, EmotionRecognizer, default_weights
from mser.nets import load_model
from mser.onnx_inference import MANIFEST, OnnxEmotionRecognizer
from mser.utils.calibration import load_temperatures, softmax
from mser.utils.conditions import condition_name, stream_conditions
from mser.utils.fileio import atomic_write_text

TOLERANCE = 1e-4  # largest posterior difference between onnxruntime and torch (model graph)
END_TO_END_TOLERANCE = 1e-3  # the same from a wav and a transcript (numpy vs torch log-mel)
CHECK_TEXT = "Well, I did not expect to see you here today, of all days."


class StreamGraph(torch.nn.Module):
    """The model as a function of flat tensors: (feats, lens, keep) per stream -> logits."""

    def __init__(self, model):
        super().__init__()
        self.model, self.streams = model, model.modalities

    def input_names(self):
        return [m + suffix for m in self.streams for suffix in ("", "_lens", "_keep")]

    def forward(self, *inputs):
        batch, keep = {}, {}
        for i, m in enumerate(self.streams):
            batch[m], batch[f"{m}_lens"], keep[m] = inputs[3 * i:3 * i + 3]
        return self.model(batch, keep=keep)["logits"]


def min_frames(model, stream):
    """The fewest frames the traced graph handles: one more than the stream's subsampling
    (shorter inputs are zero-padded by the runner; padding is masked)."""
    return model.conf["streams"][stream]["subsampling"] + 1


def random_inputs(model, dims, batch, frames, seed):
    """Inputs of ``batch`` samples up to ``frames`` per stream, lengths from min_frames up;
    sample i feeds the streams of the i-th stream condition (cyclically)."""
    rng = np.random.default_rng(seed)
    conditions = list(stream_conditions(model.modalities).values())
    inputs = []
    for m in model.modalities:
        low = min_frames(model, m)
        lens = rng.integers(low, max(frames, low) + 1, batch)
        lens[0] = max(frames, low)
        keep = np.array([m in conditions[i % len(conditions)] for i in range(batch)])
        inputs += [torch.from_numpy(rng.standard_normal((batch, lens.max(), dims[m]),
                                                         dtype=np.float32)),
                   torch.from_numpy(lens), torch.from_numpy(keep)]
    return inputs


def check_export(path, graph, dims):
    """The largest posterior difference of onnxruntime and torch over random batches that
    cover every stream condition."""
    from mser.utils.onnx_model import OnnxEmotionModel

    session = OnnxEmotionModel(path).session
    worst = 0.0
    for seed, (batch, frames) in enumerate([(1, 1), (3, 17), (8, 240)]):
        inputs = random_inputs(graph.model, dims, batch, frames, seed)
        with torch.no_grad():
            expected = softmax(graph(*inputs).numpy())
        feeds = {name: value.numpy() for name, value in zip(graph.input_names(), inputs)}
        got = softmax(session.run(["logits"], feeds)[0])
        worst = max(worst, float(np.abs(got - expected).max()))
    return worst


class WhisperLayers(torch.nn.Module):
    """The Whisper encoder's stored layers of a log-mel input of any length up to 30 s."""

    def __init__(self, extractor):
        super().__init__()
        self.encoder = extractor.model
        self.layers = (extractor.layer_indices, extractor.layer_reduce)

    def forward(self, input_features):
        return select_layers(whisper_encoder_hidden_states(self.encoder, input_features),
                             *self.layers)


class TextLayers(torch.nn.Module):
    """A text encoder's stored layers of its hidden states."""

    def __init__(self, extractor):
        super().__init__()
        self.model = extractor.model
        self.layers = (extractor.layer_indices, extractor.layer_reduce)

    def forward(self, input_ids, attention_mask):
        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=True).hidden_states
        return select_layers(hidden, *self.layers)


def check_wave(seconds=2.5, rate=16000):
    """A generated voiced-like signal (a gliding harmonic tone with noise) for the checks."""
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    tone = sum(np.sin(2 * np.pi * k * 140 * t * (1 + 0.2 * t)) / k for k in range(1, 6))
    return (0.1 * tone + 0.01 * rng.standard_normal(len(t))).astype(np.float32), rate


def export_frontend(extractor, info, stream, out_dir):
    """Write ``stream``'s feature extractor into ``out_dir``; its onnx.yaml entry."""
    name = info["extractor"]
    if name == "fbank":
        return {"frontend": "fbank"}
    encoder = f"{stream}_encoder.onnx"
    if name == "hf_text":
        inputs = extractor.tokenizer([CHECK_TEXT, "Yes."], padding=True, return_tensors="pt")
        tokens = torch.export.Dim("tokens", min=2)
        batch = torch.export.Dim("batch")
        program = torch.onnx.export(
            TextLayers(extractor).eval(), (inputs["input_ids"], inputs["attention_mask"]),
            dynamo=True, input_names=["input_ids", "attention_mask"], output_names=["feats"],
            dynamic_shapes=({0: batch, 1: tokens}, {0: batch, 1: tokens}), verbose=False)
        program.save(os.path.join(out_dir, encoder))
        tokenizer_dir = os.path.join(out_dir, f"{stream}_tokenizer")
        extractor.tokenizer.save_pretrained(tokenizer_dir)
        return {"frontend": "tokenizer", "encoder": encoder, "max_length": extractor.max_length,
                "tokenizer": os.path.relpath(os.path.join(tokenizer_dir, "tokenizer.json"),
                                             out_dir)}
    if name == "hf_ssl" and extractor.whisper_window == "utterance":
        front = extractor.feature_extractor
        wave, rate = check_wave()
        mel = front(wave, sampling_rate=rate, padding="longest", truncation=False,
                    return_tensors="pt").input_features
        mel_frames = torch.export.Dim("mel_frames", min=2, max=front.nb_max_frames)
        program = torch.onnx.export(WhisperLayers(extractor).eval(), (mel,), dynamo=True,
                                    input_names=["input_features"], output_names=["feats"],
                                    dynamic_shapes=({2: mel_frames},), verbose=False)
        program.save(os.path.join(out_dir, encoder))
        np.save(os.path.join(out_dir, f"{stream}_mel_filters.npy"), front.mel_filters)
        return {"frontend": "whisper", "encoder": encoder, "mel_filters":
                f"{stream}_mel_filters.npy", "n_fft": front.n_fft, "hop": WHISPER_HOP,
                "stride": WHISPER_STRIDE, "sample_rate": front.sampling_rate,
                "max_frames": extractor.model.embed_positions.num_embeddings}
    raise ValueError(f"{stream} features ({name}, {info.get('model_dir')}): the ONNX export "
                     f"covers fbank, hf_text and Whisper with whisper_window: utterance; export "
                     f"the model graph alone (--no-features) and compute these features "
                     f"elsewhere")


def compare_recognizers(onnx_recognizer, torch_recognizer):
    """{condition: largest posterior difference} on a generated utterance and transcript, for
    each condition the model's audio and text streams allow."""
    wave, rate = check_wave()
    modalities = torch_recognizer.modalities
    differences = {}
    for streams in (("audio", "text"), ("audio",), ("text",)):
        if not set(streams) <= set(modalities):
            continue
        inputs = ((wave, rate) if "audio" in streams else (None, None)) + (
            CHECK_TEXT if "text" in streams else None,)
        expected = torch_recognizer.predict(*inputs).probabilities
        got = onnx_recognizer.predict(*inputs).probabilities
        differences[condition_name(streams, modalities)] = max(abs(got[c] - expected[c])
                                                               for c in expected)
    return differences


def quantize_graphs(directory):
    """Every .onnx file of ``directory`` with its weights dynamically quantised to int8 (per
    output channel)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    for name in sorted(os.listdir(directory)):
        if name.endswith(".onnx"):
            path = os.path.join(directory, name)
            # per output channel: on MELD's MPNet text model 83.5 % of the emotions stay those
            # of fp32, 75.5 % with one scale per tensor
            quantize_dynamic(path, path + ".int8", weight_type=QuantType.QInt8, per_channel=True)
            os.replace(path + ".int8", path)


def export_model_graph(model_dir, checkpoint, path):
    """Write the model graph (``model.onnx``) with its metadata; returns the checked
    difference."""
    import onnx

    model, config = load_model(model_dir, "cpu", checkpoint)
    if model.task_heads:
        logging.warning("%s: the export holds the emotion head only, not the auxiliary "
                        "task(s) %s (mser-infer on the model dir gives them)", model_dir,
                        ", ".join(model.task_heads))
    dims = {m: int(config[f"{m}_info"]["dim"]) * int(config[f"{m}_info"].get("num_layers", 1))
            for m in model.modalities}
    graph = StreamGraph(model).eval()
    batch = torch.export.Dim("batch")
    dynamic = []
    for m in model.modalities:
        frames = torch.export.Dim(f"{m}_frames", min=min_frames(model, m))
        dynamic += [{0: batch, 1: frames}, {0: batch}, {0: batch}]
    example = random_inputs(model, dims, 4, 40, seed=0)
    program = torch.onnx.export(graph, tuple(example), dynamo=True,
                                input_names=graph.input_names(), output_names=["logits"],
                                dynamic_shapes={"inputs": tuple(dynamic)}, verbose=False)
    # calibration.yaml was fitted for the dev-selected weights (best.pt, or model.pt exported
    # from it), not for another checkpoint
    temperatures = (load_temperatures(model_dir)
                    if checkpoint in (TRAINED_WEIGHTS, EXPORTED_WEIGHTS) else {})
    metadata = {
        "mser_streams": [{"name": m, "dim": dims[m], "min_frames": min_frames(model, m)}
                         for m in model.modalities],
        "mser_classes": config["classes"],
        "mser_temperatures": {c: temperatures[c] for c in stream_conditions(model.modalities)
                              if c in temperatures},
        "mser_feat_confs": {m: config[f"{m}_info"] for m in model.modalities},
        "mser_source": {"model_dir": os.path.abspath(model_dir), "checkpoint": checkpoint,
                        "git_commit": config.get("git_commit")},
    }
    proto = program.model_proto  # a new proto at each access
    for key, value in metadata.items():
        proto.metadata_props.add(key=key, value=json.dumps(value, default=str))
    onnx.save(proto, path)
    difference = check_export(path, graph, dims)
    if difference > TOLERANCE:
        raise RuntimeError(f"{model_dir}: onnxruntime and torch differ by {difference:.2e} in the "
                           f"posteriors (tolerance {TOLERANCE}); nothing written")
    logging.info("model graph: onnxruntime = torch within %.1e in the posteriors (%s)",
                 difference, "calibrated: " + ", ".join(
                     f"{c} T={t:.3f}" for c, t in metadata["mser_temperatures"].items())
                 if metadata["mser_temperatures"] else "not calibrated")
    return difference


def export_onnx(model_dir, out_dir, checkpoint=None, features=True, int8=False):
    """Write ``out_dir``: model.onnx and, with ``features``, every stream's front end and
    onnx.yaml (see the module docstring); built in ``<out_dir>.tmp`` and moved when checked.
    Returns {check: largest posterior difference}."""
    checkpoint = checkpoint or default_weights(model_dir)
    tmp = out_dir.rstrip("/") + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        checks = {"model graph": export_model_graph(model_dir, checkpoint,
                                                    os.path.join(tmp, "model.onnx"))}
        if features:
            recognizer = EmotionRecognizer(model_dir, checkpoint)
            streams = {m: export_frontend(recognizer.extractors[m],
                                          recognizer.config[f"{m}_info"], m, tmp)
                       for m in recognizer.modalities}
            atomic_write_text(os.path.join(tmp, MANIFEST), yaml.safe_dump(
                {"model": "model.onnx", "int8": int8, "streams": streams}, sort_keys=False))
            if int8:
                quantize_graphs(tmp)
            for condition, difference in compare_recognizers(OnnxEmotionRecognizer(tmp),
                                                             recognizer).items():
                checks[condition] = difference
            worst = max(v for k, v in checks.items() if k != "model graph")
            if worst > END_TO_END_TOLERANCE and not int8:
                raise RuntimeError(f"{model_dir}: the ONNX recogniser and the torch one differ by "
                                   f"{worst:.2e} in the posteriors of a generated utterance "
                                   f"(tolerance {END_TO_END_TOLERANCE}); nothing written")
        elif int8:
            quantize_graphs(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out_dir, ignore_errors=True)
    os.replace(tmp, out_dir)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(out_dir)
               for f in files)
    logging.info("%s (%s) exported to %s (%.1f MB%s); largest posterior difference from torch: "
                 "%s", model_dir, checkpoint, out_dir, size / 1e6, ", int8" if int8 else "",
                 ", ".join(f"{k} {v:.1e}" for k, v in checks.items()))
    return checks
