"""hf_ssl on tiny random wav2vec2 models: layer selection, batching, chunking, errors."""
import numpy as np
import pytest
import torch
from transformers import Wav2Vec2Model

from mser.features import FeatureConfigError, build_extractor


def reference_hidden_states(model_dir, wave):
    """hidden_states of the full model on one normalised, unpadded utterance."""
    model = Wav2Vec2Model.from_pretrained(model_dir).eval()
    wave = (wave - wave.mean()) / np.sqrt(wave.var() + 1e-7)
    with torch.no_grad():
        out = model(torch.from_numpy(wave)[None], output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


def random_waves(*seconds, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(int(s * 16000)).astype(np.float32) * 0.1 for s in seconds]


@pytest.mark.parametrize("layers, reduce, expected", [
    (2, None, lambda hs: hs[2]),
    ("last", None, lambda hs: hs[3]),
    (0, None, lambda hs: hs[0]),
    ([1, 3], None, lambda hs: np.concatenate([hs[1], hs[3]], axis=1)),
    ("1-2", "mean", lambda hs: (hs[1] + hs[2]) / 2),
    ("1-2", None, lambda hs: np.concatenate([hs[1], hs[2]], axis=1)),
])
def test_layer_selection(w2v2_dir, layers, reduce, expected):
    wave, = random_waves(1.3)
    extractor = build_extractor({"extractor": "hf_ssl", "model_dir": w2v2_dir, "layers": layers,
                                 "layer_reduce": reduce})
    feats = extractor.extract_wav(wave, 16000)
    want = expected(reference_hidden_states(w2v2_dir, wave))
    assert feats.shape == want.shape == (extractor.num_frames(len(wave)),
                                         32 * extractor.num_layers)
    np.testing.assert_allclose(feats, want, atol=1e-5)


def test_layer_out_of_range(w2v2_dir):
    with pytest.raises(FeatureConfigError, match="0..3"):
        build_extractor({"extractor": "hf_ssl", "model_dir": w2v2_dir, "layers": [1, 4]})


@pytest.mark.parametrize("fixture", ["w2v2_dir", "w2v2_base_dir"])
def test_batching_equals_one_at_a_time(request, fixture):
    model_dir = request.getfixturevalue(fixture)
    waves = random_waves(1.0, 2.37, 0.6, 1.0, 3.1)
    extractor = build_extractor({"extractor": "hf_ssl", "model_dir": model_dir,
                                 "layers": [1, 3], "batch_seconds": 20})
    batched = extractor.extract_batch(waves)
    for wave, feats in zip(waves, batched):
        single = extractor.extract_batch([wave])[0]
        assert feats.shape == single.shape == (extractor.num_frames(len(wave)), 64)
        np.testing.assert_allclose(feats, single, atol=1e-4)


def test_model_without_attention_mask_is_never_padded(w2v2_base_dir, monkeypatch):
    extractor = build_extractor({"extractor": "hf_ssl", "model_dir": w2v2_base_dir,
                                 "batch_seconds": 100})
    seen = []
    forward = extractor.model.forward
    monkeypatch.setattr(extractor.model, "forward",
                        lambda input_values, **kw: seen.append((input_values.shape, kw)) or
                        forward(input_values, **kw))
    extractor.extract_batch(random_waves(1.0, 2.0, 1.0, 0.5))
    assert sorted(shape for shape, _ in seen) == [(1, 8000), (1, 32000), (2, 16000)]
    assert all("attention_mask" not in kw for _, kw in seen)


def test_chunking_keeps_frame_count_and_stays_close(w2v2_dir):
    wave, = random_waves(9.3)
    whole = build_extractor({"extractor": "hf_ssl", "model_dir": w2v2_dir}).extract_wav(wave, 16000)
    chunked_extractor = build_extractor({"extractor": "hf_ssl", "model_dir": w2v2_dir,
                                         "chunk_seconds": 3, "chunk_overlap_seconds": 1})
    chunked = chunked_extractor.extract_wav(wave, 16000)
    assert chunked.shape == whole.shape == (chunked_extractor.num_frames(len(wave)), 32)
    # Not equal: self-attention spans the chunk, not the utterance. For this tiny random model
    # every stitched frame stays within cosine 0.999 of the whole-utterance frame (measured:
    # 0.99999); trained models differ more at chunk edges, hence the overlap.
    cosine = (chunked * whole).sum(1) / np.linalg.norm(chunked, axis=1) / np.linalg.norm(whole, axis=1)
    assert cosine.min() > 0.999, cosine.min()


def test_chunk_layout_covers_the_utterance_once(w2v2_dir):
    extractor = build_extractor({"extractor": "hf_ssl", "model_dir": w2v2_dir,
                                 "chunk_seconds": 2, "chunk_overlap_seconds": 0.5})
    # Features that are the global frame index: stitching must give 0..T-1 in order.
    for seconds in (1.9, 2.0, 2.01, 5.5, 7.77):
        num_samples = int(seconds * 16000)
        chunks = [(s, np.arange(s // extractor.hop, s // extractor.hop + extractor.num_frames(
            min(extractor.chunk_samples, num_samples - s)))[:, None])
            for s in extractor._chunk_starts(num_samples)]
        stitched = extractor._stitch(num_samples, chunks)[:, 0]
        np.testing.assert_array_equal(stitched, np.arange(extractor.num_frames(num_samples)))


