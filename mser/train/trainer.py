"""The training loop of one fold: data, model, optimiser, epochs with dev evaluation, early
stopping, checkpoints and resume (``mser.bin.train`` parses the options and calls :func:`train`).

Every epoch starts by reseeding Python, numpy and torch from (seed, epoch, rank), so a resumed
run draws the same dropout and masking as an uninterrupted one without saving random states,
and checkpoints hold only tensors and plain values (read with ``weights_only=True``).
``best.pt`` is re-derived from the best epoch's checkpoint on resume, so a kill between saving
``checkpoints/epoch<N>.pt`` and ``best.pt`` cannot leave a stale best model.
"""
import logging
import os
import random
import sys
import time

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mser.data.dataset import EmotionDataset, LengthBucketBatchSampler, collate
from mser.io.datadir import read_classes
from mser.nets import build_model, feat_infos
from mser.train.evaluate import condition_outputs, to_device
from mser.train.options import check_same_run, resolve_config
from mser.train.schedule import lr_lambda, training_length
from mser.utils import distributed
from mser.utils.checkpoint import (average_checkpoints, checkpoint_path, copy_checkpoint,
                                   load_checkpoint, prune_checkpoints, save_checkpoint,
                                   saved_epochs)
from mser.utils.conditions import conditions_for
from mser.utils.calibration import (CALIBRATION, calibration_summary, fit_temperature,
                                     save_calibration)
from mser.utils.config import load_config, save_config
from mser.utils.fileio import atomic_write_text
from mser.utils.logging import setup_logging
from mser.utils.frames import input_pooling
from mser.utils.metrics import macro_f1, unweighted_accuracy, weighted_accuracy, weighted_f1
from mser.utils.plotting import pyplot, save_figure
from mser.utils.tasks import METRIC_NAMES, PRIMARY, auxiliary, task_type
from mser.utils.timing import SectionTimer

BEST = "best.pt"
PLOT_EVERY_S = 30  # train_curve.png is redrawn at most this often, and at the end
DONE = ".done"
DROPPED = "dropped_utts"  # <split> <utt> <reason> of utterances left out for lack of features


def train(cfg, ctx, threads):
    """Train ``cfg.run.exp_dir`` (``cfg``: a :class:`~mser.train.options.TrainConfig`; resuming
    the dir if it holds checkpoints) on process ``ctx``;
    ``threads``: (CPU threads of this process, why) from :func:`distributed.cpu_threads`."""
    Trainer(cfg, ctx, threads).run()


class Reporter:
    """Utterance-weighted sums of an epoch's training stats, summed over ranks at the end."""

    def __init__(self):
        self.sums, self.utts = {}, 0

    def add(self, stats, utts):
        for key, value in stats.items():
            self.sums[key] = self.sums.get(key, 0.0) + float(value) * utts
        self.utts += utts

    def means(self, ctx):
        """({stat: mean over every rank's utterances}, utterances of all ranks)."""
        keys = sorted(self.sums)
        *sums, utts = distributed.all_reduce_sum(ctx, [self.sums[k] for k in keys] + [self.utts])
        return {k: total / utts for k, total in zip(keys, sums)}, int(utts)


