"""mser.vad, mser.timeline and mser-timeline: the VAD finds the speech of a generated recording;
a demo-trained model labels the utterances of a concatenation right; outputs (table, JSON, plot,
Kaldi data dir), known segments and transcripts, parallel jobs and their merge, bad input."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from mser.bin import timeline as timeline_cli
from mser.io.datadir import read_table, validate_data_dir
from mser.features.audio import AudioSource, read_wav, resample
from mser.inference import EmotionRecognizer
from mser.timeline import Timeline, TimelineRecognizer
from mser.vad import SegmentOptions, SpeechDetector, detect, fixed_segments, merge_short, \
    split_long

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RATE = 16000
PNG = b"\x89PNG\r\n\x1a\n"
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="needs espeak-ng: run bash tools/install.sh")


def espeak(text, path):
    """espeak-ng speech at 16 kHz, cut to its speech (the known boundaries)."""
    subprocess.run(["espeak-ng", "-w", str(path), text], check=True)
    wave, rate = read_wav("tts", str(path), RATE)
    loud = np.flatnonzero(np.abs(wave) > 0.01)
    return wave[loud[0]:loud[-1] + 1]


def concatenate(waves, pauses, noise_db=None, seed=0):
    """``pauses[0]`` s, wave, ``pauses[1]`` s, wave, ..., last pause; with white noise at
    ``noise_db`` dB below the speech's RMS. Returns (recording, [(start, end)] of the waves)."""
    parts, spans, t = [], [], 0
    for wave, pause in zip(waves + [None], pauses):
        parts.append(np.zeros(int(pause * RATE), np.float32))
        t += len(parts[-1])
        if wave is not None:
            parts.append(wave.astype(np.float32))
            spans.append((t / RATE, (t + len(wave)) / RATE))
            t += len(wave)
    recording = np.concatenate(parts)
    if noise_db is not None:
        rms = np.sqrt(np.mean(np.concatenate(waves) ** 2))
        noise = np.random.default_rng(seed).standard_normal(len(recording))
        recording = recording + (rms * 10 ** (-noise_db / 20) * noise).astype(np.float32)
    return recording, spans


@needs_espeak
@pytest.mark.parametrize("noise_db", [None, 20])
def test_vad_finds_the_speech_of_a_generated_recording(tmp_path, noise_db):
    """Three spoken sentences between pauses of 0.8-2 s, clean and in white noise 20 dB below
    the speech: three segments, each boundary within 0.25 s of the known one (Silero's 32 ms
    windows plus the 0.1 s padding)."""
    waves = [espeak(text, tmp_path / f"{i}.wav") for i, text in enumerate(
        ["The doctor opened the curtains before the meeting.",
         "I can't believe you did that to me.", "What a wonderful surprise this is!"])]
    recording, spans = concatenate(waves, [1.2, 0.8, 2.0, 1.0], noise_db)
    path = tmp_path / "long.wav"
    soundfile.write(path, recording, RATE, subtype="PCM_16")
    with AudioSource("long", str(path)) as source:
        segments = detect(source, SpeechDetector())
    assert len(segments) == 3, segments
    for (start, end), (ref_start, ref_end) in zip(segments, spans):
        assert abs(start - ref_start) <= 0.25 and abs(end - ref_end) <= 0.25, (segments, spans)


def test_vad_probabilities_do_not_depend_on_how_the_file_is_read(tmp_path, monkeypatch):
    """Blocks read from disk at 44.1 kHz give the probabilities of the whole waveform at 16 kHz
    in memory: the resampling grid and the VAD's state carry over block boundaries."""
    import mser.vad as vad

    rng = np.random.default_rng(0)
    t = np.arange(int(7.3 * 44100)) / 44100
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
            + 0.01 * rng.standard_normal(len(t))).astype(np.float32)
    soundfile.write(tmp_path / "x.wav", wave, 44100, subtype="FLOAT")
    detector = SpeechDetector()
    whole = detector.probabilities(AudioSource("x", waveform=resample(wave, 44100, RATE),
                                               sample_rate=RATE))
    monkeypatch.setattr(vad, "BLOCK_WINDOWS", 40)   # 1.28 s blocks
    with AudioSource("x", str(tmp_path / "x.wav")) as source:
        pieces = detector.probabilities(source)
    np.testing.assert_allclose(pieces, whole, atol=1e-5)


