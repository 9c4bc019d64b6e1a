#!/usr/bin/python3
"""Likelihood curves log L(E) of example showers of a `cnflow scan` output (README "cnflow scan").

usage: plot_likelihood.py SCAN.h5 [-o likelihood.png] [-n 4] [--grid 120]
                          [--backend auto|torch|cnflow] [--cnflow build/cnflow]

scan.h5 stores only the result of each shower's scan (E_pred, the 68 % interval, log L_max), not
the curve, so the curves are recomputed here for the first -n showers that did not fail, from the
files the scan names: its `input` dataset file and `split`, its `ensemble` manifest, and the
target/condition columns of its `resume_fingerprint`.  For each grid energy E the shower's
conditions get E in the scanned column (converted to that column's unit: GeV or MeV) and
    log L(E) = log((1/K) Σ_k p_k(x | E))
(log-mean-exp over the K members).  Backends:
  torch   analysis/cnflow_torch.py (load(path).log_prob(x, c), float64): an independent
          implementation of the flows, so the curve's maximum checks cnflow scan's E_pred
  cnflow  `cnflow scan` itself, once per grid energy over the degenerate prior [E, E(1 + 1e-9)]
          with -scan_refine false (3 grid points, so logl_max = log L(E)); slow (one process per
          grid point and member), used when the torch loader cannot read the model
  auto    torch, falling back to cnflow when the loader fails
Each panel shows −2 Δlog L = −2 (log L(E) − log L_max) of the ensemble, each member's own
−2 (log p_k(x|E) − log L_max) thinly with their ±1 sd band, the 68 % interval of the scan
(shaded; the curve crosses 1 at its ends), E_pred and E_true.
Printed: per shower the recomputed arg max and max against the scan's E_pred and logl_max.
"""
import argparse
import os
import subprocess
import sys
import tempfile

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnflow_plot as cp  # noqa: E402


def _resolve(path, scan_path):
    """A path stored in scan.h5 is relative to where the scan ran: try it as is, then beside
    the scan file, then its basename beside the scan file."""
    d = os.path.dirname(os.path.abspath(scan_path))
    for p in (path, os.path.join(d, path), os.path.join(d, os.path.basename(path)),
              os.path.join(os.path.dirname(d), path)):
        if p and os.path.exists(p):
            return p
    raise cp.MissingInput(f"{scan_path}: its file '{path}' is not found (as is or beside the scan)")


def scan_info(scan_path):
    import h5py
    if not os.path.exists(scan_path):
        raise cp.MissingInput(f"{scan_path}: not found")
    with h5py.File(scan_path, "r") as f:
        a = {k: cp.s(v) if isinstance(v, (bytes, str, np.bytes_)) else v for k, v in f.attrs.items()}
        if a.get("format") != "cnflow-scan":
            raise ValueError(f"{scan_path}: not a scan file (format '{a.get('format')}')")
        if a.get("method", "flow") != "flow":
            raise cp.MissingInput(f"{scan_path}: method '{a.get('method')}' has no likelihood")
        sc = {k: f["scan"][k][:] for k in ("e_true", "e_pred", "e_lo", "e_hi", "logl_max", "flags")}
    fp = dict(kv.split("=", 1) for kv in str(a.get("resume_fingerprint", "")).split("|") if "=" in kv)
    tgt, tcols = (fp.get("target", "layers:").split(":", 1) + [""])[:2]
    cnd, ccols = (fp.get("cond", "incident_energies:").split(":", 1) + [""])[:2]
    info = {"input": _resolve(a["input"], scan_path), "split": a.get("split", "test"),
            "ensemble": _resolve(a["ensemble"], scan_path), "target": tgt, "target_columns": tcols,
            "cond": cnd, "cond_columns": ccols, "scan_column": fp.get("scan", ""),
            "e_min": float(a["e_min"]), "e_max": float(a["e_max"]),
            "part_first": int(a.get("part_first", 0)), "scan": sc, "fingerprint": fp}
    return info


