"""Feature storage: Kaldi ark/scp written by parallel jobs, merged into one dump dir, read lazily.

A dump dir (``dump/<name>/``) holds

- ``feats.scp``       ``<utt> <dump_dir>/feats.<job>.ark:<offset>``, sorted in C order; one 2-D
                      matrix (T, L*D) per utterance, layer-major: columns [l*D:(l+1)*D] are the
                      l-th layer listed in the config;
- ``utt2num_frames``  T of each utterance;
- ``feat_conf.yaml``  the resolved extractor config plus ``storage``, ``modality`` (audio|text),
                      ``dim`` (D), ``num_layers`` (L) and ``frame_rate`` (frames/s; null for text);
- ``skipped``         ``<utt> <reason>`` for every data-dir utterance that has no features;
- ``.done``           written last by the merge.

Ark paths in feats.scp are as given by ``--out-dir`` (Kaldi convention: relative to the recipe
directory), so read them from there. ``storage:`` chooses how each matrix is stored
(bench/bench_data_path.py measures them):

- ``float16``           an NPY float16 array inside the ark (kaldiio's ``write_function="numpy"``;
                        kaldiio.load_scp reads it with np.load, no pickle): 2 bytes per value,
                        relative error at most 2^-11; values beyond +-65504 are an error. Reads
                        fastest (no decompression).
- ``float32``           a Kaldi float matrix (FM), 4 bytes per value, exact.
- ``kaldi_compressed``  a Kaldi compressed matrix (``compression_method``, default 2 =
                        kSpeechFeature, CM): 8 bits per value between per-column percentiles, about
                        a quarter of float32; the error per value stays within 1/128 of its column's
                        range (plus 1/65535 of the matrix's range), measured in
                        test/features/test_dump.py. Slow to read: every read decompresses.

``storage:`` unset (null) keeps the older ``compress:`` key's meaning: ``compress: true`` is
``kaldi_compressed``, false is ``float32``.

Reader API for training and inference::

    conf = load_feat_conf("dump/fbank")          # or the path of its feats.scp
    feats = open_feats("dump/fbank/feats.scp")   # lazy mapping utt -> float32 (T, L*D)
    x = feats[utt].reshape(len(feats[utt]), conf["num_layers"], conf["dim"])
    shapes = read_shapes("dump/fbank/feats.scp")  # {utt: (T, L*D)} from the headers only
    headers = read_headers("dump/fbank/feats.scp")  # {utt: (T, L*D, bytes per value)}

``kaldiio.load_scp`` reads every storage too (float16 comes back as float16).
"""
import contextlib
import os
import struct
from collections.abc import Mapping

import kaldiio
import numpy as np
import yaml

from mser.io.datadir import DataDirError, read_table, write_table
from mser.utils.fileio import atomic_open

FEAT_CONF = "feat_conf.yaml"
STORAGES = ("float16", "float32", "kaldi_compressed")
COMPRESSED = ("CM", "CM2", "CM3")  # Kaldi compressed matrix types; the header has rows, cols
NPY_DTYPES = (np.dtype("<f2"), np.dtype("<f4"))
FLOAT16_MAX = float(np.finfo(np.float16).max)  # 65504


class FeatureConfigError(ValueError):
    """A feature config that cannot be used; the message names the key and the fix."""


def storage_name(conf):
    """The storage a feature config asks for: ``storage:``, or the older ``compress:`` if null."""
    storage = conf.get("storage")
    if storage is None:
        return "kaldi_compressed" if conf.get("compress") else "float32"
    if storage not in STORAGES:
        raise FeatureConfigError(f"storage: {storage!r} is not one of {', '.join(STORAGES)} "
                                 f"(see mser/io/storage.py)")
    if conf.get("compress") and storage != "kaldi_compressed":
        raise FeatureConfigError(f"compress: true contradicts storage: {storage}; remove "
                                 f"compress: (the older spelling of storage: kaldi_compressed)")
    return storage


