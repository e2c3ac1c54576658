"""Distributed data parallel helpers: torchrun re-launch, process group set-up, CPU threads,
memory, collectives.

A run is launched by torchrun (ours, ``--standalone``, or the user's, multi-node with a
rendezvous endpoint), by Slurm's ``srun`` (one task per process: ``SLURM_PROCID``,
``SLURM_NTASKS``, ``SLURM_LOCALID``, the first host of ``SLURM_STEP_NODELIST`` as rank 0's
address, as ESPnet does) or is one process. The entry point reads the environment once
(:func:`launcher`, :func:`context_from_env`, :func:`cpu_threads` with ``os.environ`` and the CPU
affinity mask) and passes the results down; nothing below reads environment variables.
"""
import dataclasses
import logging
import os
import re
import sys

import torch
import torch.distributed as dist


@dataclasses.dataclass(frozen=True)
class DistContext:
    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")
    local_world_size: int = 1  # processes on this machine
    init_method: str = "env://"  # where the processes meet (torchrun: its MASTER_ADDR/PORT)

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


def launcher(environ):
    """"torchrun", "srun" (a Slurm job step of several tasks) or None (one process)."""
    if "LOCAL_RANK" in environ and "WORLD_SIZE" in environ:
        return "torchrun"
    # SLURM_STEP_NUM_TASKS: set by srun, not in an sbatch script's own environment, whose
    # SLURM_NTASKS counts the tasks of the allocation, not processes started.
    if "SLURM_PROCID" in environ and int(environ.get("SLURM_STEP_NUM_TASKS", "1")) > 1:
        return "srun"
    return None


def check_launched_size(ngpu, nproc, local_world_size, launched_by):
    """Under an external launcher, --ngpu/--nproc (processes per machine, as the recipe passes
    them) must be 1 (not set) or agree with the processes the launcher started per machine."""
    wanted = world_size_for(ngpu, nproc)
    if wanted not in (1, local_world_size):
        raise ValueError(f"--ngpu {ngpu} / --nproc {nproc} asks for {wanted} processes per "
                         f"machine, but {launched_by} started {local_world_size}; make them agree "
                         f"(torchrun --nproc-per-node, srun --ntasks-per-node)")


def first_host(nodelist):
    """The first host of a Slurm node list: ``gpu[07-09,12],cpu1`` -> ``gpu07``."""
    match = re.match(r"([^,\[]+)(?:\[([^\],-]+))?", nodelist.strip())
    if not match:
        raise ValueError(f"SLURM node list {nodelist!r}: expected host names like node[1-4],gpu7")
    return match.group(1) + (match.group(2) or "")


def tasks_per_node(spec):
    """Slurm's ``SLURM_STEP_TASKS_PER_NODE``: ``2(x3),1`` -> [2, 2, 2, 1]."""
    counts = []
    for part in spec.split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not match:
            raise ValueError(f"SLURM tasks per node {spec!r}: expected N or N(xM), comma-separated")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def slurm_port(environ, port):
    """``port``, or for 0 one derived from the job id (29500-30499), so that jobs sharing a node
    do not collide."""
    return port or 29500 + int(environ.get("SLURM_JOB_ID", "0")) % 1000


