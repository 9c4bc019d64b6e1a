#!/usr/bin/python3
"""Figures of a `cnflow evaluate` output (metrics.h5; layout in src/infer/evaluate.c and README
"cnflow evaluate"), generated against reference events.

usage: plot_metrics.py METRICS.h5 [-o PREFIX]

PREFIX defaults to the metrics file's path without ".h5".  Written (those the file has data for):
  every kind  PREFIX_marginals.png    each target column: reference (histogram, Poisson errors),
                                      generated (line) with the ±1 sd band over ensemble members
                                      (density_members), ratio panel gen/ref with errors
  hgg         PREFIX_resolution_<v>.png  core width of each response (ΔE_T, Δφ, Δη; photons 1, 2)
                                      in equal-population bins of v = et, abs_eta, mu: reference
                                      points, generated line with the member band, ratio panel
              PREFIX_mgg_ptgg.png     m_γγ (window [120, 130] GeV: mean and SD) and p_T,γγ
              PREFIX_correlations.png response correlation matrices gen, ref and gen − ref
              PREFIX_tails.png        fraction below the reference core mean − 3σ, per response
  images      PREFIX_images.png       average images gen / ref (log colour scale, MeV) and the
                                      relative difference (gen − ref)/ref
              PREFIX_shapes.png       shower shapes (inclusive) with ratio panels
              PREFIX_shapes_thickness.png, PREFIX_shapes_distance.png  the same per d / b bin
              PREFIX_shape_grids.png  mean of every shape on the 4 × 4 (d, b) grid: gen, ref, ratio
A figure whose data are missing is skipped with a warning.  headline(path) gives the report's
numbers (kind, events, members, mean W1, mean separation power, AUC ± err, kind specifics).
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnflow_plot as cp  # noqa: E402

# the CNF study's target order (src/sim/hgg.c target_cols): the order of corr_* and sigma_* rows
# when the samples file is not at hand to give it (HDF5 lists groups alphabetically)
CNF_ORDER = ["d_et1", "d_phi1", "d_eta1", "d_et2", "d_phi2", "d_eta2"]
SHAPES = ["e_total", "e_max1", "e_max2", "width", "r9", "n_clusters"]
SHAPE_LABEL = {"e_total": ("total energy $E_\\mathrm{tot}$", "MeV"),
               "e_max1": ("brightest crystal $E_\\mathrm{max,1}$", "MeV"),
               "e_max2": ("second brightest crystal $E_\\mathrm{max,2}$", "MeV"),
               "width": ("shower width (energy-weighted)", "crystals"),
               "r9": ("$R_9$ (3 × 3 around the brightest / total)", ""),
               "n_clusters": ("DBSCAN clusters", "")}
RES_VARS = {"et": ("photon truth $E_T$", "GeV"), "abs_eta": ("photon truth $|\\eta|$", ""),
            "mu": ("pile-up $\\mu$", "")}
RES_PLAIN = {"et": "photon truth E_T", "abs_eta": "photon truth |η|", "mu": "pile-up μ"}
MAT_LABEL = {"thickness": ("d", "X$_0$"), "distance": ("b", "cm")}
C_GEN, C_REF = "C0", "0.25"


# ---------------------------------------------------------------- reading

def _open(path):
    import h5py
    if not os.path.exists(path):
        raise cp.MissingInput(f"{path}: not found")
    f = h5py.File(path, "r")
    fmt = cp.s(f.attrs.get("format", ""))
    if fmt != "cnflow-metrics":
        f.close()
        raise ValueError(f"{path}: format attribute '{fmt}', expected 'cnflow-metrics'")
    return f


def _attr(node, name, default=np.nan):
    v = node.attrs.get(name, default)
    if isinstance(v, (bytes, str, np.bytes_)):
        return cp.s(v)
    return float(np.asarray(v).ravel()[0]) if np.size(v) else default


def _grp(f, path):
    if path not in f:
        raise cp.MissingInput(f"{os.path.basename(f.filename)}: no /{path}")
    return f[path]


def read_compare(g):
    """A comparison group (compare_1d in evaluate.c) as a dict of arrays and attributes."""
    need = ("edges", "density_gen", "density_ref", "err_gen", "err_ref")
    for k in need:
        if k not in g:
            raise cp.MissingInput(f"{g.name}: no dataset {k}")
    d = {k: np.asarray(g[k][()], dtype=float) for k in need}
    d["members"] = (np.asarray(g["density_members"][()], dtype=float)
                    if "density_members" in g else d["density_gen"][None, :])
    for k in ("w1", "w1_members_sd", "w1_floor", "sep", "sep_err", "mean_gen", "mean_ref",
              "sd_gen", "sd_ref"):
        d[k] = _attr(g, k)
    d["attrs"] = {k: _attr(g, k) for k in g.attrs}
    return d


def target_order(f):
    """Target column names in the order of the file's (D, ...) arrays.  The marginals are HDF5
    groups (listed alphabetically), so the order comes from the samples file's columns attribute
    when it can be found, else from the CNF study's order when the names are that set."""
    import h5py
    names = list(f["marginals"]) if "marginals" in f else []
    samples = cp.s(f.attrs.get("samples", ""))
    here = os.path.dirname(os.path.abspath(f.filename))
    for p in (samples, os.path.join(here, samples), os.path.join(here, os.path.basename(samples))):
        if not samples or not os.path.isfile(p):
            continue
        try:
            with h5py.File(p, "r") as sf:
                cols = [cp.s(c) for c in sf["generated/target"].attrs["columns"]]
            if sorted(cols) == sorted(names) or not names:
                return cols
        except (OSError, KeyError):
            pass
    if sorted(names) == sorted(CNF_ORDER):
        return list(CNF_ORDER)
    if names and cp.s(f.attrs.get("kind", "")) == "hgg":
        cp.warn(f"{f.filename}: target order unknown (samples file not found): alphabetical")
    return names


