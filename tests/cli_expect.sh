#!/bin/bash
# usage: cli_expect.sh [checks...] -- COMMAND ARGS...
# Runs COMMAND once and checks what a user sees.  Checks (each may be repeated except --exit):
#   --exit N|fail         exit status N, or any non-zero status ("fail")
#   --stderr-lines N      stderr has exactly N lines
#   --error-lines N       exactly N stderr lines start with "cnflow: error:" (for mpiexec runs,
#                         whose launcher adds its own report)
#   --stderr REGEX        some stderr line matches REGEX (grep -E)
#   --stdout REGEX        some stdout line matches REGEX (grep -E)
#   --absent FILE         FILE (and FILE.tmp.*) does not exist afterwards (removed beforehand)
# Prints PASS or the failed checks with the captured output; exits non-zero on failure.
set -uo pipefail
exit_want=fail
stderr_lines="" error_lines=""
stderr_res=() stdout_res=() absent=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
  [ $# -ge 2 ] || { echo "cli_expect.sh: $1 needs a value" >&2; exit 2; }
  case $1 in
  --exit) exit_want=$2 ;;
  --stderr-lines) stderr_lines=$2 ;;
  --error-lines) error_lines=$2 ;;
  --stderr) stderr_res+=("$2") ;;
  --stdout) stdout_res+=("$2") ;;
  --absent) absent+=("$2") ;;
  *) echo "cli_expect.sh: unknown check $1" >&2; exit 2 ;;
  esac
  shift 2
done
[ $# -ge 2 ] || { echo "usage: $0 [checks...] -- COMMAND ARGS..." >&2; exit 2; }
shift # the "--"

out=$(mktemp) err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
for f in "${absent[@]+"${absent[@]}"}"; do rm -f "$f" "$f".tmp.*; done
"$@" >"$out" 2>"$err"
rc=$?

fails=()
if [ "$exit_want" = fail ]; then
  [ $rc -ne 0 ] || fails+=("exit status 0, expected a failure")
elif [ $rc -ne "$exit_want" ]; then
  fails+=("exit status $rc, expected $exit_want")
fi
n=$(wc -l <"$err")
if [ -n "$stderr_lines" ] && [ "$n" -ne "$stderr_lines" ]; then
  fails+=("$n stderr lines, expected $stderr_lines")
fi
n=$(grep -c '^cnflow: error:' "$err")
if [ -n "$error_lines" ] && [ "$n" -ne "$error_lines" ]; then
  fails+=("$n 'cnflow: error:' lines on stderr, expected $error_lines")
fi
for re in "${stderr_res[@]+"${stderr_res[@]}"}"; do
  grep -Eq -- "$re" "$err" || fails+=("no stderr line matches '$re'")
done
for re in "${stdout_res[@]+"${stdout_res[@]}"}"; do
  grep -Eq -- "$re" "$out" || fails+=("no stdout line matches '$re'")
done
for f in "${absent[@]+"${absent[@]}"}"; do
  for g in "$f" "$f".tmp.*; do
    if [ -e "$g" ]; then
      fails+=("$g exists")
      rm -f "$g"
    fi
  done
done

if [ ${#fails[@]} -eq 0 ]; then
  echo "PASS (exit $rc): $*"
  exit 0
fi
echo "FAIL: $*"
for m in "${fails[@]}"; do echo "  - $m"; done
echo "---- stdout ----"; head -50 "$out"
echo "---- stderr ----"; head -50 "$err"
exit 1
