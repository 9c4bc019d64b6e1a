#!/usr/bin/python3
"""Calibration figures from `cnflow bias` outputs (README "cnflow bias": bias.h5 layout).

usage: plot_calibration.py BIAS.h5 [BIAS.h5 ...] [-o PREFIX]

Every row of every file is one fixed-true-energy sample of one method ("flow" from `cnflow scan`,
"regression" from the MSE baseline, same layout) and one training prior.  Rows are grouped by
(method, prior) into series, ordered by E_true.  Writes
  PREFIX_mode.png        mode(E_pred/E_true) (bootstrap KDE) ± its bootstrap error vs E_true
  PREFIX_resolution.png  full resolution (percentile half-width of E_pred/E_true, ± error) and the
                         mean per-shower resolution (68 % interval half-width / E_true, band = its
                         sd over showers) vs E_true; regression has no per-shower interval
  PREFIX_asymmetry.png   histograms of Δ_L/Δ_U = (E_pred − E_lo)/(E_hi − E_pred) per energy
                         (flow series), normalised to unit area, medians marked
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnflow_plot as cp  # noqa: E402

STYLE = {"flow": "o-", "regression": "s--"}


def load(paths):
    rows = []
    for p in paths:
        b = cp.read_group(p, "bias")
        fmt = b["_attrs"].get("format", "")
        if fmt != "cnflow-bias":
            raise ValueError(f"{p}: format attribute '{fmt}', expected 'cnflow-bias'")
        for i in range(len(b["mode"])):
            rows.append({k: (v[i] if isinstance(v, np.ndarray) and v.ndim >= 1 and
                             k != "asym_edges" else v) for k, v in b.items() if k != "_attrs"})
    if not rows:
        raise cp.MissingInput("no rows in the bias files")
    return rows


def series(rows):
    """{(method, prior): rows sorted by e_true_mean}, in a stable order (flow first)."""
    out = {}
    for r in rows:
        out.setdefault((str(r["method"]), str(r["prior"])), []).append(r)
    for k in out:
        out[k].sort(key=lambda r: r["e_true_mean"])
    return dict(sorted(out.items(), key=lambda kv: (kv[0][0] != "flow", kv[0])))


def name(key):
    m, p = key
    return f"{m}, {p} prior" if p else m


def col(rs, k):
    return np.array([r[k] for r in rs], dtype=float)


def plot_mode(ser, out):
    fig, ax = cp.plt.subplots(figsize=(6.4, 4.2))
    for i, (key, rs) in enumerate(ser.items()):
        e = col(rs, "e_true_mean")
        ax.errorbar(e, col(rs, "mode"), yerr=col(rs, "mode_err"), fmt=STYLE.get(key[0], "^-"),
                    color=cp.MEMBER_COLOURS[i % 10], ms=4, capsize=2, label=name(key))
    ax.axhline(1.0, color="k", lw=0.8, ls=":")
    ax.set_xlabel(r"$E_\mathrm{true}$ [GeV]")
    ax.set_ylabel(r"mode($E_\mathrm{pred}/E_\mathrm{true}$) [–]")
    ax.set_title("bias: KDE mode of the response (error: bootstrap sd)")
    ax.legend()
    return cp.save(fig, out)


def plot_resolution(ser, out):
    fig, ax = cp.plt.subplots(figsize=(6.4, 4.2))
    for i, (key, rs) in enumerate(ser.items()):
        c = cp.MEMBER_COLOURS[i % 10]
        e = col(rs, "e_true_mean")
        ax.errorbar(e, col(rs, "res_full"), yerr=col(rs, "res_full_err"),
                    fmt=STYLE.get(key[0], "^-"), color=c, ms=4, capsize=2,
                    label=f"{name(key)}: full")
        m, sd = col(rs, "res_shower_mean"), col(rs, "res_shower_std")
        if np.any(np.isfinite(m)):
            ax.plot(e, m, "v:", color=c, ms=4, label=f"{name(key)}: per-shower mean")
            ax.fill_between(e, m - sd, m + sd, color=c, alpha=0.15, lw=0,
                            label=f"{name(key)}: per-shower ±1 sd")
    ax.set_xlabel(r"$E_\mathrm{true}$ [GeV]")
    ax.set_ylabel(r"relative resolution $\sigma_E/E$ [–]")
    ax.set_ylim(bottom=0)
    ax.set_title("resolution: full (percentiles) vs per-shower (68 % intervals)")
    ax.legend()
    return cp.save(fig, out)


def plot_asymmetry(ser, out):
    flows = [(k, rs) for k, rs in ser.items() if any(r["n_intervals"] > 0 for r in rs)]
    if not flows:
        raise cp.MissingInput("no series with per-shower intervals (asymmetry needs flow scans)")
    fig, axes = cp.plt.subplots(1, len(flows), figsize=(5.6 * len(flows), 4), squeeze=False)
    for ax, (key, rs) in zip(axes[0], flows):
        cmap = cp.plt.get_cmap("viridis")
        for j, r in enumerate(rs):
            h = np.asarray(r["asym_hist"], dtype=float)
            edges = np.asarray(r["asym_edges"], dtype=float)
            if h.sum() == 0:
                continue
            dens = h / (h.sum() * np.diff(edges))
            col_ = cmap(0.85 * j / max(1, len(rs) - 1))  # viridis yellow is unreadable on white
            ax.stairs(dens, edges, color=col_,
                      label=f"{r['e_true_mean']:.0f} GeV (median {r['asym_median']:.2f})")
            ax.axvline(r["asym_median"], color=col_, lw=0.8, ls="--")
        ax.axvline(1.0, color="k", lw=0.8, ls=":")
        ax.set_xlabel(r"$\Delta_L/\Delta_U = (E_\mathrm{pred}-E_\mathrm{lo})/(E_\mathrm{hi}-E_\mathrm{pred})$ [–]")
        ax.set_ylabel("showers (normalised) [1 / unit]")
        ax.set_title(f"interval asymmetry: {name(key)}")
        ax.legend(fontsize=7)
    return cp.save(fig, out)


def plot_all(paths, prefix):
    ser = series(load(paths))
    done, missing = [], []
    for fn, suffix in ((plot_mode, "mode"), (plot_resolution, "resolution"),
                       (plot_asymmetry, "asymmetry")):
        try:
            done.append(fn(ser, f"{prefix}_{suffix}.png"))
        except cp.MissingInput as e:
            missing.append(f"{prefix}_{suffix}.png: {e}")
    return done, missing


def table(paths):
    """Rows for the report's bias table."""
    out = []
    for r in sorted(load(paths), key=lambda r: (r["method"], r["prior"], r["e_true_mean"])):
        out.append([os.path.basename(str(r["file"])), str(r["method"]), str(r["prior"]),
                    f"{r['e_true_mean']:.2f}", f"{r['mode']:.4f} ± {r['mode_err']:.4f}",
                    f"{r['res_full']:.4f} ± {r['res_full_err']:.4f}",
                    f"{r['res_shower_mean']:.4f}", f"{r['asym_median']:.3f}",
                    "/".join(str(int(x)) for x in r["flag_counts"]) + f" ({int(r['n_showers'])})"])
    return ["file", "method", "prior", "E_true [GeV]", "mode ± err", "full res ± err",
            "res/shower", "asym median", "flags b0/b1/b2/b3 (N)"], out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bias", nargs="+")
    ap.add_argument("-o", default="calibration", help="output prefix (default: calibration)")
    a = ap.parse_args(argv)
    try:
        _, missing = plot_all(a.bias, a.o)
    except (cp.MissingInput, ValueError, OSError, KeyError) as e:
        print(f"plot_calibration: error: {e}", file=sys.stderr)
        return 1
    for m in missing:
        cp.warn(f"skipped {m}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
