#!/usr/bin/env bash
# Likelihood-scan benchmark of `cnflow scan` (issue 8) next to the PyTorch peer's scan suite
# (../shared/bench/bench_torch.py: model C = the flowi architecture, 200 log-spaced energies in
# [1, 100] GeV per shower, 1 flow and a 10-flow log-mean-exp ensemble), both on ONE core.
# The peer evaluates the grid only; cnflow is timed grid-only (-scan_refine false, the same work)
# and with its TAO refinement + 68 % interval (what the study needs).  Prints showers/s; not a test.
#
#   bash jobs/bench_scan.sh [-showers N] [-no_peer]          (~3 min)
# The flows are briefly trained Flow-I members (1 epoch on 5 k events): speed does not depend
# on the weights, only the refinement's iteration count does a little.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
showers=1000 peer=1
while [ $# -gt 0 ]; do
  case "$1" in
    -showers) showers="$2"; shift 2 ;;
    -no_peer) peer=0; shift ;;
    -h|-help|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "bench_scan.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
dir=${CNFLOW_BENCH_DIR:-/tmp/cnflow-bench}/scan
mkdir -p "$dir"
bin="$BUILD_DIR/cnflow"
log="$dir/bench_scan.log"
: >"$log"
"$bin" generate calo-pion -n 5000 -o "$dir/train.h5" -progress 0 >>"$log" 2>&1
"$bin" generate calo-pion -n "$showers" -pion_energy_mode fixed -pion_energy 50 \
  -split_fractions 0,0,1 -seed 9 -o "$dir/e50.h5" -progress 0 >>"$log" 2>&1
for K in 1 10; do
  mpiexec -n 2 --bind-to none "$bin" train -options_file jobs/flowi_uniform.opts \
    -data "$dir/train.h5" -epochs 1 -ensemble "$K" -checkpoint_every 0 -o "$dir/ens$K" \
    -log_level 0 >>"$log" 2>&1
done
rate() { grep -o "[0-9.]* showers/s;" "$1" | tail -1 | cut -d' ' -f1; }
declare -A ours
for K in 1 10; do
  for refine in false true; do
    echo "[bench] cnflow scan: $K member(s), refine $refine, 1 rank" >&2
    "$bin" scan -data "$dir/e50.h5" -ensemble "$dir/ens$K/ensemble.txt" -scan_grid 200 \
      -scan_refine "$refine" -o "$dir/scan_${K}_$refine.h5" -progress 0 >"$dir/s.log" 2>&1 ||
      { cat "$dir/s.log"; exit 1; }
    cat "$dir/s.log" >>"$log"
    ours[$K,$refine]=$(rate "$dir/s.log")
  done
done
peer_dir=${CNFLOW_PEER_DIR:-$(pwd)/../shared/bench}
p1="" p10=""
if [ "$peer" = 1 ] && [ -f "$peer_dir/bench_torch.py" ]; then
  echo "[bench] PyTorch peer: scan suite, 1 thread" >&2
  OPENBLAS_NUM_THREADS=1 /usr/bin/python3 "$peer_dir/bench_torch.py" --torch-threads 1 \
    --suites scan --out "$dir/peer_scan.json" >>"$log" 2>&1
  read -r p1 p10 < <(/usr/bin/python3 -c "
import json; d = json.load(open('$dir/peer_scan.json'))
r = {x['kind']: x['events_per_s'] for x in d['results']}
print(r.get('scan1', float('nan')), r.get('scan10', float('nan')))")
fi
printf '\nlikelihood scan, 200 energies per shower over [1, 100] GeV, one core, showers/s\n'
printf '%-10s %14s %14s %14s %8s\n' members "cnflow grid" "cnflow full" "peer grid" ratio
for K in 1 10; do
  pk=$([ "$K" = 1 ] && echo "$p1" || echo "$p10")
  ratio=$( [ -n "$pk" ] && /usr/bin/python3 -c "print(f'{${ours[$K,false]} / $pk:.2f}x')" || echo -)
  [ -n "$pk" ] && pk=$(printf "%.1f" "$pk")
  printf '%-10s %14s %14s %14s %8s\n' "$K" "${ours[$K,false]}" "${ours[$K,true]}" "${pk:--}" "$ratio"
done
echo "ratio = cnflow grid-only / peer (same work); 'full' adds TAO refinement and the interval"
