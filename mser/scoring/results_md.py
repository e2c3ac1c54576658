"""A recipe's RESULTS.md: one row per tag, paired tests of every tag against a reference tag.

Rows are regenerated for every tag under exp/ that has scores.json. Rows of the previous
RESULTS.md whose tags this exp/ does not hold (ablations trained in another clone or run) are
kept as they were, with the commit that trained them. A tag under exp/ that cannot be scored on
the given folds is reported on the console and keeps its previous row, or gets a row saying why.
"""
import datetime
import glob
import logging
import os
import platform
import re

from mser.scoring.aggregate import score_experiment
from mser.scoring.paired import compare_experiments
from mser.utils.config import load_config
from mser.utils.fileio import atomic_write_text

MAIN_HEADER = "| tag | config | commit | condition | UA | WA | F1 | UA audio only | UA text only |"
TEST_HEADER = ("| tag | condition | ΔUA vs reference [95% CI] | p (bootstrap) | tag right only / "
               "ref right only | p (McNemar) |")
_REFERENCE = re.compile(r"^Paired tests against `([^`]+)`")


def _environment():
    import torch

    return (f"python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
            f"CUDA {'available' if torch.cuda.is_available() else 'not used'}")


def _training_record(exp_dir, folds):
    """(training config, short commit of the code that trained it) from the first fold's config."""
    path = os.path.join(exp_dir, f"fold{folds[0]}", "config.yaml")
    if not os.path.exists(path):
        return "?", "?"
    config = load_config(path)
    sha, dirty, mark = (config.get("git_commit") or "unknown").partition("+")
    return config.get("train_config") or "?", sha[:7] + dirty + mark


def _pm(result, metric):
    if result is None:
        return "-"
    return f"{100 * result['mean'][metric]:.2f} ± {100 * result['std'][metric]:.2f}"


def _main_row(exp_dir, scores, folds):
    train_config, commit = _training_record(exp_dir, folds)
    return (f"| {scores['tag']} | {train_config} | {commit} | {scores['condition']} | "
            f"{_pm(scores, 'ua')} | {_pm(scores, 'wa')} | {_pm(scores, 'macro_f1')} | "
            f"{_pm(scores.get('audio_only'), 'ua')} | {_pm(scores.get('text_only'), 'ua')} |")


def _test_row(exp_dir, reference, folds, condition):
    """A markdown row of the paired tests of ``exp_dir`` against ``reference``."""
    try:
        c = compare_experiments(exp_dir, reference, folds, condition)
    except ValueError as e:
        return f"| {os.path.basename(exp_dir)} | {condition or '-'} | not comparable: {e} | | | |"
    return (f"| {c['a']} | {condition or 'main'} | {100 * c['ua_diff']:+.2f} "
            f"[{100 * c['ua_diff_95ci'][0]:+.2f}, {100 * c['ua_diff_95ci'][1]:+.2f}] | "
            f"{c['p_bootstrap_ua']:.3g} | {c['a_right_b_wrong']} / {c['b_right_a_wrong']} | "
            f"{c['p_mcnemar']:.3g} |")


def _cells(row):
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def read_previous(path):
    """``(main rows {tag: row}, test rows {tag: [row]}, reference tag)`` of an existing
    RESULTS.md; empty when there is none."""
    main, tests, reference, table = {}, {}, None, None
    if not os.path.exists(path):
        return main, tests, reference
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if _REFERENCE.match(line):
                reference = _REFERENCE.match(line).group(1)
            if line in (MAIN_HEADER, TEST_HEADER):
                table = line
            elif not line.startswith("|"):
                table = None
            elif table and not line.startswith("|---"):
                tag = _cells(line)[0]
                if table == MAIN_HEADER:
                    main[tag] = line
                else:
                    tests.setdefault(tag, []).append(line)
    return main, tests, reference


def write_results_md(path, exp_root, folds, reference_tag, title, protocol):
    """Regenerate RESULTS.md (see the module docstring); ``protocol`` describes the folds."""
    fold_list = " ".join(map(str, folds))
    old_rows, old_tests, old_reference = read_previous(path)
    rows, scored, kept = {}, [], []
    for exp_dir in sorted(os.path.dirname(p) for p in glob.glob(os.path.join(exp_root, "*", "scores.json"))):
        tag = os.path.basename(exp_dir)
        try:
            scores = score_experiment(exp_dir, folds)
        except ValueError as e:
            logging.warning("%s: %s cannot be scored on folds %s (%s); %s", path, tag, fold_list,
                            e, "its previous row is kept" if tag in old_rows else
                            "it is listed as not scored")
            rows[tag] = old_rows.get(tag) or (f"| {tag} | - | - | not scored on folds {fold_list}: "
                                              f"{e} | - | - | - | - | - |")
            kept += [tag] if tag in old_rows else []
            continue
        scored.append(exp_dir)
        rows[tag] = _main_row(exp_dir, scores, folds)
    kept += sorted(set(old_rows) - set(rows))
    rows.update({tag: old_rows[tag] for tag in kept})

    reference = os.path.join(exp_root, reference_tag)
    others = [e for e in scored if os.path.normpath(e) != os.path.normpath(reference)]
    tests = [_test_row(exp_dir, reference, folds, None) for exp_dir in others]
    # Missing modality at test: each tag and the reference, both given one modality.
    tests += [_test_row(exp_dir, reference, folds, condition)
              for condition in ("audio_only", "text_only") for exp_dir in others
              if all(os.path.isdir(os.path.join(e, f"fold{folds[0]}", "decode", condition))
                     for e in (exp_dir, reference))]
    if old_reference == reference_tag:
        tests += [row for tag in kept for row in old_tests.get(tag, [])]
    by_condition = sorted(tests, key=lambda row: (_cells(row)[1], _cells(row)[0]))
    main_tests = [row for row in by_condition if _cells(row)[1] in ("main", "-")]
    single_tests = [row for row in by_condition if row not in main_tests]

    text = [f"# {title}", "",
            "Generated by stage 5 (`python -m mser.bin.score`); do not edit by hand.", "",
            f"- protocol: {protocol}",
            f"- folds: {fold_list} (model selection on dev, never on test)",
            f"- environment: {_environment()}",
            f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}", "",
            "UA = mean per-class recall, WA = overall accuracy, F1 = macro F1; mean ± sample std "
            "over folds, in %. 'audio only' / 'text only' = the same model given one modality at "
            "test time. 'commit' = the mser commit that trained the tag.", ""]
    if kept:
        text += [f"Kept from the previous RESULTS.md (not scored in this run; environment and "
                 f"tests as they were then): {', '.join(kept)}.", ""]
    text += [MAIN_HEADER, "|---|---|---|---|---|---|---|---|---|",
             *(row for _, row in sorted(rows.items())), ""]
    if main_tests:
        text += [f"Paired tests against `{reference_tag}` over the pooled test utterances "
                 "(bootstrap of UA difference, 1000 resamples; exact McNemar on correctness):", "",
                 TEST_HEADER, "|---|---|---|---|---|---|", *main_tests, ""]
    if single_tests:
        text += [f"The same with one modality at test, both `{reference_tag}` and the tag given "
                 "audio only or text only:", "",
                 TEST_HEADER, "|---|---|---|---|---|---|", *single_tests, ""]
    atomic_write_text(path, "\n".join(text))
