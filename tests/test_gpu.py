"""Checks that need a CUDA GPU (``pytest -m gpu``; benchmarks/gpu.sh runs them). They skip without one."""
from __future__ import annotations

import pytest
import torch

from conftest import AWKWARD_DIMS, AWKWARD_MODEL, make_batch
from mcihn.model import MCIHN, MCIHNConfig, attention_weights
from mcihn.model.aae import QueryResampler

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def _metrics(res):
    return {k: v for k, v in res["test"].items()}


def test_same_seed_same_metrics_on_cuda(small_data, small_cfg, quiet):
    """run_seed seeds and turns deterministic algorithms on (utils.set_seed): two runs agree exactly."""
    from mcihn.training.runner import run_seed

    cfg = small_cfg(epochs=3)
    a = run_seed(small_data, cfg, 1111, device="cuda", **quiet)
    b = run_seed(small_data, cfg, 1111, device="cuda", **quiet)
    assert _metrics(a) == _metrics(b)
    assert [h["train"] for h in a["history"]] == [h["train"] for h in b["history"]]


def test_mult_same_seed_same_metrics_on_cuda(small_data, quiet):
    from mcihn.training.registry import make_config
    from mcihn.training.runner import run_seed

    cfg = make_config("mult", "tiny", epochs=2, batch_size=32)
    a = run_seed(small_data, cfg, 1111, device="cuda", **quiet)
    b = run_seed(small_data, cfg, 1111, device="cuda", **quiet)
    assert _metrics(a) == _metrics(b)


def test_bf16_amp_trains():
    """bf16 autocast: every loss finite, the main loss falls on a fixed batch."""
    from mcihn.training.trainer import Trainer
    from mcihn.utils import set_seed

    set_seed(0)
    tr = Trainer(MCIHNConfig.tiny(**AWKWARD_MODEL), AWKWARD_DIMS, device="cuda", amp=True)
    assert tr.amp
    batch = {k: v.cuda() for k, v in make_batch(B=16).items()}

    def mae():
        with torch.no_grad(), tr.autocast():
            return float((tr.model.eval()(batch).pred.float() - batch["label"]).abs().mean())

    before = mae()
    for _ in range(60):
        logs = tr.train_batch(batch)
        assert all(torch.isfinite(v).all() for v in logs.values())
    assert mae() < 0.7 * before


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_fused_attention_matches_explicit_on_cuda(dtype):
    torch.manual_seed(0)
    model = MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL), AWKWARD_DIMS).cuda().eval()
    batch = {k: v.cuda() for k, v in make_batch().items()}
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == torch.float32 else dict(rtol=5e-2, atol=5e-2)
    with torch.no_grad(), torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32):
        slow = model(batch)
        with attention_weights(False):
            fast = model(batch)
    assert slow.ffm_attention and not fast.ffm_attention
    torch.testing.assert_close(fast.pred.float(), slow.pred.float(), **tol)
    r = QueryResampler(t_out=7, d=32).cuda().eval()  # flash-eligible sizes, padding and an all-padding row
    x = torch.randn(4, 33, 32, device="cuda")
    mask = torch.arange(33, device="cuda")[None] < torch.tensor([33, 5, 0, 1], device="cuda")[:, None]
    with torch.no_grad():
        torch.testing.assert_close(r(x, mask, need_weights=False)[0], r(x, mask)[0], rtol=1e-4, atol=1e-5)


def test_fused_training_gradients_match_explicit_on_cuda():
    """Training mode, no dropout: the fused path's gradients equal the explicit path's."""
    torch.manual_seed(0)
    model = MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL), AWKWARD_DIMS).cuda().train()
    batch = {k: v.cuda() for k, v in make_batch().items()}
    grads = []
    for weights in (True, False):
        model.zero_grad()
        with attention_weights(weights):
            model(batch).pred.sum().backward()
        grads.append([p.grad.clone() for p in model.ffm.parameters()])
    for g1, g2 in zip(*grads):
        torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-5)
