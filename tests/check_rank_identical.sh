#!/bin/bash
# usage: check_rank_identical.sh CNFLOW GENERATOR [generator options...]
# Generates GENERATOR with 1, 2 and 3 ranks (3 is oversubscribed on 2 cores) and fails unless the
# three files are byte-identical and no temporary file is left.  Register it for a generator:
#   add_test(NAME generate_rank_identical_<gen>
#            COMMAND bash ${CMAKE_SOURCE_DIR}/tests/check_rank_identical.sh $<TARGET_FILE:cnflow>
#                    <gen> -n 3000 <options...>)
#   set_tests_properties(generate_rank_identical_<gen> PROPERTIES
#            ENVIRONMENT "${CNFLOW_TEST_ENV};MPIEXEC=${MPIEXEC_EXECUTABLE}" PROCESSORS 2 TIMEOUT 300)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 CNFLOW GENERATOR [options...]" >&2; exit 2; }
bin=$1
gen=$2
shift 2
mpiexec=${MPIEXEC:-mpiexec}
dir=$(mktemp -d "${TMPDIR:-/tmp}/cnflow_rank_identical.XXXXXX")
trap 'rm -rf "$dir"' EXIT
for np in 1 2 3; do
  "$mpiexec" -n "$np" --oversubscribe --bind-to none \
    "$bin" generate "$gen" -o "$dir/np$np.h5" -progress 0 "$@"
done
status=0
for np in 2 3; do
  if ! cmp "$dir/np1.h5" "$dir/np$np.h5"; then
    echo "FAIL: $gen output differs between 1 and $np ranks"
    # tell data differences from layout-only differences
    if command -v h5diff >/dev/null; then
      h5diff -r "$dir/np1.h5" "$dir/np$np.h5" | head -20 || true
    fi
    status=1
  fi
done
leftover=$(find "$dir" -name '*.tmp.*')
if [ -n "$leftover" ]; then
  echo "FAIL: temporary files left behind: $leftover"
  status=1
fi
[ $status -eq 0 ] && echo "PASS: $gen byte-identical with 1, 2 and 3 ranks ($(stat -c %s "$dir/np1.h5") bytes)"
exit $status
