#!/usr/bin/python3
"""Training curves of a `cnflow train` output directory (README "cnflow train").

usage: plot_training.py RUN_DIR [-o training.png] [--title TEXT]

Reads RUN_DIR/member_<k>.history.tsv (epoch, train_nll, val_<metric>, lr, seconds) for every
member and RUN_DIR/ensemble.txt (best epochs).  Three panels against the epoch: training NLL,
the validation metric (NLL in nats per event, or the mean 1-D Wasserstein distance in the scaled
space) with each member's selected epoch marked, and the learning rate.  With several members
every panel shows the members thinly, the ensemble mean and the ±1 sd band (ddof 1) over members.
"""
import argparse
import glob
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cnflow_plot as cp  # noqa: E402

METRIC_LABEL = {"nll": "validation NLL [nats / event]",
                "w1": "validation mean W1 (scaled targets) [–]"}


def load_run(run_dir):
    files = sorted(glob.glob(os.path.join(run_dir, "member_*.history.tsv")))
    if not files:
        raise cp.MissingInput(f"{run_dir}: no member_*.history.tsv")
    hist = [cp.read_history(f) for f in files]
    best = {}
    man = os.path.join(run_dir, "ensemble.txt")
    if os.path.exists(man):
        _, members = cp.read_manifest(man)
        best = {k: e for k, _, e, _ in members}
    return hist, best


def plot(run_dir, out, title=None):
    hist, best = load_run(run_dir)
    vkey = [k for k in hist[0] if k.startswith("val_")]
    if not vkey:
        raise ValueError(f"{run_dir}: history has no val_<metric> column")
    vkey = vkey[0]
    metric = vkey[4:]
    ep = hist[0]["epoch"] if len(hist[0]["epoch"]) == max(len(h["epoch"]) for h in hist) else \
        max((h["epoch"] for h in hist), key=len)
    fig, axes = plt_subplots()
    c0, c1 = cp.MEMBER_COLOURS[0], cp.MEMBER_COLOURS[1]
    cp.band_plot(axes[0], ep, [h["train_nll"] for h in hist], c0, "train NLL")
    axes[0].set_ylabel("training NLL [nats / event]")
    cp.band_plot(axes[1], ep, [h[vkey] for h in hist], c1, f"val {metric}")
    for k, h in enumerate(hist):
        if k in best and 0 <= best[k] < len(h[vkey]):
            # best_epoch is 0-based, the history counts epochs from 1
            axes[1].plot(h["epoch"][best[k]], h[vkey][best[k]], "k*", ms=8,
                         label="selected epoch" if k == 0 else None)
    axes[1].set_ylabel(METRIC_LABEL.get(metric, f"validation {metric}"))
    if metric == "w1":
        axes[1].set_yscale("log")
    cp.band_plot(axes[2], ep, [h["lr"] for h in hist], cp.MEMBER_COLOURS[2], "learning rate",
                 member_lines=False)
    axes[2].set_yscale("log")
    axes[2].set_ylabel("learning rate [–]")
    for ax in axes:
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(cp.matplotlib.ticker.MaxNLocator(integer=True))
        ax.legend(loc="best")
    fig.suptitle(title or f"training: {os.path.basename(os.path.normpath(run_dir))} "
                 f"({len(hist)} member{'s' if len(hist) > 1 else ''})")
    return cp.save(fig, out)


def plt_subplots():
    fig, axes = cp.plt.subplots(1, 3, figsize=(13, 3.8))
    fig.subplots_adjust(wspace=0.3)
    return fig, axes


def summary(run_dir):
    """Headline numbers: per member the best validation score and its epoch, the last train NLL."""
    hist, best = load_run(run_dir)
    vkey = [k for k in hist[0] if k.startswith("val_")][0]
    rows = []
    for k, h in enumerate(hist):
        b = best.get(k, int(np.argmin(h[vkey])))
        rows.append({"member": k, "metric": vkey[4:], "best_epoch": b + 1,
                     "best_val": float(h[vkey][b]), "last_train_nll": float(h["train_nll"][-1]),
                     "epochs": len(h["epoch"]), "seconds": float(np.sum(h.get("seconds", [0])))})
    return rows


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("run_dir")
    ap.add_argument("-o", default="training.png")
    ap.add_argument("--title")
    a = ap.parse_args(argv)
    try:
        plot(a.run_dir, a.o, a.title)
    except (cp.MissingInput, ValueError, OSError) as e:
        print(f"plot_training: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
