#!/usr/bin/python3
"""`cnflow evaluate` against independent numpy/scipy computations on hand-made samples files.

usage: check_evaluate.py CNFLOW WORKDIR

1. hgg layout, generated = an independent draw of the reference's distribution, except that
   the generated d_et1 response is 20 % wider: the marginal W1 and separation powers equal
   scipy/numpy on the same arrays; the core width of d_et1 in each ET bin recovers the two
   known widths (1.2 sigma vs sigma) within 4 errors; m_gg's window mean and SD equal numpy's;
   the correlation matrices equal numpy.corrcoef (with the built-in rho = 0.5 of d_et1, d_et2);
   the classifier cannot tell the undistorted columns apart but sees the wider one.
2. images: average images equal numpy's; R9 of an analytic image layout equals its closed
   form; cluster counts of images with two separated blobs are 2.
3. a file that is not a samples file, and a missing one, fail with one line and leave no output.
"""
import os
import subprocess
import sys

import h5py
import numpy as np
from scipy import stats

cnflow, work = sys.argv[1], sys.argv[2]
os.makedirs(work, exist_ok=True)
os.chdir(work)
rng = np.random.default_rng(7)
fails = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        fails.append(what)


def write_samples(path, gen, ref, cond, cnames, tnames, member, reco=None, prep="cnf"):
    str_t = h5py.string_dtype()
    with h5py.File(path, "w") as f:
        f.attrs["generator"] = "sample"
        f.attrs["prep"] = prep
        f.attrs["n_events"] = len(gen)
        def ds(name, a, cols):
            d = f.create_dataset(name, data=a)
            d.attrs.create("columns", cols, dtype=str_t)
        ds("generated/target", gen.astype(np.float32), tnames)
        ds("reference/target", ref.astype(np.float32), tnames)
        ds("conditions", cond, cnames)
        ds("generated/member", member.reshape(-1, 1).astype(np.int32), ["member"])
        if reco is not None:
            rn = [t[2:] for t in tnames]
            ds("generated/reco", reco[0].astype(np.float32), rn)
            ds("reference/reco", reco[1].astype(np.float32), rn)


def run(*args):
    p = subprocess.run([cnflow, "evaluate", *args], capture_output=True, text=True)
    return p.returncode, p.stdout + p.stderr


# ---- 1. hgg layout -------------------------------------------------------------------------
n = 40000
tn = ["d_et1", "d_phi1", "d_eta1", "d_et2", "d_phi2", "d_eta2"]
sig = np.array([2.0, 0.001, 0.0012, 2.0, 0.001, 0.0012])
cov = np.diag(sig ** 2)
cov[0, 3] = cov[3, 0] = 0.5 * sig[0] * sig[3]


def draw(m, widen):
    x = rng.multivariate_normal(np.zeros(6), cov, size=m)
    x[:, 0] *= widen
    return x


gen, ref = draw(n, 1.2), draw(n, 1.0)
truth = np.column_stack([rng.uniform(25, 120, n), rng.uniform(-np.pi, np.pi, n),
                         rng.uniform(-2.4, 2.4, n), rng.uniform(25, 80, n),
                         rng.uniform(-np.pi, np.pi, n), rng.uniform(-2.4, 2.4, n)])
cond = np.column_stack([truth[:, 0], truth[:, 3], truth[:, 2], truth[:, 5], rng.uniform(0, 40, n)])
member = np.arange(n) % 2
# float32 storage: the comparisons below use the values as evaluate reads them
g32, r32 = gen.astype(np.float32).astype(np.float64), ref.astype(np.float32).astype(np.float64)
reco = (truth + g32, truth + r32)
write_samples("hgg_samples.h5", gen, ref, cond, ["et1", "et2", "eta1", "eta2", "mu"], tn, member,
              reco)
