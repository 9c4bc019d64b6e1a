#!/bin/bash
# usage: check_cli_error.sh NRANKS REGEX OUTPUT_FILE CNFLOW ARGS...
# Runs `CNFLOW ARGS...` expecting a failure: non-zero exit, an error line
# "cnflow: error: <REGEX...>" on stderr -- EXACTLY one stderr line with 1 rank (run as an MPI
# singleton, since mpiexec adds its own report), and neither OUTPUT_FILE nor OUTPUT_FILE.tmp.*
# left behind.
set -uo pipefail
[ $# -ge 4 ] || { echo "usage: $0 NRANKS REGEX OUTPUT_FILE CNFLOW ARGS..." >&2; exit 2; }
nranks=$1
regex=$2
out=$3
shift 3
mpiexec=${MPIEXEC:-mpiexec}
err=$(mktemp)
trap 'rm -f "$err"' EXIT
rm -f "$out" "$out".tmp.*
if [ "$nranks" -eq 1 ]; then
  "$@" 2>"$err" >/dev/null
else
  "$mpiexec" -n "$nranks" --oversubscribe --bind-to none "$@" 2>"$err" >/dev/null
fi
rc=$?
status=0
if [ $rc -eq 0 ]; then
  echo "FAIL: exit status 0, expected a failure"
  status=1
fi
if [ "$nranks" -eq 1 ]; then
  lines=$(wc -l <"$err")
  if [ "$lines" -ne 1 ]; then
    echo "FAIL: $lines stderr lines, expected exactly one:"
    cat "$err"
    status=1
  fi
fi
if ! grep -Eq "^cnflow: error: .*$regex" "$err"; then
  echo "FAIL: no stderr line matches 'cnflow: error: .*$regex':"
  cat "$err"
  status=1
fi
for f in "$out" "$out".tmp.*; do
  if [ -e "$f" ]; then
    echo "FAIL: $f left behind"
    status=1
    rm -f "$f"
  fi
done
[ $status -eq 0 ] && echo "PASS (exit $rc): $(grep -m1 '^cnflow: error:' "$err")"
exit $status
