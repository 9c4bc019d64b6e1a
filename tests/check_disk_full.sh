#!/bin/bash
# usage: check_disk_full.sh CNFLOW
# A full disk: every writer checks the free space before it creates its file and fails with one
# line naming the space needed and free, on every rank, leaving nothing behind and the previous
# file of that name intact.  (Checked up front because a parallel HDF5 close that hits a full
# disk can leave the ranks waiting in different collectives, and a serial one can leave a
# truncated file.)  Cases:
#   - the parallel dataset writer (generate, sample) onto an empty 1 MiB tmpfs too small for it;
#   - onto the same tmpfs filled by something else up to one free 4 KiB page (less than any of
#     these files takes), each over a previous file it must not touch: evaluate's metrics.h5;
#     scan, scan -merge and regress over a previous scan.h5; train -resume over a previous
#     checkpoint (the interrupted run's), and -resume of a finished run over its model file;
#   - the same commands with room succeed (the check measures, it does not refuse everything).
# Needs root for the mount: skipped (status 77) where mounting is not permitted.
set -uo pipefail
cnflow=$1
mpiexec=${MPIEXEC:-mpiexec}
work=$(mktemp -d "$PWD/diskfull.XXXX")
mnt="$work/full"
mkdir -p "$mnt"
cleanup() { umount "$mnt" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }
if ! mount -t tmpfs -o size=1m tmpfs "$mnt" 2>/dev/null; then
  echo "SKIP: cannot mount a tmpfs here (not root?)"
  exit 77
fi
cd "$work"
mpi() { timeout 120 "$mpiexec" -n 2 --oversubscribe --bind-to none "$cnflow" "$@"; }
listing() { (cd "$mnt" && find . | LC_ALL=C sort); }
# fill the tmpfs up to one free page, as another job's files would
fill() {
  local avail=$(($(stat -f -c '%a * %S' "$mnt")))
  head -c $((avail > 4096 ? avail - 4096 : 0)) /dev/zero >"$mnt/.filler" || fail "filling the tmpfs"
  [ $(($(stat -f -c '%a * %S' "$mnt"))) -le 4096 ] || fail "the tmpfs is not full"
}
unfill() { rm -f "$mnt/.filler"; }
full() { # name, previous file that must stay intact ("" for none), command...
  local name=$1 keep=$2
  shift 2
  local before
  before=$(listing)
  if [ -n "$keep" ]; then
    [ -f "$keep" ] || fail "$name: no previous file $keep to protect"
    cp "$keep" previous.copy || fail "$name: cannot copy $keep"
  fi
  "$@" >out.log 2>&1
  local st=$?
  [ $st -ne 0 ] || fail "$name: succeeded on a full disk"
  [ $st -ne 124 ] || fail "$name: hung on a full disk"
  grep -q "not enough space" out.log || { cat out.log; fail "$name: no clear error"; }
  [ "$(grep -c 'error' out.log)" -eq 1 ] || { cat out.log; fail "$name: not one error line"; }
  [ "$(listing)" = "$before" ] ||
    { diff <(echo "$before") <(listing); fail "$name: left files on the full disk"; }
  if [ -n "$keep" ]; then
    cmp previous.copy "$keep" || fail "$name: the previous $keep was changed"
  fi
  echo "ok   $name: $(grep error out.log)"
}

# ---- the parallel dataset writer onto the empty 1 MiB tmpfs ----------------------------------
full "generate on 2 ranks" "" mpi generate hgg -n 100000 -o "$mnt/hgg.h5" -progress 0
full "generate serial" "" timeout 120 "$cnflow" generate calo-pion -n 20000 -o "$mnt/pion.h5" -progress 0
# sample writes through the same writer: a 2-member model of the pion sample
mpi generate calo-pion -n 20000 -o pion.h5 -progress 0 >/dev/null || fail "generate"
mpi train -data pion.h5 -target layers -cond incident_energies -prep flowi -preset flowi \
  -flow_hidden 16 -epochs 1 -batch 200 -ensemble 2 -o ens -log_level 0 >train.log 2>&1 ||
  { cat train.log; fail "train"; }
