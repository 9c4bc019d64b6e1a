#!/bin/bash
# usage: check_regress.sh CNFLOW SOURCE_DIR
# The direct-regression baseline end to end (cnflow train -prep regress, cnflow regress, bias):
#   1. small calo-pion files as jobs/make_pion_samples.sh writes them (a uniform training sample,
#      a 50 GeV fixed-energy file); a 2-member regression ensemble trained briefly with the study
#      option file jobs/regress_uniform.opts (fewer events and epochs, a larger learning rate);
#   2. cnflow regress of the 50 GeV file on 1 and on 2 ranks with several blocks per rank: the
#      two scan.h5 files must be identical (cmp);
#   3. the file against an independent numpy computation from the model files alone
#      (/model/params in the documented MADE layout, condition transform, fixed bijectors):
#      member k predicts E_k = exp(ln(10) (m_k(c') + ...)) at z = 0, the ensemble the mean of
#      the E_k; the scan.h5 layout with method "regression", intervals/logl NaN, flags 0,
#      e_true copied from the input;
#   4. cnflow bias of it: method "regression", mode of E_pred/E_true within 0.03 of 1 (a short
#      training of a 50 GeV sample at the middle of the uniform prior; measured ~0.99-1.00)
#      and within 3 bootstrap errors + 0.01 of numpy's KDE mode of the same ratios;
#   5. bad inputs (a flow ensemble, missing file or option, bad split, -block 0, an unknown
#      option, -prep regress on 6 targets) fail with one error line and leave no output.
set -uo pipefail
cnflow=$1
src=$2
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/regress.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe --bind-to none "$cnflow" "$@"; }

gen() { # <file> <seed> <split> <generator options...>
  local file=$1 seed=$2 split=$3; shift 3
  mpi 2 generate calo-pion -o "$file" -seed "$seed" -split_fractions "$split" -progress 0 "$@" \
    >"$file.log" 2>&1 || { cat "$file.log"; fail "generate $file"; }
}
gen pion_uniform.h5 101 0.7,0.3,0 -n 30000 -pion_energy_mode uniform -pion_emin 1 -pion_emax 100
gen pion_50GeV.h5 1050 0,0,1 -n 3000 -pion_energy_mode fixed -pion_energy 50

t0=$(date +%s)
mpi 2 train -options_file "$src/jobs/regress_uniform.opts" -data pion_uniform.h5 -ensemble 2 \
  -epochs 8 -lr 1e-3 -milestones 4,6 -o reg >train.log 2>&1 || { cat train.log; fail "train"; }
grep "best epoch" train.log
grep -q "^member 1 member_001.h5" reg/ensemble.txt || { cat reg/ensemble.txt; fail "manifest"; }

args=(regress -data pion_50GeV.h5 -ensemble reg/ensemble.txt -prior uniform -block 700)
mpi 1 "${args[@]}" -o r1.h5 >r1.log 2>&1 || { cat r1.log; fail "regress on 1 rank"; }
mpi 2 "${args[@]}" -o r2.h5 >r2.log 2>&1 || { cat r2.log; fail "regress on 2 ranks"; }
cat r2.log
grep -q "regress: 3000 showers with 2 member(s)" r2.log || fail "summary line"
cmp r1.h5 r2.h5 || fail "scan.h5 of regress differs between 1 and 2 ranks"
[ ! -e r2.h5.tmp ] || fail "temporary file left behind"
mpi 2 "${args[@]}" -block 64 -o r3.h5 >r3.log 2>&1 || { cat r3.log; fail "regress -block 64"; }

"$py" - <<'PY' || fail "regress values"
import h5py, numpy as np
def s(x): return x.decode() if isinstance(x, bytes) else x

