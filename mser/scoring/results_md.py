"""A recipe's RESULTS.md: one row per tag, paired tests of every tag against its reference tag.

Rows are regenerated for every tag under exp/ that has scores.json. Rows of the previous
RESULTS.md whose tags this exp/ does not hold (ablations trained in another clone or run) are
kept as they were, with the commit that trained them. A tag under exp/ that cannot be scored on
the given folds is reported on the console and keeps its previous row, or gets a row saying why.

The protocol (data/protocol) names the corpus and its folds, and its headline metric: a column
of its own when UA, WA and F1 do not hold it (MELD's weighted F1), and the metric of the
single-modality columns. Each further test subset of the protocol (MSP-Podcast's ``test2``) gets
a table of the tags scored on it in this run.

A tag's reference is the one stage 5 named when it scored the tag (``reference_tag`` in its
scores.json; the recipes default to the default config on the same features and gold text), so
ablations on different features are each tested against their own baseline. Every tag is also
tested against the linear probe of its modalities on the same features (``probe_tag``, the
recipes' conf/tuning/probe*.yaml), when that was trained: does the architecture earn its
complexity?
"""
import datetime
import glob
import json
import logging
import os
import platform
import re

from mser.scoring.aggregate import METRIC_NAMES, score_experiment
from mser.scoring.paired import compare_experiments
from mser.utils.config import load_config
from mser.utils.fileio import atomic_write_text

BASE_METRICS = ("ua", "wa", "macro_f1")
# RESULTS.md written before each test row named its reference: one reference, named above.
LEGACY_TEST_HEADER = ("| tag | condition | ΔUA vs reference [95% CI] | p (bootstrap) | "
                      "tag right only / ref right only | p (McNemar) |")
_LEGACY_REFERENCE = re.compile(r"^(?:Paired tests against|The same with one modality at test, "
                               r"both) `([^`]+)`")
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


def _training_record(exp_dir, folds):
    """(training config, short commit of the code that trained it) from the first fold's config."""
    path = os.path.join(exp_dir, f"fold{folds[0]}", "config.yaml")
    if not os.path.exists(path):
        return "?", "?"
    config = load_config(path)
    sha, dirty, mark = (config.get("git_commit") or "unknown").partition("+")
    return config.get("train_config") or "?", sha[:7] + dirty + mark


def table_metrics(headline):
    """The metric columns of the main table: UA, WA, F1 and the headline if not among them."""
    return BASE_METRICS + (() if headline in BASE_METRICS else (headline,))


def main_header(headline):
    name = METRIC_NAMES[headline]
    return ("| tag | config | commit | condition | "
            + "".join(f"{METRIC_NAMES[m]} | " for m in table_metrics(headline))
            + f"{name} audio only | {name} text only |")


def _rule(header):
    return "|" + "---|" * (header.count("|") - 1)


def _pm(result, metric):
    if result is None:
        return "-"
    return f"{100 * result['mean'][metric]:.2f} ± {100 * result['std'][metric]:.2f}"


def _main_row(exp_dir, scores, folds):
    train_config, commit = _training_record(exp_dir, folds)
    headline = scores["headline"]
    return (f"| {scores['tag']} | {train_config} | {commit} | {scores['condition']} | "
            + "".join(f"{_pm(scores, m)} | " for m in table_metrics(headline))
            + f"{_pm(scores.get('audio_only'), headline)} | "
              f"{_pm(scores.get('text_only'), headline)} |")


def _subset_table(exp_dirs, folds, subset, headline):
    """Markdown lines: the tags of ``exp_dirs`` scored on test subset ``subset``."""
    metrics = (headline, *(m for m in ("ua", "wa") if m != headline))
    header = "| tag | condition | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |"
    lines = [f"Test set `{subset}` (the same models):", "", header, _rule(header)]
    for exp_dir in exp_dirs:
        try:
            scores = score_experiment(exp_dir, folds, subset, headline)
        except ValueError as e:
            logging.warning("%s: not scored on %s (%s)", exp_dir, subset, e)
            continue
        lines.append(f"| {scores['tag']} | {scores['condition']} | "
                     + " | ".join(_pm(scores, m) for m in metrics) + " |")
    return lines + [""]


