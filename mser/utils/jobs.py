"""One job wrapper for every scheduler (the idea of Kaldi's run.pl / slurm.pl).

    utils/run_local.sh [opts] JOB=1:4 exp/log/x.JOB.log python -m mser.bin.x --part JOB
    utils/run_slurm.sh [opts] JOB=1,3,5 exp/log/x.JOB.log python -m mser.bin.x --data foldJOB

Every occurrence of the variable (here ``JOB``, not followed by a letter, digit or ``_``) in the
log path and the command is replaced by the job index. Options: --gpu N, --mem SIZE,
--num-threads N, --time T, --partition P, --max-jobs-run N (jobs at once: Slurm's array ``%N``),
--nodes N and --tasks-per-node M (a distributed job, ``mser.bin.train``: M processes per node).
The local backend gives each job OMP_NUM_THREADS = --num-threads or, by default, the cores it
was given (its CPU affinity, which Slurm and cgroups set, capped by an OMP_NUM_THREADS it
inherits) divided by the number of jobs it runs at once and by --tasks-per-node (the job starts
its processes itself, through torchrun). The Slurm backend starts a job of N x M processes as
srun tasks (``--nodes N --ntasks-per-node M``, ``--gpus-per-node`` --gpu, ``--cpus-per-task``
--num-threads, --mem per process), which ``mser.bin.train`` joins as ranks. A failed job is
reported with its log path and the tail of its log.
"""
import argparse
import datetime
import os
import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

TAIL_LINES = 20
_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+(?::\d+|(?:,\d+)+)?)$")


class JobSpec:
    """Parsed command line of a job wrapper."""

    def __init__(self, opts, var, indices, log_pattern, words):
        self.opts, self.var, self.indices = opts, var, indices
        self.log_pattern, self.words = log_pattern, words

    @property
    def range_text(self):
        """``1..5`` for a range, ``1,3,5`` for a list."""
        contiguous = self.indices == list(range(self.indices[0], self.indices[-1] + 1))
        if contiguous:
            return f"{self.indices[0]}..{self.indices[-1]}"
        return ",".join(map(str, self.indices))

    def _substitute(self, text, index):
        if self.var is None:
            return text
        return re.sub(rf"{self.var}(?![A-Za-z0-9_])", str(index), text)

    def log_path(self, index):
        return self._substitute(self.log_pattern, index)

    def command(self, index):
        # Words without white space go in as they are (so '|' and '>' stay shell syntax);
        # others are quoted, like Kaldi's run.pl.
        joined = " ".join(w if re.fullmatch(r"\S+", w) else shlex.quote(w) for w in self.words)
        return self._substitute(joined, index)


def parse_args(argv, prog):
    parser = argparse.ArgumentParser(prog=prog, description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", type=int, default=0, help="GPUs per job (per node)")
    parser.add_argument("--mem", default=None,
                        help="memory per job (per process with --tasks-per-node), e.g. 8G")
    parser.add_argument("--num-threads", type=int, default=None,
                        help="threads per job (per process with --tasks-per-node; local default: "
                             "cores / jobs at once / tasks per node; Slurm: 1)")
    parser.add_argument("--nodes", type=int, default=1,
                        help="nodes per job (Slurm only): a distributed job's processes span them")
    parser.add_argument("--tasks-per-node", type=int, default=1,
                        help="processes of a distributed job per node (one per GPU)")
    parser.add_argument("--time", default=None, help="Slurm time limit, e.g. 4:00:00")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--max-jobs-run", type=int, default=None,
                        help="jobs at once (local default: number of CPUs)")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    rest = opts.rest
    for name in ("max_jobs_run", "nodes", "tasks_per_node"):
        value = getattr(opts, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} {value}: expected at least 1")
    if opts.mem:
        try:
            scale_size(opts.mem, 1)
        except ValueError as e:
            parser.error(str(e))
    if opts.nodes > 1 and prog == "run_local":
        parser.error(f"--nodes {opts.nodes}: a job spans nodes through Slurm (cmd_backend=slurm) "
                     f"or torchrun started on each node (README: multi-node training)")
    var, indices = None, [1]
    if rest and _RANGE.match(rest[0]):
        var, spec = _RANGE.match(rest.pop(0)).groups()
        if ":" in spec:
            first, last = map(int, spec.split(":"))
            if last < first:
                parser.error(f"empty job range {var}={spec}")
            indices = list(range(first, last + 1))
        else:
            indices = [int(i) for i in spec.split(",")]
            if len(set(indices)) != len(indices):
                parser.error(f"job list {var}={spec} repeats an index")
    if len(rest) < 2:
        parser.error("expected [VAR=first:last or VAR=i,j,...] <log-file> <command ...>")
    return JobSpec(opts, var, indices, rest[0], rest[1:])


def _now():
    return datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S")


def _tail(path, n=TAIL_LINES):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return "".join(f.readlines()[-n:])
    except FileNotFoundError:
        return "(no log written)\n"


def _report(prog, spec, failed):
    for index, code in failed:
        log = spec.log_path(index)
        print(f"{prog}: job {index} of {spec.range_text} failed (exit code {code}); "
              f"log: {log}\n----- last lines of {log} -----\n{_tail(log)}-----",
              file=sys.stderr)
    print(f"{prog}: {len(failed)} / {len(spec.indices)} job(s) failed", file=sys.stderr)


