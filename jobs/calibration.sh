#!/usr/bin/env bash
# The calibration study end to end (flows-reference.md section 5; issue 8):
#   1. the 11 pion files (jobs/make_pion_samples.sh): uniform and log-uniform training samples,
#      fixed-energy evaluation files at 10, 20, ..., 90 GeV;
#   2. Flow-I ensembles on both priors (jobs/flowi_uniform.opts, jobs/flowi_loguniform.opts);
#   3. `cnflow scan` of the 9 fixed-energy files with each ensemble (whole prior range [1, 100] GeV);
#   4. `cnflow bias`: mode of E_pred/E_true by bootstrap KDE, resolutions, asymmetries, per prior;
#   5. the MSE regression baseline (flows-reference.md 5.6) on both priors: a regression ensemble
#      (jobs/regress_uniform.opts, jobs/regress_loguniform.opts), `cnflow regress` of the 9 files,
#      `cnflow bias` of those (bias_regress_<prior>.h5).
#
# usage: jobs/calibration.sh [-n EVENTS] [-members K] [-epochs E] [-o DIR] [-np RANKS]
#   defaults: the study's sizes (100 k events per file, 10 members, the option files' epochs),
#   outputs under runs/calibration.  A quick run: -n 20000 -members 2 -epochs 10 (~3 min).
#   -epochs applies to the Flow-I and the regression ensembles alike.
# Runtime on 2 cores at the defaults: ~5 min of training per prior, then the scans: 900 k
# showers x 10 members at ~43 showers/s per rank (2026-12-06), i.e. ~3 h per prior on 2 ranks;
# put the scans on a cluster (each file's scan is independent and resumable).  The regression
# baseline adds ~10 min of training per prior and seconds of prediction.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=100000 members=10 epochs="" out=runs/calibration np=2
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    -members) members="$2"; shift 2 ;;
    -epochs) epochs="$2"; shift 2 ;;
    -o) out="$2"; shift 2 ;;
    -np) np="$2"; shift 2 ;;
    -h|-help|--help) sed -n '2,21p' "$0"; exit 0 ;;
    *) echo "calibration.sh: unknown argument '$1' (-help lists them)" >&2; exit 2 ;;
  esac
done
source jobs/setup.sh
bin="$BUILD_DIR/cnflow"
run() { mpiexec -n "$np" --bind-to none "$bin" "$@"; }

echo "== 1. pion samples ($n events per file) =="
CNFLOW_BINARY="$bin" bash jobs/make_pion_samples.sh -n "$n" -o "$out/data" -np "$np"

for prior in uniform loguniform; do
  echo "== 2. Flow-I ensemble of $members on the $prior sample =="
  run train -options_file "jobs/flowi_$prior.opts" -data "$out/data/pion_$prior.h5" \
    -ensemble "$members" ${epochs:+-epochs "$epochs"} -o "$out/flowi_$prior"
  scans=()
  for e in 10 20 30 40 50 60 70 80 90; do
    echo "== 3. scan: $e GeV showers, $prior-prior ensemble =="
    run scan -data "$out/data/pion_${e}GeV.h5" -ensemble "$out/flowi_$prior/ensemble.txt" \
      -prior "$prior" -o "$out/flowi_$prior/scan_${e}GeV.h5" -resume
    scans+=("$out/flowi_$prior/scan_${e}GeV.h5")
  done
  echo "== 4. bias and resolution, $prior prior =="
  run bias -scan "$(IFS=,; echo "${scans[*]}")" -o "$out/bias_$prior.h5"
done
for prior in uniform loguniform; do
  echo "== 5. regression baseline: ensemble of $members on the $prior sample =="
  run train -options_file "jobs/regress_$prior.opts" -data "$out/data/pion_$prior.h5" \
    -ensemble "$members" ${epochs:+-epochs "$epochs"} -o "$out/regress_$prior"
  preds=()
  for e in 10 20 30 40 50 60 70 80 90; do
    run regress -data "$out/data/pion_${e}GeV.h5" -ensemble "$out/regress_$prior/ensemble.txt" \
      -prior "$prior" -o "$out/regress_$prior/scan_${e}GeV.h5" -progress 0
    preds+=("$out/regress_$prior/scan_${e}GeV.h5")
  done
  echo "== 5. bias and resolution of the regression, $prior prior =="
  run bias -scan "$(IFS=,; echo "${preds[*]}")" -o "$out/bias_regress_$prior.h5"
done
echo "calibration study written to $out (bias_uniform.h5, bias_loguniform.h5, bias_regress_uniform.h5, bias_regress_loguniform.h5)"