def col_label(name):
    """(axis label, unit) of a target column or derived quantity."""
    if name in SHAPE_LABEL:
        return SHAPE_LABEL[name]
    p = name[-1] if name[-1:].isdigit() else ""
    ph = f" γ{p}" if p else ""
    if name.startswith("d_eta"):
        return f"$\\Delta\\eta${ph} (reco − truth)", ""
    if name.startswith("d_phi"):
        return f"$\\Delta\\phi${ph} (reco − truth)", "rad"
    if name.startswith("d_et"):
        return f"$\\Delta E_T${ph} (reco − truth)", "GeV"
    if name == "m_gg":
        return "$m_{\\gamma\\gamma}$", "GeV"
    if name == "pt_gg":
        return "$p_{T,\\gamma\\gamma}$", "GeV"
    return name, ""


def _lab(name):
    t, u = col_label(name)
    return f"{t} [{u}]" if u else f"{t} [–]"


def _dens_lab(name, k=0):
    u = col_label(name)[1]
    sc = f"10$^{{{-k}}}$" if k else ""
    return f"density [{sc}/{u}]" if u and sc else f"density [1/{u}]" if u else \
        f"density [{sc}]" if sc else "density [–]"


def _pow10(vmax):
    """Exponent k such that vmax * 10^k lies in [1, 1000): a scale written into the axis label
    instead of matplotlib's offset text (which collides with the panel's annotations)."""
    if not np.isfinite(vmax) or vmax <= 0 or 1e-2 <= vmax < 1e4:
        return 0
    return -int(np.floor(np.log10(vmax) / 3) * 3)


# ---------------------------------------------------------------- drawing pieces

def compare_axes(fig, n, ncol, outer_kw=None, ratio=True, top_in=0.75):
    """n (main, ratio) axis pairs on a grid of ncol columns; the ratio axis shares x.  top_in:
    inches above the grid (suptitle, panel titles, a figure legend)."""
    nrow = (n + ncol - 1) // ncol
    h = fig.get_size_inches()[1]
    w = fig.get_size_inches()[0]
    kw = {"hspace": 0.42, "wspace": 0.28, "top": 1 - top_in / h, "bottom": 0.55 / h,
          "left": 0.75 / w, "right": 1 - 0.2 / w}
    kw.update(outer_kw or {})
    outer = fig.add_gridspec(nrow, ncol, **kw)
    pairs = []
    for i in range(n):
        if ratio:
            inner = outer[i // ncol, i % ncol].subgridspec(2, 1, height_ratios=[3, 1], hspace=0.06)
            ax = fig.add_subplot(inner[0])
            rax = fig.add_subplot(inner[1], sharex=ax)
            ax.tick_params(labelbottom=False)
        else:
            ax, rax = fig.add_subplot(outer[i // ncol, i % ncol]), None
        pairs.append((ax, rax))
    return pairs


def _eb(ax, x, y, yerr, xerr=None, **kw):
    """errorbar of the finite points only (matplotlib warns on all-NaN error arrays); a finite
    value without a finite error (a ratio of 0) is drawn as a bare marker."""
    x, y, yerr = (np.asarray(a, dtype=float) for a in (x, y, yerr))
    ok = np.isfinite(x) & np.isfinite(y)
    both = ok & np.isfinite(yerr)
    xe = None
    if xerr is not None:
        xerr = np.asarray(xerr, dtype=float)
        xe = xerr[..., both]
    h = ax.errorbar(x[both], y[both], yerr=yerr[both], xerr=xe, **kw)
    bare = ok & ~both
    if bare.any():
        ax.plot(x[bare], y[bare], kw.get("fmt", "o")[:1] if kw.get("fmt") not in (None, "none")
                else ".", color=kw.get("color", kw.get("ecolor")), ms=kw.get("ms", 3))
    return h


def _step(a):
    """Values per bin -> values per edge for fill_between(step='post')."""
    a = np.asarray(a, dtype=float)
    return np.append(a, a[-1])


def draw_compare(ax, rax, d, name, legend=True, stats=True, xlabel=True):
    """Reference histogram with errors, generated line with the member band, ratio panel."""
    e, x = d["edges"], cp.bin_centres(d["edges"])
    K = d["members"].shape[0]
    mean, lo, hi, _ = cp.ensemble_band(list(d["members"]))
    top = np.nanmax(np.r_[d["density_ref"] + d["err_ref"], d["density_gen"], hi, 0.0])
    k = _pow10(top)
    f = 10.0 ** k
    ax.stairs(d["density_ref"] * f, e, fill=True, color=C_REF, alpha=0.18, label="reference")
    _eb(ax, x, d["density_ref"] * f, d["err_ref"] * f, fmt="none", ecolor=C_REF, elinewidth=0.9,
        capsize=0)
    ax.stairs(d["density_gen"] * f, e, color=C_GEN, lw=1.5, label="generated (all members)")
    if K > 1:
        ax.fill_between(e, _step(lo) * f, _step(hi) * f, step="post", color=C_GEN, alpha=0.25,
                        lw=0, label=f"members ±1 sd (K = {K})")
    ax.set_ylabel(_dens_lab(name, k))
    ax.set_ylim(bottom=0)
    inside = float(np.nansum(d["density_gen"] * np.diff(e)))
    if stats:
        txt = f"W1 = {d['w1']:.3g}"
        if np.isfinite(d["w1_floor"]):
            txt += f" (floor {d['w1_floor']:.2g})"
        txt += f"\nsep = {d['sep']:.3g} ± {d['sep_err']:.2g}" if np.isfinite(d["sep"]) else "\nsep = n/a"
        if inside < 0.99:
            txt += f"\ngen in range: {100 * inside:.0f} %"
        ax.text(0.02, 0.97, txt, transform=ax.transAxes, va="top", ha="left", fontsize=7,
                bbox={"facecolor": "white", "alpha": 0.75, "lw": 0})
    if legend:
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
    if rax is not None:
        r, re = cp.density_ratio(d["density_gen"], d["err_gen"], d["density_ref"], d["err_ref"])
        if K > 1:
            with np.errstate(invalid="ignore", divide="ignore"):
                den = np.where(d["density_ref"] > 0, d["density_ref"], np.nan)
                rax.fill_between(e, _step(lo / den), _step(hi / den), step="post", color=C_GEN,
                                 alpha=0.25, lw=0)
        _eb(rax, x, r, re, fmt=".", color=C_GEN, ms=3, elinewidth=0.8)
        rax.axhline(1.0, color="k", lw=0.8, ls=":")
        rax.set_ylim(0, 2)
        rax.set_yticks([0.5, 1.0, 1.5])  # no tick at 0 or 2: they collide with the main panel's
        rax.set_ylabel("gen / ref")
        _sci_x(rax)
        if xlabel:
            rax.set_xlabel(_lab(name))
    elif xlabel:
        ax.set_xlabel(_lab(name))


def _sci_x(ax):
    """Small values (Δφ, Δη ~ 1e-3) as a × 10^k offset instead of crowded long tick labels."""
    try:
        ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 6), useMathText=True)
    except AttributeError:  # a log or categorical axis has no scalar formatter
        pass


def _fig_legend(fig, ax):
    """One legend for a grid of like panels, under the suptitle (a panel's own legend would
    cover its annotations)."""
    h = fig.get_size_inches()[1]
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False,
               bbox_to_anchor=(0.5, 1 - 0.38 / h))


