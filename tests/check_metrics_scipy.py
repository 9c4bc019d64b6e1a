"""The evaluation statistics (include/cnflow/stats.h; src/stats/metrics.c, shower.c) against
scipy/numpy and independent Python formulations:
  W1     scipy.stats.wasserstein_distance
  hist   numpy.histogram(x, nbins, (lo, hi)) incl. values on every edge, outside and NaN
  sep    a direct numpy evaluation of S; its error from a central-difference gradient of S
  auc    scipy.stats.mannwhitneyu(pos, neg).statistic / (np nn)
  core   a numpy rewrite of the iterative +-k sigma rule from its specification
  shower ParaFlow's numpy formulas (utils.py: shower_width, calculate_r9 with np.clip) on random
         sparse images; R9 without clipping from a zero-padded image; DBSCAN counted as the
         connected components of the core-point eps graph (scipy.sparse.csgraph), which is
         what the number of DBSCAN clusters is (border points never merge clusters)
usage: check_metrics_scipy.py METRICS_DUMP WORKDIR"""
import os
import subprocess
import sys

import numpy as np
import scipy.stats as st
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

dump, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
rng = np.random.default_rng(20251207)


def save(name, x):
    path = os.path.join(work, name)
    np.savetxt(path, np.asarray(x, dtype=float).reshape(-1), fmt="%.17g")
    return path


def run(*args):
    out = subprocess.run([dump, *map(str, args)], check=True, capture_output=True, text=True)
    return out.stdout.split()


# ---- W1 -------------------------------------------------------------------------------------
w1_cases = {
    "normal_vs_shifted": (rng.normal(0, 1, 5000), rng.normal(0.3, 1.2, 3777)),
    "gamma_vs_lognormal": (rng.gamma(2.0, 1.0, 2000), rng.lognormal(0.5, 0.6, 2001)),
    "ties": (np.round(rng.normal(0, 1, 3000), 1), np.round(rng.normal(0.1, 1, 1500), 1)),
    "tiny": (np.array([0.0]), np.array([1.0, 2.0, 2.0])),
    "wide": (rng.standard_cauchy(4000), rng.standard_cauchy(4000) * 1.5),
}
for name, (a, b) in w1_cases.items():
    got = float(run("w1", save(f"w1_{name}_a.txt", a), save(f"w1_{name}_b.txt", b))[0])
    ref = st.wasserstein_distance(a, b)
    assert abs(got - ref) <= 1e-12 * ref + 1e-15, (name, got, ref)
    print(f"W1 {name}: {got:.12g} (scipy {ref:.12g})")

# ---- histograms -----------------------------------------------------------------------------
for lo, hi, nb in [(-1.0, 2.0, 30), (0.0, 1.0, 10), (-3.3, 7.1, 97), (1e-3, 1e-3 + 1e-9, 7)]:
    edges = np.linspace(lo, hi, nb + 1)
    x = np.concatenate([edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                        lo + (hi - lo) * rng.uniform(-0.2, 1.2, 5000), [np.nan, np.inf, -np.inf]])
    vals = run("hist", save("hist.txt", x), repr(lo), repr(hi), nb)
    counts, out = np.array(vals[:nb], dtype=float), int(vals[nb])
    ref, _ = np.histogram(x[np.isfinite(x)], nb, (lo, hi))
    assert np.array_equal(counts, ref), (lo, hi, nb, np.nonzero(counts != ref))
    assert out == len(x) - ref.sum(), (out, len(x) - ref.sum())
    print(f"histogram [{lo}, {hi}] x {nb}: counts match numpy, {out} dropped")


# ---- separation power -----------------------------------------------------------------------
def sep_numpy(c1, c2):
    p, q = c1 / c1.sum(), c2 / c2.sum()
    m = (p + q) > 0
    return 0.5 * np.sum((p[m] - q[m]) ** 2 / (p[m] + q[m]))


