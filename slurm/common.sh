# Sourced by every slurm/*.sbatch script (sbatch runs a copy of the script, so they find this
# file through $CNFLOW_ROOT, which slurm/submit-pipeline sets, or the submission directory).
#   CNFLOW_ROOT   repository (default: $SLURM_SUBMIT_DIR)    CNFLOW   binary (default: build/cnflow)
#   cnflow_run [--resumable] ARGS...   srun --mpi=pmix cnflow ARGS -blas_threads $SLURM_CPUS_PER_TASK
#                                      -watchdog ${CNFLOW_WATCHDOG:-1800} (seconds; 0 = off)
CNFLOW_ROOT=${CNFLOW_ROOT:-${SLURM_SUBMIT_DIR:-$PWD}}
CNFLOW=${CNFLOW:-$CNFLOW_ROOT/build/cnflow}
if [ ! -x "$CNFLOW" ]; then
  echo "[slurm] error: no cnflow binary at $CNFLOW (build it, or set CNFLOW / CNFLOW_ROOT)" >&2
  exit 2
fi
# one BLAS thread per allocated CPU of a task: --cpus-per-task is what changes it
CNFLOW_THREADS=${SLURM_CPUS_PER_TASK:-1}
export OMP_NUM_THREADS=$CNFLOW_THREADS OPENBLAS_NUM_THREADS=$CNFLOW_THREADS
# direct-launched ranks busy-poll in MPI waits unless told to yield (matters when oversubscribed)
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}

# srun kills the job step on SIGTERM but passes SIGUSR1 on to the ranks: a TERM or USR1 that
# reaches this batch shell (--signal=B:USR1@T before the time limit, `scancel --signal=TERM
# --batch`, preemption) goes to cnflow as USR1, on which train and scan checkpoint and exit 75.
cnflow_forward() {
  echo "[slurm] $(date +%T) got SIG$1: asking cnflow (srun pid ${CNFLOW_SRUN_PID:-none}) to checkpoint"
  [ -n "${CNFLOW_SRUN_PID:-}" ] && kill -USR1 "$CNFLOW_SRUN_PID" 2>/dev/null || true
}

cnflow_run() {
  local resumable=0 rc state
  if [ "${1:-}" = --resumable ]; then resumable=1; shift; fi
  echo "[slurm] $(date +%T) job ${SLURM_JOB_ID:-?} (restart ${SLURM_RESTART_COUNT:-0}): cnflow $*"
  # -watchdog: a rank that makes no progress for this long (a stuck file system, a deadlock)
  # ends the job with one line instead of holding the allocation until the time limit
  srun --mpi=pmix "$CNFLOW" "$@" -blas_threads "$CNFLOW_THREADS" \
    -watchdog "${CNFLOW_WATCHDOG:-1800}" &
  CNFLOW_SRUN_PID=$!
  if [ "$resumable" = 1 ]; then
    trap 'cnflow_forward TERM' TERM
    trap 'cnflow_forward USR1' USR1
  fi
  # a trapped signal interrupts `wait` (status > 128): wait again while srun lives; the last
  # `wait` returns srun's own status (the highest of the ranks')
  while kill -0 "$CNFLOW_SRUN_PID" 2>/dev/null; do wait "$CNFLOW_SRUN_PID" || true; done
  rc=0
  wait "$CNFLOW_SRUN_PID" || rc=$?
  trap - TERM USR1
  CNFLOW_SRUN_PID=""
  if [ "$rc" = 75 ] && [ "$resumable" = 1 ]; then
    # checkpointed: requeue unless the job is being cancelled (scancel also sends SIGTERM)
    state=$(scontrol show job "$SLURM_JOB_ID" -o 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p')
    if [ "$state" = RUNNING ]; then
      # said before the request: the requeue may end this shell before it can say anything
      echo "[slurm] $(date +%T) checkpoint written (exit 75): job $SLURM_JOB_ID requeued, it resumes when it starts again"
      scontrol requeue "$SLURM_JOB_ID" && exit 0
    fi
    echo "[slurm] checkpoint written (exit 75) but the job was not requeued (state ${state:-?}): resubmit it to resume" >&2
  fi
  return "$rc"
}
