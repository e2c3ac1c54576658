"""A recipe's RESULTS.md, rebuilt from the exp dirs (ESPnet's show_asr_result.sh): one row per
tag, paired tests of every tag against its reference tag and its probe.

RESULTS.md is a pure function of the tags under the exp root, the folds, data/protocol and the
recipe's notes; it is never read back. A tag's rows come from what stage 5 wrote to its exp dir:
scores.json (scores, WER of the ASR test text, reference and probe tags, the config and commit
that trained it) and scores_<subset>.json; its paired tests from the predictions under
fold<k>/decode*/ (mser.scoring.paired). The rows of a tag whose exp dir is gone disappear: to
keep a result, keep exp/<tag>/scores*.json and fold<k>/decode*/ (no checkpoints needed). A tag
whose scores.json holds other folds is reported on the console and gets a row saying so.

The protocol (data/protocol) names the corpus and its folds, and its headline metric: a column
of its own when UA, WA and F1 do not hold it (MELD's weighted F1), and the metric of the
single-modality columns. Each further test subset of the protocol (MSP-Podcast's ``test2``) gets
a table of the tags scored on it.

A tag's reference is the one stage 5 named when it scored the tag (``reference_tag`` in its
scores.json; the recipes default to the default config on the same features and gold text), so
ablations on different features are each tested against their own baseline; a tag whose
scores.json names none has no reference test. Every tag is also tested against the linear probe
of its modalities on the same features (``probe_tag``, the recipes' conf/tuning/probe*.yaml),
when that was trained: does the architecture earn its complexity?
"""
import datetime
import glob
import json
import logging
import os
import platform

from mser.scoring.aggregate import METRIC_NAMES, other_conditions, training_record
from mser.scoring.decodes import decode_name, subset_suffix
from mser.scoring.paired import compare_experiments
from mser.utils.calibration import ECE_BINS
from mser.utils.fileio import atomic_write_text
from mser.utils.tasks import TASK_TYPES, signed_text

BASE_METRICS = ("ua", "wa", "macro_f1")
# The single-stream columns the main table always has; a recipe with another stream adds its
# <stream>_only (scores.json holds every decoded condition).
TABLE_CONDITIONS = ("audio_only", "text_only")
WER_HEADER = "| tag | WER of the ASR test text | UA | WA | test utterances not transcribed |"


def paired_headers(headline):
    """The headers of the tables of paired tests against the references and against the probes,
    the bootstrap on the headline metric."""
    def header(against, short):
        return (f"| tag | {against} | condition | Δ{METRIC_NAMES[headline]} vs {against} "
                f"[95% CI] | p (bootstrap) | tag right only / {short} right only | p (McNemar) |")
    return header("reference", "ref"), header("probe", "probe")


def _environment():
    import torch

    return (f"python {platform.python_version()}, torch {torch.__version__}, "
            f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU(s), "
            f"CUDA {'available' if torch.cuda.is_available() else 'not used'}")


def _training_cells(exp_dir, scores, folds):
    """(training config, short commit of the code that trained it) as recorded in scores.json,
    else (scores.json written before the record) from the first fold's config.yaml."""
    record = scores["trained"] if "trained" in scores else training_record(exp_dir, folds)
    if record is None:
        return "?", "?"
    sha, dirty, mark = (record["git_commit"] or "unknown").partition("+")
    return record["train_config"] or "?", sha[:7] + dirty + mark


def table_metrics(headline):
    """The metric columns of the main table: UA, WA, F1 and the headline if not among them."""
    return BASE_METRICS + (() if headline in BASE_METRICS else (headline,))


def table_conditions(scored):
    """The single-stream columns: audio and text only, then any other stream's of ``scored``."""
    others = {c for scores in scored for c in other_conditions(scores)
              if c.endswith("_only") and c not in TABLE_CONDITIONS}
    return TABLE_CONDITIONS + tuple(sorted(others))


def main_header(headline, conditions):
    name = METRIC_NAMES[headline]
    return ("| tag | config | commit | condition | "
            + "".join(f"{METRIC_NAMES[m]} | " for m in table_metrics(headline))
            + f"{name} pooled | "
            + "".join(f"{name} {c.replace('_', ' ')} | " for c in conditions)).rstrip()


def _rule(header):
    return "|" + "---|" * (header.count("|") - 1)


def _pm(result, metric):
    if result is None:
        return "-"
    return f"{100 * result['mean'][metric]:.2f} ± {100 * result['std'][metric]:.2f}"