for name, (a, b, nb) in {
    "gauss": (rng.normal(0, 1, 20000), rng.normal(0.4, 1.1, 15000), 40),
    "sparse": (rng.exponential(1.0, 300), rng.exponential(1.5, 500), 60),  # empty bins
}.items():
    c1, _ = np.histogram(a, nb, (-4, 6))
    c2, _ = np.histogram(b, nb, (-4, 6))
    c1, c2 = c1.astype(float), c2.astype(float)
    s, e = map(float, run("sep", save("sep1.txt", c1), save("sep2.txt", c2)))
    ref = sep_numpy(c1, c2)
    assert abs(s - ref) <= 1e-13 * ref, (name, s, ref)
    var = 0.0
    for c in (c1, c2):
        for j in range(nb):
            d = 1e-5 * max(c[j], 1.0)
            keep = c[j]
            c[j] = keep + d
            sp = sep_numpy(c1, c2)
            c[j] = keep - d
            sm = sep_numpy(c1, c2)
            c[j] = keep
            var += ((sp - sm) / (2 * d)) ** 2 * keep
    assert abs(e - np.sqrt(var)) <= 1e-5 * np.sqrt(var), (name, e, np.sqrt(var))
    print(f"separation power {name}: {s:.6g} +- {e:.3g} (numpy {ref:.6g} +- {np.sqrt(var):.3g})")

# ---- AUC ------------------------------------------------------------------------------------
for name, (pos, neg) in {
    "binormal": (rng.normal(0.7, 1, 4000), rng.normal(0, 1, 3000)),
    "ties": (rng.integers(0, 12, 2500).astype(float), rng.integers(2, 15, 1700).astype(float)),
    "inverted": (rng.normal(-1, 1, 999), rng.normal(0, 2, 1001)),
}.items():
    got = float(run("auc", save("pos.txt", pos), save("neg.txt", neg))[0])
    ref = st.mannwhitneyu(pos, neg).statistic / (len(pos) * len(neg))
    assert abs(got - ref) <= 1e-14, (name, got, ref)
    print(f"AUC {name}: {got:.10f} (Mann-Whitney {ref:.10f})")


# ---- core width -----------------------------------------------------------------------------
def core_numpy(x, k):
    xs = np.sort(x)
    mu = np.median(xs)
    s = 1.4826 * np.median(np.abs(xs - mu))
    P = st.norm.cdf(k) - st.norm.cdf(-k)
    beta = st.truncnorm.var(-k, k)  # unit Gaussian truncated at +-k
    prev = None
    it = 0
    while True:
        inside = (xs >= mu - k * s) & (xs <= mu + k * s)
        key = tuple(np.nonzero(inside)[0][[0, -1]])
        if key == prev:
            break
        w = xs[inside]
        mu, s = w.mean(), w.std(ddof=1) / np.sqrt(beta)
        prev, it = key, it + 1
    m = inside.sum()
    J = st.truncnorm.expect(lambda u: (u * u - beta) ** 2, (-k, k)) * P
    return mu, s / np.sqrt(m * beta), s, s * np.sqrt(P / (m * J)), m, it


for k in (1.5, 2.0, 3.0):
    x = np.where(rng.uniform(size=8000) < 0.9, rng.normal(3.0, 0.5, 8000), rng.uniform(-20, 30, 8000))
    got = [float(v) for v in run("core", save("core.txt", x), k)]
    ref = core_numpy(x, k)
    assert got[6] == 1, got
    assert int(got[4]) == ref[4] and int(got[5]) == ref[5], (k, got, ref)
    assert np.allclose(got[:4], ref[:4], rtol=1e-9, atol=0), (k, got, ref)
    print(f"core width k={k}: sigma {got[2]:.5f} +- {got[3]:.5f}, n_core {int(got[4])}, "
          f"{int(got[5])} iterations (numpy rewrite agrees)")


