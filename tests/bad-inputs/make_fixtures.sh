#!/bin/bash
# usage: make_fixtures.sh CNFLOW DIR
# Builds the good inputs of the bad-input corpus (tiny datasets, a trained 1-member Flow-I
# ensemble, a scan) and, from them, the damaged ones the cases in cases.txt point at.  Everything
# is made here, in DIR, so a plain clone runs the corpus.
set -euo pipefail
cnflow=$1
dir=$2
py=${CNFLOW_PYTHON:-/usr/bin/python3}
mkdir -p "$dir"
cd "$dir"
q=(-progress 0 -log_level 0)
"$cnflow" generate calo-pion -n 3000 -pion_energy_mode uniform -o pion.h5 "${q[@]}"
"$cnflow" generate calo-pion -n 40 -pion_energy_mode fixed -pion_energy 40 -seed 7 \
  -split_fractions 0,0,1 -o e40.h5 "${q[@]}"
"$cnflow" generate calo-photon -n 200 -photon_store_full false -o photon.h5 "${q[@]}"
"$cnflow" train -data pion.h5 -target layers -cond incident_energies -prep flowi -preset flowi \
  -flow_hidden 16 -epochs 1 -batch 500 -o ens -log_level 0 >/dev/null
"$cnflow" demo -demo_epochs 1 -demo_out toy.h5 -log_level 0 >/dev/null
"$cnflow" scan -data e40.h5 -ensemble ens/ensemble.txt -scan_grid 40 -o scan.h5 -log_level 0 \
  >/dev/null

# damaged files
head -c 5000 pion.h5 >trunc.h5
cp pion.h5 flip.h5
printf '\xde\xad\xbe\xef\xde\xad\xbe\xef' | dd of=flip.h5 bs=1 seek=0 conv=notrunc status=none
: >empty.h5
echo "this is not an HDF5 file" >text.h5
member=$(awk '$1 == "member" {print $3; exit}' ens/ensemble.txt)
head -c 3000 "ens/$member" >model_trunc.h5
cp "ens/$member" model_flip.h5
printf '\x00\x00\x00\x00\x00\x00\x00\x00' | dd of=model_flip.h5 bs=1 seek=0 conv=notrunc status=none
sed "s|$member|no_such_member.h5|" ens/ensemble.txt >ens/missing_member.txt
sed "s|$member|../toy.h5|" ens/ensemble.txt >ens/other_model.txt
echo "garbage manifest" >ens/garbage.txt
: >ens/empty.txt
printf '<LesHouchesEvents version="1.0">\n<init>\n2212 2212 6.5e3 6.5e3\n</init>\n<event>\n 3 1 +1.0 1.25e2 -1 -1\n 21 -1 0 0 501 502 0 0 garbage\n</event>\n</LesHouchesEvents>\n' >bad.lhe
echo "not a lhef file at all" >notlhef.lhe

"$py" - <<'PY'
import h5py, numpy as np, shutil
def copy(src, dst):
    shutil.copy(src, dst)
    return h5py.File(dst, "r+")
with copy("e40.h5", "nan_rows.h5") as f:
    d = f["layers"]; v = d[...]; v[3, 2] = np.nan; d[...] = v
with copy("e40.h5", "inf_rows.h5") as f:
    d = f["layers"]; v = d[...]; v[5, 0] = np.inf; d[...] = v
with copy("e40.h5", "neg_energy.h5") as f:
    d = f["incident_energies"]; v = d[...]; v[0, 0] = -5.0; d[...] = v
with copy("pion.h5", "neg_train.h5") as f:
    d = f["incident_energies"]; v = d[...]; v[:, 0] = -v[:, 0]; d[...] = v
with copy("e40.h5", "wrong_shape.h5") as f:
    attrs = dict(f["layers"].attrs)
    del f["layers"]
    f.create_dataset("layers", data=np.ones((40, 3)))
with copy("e40.h5", "missing_cond.h5") as f:
    del f["incident_energies"]
with copy("e40.h5", "short_cond.h5") as f:
    v = f["incident_energies"][:20]
    del f["incident_energies"]
    f.create_dataset("incident_energies", data=v)
with copy("scan.h5", "scan_format.h5") as f:
    f.attrs["format"] = "cnflow-something"
with copy("scan.h5", "scan_nan_etrue.h5") as f:
    d = f["scan/e_true"]; v = d[...]; v[:] = np.nan; d[...] = v
with copy("scan.h5", "scan_missing.h5") as f:
    del f["scan/e_pred"]
PY
echo "fixtures ready in $dir"
