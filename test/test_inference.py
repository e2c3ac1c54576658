"""mser.inference and mser-infer on generated wavs: with and without a transcript, any sample
rate, the attention plot, export (with bundled pre-trained models) and --transcribe."""
import os

import numpy as np
import pytest
import soundfile
import torch
import yaml

from mser.bin import infer
from mser.features import build_extractor, derived_info
from mser.features.audio import resample
from mser.inference import EmotionRecognizer, export_model
from mser.nets import build_model, resolve_model_conf

CLASSES = ["neu", "hap", "ang", "sad"]
TINY_MODEL = {"d_model": 32, "encoder_layers": 1, "encoder_heads": 2, "encoder_ff_dim": 64,
              "num_queries": 3, "decoder_layers": 1, "decoder_heads": 2, "decoder_ff_dim": 64,
              "classifier_hidden": 16}
TEXT = "I can't believe you did that"


def feat_info(conf):
    """What training saves as audio_info / text_info: the resolved config plus derived keys."""
    extractor = build_extractor(conf)
    return {**extractor.conf, **derived_info(extractor)}


def save_model_dir(path, audio_conf, model_conf=None, seed=0):
    """A fold dir as training leaves it (config.yaml + best.pt), random weights."""
    os.makedirs(path, exist_ok=True)
    model_conf = resolve_model_conf({**TINY_MODEL, **(model_conf or {})})
    config = {"model_conf": model_conf, "classes": CLASSES,
              "audio_info": feat_info(audio_conf) if "audio" in model_conf["modalities"] else None,
              "text_info": (feat_info({"extractor": "hf_text"})
                            if "text" in model_conf["modalities"] else None)}
    torch.manual_seed(seed)
    model = build_model(model_conf, config["audio_info"], config["text_info"], len(CLASSES))
    torch.save({"model": model.state_dict(), "epoch": 3, "optimizer": {}},
               os.path.join(path, "best.pt"))
    with open(os.path.join(path, "config.yaml"), "w") as f:
        yaml.safe_dump(config, f)
    return str(path)


def tone(seconds=1.2, rate=16000, pitch=180.0):
    t = np.arange(int(seconds * rate)) / rate
    rng = np.random.default_rng(0)
    return (0.3 * np.sin(2 * np.pi * pitch * t * (1 + 0.3 * t))
            + 0.02 * rng.standard_normal(len(t))).astype(np.float32)


@pytest.fixture(scope="module")
def fbank_model(tmp_path_factory):
    return save_model_dir(tmp_path_factory.mktemp("fold1"), {"extractor": "fbank", "use_pitch": True})


@pytest.fixture(scope="module")
def recognizer(fbank_model):
    return EmotionRecognizer(fbank_model)


@pytest.fixture
def wav_path(tmp_path):
    path = tmp_path / "utt1.wav"
    soundfile.write(path, tone(rate=22050), 22050, subtype="PCM_16")
    return str(path)


def test_with_text_uses_both_modalities_and_without_runs_audio_only(recognizer):
    both = recognizer.predict(tone(), 16000, TEXT)
    audio = recognizer.predict(tone(), 16000, None)
    blank = recognizer.predict(tone(), 16000, "  ")
    assert both.modalities == ("audio", "text") and audio.modalities == ("audio",)
    assert blank.probabilities == audio.probabilities
    for p in (both, audio):
        assert list(p.probabilities) == CLASSES
        assert sum(p.probabilities.values()) == pytest.approx(1.0, abs=1e-5)
        assert p.emotion == max(p.probabilities, key=p.probabilities.get)
    assert not np.allclose(list(both.probabilities.values()), list(audio.probabilities.values()))


def test_prediction_equals_the_model_on_training_pipeline_features(recognizer):
    """Any input rate is resampled to the extractor's: the result is that of the model on the
    features the dump stage would have stored for the 16 kHz audio."""
    wave16k = tone()
    wave8k = resample(wave16k, 16000, 8000)
    prediction = recognizer.predict(wave8k, 8000, TEXT)
    audio = build_extractor(recognizer.config["audio_info"]).extract_wav(
        resample(wave8k, 8000, 16000), 16000)
    text = build_extractor(recognizer.config["text_info"]).extract_text(TEXT)
    with torch.no_grad():
        logits = recognizer.model(torch.from_numpy(audio)[None], torch.tensor([len(audio)]),
                                  torch.from_numpy(text)[None], torch.tensor([len(text)]))["logits"]
    expected = torch.softmax(logits, -1)[0].numpy()
    np.testing.assert_allclose(list(prediction.probabilities.values()), expected, atol=1e-5)


def test_attention_covers_frames_and_tokens(recognizer, tmp_path):
    prediction = recognizer.predict(tone(2.0), 16000, TEXT, return_attention=True)
    tokens = recognizer.extractors["text"].tokens(TEXT)
    assert tokens[0] == "[CLS]" and tokens[-1] == "[SEP]"
    assert prediction.text_tokens == tokens
    # fbank at 100 frames/s, conv subsampling by 4: about 2.0 * 100 / 4 acoustic positions.
    assert 45 <= prediction.audio_frames <= 50
    assert prediction.attention.shape == (3, prediction.audio_frames + len(tokens))
    np.testing.assert_allclose(prediction.attention.sum(axis=1), 1.0, atol=1e-5)
    audio_only = recognizer.predict(tone(2.0), 16000, None, return_attention=True)
    assert audio_only.attention.shape == (3, audio_only.audio_frames)


