"""Emotion over a long recording: speech segments, their transcripts and emotions on a timeline.

The recording is read from disk piece by piece (:class:`mser.features.audio.AudioSource`);
the Silero VAD finds its speech (:mod:`mser.vad`: segments merged and split to the model's
bounds, or fixed windows); each segment is transcribed by a speech recogniser
(:class:`mser.asr.SpeechRecognizer`, ``packaged:whisper-tiny.en`` by default, batched over
segments) unless its transcript is given, and classified by the trained model through
:meth:`mser.inference.EmotionRecognizer.predict` with both modalities (audio only where the ASR
heard nothing). Memory is bounded by a batch of segments, not by the recording::

    from mser.timeline import TimelineRecognizer
    timeline = TimelineRecognizer("exp/<tag>/fold1").timeline_file("call.wav")
    for segment in timeline.segments:
        segment.start, segment.end, segment.transcript, segment.emotion, segment.probabilities

A segment's result is that of ``mser-infer`` on the segment cut out of the recording. A segment
the model cannot take (e.g. too short for one feature frame) keeps its ``error`` and is counted
on the console, never dropped. :func:`write_outputs` writes a recording's table (TSV, CSV),
JSON, timeline plot (PNG) and Kaldi data dir (segments, text, utt2emo, ...).
"""
import contextlib
import csv
import dataclasses
import io
import json
import logging
import os
import shlex
import textwrap
import threading

import numpy as np
from tqdm import tqdm

from mser.io.datadir import DataDirError, read_table, write_data_dir, write_table
from mser.features.audio import AudioSource
from mser.utils.fileio import atomic_write_text
from mser.utils.plotting import pyplot, save_figure
from mser.vad import SegmentOptions, SpeechDetector, detect, fixed_segments

DEFAULT_ASR = "packaged:whisper-tiny.en"
SEGMENTERS = ("vad", "fixed")
READ_RATE = 16000           # segments are read at 16 kHz (the ASR's and the extractors' rate)
TIMELINE_VERSION = 1
OUTPUT_FORMATS = ("tsv", "csv", "json", "png", "data")
EMOTION_COLOURS = {"ang": "#d62728", "hap": "#ff9f1c", "exc": "#ffbf46", "sad": "#1f77b4",
                   "neu": "#9a9a9a", "fru": "#8c564b", "fea": "#9467bd", "dis": "#2ca02c",
                   "sur": "#e377c2", "cal": "#17becf", "con": "#bcbd22"}


@dataclasses.dataclass
class Segment:
    start: float                   # seconds
    end: float
    transcript: str = None         # None: no transcript (audio only)
    emotion: str = None            # None when the segment failed (see error)
    probabilities: dict = None     # class -> posterior
    modalities: tuple = ()
    error: str = None
    attention: dict = None         # {"weights", "audio_frames", "tokens"} when asked for
    tasks: dict = None             # the model's auxiliary tasks: task -> class or number

    def segment_id(self, recording):
        """Kaldi segment id: ``<recording>-<start cs>-<end cs>`` (begins with the recording)."""
        return f"{recording}-{round(100 * self.start):07d}-{round(100 * self.end):07d}"


