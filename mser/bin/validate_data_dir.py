"""Check a Kaldi data dir; print every problem (file:line: what and how to fix) and exit 1 if any."""
import argparse
import sys

from mser.data.datadir import validate_data_dir


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("--no-wav", action="store_true", help="do not open the wav files")
    args = parser.parse_args(argv)
    problems = validate_data_dir(args.data_dir, check_wavs=not args.no_wav)
    for problem in problems:
        print(f"validate_data_dir: {problem}", file=sys.stderr)
    if problems:
        print(f"validate_data_dir: {args.data_dir}: {len(problems)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"validate_data_dir: {args.data_dir}: OK", file=sys.stderr)


if __name__ == "__main__":
    main()