def _scores_on(exp_dir, folds, subset="test"):
    """What stage 5 wrote to ``exp_dir``/scores.json (scores_<subset>.json), named after the dir
    as it is now; ValueError unless it holds exactly ``folds``."""
    name = f"scores{subset_suffix(subset)}.json"
    path = os.path.join(exp_dir, name)
    if not os.path.exists(path):
        raise ValueError(f"no {name}")
    with open(path, encoding="utf-8") as f:
        scores = json.load(f)
    held = [fold["fold"] for fold in scores["folds"]]
    if held != list(folds):
        raise ValueError(f"{name} holds folds {' '.join(map(str, held))}: re-run stage 5 on "
                         f"these folds")
    return dict(scores, tag=os.path.basename(os.path.normpath(exp_dir)))


def _main_row(exp_dir, scores, folds, headline, conditions):
    train_config, commit = _training_cells(exp_dir, scores, folds)
    return (f"| {scores['tag']} | {train_config} | {commit} | {scores['condition']} | "
            + "".join(f"{_pm(scores, m)} | " for m in table_metrics(headline))
            + f"{100 * scores['pooled'][headline]:.2f} | "
            + "".join(f"{_pm(scores.get(c), headline)} | " for c in conditions)).rstrip()


def _subset_table(exp_dirs, folds, subset, headline):
    """Markdown lines: the tags of ``exp_dirs`` scored on test subset ``subset``."""
    metrics = (headline, *(m for m in ("ua", "wa") if m != headline))
    header = "| tag | condition | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |"
    lines = [f"Test set `{subset}` (the same models):", "", header, _rule(header)]
    for exp_dir in exp_dirs:
        try:
            scores = _scores_on(exp_dir, folds, subset)
        except ValueError as e:
            logging.warning("%s: not scored on %s (%s)", exp_dir, subset, e)
            continue
        lines.append(f"| {scores['tag']} | {scores['condition']} | "
                     + " | ".join(_pm(scores, m) for m in metrics) + " |")
    return lines + [""]


def _wer_row(scores):
    """The WER row of a tag tested on ASR transcripts (``wer`` in its scores.json)."""
    wer = scores["wer"]
    missing = sum(len(f["not_transcribed"]) for f in wer["folds"])
    return (f"| {scores['tag']} | {100 * wer['mean']:.2f} ± {100 * wer['std']:.2f} | "
            f"{_pm(scores, 'ua')} | {_pm(scores, 'wa')} | {missing} |")


def _test_row(exp_dir, reference, folds, condition, metric):
    """(condition column, markdown row) of the paired tests of ``exp_dir`` against ``reference``
    (the bootstrap on ``metric``); the column is ``-`` when the two are not comparable."""
    try:
        c = compare_experiments(exp_dir, reference, folds, condition, metric)
    except ValueError as e:
        column = condition or "-"
        return column, (f"| {os.path.basename(exp_dir)} | {os.path.basename(reference)} | "
                        f"{column} | not comparable: {e} | | | |")
    column = condition or "main"
    return column, (f"| {c['a']} | {c['b']} | {column} | {100 * c['diff']:+.2f} "
                    f"[{100 * c['diff_95ci'][0]:+.2f}, {100 * c['diff_95ci'][1]:+.2f}] | "
                    f"{c['p_bootstrap']:.3g} | {c['a_right_b_wrong']} / {c['b_right_a_wrong']} | "
                    f"{c['p_mcnemar']:.3g} |")


TASK_HEADER = "| tag | task | condition | metrics: mean ± std over folds (pooled) |"
TASK_TEST_HEADER = ("| tag | against | task | Δ headline [95% CI] | p (bootstrap) |")


def _task_rows(scores):
    """Rows of the auxiliary tasks' scores of a tag (its main condition), each metric as its
    task type reports it."""
    rows = []
    for task, result in scores.get("tasks", {}).items():
        kind = TASK_TYPES[result["type"]]
        cells = ", ".join(f"{METRIC_NAMES[m]} {kind.text(result['mean'][m])} ± "
                          f"{kind.text(result['std'][m])} ({kind.text(result['pooled'][m])})"
                          for m in kind.metrics)
        rows.append(f"| {scores['tag']} | {task} ({result['type']}) | {scores['condition']} | "
                    f"{cells} |")
    return rows


