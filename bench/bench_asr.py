"""Whisper ASR engines on one data dir: speed and WER of each, measured in the same run.

    tools/venv/bin/python bench/bench_asr.py [--data-dir egs/ravdess/data/all] \\
        [--model packaged:whisper-tiny.en] [--max-utts 300] [--num-threads 1]

Without --data-dir a small demo corpus is generated (espeak-ng, as bench/bench_whisper.py).
Rows, each over the same utterances (every k-th of the data dir, at most --max-utts):

- ``transformers``: the packaged model converted into transformers (the engine before
  CTranslate2), batches of 8, greedy, Whisper's 30 s window;
- ``ctranslate2, 30 s``: mser.asr on CTranslate2 (int8), batches of 8, Whisper's own window;
- ``ctranslate2, >= W s`` for each --windows W: the batch padded to its longest utterance + 1 s,
  at least W (the default of mser.asr is marked);
- ``faster-whisper``: the anchor, ``WhisperModel(dir, compute_type="int8").transcribe`` of each
  utterance alone (greedy, no timestamps, its own fallbacks), on the same CTranslate2 dir.

Prints audio seconds per wall second, the time relative to the anchor, and the WER against the
data dir's text (mser.scoring.wer's normalisation).
"""
import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_whisper import make_corpus  # noqa: E402


def load_utterances(data_dir, max_utts):
    from mser.features.audio import read_wav
    from mser.io.datadir import read_table

    wav_scp, text = (read_table(os.path.join(data_dir, name), allow_empty_value=True)
                     for name in ("wav.scp", "text"))
    utts = sorted(set(wav_scp) & set(text))
    utts = utts[::max(1, len(utts) // max_utts)][:max_utts]
    return utts, [read_wav(u, wav_scp[u], 16000)[0] for u in utts], [text[u] for u in utts]


def mser_engine(model, **options):
    from mser.asr import SpeechRecognizer

    recognizer = SpeechRecognizer(model, **options)

    def transcribe(waves):
        texts = [None] * len(waves)
        for batch in recognizer.batches([len(w) for w in waves]):
            for i, text in zip(batch, recognizer.transcribe([waves[i] for i in batch])):
                texts[i] = text
        return texts
    return transcribe


def faster_whisper_engine(model, threads):
    from faster_whisper import WhisperModel

    from mser.asr import ct2_whisper_dir

    anchor = WhisperModel(ct2_whisper_dir(model), device="cpu", compute_type="int8",
                          cpu_threads=threads)

    def transcribe(waves):
        return [" ".join(s.text.strip() for s in anchor.transcribe(
            w, beam_size=1, language="en", without_timestamps=True, vad_filter=False,
            condition_on_previous_text=False)[0]) for w in waves]
    return transcribe


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="a Kaldi data dir with text (default: a generated "
                                           "demo corpus)")
    parser.add_argument("--model", default="packaged:whisper-tiny.en")
    parser.add_argument("--max-utts", type=int, default=300)
    parser.add_argument("--windows", type=float, nargs="+", default=[10, 15])
    parser.add_argument("--num-threads", type=int, default=1)
    parser.add_argument("--utts-per-session", type=int, default=12, help="demo corpus size")
    args = parser.parse_args()
    import torch

    from mser.asr import DEFAULT_MIN_WINDOW
    from mser.scoring.wer import word_errors

    torch.set_num_threads(args.num_threads)
    with tempfile.TemporaryDirectory() as root:
        data_dir = args.data_dir or make_corpus(root, args.utts_per_session, 0)
        utts, waves, refs = load_utterances(data_dir, args.max_utts)
        seconds = sum(len(w) for w in waves) / 16000
        engines = [("transformers (before)", lambda: mser_engine(args.model,
                                                                 backend="transformers")),
                   ("ctranslate2, 30 s window", lambda: mser_engine(
                       args.model, backend="ctranslate2", min_window=30))]
        engines += [(f"ctranslate2, window >= {w:g} s"
                     + (" (default)" if w == DEFAULT_MIN_WINDOW else ""),
                     lambda w=w: mser_engine(args.model, backend="ctranslate2", min_window=w))
                    for w in args.windows]
        engines.append(("faster-whisper anchor, one by one",
                        lambda: faster_whisper_engine(args.model, args.num_threads)))
        rows = []
        for name, build in engines:
            transcribe = build()
            transcribe(waves[:2])  # warm-up: first-call allocations are not the engine's rate
            start = time.perf_counter()
            hyps = transcribe(waves)
            wall = time.perf_counter() - start
            rows.append((name, wall, word_errors(dict(zip(utts, refs)), dict(zip(utts, hyps)))))
    anchor = rows[-1][1]
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"Command: bench/bench_asr.py {' '.join(sys.argv[1:])}\n{len(utts)} utterances, "
          f"{seconds:.0f} s of audio from {args.data_dir or 'a generated demo corpus'}; "
          f"{args.model}; {args.num_threads} thread(s), {os.cpu_count()} cores, load average "
          f"at the end {load}\n")
    print("| engine | wall s | audio s / wall s | time / anchor's | WER % |")
    print("|---|---:|---:|---:|---:|")
    for name, wall, errors in rows:
        print(f"| {name} | {wall:.1f} | {seconds / wall:.1f} | {wall / anchor:.2f} | "
              f"{100 * errors.wer:.2f} |")


if __name__ == "__main__":
    main()