def cpu_threads(environ, affinity_cpus, local_procs):
    """(intra-op threads per process, the reason). ``OMP_NUM_THREADS`` when set (a count per
    process, as OpenMP defines it); else the CPUs this job may use, the fewest of
    ``SLURM_CPUS_PER_TASK`` and ``affinity_cpus`` (``len(os.sched_getaffinity(0))``: taskset,
    cgroup cpusets, Slurm binding; not ``os.cpu_count()``, the whole node), divided by the
    ``local_procs`` processes on this machine."""
    def count(name):
        value = environ.get(name, "").strip()
        if not value:
            return None
        if not value.isdigit() or int(value) < 1:
            raise ValueError(f"{name}={value!r}: expected a positive integer")
        return int(value)

    omp = count("OMP_NUM_THREADS")
    if omp:
        return omp, f"OMP_NUM_THREADS={omp}"
    limits = {"CPUs in the affinity mask": affinity_cpus}
    slurm = count("SLURM_CPUS_PER_TASK")
    if slurm:
        limits["SLURM_CPUS_PER_TASK"] = slurm
    source = min(limits, key=limits.get)
    threads = max(1, limits[source] // local_procs)
    return threads, f"{limits[source]} {source} / {local_procs} local process(es)"


def relaunch_with_torchrun(nproc, module, argv, threads):
    """Run ``python -m module argv`` in ``nproc`` processes through torchrun (this process is
    its agent), each with ``threads`` CPU threads (their ``OMP_NUM_THREADS``, which torchrun
    would otherwise set to 1); returns the exit code.

    ``argv`` is set after torchrun parses its own options: left on its command line, an option
    such as ``--nproc`` would be taken as an abbreviation of torchrun's ``--nproc-per-node``.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    launch = get_args_parser().parse_args(["--standalone", f"--nproc_per_node={nproc}", "-m",
                                           module])
    launch.training_script_args = list(argv)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # the children's environment
    logging.info("re-launching through torchrun: torchrun --standalone --nproc_per_node=%d -m "
                 "%s %s", nproc, module, " ".join(argv))
    try:
        run(launch)
    except ChildFailedError as e:
        logging.error("distributed run failed: %s", e)
        return 1
    return 0


def context_from_env(environ, ngpu, master_port=0):
    """The context of this process: torchrun's variables, srun's (rank 0 listening on the first
    host of the step at ``master_port``, see :func:`slurm_port`), else one CPU/GPU process."""
    if ngpu > 0 and not torch.cuda.is_available():
        raise RuntimeError(f"--ngpu {ngpu} but CUDA is not available; use --ngpu 0 (CPU)")
    launched_by = launcher(environ)
    if launched_by is None:
        return DistContext(device=torch.device("cuda", 0) if ngpu > 0 else torch.device("cpu"))
    if launched_by == "torchrun":
        rank, local_rank = int(environ["RANK"]), int(environ["LOCAL_RANK"])
        world_size = int(environ["WORLD_SIZE"])
        local_world_size = int(environ.get("LOCAL_WORLD_SIZE", world_size))
        init_method = "env://"
    else:
        rank, local_rank = int(environ["SLURM_PROCID"]), int(environ["SLURM_LOCALID"])
        world_size = int(environ["SLURM_NTASKS"])
        per_node = tasks_per_node(environ.get("SLURM_STEP_TASKS_PER_NODE", str(world_size)))
        local_world_size = per_node[int(environ.get("SLURM_NODEID", "0"))]
        host = first_host(environ.get("SLURM_STEP_NODELIST") or environ["SLURM_NODELIST"])
        init_method = f"tcp://{host}:{slurm_port(environ, master_port)}"
    device = torch.device("cuda", local_rank) if ngpu > 0 else torch.device("cpu")
    return DistContext(rank, local_rank, world_size, device, local_world_size, init_method)


def init_process_group(ctx, threads):
    """nccl on GPUs, gloo on CPU; ``threads`` CPU threads (see :func:`cpu_threads`)."""
    torch.set_num_threads(threads)
    if ctx.device.type == "cuda":
        torch.cuda.set_device(ctx.device)
    if ctx.distributed:
        backend = "nccl" if ctx.device.type == "cuda" else "gloo"
        dist.init_process_group(backend, init_method=ctx.init_method, rank=ctx.rank,
                                world_size=ctx.world_size)


def destroy_process_group(ctx):
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def exit_finished_worker():
    """End a launched process whose work is done and on disk: flush the logs, then leave without
    the interpreter's teardown. A gloo worker can abort in it after finishing ("terminate called
    without an active exception", SIGABRT; once in ~600 CPU tests), and torchrun then reports the
    whole finished job as failed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


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


def all_reduce_tensor(ctx, tensor):
    """Element-wise sum over ranks of a CPU tensor (a copy on one process)."""
    tensor = tensor.to(ctx.device, copy=True)
    if ctx.distributed:
        dist.all_reduce(tensor)
    return tensor.cpu()


def available_memory(meminfo="/proc/meminfo", cgroup="/sys/fs/cgroup"):
    """(bytes this job may still allocate, where that comes from): the kernel's MemAvailable, or
    less when a cgroup v2 limit (Slurm, containers) leaves less."""
    with open(meminfo, encoding="ascii") as f:
        fields = dict(line.split(":", 1) for line in f)
    available, source = int(fields["MemAvailable"].split()[0]) * 1024, "MemAvailable"
    try:
        with open(os.path.join(cgroup, "memory.max"), encoding="ascii") as f:
            limit = f.read().strip()
        with open(os.path.join(cgroup, "memory.current"), encoding="ascii") as f:
            used = int(f.read())
    except (FileNotFoundError, ValueError):
        return available, source
    if limit != "max" and int(limit) - used < available:
        return int(limit) - used, "left under the cgroup memory limit"
    return available, source
