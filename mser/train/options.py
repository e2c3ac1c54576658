"""The training options, one :class:`~mser.utils.config.Option` each (default, help, choices,
whether a resumed run may change it), the checks on them, the typed :class:`TrainConfig` they
are parsed into once (what the trainer receives), and the resolved config.yaml it writes."""
import dataclasses
import types

import torch

from mser.io.storage import load_feat_info
from mser.nets import LEGACY_STREAM_KEYS, MODALITIES, MODEL_OPTIONS, resolve_model_conf
from mser.utils.conditions import is_condition_name
from mser.utils.config import Option, add_options, add_replaced, git_commit

MIGRATE = "python -m mser.bin.migrate_config <yaml> rewrites a config of the older form"
# The keys of the older config form -> what replaced them.
REPLACED = {
    "modalities": f"the model's streams are the names under streams: (audio: {{}}, text: {{}}; "
                  f"'<name>: null' removes a base config's stream); {MIGRATE}",
    **{key: f"streams: {{{stream}: {{{option}: ...}}}}; {MIGRATE}"
       for key, (stream, option) in LEGACY_STREAM_KEYS.items()},
}

TRAIN_OPTIONS = {
    "run": {
        "data_dir": Option(None, "fold dir holding train/ and dev/ (test/ is never read)"),
        "audio_feats": Option(None, "feats.scp of the acoustic features (dump/<name>/feats.scp)"),
        "text_feats": Option(None, "feats.scp of the linguistic features"),
        "stream_feats": Option([], "feats.scp of declared streams as NAME=SCP (e.g. "
                                   "context=dump/mpnet_context5/feats.scp), over the config's "
                                   "streams.<name>.feats"),
        "exp_dir": Option(None, "output dir of this fold"),
        "ngpu": Option(0, "GPUs (one process each); 0 = CPU", resumable=True),
        "nproc": Option(1, "CPU processes (DDP over gloo) when --ngpu 0; per machine under an "
                           "external launcher (torchrun, srun), where it is checked against the "
                           "processes started. Also spelt --nproc-per-node, the spelling torchrun "
                           "lets through after -m mser.bin.train (it rejects --nproc as ambiguous)",
                        resumable=True, aliases=("--nproc-per-node",)),
        "master_port": Option(0, "under srun: TCP port of rank 0 on the step's first node (0: "
                                 "29500 + SLURM_JOB_ID mod 1000)", resumable=True),
        "seed": Option(0, "random seed (data order, initialisation; dropout and masking are "
                          "reseeded every epoch from seed, epoch and rank)"),
        "num_workers": Option(-1, "DataLoader worker processes, kept across epochs; -1: 0 with "
                                  "--cache-feats (the cache lives in the main process), else "
                                  "half of this process's CPU threads, at most 4",
                              resumable=True),
        "cache_feats": Option(False, "keep read features in memory, as stored (float16 stays "
                                     "float16); refused when they could exceed "
                                     "--cache-memory-gb (each DataLoader worker holds a copy)",
                              resumable=True),
        "cache_memory_gb": Option(0.0, "memory the feature cache of one process may take, GB; "
                                       "0: half of the memory available to the job "
                                       "(MemAvailable, cgroup limit) / processes per machine",
                                  resumable=True),
        "verbose": Option(1, "0: warnings, 1: info, 2: debug", choices=(0, 1, 2), resumable=True),
    },
    "optimisation": {
        "epochs": Option(30, "maximum number of epochs (see --min-steps)", resumable=True),
        "patience": Option(8, "stop after this many epochs without dev improvement (0: never; "
                              "see --min-steps)", resumable=True),
        "min_steps": Option(0, "least optimiser steps of a run: when --epochs x steps per "
                               "epoch is fewer (a small corpus), --epochs and --patience are "
                               "stretched by the same factor, as train.log says (0: off, "
                               "the default: a recipe's config sizes its run in epochs)",
                            resumable=True),
        "no_dev": Option(False, "train on <data-dir>/train alone for exactly --epochs: no dev "
                                "set, no early stopping, no calibration; best.pt is the mean of "
                                "the last --average-checkpoints epochs (a final model on all "
                                "speakers, its epochs fixed by cross-validation)"),
        "select_metric": Option("ua", "dev metric for model selection (a corpus's headline: "
                                      "weighted_f1 MELD, macro_f1 MSP-Podcast)",
                                choices=("ua", "wa", "macro_f1", "weighted_f1", "loss")),
        "select_conditions": Option(["both"], "dev conditions (mser.utils.conditions: both, "
                                              "all, <stream>_only, audio+video, ...) whose mean "
                                              "--select-metric selects the model and stops "
                                              "early; those the model's streams cannot serve "
                                              "are left out"),
        "lr": Option(1e-3, "peak learning rate (AdamW)"),
        "weight_decay": Option(0.01, "AdamW weight decay"),
        "scheduler": Option("warmup", "warmup: linear warm-up then inverse-sqrt decay (no "
                                      "horizon); cosine: warm-up then cosine decay to 0 at the "
                                      "last epoch (a resume with another length reshapes it)",
                            choices=("warmup", "cosine")),
        "warmup_steps": Option(200, "linear warm-up, in optimiser steps"),
        "batch_size": Option(32, "utterances per optimiser step (split between the processes) "
                                 "when --max-frames is 0"),
        "max_frames": Option(0, "padded frames per optimiser step (split between the "
                                "processes) of the bucketing stream (audio if used, else text); "
                                "0: use --batch-size"),
        "bucketing": Option(True, "batch utterances of similar length"),
        "grad_clip": Option(5.0, "gradient norm clipping (0: off)"),
        "class_weight": Option("none", "class balance of the loss, from the training label "
                                       "counts: balanced (inverse-frequency class weights) or "
                                       "logit_adjusted (the log prior added to the logits in the "
                                       "loss)", choices=("none", "balanced", "logit_adjusted")),
        "label_smoothing": Option(0.0, "cross-entropy label smoothing"),
        "amp": Option("none", "mixed precision on GPU (fp16 with GradScaler)",
                      choices=("none", "fp16", "bf16")),
        "keep_checkpoints": Option(3, "epoch checkpoints kept besides the best (and the ones "
                                      "--average-checkpoints needs)", resumable=True),
        "average_checkpoints": Option(1, "best.pt of a finished run: the mean of the weights of "
                                         "the N epochs with the best dev --select-metric (1: the "
                                         "best epoch itself); smooths the selection noise of a "
                                         "small dev set; the log names those that ended within "
                                         "the warm-up", resumable=True),
    },
}
OPTIONS = {key: spec for options in TRAIN_OPTIONS.values() for key, spec in options.items()}
RESUMABLE = {key for key, spec in OPTIONS.items() if spec.resumable}
# Saved in config.yaml but not options: a resumed run may differ in them.
PROVENANCE = ("git_commit", "torch_version", "train_config")


