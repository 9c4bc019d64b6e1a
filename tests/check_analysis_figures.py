#!/usr/bin/python3
"""analysis/plot_metrics.py and analysis/make_report.py on synthetic metrics.h5 files.

Builds, with h5py in a temporary directory, one metrics file of each kind (hgg, images) in the
layout of src/infer/evaluate.c with known content (Gaussian densities, resolutions with
sigma_gen = 1.25 sigma_ref, chosen attributes), a bias file, a training run, a foreign HDF5 file
and a file that is not HDF5.  Checks
  - plot_metrics.py (the command) writes exactly the expected PNGs, lists them, and each is a
    valid non-blank image (cnflow_plot.png_stats);
  - headline() returns the numbers put in the files, and the core width ratio its closed form;
  - make_report.py writes report.md and report.html that reference every PNG of figures/ (and
    nothing that does not exist), contain the headline numbers, and note the absent sections;
  - make_report.py on an empty directory and on a directory with a broken metrics file does
    not fail and says what it skipped.
usage: check_analysis_figures.py [WORK_DIR]   prints "PASS: analysis_figures" when all hold
"""
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import h5py

HERE = os.path.dirname(os.path.abspath(__file__))
ANALYSIS = os.path.join(os.path.dirname(HERE), "analysis")
sys.path.insert(0, ANALYSIS)
import cnflow_plot as cp  # noqa: E402
import plot_metrics  # noqa: E402
import make_report  # noqa: E402

PY = sys.executable
failures = []
CNF_ORDER = ["d_et1", "d_phi1", "d_eta1", "d_et2", "d_phi2", "d_eta2"]
SCALE = {"d_et": 2.0, "d_phi": 1e-3, "d_eta": 1.2e-3}
K = 3


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def kind_of(col):
    return next(k for k in ("d_eta", "d_phi", "d_et") if col.startswith(k))


def put_compare(g, name, mu, sd, sd_gen, n_events, lo, hi, nb=40, attrs=None):
    """A compare_1d group: Gaussian densities (reference sd, generated sd_gen), Poisson errors
    of n_events, K members at (1 + 0.05 (k - 1)) x the generated density."""
    grp = g.create_group(name)
    e = np.linspace(lo, hi, nb + 1)
    x = 0.5 * (e[1:] + e[:-1])
    w = e[1] - e[0]
    dr = np.exp(-0.5 * ((x - mu) / sd) ** 2) / (sd * math.sqrt(2 * math.pi))
    dg = np.exp(-0.5 * ((x - mu) / sd_gen) ** 2) / (sd_gen * math.sqrt(2 * math.pi))
    grp["edges"] = e
    grp["density_ref"], grp["density_gen"] = dr, dg
    grp["err_ref"] = np.sqrt(dr * n_events * w) / (n_events * w)
    grp["err_gen"] = np.sqrt(dg * n_events * w) / (n_events * w)
    grp["density_members"] = np.array([dg * (1 + 0.05 * (k - 1)) for k in range(K)])
    base = {"w1": 0.1 * sd, "w1_members_sd": 0.01 * sd, "w1_floor": 0.02 * sd, "sep": 0.0123,
            "sep_err": 0.0011, "mean_gen": mu + 0.01 * sd, "mean_ref": mu, "sd_gen": sd_gen,
            "sd_ref": sd}
    base.update(attrs or {})
    for k, v in base.items():
        grp.attrs[k] = float(v)
    return grp


HGG_ATTRS = {"kind": "hgg", "n_events": 5000.0, "members": float(K), "w1_mean": 0.1234567,
             "sep_mean": 0.0456789, "auc": 0.5432109, "auc_err": 0.0123456}
MGG_WINDOW = {"window_mean_gen": 125.0312, "window_mean_err_gen": 0.0412,
              "window_sd_gen": 1.6234, "window_sd_err_gen": 0.0291,
              "window_mean_ref": 124.9876, "window_mean_err_ref": 0.0398,
              "window_sd_ref": 1.5821, "window_sd_err_ref": 0.0283,
              "window_events_gen": 4100.0, "window_events_ref": 4200.0}
RATIO, EG, ER = 1.25, 0.03, 0.02   # sigma_gen / sigma_ref, relative errors of gen and ref


