#!/usr/bin/python3
"""The report of a study directory: every cnflow output found under DIR drawn into DIR/figures/
and summarised in report.md and report.html (README "Two commands", jobs/demo.sh stage 6).

usage: make_report.py DIR [-o PREFIX] [--figures FIGDIR] [--no-likelihood] [--max-rows N]

Found by walking DIR (the figures directory and hidden directories are skipped):
  metrics.h5   root attr format "cnflow-metrics" (cnflow evaluate): plot_metrics.py figures,
               headline numbers (kind, events, members, mean W1, mean separation power, AUC ± err,
               m_γγ window mean/SD gen vs ref, core width ratio, ...) and a table of the marginals
  bias.h5      format "cnflow-bias" (cnflow bias): plot_calibration.py over all bias files, the
               mode ± err and resolutions per file, method, prior and energy
  scan.h5      format "cnflow-scan" (cnflow scan / regress): shower counts, failures, median
               E_pred/E_true; plot_likelihood.py curves of flow scans (torch; --no-likelihood skips)
  fit.h5       format "cnflow-fit" (cnflow fit): estimate ± error against the truth
  datasets     root attr generator hgg, calo-photon, calo-pion: plot_datasets.py figures
  training     directories with ensemble.txt and member_*.history.tsv: plot_training.py, best
               epoch and score per member
PREFIX (default DIR/report) gets .md and .html, both written under temporary names and renamed;
the HTML is self-contained apart from the PNG files, referenced by relative paths.  A kind of
output that is absent gives a one-line note in its section; a file that cannot be read or drawn
is listed under "Skipped" with the reason.  Exit status 0 unless DIR does not exist.
"""
import argparse
import datetime
import html
import os
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnflow_plot as cp  # noqa: E402
import plot_metrics  # noqa: E402

KNOWN_FORMATS = ("cnflow-metrics", "cnflow-bias", "cnflow-scan", "cnflow-fit")
DATASET_GENERATORS = ("hgg", "calo-photon", "calo-pion")
COMMON = ("kind", "events", "members", "mean W1", "mean separation power", "classifier AUC")

CAL_CAPTIONS = {
    "mode": "Bias: KDE mode of E_pred/E_true (error: bootstrap SD) against the true energy, per "
            "method and training prior.",
    "resolution": "Resolution: full (percentile half-width of E_pred/E_true) and the mean "
                  "per-shower 68 % interval half-width (band: its SD over showers).",
    "asymmetry": "Interval asymmetry Δ_L/Δ_U of the per-shower 68 % intervals, per energy "
                 "(flow series; medians dashed).",
}
DATASET_CAPTIONS = {
    "truth": "H→γγ truth kinematics of the dataset (photon E_T, η, pile-up μ, m_γγ, Higgs p_T, y).",
    "residuals": "H→γγ detector response (reco − truth of photon-1 E_T, η, φ) per scenario.",
    "images": "Average photon shower image (log colour scale, MeV).",
    "conditions": "Conditions of the photon showers: incident energy, material thickness d and "
                  "distance b.",
    "layers": "The six calorimeter layer energies of the pion showers.",
    "response": "Pion response: the sum of the layers over the incident energy (EM scale).",
}


# ---------------------------------------------------------------- discovery

def classify(path):
    """(category, format or generator) of an HDF5 file, or (None, reason)."""
    import h5py
    try:
        with h5py.File(path, "r") as f:
            fmt = cp.s(f.attrs.get("format", ""))
            gen = cp.s(f.attrs.get("generator", ""))
    except (OSError, ValueError) as e:
        return None, f"not readable as HDF5 ({e})"
    if fmt in KNOWN_FORMATS:
        return fmt.split("-", 1)[1], fmt
    if gen in DATASET_GENERATORS:
        return "dataset", gen
    return None, fmt or gen or "no format/generator attribute"