class Trainer:
    """One fold's run: :meth:`run` sets up (or resumes), then per epoch :meth:`train_one_epoch`,
    :meth:`validate` and :meth:`save`, until the last epoch or early stopping."""

    def __init__(self, cfg, ctx, threads):
        self.cfg, self.ctx, self.threads = cfg, ctx, threads
        self.exp_dir, self.device = cfg.run.exp_dir, ctx.device
        self.writer = None
        self.timer = SectionTimer()  # where the run's time goes: train.log at the end
        self.last_plot = float("-inf")

    def run(self):
        if not self.set_up():
            return
        cfg, ctx, length, state = self.cfg, self.ctx, self.length, self.state
        reason, epoch = "max_epochs", self.resume_epoch
        for epoch in range(self.resume_epoch + 1, length.epochs + 1):
            if length.patience and state["bad_epochs"] >= length.patience:
                reason, epoch = "early_stop", epoch - 1
                break
            seed_epoch(cfg.run.seed, epoch, ctx.rank)
            # The one draw a new DataLoader iterator made here before the loaders had
            # persistent workers and a generator of their own: earlier runs' random streams,
            # whatever --num-workers.
            torch.empty((), dtype=torch.int64).random_()
            self.sampler.set_epoch(epoch)
            start = time.time()
            train_stats, train_utts = self.train_one_epoch(epoch)
            dev = self.validate()
            self.record(epoch, train_stats, train_utts, dev, time.time() - start)
            distributed.barrier(ctx)
        self.finish(reason, epoch)

    def set_up(self):
        """Logging, data, model, optimiser, resume; False when the run is finished already."""
        cfg, ctx = self.cfg, self.ctx
        os.makedirs(self.exp_dir, exist_ok=True)
        setup_logging(cfg.run.verbose, os.path.join(self.exp_dir, "train.log") if ctx.is_main
                      else None, ctx.rank)
        done = read_done(self.exp_dir)
        distributed.barrier(ctx)  # every rank has read .done before rank 0 may remove it
        if cfg.optim.amp != "none" and self.device.type != "cuda":
            logging.warning("--amp %s is GPU-only; training in fp32 on CPU", cfg.optim.amp)
            cfg.optim.amp = "none"
        logging.info("command: python -m mser.bin.train %s", " ".join(sys.argv[1:]))
        logging.info("rank %d of %d on %s, %d CPU thread(s) (%s)", ctx.rank, ctx.world_size,
                     self.device, *self.threads)
        self.select_conditions = selection_conditions(cfg.optim.select_conditions,
                                                      cfg.model["streams"])
        self.set_up_data()
        if done and not self.continues(done):
            return False
        self.write_config()
        self.build_model()
        self.resume_epoch = max(saved_epochs(self.exp_dir), default=0)
        self.state = {"best_metric": None, "best_epoch": 0, "bad_epochs": 0, "history": []}
        if self.resume_epoch:
            self.resume()
        else:
            with self.timer("normalisation statistics"):
                compute_normalization(ctx, self.model, self.train_set, cfg.model["streams"],
                                      fill_cache=cfg.run.cache_feats and self.workers == 0)
        for dataset in self.datasets():  # the model's, fresh or resumed
            dataset.normalize_with(self.model.input_statistics())
        self.ddp_model = self.model
        if ctx.distributed:  # DDP broadcasts rank 0's parameters and buffers to all
            self.ddp_model = DistributedDataParallel(
                self.model, device_ids=[self.device] if self.device.type == "cuda" else None)
        if ctx.is_main:
            from torch.utils.tensorboard import SummaryWriter
            self.writer = SummaryWriter(os.path.join(self.exp_dir, "tensorboard"), purge_step=(
                self.resume_epoch * len(self.sampler) if self.resume_epoch else None))
        return True

    def datasets(self):
        return [d for d in (self.train_set, self.dev_set) if d is not None]

    def set_up_data(self):
        cfg, ctx = self.cfg, self.ctx
        self.train_set, self.dev_set = load_datasets(cfg)
        self.workers = workers = resolve_num_workers(cfg.run.num_workers, cfg.run.cache_feats,
                                                     self.threads[0])
        if cfg.run.cache_feats:
            check_cache_fits(self.datasets(), max(1, workers),
                             *cache_budget(cfg.run.cache_memory_gb, ctx.local_world_size))
        self.sampler = LengthBucketBatchSampler(
            self.train_set.lengths, cfg.optim.batch_size, cfg.optim.max_frames,
            cfg.optim.bucketing, shuffle=True, seed=cfg.run.seed, num_replicas=ctx.world_size,
            rank=ctx.rank)
        self.length = training_length(cfg.optim.epochs,
                                      0 if cfg.optim.no_dev else cfg.optim.patience,
                                      cfg.optim.min_steps, len(self.sampler))
        self.loader = make_loader(self.train_set, self.sampler, workers, self.device)
        self.dev_loader = None if cfg.optim.no_dev else make_loader(
            self.dev_set, LengthBucketBatchSampler(
                self.dev_set.lengths, cfg.optim.batch_size, cfg.optim.max_frames, shuffle=False,
                num_replicas=ctx.world_size, rank=ctx.rank), workers, self.device)

    def continues(self, done):
        """Whether a finished run (``done``: its .done) goes on: only to more epochs than it ran
        without stopping early."""
        if done["reason"] != "max_epochs" or self.length.epochs <= done["epoch"]:
            logging.info("%s: already finished (%s after epoch %d, best epoch %d); skipped",
                         self.exp_dir, done["reason"], done["epoch"], done["best_epoch"])
            return False
        logging.info("%s: extending a finished %d-epoch run to %d epochs", self.exp_dir,
                     done["epoch"], self.length.epochs)
        if self.ctx.is_main:
            os.remove(os.path.join(self.exp_dir, DONE))
        return True

    def write_config(self):
        """<exp-dir>/config.yaml (a resumed run must have the saved one) and dropped_utts."""
        cfg, length = self.cfg, self.length
        self.config = resolve_config(cfg, self.train_set)
        self.config["dev_utts"] = len(self.dev_set) if self.dev_set is not None else 0
        config_path = os.path.join(self.exp_dir, "config.yaml")
        if saved_epochs(self.exp_dir) and os.path.exists(config_path):
            check_same_run(load_config(config_path), self.config, self.exp_dir)
        if self.ctx.is_main:
            save_config(config_path, self.config)
            write_dropped(self.exp_dir, {name: d for name, d in (("train", self.train_set),
                                                                  ("dev", self.dev_set)) if d})
        logging.info("%d training / %d dev utterances, classes %s", len(self.train_set),
                     self.config["dev_utts"], " ".join(self.train_set.classes))
        if cfg.optim.no_dev:
            logging.info("--no-dev: no dev set, no early stopping: %d epochs; best.pt is %s",
                         length.epochs, "the last epoch" if cfg.optim.average_checkpoints <= 1
                         else f"the mean of the last {cfg.optim.average_checkpoints} epochs")
        if length.epochs != cfg.optim.epochs:
            logging.info("%d epochs of %d optimiser steps are fewer than --min-steps %d: "
                         "training up to %d epochs with patience %d", cfg.optim.epochs,
                         length.steps_per_epoch, cfg.optim.min_steps, length.epochs,
                         length.patience)

    def build_model(self):
        cfg, conf = self.cfg, self.cfg.model
        torch.manual_seed(cfg.run.seed)  # identical initialisation on every rank
        self.model = build_model(conf, feat_infos(self.config), len(self.train_set.classes),
                                 self.train_set.task_classes)
        weights, offsets = class_balance(self.train_set, cfg.optim.class_weight)
        self.model.set_loss(weights, cfg.optim.label_smoothing, logit_offset=offsets)
        self.model.to(self.device)
        logging.info("model: %s fusion, %s; %.2fM parameters; selected on dev %s of %s",
                     conf["fusion"], "+".join(conf["streams"]),
                     sum(p.numel() for p in self.model.parameters()) / 1e6,
                     cfg.optim.select_metric,
                     " + ".join(self.select_conditions))
        # The fused kernel: one call per step instead of a dozen per parameter tensor (4x faster
        # on CPU; the same update up to rounding).
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.optim.lr,
                                           weight_decay=cfg.optim.weight_decay,
                                           fused=self.device.type in ("cpu", "cuda"))
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(
            cfg.optim.scheduler, cfg.optim.warmup_steps, self.length.total_steps))
        self.scaler = torch.amp.GradScaler("cuda", enabled=cfg.optim.amp == "fp16")

    def resume(self):
        ctx = self.ctx
        path = checkpoint_path(self.exp_dir, self.resume_epoch)
        checkpoint = load_checkpoint(path, self.device)
        self.model.load_state_dict(checkpoint["model"])
        self.optimizer.load_state_dict(checkpoint["optimizer"])
        self.scheduler.load_state_dict(checkpoint["scheduler"])
        self.scaler.load_state_dict(checkpoint["scaler"])
        self.state = checkpoint["state"]
        if checkpoint.get("world_size", ctx.world_size) != ctx.world_size:
            logging.warning("resuming with %d processes instead of %d: the same optimiser "
                            "steps, but other dropout and masking draws than an uninterrupted "
                            "run", ctx.world_size, checkpoint["world_size"])
        if ctx.is_main:  # the best epoch's own checkpoint, whatever a kill left in best.pt
            copy_checkpoint(checkpoint_path(self.exp_dir, self.state["best_epoch"]),
                            os.path.join(self.exp_dir, BEST))
        logging.info("resumed from %s (%s at epoch %d)", path,
                     selected_text(self.cfg.optim.select_metric, self.state),
                     self.state["best_epoch"])

    def train_one_epoch(self, epoch):
        """The mean training stats (loss, each head's) over all ranks, and the utterances."""
        cfg, ctx, model = self.cfg, self.ctx, self.ddp_model
        model.train()
        reporter = Reporter()
        timer = self.timer
        batches = iter(tqdm(self.loader, desc=f"epoch {epoch}", disable=not ctx.is_main,
                            mininterval=5, leave=False))
        while True:
            with timer("data"):
                batch = next(batches, None)
                if batch is not None:
                    batch = to_device(batch, self.device)
            if batch is None:
                break
            labels = batch["labels"]
            with timer("forward"), autocast(cfg.optim.amp, self.device):
                output = model(batch)
            loss = output["loss"]
            if not torch.isfinite(loss):
                raise FloatingPointError(f"epoch {epoch}: non-finite loss on "
                                         f"{batch['utts'][:3]}...; lower --lr or check the "
                                         f"features")
            with timer("backward"):
                self.optimizer.zero_grad(set_to_none=True)
                self.scaler.scale(loss * batch_share(ctx, self.model.class_weight,
                                                     labels)).backward()
            with timer("optimiser"):
                if cfg.optim.grad_clip > 0:
                    self.scaler.unscale_(self.optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.optim.grad_clip)
                self.scaler.step(self.optimizer)
                self.scaler.update()
                self.scheduler.step()
            with timer("logging"):
                reporter.add({"loss": loss.item(), **output["stats"]}, len(labels))
                if self.writer is not None:
                    step = self.scheduler.last_epoch
                    self.writer.add_scalar("train/loss", loss.item(), step)
                    self.writer.add_scalar("train/lr", self.optimizer.param_groups[0]["lr"],
                                           step)
        return reporter.means(ctx)

    def validate(self):
        """The dev metrics (:func:`evaluate`); None without a dev set."""
        if self.dev_loader is None:
            return None
        with self.timer("dev evaluation"):
            return evaluate(self.ctx, self.model, self.dev_loader, len(self.train_set.classes),
                            self.select_conditions, self.train_set.task_classes)

    def record(self, epoch, train_stats, train_utts, dev, elapsed):
        """Update the selection state and history, log, check the ranks agree, save."""
        cfg, ctx, state = self.cfg, self.ctx, self.state
        value = None if dev is None else dev[cfg.optim.select_metric]
        improved = dev is None or is_better(cfg.optim.select_metric, value,
                                            state["best_metric"])
        if improved:  # without a dev set, the latest epoch
            state.update(best_metric=value, best_epoch=epoch, bad_epochs=0)
        else:
            state["bad_epochs"] += 1
        lr = self.optimizer.param_groups[0]["lr"]
        entry = {"epoch": epoch, "step": self.scheduler.last_epoch, "train_loss":
                 train_stats["loss"], "dev_metric": value, "lr": lr, "seconds": elapsed}
        if dev is not None:
            entry.update(dev_loss=dev["loss"], dev_ua=dev["ua"], dev_wa=dev["wa"],
                         dev_conditions=dev["conditions"])
        state["history"].append(entry)
        with self.timer("checksums"):
            checksums = distributed.all_gather_object(ctx, parameter_checksum(self.model))
        head_losses = {k: v for k, v in train_stats.items() if k.startswith("loss_")}
        heads = ("".join(f", {k} {v:.4f}" for k, v in head_losses.items())
                 if len(head_losses) > 1 else "")
        if dev is None:
            dev_text, best = "no dev set", ""
        else:
            by_condition = "" if len(self.select_conditions) == 1 else " (UA %s)" % ", ".join(
                f"{c} {m['ua']:.4f}" for c, m in dev["conditions"].items())
            dev_text = (f"dev loss {dev['loss']:.4f} UA {dev['ua']:.4f} WA {dev['wa']:.4f}"
                        f"{by_condition}{tasks_text(dev, self.model.tasks)}")
            best = ", new best" if improved else ""
        logging.info("epoch %d/%d: train loss %.4f%s, %s, lr %.2e, %.1f s (%.1f utt/s)%s",
                     epoch, self.length.epochs, train_stats["loss"], heads, dev_text, lr,
                     elapsed, train_utts / elapsed, best)
        logging.info("parameter checksum per rank: %s",
                     " ".join(f"{c:.10e}" for c in checksums))
        if len(set(checksums)) != 1:
            raise RuntimeError(f"ranks hold different parameters after epoch {epoch}: "
                               f"{checksums}")
        if ctx.is_main:
            with self.timer("checkpoints"):
                self.save(epoch, improved)
            with self.timer("logging"):
                log_epoch(self.writer, epoch, train_stats, dev,
                          dev is not None and len(self.select_conditions) > 1)
            if time.monotonic() - self.last_plot >= PLOT_EVERY_S:
                self.plot()

    def save(self, epoch, improved):
        """checkpoints/epoch<N>.pt, best.pt when ``improved``, then prune the old ones."""
        cfg = self.cfg
        checkpoint = {"model": self.model.state_dict(),
                      "optimizer": self.optimizer.state_dict(),
                      "scheduler": self.scheduler.state_dict(),
                      "scaler": self.scaler.state_dict(), "epoch": epoch, "state": self.state,
                      "seed": cfg.run.seed, "world_size": self.ctx.world_size,
                      "git_commit": self.config["git_commit"]}
        save_checkpoint(checkpoint_path(self.exp_dir, epoch), checkpoint)
        if improved:
            save_checkpoint(os.path.join(self.exp_dir, BEST), checkpoint)
        prune_checkpoints(self.exp_dir, cfg.optim.keep_checkpoints, protect=set(best_epochs(
            self.state["history"], cfg.optim.select_metric, cfg.optim.average_checkpoints)))

    def plot(self):
        with self.timer("plots"):
            plot_curves(self.state["history"], os.path.join(self.exp_dir, "train_curve.png"))
        self.last_plot = time.monotonic()

    def finish(self, reason, epoch):
        """The last curves, best.pt averaged if asked, its calibration, <exp-dir>/.done."""
        cfg, state, ctx = self.cfg, self.state, self.ctx
        summary = {"reason": reason, "epoch": epoch, "best_epoch": state["best_epoch"],
                   f"best_dev_{cfg.optim.select_metric}": state["best_metric"]}
        if ctx.is_main:
            self.writer.close()
            if state["history"]:
                self.plot()
            if cfg.optim.average_checkpoints > 1:
                with self.timer("checkpoints"):
                    summary["averaged_epochs"] = write_average(
                        self.exp_dir, state["history"], cfg.optim.select_metric,
                        cfg.optim.average_checkpoints, cfg.optim.warmup_steps)
        distributed.barrier(ctx)  # best.pt is final
        if state["history"] and self.dev_loader is not None:
            with self.timer("calibration"):
                self.calibrate()
        if ctx.is_main:
            # This run's sections (a resumed run: since the resume); mser.bin.train's epochs
            # and utterances per second are in the log.
            summary["seconds"] = {k: round(v, 2) for k, v in self.timer.sections().items()}
            atomic_write_text(os.path.join(self.exp_dir, DONE), yaml.safe_dump(summary))
            logging.info("finished (%s): %s at epoch %d -> %s", reason,
                         selected_text(cfg.optim.select_metric, state), state["best_epoch"],
                         os.path.join(self.exp_dir, BEST))
            logging.info("time per section: %s", self.timer.summary())
        distributed.barrier(ctx)

    def calibrate(self):
        """Temperature scaling of best.pt per stream condition, fitted on its dev logits
        (mser.utils.calibration); the main process writes <exp-dir>/calibration.yaml."""
        self.model.load_state_dict(load_checkpoint(os.path.join(self.exp_dir, BEST),
                                                   self.device)["model"])
        conditions = conditions_for(self.cfg.model["streams"])
        _, labels, outputs, _ = gather_outputs(self.ctx, self.model, self.dev_loader, conditions)
        logits = {c: outputs[c][PRIMARY] for c in conditions}
        if not self.ctx.is_main:
            return
        temperatures = {c: fit_temperature(logits[c], labels) for c in conditions}
        summaries = {c: calibration_summary(logits[c], labels, t) for c, t in temperatures.items()}
        save_calibration(self.exp_dir, temperatures, summaries, len(labels))
        logging.info("calibration of %s on dev (%s): %s", BEST, CALIBRATION, ", ".join(
            f"{c} T {t:.3f}, ECE {100 * summaries[c]['ece']:.2f} -> "
            f"{100 * summaries[c]['ece_calibrated']:.2f} %" for c, t in temperatures.items()))


