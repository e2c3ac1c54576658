"""Feature extractors: a config dict in, one (T, L*D) float32 matrix per utterance out.

Extractors (config key ``extractor:``), all built by :func:`build_extractor`:

- ``fbank``   Kaldi-compatible log-mel filterbank (kaldi-native-fbank), optional log energy
              column and Kaldi pitch (POV, normalised log pitch, delta pitch); audio, 100 frames/s.
- ``hf_ssl``  a transformers speech encoder (wav2vec2, HuBERT, WavLM, data2vec-audio, Whisper
              encoder) from a local directory, with layer selection; audio, 50 frames/s.
- ``hf_text`` a transformers text encoder (BERT, RoBERTa, MPNet, MiniLM) over the transcript,
              token-level hidden states with layer selection; text, no frame rate.

Every extractor has ``modality`` ("audio" or "text"), ``dim`` (per-layer dim D), ``num_layers``
(L), ``frame_rate`` (frames/s, None for text) and
``extract_batch(inputs) -> list[np.ndarray]`` (1-D float32 waveforms at ``sample_rate`` for
audio, strings for text). Audio extractors add ``extract_wav(waveform, sample_rate)`` (any rate)
and ``num_frames(num_samples)``; text extractors add ``extract_text(text)``.

Inference on a new recording uses the pipeline that made the training features::

    from mser.features import load_extractor
    audio = load_extractor("dump/hubert_large", device="cpu")   # reads feat_conf.yaml
    feats = audio.extract_wav(waveform, sample_rate)             # (T, L*D) float32

Config values: command line > YAML > the extractor's ``DEFAULTS``; unknown keys are an error.
Paths (``model_dir``) may use ``$VAR``, ``${VAR}`` and ``${VAR:-default}``.
"""
import importlib
import os
import re

from mser.io.storage import FeatureConfigError  # noqa: F401 (raised for feature confs)

# Name -> "module:Class", imported on use so that fbank never imports torch.
EXTRACTORS = {
    "fbank": "mser.features.fbank:FbankExtractor",
    "hf_ssl": "mser.features.hf_ssl:SpeechEncoderExtractor",
    "hf_text": "mser.features.hf_text:TextEncoderExtractor",
}
# Keys common to every extractor (storage and job options).
COMMON_DEFAULTS = {"extractor": None, "storage": None, "compress": False, "compression_method": 2,
                   "skip_bad": False}
# Keys that merge adds to feat_conf.yaml; accepted (and dropped) so a feat_conf.yaml is a config.
DERIVED_KEYS = ("modality", "dim", "num_layers", "frame_rate")
# Value types of the keys whose default does not tell (None, or "last" for layers); every other
# key takes its default's type (an int is also a valid float). None is accepted where the
# default is None and for NULLABLE_KEYS.
KEY_TYPES = {"extractor": (str,), "storage": (str,), "model_dir": (str,), "hf_repo": (str,), "layer_reduce": (str,),
             "layers": (int, str, list), "chunk_seconds": (int, float),
             "batch_seconds": (int, float)}
NULLABLE_KEYS = ("tag_pattern",)
TYPE_NAMES = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
              list: "a list"}


def extractor_class(name):
    if name not in EXTRACTORS:
        raise FeatureConfigError(f"unknown extractor {name!r}; choose one of {sorted(EXTRACTORS)}")
    module, cls = EXTRACTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def _check_types(conf, defaults, where):
    for key, value in conf.items():
        default = defaults[key]
        if value is None and (default is None or key in NULLABLE_KEYS):
            continue
        expected = KEY_TYPES.get(key) or ((int, float) if type(default) is float
                                          else (type(default),))
        if not isinstance(value, expected) or (isinstance(value, bool) and bool not in expected):
            names = " or ".join(TYPE_NAMES[t] for t in expected)
            raise FeatureConfigError(f"{where}{key}: expected {names}, got {value!r} "
                                     f"({type(value).__name__})")


