"""How well the timeline finds and labels speech: long recordings built from labelled utterances
(each trimmed to its sound, joined by pauses, optionally in noise), scored against their known
segments and labels (mser/scoring/timeline.py).

    # the demo corpus (after ./run.sh in egs/synth_iemocap): fold 1's test session, unseen
    tools/venv/bin/python bench/eval_timeline.py \\
        --model-dir egs/synth_iemocap/exp/train_whisper_tiny_utterance_minilm/fold1 \\
        --data-dir egs/synth_iemocap/data/fold1/test
    # real speech: RAVDESS clips of fold 1's test actors (a RAVDESS model, e.g. egs/ravdess)
    tools/venv/bin/python bench/eval_timeline.py --model-dir egs/ravdess/exp/<tag>/fold1 \\
        --ravdess /path/to/Audio_Speech_Actors_01-24 --asr none

Options: --recordings N of --utts utterances each (drawn with --seed), pauses uniform in --pause
MIN MAX seconds, --snr dB of white noise below the speech RMS ("none": clean; several values:
one row each). Prints a markdown table: boundary precision / recall / F1 within 0.2 s and 0.5 s,
coverage of the reference speech, speech precision of the segments, frame-level emotion accuracy
and UA of the timeline (10 ms frames of reference speech), and the accuracy of the same model on
the same utterances one by one (what a perfect segmenter would give, with the same ASR).
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mser.io.datadir import read_table  # noqa: E402
from mser.features.audio import read_wav  # noqa: E402
from mser.scoring.timeline import timeline_scores  # noqa: E402

RATE = 16000


def trim(wave, frame=160):
    """``wave`` cut to its sound: from the first to the last 10 ms frame whose RMS is 12 dB over
    the noise floor (10th percentile) and within 35 dB of the loudest frame."""
    frames = wave[:len(wave) // frame * frame].reshape(-1, frame)
    rms = np.sqrt((frames.astype(np.float64) ** 2).mean(axis=1)) + 1e-9
    threshold = max(4 * np.percentile(rms, 10), rms.max() * 10 ** (-35 / 20))
    loud = np.flatnonzero(rms > threshold)
    return wave[loud[0] * frame:(loud[-1] + 1) * frame]


def load_utterances(data_dir):
    wavs, labels = read_table(os.path.join(data_dir, "wav.scp")), \
        read_table(os.path.join(data_dir, "utt2emo"))
    return [(utt, wavs[utt], labels[utt]) for utt in wavs if utt in labels]


def build_recording(utterances, rng, pause, snr, noise_rng):
    """(waveform, [(start, end, label)], [trimmed utterance waveforms]) of one recording."""
    parts, reference, waves, t = [], [], [], 0
    for utt, wav, label in utterances:
        gap = np.zeros(int(rng.uniform(*pause) * RATE), np.float32)
        wave = trim(read_wav(utt, wav, RATE)[0])
        parts += [gap, wave]
        t += len(gap)
        reference.append((t / RATE, (t + len(wave)) / RATE, label))
        waves.append(wave)
        t += len(wave)
    parts.append(np.zeros(int(rng.uniform(*pause) * RATE), np.float32))
    recording = np.concatenate(parts)
    if snr is not None:
        rms = np.sqrt(np.mean(np.concatenate(waves).astype(np.float64) ** 2))
        noise = noise_rng.standard_normal(len(recording)) * rms * 10 ** (-snr / 20)
        recording = (recording + noise).astype(np.float32)
    return recording, reference, waves


def ravdess_test_dir(corpus, fold, work):
    """Fold ``fold``'s test set of RAVDESS prepared as the recipe's stage 0 does."""
    subprocess.run([sys.executable, "-m", "mser.bin.prepare_corpus", "ravdess", corpus,
                    os.path.join(work, "data")], check=True, capture_output=True)
    return os.path.join(work, "data", f"fold{fold}", "test")


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--data-dir", help="labelled utterances (wav.scp, utt2emo)")
    source.add_argument("--ravdess", help="RAVDESS root (Actor_01..24 at any depth)")
    parser.add_argument("--ravdess-fold", type=int, default=1, help="its test actors are used")
    parser.add_argument("--asr", default="packaged:whisper-tiny.en", help="or none")
    parser.add_argument("--recordings", type=int, default=6)
    parser.add_argument("--utts", type=int, default=12, help="utterances per recording")
    parser.add_argument("--pause", type=float, nargs=2, default=[0.4, 2.0])
    parser.add_argument("--snr", nargs="+", default=["none", "10"],
                        help="dB of white noise below the speech; none: clean")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from mser.timeline import TimelineRecognizer
    from mser.utils.logging import setup_logging

    setup_logging(0)
    with tempfile.TemporaryDirectory() as work:
        data_dir = args.data_dir or ravdess_test_dir(args.ravdess, args.ravdess_fold, work)
        pool = load_utterances(data_dir)
        timeline = TimelineRecognizer(args.model_dir, asr=None if args.asr == "none" else args.asr)
        rows = []
        for snr_arg in args.snr:
            snr = None if snr_arg == "none" else float(snr_arg)
            rng, noise_rng = np.random.default_rng(args.seed), np.random.default_rng(args.seed + 1)
            reference, hypothesis, offset, alone = [], [], 0.0, []
            for k in range(args.recordings):
                chosen = [pool[i] for i in rng.choice(len(pool), args.utts, replace=False)]
                recording, ref, waves = build_recording(chosen, rng, args.pause, snr, noise_rng)
                result = timeline.timeline(recording, RATE, f"rec{k}", progress=False)
                reference += [(s + offset, e + offset, lab) for s, e, lab in ref]
                hypothesis += [(s.start + offset, s.end + offset, s.emotion)
                               for s in result.segments]
                offset += len(recording) / RATE + 10.0   # recordings never share a boundary
                if snr_arg == args.snr[0]:   # the same utterances one by one, once
                    texts = timeline.transcribe(waves)
                    alone += [timeline.recognizer.predict(w, RATE, t).emotion == lab
                              for w, t, (_, _, lab) in zip(waves, texts, ref)]
            if alone:
                alone_accuracy = float(np.mean(alone))
            scores = timeline_scores(reference, hypothesis, offset)
            b2, b5 = scores["boundary@0.2s"], scores["boundary@0.5s"]
            minutes = sum(e - s for s, e, _ in reference) / 60
            rows.append(
                f"| {snr_arg} | {args.recordings} × {args.utts} ({minutes:.1f} min speech) | "
                f"{scores['reference_segments']} / {scores['hypothesis_segments']} | "
                f"{100 * b2['precision']:.1f} / {100 * b2['recall']:.1f} / {100 * b2['f1']:.1f} | "
                f"{100 * b5['precision']:.1f} / {100 * b5['recall']:.1f} / {100 * b5['f1']:.1f} | "
                f"{100 * scores['coverage']:.1f} | {100 * scores['speech_precision']:.1f} | "
                f"{100 * scores['frame_accuracy']:.1f} | {100 * scores['frame_ua']:.1f} | "
                f"{100 * alone_accuracy:.1f} |")
    source = args.data_dir or f"RAVDESS fold {args.ravdess_fold} test actors"
    print(f"Command: {' '.join(['bench/eval_timeline.py', *sys.argv[1:]])}\n")
    print(f"{source}; model {args.model_dir}; ASR {args.asr}; pauses {args.pause[0]}-"
          f"{args.pause[1]} s; segmenter defaults ({timeline.segmenter_info()})\n")
    print("| SNR dB | recordings × utterances | segments ref / found | boundary P / R / F1 "
          "@0.2 s | @0.5 s | coverage % | speech precision % | frame acc % | frame UA % | "
          "utterances alone acc % |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