def predict(path, c):
    """E at z = 0 from the model file alone (README 'Model file')."""
    with h5py.File(path) as f:
        m = f["model"]
        assert int(m.attrs["dim"]) == 1 and int(m.attrs["cond_dim"]) == 6
        p = m["params"][:].astype(np.float64)
        b = [m["bijectors"][k] for k in sorted(m["bijectors"])]
        kinds = [s(g.attrs["kind"]) for g in b]
        assert kinds == ["log", "affine_fixed", "maf_affine"], kinds
        assert s(b[2].attrs["scale_kind"]) == "shift"
        eps = float(b[0].attrs["eps"])
        sh, sc = float(b[1]["shift"][0]), float(b[1]["scale"][0])
        H, L, off = int(b[2].attrs["hidden"]), int(b[2].attrs["n_hidden"]), int(b[2].attrs["param_offset"])
        assert (H, L) == (256, 3), (H, L)
        cond = m["condition"]
        assert (cond["map"][:] == 0).all()
        cp = (c - cond["shift"][:]) * cond["scale"][:]
        assert "prep=regress" in s(f["provenance"].attrs["dataset"])
    C = 6
    q = off
    def take(n):
        nonlocal q
        v = p[q:q + n]; q += n; return v
    W0 = take(H * (1 + C)).reshape(H, 1 + C); b0 = take(H)
    assert (W0[:, 0] == 0).all()            # D = 1: no hidden unit sees the target
    h = np.maximum(cp @ W0[:, 1:].T + b0, 0)
    for _ in range(L - 1):
        W = take(H * H).reshape(H, H); bb = take(H)
        h = np.maximum(h @ W.T + bb, 0)
    Wout = take(H); bout = take(1); Wc = take(C)
    assert q == len(p)
    t = h @ Wout + bout[0] + cp @ Wc         # the shift m(c) = the latent-zero point
    return np.exp(t * sc + sh) - eps         # inverse of affine_fixed, then of log

with h5py.File("pion_50GeV.h5") as f:
    c = f["layers"][:].astype(np.float64)
    et = f["incident_energies"][:, 0]
with h5py.File("r2.h5") as f:
    a = dict(f.attrs)
    r = {k: f["scan"][k][:] for k in f["scan"]}
assert s(a["format"]) == "cnflow-scan" and int(a["format_version"]) == 1
assert s(a["method"]) == "regression" and s(a["prior"]) == "uniform"
assert np.isnan(a["e_min"]) and np.isnan(a["e_max"]) and int(a["members"]) == 2
assert s(a["split"]) == "test" and s(a["input"]) == "pion_50GeV.h5"
assert np.array_equal(r["e_true"], et)
for k in ("e_lo", "e_hi", "logl_max"):
    assert np.isnan(r[k]).all(), k
assert (r["flags"] == 0).all() and (r["n_maxima"] == 0).all()
assert len(r["block_done"]) == 5 and (r["block_done"] == 1).all()
members = np.array([predict("reg/member_%03d.h5" % k, c) for k in range(2)])
want = members.mean(axis=0)                  # the ensemble mean in E space
err = np.abs(r["e_pred"] / want - 1).max()
assert err < 2e-5, err                       # float flow vs float64 numpy
# not the mean in log space: the two must be distinguishable here
assert np.abs(np.exp(np.log(members).mean(axis=0)) / want - 1).max() > 10 * err or err == 0
assert np.std(members[0] / members[1]) > 1e-4  # two different members
with h5py.File("r3.h5") as f:               # another block size: the same values to rounding
    assert np.abs(f["scan"]["e_pred"][:] / r["e_pred"] - 1).max() < 1e-5
ratio = r["e_pred"] / r["e_true"]
print("regress: e_pred agrees with numpy to %.1e; mean ratio %.4f, std %.4f" % (err, ratio.mean(), ratio.std()))
PY

mpi 2 bias -scan r2.h5 -bias_boot 10 -bias_grid 4000 -o bias_regress_uniform.h5 >bias.log 2>&1 \
  || { cat bias.log; fail "bias of the regression file"; }
cat bias.log
"$py" - <<'PY' || fail "bias of the regression file: values"
import h5py, numpy as np
from scipy.stats import gaussian_kde
def s(x): return x.decode() if isinstance(x, bytes) else x
with h5py.File("bias_regress_uniform.h5") as f:
    b = {k: f["bias"][k][()] for k in f["bias"]}
