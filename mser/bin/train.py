"""Train the emotion model on one fold: <data-dir>/train, selected on <data-dir>/dev (never test/).

    python -m mser.bin.train --config conf/train.yaml --data-dir data/fold1 \
        --audio-feats dump/fbank/feats.scp --text-feats dump/minilm/feats.scp \
        --exp-dir exp/train_fbank_minilm/fold1 [--ngpu 0] [--nproc 1] [--seed 0]

With --nproc > 1 or --ngpu > 1 this re-launches itself through torchrun (gloo on CPU, nccl on
GPU). A re-run resumes from the last checkpoint; a finished run (<exp-dir>/.done) is skipped,
unless --epochs now asks for more epochs than it ran without early stopping (it then continues).
Writes <exp-dir>/{config.yaml, best.pt, checkpoints/, train.log, tensorboard/, train_curve.png}.
"""
import logging
import math
import os
import random
import sys
import time

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mser.data.dataset import (EmotionDataset, LengthBucketBatchSampler, collate, load_feat_info,
                               read_classes)
from mser.nets import MODEL_OPTIONS, build_model, resolve_model_conf
from mser.utils import distributed
from mser.utils.checkpoint import (checkpoint_path, load_checkpoint, prune_checkpoints,
                                   rng_state, save_checkpoint, saved_epochs, set_rng_state)
from mser.utils.config import (add_options, git_commit, load_config, make_parser, parse_args,
                               save_config)
from mser.utils.fileio import atomic_write_text
from mser.utils.logging import setup_logging
from mser.utils.metrics import unweighted_accuracy, weighted_accuracy
from mser.utils.plotting import pyplot, save_figure
from mser.utils.conditions import CONDITION_MODALITIES, CONDITIONS, conditions_for

RUN_OPTIONS = {
    "data_dir": (None, "fold dir holding train/ and dev/ (test/ is never read)"),
    "audio_feats": (None, "feats.scp of the acoustic features (dump/<name>/feats.scp)"),
    "text_feats": (None, "feats.scp of the linguistic features"),
    "exp_dir": (None, "output dir of this fold"),
    "ngpu": (0, "GPUs (one process each); 0 = CPU"),
    "nproc": (1, "CPU processes (DDP over gloo) when --ngpu 0"),
    "seed": (0, "random seed (data order, initialisation, dropout, masking)"),
    "num_workers": (0, "DataLoader worker processes"),
    "cache_feats": (True, "keep read features in memory (small corpora)"),
    "verbose": (1, "0: warnings, 1: info, 2: debug"),
}
OPTIM_OPTIONS = {
    "epochs": (30, "maximum number of epochs"),
    "patience": (8, "stop after this many epochs without dev improvement (0: never)"),
    "select_metric": ("ua", "dev metric for model selection: ua, wa or loss"),
    "select_conditions": (["both"], "dev conditions (both, audio_only, text_only) whose mean "
                                    "--select-metric selects the model and stops early; those "
                                    "the model's modalities cannot serve are left out"),
    "lr": (1e-3, "peak learning rate (AdamW)"),
    "weight_decay": (0.01, "AdamW weight decay"),
    "scheduler": ("warmup", "warmup: linear warm-up then inverse-sqrt decay (independent of "
                            "--epochs); cosine: warm-up then cosine decay to 0 over --epochs "
                            "(a resume with another --epochs reshapes it)"),
    "warmup_steps": (200, "linear warm-up steps"),
    "batch_size": (32, "utterances per batch (per process) when --max-frames is 0"),
    "max_frames": (0, "padded frames per batch (per process) of the bucketing stream (audio if "
                      "used, else text); 0: use --batch-size"),
    "bucketing": (True, "batch utterances of similar length"),
    "grad_clip": (5.0, "gradient norm clipping (0: off)"),
    "class_weight": ("none", "loss class weights: none or balanced (training label counts)"),
    "label_smoothing": (0.0, "cross-entropy label smoothing"),
    "amp": ("none", "mixed precision on GPU: none, fp16 (with GradScaler) or bf16"),
    "keep_checkpoints": (3, "epoch checkpoints kept besides the best"),
}
# Keys that may change when an interrupted run is resumed or a finished one extended.
RESUMABLE_CHANGES = ("epochs", "patience", "num_workers", "verbose", "cache_feats", "ngpu",
                     "nproc")
CHOICES = {"select_metric": ("ua", "wa", "loss"), "scheduler": ("warmup", "cosine"),
           "class_weight": ("none", "balanced"), "amp": ("none", "fp16", "bf16")}


