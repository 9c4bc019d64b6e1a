#!/usr/bin/python3
"""Shared helpers of the analysis/ figure scripts: readers of cnflow's outputs, the ensemble band,
log-mean-exp, a KDE mode, matplotlib set-up (Agg, PNG) and a PNG sanity check.

Only numpy, h5py and matplotlib (Debian's /usr/bin/python3); nothing outside the repository.
The numeric helpers (ensemble_band, log_mean_exp, hist_ratio, png_stats) are checked against
closed forms by tests/check_analysis_units.py.
"""
import math
import os
import struct
import sys
import zlib

import numpy as np

import matplotlib
matplotlib.use("Agg")  # no display: every figure is a PNG file
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import matplotlib.colors  # noqa: E402,F401

MEMBER_COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]
plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 110, "axes.grid": True,
                     "grid.alpha": 0.3, "legend.fontsize": 8, "font.size": 9})


class MissingInput(Exception):
    """An input file or dataset a figure needs is not there: the figure is skipped, not fatal."""


def s(x):
    """HDF5 strings come back as bytes or str depending on how they were written."""
    if isinstance(x, (bytes, np.bytes_)):
        return x.decode()
    if isinstance(x, np.ndarray) and x.shape == ():
        return s(x[()])
    return x if isinstance(x, str) else str(x)


def warn(msg):
    print(f"analysis: {msg}", file=sys.stderr)


# ---------------------------------------------------------------- numeric helpers

def ensemble_band(curves):
    """Mean and ±1 standard deviation (ddof 1) over ensemble members, per point.

    curves: list of 1-D arrays (one per member), possibly of different lengths (early stopping):
    point j uses the members that have it.  Returns (mean, lo, hi, n) arrays of the longest
    length; where fewer than 2 members have the point, lo = hi = mean (no spread to show).
    """
    if not curves:
        raise ValueError("ensemble_band: no curves")
    L = max(len(c) for c in curves)
    a = np.full((len(curves), L), np.nan)
    for k, c in enumerate(curves):
        a[k, :len(c)] = np.asarray(c, dtype=float)
    n = np.sum(np.isfinite(a), axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.nansum(a, axis=0) / np.where(n > 0, n, 1)
        dev = np.where(np.isfinite(a), a - mean, 0.0)
        sd = np.sqrt(np.sum(dev * dev, axis=0) / np.where(n > 1, n - 1, 1))
    sd = np.where(n > 1, sd, 0.0)
    mean = np.where(n > 0, mean, np.nan)
    return mean, mean - sd, mean + sd, n


def log_mean_exp(a, axis=0):
    """log((1/K) sum_k exp(a_k)) without overflow: the ensemble's log-likelihood from members'."""
    a = np.asarray(a, dtype=float)
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    out = m + np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True))
    return np.squeeze(out, axis=axis)


def hist_ratio(num, den):
    """Ratio num/den of two histograms of counts with its Poisson error (NaN where den = 0)."""
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / den, np.nan)
        err = np.where((den > 0) & (num > 0), r * np.sqrt(1.0 / np.maximum(num, 1e-300) + 1.0 / den),
                       np.nan)
    return r, err


