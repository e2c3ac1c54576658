"""Decode a test data dir with a trained fold: per-utterance posteriors and predictions for
every stream condition the model supports (both, audio_only, text_only; see
mser.utils.conditions for more streams).

An utterance whose transcript is empty once its tags are removed ("", "[LAUGHTER]") runs
without text under a condition with text and another stream (``both``: audio-only), as in
mser-infer (mser.features.transcript.is_empty_transcript); under ``text_only`` it is scored on
its special tokens, the only text it has.

Reads only <exp-dir>/config.yaml and the checkpoint (``--text-feats`` replaces the config's text
features, e.g. with those of ASR transcripts: give the matching ``--data-dir``, whose ``text``
decides which transcripts are empty); with <exp-dir>/calibration.yaml (temperature scaling fitted
on dev by training) each condition's calibrated posteriors too. Writes <exp-dir>/decode/ (or
<exp-dir>/decode_<subset>/ for a test subset other than "test", e.g. MSP-Podcast's test2; see
mser.scoring.decodes for the layout)."""
import argparse
import logging
import os
import shutil

import torch
from tqdm import tqdm

from mser.data.dataset import LengthBucketBatchSampler, collate, dataset_from_config
from mser.features import dump_identity
from mser.features.transcript import is_empty_transcript
from mser.io.datadir import read_table
from mser.io.storage import load_feat_info
from mser.nets import load_model
from mser.scoring.decodes import CALIBRATED_POSTERIORS, decode_name
from mser.train.evaluate import condition_outputs
from mser.utils.calibration import load_temperatures, softmax
from mser.utils.conditions import conditions_for
from mser.utils.fileio import atomic_open, atomic_write_text
from mser.utils.logging import setup_logging
from mser.utils.tasks import PRIMARY, auxiliary, labels_file, task_type


def untranscribed(config, data_dir):
    """Utterances of ``data_dir`` whose transcript counts as none (empty or tags only)."""
    texts = read_table(os.path.join(data_dir, "text"), allow_empty_value=True)
    empty = {utt for utt, text in texts.items() if is_empty_transcript(text, config["text_info"])}
    if empty:
        logging.info("%s: %d utterance(s) with an empty or tags-only transcript run without "
                     "text where other streams are fed ('both': audio-only) (e.g. %s)", data_dir, len(empty), min(empty))
    return empty


def use_text_feats(config, text_feats, exp_dir):
    """Replace the training config's text feats.scp with ``text_feats`` (e.g. features of ASR
    transcripts for a model trained on gold ones), which must be the same features."""
    if "text" not in config["model_conf"]["modalities"]:
        raise SystemExit(f"decode: --text-feats {text_feats}, but {exp_dir} uses no text")
    info, trained = load_feat_info(text_feats), config["text_info"]
    if dump_identity(info) != dump_identity(trained):
        differ = sorted(k for k in set(info) | set(trained) if info.get(k) != trained.get(k))
        raise SystemExit(f"decode: {text_feats}: its features are not those {exp_dir} was "
                         f"trained on: " + ", ".join(f"{k} {info.get(k)!r} (trained: "
                                                     f"{trained.get(k)!r})" for k in differ))
    config["text_feats"] = text_feats


@torch.inference_mode()
def decode(exp_dir, data_dir, checkpoint="best.pt", device="cpu", batch_size=32, subset="test",
           text_feats=None):
    """``text_feats`` replaces the training config's text feats.scp (:func:`use_text_feats`)."""
    model, config = load_model(exp_dir, device=device, checkpoint=checkpoint)
    if text_feats:
        use_text_feats(config, text_feats, exp_dir)
    dataset = dataset_from_config(config, data_dir)
    sampler = LengthBucketBatchSampler(dataset.lengths, batch_size=batch_size, shuffle=False)
    loader = torch.utils.data.DataLoader(dataset, batch_sampler=sampler, collate_fn=collate)
    conditions = conditions_for(model.modalities)
    no_text = untranscribed(config, data_dir) if "text" in model.modalities and len(
        model.modalities) > 1 else set()

    def keep_for(batch, streams):
        if "text" not in streams or len(streams) == 1:
            return None
        return {"text": torch.tensor([u not in no_text for u in batch["utts"]], device=device)}

    decoded = decode_conditions(model, tqdm(loader, desc=f"decode {exp_dir}", unit="batch"),
                                device, conditions, keep_for, load_temperatures(exp_dir))
    out_dir = os.path.join(exp_dir, decode_name(subset))
    write_decode(out_dir, data_dir, model, config["classes"], decoded)
    logging.info("%s: decoded %d utterance(s) under %s", out_dir, len(dataset), ", ".join(conditions))


