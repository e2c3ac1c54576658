"""Storage options: round trips, header-only shapes for every matrix type, the config key."""
import os

import kaldiio
import numpy as np
import pytest

from mser.io.datadir import DataDirError
from mser.features import FeatureConfigError, resolve_config
from mser.io.storage import STORAGES, JobArkWriter, _read_header, open_feats, read_shapes, \
    storage_name

# 1, 8 and 9 rows: Kaldi's automatic compression switches method above 8 rows.
SHAPES = {"spk1_a": (9, 40), "spk1_b": (1, 3), "spk2_a": (8, 1), "spk2_b": (57, 256)}


def random_feats(seed=0):
    rng = np.random.default_rng(seed)
    return {utt: (rng.standard_normal(shape) * rng.uniform(0.01, 300, shape[1])
                  + rng.uniform(-50, 50, shape[1])).astype(np.float32)
            for utt, shape in SHAPES.items()}


def write_job(out_dir, feats, storage, compression_method=2):
    os.makedirs(out_dir, exist_ok=True)
    writer = JobArkWriter(out_dir, 1, storage, compression_method)
    for utt, mat in feats.items():
        writer.write(utt, mat)
    writer.commit({})
    return writer.paths["scp"]


@pytest.mark.parametrize("storage", STORAGES)
def test_round_trip(tmp_path, storage):
    feats = random_feats()
    scp = write_job(str(tmp_path), feats, storage)
    reader, kaldiio_reader = open_feats(scp), kaldiio.load_scp(scp)
    assert list(reader) == list(feats) and "spk1_b" in reader and "nope" not in reader
    for utt, want in feats.items():
        got = reader[utt]
        assert got.dtype == np.float32 and got.shape == want.shape
        # The dataset's path (kaldiio.load_scp + np.asarray float32) reads the same values.
        np.testing.assert_array_equal(np.asarray(kaldiio_reader[utt], dtype=np.float32), got)
        if storage == "float32":
            np.testing.assert_array_equal(got, want)
        elif storage == "float16":
            # Rounding to float16: relative 2^-11, absolute 2^-25 in the subnormal range.
            assert (np.abs(got - want) <= np.abs(want) * 2.0 ** -11 + 2.0 ** -25).all()
            assert not np.array_equal(got, want)
            assert open_feats(scp, dtype=None)[utt].dtype == np.float16
        else:
            tolerance = (want.max(0) - want.min(0)) / 128 + (want.max() - want.min()) / 30000
            assert (np.abs(got - want) <= tolerance + 1e-6).all()


def test_float16_is_half_of_float32_on_disk(tmp_path):
    feats = random_feats()
    sizes = {s: os.path.getsize(write_job(str(tmp_path / s), feats, s).replace(".scp", ".ark"))
             for s in ("float16", "float32")}
    assert 0.5 < sizes["float16"] / sizes["float32"] < 0.55


def test_float16_overflow_is_an_error(tmp_path):
    writer = JobArkWriter(str(tmp_path), 1, "float16")
    with pytest.raises(ValueError, match=r"utterance spk1_a: .*70000.*storage: float32"):
        writer.write("spk1_a", np.full((3, 2), 7e4, dtype=np.float32))
    writer.abort()


@pytest.mark.parametrize("storage,method,kind", [
    ("float32", None, "FM"), ("float16", None, "NPY"), ("kaldi_compressed", 2, "CM"),
    ("kaldi_compressed", 3, "CM2"), ("kaldi_compressed", 5, "CM3"),
    ("kaldi_compressed", 1, "CM")])  # automatic: CM above 8 rows, CM2 up to 8 (checked below)
def test_shapes_from_headers_equal_the_matrices(tmp_path, storage, method, kind):
    scp = write_job(str(tmp_path), random_feats(), storage, method)
    with open(scp.replace(".scp", ".ark"), "rb") as f:
        kinds = {}
        for line in open(scp):
            utt, entry = line.split()
            f.seek(int(entry.rpartition(":")[2]))
            kinds[utt] = _read_header(f, utt)[0]
    assert kinds == {u: "CM2" if method == 1 and SHAPES[u][0] <= 8 else kind for u in SHAPES}
    decompressed = {utt: mat.shape for utt, mat in kaldiio.load_scp(scp).items()}
    assert read_shapes(scp) == decompressed == SHAPES


def test_shapes_span_several_arks_in_scp_order(tmp_path):
    feats = random_feats()
    first = write_job(str(tmp_path / "a"), dict(list(feats.items())[:2]), "float16")
    second = write_job(str(tmp_path / "b"), dict(list(feats.items())[2:]), "kaldi_compressed")
    scp = tmp_path / "feats.scp"
    lines = open(second).read().splitlines() + open(first).read().splitlines()
    scp.write_text("\n".join(lines) + "\n")
    shapes = read_shapes(str(scp))
    assert list(shapes) == [line.split()[0] for line in lines]
    assert shapes == SHAPES


def test_pickled_or_truncated_entries_are_refused(tmp_path):
    ark, scp = str(tmp_path / "bad.ark"), str(tmp_path / "bad.scp")
    kaldiio.save_ark(ark, {"spk1_a": np.zeros((2, 2), np.float32)}, scp=scp,
                     write_function="pickle")
    for read in (lambda: open_feats(scp)["spk1_a"], lambda: read_shapes(scp)):
        with pytest.raises(DataDirError, match=r"bad.scp: utterance spk1_a .*not a matrix mser"):
            read()
    good = write_job(str(tmp_path / "good"), random_feats(), "float16")
    good_ark = good.replace(".scp", ".ark")
    os.truncate(good_ark, os.path.getsize(good_ark) - 10)
    with pytest.raises(DataDirError, match=r"utterance spk2_b .*truncated"):
        open_feats(good)["spk2_b"]
    os.truncate(good_ark, 40)  # inside the first header
    with pytest.raises(DataDirError, match=r"utterance spk1_a .*unreadable header"):
        read_shapes(good)


def test_storage_key(tmp_path):
    assert storage_name({"compress": True}) == "kaldi_compressed"
    assert storage_name({"compress": False}) == storage_name({}) == "float32"
    assert storage_name(resolve_config({"extractor": "fbank", "storage": "float16"})) == "float16"
    assert storage_name({"storage": "kaldi_compressed", "compress": True}) == "kaldi_compressed"
    with pytest.raises(FeatureConfigError, match="storage: 'fp16' is not one of float16, float32"):
        storage_name({"storage": "fp16"})
    with pytest.raises(FeatureConfigError, match="compress: true contradicts storage: float16"):
        storage_name({"storage": "float16", "compress": True})
