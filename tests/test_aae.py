"""The adversarial autoencoder of each modality (mcihn.model.aae): the masked reconstruction loss of Eq. 4,
the discriminator and generator losses of Eq. 5 on a constant discriminator whose values are known, and the
discriminator's accuracy recomputed by hand with its prior samples drawn from their own random stream. How
the AAE is wired into the whole model (MCIHN-1 without it) is in test_mcihn_model.py.
"""
from __future__ import annotations

import math

import pytest
import torch

from _helpers import build

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def test_eq4_reconstruction_loss_is_masked(batch):
    from mcihn.model.aae import reconstruction_loss
    x, mask = batch["audio"], batch["audio_mask"]  # (3, 9, 3), lengths 9, 4, 2
    g = torch.Generator().manual_seed(3)
    x_hat = torch.randn(x.shape, generator=g)
    by_hand = sum(((x[b, t] - x_hat[b, t]) ** 2).sum() for b in range(3) for t in range(9) if mask[b, t])
    by_hand = by_hand / (int(mask.sum()) * x.shape[-1])
    torch.testing.assert_close(reconstruction_loss(x, x_hat, mask), by_hand)
    junk = torch.where(mask[..., None], x_hat, 1e3 * torch.randn(x.shape, generator=g))
    torch.testing.assert_close(reconstruction_loss(x, junk, mask), by_hand)  # padding is ignored
    torch.testing.assert_close(reconstruction_loss(x, x_hat, None), ((x - x_hat) ** 2).mean())


def test_eq5_adversarial_losses(awkward_cfg):
    from mcihn.model.aae import discriminator_loss, generator_loss
    torch.manual_seed(0)
    disc = build(awkward_cfg()).aae["text"].discriminator
    s = torch.randn(2, 6, 12, requires_grad=True)
    loss, acc = discriminator_loss(disc, s)
    loss.backward()
    assert s.grad is None  # codes are detached: only the discriminator learns here
    assert all(p.grad is not None for p in disc.parameters())
    assert acc.requires_grad is False and 0 <= acc.item() <= 1
    with torch.no_grad():  # a constant discriminator (logit 0) scores log 2 on each side
        for p in disc.parameters():
            p.zero_()
        loss, _ = discriminator_loss(disc, s)
        assert loss.item() == pytest.approx(2 * math.log(2), rel=1e-6)
        assert generator_loss(disc, s).item() == pytest.approx(math.log(2), rel=1e-6)
        disc.net[-1].bias.fill_(1.0)  # says "prior" to everything: right on the prior half, wrong on the codes
        assert discriminator_loss(disc, s)[1].item() == 0.5


def test_eq5_discriminator_accuracy_by_hand_and_its_own_random_stream(awkward_cfg):
    """The accuracy is the mean of the accuracies on the prior and on the code samples; the prior samples
    come from the generator passed in, so the global stream is left where it was."""
    from mcihn.model.aae import discriminator_loss
    torch.manual_seed(0)
    disc = build(awkward_cfg()).aae["text"].discriminator
    s = 3.0 * torch.randn(4, 6, 12) + 1.0  # codes far from N(0, I)
    state = torch.get_rng_state()
    loss, acc = discriminator_loss(disc, s, generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)  # the global stream is untouched
    again, acc2 = discriminator_loss(disc, s, generator=torch.Generator().manual_seed(5))
    assert torch.equal(loss, again) and torch.equal(acc, acc2)
    real = torch.randn(24, 12, generator=torch.Generator().manual_seed(5))  # (B*L, d) prior samples, as drawn
    by_hand = 0.5 * ((disc(real) > 0).float().mean() + (disc(s.reshape(-1, 12)) < 0).float().mean())
    torch.testing.assert_close(acc, by_hand)
    other = discriminator_loss(disc, s, generator=torch.Generator().manual_seed(6))[0]
    assert not torch.equal(loss, other)
