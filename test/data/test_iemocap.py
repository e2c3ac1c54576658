"""IEMOCAP preparation on a tiny IEMOCAP_full_release-layout tree written by the test."""
import glob
import logging
import os

import numpy as np
import pytest
import soundfile

from mser.bin import prepare_iemocap as prepare_cli
from mser.io.datadir import DataDirError, read_data_dir, validate_data_dir
from mser.data.protocol import read_protocol
from mser.data.iemocap import (load_iemocap, make_folds, normalize_transcript, prepare_iemocap,
                               select_classes)
from mser.features import load_config_file
from mser.features.transcript import DEFAULT_TAG_PATTERN, clean_transcript

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def session_utts(s):
    """(orig id, label, transcript) of session ``s``: both speakers, all label kinds."""
    impro, script = f"Ses0{s}F_impro01", f"Ses0{s}M_script01_1"
    return [(f"{impro}_F000", "neu", "Excuse me."),
            (f"{impro}_M000", "ang", "Get out  of here!"),
            (f"{impro}_F001", "sad", "I miss her."),
            (f"{impro}_M001", "hap", "What a day."),
            (f"{impro}_F002", "exc", "[LAUGHTER] That is great."),
            (f"{impro}_M002", "xxx", "Whatever."),
            (f"{impro}_F003", "fru", "Not again."),
            (f"{impro}_M003", "neu", "[BREATHING]"),
            (f"{script}_F000", "neu", "Hello."),
            (f"{script}_M000", "sad", "Goodbye.")]


def write_dialog(root, session, dialog, utts, wav=True, newline="\n"):
    session_dir = root / f"Session{session}"
    labels = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    transcripts = [f"{dialog}_MXX0 [000.0000-000.5000]: Hm.", "some stray line without an id"]
    for i, (orig_id, label, text) in enumerate(utts):
        labels += [f"[{i}.0000 - {i}.9000]\t{orig_id}\t{label}\t[2.5000, {1 + i / 2:.4f}, 4.0000]  ",
                   "C-E1:\tNeutral;\t()", "A-E2:\tval 3; act 2; dom  2;\t()", ""]
        transcripts.append(f"{orig_id} [00{i}.0000-00{i}.9000]: {text}")
        if wav:
            path = session_dir / "sentences" / "wav" / dialog / f"{orig_id}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            tone = 0.1 * np.sin(2 * np.pi * 200 * np.arange(1600 + 160 * i) / 16000)
            soundfile.write(path, tone, 16000, subtype="PCM_16")
    for kind, lines in (("EmoEvaluation", labels), ("transcriptions", transcripts)):
        path = session_dir / "dialog" / kind / f"{dialog}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(newline.join(lines).encode() + newline.encode())
    return session_dir / "dialog" / "EmoEvaluation" / f"{dialog}.txt"


@pytest.fixture
def corpus(tmp_path):
    root = tmp_path / "IEMOCAP_full_release"
    for s in range(1, 6):
        by_dialog = {}
        for utt in session_utts(s):
            by_dialog.setdefault(utt[0].rsplit("_", 1)[0], []).append(utt)
        for i, (dialog, utts) in enumerate(by_dialog.items()):
            write_dialog(root, s, dialog, utts, newline="\r\n" if s == 2 and i == 0 else "\n")
    write_dialog(root, 3, "Ses03M_impro08b", [("Ses03M_impro08b_F000", "ang", "No way.")])
    return root


def prepare(corpus, tmp_path, **kwargs):
    out = tmp_path / "data"
    prepare_iemocap(str(corpus), str(out), **kwargs)
    return out


