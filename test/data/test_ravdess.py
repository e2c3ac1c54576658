"""RAVDESS preparation on a tiny tree in the distribution's layout (Actor_XX/03-01-...wav)."""
import logging

import pytest

from mser.bin import prepare_corpus
from mser.io.datadir import DataDirError, read_data_dir
from mser.data.ravdess import EMOBOX_GROUPS, prepare_ravdess

# (emotion, intensity, statement, repetition) per actor
FILES = [("01", "01", "01", "01"), ("05", "02", "02", "01"), ("02", "01", "02", "02")]


def write_tree(tmp_path, tone):
    """The fake corpus under ``tmp_path``; its root (also test/data/test_corpus_recipes.py's)."""
    root = tmp_path / "RAVDESS" / "Audio_Speech_Actors_01-24"
    for actor in range(1, 25):
        for emotion, intensity, statement, repetition in FILES:
            name = f"03-01-{emotion}-{intensity}-{statement}-{repetition}-{actor:02d}.wav"
            tone(root / f"Actor_{actor:02d}" / name, rate=48000)
    # a song file unpacked into the same tree (vocal channel 02): not part of the speech set
    tone(tmp_path / "RAVDESS" / "Audio_Song_Actors_01-24" / "Actor_03" / "03-02-03-01-01-01-03.wav")
    return tmp_path / "RAVDESS"


@pytest.fixture
def corpus(tmp_path, tone):
    return write_tree(tmp_path, tone)


def expected():
    return {"files": 24 * len(FILES), "actors": 24}


def test_emobox_folds(corpus, tmp_path, caplog, prepared, speaker_independent):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        prepare_ravdess(str(corpus), str(out), expected_counts=expected())
    assert "files 72, actors 24" in caplog.text
    tables = read_data_dir(str(out / "all"))
    utt = "Actor_07_03-01-05-02-02-01-07"
    assert tables["utt2spk"][utt] == "Actor_07" and tables["utt2emo"][utt] == "ang"
    assert tables["text"][utt] == "Dogs are sitting by the door."
    assert tables["text"]["Actor_07_03-01-01-01-01-01-07"] == "Kids are talking by the door."
    assert tables["utt2emo"]["Actor_07_03-01-02-01-02-02-07"] == "cal"
    assert tables["utt2intensity"][utt] == "strong"  # the file name's 4th field, 02
    assert tables["utt2intensity"]["Actor_07_03-01-02-01-02-02-07"] == "normal"
    assert abs(float(tables["utt2dur"][utt]) - 0.1) < 1e-3
    assert "03-02-03-01-01-01-03 song file" in (out / "skipped").read_text()
    folds, protocol = prepared(out)
    assert protocol["folds"].split() == [f"fold{k}" for k in range(1, 7)]
    assert "EmoBox speaker groups" in protocol["description"] and protocol["tests"] == "test"
    assert protocol["metrics"] == "ua wa" and protocol["classes"].split()[:2] == ["neu", "cal"]
    speaker_independent(folds)
    for k, group in enumerate(EMOBOX_GROUPS):
        test = set(folds[f"fold{k + 1}"]["test"].values())
        assert test == {f"Actor_{a:02d}" for a in group}
        assert len(folds[f"fold{k + 1}"]["train"]) == 18 * len(FILES)
    # dev of fold 1 comes from group 2 (actors 4 10 12 14, all female); of fold 4 from group 5
    # (2 15 16 18), one of each gender
    assert set(folds["fold1"]["dev"].values()) == {"Actor_04", "Actor_10"}
    assert set(folds["fold4"]["dev"].values()) == {"Actor_02", "Actor_15"}


def test_balanced_folds_and_errors(corpus, tmp_path, prepared, speaker_independent):
    out = tmp_path / "data"
    prepare_ravdess(str(corpus), str(out), fold_groups="balanced", num_folds=4, dev_speakers=3,
                    expected_counts=expected())
    folds, _ = prepared(out)
    speaker_independent(folds)
    for subsets in folds.values():
        actors = [int(s[-2:]) for s in set(subsets["test"].values())]
        assert len(actors) == 6 and sum(a % 2 for a in actors) == 3  # 3 male, 3 female
    with pytest.raises(DataDirError, match="files: found 72, documented 1440"):
        prepare_ravdess(str(corpus), str(tmp_path / "d"))
    with pytest.raises(DataDirError, match="no Actor_XX directory"):
        prepare_ravdess(str(tmp_path / "data"), str(tmp_path / "d"))
    bad = corpus / "Audio_Speech_Actors_01-24" / "Actor_05" / "03-01-09-01-01-01-05.wav"
    bad.write_bytes(b"")
    with pytest.raises(DataDirError, match="03-01-09-01-01-01-05.wav: invalid field"):
        prepare_ravdess(str(corpus), str(tmp_path / "d"), expected_counts=expected())


def test_cli(corpus, tmp_path):
    out = tmp_path / "data"
    prepare_corpus.main(["ravdess", str(corpus), str(out), "--expected-counts", "files=72,actors=24",
                         "--dev-speakers", "1"])
    assert len(read_data_dir(str(out / "fold6" / "dev"))["utt2spk"]) == len(FILES)


def test_recipe_data_sh(corpus, tmp_path, data_sh):
    result = data_sh("ravdess", "--fold-groups", "balanced", "--num-folds", 3, "--dev-speakers", 1,
                     "--expected-counts", "files=72,actors=24", corpus, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "3 gender-balanced folds" in (tmp_path / "data" / "protocol").read_text()
