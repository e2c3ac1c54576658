"""Networks: the emotion-query fusion model and its ablations, built from one conf dict.

    model = build_model(model_conf, {"audio": audio_info, "text": text_info}, num_classes)
    model.set_loss(class_weight=None, label_smoothing=0.0)
    out = model(batch, streams=("audio", "text"), return_attention=False)
    # batch: {"<stream>": (B, T, D), "<stream>_lens": (B,)[, "labels": (B,)]} (collate's dict)
    # out: {"logits", "<stream>_lens_out"[, "attention"]}; training with labels: + "loss", "stats"

The infos are feat_conf.yaml dicts (``dim``, ``num_layers``). Variants are conf values:
``fusion`` picks from :data:`mser.nets.fusion.FUSIONS`, ``encoder_layers: 0`` removes the
uni-modal encoders, ``num_queries`` is K. The streams are the conf's ``streams`` (name ->
subsampling, normalize, mask_prob, spec_augment; any names, e.g. a third ``video`` stream;
default: audio and text). A model conf saved by an older version may instead hold
``modalities: [audio, text]`` and the flat ``audio_subsampling``, ``normalize_audio``,
``mask_audio_prob`` ... keys (:data:`LEGACY_STREAM_KEYS`): trained models keep loading; a
training config in that form is refused (``python -m mser.bin.migrate_config`` rewrites it).
"""
import os

from mser.nets.fusion import FUSIONS
from mser.nets.frontend import POSITIONAL
from mser.nets.model import EmotionModel
from mser.utils.checkpoint import load_checkpoint
from mser.utils.conditions import FULL_SET_NAMES, STREAM_NAME
from mser.utils.config import load_config
from mser.utils.tasks import auxiliary, resolve_tasks

MODALITIES = ("audio", "text")  # the streams with their own feature options and defaults
# A stream's options when the config leaves them out: audio and text as the paper's model,
# any other stream unsubsampled, normalised, never masked.
STREAM_DEFAULTS = {
    "audio": {"subsampling": 4, "normalize": True, "mask_prob": 0.2, "spec_augment": True},
    "text": {"subsampling": 1, "normalize": False, "mask_prob": 0.2, "spec_augment": False},
}
OTHER_STREAM_DEFAULTS = {"subsampling": 1, "normalize": True, "mask_prob": 0.0,
                         "spec_augment": False}
# The flat keys of older configs -> (stream, key); with ``modalities`` they are read only from
# model confs saved by training (a model trained before streams: keeps loading).
LEGACY_STREAM_KEYS = {
    "normalize_audio": ("audio", "normalize"), "normalize_text": ("text", "normalize"),
    "audio_subsampling": ("audio", "subsampling"), "text_subsampling": ("text", "subsampling"),
    "mask_audio_prob": ("audio", "mask_prob"), "mask_text_prob": ("text", "mask_prob"),
}
LEGACY_KEYS = ("modalities", *LEGACY_STREAM_KEYS)

