"""Dialogue context (mser.data.dialogue, mser.bin.dialogue_context): previous turns only, in
dialogue order, speaker-marked, never across the split; utt2turn from MELD and IEMOCAP."""
import importlib.util
import os
import subprocess
import sys

import pytest

from mser.data.dialogue import check_within_subsets, dialogue_contexts, read_turns
from mser.io.datadir import DataDirError, read_data_dir, validate_data_dir, write_data_dir

SPEAKERS = {"a_1": "Ann", "b_2": "Bob", "a_3": "Ann", "b_4": "Bob", "c_1": "Cy"}
TEXTS = {"a_1": "hi there", "b_2": "oh hello", "a_3": "how are you", "b_4": "", "c_1": "alone"}
# Positions out of id order: b_2 comes before a_1 in dialogue d1.
TURNS = {"a_1": ("d1", 2.5), "b_2": ("d1", 0.7), "a_3": ("d1", 3.0), "b_4": ("d1", 10),
         "c_1": ("d2", 0)}


def test_previous_turns_in_order_speaker_marked_never_later():
    contexts = dialogue_contexts(TEXTS, SPEAKERS, TURNS, num_turns=2)
    assert contexts["b_2"] == "Bob:"  # the dialogue's first turn: only whose turn it is
    assert contexts["a_1"] == "Bob: oh hello | Ann:"
    assert contexts["a_3"] == "Bob: oh hello | Ann: hi there | Ann:"
    assert contexts["b_4"] == "Ann: hi there | Ann: how are you | Bob:"  # 2 turns: b_2 dropped
    assert contexts["c_1"] == "Cy:"  # another dialogue's turns never enter
    assert dialogue_contexts(TEXTS, SPEAKERS, TURNS, num_turns=9)["b_4"].startswith("Bob: oh hello")
    with pytest.raises(DataDirError, match="share position 2.5 of dialogue d1"):
        dialogue_contexts(TEXTS, SPEAKERS, {**TURNS, "a_3": ("d1", 2.5)}, num_turns=2)


def test_a_dialogue_across_two_subsets_of_a_fold_is_refused():
    subsets = {os.path.join("fold1", "train"): {"a_1", "b_2", "c_1"},
               os.path.join("fold1", "test"): {"a_3"}}  # b_4 in no subset: fine
    with pytest.raises(DataDirError, match=r"dialogue d1 has .* fold1/train and a_3 in fold1/test"):
        check_within_subsets(TURNS, subsets)
    check_within_subsets(TURNS, {os.path.join("fold1", "train"): {"a_1", "b_2", "a_3"},
                                 os.path.join("fold1", "test"): {"c_1"}})


def write_dir(path, utts):
    write_data_dir(str(path), {
        "text": {u: TEXTS[u] for u in utts}, "utt2spk": {u: u for u in utts},
        "utt2emo": {u: "neu" for u in utts}, "utt2dur": {u: "1.0" for u in utts},
        "utt2turn": {u: f"{TURNS[u][0]} {TURNS[u][1]}" for u in utts}})
    (path / "classes.txt").write_text("neu\n")


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "mser.bin.dialogue_context", *map(str, args)],
                          capture_output=True, text=True)


def test_cli_writes_a_text_data_dir_and_checks_the_folds(tmp_path):
    data = tmp_path / "data"
    write_dir(data / "all", list(TURNS))
    write_dir(data / "fold1" / "train", ["a_1", "b_2", "a_3", "b_4"])
    write_dir(data / "fold1" / "test", ["c_1"])
    out = data / "all_context3"
    result = run_cli("--turns", 3, data / "all", out)
    assert result.returncode == 0, result.stderr
    tables = read_data_dir(str(out))
    assert tables["text"]["a_3"] == "b_2: oh hello | a_1: hi there | a_3:"  # utt2spk's ids
    assert tables["utt2emo"] == read_data_dir(str(data / "all"))["utt2emo"]
    assert validate_data_dir(str(out)) == [] and not (data / "all_context3.tmp").exists()
    # b_4 moves to the test set: its dialogue would cross the split; the old output stays.
    write_dir(data / "fold1" / "train", ["a_1", "b_2", "a_3"])
    write_dir(data / "fold1" / "test", ["b_4", "c_1"])
    refused = run_cli("--turns", 3, data / "all", out)
    assert refused.returncode != 0 and "dialogue d1 has" in refused.stderr
    assert "cross the split" in refused.stderr and read_data_dir(str(out))["text"] == tables["text"]
    os.remove(data / "all" / "utt2turn")
    missing = run_cli(data / "all", out)
    assert missing.returncode != 0 and "utt2turn: not found" in missing.stderr
    with pytest.raises(DataDirError, match=r"utt2turn:1: expected"):
        (data / "all" / "utt2turn").write_text("a_1 d1\n")
        read_turns(str(data / "all"))


def test_meld_and_iemocap_write_utt2turn(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "iemocap_tree", os.path.join(os.path.dirname(__file__), "test_iemocap.py"))
    iemocap_tree = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(iemocap_tree)
    from mser.data.iemocap import prepare_iemocap
    from mser.data.meld import prepare_meld

    root = tmp_path / "IEMOCAP"
    for s in range(1, 6):
        iemocap_tree.write_dialog(root, s, f"Ses0{s}F_impro01", [
            (f"Ses0{s}F_impro01_M000", "neu", "Hi."), (f"Ses0{s}F_impro01_F000", "ang", "Go."),
            (f"Ses0{s}F_impro01_M001", "sad", "Why?")])
    prepare_iemocap(str(root), str(tmp_path / "iemocap"))
    turns = read_turns(str(tmp_path / "iemocap" / "all"))
    # the label file's start times ([i.0000 - i.9000]) order the dialogue
    assert turns["Ses01F_Ses01F_impro01_F000"] == ("Ses01F_impro01", 1.0)
    assert turns["Ses01M_Ses01F_impro01_M001"] == ("Ses01F_impro01", 2.0)

    csvs = tmp_path / "meld"
    header = ("Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,"
              "Episode,StartTime,EndTime")
    for split in ("train", "dev", "test"):
        rows = [f'{i},"line {i}",Ross,joy,positive,4,{i},1,1,"0:00:01,000","0:00:02,000"'
                for i in (1, 0)]
        (csvs / f"{split}_sent_emo.csv").parent.mkdir(parents=True, exist_ok=True)
        (csvs / f"{split}_sent_emo.csv").write_text("\n".join([header] + rows) + "\n")
    prepare_meld(str(csvs), str(tmp_path / "meld_data"), text_only=True, expected_counts={})
    turns = read_turns(str(tmp_path / "meld_data" / "all"))
    assert turns["Ross_dev_dia4_utt1"] == ("dev_dia4", 1.0)  # dialogues numbered per split
    assert len(turns) == 6
