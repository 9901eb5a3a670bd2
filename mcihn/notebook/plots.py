"""Figures used by several notebooks. Every figure has a title and labelled axes; the colour maps
(viridis, cividis) stay readable in grey-scale print, and lines also differ by style. Figures use
matplotlib's constrained layout (titles never overlap the row above), symbols are rendered with mathtext
(:func:`tex`), every kind of line is in a legend, and panels that are compared share one colour scale.

matplotlib is imported by these functions only, so the package itself does not need it.
"""
from __future__ import annotations

import itertools

import numpy as np

from ..metrics import display_scale

#: What each logged loss term is, for subplot titles (keys of a history record's "train").
TERM_TITLES = {
    "rec": r"reconstruction $L_{\mathrm{AE}}$ (Eq. 4)",
    "disc": "discriminator loss (Eq. 5)",
    "gen": "generator loss (Eq. 5)",
    "mul": r"$L_{\mathrm{Mul}}$: training MAE (Eq. 18)",
    "adp": r"$L_{\mathrm{Adp}}$: sum of MMD$^2$ terms (Eq. 14)",
    "total": r"total loss of the main step (Eq. 19)",
    "disc_acc": "discriminator accuracy (0.5: fooled)",
}
LINESTYLES = ("-", "--", "-.", ":")


def _plt():
    import matplotlib.pyplot as plt
    return plt


def tex(symbol: str, key: str = "") -> str:
    """Mathtext for a symbol with a modality superscript: ``tex("F", "v-ta")`` -> ``$F^{v\\text{-}ta}$``,
    ``tex("alpha", "v")`` -> ``$\\alpha^{v}$``. Greek names get their backslash; a "-" in the key is set as
    text, so it reads as a hyphen, not a minus."""
    sym = "\\" + symbol if symbol in ("alpha", "xi", "lambda", "gamma", "sigma") else symbol
    if not key:
        return f"${sym}$"
    sup = "\\text{-}".join(key.split("-"))
    return f"${sym}^{{{sup}}}$"


def caption(fig, text: str, fontsize: float = 9):
    """A one-line caption under the figure (what to look at), in grey italics."""
    fig.text(0.5, -0.01, text, ha="center", va="top", fontsize=fontsize, style="italic", color="0.25",
             wrap=True)
    return fig


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
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows), squeeze=False, layout="constrained")
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
            ax.legend(fontsize=7)  # this panel has a line kind of its own: give it its legend
        if term == "valid" and best:
            ax.plot([], [], "*", color="0.3", markersize=10, label="best epoch (weights kept)")
            ax.legend(fontsize=7)
        ax.set(title=TERM_TITLES.get(term, "validation MAE" if term == "valid" else term), xlabel="epoch",
               ylabel={"valid": "MAE", "disc_acc": "accuracy"}.get(term, "loss"))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    if axes.flat[0].get_legend() is None:
        axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
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


