#!/bin/bash
# usage: check_slurm.sh CNFLOW SOURCE_DIR
# The slurm/ layer on a real single-node SLURM cluster that this test starts itself (munged,
# slurmctld, slurmd on localhost from a configuration under a temporary directory,
# tests/slurm_local.sh), then:
#   1. the demo study (jobs/demo.study) through slurm/submit-pipeline: every job and array task
#      COMPLETED with exit code 0:0 (scontrol and the job-completion log), every stage's output
#      present and sane, the job-array scan merged into a scan.h5 equal to the single-job scan
#      (root attributes and datasets byte for byte), no part or .tmp file left;
#   2. a training job sent SIGTERM mid-run (`scancel --signal=TERM --batch`, the path of
#      --signal=B:...@T): it checkpoints, requeues itself, resumes with -resume and ends with
#      members bit-identical (/model/params) to an uninterrupted job;
#   2b. a job-array scan task sent SIGUSR1 mid-run stops after its block (exit 75), requeues,
#      resumes its part, and the merged scan.h5 equals a single-job scan of the same showers;
#   3. a failing stage cancels its dependants (--kill-on-invalid-dep=yes), nothing left pending;
#      --dry-run prints the sbatch lines and submits nothing;
#   4. the daemons are stopped by their PIDs and no process of the cluster is left, also when a
#      step fails (trap EXIT).
# Skips (exit 77) only when it cannot run: not root, or the SLURM / munge binaries are missing.
set -uo pipefail
cnflow=$1
src=$2
py=${CNFLOW_PYTHON:-/usr/bin/python3}
skip() { echo "SKIP: slurm_pipeline: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "not root (the test runs munged, slurmctld and slurmd as root)"
for b in munged mungekey munge unmunge slurmctld slurmd sbatch srun scontrol squeue sinfo scancel; do
  command -v "$b" >/dev/null || skip "$b is not installed (bash jobs/setup.sh installs slurm-wlm and munge)"
done
source "$src/tests/slurm_local.sh"
work=$(mktemp -d /tmp/cnflow-slurm.XXXXXX) # short: the munge socket path must fit 108 bytes
chmod 755 "$work"                           # munged wants o+x on every directory above its socket
base=$work/cluster
cd "$work" || exit 1
started=0
cleanup() {
  local rc=$?
  if [ "$started" = 1 ]; then
    if [ "$rc" != 0 ]; then
      echo "---- job logs and daemon log tails (the test failed) ----"
      for f in "$work"/*/*.out; do [ -f "$f" ] && { echo "== $f"; tail -20 "$f"; }; done
      tail -15 "$base/log/slurmctld.log" "$base/log/slurmd.log" 2>/dev/null
    fi
    slurm_local_stop
  fi
  rm -rf "$work"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM
fail() { echo "FAIL: $*"; exit 1; }
t_start=$(date +%s)

slurm_local_start "$base" || fail "the SLURM cluster did not come up"
started=1
pids=$(cat "$base/munge/munged.pid" "$base/slurmctld.pid" "$base/slurmd.pid")
srun --mpi=list 2>&1 | grep -q pmix || fail "srun has no pmix plugin (Debian's Open MPI needs it)"
echo "cluster up: $(sinfo -h -N -o '%N %T %c CPUs')"

# wait_jobs SECONDS ID...: until none of the jobs is pending or running
wait_jobs() {
  local limit=$1 t0
  shift
  t0=$(date +%s)
  while [ -n "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ]; do
    if [ $(($(date +%s) - t0)) -ge "$limit" ]; then
      squeue -o '%i %j %T %r' -j "$(IFS=,; echo "$*")"
      fail "jobs $* still queued after $limit s"
    fi
    # reasons that never resolve: fail now, not at the time limit
    if squeue -h -o '%r' -j "$(IFS=,; echo "$*")" | grep -qE 'PartitionConfig|DependencyNeverSatisfied|BadConstraints|JobHeld'; then
      squeue -o '%i %j %T %r' -j "$(IFS=,; echo "$*")"
      fail "jobs $* cannot start"
    fi
    sleep 0.5
  done
}
# states ID: "JobState ExitCode" of a job (one line per array task)
states() {
  scontrol show job -o "$1" | sed -n 's/.*JobState=\([A-Z_]*\).* ExitCode=\([0-9:]*\).*/\1 \2/p'
}

# ---- 1. the demo study ------------------------------------------------------------------------
demo=$work/demo
"$src/slurm/submit-pipeline" --cnflow "$cnflow" -o "$demo" "$src/jobs/demo.study" >submit.log 2>&1 ||
  { cat submit.log; fail "submit-pipeline"; }
cat submit.log
ids=$(awk '!/^#/ {print $3} /after array/ {print $6}' submit.log)
[ "$(echo "$ids" | wc -w)" = 10 ] || fail "expected 10 job ids (9 jobs + the array), got: $ids"
wait_jobs 300 $ids
n_ok=0
for id in $ids; do
  while read -r st ec; do
    [ "$st $ec" = "COMPLETED 0:0" ] || fail "job $id: state $st, exit code $ec"
    n_ok=$((n_ok + 1))
  done < <(states "$id")
done
[ "$n_ok" = 12 ] || fail "expected 12 completed jobs and array tasks, scontrol showed $n_ok"
n_comp=$(grep -c "JobState=COMPLETED" "$base/log/jobcomp.log")
[ "$n_comp" -ge 12 ] || fail "job-completion log: $n_comp COMPLETED records, expected 12"
for f in train.h5 e40.h5 flowi/ensemble.txt flowi/member_000.h5 flowi/member_001.h5 \
         scan_e40.h5 scan_e40_array.h5 bias.h5 samples_e40.h5 metrics_e40.h5 report.html \
         report.md; do
  [ -s "$demo/$f" ] || fail "demo study: $f missing"
done
ls "$demo"/*.part*.h5 "$demo"/*.tmp "$demo"/*/*.tmp 2>/dev/null && fail "part or temporary files left"
grep -q "srun --mpi=pmix" "$src/slurm/common.sh" || fail "common.sh does not launch with --mpi=pmix"
grep -q -- "-blas_threads \"\$CNFLOW_THREADS\"" "$src/slurm/common.sh" || fail "no -blas_threads"
"$py" - "$demo" <<'PY' || fail "demo study outputs"
import sys, h5py, numpy as np
d = sys.argv[1]
def content(p):
    with h5py.File(p, "r") as f:
        a = {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
        return a, {k: f["scan"][k][...].tobytes() for k in f["scan"]}
(a1, d1), (a2, d2) = content(f"{d}/scan_e40.h5"), content(f"{d}/scan_e40_array.h5")
assert a1 == a2, sorted(k for k in set(a1) | set(a2) if a1.get(k) != a2.get(k))
assert d1 == d2, sorted(k for k in d1 if d1[k] != d2.get(k))
with h5py.File(f"{d}/scan_e40.h5") as f:
    ep, et = f["scan/e_pred"][...], f["scan/e_true"][...]
    assert len(ep) == 96 and np.all(et == 40.0) and np.all(np.isfinite(ep))
    r = np.median(ep / et)
    assert 0.6 < r < 1.4, f"median E_pred/E_true {r}"
with h5py.File(f"{d}/bias.h5") as f:
    assert list(f["bias/n_showers"][...]) == [96, 96], f["bias/n_showers"][...]
    m = f["bias/mode"][...]
    assert np.all(np.isfinite(m)) and abs(m[0] - m[1]) < 0.1, m
print(f"demo: merged array scan == single-job scan (96 showers, median E_pred/E_true {r:.3f}), "
      f"bias modes {m[0]:.3f} / {m[1]:.3f}")
PY
echo "demo study: 12 jobs/tasks COMPLETED 0:0 in $(($(date +%s) - t_start)) s since start-up"

# ---- 2. SIGTERM to a training job: checkpoint, requeue, resume, bit-identical ------------------
targs=(-options_file "$src/jobs/flowi_loguniform.opts" -data train.h5 -ensemble 2 -flow_hidden 32
       -epochs 40 -batch 200 -checkpoint_every 1)
sub_train() { # name: submit slurm/train.sbatch into $demo/<name>
  sbatch --parsable --job-name="$1" --chdir="$demo" --ntasks=2 --time=00:10:00 \
    --export="ALL,CNFLOW_ROOT=$src,CNFLOW=$cnflow" "$src/slurm/train.sbatch" "$1" "${targs[@]}"
}
ref=$(sub_train ref) || fail "sbatch ref"
wait_jobs 180 "$ref"
[ "$(states "$ref")" = "COMPLETED 0:0" ] || fail "uninterrupted training: $(states "$ref")"
sig=$(sub_train sig) || fail "sbatch sig"
log="$demo/sig-$sig.out"
for _ in $(seq 1 600); do grep -q "member 0 epoch   3/" "$log" 2>/dev/null && break; sleep 0.1; done
grep -q "member 0 epoch   3/" "$log" || fail "the training job did not reach epoch 3 in 60 s"
scancel --signal=TERM --batch "$sig" || fail "scancel --signal=TERM --batch"
restarts=0
for _ in $(seq 1 300); do
  restarts=$(scontrol show job -o "$sig" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p')
  [ "${restarts:-0}" -ge 1 ] && break
  sleep 0.2
done
[ "${restarts:-0}" -ge 1 ] || fail "the signalled training job was not requeued: $(states "$sig")"
wait_jobs 240 "$sig"
[ "$(states "$sig")" = "COMPLETED 0:0" ] || fail "requeued training: $(states "$sig")"
grep -q "got SIGTERM" "$log" || fail "the batch shell did not see the SIGTERM"
grep -q "interrupted at member" "$log" || fail "cnflow did not checkpoint on the signal"
grep -q "requeued" "$log" || fail "no requeue message"
grep -q "(restart 1): cnflow train .* -resume" "$log" || fail "the requeued run did not pass -resume"
grep -q "resumed from" "$log" || fail "the requeued run did not resume from the checkpoint"
echo "SIGTERM: $(grep -o 'interrupted at member [0-9]* epoch [0-9]* step [0-9]*' "$log" | head -2 | paste -sd';'); requeued $restarts time(s)"
"$py" - "$demo" <<'PY' || fail "the requeued training differs from the uninterrupted one"
import sys, h5py
d = sys.argv[1]
for k in (0, 1):
    raw = []
    for run in ("ref", "sig"):
        with h5py.File(f"{d}/{run}/member_{k:03d}.h5", "r") as f:
            raw.append(f["model/params"][...].tobytes())
    assert raw[0] == raw[1], f"member {k}: parameters differ"
print("requeued + resumed training: both members bit-identical to the uninterrupted run")
PY

# ---- 2b. SIGUSR1 to a job-array scan task: stop after a block, requeue, resume, merge ----------
# 12000 showers (6000 per array task, ~2.5 s each) and a progress line every 0.05 s: the task
# must still be scanning when the first progress line has appeared and SIGUSR1 arrives
sargs=(-data train.h5 -split train -max_showers 12000 -ensemble flowi/ensemble.txt -prior loguniform
       -scan_grid 80 -scan_block 8 -progress 0.05)
sref=$(sbatch --parsable --job-name=sref --chdir="$demo" --ntasks=2 --time=00:10:00 \
  --export="ALL,CNFLOW_ROOT=$src,CNFLOW=$cnflow" "$src/slurm/scan.sbatch" sref.h5 "${sargs[@]}") ||
  fail "sbatch sref"
wait_jobs 180 "$sref"
[ "$(states "$sref")" = "COMPLETED 0:0" ] || fail "single-job scan: $(states "$sref")"
sarr=$(sbatch --parsable --job-name=sarr --chdir="$demo" --array=0-1 --time=00:10:00 \
  --export="ALL,CNFLOW_ROOT=$src,CNFLOW=$cnflow" "$src/slurm/scan-array.sbatch" sarr.h5 "${sargs[@]}") ||
  fail "sbatch sarr"
smerge=$(sbatch --parsable --job-name=smerge --chdir="$demo" --dependency="afterok:$sarr" \
  --kill-on-invalid-dep=yes --export="ALL,CNFLOW_ROOT=$src,CNFLOW=$cnflow" \
  "$src/slurm/scan-merge.sbatch" sarr.h5 2) || fail "sbatch smerge"
alog="$demo/sarr-${sarr}_0.out"
for _ in $(seq 1 600); do grep -q "showers on rank 0" "$alog" 2>/dev/null && break; sleep 0.1; done
grep -q "showers on rank 0" "$alog" || fail "array task 0 printed no progress in 60 s"
scancel --signal=USR1 --batch "${sarr}_0" || fail "scancel --signal=USR1 --batch ${sarr}_0"
restarts=0
for _ in $(seq 1 300); do
  restarts=$(scontrol show job -o "${sarr}_0" | sed -n 's/.*Restarts=\([0-9]*\).*/\1/p' | head -1)
  [ "${restarts:-0}" -ge 1 ] && break
  sleep 0.2
done
[ "${restarts:-0}" -ge 1 ] || fail "the signalled array task was not requeued: $(states "${sarr}_0")"
wait_jobs 240 "$sarr" "$smerge"
for id in "$sarr" "$smerge"; do
  while read -r st ec; do [ "$st $ec" = "COMPLETED 0:0" ] || fail "job $id: $st $ec"; done < <(states "$id")
done
grep -q "got SIGUSR1" "$alog" && grep -q "interrupted after" "$alog" && grep -q "requeued" "$alog" ||
  fail "array task 0 did not stop after a block and requeue"
grep -q "(restart 1): cnflow scan .* -resume" "$alog" && grep -q "already done" "$alog" ||
  fail "the requeued array task did not resume its part"
ls "$demo"/sarr.part*.h5 2>/dev/null && fail "part files left after the merge"
"$py" - "$demo" <<'PY' || fail "the interrupted job-array scan differs from the single-job scan"
import sys, h5py, numpy as np
d = sys.argv[1]
def content(p):
    with h5py.File(p, "r") as f:
        a = {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
        return a, {k: f["scan"][k][...].tobytes() for k in f["scan"]}
(a1, d1), (a2, d2) = content(f"{d}/sref.h5"), content(f"{d}/sarr.h5")
assert a1 == a2, sorted(k for k in set(a1) | set(a2) if a1.get(k) != a2.get(k))
assert d1 == d2, sorted(k for k in d1 if d1[k] != d2.get(k))
with h5py.File(f"{d}/sarr.h5") as f:
    assert len(f["scan/e_pred"]) == 12000
print("array scan with a SIGUSR1'd, requeued, resumed task: merged == single-job scan (12000 showers)")
PY

# ---- 3. a failing stage cancels its dependants; --dry-run submits nothing -----------------------
cat >"$work/broken.study" <<'EOF'
gen   generate  no-such-generator x.h5
bias  bias      after=gen  bias.h5 -scan x.h5
EOF
"$src/slurm/submit-pipeline" --cnflow "$cnflow" -o "$work/broken" "$work/broken.study" >b.log 2>&1 ||
  { cat b.log; fail "submit-pipeline (broken study)"; }
bids=$(awk '!/^#/ {print $3}' b.log)
wait_jobs 60 $bids
set -- $bids
[ "$(states "$1" | cut -d' ' -f1)" = FAILED ] || fail "failing stage: $(states "$1")"
[ "$(states "$2" | cut -d' ' -f1)" = CANCELLED ] || fail "its dependant: $(states "$2") (pending forever?)"
n_before=$(scontrol show jobs -o | grep -c JobId=)
"$src/slurm/submit-pipeline" --dry-run -p debug -t 00:05:00 -o "$work/dry" "$src/jobs/demo.study" >dry.log 2>&1 ||
  { cat dry.log; fail "--dry-run"; }
[ "$(grep -c '^sbatch ' dry.log)" = 10 ] || { cat dry.log; fail "--dry-run: expected 10 sbatch lines"; }
grep -q -- "--dependency=afterok:{demo-train}:{demo-gen_e40} --kill-on-invalid-dep=yes" dry.log &&
  grep -q -- "--partition=debug --time=00:05:00" dry.log || { cat dry.log; fail "--dry-run lines"; }
[ "$(scontrol show jobs -o | grep -c JobId=)" = "$n_before" ] && [ ! -e "$work/dry" ] ||
  fail "--dry-run submitted or created something"
echo "failing stage FAILED, its dependant CANCELLED; --dry-run printed 10 sbatch lines, submitted nothing"

# ---- 4. shut down by PID, nothing left --------------------------------------------------------
slurm_local_stop
started=0
unset SLURM_CONF # (our own children would carry it)
for p in $pids; do slurm_local_alive "$p" && fail "daemon $p still running after the stop"; done
left=$(grep -ls "SLURM_CONF=$base/" /proc/[0-9]*/environ 2>/dev/null | grep -v "/proc/$$/" || true)
[ -z "$left" ] || fail "processes of the test cluster left: $left"
echo "PASS: slurm demo study, requeue bit-identical, array scan merged, daemons stopped ($(($(date +%s) - t_start)) s)"