full "sample on 2 ranks" "" mpi sample -data pion.h5 -split all -ensemble ens/ensemble.txt \
  -o "$mnt/samples.h5" -progress 0
# the same commands with room succeed (the check measures, it does not refuse everything)
mpi sample -data pion.h5 -split test -ensemble ens/ensemble.txt -o "$mnt/small.h5" -progress 0 \
  >ok.log 2>&1 || { cat ok.log; fail "a sample that fits was refused"; }
rm -f "$mnt/small.h5"

# ---- evaluate: metrics.h5 (serial, rank 0) ---------------------------------------------------
mpi sample -data pion.h5 -split test -ensemble ens/ensemble.txt -o samples.h5 -progress 0 \
  >ok.log 2>&1 || { cat ok.log; fail "sample"; }
mpi evaluate -samples samples.h5 -o "$mnt/metrics.h5" >ok.log 2>&1 ||
  { cat ok.log; fail "an evaluate that fits was refused"; }
fill
full "evaluate on 2 ranks" "$mnt/metrics.h5" mpi evaluate -samples samples.h5 -o "$mnt/metrics.h5"
unfill
rm -f "$mnt/metrics.h5"

# ---- scan.h5: scan (collective), scan -merge and regress over a previous scan.h5 -------------
"$cnflow" generate calo-pion -n 60 -pion_energy_mode fixed -pion_energy 40 -seed 7 \
  -split_fractions 0,0,1 -o e40.h5 -progress 0 >/dev/null || fail "generate the 40 GeV sample"
scan=(scan -data e40.h5 -ensemble ens/ensemble.txt -scan_grid 24 -scan_block 8 -prior uniform)
mpi "${scan[@]}" -o "$mnt/scan.h5" >ok.log 2>&1 || { cat ok.log; fail "a scan that fits was refused"; }
mpi "${scan[@]}" -part 0 -parts 2 -o p0.h5 >ok.log 2>&1 || { cat ok.log; fail "scan part 0"; }
mpi "${scan[@]}" -part 1 -parts 2 -o p1.h5 >ok.log 2>&1 || { cat ok.log; fail "scan part 1"; }
mpi train -data pion.h5 -target incident_energies -cond layers -prep regress -flow_hidden 16 \
  -flow_n_hidden 1 -epochs 1 -batch 200 -o reg -log_level 0 >train.log 2>&1 ||
  { cat train.log; fail "train the regression"; }
fill
full "scan on 2 ranks" "$mnt/scan.h5" mpi "${scan[@]}" -o "$mnt/scan.h5"
full "scan -merge" "$mnt/scan.h5" mpi scan -merge p0.h5,p1.h5 -o "$mnt/scan.h5"
full "regress on 2 ranks" "$mnt/scan.h5" mpi regress -data e40.h5 -ensemble reg/ensemble.txt \
  -prior uniform -o "$mnt/scan.h5"
unfill
rm -f "$mnt/scan.h5"

# ---- train: the checkpoint over the interrupted run's, the model file of a finished run ------
topts=(-data pion.h5 -target layers -cond incident_energies -prep flowi -preset flowi
       -flow_hidden 16 -epochs 2 -batch 200 -log_level 0 -o "$mnt/run")
mpi train "${topts[@]}" -train_interrupt_at_step 40 >ok.log 2>&1
st=$?
[ $st -eq 75 ] && [ -f "$mnt/run/member_000.ckpt.h5" ] ||
  { cat ok.log; fail "interrupted training: exit status $st, expected 75 and a checkpoint"; }
fill
full "train -resume: checkpoint" "$mnt/run/member_000.ckpt.h5" mpi train "${topts[@]}" -resume
unfill
mpi train "${topts[@]}" -resume >ok.log 2>&1 || { cat ok.log; fail "a resume that fits was refused"; }
fill
full "train -resume of a finished run: model file" "$mnt/run/member_000.h5" \
  mpi train "${topts[@]}" -resume -log_level 1
grep -q "training already complete" out.log || { cat out.log; fail "the finished run was retrained"; }
unfill
echo "PASS: disk full"
