"""Sec. 3.3 - Feature reconstruction module: one adversarial autoencoder (AAE) per modality.

For modality m the AAE has three parts (Fig. 1(b)):

* an encoder E_m (also the *generator* of the adversarial game) that maps the
  feature sequence X_m (B, T_m, D_m) to a latent code S_m (B, L, d). It changes
  width (D_m -> d) *and* time (T_m -> L): a linear layer, a temporal convolution
  ("temporal and spatial information", Sec. 1), then L learned queries that
  attend over the T_m valid time steps (padding is masked out);
* a decoder D_m that maps S_m back to X_hat_m (B, T_m, D_m) with T_m learned
  queries attending over the L latent vectors, then a linear layer;
* a discriminator D_omega, an MLP that scores latent samples as coming from the
  prior N(0, I) or from E_m: by default each latent vector (each of the B*L rows of
  S_m) is one sample; ``disc_samples`` also offers the utterance vector (mean over L)
  and the whole flattened code (:func:`disc_samples`).

The losses are Eq. 4 (reconstruction, masked) and Eq. 5 (adversarial); the
order in which they are optimised is Algorithm 1: ``MCIHN.training_phases`` in ``mcihn.py``, run by ``mcihn.training.trainer``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from .attention import attend


class QueryResampler(nn.Module):
    """Resample a sequence in time with learned queries (single-head cross-attention).

    ``x`` (B, T_in, d) with ``mask`` (B, T_in) bool (True = valid) -> (B, T_out, d).
    Each of the T_out output steps is a softmax-weighted average of the valid input
    steps. With ``need_weights=True`` (the default) the attention is written out and its weights
    are returned for inspection, (B, T_out, T_in); with ``False`` it runs fused
    (``scaled_dot_product_attention``) and the weights are ``None``. The encoder and decoder, which
    discard the weights, always ask for the fused path.
    """

    def __init__(self, t_out: int, d: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(t_out, d) / math.sqrt(d))  # (T_out, d)
        self.key = nn.Linear(d, d)
        self.value = nn.Linear(d, d)
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, need_weights: bool = True):
        k, v = self.key(x), self.value(x)  # (B, T_in, d)
        q = self.queries.to(k.dtype).expand(x.shape[0], -1, -1)  # (B, T_out, d)
        attn_mask = None
        if mask is not None:
            # An all-padding sequence (length 0) would give NaN: let it attend everywhere instead.
            safe = mask | ~mask.any(dim=1, keepdim=True)  # (B, T_in)
            attn_mask = safe[:, None, :]  # (B, 1, T_in), True = attend
        return attend(q, k, v, attn_mask, scale=self.scale, need_weights=need_weights)  # (B, T_out, d), weights


class Encoder(nn.Module):
    """E_m: (B, T_m, D_m) -> S_m (B, L, d). Also the generator of the adversarial game."""

    def __init__(self, t_in: int, d_in: int, latent_len: int, latent_dim: int, kernel: int = 3,
                 dropout: float = 0.0):
        super().__init__()
        self.drop = nn.Dropout(dropout)  # on the input features and on the code (training only)
        self.inp = nn.Linear(d_in, latent_dim)  # width D_m -> d
        self.pos = nn.Parameter(torch.zeros(t_in, latent_dim))  # learned positions, (T_m, d)
        self.conv = nn.Conv1d(latent_dim, latent_dim, kernel, padding=kernel // 2)  # odd kernel: keeps T_m
        self.norm = nn.LayerNorm(latent_dim)
        self.resample = QueryResampler(latent_len, latent_dim)  # time T_m -> L
        self.out = nn.Linear(latent_dim, latent_dim)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T_m, D_m), mask (B, T_m) -> S (B, L, d)."""
        h = self.inp(self.drop(x)) + self.pos  # (B, T_m, d)
        if mask is not None:
            h = h * mask[..., None]  # zero the padding so the convolution does not see it
        h = h + F.gelu(self.conv(h.transpose(1, 2)).transpose(1, 2))  # (B, d, T_m) -> (B, T_m, d)
        h = self.norm(h)
        s, _ = self.resample(h, mask, need_weights=False)  # (B, L, d)
        return self.out(self.drop(s))  # no squashing: the discriminator shapes S towards N(0, I)


class Decoder(nn.Module):
    """D_m: S_m (B, L, d) -> X_hat_m (B, T_m, D_m)."""

    def __init__(self, t_out: int, d_out: int, latent_dim: int):
        super().__init__()
        self.resample = QueryResampler(t_out, latent_dim)  # time L -> T_m
        self.hidden = nn.Linear(latent_dim, latent_dim)
        self.out = nn.Linear(latent_dim, d_out)  # width d -> D_m

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        h, _ = self.resample(s, need_weights=False)  # (B, T_m, d)
        return self.out(F.gelu(self.hidden(h)))  # (B, T_m, D_m)