def discover(root, skip_dirs):
    """Outputs under root: {category: [paths]} (sorted), and the training run directories."""
    found = {k: [] for k in ("metrics", "bias", "scan", "fit", "dataset")}
    runs = []
    skip = {os.path.abspath(d) for d in skip_dirs}
    for d, subdirs, files in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if not s.startswith(".") and
                            os.path.abspath(os.path.join(d, s)) not in skip)
        if "ensemble.txt" in files and any(f.startswith("member_") and
                                           f.endswith(".history.tsv") for f in files):
            runs.append(d)
        for fn in sorted(files):
            # temporaries of a running or failed job, checkpoints and member model files
            if not fn.endswith(".h5") or ".tmp" in fn or fn.endswith(".ckpt.h5") or \
                    fn.startswith("member_"):
                continue
            p = os.path.join(d, fn)
            cat, _ = classify(p)
            if cat:
                found[cat].append(p)
    for k in found:
        found[k].sort()
    return found, sorted(runs)


def tag_of(path, root):
    """A file-name-safe tag from the path relative to root: cnf_baseline/metrics.h5 ->
    cnf_baseline_metrics (so that two metrics.h5 files do not overwrite each other's figures)."""
    rel = os.path.relpath(path, root)
    rel = os.path.splitext(rel)[0] if rel.endswith(".h5") else rel
    if rel in (".", ""):
        rel = os.path.basename(os.path.abspath(root))
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in rel.replace(os.sep, "_"))


# ---------------------------------------------------------------- formatting

def fmt_num(v, digits=4):
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    v = float(v)
    if not np.isfinite(v):
        return "n/a"
    if v == int(v) and abs(v) < 1e9:
        return f"{int(v)}"
    return f"{v:.{digits}g}"


def fmt_val(v, e=None):
    """value ± error as printed in the report's tables."""
    s = fmt_num(v)
    if e is not None and not isinstance(v, str) and np.isfinite(float(v)):
        if np.isfinite(float(e)):
            s += f" ± {float(e):.2g}"
    return s


class Report:
    """Blocks of a report rendered as Markdown and as HTML."""

    def __init__(self, title):
        self.title = title
        self.blocks = []

    def h(self, level, text):
        self.blocks.append(("h", level, text))

    def p(self, text):
        self.blocks.append(("p", text))

    def note(self, text):
        self.blocks.append(("note", text))

    def table(self, header, rows):
        self.blocks.append(("table", header, [[str(c) for c in r] for r in rows]))

    def fig(self, path, caption):
        self.blocks.append(("fig", path, caption))

    def figures(self):
        return [b[1] for b in self.blocks if b[0] == "fig"]

    def markdown(self, rel):
        out = [f"# {self.title}", ""]
        for b in self.blocks:
            if b[0] == "h":
                out += ["#" * (b[1] + 1) + " " + b[2], ""]
            elif b[0] == "p":
                out += [b[1], ""]
            elif b[0] == "note":
                out += [f"> {b[1]}", ""]
            elif b[0] == "table":
                esc = [[c.replace("|", "\\|") for c in r] for r in [b[1]] + b[2]]
                out.append("| " + " | ".join(esc[0]) + " |")
                out.append("|" + "---|" * len(esc[0]))
                out += ["| " + " | ".join(r) + " |" for r in esc[1:]]
                out.append("")
            elif b[0] == "fig":
                out += [f"![{os.path.basename(b[1])}]({rel(b[1])})", "",
                        f"*{os.path.basename(b[1])}: {b[2]}*", ""]
        return "\n".join(out) + "\n"

    def html(self, rel):
        e = html.escape
        out = ["<!DOCTYPE html>", "<html lang=\"en\"><head><meta charset=\"utf-8\">",
               f"<title>{e(self.title)}</title>", "<style>",
               "body{font-family:sans-serif;max-width:1200px;margin:1em auto;padding:0 1em;"
               "color:#222;line-height:1.4}",
               "table{border-collapse:collapse;margin:0.5em 0 1em;font-size:0.9em}",
               "th,td{border:1px solid #bbb;padding:3px 7px;text-align:left}",
               "th{background:#eee}tr:nth-child(even) td{background:#f8f8f8}",
               "figure{margin:1em 0 2em}img{max-width:100%;border:1px solid #ddd}",
               "figcaption{font-size:0.9em;color:#444;margin-top:0.3em}",
               ".note{color:#7a4d00;background:#fff6e0;padding:4px 8px;border-left:3px solid "
               "#e0a000}", "</style></head><body>", f"<h1>{e(self.title)}</h1>"]
        for b in self.blocks:
            if b[0] == "h":
                lv = min(6, b[1] + 1)
                out.append(f"<h{lv}>{e(b[2])}</h{lv}>")
            elif b[0] == "p":
                out.append(f"<p>{e(b[1])}</p>")
            elif b[0] == "note":
                out.append(f"<p class=\"note\">{e(b[1])}</p>")
            elif b[0] == "table":
                out.append("<table><thead><tr>" + "".join(f"<th>{e(c)}</th>" for c in b[1]) +
                           "</tr></thead><tbody>")
                out += ["<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>" for r in b[2]]
                out.append("</tbody></table>")
            elif b[0] == "fig":
                out.append(f"<figure><img src=\"{e(rel(b[1]))}\" alt=\"{e(os.path.basename(b[1]))}"
                           f"\" loading=\"lazy\"><figcaption><b>{e(os.path.basename(b[1]))}</b>: "
                           f"{e(b[2])}</figcaption></figure>")
        out.append("</body></html>")
        return "\n".join(out) + "\n"