def resolve_config(conf, overrides=None, source=None):
    """Return ``conf`` with ``overrides`` applied (None values ignored) and defaults filled in;
    unknown keys and values of the wrong type are errors naming ``source`` (a file) and the key."""
    where = f"{source}: " if source else ""
    if not isinstance(conf, dict):
        raise FeatureConfigError(f"{where}expected 'key: value' lines, got a {type(conf).__name__}")
    conf = {k: v for k, v in conf.items() if k not in DERIVED_KEYS}
    conf.update({k: v for k, v in (overrides or {}).items() if v is not None})
    if not conf.get("extractor"):
        raise FeatureConfigError(f"{where}missing 'extractor:' (one of {sorted(EXTRACTORS)})")
    if not isinstance(conf["extractor"], str):
        raise FeatureConfigError(f"{where}extractor: expected a string, got {conf['extractor']!r}")
    try:
        defaults = {**COMMON_DEFAULTS, **extractor_class(conf["extractor"]).DEFAULTS}
    except FeatureConfigError as e:
        raise FeatureConfigError(f"{where}{e}") from None
    unknown = sorted(set(conf) - set(defaults), key=str)
    if unknown:
        raise FeatureConfigError(f"{where}unknown key(s) {unknown} for extractor "
                                 f"{conf['extractor']!r}; allowed: {sorted(defaults)}")
    _check_types(conf, defaults, where)
    return {**defaults, **conf}


# Keys added after dumps of their extractor existed, with the value those dumps were made with;
# at that value a key stays out of a dump's fingerprint, so that adding it redoes no dump.
ADDED_KEYS = {"truncation_side": "right"}


def dump_identity(conf):
    """What of a resolved config identifies its dumps (their fingerprints): ``conf`` without
    the ``ADDED_KEYS`` at their old value."""
    return {k: v for k, v in conf.items() if k not in ADDED_KEYS or v != ADDED_KEYS[k]}


def load_config_file(path, overrides=None):
    """A feature config YAML file (conf/feats/*.yaml, a feat_conf.yaml), resolved and checked."""
    import yaml

    with open(path, encoding="utf-8") as f:
        try:
            conf = yaml.safe_load(f)
        except yaml.YAMLError as e:
            raise FeatureConfigError(f"{path}: not valid YAML ({e})") from None
    return resolve_config(conf or {}, overrides, source=path)


def derived_info(extractor):
    """What feat_conf.yaml adds to an extractor's config: modality, dim, num_layers, frame_rate."""
    return {key: getattr(extractor, key) for key in DERIVED_KEYS}


def build_extractor(conf, device="cpu", source=None):
    """Build the extractor a (possibly partial) config dict describes, on ``device``; ``source``
    (where the config came from) is named in errors."""
    conf = resolve_config(conf, source=source)
    return extractor_class(conf["extractor"])(conf, device=device)


def load_extractor(dump_dir_or_scp, device="cpu", overrides=None):
    """The extractor that wrote a dump dir (its feat_conf.yaml), e.g. for single-file inference."""
    from mser.io.storage import load_feat_conf

    conf = resolve_config(load_feat_conf(dump_dir_or_scp), overrides,
                          source=f"feat_conf.yaml of {dump_dir_or_scp}")
    return extractor_class(conf["extractor"])(conf, device=device)


_ENV_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")


def expand_path(path):
    """Expand ``~``, ``$VAR``, ``${VAR}`` and ``${VAR:-default}``; an unset variable is an error."""
    def substitute(match):
        name = match.group(1) or match.group(3)
        if name in os.environ:
            return os.environ[name]
        if match.group(2) is not None:
            return match.group(2)
        raise FeatureConfigError(f"path {path!r} uses ${name}, which is not set; export it "
                                 f"(e.g. export {name}=/data/models) or write the path out")
    return os.path.expanduser(_ENV_VAR.sub(substitute, path))


__all__ = ["EXTRACTORS", "FeatureConfigError", "build_extractor", "derived_info", "expand_path",
           "load_config_file", "load_extractor", "resolve_config"]