@dataclasses.dataclass
class Timeline:
    recording: str
    duration: float
    classes: list
    segments: list
    source: str = None             # the wav.scp entry or file
    asr: str = None
    segmenter: dict = None
    calibration: dict = None       # condition -> temperature of the probabilities; None: as trained

    def failed(self):
        return [s for s in self.segments if s.error]

    def task_names(self):
        """The auxiliary tasks the segments have outputs of (mser.utils.tasks), in order."""
        return list(dict.fromkeys(t for s in self.segments for t in (s.tasks or {})))

    def to_dict(self, attention=False):
        segments = []
        for s in self.segments:
            item = {"id": s.segment_id(self.recording), "start": round(s.start, 3),
                    "end": round(s.end, 3), "transcript": s.transcript, "emotion": s.emotion,
                    "probabilities": s.probabilities and {c: round(p, 5) for c, p in
                                                          s.probabilities.items()}, "modalities": list(s.modalities),
                    "error": s.error}
            if s.tasks:
                item["tasks"] = s.tasks
            if attention and s.attention is not None:
                item["attention"] = s.attention
            segments.append(item)
        return {"version": TIMELINE_VERSION, "recording": self.recording, "source": self.source,
                "duration": round(self.duration, 3), "classes": list(self.classes),
                "asr": self.asr, "segmenter": self.segmenter, "calibration": self.calibration,
                "segments": segments}

    @classmethod
    def from_dict(cls, data):
        """The timeline of a :meth:`to_dict` JSON; ValueError naming the field that is wrong."""
        classes = data["classes"]
        if not isinstance(classes, list) or not all(isinstance(c, str) for c in classes):
            raise ValueError(f"'classes': expected a list of class names, got {classes!r}")
        if not isinstance(data["segments"], list):
            raise ValueError("'segments': expected a list")
        for i, segment in enumerate(data["segments"]):
            probabilities = segment.get("probabilities")
            if probabilities is not None and (not isinstance(probabilities, dict)
                                              or set(probabilities) != set(classes)):
                raise ValueError(f"'segments'[{i}].probabilities: expected one per class of "
                                 f"{classes}")
        segments = [Segment(s["start"], s["end"], s.get("transcript"), s.get("emotion"),
                            s.get("probabilities"), tuple(s.get("modalities") or ()),
                            s.get("error"), s.get("attention"), s.get("tasks"))
                    for s in data["segments"]]
        return cls(data["recording"], data["duration"], data["classes"], segments,
                   data.get("source"), data.get("asr"), data.get("segmenter"),
                   data.get("calibration"))

    def table(self, delimiter="\t"):
        """One row per segment: segment start end transcript emotion p(<class>)... <task>...
        modalities error (TSV, or CSV with ``delimiter=','``, quoted as needed); <task>: each
        auxiliary task's class or number."""
        out = io.StringIO()
        writer = csv.writer(out, delimiter=delimiter, lineterminator="\n",
                            quoting=csv.QUOTE_MINIMAL if delimiter == "," else csv.QUOTE_NONE,
                            escapechar=None if delimiter == "," else "\\")
        tasks = self.task_names()
        writer.writerow(["segment", "start", "end", "transcript", "emotion",
                         *(f"p({c})" for c in self.classes), *tasks, "modalities", "error"])
        for s in self.segments:
            probs = [f"{s.probabilities[c]:.4f}" for c in self.classes] if s.probabilities \
                else [""] * len(self.classes)
            writer.writerow([s.segment_id(self.recording), f"{s.start:.2f}", f"{s.end:.2f}",
                             " ".join((s.transcript or "").split()), s.emotion or "", *probs,
                             *((s.tasks or {}).get(t, "") for t in tasks),
                             "+".join(s.modalities), s.error or ""])
        return out.getvalue()


class Cancelled(Exception):
    """A timeline given up before its end (see :meth:`TimelineRecognizer.run`)."""


def check_cancelled(cancelled, name, progress=""):
    """Raise :class:`Cancelled` ("<name>: cancelled<progress>") when ``cancelled()`` says so."""
    if cancelled is not None and cancelled():
        raise Cancelled(f"{name}: cancelled{progress}")


