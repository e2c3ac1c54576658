"""Per-modality front end: normalisation, layer weighting, projection/subsampling, positions,
modality embedding, and the uni-modal transformer encoder.

Padded positions never influence valid ones: they are zeroed before every convolution and
masked (``key_padding_mask``, True = padding) in every attention.
"""
import math

import torch
from torch import nn


def padding_mask(lengths, max_len):
    """(B, T) bool, True at padded positions."""
    return torch.arange(max_len, device=lengths.device)[None, :] >= lengths[:, None]


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
    """(B, T, L*D) stored features -> (B, T', d_model) embeddings and updated lengths."""

    def __init__(self, feat_dim, num_layers, d_model, subsampling, positional, max_positions,
                 layer_weighting, dropout):
        super().__init__()
        self.feat_dim, self.num_layers = feat_dim, num_layers
        self.normalizer = FeatureNormalizer(feat_dim * num_layers)
        # Softmax over zeros = uniform mean; learnable when asked and there is more than one layer.
        layer_logits = torch.zeros(num_layers)
        if layer_weighting and num_layers > 1:
            self.layer_logits = nn.Parameter(layer_logits)
        else:
            self.register_buffer("layer_logits", layer_logits)
        if subsampling == 1:
            self.projection = nn.Linear(feat_dim, d_model)
        else:
            self.projection = ConvSubsampling(feat_dim, d_model, subsampling)
        self.norm = nn.LayerNorm(d_model)
        self.positions = POSITIONAL[positional](d_model, max_positions)
        self.modality_embedding = nn.Parameter(torch.randn(d_model) * 0.02)
        self.dropout = nn.Dropout(dropout)

    def layer_weights(self):
        return torch.softmax(self.layer_logits, dim=0)

    def forward(self, x, lengths, normalize):
        if x.shape[-1] != self.feat_dim * self.num_layers:
            raise ValueError(f"expected features of {self.num_layers} layer(s) x {self.feat_dim} "
                             f"= {self.feat_dim * self.num_layers} columns, got {x.shape[-1]}; "
                             f"the features do not match the ones the model was built for")
        if normalize:
            x = self.normalizer(x)
        batch, time = x.shape[:2]
        x = x.view(batch, time, self.num_layers, self.feat_dim)
        x = torch.einsum("btld,l->btd", x, self.layer_weights().to(x.dtype))
        if isinstance(self.projection, ConvSubsampling):
            x, lengths = self.projection(x, lengths)
        else:
            x = self.projection(x)
        x = self.norm(x) + self.positions(x.shape[1], x.device) + self.modality_embedding
        return self.dropout(x), lengths


def _self_attention(attn, x, pad_mask):
    """``attn`` (a batch-first nn.MultiheadAttention) of ``x`` over itself, without dropout,
    through ``scaled_dot_product_attention``, whose fused kernels never store the (T, T)
    weights: memory linear in T. (The module's own inference path stores them: 1.8 GB for 5
    minutes of audio, see bench/bench_infer_memory.py.)"""
    batch, time, width = x.shape
    qkv = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    heads = attn.num_heads
    q, k, v = qkv.view(batch, time, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    keep = ~pad_mask[:, None, None, :]
    out = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask=keep)
    return attn.out_proj(out.transpose(1, 2).reshape(batch, time, width))


class UnimodalEncoder(nn.Module):
    """Pre-norm transformer encoder over one stream; ``num_layers: 0`` is the identity.

    In eval mode the layers run with memory-efficient self-attention (same result as the
    module's own path, memory linear in the stream length, not quadratic)."""

    def __init__(self, d_model, num_layers, heads, ff_dim, dropout):
        super().__init__()
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(d_model, heads, ff_dim, dropout, activation="gelu",
                                       batch_first=True, norm_first=True)
            for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model) if num_layers else nn.Identity()

    def forward(self, x, pad_mask):
        for layer in self.layers:
            if self.training:
                x = layer(x, src_key_padding_mask=pad_mask)
            else:
                x = x + _self_attention(layer.self_attn, layer.norm1(x), pad_mask)
                x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        return self.norm(x)
