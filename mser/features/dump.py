"""Dumping a data dir's features: parallel extraction jobs, then one merge (see storage.py).

Job ``j`` of ``nj`` takes the j-th contiguous, near-equal slice of wav.scp (audio) or text
(text), in file order. It is skipped when its ``.done.j`` records the same fingerprint (config +
its slice of the data dir), so an interrupted ``utils/dump_feats.sh`` resumes where it stopped.
A bad utterance (unreadable, empty or too short audio) is an error naming it and its file, or,
with ``skip_bad: true``, a warning and a line in ``skipped``.
"""
import logging
import os

from tqdm import tqdm

from mser.features import derived_info, dump_identity, extractor_class
from mser.features.audio import BadUtteranceError, audio_info, batches_by_length, read_wav, \
    resampled_length
from mser.features.transcript import is_empty_transcript
from mser.io.datadir import DataDirError, c_sort_key, read_table, write_table
from mser.io.shards import (current_done, finished_jobs, fingerprint, job_slice, merged_is_done,
                            start_job, write_done, write_merged_done)
from mser.io.storage import JobArkWriter, job_paths, read_shapes, read_utt2num_frames, \
    storage_name, write_feat_conf

SOURCE_FILE = {"audio": "wav.scp", "text": "text"}
TEXT_CHUNK = 1024  # transcripts handed to the extractor at once (it batches them by length)


def read_source(conf, data_dir):
    """The table the extractor reads: {utt: wav.scp entry} or {utt: transcript}."""
    modality = extractor_class(conf["extractor"]).modality
    return read_table(os.path.join(data_dir, SOURCE_FILE[modality]),
                      allow_empty_value=(modality == "text"))


def run_job(conf, data_dir, out_dir, nj, job, device="cpu"):
    """Extract job ``job`` of ``nj``; returns False when it was already done."""
    part = job_slice(read_source(conf, data_dir), nj, job)
    paths = job_paths(out_dir, job)
    if current_done(paths["done"], dump_identity(conf), part) and os.path.exists(paths["scp"]):
        logging.info("job %d/%d: already done (%s); skipping", job, nj, paths["done"])
        return False
    start_job(out_dir, stale=("feats.scp",))
    extractor = extractor_class(conf["extractor"])(conf, device=device)
    writer = JobArkWriter(out_dir, job, storage_name(conf), conf["compression_method"])
    skipped = {}
    try:
        extract = _extract_audio if extractor.modality == "audio" else _extract_text
        extract(extractor, part, writer, skipped, conf["skip_bad"])
        writer.commit(skipped)
    except BaseException:
        writer.abort()
        raise
    write_done(paths["done"], fingerprint(dump_identity(conf), part), **derived_info(extractor))
    logging.info("job %d/%d: %d utterance(s) written, %d skipped -> %s", job, nj,
                 len(writer.num_frames), len(skipped), paths["scp"])
    return True


def _bad(error, skipped, skip_bad):
    if not skip_bad:
        raise error
    logging.warning("skipping utterance %s: %s: %s", error.utt, error.source, error.reason)
    skipped[error.utt] = error.reason


def _extract_audio(extractor, wav_scp, writer, skipped, skip_bad):
    rate = extractor.sample_rate
    lengths = {}  # samples at the extractor's rate
    for utt, wav in tqdm(wav_scp.items(), desc="checking audio", unit="utt", mininterval=5):
        try:
            num_samples, wav_rate = audio_info(utt, wav)
            lengths[utt] = resampled_length(num_samples, wav_rate, rate)
            problem = extractor.length_problem(lengths[utt])
            if problem:
                raise BadUtteranceError(utt, wav, problem)
        except BadUtteranceError as e:
            lengths.pop(utt, None)
            _bad(e, skipped, skip_bad)
    utts = list(lengths)
    batches = batches_by_length([lengths[u] for u in utts], extractor.batch_seconds * rate)
    with tqdm(total=sum(lengths.values()) / rate, desc="extracting", unit="s",
              mininterval=5) as progress:
        for batch in batches:
            waveforms = {}
            for utt in (utts[i] for i in batch):
                try:
                    waveforms[utt] = read_wav(utt, wav_scp[utt], rate)[0]
                except BadUtteranceError as e:
                    _bad(e, skipped, skip_bad)
            for (utt, waveform), feats in zip(waveforms.items(),
                                              extractor.extract_batch(list(waveforms.values()))):
                expected = extractor.num_frames(len(waveform))
                if feats.shape != (expected, extractor.dim * extractor.num_layers):
                    raise RuntimeError(f"utterance {utt}: {type(extractor).__name__} returned "
                                       f"shape {feats.shape}, expected ({expected}, "
                                       f"{extractor.dim * extractor.num_layers})")
                writer.write(utt, feats)
            progress.update(sum(len(w) for w in waveforms.values()) / rate)


