"""End-to-end check of an hgg file written by `cnflow generate hgg` on several ranks, read with
h5py: layout, column names and units, reco = truth + target, target_scaled = target / constants,
folds, and the per-scenario rejected fractions of finalize (MPI_Allreduce'd counts) against a
recount from the file.

usage: hgg_check_h5py.py FILE N_EVENTS
"""
import sys

import h5py
import numpy as np

SCENARIOS = ["gauss", "corr_a", "corr_b", "asym"]
PHOTON = ["et1", "eta1", "phi1", "et2", "eta2", "phi2"]
TARGET = ["d_et1", "d_phi1", "d_eta1", "d_et2", "d_phi2", "d_eta2"]
SCALE = np.array([20.0, 0.01, 0.005] * 2)


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)


def columns(d):
    return [c.decode() if isinstance(c, bytes) else c for c in d.attrs["columns"]]


def main(path, n):
    f = h5py.File(path, "r")
    check(f.attrs["generator"] == "hgg", "generator attribute")
    truth = f["truth"]
    check(truth.shape == (n, 10) and truth.dtype == np.float64, "truth shape/dtype")
    check(columns(truth) == PHOTON + ["mu", "m_gg", "pt_H", "y_H"], "truth columns")
    t = truth[:]
    check(np.all(t[:, 0] > 20) and np.all(t[:, 3] > 20) and np.all(t[:, 0] >= t[:, 3]), "ET selection/order")
    check(np.all(np.abs(t[:, [1, 4]]) < 2.5), "eta selection")
    check(np.all((t[:, 6] >= 0) & (t[:, 6] <= 40)), "mu range")
    check(np.all(np.abs(t[:, 7] - 125.0) < 0.0101), "truth m_gg")
    fold = f["fold"][:, 0]
    check(fold.min() >= 0 and fold.max() <= 9, "fold range")
    check(abs(np.mean(fold == 0) - 0.1) < 5 * np.sqrt(0.09 / n), "test fold 10 %")
    sigma = f["sigma"][:]
    acc = n / f["attempts"][:, 0].sum()
    check(abs(truth.attrs["acceptance"] - acc) < 1e-12, "acceptance attribute")
    for s in SCENARIOS:
        reco, target, scaled = (f[s + "/" + k][:].astype(np.float64) for k in ("reco", "target", "target_scaled"))
        check(columns(f[s + "/reco"]) == PHOTON, s + " reco columns")
        check(columns(f[s + "/target"]) == TARGET, s + " target columns")
        check([u.decode() if isinstance(u, bytes) else u for u in f[s + "/target"].attrs["units"]]
              == ["GeV", "rad", "", "GeV", "rad", ""], s + " target units")
        # float32 storage: compare at float32 precision
        for p in range(2):
            check(np.allclose(reco[:, 3 * p], t[:, 3 * p] + target[:, 3 * p], rtol=1e-6, atol=1e-4), s + " reco ET")
            check(np.allclose(reco[:, 3 * p + 1], t[:, 3 * p + 1] + target[:, 3 * p + 2], atol=1e-6), s + " reco eta")
            dphi = np.angle(np.exp(1j * (reco[:, 3 * p + 2] - t[:, 3 * p + 2])))
            check(np.allclose(dphi, target[:, 3 * p + 1], atol=1e-6), s + " reco phi")
        check(np.allclose(scaled, target / SCALE, rtol=1e-6, atol=1e-7), s + " target_scaled")
        pull = target[:, 0] / sigma[:, 0]
        check(abs(pull.mean() - (-0.48 if s == "asym" else 0.0)) < 5 * pull.std() / np.sqrt(n), s + " ET pull mean")
        rejected = np.any(np.abs(scaled) >= 1.0, axis=1)
        det = np.any(np.abs(target[:, [0, 3]]) > 20.0, axis=1)
        g = f[s]
        # float32 rounding may move an event across |scaled| = 1: allow a few
        check(abs(int(g.attrs["n_rejected"]) - int(rejected.sum())) <= 3, s + " n_rejected")
        check(abs(g.attrs["rejected_fraction"] - g.attrs["n_rejected"] / n) < 1e-15, s + " rejected_fraction")
        check(abs(int(g.attrs["n_rejected_det_cut"]) - int(det.sum())) <= 3, s + " n_rejected_det_cut")
    c = f["corr_b/target"][:, [0, 3]] / sigma[:, [0, 3]]
    check(np.allclose(c[:, 0], c[:, 1], rtol=1e-5, atol=1e-5), "corr_b: Delta2' = Delta1")
    check(f["corr_a"].attrs["rho"] == 0.5 and f["corr_b"].attrs["rho"] == 1.0, "rho attributes")
    print("PASS: hgg file %s with %d events" % (path, n))


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
