"""Split an scp file into contiguous parts: split_scp.py in.scp out.1.scp ... out.N.scp"""
import argparse
import sys

from mser.io.datadir import DataDirError, read_table, split_scp


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--utt2spk", help="keep each speaker's utterances in one part")
    parser.add_argument("scp")
    parser.add_argument("outputs", nargs="+")
    args = parser.parse_args(argv)
    try:
        utt2spk = read_table(args.utt2spk) if args.utt2spk else None
        split_scp(args.scp, args.outputs, utt2spk=utt2spk)
    except (DataDirError, FileNotFoundError) as e:
        sys.exit(f"split_scp: {e}")


if __name__ == "__main__":
    main()