class TimelineRecognizer:
    """Segments, transcribes and classifies long recordings with a trained model.

    ``recognizer``: an :class:`EmotionRecognizer` (or give ``model_dir``); ``asr``: a Whisper /
    CTC dir, ``packaged:NAME`` or None (no transcripts: audio only; a model without text needs
    none); ``segmenter``: ``vad`` (``options``: :class:`SegmentOptions`) or ``fixed``
    (``window`` seconds); ``batch_size``: segments read and transcribed at once; ``backend``
    onnxruntime: ``model_dir`` is an ONNX export (:mod:`mser.onnx_inference`)."""

    def __init__(self, model_dir=None, recognizer=None, asr=DEFAULT_ASR, device="cpu",
                 segmenter="vad", options=None, window=5.0, batch_size=8, language="en",
                 checkpoint=None, asr_backend="auto", asr_window=None, backend="torch"):
        if segmenter not in SEGMENTERS:
            raise ValueError(f"segmenter {segmenter!r}: choose one of {', '.join(SEGMENTERS)}")
        if recognizer is None and backend == "onnxruntime":
            from mser.onnx_inference import OnnxEmotionRecognizer

            if checkpoint:
                raise ValueError("checkpoint: an ONNX export holds one model; export another")
            recognizer = OnnxEmotionRecognizer(model_dir)
        elif recognizer is None:
            from mser.inference import EmotionRecognizer

            recognizer = EmotionRecognizer(model_dir, checkpoint, device)
        self.recognizer = recognizer
        self.options = (options or SegmentOptions()).check()
        self.segmenter, self.window, self.batch_size = segmenter, window, batch_size
        # The VAD keeps state across a recording's blocks: a detector per thread (mser-serve
        # runs requests in threads; two recordings through one detector crash it).
        self._detectors = threading.local()
        if segmenter == "vad":
            self.thread_detector()  # loaded now: a missing VAD package fails here, not later
        self.asr_name = asr if asr and "text" in self.recognizer.modalities else None
        self.asr = None
        if self.asr_name:
            from mser.asr import DEFAULT_MIN_WINDOW, SpeechRecognizer

            self.asr = SpeechRecognizer(asr, device=device, batch_size=batch_size,
                                        language=language, backend=asr_backend,
                                        min_window=asr_window or DEFAULT_MIN_WINDOW)
        if "audio" not in self.recognizer.modalities and not self.asr:
            raise ValueError("a text-only model needs transcripts: give it an ASR model")

    def thread_detector(self):
        """This thread's Silero VAD, loaded on its first use."""
        if not hasattr(self._detectors, "detector"):
            self._detectors.detector = SpeechDetector()
        return self._detectors.detector

    def segmenter_info(self):
        if self.segmenter == "fixed":
            return {"kind": "fixed", "window": self.window}
        return {"kind": "vad", "model": "silero-vad", **dataclasses.asdict(self.options)}

    def segments(self, source, progress=True, cancelled=None):
        """[(start, end)] of ``source``: its speech (VAD) or fixed windows."""
        if self.segmenter == "fixed":
            return fixed_segments(source.duration, self.window, self.options.min_segment)
        with tqdm(total=round(source.duration, 1), unit="s", desc=f"{source.name}: VAD",
                  disable=not progress, mininterval=2, leave=False) as bar:
            def advance(seconds):
                check_cancelled(cancelled, source.name)
                bar.update(round(seconds, 1))
            return detect(source, self.thread_detector(), self.options, advance)

    def timeline(self, waveform, sample_rate, name="recording", **kwargs):
        """The timeline of a waveform in memory (any rate); see :meth:`run`."""
        return self.run(AudioSource(name, waveform=waveform, sample_rate=sample_rate), **kwargs)

    def timeline_file(self, wav, name=None, **kwargs):
        """The timeline of a sound file or wav.scp entry, read from disk piece by piece."""
        name = name or os.path.splitext(os.path.basename(wav.rstrip("| ")))[0]
        with AudioSource(name, wav) as source:
            return self.run(source, **kwargs)

    def run(self, source, segments=None, transcripts=None, return_attention=False,
            progress=True, cancelled=None, gate=None):
        """The :class:`Timeline` of an AudioSource; ``segments`` [(start, end)] replace the
        segmenter, ``transcripts`` (one per segment; None or "" for none) the ASR.
        ``cancelled()`` is asked between blocks of VAD and batches of segments: True raises
        :class:`Cancelled` (mser-serve: the client went away or the server is stopping).
        ``gate()``, if given, is a context manager held around each batch of segments (its
        reading, ASR and classification; mser-serve: a turn with the model)."""
        segmenter = {"kind": "given"} if segments is not None else self.segmenter_info()
        if segments is None:
            segments = self.segments(source, progress, cancelled)
        if transcripts is not None and len(transcripts) != len(segments):
            raise ValueError(f"{source.name}: {len(transcripts)} transcript(s) for "
                             f"{len(segments)} segment(s)")
        timeline = Timeline(source.name, source.duration, list(self.recognizer.classes), [],
                            source.wav, None if transcripts is not None else self.asr_name,
                            segmenter, self.recognizer.temperatures or None)
        bar = tqdm(total=len(segments), unit="seg", desc=f"{source.name}: segments",
                   disable=not progress, mininterval=2, leave=False)
        with bar:
            for first in range(0, len(segments), self.batch_size):
                check_cancelled(cancelled, source.name,
                                f" after {first} of {len(segments)} segment(s)")
                batch = segments[first:first + self.batch_size]
                with gate() if gate else contextlib.nullcontext():
                    waves = [source.read(round(s * READ_RATE), round(e * READ_RATE), READ_RATE)
                             for s, e in batch]
                    texts = (transcripts[first:first + len(batch)] if transcripts is not None
                             else self.transcribe(waves))
                    for (start, end), wave, text in zip(batch, waves, texts):
                        timeline.segments.append(self._classify(start, end, wave, text,
                                                                return_attention))
                bar.update(len(batch))
        failed = timeline.failed()
        if failed:
            logging.warning("%s: %d of %d segment(s) not classified: %s", source.name,
                            len(failed), len(segments), "; ".join(
                                f"{s.start:.2f}-{s.end:.2f} s: {s.error}" for s in failed[:5]))
        return timeline

    def transcribe(self, waves):
        """Transcripts of 16 kHz waveforms in one batch (None for each without an ASR)."""
        if not self.asr:
            return [None] * len(waves)
        usable = [i for i, w in enumerate(waves) if len(w) > 0]
        texts = [None] * len(waves)
        for i, text in zip(usable, self.asr.transcribe([waves[i] for i in usable])):
            texts[i] = text
        return texts

    def _classify(self, start, end, wave, text, return_attention):
        from mser.inference import InputError

        segment = Segment(start, end, text)
        attention = return_attention and self.recognizer.has_attention
        try:
            prediction = self.recognizer.predict(
                wave if "audio" in self.recognizer.modalities else None, READ_RATE, text,
                return_attention=attention)
        except (InputError, ValueError) as e:
            segment.error = " ".join(str(e).split())
            return segment
        segment.emotion, segment.probabilities = prediction.emotion, prediction.probabilities
        segment.modalities, segment.tasks = prediction.modalities, prediction.tasks
        if attention:
            segment.attention = {"weights": np.round(prediction.attention, 4).tolist(),
                                 "audio_frames": prediction.audio_frames,
                                 "tokens": prediction.text_tokens or []}
        return segment


