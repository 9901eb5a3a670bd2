"""Tests for mcihn.model.mmd: the multi-kernel Gaussian MMD^2 (Eq. 12-14), the feature-adaptive loss, and the
fixed-kernel MMD^2 (biased and unbiased, and its closed form for two Gaussians) that the notebooks measure with."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import mcihn.model.mmd as mmd_mod
from mcihn.model.mmd import (FeatureAdaptiveMMD, as_samples, gaussian_mmd2, gaussian_mmd2_analytic, median_bandwidth,
                             mmd2, pairwise_sq_dists)

pytestmark = pytest.mark.usefixtures("torch_single_thread")

MULTS = (0.25, 0.5, 1.0, 2.0, 4.0)


def slow_mmd2(x, y, multipliers=MULTS) -> float:
    """Obviously correct, pure Python: biased MMD^2 with a Gaussian multi-kernel whose bandwidth is
    the (lower) median of the squared distances over the pairs i < j of the pooled sample."""
    xs, ys = x.double().tolist(), y.double().tolist()
    z = xs + ys

    def sq(a, b):
        return sum((ai - bi) ** 2 for ai, bi in zip(a, b))

    dists = sorted(sq(z[i], z[j]) for i in range(len(z)) for j in range(i + 1, len(z)))
    sigma2 = max(dists[(len(dists) - 1) // 2], 1e-8)  # lower median, as torch.median

    def k(a, b):
        return sum(math.exp(-sq(a, b) / (c * sigma2)) for c in multipliers) / len(multipliers)

    def mean_k(A, B):
        return sum(k(a, b) for a in A for b in B) / (len(A) * len(B))

    return mean_k(xs, xs) + mean_k(ys, ys) - 2.0 * mean_k(xs, ys)


@pytest.mark.parametrize("n,m,k,seed", [(5, 7, 3, 0), (4, 4, 6, 1), (1, 3, 2, 2), (8, 2, 5, 3)])
def test_mmd2_matches_slow_loop(n, m, k, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, k, generator=g, dtype=torch.float64)
    y = torch.randn(m, k, generator=g, dtype=torch.float64) + 0.7
    assert mmd2(x, y).item() == pytest.approx(slow_mmd2(x, y), rel=1e-9, abs=1e-12)
    assert mmd2(x, y, multipliers=(1.0,)).item() == pytest.approx(slow_mmd2(x, y, (1.0,)), rel=1e-9, abs=1e-12)


def test_mmd2_float32_close_to_slow_loop():
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(6, 4, generator=g), torch.randn(9, 4, generator=g) * 1.5
    assert mmd2(x, y).item() == pytest.approx(slow_mmd2(x, y), rel=1e-4, abs=1e-6)


def test_pairwise_and_median_helpers():
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(4, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(pairwise_sq_dists(x, y), torch.cdist(x, y).pow(2))
    z = torch.cat([x, y])
    d = [((z[i] - z[j]) ** 2).sum().item() for i in range(10) for j in range(i + 1, 10)]
    assert median_bandwidth(z).item() == pytest.approx(sorted(d)[(len(d) - 1) // 2])
    assert median_bandwidth(torch.zeros(3, 2)).item() == pytest.approx(1e-8)  # floored, never 0


def test_mmd2_of_a_sample_with_itself_is_zero():
    x = torch.randn(10, 4, generator=torch.Generator().manual_seed(6))
    assert abs(mmd2(x, x).item()) < 1e-6
    assert abs(mmd2(x, x.clone()[torch.randperm(10)]).item()) < 1e-6  # order does not matter


def test_mmd2_symmetric_and_nonnegative():
    g = torch.Generator().manual_seed(7)
    for trial in range(20):
        n, m = int(torch.randint(1, 12, (1,), generator=g)), int(torch.randint(1, 12, (1,), generator=g))
        x = torch.randn(n, 5, generator=g, dtype=torch.float64)
        y = torch.randn(m, 5, generator=g, dtype=torch.float64) * (1 + trial / 10) + trial / 20
        a, b = mmd2(x, y).item(), mmd2(y, x).item()
        assert a == pytest.approx(b, rel=1e-10, abs=1e-12)
        assert a >= -1e-12


def test_mmd2_detects_a_mean_shift():
    g = torch.Generator().manual_seed(8)
    same = [mmd2(torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g)).item() for _ in range(5)]
    shifted = [mmd2(torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g) + 1.0).item() for _ in range(5)]
    assert min(shifted) > 3 * max(same)
    big = mmd2(torch.randn(64, 4, generator=g), torch.randn(64, 4, generator=g) + 3.0).item()
    assert big > max(shifted)


@pytest.mark.parametrize("scale", [1e-3, 0.1, 7.0, 1e3])
def test_mmd2_invariant_to_a_common_rescaling(scale):
    g = torch.Generator().manual_seed(9)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(10, 3, generator=g, dtype=torch.float64) + 0.5
    assert mmd2(scale * x, scale * y).item() == pytest.approx(mmd2(x, y).item(), rel=1e-8)


def test_mmd2_invariant_to_a_common_translation():
    g = torch.Generator().manual_seed(10)
    x = torch.randn(12, 3, generator=g, dtype=torch.float64)
    y = torch.randn(10, 3, generator=g, dtype=torch.float64) + 0.5
    shift = torch.tensor([5.0, -2.0, 1.0], dtype=torch.float64)
    assert mmd2(x + shift, y + shift).item() == pytest.approx(mmd2(x, y).item(), rel=1e-8)


def test_mmd2_gradients_reach_both_inputs():
    g = torch.Generator().manual_seed(11)
    x = torch.randn(8, 3, generator=g).requires_grad_()
    y = (torch.randn(8, 3, generator=g) + 1.0).requires_grad_()
    mmd2(x, y).backward()
    for t in (x, y):
        assert t.grad is not None and torch.isfinite(t.grad).all() and t.grad.abs().max() > 0
    # a gradient step on y moves it towards x: the MMD goes down
    with torch.no_grad():
        before = mmd2(x, y).item()
        after = mmd2(x, y - 0.5 * y.grad / y.grad.norm()).item()
    assert after < before


def test_as_samples_pooled_and_tokens():
    t = torch.randn(3, 5, 4, generator=torch.Generator().manual_seed(12))
    pooled, tokens = as_samples(t, "pooled"), as_samples(t, "tokens")
    assert pooled.shape == (3, 4) and tokens.shape == (15, 4)
    torch.testing.assert_close(pooled, t.mean(dim=1))
    torch.testing.assert_close(tokens[2 * 5 + 3], t[2, 3])  # row b*L + l is token l of utterance b


def _codes(mods, B=3, L=5, d=4, seed=13):
    g = torch.Generator().manual_seed(seed)
    S = {m: torch.randn(B, L, d, generator=g) for m in mods}
    F = {k: torch.randn(B, L, d, generator=g) for k in ("vt", "va", "ta")}
    return S, F


@pytest.mark.parametrize("how,rows", [("pooled", 3), ("tokens", 15)])
def test_feature_adaptive_mmd_sample_shapes_and_terms(how, rows, monkeypatch):
    torch.manual_seed(0)
    loss = FeatureAdaptiveMMD(("text", "audio", "vision"), d=4, samples=how)
    S, F = _codes(("text", "audio", "vision"))
    expected = {  # Eq. 12, computed independently of the module's naming logic
        "v-ta": mmd2(loss.xi(as_samples(S["vision"], how)), loss.xi(as_samples(F["ta"], how))),
        "t-va": mmd2(loss.xi(as_samples(S["text"], how)), loss.xi(as_samples(F["va"], how))),
        "a-vt": mmd2(loss.xi(as_samples(S["audio"], how)), loss.xi(as_samples(F["vt"], how))),
    }
    total, terms = loss(S, F)
    assert set(terms) == set(expected)
    for k in expected:
        torch.testing.assert_close(terms[k], expected[k])
    torch.testing.assert_close(total, sum(expected.values()))

    seen = []
    real = mmd_mod.mmd2
    monkeypatch.setattr(mmd_mod, "mmd2", lambda x, y, mult: seen.append((x.shape, y.shape, mult)) or real(x, y, mult))
    loss(S, F)
    assert seen == [((rows, 4), (rows, 4), MULTS)] * 3


def test_feature_adaptive_mmd_two_modalities_one_term():
    torch.manual_seed(0)
    loss = FeatureAdaptiveMMD(("audio", "vision"), d=4, multipliers=(1.0, 2.0))
    S, F = _codes(("audio", "vision"))
    total, terms = loss(S, F)
    assert list(terms) == ["v-a"]
    torch.testing.assert_close(total, mmd2(loss.xi(S["vision"].mean(1)), loss.xi(S["audio"].mean(1)), (1.0, 2.0)))


@pytest.mark.parametrize("xi", ["linear", "orthogonal", "none"])
def test_feature_adaptive_mmd_gradients_reach_xi_and_codes(xi):
    """L_Adp's gradients reach the codes whatever xi is. A free (linear) xi gets a gradient too; an orthogonal
    one does not, up to round-off: a rotation keeps every pairwise distance, so the MMD does not depend on it."""
    torch.manual_seed(0)
    loss = FeatureAdaptiveMMD(("text", "audio", "vision"), d=4, xi=xi)
    S, F = _codes(("text", "audio", "vision"), B=6)
    for t in list(S.values()) + list(F.values()):
        t.requires_grad_()
    loss(S, F)[0].backward()
    codes = max(float(t.grad.abs().max()) for t in list(S.values()) + list(F.values()))
    for t in list(S.values()) + list(F.values()):
        assert t.grad is not None and t.grad.abs().max() > 0
    params = dict(loss.xi.named_parameters())
    if xi == "linear":
        assert set(params) == {"weight", "bias"}
        assert loss.xi.weight.grad.abs().max() > 1e-2 * codes
        assert loss.xi.bias.grad.abs().max() <= 1e-4 * codes  # still invariant to a shift
    elif xi == "orthogonal":
        assert set(params) == {"bias", "parametrizations.weight.original"}
        w = loss.xi.weight.detach()
        torch.testing.assert_close(w @ w.T, torch.eye(4), atol=1e-5, rtol=0)
        for name, p in params.items():
            assert p.grad is not None and p.grad.abs().max() <= 1e-4 * codes, name
    else:
        assert params == {}


def test_orthogonal_and_no_xi_give_the_same_mmd_values():
    """make_xi: an orthogonal xi (a rotation and a shift) leaves L_Adp as it is without xi."""
    S, F = _codes(("text", "audio", "vision"), B=6)
    torch.manual_seed(1)
    rotated = FeatureAdaptiveMMD(("text", "audio", "vision"), d=4, xi="orthogonal")
    with torch.no_grad():
        rotated.xi.bias.normal_()
    plain = FeatureAdaptiveMMD(("text", "audio", "vision"), d=4, xi="none")
    linear = FeatureAdaptiveMMD(("text", "audio", "vision"), d=4, xi="linear")
    with torch.no_grad():
        (a, ta), (b, tb), (c, _) = rotated(S, F), plain(S, F), linear(S, F)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert ta.keys() == tb.keys() and a > 0
    assert abs(float(c) - float(b)) > 1e-3  # a free layer does change it


def test_effective_rank_and_make_xi():
    from mcihn.model.mmd import effective_rank, make_xi
    torch.manual_seed(0)
    assert effective_rank(torch.eye(6)) == pytest.approx(6.0, rel=1e-6)
    assert effective_rank(torch.linalg.qr(torch.randn(6, 6))[0]) == pytest.approx(6.0, rel=1e-5)
    assert effective_rank(torch.randn(6, 1) @ torch.randn(1, 6)) == pytest.approx(1.0, rel=1e-4)
    assert 1.0 < effective_rank(torch.diag(torch.tensor([1.0, 1.0, 1e-3, 1e-3]))) < 2.1
    assert effective_rank(make_xi(6, "orthogonal").weight) == pytest.approx(6.0, rel=1e-5)
    assert isinstance(make_xi(6, "none"), torch.nn.Identity)
    with pytest.raises(ValueError, match="xi must be one of"):
        make_xi(6, "diagonal")


def test_pooled_mmd_loss_of_a_single_utterance_batch_is_zero():
    mods = ("text", "audio", "vision")
    loss = FeatureAdaptiveMMD(mods, d=4)
    S = {m: torch.randn(1, 3, 4) for m in mods}
    F = {k: torch.randn(1, 3, 4) for k in ("vt", "va", "ta")}
    total, terms = loss(S, F)
    assert total.item() == 0.0 and terms == {}
    S2 = {m: torch.randn(2, 3, 4) for m in mods}
    F2 = {k: torch.randn(2, 3, 4) for k in ("vt", "va", "ta")}
    assert loss(S2, F2)[0].item() > 0


# ----------------------------------------------------------------------------- the fixed-kernel MMD^2
def slow_gaussian_mmd2(x, y, gammas, unbiased):
    k = lambda a, b: np.mean([np.exp(-np.sum((a - b) ** 2) / g) for g in gammas])  # noqa: E731
    n, m = len(x), len(y)
    pairs = lambda a, b, skip: [k(a[i], b[j]) for i in range(len(a)) for j in range(len(b))  # noqa: E731
                                if not (skip and i == j)]
    return (np.mean(pairs(x, x, unbiased)) + np.mean(pairs(y, y, unbiased)) - 2 * np.mean(pairs(x, y, False)))


@pytest.mark.parametrize("unbiased", [False, True])
def test_gaussian_mmd2_matches_a_slow_loop(unbiased):
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    got = gaussian_mmd2(x, y, (0.5, 3.0), unbiased=unbiased).item()
    assert got == pytest.approx(slow_gaussian_mmd2(x.numpy(), y.numpy(), (0.5, 3.0), unbiased), rel=1e-10)


def test_mmd2_is_the_fixed_kernel_at_median_scaled_widths():
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(6, 4, generator=g, dtype=torch.float64), torch.randn(9, 4, generator=g, dtype=torch.float64)
    from mcihn.model.mmd import median_bandwidth
    s2 = median_bandwidth(torch.cat([x, y])).item()
    assert mmd2(x, y, (0.5, 2.0)).item() == pytest.approx(gaussian_mmd2(x, y, (0.5 * s2, 2.0 * s2)).item())


def test_gaussian_mmd2_analytic_against_monte_carlo():
    assert gaussian_mmd2_analytic([0, 0], 1.0, [0, 0], 1.0, (2.0,)) == pytest.approx(0.0, abs=1e-15)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(3000, 3, generator=g, dtype=torch.float64)
    y = 1.5 * torch.randn(3000, 3, generator=g, dtype=torch.float64) + torch.tensor([1.0, 0.0, -0.5], dtype=torch.float64)
    exact = gaussian_mmd2_analytic([0, 0, 0], 1.0, [1.0, 0.0, -0.5], 2.25, (1.0, 5.0))
    assert gaussian_mmd2(x, y, (1.0, 5.0), unbiased=True).item() == pytest.approx(exact, rel=0.03)
    biased = gaussian_mmd2_analytic([0, 0, 0], 1.0, [1.0, 0.0, -0.5], 2.25, (1.0, 5.0), n=3000, m=3000)
    assert biased > exact
    assert gaussian_mmd2(x, y, (1.0, 5.0)).item() == pytest.approx(biased, rel=0.03)