def decode_conditions(model, loader, device, conditions, keep_for, temperatures):
    """{condition: {"posteriors": {utt: probs}, "posteriors_calibrated" (where ``temperatures``
    has the condition), task: {utt: outputs} of each auxiliary task}}."""
    tasks = auxiliary(model.tasks)
    decoded = {c: {"posteriors": {}, **{t: {} for t in tasks},
                   **({CALIBRATED_POSTERIORS: {}} if c in temperatures else {})}
               for c in conditions}
    for batch, outputs in condition_outputs(model, loader, device, conditions, keep_for):
        for condition, tables in decoded.items():
            logits = outputs[condition][PRIMARY].cpu()
            tables["posteriors"].update(zip(batch["utts"], softmax(logits)))
            if CALIBRATED_POSTERIORS in tables:
                tables[CALIBRATED_POSTERIORS].update(zip(batch["utts"], softmax(
                    logits, temperatures[condition])))
            for task in tasks:
                tables[task].update(zip(batch["utts"], outputs[condition][task].cpu().numpy()))
    return decoded


def write_decode(out_dir, data_dir, model, classes, decoded):
    """<out_dir>: classes.txt, the references of the data dir (utt2emo, and utt2<task> of the
    auxiliary tasks where it has them), per condition the posteriors (calibrated ones where
    fitted), the predictions and each auxiliary task's predictions (stale files of an earlier
    decode removed)."""
    tasks = auxiliary(model.tasks)
    os.makedirs(out_dir, exist_ok=True)
    atomic_write_text(os.path.join(out_dir, "classes.txt"), "\n".join(classes) + "\n")
    for task in (PRIMARY, *tasks):
        reference = os.path.join(data_dir, labels_file(task))
        if task == PRIMARY or os.path.exists(reference):
            with atomic_open(os.path.join(out_dir, labels_file(task)), "wb") as f, \
                    open(reference, "rb") as src:
                shutil.copyfileobj(src, f)
    for condition, tables in decoded.items():
        cond_dir = os.path.join(out_dir, condition)
        os.makedirs(cond_dir, exist_ok=True)
        for stale in os.listdir(cond_dir):
            if stale == CALIBRATED_POSTERIORS or stale.startswith(("predictions_", "classes_")):
                os.remove(os.path.join(cond_dir, stale))
        table = tables["posteriors"]
        utts = sorted(table)
        for name in ("posteriors", CALIBRATED_POSTERIORS):
            if name in tables:
                with atomic_open(os.path.join(cond_dir, name), "w", encoding="utf-8") as f:
                    f.writelines(f"{u} {' '.join(f'{p:.6f}' for p in tables[name][u])}\n"
                                 for u in utts)
        with atomic_open(os.path.join(cond_dir, "predictions"), "w", encoding="utf-8") as f:
            f.writelines(f"{u} {classes[int(table[u].argmax())]}\n" for u in utts)
        for task, spec in tasks.items():
            write_task_predictions(cond_dir, task, spec, tables[task],
                                   model.task_classes.get(task))


def write_task_predictions(cond_dir, task, spec, outputs, classes):
    """<cond_dir>/predictions_<task>: an auxiliary task's decoded output per utterance (a
    class, or a number), and, for a classification, classes_<task>.txt beside it."""
    kind = task_type(spec)
    with atomic_open(os.path.join(cond_dir, f"predictions_{task}"), "w", encoding="utf-8") as f:
        f.writelines(f"{u} {kind.prediction(outputs[u], classes)}\n" for u in sorted(outputs))
    if classes:
        atomic_write_text(os.path.join(cond_dir, f"classes_{task}.txt"), "\n".join(classes) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--exp-dir", required=True, help="exp/<tag>/fold<k>")
    parser.add_argument("--data-dir", required=True, help="the fold's test data dir")
    parser.add_argument("--subset", default="test",
                        help="name of the test subset (data/protocol 'tests'); decoded to "
                             "<exp-dir>/decode, or decode_<subset> for another than 'test'")
    parser.add_argument("--checkpoint", default="best.pt")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--text-feats", help="feats.scp of the test text instead of the training "
                        "config's, e.g. of ASR transcripts (the same text features)")
    args = parser.parse_args(argv)
    setup_logging()
    decode(args.exp_dir, args.data_dir, args.checkpoint, args.device, args.batch_size, args.subset,
           args.text_feats)


if __name__ == "__main__":
    main()
