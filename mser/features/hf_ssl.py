"""Hidden states of a transformers speech encoder (wav2vec2, HuBERT, WavLM, data2vec-audio,
Whisper encoder) loaded from a local directory; one (T, L*D) matrix per utterance, 50 frames/s.

Layer selection: see :mod:`mser.features.hf_common` (0 = CNN features entering layer 1).

Pipeline per batch of waveforms (already at the model's rate, ``sample_rate`` from its
feature-extractor config):

1. ``do_normalize`` (from the feature-extractor config): zero mean, unit variance over the whole
   utterance, as Wav2Vec2FeatureExtractor does, before any chunking.
2. Chunking (``chunk_seconds``, ``chunk_overlap_seconds``): chunks start on frame boundaries;
   neighbours overlap, and each keeps the frames up to half the overlap into its neighbour, so the
   stitched output has exactly the frame count of the whole utterance. Whisper works on 30 s
   windows: with ``whisper_window: padded`` (default, its training condition) every chunk is
   padded to 30 s of log-mel and the output trimmed to the real audio length
   (``ceil((samples // 160) / 2)`` frames); with ``whisper_window: utterance`` the encoder runs
   on the chunk's own frames with the positional embeddings sliced to them (a deviation from
   Whisper's training condition: attention never sees the padding; ~10x less compute for a
   3 s utterance; bench/bench_whisper.py measures speed and cosine similarity to the padded
   features).
3. Batching (``batch_seconds`` of padded audio per forward; default 100 s on CUDA, one chunk at
   a time on CPU, where batching measured no faster): the longest chunks first. Models
   whose feature extractor sets ``return_attention_mask`` (the layer-norm "large" models) get
   zero padding plus an attention mask and padding frames are cut from the output by the
   model's conv frame-count formula. Models without one (wav2vec2-base style, group norm over
   time) would see the padding, so only chunks of identical length share a batch.
4. ``torch.inference_mode``; fp16 on CUDA when ``fp16: true``; output float32.
"""
import logging

import numpy as np
import torch

from mser.features import FeatureConfigError
from mser.features.audio import AudioExtractor, batches_by_length
from mser.features.hf_common import (drop_unused_layers, num_transformer_layers, parse_layers,
                                     resolve_model_dir, select_layers)

WHISPER_HOP = 160        # samples per log-mel frame
WHISPER_STRIDE = 2       # encoder conv2 stride: 2 mel frames per output frame
# Default padded seconds per forward pass on CUDA. On CPU the default is one utterance (or chunk)
# per forward: the conv front end dominates there and runs one utterance at a time anyway; 60 s
# batches measured within the run-to-run noise on 2 cores, at more memory (bench/bench_feats.py).
CUDA_BATCH_SECONDS = 100.0


class ChannelsLastFeatureEncoder(torch.nn.Module):
    """The wav2vec2-family CNN front end computed in (T, C) layout, one utterance at a time.

    A strided convolution (kernel k, stride s) is a sum of ceil(k/s) matmuls: group r holds taps
    r*s .. r*s+s-1, which for all output frames is a strided view of the input (row stride s*C,
    rows contiguous), so BLAS reads it in place; no unfolded (im2col) copy and none of the
    (C, T) <-> (T, C) transposes of the original are made. Same maths as the original (fp32
    differences ~1e-6); returns (B, C, T) as a transposed view, as the model expects."""

    def __init__(self, encoder):
        super().__init__()
        self.layers = []
        for layer in encoder.conv_layers:
            conv, norm = layer.conv, getattr(layer, "layer_norm", None)
            kernel, stride, channels = conv.kernel_size[0], conv.stride[0], conv.in_channels
            weight = conv.weight.detach().permute(2, 1, 0).reshape(kernel * channels, -1)
            taps = [(first * channels, weight[first * channels:min(first + stride, kernel) * channels])
                    for first in range(0, kernel, stride)]
            self.layers.append((kernel, stride, channels, taps, conv.bias, norm, layer.activation))

    @classmethod
    def supports(cls, encoder):
        layers = getattr(encoder, "conv_layers", None)
        return layers is not None and all(
            isinstance(getattr(l, "conv", None), torch.nn.Conv1d) and l.conv.padding == (0,)
            and l.conv.dilation == (1,) and l.conv.groups == 1
            and isinstance(getattr(l, "layer_norm", None), (torch.nn.LayerNorm, type(None)))
            for l in layers)

    def forward(self, input_values):
        return torch.stack([self._utterance(wave) for wave in input_values]).transpose(1, 2)

    def _utterance(self, wave):
        hidden = wave.contiguous()[:, None]  # (S, 1)
        for kernel, stride, channels, taps, bias, norm, activation in self.layers:
            out_frames = (hidden.shape[0] - kernel) // stride + 1
            out = None
            for offset, weight in taps:  # in bounds: stride * (out_frames - 1) + kernel <= S
                view = hidden.as_strided((out_frames, weight.shape[0]), (stride * channels, 1),
                                         hidden.storage_offset() + offset)
                if out is None:
                    out = torch.addmm(bias, view, weight) if bias is not None else view @ weight
                else:
                    out.addmm_(view, weight)
            if norm is not None:
                out = torch.nn.functional.layer_norm(out, norm.normalized_shape, norm.weight,
                                                     norm.bias, norm.eps)
            hidden = activation(out)
        return hidden