# ---------------------------------------------------------------- sections

class Builder:
    def __init__(self, root, figdir, rep, likelihood=True, max_rows=200000):
        self.root, self.figdir, self.rep = root, figdir, rep
        self.likelihood, self.max_rows = likelihood, max_rows
        self.skipped = []

    def skip(self, what, err):
        msg = f"{what}: {type(err).__name__ if not isinstance(err, str) else 'skipped'}: {err}"
        self.skipped.append(msg)
        cp.warn(f"skipped {msg}")
        cp.plt.close("all")

    def rel(self, p):
        return os.path.relpath(p, self.root)

    def metrics(self, paths):
        r = self.rep
        r.h(1, "Generated vs reference (cnflow evaluate)")
        if not paths:
            r.note("No metrics.h5 files (format cnflow-metrics) found: section skipped.")
            return
        rows, heads = [], {}
        for p in paths:
            try:
                hl = plot_metrics.headline(p)
            except Exception as e:  # noqa: BLE001 - one bad file must not end the report
                self.skip(self.rel(p), e)
                continue
            heads[p] = hl
            d = {n: (v, err) for n, v, err in hl}
            rows.append([self.rel(p)] + [fmt_val(*d[n]) if n in d else "" for n in COMMON])
        if rows:
            r.table(["file", "kind", "events", "members", "mean W1", "mean sep. power",
                     "classifier AUC"], rows)
        for p, hl in heads.items():
            r.h(2, self.rel(p))
            spec = [(n, v, e) for n, v, e in hl if n not in COMMON]
            if spec:
                r.table(["quantity", "value"], [[n, fmt_val(v, e)] for n, v, e in spec])
            try:
                mr = plot_metrics.marginal_rows(p)
                if mr:
                    r.table(["variable", "unit", "W1", "W1 members SD", "W1 floor",
                             "sep. power", "mean gen / ref", "SD gen / ref"],
                            [[m["name"], m["unit"] or "–", fmt_num(m["w1"]),
                              fmt_num(m["w1_members_sd"], 2), fmt_num(m["w1_floor"], 2),
                              fmt_val(m["sep"], m["sep_err"]),
                              f"{fmt_num(m['mean_gen'])} / {fmt_num(m['mean_ref'])}",
                              f"{fmt_num(m['sd_gen'])} / {fmt_num(m['sd_ref'])}"] for m in mr])
                done, missing = plot_metrics.plot_all(
                    p, os.path.join(self.figdir, tag_of(p, self.root)))
            except Exception as e:  # noqa: BLE001
                self.skip(f"{self.rel(p)} figures", e)
                continue
            for png, cap in done:
                r.fig(png, cap)
            for m in missing:
                r.note(f"figure skipped: {m}")

    def bias(self, paths):
        import plot_calibration
        r = self.rep
        r.h(1, "Calibration: bias and resolution (cnflow bias)")
        if not paths:
            r.note("No bias files (format cnflow-bias) found: section skipped.")
            return
        try:
            header, rows = plot_calibration.table(paths)
            r.table(header, rows)
        except Exception as e:  # noqa: BLE001
            self.skip("bias table", e)
            return
        try:
            done, missing = plot_calibration.plot_all(paths, os.path.join(self.figdir, "calibration"))
        except Exception as e:  # noqa: BLE001
            self.skip("calibration figures", e)
            return
        for png in done:
            suffix = os.path.splitext(png)[0].rsplit("_", 1)[-1]
            r.fig(png, CAL_CAPTIONS.get(suffix, "Calibration figure.") +
                  f" Files: {', '.join(self.rel(p) for p in paths)}.")
        for m in missing:
            r.note(f"figure skipped: {m}")

    def scans(self, paths):
        import h5py
        r = self.rep
        r.h(1, "Per-shower calibration scans (cnflow scan / regress)")
        if not paths:
            r.note("No scan files (format cnflow-scan) found: section skipped.")
            return
        rows, flow = [], []
        for p in paths:
            try:
                with h5py.File(p, "r") as f:
                    a = f.attrs
                    sc = f["scan"]
                    et, ep = sc["e_true"][()], sc["e_pred"][()]
                    flags = sc["flags"][()].astype(np.int64)
                    method = cp.s(a.get("method", "flow"))
                    ok = np.isfinite(ep) & np.isfinite(et) & (et > 0)
                    resp = np.median(ep[ok] / et[ok]) if ok.any() else np.nan
                    rows.append([self.rel(p), method, cp.s(a.get("prior", "")),
                                 fmt_num(float(np.mean(et)) if et.size else np.nan),
                                 str(len(et)), str(int(np.sum((flags & 8) != 0))),
                                 fmt_num(resp), fmt_num(int(a.get("members", 0)))])
                    if method == "flow":
                        flow.append(p)
            except Exception as e:  # noqa: BLE001
                self.skip(self.rel(p), e)
        if rows:
            r.table(["file", "method", "prior", "mean E_true [GeV]", "showers", "failed (flag 8)",
                     "median E_pred/E_true", "members"], rows)
        if not flow:
            return
        if not self.likelihood:
            r.note("Likelihood curves not drawn (--no-likelihood).")
            return
        import plot_likelihood
        for p in flow:
            out = os.path.join(self.figdir, f"likelihood_{tag_of(p, self.root)}.png")
            try:
                plot_likelihood.plot(p, out, n_showers=4, n_grid=120, backend="auto")
            except Exception as e:  # noqa: BLE001
                self.skip(f"{self.rel(p)} likelihood curves", e)
                continue
            r.fig(out, f"Likelihood curves −2Δlog L(E) of the first showers of {self.rel(p)}, "
                  "recomputed from its ensemble: members thin with their band, the ensemble "
                  "black, the scan's 68 % interval shaded, E_pred and E_true marked.")

    def fits(self, paths):
        import h5py
        if not paths:
            return  # cnflow fit is not part of every study: no section, no note
        r = self.rep
        r.h(1, "Joint fits of shared conditions (cnflow fit)")
        rows = []
        for p in paths:
            try:
                with h5py.File(p, "r") as f:
                    cols = cp.s(f.attrs.get("columns", "")).split(",")
                    g = f["fit"]
                    best, sig = g["best"][()], g["sigma"][()]
                    tm = g["truth_mean"][()] if "truth_mean" in g else np.full(len(best), np.nan)
                    for j in range(len(best)):
                        rows.append([self.rel(p), cols[j] if j < len(cols) else f"c{j}",
                                     fmt_val(best[j], sig[j]), fmt_num(tm[j]),
                                     fmt_num(int(f.attrs.get("showers", 0)))])
            except Exception as e:  # noqa: BLE001
                self.skip(self.rel(p), e)
        if rows:
            r.table(["file", "column", "fit ± error", "truth (mean)", "showers"], rows)

    def training(self, runs):
        import plot_training
        r = self.rep
        r.h(1, "Training runs (cnflow train)")
        if not runs:
            r.note("No training directories (ensemble.txt + member_*.history.tsv) found: "
                   "section skipped.")
            return
        rows, figs = [], []
        for d in runs:
            try:
                for m in plot_training.summary(d):
                    rows.append([self.rel(d), str(m["member"]), m["metric"], str(m["best_epoch"]),
                                 fmt_num(m["best_val"], 6), fmt_num(m["last_train_nll"], 6),
                                 str(m["epochs"]), fmt_num(m["seconds"], 3)])
                out = os.path.join(self.figdir, f"training_{tag_of(d, self.root)}.png")
                plot_training.plot(d, out)
                figs.append((out, f"Training of {self.rel(d)}: training NLL, validation metric "
                             "(selected epochs starred) and learning rate per epoch; members thin, "
                             "ensemble mean and ±1 sd band."))
            except Exception as e:  # noqa: BLE001
                self.skip(self.rel(d), e)
        if rows:
            r.table(["run", "member", "metric", "best epoch", "best score", "last train NLL",
                     "epochs", "train time [s]"], rows)
        for png, cap in figs:
            r.fig(png, cap)

    def datasets(self, paths):
        import plot_datasets
        r = self.rep
        r.h(1, "Datasets (cnflow generate)")
        if not paths:
            r.note("No dataset files (generator hgg, calo-photon, calo-pion) found: section "
                   "skipped.")
            return
        for p in paths:
            try:
                done = plot_datasets.plot_file(p, self.figdir, self.max_rows)
            except Exception as e:  # noqa: BLE001
                self.skip(self.rel(p), e)
                continue
            for png in done:
                suffix = os.path.splitext(png)[0].rsplit("_", 1)[-1]
                r.fig(png, DATASET_CAPTIONS.get(suffix, "Dataset figure.") +
                      f" File: {self.rel(p)} (first {self.max_rows} rows at most).")


