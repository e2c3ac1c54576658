"""Recognise the emotion of recordings with a trained or exported model (mser-infer).

One wav (any sample rate), with its transcript or without it (then audio-only)::

    mser-infer --model-dir exp/train_fbank_minilm/fold1 happy.wav --text "What a day"
    mser-infer --model-dir exported/ happy.wav --transcribe /models/whisper-small
    mser-infer --model-dir exported/ happy.wav --attention-plot attention.png

Batch mode over a Kaldi wav.scp (optionally a ``text`` file; utterances missing from it, or
with an empty transcript, run audio-only), or over a data dir (its wav.scp and text)::

    mser-infer --model-dir exported/ --wav-scp wav.scp --text-file text --output emotions.txt

Output, one line per utterance: ``<utt> <emotion> <class>=<prob> ... (<modalities used>)``,
or ``<utt> ERROR <reason>`` for an utterance that cannot be recognised (unreadable or too short
audio, a transcript that is not UTF-8, ...): the reason also goes to stderr, the other
utterances are still recognised and written, and the exit status is then 1. A transcript that
is empty once its tags are removed ("[LAUGHTER]") counts as none, as in the decoding stage.
Only the model dir's config.yaml and weights are read (see mser.inference). An ONNX export
(mser-export-onnx) runs on onnxruntime without torch::

    mser-infer --backend onnxruntime --model-dir exp/<tag>/final/onnx happy.wav --text "..."
"""
import argparse
import logging
import os
import sys

from tqdm import tqdm

from mser.io.datadir import read_table
from mser.features.audio import BadUtteranceError, read_wav
from mser.utils.fileio import atomic_open
from mser.utils.logging import setup_logging


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True,
                        help="exp/<tag>/fold<k> (uses best.pt) or an exported model dir")
    parser.add_argument("--checkpoint", help="weights file inside --model-dir (default: model.pt "
                                             "or best.pt)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backend", choices=("torch", "onnxruntime"), default="torch",
                        help="onnxruntime: --model-dir is an ONNX export (mser-export-onnx); "
                             "torch is not imported")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("wav", nargs="?", help="one recording (any format libsndfile reads)")
    source.add_argument("--wav-scp", help="batch mode: Kaldi wav.scp (paths or pipe commands)")
    source.add_argument("--data-dir", help="batch mode: a data dir (wav.scp and, if present, text)")
    parser.add_argument("--text", help="transcript of WAV")
    parser.add_argument("--text-file", help="batch mode: Kaldi text file (<utt> <transcript>)")
    parser.add_argument("--transcribe", metavar="ASR_DIR",
                        help="transcribe with this local transformers ASR model (Whisper, "
                        "wav2vec2-CTC) or packaged:whisper-tiny.en / packaged:whisper-base")
    parser.add_argument("--max-utts", type=int, help="batch mode: only the first N utterances")
    parser.add_argument("--output", help="also write the result lines to this file")
    parser.add_argument("--attention-plot", metavar="PNG",
                        help="plot where the emotion queries attend, for WAV or the first "
                             "recognised utterance of a batch")
    return parser


def check_args(parser, args):
    if args.text is not None and args.wav is None:
        parser.error("--text goes with a single WAV; use --text-file with --wav-scp")
    if args.text_file and args.wav_scp is None:
        parser.error("--text-file goes with --wav-scp (a --data-dir brings its own text)")
    if args.transcribe and (args.text is not None or args.text_file):
        parser.error("--transcribe replaces --text / --text-file; give one or the other")
    if args.backend == "onnxruntime":
        for option in ("checkpoint", "transcribe", "attention_plot"):
            if getattr(args, option):
                parser.error(f"--{option.replace('_', '-')} needs the torch backend")
        if args.device != "cpu":
            parser.error("--backend onnxruntime runs on the CPU (--device cpu)")


def utterances(args):
    """[(utt, wav entry, transcript or None)] of the requested input."""
    if args.wav is not None:
        if not os.path.exists(args.wav):
            raise FileNotFoundError(f"{args.wav}: no such file; give the path of a recording")
        return [(os.path.splitext(os.path.basename(args.wav))[0], args.wav, args.text)]
    wav_scp = args.wav_scp or os.path.join(args.data_dir, "wav.scp")
    text_path = args.text_file or (os.path.join(args.data_dir, "text") if args.data_dir else None)
    if args.data_dir and not os.path.exists(text_path):
        text_path = None
    texts = read_table(text_path, allow_empty_value=True) if text_path else {}
    items = [(utt, wav, texts.get(utt)) for utt, wav in read_table(wav_scp).items()]
    return items[:args.max_utts] if args.max_utts else items


def recognize(recognizer, transcriber, utt, wav, text, plot):
    """The prediction of one utterance; ``plot``: attention plot path or None."""
    waveform, rate = read_wav(utt, wav) if "audio" in recognizer.modalities or transcriber \
        else (None, None)
    if transcriber:
        text = transcriber(waveform, rate)
        logging.info("%s: transcript %r", utt, text)
    if not recognizer.has_transcript(text):
        logging.info("%s: no transcript (or tags only), audio only", utt)
    prediction = recognizer.predict(waveform, rate, text, return_attention=bool(plot))
    if plot:
        from mser.inference import plot_query_attention

        plot_query_attention(prediction, plot, title=utt)
        logging.info("%s: query attention plotted to %s", utt, plot)
    return prediction


def error_reason(error):
    if isinstance(error, BadUtteranceError):  # its message advises on feature dumps
        reason = f"{error.source}: {error.reason}"
    else:
        reason = str(error) or type(error).__name__
    return " ".join(reason.split())


def main(argv=None):
    parser = get_parser()
    args = parser.parse_args(argv)
    check_args(parser, args)
    setup_logging()
    try:
        if args.backend == "onnxruntime":
            from mser.onnx_inference import OnnxEmotionRecognizer

            recognizer = OnnxEmotionRecognizer(args.model_dir)
        else:
            from mser.inference import EmotionRecognizer

            recognizer = EmotionRecognizer(args.model_dir, args.checkpoint, args.device)
        items = utterances(args)
    except (OSError, ValueError) as e:  # a model dir that is not one, a missing input
        sys.exit(f"mser-infer: {error_reason(e)}")
    if args.attention_plot and not recognizer.has_attention:
        parser.error(f"--attention-plot: fusion {recognizer.config['model_conf']['fusion']!r} "
                     f"has no emotion queries to plot; only 'query' fusion models have")
    transcriber = None
    if args.transcribe:
        from mser.inference import Transcriber

        transcriber = Transcriber(args.transcribe, args.device)
    lines, failed, plot = [], 0, args.attention_plot
    for utt, wav, text in tqdm(items, desc="mser-infer", unit="utt", disable=len(items) == 1):
        try:
            prediction = recognize(recognizer, transcriber, utt, wav, text, plot)
            lines.append(f"{utt} {prediction.format()}")
            plot = None
        except Exception as e:  # one bad utterance must not stop a batch
            failed += 1
            lines.append(f"{utt} ERROR {error_reason(e)}")
            logging.error("%s: %s", utt, error_reason(e))
        print(lines[-1], flush=True)
    if args.output:
        with atomic_open(args.output, "w", encoding="utf-8") as f:
            f.writelines(line + "\n" for line in lines)
    if failed:
        logging.error("%d of %d utterance(s) failed (lines '<utt> ERROR <reason>')", failed,
                      len(items))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
