#!/usr/bin/env bash
# Inferring the upstream material from the showers (ParaFlow's stated future work; issue 8):
#   1. a calo-photon training sample over the whole material range (d in [0.5, 1.5] X0,
#      b in [50, 90] cm) and four fixed-material files;
#   2. a ParaFlow model (jobs/paraflow.opts) trained on it;
#   3. `cnflow fit` of (d, b) jointly over the showers of each fixed-material file, the grid over
#      the whole box, TAO refinement, errors from the Hessian;
#   4. a table: truth, estimate, error, per file.
#
# usage: jobs/material.sh [-n EVENTS] [-epochs E] [-showers N] [-o DIR] [-np RANKS]
#   defaults: 200 k training photons, 8 epochs, 1000 showers per material point, runs/material.
# Runtime on 2 cores at the defaults (2026-12-06, shared machine): generation 40 s, training
#   8 epochs x 50 s, each fit ~60 s (441 grid points + TAO over 1000 showers): ~12 min.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
n=200000 epochs=8 showers=1000 out=runs/material np=2
while [ $# -gt 0 ]; do
  case "$1" in
    -n) n="$2"; shift 2 ;;
    -epochs) epochs="$2"; shift 2 ;;
    -showers) showers="$2"; shift 2 ;;
    -o) out="$2"; shift 2 ;;
    -np) np="$2"; shift 2 ;;
    -h|-help|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "material.sh: unknown argument '$1' (-help lists them)" >&2; exit 2 ;;
  esac
done
source jobs/setup.sh
bin="$BUILD_DIR/cnflow"
run() { mpiexec -n "$np" --bind-to none "$bin" "$@"; }
mkdir -p "$out"
echo "== 1. calo-photon samples =="
[ -e "$out/photon.h5" ] || run generate calo-photon -n "$n" -photon_store_full false \
  -o "$out/photon.h5" -progress 30
points=("0.7 55" "1.2 60" "0.9 80" "1.4 85")
for i in "${!points[@]}"; do
  read -r d b <<<"${points[$i]}"
  [ -e "$out/mat_$i.h5" ] || run generate calo-photon -n "$showers" -photon_store_full false \
    -photon_d_min "$d" -photon_d_max "$d" -photon_b_min "$b" -photon_b_max "$b" \
    -seed $((100 + i)) -split_fractions 0,0,1 -o "$out/mat_$i.h5" -progress 0
done
echo "== 2. ParaFlow model =="
[ -e "$out/paraflow/ensemble.txt" ] || run train -options_file jobs/paraflow.opts \
  -data "$out/photon.h5" -epochs "$epochs" -early_stop 0 -o "$out/paraflow"
echo "== 3. joint (d, b) fits =="
for i in "${!points[@]}"; do
  run fit -data "$out/mat_$i.h5" -ensemble "$out/paraflow/ensemble.txt" -o "$out/fit_$i.h5"
done
echo "== 4. truth vs estimate =="
/usr/bin/python3 - "$out" "${#points[@]}" <<'PY'
import sys, h5py
out, n = sys.argv[1], int(sys.argv[2])
print(f"{'file':10s} {'d true':>7s} {'d fit':>14s} {'b true':>7s} {'b fit':>14s} {'rho':>6s}")
for i in range(n):
    with h5py.File(f"{out}/fit_{i}.h5") as f:
        g = f["fit"]; t, b, s, c = g["truth_mean"][:], g["best"][:], g["sigma"][:], g["cov"][:]
    print(f"mat_{i}.h5  {t[0]:7.2f} {b[0]:7.3f}+-{s[0]:.3f} {t[1]:7.1f} {b[1]:7.2f}+-{s[1]:.2f} "
          f"{c[0,1]/(s[0]*s[1]):6.2f}")
PY
