"""Tests for mcihn.metrics: hand-computed cases, edge cases and a loop-based reference."""
import math
import warnings

import numpy as np
import pytest
import torch

from mcihn.metrics import LOWER_IS_BETTER, METRIC_KEYS, evaluate, format_table

# ---------------------------------------------------------------- MOSI, by hand
# idx:          0     1     2     3     4     5
MOSI_TRUE = [0.0, 1.2, -2.6, 3.4, -3.2, -0.6]
MOSI_PRED = [-0.5, 0.5, 2.5, 2.4, -3.7, 0.0]
# Has0: truth>=0 T T F T F F ; pred>=0 F T T T F T -> correct idx 1,3,4 -> 3/6
#   class T: support 3, predicted 4, TP 2 -> P 1/2, R 2/3 -> F1 4/7
#   class F: support 3, predicted 2, TP 1 -> P 1/2, R 1/3 -> F1 2/5
#   weighted = (3*4/7 + 3*2/5) / 6 = 17/35 = 0.485714...
# Non0: idx0 dropped; truth>0 T F T F F ; pred>0 T T T F F (pred 0.0 is negative) -> 4/5
#   class T: support 2, predicted 3, TP 2 -> F1 4/5; class F: support 3, predicted 2, TP 2 -> 4/5
# Acc-7: clip+round truth 0 1 -3 3 -3 -1 ; pred -0 0 2 2 -3 0 -> equal idx 0,4 -> 2/6
# Acc-5: clip+round truth 0 1 -2 2 -2 -1 ; pred -0 0 2 2 -2 0 -> equal idx 0,3,4 -> 3/6
# MAE: (0.5 + 0.7 + 5.1 + 1.0 + 0.5 + 0.6) / 6 = 8.4 / 6 = 1.4
# Corr: truth mean -0.3, pred mean 0.2; Sxy 14.46, Sxx 29.82, Syy 25.96
MOSI_CORR = 14.46 / math.sqrt(29.82 * 25.96)  # 0.51971...


def test_mosi_hand_case_rounded_like_mmsa():
    out = evaluate(np.array(MOSI_PRED), np.array(MOSI_TRUE), "mosi")
    assert list(out) == ["Has0_acc_2", "Has0_F1_score", "Non0_acc_2", "Non0_F1_score",
                         "Mult_acc_5", "Mult_acc_7", "MAE", "Corr"]
    assert out == {"Has0_acc_2": 0.5, "Has0_F1_score": 0.4857, "Non0_acc_2": 0.8,
                   "Non0_F1_score": 0.8, "Mult_acc_5": 0.5, "Mult_acc_7": 0.3333,
                   "MAE": 1.4, "Corr": 0.5197}
    assert all(type(v) is float for v in out.values())


def test_mosi_hand_case_unrounded():
    out = evaluate(MOSI_PRED, MOSI_TRUE, "MOSI", round_digits=None)
    assert out["Has0_F1_score"] == pytest.approx(17 / 35, abs=1e-12)
    assert out["Mult_acc_7"] == pytest.approx(1 / 3, abs=1e-12)
    assert out["MAE"] == pytest.approx(1.4, abs=1e-12)
    assert out["Corr"] == pytest.approx(MOSI_CORR, abs=1e-12)
    assert evaluate(MOSI_PRED, MOSI_TRUE, "mosi", round_digits=2)["Mult_acc_7"] == 0.33


def test_mosei_is_mosi_and_float32_rounds_cleanly():
    out32 = evaluate(np.array(MOSI_PRED, np.float32), np.array(MOSI_TRUE, np.float32), "MoSeI")
    assert list(out32) == list(METRIC_KEYS["mosi"])
    assert out32["MAE"] == 1.4 and out32["Corr"] == 0.5197 and out32["Mult_acc_7"] == 0.3333