@dataclasses.dataclass
class TrainConfig:
    """A training run's options, parsed and checked once by :func:`check_args`: ``run`` and
    ``optim`` hold the options of those sections of :data:`TRAIN_OPTIONS` (``cfg.optim.lr``),
    ``model`` the resolved model conf (streams, tasks, ...), ``feats`` each stream's feats.scp,
    ``config_file`` the YAML given (--config)."""
    run: types.SimpleNamespace
    optim: types.SimpleNamespace
    model: dict
    feats: dict
    config_file: str = None

    def options(self):
        """{option: value} of every training option, in :data:`OPTIONS`' order."""
        return {**vars(self.run), **vars(self.optim)}


def add_train_options(parser):
    for group, options in TRAIN_OPTIONS.items():
        add_options(parser, options, group)
    add_options(parser, MODEL_OPTIONS, "model")
    add_replaced(parser, REPLACED)


def model_conf_from_args(args):
    """The resolved model conf of the options (the streams' ``feats`` are training options)."""
    conf = {key: getattr(args, key) for key in MODEL_OPTIONS}
    conf["streams"] = {name: {k: v for k, v in (stream or {}).items() if k != "feats"}
                       for name, stream in (conf["streams"] or {}).items()}
    return resolve_model_conf(conf)


def feats_option(stream):
    """Where a stream's feats.scp is given: --audio-feats, --text-feats, else --stream-feats
    or the config."""
    return (f"--{stream}-feats" if stream in MODALITIES
            else f"--stream-feats {stream}=SCP or streams.{stream}.feats")


