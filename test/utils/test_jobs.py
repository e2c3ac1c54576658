"""The job wrapper: JOB substitution, parallel local jobs, failure reports, Slurm calls."""
import os
import stat
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run_wrapper(backend, args, cwd, env=None):
    return subprocess.run([os.path.join(ROOT, "utils", f"run_{backend}.sh"), *args], cwd=cwd,
                          capture_output=True, text=True, env=env)


def local_env():
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env["PATH"]
    return env


def test_local_substitutes_job_in_log_and_command(tmp_path):
    out = run_wrapper("local", ["JOB=1:3", "log/x.JOB.log", "echo", "part JOB of 3", ">",
                                "out.JOB.txt"], tmp_path, local_env())
    assert out.returncode == 0, out.stderr
    for i in range(1, 4):
        assert (tmp_path / f"out.{i}.txt").read_text() == f"part {i} of 3\n"
        log = (tmp_path / "log" / f"x.{i}.log").read_text()
        assert log.startswith(f"# echo 'part {i} of 3' > out.{i}.txt")
        assert "# Ended (code 0)" in log


def test_local_job_list_and_suffix_substitution(tmp_path):
    out = run_wrapper("local", ["JOB=1,3", "log/fold.JOB.log", "echo", "data/foldJOB", "JOBS", ">",
                                "foldJOB.txt"], tmp_path, local_env())
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in tmp_path.glob("fold*.txt")) == ["fold1.txt", "fold3.txt"]
    assert (tmp_path / "fold3.txt").read_text() == "data/fold3 JOBS\n"
    out = run_wrapper("local", ["JOB=1,3", "log/f.JOB.log", "test", "JOB", "-eq", "1"], tmp_path,
                      local_env())
    assert "job 3 of 1,3 failed" in out.stderr


