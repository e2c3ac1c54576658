"""Per-modality front end: normalisation, layer weighting, projection/subsampling, positions,
modality embedding, and the uni-modal transformer encoder.

Padded positions never influence valid ones: they are zeroed before every convolution and
masked (``key_padding_mask``, True = padding) in every attention.
"""
import math

import torch
from torch import nn

from mser.nets.dropout import Dropout, dropout, self_attention
from mser.utils.frames import average_pool, frames_pooled, padding_mask


class FeatureNormalizer(nn.Module):
    """Global mean/variance normalisation; statistics are buffers, so checkpoints carry them."""

    def __init__(self, dim):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def set_statistics(self, mean, std, floor=1e-5):
        self.mean.copy_(mean)
        self.std.copy_(std.clamp_min(floor))

    def forward(self, x):
        return (x - self.mean) / self.std


class SinusoidalPositions(nn.Module):
    def __init__(self, d_model, max_positions):
        super().__init__()
        self.d_model = d_model

    def forward(self, length, device):
        position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
        frequency = torch.exp(torch.arange(0, self.d_model, 2, device=device, dtype=torch.float32)
                              * (-math.log(10000.0) / self.d_model))
        table = torch.zeros(length, self.d_model, device=device)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency[: self.d_model // 2])
        return table


class LearnablePositions(nn.Module):
    def __init__(self, d_model, max_positions):
        super().__init__()
        self.table = nn.Parameter(torch.randn(max_positions, d_model) * 0.02)

    def forward(self, length, device):
        if length > len(self.table):
            raise ValueError(f"sequence of {length} positions exceeds max_positions="
                             f"{len(self.table)}; raise max_positions, subsample more, or use "
                             f"positional: sinusoidal")
        return self.table[:length]


class NoPositions(nn.Module):
    def __init__(self, d_model, max_positions):
        super().__init__()

    def forward(self, length, device):
        return torch.zeros((), device=device)


POSITIONAL = {"sinusoidal": SinusoidalPositions, "learnable": LearnablePositions,
              "none": NoPositions}


class ConvSubsampling(nn.Module):
    """Stride-2 Conv1d + GELU blocks (``factor`` = 2 or 4) projecting to ``d_model``."""

    def __init__(self, in_dim, d_model, factor):
        super().__init__()
        if factor not in (2, 4):
            raise ValueError(f"subsampling factor must be 1, 2 or 4, got {factor}")
        dims = [in_dim] + [d_model] * int(math.log2(factor))
        self.convs = nn.ModuleList(nn.Conv1d(i, o, kernel_size=3, stride=2, padding=1)
                                   for i, o in zip(dims, dims[1:]))

    def forward(self, x, lengths):
        for conv in self.convs:
            x = x.masked_fill(padding_mask(lengths, x.shape[1])[..., None], 0.0)
            x = nn.functional.gelu(conv(x.transpose(1, 2))).transpose(1, 2)
            lengths = (lengths + 1) // 2  # ceil(T / 2) with kernel 3, stride 2, padding 1
        return x, lengths


class StreamFrontend(nn.Module):
    """(B, T, L*D) stored features -> (B, T', width) embeddings and updated lengths.

    The L stored layers are normalised (global mean/variance) and combined by
    ``layer_weighting``: ``softmax`` (learnable scalar weights, SUPERB's weighted sum), ``mean``
    (fixed uniform weights) or ``concat`` (all L*D columns side by side: the projection learns
    its own combination per dimension). ``projection``: ``conv`` (Conv1d subsampling to
    ``d_model``; a Linear one without subsampling), ``pool`` (frames averaged ``subsampling`` at
    a time, before anything else, then a Linear one: the cheapest), each then LayerNorm,
    positions and a modality embedding; ``none``: the combined features themselves, as a linear
    probe sees them. In training, SpecAugment-style masks (``spec_augment``) set spans of frames
    and of feature columns to the training mean."""

    def __init__(self, feat_dim, num_layers, d_model, subsampling, positional, max_positions,
                 layer_weighting, dropout, projection="conv", spec_augment=None):
        super().__init__()
        self.feat_dim, self.num_layers = feat_dim, num_layers
        self.normalizer = FeatureNormalizer(feat_dim * num_layers)
        self.concat = layer_weighting == "concat"
        # Softmax over zeros = uniform mean; learnable when asked and there is more than one layer.
        layer_logits = torch.zeros(num_layers)
        if layer_weighting == "softmax" and num_layers > 1:
            self.layer_logits = nn.Parameter(layer_logits)
        else:
            self.register_buffer("layer_logits", layer_logits)
        self.pool = frames_pooled(projection, subsampling)
        self.spec_augment = SpecAugment(**(spec_augment or {}), frames_per_step=self.pool)
        width = feat_dim * num_layers if self.concat else feat_dim
        self.combined_dim = width
        self.has_projection = projection != "none"
        self.out_dim = d_model if self.has_projection else width
        if not self.has_projection:
            self.projection = None
        elif subsampling == 1 or projection == "pool":
            self.projection = nn.Linear(width, d_model)
        else:
            self.projection = ConvSubsampling(width, d_model, subsampling)
        if self.has_projection:
            self.norm = nn.LayerNorm(d_model)
            self.positions = POSITIONAL[positional](d_model, max_positions)
            self.modality_embedding = nn.Parameter(torch.randn(d_model) * 0.02)
        self.dropout = Dropout(dropout)

    def layer_weights(self):
        return torch.softmax(self.layer_logits, dim=0)

    def combined_layers(self, x, normalize):
        """The normalised layers, side by side (``concat``) or as sum_l w_l (x_l - mean_l) /
        std_l (or sum_l w_l x_l without ``normalize``): one pass over the L layers' columns, no
        normalised copy of the (B, T, L*D) input."""
        if self.concat:
            return self.normalizer(x) if normalize else x
        weights = self.layer_weights().to(x.dtype)
        dim = self.feat_dim
        if normalize:
            std = self.normalizer.std.view(self.num_layers, dim)
            scale = weights[:, None] / std
            shift = (scale * self.normalizer.mean.view(self.num_layers, dim)).sum(0)
        else:
            scale = weights[:, None].expand(self.num_layers, dim)
        out = x[..., :dim] * scale[0]
        for layer in range(1, self.num_layers):
            out = torch.addcmul(out, x[..., layer * dim:(layer + 1) * dim], scale[layer])
        return out - shift if normalize else out

    def combine(self, x, lengths, normalize, pooled=1):
        """Stored (B, T, L*D) features -> the pooled, normalised, combined (and in training
        SpecAugment-masked) frames the projection takes, with their lengths. ``pooled``: frames
        the input already averages (a dataset that pools on reading, :func:`input_pooling`):
        1 or this front end's own factor."""
        if x.shape[-1] != self.feat_dim * self.num_layers:
            raise ValueError(f"expected features of {self.num_layers} layer(s) x {self.feat_dim} "
                             f"= {self.feat_dim * self.num_layers} columns, got {x.shape[-1]}; "
                             f"the features do not match the ones the model was built for")
        if pooled not in (1, self.pool):
            raise ValueError(f"input averaged {pooled} frames at a time, but this front end "
                             f"averages {self.pool}; read the features with the model's "
                             f"input_pooling")
        if self.pool > pooled:  # averaging commutes with the (affine) normalisation and weighting
            x, lengths = average_pool(x, lengths, self.pool)
        x = self.combined_layers(x, normalize)
        if self.training:
            x = self.spec_augment(x, lengths)
        return x, lengths

    def embed(self, x, lengths):
        """Combined frames (:meth:`combine`) -> the stream's embeddings and lengths."""
        if not self.has_projection:
            return self.dropout(x), lengths
        if isinstance(self.projection, ConvSubsampling):
            x, lengths = self.projection(x, lengths)
        else:
            x = self.projection(x)
        x = self.norm(x) + self.positions(x.shape[1], x.device) + self.modality_embedding
        return self.dropout(x), lengths

    def forward(self, x, lengths, normalize):
        return self.embed(*self.combine(x, lengths, normalize))


class SpecAugment(nn.Module):
    """Training-time masking of (B, T, D) normalised features (SpecAugment without warping):
    per utterance ``time_masks`` spans of up to ``time_mask_width`` frames (and at most a fifth
    of its frames each) and ``feature_masks`` spans of up to ``feature_mask_width`` columns are
    set to 0, the training mean. No masks: the identity."""

    def __init__(self, time_masks=0, time_mask_width=0, feature_masks=0, feature_mask_width=0,
                 frames_per_step=1):
        """``frames_per_step``: input frames per frame it sees (a pooling front end): widths
        stay in input frames."""
        super().__init__()
        self.time_masks = time_masks
        self.time_mask_width = -(-time_mask_width // frames_per_step)
        self.feature_masks, self.feature_mask_width = feature_masks, feature_mask_width

    @staticmethod
    def spans(count, max_width, extent, positions):
        """(B, positions) bool, True inside ``count`` random spans per row, each of a width
        drawn from 0..max_width (B,) and lying within the row's first ``extent`` (B,)."""
        shape = (len(extent), count)
        width = (torch.rand(shape, device=extent.device) * (max_width[:, None] + 1)).long()
        start = (torch.rand(shape, device=extent.device)
                 * (extent[:, None] - width + 1)).long()
        index = torch.arange(positions, device=extent.device)[None, None, :]
        return ((index >= start[..., None]) & (index < (start + width)[..., None])).any(1)

    def forward(self, x, lengths):
        # Multiplying by the kept frames and columns: two passes over the (B, T, D) frames,
        # the second in place (masked_fill copies, then fills: three times as long).
        if self.time_masks and self.time_mask_width:
            widest = torch.clamp(lengths // 5, max=self.time_mask_width)
            x = x * ~self.spans(self.time_masks, widest, lengths, x.shape[1])[..., None]
        if self.feature_masks and self.feature_mask_width:
            columns = torch.full_like(lengths, x.shape[-1])
            widest = torch.full_like(lengths, self.feature_mask_width)
            kept = ~self.spans(self.feature_masks, widest, columns, x.shape[-1])[:, None, :]
            x = x.mul_(kept) if self.time_masks and self.time_mask_width else x * kept
        return x


class UnimodalEncoder(nn.Module):
    """Pre-norm transformer encoder over one stream; ``num_layers: 0`` is the identity.

    The layers are ``nn.TransformerEncoderLayer`` modules (their weights and checkpoint keys),
    run by :meth:`forward` as the module would, with the fast CPU :func:`dropout` in training
    and memory-efficient self-attention in eval (memory linear in the stream length, not
    quadratic): see :func:`~mser.nets.dropout.self_attention`."""

    def __init__(self, d_model, num_layers, heads, ff_dim, dropout):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if num_layers else nn.Identity()

    def forward(self, x, pad_mask):
        training = self.training
        for layer in self.layers:
            attended = self_attention(layer.self_attn, layer.norm1(x), pad_mask, training)
            x = x + dropout(attended, layer.dropout1.p, training)
            hidden = dropout(layer.activation(layer.linear1(layer.norm2(x))), layer.dropout.p,
                             training)
            x = x + dropout(layer.linear2(hidden), layer.dropout2.p, training)
        return self.norm(x)