def test_ids_speakers_labels_4class(corpus, tmp_path, caplog):
    with caplog.at_level(logging.INFO):
        out = prepare(corpus, tmp_path)
    tables = read_data_dir(out / "all")
    assert (out / "all" / "classes.txt").read_text() == "neu\nhap\nang\nsad\n"
    assert tables["utt2spk"]["Ses03F_Ses03M_impro08b_F000"] == "Ses03F"
    assert tables["utt2spk"]["Ses01M_Ses01F_impro01_M000"] == "Ses01M"
    assert tables["utt2sess"]["Ses05F_Ses05M_script01_1_F000"] == "Ses05"
    assert tables["utt2emo"]["Ses01F_Ses01F_impro01_F002"] == "hap"  # exc merged
    assert set(tables["utt2emo"].values()) == {"neu", "hap", "ang", "sad"}
    assert len(tables["utt2spk"]) == 5 * 8 + 1  # xxx and fru dropped
    assert "fru 5, xxx 5" in caplog.text
    assert tables["text"]["Ses01F_Ses01F_impro01_F002"] == "That is great."  # tag stripped
    assert tables["text"]["Ses01M_Ses01F_impro01_M000"] == "Get out of here!"
    assert tables["text"]["Ses01M_Ses01F_impro01_M003"] == ""  # only a tag: kept, empty
    assert "5 utterance(s) have an empty transcript" in caplog.text
    assert float(tables["utt2dur"]["Ses01F_Ses01F_impro01_F000"]) == pytest.approx(0.1)
    assert tables["wav.scp"]["Ses01F_Ses01F_impro01_F000"].endswith(
        "Session1/sentences/wav/Ses01F_impro01/Ses01F_impro01_F000.wav")
    assert validate_data_dir(out / "all") == []
    # The [V, A, D] of each label line (mean ratings, 1-5): utt2valence, utt2arousal,
    # utt2dominance for every utterance, in the fold dirs too.
    utt = "Ses01M_Ses01F_impro01_M001"  # the 4th line of its file: arousal 1 + 3 / 2
    assert (tables["utt2valence"][utt], tables["utt2arousal"][utt],
            tables["utt2dominance"][utt]) == ("2.5", "2.5", "4")
    assert tables["utt2arousal"]["Ses01F_Ses01F_impro01_F000"] == "1"
    fold = read_data_dir(out / "fold1" / "test")
    assert set(fold["utt2arousal"]) == set(fold["utt2spk"])


def test_class_sets_and_options(corpus, tmp_path):
    utts = load_iemocap(str(corpus))
    assert {u.label for u in select_classes(utts, "6class")} == {"neu", "hap", "ang", "sad", "exc", "fru"}
    noexc = select_classes(utts, "4class_noexc")
    assert "exc" not in {u.label for u in noexc} and len(noexc) == 5 * 7 + 1
    impro = load_iemocap(str(corpus), improvised_only=True)
    assert impro and all("_impro" in u.utt_id for u in impro)
    out = prepare(corpus, tmp_path, class_set="6class", noise_tags="keep")
    assert (out / "all" / "classes.txt").read_text().split() == ["neu", "hap", "ang", "sad", "exc", "fru"]
    text = read_data_dir(out / "all")["text"]
    assert text["Ses01F_Ses01F_impro01_F002"] == "[LAUGHTER] That is great."


def check_partition(out, fold, all_utts):
    tables = {s: read_data_dir(out / fold / s) for s in ("train", "dev", "test")}
    utts = {s: set(t["utt2spk"]) for s, t in tables.items()}
    spks = {s: set(t["utt2spk"].values()) for s, t in tables.items()}
    assert not (utts["train"] & utts["dev"] or utts["train"] & utts["test"] or utts["dev"] & utts["test"])
    assert utts["train"] | utts["dev"] | utts["test"] == all_utts
    assert not spks["test"] & (spks["train"] | spks["dev"])
    assert not spks["dev"] & spks["train"]
    for subset in tables:
        assert (out / fold / subset / "classes.txt").read_text() == "neu\nhap\nang\nsad\n"
    return spks


def test_session_folds(corpus, tmp_path):
    out = prepare(corpus, tmp_path)
    all_utts = set(read_data_dir(out / "all")["utt2spk"])
    dev_speakers = []
    for k in range(1, 6):
        spks = check_partition(out, f"fold{k}", all_utts)
        assert spks["test"] == {f"Ses0{k}F", f"Ses0{k}M"}
        assert {s[:5] for s in spks["train"]} == {f"Ses0{j}" for j in range(1, 6) if j != k}
        dev_speakers += spks["dev"]
    assert dev_speakers == ["Ses02F", "Ses03M", "Ses04F", "Ses05M", "Ses01F"]


def test_speaker_folds_and_stale_folds_removed(corpus, tmp_path):
    out = prepare(corpus, tmp_path, cv="speaker")
    all_utts = set(read_data_dir(out / "all")["utt2spk"])
    tests = [check_partition(out, f"fold{k}", all_utts)["test"] for k in range(1, 11)]
    assert tests == [{f"Ses0{s}{g}"} for s in range(1, 6) for g in "FM"]
    prepare(corpus, tmp_path)  # back to session folds
    assert sorted(p.name for p in out.iterdir()) == ["all"] + [f"fold{k}" for k in range(1, 6)] + ["protocol"]
    protocol = read_protocol(out / "protocol")
    assert protocol["folds"] == [f"fold{k}" for k in range(1, 6)] and protocol["tests"] == ["test"]
    assert protocol["description"].startswith("4class, leave-one-session-out, 5 folds")


