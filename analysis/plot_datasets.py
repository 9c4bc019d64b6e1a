#!/usr/bin/python3
"""Distributions of cnflow dataset files (README "Datasets"), chosen by the `generator` attribute.

usage: plot_datasets.py FILE.h5 [FILE.h5 ...] [-o DIR] [--max-rows N]

Outputs are named after the file's stem (STEM = hgg for hgg.h5):
  hgg          STEM_truth.png: truth kinematics (photon ET, η, pile-up μ, mγγ, pT of the Higgs);
               STEM_residuals.png: reco − truth of photon-1 ET, η, φ for the four scenarios
               (gauss, corr_a, corr_b, asym: the asymmetric scenario's low tail shows here)
  calo-photon  STEM_images.png: average 16 × 8 window (and 24 × 24 full image when
               stored), log colour scale in MeV; STEM_conditions.png: E, d, b
  calo-pion    STEM_layers.png: the six layer energies; STEM_response.png: the sum of the
               layers over E_inc against E_inc (EM scale, so below 1 for pions)
Reads at most --max-rows rows (default 200000) from the start of each file.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnflow_plot as cp  # noqa: E402


def _read(f, path, n):
    if path not in f:
        raise cp.MissingInput(f"{f.filename}: no dataset /{path}")
    d = f[path]
    cols, units = cp.columns_of(d)
    return d[:n], cols, units


def _stem(f):
    return os.path.splitext(os.path.basename(f.filename))[0]


def plot_hgg(f, out_dir, n):
    stem = _stem(f)
    truth, cols, units = _read(f, "truth", n)
    want = ["et1", "et2", "eta1", "eta2", "mu", "m_gg", "pt_H", "y_H"]
    fig, axes = cp.plt.subplots(2, 4, figsize=(14, 6))
    for ax, name in zip(axes.ravel(), want):
        if name not in cols:
            ax.set_visible(False)
            continue
        j = cols.index(name)
        v = truth[:, j]
        lo, hi = np.percentile(v, [0.1, 99.9]) if name != "m_gg" else (124.98, 125.02)
        ax.hist(v, bins=60, range=(lo, hi), histtype="stepfilled", alpha=0.6,
                label=f"truth ({len(v)} events)")
        ax.set_xlabel(cp.label(name, units[j]))
        ax.set_ylabel("events / bin")
        ax.legend()
    fig.suptitle(f"hgg truth kinematics: {os.path.basename(f.filename)}")
    fig.tight_layout()
    done = [cp.save(fig, os.path.join(out_dir, f"{stem}_truth.png"))]

    scen = [g for g in ("gauss", "corr_a", "corr_b", "asym") if f"{g}/target" in f]
    if scen:
        fig, axes = cp.plt.subplots(1, 3, figsize=(13, 3.8))
        for k, g in enumerate(scen):
            t, tc, tu = _read(f, f"{g}/target", n)
            for ax, name in zip(axes, ("d_et1", "d_eta1", "d_phi1")):
                j = tc.index(name)
                v = t[:, j]
                lim = np.percentile(np.abs(v), 99.5)
                ax.hist(v, bins=80, range=(-lim, lim), histtype="step", lw=1.2,
                        color=cp.MEMBER_COLOURS[k], label=g)
                ax.set_xlabel(cp.label(name.replace("d_", "reco − truth ").replace("1", " (γ1)"),
                                       tu[j]))
                ax.set_ylabel("events / bin")
                ax.set_yscale("log")
                ax.legend()
        fig.suptitle("hgg detector response per scenario (target = reco − truth)")
        fig.tight_layout()
        done.append(cp.save(fig, os.path.join(out_dir, f"{stem}_residuals.png")))
    return done


def plot_photon(f, out_dir, n):
    stem = _stem(f)
    sh, _, units = _read(f, "showers", n)
    unit = units[0] if units else ""
    desc = cp.s(f["showers"].attrs.get("description", ""))
    ny, nx = (8, 16) if "8 (y) x 16 (x)" in desc or "8 (y) × 16 (x)" in desc else (16, 8)
    imgs = [("average window", sh.mean(axis=0).reshape(ny, nx))]
    if "images_full" in f:
        full = f["images_full"][:n]
        imgs.append(("average full image", full.mean(axis=0).reshape(24, 24)))
    fig, axes = cp.plt.subplots(1, len(imgs), figsize=(4.8 * len(imgs), 5.2), squeeze=False)
    for ax, (title, im) in zip(axes[0], imgs):
        pos = im[im > 0]
        vmin = max(pos.min(), pos.max() * 1e-5) if pos.size else 1e-3
        m = ax.imshow(np.maximum(im, vmin), origin="lower", aspect="equal",
                      norm=cp.matplotlib.colors.LogNorm(vmin=vmin, vmax=max(im.max(), vmin * 10)),
                      cmap="inferno")
        ax.set_xlabel("crystal x index")
        ax.set_ylabel("crystal y index (bending)")
        ax.set_title(f"{title} ({len(sh)} showers)" + ("\n(smeared along x by the gun spread)" if "full" in title else ""))
        ax.grid(False)
        cb = fig.colorbar(m, ax=ax, shrink=0.85)
        cb.set_label(cp.label("mean crystal energy", unit))
    fig.suptitle(f"calo-photon: {os.path.basename(f.filename)}")
    done = [cp.save(fig, os.path.join(out_dir, f"{stem}_images.png"))]
    if "conditions" in f:
        c, cc, cu = _read(f, "conditions", n)
        fig, axes = cp.plt.subplots(1, c.shape[1], figsize=(4.2 * c.shape[1], 3.4))
        for j, ax in enumerate(np.atleast_1d(axes)):
            ax.hist(c[:, j], bins=30, histtype="stepfilled", alpha=0.6, label=f"{len(c)} showers")
            ax.set_xlabel(cp.label(cc[j], cu[j]))
            ax.set_ylabel("showers / bin")
            ax.legend()
        fig.suptitle("calo-photon conditions (thickness d, distance b, energy E)")
        fig.tight_layout()
        done.append(cp.save(fig, os.path.join(out_dir, f"{stem}_conditions.png")))
    return done


def plot_pion(f, out_dir, n):
    stem = _stem(f)
    lay, cols, units = _read(f, "layers", n)
    e, _, eu = _read(f, "incident_energies", n)
    e = e[:, 0]
    fig, axes = cp.plt.subplots(2, 3, figsize=(12, 6.4))
    for j, ax in enumerate(axes.ravel()):
        v = lay[:, j]
        pos = v[v > 0]
        if pos.size:
            bins = np.logspace(np.log10(max(pos.min(), pos.max() * 1e-6)), np.log10(pos.max()), 60)
            ax.hist(pos, bins=bins, histtype="stepfilled", alpha=0.6,
                    label=f"{len(v)} events ({np.mean(v <= 0):.1%} ≤ 0)")
            ax.set_xscale("log")
        ax.set_xlabel(cp.label(f"{cols[j]} ({'ECAL' if j < 3 else 'HCAL'} layer {j % 3})", units[j]))
        ax.set_ylabel("events / bin")
        ax.legend()
    fig.suptitle(f"calo-pion layer energies (EM scale): {os.path.basename(f.filename)}")
    fig.tight_layout()
    done = [cp.save(fig, os.path.join(out_dir, f"{stem}_layers.png"))]

    if np.ptp(e) <= 0:  # a fixed-energy file: no response curve against E_inc
        return done
    fig, ax = cp.plt.subplots(figsize=(6.4, 4.2))
    r = lay.sum(axis=1) / e
    ax.grid(False)
    *_, hm = ax.hist2d(e, r, bins=(40, 60), range=((e.min(), e.max() + 1e-9),
                                          tuple(np.percentile(r, [0.2, 99.8]))),
              cmap="Blues", cmin=1)
    fig.colorbar(hm, ax=ax).set_label("events / bin")
    edges = np.linspace(e.min(), e.max() + 1e-9, 11)
    idx = np.digitize(e, edges) - 1
    ctr = 0.5 * (edges[1:] + edges[:-1])
    med = [np.median(r[idx == i]) if np.any(idx == i) else np.nan for i in range(10)]
    ax.plot(ctr, med, "o-", color="C3", label="median per E_inc bin")
    ax.set_xlabel(cp.label("E_inc", eu[0]))
    ax.set_ylabel(r"$\sum_\mathrm{layers} E_i / E_\mathrm{inc}$ [–]")
    ax.set_title("pion response on the EM scale")
    ax.legend()
    done.append(cp.save(fig, os.path.join(out_dir, f"{stem}_response.png")))
    return done


PLOTTERS = {"hgg": plot_hgg, "calo-photon": plot_photon, "calo-pion": plot_pion}


def plot_file(path, out_dir, n=200000):
    import h5py
    if not os.path.exists(path):
        raise cp.MissingInput(f"{path}: not found")
    with h5py.File(path, "r") as f:
        gen = cp.s(f.attrs.get("generator", ""))
        if gen not in PLOTTERS:
            raise cp.MissingInput(f"{path}: generator '{gen}' has no dataset figures")
        return PLOTTERS[gen](f, out_dir, n)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("files", nargs="+")
    ap.add_argument("-o", default=".", help="output directory")
    ap.add_argument("--max-rows", type=int, default=200000)
    a = ap.parse_args(argv)
    os.makedirs(a.o, exist_ok=True)
    rc = 0
    for p in a.files:
        try:
            plot_file(p, a.o, a.max_rows)
        except (cp.MissingInput, ValueError, OSError, KeyError) as e:
            print(f"plot_datasets: error: {e}", file=sys.stderr)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
