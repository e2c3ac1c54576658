"""CPU threads per training process from fake environments: OMP_NUM_THREADS, Slurm, the
affinity mask (taskset / cgroup), divided by the processes on this machine."""
import pytest

from mser.utils.distributed import context_from_env, cpu_threads


AFFINITY, SLURM, OMP = "affinity mask", "SLURM_CPUS_PER_TASK", "OMP_NUM_THREADS"


@pytest.mark.parametrize("environ, affinity, local_procs, threads, source", [
    ({}, 2, 1, 2, AFFINITY),                              # the whole (affinity) machine
    ({}, 8, 2, 4, AFFINITY),                              # split between local processes
    ({}, 3, 4, 1, AFFINITY),                              # never below one
    ({SLURM: "4"}, 64, 2, 2, SLURM),                      # the allocation, not the node
    ({SLURM: "16"}, 6, 1, 6, AFFINITY),                   # taskset narrower than Slurm's count
    ({OMP: "3", SLURM: "8"}, 64, 2, 3, OMP),              # the user's count per process
])
def test_cpu_threads(environ, affinity, local_procs, threads, source):
    count, why = cpu_threads(environ, affinity, local_procs)
    assert count == threads and source in why


@pytest.mark.parametrize("name, value", [("OMP_NUM_THREADS", "0"),
                                         ("SLURM_CPUS_PER_TASK", "4(x2)")])
def test_bad_counts_name_the_variable(name, value):
    with pytest.raises(ValueError, match=name):
        cpu_threads({name: value}, 4, 1)


def test_local_processes_come_from_torchrun():
    environ = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}
    ctx = context_from_env(environ, ngpu=0)
    assert (ctx.rank, ctx.world_size, ctx.local_world_size) == (3, 4, 2)
    assert context_from_env({}, ngpu=0).local_world_size == 1