def _save_fixed(fig, path):
    """cp.save without bbox_inches="tight", for figures whose margins are laid out here: the
    tight bounding box draws the figure twice, seconds for the 48-axes figures."""
    tmp = path + ".tmp.png"
    fig.savefig(tmp, format="png")
    cp.plt.close(fig)
    os.replace(tmp, path)
    print(f"analysis: wrote {path}")
    return path


def _finish(fig, title, out, fixed=False):
    h = fig.get_size_inches()[1]
    fig.suptitle(title, y=1 - 0.12 / h, va="top")
    return _save_fixed(fig, out) if fixed else cp.save(fig, out)


def _title(f):
    return (f"{os.path.basename(os.path.dirname(os.path.abspath(f.filename)))}/"
            f"{os.path.basename(f.filename)}: {cp.s(f.attrs.get('kind', '?'))}, "
            f"{int(_attr(f, 'n_events', 0))} events, {int(_attr(f, 'members', 0))} members")


# ---------------------------------------------------------------- figures

def plot_marginals(f, out):
    g = _grp(f, "marginals")
    names = [n for n in target_order(f) if n in g]
    if not names:
        raise cp.MissingInput(f"{os.path.basename(f.filename)}: /marginals is empty")
    ncol = min(3, len(names))
    nrow = (len(names) + ncol - 1) // ncol
    fig = cp.plt.figure(figsize=(4.6 * ncol, 4.3 * nrow + 0.4))
    pairs = compare_axes(fig, len(names), ncol, top_in=1.05)
    for (ax, rax), n in zip(pairs, names):
        draw_compare(ax, rax, read_compare(g[n]), n, legend=False)
        ax.set_title(n)
    _fig_legend(fig, pairs[0][0])
    _finish(fig, f"marginals, generated vs reference — {_title(f)}", out, fixed=True)
    return (out, "Marginal distribution of every target column: reference as a histogram with "
            "Poisson errors, generated as a line with the ±1 sd band over the ensemble members; "
            "lower panels gen/ref. W1 (with its even/odd reference floor) and the separation "
            "power are printed in each panel.")