# key -> (default, help). Every key is also a command-line option of mser.bin.train.
MODEL_OPTIONS = {
    "streams": ({}, "the model's streams, in order: {name: {feats: <feats.scp>, subsampling: "
                    "frames per step (projection: pool any; conv 1|2|4), normalize: bool, "
                    "mask_prob: p, spec_augment: bool}}, each key "
                    "optional (defaults: audio 4, true, 0.2, true; text 1, false, 0.2, false; "
                    "others 1, true, 0, false); {} is audio and text; in a YAML with a base:, "
                    "each stream's keys override the base's and '<name>: null' removes it; "
                    "feats: the stream's feats.scp (audio and text: --audio-feats, "
                    "--text-feats)"),
    "tasks": ({}, "what the model predicts, in order, each a head on the fused features: "
                  "{name: {type: classification|regression, weight: w (default 1), loss: "
                  "ce | ccc (default) or mse}}; emotion (utt2emo, classes.txt) is required, the "
                  "others auxiliary, their labels the data dir's utt2<name> (mser.utils.tasks); "
                  "{} is emotion alone"),
    "fusion": ("query", f"fusion of the streams: {', '.join(FUSIONS)}"),
    "d_model": (128, "width of projections, encoders and decoder"),
    "input_dropout": (0.1, "dropout after the input projections"),
    "positional": ("sinusoidal", f"positional information: {', '.join(POSITIONAL)}"),
    "max_positions": (2048, "table size of positional: learnable"),
    "layer_weighting": ("softmax", "how the stored layers are combined: softmax (learnable "
                                   "weights), mean, or concat (side by side into the projection, "
                                   "which learns a combination per dimension); true/false of "
                                   "older configs: softmax/mean"),
    "projection": ("conv", "per stream: conv (Conv1d subsampling to d_model), pool (average "
                           "the frames *_subsampling at a time, then a linear projection), both "
                           "adding positions; none: the normalised, combined features themselves "
                           "(a probe: needs encoder_layers 0 and fusion stats_pool or "
                           "concat_pool)"),
    "time_masks": (0, "training: SpecAugment time masks per utterance on the acoustic features"),
    "time_mask_width": (0, "widest time mask, in input frames (and at most a fifth of the "
                           "utterance)"),
    "feature_masks": (0, "training: SpecAugment masks of feature columns per utterance"),
    "feature_mask_width": (0, "widest feature mask, in columns of the layer-weighted features"),
    "encoder_layers": (2, "uni-modal transformer encoder layers per stream (0: none)"),
    "encoder_heads": (4, "encoder attention heads"),
    "encoder_ff_dim": (256, "encoder feed-forward width"),
    "num_queries": (4, "emotion query tokens K (fusion: query)"),
    "decoder_layers": (2, "query decoder (or cross-attention) layers"),
    "decoder_heads": (4, "decoder attention heads"),
    "decoder_ff_dim": (256, "decoder feed-forward width"),
    "pool": ("mean", "decoded queries -> classifier: mean or flatten"),
    "stats_attention": (0, "statistics pooling (fusion: stats_pool, fuse_stats): hidden width "
                           "of its attention over frames (0: plain mean and standard deviation)"),
    "probe_head": (False, "a second classifier, linear on the statistics of each stream's "
                          "combined input frames (the probe inside the model), trained with "
                          "its own loss; the model's logits are the mean of the two heads'"),
    "fuse_stats": (False, "fusion: query: also give the classifier the statistics of each "
                          "refined stream beside the decoded queries"),
    "classifier_hidden": (128, "hidden width of the classifier MLP (0: linear)"),
    "dropout": (0.1, "dropout in encoders, decoder and classifier"),
}
MODEL_DEFAULTS = {key: default for key, (default, _) in MODEL_OPTIONS.items()}


class ModelConfigError(ValueError):
    """A model conf that cannot be built; the message names the key."""


def resolve_model_conf(model_conf):
    """Defaults filled in, ``streams`` resolved (:func:`resolve_streams`; ``modalities`` names
    them for readers) and values checked; unknown keys are an error. Resolving a resolved conf
    gives it back."""
    legacy = legacy_keys(model_conf)
    unknown = sorted(set(model_conf) - set(MODEL_DEFAULTS) - set(legacy))
    if unknown:
        raise ModelConfigError(f"unknown model key(s) {unknown}; allowed: {sorted(MODEL_DEFAULTS)}")
    conf = {**MODEL_DEFAULTS, **{k: v for k, v in model_conf.items() if k not in legacy}}
    # Older configs spell the layer weighting as a boolean.
    conf["layer_weighting"] = {True: "softmax", False: "mean"}.get(conf["layer_weighting"],
                                                                   conf["layer_weighting"])
    choices = {"fusion": FUSIONS, "positional": POSITIONAL, "pool": ("mean", "flatten"),
               "projection": ("conv", "pool", "none"),
               "layer_weighting": ("softmax", "mean", "concat")}
    for key, allowed in choices.items():
        if conf[key] not in allowed:
            raise ModelConfigError(f"{key}: {conf[key]!r} is not one of {list(allowed)}")
    conf["streams"] = resolve_streams(conf["streams"], legacy)
    conf["tasks"] = resolve_tasks(conf["tasks"])
    conf["modalities"] = list(conf["streams"])
    if conf["projection"] == "conv":  # stride-2 convolutions: one or two
        for name, stream in conf["streams"].items():
            if stream["subsampling"] not in (1, 2, 4):
                raise ModelConfigError(f"streams.{name}.subsampling: {stream['subsampling']} "
                                       f"with projection: conv must be 1, 2 or 4 (projection: "
                                       f"pool averages any number of frames)")
    if conf["d_model"] % conf["encoder_heads"] or conf["d_model"] % conf["decoder_heads"]:
        raise ModelConfigError(f"d_model ({conf['d_model']}) must be divisible by encoder_heads "
                               f"and decoder_heads")
    if conf["projection"] == "none" and (conf["encoder_layers"] or
                                         conf["fusion"] not in ("stats_pool", "concat_pool")):
        raise ModelConfigError(f"projection: none keeps each stream at its feature width: it "
                               f"needs encoder_layers: 0 (got {conf['encoder_layers']}) and "
                               f"fusion: stats_pool or concat_pool (got {conf['fusion']!r})")
    return conf


