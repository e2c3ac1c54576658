"""The final model of a recipe (stage 6): the cross-validated config trained on every speaker of
the protocol's training data, with a model card.

    python -m mser.bin.final_model prepare --exp-dir exp/<tag> --folds "1 2 3 4 5 6" --data data
    python -m mser.bin.train ... --data-dir exp/<tag>/final/data --no-dev true \\
        --epochs <plan.yaml epochs> --average-checkpoints <plan.yaml average_checkpoints> \\
        --exp-dir exp/<tag>/final
    python -m mser.bin.final_model card --exp-dir exp/<tag> --folds "1 2 3 4 5 6" --data data \\
        [--probe-tag <probe tag>] [--notes local/model_card.md]

``prepare`` writes ``<exp-dir>/final/data/train``: the union of every fold's train and dev sets
(all speakers of a cross-validation; train + dev of a fixed split; never a test set that is not
also some fold's training data) and ``final/plan.yaml``: the number of epochs, the median over
the folds of the last epoch their best.pt averaged (each chosen on its dev set, never on test),
and the checkpoint averaging of the folds; nothing is tuned on test.

``card`` fits one temperature per stream condition on the folds' pooled out-of-fold test
posteriors (the final model has no dev set; the cross-validation predictions are its held-out
data) into ``final/calibration.yaml`` and writes ``final/README.md``, the model card (Hugging
Face convention): corpus, classes, features, the cross-validated scores beside the linear
probe's, calibration, training, intended use and limits (``--notes``: the recipe's own text,
e.g. the corpus licence, language and what the model must not be used for).
"""
import argparse
import json
import os
import statistics
import sys

import numpy as np
import yaml

from mser.data.protocol import read_protocol
from mser.io.datadir import read_classes, read_data_dir, write_data_dir
from mser.scoring.aggregate import METRIC_NAMES, SUMMARY_METRICS, score_condition
from mser.scoring.decodes import decoded_conditions
from mser.train.trainer import DONE, read_done
from mser.utils.calibration import calibration_summary, fit_temperature, save_calibration
from mser.utils.config import load_config
from mser.utils.fileio import atomic_write_text
from mser.utils.logging import setup_logging

FINAL = "final"
PLAN = "plan.yaml"
LOG_FLOOR = 1e-6  # posteriors are stored with 6 decimals


def fold_dirs(exp_dir, folds):
    return [os.path.join(exp_dir, f"fold{k}") for k in folds]


def training_plan(exp_dir, folds):
    """{epochs, average_checkpoints, folds: {fold: last averaged epoch}} from the folds' runs."""
    last = {}
    for k, fold_dir in zip(folds, fold_dirs(exp_dir, folds)):
        done = read_done(fold_dir)
        if done is None:
            raise SystemExit(f"{fold_dir}/{DONE}: not found; train every fold (stage 3) before "
                             f"the final model")
        last[int(k)] = max(done.get("averaged_epochs") or [done["best_epoch"]])
    average = load_config(os.path.join(fold_dirs(exp_dir, folds)[0], "config.yaml")).get(
        "average_checkpoints", 1)
    epochs = max(int(round(statistics.median(last.values()))), average)
    return {"epochs": epochs, "average_checkpoints": int(average), "fold_last_epochs": last,
            "rule": "median over the folds of the last epoch their best.pt averaged (chosen on "
                    "dev); best.pt averages the last average_checkpoints epochs"}


def union_of_training_sets(data, folds, out_dir):
    """<out_dir>/train: every utterance of the folds' train and dev sets, with their tables."""
    tables, classes = {}, None
    for k in folds:
        for subset in ("train", "dev"):
            source = os.path.join(data, f"fold{k}", subset)
            if not os.path.isdir(source):
                continue
            for name, table in read_data_dir(source).items():
                tables.setdefault(name, {}).update(table)
            subset_classes = read_classes(os.path.join(source, "classes.txt"))
            if classes is not None and subset_classes != classes:
                raise SystemExit(f"{source}/classes.txt differs from the other folds'; re-run "
                                 f"stage 0")
            classes = subset_classes
    train = os.path.join(out_dir, "train")
    write_data_dir(train, tables)
    atomic_write_text(os.path.join(train, "classes.txt"), "".join(c + "\n" for c in classes))
    return train, tables


