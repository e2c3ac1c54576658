"""MSP-Podcast preparation on a tiny tree in the release 1.11 layout (Audios/, Transcripts/, Labels/)."""
import logging

import pytest

from mser.bin import prepare_corpus
from mser.io.datadir import DataDirError, read_data_dir
from mser.data.msp_podcast import prepare_msp_podcast

HEADER = "FileName,EmoClass,EmoAct,EmoVal,EmoDom,SpkrID,Gender,Split_Set"
# (file stem, EmoClass, SpkrID, Split_Set, transcript or None)
ROWS = [("MSP-PODCAST_0001_0008", "N", "127", "Train", "I mean it was fine."),
        ("MSP-PODCAST_0001_0009", "H", "127", "Train", "That is great!"),
        ("MSP-PODCAST_0001_0010", "O", "127", "Train", "Other class."),
        ("MSP-PODCAST_0002_0001", "A", "12", "Train", None),
        ("MSP-PODCAST_0002_0002", "U", "12", "Train", "No way."),
        ("MSP-PODCAST_0003_0001", "S", "31", "Development", "So sad."),
        ("MSP-PODCAST_0003_0002", "X", "31", "Development", "No agreement."),
        ("MSP-PODCAST_0003_0003", "C", "Unknown", "Development", "Whatever."),
        ("MSP-PODCAST_0004_0001", "F", "44", "Test1", "Scary."),
        ("MSP-PODCAST_0004_0002", "N", "44", "Test1", "Okay."),
        ("MSP-PODCAST_0005_0001", "D", "45", "Test2", "Gross."),
        ("MSP-PODCAST_0006_0001", "", "", "Test3", None)]


def write_tree(tmp_path, tone):
    """The fake corpus under ``tmp_path``; its root (also test/data/test_corpus_recipes.py's)."""
    root = tmp_path / "MSP-Podcast"
    lines = [HEADER]
    for stem, code, speaker, split, text in ROWS:
        lines.append(f"{stem}.wav,{code},3.2,4.0,3.8,{speaker},Female,{split}")
        tone(root / "Audios" / f"{stem}.wav", seconds=0.2)
        if text is not None:
            (root / "Transcripts").mkdir(parents=True, exist_ok=True)
            (root / "Transcripts" / f"{stem}.txt").write_text(text + "\n")
    (root / "Labels").mkdir(parents=True)
    (root / "Labels" / "labels_consensus.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def corpus(tmp_path, tone):
    return write_tree(tmp_path, tone)


COUNTS = {"Train": 5, "Development": 3, "Test1": 2, "Test2": 1}


def test_8class(corpus, tmp_path, caplog, prepared, speaker_independent):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        prepare_msp_podcast(str(corpus), str(out), expected_counts=COUNTS)
    assert "rows: Train 5, Development 3, Test1 2, Test2 1, Test3 1" in caplog.text
    assert "8class: rows of other classes dropped: none 1, oth 1" in caplog.text
    assert "1 turn(s) have no Transcripts/<name>.txt and keep an empty text: MSP-PODCAST_0002_0001" \
        in caplog.text
    tables = read_data_dir(str(out / "all"))
    assert tables["utt2spk"]["spk00127_MSP-PODCAST_0001_0008"] == "spk00127"
    assert tables["utt2emo"]["spk00127_MSP-PODCAST_0001_0009"] == "hap"
    assert tables["text"]["spk00127_MSP-PODCAST_0001_0009"] == "That is great!"
    assert tables["text"]["spk00012_MSP-PODCAST_0002_0001"] == ""
    assert tables["utt2sess"]["spk00012_MSP-PODCAST_0002_0001"] == "MSP-PODCAST_0002"
    unknown = "unknown-MSP-PODCAST_0003_0003"
    assert tables["utt2spk"][unknown] == unknown and tables["utt2emo"][unknown] == "con"
    # EmoAct, EmoVal, EmoDom (1-7) of every kept row
    assert {t: tables[f"utt2{t}"][unknown] for t in ("arousal", "valence", "dominance")} == \
        {"arousal": "3.2", "valence": "4.0", "dominance": "3.8"}
    assert set(tables["utt2valence"]) == set(tables["utt2spk"])
    assert "MSP-PODCAST_0006_0001 partition 'Test3' is not used" in (out / "skipped").read_text()
    folds, protocol = prepared(out)
    assert {k: len(v) for k, v in folds["fold1"].items()} == {"train": 4, "dev": 2, "test": 2,
                                                               "test2": 1}
    assert protocol["headline"] == "macro_f1" and protocol["folds"] == "fold1"
    assert protocol["tests"] == "test test2"
    assert "Train/Development/Test1/Test2 (8class" in protocol["description"]
    assert (out / "all" / "classes.txt").read_text().split() == \
        ["neu", "hap", "sad", "ang", "sur", "fea", "dis", "con"]
    speaker_independent(folds)  # the official partitions are speaker-independent


def test_4class_and_errors(corpus, tmp_path, prepared):
    out = tmp_path / "data"
    prepare_msp_podcast(str(corpus), str(out), class_set="4class")
    folds, protocol = prepared(out)
    assert {k: len(v) for k, v in folds["fold1"].items()} == {"train": 3, "dev": 1, "test": 1}
    assert "Test2" not in protocol["description"]  # no 4-class row in Test2
    with pytest.raises(DataDirError, match="Test1: found 2, documented 3"):
        prepare_msp_podcast(str(corpus), str(tmp_path / "d"), expected_counts={"Test1": 3})
    (corpus / "Audios" / "MSP-PODCAST_0004_0001.wav").unlink()
    with pytest.raises(DataDirError, match="MSP-PODCAST_0004_0001: missing .*--skip-bad-audio"):
        prepare_msp_podcast(str(corpus), str(tmp_path / "d"))
    (corpus / "Labels" / "labels_consensus.csv").unlink()
    with pytest.raises(DataDirError, match="Labels/labels_consensus.csv not found"):
        prepare_msp_podcast(str(corpus), str(tmp_path / "d"))


def test_cli(corpus, tmp_path):
    out = tmp_path / "data"
    prepare_corpus.main(["msp_podcast", str(corpus), str(out), "--class-set", "4class",
                         "--expected-counts", "Train=5,Test1=2"])
    assert (out / "all" / "classes.txt").read_text() == "neu\nhap\nsad\nang\n"
    with pytest.raises(SystemExit, match="cannot parse 'Test3=1'"):
        prepare_corpus.main(["msp_podcast", str(corpus), str(out), "--expected-counts", "Test3=1"])


def test_recipe_data_sh(corpus, tmp_path, data_sh):
    result = data_sh("msp_podcast", "--class-set", "4class", "--expected-counts", "Train=5",
                     corpus, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "(4class; EmoBox uses Test1)" in (tmp_path / "data" / "protocol").read_text()