def plot_resolution(f, var, out):
    g = _grp(f, f"cnf/resolution/{var}")
    for k in ("edges", "sigma_gen", "sigma_gen_err", "sigma_ref", "sigma_ref_err"):
        if k not in g:
            raise cp.MissingInput(f"{g.name}: no {k}")
    edges = np.asarray(g["edges"][()], dtype=float)
    sg, sge = g["sigma_gen"][()], g["sigma_gen_err"][()]
    sr, sre = g["sigma_ref"][()], g["sigma_ref_err"][()]
    sm = g["sigma_members"][()] if "sigma_members" in g else sg[None]
    order = target_order(f)
    D = sg.shape[0]
    if len(order) != D:
        order = [f"c{j}" for j in range(D)]
    kinds = [k for k in ("d_et", "d_phi", "d_eta") if any(n.startswith(k) and n[len(k):].isdigit()
                                                           for n in order)]
    if not kinds:
        raise cp.MissingInput(f"{g.name}: no d_et/d_phi/d_eta responses among {order}")
    if not np.any(np.isfinite(sr)):
        raise cp.MissingInput(f"{g.name}: every core width is NaN (no binning column?)")
    fig = cp.plt.figure(figsize=(4.8 * len(kinds), 4.6))
    pairs = compare_axes(fig, len(kinds), len(kinds))
    xl, xu = RES_VARS.get(var, (var, ""))
    K = sm.shape[0]
    fin = edges[np.isfinite(edges)]
    logx = var == "et" and fin.size and fin.min() > 0 and fin.max() / fin.min() > 8
    for (ax, rax), kind in zip(pairs, kinds):
        ratios = []
        for p_i, p in enumerate(("1", "2")):
            if kind + p not in order:
                continue
            j = order.index(kind + p)
            # evaluate.c: row 0 of edges bins the first half of the columns (photon 1), row 1 the rest
            e = edges[0 if j < D // 2 else 1] if edges.ndim == 2 else edges
            if logx:  # equal-population E_T bins: the last one spans a decade, centre it in log
                x = np.sqrt(e[1:] * e[:-1])
                xerr = np.vstack([x - e[:-1], e[1:] - x])
                off = x * ((1.0 + 0.03 * (p_i - 0.5)) - 1.0)
            else:
                x, xerr = cp.bin_centres(e), 0.5 * np.diff(e)
                off = (p_i - 0.5) * 0.15 * xerr  # photons side by side inside a bin
            col = cp.MEMBER_COLOURS[2 * p_i]
            _eb(ax, x + off, sr[j], sre[j], xerr=xerr, fmt="o", ms=4, color=col, mfc="white",
                capsize=0, elinewidth=0.8, label=f"γ{p} reference")
            _eb(ax, x - off, sg[j], sge[j], fmt="s-", ms=3, color=col, lw=1.2, elinewidth=0.8,
                label=f"γ{p} generated")
            if K > 1:
                _, lo, hi, _ = cp.ensemble_band(list(sm[:, j, :]))
                ax.fill_between(x, lo, hi, color=col, alpha=0.2, lw=0,
                                label=f"γ{p} members ±1 sd (K = {K})")
            r, re = cp.density_ratio(sg[j], sge[j], sr[j], sre[j])
            _eb(rax, x - off, r, re, fmt="s-", ms=3, color=col, lw=1, elinewidth=0.8)
            ratios.append(r)
        rax.axhline(1.0, color="k", lw=0.8, ls=":")
        rax.set_ylabel("gen / ref")
        allr = np.concatenate(ratios + [np.array([0.8, 1.2])])
        lo_r, hi_r = np.nanmin(allr), np.nanmax(allr)
        pad = 0.1 * (hi_r - lo_r)
        rax.set_ylim(max(0.0, lo_r - pad), min(hi_r + pad, 20.0))
        rax.set_xlabel(f"{xl} [{xu}]" if xu else f"{xl} [–]")
        t, u = col_label(kind + "1")
        t = t.replace(" γ1", "")
        ax.set_ylabel(f"core width σ of {t.split(' (')[0]} [{u or '–'}]")
        ax.set_title(f"resolution of {t}")
        ax.set_ylim(bottom=0)
        if logx:
            ax.set_xscale("log")
            ticks = [t for t in (10, 20, 30, 50, 100, 200, 300, 500, 1000, 2000)
                     if fin.min() <= t <= fin.max()]
            rax.set_xticks(ticks)
            rax.set_xticklabels([str(t) for t in ticks])
            rax.xaxis.set_minor_formatter(cp.matplotlib.ticker.NullFormatter())
        ax.legend(fontsize=6.5, loc="best", framealpha=0.8)
    k = _attr(_grp(f, "cnf/resolution"), "core_k", 2.0)
    _finish(fig, f"resolution vs {var} (core width, ±{k:g}σ rule) — {_title(f)}", out)
    return (out, f"Resolution (core width from the iterative ±{k:g}σ Gaussian rule) of each "
            f"response in six equal-population bins of {RES_PLAIN.get(var, var)}; photon 1 and 2, reference points "
            "(horizontal bars: bin extent) vs generated line with the ±1 sd band over members; "
            "lower panels gen/ref.")


def plot_mgg(f, out):
    names = [n for n in ("m_gg", "pt_gg") if f"cnf/{n}" in f]
    if not names:
        raise cp.MissingInput(f"{os.path.basename(f.filename)}: no /cnf/m_gg or /cnf/pt_gg")
    fig = cp.plt.figure(figsize=(5.4 * len(names), 4.6))
    for i, ((ax, rax), n) in enumerate(zip(compare_axes(fig, len(names), len(names)), names)):
        d = read_compare(f[f"cnf/{n}"])
        draw_compare(ax, rax, d, n, legend=False)
        if n == "m_gg":
            a = d["attrs"]
            ax.axvspan(120, 130, color="C2", alpha=0.08, lw=0, label="window [120, 130] GeV")
            if "window_mean_gen" in a:
                txt = "\n".join(
                    f"{w}: mean {a[f'window_mean_{w}']:.2f} ± {a[f'window_mean_err_{w}']:.2f}, "
                    f"SD {a[f'window_sd_{w}']:.2f} ± {a[f'window_sd_err_{w}']:.2f} GeV "
                    f"({a.get(f'window_events_{w}', np.nan):.0f} ev.)" for w in ("gen", "ref"))
                ax.text(0.98, 0.6, "in window\n" + txt, transform=ax.transAxes, ha="right",
                        va="top", fontsize=6.5, bbox={"facecolor": "white", "alpha": 0.8, "lw": 0})
        ax.legend(loc="upper right", fontsize=7, framealpha=0.8)
        ax.set_title({"m_gg": "diphoton mass (reco photons)",
                      "pt_gg": "diphoton transverse momentum"}[n])
    _finish(fig, f"$m_{{\\gamma\\gamma}}$ and $p_{{T,\\gamma\\gamma}}$ — {_title(f)}", out)
    return (out, "Diphoton mass and transverse momentum of the reco photons (massless), "
            "generated vs reference with the member band and gen/ref; the m_γγ panel gives the "
            "mean and SD in the [120, 130] GeV window with their errors.")


def plot_correlations(f, out):
    if "cnf/corr_gen" not in f or "cnf/corr_ref" not in f:
        raise cp.MissingInput(f"{os.path.basename(f.filename)}: no /cnf/corr_gen, corr_ref")
    cg, cr = f["cnf/corr_gen"][()], f["cnf/corr_ref"][()]
    D = cg.shape[0]
    order = target_order(f)
    if len(order) != D:
        order = [f"c{j}" for j in range(D)]
    diff = cg - cr
    lim = max(0.05, float(np.nanmax(np.abs(diff))) if np.any(np.isfinite(diff)) else 0.05)
    fig, axes = cp.plt.subplots(1, 3, figsize=(17, 5.2))
    fig.subplots_adjust(wspace=0.45)
    for ax, m, t, vlim, cmap in ((axes[0], cg, "generated", 1.0, "RdBu_r"),
                                 (axes[1], cr, "reference", 1.0, "RdBu_r"),
                                 (axes[2], diff, "generated − reference", lim, "PuOr_r")):
        im = ax.imshow(m, cmap=cmap, vmin=-vlim, vmax=vlim)
        for a in range(D):
            for b in range(D):
                if np.isfinite(m[a, b]) and D <= 10:
                    ax.text(b, a, f"{m[a, b]:.2f}", ha="center", va="center", fontsize=7,
                            color="white" if abs(m[a, b]) > 0.6 * vlim else "black")
        ax.set_xticks(range(D))
        ax.set_yticks(range(D))
        ax.set_xticklabels(order, rotation=45, ha="right")
        ax.set_yticklabels(order)
        ax.grid(False)
        ax.set_title(f"correlation: {t}")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04,
                     label="Pearson ρ [–]" if vlim == 1.0 else "Δρ [–]")
    _finish(fig, f"response correlations — {_title(f)}", out)
    return (out, "Pearson correlation matrices of the responses, generated and reference, and "
            "their difference (own colour scale).")