def get_parser():
    parser = make_parser(__doc__)
    add_options(parser, RUN_OPTIONS, "run")
    add_options(parser, OPTIM_OPTIONS, "optimisation")
    add_options(parser, MODEL_OPTIONS, "model")
    return parser


def model_conf_from_args(args):
    return resolve_model_conf({key: getattr(args, key) for key in MODEL_OPTIONS})


def check_args(parser, args):
    for key in ("data_dir", "exp_dir"):
        if not getattr(args, key):
            parser.error(f"--{key.replace('_', '-')} is required")
    for key, allowed in CHOICES.items():
        if getattr(args, key) not in allowed:
            parser.error(f"--{key.replace('_', '-')} {getattr(args, key)!r}: choose one of "
                         f"{', '.join(allowed)}")
    unknown = set(args.select_conditions) - set(CONDITIONS)
    if unknown or not args.select_conditions:
        parser.error(f"--select-conditions {' '.join(args.select_conditions)}: choose from "
                     f"{', '.join(CONDITIONS)}")
    for modality in model_conf_from_args(args)["modalities"]:
        if not getattr(args, f"{modality}_feats"):
            parser.error(f"the model uses {modality} but --{modality}-feats is not given")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = get_parser()
    args = parse_args(parser, argv)
    check_args(parser, args)
    world_size = distributed.world_size_for(args.ngpu, args.nproc)
    if world_size > 1 and not distributed.launched_by_torchrun(os.environ):
        setup_logging(args.verbose)
        sys.exit(distributed.relaunch_with_torchrun(world_size, "mser.bin.train", argv))
    ctx = distributed.context_from_env(os.environ, args.ngpu)
    distributed.init_process_group(ctx)
    try:
        train(args, ctx)
    finally:
        distributed.destroy_process_group(ctx)


def read_done(exp_dir):
    path = os.path.join(exp_dir, ".done")
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def resolve_config(args, train_set):
    """Everything inference needs, besides the checkpoint."""
    model_conf = model_conf_from_args(args)
    config = {key: getattr(args, key) for key in (*RUN_OPTIONS, *OPTIM_OPTIONS)}
    config.update({
        "train_config": args.config,
        "model_conf": model_conf,
        "audio_info": (load_feat_info(args.audio_feats) if "audio" in model_conf["modalities"]
                       else None),
        "text_info": (load_feat_info(args.text_feats) if "text" in model_conf["modalities"]
                      else None),
        "classes": train_set.classes,
        "train_utts": len(train_set),
        "git_commit": git_commit(),
        "torch_version": str(torch.__version__),
    })
    for modality in ("audio", "text"):
        info = config[f"{modality}_info"]
        if info and info["modality"] != modality:
            raise ValueError(f"--{modality}-feats {getattr(args, modality + '_feats')} holds "
                             f"{info['modality']} features (feat_conf.yaml); swap the options?")
    return config


def check_same_run(saved, config, exp_dir):
    """A resumed run must have the config of the saved one (up to RESUMABLE_CHANGES)."""
    ignored = set(RESUMABLE_CHANGES) | {"git_commit", "torch_version", "train_config"}
    changed = sorted(k for k in set(saved) | set(config)
                     if k not in ignored and saved.get(k) != config.get(k))
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise ValueError(f"{exp_dir} holds a run with a different config ({details}); use another "
                         f"--exp-dir or delete {exp_dir} to start over")


def load_datasets(args, modalities):
    feats = {m: getattr(args, f"{m}_feats") for m in modalities}
    train_dir, dev_dir = (os.path.join(args.data_dir, s) for s in ("train", "dev"))
    train_set = EmotionDataset(train_dir, feats, cache=args.cache_feats)
    dev_classes_path = os.path.join(dev_dir, "classes.txt")
    if os.path.exists(dev_classes_path) and read_classes(dev_classes_path) != train_set.classes:
        raise ValueError(f"{dev_classes_path} differs from {train_dir}/classes.txt; re-run data "
                         f"preparation")
    dev_set = EmotionDataset(dev_dir, feats, classes=train_set.classes, cache=args.cache_feats)
    for subset in (train_set, dev_set):
        if not subset.has_labels:
            raise ValueError(f"{subset.data_dir}/utt2emo: not found; training needs labels")
    return train_set, dev_set