# ---------------------------------------------------------------------------------------------
# Outputs


def portable_source(source):
    """A recording's wav.scp value that works from any directory: a file path made absolute (a
    ``cmd |`` entry is kept as written)."""
    return source if not source or source.rstrip().endswith("|") else os.path.abspath(source)


def data_dir_tables(timeline):
    """The Kaldi data dir of a timeline's classified segments: ``{file: table}`` (segments,
    text, utt2emo, utt2spk, utt2dur, wav.scp as sox trim commands so that the recipes' stages
    read each segment), and ``{segment: reason}`` of the failed ones (``skipped``)."""
    rec, wav = timeline.recording, portable_source(timeline.source)
    tables = {name: {} for name in ("segments", "text", "utt2emo", "utt2spk", "utt2dur",
                                    "wav.scp")}
    skipped = {}
    for s in timeline.segments:
        seg = s.segment_id(rec)
        if s.error:
            skipped[seg] = s.error
            continue
        tables["segments"][seg] = f"{rec} {s.start:.2f} {s.end:.2f}"
        tables["text"][seg] = " ".join((s.transcript or "").split())
        tables["utt2emo"][seg] = s.emotion
        tables["utt2spk"][seg] = rec
        tables["utt2dur"][seg] = f"{s.end - s.start:.2f}"
        if wav:
            trim = f"trim {s.start:.2f} ={s.end:.2f}"
            tables["wav.scp"][seg] = (f"{wav[:-1].strip()} | sox -t wav - -t wav - {trim} |"
                                      if wav.endswith("|")
                                      else f"sox {shlex.quote(wav)} -t wav - {trim} |")
    if not wav:
        del tables["wav.scp"]
    return tables, skipped


def write_data_dir_of(timeline, data_dir):
    tables, skipped = data_dir_tables(timeline)
    write_data_dir(data_dir, tables)
    write_table(os.path.join(data_dir, "skipped"), skipped)
    if timeline.source:
        write_table(os.path.join(data_dir, "recordings.scp"),
                    {timeline.recording: portable_source(timeline.source)})
    atomic_write_text(os.path.join(data_dir, "classes.txt"), "\n".join(timeline.classes) + "\n")