def _recorded(exp_dir):
    """What stage 5 last wrote to ``exp_dir``/scores.json (its WER, its reference tag)."""
    with open(os.path.join(exp_dir, "scores.json"), encoding="utf-8") as f:
        return json.load(f)


def _wer_row(exp_dir, scores, wer):
    """The WER row of a tag tested on ASR transcripts (``wer`` from its scores.json), else None."""
    if wer is None:
        return None
    if [f["fold"] for f in wer["folds"]] != [f["fold"] for f in scores["folds"]]:
        return (f"| {scores['tag']} | {exp_dir}/scores.json holds the WER of other folds: re-run "
                f"stage 5 | | | |")
    missing = sum(len(f["not_transcribed"]) for f in wer["folds"])
    return (f"| {scores['tag']} | {100 * wer['mean']:.2f} ± {100 * wer['std']:.2f} | "
            f"{_pm(scores, 'ua')} | {_pm(scores, 'wa')} | {missing} |")


def _test_row(exp_dir, reference, folds, condition, metric):
    """A markdown row of the paired tests of ``exp_dir`` against ``reference`` (the bootstrap
    on ``metric``)."""
    try:
        c = compare_experiments(exp_dir, reference, folds, condition, metric)
    except ValueError as e:
        return (f"| {os.path.basename(exp_dir)} | {os.path.basename(reference)} | "
                f"{condition or '-'} | not comparable: {e} | | | |")
    return (f"| {c['a']} | {c['b']} | {condition or 'main'} | {100 * c['diff']:+.2f} "
            f"[{100 * c['diff_95ci'][0]:+.2f}, {100 * c['diff_95ci'][1]:+.2f}] | "
            f"{c['p_bootstrap']:.3g} | {c['a_right_b_wrong']} / {c['b_right_a_wrong']} | "
            f"{c['p_mcnemar']:.3g} |")


def _cells(row):
    return [cell.strip() for cell in row.strip().strip("|").split("|")]


def read_previous(path, header, headline="ua"):
    """``(main rows {tag: row}, test rows {tag: [row]}, WER rows {tag: row}, probe test rows
    {tag: row})`` of an existing RESULTS.md whose main table has ``header``; empty when there is
    none. Legacy test rows get the reference named above their table."""
    tests_header, probe_header = paired_headers(headline)
    main, tests, legacy_reference, table, wers, probes = {}, {}, None, None, {}, {}
    if not os.path.exists(path):
        return main, tests, wers, probes
    with open(path, encoding="utf-8") as f:
        for line in f.read().splitlines():
            if _LEGACY_REFERENCE.match(line):
                legacy_reference = _LEGACY_REFERENCE.match(line).group(1)
            if line in (header, tests_header, LEGACY_TEST_HEADER, WER_HEADER, probe_header):
                table = line
            elif not line.startswith("|"):
                table = None
            elif table and not line.startswith("|---"):
                cells = _cells(line)
                if table == header:
                    main[cells[0]] = line
                elif table == WER_HEADER:
                    wers[cells[0]] = line
                elif table == probe_header:
                    probes[cells[0]] = line
                else:
                    if table == LEGACY_TEST_HEADER:
                        line = "| " + " | ".join([cells[0], legacy_reference, *cells[1:]]) + " |"
                    tests.setdefault(cells[0], []).append(line)
    return main, tests, wers, probes


