"""Fusion of the refined streams into one utterance vector (the registry ``FUSIONS``).

Every fusion is built from the model conf and ``widths`` (modality -> width of its refined
stream, in the model's modality order) and takes ``streams``: an ordered dict modality -> (x (B, T, d), pad_mask (B, T) True at
padding, keep (B,) bool False where the stream is masked for that sample), holding only the
modalities given to this forward, and returns ``(features (B, out_dim), attention or None)``.
A masked or absent stream contributes nothing: its values cannot change the output.
"""
import torch
from torch import nn

from mser.nets.dropout import Dropout


def check_widths(widths, d_model, fusion):
    if any(width != d_model for width in widths.values()):
        raise ValueError(f"fusion: {fusion} attends over streams of width d_model ({d_model}), "
                         f"got {dict(widths)}; use projection: conv, or fusion: stats_pool")


def frame_weights(pad_mask, dtype):
    """(B, 1, T): 1 / (valid frames) at each valid frame, 0 at padding."""
    valid = (~pad_mask).to(dtype)
    return (valid / valid.sum(1, keepdim=True).clamp_min(1.0)).unsqueeze(1)


def masked_mean(x, pad_mask):
    return torch.bmm(frame_weights(pad_mask, x.dtype), x).squeeze(1)


def masked_mean_std(x, pad_mask):
    """(B, D) mean and (B, D) standard deviation (+1e-5 in the variance) of ``x`` (B, T, D) over
    its valid frames, as E[x^2] - E[x]^2 from two weighted sums over time: two passes over
    ``x`` (the statistics of a wide input, e.g. a probe's 3,072 stored columns, were a fifth of
    a training step as masked element-wise sums)."""
    weights = frame_weights(pad_mask, x.dtype)
    mean = torch.bmm(weights, x).squeeze(1)
    var = torch.bmm(weights, x * x).squeeze(1) - mean * mean
    return mean, (var.clamp_min(0.0) + 1e-5).sqrt()


class StatisticsPooling(nn.Module):
    """(B, T, d) frames -> (B, 2d) mean and standard deviation over the valid frames; with
    ``attention_dim`` > 0 attentive statistics (Okabe et al., 2018): both weighted by a softmax
    over frames of ``v . tanh(W x + b)``."""

    def __init__(self, dim, attention_dim=0):
        super().__init__()
        self.attention = (nn.Sequential(nn.Linear(dim, attention_dim), nn.Tanh(),
                                        nn.Linear(attention_dim, 1))
                          if attention_dim else None)

    def forward(self, x, pad_mask):
        if self.attention is None:
            return torch.cat(masked_mean_std(x, pad_mask), dim=-1)
        scores = self.attention(x).squeeze(-1).masked_fill(pad_mask, float("-inf"))
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        mean = (weights * x).sum(1)
        var = (weights * (x - mean[:, None]) ** 2).sum(1)
        return torch.cat([mean, (var + 1e-5).sqrt()], dim=-1)