def compute_normalization(model, train_set, modalities):
    """Global mean/std of each normalised stream over every frame of the training split."""
    for modality in modalities:
        if not model.conf[f"normalize_{modality}"]:
            continue
        total, total_sq, count = 0.0, 0.0, 0
        for index in tqdm(range(len(train_set)), desc=f"{modality} statistics", mininterval=5):
            mat = torch.from_numpy(train_set[index][modality].astype(np.float64))
            total, total_sq = total + mat.sum(0), total_sq + (mat * mat).sum(0)
            count += len(mat)
        mean = total / count
        std = (total_sq / count - mean * mean).clamp_min(0).sqrt()
        model.normalizer(modality).set_statistics(mean.float(), std.float())
        logging.info("%s normalisation: statistics of %d frames of %d training utterances",
                     modality, count, len(train_set))


def class_weights(train_set, mode):
    if mode == "none":
        return None
    counts = train_set.label_counts()
    weights = len(train_set) / (len(counts) * np.maximum(counts, 1))
    logging.info("class weights (%s): %s", mode, ", ".join(
        f"{c} {w:.3f} ({n} utts)" for c, w, n in zip(train_set.classes, weights, counts)))
    return torch.tensor(weights, dtype=torch.float32)


def lr_lambda(args, steps_per_epoch):
    warmup = max(1, args.warmup_steps)
    total = max(1, args.epochs * steps_per_epoch)

    def factor(step):
        step = step + 1
        if step <= warmup:
            return step / warmup
        if args.scheduler == "warmup":
            return math.sqrt(warmup / step)
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))
    return factor


def model_inputs(batch, device):
    return {k: (batch[k].to(device, non_blocking=True) if batch[k] is not None else None)
            for k in ("audio", "audio_lens", "text", "text_lens")}