def selected_text(metric, state):
    """'best dev ua 0.7123' of the selection state; without a dev set, 'no dev set, the latest'."""
    if state["best_metric"] is None:
        return "no dev set, the latest"
    return f"best dev {metric} {state['best_metric']:.4f}"


def best_epochs(history, metric, count):
    """The ``count`` epochs of ``history`` with the best dev ``metric``, best first (ties: the
    earlier epoch); without dev metrics (no dev set), the last ``count`` epochs, latest first."""
    if any(h["dev_metric"] is None for h in history):
        return [h["epoch"] for h in history[::-1][:max(1, count)]]
    sign = 1 if metric == "loss" else -1
    ranked = sorted(history, key=lambda h: (sign * h["dev_metric"], h["epoch"]))
    return [h["epoch"] for h in ranked[:max(1, count)]]


def warmup_epochs(history, epochs, warmup_steps):
    """Those of ``epochs`` that ended within the first ``warmup_steps`` optimiser steps (a
    rising learning rate); none for a history without step counts (an older run)."""
    steps = {h["epoch"]: h.get("step", warmup_steps) for h in history}
    return [e for e in epochs if steps[e] < warmup_steps]


def write_average(exp_dir, history, metric, count, warmup_steps):
    """best.pt := the mean of the ``count`` best epochs' models; returns their epochs. Says so
    when some of them ended within the warm-up."""
    epochs = best_epochs(history, metric, count)
    averaged = average_checkpoints([checkpoint_path(exp_dir, e) for e in epochs])
    save_checkpoint(os.path.join(exp_dir, BEST), averaged)
    logging.info("%s: the mean of the %d %s (%s)", os.path.join(exp_dir, BEST), len(epochs),
                 "last epochs (no dev set)" if history[-1]["dev_metric"] is None else
                 f"best epochs by dev {metric}", " ".join(map(str, epochs)))
    early = warmup_epochs(history, epochs, warmup_steps)
    if early:
        after = [h["epoch"] for h in history if h.get("step", warmup_steps) >= warmup_steps]
        logging.warning("best.pt averages %d epoch(s) that ended within the %d-step learning-"
                        "rate warm-up (%s); %s", len(early), warmup_steps,
                        " ".join(map(str, early)), f"epoch {after[0]} was the first after it"
                        if after else "no epoch ended after it")
    return epochs