# ---- shower shapes --------------------------------------------------------------------------
def dbscan_count(img, e_min, eps, min_pts):
    pts = np.argwhere(img > e_min).astype(float)
    if len(pts) == 0:
        return 0
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    core = (d <= eps).sum(1) >= min_pts
    if not core.any():
        return 0
    dc = d[np.ix_(core, core)] <= eps
    return connected_components(csr_matrix(dc), directed=False)[0]


rows, cols = 16, 8
n_img = 300
imgs = np.where(rng.uniform(size=(n_img, rows, cols)) < 0.35,
                rng.exponential(900.0, (n_img, rows, cols)), rng.uniform(0, 0.02, (n_img, rows, cols)))
imgs[0] = 0.0  # an empty image
imgs[1, 0, 0] = 1e5  # maxima on the border and in the corner
imgs[2, 15, 3] = 1e5
path = save("images.txt", imgs)
tot = imgs.sum((1, 2))
yy, xx = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
with np.errstate(invalid="ignore", divide="ignore"):
    by, bx = (imgs * yy).sum((1, 2)) / tot, (imgs * xx).sum((1, 2)) / tot
    width_ref = (imgs * np.sqrt((yy - by[:, None, None]) ** 2 + (xx - bx[:, None, None]) ** 2)).sum((1, 2)) / tot
flat = imgs.reshape(n_img, -1)
amax = np.argmax(flat, 1)
r0, c0 = np.unravel_index(amax, (rows, cols))
ri = np.clip(r0[:, None, None] + np.arange(-1, 2).reshape(1, -1, 1), 0, rows - 1)
ci = np.clip(c0[:, None, None] + np.arange(-1, 2).reshape(1, 1, -1), 0, cols - 1)
with np.errstate(invalid="ignore", divide="ignore"):
    r9_clip_ref = imgs[np.arange(n_img)[:, None, None], ri, ci].sum((1, 2)) / tot
    pad = np.pad(imgs, ((0, 0), (1, 1), (1, 1)))
    r9_ref = np.array([pad[i, r0[i]:r0[i] + 3, c0[i]:c0[i] + 3].sum() for i in range(n_img)]) / tot
srt = np.sort(flat, 1)
n_checked = 0
for e_min, eps, min_pts, clip in [(400, 1.5, 1, 0), (400, 1.5, 1, 1), (400, 1.0, 2, 0),
                                  (200, 1.5, 3, 0), (400, 2.0, 4, 0), (1000, 2.3, 2, 0)]:
    out = np.array(run("shower", path, rows, cols, e_min, eps, min_pts, clip), dtype=float).reshape(n_img, 6)
    assert np.allclose(out[:, 0], tot, rtol=1e-12, atol=0)
    assert np.array_equal(out[:, 1], srt[:, -1]) and np.array_equal(out[:, 2], srt[:, -2])
    ok = tot > 0
    assert np.isnan(out[~ok, 3]).all() and np.isnan(out[~ok, 4]).all()
    assert np.allclose(out[ok, 3], width_ref[ok], rtol=1e-12, atol=0)
    r9 = r9_clip_ref if clip else r9_ref
    assert np.allclose(out[ok, 4], r9[ok], rtol=1e-12, atol=0), np.abs(out[ok, 4] - r9[ok]).max()
    ref_nc = np.array([dbscan_count(im, e_min, eps, min_pts) for im in imgs])
    bad = np.nonzero(out[:, 5] != ref_nc)[0]
    assert len(bad) == 0, (e_min, eps, min_pts, bad[:5], out[bad[:5], 5], ref_nc[bad[:5]])
    n_checked += 1
    print(f"shower shapes e_min {e_min} eps {eps} min_pts {min_pts} clip {clip}: {n_img} images, "
          f"clusters 0..{int(ref_nc.max())} (mean {ref_nc.mean():.2f}) match")
assert n_checked == 6
assert abs(r9_clip_ref[1] - r9_ref[1]) > 0.1  # the corner maximum: the two R9 conventions differ
print("PASS: evaluation statistics match scipy/numpy and the independent Python references")