def plot_tails(f, out):
    need = ("tail_fraction_gen", "tail_fraction_gen_err", "tail_fraction_ref",
            "tail_fraction_ref_err")
    for k in need:
        if f"cnf/{k}" not in f:
            raise cp.MissingInput(f"{os.path.basename(f.filename)}: no /cnf/{k}")
    tg, tge, tr, tre = (np.asarray(f[f"cnf/{k}"][()], dtype=float) for k in need)
    D = len(tg)
    order = target_order(f)
    if len(order) != D:
        order = [f"c{j}" for j in range(D)]
    x = np.arange(D)
    fig, ax = cp.plt.subplots(figsize=(7, 4.2))
    _eb(ax, x - 0.1, tr, tre, fmt="o", color=C_REF, mfc="white", capsize=2, label="reference")
    _eb(ax, x + 0.1, tg, tge, fmt="s", color=C_GEN, capsize=2, label="generated")
    if np.all(tg[np.isfinite(tg)] > 0) and np.all(tr[np.isfinite(tr)] > 0):
        ax.set_yscale("log")
        v = np.r_[tg, tr]
        ax.set_ylim(np.nanmin(v) / 4, np.nanmax(v) * 3)  # error bars reaching 0 must not set it
    else:
        ax.set_ylim(bottom=0)
    ax.set_xticks(x)
    ax.set_xticklabels(order)
    ax.set_xlabel("response")
    ax.set_ylabel("fraction below ref. core mean − 3σ [–]")
    ax.set_title(f"low tails — {_title(f)}", fontsize=8)
    ax.legend()
    cp.save(fig, out)
    return (out, "Fraction of events below the reference core mean − 3σ (core width rule) per "
            "response, with binomial errors: the low tail of the asymmetric scenario.")


