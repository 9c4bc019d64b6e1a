#!/bin/bash
# usage: check_bad_inputs.sh CNFLOW [CASE_REGEX]
# Runs every case of tests/bad-inputs/cases.txt through the real cnflow (mpiexec for 2 ranks)
# and checks, per case: non-zero exit on every rank within a timeout (no hang in a collective),
# a "cnflow: error: " line matching the case's regex (exactly one stderr line on 1 rank),
# neither the named output nor its temporary left behind, nothing written in the case's working
# directory, and the fixtures untouched (nothing written outside the paths the user named).
set -uo pipefail
cnflow=$1
only=${2:-}
mpiexec=${MPIEXEC:-mpiexec}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
work=$(mktemp -d "$PWD/badinputs.XXXX")
trap 'rm -rf "$work"' EXIT
fx=$work/fixtures
bash "$here/bad-inputs/make_fixtures.sh" "$cnflow" "$fx" >"$work/fixtures.log" 2>&1 ||
  { cat "$work/fixtures.log"; echo "FAIL: building the fixtures"; exit 1; }
snapshot() { (cd "$fx" && find . -printf '%p %s %T@\n' | sort); }
before=$(snapshot)
n=0
failed=()
while IFS='|' read -r name ranks regex args; do
  name=$(echo "$name" | xargs)
  [[ -z "$name" || "$name" == \#* ]] && continue
  [[ -n "$only" && ! "$name" =~ $only ]] && continue
  ranks=$(echo "$ranks" | xargs)
  regex=$(echo "$regex" | sed 's/^ *//; s/ *$//')
  case_dir=$work/case_$name
  mkdir -p "$case_dir"
  out=$case_dir/out/result
  args=${args//@F@/$fx}
  args=${args//@O@/$out}
  read -r -a argv <<<"$args"
  n=$((n + 1))
  problems=()
  (
    cd "$case_dir"
    if [ "$ranks" -eq 1 ]; then
      timeout 120 "$cnflow" "${argv[@]}" >stdout.log 2>stderr.log </dev/null
    else
      timeout 120 "$mpiexec" -n "$ranks" --oversubscribe --bind-to none "$cnflow" "${argv[@]}" \
        >stdout.log 2>stderr.log </dev/null
    fi
  )
  rc=$?
  err=$case_dir/stderr.log
  [ $rc -eq 0 ] && problems+=("exit status 0")
  [ $rc -eq 124 ] && problems+=("timed out (a hang?)")
  grep -Eq "^cnflow: error: .*($regex)" "$err" || problems+=("no error line matching '$regex'")
  if [ "$ranks" -eq 1 ] && [ "$(wc -l <"$err")" -ne 1 ]; then
    problems+=("$(wc -l <"$err") stderr lines on 1 rank, expected one")
  fi
  nerr=$(grep -c "^cnflow: error: " "$err")
  [ "$nerr" -le "$ranks" ] || problems+=("$nerr error lines from $ranks ranks")
  [ -e "$out" ] || [ -e "$out.tmp" ] && problems+=("output left behind")
  now=$(snapshot)
  if [ "$now" != "$before" ]; then
    problems+=("changed the fixtures: $(diff <(echo "$before") <(echo "$now") | grep '^>' | head -2 | tr '\n' ' ')")
    before=$now
  fi
  extra=$(cd "$case_dir" && find . -mindepth 1 ! -name stdout.log ! -name stderr.log ! -path ./out | head -3)
  [ -z "$extra" ] || problems+=("wrote into its working directory: $extra")
  if [ ${#problems[@]} -gt 0 ]; then
    failed+=("$name")
    echo "FAIL $name: ${problems[*]}"
    sed 's/^/    | /' "$err" | head -8
  else
    echo "ok   $name: $(grep -m1 '^cnflow: error: ' "$err" | cut -c16-140)"
  fi
done <"$here/bad-inputs/cases.txt"
after=$(snapshot)
if [ "$before" != "$after" ]; then
  echo "FAIL: the fixtures changed (a case wrote outside its named output):"
  diff <(echo "$before") <(echo "$after") | head -10
  failed+=("fixtures")
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAIL: ${#failed[@]} of $n cases: ${failed[*]}"
  exit 1
fi
echo "PASS: bad-input corpus, $n cases"