def output_paths(out_dir, recording):
    base = os.path.join(out_dir, recording)
    return {"tsv": os.path.join(base, "timeline.tsv"), "csv": os.path.join(base, "timeline.csv"),
            "json": os.path.join(base, "timeline.json"), "png": os.path.join(base, "timeline.png"),
            "data": os.path.join(base, "data")}


def write_outputs(timeline, out_dir, formats=OUTPUT_FORMATS):
    """``<out_dir>/<recording>/``: timeline.tsv, .csv, .json, .png and data/ (a Kaldi data dir
    of the segments); every file written atomically. Returns the paths written."""
    paths = {k: v for k, v in output_paths(out_dir, timeline.recording).items() if k in formats}
    if "tsv" in paths:
        atomic_write_text(paths["tsv"], timeline.table("\t"))
    if "csv" in paths:
        atomic_write_text(paths["csv"], timeline.table(","))
    if "png" in paths:
        plot_timeline(timeline, paths["png"])
    if "data" in paths:
        write_data_dir_of(timeline, paths["data"])
    if "json" in paths:  # last: its presence marks a finished recording
        atomic_write_text(paths["json"], json.dumps(timeline.to_dict(), indent=1,
                                                    ensure_ascii=False) + "\n")
    return paths


def merge_data_dirs(data_dirs, out_dir):
    """One data dir of several recordings' (:func:`write_outputs`) data dirs."""
    tables = {}
    for data_dir in data_dirs:
        for name in ("segments", "text", "utt2emo", "utt2spk", "utt2dur", "wav.scp",
                     "recordings.scp", "skipped"):
            path = os.path.join(data_dir, name)
            if not os.path.exists(path):
                continue
            table = read_table(path, allow_empty_value=(name == "text"))
            clash = set(table) & set(tables.get(name, {}))
            if clash:
                raise DataDirError(f"{path}: {min(clash)} is also in another recording's "
                                   f"{name}; recording ids must be unique")
            tables.setdefault(name, {}).update(table)
    extra = {n: tables.pop(n, {}) for n in ("recordings.scp", "skipped")}
    write_data_dir(out_dir, tables)
    for name, table in extra.items():
        write_table(os.path.join(out_dir, name), table)
    classes = os.path.join(data_dirs[0], "classes.txt") if data_dirs else None
    if classes and os.path.exists(classes):
        with open(classes, encoding="utf-8") as f:
            atomic_write_text(os.path.join(out_dir, "classes.txt"), f.read())
    return tables


# ---------------------------------------------------------------------------------------------
# Plot


def emotion_colours(classes):
    palette = iter(["#17becf", "#bcbd22", "#e377c2", "#7f7f7f", "#9467bd", "#8c564b"] * 4)
    return {c: EMOTION_COLOURS.get(c[:3].lower()) or next(palette) for c in classes}


TASK_COLOURS = ("black", "#8b0000", "#00008b")


def numeric_tasks(timeline):
    """{task: [(segment midpoint, value)]} of the auxiliary tasks with numbers (a regression:
    arousal, valence, ...)."""
    curves = {}
    for s in timeline.segments:
        for task, value in (s.tasks or {}).items():
            if isinstance(value, (int, float)):
                curves.setdefault(task, []).append(((s.start + s.end) / 2, float(value)))
    return curves


def plot_task_curves(band, timeline, lo, hi):
    """The numeric tasks' values as curves over the emotion band of one row (time ``lo`` to
    ``hi``), on a right-hand axis spanning every value of the recording."""
    curves = numeric_tasks(timeline)
    if not curves:
        return
    values = [v for points in curves.values() for _, v in points]
    axis = band.twinx()
    margin = 0.05 * (max(values) - min(values) or 1.0)
    axis.set_ylim(min(values) - margin, max(values) + margin)
    axis.tick_params(labelsize=8)
    for (task, points), colour in zip(curves.items(), TASK_COLOURS * len(curves)):
        shown = [(t, v) for t, v in points if lo <= t <= hi]
        if shown:
            axis.plot(*zip(*shown), "o-", color=colour, linewidth=1.2, markersize=3, label=task)
    if axis.lines:
        axis.legend(loc="upper left", fontsize=7, frameon=False)


