#!/usr/bin/env bash
# Installs what cnflow needs on a fresh Debian 12 machine (as root, via apt-get) and builds it
# into ./build.  Sourced by jobs/demo.sh and jobs/test.sh; safe to run again (skips what is there).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

CNFLOW_DEBS=(build-essential cmake pkg-config git openmpi-bin libopenmpi-dev libhdf5-openmpi-dev
  hdf5-tools petsc-dev libopenblas-dev libcmocka-dev librandom123-dev libgsl-dev
  python3-numpy python3-h5py python3-scipy python3-matplotlib python3-torch
  slurm-wlm munge)  # slurm-wlm + munge: the slurm_pipeline test runs a local SLURM cluster
missing=()
for p in "${CNFLOW_DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "[setup] installing: ${missing[*]}"
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The machine's cores, counted before OMP_NUM_THREADS=1 below: GNU nproc obeys that variable
# (it made every build and ctest run of these scripts serial until 2026-12-08).
CNFLOW_CORES=$(env -u OMP_NUM_THREADS -u OMP_THREAD_LIMIT nproc)
# Open MPI refuses root without these; one BLAS thread per rank (ranks = cores).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1

BUILD_DIR=${CNFLOW_BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
build_log="$BUILD_DIR/build.log"
if ! cmake --build "$BUILD_DIR" -j "$CNFLOW_CORES" >"$build_log" 2>&1; then
  grep -E "error" "$build_log" | head -40 >&2
  echo "[setup] build failed (full log: $build_log)" >&2
  exit 1
fi
grep -E "warning:" "$build_log" || true
