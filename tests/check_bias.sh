#!/bin/bash
# usage: check_bias.sh CNFLOW BIAS_FIXTURE
# `cnflow bias` through the real binary on scan files written by bias_fixture (serial HDF5):
#   1. on 1 rank and on 2 ranks: bias.h5 must be identical (h5diff) — the resamples do not
#      depend on which rank computed them;
#   2. the values: counts, e_true mean, per-shower resolution, asymmetry median and histogram
#      recomputed with numpy from the scan files; the mode within 3 errors (and 0.01) of the
#      generated mean ratio, the full resolution within 10 % of 0.9945 sd; NaN for regression;
#   3. bad inputs (missing, corrupt, wrong format or version, missing dataset, mismatched
#      lengths, all showers failed, NaN e_true, unknown option, no -scan) fail on every rank
#      with a one-line error naming the file and the problem, and leave no output behind.
set -uo pipefail
cnflow=$1
fixture=$2
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/bias.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe --bind-to none "$cnflow" "$@"; }

"$fixture" . || fail "bias_fixture"
args=(bias -scan e10.h5,e50.h5,reg.h5 -bias_boot 8 -bias_grid 4000 -seed 3)
mpi 1 "${args[@]}" -o b1.h5 >b1.log 2>&1 || { cat b1.log; fail "bias on 1 rank"; }
mpi 2 "${args[@]}" -o b2.h5 >b2.log 2>&1 || { cat b2.log; fail "bias on 2 ranks"; }
cat b2.log
h5diff b1.h5 b2.h5 || fail "bias.h5 differs between 1 and 2 ranks"
[ ! -e b2.h5.tmp ] || fail "temporary file left behind"
grep -q "e50.h5 *flow *loguniform" b2.log || fail "table row of e50.h5"
mpi 1 "${args[@]}" -seed 4 -o b3.h5 >b3.log 2>&1 || { cat b3.log; fail "bias -seed 4"; }
if h5diff -q b1.h5 b3.h5 /bias/mode /bias/mode >/dev/null; then fail "-seed has no effect"; fi

"$py" - <<'PY' || fail "bias values"
import h5py, numpy as np
def s(x): return x.decode() if isinstance(x, bytes) else x
gen = {"e10.h5": (1.02, 0.05), "e50.h5": (0.99, 0.03), "reg.h5": (1.00, 0.08)}
with h5py.File("b2.h5") as f:
    assert s(f.attrs["format"]) == "cnflow-bias" and int(f.attrs["format_version"]) == 1
    assert int(f.attrs["n_boot"]) == 8 and int(f.attrs["n_grid"]) == 4000
    b = {k: f["bias"][k][()] for k in f["bias"]}
files = [s(x) for x in b["file"]]
assert files == ["e10.h5", "e50.h5", "reg.h5"], files
assert [s(x) for x in b["method"]] == ["flow", "flow", "regression"]
assert [s(x) for x in b["prior"]] == ["uniform", "loguniform", ""]
edges = np.linspace(0, 3, 51)
assert np.array_equal(b["asym_edges"], edges)
for i, name in enumerate(files):
    with h5py.File(name) as g:
        c = {k: g["scan"][k][:] for k in ("e_true", "e_pred", "e_lo", "e_hi", "flags")}
    ok = (c["flags"] & 8) == 0
    assert b["n_showers"][i] == len(ok) and b["n_used"][i] == ok.sum()
    for k in range(4):
        assert b["flag_counts"][i, k] == ((c["flags"] >> k) & 1).sum(), (name, k)
    assert np.isclose(b["e_true_mean"][i], c["e_true"].mean(), rtol=1e-14)
    mu, sd = gen[name]
    mode, err = b["mode"][i], b["mode_err"][i]
    assert 0 < err < 0.01 and abs(mode - mu) < 3 * err + 2e-3 and abs(mode - mu) < 0.01, (name, mode, err)
    assert abs(b["res_full"][i] / (0.9945 * sd) - 1) < 0.1 and b["res_full_err"][i] > 0, name
    if name == "reg.h5":
        assert np.isnan(b["res_shower_mean"][i]) and np.isnan(b["asym_median"][i])
        assert b["n_intervals"][i] == 0 and not b["asym_hist"][i].any()
        continue
    lo, hi, ep, et = (c[k][ok] for k in ("e_lo", "e_hi", "e_pred", "e_true"))
    res = (hi - lo) / (2 * et)
    assert np.isclose(b["res_shower_mean"][i], res.mean(), rtol=1e-12)
    assert np.isclose(b["res_shower_std"][i], res.std(), rtol=1e-10)
    a = (ep - lo) / (hi - ep)
    assert np.isclose(b["asym_median"][i], np.median(a), rtol=1e-14)
    h, _ = np.histogram(a, bins=50, range=(0, 3))
    assert np.array_equal(b["asym_hist"][i], h), (name, b["asym_hist"][i], h)
    assert h.sum() > 0.9 * ok.sum()
print("bias values agree with numpy")
PY

# bad inputs: non-zero exit, one-line "cnflow: error" naming the file and problem, no output
printf 'not an HDF5 file\n' >corrupt.h5
bad() {
  local what=$1 pattern=$2; shift 2
  rm -f bad.h5 bad.h5.tmp
  if mpi 2 bias "$@" -o bad.h5 >bad.log 2>&1; then cat bad.log; fail "$what: exit status 0"; fi
  grep -q "^cnflow: error: .*$pattern" bad.log || { cat bad.log; fail "$what: no error matching '$pattern'"; }
  [ "$(grep -c 'cnflow: error' bad.log)" = 1 ] || { cat bad.log; fail "$what: not one error line"; }
  [ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "$what: output left behind"
}
bad "missing file" "nope.h5: cannot read" -scan e10.h5,nope.h5
bad "corrupt file" "corrupt.h5: cannot open as HDF5" -scan corrupt.h5
bad "wrong format" "bad_format.h5: not a scan file (format attribute 'cnflow-train'" -scan bad_format.h5
bad "wrong version" "bad_version.h5: format_version 2" -scan e10.h5,bad_version.h5
bad "missing dataset" "bad_missing.h5: missing dataset /scan/e_hi" -scan bad_missing.h5
bad "mismatched lengths" "bad_length.h5: /scan/e_pred has 99 values, /scan/e_true 100" -scan bad_length.h5
bad "all flagged" "bad_flagged.h5: all 100 showers are flagged failed" -scan bad_flagged.h5
bad "NaN e_true" "bad_nan.h5: shower 5: e_true is nan" -scan bad_nan.h5
bad "unknown option" "unknown option(s) for this command: -bias_bot" -scan e10.h5 -bias_bot 3
bad "no -scan" "-scan is required"
bad "bad -bias_boot" "-bias_boot must be" -scan e10.h5 -bias_boot 0
"$cnflow" bias -help >help.log 2>&1 || { cat help.log; fail "-help exit status"; }
grep -q -- "-bias_grid" help.log || fail "-help does not list -bias_grid"
echo "PASS: bias identical on 1 and 2 ranks, values agree with numpy, bad inputs refused"