class Discriminator(nn.Module):
    """D_omega: one latent vector (.., d) -> one logit (..,). Sigmoid of it = P(from the prior)."""

    def __init__(self, latent_dim: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, hidden), nn.LeakyReLU(0.2),
            nn.Linear(hidden, 1),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).squeeze(-1)


def reconstruction_loss(x: torch.Tensor, x_hat: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Eq. 4, ||X - X_hat||_2^2, averaged over the valid (unpadded) elements.

    x, x_hat (B, T, D); mask (B, T) bool. Averaging (instead of summing) keeps the
    scale of the loss independent of T and D, so the three modalities weigh alike.
    """
    err = (x - x_hat).pow(2)  # (B, T, D)
    if mask is None:
        return err.mean()
    m = mask[..., None].to(err.dtype)  # (B, T, 1)
    return (err * m).sum() / (m.sum() * x.shape[-1]).clamp_min(1.0)


#: What the discriminator scores, from a code S (B, L, d) (``MCIHNConfig.disc_samples``).
DISC_SAMPLES = ("tokens", "pooled", "flat")


def disc_samples(s: torch.Tensor, how: str = "tokens") -> torch.Tensor:
    """The samples the discriminator sees, from s (B, L, d).

    'tokens' -> (B*L, d): each latent vector is one sample of the prior N(0, I_d) (the default);
    'pooled' -> (B, d): the utterance vector, the mean over L; 'flat' -> (B, L*d): the whole code,
    against N(0, I_{L*d}), which also sees whether the L positions differ from one another.
    """
    if how == "tokens":
        return s.reshape(-1, s.shape[-1])  # (B*L, d)
    if how == "pooled":
        return s.mean(dim=1)  # (B, d)
    if how == "flat":
        return s.reshape(s.shape[0], -1)  # (B, L*d)
    raise ValueError(f"disc_samples must be one of {DISC_SAMPLES}, not {how!r}")


def disc_width(latent_len: int, latent_dim: int, how: str = "tokens") -> int:
    """Input width of the discriminator for ``how``."""
    return latent_len * latent_dim if how == "flat" else latent_dim


def discriminator_loss(disc: Discriminator, s: torch.Tensor, how: str = "tokens",
                       generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 5, discriminator side: maximise log D(d) + log(1 - D(E(X))), d ~ N(0, I).

    Written as the equivalent binary cross-entropy to minimise. ``s`` (B, L, d) is detached, so
    only the discriminator receives gradients. The prior samples come from ``generator``: a stream
    of their own keeps the global one (dropout) where it would be without this step, so a zero
    adversarial weight trains exactly like no adversary. Returns (loss, accuracy): the mean of the
    accuracies on prior and code samples, 0.5 = chance.
    """
    fake = disc_samples(s.detach(), how)  # (N, k)
    real = torch.randn(fake.shape, generator=generator, device=fake.device, dtype=fake.dtype)  # prior p(d)
    logit_real, logit_fake = disc(real), disc(fake)
    loss = (F.binary_cross_entropy_with_logits(logit_real, torch.ones_like(logit_real))
            + F.binary_cross_entropy_with_logits(logit_fake, torch.zeros_like(logit_fake)))
    with torch.no_grad():
        accuracy = 0.5 * ((logit_real > 0).float().mean() + (logit_fake < 0).float().mean())
    return loss, accuracy


def generator_loss(disc: Discriminator, s: torch.Tensor, how: str = "tokens") -> torch.Tensor:
    """Eq. 5, encoder side: make D(E(X)) look like the prior.

    Non-saturating form -log D(E(X)) instead of log(1 - D(E(X))) (same fixed point,
    stronger gradients early; Goodfellow et al. 2014). The discriminator's weights
    are not in the optimiser of the step that minimises this.
    """
    logit = disc(disc_samples(s, how))  # (N,)
    return F.binary_cross_entropy_with_logits(logit, torch.ones_like(logit))


class ModalityAAE(nn.Module):
    """Encoder + decoder + discriminator of one modality (Fig. 1(b)).

    With ``adversarial=False`` (ablation MCIHN-1) only the encoder exists: it is then
    a plain learned projection (B, T_m, D_m) -> (B, L, d) trained by the main loss.
    """

    def __init__(self, t_in: int, d_in: int, latent_len: int, latent_dim: int,
                 disc_hidden: int, kernel: int = 3, adversarial: bool = True, disc_samples: str = "tokens",
                 enc_dropout: float = 0.0):
        super().__init__()
        self.encoder = Encoder(t_in, d_in, latent_len, latent_dim, kernel, enc_dropout)
        self.decoder = Decoder(t_in, d_in, latent_dim) if adversarial else None
        width = disc_width(latent_len, latent_dim, disc_samples)
        self.discriminator = Discriminator(width, disc_hidden) if adversarial else None

    def forward(self, x, mask=None):
        """x (B, T_m, D_m) -> (S (B, L, d), X_hat (B, T_m, D_m) or None)."""
        s = self.encoder(x, mask)
        return s, (self.decoder(s) if self.decoder is not None else None)
