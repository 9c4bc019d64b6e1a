#!/bin/bash
# usage: check_fault.sh CNFLOW
# Faults injected on ONE of 2 ranks (CNFLOW_FAULT, src/core/fault.c) in `cnflow train` and
# `cnflow scan`; every run is bounded by a timeout (a hang fails the test).  Each case checks
#   - the whole job ends promptly with a non-zero exit of every rank (the ranks run under a
#     wrapper that records each one's own exit status);
#   - an error return (io, alloc, nan) gives exactly one `cnflow: error:` line naming the member,
#     epoch and step (train) or the partial output (scan); a rank that dies (kill, exit) makes
#     mpiexec end the job instead of the other rank blocking in a collective;
#   - the last checkpoint stays whole and loadable (its epoch is the last one written before the
#     fault), no model / scan output and no checkpoint temporary is left behind;
#   - -resume without the fault ends BIT-IDENTICAL to an uninterrupted run.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/fault.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
# each rank records its own exit status in rc.<rank> and passes it on to mpiexec
cat >rank.sh <<'EOF'
#!/bin/bash
"$@"
rc=$?
echo $rc >"rc.${OMPI_COMM_WORLD_RANK:-x}"
exit $rc
EOF
chmod +x rank.sh
# mpi LIMIT_S LOG cnflow-args...: returns mpiexec's status (124 = timed out)
mpi() {
  local limit=$1 log=$2
  shift 2
  rm -f rc.0 rc.1
  timeout -k 5 "$limit" "$mpiexec" -n 2 --oversubscribe --bind-to none ./rank.sh "$cnflow" \
    "$@" >"$log" 2>&1
}
# both ranks exited non-zero (or were ended by mpiexec: no rc file then)
ranks_failed() {
  local r
  for r in 0 1; do
    [ ! -f rc.$r ] || [ "$(cat rc.$r)" != 0 ] || fail "$1: rank $r exited 0"
  done
}
one_error() { # LOG PATTERN: exactly one error line, matching PATTERN
  local n
  n=$(grep -c "cnflow: error:" "$1")
  [ "$n" = 1 ] || { cat "$1"; fail "$1: $n error lines, expected 1"; }
  grep "cnflow: error:" "$1" | grep -Eq "$2" || { cat "$1"; fail "$1: error line does not match '$2'"; }
}
ckpt_epoch() { # the epoch a checkpoint was written after; fails if it does not load whole
  "$py" - "$1" <<'PY'
import h5py, sys
with h5py.File(sys.argv[1], "r") as f:
    for d in ("params", "best_params", "adam_m", "adam_v", "history"):
        f[d][...]
    print(int(f.attrs["epoch"]) if "epoch" in f.attrs else int(f["epoch"][()]))
PY
}
same_params() {
  "$py" -c "
import h5py, sys
a, b = (h5py.File(p, 'r')['model/params'][...].tobytes() for p in sys.argv[1:3])
sys.exit(a != b)" "$1" "$2" || fail "$2 differs from the uninterrupted run"
}

t_start=$(date +%s)
"$cnflow" generate calo-pion -n 3000 -pion_energy_mode uniform -o pion.h5 -progress 0 \
  >/dev/null || fail "generate"
"$cnflow" generate calo-pion -n 96 -pion_energy_mode fixed -pion_energy 30 -seed 3 \
  -split_fractions 0,0,1 -o e30.h5 -progress 0 >/dev/null || fail "generate e30"
topts=(train -data pion.h5 -target layers -cond incident_energies -prep flowi -preset flowi
       -flow_hidden 32 -epochs 4 -batch 200 -schedule poly -lr 2e-3 -checkpoint_every 1
       -log_level 1)
mpi 60 ref.log "${topts[@]}" -o "$work/ref" || { cat ref.log; fail "reference training"; }
grep -q "epoch   4/4" ref.log || { cat ref.log; fail "reference run: no epoch lines"; }