def test_cli_single_wav_with_and_without_text(fbank_model, wav_path, tmp_path, capsys):
    plot = tmp_path / "attention.png"
    infer.main(["--model-dir", fbank_model, wav_path, "--text", TEXT, "--attention-plot", str(plot)])
    infer.main(["--model-dir", fbank_model, wav_path])
    with_text, without = capsys.readouterr().out.splitlines()
    assert with_text.startswith("utt1 ") and with_text.endswith("(audio+text)")
    assert without.startswith("utt1 ") and without.endswith("(audio)")
    probs = [float(field.split("=")[1]) for field in with_text.split()[2:6]]
    assert sum(probs) == pytest.approx(1.0, abs=5e-3)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_batch_mode_falls_back_to_audio_only_per_utterance(fbank_model, tmp_path, capsys):
    wav_scp, text = tmp_path / "wav.scp", tmp_path / "text"
    lines = []
    for utt, rate in (("spk1_a", 16000), ("spk1_b", 8000), ("spk1_c", 44100)):
        soundfile.write(tmp_path / f"{utt}.wav", tone(rate=rate), rate)
        lines.append(f"{utt} {tmp_path / f'{utt}.wav'}\n")
    wav_scp.write_text("".join(lines))
    text.write_text(f"spk1_a {TEXT}\nspk1_b\n")   # spk1_b empty, spk1_c missing
    out = tmp_path / "emotions.txt"
    infer.main(["--model-dir", fbank_model, "--wav-scp", str(wav_scp), "--text-file", str(text),
                "--output", str(out)])
    written = out.read_text().splitlines()
    assert written == capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in written] == ["spk1_a", "spk1_b", "spk1_c"]
    assert [line.split()[-1] for line in written] == ["(audio+text)", "(audio)", "(audio)"]


def test_cli_errors_name_the_problem(fbank_model, tmp_path):
    with pytest.raises(SystemExit):
        infer.main(["--model-dir", fbank_model, "--wav-scp", "x", "--text", "hi"])
    with pytest.raises(FileNotFoundError, match="missing.wav"):
        infer.main(["--model-dir", fbank_model, str(tmp_path / "missing.wav")])
    with pytest.raises(FileNotFoundError, match="neither model.pt nor best.pt"):
        EmotionRecognizer(str(tmp_path))


def test_text_only_model_needs_a_transcript(tmp_path):
    model_dir = save_model_dir(tmp_path / "text_only", None, {"modalities": ["text"]})
    recognizer = EmotionRecognizer(model_dir)
    assert recognizer.predict(None, None, TEXT).modalities == ("text",)
    with pytest.raises(ValueError, match="give it a transcript"):
        recognizer.predict(tone(), 16000, None)


def test_attention_plot_needs_query_fusion(tmp_path):
    model_dir = save_model_dir(tmp_path / "concat", {"extractor": "fbank"}, {"fusion": "concat_pool"})
    with pytest.raises(ValueError, match="no emotion queries"):
        EmotionRecognizer(model_dir).predict(tone(), 16000, TEXT, return_attention=True)


def test_export_bundles_pretrained_models_and_predicts_the_same(w2v2_dir, tmp_path):
    import shutil

    ssl_copy = shutil.copytree(w2v2_dir, tmp_path / "w2v2")
    fold = save_model_dir(tmp_path / "fold1", {"extractor": "hf_ssl", "model_dir": str(ssl_copy),
                                               "layers": [1, 2]})
    expected = EmotionRecognizer(fold).predict(tone(), 16000, TEXT).probabilities
    exported = tmp_path / "exported"
    export_model(fold, str(exported), bundle_pretrained=True)
    shutil.rmtree(ssl_copy)   # the export must not need the original model dir
    state = torch.load(exported / "model.pt", weights_only=False)
    assert "optimizer" not in state and state["epoch"] == 3
    config = yaml.safe_load((exported / "config.yaml").read_text())
    assert config["audio_info"]["model_dir"] == "pretrained/audio"
    assert config["text_info"]["model_dir"] is None   # the packaged MiniLM is not copied
    got = EmotionRecognizer(str(exported)).predict(tone(), 16000, TEXT).probabilities
    assert got == pytest.approx(expected, abs=1e-6)


def save_tiny_ctc_asr(path, letter="a"):
    """A random wav2vec2-CTC recogniser whose output bias makes every frame ``letter``: its
    transcript of any audio is exactly ``letter`` (CTC collapses repeats)."""
    import json

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


def test_transcribe_with_a_local_asr_model(fbank_model, wav_path, tmp_path, capsys):
    asr_dir = save_tiny_ctc_asr(tmp_path)
    infer.main(["--model-dir", fbank_model, wav_path, "--transcribe", asr_dir])
    captured = capsys.readouterr()
    assert "utt1: transcript 'a'" in captured.err
    assert captured.out.strip().endswith("(audio+text)")
    with pytest.raises(SystemExit):
        infer.main(["--model-dir", fbank_model, wav_path, "--transcribe", asr_dir, "--text", "x"])
