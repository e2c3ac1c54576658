"""Clips of one's own without code (mser/data/table.py): nEMO's data.tsv layout through the
``table`` corpus and egs/nemo/local/data.sh, a CSV with an official split, class folders, and
the errors that name what to fix."""
import pytest

from mser.data.table import prepare_folders, prepare_table
from mser.io.datadir import DataDirError, read_data_dir, read_table

EMOTIONS = ("anger", "fear", "happiness", "neutral", "sadness", "surprised")
SPEAKERS = ("EB0", "IC0", "KD0", "KS0", "MK0", "WR0")


def write_tree(tmp_path, tone):
    """nEMO's layout: data.tsv (speaker ids padded with spaces, as the release's) and samples/;
    2 clips per speaker and emotion, MK0 without 'surprised' (as in nEMO). Its root (also
    test/data/test_corpus_recipes.py's)."""
    root = tmp_path / "nemo"
    lines = ["file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage"]
    for speaker in SPEAKERS:
        for emotion in EMOTIONS:
            if speaker == "MK0" and emotion == "surprised":
                continue
            for k in range(2):
                name = f"{speaker}_{emotion}_{k}.wav"
                tone(root / "samples" / name)
                lines.append(f"{name}\t{emotion}\tZdanie {k}.\tzdanie {k}\t        {speaker}\t"
                             f"female\t25")
    (root / "data.tsv").write_text("\n".join(lines) + "\n")
    return root


NEMO_COLUMNS = dict(table="data.tsv", audio_dir="samples", path_column="file_id",
                    label_column="emotion", speaker_column="speaker_id", text_column="raw_text")


def test_nemo_table_gives_folds_with_every_class(tmp_path, tone, prepared, speaker_independent):
    root = write_tree(tmp_path, tone)
    utts = prepare_table(str(root), str(tmp_path / "data"), num_folds=3, name="nEMO",
                         **NEMO_COLUMNS)
    assert len(utts) == 70
    folds, protocol = prepared(tmp_path / "data")
    speaker_independent(folds)
    assert protocol["corpus"] == "nEMO" and protocol["folds"] == "fold1 fold2 fold3"
    assert "every class in every test and dev set" in protocol["description"]
    tables = read_data_dir(str(tmp_path / "data" / "all"))
    assert tables["utt2spk"]["EB0_anger_0"] == "EB0"  # the padded speaker cell stripped
    assert tables["text"]["EB0_anger_0"] == "Zdanie 0."
    assert (tmp_path / "data" / "all" / "classes.txt").read_text().split() == sorted(EMOTIONS)
    for fold in folds:
        for subset in ("dev", "test"):
            emotions = set(read_table(tmp_path / "data" / fold / subset / "utt2emo").values())
            assert emotions == set(EMOTIONS), (fold, subset)


def test_nemo_recipe_stage_0(tmp_path, tone, data_sh):
    """egs/nemo/local/data.sh passes nEMO's columns; --expected-counts checks the totals."""
    root = write_tree(tmp_path, tone)
    run = data_sh("nemo", root, tmp_path / "data")
    assert run.returncode != 0 and "counts differ from the documented totals" in run.stderr
    run = data_sh("nemo", "--num-folds", "3", "--expected-counts", "utterances=70,speakers=6",
                  root, tmp_path / "data")
    assert run.returncode == 0, run.stderr
    assert "utterances per fold and class" in run.stderr
    assert "fold3/test" in run.stderr


def test_csv_without_text_with_a_split_and_a_subset_of_classes(tmp_path, tone):
    root = tmp_path / "mine"
    rows = ["path,label,speaker,split"]
    for i, (label, speaker, split) in enumerate(
            [("ang", "a", "train"), ("neu", "a", "train"), ("hap", "b", "train"),
             ("ang", "c", "dev"), ("neu", "c", "dev"), ("ang", "d", "test"),
             ("neu", "d", "test"), ("hap", "d", "test")]):
        tone(root / "clips" / f"{i}.wav")
        rows.append(f"clips/{i}.wav,{label},{speaker},{split}")
    (root / "list.csv").write_text("\n".join(rows) + "\n")
    prepare_table(str(root), str(tmp_path / "data"), table="list.csv", classes="neu,ang")
    assert read_table(tmp_path / "data" / "protocol")["folds"] == "fold1"
    assert (tmp_path / "data" / "all" / "classes.txt").read_text().split() == ["neu", "ang"]
    assert not (tmp_path / "data" / "all" / "text").exists()  # no transcripts: no text file
    assert set(read_table(tmp_path / "data" / "fold1" / "test" / "utt2emo").values()) == \
        {"neu", "ang"}
    skipped = (tmp_path / "data" / "skipped").read_text()
    assert skipped.count("label hap not in --classes") == 2


def test_class_folders_with_a_speaker_pattern(tmp_path, tone, prepared, speaker_independent):
    root = tmp_path / "clips"
    for speaker in ("spk1", "spk2", "spk3", "spk4"):
        for label in ("calm", "angry"):
            for k in range(2):
                tone(root / label / f"{speaker}_{k}.wav")
    (root / "angry" / "notes.txt").write_text("not a clip\n")
    with pytest.raises(DataDirError, match="leave no training speakers"):
        prepare_folders(str(root), str(tmp_path / "data"), speaker_pattern=r"^(spk\d)_",
                        num_folds=2)
    prepare_folders(str(root), str(tmp_path / "data"), speaker_pattern=r"^(spk\d)_",
                    num_folds=2, dev_speakers=1)
    folds, _ = prepared(tmp_path / "data")
    speaker_independent(folds)
    # the same file name in two class folders: two utterances
    assert read_table(tmp_path / "data" / "all" / "utt2emo")["spk3_angry-spk3_1"] == "angry"
    assert read_table(tmp_path / "data" / "all" / "utt2emo")["spk3_calm-spk3_1"] == "calm"
    with pytest.raises(DataDirError, match="give --speaker-pattern"):
        prepare_folders(str(root), str(tmp_path / "other"))
    with pytest.raises(DataDirError, match=r"angry/spk1_0.wav: --speaker-pattern .* finds no"):
        prepare_folders(str(root), str(tmp_path / "other"), speaker_pattern=r"^(x\d)_")


def test_errors_name_the_column_and_the_impossible_class(tmp_path, tone):
    root = write_tree(tmp_path, tone)
    with pytest.raises(DataDirError, match=r"no column --label-column label; its columns: "
                                           r"file_id, emotion"):
        prepare_table(str(root), str(tmp_path / "data"), **{**NEMO_COLUMNS,
                                                            "label_column": "label"})
    # 'surprised' is spoken by 5 of the 6 speakers: 6 folds cannot all test on it
    with pytest.raises(DataDirError, match="class surprised: only 5 speaker"):
        prepare_table(str(root), str(tmp_path / "data"), num_folds=6, **NEMO_COLUMNS)
