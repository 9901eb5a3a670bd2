"""The seed-spread verdict of the notebooks (mcihn.notebook.analysis.spread_verdict): one rule, stated once."""
from __future__ import annotations

import numpy as np
import pytest

from mcihn.notebook.analysis import SPREAD_RULE, spread_verdict


def test_the_rule_is_the_sum_of_the_population_stds():
    a, b = [0.70, 0.72, 0.74], [0.60, 0.61, 0.62]
    v = spread_verdict(a, b)
    assert v["difference"] == pytest.approx(np.mean(a) - np.mean(b))
    assert v["spread"] == pytest.approx(np.std(a) + np.std(b))  # ddof=0, as the tables' ± and the error bars
    assert v["exceeds_spread"] is True and v["rule"] == SPREAD_RULE


def test_the_better_side_follows_the_direction():
    low, high = [1.0, 1.1], [2.0, 2.1]
    assert spread_verdict(low, high, labels=("x", "y"))["better"] == "x"  # lower MAE wins
    assert spread_verdict(low, high, lower_is_better=False, labels=("x", "y"))["better"] == "y"  # higher Acc-2 wins
    assert spread_verdict(high, low, labels=("x", "y"))["better"] == "y"


def test_overlapping_bars_give_no_conclusion():
    # gap 0.1; stds 0.06 each: larger than either std (the old 1 x rule would have called it) but the bars overlap
    v = spread_verdict([0.94, 1.06], [0.84, 0.96])
    assert v["difference"] == pytest.approx(0.1) and v["spread"] == pytest.approx(0.12)
    assert not v["exceeds_spread"] and v["better"] is None
    assert "within the seed spread, no conclusion" in v["sentence"]


def test_sentence_names_the_sides_and_numbers():
    v = spread_verdict([0.5, 0.5], [0.8, 0.8], name="test MAE", labels=("tuned", "defaults"))
    assert v["sentence"].startswith("test MAE: tuned minus defaults = -0.3000; seed spread")
    assert "(tuned is better)" in v["sentence"]


def test_one_seed_has_no_spread_and_says_so():
    v = spread_verdict([0.5], [0.6])
    assert v["spread"] == 0 and v["exceeds_spread"]
    assert "one seed has no spread" in v["sentence"]


@pytest.mark.parametrize("a,b", [([], [1.0]), ([1.0, float("nan")], [1.0])])
def test_refuses_empty_or_non_finite_values(a, b):
    with pytest.raises(ValueError, match="spread_verdict"):
        spread_verdict(a, b)
