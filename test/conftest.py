"""Fixtures for every test: nothing is downloaded, tiny random speech encoders built on disk."""
import os

import pytest


def save_tiny_wav2vec2(path, attention_mask=True, num_layers=3):
    """A random wav2vec2 with the real conv front end (320x down-sampling, 400-sample receptive
    field): layer-norm + attention mask ("large" style) or group norm without ("base" style)."""
    import torch
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=32, num_hidden_layers=num_layers, num_attention_heads=2,
                            intermediate_size=64, conv_dim=(16,) * 7, num_conv_pos_embeddings=16,
                            num_conv_pos_embedding_groups=2,
                            feat_extract_norm="layer" if attention_mask else "group",
                            do_stable_layer_norm=attention_mask)
    Wav2Vec2Model(config).eval().save_pretrained(path)
    Wav2Vec2FeatureExtractor(do_normalize=True, return_attention_mask=attention_mask,
                             sampling_rate=16000).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def w2v2_dir(tmp_path_factory):
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("w2v2_mask"), attention_mask=True)


@pytest.fixture(scope="session")
def w2v2_base_dir(tmp_path_factory):
    return save_tiny_wav2vec2(tmp_path_factory.mktemp("w2v2_nomask"), attention_mask=False)


def save_tiny_ctc_asr(path, letter="a"):
    """A random wav2vec2-CTC recogniser whose output bias makes every frame ``letter``: its
    transcript of any audio is exactly ``letter`` (CTC collapses repeats)."""
    import json

    import torch
    from transformers import (Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                              Wav2Vec2ForCTC, Wav2Vec2Processor)

    vocab = {"<pad>": 0, "|": 1, "a": 2, "b": 3}
    (path / "vocab.json").write_text(json.dumps(vocab))
    tokenizer = Wav2Vec2CTCTokenizer(str(path / "vocab.json"), pad_token="<pad>",
                                     word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(sampling_rate=16000, return_attention_mask=True)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, conv_dim=(8,) * 7, num_conv_pos_embeddings=8,
                            num_conv_pos_embedding_groups=2, vocab_size=len(vocab), pad_token_id=0)
    model = Wav2Vec2ForCTC(config)
    with torch.no_grad():
        model.lm_head.bias.fill_(-30.0)
        model.lm_head.bias[vocab[letter]] = 30.0
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="session")
def ctc_asr_dir(tmp_path_factory):
    """A tiny CTC recogniser that transcribes any audio as 'a'."""
    return save_tiny_ctc_asr(tmp_path_factory.mktemp("ctc_asr"))


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")


DEMO_RECIPE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "egs",
                           "synth_iemocap")


@pytest.fixture(scope="session")
def demo_corpus(tmp_path_factory):
    """A small demo corpus (20 utterances per session), prepared, with egs/synth_iemocap's
    fbank (without pitch) and MiniLM features: {"work", "data", "fbank", "minilm"} (the last two
    feats.scp). Needs espeak-ng (tools/install.sh)."""
    import shutil

    from mser.bin import prepare_iemocap
    from mser.data.synth import SynthOptions, generate_corpus
    from mser.features import dump, load_config_file

    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng for the demo corpus: run bash tools/install.sh")
    work = tmp_path_factory.mktemp("demo")
    generate_corpus(str(work / "corpus"), SynthOptions(utts_per_session=20), nj=2)
    prepare_iemocap.main(["--iemocap", str(work / "corpus"), str(work / "data")])
    corpus = {"work": work, "data": work / "data"}
    for name, overrides in (("fbank", {"use_pitch": False}), ("minilm", {})):
        conf = load_config_file(os.path.join(DEMO_RECIPE, "conf", "feats", f"{name}.yaml"),
                                overrides)
        dump.run_job(conf, str(work / "data" / "all"), str(work / name), 1, 1)
        dump.merge(conf, str(work / "data" / "all"), str(work / name), 1)
        corpus[name] = str(work / name / "feats.scp")
    return corpus


def train_demo(corpus, exp, config):
    """Train fold 1 of the demo corpus with ``config``, made smaller, for 12 epochs."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-m", "mser.bin.train", "--config", config, "--data-dir",
                    str(corpus["data"] / "fold1"), "--audio-feats", corpus["fbank"],
                    "--text-feats", corpus["minilm"], "--exp-dir", str(exp), "--epochs", "12",
                    "--warmup-steps", "10", "--min-steps", "0", "--max-frames", "2500",
                    "--lr", "0.002", "--d-model", "64", "--encoder-layers", "1",
                    "--decoder-layers", "1", "--encoder-ff-dim", "128", "--decoder-ff-dim", "128",
                    "--classifier-hidden", "64", "--verbose", "0"],
                   check=True, capture_output=True)


@pytest.fixture(scope="session")
def demo_model(demo_corpus):
    """A model trained on the demo corpus (conf/train.yaml, made smaller, fold 1, 12 epochs)
    and its data dir: {"model_dir", "data"}."""
    exp = demo_corpus["work"] / "exp"
    train_demo(demo_corpus, exp, os.path.join(DEMO_RECIPE, "conf", "train.yaml"))
    return {"model_dir": str(exp), "data": demo_corpus["data"]}


@pytest.fixture(scope="session")
def demo_dimensions_model(demo_corpus):
    """The same with the demo corpus's rated dimensions as regression heads beside the
    emotion classifier (conf/tuning/dimensions.yaml, IEMOCAP's)."""
    exp = demo_corpus["work"] / "exp_dimensions"
    train_demo(demo_corpus, exp, os.path.join(DEMO_RECIPE, "conf", "tuning", "dimensions.yaml"))
    return {"model_dir": str(exp), "data": demo_corpus["data"]}