def legacy_keys(conf):
    """The keys of the older form (:data:`LEGACY_KEYS`) that ``conf`` holds."""
    return {key: conf[key] for key in LEGACY_KEYS if key in conf}


def resolve_streams(declared, legacy=None):
    """{stream: {subsampling, normalize, mask_prob, spec_augment}}: the ``declared`` streams
    over the defaults (none declared: audio and text), or those an older conf's ``legacy`` keys
    (``modalities`` and the flat per-stream keys) give."""
    legacy = legacy or {}
    modalities = legacy.get("modalities")
    if declared and modalities is not None and list(declared) != list(modalities):
        raise ModelConfigError(f"modalities {list(modalities)} and streams {list(declared)} "
                               f"disagree; give only streams")
    declared = declared or {name: {} for name in (modalities or MODALITIES)}
    if not isinstance(declared, dict) or not declared:
        raise ModelConfigError(f"streams: expected a non-empty mapping of stream name -> options, "
                               f"got {declared!r}")
    streams = {}
    for name, given in declared.items():
        if not STREAM_NAME.fullmatch(str(name)) or name in FULL_SET_NAMES:
            raise ModelConfigError(f"streams: {name!r} is no stream name (lower-case letters and "
                                   f"digits, not 'both' or 'all')")
        defaults = STREAM_DEFAULTS.get(name, OTHER_STREAM_DEFAULTS)
        given = dict(given or {})
        for key, (stream, option) in LEGACY_STREAM_KEYS.items():
            if stream != name or key not in legacy:
                continue
            if option in given and given[option] != legacy[key]:
                raise ModelConfigError(f"streams.{name}.{option} ({given[option]!r}) and {key} "
                                       f"({legacy[key]!r}) disagree; set one of them")
            given.setdefault(option, legacy[key])
        unknown = sorted(set(given) - set(defaults))
        if unknown:
            raise ModelConfigError(f"streams.{name}: unknown key(s) {unknown}; allowed: "
                                   f"{sorted(defaults)} (and feats, a training option)")
        stream = {**defaults, **given}
        if not isinstance(stream["subsampling"], int) or stream["subsampling"] < 1:
            raise ModelConfigError(f"streams.{name}.subsampling: {stream['subsampling']!r} is "
                                   f"not a positive integer")
        streams[name] = stream
    masks = {name: s["mask_prob"] for name, s in streams.items()}
    if min(masks.values()) < 0 or sum(masks.values()) > 1:
        raise ModelConfigError(f"the streams' mask probabilities {masks} (streams.<stream>."
                               f"mask_prob) must be probabilities summing to at most 1 (a "
                               f"sample loses at most one stream, never all)")
    return streams


def feat_infos(config):
    """{stream: feat_conf} of a training config (``<stream>_info`` keys)."""
    return {m: config.get(f"{m}_info") for m in config["model_conf"]["modalities"]}


def load_model(exp_dir, device="cpu", checkpoint="best.pt"):
    """(model in eval mode on ``device``, config dict) of a trained experiment dir; the config's
    ``model_conf`` resolved (an older one gets its ``streams``).

    ``checkpoint`` is relative to ``exp_dir`` (e.g. ``checkpoints/epoch7.pt``) or absolute.
    """
    config = load_config(os.path.join(exp_dir, "config.yaml"))
    config["model_conf"] = resolve_model_conf(config["model_conf"])
    model = build_model(config["model_conf"], feat_infos(config), len(config["classes"]),
                        config.get("task_classes"))
    state = load_checkpoint(os.path.join(exp_dir, checkpoint), device)
    model.load_state_dict(state["model"])
    return model.to(device).eval(), config


def build_model(model_conf, infos, num_classes, task_classes=None):
    """The model of ``model_conf`` for features described by ``infos`` (stream -> feat_conf);
    ``task_classes``: task -> classes of each auxiliary classification task."""
    conf = resolve_model_conf(model_conf)
    missing = [m for m in conf["streams"] if not (infos or {}).get(m)]
    if missing:
        raise ModelConfigError(f"streams {missing} are in the model conf but no feature info "
                               f"(feat_conf.yaml) was given for them")
    unlisted = [t for t, spec in auxiliary(conf["tasks"]).items()
                if spec["type"] == "classification" and not (task_classes or {}).get(t)]
    if unlisted:
        raise ModelConfigError(f"classification task(s) {unlisted} without their classes")
    return EmotionModel(conf, infos, num_classes, task_classes)


__all__ = ["LEGACY_KEYS", "MODALITIES", "MODEL_DEFAULTS", "MODEL_OPTIONS", "ModelConfigError",
           "build_model", "feat_infos", "load_model", "resolve_model_conf"]
