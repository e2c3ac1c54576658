"""Speech recognition of Kaldi data dirs with a local model: Whisper in CTranslate2 format
(``packaged:whisper-tiny.en`` / ``packaged:whisper-base`` or a faster-whisper dir) on
CTranslate2, faster-whisper's engine (int8 on CPU); a transformers Whisper of any size
(``openai/whisper-*``, long form beyond 30 s) or CTC model (wav2vec2 / HuBERT / WavLM fine-tuned
with CTC, greedy decoding) on transformers (``backend="transformers"`` runs the packaged models
there too, converted once).

:class:`SpeechRecognizer` transcribes waveforms in batches. :func:`run_job` transcribes job
``j`` of ``nj`` of a data dir's wav.scp into ``<out>/split<nj>/{text,skipped,done}.<j>`` (the
contiguous slice :func:`mser.features.dump.job_slice` gives; a finished job with the same
fingerprint is not redone); :func:`merge` then writes ``<out>`` as a copy of the data dir whose
``text`` holds the recognised transcripts; :func:`asr_subset` gives a subset of it (a fold's
train, dev or test set) the same way.

An utterance whose audio cannot be read is named on the console with the reason, listed in
``<out>/skipped`` and left out of every per-utterance file of ``<out>`` (spk2utt regenerated):
it has no audio features either, and an empty transcript would be indistinguishable from ASR
that heard nothing. An utterance the recogniser returns nothing for keeps an empty ``text``.
"""
import logging
import os
import re
import shutil
import zlib

import numpy as np
import torch
from tqdm import tqdm

from mser.features.audio import BadUtteranceError, audio_info, batches_by_length, read_wav, \
    resampled_length
from mser.features.hf_common import resolve_model_dir
from mser.io.datadir import DataDirError, read_data_dir, read_table, write_data_dir, \
    write_table
from mser.io.shards import (current_done, finished_jobs, fingerprint, job_slice, merged_is_done,
                            start_job, write_done, write_merged_done)

WHISPER_WINDOW_SECONDS = 30.0   # longer utterances are decoded one by one, long-form
DEFAULT_BATCH_SIZE = 8          # utterances per forward
BACKENDS = ("auto", "ctranslate2", "transformers")
# CTranslate2's encoder window (seconds): each batch is padded to its longest waveform plus
# WINDOW_MARGIN, at least min_window, at most Whisper's 30 s. Shorter windows cost less encoder
# time; below ~12 s Whisper (trained on 30 s windows) starts to repeat itself and to miss words
# (bench/README.md).
DEFAULT_MIN_WINDOW = 15.0
WINDOW_MARGIN = 1.0
COMPRESSION_RATIO_THRESHOLD = 2.4  # Whisper's: above it a transcript is a repetition loop


def compression_ratio(text):
    """UTF-8 length over its zlib-compressed length (Whisper's repetition measure)."""
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data)) if data else 0.0


def one_line(text):
    """A transcript as one Kaldi ``text`` value: whitespace runs (newlines too) to one space."""
    return re.sub(r"\s+", " ", text).strip()


def ct2_whisper_dir(model_dir):
    """The CTranslate2 Whisper dir of ``model_dir`` (``packaged:whisper-*`` or a dir holding a
    CTranslate2 ``model.bin``, e.g. a faster-whisper download), else None."""
    from mser.features import ct2_whisper, expand_path
    from mser.features.hf_common import PACKAGED_PREFIX

    if model_dir.startswith(PACKAGED_PREFIX):
        name = model_dir[len(PACKAGED_PREFIX):]
        return ct2_whisper.packaged_ct2_dir(name) if name in ct2_whisper.PACKAGED else None
    path = expand_path(model_dir)
    return path if os.path.isfile(os.path.join(path, "model.bin")) else None