def test_dev_fraction_is_stratified_and_seeded(corpus, tmp_path):
    utts = select_classes(load_iemocap(str(corpus)), "4class")
    folds = make_folds(utts, dev="fraction", dev_fraction=0.25, seed=3)
    assert folds == make_folds(utts, dev="fraction", dev_fraction=0.25, seed=3)
    session = {u.utt_id: u.session for u in utts}
    label = {u.utt_id: u.label for u in utts}
    dev = folds["fold1"]["dev"]
    assert dev and all(session[u] != "Ses01" for u in dev)
    assert {label[u] for u in dev} == {"neu", "hap", "ang", "sad"}


def test_bad_label_line_names_file_and_line(corpus, tmp_path):
    path = corpus / "Session4" / "dialog" / "EmoEvaluation" / "Ses04F_impro01.txt"
    lines = path.read_text().splitlines()
    lines[6] = "[1.0000 - ]\tSes04F_impro01_F001\tsad"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataDirError, match=r"Ses04F_impro01\.txt:7: cannot parse label line"):
        prepare(corpus, tmp_path)


def test_missing_wav_names_utterance(corpus, tmp_path, caplog):
    write_dialog(corpus, 2, "Ses02F_impro09", [("Ses02F_impro09_M000", "ang", "Ha.")], wav=False)
    with pytest.raises(DataDirError, match=r"Ses02F_impro09_M000 \(expected in .*"
                                           r"Session2/sentences/wav/Ses02F_impro09/Ses02F_impro09_M000\.wav"):
        prepare(corpus, tmp_path)
    with caplog.at_level(logging.WARNING):
        out = prepare(corpus, tmp_path, skip_missing_wav=True)
    assert "1 labelled utterance(s) have no wav" in caplog.text
    assert len(read_data_dir(out / "all")["utt2spk"]) == 5 * 8 + 1


def test_missing_transcript_is_an_error(corpus, tmp_path):
    path = corpus / "Session1" / "dialog" / "transcriptions" / "Ses01M_script01_1.txt"
    path.write_text("\n".join(line for line in path.read_text().splitlines() if "_F000 " not in line) + "\n")
    with pytest.raises(DataDirError, match="no transcript, e.g. Ses01M_script01_1_F000"):
        prepare(corpus, tmp_path)
    out = prepare(corpus, tmp_path, skip_missing_text=True)
    assert "Ses01F_Ses01M_script01_1_F000" not in read_data_dir(out / "all")["utt2spk"]