def test_mosi_rounding_follows_mmsa_scalar_types():
    # 49 of 160 negative truths, all predictions -1: Has0_acc_2 = Mult_acc_7 = 49/160 = 0.30625.
    # Has0_acc_2 comes from sklearn (Python float; the double 0.30625 is 0.3062500000000000222)
    # -> Python round -> 0.3063. Mult_acc_7 is a NumPy float64 -> NumPy round: 0.30625 * 1e4 =
    # 3062.5, half to even -> 0.3062. MMSA reports exactly these two different digits.
    out = evaluate([-1.0] * 160, [-1.0] * 49 + [1.0] * 111, "mosi")
    assert out["Has0_acc_2"] == 0.3063 and out["Mult_acc_7"] == 0.3062
    assert evaluate([0.0] * 160, [0.0] * 23 + [2.0] * 137, "mosi")["Mult_acc_7"] == 0.1438  # 1437.5
    # MMSA widens the MAE to float64 before rounding: float32(2.31725) = 2.3172500133... in
    # float64 rounds to 2.3173 (rounding in float32 arithmetic would have given 2.3172).
    mae32 = evaluate(np.array([2.31725], np.float32), np.array([0.0], np.float32), "mosi")["MAE"]
    assert mae32 == 2.3173 and repr(mae32) == "2.3173"


def test_mosi_round_half_to_even():
    # np.round: 0.5 -> 0, 2.5 -> 2, -0.5 -> -0 (== 0), 1.5 -> 2; half-away-from-zero gives 1/4.
    out = evaluate([0.5, 2.5, -0.5, 1.5], [0.0, 2.0, 0.0, 2.0], "mosi")
    assert out["Mult_acc_7"] == 1.0 and out["Mult_acc_5"] == 1.0
    # Has0: pred -0.5 is the only negative -> 3/4; class T support 4, P 1, R 3/4 -> F1 6/7
    assert out["Has0_acc_2"] == 0.75 and out["Has0_F1_score"] == 0.8571
    assert out["Non0_acc_2"] == 1.0  # only idx 1 and 3 are kept, both positive


def test_mosi_clipping_applies_to_acc_but_not_mae():
    out = evaluate([3.6, -4.4], [3.0, -2.6], "mosi")
    assert out["Mult_acc_7"] == 1.0  # 3 vs 3, clip(-4.4) = -3 vs round(-2.6) = -3
    assert out["Mult_acc_5"] == 1.0  # everything clips to +-2
    assert out["MAE"] == 1.2  # raw (0.6 + 1.8) / 2; on clipped values it would be 0.2
    # truth -1.4 rounds to -1, prediction stays at -3 / -2 -> only the first pair matches
    out = evaluate([3.6, -4.4], [3.0, -1.4], "mosi")
    assert out["Mult_acc_7"] == 0.5 and out["Mult_acc_5"] == 0.5


def test_mosi_all_zero_truth_gives_nan_non0_and_corr():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = evaluate([0.3, -0.2, 0.0], [0.0, 0.0, 0.0], "mosi")
    assert math.isnan(out["Non0_acc_2"]) and math.isnan(out["Non0_F1_score"])
    assert math.isnan(out["Corr"])  # constant truth
    # Has0: truth all True; pred T F T -> 2/3; class T: P 1, R 2/3 -> F1 0.8
    assert out["Has0_acc_2"] == 0.6667 and out["Has0_F1_score"] == 0.8
    assert out["MAE"] == 0.1667  # (0.3 + 0.2 + 0) / 3


def test_f1_zero_division_is_zero_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = evaluate([-1.0, -2.0], [1.0, 2.0], "mosi")
    assert out["Has0_acc_2"] == 0.0 and out["Has0_F1_score"] == 0.0
    assert out["Corr"] == -1.0  # (-1, -2) vs (1, 2): perfectly anti-correlated