def metric_points(mean: dict, std: dict, keys, title: str, labels: dict | None = None):
    """One panel per metric key: each row of ``mean`` (name -> metrics) as a point with a one-``std``
    interval. Points, not bars, because each axis is zoomed on the differences (a bar would have to start
    at zero to be read by its height). Accuracies and F1 are drawn in percent
    (:func:`mcihn.metrics.display_scale`). Returns the figure; the points of a panel are ``ax.lines[0]``."""
    plt = _plt()
    names = list(mean)
    ncols = min(len(keys), 3)  # at most three panels a row: the figure stays readable in a book's text column
    nrows = -(-len(keys) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3.6 * ncols, 3.4 * nrows), squeeze=False, layout="constrained")
    for ax in axes.flat[len(keys):]:
        fig.delaxes(ax)  # fig.axes: one panel per key, in order
    colours = [c for c, _ in line_styles(len(names), "cividis")]
    for ax, key in zip(axes.flat, keys):
        k = display_scale(key)
        vals = np.array([k * mean[n].get(key, np.nan) for n in names], dtype=float)
        errs = np.array([k * std.get(n, {}).get(key, 0.0) for n in names], dtype=float)
        x = np.arange(len(names))
        ax.plot(x, vals, linestyle="none")  # the means, for reading back; drawn below with their colours
        for i, c in enumerate(colours):
            ax.errorbar(x[i], vals[i], yerr=errs[i], fmt="o", ms=7, color=c, mec="black", mew=0.6, capsize=4)
        ax.set_xticks(x, names, rotation=45, ha="right")
        ax.set_xlim(-0.6, len(names) - 0.4)
        name = (labels or {}).get(key, key)
        ax.set(title=name, xlabel="model", ylabel=f"{name} (%)" if k == 100 else name)
        ax.grid(axis="y", alpha=0.3)
    fig.suptitle(title)
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
    fig, axes = plt.subplots(1, 2 + len(gates), figsize=(4.2 * (2 + len(gates)), 3.8), layout="constrained")
    others = "+".join(tex("S", o) for o in fused.split("-")[1]) if "-" in fused else ""
    heatmap(axes[0], outputs["alpha"][core][sample], f"CGMM {tex('alpha', c)} (Eq. 7)", f"position of {others}",
            f"position of {tex('S', c)}", vmin=0, colorbar_label="weight")
    heatmap(axes[1], outputs["ffm_attention"][fused][sample, head], f"fusion {tex('F', fused)}, head {head} (Eq. 15)",
            "key position", "query position", vmin=0, colorbar_label="weight")
    for ax, k in zip(axes[2:], gates):
        heatmap(ax, outputs["G"][k][sample], f"gate {tex('G', k)} (Eq. 10)", "channel", "position", cmap="cividis",
                vmin=0, colorbar_label="activation")
    title = f"clip {sample}, core modality {core}"
    if "label" in outputs:
        title += f" (label {outputs['label'][sample]:+.2f}"
        title += f", prediction {outputs['pred'][sample]:+.2f})" if "pred" in outputs else ")"
    fig.suptitle(title)
    return fig


def attention_grid(maps: dict, clip: int, heads: int, title: str, uniform: float | None = None):
    """The fusion attention of one clip: one row per key of ``maps`` (``"v-ta"`` -> (N, h, L, L)), one column
    per head, one colour scale for every panel (so that panels can be compared), constrained layout."""
    plt = _plt()
    keys = list(maps)
    vmax = max(float(maps[k][clip].max()) for k in keys)
    if uniform is not None:
        vmax = max(vmax, 2 * uniform)
    fig, axes = plt.subplots(len(keys), heads, figsize=(2.6 * heads + 1.2, 2.5 * len(keys)), squeeze=False,
                             layout="constrained")
    im = None
    for i, k in enumerate(keys):
        for h in range(heads):
            im = axes[i, h].imshow(maps[k][clip, h], cmap="viridis", vmin=0, vmax=vmax, interpolation="nearest")
            axes[i, h].set_title(f"{tex('F', k)}, head {h}", fontsize=10)
            axes[i, h].set(xlabel="key position" if i == len(keys) - 1 else "",
                           ylabel="query position" if h == 0 else "")
    label = "weight" + (f" (uniform: 1/L = {uniform:.3f})" if uniform is not None else "")
    fig.colorbar(im, ax=axes, fraction=0.025, pad=0.02).set_label(label)
    fig.suptitle(title)
    return fig


def seed_spread(ax, xs, per_seed, label: str = "", colour=None, marker: str = "o", offset: float = 0.0):
    """Mean ± std over seeds as an error bar at each x, with every seed's value as a small dot.
    ``per_seed``: one list of values per x (one value per seed). Returns (means, stds)."""
    vals = [np.asarray(v, float) for v in per_seed]
    means = np.array([v.mean() for v in vals])
    stds = np.array([v.std() for v in vals])
    x = np.asarray(xs, float) + offset
    ax.errorbar(x, means, yerr=stds, fmt=marker, color=colour, capsize=4, label=f"{label} mean ± std over seeds")
    for xi, v in zip(x, vals):
        ax.plot(np.full(len(v), xi), v, ".", color=colour or "0.2", alpha=0.5, ms=5)
    ax.plot([], [], ".", color=colour or "0.2", alpha=0.5, label=f"{label} single seeds".strip())
    return means, stds