def make_hgg(path):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "cnflow-metrics"
        f.attrs["format_version"] = 1.0
        f.attrs["samples"] = "not_here/samples.h5"   # order from the CNF study's columns
        for k, v in HGG_ATTRS.items():
            f.attrs[k] = v
        gm = f.create_group("marginals")
        for c in CNF_ORDER:
            s = SCALE[kind_of(c)]
            put_compare(gm, c, 0.0, s, 1.1 * s, 5000, -4 * s, 4 * s)
        cnf = f.create_group("cnf")
        res = cnf.create_group("resolution")
        res.attrs["core_k"] = 2.0
        D, nb = len(CNF_ORDER), 6
        sig_ref = np.array([[SCALE[kind_of(c)] * (1 + 0.05 * b) for b in range(nb)]
                            for c in CNF_ORDER])
        for v, e0 in (("et", [20, 35, 45, 55, 65, 90, 600]), ("abs_eta", np.linspace(0, 2.5, 7)),
                      ("mu", np.linspace(0, 60, 7))):
            g = res.create_group(v)
            g["edges"] = np.array([e0, np.asarray(e0) * (0.95 if v == "et" else 1.0)], dtype=float)
            g["sigma_ref"] = sig_ref
            g["sigma_ref_err"] = ER * sig_ref
            g["sigma_gen"] = RATIO * sig_ref
            g["sigma_gen_err"] = EG * RATIO * sig_ref
            g["sigma_members"] = np.array([RATIO * sig_ref * (1 + 0.02 * (k - 1)) for k in range(K)])
        put_compare(cnf, "m_gg", 125.0, 1.6, 1.65, 5000, 105, 145, nb=50, attrs=MGG_WINDOW)
        put_compare(cnf, "pt_gg", 40.0, 20.0, 21.0, 5000, 0, 120)
        cr = np.eye(D)
        cr[0, 3] = cr[3, 0] = 0.3
        cg = cr.copy()
        cg[0, 3] = cg[3, 0] = 0.2
        cnf["corr_ref"], cnf["corr_gen"] = cr, cg
        cnf["corr_members"] = np.array([cg] * K)
        cnf["tail_fraction_ref"] = np.full(D, 0.002)
        cnf["tail_fraction_ref_err"] = np.full(D, 0.0006)
        cnf["tail_fraction_gen"] = np.linspace(0.001, 0.006, D)
        cnf["tail_fraction_gen_err"] = np.full(D, 0.0005)
        c = f.create_group("classifier")
        for k, v in {"auc": HGG_ATTRS["auc"], "auc_err": HGG_ATTRS["auc_err"], "w_mean": 1.01,
                     "w_std": 0.11, "w_max": 2.5}.items():
            c.attrs[k] = v


IMG_ATTRS = {"kind": "images", "n_events": 800.0, "members": float(K), "w1_mean": 321.5,
             "sep_mean": float("nan"), "auc": 0.7777, "auc_err": 0.0222}
SHAPE_SEP = {"e_total": 0.011, "e_max1": 0.022, "e_max2": 0.033, "width": 0.044, "r9": 0.055,
             "n_clusters": 0.066}
SHAPE_RANGE = {"e_total": (20000, 100000), "e_max1": (2000, 60000), "e_max2": (500, 30000),
               "width": (0.3, 2.5), "r9": (0.4, 1.0), "n_clusters": (-0.5, 4.5)}


def make_images(path):
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "cnflow-metrics"
        f.attrs["format_version"] = 1.0
        f.attrs["samples"] = "ps.h5"
        for k, v in IMG_ATTRS.items():
            f.attrs[k] = v
        f.create_group("marginals")   # images: no per-pixel marginals
        im = f.create_group("images")
        r, c = np.mgrid[0:16, 0:8]
        ref = 8000 * np.exp(-0.5 * (((r - 7.5) / 2.0) ** 2 + ((c - 3.5) / 1.2) ** 2)) + 1.0
        gen = ref * (1 + 0.1 * np.sin(r + c))
        im["mean_ref"], im["mean_gen"] = ref, gen
        im["rel_diff"] = (gen - ref) / ref
        sh = im.create_group("shapes")
        sh["thickness_edges"] = np.linspace(0.5, 1.5, 5)
        sh["distance_edges"] = np.linspace(50, 90, 5)
        for q, (lo, hi) in SHAPE_RANGE.items():
            nb = 5 if q == "n_clusters" else 40
            mu, sd = lo + 0.45 * (hi - lo), 0.12 * (hi - lo)
            g = put_compare(sh, q, mu, sd, 1.1 * sd, 800, lo, hi, nb=nb, attrs={"sep": SHAPE_SEP[q]})
            for mat in ("thickness", "distance"):
                for b in range(4):
                    put_compare(g, f"{mat}_bin{b}", mu * (1 + 0.02 * b), sd, 1.1 * sd, 200, lo, hi,
                                nb=nb)
            base = mu * (1 + 0.01 * np.add.outer(np.arange(4), np.arange(4)))
            g["grid_mean_ref"] = base
            g["grid_mean_gen"] = base * 1.03
            g["grid_events"] = np.full((4, 4), 50.0)
        cl = f.create_group("classifier")
        for k, v in {"auc": IMG_ATTRS["auc"], "auc_err": IMG_ATTRS["auc_err"], "w_mean": 0.9,
                     "w_std": 0.2, "w_max": 3.0}.items():
            cl.attrs[k] = v


