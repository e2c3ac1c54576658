"""Export a trained model dir (a fold, a final model, an exported dir) to ONNX, checked against
torch with onnxruntime before it is written:

    mser-export-onnx --model-dir exp/<tag>/final [--out exp/<tag>/final/model.onnx]

Run it with onnxruntime alone (no torch): mser.utils.onnx_model.OnnxEmotionModel, or any
onnxruntime binding: the inputs, classes, calibration temperatures and feature configs are in
the file (see mser.utils.onnx_model). Needs the onnx extra: pip install -e '.[onnx]'.
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
    parser.add_argument("--out", help="the .onnx file (default: <model-dir>/model.onnx)")
    parser.add_argument("--checkpoint", help="weights inside --model-dir (default: model.pt, "
                                             "else the dev-selected best.pt)")
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
        export_onnx(args.model_dir, args.out or os.path.join(args.model_dir, "model.onnx"),
                    args.checkpoint)
    except (FileNotFoundError, RuntimeError) as e:
        sys.exit(f"mser-export-onnx: {e}")


if __name__ == "__main__":
    main()
