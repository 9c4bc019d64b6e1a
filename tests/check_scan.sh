#!/bin/bash
# usage: check_scan.sh CNFLOW
# `cnflow scan` through the real binary: a 2-member Flow-I ensemble trained briefly on a small
# pion sample scans a fixed-energy file
#   1. on 1 rank and on 2 ranks: scan.h5 must be identical (h5diff) — the rows do not depend on
#      which rank scanned them;
#   2. the result must be a calibration, not noise: median E_pred/E_true within 15 % of 1, every
#      interval contains E_pred, no failed shower;
#   3. (4. below) SIGTERM-style stop after a block, exit 75, resume on another rank count;
#   5. bad inputs (missing manifest, model/data dimension mismatch, an empty split) fail on every
#      rank with a one-line error and leave no output behind.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/scan.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe --bind-to none "$cnflow" "$@"; }

"$cnflow" generate calo-pion -n 20000 -pion_energy_mode uniform -o train.h5 -progress 0 \
  >/dev/null || fail "generate training sample"
"$cnflow" generate calo-pion -n 60 -pion_energy_mode fixed -pion_energy 40 -seed 7 \
  -split_fractions 0,0,1 -o e40.h5 -progress 0 >/dev/null || fail "generate 40 GeV sample"
mpi 2 train -data train.h5 -target layers -cond incident_energies -prep flowi -preset flowi \
  -flow_hidden 32 -epochs 6 -batch 200 -schedule constant -lr 2e-3 -ensemble 2 -o ens \
  -log_level 0 >train.log 2>&1 || { cat train.log; fail "train"; }

scan=(scan -data e40.h5 -ensemble ens/ensemble.txt -scan_grid 120 -prior uniform -log_level 1)
mpi 1 "${scan[@]}" -o s1.h5 >s1.log 2>&1 || { cat s1.log; fail "scan on 1 rank"; }
mpi 2 "${scan[@]}" -o s2.h5 >s2.log 2>&1 || { cat s2.log; fail "scan on 2 ranks"; }
h5diff s1.h5 s2.h5 /scan /scan || fail "scan.h5 differs between 1 and 2 ranks"
"$py" - <<'PY' || fail "scan results"
import h5py, numpy as np
with h5py.File("s2.h5") as f:
    assert f.attrs["format"] in (b"cnflow-scan", "cnflow-scan")
    s = f["scan"]
    et, ep, lo, hi, fl = (s[k][:] for k in ("e_true", "e_pred", "e_lo", "e_hi", "flags"))
assert len(et) == 60 and np.all(et == 40.0), et[:5]
r = np.median(ep / et)
assert abs(r - 1) < 0.15, f"median E_pred/E_true = {r}"
assert np.all(fl & 8 == 0), "failed showers"
assert np.all((lo < ep) & (ep < hi)), "an interval does not contain its E_pred"
print(f"median E_pred/E_true {r:.3f}, mean relative resolution {np.mean((hi - lo) / 2 / et):.3f}")
PY

# 4. preemption: stop after 1 round of blocks (as on SIGTERM: exit 75, partial <o>.tmp kept),
#    a resume with other options is refused, then resumed on ONE rank: identical to s1.h5
mpi 2 "${scan[@]}" -scan_block 8 -o part.h5 -scan_interrupt_after_blocks 1 >p1.log 2>&1
st=$?
[ "$st" -eq 75 ] || { cat p1.log; fail "interrupted scan: exit status $st, expected 75"; }
[ -e part.h5.tmp ] && [ ! -e part.h5 ] || fail "interrupted scan: expected only part.h5.tmp"
if mpi 1 "${scan[@]}" -scan_block 8 -scan_grid 100 -o part.h5 -resume >p2.log 2>&1; then
  fail "a resume with another grid was accepted"
fi
grep -q "different scan" p2.log || { cat p2.log; fail "mismatched resume: no clear error"; }
[ -e part.h5.tmp ] || fail "a refused resume removed the partial output"
mpi 1 "${scan[@]}" -scan_block 8 -o part.h5 -resume >p3.log 2>&1 || { cat p3.log; fail "resume"; }
grep -q "already done" p3.log || { cat p3.log; fail "resume did not skip finished blocks"; }
h5diff s1.h5 part.h5 /scan/e_pred /scan/e_pred && h5diff s1.h5 part.h5 /scan/e_lo /scan/e_lo &&
  h5diff s1.h5 part.h5 /scan/e_hi /scan/e_hi && h5diff s1.h5 part.h5 /scan/flags /scan/flags ||
  fail "interrupted + resumed scan differs from the uninterrupted one"
[ ! -e part.h5.tmp ] || fail "part.h5.tmp left after the resumed scan finished"

# bad inputs: non-zero exit, one-line "cnflow: error" naming the problem, no output left
bad() {
  local what=$1 pattern=$2; shift 2
  rm -f bad.h5 bad.h5.tmp
  if mpi 2 scan "$@" -o bad.h5 >bad.log 2>&1; then cat bad.log; fail "$what: exit status 0"; fi
  grep -q "$pattern" bad.log || { cat bad.log; fail "$what: no error matching '$pattern'"; }
  [ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "$what: output left behind"
}
bad "missing manifest" "nope/ensemble.txt" -data e40.h5 -ensemble nope/ensemble.txt
bad "dimension mismatch" "targets" -data e40.h5 -ensemble ens/ensemble.txt -target_columns E_0,E_1
bad "empty split" "split 'val' has no showers" -data e40.h5 -ensemble ens/ensemble.txt -split val
bad "bad prior range" "prior range" -data e40.h5 -ensemble ens/ensemble.txt -e_min 50 -e_max 10
echo "PASS: scan identical on 1 and 2 ranks, calibrated, bad inputs refused"