def available_cores(environ):
    """Cores this process may use: its CPU affinity (set by Slurm, cgroups, taskset), capped by
    an OMP_NUM_THREADS it was given."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    inherited = environ.get("OMP_NUM_THREADS", "")
    if inherited.isdigit() and int(inherited) > 0:
        cores = min(cores, int(inherited))
    return max(1, cores or 1)


def run_local(spec, prog="run_local"):
    """Run the jobs on this machine, in parallel; return the exit status for the caller."""
    cores = available_cores(os.environ)
    workers = min(spec.opts.max_jobs_run or cores, len(spec.indices))
    threads = spec.opts.num_threads or max(1, cores // (workers * spec.opts.tasks_per_node))
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))

    def run_one(index):
        log = spec.log_path(index)
        os.makedirs(os.path.dirname(os.path.abspath(log)), exist_ok=True)
        cmd = spec.command(index)
        start = time.time()
        with open(log, "w", encoding="utf-8") as f:
            f.write(f"# {cmd}\n# Started at {_now()}\n#\n")
            f.flush()
            code = subprocess.run(["bash", "-c", cmd], stdout=f, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL, env=env).returncode
            elapsed = time.time() - start
            f.write(f"# Accounting: time={elapsed:.0f} threads={threads} jobs-at-once={workers}\n"
                    f"# Ended (code {code}) at {_now()}, elapsed time {elapsed:.0f} seconds\n")
        return index, code

    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = list(pool.map(run_one, spec.indices))
    failed = [(i, c) for i, c in results if c != 0]
    if failed:
        _report(prog, spec, failed)
        return 1
    return 0


_ENDED = re.compile(r"^# Ended \(code (\d+)\)", re.M)


def distributed_job(opts):
    return opts.nodes * opts.tasks_per_node > 1


def scale_size(size, factor):
    """A Slurm memory size times ``factor``: ``16G`` x 4 -> ``64G``."""
    match = re.fullmatch(r"(\d+)([KMGT]?)", size.strip(), re.I)
    if not match:
        raise ValueError(f"--mem {size!r}: expected a number with an optional K/M/G/T suffix")
    return f"{int(match.group(1)) * factor}{match.group(2)}"


def _slurm_script(spec):
    lines = ["#!/usr/bin/env bash", f"cd {shlex.quote(os.getcwd())}",
             "export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}",
             'case "${SLURM_ARRAY_TASK_ID:-%d}" in' % spec.indices[0]]
    for index in spec.indices:
        lines.append(f"  {index}) log={shlex.quote(spec.log_path(index))}; "
                     f"cmd={shlex.quote(spec.command(index))} ;;")
    lines += ["esac",
              'mkdir -p "$(dirname "$log")"',
              'printf "# %s\\n# Started at %s on %s\\n#\\n" "$cmd" "$(date)" "$(hostname)" > "$log"',
              # A distributed job: every task runs the command (mser.bin.train reads its rank
              # from srun); one failing task ends the others.
              (f'srun --ntasks={spec.opts.nodes * spec.opts.tasks_per_node} --kill-on-bad-exit=1 '
               if distributed_job(spec.opts) else "srun --ntasks=1 ") +
              'bash -c "$cmd" >> "$log" 2>&1',
              "rc=$?",
              'echo "# Ended (code $rc) at $(date)" >> "$log"',
              "exit $rc", ""]
    return "\n".join(lines)


def run_slurm(spec, prog="run_slurm"):
    """Submit the jobs as one Slurm array with ``sbatch --wait``; check each job's log."""
    base = re.sub(r"\.?\b%s\b" % spec.var, "", os.path.basename(spec.log_pattern)) if spec.var \
        else os.path.basename(spec.log_pattern)
    qdir = os.path.join(os.path.dirname(os.path.abspath(spec.log_pattern)), "q")
    os.makedirs(qdir, exist_ok=True)
    script = os.path.join(qdir, base + ".sh")
    with open(script, "w", encoding="utf-8") as f:
        f.write(_slurm_script(spec))
    os.chmod(script, 0o755)
    array = spec.range_text.replace("..", "-")
    if spec.opts.max_jobs_run:
        array += f"%{spec.opts.max_jobs_run}"
    cmd = ["sbatch", "--wait", "--parsable", f"--array={array}", f"--job-name={base}",
           f"--output={os.path.join(qdir, base)}.%a.out", f"--cpus-per-task={spec.opts.num_threads or 1}"]
    tasks = spec.opts.tasks_per_node
    if distributed_job(spec.opts):
        cmd += [f"--nodes={spec.opts.nodes}", f"--ntasks-per-node={tasks}"]
        if spec.opts.gpu:
            cmd.append(f"--gpus-per-node={spec.opts.gpu}")
    elif spec.opts.gpu:
        cmd.append(f"--gres=gpu:{spec.opts.gpu}")
    if spec.opts.mem:  # Slurm's --mem is per node
        cmd.append(f"--mem={scale_size(spec.opts.mem, tasks)}")
    if spec.opts.time:
        cmd.append(f"--time={spec.opts.time}")
    if spec.opts.partition:
        cmd.append(f"--partition={spec.opts.partition}")
    cmd.append(script)
    try:
        subprocess.run(cmd, check=False, stdin=subprocess.DEVNULL)
    except FileNotFoundError:
        print(f"{prog}: sbatch not found; use utils/run_local.sh in cmd.sh on machines "
              f"without Slurm", file=sys.stderr)
        return 1
    failed = []
    for index in spec.indices:
        match = _ENDED.findall(_tail(spec.log_path(index), n=3))
        code = int(match[-1]) if match else -1  # -1: killed before it could finish its log
        if code != 0:
            failed.append((index, code))
    if failed:
        _report(prog, spec, failed)
        return 1
    return 0


BACKENDS = {"local": run_local, "slurm": run_slurm}


def main(backend, argv=None):
    prog = f"run_{backend}"
    spec = parse_args(sys.argv[1:] if argv is None else argv, prog)
    sys.exit(BACKENDS[backend](spec, prog))