rc, out = run("-samples", "hgg_samples.h5", "-o", "hgg_metrics.h5", "-clf_epochs", "10")
check(rc == 0, "evaluate hgg samples: " + out.strip().splitlines()[-1] if out.strip() else "")
with h5py.File("hgg_metrics.h5") as m:
    check(m.attrs["kind"] == "hgg", "kind hgg")
    for j, t in enumerate(tn):
        g = m["marginals"][t]
        w1 = stats.wasserstein_distance(g32[:, j], r32[:, j])
        check(abs(g.attrs["w1"] - w1) <= 1e-9 * max(w1, 1e-30) + 1e-12, f"W1 {t} = scipy ({w1:.4g})")
        e = g["edges"][:]
        hg, _ = np.histogram(g32[:, j], e)
        hr, _ = np.histogram(r32[:, j], e)
        p, q = hg / hg.sum(), hr / hr.sum()
        k = p + q > 0
        sep = 0.5 * np.sum((p[k] - q[k]) ** 2 / (p[k] + q[k]))
        check(abs(g.attrs["sep"] - sep) < 1e-12, f"separation power {t} = numpy ({sep:.3g})")
        dens = g["density_gen"][:]
        check(np.allclose(dens, hg / (n * np.diff(e))), f"density {t}")
    # the wider generated ET response is seen; the others agree within their errors
    s0 = m["marginals/d_et1"].attrs
    check(s0["sep"] > 10 * s0["sep_err"], "d_et1 (20 % wider) separated")
    # core width of d_et1 in the ET bins: 1.2 * 2 GeV generated, 2 GeV reference
    res = m["cnf/resolution/et"]
    sg, sge, sr, sre = (res[k][0] for k in ("sigma_gen", "sigma_gen_err", "sigma_ref", "sigma_ref_err"))
    check(np.all(np.abs(sg - 2.4) < 4 * sge), f"core width generated {np.round(sg, 3)} ~ 2.4")
    check(np.all(np.abs(sr - 2.0) < 4 * sre), f"core width reference {np.round(sr, 3)} ~ 2.0")
    et_edges = res["edges"][0]
    want = np.quantile(cond[:, 0], np.linspace(0, 1, len(et_edges)))
    check(np.allclose(et_edges, want), "ET bin edges = quantiles of truth ET1")
    check(res["sigma_members"].shape == (2, 6, len(et_edges) - 1), "per-member resolution")
    # m_gg window statistics
    def mgg(r):
        m2 = 2 * r[:, 0] * r[:, 3] * (np.cosh(r[:, 2] - r[:, 5]) - np.cos(r[:, 1] - r[:, 4]))
        return np.sqrt(np.maximum(m2, 0))
    for tag, r in (("gen", reco[0]), ("ref", reco[1])):
        v = mgg(r.astype(np.float32).astype(np.float64))
        w = v[(v >= 120) & (v <= 130)]
        a = m["cnf/m_gg"].attrs
        check(abs(a[f"window_mean_{tag}"] - w.mean()) < 1e-6 * w.mean() and
              abs(a[f"window_sd_{tag}"] - w.std(ddof=1)) < 1e-5 * w.std(), f"m_gg window {tag}")
    cg, cr = m["cnf/corr_gen"][:], m["cnf/corr_ref"][:]
    check(np.allclose(cg, np.corrcoef(g32.T), atol=1e-9) and np.allclose(cr, np.corrcoef(r32.T), atol=1e-9),
          "correlation matrices = numpy.corrcoef")
    check(abs(cr[0, 3] - 0.5) < 0.02, f"rho(d_et1, d_et2) = {cr[0, 3]:.3f} ~ 0.5")
    tf, tfe = m["cnf/tail_fraction_ref"][0], m["cnf/tail_fraction_ref_err"][0]
    check(abs(tf - stats.norm.cdf(-3)) < 4 * tfe + 2e-4, f"Gaussian tail below -3 sigma {tf:.5f}")
    auc, auc_err = m.attrs["auc"], m.attrs["auc_err"]
    check(0.5 + 3 * auc_err < auc < 0.75, f"classifier AUC {auc:.3f} +- {auc_err:.3f} (one wider column)")

