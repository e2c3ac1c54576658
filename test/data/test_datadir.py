"""Kaldi data dirs: reading, validation of broken dirs, fixing, splitting."""
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from mser.io.datadir import (DataDirError, fix_data_dir, read_data_dir, read_table, split_scp,
                               utt2spk_to_spk2utt, validate_data_dir, write_data_dir)

UTTS = {"spkA_u1": "spkA", "spkA_u2": "spkA", "spkB_u1": "spkB"}


def make_dir(tmp_path, name="d"):
    data = tmp_path / name
    wavs = {}
    for utt in UTTS:
        path = tmp_path / f"{utt}.wav"
        soundfile.write(path, np.zeros(1600, dtype=np.float32), 16000)
        wavs[utt] = str(path)
    write_data_dir(data, {"wav.scp": wavs, "utt2spk": dict(UTTS),
                          "text": {u: "hello there" for u in UTTS},
                          "utt2emo": {u: "neu" for u in UTTS},
                          "utt2dur": {u: "0.1" for u in UTTS}})
    return data


def test_written_dir_is_valid_and_sorted(tmp_path):
    data = make_dir(tmp_path)
    assert validate_data_dir(data) == []
    assert (data / "spk2utt").read_text() == "spkA spkA_u1 spkA_u2\nspkB spkB_u1\n"
    assert list(read_table(data / "utt2spk")) == sorted(UTTS)


def test_validator_reports_every_problem(tmp_path):
    data = make_dir(tmp_path)
    (data / "utt2emo").write_text("spkB_u1 neu\nspkA_u1 ang\n")  # unsorted, one missing
    with open(data / "text", "a") as f:
        f.write("spkC_u9 stray line\n")
    os.unlink(tmp_path / "spkA_u2.wav")
    (data / "utt2dur").write_text("spkA_u1 0.1\nspkA_u2 abc\nspkB_u1 0.1\n")
    problems = "\n".join(validate_data_dir(data))
    assert "utt2emo:2: not sorted" in problems
    assert "utt2emo: 1 utterance(s) missing from utt2emo" in problems and "spkA_u2" in problems
    assert "text: 1 utterance(s) only in text" in problems and "spkC_u9" in problems
    assert "utt2dur:2: utterance spkA_u2: expected a positive number, got 'abc'" in problems
    assert "wav.scp:2: utterance spkA_u2: cannot read" in problems


def test_validator_flags_malformed_lines_and_speaker_prefix(tmp_path):
    data = make_dir(tmp_path)
    (data / "utt2spk").write_text("spkA_u1 spkA\nspkA_u2 spkB\nspkB_u1\n")
    problems = "\n".join(validate_data_dir(data, check_wavs=False))
    assert f"{data}/utt2spk:3: expected '<key> <value>'" in problems
    (data / "utt2spk").write_text("spkA_u1 spkA\nspkA_u2 spkB\nspkB_u1 spkB\n")
    problems = "\n".join(validate_data_dir(data, check_wavs=False))
    assert "utterance id 'spkA_u2' does not begin with its speaker id 'spkB'" in problems
    assert "spk2utt: disagrees with utt2spk" in problems


def test_duplicate_key_names_file_and_line(tmp_path):
    path = tmp_path / "utt2emo"
    path.write_text("a neu\nb ang\na sad\n")
    with pytest.raises(DataDirError, match=r"utt2emo:3: duplicate key 'a'"):
        read_table(path)


def test_fix_keeps_intersection_and_reports_drops(tmp_path):
    data = make_dir(tmp_path)
    (data / "utt2emo").write_text("spkB_u1 neu\nspkA_u1 ang\n")
    dropped = fix_data_dir(data)
    assert dropped["utt2emo"] == 0 and dropped["wav.scp"] == 1 and dropped["utt2spk"] == 1
    tables = read_data_dir(data)
    assert all(list(t) == ["spkA_u1", "spkB_u1"] for t in tables.values())
    assert validate_data_dir(data) == []
    assert (data / ".backup" / "wav.scp").read_text().count("\n") == 3