def prepare(args):
    out = os.path.join(args.exp_dir, FINAL)
    train, tables = union_of_training_sets(args.data, args.folds, os.path.join(out, "data"))
    plan = training_plan(args.exp_dir, args.folds)
    utt2spk = tables["utt2spk"]
    plan.update(utterances=len(utt2spk), speakers=len(set(utt2spk.values())))
    atomic_write_text(os.path.join(out, PLAN), yaml.safe_dump(plan, sort_keys=False))
    print(f"final model: {plan['utterances']} utterances of {plan['speakers']} speakers in "
          f"{train}; {plan['epochs']} epochs (folds' last averaged epochs: "
          f"{' '.join(map(str, plan['fold_last_epochs'].values()))}), best.pt the mean of the "
          f"last {plan['average_checkpoints']}", file=sys.stderr)
    print(f"--epochs {plan['epochs']} --average-checkpoints {plan['average_checkpoints']}")


def cross_validated_logits(exp_dir, folds):
    """{condition: (log posteriors (N, C), labels (N,))} pooled over the folds' test sets (as
    stage 5 pools them: :func:`mser.scoring.aggregate.score_condition`)."""
    pooled = {}
    for condition in decoded_conditions(fold_dirs(exp_dir, folds)[0]):
        try:
            scored = score_condition(exp_dir, folds, condition)
        except ValueError as e:  # decoded on some folds only
            raise SystemExit(f"final model: {e}") from None
        if scored is None or "_pooled_posteriors" not in scored:
            raise SystemExit(f"{exp_dir}: {condition} not decoded with posteriors on folds "
                             f"{' '.join(folds)}; run stage 4 first")
        pooled[condition] = (np.log(np.maximum(scored["_pooled_posteriors"]["posteriors"],
                                               LOG_FLOOR)), scored["_pooled_predictions"][1])
    return pooled


def calibrate(exp_dir, folds, final_dir):
    """final/calibration.yaml from the pooled cross-validation test posteriors; the summaries."""
    pooled = cross_validated_logits(exp_dir, folds)
    temperatures = {c: fit_temperature(*pooled[c]) for c in pooled}
    summaries = {c: calibration_summary(*pooled[c], temperatures[c]) for c in pooled}
    save_calibration(final_dir, temperatures, summaries, len(next(iter(pooled.values()))[1]),
                     method="temperature scaling on the pooled cross-validation test posteriors")
    return temperatures, summaries


def load_scores(exp_root, tag):
    path = os.path.join(exp_root, tag, "scores.json")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def score_rows(scores, label):
    metrics = (scores["headline"], *(m for m in SUMMARY_METRICS if m != scores["headline"]))
    cells = " | ".join(f"{100 * scores['mean'][m]:.2f} ± {100 * scores['std'][m]:.2f} "
                       f"({100 * scores['pooled'][m]:.2f})" for m in metrics)
    return metrics, f"| {label} | {cells} |"


def feature_text(info):
    if not info:
        return "none"
    name = info.get("model_dir") or info.get("extractor")
    layers = info.get("layers")
    return f"`{name}` ({info.get('extractor')}{f', layers {layers}' if layers else ''}, " \
           f"{info.get('dim')}-dim)"


CARD = """---
language: {language}
tags: [speech-emotion-recognition, mser]
datasets: [{corpus}]
metrics: [{metrics}]
---

# {corpus} emotion model: `{tag}`, all training speakers

An emotion-query fusion model of the mser toolkit (streams: {streams}), trained with
`{train_config}` at commit {git_commit} on every utterance of the
protocol's training data: {utterances} utterances of {speakers} speakers
({description}; the union of every fold's train and dev sets).

**Classes** ({num_classes}): {classes}.

**Features.** Audio: {audio_feature}. Text: {text_feature}.

{notes}## How good it is: cross-validation

The same config trained and tested fold by fold ({num_folds} folds, selection on each
fold's dev set, never on test): mean ± std over folds, pooled over all
{pooled_utts} test utterances in
brackets, in %, condition `{main}`. This model is not one of them: it is the same recipe on all
speakers, so these numbers estimate it on new speakers of the same corpus, not on other speech.

{header}
|---|{rule}
{rows}

## Training

{epochs} epochs without a dev set (the median over the folds of the last epoch their
dev-selected best.pt averaged: {fold_last_epochs});
`best.pt` is the mean of the last {average_checkpoints} epochs' weights.

## Calibration

The probabilities are temperature-scaled (`calibration.yaml`; mser-infer, the timeline and the
page apply it): one temperature per condition, fitted on the pooled out-of-fold test posteriors
of the cross-validation folds. Expected calibration error (15 bins) of those posteriors before
and after, in %:

| condition | temperature | ECE raw | ECE calibrated |
|---|---:|---:|---:|
{calibration_rows}

## Use

```bash
mser-infer --model-dir {final} my.wav{text_option}
mser-timeline --model-dir {final} call.wav --out-dir timeline/
mser-serve --model-dir {final}
```

## Limits

- Trained on {corpus} only: its speakers, recording conditions, language and its
  way of expressing emotion. Expect lower accuracy on other speech, other languages and
  spontaneous (non-acted) speech; measure it on your own labelled data before relying on it.
- An emotion label is a guess about expression, not about what a person feels. Not for
  clinical, hiring, policing or other decisions about people.
"""


