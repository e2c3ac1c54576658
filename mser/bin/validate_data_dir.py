"""Check a Kaldi data dir; print every problem (file:line: what and how to fix) and exit 1 if any.

wav.scp entries that are shell commands (Kaldi's ``cmd |``) are valid, and listed (the
commands, or with more than 20 of them the programs they start), since they run whenever the
audio is read."""
import argparse
import os
import sys
from collections import Counter

from mser.io.datadir import DataDirError, pipe_commands, read_table, validate_data_dir

MAX_LISTED_COMMANDS = 20


def report_commands(wav_scp_path):
    try:
        commands = pipe_commands(read_table(wav_scp_path))
    except DataDirError:  # already reported as a problem
        return
    if not commands:
        return
    print(f"validate_data_dir: {wav_scp_path}: {len(commands)} entry(ies) are shell commands, "
          f"run whenever the audio is read:", file=sys.stderr)
    if len(commands) <= MAX_LISTED_COMMANDS:
        lines = [f"{utt}: {command}" for utt, command in commands.items()]
    else:
        programs = Counter((command.split() or ["''"])[0] for command in commands.values())
        lines = [f"{program}: {count} command(s)" for program, count in programs.most_common()]
        lines.append(f"(all of them: grep '|$' {wav_scp_path})")
    for line in lines:
        print(f"  {line}", file=sys.stderr)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data_dir")
    parser.add_argument("--no-wav", action="store_true", help="do not open the wav files")
    args = parser.parse_args(argv)
    problems = validate_data_dir(args.data_dir, check_wavs=not args.no_wav)
    for problem in problems:
        print(f"validate_data_dir: {problem}", file=sys.stderr)
    wav_scp = os.path.join(args.data_dir, "wav.scp")
    if os.path.exists(wav_scp):
        report_commands(wav_scp)
    if problems:
        print(f"validate_data_dir: {args.data_dir}: {len(problems)} problem(s)", file=sys.stderr)
        sys.exit(1)
    print(f"validate_data_dir: {args.data_dir}: OK", file=sys.stderr)


if __name__ == "__main__":
    main()
