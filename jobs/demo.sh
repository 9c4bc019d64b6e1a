#!/usr/bin/env bash
# The main job on its small embedded default: the whole study in minutes on 2 MPI ranks.
# Installs what is missing, builds, then
#   1. trains the toy conditional flow and prints its held-out NLL next to the exact one;
#   2. writes small samples of the three generators through parallel HDF5 (H->gamma gamma,
#      photon showers behind material, log-uniform pions and fixed-energy pions at 20/40/60 GeV);
#   3. trains with `cnflow train` (2-member ensembles, one member per rank): the H->gamma gamma
#      CNF (baseline options, 4 blocks of 2 x 64), a small ParaFlow spline MAF, the Flow-I
#      calibration flow and the MSE regression baseline, with their validation figures;
#   4. `cnflow sample` + `cnflow evaluate`: generated vs reference events of the CNF and ParaFlow
#      test splits (W1, separation powers, resolutions, m_gg, shower shapes, classifier AUC);
#   5. calibration: `cnflow scan` (flow likelihood over the whole prior range) and `cnflow
#      regress` of the fixed-energy files, then `cnflow bias` of both methods;
#   6. figures and the report: demo-output/report.html and report.md (analysis/make_report.py).
# Outputs go to $CNFLOW_DEMO_DIR (default ./demo-output).  Extra arguments go to `cnflow demo`.
# Runtime: about 3.5 minutes after the build on 2 cores (205 s measured, README "Two commands").
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
out=${CNFLOW_DEMO_DIR:-demo-output}
mkdir -p "$out"
run() { mpiexec -n 2 --bind-to none "$BUILD_DIR/cnflow" "$@"; }
t_start=$SECONDS
stage() { echo "== $* (t = $((SECONDS - t_start)) s) =="; }

stage "1. toy conditional density: train, evaluate (2 ranks, gradient allreduce)"
run demo -demo_out "$out/toy_model.h5" "$@"

stage "2. datasets from the three generators (2 ranks, collective hyperslab writes)"
run generate hgg -n 200000 -o "$out/hgg.h5" -progress 0
run generate calo-photon -n 40000 -photon_store_full false -o "$out/calo_photon.h5" -progress 0
run generate calo-pion -n 100000 -pion_energy_mode loguniform -o "$out/calo_pion.h5" -progress 0
for e in 20 40 60; do
  run generate calo-pion -n 1000 -pion_energy_mode fixed -pion_energy $e -split_fractions 0,0,1 \
    -seed $e -o "$out/pion_${e}GeV.h5" -progress 0
done
ls -l "$out"/*.h5

stage "3a. train: H->gamma gamma CNF, baseline scenario, ensemble of 2 (W1 selection)"
run train -options_file jobs/cnf_baseline.opts -data "$out/hgg.h5" -flow_blocks 4 -flow_hidden 64 \
  -epochs 4 -ensemble 2 -checkpoint_every 0 -o "$out/cnf_baseline" -log_level 0
stage "3b. train: ParaFlow spline MAF (4 blocks of 2 x 64), ensemble of 2"
run train -options_file jobs/paraflow.opts -data "$out/calo_photon.h5" -flow_blocks 4 \
  -flow_hidden 64 -epochs 15 -early_stop 0 -ensemble 2 -checkpoint_every 0 -o "$out/paraflow" \
  -log_level 0
stage "3c. train: Flow-I calibration ensemble of 2 on the log-uniform pion sample"
run train -options_file jobs/flowi_loguniform.opts -data "$out/calo_pion.h5" -ensemble 2 \
  -epochs 8 -checkpoint_every 0 -o "$out/flowi_loguniform" -log_level 0
stage "3d. train: MSE regression baseline, ensemble of 2 on the same sample"
run train -options_file jobs/regress_loguniform.opts -data "$out/calo_pion.h5" -ensemble 2 \
  -epochs 8 -checkpoint_every 0 -o "$out/regress_loguniform" -log_level 0
echo "-- validation figures (epoch, train NLL, validation metric, lr, seconds)"
for m in "$out"/{cnf_baseline,paraflow,flowi_loguniform,regress_loguniform}/member_000.history.tsv; do
  echo "-- $m"
  column -t "$m" 2>/dev/null || cat "$m"
done
echo "-- $out/flowi_loguniform/ensemble.txt (what scan and sample read)"
cat "$out/flowi_loguniform/ensemble.txt"

stage "4a. sample + evaluate: the CNF ensemble at the hgg test split's truth"
run sample -data "$out/hgg.h5" -ensemble "$out/cnf_baseline/ensemble.txt" \
  -o "$out/cnf_baseline/samples.h5" -progress 0
run evaluate -samples "$out/cnf_baseline/samples.h5" -o "$out/cnf_baseline/metrics.h5"
stage "4b. sample + evaluate: the ParaFlow ensemble at the photon test split's (d, b, E)"
run sample -data "$out/calo_photon.h5" -ensemble "$out/paraflow/ensemble.txt" \
  -o "$out/paraflow/samples.h5" -progress 0
run evaluate -samples "$out/paraflow/samples.h5" -o "$out/paraflow/metrics.h5"

stage "5. calibration: flow likelihood scans and regression of the 20/40/60 GeV pions, bias"
scans=() preds=()
for e in 20 40 60; do
  run scan -data "$out/pion_${e}GeV.h5" -ensemble "$out/flowi_loguniform/ensemble.txt" \
    -prior loguniform -o "$out/flowi_loguniform/scan_${e}GeV.h5" -progress 0 -log_level 0
  run regress -data "$out/pion_${e}GeV.h5" -ensemble "$out/regress_loguniform/ensemble.txt" \
    -prior loguniform -o "$out/regress_loguniform/scan_${e}GeV.h5" -progress 0 -log_level 0
  scans+=("$out/flowi_loguniform/scan_${e}GeV.h5")
  preds+=("$out/regress_loguniform/scan_${e}GeV.h5")
done
run bias -scan "$(IFS=,; echo "${scans[*]}")" -o "$out/bias_flow_loguniform.h5"
run bias -scan "$(IFS=,; echo "${preds[*]}")" -o "$out/bias_regress_loguniform.h5"

stage "6. figures and report"
/usr/bin/python3 analysis/make_report.py "$out"
echo "demo finished in $((SECONDS - t_start)) s: open $out/report.html (or $out/report.md)"
