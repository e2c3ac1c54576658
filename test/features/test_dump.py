"""Dumping: ark/scp round trip through parallel jobs + merge, bad audio, resuming, the shell script."""
import os
import subprocess
import sys

import numpy as np
import pytest

import mser.features.dump as dump
from mser.io.datadir import DataDirError, read_table
from mser.features import build_extractor, load_extractor, resolve_config
from mser.features.audio import BadUtteranceError, read_wav
from mser.io.storage import load_feat_conf, open_feats

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DURATIONS = {"spk1_a": 1.2, "spk1_b": 0.7, "spk2_a": 2.05, "spk2_b": 1.0, "spk3_a": 0.45}


def run_dump(conf, data, out, nj):
    for job in range(1, nj + 1):
        dump.run_job(conf, data, out, nj, job)
    dump.merge(conf, data, out, nj)


def expected_feats(conf, data):
    extractor = build_extractor(conf)
    return {utt: extractor.extract_wav(*read_wav(utt, wav))
            for utt, wav in read_table(f"{data}/wav.scp").items()}


@pytest.mark.parametrize("nj", [1, 2])
def test_fbank_round_trip_is_exact(make_data_dir, tmp_path, nj):
    data = make_data_dir(DURATIONS)
    conf = resolve_config({"extractor": "fbank", "use_pitch": True, "use_energy": True})
    out = str(tmp_path / "dump")
    run_dump(conf, data, out, nj)
    feats = open_feats(f"{out}/feats.scp")
    want = expected_feats(conf, data)
    assert list(feats) == sorted(DURATIONS)
    for utt in DURATIONS:
        np.testing.assert_array_equal(feats[utt], want[utt])
    utt2num_frames = read_table(f"{out}/utt2num_frames")
    assert {u: int(n) for u, n in utt2num_frames.items()} == {u: len(f) for u, f in want.items()}
    feat_conf = load_feat_conf(f"{out}/feats.scp")
    assert (feat_conf["modality"], feat_conf["dim"], feat_conf["num_layers"],
            feat_conf["frame_rate"]) == ("audio", 84, 1, 100.0)
    assert os.path.getsize(f"{out}/skipped") == 0
    assert not [f for f in os.listdir(out) if f.endswith(".tmp")]
    # The saved config rebuilds the same pipeline for inference.
    wave, rate = read_wav("spk1_a", read_table(f"{data}/wav.scp")["spk1_a"])
    np.testing.assert_array_equal(load_extractor(out).extract_wav(wave, rate), feats["spk1_a"])


def test_ssl_round_trip_with_two_jobs_and_compression(make_data_dir, tmp_path, w2v2_dir):
    data = make_data_dir(DURATIONS)
    conf = resolve_config({"extractor": "hf_ssl", "model_dir": w2v2_dir, "layers": [1, 3],
                           "batch_seconds": 3})
    run_dump(conf, data, str(tmp_path / "plain"), 2)
    run_dump({**conf, "compress": True}, data, str(tmp_path / "compressed"), 2)
    want = expected_feats(conf, data)
    plain = open_feats(str(tmp_path / "plain" / "feats.scp"))
    compressed = open_feats(str(tmp_path / "compressed" / "feats.scp"))
    for utt, feats in want.items():
        np.testing.assert_allclose(plain[utt], feats, atol=1e-4)  # batched vs alone
        # Compressed (documented in storage.py): within 1/128 of each column's range, plus the
        # 16-bit rounding of the per-matrix range.
        tolerance = (feats.max(0) - feats.min(0)) / 128 + (feats.max() - feats.min()) / 30000
        assert (np.abs(compressed[utt] - plain[utt]) <= tolerance).all()
    assert load_feat_conf(str(tmp_path / "plain"))["frame_rate"] == 50.0


@pytest.mark.parametrize("bad", ["corrupt", None])
def test_bad_audio_names_the_utterance_or_is_skipped(make_data_dir, tmp_path, bad):
    data = make_data_dir({**DURATIONS, "spk2_c": bad})
    conf = resolve_config({"extractor": "fbank"})
    out = str(tmp_path / "dump")
    with pytest.raises(BadUtteranceError, match=r"utterance spk2_c: .*spk2_c\.wav: .*skip_bad"):
        dump.run_job(conf, data, out, 1, 1)
    assert not os.path.exists(f"{out}/feats.1.scp") and not os.path.exists(f"{out}/feats.1.ark.tmp")
    run_dump({**conf, "skip_bad": True}, data, out, 2)
    skipped = read_table(f"{out}/skipped")
    assert list(skipped) == ["spk2_c"]
    assert ("cannot read" if bad else "no samples") in skipped["spk2_c"]
    assert sorted(open_feats(f"{out}/feats.scp")) == sorted(DURATIONS)


def test_too_short_audio_is_a_bad_utterance(make_data_dir, tmp_path):
    data = make_data_dir({**DURATIONS, "spk3_b": 0.01})
    with pytest.raises(BadUtteranceError, match="spk3_b.*too short"):
        dump.run_job(resolve_config({"extractor": "fbank"}), data, str(tmp_path / "d"), 1, 1)