assert [s(x) for x in b["method"]] == ["regression"] and [s(x) for x in b["prior"]] == ["uniform"]
mode, err = b["mode"][0], b["mode_err"][0]
assert abs(mode - 1) < 0.03, ("mode of E_pred/E_true", mode, err)
with h5py.File("r2.h5") as f:
    r = f["scan"]["e_pred"][:] / f["scan"]["e_true"][:]
g = np.linspace(r.min(), r.max(), 4000)
mode_np = g[np.argmax(gaussian_kde(r, bw_method="scott")(g))]
assert abs(mode - mode_np) < 3 * err + 0.01, (mode, err, mode_np)
assert np.isnan(b["res_shower_mean"][0]) and b["n_intervals"][0] == 0
assert b["n_used"][0] == 3000 and (b["flag_counts"][0] == 0).all()
assert 0 < b["res_full"][0] < 0.5
print("bias: regression mode %.4f +- %.4f (numpy KDE of all showers %.4f), full resolution %.4f"
      % (mode, err, mode_np, b["res_full"][0]))
PY

# ---- bad inputs -----------------------------------------------------------------------------
mpi 2 train -data pion_uniform.h5 -target layers -cond incident_energies -prep flowi -preset flowi \
  -flow_blocks 1 -epochs 1 -batch 100 -max_train_events 400 -max_val_events 200 -o flow >flow.log 2>&1 \
  || { cat flow.log; fail "train the flow for the bad-input case"; }
printf 'not an HDF5 file\n' >corrupt.h5
bad() {
  local what=$1 pattern=$2; shift 2
  rm -f bad.h5 bad.h5.tmp
  if mpi 2 "$@" -o bad.h5 >bad.log 2>&1; then cat bad.log; fail "$what: exit status 0"; fi
  grep -q "^cnflow: error: .*$pattern" bad.log || { cat bad.log; fail "$what: no error matching '$pattern'"; }
  [ "$(grep -c 'cnflow: error' bad.log)" = 1 ] || { cat bad.log; fail "$what: not one error line"; }
  [ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "$what: output left behind"
}
bad "flow ensemble" "not a regression ensemble" regress -data pion_50GeV.h5 -ensemble flow/ensemble.txt
bad "missing data" "nope.h5" regress -data nope.h5 -ensemble reg/ensemble.txt
bad "corrupt data" "corrupt.h5" regress -data corrupt.h5 -ensemble reg/ensemble.txt
bad "missing ensemble" "nope/ensemble.txt" regress -data pion_50GeV.h5 -ensemble nope/ensemble.txt
bad "unknown split" "no split 'bogus'" regress -data pion_50GeV.h5 -ensemble reg/ensemble.txt -split bogus
bad "empty split" "split 'val' has no showers" regress -data pion_50GeV.h5 -ensemble reg/ensemble.txt -split val
bad "block 0" "-block must be >= 1" regress -data pion_50GeV.h5 -ensemble reg/ensemble.txt -block 0
bad "no -ensemble" "-data and -ensemble are required" regress -data pion_50GeV.h5
bad "unknown option" "unknown option" regress -data pion_50GeV.h5 -ensemble reg/ensemble.txt -blok 3
bad "wrong inputs" "gives 1 input columns" regress -data pion_50GeV.h5 -ensemble reg/ensemble.txt -cond incident_energies -cond_columns E_inc
rm -rf bad_train
if mpi 2 train -data pion_uniform.h5 -target layers -cond incident_energies -prep regress -epochs 1 \
  -o bad_train >bad.log 2>&1; then cat bad.log; fail "-prep regress on 6 targets: exit status 0"; fi
grep -q "^cnflow: error: .*regress preprocessing needs one target column" bad.log || { cat bad.log; fail "-prep regress on 6 targets: message"; }
"$cnflow" regress -help >help.log 2>&1 || { cat help.log; fail "-help exit status"; }
grep -q -- "-block" help.log || fail "-help does not list -block"
echo "total $(($(date +%s) - t0)) s after the samples"
echo "PASS: regress trained, identical on 1 and 2 ranks, equal to numpy from the model files, bias mode near 1, bad inputs refused"