def plot_images(f, out):
    g = _grp(f, "images")
    for k in ("mean_gen", "mean_ref", "rel_diff"):
        if k not in g:
            raise cp.MissingInput(f"{g.name}: no {k}")
    mg, mr, rd = (np.asarray(g[k][()], dtype=float) for k in ("mean_gen", "mean_ref", "rel_diff"))
    pos = np.r_[mg[mg > 0], mr[mr > 0]]
    if pos.size == 0:
        raise cp.MissingInput(f"{g.name}: both average images are empty")
    vmax = float(pos.max())
    vmin = max(float(pos.min()), vmax * 1e-5)
    fig, axes = cp.plt.subplots(1, 3, figsize=(11, 5.6))
    norm = cp.matplotlib.colors.LogNorm(vmin=vmin, vmax=vmax)
    for ax, m, t in ((axes[0], mg, "generated"), (axes[1], mr, "reference")):
        im = ax.imshow(np.where(m > 0, m, np.nan), norm=norm, cmap="viridis", origin="lower",
                       aspect="equal")
        ax.set_title(f"average image: {t}")
        fig.colorbar(im, ax=ax, fraction=0.08, pad=0.04, label="mean crystal energy [MeV]")
    L = float(np.nanmax(np.abs(rd))) if np.any(np.isfinite(rd)) else 1.0
    if L > 2:  # a badly trained model: a linear scale would show one colour
        dn = cp.matplotlib.colors.SymLogNorm(linthresh=0.1, vmin=-L, vmax=L, base=10)
    else:
        L = max(L, 0.05)
        dn = cp.matplotlib.colors.Normalize(vmin=-L, vmax=L)
    im = axes[2].imshow(rd, norm=dn, cmap="RdBu_r", origin="lower", aspect="equal")
    axes[2].set_title("(gen − ref) / ref")
    fig.colorbar(im, ax=axes[2], fraction=0.08, pad=0.04, label="relative difference [–]")
    for ax in axes:
        ax.set_xlabel("crystal x (window column) [crystals]")
        ax.set_ylabel("crystal y, bending axis (window row) [crystals]")
        ax.grid(False)
    fig.tight_layout(rect=(0, 0, 1, 0.94))
    _finish(fig, f"average images — {_title(f)}", out)
    return (out, "Average images of generated and reference showers (log colour scale, MeV per "
            "crystal, common scale) and their relative difference (gen − ref)/ref "
            "(symmetric-log scale when it exceeds ±2).")


def _shape_groups(f):
    g = _grp(f, "images/shapes")
    names = [q for q in SHAPES if q in g] + [q for q in g if q not in SHAPES and
                                              hasattr(g[q], "keys") and "edges" in g[q]]
    if not names:
        raise cp.MissingInput(f"{g.name}: no shower shapes")
    return g, names


def plot_shapes(f, out):
    g, names = _shape_groups(f)
    ncol = 3
    nrow = (len(names) + ncol - 1) // ncol
    fig = cp.plt.figure(figsize=(4.6 * ncol, 4.3 * nrow + 0.4))
    pairs = compare_axes(fig, len(names), ncol, top_in=1.05)
    for (ax, rax), q in zip(pairs, names):
        draw_compare(ax, rax, read_compare(g[q]), q, legend=False)
        ax.set_title(col_label(q)[0])
    _fig_legend(fig, pairs[0][0])
    _finish(fig, f"shower shapes — {_title(f)}", out, fixed=True)
    return (out, "Shower shapes of every image (all material bins): reference histogram with "
            "Poisson errors, generated line with the member band, lower panels gen/ref.")


def plot_shapes_binned(f, mat, out):
    g, names = _shape_groups(f)
    edges = np.asarray(g[f"{mat}_edges"][()], dtype=float) if f"{mat}_edges" in g else None
    nb = max([int(k.rsplit("bin", 1)[1]) + 1 for q in names for k in g[q]
              if k.startswith(f"{mat}_bin")] or [0])
    if nb == 0:
        raise cp.MissingInput(f"{g.name}: no {mat}_bin<k> groups (no material conditions?)")
    sym, unit = MAT_LABEL.get(mat, (mat, ""))
    fig = cp.plt.figure(figsize=(3.7 * nb, 3.5 * len(names) + 0.4))
    pairs = compare_axes(fig, nb * len(names), nb, {"hspace": 0.5, "wspace": 0.3}, top_in=1.2)
    first = None
    for r, q in enumerate(names):
        for b in range(nb):
            ax, rax = pairs[r * nb + b]
            key = f"{mat}_bin{b}"
            if key not in g[q]:
                ax.text(0.5, 0.5, "fewer than 8 events", transform=ax.transAxes, ha="center")
                rax.set_visible(False)
                continue
            draw_compare(ax, rax, read_compare(g[q][key]), q, legend=False)
            first = first or ax
            rng = (f"{sym} ∈ [{edges[b]:.3g}, {edges[b + 1]:.3g}] {unit}" if edges is not None
                   and len(edges) > b + 1 else f"{sym} bin {b}")
            ax.set_title(f"{col_label(q)[0]}\n{rng}", fontsize=8)
    if first is not None:
        _fig_legend(fig, first)
    _finish(fig, f"shower shapes per {mat} ({sym}) bin — {_title(f)}", out, fixed=True)
    return (out, f"Shower shapes in the four equal-width bins of the {mat} {sym} (columns), "
            "generated vs reference with the member band and gen/ref; the bins share the "
            "inclusive range.")