def test_cli_wrong_path_is_clear(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        prepare_cli.main(["--iemocap", str(tmp_path / "nowhere"), str(tmp_path / "data")])
    assert "nowhere: not an IEMOCAP_full_release directory" in str(e.value)
    assert "--iemocap" in str(e.value) and "db.sh" in str(e.value)


def test_unparsable_label_line_is_reported_and_an_error(corpus, tmp_path, caplog):
    """A label line with an invisible prefix (U+200B) used to be taken for a header line: its
    utterance silently disappeared."""
    path = corpus / "Session2" / "dialog" / "EmoEvaluation" / "Ses02F_impro01.txt"
    lines = path.read_text().splitlines()
    assert lines[6].startswith("[1.0000 - 1.9000]\tSes02F_impro01_M000")
    lines[6] = "\u200b" + lines[6]
    path.write_text("\n".join(lines) + "\n")
    transcript = corpus / "Session2" / "dialog" / "transcriptions" / "Ses02F_impro01.txt"
    with caplog.at_level(logging.WARNING), pytest.raises(DataDirError) as e:
        prepare(corpus, tmp_path)
    assert str(e.value).startswith(
        f"2 label line(s) that do not parse or utterance(s) with a wav and a transcript but no "
        f"label (each listed above), e.g. {path}:7: cannot parse label line '\\u200b[1.0000")
    assert "--skip-unlabelled" in str(e.value)
    assert f"{path}:7: cannot parse label line" in caplog.text
    assert (f"{transcript}:4: utterance Ses02F_impro01_M000 has a wav and a transcript but no "
            f"label (expected in {path})") in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        out = prepare(corpus, tmp_path, skip_unlabelled=True)
    assert "2 label line(s) or utterance(s) without a parsed label dropped" in caplog.text
    assert f"{path}:7: cannot parse label line" in caplog.text
    assert len(read_data_dir(out / "all")["utt2spk"]) == 5 * 8 + 1 - 1


def test_empty_label_file_is_reported_and_an_error(corpus, tmp_path, caplog, capsys):
    path = corpus / "Session5" / "dialog" / "EmoEvaluation" / "Ses05M_script01_1.txt"
    path.write_text("")
    with pytest.raises(SystemExit) as e:
        prepare_cli.main(["--iemocap", str(corpus), str(tmp_path / "data")])
    assert str(e.value).startswith("prepare_iemocap: 2 label line(s) that do not parse or "
                                   "utterance(s) with a wav and a transcript but no label")
    err = capsys.readouterr().err
    assert f"{path}: no label line" in err
    for utt in ("Ses05M_script01_1_F000", "Ses05M_script01_1_M000"):
        assert f"utterance {utt} has a wav and a transcript but no label" in err
    prepare_cli.main(["--iemocap", str(corpus), str(tmp_path / "data"), "--skip-unlabelled"])
    utt2spk = read_data_dir(tmp_path / "data" / "all")["utt2spk"]
    assert len(utt2spk) == 5 * 8 + 1 - 2 and "Ses05F_Ses05M_script01_1_F000" not in utt2spk


def test_transcript_overlap_reported_and_text_disjoint_removes_it(tmp_path, caplog):
    """Scripted lines are read in every session: stage 0 reports the share of test transcripts
    seen in training; --text-disjoint drops those train/dev utterances, the test sets stay."""
    root = tmp_path / "IEMOCAP_full_release"
    for s in range(1, 6):
        impro, script = f"Ses0{s}F_impro01", f"Ses0{s}M_script01_1"
        write_dialog(root, s, impro, [(f"{impro}_F000", "neu", f"Own line {s}."),
                                      (f"{impro}_M000", "ang", f"Other line {s}!"),
                                      (f"{impro}_F001", "sad", "[BREATHING]")])
        write_dialog(root, s, script, [(f"{script}_F000", "hap", "Hello, Brian."),
                                       (f"{script}_M000", "sad", "hello brian"),  # normalised: the same
                                       (f"{script}_F001", "neu", f"Scripted {s % 2}.")])
    with caplog.at_level(logging.INFO):
        out = prepare(root, tmp_path)
    # Per fold 5 test utterances with a transcript: 2 "hello brian" + "Scripted k" (in sessions
    # of the same parity, always among the 4 other sessions) are seen in training.
    assert "in the same fold's train/dev data: 60.0% overall (15/25)" in caplog.text
    assert "fold1 60.0% (3/5)" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        prepare(root, tmp_path, text_disjoint=True)
    assert "after --text-disjoint: 0.0% overall (0/25)" in caplog.text
    protocol = (out / "protocol").read_text()
    assert "text-disjoint" in protocol and "\nheadline ua\n" in protocol
    for k in range(1, 6):
        tables = {s: read_data_dir(out / f"fold{k}" / s) for s in ("train", "dev", "test")}
        test_texts = {normalize_transcript(t) for t in tables["test"]["text"].values()} - {""}
        assert len(tables["test"]["utt2spk"]) == 6  # the whole session
        for subset in ("train", "dev"):
            texts = {normalize_transcript(t) for t in tables[subset]["text"].values()}
            assert not texts & test_texts, (k, subset)
        # Only matching lines went: the own, the tags-only (empty) and the other parity's
        # scripted lines stay in training.
        other_parity = sum(s % 2 != k % 2 for s in range(1, 6))
        assert sum(len(tables[s]["utt2spk"]) for s in ("train", "dev")) == 4 * 3 + other_parity


def test_noise_tags_switch_decides_what_the_text_encoder_sees(corpus, tmp_path):
    """--noise_tags is the one switch: the recipes' text feature configs remove nothing more."""
    utt = "Ses01F_Ses01F_impro01_F002"
    confs = glob.glob(os.path.join(ROOT, "egs", "*iemocap", "conf", "feats", "*.yaml"))
    text_confs = [c for c in confs if load_config_file(c)["extractor"] == "hf_text"]
    assert len(text_confs) >= 2
    for noise_tags, expected in (("keep", "[LAUGHTER] That is great."), ("strip", "That is great.")):
        text = read_data_dir(prepare(corpus, tmp_path, noise_tags=noise_tags) / "all")["text"][utt]
        for conf in text_confs:
            assert clean_transcript(text, load_config_file(conf)["tag_pattern"]) == expected, conf
    # The extractor's own default would strip the tags again.
    assert clean_transcript("[LAUGHTER] That is great.", DEFAULT_TAG_PATTERN) == "That is great."
