#!/bin/bash
# usage: check_scan_parts.sh CNFLOW
# `cnflow scan -part i -parts n` (one job-array task per part) and `cnflow scan -merge`:
#   1. three parts of a scan, scanned on 2, 1 and 1 rank(s) (the last one interrupted after a
#      block and resumed), merged, must equal the single-job scan: every root attribute and
#      every /scan dataset byte for byte (h5py), and h5diff;
#   2. parts also combine with -max_showers and with as many parts as blocks;
#   3. parts that do not fit together are refused with one line naming the file and leave no
#      output: a missing part, a duplicate, a part of another scan, a whole scan given as a
#      part, an interrupted part's .tmp; bad -part / -parts values.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
py=${CNFLOW_PYTHON:-/usr/bin/python3}
work=$(mktemp -d "$PWD/scan_parts.XXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
fail() { echo "FAIL: $*"; exit 1; }
mpi() { local n=$1; shift; "$mpiexec" -n "$n" --oversubscribe --bind-to none "$cnflow" "$@"; }

"$cnflow" generate calo-pion -n 5000 -pion_energy_mode loguniform -o train.h5 -progress 0 \
  >/dev/null || fail "generate training sample"
"$cnflow" generate calo-pion -n 70 -pion_energy_mode fixed -pion_energy 30 -seed 5 \
  -split_fractions 0,0,1 -o e30.h5 -progress 0 >/dev/null || fail "generate 30 GeV sample"
mpi 2 train -data train.h5 -target layers -cond incident_energies -prep flowi -preset flowi \
  -flow_hidden 16 -epochs 2 -batch 200 -schedule constant -lr 2e-3 -ensemble 2 -o ens \
  -checkpoint_every 0 -log_level 0 >train.log 2>&1 || { cat train.log; fail "train"; }

scan=(scan -data e30.h5 -ensemble ens/ensemble.txt -scan_grid 60 -scan_block 8 -prior loguniform
      -log_level 1)
mpi 1 "${scan[@]}" -o whole.h5 >whole.log 2>&1 || { cat whole.log; fail "single-job scan"; }
# 70 showers = 9 blocks of 8: parts of 3, 3, 3 blocks
mpi 2 "${scan[@]}" -part 0 -parts 3 -o p0.h5 >p0.log 2>&1 || { cat p0.log; fail "part 0"; }
mpi 1 "${scan[@]}" -part 1 -parts 3 -o p1.h5 >p1.log 2>&1 || { cat p1.log; fail "part 1"; }
mpi 1 "${scan[@]}" -part 2 -parts 3 -o p2.h5 -scan_interrupt_after_blocks 1 >p2.log 2>&1
st=$?
[ "$st" -eq 75 ] && [ -e p2.h5.tmp ] && [ ! -e p2.h5 ] || { cat p2.log; fail "interrupted part: exit $st"; }
# an unfinished part is refused by the merge (its .tmp is not a part file in full)
if mpi 1 scan -merge p0.h5,p1.h5,p2.h5.tmp -o bad.h5 >m.log 2>&1; then fail "merged a .tmp part"; fi
grep -q "p2.h5.tmp" m.log && grep -q "incomplete" m.log || { cat m.log; fail "incomplete part: no clear error"; }
[ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "refused merge left output"
mpi 2 "${scan[@]}" -part 2 -parts 3 -o p2.h5 -resume >p2r.log 2>&1 || { cat p2r.log; fail "resume part 2"; }
grep -q "already done" p2r.log || { cat p2r.log; fail "part resume did not skip its block"; }
# any order on the command line, on 2 ranks
mpi 2 scan -merge p2.h5,p0.h5,p1.h5 -o merged.h5 >m.log 2>&1 || { cat m.log; fail "merge"; }
[ ! -e merged.h5.tmp ] || fail "merge left its .tmp"

# 2. -max_showers (first 50: 7 blocks) in 7 parts of one block each
mpi 1 "${scan[@]}" -max_showers 50 -o whole50.h5 >w50.log 2>&1 || { cat w50.log; fail "scan 50"; }
list=""
for i in 0 1 2 3 4 5 6; do
  mpi 1 "${scan[@]}" -max_showers 50 -part $i -parts 7 -o q$i.h5 -progress 0 >q.log 2>&1 ||
    { cat q.log; fail "part $i of 7"; }
  list="$list${list:+,}q$i.h5"
done
mpi 1 scan -merge "$list" -o merged50.h5 >m50.log 2>&1 || { cat m50.log; fail "merge of 7"; }

"$py" - <<'PY' || fail "merged scans differ from the single-job scans"
import h5py, numpy as np, sys
def content(path):
    with h5py.File(path, "r") as f:
        attrs = {k: (v.tobytes() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
        data = {k: (f["scan"][k].dtype.str, f["scan"][k][...].tobytes()) for k in f["scan"]}
    return attrs, data
for whole, merged, n in (("whole.h5", "merged.h5", 70), ("whole50.h5", "merged50.h5", 50)):
    aw, dw = content(whole)
    am, dm = content(merged)
    assert set(aw) == set(am), (whole, sorted(set(aw) ^ set(am)))
    for k in aw:
        assert aw[k] == am[k], (whole, k, aw[k], am[k])
    assert set(dw) == set(dm) == {"e_true", "e_pred", "e_lo", "e_hi", "logl_max", "flags",
                                  "n_maxima", "block_done"}, (sorted(dw), sorted(dm))
    for k in dw:
        assert dw[k] == dm[k], (whole, k)
    with h5py.File(merged) as f:
        assert len(f["scan/e_pred"]) == n and np.all(f["scan/block_done"][...] == 1)
        assert "part" not in f.attrs and "parts" not in f.attrs
with h5py.File("p1.h5") as f:  # a part knows where it belongs
    assert (f.attrs["part"], f.attrs["parts"], f.attrs["part_first"],
            f.attrs["part_showers_total"]) == (1, 3, 24, 70), dict(f.attrs)
    assert len(f["scan/e_pred"]) == 24
print("merged == single-job scan: attributes and datasets byte-identical")
PY
h5diff -c whole.h5 merged.h5 || fail "h5diff: merged differs from the single-job scan"

# 3. parts that do not fit together; every refusal leaves nothing
bad() {
  local what=$1 pattern=$2; shift 2
  rm -f bad.h5 bad.h5.tmp
  if mpi 2 scan "$@" -o bad.h5 >bad.log 2>&1; then cat bad.log; fail "$what: exit status 0"; fi
  grep -q "cnflow: error: .*$pattern" bad.log || { cat bad.log; fail "$what: no error matching '$pattern'"; }
  [ "$(grep -c 'cnflow: error' bad.log)" -le 2 ] || { cat bad.log; fail "$what: more than one line per rank"; }
  [ ! -e bad.h5 ] && [ ! -e bad.h5.tmp ] || fail "$what: output left behind"
}
mpi 1 "${scan[@]}" -scan_grid 50 -part 1 -parts 3 -o other1.h5 >o.log 2>&1 || { cat o.log; fail "other scan"; }
bad "missing part" "p0.h5 is part 0 of 3, but 2 part file(s) were given" -merge p0.h5,p1.h5
bad "duplicate part" "p1.h5 and p1.h5 are both part 1 of 3" -merge p0.h5,p1.h5,p1.h5
bad "another scan's part" "other1.h5 is not a part of the same scan as p0.h5" -merge p0.h5,other1.h5,p2.h5
bad "parts of two splits" "q1.h5 is part 1 of 7, but 3" -merge p0.h5,q1.h5,p2.h5
bad "a whole scan as a part" "whole.h5: not a part file" -merge p0.h5,whole.h5,p2.h5
bad "not a scan file" "e30.h5: not a cnflow scan file" -merge e30.h5
bad "missing file" "nope.h5: not a readable HDF5 file" -merge p0.h5,nope.h5,p2.h5
bad "part out of range" "-part 3 is not in \[0, -parts 3)" "${scan[@]:1}" -part 3 -parts 3
bad "more parts than blocks" "-parts 10 is more than the 9 blocks" "${scan[@]:1}" -part 0 -parts 10
echo "PASS: scan parts merged equal the single-job scan; mismatched parts refused"
