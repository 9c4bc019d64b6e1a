"""The KDE mode helpers (src/stats/kde.c) against the reference implementation the calibration
study ran (flows-reference.md 5.5): scipy.stats.gaussian_kde(bw_method='scott') evaluated on
numpy.linspace(min, max, n_grid) with argmax, numpy.percentile(method='median_unbiased') and
scipy.stats.percentileofscore.  usage: check_kde_scipy.py KDE_DUMP WORKDIR"""
import os
import subprocess
import sys

import numpy as np
import scipy.stats as st

dump, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(2024)
cases = {
    "gamma": rng.gamma(3.0, 0.5, 10000),
    "lognormal": rng.lognormal(0.0, 0.3, 10000),
    "response": rng.normal(0.75, 0.17, 15000) + rng.exponential(0.05, 15000),  # skewed, like E_dep/E
    "bimodal": np.concatenate([rng.normal(0, 1, 4000), rng.normal(3.5, 0.8, 4000)]),
    "ties": np.round(rng.normal(1.0, 0.1, 5000), 2),  # repeated values for percentileofscore
}
n_grid = 10000
for name, x in cases.items():
    path = os.path.join(work, f"kde_{name}.txt")
    np.savetxt(path, x, fmt="%.17g")
    out = subprocess.run([dump, path, str(n_grid)], check=True, capture_output=True, text=True)
    vals = [float(v) for v in out.stdout.split()]
    h, mode, idx = vals[0], vals[1], int(vals[2])
    pct = np.array(vals[3:44])
    pos_mode, pos = vals[44], np.array(vals[45:])

    kde = st.gaussian_kde(x, bw_method="scott")
    h_ref = kde.factor * np.std(x, ddof=1)
    assert abs(h - h_ref) <= 1e-12 * h_ref, (name, h, h_ref)
    grid = np.linspace(x.min(), x.max(), n_grid)
    dens = kde(grid)
    ref = int(np.argmax(dens))
    # the same grid point, or a numerical tie (scipy sums in another order)
    assert idx == ref or dens[idx] >= dens[ref] * (1 - 1e-12), (name, idx, ref, dens[idx], dens[ref])
    assert mode == grid[idx], (name, mode, grid[idx])

    xs = np.sort(x)
    ref_pct = np.percentile(xs, np.arange(41) * 2.5, method="median_unbiased")
    assert np.allclose(pct, ref_pct, rtol=1e-14, atol=1e-15), (name, np.abs(pct - ref_pct).max())
    assert abs(pos_mode - st.percentileofscore(xs, mode)) < 1e-9, name
    ref_pos = np.array([st.percentileofscore(xs, v) for v in xs[::97]])
    assert np.allclose(pos, ref_pos, rtol=0, atol=1e-9), (name, np.abs(pos - ref_pos).max())
    print(f"{name}: h {h:.6g}, mode {mode:.6g} (grid index {idx}) match scipy/numpy")
print("PASS: KDE mode, Scott bandwidth and percentiles match scipy/numpy")