def density_ratio(num, num_err, den, den_err):
    """Ratio num/den of two binned densities with independent errors, propagated to first order:
    err = r sqrt((num_err/num)^2 + (den_err/den)^2).  metrics.h5 stores densities (counts over
    N width) with sqrt(counts)/(N width) errors, so this is hist_ratio's error in density units.
    NaN where den is not positive; where num = 0 the ratio is 0 and its error den_err-free is
    undefined (NaN), as for hist_ratio."""
    num, num_err = np.asarray(num, dtype=float), np.asarray(num_err, dtype=float)
    den, den_err = np.asarray(den, dtype=float), np.asarray(den_err, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = np.where(den > 0, num / den, np.nan)
        rel = np.sqrt((num_err / num) ** 2 + (den_err / den) ** 2)
        err = np.where((den > 0) & (num > 0), np.abs(r) * rel, np.nan)
    return r, err


def bin_centres(edges):
    """Centres of the bins given by their n + 1 edges."""
    e = np.asarray(edges, dtype=float)
    return 0.5 * (e[1:] + e[:-1])


def png_stats(path):
    """(width, height, number of distinct RGB(A) values on a coarse sample) of a PNG, decoded with
    zlib only (8-bit RGB/RGBA/grey, non-interlaced: what matplotlib writes).  Raises ValueError on
    anything that is not a valid PNG."""
    with open(path, "rb") as fh:
        data = fh.read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{path}: not a PNG (bad signature)")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        if pos + 8 > len(data):
            raise ValueError(f"{path}: truncated chunk header")
        ln, typ = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + ln]
        crc = data[pos + 8 + ln:pos + 12 + ln]
        if len(body) != ln or len(crc) != 4 or struct.unpack(">I", crc)[0] != zlib.crc32(typ + body):
            raise ValueError(f"{path}: chunk {typ!r} truncated or bad CRC")
        if typ == b"IHDR":
            w, h, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif typ == b"IDAT":
            idat += body
        elif typ == b"IEND":
            break
        pos += 12 + ln
    if w is None or not idat:
        raise ValueError(f"{path}: no IHDR or no image data")
    if depth != 8 or interlace != 0 or ctype not in (0, 2, 4, 6):
        raise ValueError(f"{path}: unsupported PNG (depth {depth}, colour type {ctype})")
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    raw = zlib.decompress(idat)
    stride = w * bpp
    if len(raw) != h * (stride + 1):
        raise ValueError(f"{path}: image data has {len(raw)} bytes, expected {h * (stride + 1)}")
    prev = bytearray(stride)
    colours = set()
    step = max(1, h // 200)
    for y in range(h):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        if f == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif f == 2:
            for i in range(stride):
                line[i] = (line[i] + prev[i]) & 255
        elif f == 3:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                line[i] = (line[i] + ((a + prev[i]) >> 1)) & 255
        elif f == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pr = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
                line[i] = (line[i] + pr) & 255
        elif f != 0:
            raise ValueError(f"{path}: bad filter type {f} in row {y}")
        if y % step == 0:
            for x in range(0, w, max(1, w // 200)):
                colours.add(bytes(line[x * bpp:(x + 1) * bpp]))
        prev = line
    return w, h, len(colours)


# ---------------------------------------------------------------- readers

def read_history(path):
    """member_<k>.history.tsv -> dict of columns (epoch, train_nll, val_<metric>, lr, seconds)."""
    if not os.path.exists(path):
        raise MissingInput(f"{path}: not found")
    with open(path) as fh:
        head = fh.readline().lstrip("#").split()
    rows = np.loadtxt(path, comments="#", ndmin=2)
    if rows.size == 0:
        raise MissingInput(f"{path}: no epochs")
    if rows.shape[1] != len(head):
        raise ValueError(f"{path}: {rows.shape[1]} columns, header names {len(head)}")
    return {name: rows[:, j] for j, name in enumerate(head)}


def read_manifest(path):
    """ensemble.txt -> (metric, [(member index, absolute model path, best_epoch, score)])."""
    if not os.path.exists(path):
        raise MissingInput(f"{path}: not found")
    d = os.path.dirname(os.path.abspath(path))
    metric, members = "", []
    with open(path) as fh:
        for line in fh:
            w = line.split()
            if not w or w[0].startswith("#"):
                continue
            if w[0] == "metric":
                metric = w[1]
            elif w[0] == "member":
                kv = dict(zip(w[3::2], w[4::2]))
                members.append((int(w[1]), os.path.join(d, w[2]), int(kv.get("best_epoch", -1)),
                                float(kv.get("score", "nan"))))
    if not members:
        raise ValueError(f"{path}: no member lines")
    return metric, members


def read_group(path, group):
    """All datasets of an HDF5 group as a dict of numpy arrays (strings decoded)."""
    import h5py
    if not os.path.exists(path):
        raise MissingInput(f"{path}: not found")
    with h5py.File(path, "r") as f:
        if group not in f:
            raise MissingInput(f"{path}: no group /{group}")
        out = {}
        for k, v in f[group].items():
            if hasattr(v, "shape"):
                a = v[()]
                if a.dtype.kind in "OS":
                    a = np.array([s(x) for x in np.ravel(a)]).reshape(np.shape(a))
                out[k] = a
        out["_attrs"] = {k: (s(v) if isinstance(v, (bytes, str, np.bytes_)) else v)
                         for k, v in f.attrs.items()}
    return out


def columns_of(dset):
    """(columns, units) attribute lists of a dataset (generated names when absent)."""
    n = dset.shape[1] if len(dset.shape) > 1 else 1
    cols = [s(c) for c in dset.attrs.get("columns", [f"c{j}" for j in range(n)])]
    units = [s(u) for u in dset.attrs.get("units", [""] * n)]
    return cols, units


def label(name, unit):
    return f"{name} [{unit}]" if unit else name


def save(fig, path):
    """Write a figure as PNG via a temporary name (never a half-written file) and close it."""
    tmp = path + ".tmp.png"
    fig.savefig(tmp, format="png", bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    print(f"analysis: wrote {path}")
    return path


def band_plot(ax, x, curves, colour, name, member_lines=True, mean_line=True):
    """Draw each member thinly, the ensemble mean and its ±1 sd band (when K > 1)."""
    mean, lo, hi, n = ensemble_band(curves)
    xs = np.asarray(x)[:len(mean)]
    if member_lines and len(curves) > 1:
        for k, c in enumerate(curves):
            ax.plot(np.asarray(x)[:len(c)], c, color=colour, lw=0.6, alpha=0.45,
                    label=f"{name}: members" if k == 0 else None)
    if len(curves) > 1:
        ax.fill_between(xs, lo, hi, color=colour, alpha=0.2, lw=0,
                        label=f"{name}: ensemble ±1 sd ({len(curves)} members)")
        if mean_line:
            ax.plot(xs, mean, color=colour, lw=1.6, label=f"{name}: ensemble mean")
    else:
        ax.plot(xs, mean, color=colour, lw=1.6, label=name)
    return mean
