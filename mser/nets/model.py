"""The multimodal emotion model: per-modality front ends and encoders, a fusion, a classifier."""
import torch
from torch import nn

from mser.nets.frontend import StreamFrontend, UnimodalEncoder, padding_mask
from mser.nets.fusion import FUSIONS, StatsPoolFusion

MODALITIES = ("audio", "text")
SPEC_AUGMENT_KEYS = ("time_masks", "time_mask_width", "feature_masks", "feature_mask_width")


def spec_augment(conf):
    """The SpecAugment options of the acoustic stream."""
    return {key: conf[key] for key in SPEC_AUGMENT_KEYS}


class EmotionModel(nn.Module):
    def __init__(self, conf, infos, num_classes):
        """``conf``: resolved model conf; ``infos``: modality -> feat_conf dict (dim, num_layers)."""
        super().__init__()
        self.conf = conf
        self.modalities = tuple(m for m in MODALITIES if m in conf["modalities"])
        self.frontends = nn.ModuleDict({
            m: StreamFrontend(int(infos[m]["dim"]), int(infos[m].get("num_layers", 1)),
                              conf["d_model"], conf[f"{m}_subsampling"], conf["positional"],
                              conf["max_positions"], conf["layer_weighting"],
                              conf["input_dropout"], conf["projection"],
                              spec_augment(conf) if m == "audio" else None)
            for m in self.modalities})
        self.encoders = nn.ModuleDict({
            m: UnimodalEncoder(conf["d_model"], conf["encoder_layers"], conf["encoder_heads"],
                               conf["encoder_ff_dim"], conf["dropout"])
            for m in self.modalities})
        self.fusion = FUSIONS[conf["fusion"]](
            conf, {m: self.frontends[m].out_dim for m in self.modalities})
        hidden = conf["classifier_hidden"]
        self.classifier = (nn.Sequential(nn.Dropout(conf["dropout"]),
                                         nn.Linear(self.fusion.out_dim, hidden), nn.GELU(),
                                         nn.Dropout(conf["dropout"]), nn.Linear(hidden, num_classes))
                           if hidden else
                           nn.Sequential(nn.Dropout(conf["dropout"]),
                                         nn.Linear(self.fusion.out_dim, num_classes)))

        # The probe inside the model: a linear classifier on the statistics of each stream's
        # combined input frames, trained by its own loss, averaged with the main classifier.
        if conf["probe_head"]:
            self.probe_pool = StatsPoolFusion({**conf, "stats_attention": 0}, {
                m: self.frontends[m].combined_dim for m in self.modalities})
            self.probe_classifier = nn.Sequential(nn.Dropout(conf["dropout"]),
                                                  nn.Linear(self.probe_pool.out_dim, num_classes))

    def normalizer(self, modality):
        return self.frontends[modality].normalizer

    def loss(self, output, labels, criterion):
        """``criterion`` of the logits; with a probe head the mean of each head's own."""
        heads = output.get("head_logits", (output["logits"],))
        return sum(criterion(logits.float(), labels) for logits in heads) / len(heads)

    def training_keep_masks(self, batch, device):
        """Random modality masking: per sample drop audio, or text, or neither (never both)."""
        keep = {m: torch.ones(batch, dtype=torch.bool, device=device) for m in self.modalities}
        if len(self.modalities) == 2:
            draw = torch.rand(batch, device=device)
            p_audio, p_text = self.conf["mask_audio_prob"], self.conf["mask_text_prob"]
            keep["audio"] = draw >= p_audio
            keep["text"] = (draw < p_audio) | (draw >= p_audio + p_text)
        return keep

    def forward(self, audio, audio_lens, text, text_lens, modalities=MODALITIES,
                return_attention=False, keep=None):
        """Logits (B, C); with ``return_attention`` the last decoder layer's cross-attention
        (B, K, Ta' + Tt) over the used streams in the order audio, text. ``audio_lens_out`` /
        ``text_lens_out`` are the stream lengths after subsampling. In eval mode ``keep``
        (modality -> (B,) bool) leaves a stream out of the samples where it is False, as if
        that modality were not given (e.g. an empty transcript); training draws its own."""
        used = [m for m in self.modalities if m in modalities]
        if not used:
            raise ValueError(f"none of the requested modalities {tuple(modalities)} is in this "
                             f"model ({self.modalities})")
        inputs = {"audio": (audio, audio_lens), "text": (text, text_lens)}
        batch = len(inputs[used[0]][1])
        device = inputs[used[0]][1].device
        if self.training:
            keep = self.training_keep_masks(batch, device)
        else:
            given = keep or {}
            keep = {m: given.get(m, torch.ones(batch, dtype=torch.bool, device=device))
                    for m in used}
        streams, combined, output = {}, {}, {}
        for m in used:
            x, lengths = inputs[m]
            if x is None:
                raise ValueError(f"modality {m!r} requested but its input is None")
            frontend = self.frontends[m]
            x, lengths = frontend.combine(x, lengths, self.conf[f"normalize_{m}"])
            combined[m] = (x, padding_mask(lengths, x.shape[1]), keep[m])
            x, lengths = frontend.embed(x, lengths)
            pad = padding_mask(lengths, x.shape[1])
            streams[m] = (self.encoders[m](x, pad), pad, keep[m])
            output[f"{m}_lens_out"] = lengths
        features, attention = self.fusion(streams, return_attention)
        output["logits"] = self.classifier(features)
        if self.conf["probe_head"]:
            probe = self.probe_classifier(self.probe_pool(combined)[0])
            output["head_logits"] = (output["logits"], probe)
            output["logits"] = (output["logits"] + probe) / 2
        if return_attention:
            output["attention"] = attention
        return output