def _task_test_rows(exp_dir, scored, exp_root, folds):
    """Paired tests of each auxiliary task of a tag against its reference and its probe where
    those have the task too (``scored``: exp dir -> its scores.json), on the task type's
    headline metric."""
    rows, scores = [], scored[exp_dir]
    others = [_other_tag(exp_root, scores, key) for key in ("reference_tag", "probe_tag")]
    for task, result in scores.get("tasks", {}).items():
        kind = TASK_TYPES[result["type"]]
        for other in others:
            if task not in scored.get(other, {}).get("tasks", {}):
                continue
            c = compare_experiments(exp_dir, other, folds, None, kind.headline, task=task)
            low, high = (signed_text(kind, v) for v in c["diff_95ci"])
            rows.append(f"| {c['a']} | {c['b']} | {task} | {METRIC_NAMES[kind.headline]} "
                        f"{signed_text(kind, c['diff'])} [{low}, {high}] | "
                        f"{c['p_bootstrap']:.3g} |")
    return rows


CALIBRATION_HEADER = ("| tag | condition | ECE raw | ECE calibrated | NLL raw | NLL calibrated "
                      "| temperature per fold |")


def _calibration_row(exp_dir, scores):
    calibration = scores["calibration"]
    cells = [f"{100 * calibration['ece']:.2f}", "-", f"{calibration['nll']:.3f}", "-", "-"]
    if "ece_calibrated" in calibration:
        cells[1] = f"{100 * calibration['ece_calibrated']:.2f}"
        cells[3] = f"{calibration['nll_calibrated']:.3f}"
        cells[4] = " ".join("-" if t is None else f"{t:.2f}"
                            for t in calibration["temperatures"])
    return f"| {os.path.basename(exp_dir)} | {scores['condition']} | {' | '.join(cells)} |"


def missing_classes(scores):
    """{fold: [classes its test set lacks]} of a tag's scores (a class without a reference
    utterance has no recall), folds that lack none left out."""
    return {fold["fold"]: [c for c, recall in fold["recall"].items() if recall is None]
            for fold in scores["folds"] if None in fold["recall"].values()}


def _other_tag(exp_root, scores, key):
    """The exp dir of the tag ``scores`` name under ``key`` (reference_tag, probe_tag), or None
    when they name none or the tag itself."""
    tag = scores.get(key)
    return None if tag in (None, scores["tag"]) else os.path.join(exp_root, tag)


