"""Checks the eleven files of jobs/make_pion_samples.sh: usage check_pion_samples.py DIR N.

Names, generator, incident energies (ranges / exact fixed values), layer energies finite and
>= 0, one seed per file, and the splits (training: first 70 % train, rest val; evaluation: all
test)."""
import sys

import h5py
import numpy as np

d, n = sys.argv[1], int(sys.argv[2])
files = {"pion_uniform.h5": None, "pion_loguniform.h5": None}
files.update({f"pion_{e}GeV.h5": float(e) for e in range(10, 100, 10)})
seeds = set()
for name, e_fixed in files.items():
    with h5py.File(f"{d}/{name}", "r") as f:
        assert f.attrs["generator"] == "calo-pion", name
        einc = f["incident_energies"][:]
        layers = f["layers"][:]
        assert einc.shape == (n, 1) and layers.shape == (n, 6), (name, einc.shape, layers.shape)
        assert np.all(np.isfinite(layers)) and np.all(layers >= 0), name
        assert list(f["layers"].attrs["columns"]) == [f"E_{k}" for k in range(6)], name
        seeds.add(int(f.attrs["seed"]))
        split = f.attrs["split_ranges"].tolist()
        opts = f.attrs["options"]
        if e_fixed is None:
            assert np.all((einc >= 1) & (einc <= 100)), name
            mode = "loguniform" if "log" in name else "uniform"
            assert f"pion_energy_mode={mode}\n" in opts, name
            ntrain = int(np.floor(0.7 * n + 0.5))
            assert split == [[0, ntrain], [ntrain, n - ntrain], [n, 0]], (name, split)
        else:
            assert np.all(einc == e_fixed), name
            assert "pion_energy_mode=fixed\n" in opts, name
            assert split == [[0, 0], [0, 0], [0, n]], (name, split)
        # EM-scale response of a pion: mean E_dep / E_inc between 0.6 and 0.9 (spec 3.4)
        r = layers.sum(axis=1) / einc[:, 0]
        assert 0.6 < r.mean() < 0.9, (name, r.mean())
assert len(seeds) == len(files), seeds
print(f"PASS: {len(files)} calo-pion files")
