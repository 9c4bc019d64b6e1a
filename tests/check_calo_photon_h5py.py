"""End-to-end check of a calo-photon file written by `cnflow generate calo-photon` on several
ranks, read with h5py: CaloChallenge layout (incident_energies, showers) plus the conditions,
units, the 8x16 window is the noise-free full image cropped at the recorded corner plus noise in
[0, noise_max], that corner has the maximal 16x8 sum of the full image, and the per-shower
energy bookkeeping (deposit + leaks + curl + plate = E, full-image sum = deposit).

usage: check_calo_photon_h5py.py FILE N_EVENTS
"""
import sys

import h5py
import numpy as np


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def columns(d):
    return [c.decode() if isinstance(c, bytes) else c for c in d.attrs["columns"]]


def window_sums(img, wy, wx):
    """All wy x wx window sums of (n, 24, 24) images via a summed-area table: (n, 25-wy, 25-wx)."""
    sat = np.zeros((img.shape[0], 25, 25))
    sat[:, 1:, 1:] = img.cumsum(1).cumsum(2)
    return sat[:, wy:, wx:] - sat[:, :-wy, wx:] - sat[:, wy:, :-wx] + sat[:, :-wy, :-wx]


def main(path, n):
    f = h5py.File(path, "r")
    opts = dict(l.split("=", 1) for l in f.attrs["options"].splitlines() if "=" in l)
    check(f.attrs["generator"] == "calo-photon", "generator attribute")
    E = f["incident_energies"][:, 0]
    cond = f["conditions"][:]
    showers = f["showers"][:].astype(np.float64)
    full = f["images_full"][:].astype(np.float64).reshape(-1, 24, 24)
    truth = f["truth"][:]
    tcol = {c: i for i, c in enumerate(columns(f["truth"]))}
    check(showers.shape == (n, 128) and full.shape == (n, 24, 24), "shapes")
    check(E.shape == (n,) and cond.shape == (n, 3) and truth.shape[0] == n, "row counts")
    check(columns(f["conditions"]) == ["thickness", "distance", "energy"], "condition columns")
    check(list(f["conditions"].attrs["units"]) in (["X0", "cm", "MeV"], [b"X0", b"cm", b"MeV"]),
          "condition units")
    check(np.array_equal(E, cond[:, 2]), "incident_energies = conditions[:, energy]")
    check(np.all((E >= 2e4) & (E <= 1e5)), "photon energies in [20, 100] GeV (MeV units)")
    check(np.all((cond[:, 0] >= 0.5) & (cond[:, 0] <= 1.5)), "thickness in [0.5, 1.5] X0")
    check(np.all((cond[:, 1] >= 50) & (cond[:, 1] <= 90)), "distance in [50, 90] cm")
    ranges = np.asarray(f.attrs["split_ranges"])
    check(ranges[0, 0] == 0 and np.all(ranges[1:, 0] == ranges[:-1, 0] + ranges[:-1, 1])
          and ranges[-1, 0] + ranges[-1, 1] == n, "split ranges cover every row once")

    # the window: 16 rows (y) x 8 columns (x) of the full image at the recorded corner, plus noise
    iy0 = truth[:, tcol["window_iy0"]].astype(int)
    ix0 = truth[:, tcol["window_ix0"]].astype(int)
    check(np.all((iy0 >= 0) & (iy0 <= 8) & (ix0 >= 0) & (ix0 <= 16)), "window corner inside")
    crop = np.stack([full[i, iy0[i]:iy0[i] + 16, ix0[i]:ix0[i] + 8].ravel() for i in range(n)])
    noise = showers - crop
    noise_max = float(opts.get("photon_noise_max", 20)) * 1e-3  # keV -> MeV
    tol = 1e-5 * np.abs(crop).max()
    check(noise.min() >= -tol and noise.max() <= noise_max + tol,
          f"window - crop in [0, {noise_max} MeV] (got [{noise.min():.3g}, {noise.max():.3g}])")
    check(noise.std() > 0.2 * noise_max, "noise present in the window")
    sums = window_sums(full, 16, 8)
    best = sums.reshape(n, -1).max(1)
    check(np.all(crop.sum(1) >= best - 1e-5 * best), "recorded window has the maximal 16x8 sum")
    check(np.allclose(truth[:, tcol["e_window"]], crop.sum(1), rtol=1e-5), "e_window = crop sum")

    # energy bookkeeping of every shower
    dep = truth[:, tcol["e_deposit"]]
    check(np.allclose(full.reshape(n, -1).sum(1), dep, rtol=1e-5), "full-image sum = e_deposit")
    total = dep + truth[:, tcol["e_leak_rear"]] + truth[:, tcol["e_leak_lateral"]] \
        + truth[:, tcol["e_curl"]] + truth[:, tcol["e_plate"]]
    check(np.allclose(total, E, rtol=1e-6), "deposit + leaks + curl + plate = E")
    conv = truth[:, tcol["converted"]]
    check(set(np.unique(conv)) <= {0.0, 1.0} and 0 < conv.mean() < 1, "both converted and not")
    print(f"PASS: calo-photon file {path}: {n} showers, conversion fraction {conv.mean():.3f}, "
          f"<E_window/E> {np.mean(crop.sum(1) / E):.3f}")


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
