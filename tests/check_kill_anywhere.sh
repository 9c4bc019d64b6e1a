#!/bin/bash
# usage: check_kill_anywhere.sh CNFLOW [SEED]
# SIGKILL (not SIGTERM: no handler runs, no checkpoint is written on the way out) `cnflow train`
# and `cnflow scan` at random points, resume each time, and check
#   - after every kill: a checkpoint / partial scan on disk is never half-written (it opens and
#     is complete: checkpoints are written to a temporary name and renamed; scan blocks are
#     marked done only after their rows are flushed);
#   - the resumed run ends BIT-IDENTICAL to an uninterrupted one (model parameters; scan.h5).
# The kill points come from SEED (default 1), printed, so a failure can be replayed.
set -uo pipefail
cnflow=$1
RANDOM=${2:-1}
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/kill.XXXX")
trap 'pkill -9 -f "$work" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { "$mpiexec" -n 2 --oversubscribe --bind-to none "$cnflow" "$@"; }
# kill -9 the rank processes of a run whose command line contains $1 after $2 seconds
kill_after() {
  local tag=$1 delay=$2
  sleep "$delay"
  local p
  for p in $(pgrep -f "$tag"); do
    [ "$(ps -o comm= -p "$p" 2>/dev/null)" = "cnflow" ] && kill -9 "$p" 2>/dev/null
  done
}
# once log $1 has $2 lines matching $3 (while launcher pid $4 lives), kill the run tagged $5
# after $6 seconds: kills placed by progress, not wall time, so a fast run or a loaded machine
# cannot finish first
kill_on_progress() {
  local log=$1 n=$2 pattern=$3 launcher=$4 tag=$5 delay=$6
  while [ "$(grep -c "$pattern" "$log" 2>/dev/null)" -lt "$n" ]; do
    kill -0 "$launcher" 2>/dev/null || return 0
    sleep 0.01
  done
  kill_after "$tag" "$delay"
}
# delay = U[0, 1) x span seconds from the seeded $RANDOM (set in this shell, not in a subshell,
# so the sequence advances)
pick() { local r=$((RANDOM % 100)); delay=$(echo "scale=2; $r * $1 / 100" | bc); }
now() { date +%s.%N; }

"$cnflow" generate calo-pion -n 40000 -pion_energy_mode uniform -o pion.h5 -progress 0 \
  >/dev/null || fail "generate"
"$cnflow" generate calo-pion -n 3000 -pion_energy_mode fixed -pion_energy 30 -seed 3 \
  -split_fractions 0,0,1 -o e30.h5 -progress 0 >/dev/null || fail "generate e30"

# ---- train -----------------------------------------------------------------------------------
topts=(train -data pion.h5 -target layers -cond incident_energies -prep flowi -preset flowi
       -flow_hidden 64 -epochs 12 -batch 200 -schedule poly -lr 2e-3 -checkpoint_every 1
       -log_level 1)
