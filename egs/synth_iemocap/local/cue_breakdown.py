#!/usr/bin/env python3
"""Accuracy by cue type of the demo corpus: which utterances each decoding condition gets right.

The cue (utt2cue, mser/data/synth.py) says which modality alone identifies an utterance's emotion:
text, voice, both, fusion (neither alone) or none (neutral). Pools the test utterances of all
decoded folds of an experiment; writes <exp>/cue_breakdown.txt and prints it.
    python local/cue_breakdown.py corpus/IEMOCAP_synth/utt2cue exp/train_fbank_minilm
"""
import argparse
import glob
import os

from mser.io.datadir import read_table
from mser.utils.fileio import atomic_write_text

CUES = ("none", "both", "text", "voice", "fusion")


def cue_accuracies(utt2cue_path, exp_dir):
    """{condition: {cue: (correct, total)}} over every fold's decode dir."""
    # Data dirs name an utterance <speaker>_<IEMOCAP id>; utt2cue uses the IEMOCAP id.
    cue_of = {utt: fields.split()[0] for utt, fields in read_table(utt2cue_path).items()}
    counts = {}
    for decode_dir in sorted(glob.glob(os.path.join(exp_dir, "fold*", "decode"))):
        labels = read_table(os.path.join(decode_dir, "utt2emo"))
        for predictions in sorted(glob.glob(os.path.join(decode_dir, "*", "predictions"))):
            by_cue = counts.setdefault(os.path.basename(os.path.dirname(predictions)), {})
            for utt, predicted in read_table(predictions).items():
                cue = cue_of[utt.split("_", 1)[1]]
                correct, total = by_cue.get(cue, (0, 0))
                by_cue[cue] = (correct + (predicted == labels[utt]), total + 1)
    if not counts:
        raise SystemExit(f"cue_breakdown: no {exp_dir}/fold*/decode/*/predictions; run stage 4 first")
    return counts


def format_table(counts, exp_dir):
    cues = [c for c in CUES if any(c in by_cue for by_cue in counts.values())]
    totals = next(iter(counts.values()))
    lines = [f"{os.path.basename(os.path.normpath(exp_dir))}: accuracy (%) by cue, test "
             f"utterances of all decoded folds",
             f"{'condition':12s}" + "".join(f"{c:>14s}" for c in cues),
             f"{'(utterances)':12s}" + "".join(f"{totals[c][1]:>14d}" for c in cues)]
    for condition, by_cue in counts.items():
        lines.append(f"{condition:12s}" + "".join(
            f"{100 * by_cue[c][0] / by_cue[c][1]:>14.1f}" for c in cues))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("utt2cue", help="the corpus's utt2cue")
    parser.add_argument("exp_dir", help="exp/<tag> with fold*/decode")
    args = parser.parse_args()
    table = format_table(cue_accuracies(args.utt2cue, args.exp_dir), args.exp_dir)
    atomic_write_text(os.path.join(args.exp_dir, "cue_breakdown.txt"), table)
    print(table, end="")


if __name__ == "__main__":
    main()
