#!/usr/bin/python3
"""The numeric helpers of analysis/cnflow_plot.py against closed forms: ensemble_band,
log_mean_exp, hist_ratio, density_ratio, bin_centres and png_stats (on PNGs encoded here with
every filter type and colour type, on matplotlib's own PNGs of known size, and on broken files).

usage: check_analysis_units.py      prints "PASS: analysis_units" when every check holds
"""
import math
import os
import struct
import sys
import tempfile
import zlib

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "analysis"))
import cnflow_plot as cp  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def close(a, b, what, rtol=1e-12, atol=0.0):
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    same_nan = np.array_equal(np.isnan(a), np.isnan(b))
    ok = same_nan and a.shape == b.shape and np.allclose(a[~np.isnan(a)], b[~np.isnan(b)],
                                                         rtol=rtol, atol=atol)
    check(ok, f"{what}: got {a.tolist()}, expected {b.tolist()}")


# ---------------------------------------------------------------- ensemble_band

def test_ensemble_band():
    # point 0: {1, 3, 5} mean 3, sd 2 (ddof 1); point 1: {2, 4} mean 3, sd sqrt 2; point 2: {3}
    mean, lo, hi, n = cp.ensemble_band([[1, 2, 3], [3, 4], [5]])
    close(mean, [3, 3, 3], "ensemble_band mean (ragged)")
    close(hi - mean, [2, math.sqrt(2), 0], "ensemble_band sd (ragged, ddof 1)")
    close(mean - lo, [2, math.sqrt(2), 0], "ensemble_band band symmetric")
    close(n, [3, 2, 1], "ensemble_band member counts")
    # a NaN point of a member counts as missing
    mean, lo, hi, n = cp.ensemble_band([[1.0, np.nan], [3.0, 5.0]])
    close(mean, [2, 5], "ensemble_band mean with NaN")
    close(hi - mean, [math.sqrt(2), 0], "ensemble_band sd with NaN")
    close(n, [2, 1], "ensemble_band counts with NaN")
    # one member: no spread
    mean, lo, hi, n = cp.ensemble_band([[4.0, 5.0]])
    close(lo, [4, 5], "ensemble_band K=1 lo")
    close(hi, [4, 5], "ensemble_band K=1 hi")
    # equal lengths: the unbiased sample SD of K values a + k d is |d| sqrt(K (K + 1) / 12)
    K, d = 7, 0.3
    curves = [np.full(5, 2.0 + k * d) for k in range(K)]
    mean, lo, hi, n = cp.ensemble_band(curves)
    close(mean, np.full(5, 2.0 + d * (K - 1) / 2), "ensemble_band arithmetic mean")
    close(hi - mean, np.full(5, d * math.sqrt(K * (K + 1) / 12)), "ensemble_band arithmetic sd",
          rtol=1e-12)
    try:
        cp.ensemble_band([])
        check(False, "ensemble_band([]) must raise ValueError")
    except ValueError:
        pass


# ---------------------------------------------------------------- log_mean_exp

def test_log_mean_exp():
    close(cp.log_mean_exp([0.0, math.log(3.0)]), math.log(2.0), "log_mean_exp log((1+3)/2)")
    # no overflow / underflow: log((e^1000 + 3 e^1000) / 2) = 1000 + log 2
    close(cp.log_mean_exp([1000.0, 1000.0 + math.log(3.0)]), 1000.0 + math.log(2.0),
          "log_mean_exp large", rtol=1e-15)
    close(cp.log_mean_exp([-1000.0, -1000.0]), -1000.0, "log_mean_exp small", rtol=1e-15)
    # K = 4 equal members give the member value; one -inf member costs log(K / (K - 1))
    close(cp.log_mean_exp([-5.0, -np.inf, -5.0, -5.0]), -5.0 + math.log(3 / 4),
          "log_mean_exp one -inf member")
    with np.errstate(divide="ignore"):
        v = cp.log_mean_exp([-np.inf, -np.inf])
    check(v == -np.inf, f"log_mean_exp all -inf gives -inf (got {v})")
    a = np.array([[0.0, 10.0], [math.log(3.0), 10.0 + math.log(5.0)]])  # (K = 2, n = 2)
    close(cp.log_mean_exp(a, axis=0), [math.log(2.0), 10.0 + math.log(3.0)], "log_mean_exp axis 0")
    close(cp.log_mean_exp(a.T, axis=1), [math.log(2.0), 10.0 + math.log(3.0)],
          "log_mean_exp axis 1")