class SpeechRecognizer:
    """``transcribe(waveforms)`` -> transcripts, for waveforms at ``sample_rate``.

    ``backend``: ``ctranslate2`` (faster-whisper's engine) for Whisper in CTranslate2 format (the
    packaged models, a faster-whisper dir), ``transformers`` for any transformers Whisper or CTC
    dir, ``auto``: CTranslate2 where the model has that format. ``compute_type``: CTranslate2's
    (``auto``: int8 on CPU, float16 on CUDA); ``min_window``: its shortest encoder window in
    seconds (30: Whisper's own window for every utterance). ``language`` is passed to
    multilingual Whisper models only (English-only Whisper and CTC models have none; ``None``
    lets Whisper detect it); ``num_beams`` > 1 is beam search (Whisper)."""

    def __init__(self, model_dir, device="cpu", batch_size=DEFAULT_BATCH_SIZE, language="en",
                 num_beams=1, backend="auto", compute_type="auto",
                 min_window=DEFAULT_MIN_WINDOW):
        if backend not in BACKENDS:
            raise ValueError(f"ASR backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.batch_size = batch_size
        ct2_dir = ct2_whisper_dir(model_dir) if backend != "transformers" else None
        if backend == "ctranslate2" and ct2_dir is None:
            raise ValueError(f"{model_dir}: not a CTranslate2 Whisper model (no model.bin); use "
                             f"--asr-backend transformers, or convert it with CTranslate2's "
                             f"ct2-transformers-converter")
        if ct2_dir:
            self.engine = CT2Whisper(ct2_dir, device, compute_type, language, num_beams,
                                     min_window)
        else:
            self.engine = TransformersASR(model_dir, device, language, num_beams)
        self.backend = "ctranslate2" if ct2_dir else "transformers"
        self.path, self.sample_rate = self.engine.path, self.engine.sample_rate
        self.is_whisper = self.engine.is_whisper

    def batches(self, lengths):
        """Index groups (samples ``lengths``) that :meth:`transcribe` takes at once."""
        if self.is_whisper:
            window = WHISPER_WINDOW_SECONDS * self.sample_rate
            short = [i for i, n in enumerate(lengths) if n <= window]
            order = sorted(short, key=lambda i: -lengths[i])  # similar lengths together
            return [order[k:k + self.batch_size] for k in range(0, len(order), self.batch_size)] \
                + [[i] for i, n in enumerate(lengths) if n > window]
        budget = self.batch_size * max(lengths, default=0)
        return batches_by_length(lengths, budget, same_length=not self.engine.use_mask)

    def transcribe(self, waveforms):
        waveforms = [np.asarray(w, dtype=np.float32) for w in waveforms]
        return [one_line(t) for t in self.engine.transcribe(waveforms)]


class CT2Whisper:
    """Whisper on CTranslate2: log-mel of each batch padded to a window that fits it, greedy or
    beam decoding without timestamps; an utterance beyond 30 s is decoded 30 s at a time."""

    is_whisper = True

    def __init__(self, path, device, compute_type, language, num_beams, min_window):
        import ctranslate2
        from tokenizers import Tokenizer
        from transformers import WhisperFeatureExtractor

        if not 0 < min_window <= WHISPER_WINDOW_SECONDS:
            raise ValueError(f"min_window {min_window}: expected seconds in (0, "
                             f"{WHISPER_WINDOW_SECONDS:g}]")
        if compute_type == "auto":
            compute_type = "float16" if device.startswith("cuda") else "int8"
        self.path, self.num_beams, self.min_window = path, num_beams, min_window
        self.model = ctranslate2.models.Whisper(
            path, device="cuda" if device.startswith("cuda") else "cpu",
            compute_type=compute_type, intra_threads=torch.get_num_threads())
        self.feature_extractor = WhisperFeatureExtractor(feature_size=self.model.n_mels)
        self.sample_rate = self.feature_extractor.sampling_rate
        self.tokenizer = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        token = self.tokenizer.token_to_id
        self.end_of_text = token("<|endoftext|>")
        self.prefix = [token("<|startoftranscript|>")]
        self.detect = self.model.is_multilingual and not language
        if self.model.is_multilingual and language:
            self.prefix += [token(f"<|{language}|>")]
        self.suffix = [token("<|transcribe|>")] if self.model.is_multilingual else []
        self.suffix += [token("<|notimestamps|>")]
        if None in self.prefix + self.suffix:
            raise ValueError(f"{path}: tokenizer.json lacks a special token of the prompt "
                             f"(language {language!r}?)")
        logging.info("ASR %s: CTranslate2 Whisper (%s) on %s, encoder window >= %g s", path,
                     compute_type, device, min_window)

    def transcribe(self, waveforms):
        window = int(WHISPER_WINDOW_SECONDS * self.sample_rate)
        if any(len(w) > window for w in waveforms):
            return [" ".join(self._decode([w[k:k + window] for k in range(0, len(w), window)]))
                    for w in waveforms]
        return self._decode(waveforms)

    def _decode(self, waveforms, seconds=None):
        """Transcripts in one batch; a repetitive one (gzip-style compression ratio above
        Whisper's 2.4, the loop a short window can cause) is decoded again in 30 s."""
        import ctranslate2

        if seconds is None:
            longest = max(len(w) for w in waveforms) / self.sample_rate
            seconds = min(WHISPER_WINDOW_SECONDS,
                          max(self.min_window, np.ceil(longest + WINDOW_MARGIN)))
        samples = int(seconds * self.sample_rate)
        features = self.feature_extractor(
            waveforms, sampling_rate=self.sample_rate, padding="max_length", max_length=samples,
            truncation=True, return_tensors="np").input_features
        features = ctranslate2.StorageView.from_array(np.ascontiguousarray(features))
        if self.detect:
            languages = [scores[0][0] for scores in self.model.detect_language(features)]
            prompts = [self.prefix + [self.tokenizer.token_to_id(lang)] + self.suffix
                       for lang in languages]
        else:
            prompts = [self.prefix + self.suffix] * len(waveforms)
        results = self.model.generate(features, prompts, beam_size=self.num_beams)
        texts = [self.tokenizer.decode([t for t in r.sequences_ids[0] if t < self.end_of_text])
                 for r in results]
        if seconds < WHISPER_WINDOW_SECONDS:
            again = [i for i, text in enumerate(texts)
                     if compression_ratio(text) > COMPRESSION_RATIO_THRESHOLD]
            if again:
                logging.debug("ASR: %d of %d repetitive transcript(s) in a %g s window, decoded "
                              "again in 30 s", len(again), len(texts), seconds)
                for i, text in zip(again, self._decode([waveforms[i] for i in again],
                                                       WHISPER_WINDOW_SECONDS)):
                    texts[i] = text
        return texts


class TransformersASR:
    """A transformers Whisper (long form beyond 30 s) or CTC model (greedy decoding)."""

    def __init__(self, model_dir, device, language, num_beams):
        from transformers import AutoConfig, AutoModelForCTC, AutoModelForSpeechSeq2Seq, \
            AutoProcessor

        self.path = resolve_model_dir(model_dir, "openai/whisper-small")
        self.device = torch.device(device)
        config = AutoConfig.from_pretrained(self.path)
        self.processor = AutoProcessor.from_pretrained(self.path)
        self.feature_extractor = self.processor.feature_extractor
        self.sample_rate = self.feature_extractor.sampling_rate
        self.is_whisper = config.model_type == "whisper"
        if self.is_whisper:
            model = AutoModelForSpeechSeq2Seq.from_pretrained(self.path)
            self.generate_kwargs = {"num_beams": num_beams}
            if model.generation_config.is_multilingual and language:
                self.generate_kwargs.update(language=language, task="transcribe")
        elif config.is_encoder_decoder:
            raise ValueError(f"{self.path}: {config.model_type} encoder-decoder models are not "
                             f"supported; use Whisper or a CTC model")
        else:
            model = AutoModelForCTC.from_pretrained(self.path)
            self.use_mask = getattr(self.feature_extractor, "return_attention_mask", False)
        self.model = model.eval().to(self.device)
        logging.info("ASR %s: %s on %s", self.path, type(model).__name__, self.device)

    @torch.inference_mode()
    def transcribe(self, waveforms):
        return self._whisper(waveforms) if self.is_whisper else self._ctc(waveforms)

    def _whisper(self, waveforms):
        long_form = any(len(w) > WHISPER_WINDOW_SECONDS * self.sample_rate for w in waveforms)
        if long_form and len(waveforms) > 1:
            return [text for w in waveforms for text in self._whisper([w])]
        # long form: the whole utterance, decoded 30 s window after window with timestamps
        options = {"truncation": False, "padding": "longest"} if long_form else {}
        inputs = self.feature_extractor(waveforms, sampling_rate=self.sample_rate,
                                        return_attention_mask=True, return_tensors="pt",
                                        **options)
        ids = self.model.generate(inputs.input_features.to(self.device, self.model.dtype),
                                  attention_mask=inputs.attention_mask.to(self.device),
                                  return_timestamps=long_form, **self.generate_kwargs)
        return self.processor.batch_decode(ids, skip_special_tokens=True)

    def _ctc(self, waveforms):
        inputs = self.feature_extractor(waveforms, sampling_rate=self.sample_rate, padding=True,
                                        return_attention_mask=self.use_mask, return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        ids = self.model(**inputs).logits.argmax(dim=-1)
        if "attention_mask" not in inputs:  # batches of equal lengths: no padding frames
            return self.processor.batch_decode(ids)
        lengths = self.model._get_feat_extract_output_lengths(inputs["attention_mask"].sum(-1))
        return [self.processor.decode(row[:n]) for row, n in zip(ids, lengths)]


def job_paths(out_dir, nj, job):
    split = os.path.join(out_dir, f"split{nj}")
    return {name: os.path.join(split, f"{name}.{job}") for name in ("text", "skipped", "done")}


def run_job(recognizer_factory, options, data_dir, out_dir, nj, job):
    """Transcribe job ``job`` of ``nj``; ``options`` (model and decoding options) make the
    fingerprint, ``recognizer_factory()`` builds the recogniser only when there is work.
    Returns False when the job was already done."""
    part = job_slice(read_table(os.path.join(data_dir, "wav.scp")), nj, job)
    paths = job_paths(out_dir, nj, job)
    if current_done(paths["done"], options, part):
        logging.info("job %d/%d: already done (%s); skipping", job, nj, paths["done"])
        return False
    start_job(out_dir, stale=())
    recognizer = recognizer_factory()
    rate = recognizer.sample_rate
    lengths, skipped = {}, {}
    for utt, wav in part.items():
        try:
            num_samples, wav_rate = audio_info(utt, wav)
            lengths[utt] = resampled_length(num_samples, wav_rate, rate)
        except BadUtteranceError as e:
            _skip(e, skipped)
    utts = list(lengths)
    text = {}
    with tqdm(total=sum(lengths.values()) / rate, desc="transcribing", unit="s",
              mininterval=5) as progress:
        for batch in recognizer.batches([lengths[u] for u in utts]):
            waveforms = {}
            for utt in (utts[i] for i in batch):
                try:
                    waveforms[utt] = read_wav(utt, part[utt], rate)[0]
                except BadUtteranceError as e:
                    _skip(e, skipped)
            if waveforms:
                text.update(zip(waveforms, recognizer.transcribe(list(waveforms.values()))))
            progress.update(sum(len(w) for w in waveforms.values()) / rate)
    write_table(paths["text"], text)
    write_table(paths["skipped"], skipped)
    write_done(paths["done"], fingerprint(options, part), model=recognizer.path)
    logging.info("job %d/%d: %d utterance(s) transcribed, %d skipped -> %s", job, nj, len(text),
                 len(skipped), paths["text"])
    return True


def _skip(error, skipped):
    logging.warning("skipping utterance %s: %s: %s", error.utt, error.source, error.reason)
    skipped[error.utt] = error.reason


def is_done(options, data_dir, out_dir):
    return merged_is_done(out_dir, options, read_table(os.path.join(data_dir, "wav.scp")))


def _write_with_text(data_dir, out_dir, text, skipped):
    """``out_dir``: ``data_dir`` with ``text``, the ``skipped`` utterances left out of every
    per-utterance file and listed in ``out_dir/skipped``."""
    tables = read_data_dir(data_dir)
    tables["text"] = text
    tables = {name: {u: v for u, v in table.items() if u not in skipped}
              for name, table in tables.items()}
    write_data_dir(out_dir, tables)
    for name in sorted(os.listdir(data_dir)):  # classes.txt and the like, as they are
        source = os.path.join(data_dir, name)
        if name not in tables and name not in ("spk2utt", "skipped") and os.path.isfile(source):
            shutil.copyfile(source, os.path.join(out_dir, name))
    write_table(os.path.join(out_dir, "skipped"), skipped)


def asr_subset(asr_dir, data_dir, out_dir):
    """Write ``out_dir``: the utterances of ``data_dir`` (e.g. a fold's test set) with their
    transcripts from ``asr_dir`` (a :func:`merge` output of a superset, e.g. ``data/all_asr``).
    Utterances ``asr_dir`` lacks are named on the console with the reason the recogniser gave,
    left out and listed in ``out_dir/skipped``. Returns the skipped ``{utt: reason}``."""
    asr_text = read_table(os.path.join(asr_dir, "text"), allow_empty_value=True)
    asr_skipped_path = os.path.join(asr_dir, "skipped")
    asr_skipped = read_table(asr_skipped_path) if os.path.exists(asr_skipped_path) else {}
    utts = read_table(os.path.join(data_dir, "utt2spk"))
    skipped = {u: f"not transcribed by the ASR ({asr_skipped.get(u, f'absent from {asr_dir}')})"
               for u in utts if u not in asr_text}
    if len(skipped) == len(utts):
        raise DataDirError(f"{out_dir}: none of the {len(utts)} utterance(s) of {data_dir} has a "
                           f"transcript in {asr_dir}/text; was it transcribed from another corpus?")
    _write_with_text(data_dir, out_dir, {u: asr_text[u] for u in utts if u in asr_text}, skipped)
    if skipped:
        logging.warning("%s: %d of %d utterance(s) of %s left out (listed in %s/skipped): %s",
                        out_dir, len(skipped), len(utts), data_dir, out_dir,
                        "; ".join(f"{u} {why}" for u, why in sorted(skipped.items())))
    return skipped


def merge(options, data_dir, out_dir, nj):
    """Write ``out_dir``: ``data_dir`` with the recognised ``text``, skipped utterances left out
    of every per-utterance file and listed in ``out_dir/skipped``. Returns (text, skipped)."""
    if os.path.abspath(data_dir) == os.path.abspath(out_dir):
        raise DataDirError(f"{out_dir}: the output dir must differ from the data dir")
    wav_scp = read_table(os.path.join(data_dir, "wav.scp"))
    text, skipped = {}, {}
    finished_jobs(out_dir, options, wav_scp, nj, lambda job: job_paths(out_dir, nj, job)["done"],
                  lambda job: f"{out_dir}/log/transcribe.{job}.log")
    for job in range(1, nj + 1):
        paths = job_paths(out_dir, nj, job)
        text.update(read_table(paths["text"], allow_empty_value=True))
        skipped.update(read_table(paths["skipped"]))
    missing = set(wav_scp) - set(text) - set(skipped)
    if missing:
        raise DataDirError(f"{out_dir}: {len(missing)} utterance(s) of {data_dir}/wav.scp have "
                           f"neither a transcript nor a line in skipped (e.g. {min(missing)})")
    _write_with_text(data_dir, out_dir, text, skipped)
    write_merged_done(out_dir, options, wav_scp)
    for utt, reason in skipped.items():
        logging.warning("skipped %s: %s (left out of %s, listed in %s/skipped)", utt, reason,
                        out_dir, out_dir)
    empty = sum(1 for t in text.values() if not t)
    logging.info("%s: %d utterance(s) transcribed (%d empty), %d skipped", out_dir, len(text),
                 empty, len(skipped))
    return text, skipped