def make_bias(path):
    """Two rows (flow, loguniform prior, 20 and 50 GeV) in the cnflow bias layout."""
    with h5py.File(path, "w") as f:
        f.attrs["format"] = "cnflow-bias"
        f.attrs["format_version"] = 1
        g = f.create_group("bias")
        st = h5py.string_dtype()
        g.create_dataset("file", data=["scan_20GeV.h5", "scan_50GeV.h5"], dtype=st)
        g.create_dataset("method", data=["flow", "flow"], dtype=st)
        g.create_dataset("prior", data=["loguniform", "loguniform"], dtype=st)
        for k, v in {"e_true_mean": [20.0, 50.0], "mode": [1.0123, 0.9987],
                     "mode_err": [0.0111, 0.0077], "res_full": [0.21, 0.15],
                     "res_full_err": [0.011, 0.009], "res_shower_mean": [0.2, 0.14],
                     "res_shower_std": [0.03, 0.02], "asym_median": [0.91, 0.97],
                     "n_intervals": [100, 100], "n_showers": [100, 100], "n_used": [100, 100],
                     "e_min": [1, 1], "e_max": [100, 100]}.items():
            g[k] = np.array(v, dtype=float)
        g["flag_counts"] = np.array([[1, 2, 0, 0], [0, 1, 0, 0]], dtype=float)
        edges = np.linspace(0, 3, 31)
        g["asym_edges"] = edges
        x = 0.5 * (edges[1:] + edges[:-1])
        g["asym_hist"] = np.array([100 * np.exp(-0.5 * ((x - m) / 0.3) ** 2) for m in (0.9, 1.0)])


def make_run(d):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "ensemble.txt"), "w") as fh:
        fh.write("format cnflow-ensemble 1\nmembers 2\nmetric nll\n"
                 "member 0 member_000.h5 seed 1 best_epoch 2 score 1.5\n"
                 "member 1 member_001.h5 seed 2 best_epoch 3 score 1.4\n")
    for k in range(2):
        with open(os.path.join(d, f"member_{k:03d}.history.tsv"), "w") as fh:
            fh.write("# epoch\ttrain_nll\tval_nll\tlr\tseconds\n")
            for ep in range(1, 5):
                fh.write(f"{ep}\t{3.0 / ep + 0.1 * k}\t{2.0 / ep + 1.0 + 0.1 * k}\t0.001\t0.5\n")


# ---------------------------------------------------------------- checks

def png_ok(p, what):
    if not os.path.isfile(p):
        check(False, f"{what}: {p} missing")
        return
    try:
        w, h, ncol = cp.png_stats(p)
    except ValueError as e:
        check(False, f"{what}: {p} is not a valid PNG: {e}")
        return
    check(w >= 300 and h >= 200, f"{what}: {p} is only {w} x {h}")
    check(ncol >= 20, f"{what}: {p} looks blank ({ncol} colours)")


HGG_FIGS = ["marginals", "resolution_et", "resolution_abs_eta", "resolution_mu", "mgg_ptgg",
            "correlations", "tails"]
IMG_FIGS = ["images", "shapes", "shapes_thickness", "shapes_distance", "shape_grids"]


def check_headline(path, attrs, extra):
    hl = plot_metrics.headline(path)
    d = {n: (v, e) for n, v, e in hl}
    names = [n for n, _, _ in hl]
    check(len(names) == len(set(names)), f"headline names repeat: {names}")
    want = {"kind": (attrs["kind"], None), "events": (attrs["n_events"], None),
            "members": (attrs["members"], None), "mean W1": (attrs["w1_mean"], None),
            "mean separation power": (attrs["sep_mean"], None),
            "classifier AUC": (attrs["auc"], attrs["auc_err"])}
    want.update(extra)
    for n, (v, e) in want.items():
        if n not in d:
            check(False, f"{os.path.basename(path)}: headline has no '{n}' ({names})")
            continue
        gv, ge = d[n]
        same = (gv == v) if isinstance(v, str) else (
            (math.isnan(v) and math.isnan(gv)) or math.isclose(gv, v, rel_tol=1e-12))
        check(same, f"headline '{n}': value {gv} != {v}")
        if e is None:
            check(ge is None, f"headline '{n}': error {ge}, expected none")
        else:
            check(ge is not None and math.isclose(ge, e, rel_tol=1e-12),
                  f"headline '{n}': error {ge} != {e}")
    return hl


