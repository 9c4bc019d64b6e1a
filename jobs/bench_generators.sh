#!/usr/bin/env bash
# Generator benchmark (issue 3): events/s per rank of each generator and of the parallel write,
# on 1 and 2 ranks, and the wall time of the full 7 M-event H->gamma gamma file (4 scenarios).
# Prints figures; asserts nothing.  Run on a quiet machine:
#   bash jobs/bench_generators.sh [OUTDIR]        (default OUTDIR: /tmp/cnflow-bench; files removed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CNFLOW=${CNFLOW_BINARY:-build/cnflow}
OUT=${1:-/tmp/cnflow-bench}
mkdir -p "$OUT"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OPENBLAS_NUM_THREADS=1
export OMPI_MCA_rmaps_base_oversubscribe=1

# name | events for the per-rank rate | extra options
runs=("hgg|2000000|" "calo-photon|20000|" "calo-pion|1000000|")
printf '%-12s %5s %10s %14s %14s %12s %10s\n' generator ranks events "rows/s/rank" "event()/rank" "write s" "wall s"
for spec in "${runs[@]}"; do
  IFS='|' read -r gen n extra <<<"$spec"
  for np in 1 2; do
    f="$OUT/$gen-$np.h5"
    t0=$(date +%s.%N)
    log=$(mpiexec -n "$np" --bind-to core "$CNFLOW" generate "$gen" -n "$n" -o "$f" $extra -log_level 1 2>&1)
    t1=$(date +%s.%N)
    line=$(grep "wrote" <<<"$log" | tail -1)
    per_rank=$(sed -n 's/.*(\([0-9.e+]*\) rows\/s per rank).*/\1/p' <<<"$line")
    ev=$(sed -n 's/.*event() \([0-9.]*\) s.*/\1/p' <<<"$line")
    wr=$(sed -n 's/.*writes \([0-9.]*\) s.*/\1/p' <<<"$line")
    ev_rate=$(awk -v n="$n" -v np="$np" -v t="$ev" 'BEGIN{ if (t>0) printf "%.3g", n/np/t; else print "-" }')
    printf '%-12s %5d %10d %14s %14s %12s %10.2f\n' "$gen" "$np" "$n" "$per_rank" "$ev_rate" "$wr" \
      "$(awk -v a="$t0" -v b="$t1" 'BEGIN{print b-a}')"
    rm -f "$f"
  done
done

echo "full H->gamma gamma file: 7,000,000 events, 4 scenarios, 2 ranks"
t0=$(date +%s.%N)
mpiexec -n 2 --bind-to core "$CNFLOW" generate hgg -o "$OUT/hgg-7M.h5" -log_level 1 | grep -E "wrote|rejected" || true
t1=$(date +%s.%N)
ls -l "$OUT/hgg-7M.h5" | awk '{printf "file size %.2f GB\n", $5/1e9}'
awk -v a="$t0" -v b="$t1" 'BEGIN{printf "wall time (incl. MPI start-up) %.1f s  (target < 60 s)\n", b-a}'
rm -f "$OUT/hgg-7M.h5"
