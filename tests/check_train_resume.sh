#!/bin/bash
# usage: check_train_resume.sh CNFLOW
# `cnflow train` through the real binary on 2 ranks:
#   1. an uninterrupted run (reference);
#   2. the same run stopped by a REAL SIGTERM sent to the rank processes mid-training (what
#      SLURM sends before the time limit): exit status 75, a checkpoint, then -resume;
#   3. the same run stopped deterministically (-train_interrupt_at_step) and resumed;
#   4. -resume of a finished run only rewrites the model file;
# every resumed run must end with parameters BIT-IDENTICAL to the reference (h5py compares the
# raw bytes of /model/params), and no *.tmp file may be left behind.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/train_resume.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
run() { "$mpiexec" -n 2 --oversubscribe --bind-to none "$cnflow" train "$@"; }
fail() { echo "FAIL: $*"; exit 1; }

"$cnflow" generate hgg -n 30000 -o hgg.h5 -progress 0 >/dev/null || fail "generate"
opts=(-data hgg.h5 -target gauss/target -cond truth -cond_columns et1,eta1,et2,eta2,mu
      -prep cnf -target_scale 20,0.01,0.005 -preset cnf -flow_blocks 3 -flow_hidden 48
      -epochs 12 -batch 128 -schedule poly -lr 1e-3 -log_level 1)
run "${opts[@]}" -o ref >ref.log 2>&1 || { cat ref.log; fail "reference run"; }

# 2. real SIGTERM to both ranks once the second epoch line appeared
run "${opts[@]}" -o sig >sig.log 2>&1 &
launcher=$!
for _ in $(seq 1 600); do
  grep -q "epoch   2/" sig.log 2>/dev/null && break
  sleep 0.05
done
pids=$(pgrep -f "cnflow train .*-o sig" | grep -v "^$launcher$" || true)
ranks=""
for p in $pids; do
  # only the rank processes (children of the launcher), not mpiexec itself
  [ "$(ps -o comm= -p "$p")" = "cnflow" ] && ranks="$ranks $p"
done
[ -n "$ranks" ] || fail "no rank processes found to signal"
kill -TERM $ranks
wait $launcher
rc=$?
grep -q "interrupted at member 0" sig.log || { cat sig.log; fail "no interruption message (exit $rc)"; }
[ -f sig/member_000.ckpt.h5 ] || fail "no checkpoint after SIGTERM"
[ ! -f sig/member_000.h5 ] || fail "a model file was written by the interrupted run"
echo "SIGTERM: exit status $rc, $(grep -o 'interrupted at .*step [0-9]*' sig.log | head -1)"
run "${opts[@]}" -o sig -resume >sig2.log 2>&1 || { cat sig2.log; fail "resume after SIGTERM"; }
grep -q "resumed from" sig2.log || fail "the resumed run did not say where it resumed"

# 3. deterministic interruption inside an epoch (global step 150: epoch 1 has 187 steps)
run "${opts[@]}" -o det -train_interrupt_at_step 150 >det.log 2>&1
rc=$?
[ $rc -eq 75 ] || { cat det.log; fail "interrupted run exit status $rc, expected 75"; }
run "${opts[@]}" -o det -resume >det2.log 2>&1 || { cat det2.log; fail "resume"; }

# 4. resume of a finished run
cp det/member_000.h5 det_final.h5
run "${opts[@]}" -o det -resume >det3.log 2>&1 || { cat det3.log; fail "resume of a finished run"; }
grep -q "training already complete" det3.log || fail "finished run was retrained"

# 5. a checkpoint of another configuration is refused
run "${opts[@]}" -o det -resume -batch 256 >bad.log 2>&1 && fail "mismatched checkpoint accepted"
grep -q "belongs to another configuration" bad.log || { cat bad.log; fail "mismatch message"; }

ls ./*/*.tmp 2>/dev/null && fail "temporary files left behind"
"$py" - <<'PY' || exit 1
import h5py, numpy as np, sys
def raw(p):
    with h5py.File(p, "r") as f:
        return f["model/params"][...].tobytes()
ref = raw("ref/member_000.h5")
for name in ["sig/member_000.h5", "det/member_000.h5", "det_final.h5"]:
    if raw(name) != ref:
        print("FAIL: %s differs from the uninterrupted run" % name); sys.exit(1)
print("PASS: SIGTERM, step interruption and finished-run resumes bit-identical to the "
      "uninterrupted run")
PY