def refs(text, kind):
    pat = r"!\[[^\]]*\]\(([^)]+\.png)\)" if kind == "md" else r"<img src=\"([^\"]+\.png)\""
    return re.findall(pat, text)


def check_report(root, prefix, must_contain, must_note):
    md, ht = prefix + ".md", prefix + ".html"
    for p in (md, ht):
        check(os.path.isfile(p), f"report {p} missing")
        check(not os.path.exists(p + ".tmp"), f"temporary {p}.tmp left behind")
    if failures:
        return
    base = os.path.dirname(prefix)
    figs = sorted(os.path.relpath(os.path.join(root, "figures", f), base)
                  for f in os.listdir(os.path.join(root, "figures")) if f.endswith(".png"))
    for p, kind in ((md, "md"), (ht, "html")):
        text = open(p, encoding="utf-8").read()
        r = refs(text, kind)
        check(sorted(set(r)) == figs, f"{os.path.basename(p)} references {sorted(set(r))}, "
              f"figures/ has {figs}")
        for x in r:
            check(os.path.isfile(os.path.join(base, x)), f"{os.path.basename(p)}: {x} not found")
        for s in must_contain:
            check(s in text, f"{os.path.basename(p)} lacks '{s}'")
        for s in must_note:
            check(s in text, f"{os.path.basename(p)} lacks the note '{s}'")
    ht_text = open(ht, encoding="utf-8").read()
    check(ht_text.startswith("<!DOCTYPE html>") and ht_text.rstrip().endswith("</html>"),
          "report.html is not a complete document")
    check("http://" not in ht_text and "https://" not in ht_text,
          "report.html must not load anything from the network")
    for f in figs:
        png_ok(os.path.join(base, f), "report figure")


def run(cmd, what):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    check(p.returncode == 0, f"{what} exited {p.returncode}: {p.stderr[-2000:]}")
    return p


