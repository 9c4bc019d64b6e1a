#!/usr/bin/env bash
# Likelihood-scan benchmark of `cnflow scan` (issue 8) next to the PyTorch peer's scan suite
# (../shared/bench/bench_torch.py: model C = the flowi architecture, 200 log-spaced energies in
# [1, 100] GeV per shower, 1 flow and a 10-flow log-mean-exp ensemble), both on ONE core.
# Per ensemble size (1, 10 members) it times on one rank (and the 10-member default on 2 ranks):
#   grid200  -scan_refine false -scan_grid 200: the peer's work (grid maximum only);
#   default  the production scan: 48-point grid + lockstep refinement + 68 % interval;
#   tao      -scan_method tao -scan_grid 200: the per-shower TAO + Brent path (fewer showers);
# and prints showers/s, flow evaluations per shower and member, the ratio to the peer's
# showers/s, and the precision |E_pred / E_1600 - 1| against a 1600-point grid on the same
# showers (-scan_refine false -scan_grid 1600).  Prints figures; not a test.
#
#   bash jobs/bench_scan.sh [-showers N] [-no_peer]          (~4 min)
# The members are Flow-I flows trained for 15 epochs on 30 k uniform-prior events (a 1-epoch
# flow puts most maxima on the prior edge, which says nothing about a real scan).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
showers=1000 peer=1
while [ $# -gt 0 ]; do
  case "$1" in
    -showers) showers="$2"; shift 2 ;;
    -no_peer) peer=0; shift ;;
    -h|-help|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "bench_scan.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
dir=${CNFLOW_BENCH_DIR:-/tmp/cnflow-bench}/scan
mkdir -p "$dir"
bin="$BUILD_DIR/cnflow"
log="$dir/bench_scan.log"
: >"$log"
ref_showers=$(( showers < 300 ? showers : 300 ))
tao_showers=$(( showers < 200 ? showers : 200 ))
"$bin" generate calo-pion -n 30000 -o "$dir/train.h5" -progress 0 >>"$log" 2>&1
"$bin" generate calo-pion -n "$showers" -pion_energy_mode fixed -pion_energy 50 \
  -split_fractions 0,0,1 -seed 9 -o "$dir/e50.h5" -progress 0 >>"$log" 2>&1
for K in 1 10; do
  echo "[bench] training $K Flow-I member(s), 15 epochs on 30 k events, 2 ranks" >&2
  mpiexec -n 2 --bind-to none "$bin" train -options_file jobs/flowi_uniform.opts \
    -data "$dir/train.h5" -epochs 15 -ensemble "$K" -checkpoint_every 0 -o "$dir/ens$K" \
    -log_level 0 >>"$log" 2>&1
done
declare -A rate lp gr
run() { # run NAME K SHOWERS scan-options...
  local name=$1 K=$2 n=$3
  shift 3
  echo "[bench] cnflow scan $name: $K member(s), $n showers, 1 rank" >&2
  "$bin" scan -data "$dir/e50.h5" -ensemble "$dir/ens$K/ensemble.txt" -max_showers "$n" \
    -o "$dir/scan_${name}_$K.h5" -progress 0 "$@" >"$dir/s.log" 2>&1 || { cat "$dir/s.log"; exit 1; }
  cat "$dir/s.log" >>"$log"
  rate[$name,$K]=$(grep -o "[0-9.]* showers/s;" "$dir/s.log" | tail -1 | cut -d' ' -f1)
  read -r lp[$name,$K] gr[$name,$K] < <(sed -n 's/.*member: \([0-9.]*\) log p + \([0-9.]*\) with.*/\1 \2/p' "$dir/s.log")
}
for K in 1 10; do
  run grid200 "$K" "$showers" -scan_grid 200 -scan_refine false
  run default "$K" "$showers"
  run tao "$K" "$tao_showers" -scan_grid 200 -scan_method tao
  run grid1600 "$K" "$ref_showers" -scan_grid 1600 -scan_refine false
done
# the same 10-member default scan on 2 ranks (each rank its own block of showers)
echo "[bench] cnflow scan default: 10 member(s), $showers showers, 2 ranks" >&2
mpiexec -n 2 --bind-to none "$bin" scan -data "$dir/e50.h5" -ensemble "$dir/ens10/ensemble.txt" \
  -max_showers "$showers" -o "$dir/scan_default_10_2r.h5" -progress 0 >"$dir/s.log" 2>&1 ||
  { cat "$dir/s.log"; exit 1; }
cat "$dir/s.log" >>"$log"
rate2=$(grep -o "[0-9.]* showers/s;" "$dir/s.log" | tail -1 | cut -d' ' -f1)
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
printf '\nlikelihood scan of 50 GeV showers over [1, 100] GeV, one core\n'
printf '%-8s %-9s %12s %22s %10s %24s\n' members scan showers/s "evaluations/shower*" "vs peer" "|E/E_1600-1| med / p99"
for K in 1 10; do
  pk=$([ "$K" = 1 ] && echo "$p1" || echo "$p10")
  for name in grid200 default tao; do
    ratio=-
    [ -n "$pk" ] && ratio=$(/usr/bin/python3 -c "print(f'{${rate[$name,$K]} / $pk:.1f}x')")
    prec=$(/usr/bin/python3 -c "
import h5py, numpy as np
r = h5py.File('$dir/scan_grid1600_$K.h5')['scan/e_pred'][:]
e = h5py.File('$dir/scan_${name}_$K.h5')['scan/e_pred'][:len(r)]
d = np.abs(e / r[:len(e)] - 1)
print(f'{np.median(d):.1e} / {np.percentile(d, 99):.1e}')")
    printf '%-8s %-9s %12s %22s %10s %24s\n' "$K" "$name" "${rate[$name,$K]}" \
      "${lp[$name,$K]} + ${gr[$name,$K]}" "$ratio" "$prec"
  done
  [ -n "$pk" ] && printf '%-8s %-9s %12.1f %22s\n' "$K" "peer" "$pk" "200 + 0"
done
/usr/bin/python3 -c "
r2, r1, pk = $rate2, ${rate[default,10]}, '$p10'
line = f'10 members, default scan, 2 ranks: {r2:.1f} showers/s = {r2 / r1:.2f}x the 1-rank figure'
if pk: line += f', {r2 / 2 / float(pk):.1f}x the peer per core'
print(line)"
echo "* per member: log p rows + rows with the condition gradient (forward + backward)"
echo "  the 1600-point grid's own step is 0.29 % (its maximum is within 0.14 % of the grid's best)"
