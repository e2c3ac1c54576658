"""Train the emotion model on one fold: <data-dir>/train, selected on <data-dir>/dev (never test/).

    python -m mser.bin.train --config conf/train.yaml --data-dir data/fold1 \
        --audio-feats dump/fbank/feats.scp --text-feats dump/minilm/feats.scp \
        --exp-dir exp/train_fbank_minilm/fold1 [--ngpu 0] [--nproc 1] [--seed 0]

With --nproc > 1 or --ngpu > 1 this re-launches itself through torchrun (gloo on CPU, nccl on
GPU). Launched by torchrun or srun already (multi-node), it joins their processes instead and
checks --nproc/--ngpu against the processes started per machine:

    torchrun --nnodes 2 --node-rank 0 --nproc-per-node 4 --rdzv-backend c10d \
        --rdzv-endpoint node1:29400 -m mser.bin.train --nproc-per-node 4 --ngpu 4 ...
    srun --nodes 2 --ntasks-per-node 4 --gpus-per-node 4 python -m mser.bin.train --ngpu 4 ...

A job that re-launches itself splits its CPU threads (OMP_NUM_THREADS if set, else the CPUs it
may use: SLURM_CPUS_PER_TASK, the affinity mask) between its processes; under an external
torchrun OMP_NUM_THREADS counts per process, and an srun task's CPUs are its own. A re-run
resumes from the last checkpoint; a finished run (<exp-dir>/.done) is skipped, unless --epochs
now asks for more epochs than it ran without early stopping (it then continues). Writes <exp-dir>/{config.yaml, best.pt,
checkpoints/, train.log, tensorboard/, train_curve.png} (the loop: mser/train/trainer.py).
"""
import logging
import os
import sys

from mser.train.options import add_train_options, check_args
from mser.train.options import model_conf_from_args  # noqa: F401 (with get_parser: a YAML's model)
from mser.train.trainer import train
from mser.utils.allocator import keep_freed_memory
from mser.utils import distributed
from mser.utils.config import make_parser, parse_args
from mser.utils.logging import setup_logging


def get_parser():
    parser = make_parser(__doc__)
    add_train_options(parser)
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    keep_freed_memory()
    parser = get_parser()
    args = parse_args(parser, argv)
    cfg = check_args(parser, args)  # the typed config the trainer receives
    if args.max_frames > 0 and any(a.split("=")[0] == "--batch-size" for a in argv):
        parser.error(f"--batch-size is not used when batches are sized in frames (--max-frames "
                     f"{args.max_frames}, e.g. from the config); give --max-frames instead, or "
                     f"--max-frames 0 with --batch-size")
    world_size = distributed.world_size_for(args.ngpu, args.nproc)
    affinity_cpus = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                     else os.cpu_count() or 1)
    launched_by = distributed.launcher(os.environ)
    if world_size > 1 and launched_by is None:
        setup_logging(args.verbose)
        # This job's budget (OMP_NUM_THREADS included, e.g. a job runner's share) is split
        # between the processes it starts.
        budget, why = distributed.cpu_threads(os.environ, affinity_cpus, 1)
        threads = max(1, budget // world_size)
        logging.info("%d CPU thread(s) per process (%s / %d processes)", threads, why, world_size)
        sys.exit(distributed.relaunch_with_torchrun(world_size, "mser.bin.train", argv, threads))
    ctx = distributed.context_from_env(os.environ, args.ngpu, args.master_port)
    if launched_by:
        try:
            distributed.check_launched_size(args.ngpu, args.nproc, ctx.local_world_size,
                                            launched_by)
        except ValueError as e:
            parser.error(str(e))
    # An srun task's CPUs (SLURM_CPUS_PER_TASK, its binding) are its own; torchrun's share.
    threads = distributed.cpu_threads(os.environ, affinity_cpus,
                                      1 if launched_by == "srun" else ctx.local_world_size)
    distributed.init_process_group(ctx, threads[0])
    try:
        train(cfg, ctx, threads)
    finally:
        distributed.destroy_process_group(ctx)
    if launched_by:
        distributed.exit_finished_worker()


if __name__ == "__main__":
    main()
