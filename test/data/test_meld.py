"""MELD preparation on a tiny MELD.Raw-layout tree: CSVs with Windows-1252 debris, mp4 clips."""
import logging

import numpy as np
import pytest
import soundfile

from mser.bin import prepare_corpus
from mser.io.datadir import DataDirError, read_data_dir, validate_data_dir
from mser.data.meld import normalize_text, prepare_meld

av = pytest.importorskip("av")

HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime"
# (dialogue, utterance, speaker, emotion, sentiment, utterance bytes); encoded as in the corpus
ROWS = {
    "train": [(0, 0, "Chandler", "neutral", "neutral", "also I was the point person".encode()),
              (0, 1, "The Interviewer", "neutral", "neutral", b"You\x92re a genius!"),  # cp1252
              (0, 2, "Chandler", "joy", "positive", "he\u00e2\u0080\u0099s lost it".encode()),
              (125, 3, "Joey", "anger", "negative", b"Corrupted clip.")],
    "dev": [(0, 0, "Phoebe", "sadness", "negative", "Oh my God, he\u2019s lost it\u2026".encode()),
            (0, 1, "Mr. Geller", "surprise", "negative", b"What?"),
            (110, 7, "Ross", "fear", "negative", b"No clip for me.")],
    "test": [(0, 0, "Monica", "disgust", "negative", "Ew \u201cgross\u201d \u2014 no".encode()),
             (0, 1, "Ross", "joy", "positive", b"Yay.")],
}
FOLDERS = {"train": "MELD.Raw/train/train_splits", "dev": "MELD.Raw/dev_splits_complete",
           "test": "MELD.Raw/output_repeated_splits_test"}
CSVS = {"train": "MELD.Raw/train/train_sent_emo.csv", "dev": "MELD.Raw/dev_sent_emo.csv",
        "test": "MELD.Raw/test_sent_emo.csv"}