# ---------------------------------------------------------------- SIMS, by hand
SIMS_PRED = [0.0, -0.1, 0.1, 0.7, -1.5, 1.2]
SIMS_TRUE = [0.15, -0.3, 0.3, 0.75, -0.9, 0.4]
# clipped pred: 0.0 -0.1 0.1 0.7 -1.0 1.0
# Acc-2 pred 0 0 1 1 0 1 ; truth 1 0 1 1 0 1 -> 5/6 (0.0 is the negative class)
# Acc-3 pred 1 0 1 2 0 2 ; truth 2 0 2 2 0 2 -> 4/6 (-0.1 -> class 0, 0.1 -> middle)
# Acc-5 pred 2 1 2 3 0 4 ; truth 3 1 3 4 0 3 -> 2/6 (0.7 -> class 3)
# F1 (Acc-2): class 1 support 4, predicted 3, TP 3 -> 6/7; class 0 support 2, predicted 3,
#   TP 2 -> 4/5; weighted (4*6/7 + 2*4/5)/6 = 88/105
# MAE on clipped: (0.15 + 0.2 + 0.2 + 0.05 + 0.1 + 0.6) / 6 = 13/60 (raw would be 2.0/6)
# Corr on clipped: Sxy = 11.03/6, Sxx = 14.57/6, Syy = 10.25/6


def test_sims_hand_case_unrounded():
    out = evaluate(np.array(SIMS_PRED), np.array(SIMS_TRUE), "sims")
    assert list(out) == ["Mult_acc_2", "Mult_acc_3", "Mult_acc_5", "F1_score", "MAE", "Corr"]
    assert out["Mult_acc_2"] == 5 / 6 and out["Mult_acc_3"] == 4 / 6 and out["Mult_acc_5"] == 2 / 6
    assert out["F1_score"] == pytest.approx(88 / 105, abs=1e-12)
    assert out["MAE"] == pytest.approx(13 / 60, abs=1e-12)
    assert out["Corr"] == pytest.approx(11.03 / math.sqrt(14.57 * 10.25), abs=1e-12)
    assert evaluate(SIMS_PRED, SIMS_TRUE, "SIMS", round_digits=4)["Mult_acc_2"] == 0.8333


@pytest.mark.parametrize("pred, same, other, key", [
    (0.0, -0.5, 0.05, "Mult_acc_2"),     # 0.0 -> negative class
    (-1.0, -0.2, 0.2, "Mult_acc_2"),
    (-0.1, -0.9, -0.05, "Mult_acc_3"),   # -0.1 -> class 0
    (0.1, -0.05, 0.15, "Mult_acc_3"),    # 0.1 -> middle class (float64)
    (-0.7, -1.0, -0.65, "Mult_acc_5"),   # -0.7 -> class 0
    (0.7, 0.2, 0.75, "Mult_acc_5"),      # 0.7 -> class 3
    (5.0, 0.71, 0.69, "Mult_acc_5"),     # clips to 1.0 -> class 4
])
def test_sims_bin_edges_float64(pred, same, other, key):
    assert evaluate([pred], [same], "sims")[key] == 1.0
    assert evaluate([pred], [other], "sims")[key] == 0.0


def test_sims_float32_compares_in_float32_like_mmsa():
    pred32 = np.array([0.1, -0.7], dtype=np.float32)
    true = np.array([0.05, -0.9])  # classes: Acc-3 middle, Acc-5 class 0
    # float32(0.1) <= 0.1 and float32(-0.7) <= -0.7 hold in float32 arithmetic
    out32 = evaluate(pred32, true, "sims")
    assert out32["Mult_acc_3"] == 1.0 and out32["Mult_acc_5"] == 1.0
    # widening first moves them: 0.10000000149 -> top class, -0.69999998808 -> class 1
    out64 = evaluate(pred32.astype(np.float64), true, "sims")
    assert out64["Mult_acc_3"] == 0.5 and out64["Mult_acc_5"] == 0.0
    assert evaluate(torch.from_numpy(pred32), true, "sims")["Mult_acc_3"] == 1.0
    assert evaluate(np.array([0.1, -0.7]), true, "sims")["Mult_acc_5"] == 1.0


