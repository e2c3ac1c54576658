"""Print spk2utt for an utt2spk file: utt2spk_to_spk2utt.py data/x/utt2spk > data/x/spk2utt"""
import argparse
import sys

from mser.io.datadir import DataDirError, read_table, utt2spk_to_spk2utt


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("utt2spk")
    args = parser.parse_args(argv)
    try:
        spk2utt = utt2spk_to_spk2utt(read_table(args.utt2spk))
    except DataDirError as e:
        sys.exit(f"utt2spk_to_spk2utt: {e}")
    for spk, utts in spk2utt.items():
        print(spk, utts)


if __name__ == "__main__":
    main()
