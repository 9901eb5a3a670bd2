"""TFN and LMF (mcihn.baselines.tfn, mcihn.baselines.lmf), in one file because LMF's tests check it against
TFN: TFN's fusion tensor against a loop and its unimodal / bimodal / trimodal blocks, and the vectors the
model feeds it; LMF's low-rank product as a linear map of TFN's tensor, the converse (a full-rank LMF equals
any TFN fusion layer, and a whole LMF model reproduces a TFN model), and its parameter count. What every
baseline shares (shapes, padding, gradients, training, checkpoints) is in test_baselines_common.py.
"""
from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from _helpers import tiny
from conftest import AWKWARD_DIMS
from mcihn.baselines import LMF, TFN, LMFConfig, LowRankFusion, TFNConfig, tensor_fusion

pytestmark = pytest.mark.usefixtures("torch_single_thread")


# ----------------------------------------------------------------------------- TFN: the fusion tensor
def test_tensor_fusion_against_a_loop_and_its_blocks():
    g = torch.Generator().manual_seed(0)
    zl, zv, za = (torch.randn(2, d, generator=g, dtype=torch.float64) for d in (3, 2, 4))
    Z = tensor_fusion([zl, zv, za])
    assert Z.shape == (2, 4, 3, 5)
    one = torch.ones(2, 1, dtype=torch.float64)
    l1, v1, a1 = torch.cat([zl, one], 1), torch.cat([zv, one], 1), torch.cat([za, one], 1)
    for b, i, j, k in itertools.product(range(2), range(4), range(3), range(5)):
        assert Z[b, i, j, k] == l1[b, i] * v1[b, j] * a1[b, k]
    # the appended 1 keeps the unimodal, bimodal and trimodal terms side by side
    torch.testing.assert_close(Z[:, :3, 2, 4], zl)
    torch.testing.assert_close(Z[:, 3, :2, 4], zv)
    torch.testing.assert_close(Z[:, 3, 2, :4], za)
    torch.testing.assert_close(Z[:, :3, :2, 4], zl[:, :, None] * zv[:, None, :])
    torch.testing.assert_close(Z[:, :3, :2, :4], torch.einsum("bi,bj,bk->bijk", zl, zv, za))
    assert (Z[:, 3, 2, 4] == 1).all()
    # two modalities: the plain outer product of the augmented vectors
    torch.testing.assert_close(tensor_fusion([zl, za]), l1[:, :, None] * a1[:, None, :])


def test_tfn_feeds_its_own_unimodal_vectors_to_the_fusion(batch):
    model = TFN(tiny("tfn"), AWKWARD_DIMS).eval()
    out = model(batch)
    torch.testing.assert_close(out.fused, tensor_fusion([out.unimodal[m] for m in ("text", "vision", "audio")]))


# ----------------------------------------------------------------------------- LMF: the low-rank product
def _random_zs(dims, B=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, d, generator=g, dtype=torch.float64) for d in dims]


def test_low_rank_fusion_is_a_linear_map_of_the_tfn_tensor():
    """For any factors: h = W . Z + b with Z TFN's fusion tensor and W = sum_i w_1^(i) (x) w_2^(i) (x) w_3^(i)."""
    torch.manual_seed(0)
    dims = (3, 2, 4)
    fusion = LowRankFusion(list(dims), out_dim=5, rank=3).double()
    with torch.no_grad():
        fusion.bias.normal_()
    zs = _random_zs(dims)
    W = fusion.full_weight()
    assert W.shape == (5, 4 * 3 * 5)
    torch.testing.assert_close(fusion(zs), F.linear(tensor_fusion(zs).flatten(1), W, fusion.bias))
    # W[k] is the sum of r outer products, entry by entry
    w1, w2, w3 = fusion.factors
    i, j, k, o = 2, 1, 3, 4
    expected = sum(w1[r, i, o] * w2[r, j, o] * w3[r, k, o] for r in range(3))
    torch.testing.assert_close(W[o].reshape(4, 3, 5)[i, j, k], expected)


def _factors_of(W: torch.Tensor, dims) -> list:
    """An exact rank-(d_1+1)(d_2+1) decomposition of a TFN weight W (out, prod(d_m + 1)): term (p, q) is
    e_p (x) e_q (x) W[:, p, q, :] for every output unit."""
    n1, n2, n3 = (d + 1 for d in dims)
    out = W.shape[0]
    Wt = W.reshape(out, n1, n2, n3)
    rank = n1 * n2
    f1, f2, f3 = (torch.zeros(rank, n, out, dtype=W.dtype) for n in (n1, n2, n3))
    for r, (p, q) in enumerate(itertools.product(range(n1), range(n2))):
        f1[r, p, :] = 1.0
        f2[r, q, :] = 1.0
        f3[r, :, :] = Wt[:, p, q, :].T  # (n3, out)
    return [f1, f2, f3]


def test_full_rank_lmf_equals_any_tfn_fusion_layer():
    """The converse: every TFN fusion layer is an LMF one of rank (d_1+1)(d_2+1), so LMF at that rank
    represents exactly the maps TFN does (the two differ by a reparametrisation of W)."""
    torch.manual_seed(1)
    dims = (3, 2, 4)
    tfn_layer = torch.nn.Linear(4 * 3 * 5, 6).double()
    fusion = LowRankFusion(list(dims), out_dim=6, rank=4 * 3).double()
    with torch.no_grad():
        for param, value in zip(fusion.factors, _factors_of(tfn_layer.weight, dims)):
            param.copy_(value)
        fusion.bias.copy_(tfn_layer.bias)
    torch.testing.assert_close(fusion.full_weight(), tfn_layer.weight)
    zs = _random_zs(dims, seed=3)
    torch.testing.assert_close(fusion(zs), tfn_layer(tensor_fusion(zs).flatten(1)))


def test_full_rank_lmf_model_reproduces_a_tfn_model(batch):
    """Whole models: an LMF with TFN's subnetworks and inference layers, and factors decomposing TFN's
    fusion weight, predicts what the TFN predicts."""
    torch.manual_seed(2)
    sizes = dict(text_dim=3, audio_dim=2, vision_dim=2, post_hidden=5)
    tfn = TFN(TFNConfig.tiny(**sizes), AWKWARD_DIMS).double().eval()
    dims = [sizes["text_dim"], sizes["vision_dim"], sizes["audio_dim"]]  # TFN_ORDER: text, vision, audio
    lmf = LMF(LMFConfig.tiny(**sizes, rank=(dims[0] + 1) * (dims[1] + 1)), AWKWARD_DIMS).double().eval()
    state = {k: v for k, v in tfn.state_dict().items() if not k.startswith("fusion_layer.")}
    missing, unexpected = lmf.load_state_dict(state, strict=False)
    assert not unexpected and all(k.startswith("fusion_layer.") for k in missing)
    with torch.no_grad():
        for param, value in zip(lmf.fusion_layer.factors, _factors_of(tfn.fusion_layer.weight, dims)):
            param.copy_(value)
        lmf.fusion_layer.bias.copy_(tfn.fusion_layer.bias)
    b = {k: (v.double() if v.is_floating_point() else v) for k, v in batch.items()}
    torch.testing.assert_close(lmf(b).pred, tfn(b).pred)


def test_lmf_parameter_count_is_linear_in_the_modality_sizes():
    fusion = LowRankFusion([128, 32, 32], out_dim=128, rank=4)
    assert sum(p.numel() for p in fusion.parameters()) == 4 * 128 * (129 + 33 + 33) + 128
    assert 129 * 33 * 33 * 128 > 80 * sum(p.numel() for p in fusion.parameters())  # TFN's layer at paper sizes
