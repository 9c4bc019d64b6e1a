#!/usr/bin/env bash
# The eleven calo-pion files of the calibration study (flows-reference.md 5.1-5.3):
#   pion_uniform.h5       E_inc ~ U[1, 100] GeV        (training, prior "uniform")
#   pion_loguniform.h5    E_inc log-uniform in [1, 100] (training, prior "log-uniform")
#   pion_<E>GeV.h5        E_inc = E for E = 10, 20, ..., 90 GeV (likelihood-scan evaluation)
# Each file uses its own seed, so no two files share random streams.  Splits: training files put
# the first 70 % of rows in "train" and the rest in "val" (the study trains on the first 70 % and
# selects the epoch on the rest); evaluation files are all "test".
#
# usage: jobs/make_pion_samples.sh [-n EVENTS] [-o DIR] [-np RANKS] [extra cnflow options...]
#   -n   events per file (default 100000)      -o  output directory (default data/pion)
#   -np  MPI ranks (default 2)                  extra options go to every `cnflow generate` call
# CNFLOW_BINARY=/path/to/cnflow skips the install/build step of jobs/setup.sh.
set -euo pipefail

n=100000
out=data/pion
np=2
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    -o) out="$2"; shift 2 ;;
    -np) np="$2"; shift 2 ;;
    -h|-help|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) extra+=("$1"); shift ;;
  esac
done

if [ -z "${CNFLOW_BINARY:-}" ]; then
  source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
  CNFLOW_BINARY="$PWD/$BUILD_DIR/cnflow"
else
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
  export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
fi
mkdir -p "$out"

generate() { # <file> <seed> <split> <generator options...>
  local file="$1" seed="$2" split="$3"
  shift 3
  mpiexec -n "$np" --bind-to none "$CNFLOW_BINARY" generate calo-pion -o "$out/$file" \
    -seed "$seed" -n "$n" -split_fractions "$split" -progress 0 "$@" "${extra[@]}"
}

generate pion_uniform.h5 101 0.7,0.3,0 -pion_energy_mode uniform -pion_emin 1 -pion_emax 100
generate pion_loguniform.h5 102 0.7,0.3,0 -pion_energy_mode loguniform -pion_emin 1 -pion_emax 100
for e in 10 20 30 40 50 60 70 80 90; do
  generate "pion_${e}GeV.h5" $((1000 + e)) 0,0,1 -pion_energy_mode fixed -pion_energy "$e"
done
echo "[make_pion_samples] wrote 11 files to $out"
