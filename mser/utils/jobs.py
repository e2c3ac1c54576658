"""One job wrapper for every scheduler (the idea of Kaldi's run.pl / slurm.pl).

    utils/run_local.sh [opts] JOB=1:4 exp/log/x.JOB.log python -m mser.bin.x --part JOB
    utils/run_slurm.sh [opts] JOB=1,3,5 exp/log/x.JOB.log python -m mser.bin.x --data foldJOB

Every occurrence of the variable (here ``JOB``, not followed by a letter, digit or ``_``) in the
log path and the command is replaced by the job index. Options: --gpu N, --mem SIZE,
--num-threads N, --time T, --partition P, --max-jobs-run N (jobs at once: Slurm's array ``%N``).
The local backend gives each job OMP_NUM_THREADS = --num-threads or, by default, the cores it
was given (its CPU affinity, which Slurm and cgroups set, capped by an OMP_NUM_THREADS it
inherits) divided by the number of jobs it runs at once. A failed job is reported with its log
path and the tail of its log.
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
    parser.add_argument("--gpu", type=int, default=0)
    parser.add_argument("--mem", default=None, help="memory per job, e.g. 8G")
    parser.add_argument("--num-threads", type=int, default=None,
                        help="threads per job (local default: cores / jobs at once; Slurm: 1)")
    parser.add_argument("--time", default=None, help="Slurm time limit, e.g. 4:00:00")
    parser.add_argument("--partition", default=None)
    parser.add_argument("--max-jobs-run", type=int, default=None,
                        help="jobs at once (local default: number of CPUs)")
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    opts = parser.parse_args(argv)
    rest = opts.rest
    if opts.max_jobs_run is not None and opts.max_jobs_run < 1:
        parser.error(f"--max-jobs-run {opts.max_jobs_run}: expected at least 1")
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
    threads = spec.opts.num_threads or max(1, cores // workers)
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
              'srun --ntasks=1 bash -c "$cmd" >> "$log" 2>&1',
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
    if spec.opts.gpu:
        cmd.append(f"--gres=gpu:{spec.opts.gpu}")
    if spec.opts.mem:
        cmd.append(f"--mem={spec.opts.mem}")
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