class SpeechEncoderExtractor(AudioExtractor):
    DEFAULTS = {
        "model_dir": None,                # local dir, ${MSER_MODELS:-downloads}/..., or cached org/name
        "hf_repo": None,                  # Hub name, only quoted in the "model not found" help
        "layers": "last",
        "layer_reduce": None,             # mean: average the selected layers (L = 1)
        "chunk_seconds": None,            # None: whole utterances (Whisper: 30 s windows)
        "chunk_overlap_seconds": 2.0,
        "batch_seconds": None,            # padded audio per forward; None: 100 on CUDA, 0 on CPU
        "fp16": True,                     # on CUDA only
        "whisper_window": "padded",       # Whisper only: padded (30 s) or utterance (see above)
    }

    def __init__(self, conf, device="cpu"):
        from transformers import AutoFeatureExtractor, AutoModel

        if not conf["model_dir"]:
            raise FeatureConfigError("hf_ssl: set 'model_dir:' to the local model directory")
        path = resolve_model_dir(conf["model_dir"], conf["hf_repo"] or "<org>/<model>")
        self.conf, self.device = conf, torch.device(device)
        self.feature_extractor = AutoFeatureExtractor.from_pretrained(path)
        model = AutoModel.from_pretrained(path)
        self.is_whisper = "input_features" in self.feature_extractor.model_input_names
        if model.config.is_encoder_decoder:
            model = model.get_encoder()
        self.layer_indices, self.layer_reduce = parse_layers(
            conf["layers"], conf["layer_reduce"], num_transformer_layers(model))
        drop_unused_layers(model, max(self.layer_indices))
        self.dtype = torch.float16 if conf["fp16"] and self.device.type == "cuda" else torch.float32
        self.model = model.eval().to(self.device, self.dtype)
        if self.device.type == "cpu" and ChannelsLastFeatureEncoder.supports(
                getattr(model, "feature_extractor", None)):
            self.model.feature_extractor = ChannelsLastFeatureEncoder(self.model.feature_extractor)
        config = model.config
        self.sample_rate = self.feature_extractor.sampling_rate
        self.dim = config.d_model if self.is_whisper else config.hidden_size
        self.num_layers = 1 if self.layer_reduce else len(self.layer_indices)
        if conf["whisper_window"] not in ("padded", "utterance"):
            raise FeatureConfigError(f"whisper_window: {conf['whisper_window']!r}; use padded "
                                     f"or utterance")
        self.whisper_window = conf["whisper_window"] if self.is_whisper else None
        if self.is_whisper:
            self.hop = WHISPER_HOP * WHISPER_STRIDE
            self.normalize, self.use_mask = False, False
            max_chunk = self.feature_extractor.n_samples
        else:
            self.hop = int(np.prod(config.conv_stride))
            self.normalize = getattr(self.feature_extractor, "do_normalize", False)
            self.use_mask = getattr(self.feature_extractor, "return_attention_mask", False)
            max_chunk = None
        self.frame_rate = self.sample_rate / self.hop
        self.batch_seconds = conf["batch_seconds"]
        if self.batch_seconds is None:
            self.batch_seconds = CUDA_BATCH_SECONDS if self.device.type == "cuda" else 0.0
        chunk = conf["chunk_seconds"]
        self.chunk_samples = int(chunk * self.sample_rate) // self.hop * self.hop if chunk else max_chunk
        if self.is_whisper and self.chunk_samples > max_chunk:
            raise FeatureConfigError(f"chunk_seconds: {chunk} exceeds Whisper's 30 s window")
        overlap = int(conf["chunk_overlap_seconds"] * self.sample_rate) // (2 * self.hop) * 2 * self.hop
        if self.chunk_samples and not 0 <= overlap < self.chunk_samples:
            raise FeatureConfigError(f"chunk_overlap_seconds: {conf['chunk_overlap_seconds']} must "
                                     f"be shorter than chunk_seconds: {chunk}")
        self.overlap_samples = overlap
        if self.chunk_samples and (self.chunk_samples - overlap // 2) // self.hop > \
                self.num_frames(self.chunk_samples):
            raise FeatureConfigError(f"chunk_overlap_seconds: {conf['chunk_overlap_seconds']} is "
                                     f"shorter than this model's receptive field; use at least 0.1")
        logging.info("hf_ssl %s: %s, layers %s%s, D=%d, %.0f frames/s, attention mask: %s, %s",
                     path, type(model).__name__, self.layer_indices,
                     " (mean)" if self.layer_reduce else "", self.dim, self.frame_rate,
                     self.use_mask, self.dtype)

    def num_frames(self, num_samples):
        if self.is_whisper:
            return -(-(num_samples // WHISPER_HOP) // WHISPER_STRIDE)
        for kernel, stride in zip(self.model.config.conv_kernel, self.model.config.conv_stride):
            num_samples = max(0, (num_samples - kernel) // stride + 1)
        return num_samples

    def _chunk_starts(self, num_samples):
        """Chunk start samples: every chunk but the last is chunk_samples long."""
        starts = [0]
        while self.chunk_samples and starts[-1] + self.chunk_samples < num_samples:
            starts.append(starts[-1] + self.chunk_samples - self.overlap_samples)
        return starts

    @torch.inference_mode()
    def extract_batch(self, waveforms):
        waveforms = [np.asarray(w, dtype=np.float32) for w in waveforms]
        if self.normalize:
            waveforms = [(w - w.mean()) / np.sqrt(w.var() + 1e-7) for w in waveforms]
        pieces = []  # (utterance index, start sample, samples)
        for i, w in enumerate(waveforms):
            pieces += [(i, s, w[s:s + self.chunk_samples] if self.chunk_samples else w)
                       for s in self._chunk_starts(len(w))]
        outputs = [None] * len(pieces)
        lengths = [len(p[2]) for p in pieces]
        budget = self.batch_seconds * self.sample_rate
        same_length = not (self.use_mask or self.whisper_window == "padded")
        for group in batches_by_length(lengths, budget, same_length=same_length):
            for index, feats in zip(group, self._forward([pieces[j][2] for j in group])):
                outputs[index] = feats
        return [self._stitch(len(w), [(s, outputs[j]) for j, (i, s, _) in enumerate(pieces) if i == u])
                for u, w in enumerate(waveforms)]

    def _forward(self, chunks):
        """Selected hidden states of each chunk, padding frames removed: list of (T_i, L*D)."""
        if self.whisper_window == "utterance":
            inputs = self.feature_extractor(chunks, sampling_rate=self.sample_rate,
                                            padding="longest", truncation=False,
                                            return_tensors="pt")
            hidden = whisper_encoder_hidden_states(
                self.model, inputs.input_features.to(self.device, self.dtype))
            feats = select_layers(hidden, self.layer_indices, self.layer_reduce).float().cpu().numpy()
            return [f[:self.num_frames(len(c))] for f, c in zip(feats, chunks)]
        if self.is_whisper:
            inputs = self.feature_extractor(chunks, sampling_rate=self.sample_rate,
                                            return_tensors="pt")
            kwargs = {"input_features": inputs.input_features}
        else:
            padded = np.zeros((len(chunks), max(len(c) for c in chunks)), dtype=np.float32)
            for row, chunk in zip(padded, chunks):
                row[:len(chunk)] = chunk
            kwargs = {"input_values": torch.from_numpy(padded)}
            if self.use_mask and len(set(map(len, chunks))) > 1:  # no padding: same as no mask
                mask = np.zeros(padded.shape, dtype=np.int64)
                for row, chunk in zip(mask, chunks):
                    row[:len(chunk)] = 1
                kwargs["attention_mask"] = torch.from_numpy(mask)
        kwargs = {k: v.to(self.device, self.dtype if v.is_floating_point() else v.dtype)
                  for k, v in kwargs.items()}
        hidden = self.model(**kwargs, output_hidden_states=True).hidden_states
        feats = select_layers(hidden, self.layer_indices, self.layer_reduce).float().cpu().numpy()
        return [f[:self.num_frames(len(c))] for f, c in zip(feats, chunks)]

    def _stitch(self, num_samples, chunk_feats):
        """One utterance's frames from its (start sample, features) chunks."""
        if len(chunk_feats) == 1:
            return chunk_feats[0][1]
        half_overlap = self.overlap_samples // self.hop // 2
        starts = [s // self.hop for s, _ in chunk_feats]
        keep_from = [0] + [s + half_overlap for s in starts[1:]]
        keep_to = keep_from[1:] + [self.num_frames(num_samples)]
        return np.concatenate([feats[a - s:b - s] for (_, feats), s, a, b
                               in zip(chunk_feats, starts, keep_from, keep_to)])


def whisper_encoder_hidden_states(encoder, input_features):
    """The hidden states ``WhisperEncoder(..., output_hidden_states=True)`` returns, for log-mel
    input of any length up to 30 s: the positional embeddings are sliced to the frames (the
    original forward requires exactly 3000 mel frames). Index 0 is the input of layer 1, the
    last index is after the final layer norm."""
    hidden = torch.nn.functional.gelu(encoder.conv1(input_features))
    hidden = torch.nn.functional.gelu(encoder.conv2(hidden)).transpose(1, 2)
    if hidden.shape[1] > encoder.embed_positions.num_embeddings:
        raise FeatureConfigError(f"{hidden.shape[1]} encoder frames exceed Whisper's "
                                 f"{encoder.embed_positions.num_embeddings}")
    hidden = hidden + encoder.embed_positions.weight[:hidden.shape[1]]
    states = [hidden]
    for layer in encoder.layers:
        hidden = layer(hidden, None)
        states.append(hidden)
    states[-1] = encoder.layer_norm(hidden)
    return tuple(states)
