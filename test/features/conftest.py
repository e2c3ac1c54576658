"""Shared fixtures: tiny data dirs with generated wavs, tiny random speech encoders on disk."""
import numpy as np
import pytest
import soundfile


@pytest.fixture
def make_data_dir(tmp_path):
    """make_data_dir({utt: seconds or None (empty wav) or "corrupt"}, rate=16000, texts=None)."""
    def make(durations, rate=16000, texts=None, name="data"):
        data, wavs = tmp_path / name, tmp_path / f"{name}_wavs"
        data.mkdir()
        wavs.mkdir()
        rng = np.random.default_rng(0)
        wav_scp, utt2spk = [], []
        for utt in sorted(durations):
            path = wavs / f"{utt}.wav"
            seconds = durations[utt]
            if seconds == "corrupt":
                path.write_bytes(b"RIFF\x00\x00not a wav file at all")
            else:
                t = np.arange(int((seconds or 0) * rate)) / rate
                wave = 0.3 * np.sin(2 * np.pi * 180 * t) + 0.05 * rng.standard_normal(len(t))
                soundfile.write(path, wave.astype(np.float32), rate, subtype="PCM_16")
            wav_scp.append(f"{utt} {path}\n")
            utt2spk.append(f"{utt} {utt.split('_')[0]}\n")
        (data / "wav.scp").write_text("".join(wav_scp))
        (data / "utt2spk").write_text("".join(utt2spk))
        texts = texts or {utt: "i am fine thank you" for utt in durations}
        (data / "text").write_text("".join(f"{u} {texts[u]}".rstrip() + "\n" for u in sorted(texts)))
        return str(data)
    return make


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