def load_feat_conf(dump_dir_or_scp):
    """The feat_conf.yaml of a dump dir, given the dir or a file (feats.scp) inside it."""
    path = dump_dir_or_scp if os.path.isdir(dump_dir_or_scp) else os.path.dirname(dump_dir_or_scp)
    conf_path = os.path.join(path, FEAT_CONF)
    if not os.path.exists(conf_path):
        raise DataDirError(f"{conf_path}: not found; extract the features first "
                           f"(utils/dump_feats.sh <conf.yaml> <data_dir> {path})")
    with open(conf_path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_feat_info(scp):
    """The feat_conf.yaml of ``scp``'s dump dir, which must describe its stream (``modality``,
    ``dim``, ``num_layers``: what a model is built for)."""
    info = load_feat_conf(scp)
    missing = [k for k in ("modality", "dim", "num_layers") if k not in (info or {})]
    if missing:
        raise DataDirError(f"{os.path.join(os.path.dirname(scp), FEAT_CONF)}: lacks {missing}; "
                           f"re-run the feature merge")
    return info


def _read_scp(scp):
    """{utt: (ark, offset)} of a feats.scp; mser writes plain ``ark:offset`` entries only."""
    entries = {}
    for utt, entry in read_table(scp).items():
        ark, _, offset = entry.rpartition(":")
        if not ark or not offset.isdigit():
            raise DataDirError(f"{scp}: utterance {utt}: expected '<ark>:<offset>', got {entry!r} "
                               f"(slices, pipes and ascii arks are not supported)")
        entries[utt] = (ark, int(offset))
    return entries


def _parse_header(f):
    """(type, rows, cols, dtype of the data that follows; None if compressed) of the matrix at
    ``f``'s position, leaving ``f`` at its data; else a description of what is there."""
    start = f.read(2)
    if start == b"\0B":
        kind = f.read(4).partition(b" ")[0].decode("ascii", "replace")
        f.seek(len(kind) + 1 - 4, os.SEEK_CUR)
        if kind == "FM":
            _, rows, _, cols = struct.unpack("<cici", f.read(10))
            return kind, rows, cols, np.dtype("<f4")
        if kind in COMPRESSED:
            _, _, rows, cols = struct.unpack("<ffii", f.read(16))
            return kind, rows, cols, None
        return f"a Kaldi {kind!r} entry"
    if start == b"NP" and f.read(1) == b"Y":
        f.read(f.read(1)[0])  # kaldiio's length of the NPY file that follows
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
            np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read(f)
        if len(shape) == 2 and not fortran_order and dtype in NPY_DTYPES:
            return "NPY", *shape, dtype
        return f"an NPY {dtype} array of shape {shape}{' (Fortran order)' if fortran_order else ''}"
    return f"an entry starting {start!r}"


def _read_header(f, where):
    """:func:`_parse_header`, or an error naming ``where`` if it is not a matrix mser writes."""
    try:
        header = _parse_header(f)
    except (struct.error, IndexError, ValueError) as e:  # truncated or garbled
        header = f"an unreadable header ({e})"
    if isinstance(header, str):
        raise DataDirError(f"{where}: {header}, not a matrix mser writes (Kaldi FM, CM, CM2, CM3 "
                           f"or a C-order 2-D float16/float32 NPY array); re-extract the features")
    return header


def _read_matrix(f, where, dtype=np.float32):
    """The matrix at ``f``'s position as ``dtype`` (None: as stored; compressed: float32)."""
    offset = f.tell()
    kind, rows, cols, stored = _read_header(f, where)
    if kind in COMPRESSED:
        f.seek(offset)
        return np.asarray(kaldiio.matio.read_matrix_or_vector(f), dtype=dtype or np.float32)
    data = bytearray(rows * cols * stored.itemsize)
    if f.readinto(data) != len(data):
        raise DataDirError(f"{where}: truncated matrix ({rows} x {cols} {stored}); re-extract")
    return np.frombuffer(data, dtype=stored).reshape(rows, cols).astype(dtype or stored,
                                                                        copy=False)


class FeatsReader(Mapping):
    """Lazy mapping utterance -> (T, L*D) matrix of a feats.scp, any mser storage.

    Matrices come as ``dtype`` (default float32); ``dtype=None`` gives them as stored (float16
    stays float16: half the memory, and numpy's float16 -> float32 cast is the main cost of
    reading it, which torch's ``.float()`` does ~10x faster). Reads only the formats mser writes
    (never unpickles, unlike kaldiio for ``PKL`` entries) and opens the ark per read, so it can
    be shared with forked DataLoader workers.
    """

    def __init__(self, scp, dtype=np.float32):
        self.scp, self.dtype = scp, dtype
        self.entries = _read_scp(scp)

    def __getitem__(self, utt):
        ark, offset = self.entries[utt]
        with open(ark, "rb") as f:
            f.seek(offset)
            return _read_matrix(f, f"{self.scp}: utterance {utt} ({ark}:{offset})", self.dtype)

    def __contains__(self, utt):
        return utt in self.entries

    def __iter__(self):
        return iter(self.entries)

    def __len__(self):
        return len(self.entries)


def open_feats(scp, dtype=np.float32):
    """Lazy mapping utterance -> (T, L*D) matrix, float32 by default (:class:`FeatsReader`)."""
    if not os.path.exists(scp):
        raise DataDirError(f"{scp}: not found; extract the features first (utils/dump_feats.sh)")
    reader = FeatsReader(scp, dtype)
    arks = {ark for ark, _ in reader.entries.values()}
    missing = sorted(ark for ark in arks if not os.path.exists(ark))
    if missing:
        raise DataDirError(f"{scp}: refers to {missing[0]}, which does not exist from "
                           f"{os.getcwd()}; ark paths are relative to the recipe directory, run "
                           f"from there")
    return reader


def read_headers(scp):
    """{utt: (rows, cols, bytes per value as read with ``dtype=None``)} of every matrix of
    ``scp`` (in scp order), from the matrix headers only: no data is read or decompressed (a
    compressed matrix reads as float32: 4 bytes). Each ark is read once, in offset order."""
    entries = _read_scp(scp)
    headers = {}
    by_ark = {}
    for utt, (ark, offset) in entries.items():
        by_ark.setdefault(ark, []).append((offset, utt))
    for ark, items in by_ark.items():
        try:
            f = open(ark, "rb")
        except FileNotFoundError:
            raise DataDirError(f"{scp}: refers to {ark}, which does not exist from "
                               f"{os.getcwd()}") from None
        with f:
            for offset, utt in sorted(items):
                f.seek(offset)
                _, rows, cols, stored = _read_header(f, f"{scp}: utterance {utt} "
                                                        f"({ark}:{offset})")
                headers[utt] = (rows, cols, 4 if stored is None else stored.itemsize)
    return {utt: headers[utt] for utt in entries}


def read_shapes(scp):
    """{utt: (rows, cols)} of every matrix of ``scp`` from the headers (:func:`read_headers`)."""
    return {utt: (rows, cols) for utt, (rows, cols, _) in read_headers(scp).items()}


def read_utt2num_frames(path):
    return {utt: int(n) for utt, n in read_table(path).items()}


def job_paths(out_dir, job):
    """File names of one extraction job's outputs."""
    return {name: os.path.join(out_dir, pattern.format(job)) for name, pattern in
            {"ark": "feats.{}.ark", "scp": "feats.{}.scp", "num_frames": "utt2num_frames.{}",
             "skipped": "skipped.{}", "done": ".done.{}"}.items()}


class JobArkWriter:
    """Writes one job's ark under a temporary name; ``commit`` renames it and writes its scp.

    Until ``commit`` there is no ``feats.JOB.scp`` (an existing one is removed at the start), so
    a job killed mid-way leaves nothing that a merge could pick up.
    """

    def __init__(self, out_dir, job, storage="float32", compression_method=2):
        if storage not in STORAGES:
            raise ValueError(f"storage {storage!r} is not one of {STORAGES}")
        self.paths = job_paths(out_dir, job)
        self.storage, self.compression_method = storage, compression_method
        for name in ("done", "scp", "num_frames", "skipped"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.paths[name])
        self.tmp_ark = self.paths["ark"] + ".tmp"
        self.ark = open(self.tmp_ark, "wb")
        self.offsets, self.num_frames = {}, {}

    def write(self, utt, feats):
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if feats.ndim != 2:
            raise ValueError(f"utterance {utt}: features must be 2-D, got shape {feats.shape}")
        self.offsets[utt] = self.ark.tell() + len((utt + " ").encode("utf-8"))
        if self.storage == "float16":
            peak = float(np.abs(feats).max(initial=0))
            if peak > FLOAT16_MAX:
                raise ValueError(f"utterance {utt}: a value of magnitude {peak:g} does not fit "
                                 f"float16 (max 65504); use storage: float32")
            kaldiio.save_ark(self.ark, {utt: feats.astype(np.float16)}, write_function="numpy")
        else:
            method = self.compression_method if self.storage == "kaldi_compressed" else None
            kaldiio.save_ark(self.ark, {utt: feats}, compression_method=method)
        self.num_frames[utt] = len(feats)

    def commit(self, skipped):
        """Publish the ark, scp, utt2num_frames and skipped (``{utt: reason}``) of the job."""
        self.ark.flush()
        os.fsync(self.ark.fileno())
        self.ark.close()
        os.replace(self.tmp_ark, self.paths["ark"])
        write_table(self.paths["num_frames"], self.num_frames)
        write_table(self.paths["skipped"], skipped)
        write_table(self.paths["scp"], {utt: f"{self.paths['ark']}:{offset}"
                                        for utt, offset in self.offsets.items()})

    def abort(self):
        self.ark.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp_ark)


def write_feat_conf(out_dir, conf):
    with atomic_open(os.path.join(out_dir, FEAT_CONF), "w", encoding="utf-8") as f:
        yaml.safe_dump(conf, f, sort_keys=False)
