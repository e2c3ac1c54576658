"""Fusion of the refined streams into one utterance vector (the registry ``FUSIONS``).

Every fusion takes ``streams``: an ordered dict modality -> (x (B, T, d), pad_mask (B, T) True at
padding, keep (B,) bool False where the stream is masked for that sample), holding only the
modalities given to this forward, and returns ``(features (B, out_dim), attention or None)``.
A masked or absent stream contributes nothing: its values cannot change the output.
"""
import torch
from torch import nn


def masked_mean(x, pad_mask):
    valid = (~pad_mask).unsqueeze(-1).to(x.dtype)
    return (x * valid).sum(1) / valid.sum(1).clamp_min(1.0)


class QueryDecoderLayer(nn.Module):
    """Pre-norm layer: self-attention among queries, cross-attention to the streams, FFN."""

    def __init__(self, d_model, heads, ff_dim, dropout):
        super().__init__()
        self.self_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.cross_attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

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

    def __init__(self, conf, modalities):
        super().__init__()
        d = conf["d_model"]
        self.queries = nn.Parameter(torch.randn(conf["num_queries"], d) * 0.02)
        self.layers = nn.ModuleList(
            QueryDecoderLayer(d, conf["decoder_heads"], conf["decoder_ff_dim"], conf["dropout"])
            for _ in range(conf["decoder_layers"]))
        self.norm = nn.LayerNorm(d)
        self.pool = conf["pool"]
        self.out_dim = d * (conf["num_queries"] if self.pool == "flatten" else 1)

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
        return features, weights


class ConcatPoolFusion(nn.Module):
    """Ablation: mean-pool each stream, concatenate (zeros for a masked or absent stream)."""

    def __init__(self, conf, modalities):
        super().__init__()
        self.modalities = tuple(modalities)
        self.d_model = conf["d_model"]
        self.out_dim = self.d_model * len(self.modalities)

    def forward(self, streams, return_attention=False):
        batch = next(iter(streams.values()))[0]
        pooled = []
        for modality in self.modalities:
            if modality in streams:
                x, pad, keep = streams[modality]
                pooled.append(masked_mean(x, pad) * keep[:, None].to(x.dtype))
            else:
                pooled.append(batch.new_zeros(batch.shape[0], self.d_model))
        return torch.cat(pooled, dim=1), None


class CrossModalLayer(nn.Module):
    """Pre-norm cross-attention from one stream to the other, then an FFN."""

    def __init__(self, d_model, heads, ff_dim, dropout):
        super().__init__()
        self.attn = nn.MultiheadAttention(d_model, heads, dropout=dropout, batch_first=True)
        self.ff = nn.Sequential(nn.Linear(d_model, ff_dim), nn.GELU(), nn.Dropout(dropout),
                                nn.Linear(ff_dim, d_model))
        self.norms = nn.ModuleList(nn.LayerNorm(d_model) for _ in range(3))
        self.dropout = nn.Dropout(dropout)

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

    def __init__(self, conf, modalities):
        super().__init__(conf, modalities)
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
           "cross_attention": CrossModalFusion}