def test_sims_constant_prediction_corr_nan_no_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = evaluate([0.3, 0.3, 0.3], [0.2, -0.5, 0.9], "sims")
    assert math.isnan(out["Corr"])
    assert out["Mult_acc_2"] == 2 / 3 and out["MAE"] == pytest.approx(0.5, abs=1e-12)  # (0.1+0.8+0.6)/3


# ---------------------------------------------------------------- input handling
def test_inputs_torch_lists_ints_and_shapes():
    t_pred = torch.tensor(MOSI_PRED).reshape(3, 2, 1)
    t_true = torch.tensor(MOSI_TRUE, requires_grad=True).reshape(6, 1)
    assert evaluate(t_pred, t_true, "mosi")["Has0_F1_score"] == 0.4857
    out = evaluate([1, -2, 0], np.array([True, False, True]), "mosi", round_digits=None)
    assert out["MAE"] == pytest.approx(1.0) and out["Has0_acc_2"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("pred, true, dataset, kwargs, match", [
    ([0.1], [0.2], "iemocap", {}, "unknown dataset"),
    ([0.1, 0.2], [0.2], "mosi", {}, "2 values but true has 1"),
    ([], [], "sims", {}, "empty"),
    ([0.1, float("nan")], [0.2, 0.3], "mosi", {}, "pred: contains NaN"),
    ([0.1, 0.2], [0.2, float("inf")], "sims", {}, "true: contains NaN or inf"),
    (["a"], [0.2], "mosi", {}, "real numbers"),
    ([0.1], [0.2], "mosi", {"round_digits": "four"}, "round_digits"),
])
def test_bad_input_raises(pred, true, dataset, kwargs, match):
    with pytest.raises(ValueError, match=match):
        evaluate(pred, true, dataset, **kwargs)


# ---------------------------------------------------------------- table
def test_format_table():
    rows = {"MCIHN": {"Has0_acc_2": 0.8443, "Has0_F1_score": 0.84, "Non0_acc_2": 0.86,
                      "Non0_F1_score": 0.8601, "Mult_acc_5": 0.5, "Mult_acc_7": 0.4567,
                      "MAE": 0.71234, "Corr": 0.8},
            "Base": {"Has0_acc_2": 0.5, "MAE": 1.0}}
    std = {"MCIHN": {"Has0_acc_2": 0.0051, "MAE": 0.0123}}
    lines = format_table(rows, "mosi", std=std).splitlines()
    assert len(lines) == 4 and lines[0].startswith("| Model | Has0_acc_2")
    assert "MAE (↓)" in lines[0] and "Corr (↑)" in lines[0]
    mcihn = [c.strip() for c in lines[2].strip("|").split("|")]
    assert mcihn == ["MCIHN", "84.4 ± 0.5", "84.0", "86.0", "86.0", "50.0", "45.7",
                     "0.712 ± 0.012", "0.800"]
    base = [c.strip() for c in lines[3].strip("|").split("|")]
    assert base == ["Base", "50.0", "-", "-", "-", "-", "-", "1.000", "-"]
    assert "F1_score" in format_table({}, "SIMS") and LOWER_IS_BETTER == {"MAE"}
    with pytest.raises(ValueError):
        format_table(rows, "nope")


# ---------------------------------------------------------------- loop reference
def _ref_weighted_f1(truth, pred):
    total = 0.0
    for c in sorted(set(truth) | set(pred)):
        tp = fp = fn = support = 0
        for t, p in zip(truth, pred):
            support += t == c
            tp += t == c and p == c
            fp += t != c and p == c
            fn += t == c and p != c
        f1 = 0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn)
        total += support * f1
    return total / len(truth)


def _ref_corr(xs, ys):
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    return sxy / math.sqrt(sxx * syy)