def test_local_divides_the_cores_among_jobs_run_at_once(tmp_path):
    """OMP_NUM_THREADS per job = (affinity cores, capped by an inherited OMP_NUM_THREADS) //
    jobs at once, so parallel jobs do not oversubscribe the machine."""
    cores = len(os.sched_getaffinity(0))
    for inherited, at_once, jobs in ((None, 1, 2), (None, 2, 3), ("1", 2, 2), ("64", 1, 1)):
        env = local_env()
        env.pop("OMP_NUM_THREADS", None)
        if inherited:
            env["OMP_NUM_THREADS"] = inherited
        out = run_wrapper("local", ["--max-jobs-run", str(at_once), f"JOB=1:{jobs}", "log/t.JOB.log",
                                    "echo", "$OMP_NUM_THREADS", ">", "t.JOB.txt"], tmp_path, env)
        assert out.returncode == 0, out.stderr
        available = min(cores, int(inherited)) if inherited else cores
        expected = max(1, available // min(at_once, jobs))
        for i in range(1, jobs + 1):
            assert (tmp_path / f"t.{i}.txt").read_text() == f"{expected}\n", (inherited, at_once)
    out = run_wrapper("local", ["--num-threads", "3", "--max-jobs-run", "2", "JOB=1:2", "log/n.JOB.log",
                                "echo", "$OMP_NUM_THREADS", ">", "n.JOB.txt"], tmp_path, local_env())
    assert (tmp_path / "n.2.txt").read_text() == "3\n"
    out = run_wrapper("local", ["--max-jobs-run", "0", "x.log", "true"], tmp_path, local_env())
    assert out.returncode != 0 and "--max-jobs-run 0: expected at least 1" in out.stderr


def test_local_reports_failed_job_with_log_tail(tmp_path):
    out = run_wrapper("local", ["JOB=1:2", "log/f.JOB.log", "bash", "-c",
                                "echo line-from-JOB; exit $((JOB-1))"], tmp_path, local_env())
    assert out.returncode == 1
    assert "job 2 of 1..2 failed (exit code 1)" in out.stderr
    assert "log/f.2.log" in out.stderr and "line-from-2" in out.stderr
    assert "job 1 of" not in out.stderr
    assert "1 / 2 job(s) failed" in out.stderr


def test_local_without_job_range(tmp_path):
    out = run_wrapper("local", ["single.log", "echo", "JOBS", "stay"], tmp_path, local_env())
    assert out.returncode == 0, out.stderr
    assert "JOBS stay" in (tmp_path / "single.log").read_text()


def test_bad_usage_is_reported(tmp_path):
    out = run_wrapper("local", ["JOB=3:1", "x.log", "true"], tmp_path, local_env())
    assert out.returncode != 0 and "empty job range" in out.stderr


FAKE_SBATCH = r"""#!/usr/bin/env bash
# Records its arguments, then runs each array task like Slurm would.
echo "$*" >> "$FAKE_SLURM_RECORD"
array=""; script=""
for a in "$@"; do case $a in --array=*) array=${a#--array=}; array=${array%%%*} ;; -*) ;; *) script=$a ;; esac; done
rc=0
for i in $(seq ${array%-*} ${array#*-}); do SLURM_ARRAY_TASK_ID=$i bash "$script" || rc=1; done
exit $rc
"""

FAKE_SRUN = r"""#!/usr/bin/env bash
echo "srun $*" >> "$FAKE_SLURM_RECORD"
while [[ $1 == -* ]]; do shift; done
exec "$@"
"""


def slurm_env(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("sbatch", FAKE_SBATCH), ("srun", FAKE_SRUN)):
        path = bin_dir / name
        path.write_text(text)
        path.chmod(path.stat().st_mode | stat.S_IEXEC)
    env = local_env()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    env["FAKE_SLURM_RECORD"] = str(tmp_path / "calls.txt")
    return env


def test_slurm_submits_one_array_and_checks_each_log(tmp_path):
    env = slurm_env(tmp_path)
    out = run_wrapper("slurm", ["--gpu", "1", "--mem", "8G", "--max-jobs-run", "2", "JOB=1:3",
                                "exp/log/t.JOB.log", "echo", "task", "JOB"], tmp_path, env)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    sbatch = calls[0].split()
    assert "--wait" in sbatch and "--array=1-3%2" in sbatch and "--cpus-per-task=1" in sbatch
    assert "--gres=gpu:1" in sbatch and "--mem=8G" in sbatch
    assert sbatch[-1].endswith("exp/log/q/t.log.sh")
    assert sum(c.startswith("srun --ntasks=1 bash -c") for c in calls) == 3
    for i in range(1, 4):
        log = (tmp_path / "exp" / "log" / f"t.{i}.log").read_text()
        assert f"task {i}" in log and "# Ended (code 0)" in log


def test_slurm_reports_failed_task(tmp_path):
    env = slurm_env(tmp_path)
    out = run_wrapper("slurm", ["JOB=1:2", "log/s.JOB.log", "bash", "-c",
                                "echo boom-JOB; test JOB -eq 1"], tmp_path, env)
    assert out.returncode == 1
    assert "job 2 of 1..2 failed (exit code 1)" in out.stderr and "boom-2" in out.stderr


def test_slurm_without_sbatch_says_what_to_do(tmp_path):
    env = local_env()
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + "/usr/bin:/bin"
    env_no_sbatch = {k: v for k, v in env.items()}
    out = run_wrapper("slurm", ["x.log", "true"], tmp_path, env_no_sbatch)
    assert out.returncode == 1 and "sbatch not found" in out.stderr


def test_local_distributed_job_divides_threads_between_its_processes(tmp_path):
    env = local_env()
    env["OMP_NUM_THREADS"] = "8"  # the cores this wrapper may use, whatever the machine
    out = run_wrapper("local", ["--tasks-per-node", "2", "--max-jobs-run", "2", "JOB=1:2",
                                "log/d.JOB.log", "echo", "$OMP_NUM_THREADS", ">", "d.JOB.txt"],
                      tmp_path, env)
    assert out.returncode == 0, out.stderr
    expected = max(1, min(8, len(os.sched_getaffinity(0))) // 4)
    assert (tmp_path / "d.1.txt").read_text() == f"{expected}\n"
    out = run_wrapper("local", ["--nodes", "2", "x.log", "true"], tmp_path, local_env())
    assert out.returncode != 0 and "--nodes 2: a job spans nodes through Slurm" in out.stderr


def test_slurm_distributed_job_requests_tasks_gpus_and_cpus_per_node(tmp_path):
    """--nodes 2 --tasks-per-node 4: one task per process (srun starts them all, and train reads
    its rank from them), GPUs per node, CPUs per task and memory scaled by the tasks."""
    env = slurm_env(tmp_path)
    out = run_wrapper("slurm", ["--gpu", "4", "--nodes", "2", "--tasks-per-node", "4",
                                "--num-threads", "6", "--mem", "16G", "JOB=1:2", "exp/log/tr.JOB.log",
                                "echo", "fold", "JOB"], tmp_path, env)
    assert out.returncode == 0, out.stderr
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    sbatch = calls[0].split()
    for option in ("--nodes=2", "--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=6",
                   "--mem=64G"):
        assert option in sbatch, (option, sbatch)
    assert not any(o.startswith("--gres") for o in sbatch)
    assert sum(c.startswith("srun --ntasks=8 --kill-on-bad-exit=1 bash -c") for c in calls) == 2
    out = run_wrapper("slurm", ["--mem", "lots", "x.log", "true"], tmp_path, env)
    assert out.returncode != 0 and "--mem 'lots': expected a number" in out.stderr
