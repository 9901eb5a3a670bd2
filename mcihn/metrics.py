"""Regression metrics for multimodal sentiment analysis, computed exactly like MMSA.

The MCIHN paper reports its Table 2 with the metrics of MMSA (github.com/thuiar/MMSA,
``src/MMSA/utils/metricsTop.py``, ``train_mode="regression"``). This module recomputes
them from scratch so results are comparable number for number with MMSA-based papers.

CMU-MOSI / CMU-MOSEI (sentiment in [-3, 3]), keys in MMSA's order:

* ``Has0_acc_2`` / ``Has0_F1_score`` - binary "negative vs non-negative": ``y >= 0``
  against ``p >= 0`` over all samples (a truth of exactly 0 counts as positive).
* ``Non0_acc_2`` / ``Non0_F1_score`` - binary "negative vs positive": samples whose truth
  is exactly 0 are dropped, then ``y > 0`` against ``p > 0`` (a prediction of 0 is negative).
  If *no* truth is non-zero MMSA crashes (it indexes with an empty float array); here the two
  values are ``nan`` instead.
* ``Mult_acc_5`` / ``Mult_acc_7`` - clip both to [-2, 2] / [-3, 3], ``np.round`` both
  (round half to even: 0.5 -> 0, 2.5 -> 2, -0.5 -> -0) and count equal integers.
* ``MAE`` - mean absolute error on the raw values; ``Corr`` - Pearson correlation
  ``np.corrcoef(p, y)[0][1]`` on the raw values (``nan`` if either side is constant).

CH-SIMS (sentiment in [-1, 1]): both sides are first clipped to [-1, 1]; ``MAE``/``Corr`` use
the clipped values. A value x gets class i when ``edges[i] < x <= edges[i+1]``:

* ``Mult_acc_2`` edges [-1.01, 0.0, 1.01] (0.0 is negative), ``Mult_acc_3`` edges
  [-1.01, -0.1, 0.1, 1.01], ``Mult_acc_5`` edges [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01];
  ``F1_score`` is the weighted F1 of the 2-class labels.

All F1 scores are ``sklearn.metrics.f1_score(truth, pred, average="weighted")`` with the
default ``zero_division`` (an undefined class F1 counts as 0; the warning is silenced).

Subtleties kept on purpose:

* dtype: MMSA compares float32 tensors against Python-float edges, which NumPy does in
  float32, so float32(0.1) <= 0.1 holds and float32 0.1 is in the middle Acc-3 class. Casting
  to float64 first would turn it into 0.10000000149 > 0.1 (top class). We therefore keep the
  input float dtype and compare against edges cast to that dtype.
* rounding: MMSA rounds MOSI values with ``round(x, 4)`` and leaves SIMS unrounded. On a
  NumPy scalar (MMSA's Mult_acc_*, MAE, Corr) ``round`` is NumPy's: scale by 10**4, round half
  to even, scale back, in the scalar's own dtype, so 0.30625 -> 0.3062 and 0.14375 -> 0.1438,
  where Python's correctly rounded ``round`` on a float gives 0.3063 and 0.1437. MMSA casts the
  MAE to float64 before rounding (``np.mean(...).astype(np.float64)``), so a float32 MAE is
  rounded in float64; Mult_acc_* are float64 anyway; Corr keeps the input dtype. The sklearn
  values (Has0/Non0 accuracy and F1) are Python floats and get Python's rounding. We keep the
  same scalar types so the digits match MMSA, then return clean Python floats
  (float32 0.1234 is returned as 0.1234, not 0.12340000271...).
"""
from __future__ import annotations

import math
import warnings

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import accuracy_score, f1_score

METRIC_KEYS = {
    "mosi": ("Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
             "Mult_acc_5", "Mult_acc_7", "MAE", "Corr"),
    "sims": ("Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr"),
}
LOWER_IS_BETTER = {"MAE"}
#: What each metric is, in a few words (the legend ``train`` prints above its table; the rules are above).
METRIC_NAMES = {
    "Has0_acc_2": "accuracy of negative vs non-negative, all clips", "Has0_F1_score": "its weighted F1",
    "Non0_acc_2": "accuracy of negative vs positive, clips labelled 0 left out", "Non0_F1_score": "its weighted F1",
    "Mult_acc_2": "accuracy of negative vs positive", "Mult_acc_3": "accuracy over 3 classes",
    "Mult_acc_5": "accuracy over 5 rounded classes", "Mult_acc_7": "accuracy over 7 rounded classes",
    "F1_score": "weighted F1 of negative vs positive", "MAE": "mean absolute error", "Corr": "Pearson correlation",
}


