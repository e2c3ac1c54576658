"""CREMA-D preparation on a tiny tree in the distribution's layout (AudioWAV/, VideoDemographics.csv)."""
import logging

import pytest

from mser.bin import prepare_corpus
from mser.data.crema_d import prepare_crema_d
from mser.io.datadir import DataDirError, read_data_dir, read_table

ACTORS = [f"{a}" for a in range(1001, 1009)] + ["1040", "1076"]
CLIPS = [("DFA", "ANG", "XX"), ("IEO", "HAP", "HI"), ("TSI", "NEU", "XX"), ("WSI", "SAD", "XX")]


def write_tree(tmp_path, tone):
    """The fake corpus under ``tmp_path``; its root (also test/data/test_corpus_recipes.py's)."""
    root = tmp_path / "CREMA-D"
    for actor in ACTORS:
        for sentence, emotion, level in CLIPS:
            tone(root / "AudioWAV" / f"{actor}_{sentence}_{emotion}_{level}.wav")
    tone(root / "AudioWAV" / "1040_ITH_SAD_X.wav")                     # misnamed, issue #6
    (root / "AudioWAV" / "1076_MTI_NEU_XX.wav").write_bytes(b"RIFF....junk")  # issue #8
    tone(root / "AudioWAV" / "1076_MTI_SAD_XX.wav", amplitude=0.0)      # silent, issue #8
    lines = ["ActorID,Age,Sex,Race,Ethnicity"]
    lines += [f"{a},30,{'Male' if i % 2 else 'Female'},Caucasian,Not Hispanic"
              for i, a in enumerate(ACTORS)]
    (root / "VideoDemographics.csv").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def corpus(tmp_path, tone):
    return write_tree(tmp_path, tone)


def expected(extra=0):
    return {"clips": len(ACTORS) * len(CLIPS) + 3 + extra, "actors": len(ACTORS)}


def test_parse_folds_texts_skips(corpus, tmp_path, caplog, prepared, speaker_independent):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        prepare_crema_d(str(corpus), str(out), num_folds=5, dev_speakers=1,
                        expected_counts=expected())
    assert "clips 43, actors 10" in caplog.text and "match the documented totals" in caplog.text
    tables = read_data_dir(str(out / "all"))
    assert len(tables["utt2spk"]) == 41  # 43 clips, the two documented broken ones skipped
    assert tables["text"]["1003_DFA_ANG_XX"] == "Don't forget a jacket."
    assert tables["text"]["1040_ITH_SAD_XX"] == "I think I have a doctor's appointment."
    assert tables["utt2emo"]["1040_ITH_SAD_XX"] == "sad"
    assert tables["utt2spk"]["1005_IEO_HAP_HI"] == "1005"
    assert (out / "all" / "classes.txt").read_text().split() == ["neu", "hap", "ang", "sad", "fea", "dis"]
    skipped = (out / "skipped").read_text()
    assert "1076_MTI_NEU_XX documented as broken (does not play, CREMA-D issue #8): " in skipped
    assert "1076_MTI_SAD_XX documented as broken (no sound, CREMA-D issue #8)" in skipped
    assert "silent" in skipped and "1040_ITH_SAD_X" in caplog.text
    folds, protocol = prepared(out)
    assert protocol["folds"] == "fold1 fold2 fold3 fold4 fold5" and protocol["headline"] == "ua"
    assert "speaker-independent, 5 folds" in protocol["description"]
    speaker_independent(folds)
    tested = [spk for f in folds.values() for spk in set(f["test"].values())]
    assert sorted(tested) == sorted(ACTORS)  # every actor tested exactly once
    genders = {a: i % 2 for i, a in enumerate(ACTORS)}
    for subsets in folds.values():  # groups of 2 actors: one of each gender
        assert sorted(genders[s] for s in set(subsets["test"].values())) == [0, 1]
        assert len(set(subsets["dev"].values())) == 1


def test_count_check_and_errors(corpus, tmp_path):
    with pytest.raises(DataDirError, match=r"clips: found 43, documented 7442"):
        prepare_crema_d(str(corpus), str(tmp_path / "d"))
    with pytest.raises(DataDirError, match="AudioWAV: no such directory; pass the root of a CREMA-D clone"):
        prepare_crema_d(str(tmp_path), str(tmp_path / "d"))
    (corpus / "AudioWAV" / "1002_TAI_FEA_LO.wav").write_bytes(b"not audio")
    with pytest.raises(DataDirError, match="1002_TAI_FEA_LO: .*unreadable.*--skip-bad-audio"):
        prepare_crema_d(str(corpus), str(tmp_path / "d"), expected_counts=expected(1), dev_speakers=1)
    prepare_crema_d(str(corpus), str(tmp_path / "d"), expected_counts=expected(1), skip_bad_audio=True,
                    dev_speakers=1)
    assert "1002_TAI_FEA_LO bad audio" in (tmp_path / "d" / "skipped").read_text()
    (corpus / "AudioWAV" / "1002_TAI_FEA_LO.wav").write_bytes(
        b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 72862\n")
    with pytest.raises(DataDirError, match="Git LFS pointer.*git lfs pull"):
        prepare_crema_d(str(corpus), str(tmp_path / "d"), expected_counts=expected(1), dev_speakers=1)


def test_cli(corpus, tmp_path):
    out = tmp_path / "data"
    prepare_corpus.main(["crema_d", str(corpus), str(out), "--num-folds", "2",
                         "--dev-speakers", "2", "--expected-counts", "clips=43,actors=10"])
    assert read_table(str(out / "protocol"))["folds"] == "fold1 fold2"
    with pytest.raises(SystemExit, match="prepare_corpus crema_d: .*clips: found 43, documented 40"):
        prepare_corpus.main(["crema_d", str(corpus), str(out), "--expected-counts", "clips=40"])
    with pytest.raises(SystemExit, match="cannot parse 'files=3'"):
        prepare_corpus.main(["crema_d", str(corpus), str(out), "--expected-counts", "files=3"])


def test_recipe_data_sh(corpus, tmp_path, data_sh):
    result = data_sh("crema_d", "--num-folds", 2, "--dev-speakers", 1, "--expected-counts", "none",
                     corpus, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "fold2" / "test" / "wav.scp").is_file()
