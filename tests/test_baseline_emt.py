"""EMT-DLFR (mcihn.baselines.emt): the incomplete view (masking one modality changes only that view, only
on real steps, and the complete view never sees the mask), the reconstruction loss counted on masked
positions only, and the task loss's terms with and without DLFR. What every baseline shares is in
test_baselines_common.py and test_baselines_common_multitask.py.
"""
from __future__ import annotations

import pytest
import torch

from _helpers import tiny
from conftest import AWKWARD_DIMS, make_batch
from mcihn.baselines import EMT
from mcihn.baselines.emt import incomplete_view, masked_reconstruction_loss

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def indexed(batch: dict) -> dict:
    return {**batch, "index": torch.arange(len(batch["label"]))}


def test_masking_one_modality_changes_only_that_view(batch):
    b = indexed(batch)
    before = {k: v.clone() for k, v in b.items()}
    g = torch.Generator().manual_seed(0)
    view, missing = incomplete_view(b, ["text"], 0.5, g)
    assert set(missing) == {"text"} and missing["text"].any()
    for k in b:
        assert torch.equal(b[k], before[k]), k  # the complete view is untouched
        if k != "text":
            assert view[k] is b[k], k  # other modalities, masks, labels, index: the same tensors
    assert not (missing["text"] & ~b["text_mask"]).any()  # only real steps are masked
    assert (view["text"][missing["text"]] == 0).all()
    keep = ~missing["text"]
    assert torch.equal(view["text"][keep], b["text"][keep])
    model = EMT(tiny("emt"), AWKWARD_DIMS).eval()  # and the model's complete view does not see the mask
    torch.testing.assert_close(model.encode(b)["pred"], model.encode(before)["pred"], rtol=0, atol=0)
    assert not torch.allclose(model.encode(view)["pred"], model.encode(b)["pred"])


def test_reconstruction_loss_counts_masked_positions_only():
    g = torch.Generator().manual_seed(1)
    target = torch.randn(3, 6, 4, generator=g)
    where = torch.zeros(3, 6, dtype=torch.bool)
    where[0, 1] = where[2, 4] = True
    wrong_elsewhere = target + 10.0 * (~where)[..., None]
    assert masked_reconstruction_loss(wrong_elsewhere, target, where) == 0
    wrong_there = target + 1.0 * where[..., None]  # SmoothL1 of 1 is 0.5 per feature
    assert masked_reconstruction_loss(wrong_there, target, where) == pytest.approx(0.5, rel=1e-5)


def test_emt_losses_with_and_without_dlfr(batch):
    torch.manual_seed(0)
    b = make_batch(B=5, seed=3)
    model = EMT(tiny("emt", mask_rate=0.0), AWKWARD_DIMS).train()
    _, logs = model.task_loss(b)
    assert set(logs) == {"total", "mul", "attra", "recon"}
    assert logs["recon"] == 0  # nothing masked: nothing to reconstruct
    plain = EMT(tiny("emt", dlfr=False), AWKWARD_DIMS).train()
    loss, logs = plain.task_loss(b)
    assert set(logs) == {"total", "mul"} and not hasattr(plain, "decoder")
    torch.testing.assert_close(loss, (plain(b).pred - b["label"]).abs().mean())
