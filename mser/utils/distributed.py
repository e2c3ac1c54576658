"""Distributed data parallel helpers: torchrun re-launch, process group set-up, collectives.

The entry point reads the torchrun environment once (:func:`context_from_env`) and passes the
resulting :class:`DistContext` down; nothing below reads environment variables.
"""
import dataclasses
import logging
import os

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self):
        return self.rank == 0

    @property
    def distributed(self):
        return self.world_size > 1


def world_size_for(ngpu, nproc):
    """Processes to run: one per GPU, or ``nproc`` CPU processes (gloo)."""
    if ngpu < 0 or nproc < 1:
        raise ValueError(f"--ngpu {ngpu} / --nproc {nproc}: need ngpu >= 0 and nproc >= 1")
    if ngpu > 0 and nproc not in (1, ngpu):
        raise ValueError(f"--nproc {nproc} with --ngpu {ngpu}: on GPUs there is one process per "
                         f"GPU; drop --nproc or set it to {ngpu}")
    return ngpu if ngpu > 0 else nproc


def launched_by_torchrun(environ):
    return "LOCAL_RANK" in environ and "WORLD_SIZE" in environ


def relaunch_with_torchrun(nproc, module, argv):
    """Run ``python -m module argv`` in ``nproc`` processes through torchrun (this process is
    its agent); returns the exit code.

    ``argv`` is set after torchrun parses its own options: left on its command line, an option
    such as ``--nproc`` would be taken as an abbreviation of torchrun's ``--nproc-per-node``.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launch = get_args_parser().parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m",
                                           module])
    launch.training_script_args = list(argv)
    logging.info("re-launching through torchrun: torchrun --standalone --nproc_per_node=%d -m "
                 "%s %s", nproc, module, " ".join(argv))
    try:
        run(launch)
    except ChildFailedError as e:
        logging.error("distributed run failed: %s", e)
        return 1
    return 0


def context_from_env(environ, ngpu):
    """The context of this process: torchrun's variables when present, else one CPU/GPU process."""
    if ngpu > 0 and not torch.cuda.is_available():
        raise RuntimeError(f"--ngpu {ngpu} but CUDA is not available; use --ngpu 0 (CPU)")
    if not launched_by_torchrun(environ):
        return DistContext(device=torch.device("cuda", 0) if ngpu > 0 else torch.device("cpu"))
    rank, local_rank = int(environ["RANK"]), int(environ["LOCAL_RANK"])
    world_size = int(environ["WORLD_SIZE"])
    device = torch.device("cuda", local_rank) if ngpu > 0 else torch.device("cpu")
    return DistContext(rank, local_rank, world_size, device)


def init_process_group(ctx):
    """nccl on GPUs, gloo on CPU; also splits the CPU cores between local processes."""
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    else:
        local_procs = ctx.world_size if ctx.distributed else 1
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_procs))
    if ctx.distributed:
        backend = "nccl" if ctx.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, rank=ctx.rank, world_size=ctx.world_size)


def destroy_process_group(ctx):
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx):
    if ctx.distributed:
        dist.barrier()


def broadcast_object(ctx, obj, src=0):
    """``obj`` of rank ``src`` on every rank."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_gather_object(ctx, obj):
    """List of every rank's ``obj``, in rank order."""
    if not ctx.distributed:
        return [obj]
    gathered = [None] * ctx.world_size
    dist.all_gather_object(gathered, obj)
    return gathered


def all_reduce_sum(ctx, values):
    """Element-wise sum over ranks of a list of floats."""
    if not ctx.distributed:
        return list(values)
    tensor = torch.tensor(values, dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    return tensor.tolist()
