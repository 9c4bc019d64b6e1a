#!/usr/bin/env bash
# The main job on its small embedded default: installs, builds, then on 2 MPI ranks
#   1. trains the toy conditional flow and prints its held-out NLL next to the exact one,
#   2. writes small samples of the three physics generators through parallel HDF5.
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
