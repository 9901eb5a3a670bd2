"""The fused attention path (scaled_dot_product_attention) against the explicit one (weights written out).

float32, eval mode, awkward sizes, with and without padding masks, including all-padding rows.
"""
from __future__ import annotations

import pytest
import torch

from conftest import AWKWARD_DIMS, AWKWARD_MODEL, make_batch
from mcihn.baselines.mult import MulT, MulTConfig
from mcihn.model import MCIHN, MCIHNConfig, attention_weights
from mcihn.model.aae import QueryResampler
from mcihn.model.attention import attend, want_weights
from mcihn.model.ffm import FusionAttention

pytestmark = pytest.mark.usefixtures("torch_single_thread")
TOL = dict(rtol=1e-5, atol=1e-6)


def _mask(B, T, lengths, g):
    return torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]


@pytest.mark.parametrize("shape", [(3, 5, 7, 4), (2, 3, 1, 9, 6), (1, 1, 1, 1)])  # (..., L_q, L_k, E)
@pytest.mark.parametrize("masked", [False, True])
def test_attend_fused_matches_explicit(shape, masked):
    g = torch.Generator().manual_seed(0)
    *lead, Lq, Lk, E = shape
    q, k = torch.randn(*lead, Lq, E, generator=g), torch.randn(*lead, Lk, E, generator=g)
    v = torch.randn(*lead, Lk, E + 2, generator=g)
    mask = None
    if masked:  # random keys off, but never a whole row
        mask = torch.rand(*lead, Lq, Lk, generator=g) > 0.4
        mask[..., 0] = True
    fused, none = attend(q, k, v, mask, scale=0.3)
    slow, w = attend(q, k, v, mask, scale=0.3, need_weights=True)
    assert none is None and w.shape == (*lead, Lq, Lk)
    torch.testing.assert_close(fused, slow, **TOL)
    torch.testing.assert_close(w.sum(-1), torch.ones(w.shape[:-1]))
    if masked:
        assert (w[~mask] == 0).all()


@pytest.mark.parametrize("lengths", [None, [5, 1, 3], [0, 5, 2]])  # [0, ...]: an all-padding row
def test_query_resampler_fused_matches_explicit(lengths):
    torch.manual_seed(0)
    r = QueryResampler(t_out=4, d=6).eval()
    x = torch.randn(3, 5, 6)
    mask = None if lengths is None else _mask(3, 5, lengths, None)
    with torch.no_grad():
        fused, none = r(x, mask, need_weights=False)
        slow, w = r(x, mask)  # the default: weights
    assert none is None and w.shape == (3, 4, 5)
    torch.testing.assert_close(fused, slow, **TOL)
    if lengths is not None:
        assert (w[1:][~mask[1:, None, :].expand(-1, 4, -1)] == 0).all()  # padding gets no weight
        if lengths[0] == 0:  # all padding: attends everywhere (as before), finite
            assert torch.isfinite(fused[0]).all() and (w[0] > 0).all()
            torch.testing.assert_close(w[0].sum(-1), torch.ones(4))


def test_query_resampler_weights_as_before():
    """The explicit path is the formula the module always had: einsum, scale, masked softmax."""
    torch.manual_seed(1)
    r = QueryResampler(t_out=3, d=4).eval()
    x, mask = torch.randn(2, 6, 4), _mask(2, 6, [6, 2], None)
    with torch.no_grad():
        out, w = r(x, mask)
        scores = torch.einsum("od,btd->bot", r.queries, r.key(x)) * r.scale
        ref_w = scores.masked_fill(~mask[:, None, :], float("-inf")).softmax(-1)
    torch.testing.assert_close(w, ref_w, **TOL)
    torch.testing.assert_close(out, ref_w @ r.value(x), **TOL)