def test_fix_cli_prints_summary(tmp_path):
    data = make_dir(tmp_path)
    (data / "text").write_text("spkA_u1 hi\n")
    out = subprocess.run([sys.executable, "-m", "mser.bin.fix_data_dir", str(data)],
                         capture_output=True, text=True)
    assert out.returncode == 0
    assert "wav.scp: 2" in out.stderr and "text: 0" in out.stderr


def test_validate_cli_exit_code(tmp_path):
    data = make_dir(tmp_path)
    ok = subprocess.run([sys.executable, "-m", "mser.bin.validate_data_dir", str(data)],
                        capture_output=True, text=True)
    assert ok.returncode == 0
    (data / "wav.scp").unlink()  # a text-only data dir (MELD from its CSVs) is valid
    assert validate_data_dir(str(data), check_wavs=True) == []
    (data / "text").unlink()
    (data / "utt2spk").unlink()
    bad = subprocess.run([sys.executable, "-m", "mser.bin.validate_data_dir", str(data)],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "utt2spk: required file is missing" in bad.stderr
    assert "neither wav.scp nor text" in bad.stderr


def write_scp(path, n_per_spk):
    lines = [f"spk{s}_u{i:02d} x" for s, n in enumerate(n_per_spk) for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return {line.split()[0]: line.split("_")[0] for line in lines}


@pytest.mark.parametrize("n_lines,n_parts", [(10, 3), (7, 7), (100, 4)])
def test_split_scp_contiguous_balanced(tmp_path, n_lines, n_parts):
    scp = tmp_path / "wav.scp"
    write_scp(scp, [n_lines])
    outs = [tmp_path / f"p{i}.scp" for i in range(n_parts)]
    split_scp(scp, outs)
    parts = [o.read_text().splitlines() for o in outs]
    assert sum(parts, []) == scp.read_text().splitlines()
    sizes = [len(p) for p in parts]
    assert max(sizes) - min(sizes) <= 1


def test_split_scp_keeps_speakers_whole(tmp_path):
    scp = tmp_path / "wav.scp"
    utt2spk = write_scp(scp, [5, 1, 4, 3, 3])
    outs = [tmp_path / f"p{i}.scp" for i in range(3)]
    split_scp(scp, outs, utt2spk=utt2spk)
    parts = [o.read_text().splitlines() for o in outs]
    assert sum(parts, []) == scp.read_text().splitlines()
    speakers = [{utt2spk[line.split()[0]] for line in p} for p in parts]
    assert all(speakers) and not (speakers[0] & speakers[1] or speakers[1] & speakers[2])
    with pytest.raises(DataDirError, match="cannot split 5 speakers into 6"):
        split_scp(scp, [tmp_path / f"q{i}" for i in range(6)], utt2spk=utt2spk)


def test_utt2spk_to_spk2utt_groups_in_c_order():
    assert utt2spk_to_spk2utt({"b_2": "b", "a_1": "a", "b_1": "b"}) == {"a": "a_1", "b": "b_1 b_2"}


def run_validate_sh(data):
    """utils/validate_data_dir.sh as a recipe runs it (python3 of the venv first on PATH)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    return subprocess.run(["bash", os.path.join(root, "utils", "validate_data_dir.sh"), str(data)],
                          capture_output=True, text=True, env=env)


def test_non_utf8_file_names_file_line_and_encoding(tmp_path):
    data = make_dir(tmp_path)
    (data / "text").write_bytes(b"spkA_u1 hello\nspkA_u2 caf\xe9 au lait\nspkB_u1 hi\n")
    with pytest.raises(DataDirError, match=r"text:2: not UTF-8 \(byte 0xe9 at offset 25\).*iconv"):
        read_table(data / "text")
    out = run_validate_sh(data)
    assert out.returncode == 1 and f"{data}/text:2: not UTF-8" in out.stderr
    assert "Traceback" not in out.stderr
    (data / "wav.scp").write_bytes(b"spkA_u1 /x/\xff.wav\n")
    with pytest.raises(DataDirError, match=r"wav.scp:1: not UTF-8"):
        split_scp(data / "wav.scp", [tmp_path / "p1"])


def test_validator_flags_invisible_id_characters_and_unknown_labels(tmp_path):
    data = make_dir(tmp_path)
    for name in ("utt2spk", "wav.scp", "text", "utt2emo", "utt2dur"):
        path = data / name
        path.write_text(path.read_text().replace("spkB_u1", "spkB\u00a0u1"))
    (data / "utt2emo").write_text("spkA_u1 neu\nspkA_u2 xxx\nspkB\u00a0u1 xxx\n")
    (data / "classes.txt").write_text("neu\nhap\nang\nsad\n")
    (data / "spk2utt").unlink()
    problems = "\n".join(validate_data_dir(data, check_wavs=False))
    assert f"{data}/utt2spk:3: 1 line(s) with an id holding a space or non-printable " \
           f"character, e.g. 'spkB\\xa0u1' (U+00A0 NO-BREAK SPACE)" in problems
    assert f"{data}/utt2emo:2: 2 utterance(s) labelled 'xxx', which is not in classes.txt " \
           f"(ang hap neu sad), e.g. spkA_u2" in problems
    (data / "utt2emo").write_text("spkA_u1 neu\nspkA_u2 sad\nspkB\u00a0u1 ang\n")
    (data / "utt2spk").write_text("spkA_u1 spkA\nspkA_u2 spkA\nspkB\u200bu1 spkB\u200b\n")
    problems = "\n".join(validate_data_dir(data, check_wavs=False))
    assert "U+200B ZERO WIDTH SPACE" in problems and "not in classes.txt" not in problems


def test_validator_lists_pipe_commands(tmp_path):
    data = make_dir(tmp_path)
    wav = tmp_path / "spkA_u1.wav"
    (data / "wav.scp").write_text(f"spkA_u1 sox {wav} -t wav - |\nspkA_u2 {wav}\n"
                                  f"spkB_u1 cat {wav} |\n")
    out = run_validate_sh(data)
    assert out.returncode == 0, out.stderr
    assert "wav.scp: 2 entry(ies) are shell commands, run whenever the audio is read" in out.stderr
    assert f"  spkA_u1: sox {wav} -t wav -\n  spkB_u1: cat {wav}\n" in out.stderr
    (data / "wav.scp").write_text("".join(f"{u} cat {wav} |\n" for u in UTTS))
    with_many = subprocess.run([sys.executable, "-c", "import sys; from mser.bin import "
                                "validate_data_dir as v; v.MAX_LISTED_COMMANDS = 2; v.main()",
                                str(data)], capture_output=True, text=True)
    assert "  cat: 3 command(s)\n" in with_many.stderr and "grep '|$'" in with_many.stderr


def test_task_labels_cover_every_utterance_or_none(tmp_path):
    """utt2<task> tables from a corpus's Utterance.targets: all or none of the utterances, a
    known task; validation checks their ids, and numbers where a dimension is rated."""
    from mser.data.corpus import Utterance, utterance_tables

    def utt(name, targets):
        return Utterance(f"spk1_{name}", "spk1", "s1", "neu", "hi", None, 1.0, targets=targets)

    tables = utterance_tables([utt("a", {"arousal": "2.5"}), utt("b", {"arousal": "4"})])
    assert tables["utt2arousal"] == {"spk1_a": "2.5", "spk1_b": "4"}
    with pytest.raises(DataDirError, match="1 utterance.s. have no arousal label .e.g. spk1_b"):
        utterance_tables([utt("a", {"arousal": "2.5"}), utt("b", None)])
    with pytest.raises(DataDirError, match="utt2mood: no task label table"):
        utterance_tables([utt("a", {"mood": "x"})])
    write_data_dir(str(tmp_path), {**tables, "utt2arousal": {"spk1_a": "2.5", "spk1_b": "high"}})
    problems = validate_data_dir(str(tmp_path), check_wavs=False)
    assert any("utt2arousal:2: utterance spk1_b: expected a number, got 'high'" in p
               for p in problems), problems
