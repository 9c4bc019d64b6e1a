#!/usr/bin/env bash
# Fuzz the cnflow readers with libFuzzer (Debian's clang).
#
#   bash jobs/fuzz.sh [seconds-per-harness] [harness...]      default: 600 s, all four
#
# Builds the harnesses of tests/fuzz/ in ${CNFLOW_FUZZ_BUILD:-/work/build-fuzz} (CC=clang,
# -DCNFLOW_FUZZ=ON: -fsanitize=fuzzer,address,undefined), then runs each harness in turn, ONE
# process (-jobs=1: the machine is shared), for the given time:
#   lhef     the LHEF truth reader (src/sim/hgg_input.c)
#   data     the dataset loaders (src/data/reader.c) and the hgg HDF5 truth table reader
#   model    the model loader (src/flow/flow_io.c cnf_flow_load)
#   options  option files and argv through src/cli/options.c (PETSc's options database)
# Each starts from tests/fuzz/corpus/<h>/ and the saved crash inputs tests/fuzz/crashes/<h>/
# and grows a working corpus in BUILD/fuzz-work/<h>/corpus (the seed corpus is not modified).
# A crash, leak or timeout leaves its input as BUILD/fuzz-work/<h>/crash-*|leak-*|timeout-*
# and the run goes on; at the end every finding is replayed and triaged into
# BUILD/fuzz-work/<h>/triage.txt as "cnflow" (first frame in our code) or "third-party" (inside
# libhdf5 on a corrupt file, or PETSc/MPI: their bugs, not fixable in cnflow).  LeakSanitizer
# uses tests/lsan.supp + tests/fuzz/lsan.supp.  After fixing a cnflow
# bug, copy its input to tests/fuzz/crashes/<h>/ so that the fuzz_replay_<h> ctest (normal
# build, no libFuzzer) keeps it fixed.  Logs: BUILD/fuzz-work/<h>/log.txt.  Exit status: 1 if
# any harness found a cnflow bug.  The work directories persist between runs (the corpus grows;
# findings of earlier runs are replayed again, so a fixed bug shows as "no-repro").
set -u
secs=${1:-600}
shift || true
harnesses=${*:-lhef data model options}
src=$(cd "$(dirname "$0")/.." && pwd)
build=${CNFLOW_FUZZ_BUILD:-/work/build-fuzz}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
# Open MPI and PETSc keep allocations until exit, and HDF5 keeps its free lists: leaks in
# them are not cnflow's (tests/lsan.supp names them)
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:fast_unwind_on_malloc=0}
mkdir -p "$build"
cat "$src/tests/lsan.supp" "$src/tests/fuzz/lsan.supp" >"$build/fuzz-lsan.supp"
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$build/fuzz-lsan.supp:print_suppressions=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang)" >&2; exit 2; }
targets=""
for h in $harnesses; do targets="$targets fuzz_${h}_libfuzzer"; done
CC=clang cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release -DCNFLOW_FUZZ=ON \
  -DCNFLOW_NATIVE=OFF >/dev/null || exit 2
cmake --build "$build" -j2 --target $targets 2>&1 | grep -E "error|warning: " ; \
  [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz.sh: build failed" >&2; exit 2; }

found=0
summary=""
for h in $harnesses; do
  work=$build/fuzz-work/$h
  mkdir -p "$work/corpus"
  echo "fuzz.sh: $h for $secs s (log $work/log.txt)"
  # per-input limits: 10 s (a hang), 2 GB RSS; inputs up to 64 kB (the HDF5 seeds are 16-72 kB)
  # -fork=1 (one worker process at a time) with -ignore_*: the run goes on after a finding.
  # Corrupt HDF5 files crash inside libhdf5 itself (its decoders trust the metadata of files
  # without checksums); those must not end the search for cnflow's own bugs.
  bin=$build/tests/fuzz_${h}_libfuzzer
  (cd "$work" && TMPDIR=$work "$bin" -max_total_time="$secs" -fork=1 -ignore_crashes=1 \
     -ignore_ooms=1 -ignore_timeouts=1 -timeout=10 -rss_limit_mb=2048 -max_len=131072 \
     corpus "$src/tests/fuzz/corpus/$h" "$src/tests/fuzz/crashes/$h") >"$work/log.txt" 2>&1
  rc=$?
  execs=$(grep -oE '^#[0-9]+' "$work/log.txt" | tail -1 | tr -d '#')
  cov=$(grep -oE 'cov: [0-9]+' "$work/log.txt" | tail -1)
  # triage: replay each finding; the first stack frame outside the sanitizer runtime says
  # whose bug it is ("hdf5": inside libhdf5, not fixable here; "cnflow": ours)
  ours=0 theirs=0
  : >"$work/triage.txt"
  # (at most 30 replays per harness: one bug can leave hundreds of inputs)
  n_found=$(ls "$work" | grep -cE '^(crash|leak|timeout|oom)-[0-9a-f]+$')
  for a in $(ls -d "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* 2>/dev/null | grep -vE '\.txt$' | head -30); do
    TMPDIR=$work timeout 60 "$bin" -timeout=10 "$a" >"$a.txt" 2>&1  # -timeout: a hang prints its stack
    replay=$?
    frame=$(grep -E '^ +#[0-9]+ ' "$a.txt" | grep -vE 'interceptor|sanitizer|libclang_rt|compiler-rt|fuzzer::|libc\.so| in (malloc|calloc|realloc|free|posix_memalign) ' | head -1)
    if [ $replay -eq 0 ]; then
      # fork mode also records a worker that died outside an input (e.g. in HDF5's exit
      # handler after a corrupt file): such an input runs clean on its own
      who=no-repro; theirs=$((theirs + 1))
    elif echo "$frame" | grep -qE 'libhdf5|libpetsc|libmpi|libopen-'; then
      who=third-party; theirs=$((theirs + 1))
    else
      who=cnflow; ours=$((ours + 1))
    fi
    echo "$who $(basename "$a") $(grep -m1 -oE 'ERROR: [A-Za-z]+: [a-z-]+|SUMMARY: .*|fuzz: .*' "$a.txt" | head -1) | $frame" >>"$work/triage.txt"
  done
  [ $ours -gt 0 ] && found=1
  summary="$summary$h: ${secs}s, ${execs:-?} executions, ${cov:-cov ?}, exit $rc, $n_found finding(s), of the replayed: $ours in cnflow, $theirs inside HDF5/PETSc/MPI or not reproducible (BUILD/fuzz-work/$h/triage.txt)\n"
done
printf "fuzz.sh summary\n$summary"
exit $found