def test_fusion_attention_modes():
    torch.manual_seed(0)
    a = FusionAttention(d=12, heads=3, dropout=0.0)
    q, k, v = (torch.randn(2, 5, 12) for _ in range(3))
    a.eval()
    assert want_weights(a)
    out_eval, w = a(q, k, v)  # eval mode: weights, as before
    assert w.shape == (2, 3, 5, 5)
    with attention_weights(False):
        out_fused, none = a(q, k, v)
    assert none is None
    torch.testing.assert_close(out_fused, out_eval, **TOL)
    a.train()  # training: fused by default, explicit on request
    out_train, none = a(q, k, v)
    assert none is None
    with attention_weights(True):
        out_w, w2 = a(q, k, v)
    assert w2 is not None
    torch.testing.assert_close(out_train, out_eval, **TOL)
    torch.testing.assert_close(out_w, out_eval, **TOL)


def test_fused_dropout_is_applied_and_unbiased():
    """Dropout on the weights works on the fused path: outputs vary, their mean is the dropout-free one."""
    torch.manual_seed(0)
    a = FusionAttention(d=8, heads=2, dropout=0.5)
    q, k, v = (torch.randn(1, 4, 8) for _ in range(3))
    with torch.no_grad():
        ref, _ = a.eval()(q, k, v)
        a.train()
        draws = torch.stack([a(q, k, v)[0] for _ in range(4000)])
    assert draws.std(0).mean() > 0.05  # dropout is on
    torch.testing.assert_close(draws.mean(0), ref, rtol=0, atol=0.06)


def test_mcihn_fused_matches_explicit_and_keeps_ffm_attention():
    cfg = MCIHNConfig.tiny(**AWKWARD_MODEL)
    torch.manual_seed(0)
    model = MCIHN(cfg, AWKWARD_DIMS).eval()
    batch = make_batch()
    with torch.no_grad():
        out = model(batch)
        with attention_weights(False):
            fast = model(batch)
    assert set(out.ffm_attention) == {"v-ta", "t-va", "a-vt"}  # still there by default in eval mode
    assert out.ffm_attention["v-ta"].shape == (3, 3, 6, 6)
    assert fast.ffm_attention == {}
    torch.testing.assert_close(fast.pred, out.pred, **TOL)
    model.train()  # training mode: fused, dropout 0 in the tiny preset -> same prediction
    with torch.no_grad():
        tr = model(batch)
    assert tr.ffm_attention == {}
    torch.testing.assert_close(tr.pred, out.pred, **TOL)


@pytest.mark.parametrize("lengths", [None, {"text": [5, 1, 3], "audio": [0, 4, 2], "vision": [2, 4, 0]}])
def test_mult_fused_matches_explicit(lengths):
    torch.manual_seed(0)
    model = MulT(MulTConfig.tiny(), AWKWARD_DIMS).eval()
    batch = make_batch(lengths=lengths) if lengths else make_batch()
    if lengths is None:
        batch = {k: v for k, v in batch.items() if not k.endswith("_mask")}
    with torch.no_grad():
        out = model(batch)
        with attention_weights(False):
            fast = model(batch)
    assert out.attention["t<-a"].shape == (3, 2, 5, 9) and fast.attention == {}
    torch.testing.assert_close(fast.pred, out.pred, **TOL)
    assert torch.isfinite(fast.pred).all()


def test_training_step_uses_fused_path(monkeypatch):
    """The trainer's steps (training mode) never ask for the weights."""
    import mcihn.model.attention as att
    from mcihn.training.trainer import Trainer

    calls = []
    real = att.F.scaled_dot_product_attention
    monkeypatch.setattr(att.F, "scaled_dot_product_attention", lambda *a, **k: calls.append(1) or real(*a, **k))
    explicit = []
    real_attend = att.attend

    def spy(*a, need_weights=False, **k):
        explicit.append(need_weights)
        return real_attend(*a, need_weights=need_weights, **k)

    monkeypatch.setattr("mcihn.model.ffm.attend", spy)
    tr = Trainer(MCIHNConfig.tiny(**AWKWARD_MODEL), AWKWARD_DIMS)
    tr.train_batch(make_batch())
    assert calls and explicit and not any(explicit)