def main(argv):
    work = argv[1] if len(argv) > 1 else tempfile.mkdtemp(prefix="analysis_figures_")
    shutil.rmtree(work, ignore_errors=True)
    demo = os.path.join(work, "demo")
    for d in ("cnf", "paraflow", "foreign"):
        os.makedirs(os.path.join(demo, d))
    hgg, img = os.path.join(demo, "cnf", "metrics.h5"), os.path.join(demo, "paraflow", "metrics.h5")
    make_hgg(hgg)
    make_images(img)
    make_bias(os.path.join(demo, "bias_flow.h5"))
    make_run(os.path.join(demo, "cnf"))
    with h5py.File(os.path.join(demo, "foreign", "other.h5"), "w") as f:
        f["x"] = np.arange(3)
    with open(os.path.join(demo, "foreign", "garbage.h5"), "wb") as fh:
        fh.write(b"this is not HDF5\n" * 10)

    # 1. plot_metrics.py, the command, on the hgg file: exactly the expected PNGs, listed
    prefix = os.path.join(work, "cli", "hgg")
    p = run([PY, os.path.join(ANALYSIS, "plot_metrics.py"), hgg, "-o", prefix], "plot_metrics.py")
    listed = [ln.strip() for ln in p.stdout.splitlines() if ln.strip().endswith(".png") and
              not ln.startswith("analysis:")]
    want = [f"{prefix}_{s}.png" for s in HGG_FIGS]
    check(listed == want, f"plot_metrics.py listed {listed}, expected {want}")
    check("skipped" not in p.stderr, f"plot_metrics.py skipped figures: {p.stderr[-1500:]}")
    got = sorted(os.listdir(os.path.dirname(prefix)))
    check(got == sorted(os.path.basename(w) for w in want), f"files written: {got}")
    for w in want:
        png_ok(w, "plot_metrics hgg")

    # 2. headline numbers: what was put in the files; the core width ratio in closed form
    #    (every cell has ratio 1.25 and relative errors 3 % and 2 %: the mean of n cells has the
    #    error 1.25 sqrt(0.03^2 + 0.02^2) / sqrt(n))
    e_cell = RATIO * math.sqrt(EG ** 2 + ER ** 2)
    hgg_extra = {"classifier weight mean": (1.01, None), "classifier weight SD": (0.11, None),
                 "classifier weight max": (2.5, None),
                 "core width ratio gen/ref": (RATIO, e_cell / math.sqrt(36)),
                 "core width ratio gen/ref, ΔE_T": (RATIO, e_cell / math.sqrt(12)),
                 "core width ratio gen/ref, Δφ": (RATIO, e_cell / math.sqrt(12)),
                 "core width ratio gen/ref, Δη": (RATIO, e_cell / math.sqrt(12))}
    for w, wn in (("gen", "generated"), ("ref", "reference")):
        hgg_extra[f"m_gg window mean, {wn} [GeV]"] = (MGG_WINDOW[f"window_mean_{w}"],
                                                      MGG_WINDOW[f"window_mean_err_{w}"])
        hgg_extra[f"m_gg window SD, {wn} [GeV]"] = (MGG_WINDOW[f"window_sd_{w}"],
                                                    MGG_WINDOW[f"window_sd_err_{w}"])
    hl_hgg = check_headline(hgg, HGG_ATTRS, hgg_extra)
    with h5py.File(img, "r") as f:
        rd = f["images/rel_diff"][()]
    img_extra = {f"separation power {q}": (SHAPE_SEP[q], 0.0011) for q in SHAPE_SEP}
    img_extra["mean |rel. diff.| of the average image"] = (float(np.mean(np.abs(rd))), None)
    hl_img = check_headline(img, IMG_ATTRS, img_extra)
    rows = plot_metrics.marginal_rows(hgg)
    check([r["name"] for r in rows] == CNF_ORDER + ["m_gg", "pt_gg"],
          f"marginal_rows order: {[r['name'] for r in rows]}")
    check(math.isclose(rows[1]["w1"], 0.1 * SCALE["d_phi"], rel_tol=1e-12),
          f"marginal_rows W1 of d_phi1: {rows[1]['w1']}")

    # 3. make_report.py on the whole directory (both kinds, bias, a run, foreign files)
    p = run([PY, os.path.join(ANALYSIS, "make_report.py"), demo, "--no-likelihood"],
            "make_report.py")
    figs = os.path.join(demo, "figures")
    expect = ([f"cnf_metrics_{s}.png" for s in HGG_FIGS] +
              [f"paraflow_metrics_{s}.png" for s in IMG_FIGS] +
              ["calibration_mode.png", "calibration_resolution.png", "calibration_asymmetry.png",
               "training_cnf.png"])
    have = sorted(os.listdir(figs)) if os.path.isdir(figs) else []
    check(sorted(expect) == have, f"figures/: {have}, expected {sorted(expect)}")
    numbers = [make_report.fmt_val(v, e) for hl in (hl_hgg, hl_img) for n, v, e in hl]
    numbers += ["1.0123 ± 0.0111", "0.9987 ± 0.0077"]  # bias modes, plot_calibration.table format
    check("0.5432 ± 0.012" in numbers, f"fmt_val of the AUC: {numbers[:8]}")
    check_report(demo, os.path.join(demo, "report"),
                 numbers + ["cnf/metrics.h5", "paraflow/metrics.h5", "bias_flow.h5"],
                 ["No scan files"])
    check("other.h5" not in open(os.path.join(demo, "report.md")).read(),
          "a foreign HDF5 file must be ignored, not reported")

    # 4. an empty directory and a broken metrics file: no failure, notes instead
    empty = os.path.join(work, "empty")
    os.makedirs(empty)
    run([PY, os.path.join(ANALYSIS, "make_report.py"), empty, "-o", os.path.join(empty, "r", "x")],
        "make_report.py (empty)")
    check_report(empty, os.path.join(empty, "r", "x"), [],
                 ["No metrics.h5 files", "No bias files", "No scan files", "No training",
                  "No dataset files"])
    broken = os.path.join(work, "broken")
    os.makedirs(broken)
    with h5py.File(os.path.join(broken, "metrics.h5"), "w") as f:
        f.attrs["format"] = "cnflow-metrics"
        f.attrs["kind"] = "hgg"
        f.create_group("marginals")["d_et1"] = np.zeros(3)   # a dataset where a group belongs
    run([PY, os.path.join(ANALYSIS, "make_report.py"), broken], "make_report.py (broken)")
    text = open(os.path.join(broken, "report.md")).read() if os.path.isfile(
        os.path.join(broken, "report.md")) else ""
    check("metrics.h5" in text and ("Skipped" in text or "figure skipped" in text),
          "the broken metrics file must be reported as skipped")
    check_report(broken, os.path.join(broken, "report"), [], [])

    if failures:
        print(f"analysis_figures: {len(failures)} failures (work directory {work})")
        return 1
    shutil.rmtree(work, ignore_errors=True)
    print("PASS: analysis_figures")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