def _columns(d, spec, what):
    cols, units = cp.columns_of(d)
    if not spec:
        return list(range(len(cols))), cols, units
    idx = []
    for name in spec.split(","):
        if name not in cols:
            raise ValueError(f"{d.file.filename}: {what} column '{name}' not in {cols}")
        idx.append(cols.index(name))
    return idx, [cols[i] for i in idx], [units[i] for i in idx]


def read_showers(info, rows):
    """x (n, D), c (n, C) raw, the scanned column's index in c and its unit factor (GeV -> unit)."""
    import h5py
    with h5py.File(info["input"], "r") as f:
        names = [cp.s(x) for x in f.attrs.get("split_names", ["train", "val", "test"])]
        ranges = f.attrs.get("split_ranges")
        if info["split"] == "all" or ranges is None:
            first = 0
        else:
            first = int(ranges[names.index(info["split"])][0])
        r = first + info["part_first"] + np.asarray(rows)
        dx, dc = f[info["target"]], f[info["cond"]]
        ix, _, _ = _columns(dx, info["target_columns"], "target")
        ic, ccols, cunits = _columns(dc, info["cond_columns"], "condition")
        x = np.stack([np.atleast_1d(dx[int(i)])[ix] for i in r]).astype(np.float64)
        c = np.stack([np.atleast_1d(dc[int(i)])[ic] for i in r]).astype(np.float64)
    j = ccols.index(info["scan_column"]) if info["scan_column"] in ccols else 0
    unit = cunits[j].strip()
    factor = {"MeV": 1e3, "GeV": 1.0, "TeV": 1e-3, "": 1e3}.get(unit)
    if factor is None:
        raise ValueError(f"{info['input']}: scanned column unit '{unit}' is not an energy")
    return x, c, j, factor


def curves_torch(info, x, c, j, factor, grid):
    import torch
    import cnflow_torch
    _, members = cp.read_manifest(info["ensemble"])
    n, G = len(x), len(grid)
    xr = torch.tensor(np.repeat(x, G, axis=0))
    cr = np.repeat(c, G, axis=0)
    cr[:, j] = np.tile(grid * factor, n)
    cr = torch.tensor(cr)
    out = []
    for _, path, _, _ in members:
        model = cnflow_torch.load(path)
        with torch.no_grad():
            lp = model.log_prob(xr, cr)
        out.append(np.asarray(lp.detach().cpu().numpy(), dtype=float).reshape(n, G))
    return np.stack(out)  # (K, n, G)


def curves_cnflow(info, x, rows, grid, binary):
    """log p_k(x | E) for every member through `cnflow scan` over degenerate prior ranges."""
    import h5py
    _, members = cp.read_manifest(info["ensemble"])
    n_needed = info["part_first"] + int(np.max(rows)) + 1
    out = np.empty((len(members), len(rows), len(grid)))
    with tempfile.TemporaryDirectory(prefix="cnflow_like.") as tmp:
        o = os.path.join(tmp, "s.h5")
        for k, (_, path, _, _) in enumerate(members):
            for g, E in enumerate(grid):
                cmd = [binary, "scan", "-data", info["input"], "-split", info["split"],
                       "-ensemble", path, "-target", info["target"], "-cond", info["cond"],
                       "-e_min", repr(E), "-e_max", repr(E * (1 + 1e-9)), "-scan_grid", "3",
                       "-scan_refine", "false", "-max_showers", str(n_needed), "-o", o,
                       "-progress", "0", "-log_level", "0"]
                for opt in ("target_columns", "cond_columns", "scan_column"):
                    if info[opt if opt != "scan_column" else "scan_column"]:
                        cmd += [f"-{opt}", info[opt]]
                r = subprocess.run(cmd, capture_output=True, text=True)
                if r.returncode != 0:
                    raise RuntimeError(f"cnflow scan failed: {r.stderr.strip() or r.stdout.strip()}")
                with h5py.File(o, "r") as f:
                    out[k, :, g] = f["scan/logl_max"][info["part_first"] + np.asarray(rows)]
    return out