def _git_rev():
    try:
        return subprocess.run(["git", "-C", os.path.dirname(os.path.abspath(__file__)),
                               "describe", "--always", "--dirty"], capture_output=True, text=True,
                              timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, path)


def build(root, prefix=None, figdir=None, likelihood=True, max_rows=200000):
    """Draw everything and write PREFIX.md and PREFIX.html.  Returns (md, html, figures, skipped)."""
    root = os.path.abspath(root)
    prefix = os.path.abspath(prefix or os.path.join(root, "report"))
    figdir = os.path.abspath(figdir or os.path.join(root, "figures"))
    os.makedirs(figdir, exist_ok=True)
    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    found, runs = discover(root, [figdir])
    rep = Report(f"cnflow report: {os.path.basename(root)}")
    rep.p(f"Directory {root}; generated {datetime.datetime.now().isoformat(timespec='seconds')} "
          f"by analysis/make_report.py (git {_git_rev()}). Found: {len(found['metrics'])} metrics, "
          f"{len(found['bias'])} bias, {len(found['scan'])} scan, {len(found['fit'])} fit, "
          f"{len(found['dataset'])} dataset files and {len(runs)} training runs. Errors are "
          "statistical (± value after a number); bands in the figures are the ±1 sd spread over "
          "ensemble members.")
    b = Builder(root, figdir, rep, likelihood, max_rows)
    b.metrics(found["metrics"])
    b.bias(found["bias"])
    b.scans(found["scan"])
    b.fits(found["fit"])
    b.training(runs)
    b.datasets(found["dataset"])
    if b.skipped:
        rep.h(1, "Skipped")
        for s in b.skipped:
            rep.note(s)
    base = os.path.dirname(prefix)

    def rel(p):
        return os.path.relpath(p, base).replace(os.sep, "/")
    md, ht = prefix + ".md", prefix + ".html"
    _write(md, rep.markdown(rel))
    _write(ht, rep.html(rel))
    return md, ht, rep.figures(), b.skipped


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir", help="study directory (e.g. demo-output)")
    ap.add_argument("-o", help="report path without extension (default DIR/report)")
    ap.add_argument("--figures", help="figure directory (default DIR/figures)")
    ap.add_argument("--no-likelihood", action="store_true",
                    help="do not recompute likelihood curves of flow scans (needs torch)")
    ap.add_argument("--max-rows", type=int, default=200000, help="rows read per dataset file")
    a = ap.parse_args(argv)
    if not os.path.isdir(a.dir):
        print(f"make_report: error: {a.dir} is not a directory", file=sys.stderr)
        return 1
    md, ht, figs, skipped = build(a.dir, a.o, a.figures, not a.no_likelihood, a.max_rows)
    print(f"make_report: {len(figs)} figures, {len(skipped)} skipped; wrote {md} and {ht}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
