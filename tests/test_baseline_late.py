"""Late fusion (mcihn.baselines.late.LateFusion): the score is a weighted sum of one-modality scores, so
it has no cross-modal interaction (the mixed difference f(a, t) - f(a, t') - f(a', t) + f(a', t') is zero).
What every baseline shares is in test_baselines_common.py.
"""
from __future__ import annotations

import pytest
import torch

from _helpers import tiny
from conftest import AWKWARD_DIMS, make_batch
from mcihn.baselines import LateFusion

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_late_fusion_has_no_cross_modal_interaction():
    """f(a, t) - f(a, t') - f(a', t) + f(a', t') = 0: the score is a sum of one-modality terms."""
    torch.manual_seed(0)
    model = LateFusion(tiny("late", hidden=8), AWKWARD_DIMS).eval()
    b1, b2 = make_batch(seed=5), make_batch(seed=6)

    def f(text_from, audio_from):
        b = dict(b1)
        b["text"], b["audio"] = text_from["text"], audio_from["audio"]
        return model(b).pred

    mixed = f(b1, b1) - f(b1, b2) - f(b2, b1) + f(b2, b2)
    torch.testing.assert_close(mixed, torch.zeros_like(mixed), rtol=0, atol=1e-6)
    out = model(b1)
    torch.testing.assert_close(out.pred, out.fused @ model.weight + model.bias)