def plot_timeline(timeline, path, row_seconds=None, max_rows=12, dpi=100):
    """Emotion bands over time (each segment a stack of its class probabilities, the winning
    emotion and its probability written above) with the transcripts under them, in rows of
    ``row_seconds`` (default: 60 s, longer for recordings over ``max_rows`` minutes)."""
    save_figure(timeline_figure(timeline, row_seconds, max_rows), path, dpi=dpi)


def timeline_figure(timeline, row_seconds=None, max_rows=12):
    """The figure of :func:`plot_timeline`: per row a band axis and a transcript strip, then
    (but after the last) a blank spacer that keeps the strip's time labels clear of the next
    band."""
    plt = pyplot()
    duration = max(timeline.duration, 1e-3)
    rows = int(np.ceil(duration / (row_seconds or max(60.0, duration / max_rows)) - 1e-9))
    row_seconds = row_seconds or duration / rows
    width, colours = 14.0, emotion_colours(timeline.classes)
    fig, axes = plt.subplots(3 * rows - 1, 1, figsize=(width, 0.6 + 2.6 * rows), squeeze=False,
                             gridspec_kw={"height_ratios": ([3, 1.6, 0.5] * rows)[:-1],
                                          "hspace": 0.12})
    for row in range(rows - 1):
        axes[3 * row + 2, 0].set_visible(False)
    chars_per_second = width * 72 * 0.94 / (0.58 * 7.5) / row_seconds  # of 7.5 pt text
    for row in range(rows):
        band, strip = axes[3 * row, 0], axes[3 * row + 1, 0]
        lo, hi = row * row_seconds, min((row + 1) * row_seconds, duration)
        for ax in (band, strip):
            ax.set_xlim(lo, lo + row_seconds)
            ax.set_facecolor("#f4f4f4")
            ax.tick_params(labelsize=8)
        band.axvspan(hi, lo + row_seconds, color="white", zorder=0)
        band.set_ylim(0, 1.18)
        band.set_yticks([0, 0.5, 1])
        band.set_ylabel("p", fontsize=8)
        band.set_xticklabels([])
        strip.set_ylim(0, 1)
        strip.set_yticks([])
        strip.set_xlabel("time (s)" if row == rows - 1 else "", fontsize=8)
        for s in timeline.segments:
            if s.end <= lo or s.start >= hi:
                continue
            seg_width = s.end - s.start
            if s.probabilities:
                bottom = 0.0
                for c in timeline.classes:
                    p = s.probabilities[c]
                    band.bar(s.start, p, seg_width, bottom, align="edge", color=colours[c],
                             edgecolor="white", linewidth=0.4)
                    bottom += p
                label = f"{s.emotion} {s.probabilities[s.emotion]:.2f}"
            else:
                band.bar(s.start, 1.0, seg_width, 0, align="edge", color="none", hatch="//",
                         edgecolor="#666666", linewidth=0.4)
                label = "error"
            fits = int(seg_width * chars_per_second)
            if fits >= 3:
                band.text(s.start + seg_width / 2, 1.03, label if len(label) <= fits
                          else label.split()[0][:fits], ha="center", va="bottom", fontsize=7.5,
                          clip_on=True)
            if s.transcript and fits >= 3:
                lines = textwrap.wrap(s.transcript, max(fits, 1))
                text = "\n".join(lines[:3]) + (" …" if len(lines) > 3 else "")
                strip.text(s.start, 0.95, text, ha="left", va="top", fontsize=7.5,
                           clip_on=True, wrap=False)
            strip.axvspan(s.start, s.end, ymin=0, ymax=0.06, color=colours.get(s.emotion, "#666"))
        plot_task_curves(band, timeline, lo, hi)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c]) for c in timeline.classes]
    fig.legend(handles, timeline.classes, loc="upper right", ncol=len(handles), fontsize=8,
               frameon=False)
    classified = len(timeline.segments) - len(timeline.failed())
    fig.suptitle(f"{timeline.recording}: {duration:.1f} s, {classified} segment(s) classified"
                 + (f", {len(timeline.failed())} failed" if timeline.failed() else ""),
                 x=0.01, ha="left", fontsize=10)
    fig.subplots_adjust(left=0.04, right=0.99, top=1 - 0.45 / fig.get_figheight(),
                        bottom=0.35 / fig.get_figheight())
    return fig