def test_segments_are_merged_and_split_to_the_bounds():
    options = SegmentOptions(min_segment=1.0, max_segment=6.0, merge_gap=0.5)
    # a 0.4 s burst 0.3 s after a segment joins it; one 1.5 s away stays alone (kept)
    assert merge_short([(0.0, 2.0), (2.3, 2.7), (10.0, 10.4)], options) == [(0.0, 2.7), (10.0, 10.4)]
    # two short ones join; a merge never makes a segment over max_segment
    assert merge_short([(0.0, 0.5), (0.7, 1.2), (1.4, 7.0)], options) == [(0.0, 1.2), (1.4, 7.0)]
    assert split_long([(0.0, 13.0)], 6.0) == [(0.0, 13 / 3), (13 / 3, 26 / 3), (26 / 3, 13.0)]
    assert fixed_segments(11.0, 5.0, min_segment=1.5) == [(0.0, 5.0), (5.0, 11.0)]
    assert fixed_segments(12.0, 5.0, min_segment=1.5) == [(0.0, 5.0), (5.0, 10.0), (10.0, 12.0)]
    with pytest.raises(ValueError, match="max_segment"):
        SegmentOptions(max_segment=0.5).check()


def three_utterances(demo_model, recognizer):
    """Three training utterances of different emotions that the model labels right on their
    own (gold transcripts) and the VAD finds as one segment each (an utterance with a long
    inner pause is two), their transcripts and labels."""
    data = demo_model["data"] / "fold1" / "train"
    wavs, texts = read_table(data / "wav.scp"), read_table(data / "text")
    chosen, detector = {}, SpeechDetector()
    for utt, label in read_table(data / "utt2emo").items():
        if label in chosen:
            continue
        wave, rate = read_wav(utt, wavs[utt], RATE)
        alone = concatenate([wave], [1.0, 1.0], noise_db=30)[0]
        if len(detect(AudioSource(utt, waveform=alone, sample_rate=RATE), detector)) != 1:
            continue
        if recognizer.predict(wave, rate, texts[utt]).emotion == label:
            chosen[label] = (wave, texts[utt])
        if len(chosen) == 3:
            break
    assert len(chosen) == 3, f"the demo model labels too few utterances right: {chosen.keys()}"
    return [w for w, _ in chosen.values()], [t for _, t in chosen.values()], list(chosen)


@needs_espeak
def test_timeline_of_three_utterances_has_their_labels(demo_model, tmp_path):
    """A demo-trained model on a concatenation of three utterances (pauses of 1-1.5 s, noise
    30 dB down): three segments where the utterances are, each with the utterance's emotion;
    then with the packaged Whisper tiny.en transcribing each segment."""
    recognizer = EmotionRecognizer(demo_model["model_dir"])
    waves, texts, labels = three_utterances(demo_model, recognizer)
    recording, spans = concatenate(waves, [1.0, 1.5, 1.2, 1.0], noise_db=30)
    timeline = TimelineRecognizer(recognizer=recognizer, asr=None).timeline(
        recording, RATE, "three")
    assert len(timeline.segments) == 3
    given = TimelineRecognizer(recognizer=recognizer, asr=None).timeline(
        recording, RATE, "three", segments=[(s.start, s.end) for s in timeline.segments],
        transcripts=texts)
    assert [s.emotion for s in given.segments] == labels
    for segment, (start, end) in zip(given.segments, spans):
        assert abs(segment.start - start) <= 0.3 and abs(segment.end - end) <= 0.3
        assert segment.modalities == ("audio", "text")
    asr = TimelineRecognizer(recognizer=recognizer).timeline(recording, RATE, "three")
    assert asr.asr == "packaged:whisper-tiny.en"
    for segment, text in zip(asr.segments, texts):
        heard = set(segment.transcript.lower().replace(",", " ").replace(".", " ").split())
        assert heard & set(text.lower().replace(",", " ").replace(".", " ").split()), \
            (segment.transcript, text)