def metric_legend(dataset: str) -> str:
    """One line naming the metrics of ``dataset``'s table: "metrics: Has0_acc_2 = ...; ...; Corr = ..."."""
    return "metrics: " + "; ".join(f"{k} = {METRIC_NAMES[k]}" for k in METRIC_KEYS[_canonical_dataset(dataset)])

_SIMS_EDGES = {
    "Mult_acc_2": (-1.01, 0.0, 1.01),
    "Mult_acc_3": (-1.01, -0.1, 0.1, 1.01),
    "Mult_acc_5": (-1.01, -0.7, -0.1, 0.1, 0.7, 1.01),
}


def _canonical_dataset(dataset: str) -> str:
    name = str(dataset).lower()
    name = "mosi" if name == "mosei" else name
    if name not in METRIC_KEYS:
        raise ValueError(f"unknown dataset {dataset!r}; expected 'mosi', 'mosei' or 'sims'")
    return name


def _as_array(x, what: str) -> np.ndarray:
    """Flatten to 1-D NumPy; float dtypes are kept, ints/bools become float64."""
    if hasattr(x, "detach"):  # torch.Tensor (bfloat16 has no NumPy twin -> float32)
        x = x.detach().cpu()
        x = x.float() if str(x.dtype) == "torch.bfloat16" else x
        x = x.numpy()
    arr = np.asarray(x).reshape(-1)
    if arr.dtype.kind in "biu":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise ValueError(f"{what}: expected real numbers, got dtype {arr.dtype}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what}: contains NaN or inf")
    return arr


# The helpers below return the same scalar types as MMSA (sklearn: Python float; NumPy
# reductions: NumPy scalars), because round() rounds the two kinds differently.
def _weighted_f1(truth: np.ndarray, pred: np.ndarray):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return f1_score(truth, pred, average="weighted")