def test_finished_job_is_skipped_and_config_change_redoes_it(make_data_dir, tmp_path):
    data = make_data_dir(DURATIONS)
    conf = resolve_config({"extractor": "fbank"})
    out = str(tmp_path / "dump")
    run_dump(conf, data, out, 2)
    mtime = os.path.getmtime(f"{out}/feats.1.ark")
    assert dump.run_job(conf, data, out, 2, 1) is False
    assert os.path.getmtime(f"{out}/feats.1.ark") == mtime
    assert dump.is_done(conf, data, out)
    changed = {**conf, "num_mel_bins": 40}
    assert not dump.is_done(changed, data, out)
    assert dump.run_job(changed, data, out, 2, 1) is True
    assert not os.path.exists(f"{out}/feats.scp")  # the stale merged dump is withdrawn
    with pytest.raises(DataDirError, match="job 2/2 has not finished"):
        dump.merge(changed, data, out, 2)


def test_killed_job_leaves_nothing_referenced(make_data_dir, tmp_path, monkeypatch):
    data = make_data_dir(DURATIONS)
    conf = resolve_config({"extractor": "fbank"})
    out = str(tmp_path / "dump")
    run_dump(conf, data, out, 2)
    changed = {**conf, "num_mel_bins": 40}
    calls = []

    def dies_on_second_batch(self, waves):
        calls.append(len(waves))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return [self._extract_one(w) for w in waves]

    monkeypatch.setattr("mser.features.fbank.FbankExtractor.extract_batch", dies_on_second_batch)
    monkeypatch.setattr("mser.features.fbank.FbankExtractor.batch_seconds", 1.0)
    with pytest.raises(KeyboardInterrupt):
        dump.run_job(changed, data, out, 2, 1)
    assert len(calls) == 2
    assert sorted(f for f in os.listdir(out) if ".1" in f) == ["feats.1.ark"]  # the old ark only
    assert not os.path.exists(f"{out}/feats.scp") and not os.path.exists(f"{out}/.done")
    with pytest.raises(DataDirError, match="job 1/2 has not finished"):
        dump.merge(changed, data, out, 2)


def test_dump_feats_sh_from_a_recipe_dir(make_data_dir, tmp_path):
    recipe = tmp_path / "recipe"
    (recipe / "conf").mkdir(parents=True)
    os.symlink(os.path.join(ROOT, "utils"), recipe / "utils")
    (recipe / "conf" / "fbank.yaml").write_text("extractor: fbank\nnum_mel_bins: 23\n")
    data = make_data_dir(DURATIONS)
    env = {**os.environ, "PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]}
    args = ["utils/dump_feats.sh", "--nj", "2", "conf/fbank.yaml", data, "dump/fbank"]
    out = subprocess.run(args, cwd=recipe, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    assert (recipe / "dump/fbank/log/extract.2.log").exists()
    scp = (recipe / "dump/fbank/feats.scp").read_text()
    assert scp.splitlines()[0].startswith("spk1_a dump/fbank/feats.1.ark:")
    cwd = os.getcwd()
    try:
        os.chdir(recipe)
        assert open_feats("dump/fbank/feats.scp")["spk3_a"].shape == (43, 23)
    finally:
        os.chdir(cwd)
    again = subprocess.run(args, cwd=recipe, env=env, capture_output=True, text=True)
    assert again.returncode == 0 and "nothing to do" in again.stdout


@pytest.mark.parametrize("storage", ["float16", "kaldi_compressed"])
def test_merge_checks_shapes_from_headers_only(make_data_dir, tmp_path, monkeypatch, storage):
    data = make_data_dir(DURATIONS)
    conf = resolve_config({"extractor": "fbank", "storage": storage})
    out = str(tmp_path / "dump")
    for job in (1, 2):
        dump.run_job(conf, data, out, 2, job)
    with monkeypatch.context() as m:
        def no_matrix_reads(*args, **kwargs):
            raise AssertionError("merge read a whole matrix")
        for reader in ("mser.io.storage._read_matrix", "kaldiio.matio.read_kaldi",
                       "kaldiio.matio.read_matrix_or_vector"):
            m.setattr(reader, no_matrix_reads)
        dump.merge(conf, data, out, 2)
    assert load_feat_conf(out)["storage"] == storage
    assert open_feats(f"{out}/feats.scp")["spk2_a"].shape == (203, 80)
    frames = f"{out}/utt2num_frames.2"
    with open(frames) as f:
        lines = f.read().replace("spk2_a 203", "spk2_a 202")
    with open(frames, "w") as f:
        f.write(lines)
    with pytest.raises(DataDirError, match=r"feats.2.scp: utterance spk2_a has shape \(203, 80\), "
                                           r"expected \(202, 80\)"):
        dump.merge(conf, data, out, 2)


def test_a_key_added_later_at_its_old_value_keeps_existing_dumps_done():
    """truncation_side came after hf_text dumps existed: at "right" (what they were made with)
    it leaves their fingerprint as it was, so upgrading redoes no dump; "left" is a new dump."""
    from mser.features import dump_identity
    from mser.io.shards import fingerprint

    before = {"extractor": "hf_text", "layers": [3, 6, 9, 12], "max_length": 512}
    source = {"spk1_a": "hello there"}
    assert fingerprint(dump_identity({**before, "truncation_side": "right"}), source) == \
        fingerprint(before, source)
    assert fingerprint(dump_identity({**before, "truncation_side": "left"}), source) != \
        fingerprint(before, source)