def test_missing_model_dir_explains_offline_download(tmp_path):
    with pytest.raises(FeatureConfigError, match="huggingface-cli download facebook/hubert"):
        build_extractor({"extractor": "hf_ssl", "model_dir": str(tmp_path / "none"),
                         "hf_repo": "facebook/hubert-large-ll60k"})
    with pytest.raises(FeatureConfigError, match="MSER_TEST_UNSET"):
        build_extractor({"extractor": "hf_ssl", "model_dir": "$MSER_TEST_UNSET/x"})


def test_whisper_encoder_is_trimmed_to_the_audio(tmp_path):
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    config = WhisperConfig(d_model=16, encoder_layers=2, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80,
                           max_source_positions=1500)
    WhisperModel(config).save_pretrained(tmp_path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path)
    extractor = build_extractor({"extractor": "hf_ssl", "model_dir": str(tmp_path),
                                 "layers": [1, 2]})
    waves = random_waves(1.0, 2.5)
    feats = extractor.extract_batch(waves)
    assert [f.shape for f in feats] == [(50, 32), (125, 32)]
    assert extractor.frame_rate == 50


def test_whisper_utterance_window_slices_the_positional_embeddings(tmp_path):
    """whisper_window: utterance runs the encoder on the utterance's own log-mel frames; its
    layer code equals transformers' on the padded 30 s input."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    from mser.features.hf_ssl import whisper_encoder_hidden_states

    config = WhisperConfig(d_model=16, encoder_layers=2, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2,
                           encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=80)
    WhisperModel(config).save_pretrained(tmp_path)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(tmp_path)
    encoder = WhisperModel.from_pretrained(tmp_path).get_encoder().eval()
    mel = torch.randn(2, 80, 3000)
    with torch.inference_mode():
        want = encoder(mel, output_hidden_states=True).hidden_states
        got = whisper_encoder_hidden_states(encoder, mel)
    assert len(got) == len(want) == 3
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)

    conf = {"extractor": "hf_ssl", "model_dir": str(tmp_path), "layers": [0, 2]}
    utterance = build_extractor({**conf, "whisper_window": "utterance"})
    padded = build_extractor(conf)
    waves = random_waves(1.0, 2.5, 2.5, seed=4)
    feats = utterance.extract_batch(waves)
    assert [f.shape for f in feats] == [(50, 32), (125, 32), (125, 32)]
    fe = WhisperFeatureExtractor.from_pretrained(tmp_path)
    mel = fe(waves[0], sampling_rate=16000, padding="longest", truncation=False,
             return_tensors="pt").input_features
    assert mel.shape == (1, 80, 100)
    with torch.inference_mode():
        alone = whisper_encoder_hidden_states(encoder, mel)
    np.testing.assert_allclose(feats[0], torch.cat([alone[0], alone[2]], -1)[0].numpy(),
                               atol=1e-5)
    # a deviation: the same layers differ from the padded window's (attention sees no padding)
    assert not np.allclose(feats[1], padded.extract_batch([waves[1]])[0], atol=1e-3)
    with pytest.raises(FeatureConfigError, match="whisper_window: 'short'"):
        build_extractor({**conf, "whisper_window": "short"})


def test_channels_last_cnn_equals_the_original(w2v2_dir, w2v2_base_dir):
    """The CPU fast path of the layer-norm ("large" style) CNN front end computes the same
    features; group-norm ("base" style) front ends are left as they are."""
    from mser.features.hf_ssl import ChannelsLastFeatureEncoder

    model = Wav2Vec2Model.from_pretrained(w2v2_dir).eval()
    assert ChannelsLastFeatureEncoder.supports(model.feature_extractor)
    waves = torch.from_numpy(np.stack(random_waves(0.7, 0.7, seed=3)))
    with torch.inference_mode():
        fast = ChannelsLastFeatureEncoder(model.feature_extractor)(waves)
        want = model.feature_extractor(waves)
    assert fast.shape == want.shape == (2, 16, 34)
    torch.testing.assert_close(fast, want, atol=1e-5, rtol=1e-4)
    base = Wav2Vec2Model.from_pretrained(w2v2_base_dir)
    assert not ChannelsLastFeatureEncoder.supports(base.feature_extractor)


@pytest.mark.parametrize("kernels, strides, bias", [
    ((10, 3, 2), (5, 2, 2), True),   # taps in groups of 5+5, 2+1 and 2 (one matmul, no copy)
    ((7, 5, 2), (3, 2, 3), False),   # groups of 3+3+1 and 2+2+1; kernel 2 < stride 3
])
def test_channels_last_cnn_tap_groups(kernels, strides, bias):
    """Strided convolutions as sums of tap-group matmuls over strided views: the same output
    for every kernel/stride relation, with and without conv bias."""
    from transformers import Wav2Vec2Config

    from mser.features.hf_ssl import ChannelsLastFeatureEncoder

    torch.manual_seed(0)
    config = Wav2Vec2Config(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32, conv_dim=(8, 12, 16), conv_kernel=kernels,
                            conv_stride=strides, conv_bias=bias, feat_extract_norm="layer")
    encoder = Wav2Vec2Model(config).eval().feature_extractor
    waves = torch.from_numpy(np.stack(random_waves(0.31, 0.31, seed=4)))
    waves[1, 3000:] = 0  # a padded row
    with torch.inference_mode():
        fast = ChannelsLastFeatureEncoder(encoder)(waves)
        want = encoder(waves)
    assert fast.shape == want.shape
    torch.testing.assert_close(fast, want, atol=1e-5, rtol=1e-4)
