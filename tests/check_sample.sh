#!/bin/bash
# usage: check_sample.sh CNFLOW
# `cnflow sample` through the real binary:
#   1. a 2-member CNF ensemble trained briefly on a small hgg file samples the test split on 1,
#      2 and 3 ranks: the three samples.h5 must be byte-identical;
#   2. the file is what `evaluate` needs and nothing else: reference targets and conditions
#      equal the input's test rows, reco = truth + response for both, members alternate, every
#      value finite, the generated responses in the target's range;
#   3. the latent stream is the one cnf_flow_sample gives event i: a 1-member manifest samples
#      the same event as the ensemble where member 0 drew it;
#   4. bad inputs (missing manifest, a model of other dimensions, a split without events) fail
#      with one line on every rank and leave no output behind.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/sample.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe --bind-to none "$cnflow" "$@"; }

mpi 2 generate hgg -n 6000 -o hgg.h5 -progress 0 >/dev/null || fail "generate hgg"
mpi 2 train -data hgg.h5 -target gauss/target -cond truth -cond_columns et1,et2,eta1,eta2,mu \
  -prep cnf -target_scale 20,0.01,0.005 -preset cnf -flow_blocks 2 -flow_hidden 32 -epochs 2 \
  -batch 256 -ensemble 2 -seed 3 -o ens -log_level 0 >train.log 2>&1 || { cat train.log; fail "train"; }

for n in 1 2 3; do
  mpi $n sample -data hgg.h5 -ensemble ens/ensemble.txt -seed 5 -o s$n.h5 -progress 0 \
    >s$n.log 2>&1 || { cat s$n.log; fail "sample on $n rank(s)"; }
done
cmp s1.h5 s2.h5 || fail "samples.h5 differs between 1 and 2 ranks"
cmp s1.h5 s3.h5 || fail "samples.h5 differs between 1 and 3 ranks"
# member 0 alone, as a one-model "ensemble": its events are the ensemble's even events
mpi 1 sample -data hgg.h5 -ensemble ens/member_000.h5 -seed 5 -o m0.h5 -progress 0 \
  >m0.log 2>&1 || { cat m0.log; fail "sample from one model file"; }

"$py" - <<'PY' || fail "samples.h5 contents"
import h5py, numpy as np
with h5py.File("hgg.h5") as f:
    first, count = f.attrs["split_ranges"][list(f.attrs["split_names"]).index("test")]
    tgt = f["gauss/target"][first:first + count].astype(np.float64)
    tn = list(f["gauss/target"].attrs["columns"])
    truth = f["truth"][first:first + count]
    trn = list(f["truth"].attrs["columns"])
with h5py.File("s1.h5") as s, h5py.File("m0.h5") as m:
    assert s.attrs["format"] in (b"cnflow-samples", "cnflow-samples")
    assert int(s.attrs["members"]) == 2 and int(s.attrs["split_first"]) == first
    g, r = s["generated/target"][:].astype(np.float64), s["reference/target"][:].astype(np.float64)
    c = s["conditions"][:]
    assert g.shape == (count, 6) and list(s["generated/target"].attrs["columns"]) == tn
    assert np.array_equal(r, tgt), "reference targets are not the input's test rows"
    want_c = truth[:, [trn.index(k) for k in ("et1", "et2", "eta1", "eta2", "mu")]]
    assert np.allclose(c, want_c, rtol=1e-6), "conditions are not the input's"
    mem = s["generated/member"][:, 0]
    assert np.array_equal(mem, np.arange(count) % 2), "members do not alternate"
    tr = truth[:, [trn.index(k[2:]) for k in tn]]
    for kind, t in (("generated", g), ("reference", r)):
        reco = s[f"{kind}/reco"][:].astype(np.float64)
        assert np.allclose(reco, tr + t, rtol=1e-5, atol=1e-4), f"{kind}/reco != truth + target"
    assert np.all(np.isfinite(g)) and np.all(np.isfinite(s["generated/log_prob"][:]))
    scale = np.array([20, 0.01, 0.005] * 2)
    assert np.all(np.abs(g) < scale), "a generated response outside the tanh target range"
    g0 = m["generated/target"][:].astype(np.float64)
    assert np.array_equal(g0[::2], g[::2]), "member 0's events differ from its own samples"
    assert not np.allclose(g0[1::2], g[1::2]), "odd events were not drawn by member 1"
    assert np.allclose(m["generated/log_prob"][::2], s["generated/log_prob"][::2])
print(f"{count} events: generated sd {g.std(0)[[0, 3]].round(2)} GeV vs reference {r.std(0)[[0, 3]].round(2)}")
PY
[ $? -eq 0 ] || exit 1

# 4. bad inputs: one line, non-zero exit, no output
mpi 2 generate calo-pion -n 200 -o pion.h5 -progress 0 >/dev/null || fail "generate pion"
bad() { # name, expected message part, sample arguments...
  local name=$1 msg=$2
  shift 2
  if mpi 2 sample "$@" -o bad.h5 -progress 0 >bad.log 2>&1; then fail "$name: accepted"; fi
  grep -q "$msg" bad.log || { cat bad.log; fail "$name: no clear error ('$msg')"; }
  [ "$(grep -c 'error' bad.log)" -eq 1 ] || { cat bad.log; fail "$name: not one error line"; }
  ls bad.h5* >/dev/null 2>&1 && fail "$name: left an output behind"
  return 0
}
bad "missing manifest" "nope/ensemble.txt" -data hgg.h5 -ensemble nope/ensemble.txt
bad "other dimensions" "model has" -data pion.h5 -ensemble ens/ensemble.txt -target layers \
  -target_columns E_0 -cond incident_energies -cond_columns E_inc
mpi 2 generate hgg -n 100 -split_fractions 1,0,0 -o notest.h5 -progress 0 >/dev/null ||
  fail "generate hgg without a test split"
bad "empty split" "no events" -data notest.h5 -split test -ensemble ens/ensemble.txt
bad "missing input" "missing.h5" -data missing.h5 -ensemble ens/ensemble.txt
echo "PASS: sample"