def tuning_trials(df, params, title: str = "Tuning trials (validation MAE)", log_params=("lr",)):
    """Left: each trial's value and the best so far. Then one panel per parameter: value against the
    parameter (log scale for the learning rates and the paper's grid), the best trial as a star.
    ``df``: :func:`mcihn.notebook.analysis.trials_frame`."""
    plt = _plt()
    n = 1 + len(params)
    ncols = min(n, 3)
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.0 * ncols, 3.2 * nrows), squeeze=False, layout="constrained")
    ax = axes.flat[0]
    best = int(df["value"].idxmin())
    ax.plot(df["trial"], df["value"], "o", color="0.3", label="trial")
    ax.step(df["trial"], df["best so far"], where="post", color="C0", label="best so far")
    ax.plot(df["trial"][best], df["value"][best], "*", color="C3", ms=14, label="chosen (lowest)")
    ax.set(title="value per trial", xlabel="trial", ylabel="validation MAE")
    ax.legend(fontsize=7)
    for ax, p in zip(list(axes.flat)[1:], params):
        x = df[p].astype(float)
        ax.plot(x, df["value"], "o", color="0.3", label="trial")
        ax.plot(x[best], df["value"][best], "*", color="C3", ms=14, label="chosen")
        if p in log_params or (x > 0).all() and x.max() / max(x.min(), 1e-12) > 50:
            ax.set_xscale("log")
        ax.set(title=p, xlabel=p, ylabel="validation MAE")
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title)
    return fig


def robustness_bands(ax, summaries: dict, floor: float | None = None, title: str = "", metric: str = "MAE"):
    """Curves of ``metric`` against the missing rate, one per model: the mean over seeds as a line with
    markers, a band of ± one standard deviation, and the single seeds as small dots.
    summaries: name -> :func:`mcihn.experiments.robustness.summarize_curves`. ``floor``: the mean predictor's
    value, a dashed grey line."""
    for (colour, style), (name, s), marker in zip(line_styles(len(summaries)), summaries.items(),
                                                  itertools.cycle("osD^vP")):
        r, mean, std = np.asarray(s["rates"]), np.asarray(s["mean"]), np.asarray(s["std"])
        auc = np.mean([a for a in s["auc"] if a is not None]) if any(a is not None for a in s["auc"]) else None
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        ax.plot(r, mean, linestyle=style, marker=marker, color=colour, label=label, ms=4)
        ax.fill_between(r, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)
        for seed in s["per_seed"]:
            ax.plot(r, seed, ".", color=colour, ms=2.5, alpha=0.7)
    if floor is not None:
        ax.axhline(floor, color="0.4", linestyle="--", linewidth=1, label=f"mean predictor ({floor:.3f})")
    ax.set(title=title, xlabel="missing rate r (share of time steps set to the training mean)",
           ylabel=metric + (" (lower is better)" if metric == "MAE" else ""), xlim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)


def missing_codes(ax, train, test, missing, labels=None, title: str = "", cmap: str = "cividis"):
    """Codes of real clips and of all-missing inputs on the first two principal axes of the training codes
    (:func:`mcihn.notebook.analysis.pca_2d`): training codes in light grey, real test codes coloured by
    ``labels`` (sentiment), the all-missing codes as red crosses. Arrays: (N, k), one flattened code a row."""
    from .analysis import pca_2d

    tr, te, mi = pca_2d(train, test, missing)
    ax.scatter(tr[:, 0], tr[:, 1], s=6, color="0.8", label="training clips")
    sc = ax.scatter(te[:, 0], te[:, 1], s=12, c=labels, cmap=cmap, alpha=0.9, label="real test clips")
    ax.scatter(mi[:, 0], mi[:, 1], s=40, color="tab:red", marker="x", linewidths=1.2, label="all-missing input")
    if labels is not None:
        ax.figure.colorbar(sc, ax=ax, fraction=0.046, pad=0.04).set_label("sentiment")
    ax.set(title=title, xlabel="PC 1 of the training codes", ylabel="PC 2")
    ax.title.set_fontsize(9)
    ax.legend(fontsize=7, loc="best")