def write_results_md(path, exp_root, folds, default_reference, title, protocol, notes=None):
    """Regenerate RESULTS.md (see the module docstring); ``protocol``: data/protocol as read by
    mser.data.protocol.read_protocol; ``default_reference``: the reference of a tag whose
    scores.json names none; ``notes``: Markdown placed under the header as it is (a recipe's
    published anchors, how long its run took)."""
    fold_list = " ".join(map(str, folds))
    headline, subsets = protocol["headline"], protocol["tests"]
    header = main_header(headline)
    tests_header, probe_header = paired_headers(headline)
    old_rows, old_tests, old_wers, old_probes = read_previous(path, header, headline)
    rows, scored, kept, wers, references, probes = {}, [], [], {}, {}, {}
    for exp_dir in sorted(os.path.dirname(p) for p in glob.glob(os.path.join(exp_root, "*", "scores.json"))):
        tag = os.path.basename(exp_dir)
        try:
            scores = score_experiment(exp_dir, folds, subsets[0], headline)
        except ValueError as e:
            logging.warning("%s: %s cannot be scored on folds %s (%s); %s", path, tag, fold_list,
                            e, "its previous row is kept" if tag in old_rows else
                            "it is listed as not scored")
            rows[tag] = old_rows.get(tag) or (f"| {tag} | - | - | not scored on folds {fold_list}: "
                                              f"{e} |" + " - |" * (header.count("|") - 5))
            kept += [tag] if tag in old_rows else []
            wers.update({tag: old_wers[tag]} if tag in old_wers else {})
            continue
        scored.append(exp_dir)
        recorded = _recorded(exp_dir)
        references[exp_dir] = os.path.join(exp_root,
                                           recorded.get("reference_tag", default_reference))
        rows[tag] = _main_row(exp_dir, scores, folds)
        probe = os.path.join(exp_root, recorded.get("probe_tag") or tag)
        if probe != exp_dir and os.path.exists(os.path.join(probe, "scores.json")):
            probes[tag] = _test_row(exp_dir, probe, folds, None, headline)
        if (wer_row := _wer_row(exp_dir, scores, recorded.get("wer"))) is not None:
            wers[tag] = wer_row
    kept += sorted(set(old_rows) - set(rows))
    rows.update({tag: old_rows[tag] for tag in kept})
    wers.update({tag: old_wers[tag] for tag in kept if tag in old_wers})
    probes.update({tag: old_probes[tag] for tag in kept if tag in old_probes})

    tested = [e for e in scored if os.path.normpath(e) != os.path.normpath(references[e])]
    tests = [_test_row(exp_dir, references[exp_dir], folds, None, headline) for exp_dir in tested]
    # Missing modality at test: each tag and its reference, both given one modality.
    tests += [_test_row(exp_dir, references[exp_dir], folds, condition, headline)
              for condition in ("audio_only", "text_only") for exp_dir in tested
              if all(os.path.isdir(os.path.join(e, f"fold{folds[0]}", "decode", condition))
                     for e in (exp_dir, references[exp_dir]))]
    tests += [row for tag in kept for row in old_tests.get(tag, [])]
    by_condition = sorted(tests, key=lambda row: (_cells(row)[2], _cells(row)[0]))
    main_tests = [row for row in by_condition if _cells(row)[2] in ("main", "-")]
    single_tests = [row for row in by_condition if row not in main_tests]

    text = [f"# {title}", "",
            "Generated by stage 5 (`python -m mser.bin.score`); do not edit by hand.", "",
            f"- corpus: {protocol['corpus']}; protocol: {protocol['description']}",
            f"- folds: {fold_list} (model selection on dev, never on test); test set "
            f"`{subsets[0]}`{''.join(f', then `{t}`' for t in subsets[1:])}",
            f"- headline metric: {METRIC_NAMES[headline]}",
            f"- environment: {_environment()}",
            f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}", "",
            "UA = mean per-class recall, WA = overall accuracy, F1 = macro F1, wF1 = F1 weighted "
            "by class counts; mean ± sample std over folds, in %. 'audio only' / 'text only' = "
            "the same model given one modality at test time. 'commit' = the mser commit that "
            "trained the tag.", ""]
    if notes:
        text += [notes.strip(), ""]
    if kept:
        text += [f"Kept from the previous RESULTS.md (not scored in this run; environment and "
                 f"tests as they were then): {', '.join(kept)}.", ""]
    text += [header, _rule(header), *(row for _, row in sorted(rows.items())), ""]
    if wers:
        text += ["Tags tested on ASR transcripts (`--test_text asr`): WER of the test transcripts "
                 "against the corpus's (mean ± sample std over folds, in %; mser.utils.wer) next "
                 "to the tag's UA and WA. Test utterances the ASR skipped are left out of the "
                 "tag's scores and counted here.", "",
                 WER_HEADER, _rule(WER_HEADER), *(row for _, row in sorted(wers.items())), ""]
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
                 probe_header, _rule(probe_header),
                 *(row for _, row in sorted(probes.items())),
                 ""]
    if single_tests:
        text += ["The same with one modality at test, both the tag and its reference given "
                 "audio only or text only:", "",
                 tests_header, _rule(tests_header), *single_tests, ""]
    for subset in subsets[1:]:
        text += _subset_table(scored, folds, subset, headline)
    atomic_write_text(path, "\n".join(text))