# train_case NAME FAULT ERROR_PATTERN CKPT_EPOCH: the run fails, then -resume matches ref
train_case() {
  local name=$1 fault=$2 pat=$3 want=$4 rc t0
  t0=$(date +%s)
  CNFLOW_FAULT=$fault mpi 60 "$name.log" "${topts[@]}" -o "$work/$name"
  rc=$?
  [ $(($(date +%s) - t0)) -lt 60 ] || { cat "$name.log"; fail "$name: the job did not end within 60 s"; }
  [ $rc -ne 0 ] || { cat "$name.log"; fail "$name: exit status 0"; }
  ranks_failed "$name"
  if [ -n "$pat" ]; then one_error "$name.log" "$pat"; fi
  [ ! -e "$name/member_000.h5" ] || fail "$name: a model file was written"
  ls "$name"/*.tmp 2>/dev/null && fail "$name: temporary files left behind"
  local got
  got=$(ckpt_epoch "$name/member_000.ckpt.h5") || fail "$name: the checkpoint does not load"
  [ "$got" = "$want" ] || fail "$name: checkpoint of epoch $got, expected $want"
  mpi 60 "$name.resume.log" "${topts[@]}" -o "$work/$name" -resume ||
    { cat "$name.resume.log"; fail "$name: -resume"; }
  same_params ref/member_000.h5 "$name/member_000.h5"
  echo "train $name: exit $rc after $(($(date +%s) - t0)) s (incl. resume), checkpoint epoch" \
       "$got kept, resume bit-identical${pat:+; $(grep -o 'epoch [0-9]* step [0-9]*' "$name.log" | head -1)}"
}
# 12 steps per epoch (2400 training events / 200): hit 14 is epoch 2 step 1 (steps count from
# 0), hit 30 epoch 3 step 5
train_case io "rank=1,at=train_step,n=14,kind=io" \
  "train: member 0 epoch 2 step 1: train step: I/O error \(injected" 1
train_case nan "rank=1,at=train_step,n=30,kind=nan" \
  "train: member 0 epoch 3 step 5: the batch loss is not finite" 2
train_case ckpt "rank=0,at=checkpoint,n=2,kind=alloc" \
  "ckpt\.h5: out of memory \(injected" 1
train_case kill "rank=1,at=train_step,n=14,kind=kill" "" 1

# ---- scan --------------------------------------------------------------------------------------
sopts=(scan -data e30.h5 -ensemble "$work/ref/ensemble.txt" -scan_grid 40 -scan_block 8
       -progress 0 -log_level 1)
mpi 60 sref.log "${sopts[@]}" -o "$work/sref.h5" || { cat sref.log; fail "reference scan"; }
scan_case() {
  local name=$1 fault=$2 pat=$3 rc t0
  t0=$(date +%s)
  CNFLOW_FAULT=$fault mpi 60 "$name.log" "${sopts[@]}" -o "$work/$name.h5"
  rc=$?
  [ $(($(date +%s) - t0)) -lt 60 ] || { cat "$name.log"; fail "$name: the scan did not end within 60 s"; }
  [ $rc -ne 0 ] || { cat "$name.log"; fail "$name: exit status 0"; }
  ranks_failed "$name"
  if [ -n "$pat" ]; then one_error "$name.log" "$pat"; fi
  [ ! -e "$name.h5" ] || fail "$name: the output was written by a failed scan"
  mpi 60 "$name.resume.log" "${sopts[@]}" -o "$work/$name.h5" -resume ||
    { cat "$name.resume.log"; fail "$name: -resume"; }
  "$py" - sref.h5 "$name.h5" <<'PY' || fail "$name: the resumed scan differs from the reference"
import h5py, sys
with h5py.File(sys.argv[1], "r") as a, h5py.File(sys.argv[2], "r") as b:
    for d in ("e_true", "e_pred", "e_lo", "e_hi", "logl_max", "flags", "n_maxima", "block_done"):
        if a["scan/" + d][...].tobytes() != b["scan/" + d][...].tobytes():
            print("scan/" + d, "differs"); sys.exit(1)
PY
  echo "scan $name: exit $rc, no output left, resume equals the uninterrupted scan"
}
scan_case sio "rank=1,at=scan_block,n=3,kind=io" "sio\.h5\.tmp: I/O error \(injected"
scan_case sexit "rank=0,at=scan_block,n=2,kind=exit" ""

# a malformed CNFLOW_FAULT is an error, not a silently disarmed test
CNFLOW_FAULT="rank=1,at=nowhere,kind=io" mpi 60 bad.log "${sopts[@]}" -o "$work/bad.h5"
[ $? -ne 0 ] || fail "a malformed CNFLOW_FAULT was accepted"
one_error bad.log "CNFLOW_FAULT='rank=1,at=nowhere,kind=io'"
# (the scan fails at its first block, so like any failed scan it keeps bad.h5.tmp for -resume)
[ ! -e bad.h5 ] || fail "bad CNFLOW_FAULT: output written"

echo "PASS: fault injection on one of 2 ranks (train io/nan/checkpoint alloc/kill, scan io/exit)" \
     "ends every job with an error and resumes bit-identically ($(($(date +%s) - t_start)) s)"
