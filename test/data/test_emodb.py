"""EmoDB preparation on a tiny tree in the distribution's layout (wav/03a01Fa.wav)."""
import logging

import pytest

from mser.bin import prepare_corpus
from mser.io.datadir import DataDirError, read_data_dir
from mser.data.emodb import SPEAKERS, prepare_emodb

FILES = ["a01Fa", "a04Wb", "b01Nc", "b10Ld"]


def write_tree(tmp_path, tone):
    """The fake corpus under ``tmp_path``; its root (also test/data/test_corpus_recipes.py's)."""
    root = tmp_path / "emodb"
    for speaker in SPEAKERS:
        for name in FILES:
            tone(root / "wav" / f"{speaker}{name}.wav")
    (root / "erklaerung.txt").write_text("not read\n")
    return root


@pytest.fixture
def corpus(tmp_path, tone):
    return write_tree(tmp_path, tone)


def expected():
    return {"utterances": 10 * len(FILES), "speakers": 10}


def test_loso(corpus, tmp_path, caplog, prepared, speaker_independent):
    out = tmp_path / "data"
    with caplog.at_level(logging.INFO):
        prepare_emodb(str(corpus), str(out), expected_counts=expected())
    assert "utterances 40, speakers 10" in caplog.text
    tables = read_data_dir(str(out / "all"))
    assert tables["text"]["03a04Wb"] == "Heute abend könnte ich es ihm sagen."
    assert tables["utt2emo"]["03a04Wb"] == "ang" and tables["utt2emo"]["16b10Ld"] == "bor"
    assert tables["text"]["16b10Ld"] == "Die wird auf dem Platz sein, wo wir sie immer hinlegen."
    assert tables["utt2spk"]["16b10Ld"] == "16" and tables["utt2sess"]["16b10Ld"] == "16"
    folds, protocol = prepared(out)
    assert "leave-one-speaker-out, 10 folds" in protocol["description"]
    speaker_independent(folds)
    speakers = sorted(SPEAKERS)
    for k, speaker in enumerate(speakers):
        assert set(folds[f"fold{k + 1}"]["test"].values()) == {speaker}
        assert set(folds[f"fold{k + 1}"]["dev"].values()) == {speakers[(k + 1) % 10]}


def test_grouped_folds_and_errors(corpus, tmp_path, prepared, speaker_independent):
    out = tmp_path / "data"
    prepare_emodb(str(corpus), str(out), num_folds=5, dev_speakers=2, expected_counts=expected())
    folds, protocol = prepared(out)
    assert "speaker-independent, 5 folds" in protocol["description"]
    speaker_independent(folds)
    for subsets in folds.values():
        assert sorted(SPEAKERS[s] for s in set(subsets["test"].values())) == ["F", "M"]
    with pytest.raises(DataDirError, match="utterances: found 40, documented 535"):
        prepare_emodb(str(corpus), str(tmp_path / "d"))
    with pytest.raises(DataDirError, match="cannot make 11 speaker folds from 10 speakers"):
        prepare_emodb(str(corpus), str(tmp_path / "d"), num_folds=11, expected_counts=expected())
    with pytest.raises(DataDirError, match="wav: no such directory; unpack EmoDB.s download.zip"):
        prepare_emodb(str(tmp_path), str(tmp_path / "d"))
    (corpus / "wav" / "03x01Fa.wav").write_bytes(b"")
    with pytest.raises(DataDirError, match="03x01Fa.wav: not an EmoDB file name"):
        prepare_emodb(str(corpus), str(tmp_path / "d"), expected_counts=expected())


def test_cli(corpus, tmp_path):
    out = tmp_path / "data"
    prepare_corpus.main(["emodb", str(corpus), str(out), "--expected-counts", "none"])
    assert len(read_data_dir(str(out / "all"))["utt2spk"]) == 40


def test_recipe_data_sh(corpus, tmp_path, data_sh):
    result = data_sh("emodb", "--num-folds", 5, "--dev-speakers", 2, "--expected-counts",
                     "utterances=40,speakers=10", corpus, tmp_path / "data")
    assert result.returncode == 0, result.stderr
    assert "speaker-independent, 5 folds" in (tmp_path / "data" / "protocol").read_text()
    result = data_sh("emodb", corpus, tmp_path / "data")
    assert result.returncode != 0 and "utterances: found 40, documented 535" in result.stderr
