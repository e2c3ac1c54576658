"""From fake environments: CPU threads per training process (OMP_NUM_THREADS, Slurm, the
affinity mask (taskset / cgroup), divided by the processes on this machine), the launcher
(torchrun, srun) and the process's place in the run, the memory available to the job."""
import pytest

from mser.utils.distributed import (available_memory, check_launched_size, context_from_env,
                                    cpu_threads, first_host, launcher, tasks_per_node)


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


SRUN = {"SLURM_JOB_ID": "1234567", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_NODEID": "2",
        "SLURM_NTASKS": "6", "SLURM_STEP_NUM_TASKS": "6", "SLURM_STEP_TASKS_PER_NODE": "2(x3)",
        "SLURM_NODELIST": "gpu[07-09]", "SLURM_STEP_NODELIST": "gpu[07-09]"}


def test_srun_tasks_are_ranks_with_the_first_node_as_rank_0():
    assert launcher(SRUN) == "srun"
    ctx = context_from_env(SRUN, ngpu=0)
    assert (ctx.rank, ctx.local_rank, ctx.world_size, ctx.local_world_size) == (5, 1, 6, 2)
    assert ctx.init_method == "tcp://gpu07:30067"  # 29500 + job id mod 1000
    assert context_from_env(SRUN, ngpu=0, master_port=12345).init_method == "tcp://gpu07:12345"
    # An sbatch script's own environment (no srun step) is one process, whatever the allocation.
    batch = {"SLURM_JOB_ID": "1", "SLURM_PROCID": "0", "SLURM_NTASKS": "8", "SLURM_NODELIST": "a"}
    assert launcher(batch) is None and context_from_env(batch, ngpu=0).world_size == 1
    torchrun = {"RANK": "1", "LOCAL_RANK": "0", "WORLD_SIZE": "2", "LOCAL_WORLD_SIZE": "1"}
    assert launcher({**SRUN, **torchrun}) == "torchrun"  # torchrun inside an srun step
    assert context_from_env({**SRUN, **torchrun}, ngpu=0).init_method == "env://"


@pytest.mark.parametrize("nodelist, host", [("gpu[07-09,12],cpu1", "gpu07"), ("node1", "node1"),
                                            ("a,b[1-2]", "a"), ("n[3]", "n3")])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_tasks_per_node():
    assert tasks_per_node("2(x3),1") == [2, 2, 2, 1] and tasks_per_node("4") == [4]
    with pytest.raises(ValueError, match="N or N\\(xM\\)"):
        tasks_per_node("2x3")


def test_recipe_process_count_is_checked_against_the_launcher():
    check_launched_size(0, 1, 4, "torchrun")  # not set: take what the launcher started
    check_launched_size(0, 4, 4, "torchrun")
    check_launched_size(4, 1, 4, "srun")
    with pytest.raises(ValueError, match="asks for 2 processes per machine, but srun started 4"):
        check_launched_size(0, 2, 4, "srun")


def test_available_memory_is_the_smaller_of_meminfo_and_the_cgroup_limit(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       16000000 kB\nMemAvailable:    8000000 kB\n")
    assert available_memory(str(meminfo), str(tmp_path / "none")) == (8192000000, "MemAvailable")
    (tmp_path / "memory.max").write_text("3000000000\n")
    (tmp_path / "memory.current").write_text("1000000000\n")
    assert available_memory(str(meminfo), str(tmp_path))[0] == 2000000000
    (tmp_path / "memory.max").write_text("max\n")
    assert available_memory(str(meminfo), str(tmp_path))[0] == 8192000000
