"""A modality with no real time step (length 0, an all-false mask), in every model of the registry.

`extract` writes such clips (a video without an audio track, a face never found), and the robustness
curves feed models whole batches of them. Every model must give a defined prediction: finite, with finite
gradients when it trains on such a batch, and independent of whatever the masked positions hold (no
attention or pooling over nothing that silently reads padding).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from conftest import AWKWARD_DIMS, AWKWARD_LENGTHS, make_batch
from mcihn.modalities import MODALITIES
from mcihn.training.registry import MODEL_KINDS, build_model, make_config

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _model(kind: str, train: bool):
    torch.manual_seed(0)
    model = build_model(make_config(kind, "tiny"), AWKWARD_DIMS)
    return model.train(train)


def _batch(empty: str, rows, seed: int = 3, pad_value: float = 0.0) -> dict:
    """The awkward batch (B=3) with modality ``empty`` of length 0 in ``rows``."""
    lengths = {m: list(v) for m, v in AWKWARD_LENGTHS.items()}
    for i in rows:
        lengths[empty][i] = 0
    batch = make_batch(lengths=lengths, seed=seed, pad_value=pad_value)
    assert not batch[empty + "_mask"][list(rows)].any()
    batch["index"] = torch.arange(3)  # Self-MM's label banks read it
    return batch


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("empty", MODALITIES)
def test_a_whole_batch_without_a_modality_trains_to_finite_values(kind, empty):
    model = _model(kind, train=True)
    batch = _batch(empty, rows=(0, 1, 2))
    pred = model(batch).pred
    assert pred.shape == (3,) and torch.isfinite(pred).all(), f"{kind} without {empty}: {pred}"
    F.l1_loss(pred, batch["label"]).backward()
    for name, p in model.named_parameters():
        assert p.grad is None or torch.isfinite(p.grad).all(), f"{kind} without {empty}: gradient of {name}"


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("empty", MODALITIES)
def test_an_empty_modality_is_not_read(kind, empty):
    """Clip 0 has no real step of ``empty``: what its padded positions hold must not reach any prediction,
    and the other clips of the batch are predicted as they are alone."""
    model = _model(kind, train=False)
    zeros = model(_batch(empty, rows=(0,), pad_value=0.0)).pred
    noise = model(_batch(empty, rows=(0,), pad_value=9.0)).pred
    torch.testing.assert_close(noise, zeros, rtol=0, atol=1e-5)
    assert torch.isfinite(zeros).all()
    full = _batch(empty, rows=(0,))
    alone = model({k: v[1:2] for k, v in full.items()}).pred
    torch.testing.assert_close(alone, zeros[1:2], rtol=1e-4, atol=1e-5)