def _ref_mosi(pred, true):
    n, out = len(true), {}
    out["Has0_acc_2"] = sum((p >= 0) == (t >= 0) for p, t in zip(pred, true)) / n
    out["Has0_F1_score"] = _ref_weighted_f1([t >= 0 for t in true], [p >= 0 for p in pred])
    kept = [(p > 0, t > 0) for p, t in zip(pred, true) if t != 0]
    out["Non0_acc_2"] = sum(a == b for a, b in kept) / len(kept)
    out["Non0_F1_score"] = _ref_weighted_f1([b for _, b in kept], [a for a, _ in kept])
    for key, bound in (("Mult_acc_5", 2), ("Mult_acc_7", 3)):
        clip = lambda v: min(max(v, -bound), bound)  # noqa: E731
        out[key] = sum(round(clip(p)) == round(clip(t)) for p, t in zip(pred, true)) / n
    out["MAE"] = sum(abs(p - t) for p, t in zip(pred, true)) / n
    out["Corr"] = _ref_corr(pred, true)
    return out


def _ref_sims(pred, true):
    pred = [min(max(p, -1.0), 1.0) for p in pred]
    true = [min(max(t, -1.0), 1.0) for t in true]
    n, out = len(true), {}

    def cls(v, edges):
        for i in range(len(edges) - 1):
            if edges[i] < v <= edges[i + 1]:
                return i
        raise AssertionError(v)

    grids = {"Mult_acc_2": [-1.01, 0.0, 1.01], "Mult_acc_3": [-1.01, -0.1, 0.1, 1.01],
             "Mult_acc_5": [-1.01, -0.7, -0.1, 0.1, 0.7, 1.01]}
    for key, edges in grids.items():
        out[key] = sum(cls(p, edges) == cls(t, edges) for p, t in zip(pred, true)) / n
    e2 = grids["Mult_acc_2"]
    out["F1_score"] = _ref_weighted_f1([cls(t, e2) for t in true], [cls(p, e2) for p in pred])
    out["MAE"] = sum(abs(p - t) for p, t in zip(pred, true)) / n
    out["Corr"] = _ref_corr(pred, true)
    return out


def _random_values(rng, n, grid, spread):
    exact = rng.choice(grid, size=n)
    continuous = rng.uniform(-spread, spread, size=n)
    return np.where(rng.random(n) < 0.6, exact, continuous)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_random_against_loop_reference(seed):
    rng = np.random.default_rng(seed)
    n = 300
    mosi_grid = [k / 2 for k in range(-8, 9)] + [0.0] * 8  # many zeros, halves, beyond +-3
    p, t = _random_values(rng, n, mosi_grid, 4.0), _random_values(rng, n, mosi_grid, 4.0)
    got, want = evaluate(p, t, "mosi", round_digits=None), _ref_mosi(p.tolist(), t.tolist())
    assert (t == 0).sum() > 10 and (p == 0.5).sum() > 5
    for k in METRIC_KEYS["mosi"]:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k
    assert evaluate(p, t, "mosi") == {k: round(v, 4) for k, v in got.items()}

    sims_grid = [k / 10 for k in range(-15, 16)]  # every bin edge, 0.0 and values to clip
    sims_grid += [0.0, -0.1, 0.1, -0.7, 0.7] * 3
    p, t = _random_values(rng, n, sims_grid, 1.5), _random_values(rng, n, sims_grid, 1.5)
    got, want = evaluate(p, t, "sims"), _ref_sims(p.tolist(), t.tolist())
    assert (t == 0.1).sum() > 5 and (p == -0.7).sum() > 5
    for k in METRIC_KEYS["sims"]:
        assert got[k] == pytest.approx(want[k], abs=1e-12), k


def test_mosi_mae_is_widened_to_float64_before_rounding():
    # float32 mean 5.92565012 rounds to 5.9256 in float32 arithmetic, but MMSA casts to
    # float64 first (np.mean(...).astype(np.float64)), and float64(5.92565012...) rounds to 5.9257.
    out = evaluate(np.float32([-2.92565012]), np.float32([3.0]), "mosi")
    assert out["MAE"] == 5.9257