def autocast(args, device):
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(args.amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def selection_conditions(requested, modalities):
    """The requested dev conditions the model can serve; a single-modality model: its own."""
    supported = conditions_for(modalities)
    return [c for c in requested if c in supported] or supported


@torch.no_grad()
def evaluate(model, loader, criterion, device, num_classes, conditions):
    """Dev loss, UA and WA (one process, the whole dev set) per condition, and their means."""
    model.eval()
    per_condition = {}
    for condition in conditions:
        losses, y_true, y_pred = [], [], []
        for batch in loader:
            logits = model(**model_inputs(batch, device),
                           modalities=CONDITION_MODALITIES[condition])["logits"].float()
            labels = batch["labels"].to(device)
            losses.append(criterion(logits, labels).item() * len(labels))
            y_true.append(batch["labels"].numpy())
            y_pred.append(logits.argmax(-1).cpu().numpy())
        y_true, y_pred = np.concatenate(y_true), np.concatenate(y_pred)
        per_condition[condition] = {"loss": sum(losses) / len(y_true),
                                    "ua": unweighted_accuracy(y_true, y_pred, num_classes),
                                    "wa": weighted_accuracy(y_true, y_pred)}
    means = {k: float(np.mean([m[k] for m in per_condition.values()])) for k in ("loss", "ua", "wa")}
    return {**means, "conditions": per_condition}


def is_better(metric, value, best):
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def parameter_checksum(model):
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


def plot_curves(history, path):
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.plot(epochs, [h["dev_loss"] for h in history], "o-", label="dev")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    conditions = history[-1].get("dev_conditions", {})
    mean_of = f" (mean of {', '.join(conditions)})" if len(conditions) > 1 else ""
    ax_acc.plot(epochs, [h["dev_ua"] for h in history], "o-", label=f"dev UA{mean_of}")
    ax_acc.plot(epochs, [h["dev_wa"] for h in history], "o-", label=f"dev WA{mean_of}")
    if len(conditions) > 1:
        for condition in conditions:
            ax_acc.plot(epochs, [h["dev_conditions"][condition]["ua"] for h in history], ":",
                        label=f"dev UA, {condition}")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="dev accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def train(args, ctx):
    exp_dir = args.exp_dir
    os.makedirs(exp_dir, exist_ok=True)
    setup_logging(args.verbose, os.path.join(exp_dir, "train.log") if ctx.is_main else None,
                  ctx.rank)
    done = read_done(exp_dir)
    distributed.barrier(ctx)  # every rank has read .done before rank 0 may remove it
    if done:
        if done["reason"] != "max_epochs" or args.epochs <= done["epoch"]:
            logging.info("%s: already finished (%s after epoch %d, best epoch %d); skipped",
                         exp_dir, done["reason"], done["epoch"], done["best_epoch"])
            return
        logging.info("%s: extending a finished %d-epoch run to %d epochs", exp_dir,
                     done["epoch"], args.epochs)
        if ctx.is_main:
            os.remove(os.path.join(exp_dir, ".done"))
    device = ctx.device
    if args.amp != "none" and device.type != "cuda":
        logging.warning("--amp %s is GPU-only; training in fp32 on CPU", args.amp)
        args.amp = "none"
    logging.info("command: python -m mser.bin.train %s", " ".join(sys.argv[1:]))
    logging.info("rank %d of %d on %s", ctx.rank, ctx.world_size, device)

    model_conf = model_conf_from_args(args)
    modalities = model_conf["modalities"]
    select_conditions = selection_conditions(args.select_conditions, modalities)
    train_set, dev_set = load_datasets(args, modalities)
    config = resolve_config(args, train_set)
    config["dev_utts"] = len(dev_set)
    config_path = os.path.join(exp_dir, "config.yaml")
    resume_epoch = max(saved_epochs(exp_dir), default=0)
    if resume_epoch and os.path.exists(config_path):
        check_same_run(load_config(config_path), config, exp_dir)
    if ctx.is_main:
        save_config(config_path, config)
    logging.info("%d training / %d dev utterances, classes %s", len(train_set), len(dev_set),
                 " ".join(train_set.classes))

    torch.manual_seed(args.seed)  # identical initialisation on every rank
    model = build_model(model_conf, config["audio_info"], config["text_info"],
                        len(train_set.classes)).to(device)
    logging.info("model: %s fusion, %s; %.2fM parameters; selected on dev %s of %s",
                 model_conf["fusion"], "+".join(modalities),
                 sum(p.numel() for p in model.parameters()) / 1e6, args.select_metric,
                 " + ".join(select_conditions))

    sampler = LengthBucketBatchSampler(train_set.lengths, args.batch_size, args.max_frames,
                                       args.bucketing, shuffle=True, seed=args.seed,
                                       num_replicas=ctx.world_size, rank=ctx.rank)
    loader = torch.utils.data.DataLoader(train_set, batch_sampler=sampler, collate_fn=collate,
                                         num_workers=args.num_workers,
                                         pin_memory=device.type == "cuda")
    dev_loader = torch.utils.data.DataLoader(
        dev_set, collate_fn=collate, num_workers=args.num_workers,
        batch_sampler=LengthBucketBatchSampler(dev_set.lengths, args.batch_size, args.max_frames,
                                               shuffle=False))
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(args, len(sampler)))
    scaler = torch.amp.GradScaler("cuda", enabled=args.amp == "fp16")
    weights = class_weights(train_set, args.class_weight)
    criterion = torch.nn.CrossEntropyLoss(
        weight=None if weights is None else weights.to(device),
        label_smoothing=args.label_smoothing)
    dev_criterion = torch.nn.CrossEntropyLoss()  # comparable across configs

    state = {"best_metric": None, "best_epoch": 0, "bad_epochs": 0, "history": []}
    if resume_epoch:
        checkpoint = load_checkpoint(checkpoint_path(exp_dir, resume_epoch), device)
        model.load_state_dict(checkpoint["model"])
        optimizer.load_state_dict(checkpoint["optimizer"])
        scheduler.load_state_dict(checkpoint["scheduler"])
        scaler.load_state_dict(checkpoint["scaler"])
        state = checkpoint["state"]
        if len(checkpoint["rng_states"]) == ctx.world_size:
            set_rng_state(checkpoint["rng_states"][ctx.rank], device)
        else:
            logging.warning("resuming with %d processes instead of %d: fresh random states, so "
                            "the result differs from an uninterrupted run", ctx.world_size,
                            len(checkpoint["rng_states"]))
            seed_everything(args.seed + 1000 * resume_epoch + ctx.rank)
        logging.info("resumed from %s (best dev %s %.4f at epoch %d)",
                     checkpoint_path(exp_dir, resume_epoch), args.select_metric,
                     state["best_metric"], state["best_epoch"])
    else:
        if ctx.is_main:
            compute_normalization(model, train_set, modalities)
        seed_everything(args.seed + ctx.rank)  # different dropout/masking draws per rank
    raw_model = model
    if ctx.distributed:  # DDP broadcasts rank 0's parameters and buffers (statistics) to all
        model = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda"
                                        else None)

    writer = None
    if ctx.is_main:
        from torch.utils.tensorboard import SummaryWriter
        writer = SummaryWriter(os.path.join(exp_dir, "tensorboard"),
                               purge_step=resume_epoch * len(sampler) if resume_epoch else None)
    reason = "max_epochs"
    epoch = resume_epoch
    for epoch in range(resume_epoch + 1, args.epochs + 1):
        if args.patience and state["bad_epochs"] >= args.patience:
            reason, epoch = "early_stop", epoch - 1
            break
        sampler.set_epoch(epoch)
        start = time.time()
        train_loss, train_utts = train_one_epoch(args, ctx, model, loader, optimizer, scheduler,
                                                 scaler, criterion, epoch, writer)
        dev = evaluate(raw_model, dev_loader, dev_criterion, device, len(train_set.classes),
                       select_conditions) if ctx.is_main else None
        dev = distributed.broadcast_object(ctx, dev)
        elapsed = time.time() - start
        value = dev[args.select_metric]
        improved = is_better(args.select_metric, value, state["best_metric"])
        if improved:
            state.update(best_metric=value, best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        state["history"].append({"epoch": epoch, "train_loss": train_loss, "dev_loss": dev["loss"],
                                 "dev_ua": dev["ua"], "dev_wa": dev["wa"],
                                 "dev_conditions": dev["conditions"],
                                 "lr": optimizer.param_groups[0]["lr"], "seconds": elapsed})
        checksums = distributed.all_gather_object(ctx, parameter_checksum(raw_model))
        rng_states = distributed.all_gather_object(ctx, rng_state(device))
        by_condition = "" if len(select_conditions) == 1 else " (UA %s)" % ", ".join(
            f"{c} {m['ua']:.4f}" for c, m in dev["conditions"].items())
        logging.info("epoch %d/%d: train loss %.4f, dev loss %.4f UA %.4f WA %.4f%s, lr %.2e, "
                     "%.1f s (%.1f utt/s)%s", epoch, args.epochs, train_loss, dev["loss"],
                     dev["ua"], dev["wa"], by_condition, optimizer.param_groups[0]["lr"], elapsed,
                     train_utts / elapsed, ", new best" if improved else "")
        logging.info("parameter checksum per rank: %s",
                     " ".join(f"{c:.10e}" for c in checksums))
        if len(set(checksums)) != 1:
            raise RuntimeError(f"ranks hold different parameters after epoch {epoch}: {checksums}")
        if ctx.is_main:
            checkpoint = {"model": raw_model.state_dict(), "optimizer": optimizer.state_dict(),
                          "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict(),
                          "epoch": epoch, "state": state, "rng_states": rng_states,
                          "seed": args.seed, "git_commit": config["git_commit"]}
            save_checkpoint(checkpoint_path(exp_dir, epoch), checkpoint)
            if improved:
                save_checkpoint(os.path.join(exp_dir, "best.pt"), checkpoint)
            prune_checkpoints(exp_dir, args.keep_checkpoints, protect={state["best_epoch"]})
            for key in ("loss", "ua", "wa"):
                writer.add_scalar(f"dev/{key}", dev[key], epoch)
                if len(select_conditions) > 1:
                    for condition, metrics in dev["conditions"].items():
                        writer.add_scalar(f"dev_{condition}/{key}", metrics[key], epoch)
            writer.add_scalar("train/epoch_loss", train_loss, epoch)
            plot_curves(state["history"], os.path.join(exp_dir, "train_curve.png"))
        distributed.barrier(ctx)
    if ctx.is_main:
        writer.close()
        summary = {"reason": reason, "epoch": epoch, "best_epoch": state["best_epoch"],
                   f"best_dev_{args.select_metric}": state["best_metric"]}
        atomic_write_text(os.path.join(exp_dir, ".done"), yaml.safe_dump(summary))
        logging.info("finished (%s): best dev %s %.4f at epoch %d -> %s", reason,
                     args.select_metric, state["best_metric"], state["best_epoch"],
                     os.path.join(exp_dir, "best.pt"))
    distributed.barrier(ctx)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train_one_epoch(args, ctx, model, loader, optimizer, scheduler, scaler, criterion, epoch,
                    writer):
    """Mean training loss over all ranks, and the number of utterances seen."""
    model.train()
    device = ctx.device
    loss_sum, utts = 0.0, 0
    progress = tqdm(loader, desc=f"epoch {epoch}", disable=not ctx.is_main, mininterval=5,
                    leave=False)
    for batch in progress:
        labels = batch["labels"].to(device)
        with autocast(args, device):
            logits = model(**model_inputs(batch, device))["logits"]
        loss = criterion(logits.float(), labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"epoch {epoch}: non-finite loss on {batch['utts'][:3]}...; "
                                     f"lower --lr or check the features")
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if args.grad_clip > 0:
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        loss_sum += loss.item() * len(labels)
        utts += len(labels)
        if writer is not None:
            writer.add_scalar("train/loss", loss.item(), scheduler.last_epoch)
            writer.add_scalar("train/lr", optimizer.param_groups[0]["lr"], scheduler.last_epoch)
    loss_sum, utts = distributed.all_reduce_sum(ctx, [loss_sum, utts])
    return loss_sum / utts, int(utts)


if __name__ == "__main__":
    main()