def energy_grid(info, rows, n_grid):
    """A log grid over the whole prior plus a dense linear grid around each shower's interval."""
    sc = info["scan"]
    g = [np.geomspace(info["e_min"], info["e_max"], n_grid)]
    for i in rows:
        lo, hi, ep = sc["e_lo"][i], sc["e_hi"][i], sc["e_pred"][i]
        w = (hi - lo) if np.isfinite(hi - lo) and hi > lo else 0.2 * ep
        a = max(info["e_min"], ep - 1.5 * w)
        b = min(info["e_max"], ep + 1.5 * w)
        g.append(np.linspace(a, b, n_grid))
        g.append([ep])
    return np.unique(np.clip(np.concatenate(g), info["e_min"], info["e_max"]))


def compute(scan_path, n_showers=4, n_grid=120, backend="auto", binary=None):
    info = scan_info(scan_path)
    ok = np.flatnonzero((info["scan"]["flags"] & 8) == 0)
    if ok.size == 0:
        raise cp.MissingInput(f"{scan_path}: every shower failed")
    rows = ok[:n_showers]
    x, c, j, factor = read_showers(info, rows)
    used, err = None, None
    if backend in ("auto", "torch"):
        try:
            grid = energy_grid(info, rows, n_grid)
            lp = curves_torch(info, x, c, j, factor, grid)
            used = "torch (analysis/cnflow_torch.py)"
        except Exception as e:  # the loader may not support this model: say so, maybe fall back
            err = f"{type(e).__name__}: {e}"
            if backend == "torch":
                raise cp.MissingInput(f"cnflow_torch cannot evaluate {info['ensemble']}: {err}")
            cp.warn(f"torch backend unavailable ({err.splitlines()[0][:200]}); using cnflow scan")
    if used is None:
        binary = binary or os.environ.get("CNFLOW_BINARY") or _default_binary()
        if not binary or not os.path.exists(binary):
            raise cp.MissingInput(f"no backend: torch failed ({err}) and no cnflow binary "
                                  "(--cnflow or $CNFLOW_BINARY)")
        # one process per grid point and member: a coarse common grid plus the scan's E_pred
        grid = np.unique(np.concatenate([np.geomspace(info["e_min"], info["e_max"],
                                                      max(8, n_grid // 6)),
                                         info["scan"]["e_pred"][rows]]))
        lp = curves_cnflow(info, x, rows, grid, binary)
        used = f"cnflow scan ({binary})"
    ens = cp.log_mean_exp(lp, axis=0)  # (n, G)
    return info, rows, grid, lp, ens, used


def _default_binary():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    p = os.path.join(here, "build", "cnflow")
    return p if os.path.exists(p) else None


def check_rows(info, rows, grid, ens):
    """Recomputed arg max / max against the scan's E_pred / logl_max, per shower."""
    sc = info["scan"]
    out = []
    for a, i in enumerate(rows):
        g = int(np.argmax(ens[a]))
        # spacing of the grid at the maximum: the resolution of a grid arg max
        h = np.max(np.diff(grid)[max(0, g - 1):g + 1]) if len(grid) > 1 else np.nan
        out.append({"row": int(i), "e_true": float(sc["e_true"][i]), "e_pred": float(sc["e_pred"][i]),
                    "e_argmax": float(grid[g]), "spacing": float(h),
                    "logl_max": float(sc["logl_max"][i]), "logl_grid_max": float(ens[a, g]),
                    "logl_at_e_pred": float(ens[a, np.argmin(np.abs(grid - sc["e_pred"][i]))])})
    return out


def plot(scan_path, out, n_showers=4, n_grid=120, backend="auto", binary=None):
    info, rows, grid, lp, ens, used = compute(scan_path, n_showers, n_grid, backend, binary)
    sc = info["scan"]
    n = len(rows)
    ncol = min(n, 4)
    nrow = (n + ncol - 1) // ncol
    fig, axes = cp.plt.subplots(nrow, ncol, figsize=(4.1 * ncol, 3.6 * nrow), squeeze=False)
    K = lp.shape[0]
    for a, i in enumerate(rows):
        ax = axes.ravel()[a]
        ref = max(sc["logl_max"][i], np.max(ens[a])) if np.isfinite(sc["logl_max"][i]) else np.max(ens[a])
        y = -2 * (ens[a] - ref)
        inside = y < 16
        lo_e = grid[inside].min() if inside.any() else grid.min()
        hi_e = grid[inside].max() if inside.any() else grid.max()
        pad = 0.15 * (hi_e - lo_e + 1e-9)
        lo_e, hi_e = lo_e - pad, hi_e + pad
        if K > 1:
            cp.band_plot(ax, grid, [-2 * (lp[k, a] - ref) for k in range(K)], "C0", "members",
                         member_lines=True, mean_line=False)
        ax.plot(grid, y, color="k", lw=1.6, label=f"ensemble (K = {K})")
        if np.isfinite(sc["e_lo"][i]) and np.isfinite(sc["e_hi"][i]):
            ax.axvspan(sc["e_lo"][i], sc["e_hi"][i], color="C2", alpha=0.2, label="scan 68 % interval")
        ax.axvline(sc["e_pred"][i], color="C2", lw=1.2, label=f"E_pred = {sc['e_pred'][i]:.2f} GeV")
        ax.axvline(sc["e_true"][i], color="C3", lw=1.2, ls="--",
                   label=f"E_true = {sc['e_true'][i]:.2f} GeV")
        ax.axhline(1.0, color="grey", lw=0.8, ls=":")
        ax.set_xlim(max(lo_e, grid.min()), min(hi_e, grid.max()))
        ax.set_ylim(-0.5, 16)
        ax.set_xlabel("E [GeV]")
        ax.set_ylabel(r"$-2\,\Delta\log L(E)$ [–]")
        ax.set_title(f"shower {i} (flags {int(sc['flags'][i])})")
        ax.legend(fontsize=6, loc="upper right", framealpha=0.85)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    fig.suptitle(f"likelihood curves: {os.path.basename(scan_path)}  (recomputed with {used.split(' ')[0]})")
    fig.tight_layout()
    cp.save(fig, out)
    checks = check_rows(info, rows, grid, ens)
    for r in checks:
        print(f"analysis: shower {r['row']}: arg max {r['e_argmax']:.4f} GeV (grid spacing "
              f"{r['spacing']:.3g}) vs scan E_pred {r['e_pred']:.4f}; max log L {r['logl_grid_max']:.6f} "
              f"vs scan logl_max {r['logl_max']:.6f}")
    return out, checks, used


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scan")
    ap.add_argument("-o", default="likelihood.png")
    ap.add_argument("-n", type=int, default=4, help="showers to draw (default 4)")
    ap.add_argument("--grid", type=int, default=120, help="grid points per range (default 120)")
    ap.add_argument("--backend", choices=("auto", "torch", "cnflow"), default="auto")
    ap.add_argument("--cnflow", help="cnflow binary for the cnflow backend (default "
                    "$CNFLOW_BINARY or <repo>/build/cnflow)")
    ap.add_argument("--check-json", help="write the per-shower checks to this JSON file")
    a = ap.parse_args(argv)
    try:
        _, checks, used = plot(a.scan, a.o, a.n, a.grid, a.backend, a.cnflow)
    except (cp.MissingInput, ValueError, OSError, KeyError, RuntimeError) as e:
        print(f"plot_likelihood: error: {e}", file=sys.stderr)
        return 1
    if a.check_json:
        import json
        with open(a.check_json, "w") as fh:
            json.dump({"backend": used, "showers": checks}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