def plot_shape_grids(f, out):
    g, names = _shape_groups(f)
    names = [q for q in names if "grid_mean_gen" in g[q] and "grid_mean_ref" in g[q]]
    if not names:
        raise cp.MissingInput(f"{g.name}: no grid_mean_* (no material conditions?)")
    ed = g["thickness_edges"][()] if "thickness_edges" in g else None
    eb = g["distance_edges"][()] if "distance_edges" in g else None
    fig, axes = cp.plt.subplots(len(names), 3, figsize=(12.5, 3.3 * len(names)), squeeze=False)
    for r, q in enumerate(names):
        gg, gr = g[q]["grid_mean_gen"][()], g[q]["grid_mean_ref"][()]
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = gg / gr
        both = np.r_[gg[np.isfinite(gg)], gr[np.isfinite(gr)]]
        vmin, vmax = (float(both.min()), float(both.max())) if both.size else (0, 1)
        k = _pow10(max(abs(vmin), abs(vmax)))
        sc = 10.0 ** k
        gg, gr, vmin, vmax = gg * sc, gr * sc, vmin * sc, vmax * sc
        fr = ratio[np.isfinite(ratio)]
        rlo = min(float(fr.min()) if fr.size else 1.0, 0.95)
        rhi = max(float(fr.max()) if fr.size else 1.0, 1.05)
        t, u = col_label(q)
        unit = (f"10$^{{{-k}}}$ {u}" if u else f"10$^{{{-k}}}$") if k else (u or "–")
        for c, (m, ttl) in enumerate(((gg, "generated"), (gr, "reference"), (ratio, "gen / ref"))):
            ax = axes[r, c]
            if c < 2:
                im = ax.imshow(m, origin="lower", cmap="viridis", vmin=vmin, vmax=vmax, aspect="auto")
                fmt = "{:.3g}"
            else:
                im = ax.imshow(m, origin="lower", cmap="RdBu_r", aspect="auto",
                               norm=cp.matplotlib.colors.TwoSlopeNorm(1.0, rlo, rhi))
                fmt = "{:.2f}"
            for a in range(m.shape[0]):
                for b in range(m.shape[1]):
                    if np.isfinite(m[a, b]):
                        ax.text(b, a, fmt.format(m[a, b]), ha="center", va="center", fontsize=6.5,
                                color="k", bbox={"facecolor": "white", "alpha": 0.6, "lw": 0,
                                                 "pad": 1})
            cb = fig.colorbar(im, ax=ax, fraction=0.05, pad=0.03)
            cb.set_label(f"mean [{unit}]" if c < 2 else "ratio [–]", fontsize=7)
            ax.set_title(f"{t}: {ttl}", fontsize=8)
            ax.grid(False)
            nbb, nbd = m.shape[1], m.shape[0]
            ax.set_xticks(range(nbb))
            ax.set_yticks(range(nbd))
            if eb is not None and len(eb) == nbb + 1:
                ax.set_xticklabels([f"{0.5 * (eb[i] + eb[i + 1]):.0f}" for i in range(nbb)])
            if ed is not None and len(ed) == nbd + 1:
                ax.set_yticklabels([f"{0.5 * (ed[i] + ed[i + 1]):.2f}" for i in range(nbd)])
            ax.set_xlabel("distance b (bin centre) [cm]")
            ax.set_ylabel("thickness d (bin centre) [X$_0$]")
    h = fig.get_size_inches()[1]
    # fixed margins: tight_layout over 18 axes and colour bars costs seconds
    fig.subplots_adjust(left=0.07, right=0.96, top=1 - 0.55 / h, bottom=0.45 / h, hspace=0.42,
                        wspace=0.38)
    _finish(fig, f"shape means on the (d, b) grid — {_title(f)}", out, fixed=True)
    return (out, "Mean of every shower shape on the 4 × 4 grid of thickness d (rows) and "
            "distance b (columns) bins: generated, reference (common colour scale) and their "
            "ratio (diverging colour scale centred on 1).")


# ---------------------------------------------------------------- driver and headline

def plot_all(path, prefix=None):
    """Every figure the file has data for.  Returns (done: [(png, caption)], missing: [str])."""
    prefix = prefix or os.path.splitext(path)[0]
    d = os.path.dirname(prefix)
    if d:
        os.makedirs(d, exist_ok=True)
    done, missing = [], []
    with _open(path) as f:
        kind = cp.s(f.attrs.get("kind", "generic"))
        jobs = []
        if not (kind == "images" and ("marginals" not in f or len(f["marginals"]) == 0)):
            jobs.append(("marginals", lambda o: plot_marginals(f, o)))  # images: shapes instead
        if kind == "hgg" or "cnf" in f:
            for v in RES_VARS:
                jobs.append((f"resolution_{v}", lambda o, v=v: plot_resolution(f, v, o)))
            jobs += [("mgg_ptgg", lambda o: plot_mgg(f, o)),
                     ("correlations", lambda o: plot_correlations(f, o)),
                     ("tails", lambda o: plot_tails(f, o))]
        if kind == "images" or "images" in f:
            jobs += [("images", lambda o: plot_images(f, o)),
                     ("shapes", lambda o: plot_shapes(f, o)),
                     ("shapes_thickness", lambda o: plot_shapes_binned(f, "thickness", o)),
                     ("shapes_distance", lambda o: plot_shapes_binned(f, "distance", o)),
                     ("shape_grids", lambda o: plot_shape_grids(f, o))]
        for suffix, fn in jobs:
            out = f"{prefix}_{suffix}.png"
            try:
                done.append(fn(out))
            except (cp.MissingInput, KeyError) as e:
                cp.plt.close("all")
                missing.append(f"{out}: {e}")
    return done, missing