def read_done(exp_dir):
    path = os.path.join(exp_dir, DONE)
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def seed_epoch(seed, epoch, rank):
    """Seed Python, numpy and torch (CPU and CUDA) from (seed, epoch, rank) alone."""
    value = int(np.random.SeedSequence([seed, epoch, rank]).generate_state(1)[0])
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)


def resolve_num_workers(requested, cache_feats, threads):
    """``requested``, or for -1: none when features are cached (each worker would hold its own
    copy of the cache), else half of this process's CPU threads, at most 4."""
    if requested >= 0:
        return requested
    workers = 0 if cache_feats else min(4, threads // 2)
    logging.info("--num-workers -1: %d DataLoader worker(s)", workers)
    return workers


def make_loader(dataset, batch_sampler, num_workers, device):
    """Batches of ``batch_sampler``; its worker processes persist from one epoch to the next,
    and so does what they hold (a feature cache). Workers are seeded from a generator of their
    own: persistent ones draw from it once, not every epoch, so torch's global generator is
    left to the training loop."""
    return torch.utils.data.DataLoader(dataset, batch_sampler=batch_sampler, collate_fn=collate,
                                       num_workers=num_workers,
                                       persistent_workers=num_workers > 0,
                                       generator=torch.Generator().manual_seed(0),
                                       pin_memory=device.type == "cuda")


def cache_budget(memory_gb, local_procs):
    """(bytes the feature cache of one process may take, why): ``memory_gb``, or for 0 half of
    the memory available to this job (:func:`distributed.available_memory`) / local processes."""
    if memory_gb > 0:
        return memory_gb * 1e9, f"--cache-memory-gb {memory_gb:g}"
    available, source = distributed.available_memory()
    return (available / 2 / local_procs,
            f"half of {available / 1e9:.1f} GB {source} / {local_procs} local process(es)")


def check_cache_fits(datasets, copies, budget, why):
    """Refuse a feature cache of ``datasets`` (``copies``: one per DataLoader worker) that could
    outgrow ``budget`` bytes; the estimate comes from the matrix headers, nothing is read."""
    sizes = [d.feature_bytes() for d in datasets]
    need = sum(sizes) * copies
    detail = " + ".join(f"{size / 1e9:.2f} GB {os.path.basename(d.data_dir)}"
                        for size, d in zip(sizes, datasets))
    detail += f", x {copies} DataLoader workers (a cache each)" if copies > 1 else ""
    if need > budget:
        raise ValueError(f"--cache-feats: the features would take up to {need / 1e9:.2f} GB of "
                         f"memory per process ({detail}), over the budget of {budget / 1e9:.2f} "
                         f"GB ({why}); set --cache-feats false (read from disk every epoch; "
                         f"storage: float16 reads fast), fewer --num-workers or a larger "
                         f"--cache-memory-gb")
    logging.info("feature cache: up to %.2f GB per process (%s), budget %.2f GB (%s)",
                 need / 1e9, detail, budget / 1e9, why)


def load_datasets(cfg):
    """The train and dev sets (dev None with ``--no-dev``), their frames averaged as the model's
    front ends do first."""
    feats, tasks, pool = cfg.feats, cfg.model["tasks"], input_pooling(cfg.model)
    train_dir, dev_dir = (os.path.join(cfg.run.data_dir, s) for s in ("train", "dev"))
    train_set = EmotionDataset(train_dir, feats, cache=cfg.run.cache_feats, pool=pool,
                               tasks=tasks)
    dev_set = None
    if not cfg.optim.no_dev:
        dev_classes_path = os.path.join(dev_dir, "classes.txt")
        if (os.path.exists(dev_classes_path)
                and read_classes(dev_classes_path) != train_set.classes):
            raise ValueError(f"{dev_classes_path} differs from {train_dir}/classes.txt; re-run "
                             f"data preparation")
        dev_set = EmotionDataset(dev_dir, feats, classes=train_set.classes,
                                 cache=cfg.run.cache_feats, pool=pool, tasks=tasks,
                                 task_classes=train_set.task_classes)
    for subset in (d for d in (train_set, dev_set) if d is not None):
        if not subset.has_labels:
            raise ValueError(f"{subset.data_dir}/utt2emo: not found; training needs labels")
    return train_set, dev_set


def write_dropped(exp_dir, splits):
    """List the utterances each split left out (no features) in <exp_dir>/dropped_utts and say
    so; remove a stale list when none are."""
    path = os.path.join(exp_dir, DROPPED)
    lines = [f"{split} {utt} {why}\n" for split, dataset in splits.items()
             for utt, why in dataset.dropped.items()]
    if not lines:
        if os.path.exists(path):
            os.remove(path)
        return
    atomic_write_text(path, "".join(lines))
    counts = ", ".join(f"{len(d.dropped)} {split}" for split, d in splits.items() if d.dropped)
    logging.warning("training without %s utterance(s) that have no features (see the warnings "
                    "above); all listed in %s", counts, path)


def compute_normalization(ctx, model, train_set, streams, fill_cache):
    """Global mean/std of each normalised stream over every frame of the training split, in
    one read of each utterance (which fills the cache too with ``fill_cache``: the cache of the
    main process, that is, without DataLoader workers): each rank sums (float64) every
    ``world_size``-th utterance, the sums are all-reduced, so every rank sets the statistics
    one process would."""
    normalized = [m for m in streams if model.conf["streams"][m]["normalize"]]
    if not normalized:
        return
    dims = {m: len(model.normalizer(m).mean) for m in normalized}
    # per stream: sum, sum of squares, frames
    sums = {m: torch.zeros(2 * dim + 1, dtype=torch.float64) for m, dim in dims.items()}
    for index in tqdm(range(ctx.rank, len(train_set), ctx.world_size),
                      desc="normalisation statistics", mininterval=5, disable=not ctx.is_main):
        stored = train_set.scan(index)[0] if fill_cache else train_set.read(index)
        for modality, dim in dims.items():
            mat = torch.from_numpy(stored[modality]).double()
            sums[modality][:dim] += mat.sum(0)
            sums[modality][dim:-1] += (mat * mat).sum(0)
            sums[modality][-1] += len(mat)
    for modality, dim in dims.items():
        total = distributed.all_reduce_tensor(ctx, sums[modality])
        count = total[-1]
        mean = total[:dim] / count
        std = (total[dim:-1] / count - mean * mean).clamp_min(0).sqrt()
        model.normalizer(modality).set_statistics(mean.float(), std.float())
        logging.info("%s normalisation: statistics of %d frames of %d training utterances",
                     modality, int(count), len(train_set))


def class_balance(train_set, mode):
    """``(class weights, logit offsets)`` of the loss (:meth:`EmotionModel.set_loss`) from the
    training label counts: ``balanced``: inverse-frequency weights; ``logit_adjusted``: the log
    prior added to the logits; ``none``: neither."""
    if mode == "none":
        return None, None
    counts = train_set.label_counts()
    if mode == "logit_adjusted":
        prior = np.maximum(counts, 1) / max(counts.sum(), 1)
        logging.info("logit adjustment: log prior %s", ", ".join(
            f"{c} {np.log(p):.2f} ({n} utts)" for c, p, n in zip(train_set.classes, prior, counts)))
        return None, torch.tensor(np.log(prior), dtype=torch.float32)
    weights = len(train_set) / (len(counts) * np.maximum(counts, 1))
    logging.info("class weights (%s): %s", mode, ", ".join(
        f"{c} {w:.3f} ({n} utts)" for c, w, n in zip(train_set.classes, weights, counts)))
    return torch.tensor(weights, dtype=torch.float32), None


def autocast(amp, device):
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def selection_conditions(requested, streams):
    """The requested dev conditions the model can serve (the others named in a warning); if
    none, all it can."""
    supported = conditions_for(streams)
    left_out = [c for c in requested if c not in supported]
    if left_out:
        logging.warning("--select-conditions: %s left out: a model with streams %s has only %s",
                        " ".join(left_out), "+".join(streams), " ".join(supported))
    return [c for c in requested if c in supported] or supported


def gather_outputs(ctx, model, loader, conditions):
    """(sorted utterance ids, their labels (N,), {condition: {task: outputs (N, C)}}, {task:
    targets (N,)}) of the whole set behind ``loader`` (the emotion task's outputs: its logits;
    targets: the auxiliary tasks'): each rank runs its share (every condition in one pass, one
    read per batch) and the per-utterance results are gathered on every rank."""
    scored = {}  # utt -> (label, {task: target}, {condition: {task: outputs}})
    for batch, outputs in condition_outputs(model, loader, ctx.device, conditions):
        arrays = {c: {t: o.cpu().numpy() for t, o in by_task.items()}
                  for c, by_task in outputs.items()}
        targets = {t: v.tolist() for t, v in batch.get("targets", {}).items()}
        for i, (utt, label) in enumerate(zip(batch["utts"], batch["labels"].tolist())):
            scored[utt] = (label, {t: v[i] for t, v in targets.items()},
                           {c: {t: o[i] for t, o in by_task.items()}
                            for c, by_task in arrays.items()})
    for share in distributed.all_gather_object(ctx, scored):  # a padded batch repeats an utt
        scored.update(share)
    utts = sorted(scored)
    labels = np.array([scored[u][0] for u in utts])
    aux = list(auxiliary(model.tasks))
    return (utts, labels,
            {c: {t: np.stack([scored[u][2][c][t] for u in utts]) for t in (PRIMARY, *aux)}
             for c in conditions},
            {t: np.array([scored[u][1][t] for u in utts]) for t in aux})


def evaluate(ctx, model, loader, num_classes, conditions, task_classes=None):
    """Dev loss, UA, WA, macro and weighted F1 per condition, and their means, on every rank
    (:func:`gather_outputs`: the metrics are those of the whole dev set); with auxiliary
    tasks, each one's metrics per condition under ``tasks`` (labelled utterances only)."""
    _, y_true, outputs, targets = gather_outputs(ctx, model, loader, conditions)
    logits = {c: outputs[c][PRIMARY] for c in conditions}
    per_condition = {}
    for condition in conditions:
        losses = torch.nn.functional.cross_entropy(torch.from_numpy(logits[condition]),
                                                   torch.from_numpy(y_true), reduction="none")
        y_pred = logits[condition].argmax(-1)
        per_condition[condition] = {"loss": float(losses.mean()),
                                    "ua": unweighted_accuracy(y_true, y_pred, num_classes),
                                    "wa": weighted_accuracy(y_true, y_pred),
                                    "macro_f1": macro_f1(y_true, y_pred, num_classes),
                                    "weighted_f1": weighted_f1(y_true, y_pred, num_classes)}
        if targets:
            per_condition[condition]["tasks"] = task_scores(
                model.tasks, task_classes, targets, outputs[condition])
    means = {k: float(np.mean([m[k] for m in per_condition.values()]))
             for k in ("loss", "ua", "wa", "macro_f1", "weighted_f1")}
    return {**means, "conditions": per_condition}


def task_scores(tasks, task_classes, targets, outputs):
    """{task: metrics} of the auxiliary tasks' ``outputs`` against ``targets`` (the labelled
    utterances)."""
    scores = {}
    for task, spec in auxiliary(tasks).items():
        kind = task_type(spec)
        labelled = kind.labelled(targets[task])
        scores[task] = kind.score(targets[task][labelled], outputs[task][labelled],
                                  (task_classes or {}).get(task))
    return scores


def tasks_text(dev, tasks):
    """', sentiment UA 0.6123 (both)' of the auxiliary tasks' headline dev metrics under the
    first selection condition; '' without them."""
    condition, metrics = next(iter(dev["conditions"].items()))
    if not metrics.get("tasks"):
        return ""
    return "".join(f", {task} {METRIC_NAMES[task_type(tasks[task]).headline]} "
                   f"{scores[task_type(tasks[task]).headline]:.4f}"
                   for task, scores in metrics["tasks"].items()) + f" ({condition})"


def is_better(metric, value, best):
    if best is None:
        return True
    return value < best if metric == "loss" else value > best


def parameter_checksum(model):
    return float(sum(p.detach().double().sum().item() for p in model.parameters()))


def batch_share(ctx, class_weight, labels):
    """World size x this rank's share of the global batch's loss normaliser (utterances, or
    their class weights): DDP averages gradients over ranks, so each rank's mean loss scaled by
    this gives the gradient of the mean over the whole batch (exactly 1.0 on one process)."""
    local = float(len(labels) if class_weight is None else class_weight[labels].sum())
    total, = distributed.all_reduce_sum(ctx, [local])
    return local * ctx.world_size / total


def log_epoch(writer, epoch, train_stats, dev, per_condition):
    for key in ("loss", "ua", "wa") if dev is not None else ():
        writer.add_scalar(f"dev/{key}", dev[key], epoch)
        if per_condition:
            for condition, metrics in dev["conditions"].items():
                writer.add_scalar(f"dev_{condition}/{key}", metrics[key], epoch)
    for key, value in train_stats.items():
        writer.add_scalar(f"train/epoch_{key}", value, epoch)


def plot_curves(history, path):
    plt = pyplot()
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    ax_loss.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    if history[-1]["dev_metric"] is None:  # no dev set
        ax_acc.set_axis_off()
        ax_acc.text(0.5, 0.5, "no dev set (--no-dev)", ha="center", va="center")
    else:
        plot_dev(ax_loss, ax_acc, epochs, history)
    for ax in (ax_loss, ax_acc) if ax_acc.axison else (ax_loss,):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=100)


def plot_dev(ax_loss, ax_acc, epochs, history):
    """The dev loss beside the training loss, and the dev accuracies."""
    ax_loss.plot(epochs, [h["dev_loss"] for h in history], "o-", label="dev")
    conditions = history[-1].get("dev_conditions", {})
    mean_of = f" (mean of {', '.join(conditions)})" if len(conditions) > 1 else ""
    ax_acc.plot(epochs, [h["dev_ua"] for h in history], "o-", label=f"dev UA{mean_of}")
    ax_acc.plot(epochs, [h["dev_wa"] for h in history], "o-", label=f"dev WA{mean_of}")
    if len(conditions) > 1:
        for condition in conditions:
            ax_acc.plot(epochs, [h["dev_conditions"][condition]["ua"] for h in history], ":",
                        label=f"dev UA, {condition}")
    ax_acc.set(xlabel="epoch", ylabel="accuracy", title="dev accuracy")
