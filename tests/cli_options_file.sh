#!/bin/bash
# usage: cli_options_file.sh CNFLOW PYTHON
# -options_file: options read from a file reach the generator, and an option given on the
# command line AFTER the file overrides the file's value (PETSc inserts options in argument
# order, later ones win).  The written files are read back with h5py.
set -uo pipefail
[ $# -eq 2 ] || { echo "usage: $0 CNFLOW PYTHON" >&2; exit 2; }
cnflow=$1
python=$2
dir=$(mktemp -d cli_options_file.XXXXXX)
trap 'rm -rf "$dir"' EXIT
cat >"$dir/pion.opts" <<'EOF'
# comments and blank lines are allowed in PETSc options files

-pion_energy_mode fixed
-pion_energy 30
-n 50
EOF

status=0
# run ARGS... -> the HDF5 file written must hold N rows whose incident energies are all E
check() {
  local n=$1 e=$2 out=$3
  shift 3
  if ! "$cnflow" generate calo-pion -o "$out" "$@" >"$dir/log" 2>&1; then
    echo "FAIL: cnflow generate calo-pion -o $out $* exited non-zero:"
    cat "$dir/log"
    status=1
    return
  fi
  if ! "$python" - "$out" "$n" "$e" <<'EOF'; then
import sys
import h5py
import numpy as np
path, n, e = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with h5py.File(path, "r") as f:
    energies = f["incident_energies"][:]
assert energies.shape == (n, 1), f"{path}: shape {energies.shape}, expected ({n}, 1)"
assert np.all(energies == e), f"{path}: energies in [{energies.min()}, {energies.max()}], expected all {e}"
print(f"ok: {path}: {n} rows, all incident energies {e} GeV")
EOF
    echo "FAIL: cnflow generate calo-pion -o $out $*"
    status=1
  fi
}

check 50 30 "$dir/file.h5" -options_file "$dir/pion.opts"
check 50 40 "$dir/override.h5" -options_file "$dir/pion.opts" -pion_energy 40
check 20 30 "$dir/override_n.h5" -options_file "$dir/pion.opts" -n 20

[ $status -eq 0 ] && echo "PASS: -options_file read and overridden by later options"
exit $status