# same distribution everywhere: the classifier is at chance level
write_samples("same.h5", draw(n, 1.0), ref, cond, ["et1", "et2", "eta1", "eta2", "mu"], tn, member)
rc, out = run("-samples", "same.h5", "-o", "same_metrics.h5", "-clf_epochs", "10")
check(rc == 0, "evaluate identical distributions")
with h5py.File("same_metrics.h5") as m:
    auc, e = m.attrs["auc"], m.attrs["auc_err"]
    check(abs(auc - 0.5) < 4 * e, f"classifier AUC {auc:.3f} +- {e:.3f} ~ 0.5")
    check(m.attrs["kind"] == "generic", "no reco: generic kind")

# ---- 2. images ------------------------------------------------------------------------------
ni = 600
R, W = 16, 8
imgs = rng.uniform(0, 1, size=(2, ni, R * W))  # noise far below the 400 MeV cluster threshold
for s in range(2):
    for i in range(ni):
        im = imgs[s, i].reshape(R, W)
        r0, c0 = rng.integers(2, 5), rng.integers(1, 7)
        im[r0, c0] += 5000
        im[r0 + 1, c0] += 1000
        im[12, 4] += 800 if i % 2 == 0 else 0     # a second cluster on even images
imgs = imgs.astype(np.float32).astype(np.float64)
cond_i = np.column_stack([rng.uniform(0.5, 1.5, ni), rng.uniform(50, 90, ni), rng.uniform(2e4, 1e5, ni)])
write_samples("img_samples.h5", imgs[0], imgs[1], cond_i, ["thickness", "distance", "energy"],
              [f"c{j}" for j in range(R * W)], np.arange(ni) % 3, prep="paraflow")
rc, out = run("-samples", "img_samples.h5", "-o", "img_metrics.h5", "-clf_epochs", "3")
check(rc == 0, "evaluate image samples")
with h5py.File("img_metrics.h5") as m:
    check(m.attrs["kind"] == "images", "kind images")
    check(np.allclose(m["images/mean_gen"][:], imgs[0].mean(0).reshape(R, W)), "average image")
    nc = m["images/shapes/n_clusters"]
    e = nc["edges"][:]
    h, _ = np.histogram(np.where(np.arange(ni) % 2 == 0, 2, 1), e)
    check(np.allclose(nc["density_ref"][:], h / (ni * np.diff(e))), "cluster counts 2 / 1")
    # R9: everything but the noise outside the 3x3 and the far cluster
    def r9(im):
        im = im.reshape(R, W)
        r, c = np.unravel_index(np.argmax(im), im.shape)
        return im[max(r - 1, 0):r + 2, max(c - 1, 0):c + 2].sum() / im.sum()
    want = np.mean([r9(x) for x in imgs[1]])
    check(abs(m["images/shapes/r9"].attrs["mean_ref"] - want) < 1e-9, f"R9 mean {want:.4f}")
    check(m["images/shapes/r9/grid_mean_ref"].shape == (4, 4), "(d, b) grid of means")
    check(m["images/shapes/r9/density_members"].shape[0] == 3, "three members' bands")

# ---- 3. bad inputs --------------------------------------------------------------------------
with h5py.File("foreign.h5", "w") as f:
    f.attrs["generator"] = "hgg"
    f.create_dataset("x", data=np.zeros((10, 2)))
for name, args, msg in (("foreign", ["-samples", "foreign.h5"], "not a samples file"),
                        ("missing", ["-samples", "missing.h5"], "missing.h5")):
    rc, out = run(*args, "-o", "bad.h5")
    errs = [l for l in out.splitlines() if "error" in l]
    check(rc != 0 and len(errs) == 1 and msg in errs[0], f"{name}: one-line error")
    check(not any(p.startswith("bad.h5") for p in os.listdir(".")), f"{name}: no output left")

print("FAIL" if fails else "PASS: evaluate", len(fails), "failure(s)")
sys.exit(1 if fails else 0)
