"""Figures used by several notebooks. Every figure has a title and labelled axes; the colour maps
(viridis, cividis) stay readable in grey-scale print, and lines also differ by style.

matplotlib is imported by these functions only, so the package itself does not need it.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..metrics import display_scale

#: What each logged loss term is, for subplot titles (keys of a history record's "train").
TERM_TITLES = {
    "rec": "reconstruction L_AE (Eq. 4)",
    "disc": "discriminator loss (Eq. 5)",
    "gen": "generator loss (Eq. 5)",
    "mul": "L_Mul: training MAE (Eq. 18)",
    "adp": "L_Adp: sum of MMD² terms (Eq. 14)",
    "total": "L_Mul + λ·L_Adp (Eq. 19)",
}
LINESTYLES = ("-", "--", "-.", ":")


def _plt():
    import matplotlib.pyplot as plt
    return plt


def line_styles(n: int, cmap: str = "viridis"):
    """n (colour, linestyle) pairs: colours spread over a print-safe map, styles cycling."""
    plt = _plt()
    colours = plt.get_cmap(cmap)(np.linspace(0.0, 0.85, max(n, 1)))
    return list(zip(colours, itertools.cycle(LINESTYLES)))[:n]


def loss_curves(histories: dict, terms=None, valid: bool = True, title: str = "Loss terms per epoch",
                reference: dict | None = None, best: dict | None = None, ncols: int = 4):
    """One subplot per loss term of Algorithm 1, one line per run.

    ``histories``: run label -> history (the list of per-epoch records of ``Trainer.fit``).
    ``terms``: keys of record["train"] (default: all that occur); ``valid`` adds the validation MAE.
    ``reference``: term -> (y value, label) drawn as a horizontal dotted line (an equilibrium, say).
    ``best``: run label -> best epoch, marked with a star on the validation panel.
    """
    plt = _plt()
    first = next(iter(histories.values()))
    terms = list(terms or [t for t in TERM_TITLES if t in first[0]["train"]])
    panels = terms + (["valid"] if valid else [])
    ncols = min(ncols, len(panels))
    nrows = -(-len(panels) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False)
    styles = line_styles(len(histories))
    for ax, term in zip(axes.flat, panels):
        for (label, hist), (colour, ls) in zip(histories.items(), styles):
            epochs = [r["epoch"] for r in hist]
            ys = [r["valid"]["MAE"] if term == "valid" else r["train"].get(term, np.nan) for r in hist]
            ax.plot(epochs, ys, color=colour, linestyle=ls, marker=".", label=str(label))
            if term == "valid" and best and label in best:
                ax.plot(best[label], ys[epochs.index(best[label])], "*", color=colour, markersize=13)
        if reference and term in reference:
            y, text = reference[term]
            ax.axhline(y, color="0.4", linestyle=":", label=text)
        ax.set(title=TERM_TITLES.get(term, "validation MAE" if term == "valid" else term), xlabel="epoch",
               ylabel="loss" if term != "valid" else "MAE")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def heatmap(ax, matrix, title: str, xlabel: str, ylabel: str, cmap: str = "viridis", vmin=None, vmax=None,
            colorbar_label: str | None = None):
    """``imshow`` of a 2-D array with a title, axis labels and a labelled colour bar."""
    im = ax.imshow(np.asarray(matrix), aspect="auto", cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    bar = ax.figure.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if colorbar_label:
        bar.set_label(colorbar_label)
    return im


def scatter_2d(ax, xy, title: str, values=None, groups=None, cmap: str = "cividis", value_label: str = "sentiment",
               xlabel: str = "UMAP 1", ylabel: str = "UMAP 2", size: float = 12):
    """A 2-D embedding coloured by a continuous value (with a colour bar) or by group (markers differ too)."""
    xy = np.asarray(xy)
    if groups is not None:
        groups = np.asarray(groups)
        names = list(dict.fromkeys(groups.tolist()))
        markers = itertools.cycle("o^sDvP*X")
        for (colour, _), name, marker in zip(line_styles(len(names), cmap), names, markers):
            sel = groups == name
            ax.scatter(xy[sel, 0], xy[sel, 1], s=size, color=colour, marker=marker, alpha=0.75, label=str(name))
        ax.legend(fontsize=8, markerscale=1.5)
    else:
        sc = ax.scatter(xy[:, 0], xy[:, 1], s=size, c=values, cmap=cmap, alpha=0.85)
        if values is not None:
            ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.04).set_label(value_label)
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xticks=[], yticks=[])


def qq(ax, curves: dict, title: str = "QQ plot against N(0, 1)"):
    """Quantile-quantile curves (label -> (theoretical, empirical) from ``analysis.normal_qq``) and the diagonal."""
    lo, hi = np.inf, -np.inf
    for (label, (theo, emp)), (colour, ls) in zip(curves.items(), line_styles(len(curves))):
        ax.plot(theo, emp, color=colour, linestyle=ls, marker=".", markersize=3, label=label)
        lo, hi = min(lo, theo.min(), emp.min()), max(hi, theo.max(), emp.max())
    ax.plot([lo, hi], [lo, hi], color="0.5", linestyle=":", label="N(0, 1)")
    ax.set(title=title, xlabel="N(0, 1) quantile", ylabel="sample quantile")
    ax.legend(fontsize=8)


def metric_bars(mean: dict, std: dict, keys, title: str, labels: dict | None = None):
    """Grouped bars, one panel per metric key: rows of ``mean`` (name -> metrics) with ``std`` error bars.
    Accuracies and F1 are drawn in percent (:func:`mcihn.metrics.display_scale`)."""
    plt = _plt()
    names = list(mean)
    fig, axes = plt.subplots(1, len(keys), figsize=(3.4 * len(keys), 3.2), squeeze=False)
    colours = [c for c, _ in line_styles(len(names), "cividis")]
    for ax, key in zip(axes.flat, keys):
        k = display_scale(key)
        vals = [k * mean[n].get(key, np.nan) for n in names]
        errs = [k * std.get(n, {}).get(key, 0.0) for n in names]
        ax.bar(range(len(names)), vals, yerr=errs, color=colours, capsize=4, edgecolor="black", linewidth=0.6)
        ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
        name = (labels or {}).get(key, key)
        ax.set(title=name, xlabel="model", ylabel=f"{name} (%)" if k == 100 else name)
        finite = [v for v in vals if np.isfinite(v)]
        if finite and key != "MAE" and min(finite) > 0:  # accuracies: zoom on the differences
            ax.set_ylim(max(0.0, min(finite) - 0.15 * (max(finite) - min(finite) + 0.1 * k)), None)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def pred_vs_label(ax, pred, label, title: str, lo: float = -3.0, hi: float = 3.0, constant: float | None = None):
    """Predictions against labels with the identity line (a perfect model lies on it) and, if given,
    the horizontal line of a constant predictor (the mean training label, say)."""
    ax.scatter(label, pred, s=10, alpha=0.6, color="0.25")
    ax.plot([lo, hi], [lo, hi], color="0.5", linestyle=":", label="prediction = label")
    if constant is not None:
        ax.axhline(constant, color="0.5", linestyle="--", label="mean of training labels")
    ax.set(title=title, xlabel="label", ylabel="prediction", xlim=(lo - 0.2, hi + 0.2), ylim=(lo - 0.2, hi + 0.2))
    ax.legend(fontsize=8)


def attention_panel(outputs: dict, sample: int, core: str, head: int = 0):
    """Everything the gate and the fusion module did for one clip and one core modality m:
    alpha^m (Eq. 7), the fusion attention of F^{m-..} for one head (Eq. 15), and the gates G of the
    pairs that contain m (Eq. 10). ``outputs``: :func:`mcihn.notebook.analysis.collect` with fields
    ("alpha", "G", "ffm_attention")."""
    from ..modalities import LETTER

    plt = _plt()
    c = LETTER[core]
    fused = next(k for k in outputs["ffm_attention"] if k.split("-")[0] == c)
    gates = [k for k in outputs["G"] if c in k]
    fig, axes = plt.subplots(1, 2 + len(gates), figsize=(4.2 * (2 + len(gates)), 3.6))
    others = "+".join(f"S^{o}" for o in fused.split("-")[1]) if "-" in fused else ""
    heatmap(axes[0], outputs["alpha"][core][sample], f"CGMM α^{c} (Eq. 7)", f"position of {others}",
            f"position of S^{c}", vmin=0, colorbar_label="weight")
    heatmap(axes[1], outputs["ffm_attention"][fused][sample, head], f"fusion F^{{{fused}}}, head {head} (Eq. 15)",
            "key position", "query position", vmin=0, colorbar_label="weight")
    for ax, k in zip(axes[2:], gates):
        heatmap(ax, outputs["G"][k][sample], f"gate G^{k} (Eq. 10)", "channel", "position", cmap="cividis",
                vmin=0, colorbar_label="activation")
    title = f"clip {sample}, core modality {core}"
    if "label" in outputs:
        title += f" (label {outputs['label'][sample]:+.2f}"
        title += f", prediction {outputs['pred'][sample]:+.2f})" if "pred" in outputs else ")"
    fig.suptitle(title)
    fig.tight_layout()
    return fig
