"""Job wrapper entry point: python -m mser.bin.run_jobs {local,slurm} [opts] JOB=1:N log cmd ..."""
import sys

from mser.utils.jobs import BACKENDS, main as run

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in BACKENDS:
        sys.exit(f"usage: python -m mser.bin.run_jobs {{{','.join(BACKENDS)}}} [opts] JOB=1:N log cmd ...")
    run(sys.argv[1], sys.argv[2:])
