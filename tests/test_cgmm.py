"""The cross-modal gated module (mcihn.model.cgmm), recomputed by hand on the awkward sizes of conftest:
the attention transfer of Eq. 6-8 for each core modality (bilinear scores, row softmax, the other two codes
attended) and the gate of Eq. 9-11 for each pair (the ReLU gate over [S^m, S^n, S^m - S^n, S^m * S^n] and the
gated pair feature F^mn). The plain pair means that replace it in MCIHN-2 are in test_mcihn_model.py.
"""
from __future__ import annotations

import math

import pytest
import torch

from _helpers import full_out  # noqa: F401 (a fixture)

pytestmark = pytest.mark.usefixtures("torch_single_thread")


@pytest.mark.parametrize("core,others", [("vision", ("text", "audio")), ("text", ("vision", "audio")),
                                         ("audio", ("vision", "text"))])
def test_eq6_to_8_attention_transfer_by_hand(core, others, full_out):
    model, out = full_out
    d = model.cfg.latent_dim
    ctx = out.S[others[0]] + out.S[others[1]]  # (B, L, d)
    W = model.cgmm.W[core].detach()
    B, L, _ = ctx.shape
    alpha = torch.empty(B, L, L)
    A = torch.empty(B, L, d)
    for b in range(B):
        M = out.S[core][b] @ W @ ctx[b].T / math.sqrt(d)  # Eq. 6, (L, L)
        alpha[b] = torch.softmax(M, dim=1)  # Eq. 7
        A[b] = alpha[b] @ ctx[b]  # Eq. 8 (attention transfer)
    torch.testing.assert_close(out.alpha[core], alpha, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.A[core], A, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("key,m,n", [("vt", "vision", "text"), ("va", "vision", "audio"), ("ta", "text", "audio")])
def test_eq9_to_11_gate_by_hand(key, m, n, full_out):
    model, out = full_out
    gate, proj = model.cgmm.gate[key], model.cgmm.proj[key]
    Sm, Sn = out.S[m], out.S[n]
    z = torch.cat([Sm, Sn, Sm - Sn, Sm * Sn], dim=-1) @ gate.weight.T + gate.bias  # Eq. 9, (B, L, 4d) -> (B, L, d)
    G = torch.clamp(z, min=0.0)  # Eq. 10
    side = lambda A, S: torch.cat([A, S], dim=-1) @ proj.weight.T + proj.bias  # noqa: E731
    F = G * side(out.A[m], Sm) + G * side(out.A[n], Sn)  # Eq. 11
    assert gate.weight.shape == (model.cfg.latent_dim, 4 * model.cfg.latent_dim)
    torch.testing.assert_close(out.G[key], G, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out.F[key], F, atol=1e-5, rtol=1e-5)
