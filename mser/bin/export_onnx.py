"""Export a trained model dir (a fold, a final model, an mser-export-model dir) to ONNX, checked
against torch with onnxruntime before it is kept:

    mser-export-onnx --model-dir exp/<tag>/final [--out-dir exp/<tag>/final/onnx] [--int8]
    mser-infer --backend onnxruntime --model-dir exp/<tag>/final/onnx my.wav --text "..."

<out-dir> holds model.onnx (the model over every stream) and, unless --no-features, each
stream's feature extractor (fbank as it is; the Whisper encoder, whisper_window: utterance, and
a text encoder as ONNX graphs of their stored layers, with the log-mel filters and the
tokenizer) and onnx.yaml; mser.onnx_inference.OnnxEmotionRecognizer runs it without torch.
--int8 quantises the graphs' weights (onnxruntime dynamic quantisation; the log names the
posterior difference it costs). Needs the onnx extra: pip install -e '.[onnx]'.
"""
import argparse
import os
import sys

from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", required=True,
                        help="exp/<tag>/fold<k>, exp/<tag>/final or a mser-export-model dir")
    parser.add_argument("--out-dir", help="where the export goes (default: <model-dir>/onnx)")
    parser.add_argument("--checkpoint", help="weights inside --model-dir (default: model.pt, "
                                             "else the dev-selected best.pt)")
    parser.add_argument("--no-features", action="store_true",
                        help="the model graph alone (stored features in: mser.utils.onnx_model)")
    parser.add_argument("--int8", action="store_true",
                        help="dynamically quantise the graphs' weights to int8")
    args = parser.parse_args(argv)
    setup_logging()
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as e:
        sys.exit(f"mser-export-onnx: {e.name} is not installed; pip install -e '.[onnx]' "
                 f"(tools/install.sh installs it)")
    from mser.onnx_export import export_onnx

    try:
        export_onnx(args.model_dir, args.out_dir or os.path.join(args.model_dir, "onnx"),
                    args.checkpoint, features=not args.no_features, int8=args.int8)
    except (FileNotFoundError, ValueError, RuntimeError) as e:
        sys.exit(f"mser-export-onnx: {e}")


if __name__ == "__main__":
    main()
