"""The multimodal emotion model: per-stream front ends and encoders, a fusion, a classifier."""
import torch
from torch import nn

from mser.nets.dropout import Dropout
from mser.nets.frontend import StreamFrontend, UnimodalEncoder, padding_mask
from mser.nets.fusion import FUSIONS, StatsPoolFusion
from mser.utils.frames import input_normalization
from mser.utils.tasks import PRIMARY, auxiliary, task_type

SPEC_AUGMENT_KEYS = ("time_masks", "time_mask_width", "feature_masks", "feature_mask_width")


def spec_augment(conf, stream):
    """The SpecAugment options of ``stream`` (None: it gets none)."""
    return ({key: conf[key] for key in SPEC_AUGMENT_KEYS}
            if conf["streams"][stream]["spec_augment"] else None)


class EmotionModel(nn.Module):
    def __init__(self, conf, infos, num_classes, task_classes=None):
        """``conf``: resolved model conf; ``infos``: stream -> feat_conf dict (dim, num_layers);
        ``task_classes``: the classes of each auxiliary classification task of ``conf["tasks"]``
        (mser.utils.tasks)."""
        super().__init__()
        self.conf = conf
        self.modalities = tuple(conf["streams"])
        self.frontends = nn.ModuleDict({
            m: StreamFrontend(int(infos[m]["dim"]), int(infos[m].get("num_layers", 1)),
                              conf["d_model"], conf["streams"][m]["subsampling"],
                              conf["positional"], conf["max_positions"], conf["layer_weighting"],
                              conf["input_dropout"], conf["projection"], spec_augment(conf, m))
            for m in self.modalities})
        self.encoders = nn.ModuleDict({
            m: UnimodalEncoder(conf["d_model"], conf["encoder_layers"], conf["encoder_heads"],
                               conf["encoder_ff_dim"], conf["dropout"])
            for m in self.modalities})
        self.fusion = FUSIONS[conf["fusion"]](
            conf, {m: self.frontends[m].out_dim for m in self.modalities})
        self.classifier = self.head(num_classes)

        # The probe inside the model: a linear classifier on the statistics of each stream's
        # combined input frames, trained by its own loss, averaged with the main classifier.
        if conf["probe_head"]:
            self.probe_pool = StatsPoolFusion({**conf, "stats_attention": 0}, {
                m: self.frontends[m].combined_dim for m in self.modalities})
            self.probe_classifier = nn.Sequential(Dropout(conf["dropout"]),
                                                  nn.Linear(self.probe_pool.out_dim, num_classes))
        # The auxiliary tasks' heads, on the classifier's input, built after it (a model
        # without them draws the same initial weights as before they existed).
        self.tasks = conf["tasks"]
        self.task_classes = task_classes or {}
        self.task_heads = nn.ModuleDict({
            name: self.head(task_type(spec).outputs(self.task_classes.get(name)))
            for name, spec in auxiliary(self.tasks).items()})

        self.set_loss()

    def head(self, outputs):
        """A head on the fused features: the classifier MLP's shape (linear without
        ``classifier_hidden``) with ``outputs`` outputs."""
        conf, hidden = self.conf, self.conf["classifier_hidden"]
        if not hidden:
            return nn.Sequential(Dropout(conf["dropout"]), nn.Linear(self.fusion.out_dim, outputs))
        return nn.Sequential(Dropout(conf["dropout"]), nn.Linear(self.fusion.out_dim, hidden),
                             nn.GELU(), Dropout(conf["dropout"]), nn.Linear(hidden, outputs))

    def normalizer(self, modality):
        return self.frontends[modality].normalizer

    def input_statistics(self):
        """{stream: (mean, std)} of the streams a dataset may normalise on reading
        (:func:`~mser.utils.frames.input_normalization`)."""
        return {m: (self.normalizer(m).mean, self.normalizer(m).std)
                for m in input_normalization(self.conf)}

    def set_loss(self, class_weight=None, label_smoothing=0.0, logit_offset=None):
        """The training loss: cross-entropy with ``class_weight`` (C,) and ``label_smoothing``,
        of the logits plus ``logit_offset`` (C,) (logit adjustment: the log training prior, so
        that the logits themselves fit a uniform prior; Menon et al., ICLR 2021). Both are
        buffers outside the state dict: they come from the training data, and only the loss
        sees them."""
        self.register_buffer("class_weight", class_weight, persistent=False)
        self.register_buffer("logit_offset", logit_offset, persistent=False)
        self.label_smoothing = label_smoothing

    def loss(self, output, labels, targets=None):
        """The training loss and each part of it: the mean loss of the emotion heads (one, or
        the classifier and the probe head), plus each auxiliary task's loss on ``targets``
        (task -> (B,), its missing value where an utterance has no label) times its weight
        (relative to the emotion task's)."""
        heads = output.get("head_logits", {"classifier": output["logits"]})
        losses = {}
        for name, logits in heads.items():
            logits = logits.float()
            if self.logit_offset is not None:  # without it, not even an addition of zeros
                logits = logits + self.logit_offset
            losses[name] = nn.functional.cross_entropy(logits, labels, weight=self.class_weight,
                                                       label_smoothing=self.label_smoothing)
        total = sum(losses.values()) / len(losses)
        tasks = auxiliary(self.tasks)
        if tasks:  # without them, the loss of the emotion heads as it is
            total = total * self.tasks[PRIMARY]["weight"]
            for name, spec in tasks.items():
                losses[name] = task_type(spec).loss(output["tasks"][name], targets[name], spec)
                total = total + spec["weight"] * losses[name]
        return total, losses

    def training_keep_masks(self, batch, device):
        """Random stream masking: per sample one stream is dropped with its ``mask_prob`` (one
        draw; the probabilities sum to at most 1), so a sample never loses every stream."""
        keep = {m: torch.ones(batch, dtype=torch.bool, device=device) for m in self.modalities}
        if len(self.modalities) > 1:
            draw = torch.rand(batch, device=device)
            low = 0.0
            for m in self.modalities:
                high = low + self.conf["streams"][m]["mask_prob"]
                keep[m] = (draw < low) | (draw >= high)
                low = high
        return keep

    def forward(self, batch, streams=None, return_attention=False, keep=None):
        """Logits (B, C) from ``batch`` (collate's dict: ``<stream>``, ``<stream>_lens``, and
        ``<stream>_pooled`` / ``<stream>_normalized`` where the dataset averaged / normalised
        the frames) fed ``streams`` (default: all of the model's); with ``return_attention`` the last decoder layer's cross-attention (B,
        K, sum of the used streams' lengths) in the model's stream order. ``<stream>_lens_out``
        are the stream lengths after subsampling. In eval mode ``keep`` (stream -> (B,) bool)
        leaves a stream out of the samples where it is False, as if it were not given (e.g. an
        empty transcript); training draws its own. Training with ``labels`` in the batch adds
        ``loss`` and ``stats`` (each head's loss, detached)."""
        used = self.used_streams(batch, streams)
        size, device = batch[f"{used[0]}_lens"].shape[0], batch[f"{used[0]}_lens"].device
        if self.training:  # drawn before the front ends' own random draws
            keep = self.training_keep_masks(size, device)
        output = self.classify(self.encode(batch, used), self.keep_masks(keep, used, size, device),
                               return_attention)
        if self.training and batch.get("labels") is not None:
            output["loss"], losses = self.loss(output, batch["labels"], batch.get("targets"))
            output["stats"] = {f"loss_{name}": loss.detach() for name, loss in losses.items()}
        return output

    @torch.no_grad()
    def condition_outputs(self, batch, condition_streams, keep_for=None):
        """{condition: {task: outputs (B, C) float32}} of every condition of
        ``condition_streams`` (condition -> its streams), in eval mode, the emotion task's
        outputs its logits: each stream is encoded once, only the fusion and the heads
        run per condition (the streams' encoders never see each other, so this equals one
        forward per condition). ``keep_for(batch, streams)``, if given, gives the ``keep``
        masks of a condition (see :meth:`forward`)."""
        used = self.used_streams(batch, sorted({m for streams in condition_streams.values()
                                                for m in streams}))
        encoded = self.encode(batch, used)
        size, device = batch[f"{used[0]}_lens"].shape[0], batch[f"{used[0]}_lens"].device
        outputs = {}
        for condition, streams in condition_streams.items():
            keep = self.keep_masks(keep_for(batch, streams) if keep_for else None, streams,
                                   size, device)
            output = self.classify({m: encoded[m] for m in self.modalities if m in streams}, keep)
            outputs[condition] = {PRIMARY: output["logits"].float(),
                                  **{t: o.float() for t, o in output.get("tasks", {}).items()}}
        return outputs

    def used_streams(self, batch, streams):
        """The model's streams among ``streams`` (None: all), in the model's order; each must
        be in the batch."""
        used = [m for m in self.modalities if streams is None or m in streams]
        if not used:
            raise ValueError(f"none of the requested streams {tuple(streams)} is in this model "
                             f"({self.modalities})")
        absent = [m for m in used if batch.get(m) is None]
        if absent:
            raise ValueError(f"stream(s) {absent} requested but not in the batch")
        return used

    @staticmethod
    def keep_masks(given, streams, size, device):
        """``given`` (stream -> (B,) bool, or None) for each of ``streams``, all-True where not
        given."""
        given = given or {}
        return {m: given.get(m, torch.ones(size, dtype=torch.bool, device=device))
                for m in streams}

    def encode(self, batch, streams):
        """{stream: (combined input frames, their padding mask, encoded frames, their padding
        mask, lengths after subsampling)} of ``streams``."""
        encoded = {}
        for m in streams:
            frontend = self.frontends[m]
            normalize = (self.conf["streams"][m]["normalize"]
                         and not batch.get(f"{m}_normalized", False))
            x, lengths = frontend.combine(batch[m], batch[f"{m}_lens"], normalize,
                                          batch.get(f"{m}_pooled", 1))
            combined_pad = padding_mask(lengths, x.shape[1])
            embedded, lengths = frontend.embed(x, lengths)
            pad = padding_mask(lengths, embedded.shape[1])
            encoded[m] = (x, combined_pad, self.encoders[m](embedded, pad), pad, lengths)
        return encoded

    def classify(self, encoded, keep, return_attention=False):
        """The output dict (logits, ``<stream>_lens_out``[, head_logits, tasks, attention]) of
        the encoded streams (:meth:`encode`) with their ``keep`` masks; ``tasks``: each
        auxiliary task's outputs."""
        output = {f"{m}_lens_out": lengths for m, (*_, lengths) in encoded.items()}
        features, attention = self.fusion(
            {m: (x, pad, keep[m]) for m, (_, _, x, pad, _) in encoded.items()}, return_attention)
        output["logits"] = self.classifier(features)
        if self.task_heads:
            output["tasks"] = {name: head(features) for name, head in self.task_heads.items()}
        if self.conf["probe_head"]:
            probe = self.probe_classifier(self.probe_pool(
                {m: (x, pad, keep[m]) for m, (x, pad, *_) in encoded.items()})[0])
            output["head_logits"] = {"classifier": output["logits"], "probe": probe}
            output["logits"] = (output["logits"] + probe) / 2
        if return_attention:
            output["attention"] = attention
        return output
