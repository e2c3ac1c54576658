"""Export a trained model dir to ONNX (torch.onnx, the dynamo exporter) and check it against
torch with onnxruntime; run it with :class:`mser.utils.onnx_model.OnnxEmotionModel`.

The graph is the model in eval mode over every stream at once, with dynamic batch and frame
counts: inputs ``<s>``, ``<s>_lens``, ``<s>_keep`` per stream, output ``logits`` (see
:mod:`mser.utils.onnx_model`). Feature extraction stays outside (Whisper, MiniLM, ... as the
model dir's feature configs say; stored in the metadata). The export is checked before it is
written: onnxruntime and torch on random inputs of several lengths, every stream condition,
must agree to ``TOLERANCE`` in the posteriors.
"""
import json
import logging
import os

import numpy as np
import torch

from mser.inference import EXPORTED_WEIGHTS, TRAINED_WEIGHTS, default_weights
from mser.nets import load_model
from mser.utils.calibration import load_temperatures, softmax
from mser.utils.conditions import stream_conditions

TOLERANCE = 1e-4  # largest posterior difference between onnxruntime and torch


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


def export_onnx(model_dir, out_path, checkpoint=None):
    """Write ``out_path`` (ONNX) of ``model_dir``'s model; returns the checked difference."""
    import onnx

    checkpoint = checkpoint or default_weights(model_dir)
    model, config = load_model(model_dir, "cpu", checkpoint)
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
    tmp = out_path + ".tmp"
    onnx.save(proto, tmp)
    difference = check_export(tmp, graph, dims)
    if difference > TOLERANCE:
        os.remove(tmp)
        raise RuntimeError(f"{model_dir}: onnxruntime and torch differ by {difference:.2e} in the "
                           f"posteriors (tolerance {TOLERANCE}); nothing written")
    os.replace(tmp, out_path)
    logging.info("%s: %s exported to %s (%.1f MB; streams %s; onnxruntime = torch within %.1e "
                 "in the posteriors; %s)", model_dir, checkpoint, out_path,
                 os.path.getsize(out_path) / 1e6, ", ".join(model.modalities), difference,
                 "calibrated: " + ", ".join(f"{c} T={t:.3f}" for c, t in
                                            metadata["mser_temperatures"].items())
                 if metadata["mser_temperatures"] else "not calibrated")
    return difference
