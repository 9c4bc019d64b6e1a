#!/usr/bin/env bash
# The main job on its small embedded default: installs, builds, then on 2 MPI ranks
#   1. trains the toy conditional flow and prints its held-out NLL next to the exact one,
#   2. writes small samples of the three physics generators through parallel HDF5,
#   3. trains, with `cnflow train` on those files, a small H->gamma gamma CNF (baseline options
#      of jobs/cnf_baseline.opts, 4 blocks of 2 x 64, 4 epochs) and a 2-member Flow-I ensemble on
#      the pion sample (jobs/flowi_loguniform.opts, one member per rank, 8 epochs), and prints
#      their validation figures and the ensemble manifest,
#   4. calibrates 400 showers of a 40 GeV pion file by maximum likelihood over that ensemble
#      (`cnflow scan`, whole prior range [1, 100] GeV) and prints the median E_pred/E_true and
#      the mean per-shower resolution.
# Outputs go to $CNFLOW_DEMO_DIR (default ./demo-output).  Extra arguments go to `cnflow demo`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
out=${CNFLOW_DEMO_DIR:-demo-output}
mkdir -p "$out"
run() { mpiexec -n 2 --bind-to none "$BUILD_DIR/cnflow" "$@"; }

echo "== 1. toy conditional density: train, evaluate (2 ranks, gradient allreduce) =="
run demo -demo_out "$out/toy_model.h5" "$@"

echo "== 2. datasets from the three generators (2 ranks, collective hyperslab writes) =="
run generate hgg -n 200000 -o "$out/hgg.h5"
run generate calo-photon -n 2000 -o "$out/calo_photon.h5"
run generate calo-pion -n 100000 -pion_energy_mode loguniform -o "$out/calo_pion.h5"
ls -l "$out"

echo "== 3a. train: H->gamma gamma CNF, baseline scenario (2 ranks, data parallel, W1 selection) =="
run train -options_file jobs/cnf_baseline.opts -data "$out/hgg.h5" -flow_blocks 4 -flow_hidden 64 \
  -epochs 4 -checkpoint_every 0 -o "$out/cnf_baseline"
echo "== 3b. train: Flow-I ensemble of 2 on the log-uniform pion sample (one member per rank) =="
run train -options_file jobs/flowi_loguniform.opts -data "$out/calo_pion.h5" -ensemble 2 \
  -epochs 8 -checkpoint_every 0 -o "$out/flowi_loguniform"
echo "== validation figures =="
for m in "$out"/cnf_baseline/member_000.history.tsv "$out"/flowi_loguniform/member_00[01].history.tsv; do
  echo "-- $m"
  column -t "$m" 2>/dev/null || cat "$m"
done
echo "-- $out/flowi_loguniform/ensemble.txt (what scan and sample read)"
cat "$out/flowi_loguniform/ensemble.txt"

echo "== 4. scan: per-shower maximum likelihood over the Flow-I ensemble (40 GeV pions) =="
run generate calo-pion -n 400 -pion_energy_mode fixed -pion_energy 40 -split_fractions 0,0,1 \
  -seed 40 -o "$out/pion_40GeV.h5" -progress 0
run scan -data "$out/pion_40GeV.h5" -ensemble "$out/flowi_loguniform/ensemble.txt" \
  -prior loguniform -o "$out/scan_40GeV.h5"
/usr/bin/python3 - "$out/scan_40GeV.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1]) as f:
    s = f["scan"]
    et, ep, lo, hi = (s[k][:] for k in ("e_true", "e_pred", "e_lo", "e_hi"))
r = ep / et
print(f"40 GeV pions: median E_pred/E_true {np.median(r):.3f}, mean per-shower resolution "
      f"{np.mean((hi - lo) / 2 / et):.3f} (68 % half-width / E_true), {len(r)} showers")
PY
