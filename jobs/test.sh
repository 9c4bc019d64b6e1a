#!/usr/bin/env bash
# The whole test suite: installs, builds, runs every ctest (serial, MPI, golden vs PyTorch,
# SLURM, hardening), then two checking builds of the same sources:
#   - AddressSanitizer + UndefinedBehaviorSanitizer (-DCNFLOW_SANITIZE=ON): every test except
#     the few listed in CNFLOW_SANITIZE_EXCLUDE: PyTorch-heavy golden runs, benchmarks, the SLURM
#     cluster, the kill loop and the pure-Python figure tests, which only repeat what the main run
#     checks at 3-10x the time; the watchdog's process-level timing test (test_watchdog runs its
#     code under the sanitizers); and the fit's end-to-end run (75 s sanitized), whose code runs
#     sanitized in test64_fit and in the bad-input corpus's fit cases;
#   - valgrind memcheck of the serial tests (ctest label "memcheck") on a portable build
#     (-DCNFLOW_NATIVE=OFF: valgrind cannot decode AVX-512, and this build also runs the
#     non-SIMD kernels).
# Extra arguments go to the main ctest run (e.g. -R rqs) and skip the checking builds;
# CNFLOW_CHECK_BUILDS=0 skips them too, =1 forces them.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
src=$(pwd)
jobs=$CNFLOW_CORES
(cd "$BUILD_DIR" && ctest --output-on-failure --timeout 900 -j "$jobs" "$@")

checks=${CNFLOW_CHECK_BUILDS:-}
[ -n "$checks" ] || { [ $# -eq 0 ] && checks=1 || checks=0; }
[ "$checks" = 1 ] || exit 0

build_variant() { # dir, cmake options...
  local dir=$1
  shift
  cmake -S "$src" -B "$dir" "$@" >/dev/null
  if ! cmake --build "$dir" -j "$jobs" >"$dir/build.log" 2>&1; then
    grep -E "error" "$dir/build.log" | head -40 >&2
    echo "[test] build of $dir failed (full log: $dir/build.log)" >&2
    exit 1
  fi
}

echo "[test] AddressSanitizer + UndefinedBehaviorSanitizer build"
san_dir="$BUILD_DIR-sanitize"
build_variant "$san_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNFLOW_SANITIZE=ON
exclude=${CNFLOW_SANITIZE_EXCLUDE:-golden_torch|cli_bench|slurm|kill_anywhere|make_pion_samples|memcheck|analysis_|watchdog_hang|fit_ranks}
(cd "$san_dir" && ctest --output-on-failure --timeout 1800 -j "$jobs" -E "$exclude")

echo "[test] valgrind memcheck of the serial tests (portable build)"
vg_dir="$BUILD_DIR-portable"
build_variant "$vg_dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCNFLOW_NATIVE=OFF -DCNFLOW_MEMCHECK=ON
(cd "$vg_dir" && ctest --output-on-failure --timeout 1800 -j "$jobs" -L memcheck)
