#!/bin/bash
# usage: check_disk_full.sh CNFLOW
# A full disk: outputs of the parallel writer (generate, sample) onto a 1 MiB tmpfs fail on
# every rank with one line naming the space needed and free, before any file is created, and
# leave nothing behind.  (Checked up front because a parallel HDF5 close that hits a full disk
# can leave the ranks waiting in different collectives.)  Needs root for the mount: skipped
# (status 77) where mounting is not permitted.
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
full() { # name, command...
  local name=$1
  shift
  "$@" >out.log 2>&1
  local st=$?
  [ $st -ne 0 ] || fail "$name: succeeded on a full disk"
  [ $st -ne 124 ] || fail "$name: hung on a full disk"
  grep -q "not enough space" out.log || { cat out.log; fail "$name: no clear error"; }
  [ "$(grep -c 'error' out.log)" -eq 1 ] || { cat out.log; fail "$name: not one error line"; }
  [ -z "$(ls -A "$mnt")" ] || { ls -la "$mnt"; fail "$name: left files on the full disk"; }
  echo "ok   $name: $(grep error out.log)"
}
full "generate on 2 ranks" mpi generate hgg -n 100000 -o "$mnt/hgg.h5" -progress 0
full "generate serial" timeout 120 "$cnflow" generate calo-pion -n 20000 -o "$mnt/pion.h5" -progress 0
# sample writes through the same writer: a 2-member model of the pion sample
mpi generate calo-pion -n 20000 -o pion.h5 -progress 0 >/dev/null || fail "generate"
mpi train -data pion.h5 -target layers -cond incident_energies -prep flowi -preset flowi \
  -flow_hidden 16 -epochs 1 -batch 200 -ensemble 2 -o ens -log_level 0 >train.log 2>&1 ||
  { cat train.log; fail "train"; }
full "sample on 2 ranks" mpi sample -data pion.h5 -split all -ensemble ens/ensemble.txt \
  -o "$mnt/samples.h5" -progress 0
# the same commands with room succeed (the check measures, it does not refuse everything)
mpi sample -data pion.h5 -split test -ensemble ens/ensemble.txt -o "$mnt/small.h5" -progress 0 \
  >ok.log 2>&1 || { cat ok.log; fail "a sample that fits was refused"; }
echo "PASS: disk full"
