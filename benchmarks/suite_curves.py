"""Learning curves of the development suite: training L_Mul against validation MAE, per epoch, for each row
of one or more suite folders (``python -m mcihn experiment suite --out DIR`` writes the per-run records with
their curves). Mean over seeds, one panel per data set, the ridge regression's validation MAE as a line.

    python benchmarks/suite_curves.py runs/suite --rows MCIHN TFN --out benchmarks/suite_curves.png
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np


def load(folders) -> list[dict]:
    recs = []
    for f in folders:
        recs += [json.loads(p.read_text()) for p in Path(f).glob("runs/*/*/*.json")]
    return recs


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folders", nargs="+", help="suite output folders")
    ap.add_argument("--rows", nargs="+", help="row labels to draw (default: every trained row)")
    ap.add_argument("--entries", nargs="+", help="data sets to draw (default: all)")
    ap.add_argument("--out", required=True, help="PNG file")
    a = ap.parse_args(argv)
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    recs = load(a.folders)
    entries = a.entries or sorted({r["entry"] for r in recs})
    curves = defaultdict(list)
    ridge = {}
    for r in recs:
        if r.get("curve"):
            curves[(r["entry"], r["row"])].append(np.array(r["curve"], float))
        elif r["row"].startswith("ridge"):
            ridge[r["entry"]] = r["valid"]["MAE"]
    rows = a.rows or sorted({k[1] for k in curves})
    ncols = min(3, len(entries))
    nrows = -(-len(entries) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 3.6 * nrows), constrained_layout=True, squeeze=False)
    for ax in axes.flat[len(entries):]:
        ax.set_visible(False)
    colors = dict(zip(rows, plt.rcParams["axes.prop_cycle"].by_key()["color"]))
    for ax, e in zip(axes.flat, entries):
        for row in rows:
            runs = curves.get((e, row))
            if not runs:
                continue
            n = min(len(c) for c in runs)  # epochs every seed ran
            c = np.mean([r[:n] for r in runs], axis=0)
            x = np.arange(1, n + 1)
            ax.plot(x, c[:, 0], ls="--", color=colors[row])
            ax.plot(x, c[:, 1], ls="-", color=colors[row], label=f"{row.replace('S^m', '$S^m$')} ({len(runs)} seeds)")
        if e in ridge:
            ax.axhline(ridge[e], color="grey", lw=1, ls=":", label="ridge, valid")
        ax.set_title(e)
        ax.set_xlabel("epoch")
        ax.set_ylabel("MAE")
    axes[0][0].legend(fontsize=7, title="mean over seeds, up to the shortest run\nsolid: valid MAE, dashed: train $L_{Mul}$", title_fontsize=7)
    fig.savefig(a.out, dpi=110)
    print(f"wrote {a.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