def write_clip(path, seconds=0.3, rate=48000, video=True):
    """A stereo AAC (+ tiny mpeg4 video) mp4, as MELD's clips."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate, layout="stereo")
        if video:
            picture = container.add_stream("mpeg4", rate=25)
            picture.width, picture.height, picture.pix_fmt = 32, 32, "yuv420p"
            for _ in range(int(seconds * 25)):
                frame = av.VideoFrame.from_ndarray(np.zeros((32, 32, 3), np.uint8), format="rgb24")
                for packet in picture.encode(frame):
                    container.mux(packet)
            for packet in picture.encode(None):
                container.mux(packet)
        n = int(seconds * rate)
        tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)
        for i in range(0, n, 1024):
            frame = av.AudioFrame.from_ndarray(np.stack([tone[i:i + 1024]] * 2), format="fltp",
                                               layout="stereo")
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def write_tree(tmp_path, tone):
    """The fake corpus under ``tmp_path``; its root (also test/data/test_corpus_recipes.py's)."""
    root = tmp_path / "meld"
    for split, rows in ROWS.items():
        lines = [HEADER.encode()]
        for i, (dia, utt, speaker, emotion, sentiment, text) in enumerate(rows, 1):
            lines.append(b'%d,"%s",%s,%s,%s,%d,%d,4,7,"00:20:57,256","00:21:00,049"'
                         % (i, text, speaker.encode(), emotion.encode(), sentiment.encode(), dia, utt))
            if (split, dia) == ("train", 125):
                (root / FOLDERS[split]).mkdir(parents=True, exist_ok=True)
                (root / FOLDERS[split] / f"dia{dia}_utt{utt}.mp4").write_bytes(b"\x00" * 64)
            elif (split, dia) != ("dev", 110):
                write_clip(root / FOLDERS[split] / f"dia{dia}_utt{utt}.mp4", video=split != "test")
        (root / CSVS[split]).parent.mkdir(parents=True, exist_ok=True)
        (root / CSVS[split]).write_bytes(b"\r\n".join(lines) + b"\r\n")
    write_clip(root / FOLDERS["dev"] / "dia66_utt9.mp4")  # a clip without a CSV row
    return root


@pytest.fixture
def corpus(tmp_path, tone):
    return write_tree(tmp_path, tone)


COUNTS = {"train": 4, "dev": 3, "test": 2}


def test_normalize_text():
    assert normalize_text("he\u00e2\u0080\u0099s") == ("he's", ["mojibake", "punctuation"])
    assert normalize_text("he\u00e2\u20ac\u2122s") == ("he's", ["mojibake", "punctuation"])
    assert normalize_text("You\x92re  here\x85") == ("You're here...", ["windows-1252", "punctuation"])
    assert normalize_text("Caf\u00e9 \u201cok\u201d") == ('Caf\u00e9 "ok"', ["punctuation"])
    assert normalize_text("plain text") == ("plain text", [])


def test_official_split(corpus, tmp_path, caplog, prepared):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        prepare_meld(str(corpus), str(out), expected_counts=COUNTS, nj=2)
    assert "train 4, dev 3, test 2" in caplog.text and "match the documented totals" in caplog.text
    assert "4 of 9 transcripts normalised (1 repaired mojibake, 1 with Windows-1252" in caplog.text
    tables = read_data_dir(str(out / "all"))
    assert len(tables["utt2spk"]) == 7
    assert tables["text"]["The-Interviewer_train_dia0_utt1"] == "You're a genius!"
    assert tables["text"]["Chandler_train_dia0_utt2"] == "he's lost it"
    assert tables["text"]["Phoebe_dev_dia0_utt0"] == "Oh my God, he's lost it..."
    assert tables["text"]["Monica_test_dia0_utt0"] == 'Ew "gross" - no'
    assert tables["utt2spk"]["Mr.-Geller_dev_dia0_utt1"] == "Mr.-Geller"
    assert tables["utt2emo"]["Mr.-Geller_dev_dia0_utt1"] == "surprise"
    assert set(tables["utt2sentiment"]) == set(tables["utt2emo"])  # each row's Sentiment
    assert set(tables["utt2sentiment"].values()) <= {"neutral", "positive", "negative"}
    assert tables["utt2sess"]["Ross_test_dia0_utt1"] == "test_dia0"
    wav = tables["wav.scp"]["Ross_test_dia0_utt1"]
    audio, rate = soundfile.read(wav)
    assert rate == 16000 and audio.ndim == 1 and 0.29 < len(audio) / rate < 0.4
    assert 0.2 < np.abs(audio).max() < 0.4  # the 0.3 tone survives decoding and downmixing
    skipped = (out / "skipped").read_text()
    assert "dev/dia110_utt7 documented as broken (no clip in dev_splits_complete" in skipped
    assert "train/dia125_utt3 documented as broken (corrupted clip, MELD issue #39)" in skipped
    assert "dev/dia66_utt9.mp4 clip without a CSV row" in skipped
    folds, protocol = prepared(out)
    assert {k: len(v) for k, v in folds["fold1"].items()} == {"train": 3, "dev": 2, "test": 2}
    assert protocol["headline"] == "weighted_f1" and protocol["folds"] == "fold1"
    assert protocol["description"].startswith("official train/dev/test split (emotion")
    # a re-run reuses the wavs and gives the same tables
    prepare_meld(str(corpus), str(out), label="sentiment", expected_counts=COUNTS)
    again = read_data_dir(str(out / "all"))
    assert again["wav.scp"] == tables["wav.scp"] and again["utt2dur"] == tables["utt2dur"]
    assert set(again["utt2emo"].values()) == {"neutral", "positive", "negative"}


def test_errors(corpus, tmp_path):
    with pytest.raises(DataDirError, match="train: found 4, documented 9989"):
        prepare_meld(str(corpus), str(tmp_path / "d"))
    (corpus / FOLDERS["test"] / "dia0_utt1.mp4").unlink()
    with pytest.raises(DataDirError, match=r"1 clip\(s\) missing.*test/dia0_utt1: no clip .*"
                                           r"test_sent_emo.csv:3.*--skip-bad-audio"):
        prepare_meld(str(corpus), str(tmp_path / "d"), expected_counts=COUNTS)
    prepare_meld(str(corpus), str(tmp_path / "d"), expected_counts=COUNTS, skip_bad_audio=True)
    assert "test/dia0_utt1 bad audio" in (tmp_path / "d" / "skipped").read_text()
    (corpus / CSVS["dev"]).unlink()
    with pytest.raises(DataDirError, match="dev_sent_emo.csv not found at any depth"):
        prepare_meld(str(corpus), str(tmp_path / "d"), expected_counts=COUNTS)
    (corpus / CSVS["dev"]).write_text(HEADER.replace("Emotion,", "") + "\n")
    with pytest.raises(DataDirError, match="dev_sent_emo.csv: missing column.*Emotion"):
        prepare_meld(str(corpus), str(tmp_path / "d"), expected_counts=COUNTS)


def test_cli(corpus, tmp_path):
    out = tmp_path / "data"
    prepare_corpus.main(["meld", str(corpus), str(out), "--label", "sentiment", "--wav-dir",
                         str(tmp_path / "wavs"), "--expected-counts", "train=4,dev=3,test=2"])
    assert (tmp_path / "wavs" / "test" / "dia0_utt0.wav").is_file()
    assert (out / "all" / "classes.txt").read_text() == "neutral\npositive\nnegative\n"


def test_recipe_data_sh(corpus, tmp_path, data_sh):
    result = data_sh("meld", "--nj", 2, "--wav-dir", tmp_path / "wavs", "--expected-counts",
                     "train=4,dev=3,test=2", corpus, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert len((tmp_path / "data" / "all" / "wav.scp").read_text().splitlines()) == 7
    result = data_sh("meld", "--label", "valence", corpus, tmp_path / "data")
    assert result.returncode != 0 and "invalid choice: 'valence'" in result.stderr


def test_text_only_needs_the_csvs_alone(corpus, tmp_path, prepared):
    """--text-only: every CSV row (the documented broken clips included: their text is fine),
    no clip opened, no wav.scp; utt2dur from the subtitle times; a valid data dir."""
    csv_only = tmp_path / "csv_only"
    for split in CSVS:
        (csv_only / CSVS[split]).parent.mkdir(parents=True, exist_ok=True)
        (csv_only / CSVS[split]).write_bytes((corpus / CSVS[split]).read_bytes())
    out = tmp_path / "text"
    prepare_meld(str(csv_only), str(out), expected_counts=COUNTS, text_only=True)
    tables = read_data_dir(str(out / "all"))
    assert "wav.scp" not in tables and not (out / "all" / "wav.scp").exists()
    assert len(tables["text"]) == 9  # dev dia110_utt7 and train dia125_utt3 keep their text
    assert tables["text"]["Chandler_train_dia0_utt2"] == "he's lost it"
    assert set(tables["utt2dur"].values()) == {"2.793"}  # 00:20:57,256 -> 00:21:00,049
    assert validate_data_dir(str(out / "fold1" / "test")) == []
    folds, protocol = prepared(out)
    assert {k: len(v) for k, v in folds["fold1"].items()} == {"train": 4, "dev": 3, "test": 2}
    assert "transcripts only" in protocol["description"]
    # Without --text-only the clip folders are needed.
    with pytest.raises(DataDirError, match="train_splits not found"):
        prepare_meld(str(csv_only), str(tmp_path / "d"), expected_counts=COUNTS)


def test_subtitle_times():
    from mser.data.meld import subtitle_seconds

    assert subtitle_seconds("00:20:57,256", "x") == pytest.approx(1257.256)
    assert subtitle_seconds("1:02:03,5", "x") == pytest.approx(3723.5)  # short fractions occur
    with pytest.raises(DataDirError, match="x: time stamp '12:03' is not H:MM:SS,mmm"):
        subtitle_seconds("12:03", "x")
