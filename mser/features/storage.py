"""Feature storage: Kaldi ark/scp written by parallel jobs, merged into one dump dir, read lazily.

A dump dir (``dump/<name>/``) holds

- ``feats.scp``       ``<utt> <dump_dir>/feats.<job>.ark:<offset>``, sorted in C order; one 2-D
                      float32 matrix (T, L*D) per utterance, layer-major: columns
                      [l*D:(l+1)*D] are the l-th layer listed in the config;
- ``utt2num_frames``  T of each utterance;
- ``feat_conf.yaml``  the resolved extractor config plus ``modality`` (audio|text), ``dim`` (D),
                      ``num_layers`` (L) and ``frame_rate`` (frames/s; null for text);
- ``skipped``         ``<utt> <reason>`` for every data-dir utterance that has no features;
- ``.done``           written last by the merge.

Ark paths in feats.scp are as given by ``--out-dir`` (Kaldi convention: relative to the recipe
directory), so read them from there. ``compress: true`` stores Kaldi compressed matrices
(``compression_method``, default 2 = kSpeechFeature): 8 bits per value between per-column
percentiles, about a quarter of the space; the error per value stays within 1/128 of its
column's range (plus 1/65535 of the matrix's range), measured in test/features/test_dump.py.

Reader API for training and inference::

    conf = load_feat_conf("dump/fbank")          # or the path of its feats.scp
    feats = open_feats("dump/fbank/feats.scp")   # lazy mapping utt -> np.ndarray (T, L*D)
    x = feats[utt].reshape(len(feats[utt]), conf["num_layers"], conf["dim"])
"""
import contextlib
import os

import kaldiio
import numpy as np
import yaml

from mser.data.datadir import DataDirError, read_table, write_table
from mser.utils.fileio import atomic_open

FEAT_CONF = "feat_conf.yaml"


def load_feat_conf(dump_dir_or_scp):
    """The feat_conf.yaml of a dump dir, given the dir or a file (feats.scp) inside it."""
    path = dump_dir_or_scp if os.path.isdir(dump_dir_or_scp) else os.path.dirname(dump_dir_or_scp)
    conf_path = os.path.join(path, FEAT_CONF)
    if not os.path.exists(conf_path):
        raise DataDirError(f"{conf_path}: not found; extract the features first "
                           f"(utils/dump_feats.sh <conf.yaml> <data_dir> {path})")
    with open(conf_path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def open_feats(scp):
    """Lazy mapping utterance -> (T, L*D) float32 matrix (kaldiio.load_scp)."""
    if not os.path.exists(scp):
        raise DataDirError(f"{scp}: not found; extract the features first (utils/dump_feats.sh)")
    with open(scp, encoding="utf-8") as f:
        first = f.readline().split(maxsplit=1)
    if first:
        ark = first[1].strip().rpartition(":")[0]
        if not os.path.exists(ark):
            raise DataDirError(f"{scp}: refers to {ark}, which does not exist from {os.getcwd()}; "
                               f"ark paths are relative to the recipe directory, run from there")
    return kaldiio.load_scp(scp)


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

    def __init__(self, out_dir, job, compression_method=None):
        self.paths = job_paths(out_dir, job)
        self.compression_method = compression_method
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
        kaldiio.save_ark(self.ark, {utt: feats}, compression_method=self.compression_method)
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
