"""Networks: the emotion-query fusion model and its ablations, built from one flat conf dict.

    model = build_model(model_conf, audio_info, text_info, num_classes)
    out = model(audio, audio_lens, text, text_lens, modalities=("audio", "text"),
                return_attention=False)   # {"logits", "audio_lens_out", "text_lens_out"[, "attention"]}

``*_info`` are feat_conf.yaml dicts (``dim``, ``num_layers``). Variants are conf values:
``fusion`` picks from :data:`mser.nets.fusion.FUSIONS`, ``encoder_layers: 0`` removes the
uni-modal encoders, ``modalities: [audio]`` builds an audio-only model, ``num_queries`` is K.
"""
from mser.nets.fusion import FUSIONS
from mser.nets.frontend import POSITIONAL
from mser.nets.model import MODALITIES, EmotionModel

# key -> (default, help). Every key is also a command-line option of mser.bin.train.
MODEL_OPTIONS = {
    "modalities": (["audio", "text"], "streams the model has (audio, text, or both)"),
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
    "normalize_audio": (True, "global mean/variance normalisation of audio features "
                              "(statistics from the training split)"),
    "normalize_text": (False, "same for text features"),
    "audio_subsampling": (4, "Conv1d subsampling of audio frames: 1, 2 or 4"),
    "text_subsampling": (1, "Conv1d subsampling of text tokens: 1, 2 or 4"),
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
    "mask_audio_prob": (0.2, "training: probability of removing the audio stream of a sample"),
    "mask_text_prob": (0.2, "training: probability of removing the text stream of a sample"),
}
MODEL_DEFAULTS = {key: default for key, (default, _) in MODEL_OPTIONS.items()}


class ModelConfigError(ValueError):
    """A model conf that cannot be built; the message names the key."""


def resolve_model_conf(model_conf):
    """Defaults filled in and values checked; unknown keys are an error."""
    unknown = sorted(set(model_conf) - set(MODEL_DEFAULTS))
    if unknown:
        raise ModelConfigError(f"unknown model key(s) {unknown}; allowed: {sorted(MODEL_DEFAULTS)}")
    conf = {**MODEL_DEFAULTS, **model_conf}
    # Older configs spell the layer weighting as a boolean.
    conf["layer_weighting"] = {True: "softmax", False: "mean"}.get(conf["layer_weighting"],
                                                                   conf["layer_weighting"])
    choices = {"fusion": FUSIONS, "positional": POSITIONAL, "pool": ("mean", "flatten"),
               "projection": ("conv", "pool", "none"),
               "layer_weighting": ("softmax", "mean", "concat"),
               "audio_subsampling": (1, 2, 4), "text_subsampling": (1, 2, 4)}
    for key, allowed in choices.items():
        if conf[key] not in allowed:
            raise ModelConfigError(f"{key}: {conf[key]!r} is not one of {list(allowed)}")
    bad = [m for m in conf["modalities"] if m not in MODALITIES]
    if bad or not conf["modalities"]:
        raise ModelConfigError(f"modalities: {conf['modalities']} must be a non-empty subset of "
                               f"{list(MODALITIES)}")
    p_audio, p_text = conf["mask_audio_prob"], conf["mask_text_prob"]
    if min(p_audio, p_text) < 0 or p_audio + p_text > 1:
        raise ModelConfigError(f"mask_audio_prob ({p_audio}) + mask_text_prob ({p_text}) must be "
                               f"probabilities summing to at most 1 (a sample never loses both)")
    if conf["d_model"] % conf["encoder_heads"] or conf["d_model"] % conf["decoder_heads"]:
        raise ModelConfigError(f"d_model ({conf['d_model']}) must be divisible by encoder_heads "
                               f"and decoder_heads")
    if conf["projection"] == "none" and (conf["encoder_layers"] or
                                         conf["fusion"] not in ("stats_pool", "concat_pool")):
        raise ModelConfigError(f"projection: none keeps each stream at its feature width: it "
                               f"needs encoder_layers: 0 (got {conf['encoder_layers']}) and "
                               f"fusion: stats_pool or concat_pool (got {conf['fusion']!r})")
    return conf


def build_model(model_conf, audio_info, text_info, num_classes):
    """The model of ``model_conf`` for features described by ``audio_info`` / ``text_info``."""
    conf = resolve_model_conf(model_conf)
    infos = {"audio": audio_info, "text": text_info}
    missing = [m for m in conf["modalities"] if not infos[m]]
    if missing:
        raise ModelConfigError(f"modalities {missing} are in the model conf but no feature info "
                               f"(feat_conf.yaml) was given for them")
    return EmotionModel(conf, infos, num_classes)


__all__ = ["MODEL_DEFAULTS", "MODEL_OPTIONS", "ModelConfigError", "build_model",
           "resolve_model_conf"]