def _extract_text(extractor, text, writer, skipped, skip_bad):
    del skipped, skip_bad  # every transcript (even an empty one) gives features
    empty = [utt for utt, t in text.items() if is_empty_transcript(t, extractor.conf)]
    if empty:
        logging.warning("%d transcript(s) empty after removing tags, encoded as special tokens "
                        "only; decode and mser-infer run them audio-only (e.g. %s)", len(empty),
                        ", ".join(empty[:5]))
    utts = sorted(text, key=lambda u: len(text[u]))
    for first in tqdm(range(0, len(utts), TEXT_CHUNK), desc="extracting", unit="chunk"):
        chunk = utts[first:first + TEXT_CHUNK]
        for utt, feats in zip(chunk, extractor.extract_batch([text[u] for u in chunk])):
            writer.write(utt, feats)


def is_done(conf, data_dir, out_dir):
    """Whether ``out_dir`` holds a merged dump of this config and data dir."""
    return (merged_is_done(out_dir, dump_identity(conf), read_source(conf, data_dir))
            and os.path.exists(os.path.join(out_dir, "feats.scp")))


def merge(conf, data_dir, out_dir, nj):
    """Merge the jobs' outputs into feats.scp, utt2num_frames, skipped and feat_conf.yaml after
    checking every matrix's shape and that every utterance of the data dir is accounted for."""
    source = read_source(conf, data_dir)
    scp, num_frames, skipped, info = {}, {}, {}, None
    dones = finished_jobs(out_dir, dump_identity(conf), source, nj,
                          lambda job: job_paths(out_dir, job)["done"],
                          lambda job: f"{out_dir}/log/extract.{job}.log")
    for job, done in enumerate(dones, 1):
        paths = job_paths(out_dir, job)
        job_info = {k: v for k, v in done.items() if k != "fingerprint"}
        if info not in (None, job_info):
            raise DataDirError(f"{out_dir}: job {job} has {job_info}, job 1 has {info}")
        info = job_info
        job_frames = read_utt2num_frames(paths["num_frames"])
        _check_shapes(paths["scp"], job_frames, info["dim"] * info["num_layers"])
        scp.update(read_table(paths["scp"]))
        num_frames.update(job_frames)
        skipped.update(read_table(paths["skipped"]))
    missing = sorted(set(source) - set(scp) - set(skipped), key=c_sort_key)
    if missing:
        raise DataDirError(f"{out_dir}: {len(missing)} utterance(s) of {data_dir} have neither "
                           f"features nor a line in skipped (e.g. {missing[0]}); rerun "
                           f"utils/dump_feats.sh after removing {out_dir}/.done.*")
    write_table(os.path.join(out_dir, "utt2num_frames"), num_frames)
    write_table(os.path.join(out_dir, "skipped"), skipped)
    write_table(os.path.join(out_dir, "feats.scp"), scp)
    write_feat_conf(out_dir, {**conf, "storage": storage_name(conf), **info})
    write_merged_done(out_dir, dump_identity(conf), source)
    for utt, reason in skipped.items():
        logging.warning("skipped %s: %s", utt, reason)
    logging.info("%s: %d utterance(s), %d rows (frames or tokens) of %s x %s, %d skipped (listed "
                 "in %s/skipped)", out_dir, len(scp), sum(num_frames.values()), info["num_layers"],
                 info["dim"], len(skipped), out_dir)


def _check_shapes(scp, num_frames, width):
    """Compare the shape in every matrix header of ``scp`` with utt2num_frames and the dim."""
    shapes = read_shapes(scp)
    if set(shapes) != set(num_frames):
        raise DataDirError(f"{scp}: utterances differ from its utt2num_frames; remove "
                           f"{os.path.dirname(scp)}/.done.* and rerun utils/dump_feats.sh")
    for utt, shape in shapes.items():
        if shape != (num_frames[utt], width):
            raise DataDirError(f"{scp}: utterance {utt} has shape {shape}, expected "
                               f"({num_frames[utt]}, {width}) from utt2num_frames and the "
                               f"extractor; remove {os.path.dirname(scp)}/.done.* and rerun")