def _ratio_mean(g, gi, ri, rows=None):
    """Mean over cells of sigma_gen/sigma_ref and its propagated error (independent cells)."""
    sg, sge = np.asarray(g["sigma_gen"][()], float), np.asarray(g["sigma_gen_err"][()], float)
    sr, sre = np.asarray(g["sigma_ref"][()], float), np.asarray(g["sigma_ref_err"][()], float)
    if rows is not None:
        sg, sge, sr, sre = sg[rows], sge[rows], sr[rows], sre[rows]
    r, e = cp.density_ratio(sg, sge, sr, sre)
    ok = np.isfinite(r) & np.isfinite(e)
    if not ok.any():
        return np.nan, np.nan
    return float(np.mean(r[ok])), float(np.sqrt(np.sum(e[ok] ** 2)) / ok.sum())


def headline(path):
    """The report's numbers: list of (name, value, error or None).  value is a str for the kind,
    a float otherwise.  Common: kind, events, members, mean W1, mean separation power,
    classifier AUC (± err) and weights; hgg: m_γγ window mean and SD gen/ref (± err), the core
    width ratio gen/ref (mean over responses and E_T bins, and per response kind); images: per
    shape the separation power (± err), the mean |relative difference| of the average image."""
    with _open(path) as f:
        kind = cp.s(f.attrs.get("kind", "generic"))
        out = [("kind", kind, None),
               ("events", _attr(f, "n_events"), None),
               ("members", _attr(f, "members"), None),
               ("mean W1", _attr(f, "w1_mean"), None),
               ("mean separation power", _attr(f, "sep_mean"), None),
               ("classifier AUC", _attr(f, "auc"), _attr(f, "auc_err"))]
        if "classifier" in f:
            c = f["classifier"]
            out += [("classifier weight mean", _attr(c, "w_mean"), None),
                    ("classifier weight SD", _attr(c, "w_std"), None),
                    ("classifier weight max", _attr(c, "w_max"), None)]
        if "cnf/m_gg" in f:
            a = f["cnf/m_gg"]
            for w, wn in (("gen", "generated"), ("ref", "reference")):
                if f"window_mean_{w}" in a.attrs:
                    out.append((f"m_gg window mean, {wn} [GeV]", _attr(a, f"window_mean_{w}"),
                                _attr(a, f"window_mean_err_{w}")))
                    out.append((f"m_gg window SD, {wn} [GeV]", _attr(a, f"window_sd_{w}"),
                                _attr(a, f"window_sd_err_{w}")))
        if "cnf/resolution/et/sigma_gen" in f:
            g = f["cnf/resolution/et"]
            out.append(("core width ratio gen/ref", *_ratio_mean(g, 0, 0)))
            order = target_order(f)
            D = g["sigma_gen"].shape[0]
            if len(order) == D:
                for k, kn in (("d_et", "ΔE_T"), ("d_phi", "Δφ"), ("d_eta", "Δη")):
                    rows = [j for j, n in enumerate(order) if n.startswith(k) and n[len(k):].isdigit()]
                    if rows:
                        out.append((f"core width ratio gen/ref, {kn}", *_ratio_mean(g, 0, 0, rows)))
        if "images/shapes" in f:
            g = f["images/shapes"]
            for q in SHAPES:
                if q in g:
                    out.append((f"separation power {q}", _attr(g[q], "sep"), _attr(g[q], "sep_err")))
        if "images/rel_diff" in f:
            rd = np.asarray(f["images/rel_diff"][()], float)
            out.append(("mean |rel. diff.| of the average image",
                        float(np.mean(np.abs(rd[np.isfinite(rd)]))) if np.isfinite(rd).any()
                        else np.nan, None))
    return out


def marginal_rows(path):
    """Per comparison group (marginals, m_gg, pt_gg, inclusive shapes): name, W1, its members'
    SD, the W1 floor, separation power and its error, means and SDs gen/ref."""
    rows = []
    with _open(path) as f:
        groups = []
        if "marginals" in f:
            groups += [(n, f["marginals"][n]) for n in target_order(f) if n in f["marginals"]]
        groups += [(n, f[f"cnf/{n}"]) for n in ("m_gg", "pt_gg") if f"cnf/{n}" in f]
        if "images/shapes" in f:
            g = f["images/shapes"]
            groups += [(q, g[q]) for q in SHAPES if q in g]
        for n, g in groups:
            rows.append({"name": n, "unit": col_label(n)[1],
                         **{k: _attr(g, k) for k in ("w1", "w1_members_sd", "w1_floor", "sep",
                                                     "sep_err", "mean_gen", "mean_ref", "sd_gen",
                                                     "sd_ref")}})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("metrics")
    ap.add_argument("-o", help="output prefix (default: the metrics file's path without .h5)")
    a = ap.parse_args(argv)
    try:
        done, missing = plot_all(a.metrics, a.o)
    except (cp.MissingInput, ValueError, OSError, KeyError) as e:
        print(f"plot_metrics: error: {e}", file=sys.stderr)
        return 1
    for m in missing:
        cp.warn(f"skipped {m}")
    print(f"plot_metrics: {len(done)} files written:")
    for p, _ in done:
        print(p)
    for name, v, e in headline(a.metrics):
        print(f"  {name}: {v}" + (f" ± {e}" if e is not None else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
