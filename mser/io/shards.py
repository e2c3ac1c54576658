"""Sharded jobs over a data dir's table, shared by the feature dump (mser.features.dump) and ASR
(mser.asr): job ``j`` of ``nj`` takes a contiguous slice, writes its outputs and then a done
file holding the fingerprint of (options, its slice); a re-run skips a job whose done file
matches, and the merge refuses until every job's does. The merged output's own ``.done`` holds
the fingerprint of the whole table.
"""
import contextlib
import hashlib
import os

import yaml

from mser.io.datadir import DataDirError
from mser.utils.fileio import atomic_write_text

MERGED_DONE = ".done"


def job_slice(table, nj, job):
    if not 1 <= job <= nj:
        raise ValueError(f"--job {job} is not in 1..{nj}")
    items = list(table.items())
    return dict(items[(job - 1) * len(items) // nj: job * len(items) // nj])


def fingerprint(options, table):
    digest = hashlib.sha256(yaml.safe_dump(options, sort_keys=True).encode("utf-8"))
    for utt, value in table.items():
        digest.update(f"{utt} {value}\n".encode("utf-8"))
    return digest.hexdigest()


def read_done(path):
    """A done file's dict (YAML; older ASR jobs wrote JSON, which YAML reads), or None."""
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def write_done(path, stamp, **info):
    atomic_write_text(path, yaml.safe_dump({"fingerprint": stamp, **info}, sort_keys=False))


def current_done(path, options, table):
    """The done file at ``path`` if it matches (``options``, ``table``), else None."""
    done = read_done(path)
    return done if done and done["fingerprint"] == fingerprint(options, table) else None


def start_job(out_dir, stale):
    """A job is about to (re)write its outputs: the merged ones (``stale``, with the merged done
    file) no longer hold, so they go."""
    for name in (MERGED_DONE, *stale):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(out_dir, name))
    os.makedirs(out_dir, exist_ok=True)


def finished_jobs(out_dir, options, table, nj, done_path, log):
    """The done files of jobs 1..``nj`` (``done_path(job)``), each matching its slice of
    ``table``; DataDirError naming the first job that has not finished (its log: ``log(job)``)."""
    dones = []
    for job in range(1, nj + 1):
        done = current_done(done_path(job), options, job_slice(table, nj, job))
        if done is None:
            raise DataDirError(f"{out_dir}: job {job}/{nj} has not finished with these options "
                               f"and data dir (see {log(job)}); rerun it")
        dones.append(done)
    return dones


def merged_is_done(out_dir, options, table):
    return current_done(os.path.join(out_dir, MERGED_DONE), options, table) is not None


def write_merged_done(out_dir, options, table):
    write_done(os.path.join(out_dir, MERGED_DONE), fingerprint(options, table))