class QueryDecoderLayer(nn.Module):
    """Pre-norm layer: self-attention among queries, cross-attention to the streams, FFN."""

    def __init__(self, d_model, heads, ff_dim, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), Dropout(dropout),
                                nn.Linear(ff_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = Dropout(dropout)

    def forward(self, queries, memory, memory_mask, need_weights):
        h = self.norms[0](queries)
        queries = queries + self.dropout(self.self_attn(h, h, h, need_weights=False)[0])
        h = self.norms[1](queries)
        attended, weights = self.cross_attn(h, memory, memory, key_padding_mask=memory_mask,
                                            need_weights=need_weights, average_attn_weights=True)
        queries = queries + self.dropout(attended)
        return queries + self.dropout(self.ff(self.norms[2](queries))), weights


class EmotionQueryFusion(nn.Module):
    """K learnable emotion queries cross-attending to the concatenated streams (the paper)."""

    def __init__(self, conf, widths):
        super().__init__()
        d = conf["d_model"]
        check_widths(widths, d, "query")
        self.queries = nn.Parameter(torch.randn(conf["num_queries"], d) * 0.02)
        self.layers = nn.ModuleList(
            QueryDecoderLayer(d, conf["decoder_heads"], conf["decoder_ff_dim"], conf["dropout"])
            for _ in range(conf["decoder_layers"]))
        self.norm = nn.LayerNorm(d)
        self.pool = conf["pool"]
        self.out_dim = d * (conf["num_queries"] if self.pool == "flatten" else 1)
        # Statistics of the refined streams beside the decoded queries (fuse_stats).
        self.stream_stats = StatsPoolFusion(conf, widths) if conf["fuse_stats"] else None
        self.out_dim += self.stream_stats.out_dim if self.stream_stats else 0

    def forward(self, streams, return_attention=False):
        memory = torch.cat([x for x, _, _ in streams.values()], dim=1)
        memory_mask = torch.cat([pad | ~keep[:, None] for _, pad, keep in streams.values()], dim=1)
        queries = self.queries.expand(memory.shape[0], -1, -1)
        weights = None
        for i, layer in enumerate(self.layers):
            last = i == len(self.layers) - 1
            queries, weights = layer(queries, memory, memory_mask, return_attention and last)
        queries = self.norm(queries)
        features = queries.mean(1) if self.pool == "mean" else queries.flatten(1)
        if self.stream_stats is not None:
            features = torch.cat([features, self.stream_stats(streams)[0]], dim=1)
        return features, weights


class ConcatPoolFusion(nn.Module):
    """Ablation: mean-pool each stream, concatenate (zeros for a masked or absent stream)."""

    def __init__(self, conf, widths):
        super().__init__()
        self.modalities, self.widths = tuple(widths), dict(widths)
        self.out_dim = sum(self.widths.values())

    def forward(self, streams, return_attention=False):
        batch = next(iter(streams.values()))[0]
        pooled = []
        for modality in self.modalities:
            if modality in streams:
                x, pad, keep = streams[modality]
                pooled.append(masked_mean(x, pad) * keep[:, None].to(x.dtype))
            else:
                pooled.append(batch.new_zeros(batch.shape[0], self.widths[modality]))
        return torch.cat(pooled, dim=1), None


class StatsPoolFusion(nn.Module):
    """Statistics pooling of each stream (mean and std, attentive with ``stats_attention`` > 0),
    concatenated; zeros for a masked or absent stream. With the frontend's ``projection: none``,
    no encoders and a linear classifier this is the linear probe of SUPERB / EmoBox."""

    def __init__(self, conf, widths):
        super().__init__()
        self.modalities, self.widths = tuple(widths), dict(widths)
        self.pools = nn.ModuleDict({m: StatisticsPooling(widths[m], conf["stats_attention"])
                                    for m in self.modalities})
        self.out_dim = sum(2 * widths[m] for m in self.modalities)

    def forward(self, streams, return_attention=False):
        batch = next(iter(streams.values()))[0]
        pooled = []
        for modality in self.modalities:
            if modality in streams:
                x, pad, keep = streams[modality]
                pooled.append(self.pools[modality](x, pad) * keep[:, None].to(x.dtype))
            else:
                pooled.append(batch.new_zeros(batch.shape[0], 2 * self.widths[modality]))
        return torch.cat(pooled, dim=1), None


class CrossModalLayer(nn.Module):
    """Pre-norm cross-attention from one stream to the other, then an FFN."""

    def __init__(self, d_model, heads, ff_dim, dropout):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), Dropout(dropout),
                                nn.Linear(ff_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = Dropout(dropout)

    def forward(self, x, partner=None):
        """``partner``: (x, pad_mask, keep) of the other stream, None when it is absent."""
        if partner is not None:
            other, other_pad, other_keep = partner
            attended = self.attn(self.norms[0](x), self.norms[1](other), self.norms[1](other),
                                 key_padding_mask=other_pad, need_weights=False)[0]
            # A masked partner contributes nothing (its padding mask keeps the softmax finite).
            x = x + self.dropout(attended) * other_keep[:, None, None].to(x.dtype)
        return x + self.dropout(self.ff(self.norms[2](x)))


class CrossModalFusion(ConcatPoolFusion):
    """Ablation without queries: audio attends to text and text to audio, then concat+pool."""

    def __init__(self, conf, widths):
        super().__init__(conf, widths)
        check_widths(widths, conf["d_model"], "cross_attention")
        if len(self.modalities) != 2:
            raise ValueError(f"fusion: cross_attention needs two modalities, got "
                             f"{list(self.modalities)}; use fusion: concat_pool for one")
        self.layers = nn.ModuleDict({
            m: nn.ModuleList(CrossModalLayer(conf["d_model"], conf["decoder_heads"],
                                             conf["decoder_ff_dim"], conf["dropout"])
                             for _ in range(conf["decoder_layers"]))
            for m in self.modalities})

    def forward(self, streams, return_attention=False):
        for depth in range(len(self.layers[self.modalities[0]])):
            updated = {}
            for m, (x, pad, keep) in streams.items():
                partner = next((s for n, s in streams.items() if n != m), None)
                updated[m] = (self.layers[m][depth](x, partner), pad, keep)
            streams = updated
        return super().forward(streams)


FUSIONS = {"query": EmotionQueryFusion, "concat_pool": ConcatPoolFusion,
           "cross_attention": CrossModalFusion, "stats_pool": StatsPoolFusion}