# ---------------------------------------------------------------- ratios

def test_ratios():
    r, e = cp.hist_ratio([4, 0, 9, 3], [1, 2, 0, 12])
    close(r, [4, 0, np.nan, 0.25], "hist_ratio values")
    # Poisson: err = r sqrt(1/num + 1/den); num = 0 has no relative error: NaN
    close(e, [2 * math.sqrt(5), np.nan, np.nan, 0.25 * math.sqrt(1 / 3 + 1 / 12)],
          "hist_ratio errors")
    r, e = cp.density_ratio([2.0, 0.0, 1.0], [0.2, 0.0, 0.1], [4.0, 1.0, 0.0], [0.4, 0.1, 0.0])
    close(r, [0.5, 0.0, np.nan], "density_ratio values")
    close(e, [0.5 * math.sqrt(0.02), np.nan, np.nan], "density_ratio errors")
    # densities of counts (counts / (N w), errors sqrt(counts) / (N w)): the same relative error
    # as hist_ratio of the counts, the ratio scaled by N_ref / N_gen
    ng, nr = np.array([10.0, 25.0, 7.0]), np.array([20.0, 16.0, 30.0])
    Ng, Nr, w = 1000.0, 4000.0, 0.5
    r1, e1 = cp.density_ratio(ng / (Ng * w), np.sqrt(ng) / (Ng * w), nr / (Nr * w),
                              np.sqrt(nr) / (Nr * w))
    r2, e2 = cp.hist_ratio(ng, nr)
    close(r1, r2 * Nr / Ng, "density_ratio vs hist_ratio values")
    close(e1, e2 * Nr / Ng, "density_ratio vs hist_ratio errors")
    close(cp.bin_centres([0, 1, 3, 6]), [0.5, 2, 4.5], "bin_centres")


# ---------------------------------------------------------------- png_stats

def _paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)


def encode_png(pixels, ctype, filters, depth=8, interlace=0, height=None):
    """A PNG of pixels (h, w, channels) uint8, row y filtered with filters[y % len(filters)]."""
    h, w, ch = pixels.shape
    bpp = ch
    raw = bytearray()
    prev = bytearray(w * bpp)
    for y in range(h):
        line = bytearray(pixels[y].astype(np.uint8).tobytes())
        f = filters[y % len(filters)]
        out = bytearray(len(line))
        for i in range(len(line)):
            a = line[i - bpp] if i >= bpp else 0
            b = prev[i]
            c = prev[i - bpp] if i >= bpp else 0
            pred = {0: 0, 1: a, 2: b, 3: (a + b) >> 1, 4: _paeth(a, b, c)}[f]
            out[i] = (line[i] - pred) & 255
        raw += bytes([f]) + out
        prev = line

    def chunk(typ, body):
        return struct.pack(">I", len(body)) + typ + body + struct.pack(">I", zlib.crc32(typ + body))
    ihdr = struct.pack(">IIBBBBB", w, height or h, depth, ctype, 0, 0, interlace)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(raw)))
            + chunk(b"IEND", b""))


