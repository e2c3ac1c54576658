"""The corpus registry: a corpus registered from this module is offered by prepare_corpus, with
its own options and their defaults, and prepares through the shared path; unknown names fail."""
import os

import pytest

from mser.bin import prepare_corpus
from mser.data.corpus import (REGISTRY, Corpus, Skips, Utterance, audio_duration, check_counts,
                              register, wav_files, write_corpus)
from mser.io.datadir import read_data_dir
from mser.data.folds import speaker_group_folds
from mser.data.protocol import read_protocol

CLASSES = ("neu", "ang")


def prepare_fake(root, out_dir, greeting="hello", expected_counts=None):
    """A fake corpus: <root>/<speaker>_<n>.wav, odd n angry; one fold per speaker."""
    utts, skips = [], Skips()
    for stem, path in wav_files(root, skips, "write the fake corpus first"):
        speaker = stem.split("_")[0]
        utts.append(Utterance(stem, speaker, speaker, CLASSES[int(stem[-1]) % 2], greeting,
                              os.path.abspath(path), audio_duration(path, stem, skips)))
    check_counts({"files": len(utts)}, expected_counts or {}, root)
    folds = speaker_group_folds(utts, [[s] for s in sorted({u.speaker for u in utts})], 1)
    protocol = {"corpus": "Fake", "description": "leave-one-speaker-out", "headline": "ua",
                "metrics": ("ua", "wa")}
    write_corpus(out_dir, utts, CLASSES, folds, protocol, skips,
                 by=("speaker", lambda u: u.speaker))


def add_arguments(parser):
    parser.add_argument("--greeting", help="the text of every utterance (default: %(default)s)")


FAKE = Corpus("fake", prepare_fake, add_arguments, "A fake corpus registered by a test.",
              count_keys=("files",))


@pytest.fixture
def fake_corpus(tmp_path, tone):
    register(FAKE)
    root = tmp_path / "fake"
    for speaker in ("s1", "s2", "s3"):
        for n in range(4):
            tone(root / f"{speaker}_{n}.wav")
    (root / "notes.txt").write_text("not audio\n")
    yield root
    del REGISTRY[FAKE.name]


def test_registered_corpus_is_offered_with_its_options(fake_corpus, capsys):
    with pytest.raises(SystemExit) as e:
        prepare_corpus.main(["--help"])
    assert e.value.code == 0 and "fake" in capsys.readouterr().out
    with pytest.raises(SystemExit) as e:
        prepare_corpus.main(["fake", "--help"])
    out = capsys.readouterr().out
    assert e.value.code == 0 and "A fake corpus registered by a test." in out
    assert "(default: hello)" in out and "--expected-counts" in out


def test_registered_corpus_prepares_through_the_shared_path(fake_corpus, tmp_path, prepared):
    out = tmp_path / "data"
    prepare_corpus.main(["fake", str(fake_corpus), str(out), "--expected-counts", "files=12"])
    folds, protocol = prepared(out)
    assert sorted(folds) == ["fold1", "fold2", "fold3"] and protocol["corpus"] == "Fake"
    assert set(read_data_dir(out / "all")["text"].values()) == {"hello"}  # the default
    assert (out / "skipped").read_text() == "notes.txt not a .wav file\n"
    prepare_corpus.main(["fake", str(fake_corpus), str(out), "--greeting", "hi"])
    assert set(read_data_dir(out / "fold2" / "test")["text"].values()) == {"hi"}
    assert read_protocol(out / "protocol")["headline"] == "ua"
    with pytest.raises(SystemExit, match="prepare_corpus fake: .*files: found 12, documented 13"):
        prepare_corpus.main(["fake", str(fake_corpus), str(out), "--expected-counts", "files=13"])
    with pytest.raises(SystemExit, match="cannot parse 'clips=12'.*keys from files"):
        prepare_corpus.main(["fake", str(fake_corpus), str(out), "--expected-counts", "clips=12"])


def test_unknown_corpus_names_the_registered_ones(capsys):
    with pytest.raises(SystemExit) as e:
        prepare_corpus.main(["nope", "root", "data"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "invalid choice: 'nope'" in err
    assert all(f"'{name}'" in err for name in ("iemocap", "meld", "ravdess", "emodb"))


def test_a_name_registered_twice_is_an_error(fake_corpus):
    with pytest.raises(ValueError, match="corpus 'fake' is registered twice"):
        register(FAKE)


def test_a_corpus_module_outside_mser_registers_from_the_command_line(tmp_path, tone, prepared):
    """--corpus-module local/<x>.py: a recipe's own corpus module, imported before the parser
    is built; its corpus prepares like a built-in one."""
    module = tmp_path / "local" / "outside.py"
    module.parent.mkdir()
    module.write_text(
        "from mser.data.corpus import Corpus, register\n"
        "from test.data.test_registry import prepare_fake, add_arguments\n"
        "register(Corpus('outside', prepare_fake, add_arguments, 'From a recipe.',\n"
        "                count_keys=('files',)))\n")
    root = tmp_path / "clips"
    for speaker in ("s1", "s2", "s3"):
        for n in range(2):
            tone(root / f"{speaker}_{n}.wav")
    try:
        prepare_corpus.main(["--corpus-module", str(module), "outside", str(root),
                             str(tmp_path / "data")])
        folds, protocol = prepared(tmp_path / "data")
        assert sorted(folds) == ["fold1", "fold2", "fold3"] and protocol["corpus"] == "Fake"
    finally:
        REGISTRY.pop("outside", None)
    with pytest.raises(SystemExit, match="--corpus-module .*missing.py: no such file"):
        prepare_corpus.main(["--corpus-module", str(tmp_path / "missing.py"), "outside"])
