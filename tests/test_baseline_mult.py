"""MulT (mcihn.baselines.mult): one crossmodal transformer per ordered pair of modalities (six for three,
two for two), and attention that never looks at padded time steps. What every baseline shares is in
test_baselines_common.py; the fused attention path against the explicit one in test_attention.py.
"""
from __future__ import annotations

import pytest
import torch

from _helpers import tiny
from conftest import AWKWARD_DIMS, AWKWARD_LENGTHS, make_batch
from mcihn.baselines import MulT

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_mult_has_one_crossmodal_transformer_per_ordered_pair():
    full = MulT(tiny("mult"), AWKWARD_DIMS)
    assert set(full.cross) == {"t<-a", "t<-v", "a<-t", "a<-v", "v<-t", "v<-a"}
    assert set(full.memory) == {"text", "audio", "vision"}
    pair = MulT(tiny("mult", modalities="ta"), AWKWARD_DIMS)
    assert set(pair.cross) == {"t<-a", "a<-t"}
    out = pair.eval()(make_batch(modalities=("text", "audio")))
    assert out.fused.shape == (3, 2 * pair.cfg.d_model)


def test_mult_attention_never_looks_at_padding(batch):
    model = MulT(tiny("mult"), AWKWARD_DIMS).eval()
    out = model(batch)
    for name, w in out.attention.items():  # "t<-a": keys are audio steps; "t": keys are text steps
        source = {"t": "text", "a": "audio", "v": "vision"}[name[-1]]
        lengths = AWKWARD_LENGTHS[source]
        for b, n in enumerate(lengths):
            assert (w[b, :, :, n:] == 0).all(), (name, b)
            torch.testing.assert_close(w[b].sum(-1), torch.ones_like(w[b].sum(-1)))