@needs_espeak
def test_the_onnx_export_gives_the_timeline_of_the_torch_model(demo_model, tmp_path):
    """mser-timeline --backend onnxruntime: the demo model's ONNX export labels the segments of
    a recording as the torch model does, with the same calibrated probabilities."""
    pytest.importorskip("onnxscript", reason="the onnx extra: pip install -e '.[onnx]'")
    recognizer = EmotionRecognizer(demo_model["model_dir"])
    waves, texts, _ = three_utterances(demo_model, recognizer)
    recording, spans = concatenate(waves, [1.0, 1.5, 1.2, 1.0], noise_db=30)
    export = tmp_path / "onnx"
    result = subprocess.run([sys.executable, "-m", "mser.bin.export_onnx", "--model-dir",
                             demo_model["model_dir"], "--out-dir", str(export)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-3000:]
    timelines = [TimelineRecognizer(recognizer=recognizer, asr=None),
                 TimelineRecognizer(str(export), asr=None, backend="onnxruntime")]
    torch_run, onnx_run = (t.timeline(recording, RATE, "three", segments=spans,
                                      transcripts=texts) for t in timelines)
    assert [s.emotion for s in onnx_run.segments] == [s.emotion for s in torch_run.segments]
    for a, b in zip(onnx_run.segments, torch_run.segments):
        assert a.probabilities == pytest.approx(b.probabilities, abs=1e-4)
    assert onnx_run.calibration == torch_run.calibration and onnx_run.calibration


def write_recordings(tmp_path, recognizer_data, n=3):
    """``n`` recordings of two demo utterances each, and their wav.scp."""
    data = recognizer_data / "fold1" / "test"
    wavs = list(read_table(data / "wav.scp").items())
    lines = []
    for k in range(n):
        waves = [read_wav(u, w, RATE)[0] for u, w in wavs[2 * k:2 * k + 2]]
        recording, _ = concatenate(waves, [0.7, 1.0, 0.5], noise_db=35, seed=k)
        soundfile.write(tmp_path / f"rec{k}.wav", recording, RATE, subtype="PCM_16")
        lines.append(f"rec{k} {tmp_path / f'rec{k}.wav'}\n")
    (tmp_path / "wav.scp").write_text("".join(lines))
    return tmp_path / "wav.scp"


@needs_espeak
def test_parallel_jobs_outputs_merge_and_resume(demo_model, tmp_path, capsys):
    """utils/timeline.sh: two jobs through the job wrapper over a wav.scp of three recordings,
    then the merge: per recording a table, JSON, PNG and a data dir the validator accepts, whose
    wav.scp cuts the segments with sox; one data dir of them all; a rerun redoes nothing."""
    wav_scp = write_recordings(tmp_path, demo_model["data"])
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    run = subprocess.run(["bash", "utils/timeline.sh", "--nj", "2", "--asr", "none",
                          demo_model["model_dir"], str(wav_scp), str(out)], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "6 segment(s) of 3 recording(s)" in (out / "log" / "merge.log").read_text()
    assert "--job 2" in (out / "log" / "timeline.2.log").read_text()
    for k in range(3):
        rec = out / f"rec{k}"
        data = json.loads((rec / "timeline.json").read_text())
        assert data["recording"] == f"rec{k}" and len(data["segments"]) == 2
        header, *rows = (rec / "timeline.tsv").read_text().splitlines()
        assert header.split("\t")[:5] == ["segment", "start", "end", "transcript", "emotion"]
        assert [r.split("\t")[4] for r in rows] == [s["emotion"] for s in data["segments"]]
        assert (rec / "timeline.csv").read_text().count("\n") == 3
        assert (rec / "timeline.png").read_bytes()[:8] == PNG
        assert validate_data_dir(str(rec / "data")) == []
        segments = read_table(rec / "data" / "segments")
        first = data["segments"][0]
        assert segments[first["id"]] == f"rec{k} {first['start']:.2f} {first['end']:.2f}"
    merged = out / "data"
    assert validate_data_dir(str(merged)) == []
    utt2emo = read_table(merged / "utt2emo")
    assert len(utt2emo) == 6 and all(u.startswith(read_table(merged / "utt2spk")[u])
                                     for u in utt2emo)
    seg, command = next(iter(read_table(merged / "wav.scp").items()))
    cut, _ = read_wav(seg, command)   # sox trim: the segment's samples of the recording
    start, end = (float(x) for x in read_table(merged / "segments")[seg].split()[1:])
    assert abs(len(cut) / RATE - (end - start)) < 0.01
    capsys.readouterr()
    assert timeline_cli.main(["--model-dir", demo_model["model_dir"], "--wav-scp", str(wav_scp),
                              "--out-dir", str(out), "--asr", "none", "--nj", "2", "--job",
                              "1"]) == 0
    assert "rec0: already done" in capsys.readouterr().err


@needs_espeak
def test_a_bad_recording_leaves_the_merge_of_the_others(demo_model, tmp_path):
    """utils/timeline.sh with one unreadable recording among three: the merged data dir holds
    the other two, the merge log names the bad one, the script exits 1; a rerun redoes only it."""
    wav_scp = write_recordings(tmp_path, demo_model["data"], n=2)
    with open(wav_scp, "a") as f:
        f.write(f"broken {tmp_path / 'missing.wav'}\n")
    out = tmp_path / "out"
    env = {**os.environ, "PATH": f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}"}
    command = ["bash", "utils/timeline.sh", "--nj", "2", "--asr", "none",
               demo_model["model_dir"], str(wav_scp), str(out)]
    for attempt in range(2):
        run = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                             timeout=600)
        assert run.returncode == 1, run.stdout[-2000:] + run.stderr[-2000:]
        merge_log = (out / "log" / "merge.log").read_text()
        assert "4 segment(s) of 2 recording(s)" in merge_log
        assert "left out of" in merge_log and "broken:" in merge_log
        assert "some recording(s) failed" in run.stdout
        assert len(read_table(out / "data" / "utt2emo")) == 4
    assert "rec0: already done" in (out / "log" / "timeline.1.log").read_text()


@needs_espeak
def test_cli_known_segments_and_transcripts(demo_model, tmp_path):
    """--segments/--text-file replace the VAD and the ASR; a segment too short for one feature
    frame is kept with its error (and left out of the data dir, listed in skipped)."""
    wav_scp = write_recordings(tmp_path, demo_model["data"], n=1)
    (tmp_path / "segments").write_text("rec0-a rec0 0.50 2.00\nrec0-b rec0 2.00 2.01\n")
    (tmp_path / "text").write_text("rec0-a I am so happy today\nrec0-b\n")
    out = tmp_path / "out"
    assert timeline_cli.main(["--model-dir", demo_model["model_dir"], "--wav-scp", str(wav_scp),
                              "--out-dir", str(out), "--segments", str(tmp_path / "segments"),
                              "--text-file", str(tmp_path / "text")]) == 0
    timeline = Timeline.from_dict(json.loads((out / "rec0" / "timeline.json").read_text()))
    assert [(s.start, s.end) for s in timeline.segments] == [(0.5, 2.0), (2.0, 2.01)]
    assert timeline.segments[0].transcript == "I am so happy today"
    assert timeline.segments[0].modalities == ("audio", "text") and timeline.asr is None
    assert timeline.segments[1].emotion is None and "too short" in timeline.segments[1].error
    assert list(read_table(out / "rec0" / "data" / "skipped")) == ["rec0-0000200-0000201"]
    assert list(read_table(out / "rec0" / "data" / "utt2emo")) == ["rec0-0000050-0000200"]


@needs_espeak
def test_cli_names_bad_recordings_and_processes_the_rest(demo_model, tmp_path, capsys):
    wav_scp = write_recordings(tmp_path, demo_model["data"], n=1)
    (tmp_path / "bad.wav").write_bytes(b"RIFF\x00\x00not a wav file")
    with open(wav_scp, "a") as f:
        f.write(f"rec9 {tmp_path / 'bad.wav'}\n")
    out = tmp_path / "out"
    common = ["--model-dir", demo_model["model_dir"], "--wav-scp", str(wav_scp), "--out-dir",
              str(out), "--asr", "none", "--segmenter", "fixed", "--window", "2"]
    assert timeline_cli.main(common) == 1
    err = capsys.readouterr().err
    assert f"rec9: {tmp_path / 'bad.wav'}: cannot read audio" in err
    assert "1 of 2 recording(s) failed" in err
    assert (out / "rec0" / "timeline.json").exists()
    assert "cannot read audio" in (out / "rec9" / "error").read_text()
    assert timeline_cli.main([*common, "--merge"]) == 1
    assert "left out of" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        timeline_cli.main([*common, "--text-file", "text"])


def test_timeline_scores_against_known_segments():
    from mser.scoring.timeline import timeline_scores

    reference = [(1.0, 3.0, "ang"), (4.0, 6.0, "sad")]
    # the first found 0.1 s early, the second split in two, half of it wrong
    hypothesis = [(0.9, 3.0, "ang"), (4.0, 5.0, "sad"), (5.0, 6.3, "hap")]
    scores = timeline_scores(reference, hypothesis, duration=8.0)
    tight = scores["boundary@0.2s"]
    assert tight["precision"] == pytest.approx(3 / 6) and tight["recall"] == pytest.approx(3 / 4)
    assert scores["boundary@0.5s"]["recall"] == 1.0
    assert scores["coverage"] == 1.0
    assert scores["speech_precision"] == pytest.approx(4.0 / 4.4)
    assert scores["frame_accuracy"] == pytest.approx(3.0 / 4.0)
    assert scores["frame_ua"] == pytest.approx((1.0 + 0.5) / 2)
    missed = timeline_scores(reference, [(1.0, 3.0, None)], duration=8.0)
    assert missed["coverage"] == 0.5 and missed["frame_accuracy"] == 0.0


def test_data_dir_of_a_relative_path_reads_from_any_directory(tmp_path, monkeypatch):
    """A recording given as a relative path: the data dir's wav.scp and recordings.scp name it
    absolutely, so the segments are read from another working directory too."""
    from mser.timeline import Segment, write_data_dir_of

    monkeypatch.chdir(tmp_path)
    soundfile.write("call.wav", np.random.default_rng(0).normal(0, 0.1, 3 * RATE), RATE)
    timeline = Timeline("call", 3.0, ["neu", "ang"], [Segment(0.5, 2.0, "hi", "neu")],
                        source="call.wav")
    write_data_dir_of(timeline, "out/data")
    monkeypatch.chdir(tmp_path / "out")
    assert read_table("data/recordings.scp") == {"call": str(tmp_path / "call.wav")}
    seg, command = next(iter(read_table("data/wav.scp").items()))
    if shutil.which("sox"):
        assert len(read_wav(seg, command)[0]) == int(1.5 * RATE)


def test_each_rows_time_labels_stay_clear_of_the_next_row():
    """In a timeline of several rows, the time tick labels under a row's transcripts are not
    drawn under the next row's probability band (which would hide them)."""
    from mser.timeline import Segment, timeline_figure

    classes = ["ang", "hap", "neu", "sad"]
    segments = [Segment(start, start + 4.0, "some words", "neu",
                        {c: 0.25 for c in classes}, ("audio", "text"))
                for start in np.arange(0.0, 170.0, 10.0)]
    fig = timeline_figure(Timeline("call", 180.0, classes, segments))
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    visible = [ax for ax in fig.axes if ax.get_visible()]
    bands, strips = visible[0::2], visible[1::2]
    assert len(bands) == len(strips) == 3
    for strip, next_band in zip(strips, bands[1:]):
        labels = [t for t in strip.get_xticklabels() if t.get_text()]
        assert labels
        lowest = min(t.get_window_extent(renderer).y0 for t in labels)
        assert lowest > next_band.get_window_extent(renderer).y1  # display y grows upwards


@needs_espeak
def test_a_model_with_dimensions_puts_them_on_the_timeline(demo_dimensions_model, tmp_path):
    """A demo model with the rated dimensions as regression heads: mser-infer's prediction,
    the timeline's segments, its JSON (read back), its table and its plot carry each one;
    the demo corpus's arousal follows the voice's class, so louder, faster speech rates
    higher on average than the calm utterances."""
    from mser.timeline import numeric_tasks, timeline_figure

    recognizer = EmotionRecognizer(demo_dimensions_model["model_dir"])
    data = demo_dimensions_model["data"] / "fold1" / "test"
    wavs, texts = read_table(data / "wav.scp"), read_table(data / "text")
    arousal, predicted = read_table(data / "utt2arousal"), {}
    for utt in sorted(wavs)[:24]:
        wave, rate = read_wav(utt, wavs[utt], RATE)
        prediction = recognizer.predict(wave, rate, texts[utt])
        assert set(prediction.tasks) == {"valence", "arousal", "dominance"}
        assert f"arousal={prediction.tasks['arousal']}" in prediction.format()
        predicted[utt] = prediction.tasks["arousal"]
    rated = np.array([float(arousal[u]) for u in predicted])
    assert np.corrcoef(rated, list(predicted.values()))[0, 1] > 0.3
    waves = [read_wav(u, wavs[u], RATE)[0] for u in sorted(wavs)[:3]]
    recording, _ = concatenate(waves, [1.0, 1.5, 1.2, 1.0], noise_db=30)
    timeline = TimelineRecognizer(recognizer=recognizer, asr=None).timeline(
        recording, RATE, "three")
    assert timeline.task_names() == ["valence", "arousal", "dominance"]
    assert all(isinstance(s.tasks["arousal"], float) for s in timeline.segments)
    again = Timeline.from_dict(json.loads(json.dumps(timeline.to_dict())))
    assert [s.tasks for s in again.segments] == [s.tasks for s in timeline.segments]
    header, *rows = timeline.table().splitlines()
    assert header.split("\t")[-5:] == ["valence", "arousal", "dominance", "modalities", "error"]
    assert float(rows[0].split("\t")[-4]) == timeline.segments[0].tasks["arousal"]
    fig = timeline_figure(timeline)
    curves = [line.get_label() for ax in fig.axes for line in ax.get_lines()]
    assert sorted(curves) == ["arousal", "dominance", "valence"]
    assert set(numeric_tasks(timeline)) == {"valence", "arousal", "dominance"}