def test_png(tmp):
    w, h, ncol = 23, 17, 7
    rng = np.random.default_rng(3)
    for ctype, ch in ((0, 1), (2, 3), (4, 2), (6, 4)):
        palette = rng.integers(0, 256, size=(ncol, ch))
        # distinct palette entries: a pixel repeats one of ncol values, every one present
        while len({tuple(p) for p in palette}) < ncol:
            palette = rng.integers(0, 256, size=(ncol, ch))
        idx = (np.arange(w)[None, :] + 3 * np.arange(h)[:, None]) % ncol
        pix = palette[idx]
        for filters in ([0], [1], [2], [3], [4], [0, 1, 2, 3, 4]):
            p = os.path.join(tmp, f"t{ctype}_{''.join(map(str, filters))}.png")
            with open(p, "wb") as fh:
                fh.write(encode_png(pix, ctype, filters))
            got = cp.png_stats(p)
            check(got == (w, h, ncol), f"png_stats colour type {ctype}, filters {filters}: "
                  f"{got} != {(w, h, ncol)}")
    # a blank image has one colour
    p = os.path.join(tmp, "blank.png")
    with open(p, "wb") as fh:
        fh.write(encode_png(np.full((9, 11, 3), 255), 2, [4]))
    check(cp.png_stats(p) == (11, 9, 1), f"png_stats blank: {cp.png_stats(p)}")
    # a large image is sampled on a coarse grid: every 2nd row and column of 400 x 400; odd rows
    # and odd columns get other colours, so the samples (even row, even column) see exactly one
    big = np.zeros((400, 400, 3), dtype=np.uint8)
    big[1::2, :, :] = 200
    big[:, 1::2, :] = 100
    p = os.path.join(tmp, "big.png")
    with open(p, "wb") as fh:
        fh.write(encode_png(big, 2, [1, 2]))
    check(cp.png_stats(p) == (400, 400, 1), f"png_stats coarse sampling: {cp.png_stats(p)}")
    # matplotlib's own PNGs: size = figsize x dpi; a blank figure is one colour, a plot is more
    fig = cp.plt.figure(figsize=(4, 3))
    fig.savefig(os.path.join(tmp, "mpl_blank.png"), dpi=50)
    cp.plt.close(fig)
    check(cp.png_stats(os.path.join(tmp, "mpl_blank.png")) == (200, 150, 1),
          f"png_stats matplotlib blank: {cp.png_stats(os.path.join(tmp, 'mpl_blank.png'))}")
    fig, ax = cp.plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1], color="C0")
    ax.set_title("x")
    fig.savefig(os.path.join(tmp, "mpl_plot.png"), dpi=50)
    cp.plt.close(fig)
    w2, h2, c2 = cp.png_stats(os.path.join(tmp, "mpl_plot.png"))
    check((w2, h2) == (200, 150) and c2 > 5, f"png_stats matplotlib plot: {(w2, h2, c2)}")
    # broken files raise ValueError
    good = encode_png(pix, 2 if pix.shape[2] == 3 else 6, [0])
    broken = {
        "signature": b"GIF89a" + good[6:],
        "truncated": good[:len(good) // 2],
        "crc": good[:30] + bytes([good[30] ^ 1]) + good[31:],
        "depth16": encode_png(np.zeros((2, 2, 3)), 2, [0], depth=16),
        "interlaced": encode_png(np.zeros((2, 2, 3)), 2, [0], interlace=1),
        "height": encode_png(np.zeros((4, 4, 3)), 2, [0], height=5),
        "no_idat": good[:33] + good[-12:],
    }
    for name, data in broken.items():
        p = os.path.join(tmp, f"bad_{name}.png")
        with open(p, "wb") as fh:
            fh.write(data)
        try:
            cp.png_stats(p)
            check(False, f"png_stats must reject a broken PNG ({name})")
        except ValueError:
            pass


def main():
    test_ensemble_band()
    test_log_mean_exp()
    test_ratios()
    with tempfile.TemporaryDirectory() as tmp:
        test_png(tmp)
    if failures:
        print(f"analysis_units: {len(failures)} failures")
        return 1
    print("PASS: analysis_units")
    return 0


if __name__ == "__main__":
    sys.exit(main())
