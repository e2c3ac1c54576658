"""Export a trained fold as a model dir that mser-infer loads: config.yaml + model.pt.

    python -m mser.bin.export_model --exp-dir exp/train_fbank_minilm/fold1 --out-dir model/
    mser-infer --model-dir model/ some.wav --text "..."

``--bundle-pretrained`` also copies the local pre-trained feature models (HuBERT, MPNet, ...)
into the export, so that the dir works on a machine without them."""
import argparse

from mser.inference import TRAINED_WEIGHTS, export_model
from mser.utils.logging import setup_logging


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exp-dir", required=True, help="a trained fold: exp/<tag>/fold<k>")
    parser.add_argument("--out-dir", required=True)
    parser.add_argument("--checkpoint", default=TRAINED_WEIGHTS,
                        help="weights inside --exp-dir (default: the dev-selected best.pt)")
    parser.add_argument("--bundle-pretrained", action="store_true",
                        help="copy local pre-trained feature models into <out-dir>/pretrained/")
    args = parser.parse_args(argv)
    setup_logging()
    export_model(args.exp_dir, args.out_dir, args.checkpoint, args.bundle_pretrained)


if __name__ == "__main__":
    main()