t0=$(now)
mpi "${topts[@]}" -o "$work/tref" >tref.log 2>&1 || { cat tref.log; fail "reference training"; }
ttrain=$(echo "$(now) - $t0" | bc)
echo "train: uninterrupted run $ttrain s"
kills=0
resume=()
for attempt in $(seq 1 25); do
  # 4 kills, each once the attempt has logged 1-3 more epochs (progress, not wall time: a loaded
  # machine must not let the run finish first) and then 0-0.3 s more (mid-epoch or mid-
  # checkpoint), then the run may finish
  n_ep=$((1 + RANDOM % 3))
  pick 0.3
  mpi "${topts[@]}" -o "$work/tkill" "${resume[@]}" >"t$attempt.log" 2>&1 &
  launcher=$!
  killer=
  if [ $kills -lt 4 ]; then
    kill_on_progress "t$attempt.log" $n_ep ' epoch ' $launcher "$work/tkill" "$delay" &
    killer=$!
  fi
  wait $launcher
  rc=$?
  [ -z "$killer" ] || { kill $killer 2>/dev/null; wait $killer 2>/dev/null; }
  if [ $rc -eq 0 ] || [ -e tkill/ensemble.txt ]; then # (a kill may land after the last write)
    echo "train: finished after $kills SIGKILL(s)"
    break
  fi
  kills=$((kills + 1))
  echo "train: SIGKILL ${delay} s after epoch line $n_ep (attempt $attempt, exit $rc)"
  # whatever is on disk must be whole: every checkpoint and model file opens and is complete
  for f in tkill/*.h5; do
    [ -e "$f" ] || continue
    "$py" -c "import h5py,sys; h5py.File(sys.argv[1],'r').close()" "$f" 2>/dev/null ||
      fail "after a SIGKILL, $f is not a complete HDF5 file"
  done
  [ -e tkill/member_000.ckpt.h5 ] && resume=(-resume) || resume=()
done
[ -e tkill/member_000.h5 ] || fail "training never finished within 25 attempts"
[ $kills -ge 2 ] || fail "only $kills kills landed before training finished (kill points too late)"

# ---- scan ------------------------------------------------------------------------------------
# -progress 0.001: a progress line after every round of blocks, so the kills are placed by
# progress (rounds logged), not by wall time: a fast scan (the lockstep one scans these 3000
# showers in ~1 s) or a loaded machine must not let the run finish before the kills land
sopts=(scan -data e30.h5 -ensemble "$work/tref/ensemble.txt" -scan_grid 100 -scan_block 8
       -progress 0.001 -log_level 1)
t0=$(now)
mpi "${sopts[@]}" -o "$work/sref.h5" >sref.log 2>&1 || { cat sref.log; fail "reference scan"; }
tscan=$(echo "$(now) - $t0" | bc)
rounds=$(grep -c 'showers on rank 0' sref.log)
echo "scan: uninterrupted run $tscan s, $rounds progress lines"
[ "$rounds" -ge 60 ] || fail "the reference scan logged only $rounds progress lines"
skills=0
resume=()
for attempt in $(seq 1 25); do
  # 4 kills, each once the attempt has logged 2-21 more rounds of blocks (of ~188 in all) and
  # then 0-0.05 s more (mid-block or mid-write), then the run may finish
  n_rd=$((2 + RANDOM % 20))
  pick 0.05
  mpi "${sopts[@]}" -o "$work/skill.h5" "${resume[@]}" >"s$attempt.log" 2>&1 &
  launcher=$!
  killer=
  if [ $skills -lt 4 ]; then
    kill_on_progress "s$attempt.log" $n_rd 'showers on rank 0' $launcher "$work/skill.h5" "$delay" &
    killer=$!
  fi
  wait $launcher
  rc=$?
  [ -z "$killer" ] || { kill $killer 2>/dev/null; wait $killer 2>/dev/null; }
  if [ $rc -eq 0 ] || [ -e skill.h5 ]; then
    echo "scan: finished after $skills SIGKILL(s)"
    break
  fi
  skills=$((skills + 1))
  echo "scan: SIGKILL ${delay} s after progress line $n_rd (attempt $attempt, exit $rc)"
  if [ -e skill.h5.tmp ]; then
    "$py" -c "import h5py,sys; h5py.File(sys.argv[1],'r')['scan/block_done'][...]" skill.h5.tmp \
      2>/dev/null || fail "after a SIGKILL, skill.h5.tmp does not open"
    resume=(-resume)
  fi
done
[ -e skill.h5 ] || fail "the scan never finished within 25 attempts"
[ $skills -ge 2 ] || fail "only $skills kills landed before the scan finished"

"$py" - <<'PY' || exit 1
import h5py, sys
def raw(p, d):
    with h5py.File(p, "r") as f:
        return f[d][...].tobytes()
if raw("tref/member_000.h5", "model/params") != raw("tkill/member_000.h5", "model/params"):
    print("FAIL: the killed and resumed training differs from the uninterrupted one"); sys.exit(1)
for d in ("e_true", "e_pred", "e_lo", "e_hi", "logl_max", "flags", "n_maxima", "block_done"):
    if raw("sref.h5", "scan/" + d) != raw("skill.h5", "scan/" + d):
        print(f"FAIL: scan/{d} of the killed and resumed scan differs"); sys.exit(1)
PY
left=$(find . -name '*.tmp*' | head -3)
[ -z "$left" ] || fail "temporary files left behind: $left"
echo "PASS: kill-anywhere, $kills SIGKILLs of train and $skills of scan, resumed bit-identical"
