"""mser.inference and mser-infer on generated wavs: with and without a transcript, any sample
rate, the attention plot, export (with bundled pre-trained models), --transcribe, bad inputs
(per-utterance errors), empty transcripts as in the decoding stage, and long recordings;
mser-export-onnx: the exported graph gives torch's calibrated posteriors without torch."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile
import torch
import yaml

import mser.features.dump as dump
from mser.bin import infer
from mser.bin.decode import decode
from mser.features import build_extractor, derived_info, resolve_config
from mser.features.audio import resample
from mser.inference import EmotionRecognizer, InputError, export_model
from mser.nets import build_model, load_model, resolve_model_conf
from mser.utils.calibration import softmax

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
    model = build_model(model_conf, {"audio": config["audio_info"], "text": config["text_info"]},
                        len(CLASSES))
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
        logits = recognizer.model({"audio": torch.from_numpy(audio)[None],
                                   "audio_lens": torch.tensor([len(audio)]),
                                   "text": torch.from_numpy(text)[None],
                                   "text_lens": torch.tensor([len(text)])})["logits"]
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


def test_cli_errors_name_the_problem(fbank_model, wav_path, tmp_path, capsys):
    """One line naming the input and the fix, no traceback: a missing wav, a dir that is no
    model dir, a model dir without its config; a missing file in a wav.scp is that utterance's
    error (not libsndfile's "System error.")."""
    with pytest.raises(SystemExit):
        infer.main(["--model-dir", fbank_model, "--wav-scp", "x", "--text", "hi"])
    for model_dir, wav, message in (
            (fbank_model, str(tmp_path / "missing.wav"), "missing.wav: no such file"),
            (str(tmp_path), wav_path, "neither model.pt nor best.pt"),
            (str(tmp_path / "weights_only"), wav_path, "config.yaml: not found")):
        os.makedirs(tmp_path / "weights_only", exist_ok=True)
        (tmp_path / "weights_only" / "best.pt").touch()
        with pytest.raises(SystemExit) as exit_info:
            infer.main(["--model-dir", model_dir, wav])
        assert str(exit_info.value).startswith("mser-infer: ") and message in str(exit_info.value)
    with pytest.raises(FileNotFoundError, match="neither model.pt nor best.pt"):
        EmotionRecognizer(str(tmp_path))
    scp = tmp_path / "wav.scp"
    scp.write_text(f"gone {tmp_path / 'gone.wav'}\nok {wav_path}\n")
    assert infer.main(["--model-dir", fbank_model, "--wav-scp", str(scp)]) == 1
    out = capsys.readouterr().out
    assert "gone ERROR" in out and "no such file; fix the path in wav.scp" in out
    assert "ok " in out and "System error" not in out


def test_integer_and_multichannel_arrays_are_read_as_the_file_would_be(recognizer):
    """predict() scales integer PCM (int16, int32, uint8) to [-1, 1] and averages channels given
    as (n, c) or (c, n): the same prediction as the float mono waveform."""
    from mser.inference import InputError

    mono = np.round(tone() * 32767) / 32768  # exactly representable as int16
    expected = recognizer.predict(mono.astype(np.float32), 16000).probabilities
    as_int16 = (mono * 32768).astype(np.int16)
    for waveform in (as_int16, as_int16.astype(np.int32) << 16,
                     np.stack([mono, mono], axis=1), np.stack([mono, mono])):
        got = recognizer.predict(waveform, 16000).probabilities
        assert got == pytest.approx(expected, abs=1e-5)
    uint8 = (np.round(mono * 127) + 128).astype(np.uint8)
    from_uint8 = recognizer.predict(((uint8.astype(np.float32) - 128) / 128), 16000)
    assert recognizer.predict(uint8, 16000).probabilities == pytest.approx(
        from_uint8.probabilities, abs=1e-5)
    with pytest.raises(InputError, match="shape"):
        recognizer.predict(np.zeros((2, 3, 16000), np.float32), 16000)


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


def test_export_bundles_pretrained_models_and_predicts_the_same(w2v2_dir, tmp_path, caplog):
    import logging
    import shutil

    caplog.set_level(logging.INFO)

    ssl_copy = shutil.copytree(w2v2_dir, tmp_path / "w2v2")
    fold = save_model_dir(tmp_path / "fold1", {"extractor": "hf_ssl", "model_dir": str(ssl_copy),
                                               "layers": [1, 2]})
    expected = EmotionRecognizer(fold).predict(tone(), 16000, TEXT).probabilities
    exported = tmp_path / "exported"
    export_model(fold, str(exported), bundle_pretrained=True)
    shutil.rmtree(ssl_copy)   # the export must not need the original model dir
    state = torch.load(exported / "model.pt", weights_only=True)
    assert "optimizer" not in state and state["epoch"] == 3
    config = yaml.safe_load((exported / "config.yaml").read_text())
    assert config["audio_info"]["model_dir"] == "pretrained/audio"
    assert config["text_info"]["model_dir"] is None   # the packaged MiniLM is not copied
    assert "nothing to copy for the text features" in caplog.text  # and the log says so
    got = EmotionRecognizer(str(exported)).predict(tone(), 16000, TEXT).probabilities
    assert got == pytest.approx(expected, abs=1e-6)


def test_transcribe_with_a_local_asr_model(fbank_model, wav_path, ctc_asr_dir, capsys):
    infer.main(["--model-dir", fbank_model, wav_path, "--transcribe", ctc_asr_dir])
    captured = capsys.readouterr()
    assert "utt1: transcript 'a'" in captured.err
    assert captured.out.strip().endswith("(audio+text)")
    with pytest.raises(SystemExit):
        infer.main(["--model-dir", fbank_model, wav_path, "--transcribe", ctc_asr_dir,
                    "--text", "x"])


def test_transcribe_accepts_packaged_model_names(fbank_model, wav_path, ctc_asr_dir, capsys,
                                                 monkeypatch):
    """--transcribe packaged:NAME resolves through the packaged-model cache (the transformers
    conversion, stood in for by the tiny CTC dir: the real conversion is tested in
    test/bin/test_transcribe.py, the CTranslate2 engine in test/test_asr.py)."""
    from mser import asr
    from mser.features import ct2_whisper

    resolved = []
    monkeypatch.setattr(asr, "ct2_whisper_dir", lambda model_dir: None)
    monkeypatch.setattr(ct2_whisper, "packaged_model_dir",
                        lambda name: resolved.append(name) or ctc_asr_dir)
    infer.main(["--model-dir", fbank_model, wav_path, "--transcribe", "packaged:whisper-tiny.en"])
    assert resolved == ["whisper-tiny.en"]
    assert "utt1: transcript 'a'" in capsys.readouterr().err


def write_data_dir(path, wavs, texts=None):
    """A data dir of ``wavs`` ({utt: waveform at 16 kHz, or a path}) and ``texts``."""
    path.mkdir()
    scp = []
    for utt, wave in wavs.items():
        if not isinstance(wave, str):
            soundfile.write(path / f"{utt}.wav", wave, 16000, subtype="PCM_16")
            wave = str(path / f"{utt}.wav")
        scp.append(f"{utt} {wave}\n")
    (path / "wav.scp").write_text("".join(scp))
    (path / "utt2spk").write_text("".join(f"{u} {u.split('_')[0]}\n" for u in wavs))
    if texts is not None:
        (path / "text").write_text("".join(f"{u} {t}".rstrip() + "\n" for u, t in texts.items()))
    return path


def read_lines(text):
    return {line.split()[0]: line.split(maxsplit=1)[1] for line in text.splitlines()}


def test_batch_reports_bad_utterances_and_writes_the_rest(fbank_model, tmp_path, capsys):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00not a wav file")
    data = write_data_dir(tmp_path / "data", {
        "spk1_a": tone(), "spk1_b": str(tmp_path / "missing.wav"), "spk1_c": str(corrupt),
        "spk1_d": tone(0.02), "spk1_e": tone(0.025), "spk1_f": tone(0.5)})
    out = tmp_path / "emotions.txt"
    status = infer.main(["--model-dir", fbank_model, "--data-dir", str(data), "--output", str(out)])
    captured = capsys.readouterr()
    assert status == 1
    assert out.read_text() == captured.out
    lines = read_lines(out.read_text())
    assert list(lines) == ["spk1_a", "spk1_b", "spk1_c", "spk1_d", "spk1_e", "spk1_f"]
    assert lines["spk1_b"].startswith(f"ERROR {tmp_path / 'missing.wav'}: cannot read audio")
    assert lines["spk1_c"].startswith(f"ERROR {corrupt}: cannot read audio")
    assert lines["spk1_d"] == ("ERROR audio too short (0.020 s) for a single feature frame; "
                               "the features need at least 0.025 s")
    for utt in ("spk1_a", "spk1_e", "spk1_f"):
        assert lines[utt].endswith("(audio)") and lines[utt].split()[0] in CLASSES
    assert f"spk1_d: {lines['spk1_d'][6:]}" in captured.err
    assert "3 of 6 utterance(s) failed (lines '<utt> ERROR <reason>')" in captured.err
    with pytest.raises(InputError, match=r"too short \(0.010 s\).*at least 0.025 s"):
        EmotionRecognizer(fbank_model).predict(tone(0.02), 32000)


def test_non_utf8_transcripts_name_the_input_and_encoding(fbank_model, wav_path, tmp_path, capsys):
    latin1 = b"caf\xe9 au lait".decode("utf-8", "surrogateescape")  # how Python passes argv
    assert infer.main(["--model-dir", fbank_model, wav_path, "--text", latin1]) == 1
    captured = capsys.readouterr()
    assert captured.out == ("utt1 ERROR transcript is not UTF-8 (byte 0xe9 at character 3); give "
                            "it in UTF-8, e.g. convert with iconv -f latin1 -t utf-8\n")
    assert "utt1: transcript is not UTF-8" in captured.err
    data = write_data_dir(tmp_path / "data", {"spk1_a": tone(), "spk1_b": tone()})
    (data / "text").write_bytes(b"spk1_a fine\nspk1_b caf\xe9\n")
    with pytest.raises(SystemExit, match=rf"^mser-infer: {data}/text:2: not UTF-8 \(byte 0xe9"):
        infer.main(["--model-dir", fbank_model, "--data-dir", str(data)])


def dump_features(conf, data, out):
    conf = resolve_config(conf)
    dump.run_job(conf, str(data), str(out), 1, 1)
    dump.merge(conf, str(data), str(out), 1)
    return str(out / "feats.scp")


def test_decode_and_infer_share_the_empty_transcript_rule(tmp_path, capsys):
    """An empty or tags-only transcript runs audio-only in both; mser-infer on the raw inputs
    reproduces the decoding stage on the dumped features, for every kind of transcript."""
    fold = save_model_dir(tmp_path / "fold1", {"extractor": "fbank", "use_pitch": True})
    texts = {"spk1_a": TEXT, "spk1_b": "", "spk1_c": "[LAUGHTER]", "spk1_d": "[BREATHING] oh no",
             "spk1_e": "<noise>  [LAUGHTER] "}
    data = write_data_dir(tmp_path / "test", {u: tone(0.6 + 0.2 * i, pitch=150 + 20 * i)
                                              for i, u in enumerate(texts)}, texts)
    (data / "utt2emo").write_text("".join(f"{u} {CLASSES[i % 4]}\n" for i, u in enumerate(texts)))
    (data / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    config = yaml.safe_load(open(f"{fold}/config.yaml"))
    config["audio_feats"] = dump_features(config["audio_info"], data, tmp_path / "dump_fbank")
    config["text_feats"] = dump_features(config["text_info"], data, tmp_path / "dump_text")
    (tmp_path / "fold1" / "config.yaml").write_text(yaml.safe_dump(config))
    decode(fold, str(data))
    both = {u: np.array(p.split(), dtype=float) for u, p in
            read_lines(open(f"{fold}/decode/both/posteriors").read()).items()}
    audio_only = {u: np.array(p.split(), dtype=float) for u, p in
                  read_lines(open(f"{fold}/decode/audio_only/posteriors").read()).items()}
    capsys.readouterr()
    assert infer.main(["--model-dir", fold, "--data-dir", str(data)]) == 0
    lines = read_lines(capsys.readouterr().out)
    assert {u: line.split()[-1] for u, line in lines.items()} == {
        "spk1_a": "(audio+text)", "spk1_b": "(audio)", "spk1_c": "(audio)",
        "spk1_d": "(audio+text)", "spk1_e": "(audio)"}
    for utt, line in lines.items():
        probs = [float(field.split("=")[1]) for field in line.split()[1:-1]]
        np.testing.assert_allclose(probs, both[utt], atol=6e-4, err_msg=utt)
        same_as_audio_only = np.allclose(both[utt], audio_only[utt], atol=1e-6)
        assert same_as_audio_only == line.endswith("(audio)"), utt


MEMORY_PROBE = """
import resource, sys
import numpy as np
from mser.inference import EmotionRecognizer
recognizer = EmotionRecognizer(sys.argv[1])
noise = np.random.default_rng(0).uniform(-0.1, 0.1, int(float(sys.argv[2]) * 16000))
recognizer.predict(noise[:16000].astype(np.float32), 16000)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
recognizer.predict(noise.astype(np.float32), 16000)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024)
"""


def test_long_recording_memory_grows_linearly(tmp_path):
    """Peak memory of a 200 s recording over a 1 s one (a fresh process; not a timed test).
    The encoders' T x T attention weights alone would take 800 MB (5000 positions, 4 heads);
    the features and activations take a few tens of MB (bench/bench_infer_memory.py)."""
    import subprocess
    import sys

    fold = save_model_dir(tmp_path / "fold1", {"extractor": "fbank"},
                          {"modalities": ["audio"], "encoder_heads": 4})
    out = subprocess.run([sys.executable, "-c", MEMORY_PROBE, fold, "200"], capture_output=True,
                         text=True, check=True)
    assert float(out.stdout) < 150, out.stdout


def test_probabilities_are_temperature_scaled_per_condition_and_exported(tmp_path):
    """With a calibration.yaml the recogniser divides the logits by the temperature of the
    condition it ran (both / audio_only), so the probabilities change and the emotion does not;
    an export carries the calibration; another checkpoint of the dir is not calibrated."""
    from mser.utils.calibration import calibration_summary, save_calibration

    fold = save_model_dir(tmp_path / "fold1", {"extractor": "fbank", "use_pitch": False})
    raw = {text: EmotionRecognizer(fold).predict(tone(), 16000, text) for text in (TEXT, None)}
    assert not raw[TEXT].calibrated
    summary = calibration_summary(np.zeros((4, 4)), np.arange(4), 1.0)
    save_calibration(fold, {"both": 0.25, "audio_only": 4.0},
                     {"both": summary, "audio_only": summary}, 4)
    exported = tmp_path / "exported"
    export_model(fold, str(exported))
    for model_dir in (fold, str(exported)):
        recognizer = EmotionRecognizer(model_dir)
        for text, temperature in ((TEXT, 0.25), (None, 4.0)):
            got = recognizer.predict(tone(), 16000, text)
            assert got.calibrated and got.emotion == raw[text].emotion
            log_raw = np.log([raw[text].probabilities[c] for c in CLASSES])
            expected = np.exp(log_raw / temperature - np.logaddexp.reduce(log_raw / temperature))
            np.testing.assert_allclose([got.probabilities[c] for c in CLASSES], expected,
                                       rtol=1e-4)
    checkpoints = tmp_path / "fold1" / "checkpoints"
    checkpoints.mkdir()
    torch.save(torch.load(os.path.join(fold, "best.pt"), weights_only=True),
               checkpoints / "epoch3.pt")
    other = EmotionRecognizer(fold, checkpoint="checkpoints/epoch3.pt").predict(tone(), 16000, TEXT)
    assert not other.calibrated
    assert other.probabilities == pytest.approx(raw[TEXT].probabilities, abs=1e-6)


# mser-export-onnx

TEMPERATURES = {"both": 1.7, "audio_only": 0.8, "text_only": 2.5}


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A tiny audio + text model dir (frames averaged 4 at a time, the probe head on) with a
    calibration.yaml, exported once."""
    pytest.importorskip("onnxruntime", reason="the onnx extra: pip install -e '.[onnx]'")
    pytest.importorskip("onnxscript", reason="the onnx extra: pip install -e '.[onnx]'")
    model_dir = save_model_dir(tmp_path_factory.mktemp("fold1"),
                               {"extractor": "fbank", "use_pitch": True},
                               {"probe_head": True, "audio_subsampling": 4, "projection": "pool"})
    with open(os.path.join(model_dir, "calibration.yaml"), "w") as f:
        yaml.safe_dump({"conditions": {c: {"temperature": t} for c, t in TEMPERATURES.items()}},
                       f)
    result = subprocess.run([sys.executable, "-m", "mser.bin.export_onnx", "--model-dir",
                             model_dir], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "onnxruntime = torch within" in result.stderr
    return model_dir, os.path.join(model_dir, "onnx")


def torch_posteriors(model_dir, samples):
    """What mser-infer computes: each sample alone, the streams it has, its condition's T."""
    model, _ = load_model(model_dir)
    out = []
    for sample in samples:
        streams = [m for m in ("audio", "text") if sample.get(m) is not None]
        batch = {}
        for m in streams:
            batch[m] = torch.from_numpy(sample[m])[None]
            batch[f"{m}_lens"] = torch.tensor([len(sample[m])])
        with torch.no_grad():
            logits = model(batch, streams=streams)["logits"].numpy()
        condition = "both" if len(streams) == 2 else f"{streams[0]}_only"
        out.append(softmax(logits, TEMPERATURES[condition])[0])
    return np.stack(out)


def test_onnxruntime_gives_torchs_calibrated_posteriors(exported):
    from mser.utils.onnx_model import OnnxEmotionModel

    model_dir, export_dir = exported
    runner = OnnxEmotionModel(os.path.join(export_dir, "model.onnx"))
    assert runner.classes == CLASSES and list(runner.streams) == ["audio", "text"]
    audio_dim, text_dim = runner.streams["audio"]["dim"], runner.streams["text"]["dim"]
    assert runner.streams["audio"]["min_frames"] == 5 and runner.temperatures == TEMPERATURES
    assert runner.feat_confs["audio"]["extractor"] == "fbank"
    rng = np.random.default_rng(1)
    # one batch of mixed lengths and conditions, a sample shorter than min_frames among them
    samples = [{"audio": rng.standard_normal((n, audio_dim), dtype=np.float32),
                "text": rng.standard_normal((k, text_dim), dtype=np.float32) if k else None}
               for n, k in ((300, 12), (3, 4), (57, 0), (120, 2))]
    samples.append({"audio": None, "text": rng.standard_normal((9, text_dim), dtype=np.float32)})
    probs, conditions = runner.predict(samples)
    assert conditions == ["both", "both", "audio_only", "both", "text_only"]
    np.testing.assert_allclose(probs, torch_posteriors(model_dir, samples), atol=1e-5)
    with pytest.raises(ValueError, match=r"sample 0: audio features of shape \(10, 3\)"):
        runner.predict([{"audio": np.zeros((10, 3), np.float32)}])
    with pytest.raises(ValueError, match="sample 1: none of the model's streams"):
        runner.predict([samples[0], {"text": None}])


def test_the_onnx_recognizer_gives_the_torch_recognizers_prediction(exported, wav_path):
    """From a wav at any rate and a transcript: fbank computed as in training, the MiniLM
    encoder and the model as graphs; an empty transcript runs audio only, as in torch."""
    from mser.onnx_inference import OnnxEmotionRecognizer

    model_dir, export_dir = exported
    onnx_recognizer, torch_recognizer = OnnxEmotionRecognizer(export_dir), EmotionRecognizer(model_dir)
    waveform, rate = soundfile.read(wav_path, dtype="float32")
    for inputs in ((waveform, rate, TEXT), (waveform, rate, "[LAUGHTER]"), (None, None, TEXT)):
        got, expected = onnx_recognizer.predict(*inputs), torch_recognizer.predict(*inputs)
        assert got.modalities == expected.modalities and got.calibrated
        for c in CLASSES:
            assert got.probabilities[c] == pytest.approx(expected.probabilities[c], abs=1e-4)
    with pytest.raises(InputError, match="audio too short"):
        onnx_recognizer.predict(np.zeros(100, np.float32), 16000, None)


def test_mser_infer_onnxruntime_backend_never_imports_torch(exported, wav_path, tmp_path):
    """mser-infer --backend onnxruntime with torch made unimportable: the same line as torch's."""
    model_dir, export_dir = exported
    code = ("import sys\n"
            "class NoTorch:  # any import of torch fails\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('torch is blocked in this test')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "from mser.bin import infer\nsys.exit(infer.main(sys.argv[1:]))\n")
    args = [wav_path, "--text", TEXT]
    onnx_run = subprocess.run([sys.executable, "-c", code, "--backend", "onnxruntime",
                               "--model-dir", export_dir, *args], capture_output=True, text=True)
    assert onnx_run.returncode == 0, onnx_run.stderr[-2000:]
    torch_run = subprocess.run([sys.executable, "-m", "mser.bin.infer", "--model-dir", model_dir,
                                *args], capture_output=True, text=True)
    got, expected = onnx_run.stdout.split(), torch_run.stdout.split()
    assert got[0] == expected[0] and got[1] == expected[1] and got[-1] == "(audio+text)"
    bad = subprocess.run([sys.executable, "-m", "mser.bin.infer", "--backend", "onnxruntime",
                          "--model-dir", model_dir, *args], capture_output=True, text=True)
    assert bad.returncode and "not an ONNX export" in bad.stderr
    refused = subprocess.run([sys.executable, "-m", "mser.bin.infer", "--backend", "onnxruntime",
                              "--model-dir", export_dir, wav_path, "--attention-plot", "a.png"],
                             capture_output=True, text=True)
    assert refused.returncode and "--attention-plot needs the torch backend" in refused.stderr


ONNX_VENV = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tools",
                         "venv-onnx")


@pytest.mark.skipif(not os.path.exists(os.path.join(ONNX_VENV, "bin", "mser-infer")),
                    reason="no tools/venv-onnx: bash tools/install.sh makes it")
def test_torch_free_venv_runs_an_export(exported, wav_path):
    """tools/venv-onnx (install.sh: setup.py's ONNX_RUNTIME_REQUIRES, mser --no-deps) has no
    torch, and its mser-infer gives the torch backend's emotion and probability for a wav."""
    model_dir, export_dir = exported
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    no_torch = subprocess.run([os.path.join(ONNX_VENV, "bin", "python"), "-c", "import torch"],
                              capture_output=True, text=True, env=env)
    assert no_torch.returncode and "No module named 'torch'" in no_torch.stderr
    args = [wav_path, "--text", TEXT]
    onnx_run = subprocess.run([os.path.join(ONNX_VENV, "bin", "mser-infer"), "--backend",
                               "onnxruntime", "--model-dir", export_dir, *args],
                              capture_output=True, text=True, env=env)
    assert onnx_run.returncode == 0, onnx_run.stderr[-2000:]
    torch_run = subprocess.run([sys.executable, "-m", "mser.bin.infer", "--model-dir", model_dir,
                                *args], capture_output=True, text=True, check=True)
    got, expected = onnx_run.stdout.split(), torch_run.stdout.split()
    assert got[:2] == expected[:2] and got[-1] == "(audio+text)"


def test_metadata_names_the_source_and_a_missing_dir_is_clear(exported, tmp_path):
    import onnx

    model_dir, export_dir = exported
    meta = {p.key: p.value for p in onnx.load(os.path.join(export_dir, "model.onnx")).metadata_props}
    assert json.loads(meta["mser_source"])["checkpoint"] == "best.pt"
    bad = subprocess.run([sys.executable, "-m", "mser.bin.export_onnx", "--model-dir",
                          str(tmp_path / "nothing")], capture_output=True, text=True)
    assert bad.returncode and "neither model.pt nor best.pt found" in bad.stderr


def test_an_audio_only_whisper_model_exports_with_its_encoder_and_int8(tmp_path):
    """The packaged Whisper tiny.en encoder (its stored layers on the utterance's own length,
    log-mel in numpy) and an audio-only model: the recogniser equals torch's; int8 keeps the
    emotion at a quarter of the size; a recording past Whisper's 30 s window is refused."""
    pytest.importorskip("onnxscript", reason="the onnx extra: pip install -e '.[onnx]'")
    from mser.onnx_inference import OnnxEmotionRecognizer

    model_dir = save_model_dir(tmp_path / "fold1", {
        "extractor": "hf_ssl", "model_dir": "packaged:whisper-tiny.en", "layers": "2-4",
        "whisper_window": "utterance"}, {"modalities": ["audio"]})
    sizes = {}
    for name, extra in (("fp32", []), ("int8", ["--int8"])):
        out = tmp_path / name
        result = subprocess.run([sys.executable, "-m", "mser.bin.export_onnx", "--model-dir",
                                 model_dir, "--out-dir", str(out), *extra], capture_output=True,
                                text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        sizes[name] = sum(f.stat().st_size for f in out.iterdir() if f.suffix == ".onnx")
    expected = EmotionRecognizer(model_dir).predict(tone(3.0), 16000)
    got = OnnxEmotionRecognizer(str(tmp_path / "fp32")).predict(tone(3.0), 16000)
    assert got.modalities == ("audio",)
    for c in CLASSES:
        assert got.probabilities[c] == pytest.approx(expected.probabilities[c], abs=1e-3)
    int8 = OnnxEmotionRecognizer(str(tmp_path / "int8"))
    assert int8.predict(tone(3.0), 16000).emotion == expected.emotion
    assert sizes["int8"] < 0.4 * sizes["fp32"]
    with pytest.raises(InputError, match="too long .* 30 s window"):
        int8.predict(np.zeros(16000 * 31, np.float32), 16000)