def card(args):
    """<exp-dir>/final/README.md (the model card) and calibration.yaml of stage 6's model."""
    final = os.path.join(args.exp_dir, FINAL)
    for name in ("best.pt", ".done", PLAN):
        if not os.path.exists(os.path.join(final, name)):
            raise SystemExit(f"{final}/{name}: not found; run stage 6 from its start")
    with open(os.path.join(final, PLAN), encoding="utf-8") as f:
        plan = yaml.safe_load(f)
    config = load_config(os.path.join(final, "config.yaml"))
    protocol = read_protocol(os.path.join(args.data, "protocol"))
    tag = os.path.basename(os.path.normpath(args.exp_dir))
    exp_root = os.path.dirname(os.path.normpath(args.exp_dir))
    scores = load_scores(exp_root, tag)
    if scores is None:
        raise SystemExit(f"{args.exp_dir}/scores.json: not found; run stage 5 first")
    temperatures, summaries = calibrate(args.exp_dir, args.folds, final)
    metrics, row = score_rows(scores, f"this config (`{tag}`)")
    rows = [row]
    probe = load_scores(exp_root, args.probe_tag) if args.probe_tag else None
    if probe:
        rows.append(score_rows(probe, f"linear probe (`{args.probe_tag}`)")[1])
    streams = list(config["model_conf"]["streams"])
    notes = ""
    if args.notes and os.path.exists(args.notes):
        with open(args.notes, encoding="utf-8") as f:
            notes = f.read().strip() + "\n\n"
    text = CARD.format(
        language=args.language, metrics=", ".join(metrics), corpus=protocol["corpus"], tag=tag,
        streams=" + ".join(streams), train_config=config.get("train_config"),
        git_commit=config.get("git_commit"), utterances=plan["utterances"],
        speakers=plan["speakers"], description=protocol["description"],
        num_classes=len(config["classes"]), classes=" ".join(config["classes"]),
        audio_feature=feature_text(config.get("audio_info")),
        text_feature=feature_text(config.get("text_info")), notes=notes,
        num_folds=len(args.folds), pooled_utts=scores["pooled"].get("num_utts", "the"),
        main=scores["condition"], header="| | " + " | ".join(METRIC_NAMES[m] for m in metrics) + " |",
        rule="---:|" * len(metrics), rows="\n".join(rows), epochs=plan["epochs"],
        fold_last_epochs=", ".join(f"fold {k} {e}" for k, e in plan["fold_last_epochs"].items()),
        average_checkpoints=plan["average_checkpoints"], final=final,
        calibration_rows="\n".join(f"| {c} | {t:.3f} | {100 * summaries[c]['ece']:.2f} | "
                                   f"{100 * summaries[c]['ece_calibrated']:.2f} |"
                                   for c, t in temperatures.items()),
        text_option=' --text "what was said"' if "text" in streams else "")
    atomic_write_text(os.path.join(final, "README.md"), text)
    print(f"{final}/README.md: the model card; {final}/calibration.yaml: "
          + ", ".join(f"{c} T {t:.3f}" for c, t in temperatures.items()))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=("prepare", "card"))
    parser.add_argument("--exp-dir", required=True, help="exp/<tag> of the cross-validated config")
    parser.add_argument("--folds", required=True, help='the folds, e.g. "1 2 3 4 5 6"')
    parser.add_argument("--data", default="data", help="the recipe's data dir (fold<k>/, protocol)")
    parser.add_argument("--probe-tag", help="card: the linear probe's tag, its scores beside")
    parser.add_argument("--notes", help="card: Markdown of the recipe (licence, language, limits)")
    parser.add_argument("--language", default="en", help="card: language code of the corpus")
    args = parser.parse_args(argv)
    args.folds = args.folds.split()
    setup_logging()
    prepare(args) if args.command == "prepare" else card(args)


if __name__ == "__main__":
    main()