def parse_stream_feats(items):
    """{stream: feats.scp} of --stream-feats NAME=SCP items; ValueError if malformed."""
    given = {}
    for item in items:
        name, sep, scp = item.partition("=")
        if not sep or not name or not scp:
            raise ValueError(f"--stream-feats {item!r}: expected NAME=SCP")
        given[name] = scp
    return given


def stream_feats(args, streams):
    """{stream: feats.scp} of ``streams``: --stream-feats, ``streams.<name>.feats``, or
    --audio-feats / --text-feats."""
    declared, given = args.streams or {}, parse_stream_feats(args.stream_feats)
    return {m: given.get(m) or (declared.get(m) or {}).get("feats")
            or getattr(args, f"{m}_feats", None) for m in streams}


def check_args(parser, args):
    """The :class:`TrainConfig` of parsed ``args``; a parser error names what is wrong."""
    for key in ("data_dir", "exp_dir"):
        if not getattr(args, key):
            parser.error(f"--{key.replace('_', '-')} is required")
    malformed = [c for c in args.select_conditions if not is_condition_name(c)]
    if not args.select_conditions or malformed:
        parser.error(f"--select-conditions {' '.join(malformed)}: give conditions such as both, "
                     f"all, <stream>_only, <stream>+<stream> (mser.utils.conditions)")
    model = model_conf_from_args(args)
    try:
        unknown = sorted(set(parse_stream_feats(args.stream_feats)) - set(model["streams"]))
    except ValueError as e:
        parser.error(str(e))
    if unknown:
        parser.error(f"--stream-feats {', '.join(unknown)}: no such stream in the model "
                     f"(streams: {', '.join(model['streams'])})")
    feats = stream_feats(args, model["streams"])
    for stream, scp in feats.items():
        if not scp:
            parser.error(f"the model uses {stream} but {feats_option(stream)} is not given")
    return TrainConfig(
        run=types.SimpleNamespace(**{k: getattr(args, k) for k in TRAIN_OPTIONS["run"]}),
        optim=types.SimpleNamespace(**{k: getattr(args, k)
                                       for k in TRAIN_OPTIONS["optimisation"]}),
        model=model, feats=feats, config_file=args.config)


def resolve_config(cfg, train_set):
    """Everything inference needs, besides the checkpoint: the options of ``cfg`` (a
    :class:`TrainConfig`), the resolved model conf, and per stream ``<stream>_feats`` and
    ``<stream>_info`` (its feat_conf.yaml)."""
    config = cfg.options()
    config.update({"train_config": cfg.config_file, "model_conf": cfg.model})
    for stream, scp in cfg.feats.items():
        info = load_feat_info(scp)
        if stream in MODALITIES and info["modality"] in MODALITIES and info["modality"] != stream:
            raise ValueError(f"{feats_option(stream)} {scp} holds {info['modality']} features "
                             f"(feat_conf.yaml); swap the options?")
        config.update({f"{stream}_feats": scp, f"{stream}_info": info})
    if train_set.task_classes:  # (an emotion-only config has none: older runs resume)
        config["task_classes"] = train_set.task_classes
    config.update({
        "classes": train_set.classes,
        "train_utts": len(train_set),
        "git_commit": git_commit(),
        "torch_version": str(torch.__version__),
    })
    return config


def check_same_run(saved, config, exp_dir):
    """A resumed run must have the config of the saved one, up to the resumable options."""
    saved = {**saved, "model_conf": resolve_model_conf(saved["model_conf"])}  # an older one too
    ignored = RESUMABLE | set(PROVENANCE)
    changed = sorted(k for k in set(saved) | set(config)
                     if k not in ignored and saved.get(k) != config.get(k))
    if changed:
        details = "; ".join(f"{k}: {saved.get(k)!r} -> {config.get(k)!r}" for k in changed)
        raise ValueError(f"{exp_dir} holds a run with a different config ({details}); use another "
                         f"--exp-dir or delete {exp_dir} to start over")
