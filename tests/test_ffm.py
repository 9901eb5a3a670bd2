"""The fusion module (mcihn.model.ffm): the multi-head fusion attention of Eq. 15-16 written out head by
head (queries and keys from the pair features, values from the core modality's code), the prediction of
Eq. 17 from the time-pooled sum of the fused features, and the ``ffm_values="pairs"`` switch, which changes
only where the attention reads its values.
"""
from __future__ import annotations

import math

import pytest
import torch

from _helpers import full_out  # noqa: F401 (a fixture)
from mcihn.model.config import MCIHNConfig
from mcihn.model.mcihn import MCIHN

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("core,name,q_pair,k_pair", [("text", "t-va", "vt", "ta"), ("vision", "v-ta", "vt", "va"),
                                                     ("audio", "a-vt", "va", "ta")])
def test_eq15_16_heads_by_explicit_loop(core, name, q_pair, k_pair, full_out):
    model, out = full_out
    att = model.ffm.attn[core]
    h, d = model.cfg.heads, model.cfg.latent_dim
    dk = d // h
    Q = out.F[q_pair] @ att.q.weight.T + att.q.bias  # Q from F^{m o1}
    K = out.F[k_pair] @ att.k.weight.T + att.k.bias  # K from F^{m o2}
    V = out.S[core] @ att.v.weight.T + att.v.bias  # V from S^m
    heads, weights = [], []
    for i in range(h):
        sl = slice(i * dk, (i + 1) * dk)
        w = torch.softmax(Q[..., sl] @ K[..., sl].transpose(1, 2) / math.sqrt(d / h), dim=-1)  # Eq. 15
        weights.append(w)
        heads.append(w @ V[..., sl])
    fused = torch.cat(heads, dim=-1) @ att.o.weight.T + att.o.bias  # Eq. 16
    torch.testing.assert_close(out.ffm_attention[name], torch.stack(weights, dim=1), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.fused[name], fused, atol=1e-5, rtol=1e-5)


def test_eq17_prediction_from_the_pooled_sum(full_out):
    model, out = full_out
    total = out.fused["v-ta"] + out.fused["t-va"] + out.fused["a-vt"]
    pred = total.mean(dim=1) @ model.ffm.head.weight.T.squeeze(-1) + model.ffm.head.bias
    torch.testing.assert_close(out.pred, pred, atol=1e-5, rtol=1e-5)


def test_ffm_values_switch_takes_values_from_the_pair_features(batch, awkward_dims):
    """``ffm_values="pairs"`` has no parameters of its own: with the same weights it changes only where the
    fusion attention reads its values, so the prediction changes; an unknown value is refused."""
    torch.manual_seed(0)
    core = MCIHN(MCIHNConfig.tiny(), awkward_dims).eval()
    pairs = MCIHN(MCIHNConfig.tiny(ffm_values="pairs"), awkward_dims).eval()
    pairs.load_state_dict(core.state_dict())  # same parameter names and shapes
    a, b = core(batch), pairs(batch)
    assert a.pred.shape == b.pred.shape and not torch.allclose(a.pred, b.pred)
    for k in a.F:  # everything before the fusion is the same
        torch.testing.assert_close(a.F[k], b.F[k])
    with pytest.raises(ValueError, match="ffm_values"):
        MCIHNConfig.tiny(ffm_values="pair")
