"""Fixtures for every test: nothing is downloaded, tiny random speech encoders built on disk."""
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


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("TOKENIZERS_PARALLELISM", "false")
