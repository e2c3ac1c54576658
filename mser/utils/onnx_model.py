"""Run an exported emotion model (``mser-export-onnx``) with onnxruntime: numpy in, calibrated
posteriors out, no torch.

The ONNX graph takes, per stream ``s`` of the model (its metadata ``mser_streams`` lists them,
with the feature width F and the fewest frames the graph accepts):
  ``s`` (B, T, F) float32 features as the dump stores them (layers side by side),
  ``s_lens`` (B,) int64 frames of each sample, ``s_keep`` (B,) bool: False leaves the stream
  out of that sample (a missing transcript), as the trained model does;
and returns ``logits`` (B, C). The metadata also holds the classes (``mser_classes``), the
temperature of each stream condition fitted on dev (``mser_temperatures``; none: not
calibrated) and the feature configs (``mser_feat_confs``) that say how to compute the inputs.
"""
import json
import os

import numpy as np

from mser.utils.calibration import softmax
from mser.utils.conditions import condition_name


def session_options(threads=None):
    """onnxruntime session options with ``threads``, else OMP_NUM_THREADS, else its default."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    threads = threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        options.intra_op_num_threads = threads
    return options


class OnnxEmotionModel:
    """An exported model: ``predict`` maps samples ({stream: (T, F) array or None}) to
    (posteriors (B, C), conditions). Threads: ``threads``, else OMP_NUM_THREADS, else
    onnxruntime's default."""

    def __init__(self, path, threads=None):
        import onnxruntime

        self.session = onnxruntime.InferenceSession(path, session_options(threads),
                                                    providers=["CPUExecutionProvider"])
        meta = self.session.get_modelmeta().custom_metadata_map
        missing = [k for k in ("mser_streams", "mser_classes") if k not in meta]
        if missing:
            raise ValueError(f"{path}: no {', '.join(missing)} in its metadata; not written by "
                             f"mser-export-onnx")
        self.path = path
        self.streams = {s["name"]: s for s in json.loads(meta["mser_streams"])}
        self.classes = json.loads(meta["mser_classes"])
        self.temperatures = json.loads(meta.get("mser_temperatures", "{}"))
        self.feat_confs = json.loads(meta.get("mser_feat_confs", "{}"))

    def inputs(self, samples):
        """The graph's input arrays of ``samples``: each stream padded with zeros to the
        longest sample (at least the stream's min_frames); an absent stream is not kept."""
        feeds = {}
        for name, stream in self.streams.items():
            given = [s.get(name) for s in samples]
            for i, feats in enumerate(given):
                if feats is not None and (np.ndim(feats) != 2 or feats.shape[1] != stream["dim"]
                                          or len(feats) == 0):
                    raise ValueError(f"sample {i}: {name} features of shape {np.shape(feats)}; "
                                     f"expected (frames > 0, {stream['dim']})")
            frames = max([stream["min_frames"]] + [len(f) for f in given if f is not None])
            batch = np.zeros((len(samples), frames, stream["dim"]), np.float32)
            for i, feats in enumerate(given):
                if feats is not None:
                    batch[i, :len(feats)] = feats
            feeds[name] = batch
            feeds[f"{name}_lens"] = np.array([len(f) if f is not None else 1 for f in given],
                                             np.int64)
            feeds[f"{name}_keep"] = np.array([f is not None for f in given])
        return feeds

    def logits(self, samples):
        return self.session.run(["logits"], self.inputs(samples))[0]

    def predict(self, samples):
        """(posteriors (B, C), condition of each sample): temperature-scaled by the sample's
        condition (the streams it has) where the export carries its temperature."""
        names = list(self.streams)
        conditions = []
        for i, sample in enumerate(samples):
            given = tuple(m for m in names if sample.get(m) is not None)
            if not given:
                raise ValueError(f"sample {i}: none of the model's streams ({', '.join(names)})")
            conditions.append(condition_name(given, names))
        logits = self.logits(samples)
        probs = np.concatenate([softmax(row[None], self.temperatures.get(c, 1.0))
                                for row, c in zip(logits, conditions)])
        return probs, conditions
