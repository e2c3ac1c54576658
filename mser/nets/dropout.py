"""Dropout with a fast CPU mask, and the attention that uses it.

On CPU, torch draws dropout masks one element at a time (``bernoulli_``: ~1e8 numbers/s on one
core), which made dropout about half of the uni-modal encoder's training forward on stored
features. Here the CPU mask comes from numpy's PCG64 in 16-bit draws (a few times faster),
seeded by one draw of torch's generator per call, so a run is as reproducible as with torch's
dropout (the trainer reseeds torch every epoch) and a resumed run draws the same masks. The
drop probability is rounded to a multiple of 2^-16 (0.2 -> 0.199997). On GPU, and for
p = 0 or outside training, it is torch's ``dropout``.
"""
import numpy as np
import torch
from torch import nn

MASK_LEVELS = 1 << 16


def dropout(x, p, training):
    """``x`` with elements zeroed with probability ``p`` and the rest scaled by 1 / (1 - p) when
    ``training``."""
    if not training or p <= 0 or p >= 1 or x.device.type != "cpu":
        return nn.functional.dropout(x, p, training)
    seed = int(torch.randint(0, 2 ** 62, ()))
    draws = np.random.default_rng(seed).integers(0, MASK_LEVELS, size=x.shape, dtype=np.uint16)
    keep = torch.from_numpy(draws >= round(p * MASK_LEVELS)).to(x.dtype)
    return x * keep.mul_(1.0 / (1.0 - p))


class Dropout(nn.Module):
    """:func:`dropout` as a module (a drop-in for ``nn.Dropout``: no parameters, no state)."""

    def __init__(self, p):
        super().__init__()
        self.p = p

    def forward(self, x):
        return dropout(x, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}"


def self_attention(attn, x, pad_mask, training):
    """``attn`` (a batch-first ``nn.MultiheadAttention``, its weights) of ``x`` over itself,
    keys masked where ``pad_mask`` is True. Training: attention weights with :func:`dropout`
    (``attn.dropout``); eval: ``scaled_dot_product_attention``, whose fused kernels never store
    the (T, T) weights, so memory is linear in T (the module's own inference path stores them:
    1.8 GB for 5 minutes of audio, see bench/bench_infer_memory.py)."""
    batch, time, width = x.shape
    heads = attn.num_heads
    qkv = nn.functional.linear(x, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = qkv.view(batch, time, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    if training and attn.dropout > 0:
        scores = (q * (q.shape[-1] ** -0.5)) @ k.transpose(-2, -1)
        scores = scores.masked_fill(pad_mask[:, None, None, :], float("-inf"))
        out = dropout(torch.softmax(scores, dim=-1), attn.dropout, True) @ v
    else:
        out = nn.functional.scaled_dot_product_attention(q, k, v,
                                                         attn_mask=~pad_mask[:, None, None, :])
    return attn.out_proj(out.transpose(1, 2).reshape(batch, time, width))