def write_results_md(path, exp_root, folds, title, protocol, notes=None):
    """Rebuild RESULTS.md from the tags under ``exp_root`` (see the module docstring);
    ``protocol``: data/protocol as read by mser.data.protocol.read_protocol; ``notes``: Markdown
    placed under the header as it is (a recipe's published anchors, how long its run took)."""
    fold_list = " ".join(map(str, folds))
    headline, subsets = protocol["headline"], protocol["tests"]
    tests_header, probe_header = paired_headers(headline)
    scored, unscored = {}, {}
    found = glob.glob(os.path.join(exp_root, "*", "scores.json"))
    for exp_dir in sorted(os.path.dirname(p) for p in found):
        try:
            scored[exp_dir] = _scores_on(exp_dir, folds)
        except ValueError as e:
            logging.warning("%s: %s has no scores on folds %s (%s); it is listed as not scored",
                            path, os.path.basename(exp_dir), fold_list, e)
            unscored[exp_dir] = e
    conditions = table_conditions(scored.values())
    header = main_header(headline, conditions)
    rows = [_main_row(exp_dir, scored[exp_dir], folds, headline, conditions)
            if exp_dir in scored else
            f"| {os.path.basename(exp_dir)} | - | - | not scored on folds {fold_list}: "
            f"{unscored[exp_dir]} |" + " - |" * (header.count("|") - 5)
            for exp_dir in sorted({*scored, *unscored})]
    wers = [_wer_row(scores) for scores in scored.values() if "wer" in scores]
    probes = [_test_row(exp_dir, probe, folds, None, headline)[1]
              for exp_dir, scores in scored.items()
              if (probe := _other_tag(exp_root, scores, "probe_tag"))
              and os.path.exists(os.path.join(probe, "scores.json"))]
    references = {exp_dir: reference for exp_dir, scores in scored.items()
                  if (reference := _other_tag(exp_root, scores, "reference_tag"))}
    # Not comparable ("-") before "main", each in tag order.
    main_tests = [row for _, row in sorted(
        (_test_row(exp_dir, reference, folds, None, headline)
         for exp_dir, reference in references.items()), key=lambda test: test[0])]
    # Missing modality at test: each tag and its reference, both given one modality.
    single_tests = [_test_row(exp_dir, reference, folds, condition, headline)[1]
                    for condition in conditions
                    for exp_dir, reference in references.items()
                    if all(os.path.isdir(os.path.join(e, f"fold{folds[0]}", decode_name("test"),
                                                      condition)) for e in (exp_dir, reference))]

    text = [f"# {title}", "",
            "Generated by stage 5 (`python -m mser.bin.score`); do not edit by hand.", "",
            f"- corpus: {protocol['corpus']}; protocol: {protocol['description']}",
            f"- folds: {fold_list} (model selection on dev, never on test); test set "
            f"`{subsets[0]}`{''.join(f', then `{t}`' for t in subsets[1:])}",
            f"- headline metric: {METRIC_NAMES[headline]}",
            f"- environment: {_environment()}",
            f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}", "",
            "UA = mean per-class recall, WA = overall accuracy, F1 = macro F1, wF1 = F1 weighted "
            "by class counts; mean ± sample std over folds, in %; "
            f"'{METRIC_NAMES[headline]} pooled' = over all test utterances of all folds at once "
            "(a fold's UA averages only the classes its test set holds). 'audio only' / 'text "
            "only' = the same model given one modality at test time. 'commit' = the mser commit "
            "that trained the tag.", ""]
    if notes:
        text += [notes.strip(), ""]
    text += [header, _rule(header), *rows, ""]
    lacking = next((missing_classes(scores) for scores in scored.values()), {})
    if lacking:
        text += ["**Test sets without every class**: " + "; ".join(
            f"fold {fold} has no {', '.join(classes)}" for fold, classes in lacking.items())
            + ". Their fold scores average the classes present; the pooled column does not "
            "depend on it.", ""]
    if wers:
        text += ["Tags tested on ASR transcripts (`--test_text asr`): WER of the test transcripts "
                 "against the corpus's (mean ± sample std over folds, in %; mser.scoring.wer) next "
                 "to the tag's UA and WA. Test utterances the ASR skipped are left out of the "
                 "tag's scores and counted here.", "",
                 WER_HEADER, _rule(WER_HEADER), *wers, ""]
    if main_tests:
        text += ["Paired tests of each tag against its reference over the pooled test utterances "
                 f"(bootstrap of the {METRIC_NAMES[headline]} difference, 1000 resamples; exact "
                 "McNemar on correctness). "
                 "The reference is the tag `./run.sh --reference_tag` named when the tag was "
                 "scored; by default the default config (conf/train.yaml) on the same features "
                 "and gold text:", "",
                 tests_header, _rule(tests_header), *main_tests, ""]
    if probes:
        text += ["Each tag against the linear probe of its modalities on the same features and "
                 "folds (conf/tuning/probe*.yaml: statistics pooling of the weighted sum of the "
                 "stored layers, one linear layer; the SUPERB / EmoBox baseline), the same paired "
                 "tests: a model that does not beat it does not earn its complexity.", "",
                 probe_header, _rule(probe_header), *probes, ""]
    if single_tests:
        text += ["The same with one modality at test, both the tag and its reference given "
                 "audio only or text only:", "",
                 tests_header, _rule(tests_header), *single_tests, ""]
    calibrated = [_calibration_row(exp_dir, scores) for exp_dir, scores in scored.items()
                  if "calibration" in scores]
    if calibrated:
        text += ["Calibration of each tag's main condition over the pooled test utterances: "
                 f"expected calibration error ({ECE_BINS} equal-width confidence bins; 0 = the "
                 "top probability is the accuracy) and negative log-likelihood, of the softmax "
                 "as trained (raw) and after temperature scaling fitted on each fold's dev set "
                 "(mser.utils.calibration; the argmax, so every score above, is unchanged). "
                 "Reliability diagrams: exp/<tag>/reliability.png.", "",
                 CALIBRATION_HEADER, _rule(CALIBRATION_HEADER), *calibrated, ""]
    task_rows = [row for scores in scored.values() for row in _task_rows(scores)]
    if task_rows:
        task_tests = [row for exp_dir in scored
                      for row in _task_test_rows(exp_dir, scored, exp_root, folds)]
        text += ["Auxiliary tasks (a config's `tasks:` beside the emotion categories; "
                 "mser.utils.tasks): each tag's scores of them under its main condition, "
                 "classifications in %, regressions as CCC / PCC and the MAE in the labels' "
                 "units:", "", TASK_HEADER, _rule(TASK_HEADER), *task_rows, ""]
        if task_tests:
            text += ["Their paired tests against the reference and the probe where those have "
                     "the task too (bootstrap over the pooled labelled test utterances):", "",
                     TASK_TEST_HEADER, _rule(TASK_TEST_HEADER), *task_tests, ""]
    for subset in subsets[1:]:
        text += _subset_table(scored, folds, subset, headline)
    atomic_write_text(path, "\n".join(text))
