#!/bin/bash
# usage: check_fit.sh CNFLOW
# `cnflow fit` through the real binary: a small ParaFlow ensemble (2 members, trained briefly on a
# tiny calo-photon sample) fits the material (thickness, distance) shared by the showers of a
# fixed-material file
#   1. on 1 and on 2 ranks: the same estimate (the sums are reduced in another order, so equal
#      to rounding, not bit for bit), the grid identical to rounding;
#   2. fit.h5 is complete: the estimate inside the box, positive errors, log L at the estimate
#      >= every grid value, the file's own material as truth_mean with zero spread;
#   3. bad inputs fail on every rank with a one-line error naming the problem and leave no
#      output behind.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/fit.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe --bind-to none "$cnflow" "$@"; }

photon=(generate calo-photon -photon_store_full false -progress 0)
mpi 2 "${photon[@]}" -n 4000 -o train.h5 >/dev/null || fail "generate training sample"
mpi 2 "${photon[@]}" -n 64 -photon_d_min 1.2 -photon_d_max 1.2 -photon_b_min 60 \
  -photon_b_max 60 -seed 5 -split_fractions 0,0,1 -o mat.h5 >/dev/null ||
  fail "generate the fixed-material sample"
mpi 2 train -data train.h5 -target showers -cond conditions -prep paraflow -energy_column energy \
  -noise 20 -preset paraflow -flow_blocks 2 -flow_hidden 32 -epochs 2 -batch 500 \
  -schedule constant -lr 1e-3 -ensemble 2 -o ens -log_level 0 >train.log 2>&1 ||
  { cat train.log; fail "train"; }

fit=(fit -data mat.h5 -ensemble ens/ensemble.txt -fit_grid 9 -fit_block 24)
mpi 1 "${fit[@]}" -o f1.h5 >f1.log 2>&1 || { cat f1.log; fail "fit on 1 rank"; }
mpi 2 "${fit[@]}" -o f2.h5 >f2.log 2>&1 || { cat f2.log; fail "fit on 2 ranks"; }
grep -q "thickness *=" f2.log || { cat f2.log; fail "no result line"; }
"$py" - <<'PY' || fail "fit results"
import h5py, numpy as np
def load(p):
    with h5py.File(p) as f:
        assert f.attrs["format"] in (b"cnflow-fit", "cnflow-fit")
        assert int(f.attrs["showers"]) == 64 and int(f.attrs["members"]) == 2
        g = f["fit"]
        return {k: g[k][()] for k in g}
a, b = load("f1.h5"), load("f2.h5")
assert a["grid_logl"].shape == (9, 9), a["grid_logl"].shape
assert np.allclose(a["grid_logl"], b["grid_logl"], rtol=1e-9, atol=0), "grids differ"
span = a["hi"] - a["lo"]
assert np.all(np.abs(a["best"] - b["best"]) <= 1e-3 * span), (a["best"], b["best"])
for r in (a, b):
    assert np.all((r["lo"] <= r["best"]) & (r["best"] <= r["hi"])), r["best"]
    assert r["logl_max"][0] >= r["grid_logl"].max() - 1e-9 * abs(r["grid_logl"].max())
    if int(r["flags"][0]) & 2 == 0:
        assert np.all(r["sigma"] > 0) and np.allclose(r["cov"], r["cov"].T)
        assert np.allclose(np.sqrt(np.diag(r["cov"])), r["sigma"])
assert np.allclose(a["truth_mean"], [1.2, 60.0]) and np.all(a["truth_std"] < 1e-6)
assert np.allclose(a["axis_0"], np.linspace(0.5, 1.5, 9)) and np.allclose(a["axis_1"], np.linspace(50, 90, 9))
print("fit: thickness %.3f +- %.3f, distance %.2f +- %.2f (truth 1.2, 60; a 2-epoch model)"
      % (b["best"][0], b["sigma"][0], b["best"][1], b["sigma"][1]))
PY
[ ! -e f1.h5.tmp ] && [ ! -e f2.h5.tmp ] || fail "temporary output left behind"

# bad inputs: non-zero exit, one-line "error" naming the problem, no output left
bad() {
  local what=$1 pattern=$2; shift 2
  rm -f bad.h5 bad.h5.tmp
  if mpi 2 fit "$@" -o bad.h5 >bad.log 2>&1; then cat bad.log; fail "$what: exit status 0"; fi
  grep -q "$pattern" bad.log || { cat bad.log; fail "$what: no error matching '$pattern'"; }
  [ "$(grep -c "error" bad.log)" -le 2 ] || { cat bad.log; fail "$what: more than one error line per rank"; }
  [ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "$what: output left behind"
}
bad "missing manifest" "nope/ensemble.txt" -data mat.h5 -ensemble nope/ensemble.txt
bad "missing data" "nothere.h5" -data nothere.h5 -ensemble ens/ensemble.txt
bad "unknown column" "thick" -data mat.h5 -ensemble ens/ensemble.txt -fit_columns thick,distance
bad "ranges do not match the columns" "need 2 values" -data mat.h5 -ensemble ens/ensemble.txt \
  -fit_lo 0.5
bad "malformed range" "not a comma list" -data mat.h5 -ensemble ens/ensemble.txt -fit_hi 1.5,abc
bad "empty box" "range" -data mat.h5 -ensemble ens/ensemble.txt -fit_lo 1.5,50 -fit_hi 0.5,90
bad "model for other data" "targets" -data mat.h5 -ensemble ens/ensemble.txt -target_columns c0,c1
bad "no such split" "split" -data mat.h5 -ensemble ens/ensemble.txt -split val
echo "PASS: fit equal on 1 and 2 ranks, complete fit.h5, bad inputs refused"