def _pearson(p: np.ndarray, y: np.ndarray):
    with warnings.catch_warnings(), np.errstate(divide="ignore", invalid="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # constant input / a single sample
        return np.corrcoef(p, y)[0][1]


def _accuracy(a: np.ndarray, b: np.ndarray):
    return np.mean(a == b)  # np.float64, like MMSA's np.sum(...) / float(len(...))


def _mosi(p: np.ndarray, y: np.ndarray) -> dict:
    out = {}
    out["Has0_acc_2"] = accuracy_score(p >= 0, y >= 0)
    out["Has0_F1_score"] = _weighted_f1(y >= 0, p >= 0)
    keep = y != 0
    if keep.any():
        out["Non0_acc_2"] = accuracy_score(p[keep] > 0, y[keep] > 0)
        out["Non0_F1_score"] = _weighted_f1(y[keep] > 0, p[keep] > 0)
    else:  # MMSA raises IndexError here
        out["Non0_acc_2"] = out["Non0_F1_score"] = math.nan
    for key, bound in (("Mult_acc_5", 2.0), ("Mult_acc_7", 3.0)):
        out[key] = _accuracy(np.round(np.clip(p, -bound, bound)),
                             np.round(np.clip(y, -bound, bound)))
    out["MAE"] = np.mean(np.abs(p - y)).astype(np.float64)  # MMSA widens to float64 before round(x, 4)
    out["Corr"] = _pearson(p, y)
    return out


def _sims_class(x: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Index i with edges[i] < x <= edges[i+1] == number of inner edges strictly below x.

    The edges are cast to x's dtype, as NumPy does for MMSA's Python-float scalars.
    """
    inner = np.asarray(edges[1:-1], dtype=x.dtype)
    return (x[:, None] > inner[None, :]).sum(axis=1)


def _sims(p: np.ndarray, y: np.ndarray) -> dict:
    p, y = np.clip(p, -1.0, 1.0), np.clip(y, -1.0, 1.0)
    out = {key: _accuracy(_sims_class(p, e), _sims_class(y, e)) for key, e in _SIMS_EDGES.items()}
    edges2 = _SIMS_EDGES["Mult_acc_2"]
    out["F1_score"] = _weighted_f1(_sims_class(y, edges2), _sims_class(p, edges2))
    out["MAE"] = np.mean(np.abs(p - y)).astype(np.float64)
    out["Corr"] = _pearson(p, y)
    return out


def _round(value, digits: int | None) -> float:
    """MMSA's ``round(value, digits)`` (NumPy rounding for NumPy scalars), as a clean float."""
    if digits is None:
        return float(value)
    return round(float(round(value, digits)), digits)  # 2nd round only drops float32 noise


def evaluate(pred, true, dataset: str, round_digits="mmsa") -> dict[str, float]:
    """MMSA regression metrics of predictions ``pred`` against labels ``true``.

    ``pred``/``true``: array-likes or torch tensors of any shape (flattened).
    ``dataset``: "mosi", "mosei" (same metrics as MOSI) or "sims", case-insensitive.
    ``round_digits``: "mmsa" (MOSI rounded to 4 digits, SIMS unrounded, as MMSA does),
    None (no rounding) or an int (round every value to that many digits).
    Returns plain Python floats keyed as in ``METRIC_KEYS[dataset]``; see the module docstring
    for the definitions and the ``nan`` cases (constant input -> Corr; no non-zero MOSI truth
    -> Non0_*, where MMSA itself would crash).
    """
    name = _canonical_dataset(dataset)
    p, y = _as_array(pred, "pred"), _as_array(true, "true")
    if p.size != y.size:
        raise ValueError(f"pred has {p.size} values but true has {y.size}")
    if p.size == 0:
        raise ValueError("cannot evaluate empty pred/true")
    if round_digits == "mmsa":
        digits = 4 if name == "mosi" else None
    elif round_digits is None or (isinstance(round_digits, int) and not isinstance(round_digits, bool)):
        digits = round_digits
    else:
        raise ValueError(f"round_digits must be 'mmsa', None or an int, got {round_digits!r}")
    raw = _mosi(p, y) if name == "mosi" else _sims(p, y)
    return {k: _round(raw[k], digits) for k in METRIC_KEYS[name]}


# ----------------------------------------------------------------------------- how a metric is shown
def display_scale(key: str) -> float:
    """The one rule for showing a metric, as the paper's tables do: accuracies and F1 in % (x100),
    MAE and Corr as they are."""
    return 1.0 if key in ("MAE", "Corr") else 100.0


def display_digits(key: str) -> int:
    """Decimals shown: one for percentages (84.4), three for MAE and Corr (0.701)."""
    return 3 if key in ("MAE", "Corr") else 1


def is_defined(value) -> bool:
    """False for a missing or NaN metric (Corr of a constant prediction, Non0 with no non-zero truth)."""
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def format_metric(key: str, mean, std=None) -> str:
    """"84.4", "84.4 ± 1.2", "0.701 ± 0.012"; "n/a" when the metric is undefined (e.g. Corr of one sample)."""
    if not is_defined(mean):
        return "n/a"
    k, d = display_scale(key), display_digits(key)
    text = f"{float(mean) * k:.{d}f}"
    return text if not is_defined(std) else f"{text} ± {float(std) * k:.{d}f}"


def format_table(rows: dict[str, dict[str, float]], dataset: str,
                 std: dict[str, dict[str, float]] | None = None) -> str:
    """Markdown table, one line per ``rows`` entry (name -> metrics from :func:`evaluate`).

    Accuracies and F1 are printed x100 with one decimal (84.4), MAE and Corr with three
    decimals. When ``std`` has an entry for a row name its cells read "mean ± std".
    Metrics missing from a row are shown as "-", undefined ones (NaN, None) as "n/a".
    """
    keys = METRIC_KEYS[_canonical_dataset(dataset)]
    header = ["Model", *(f"{k} ({'↓' if k in LOWER_IS_BETTER else '↑'})" for k in keys)]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for name, metrics in rows.items():
        row_std = (std or {}).get(name)
        cells = [str(name)]
        for k in keys:
            if k not in metrics:
                cells.append("-")
            else:
                s = None if row_std is None or k not in row_std else row_std[k]
                cells.append(format_metric(k, metrics[k], s))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
