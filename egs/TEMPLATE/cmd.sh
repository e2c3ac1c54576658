# The only place that decides where jobs run. Usage in run.sh:
#   $cpu_cmd JOB=1:$nj log/x.JOB.log python -m ... JOB      (parallel jobs)
#   $train_cmd --gpu $ngpu log/train.log python -m ...      (one job)
# Set cmd_backend=slurm (here or in the environment) to submit the same commands to Slurm.
cmd_backend=${cmd_backend:-local}
case $cmd_backend in
  local) cpu_cmd="utils/run_local.sh"; train_cmd="utils/run_local.sh" ;;
  slurm) cpu_cmd="utils/run_slurm.sh --mem 4G"; train_cmd="utils/run_slurm.sh --mem 16G --num-threads 4" ;;
  *) echo "cmd.sh: unknown cmd_backend '$cmd_backend' (local or slurm)" >&2; return 1 ;;
esac
export cpu_cmd train_cmd
