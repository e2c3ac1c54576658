"""Helpers for the corpus tests: tiny sound files, data-dir checks, the recipes' local/data.sh."""
import os
import subprocess

import numpy as np
import pytest
import soundfile

from mser.io.datadir import read_data_dir, read_table, validate_data_dir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_tone(path, seconds=0.1, rate=16000, amplitude=0.1):
    path.parent.mkdir(parents=True, exist_ok=True)
    tone = amplitude * np.sin(2 * np.pi * 220 * np.arange(int(seconds * rate)) / rate)
    soundfile.write(path, tone, rate, subtype="PCM_16")
    return path


def check_prepared(out):
    """Validate every written dir; return {fold: {subset: {utt: speaker}}} and the protocol."""
    assert validate_data_dir(str(out / "all")) == []
    protocol = read_table(str(out / "protocol"))
    folds = {}
    for fold in protocol["folds"].split():
        folds[fold] = {}
        for subset in sorted(p.name for p in (out / fold).iterdir()):
            assert validate_data_dir(str(out / fold / subset), check_wavs=False) == []
            assert (out / fold / subset / "classes.txt").read_text() == \
                (out / "all" / "classes.txt").read_text()
            folds[fold][subset] = read_data_dir(str(out / fold / subset))["utt2spk"]
    return folds, protocol


def assert_speaker_independent(folds):
    for fold, subsets in folds.items():
        speakers = {name: set(utt2spk.values()) for name, utt2spk in subsets.items()}
        for a in speakers:
            for b in speakers:
                assert a == b or not speakers[a] & speakers[b], (fold, a, b)


@pytest.fixture
def tone():
    """write_tone(path, seconds=0.1, rate=16000, amplitude=0.1): a short sine wav."""
    return write_tone


@pytest.fixture
def prepared():
    """check_prepared(out): validate the written dirs; ({fold: {subset: utt2spk}}, protocol)."""
    return check_prepared


@pytest.fixture
def speaker_independent():
    """assert_speaker_independent(folds): no speaker in two subsets of a fold."""
    return assert_speaker_independent


@pytest.fixture
def data_sh():
    """data_sh(recipe, *args): run egs/<recipe>/local/data.sh; the CompletedProcess."""
    if not os.path.isfile(os.path.join(ROOT, "tools", "venv", "bin", "activate")):
        pytest.skip("needs tools/venv: run bash tools/install.sh")

    def run(recipe, *args):
        return subprocess.run(["bash", "local/data.sh", *map(str, args)], text=True, timeout=300,
                              cwd=os.path.join(ROOT, "egs", recipe), capture_output=True)
    return run
