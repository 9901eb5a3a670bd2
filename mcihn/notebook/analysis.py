"""Looking inside a model: what the notebooks measure, as plain functions a test can reach.

* inputs and outputs over a split: :func:`model_inputs`, :func:`collect`, :func:`initial_model`;
* the AAE's latent codes against the prior N(0, I) (Sec. 3.3, Eq. 5): :func:`normal_qq`,
  :func:`prior_report`, :func:`aae_report`, :func:`latent_summary`, :func:`linear_probe`;
* the cross-modal gate and the fusion attention (Eq. 7, 10, 15): :func:`attention_report`,
  :func:`position_similarity`;
* the MMD alignment (Eq. 12-14): :func:`alignment_samples`, :func:`mmd_report`, :func:`mmd_probe`;
* MMD on a toy problem with a known answer: :func:`mmd_toy`;
* predictions, baselines and projections: :func:`class_confusion`, :func:`mean_predictor_mae`, :func:`umap_2d`,
  :func:`pca_2d`;
* whether a gap between two settings is larger than the seed spread: :func:`spread_verdict`.

Everything returns NumPy arrays or plain floats.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..model.aae import reconstruction_loss
from ..modalities import LETTER, others_of, pair_key, paper_order
from ..model.config import MCIHNConfig
from ..data import MultimodalData, Normalizer, fit_normalizer
from ..model.mmd import as_samples, gaussian_mmd2, gaussian_mmd2_analytic, mmd2
from ..model.mcihn import MCIHN
from ..training.trainer import iterate_batches
from ..utils import set_seed

#: Output fields of :class:`mcihn.model.mcihn.MCIHNOutput` that hold one tensor per key.
DICT_FIELDS = ("S", "X_hat", "alpha", "A", "G", "F", "fused", "ffm_attention")


def model_inputs(data: MultimodalData, split: str, modalities, normalizer: Normalizer | None = None,
                 max_samples: int | None = None, device="cpu") -> dict:
    """Tensors of one split, normalised as in training: {m: (N, T, D), m_mask: (N, T), label: (N,)}.

    ``normalizer`` defaults to the statistics of the training split under the default rule, which is what
    :func:`mcihn.training.runner.run_seed` uses; pass a checkpoint's own normaliser for other data.
    ``max_samples`` keeps the first N clips.
    """
    normalizer = normalizer or fit_normalizer(data, modalities)
    tensors = normalizer.transform(data[split]).to_tensors(modalities)
    if max_samples is not None:
        tensors = {k: v[:max_samples] for k, v in tensors.items()}
    return {k: v.to(device) for k, v in tensors.items()}


def initial_model(cfg: MCIHNConfig, dims: dict, seed: int) -> MCIHN:
    """The network exactly as training starts for this seed (``run_seed`` seeds, then builds it). With
    ``linear_init="auto"`` the zero start's (the frozen ridge start also sets the path's weights from the data)."""
    if cfg.linear_init == "auto":
        import dataclasses

        cfg = dataclasses.replace(cfg, linear_init="zero")
    set_seed(seed)
    return MCIHN(cfg, dims).eval()


@torch.no_grad()
def collect(model: MCIHN, tensors: dict, fields=("S",), batch_size: int = 256, reconstruct: bool = False) -> dict:
    """Run ``model`` in eval mode over ``tensors`` and gather the requested outputs as NumPy arrays.

    ``fields``: names of :class:`MCIHNOutput` fields: dict fields give {key: (N, ...)} (for instance
    "S" -> {"text": (N, L, d)}, "alpha" -> {"vision": (N, L, L)}, "ffm_attention" -> {"v-ta": (N, h, L, L)}),
    "pred" gives (N,). The labels are always returned as "label" (N,).
    """
    model.eval()
    parts: dict = {f: ({} if f in DICT_FIELDS else []) for f in fields}
    for batch in iterate_batches(tensors, batch_size):
        out = model(batch, reconstruct=reconstruct or "X_hat" in fields)
        for f in fields:
            value = getattr(out, f)
            if f in DICT_FIELDS:
                for k, v in value.items():
                    parts[f].setdefault(k, []).append(v.float().cpu().numpy())
            else:
                parts[f].append(value.float().cpu().numpy().reshape(len(batch["label"]), -1).squeeze(-1))
    res = {f: ({k: np.concatenate(v) for k, v in p.items()} if isinstance(p, dict) else np.concatenate(p))
           for f, p in parts.items()}
    res["label"] = tensors["label"].cpu().numpy()
    return res


def mean_predictor_mae(data: MultimodalData, split: str = "valid") -> float:
    """MAE of always predicting the training split's mean label: the floor any model must beat."""
    return float(np.abs(data[split].labels - data["train"].labels.mean()).mean())


# ----------------------------------------------------------------------------- the prior N(0, I)
def normal_qq(values, n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """Quantile-quantile pairs of ``values`` against N(0, 1): (theoretical, empirical), n_points each.

    The points lie on the diagonal exactly when the values are standard normal."""
    from scipy.stats import norm

    probs = (np.arange(n_points) + 0.5) / n_points
    return norm.ppf(probs), np.quantile(np.asarray(values, float).ravel(), probs)


def prior_report(codes, max_values: int = 200_000, seed: int = 0) -> dict:
    """How far latent vectors are from the prior N(0, I). ``codes`` (..., d): every row is one vector.

    Returns mean and std of all coordinates (prior: 0 and 1), the Kolmogorov-Smirnov distance of the
    coordinates to N(0, 1) (0 = identical distributions, 1 = disjoint), the mean squared norm divided by
    d (prior: 1; it is chi-squared with d degrees of freedom over d), and the mean absolute correlation
    between two coordinates (prior: 0, up to sampling noise).
    """
    from scipy.stats import kstest

    z = np.asarray(codes, float).reshape(-1, np.shape(codes)[-1])  # (n, d)
    flat = z.ravel()
    if flat.size > max_values:
        flat = np.random.default_rng(seed).choice(flat, max_values, replace=False)
    corr = np.corrcoef(z, rowvar=False) if len(z) > 2 else np.eye(z.shape[1])
    off = corr[~np.eye(len(corr), dtype=bool)]
    return {"mean": float(z.mean()), "std": float(z.std()), "ks": float(kstest(flat, "norm").statistic),
            "norm2_over_d": float((z ** 2).sum(1).mean() / z.shape[1]),
            "mean_abs_corr": float(np.nanmean(np.abs(off))) if off.size else 0.0}


@torch.no_grad()
def aae_report(model: MCIHN, tensors: dict, seed: int = 0) -> dict:
    """Per modality: the reconstruction loss (Eq. 4) and the discriminator's accuracy at telling the
    latent vectors from prior samples (Eq. 5; 0.5 = it cannot tell them apart). AAE models only."""
    model.eval()
    S = model.encode(tensors)
    g = torch.Generator(device="cpu").manual_seed(seed)
    out = {}
    for m in model.modalities:
        aae = model.aae[m]
        if aae.decoder is None:
            raise ValueError("aae_report needs a model with adversarial autoencoders (use_aae=True)")
        rec = reconstruction_loss(tensors[m], aae.decoder(S[m]), tensors.get(m + "_mask")).item()
        fake = S[m].reshape(-1, S[m].shape[-1])  # (B*L, d)
        real = torch.randn(fake.shape, generator=g).to(fake.device)
        correct = (aae.discriminator(real) > 0).float().sum() + (aae.discriminator(fake) <= 0).float().sum()
        out[m] = {"reconstruction": rec, "disc_accuracy": (correct / (2 * len(fake))).item()}
    return out


def latent_summary(model: MCIHN, tensors: dict) -> dict:
    """:func:`prior_report` of each modality's codes merged with :func:`aae_report`: {m: {...}}."""
    codes = collect(model, tensors)["S"]
    aae = aae_report(model, tensors)
    return {m: {**prior_report(codes[m]), **aae[m]} for m in model.modalities}


def linear_probe(train_x, train_y, test_x, test_y) -> float:
    """R^2 on (test_x, test_y) of a ridge regression fitted on (train_x, train_y) (rows = samples,
    regularisation chosen by cross-validation): how linearly readable a label is from features.
    0 = no better than the training mean, 1 = perfect."""
    from sklearn.linear_model import RidgeCV

    fit = RidgeCV(alphas=np.logspace(-3, 3, 13)).fit(np.asarray(train_x).reshape(len(train_x), -1), train_y)
    return float(fit.score(np.asarray(test_x).reshape(len(test_x), -1), test_y))


# ----------------------------------------------------------------------------- gate and attention
def _row_entropy(p: np.ndarray) -> np.ndarray:
    """Entropy of each row of p (..., L) (rows sum to 1), in nats."""
    return -(p * np.log(np.clip(p, 1e-12, None))).sum(-1)


def position_similarity(codes) -> float:
    """Mean cosine similarity between two different positions of the same code, codes (N, L, d).

    1 means the L positions are copies of each other: an attention over them can then only average,
    whatever its weights. Independent random positions give about 0."""
    z = np.asarray(codes, float)
    z = z / np.clip(np.linalg.norm(z, axis=-1, keepdims=True), 1e-12, None)
    sim = np.einsum("nid,njd->nij", z, z)  # (N, L, L)
    L = sim.shape[1]
    return float(sim[:, ~np.eye(L, dtype=bool)].mean()) if L > 1 else 1.0


def attention_report(outputs: dict) -> dict:
    """Checks and summaries of the CGMM attention alpha (Eq. 7), the gates G (Eq. 10) and the fusion
    attention (Eq. 15), from :func:`collect` with fields ("alpha", "G", "ffm_attention").

    For each attention map: the largest deviation of a row sum from 1, and the mean row entropy divided
    by log L (1 = uniform attention, 0 = each query looks at one position). For each gate: the share of
    exactly-zero entries (ReLU closed), the mean activation and the minimum (must be >= 0).
    """
    rep: dict = {"alpha": {}, "ffm": {}, "gate": {}}
    for name, key in (("alpha", "alpha"), ("ffm", "ffm_attention")):
        for k, a in outputs.get(key, {}).items():
            L = a.shape[-1]
            rep[name][k] = {"row_sum_error": float(np.abs(a.sum(-1) - 1).max()),
                            "entropy_ratio": float(_row_entropy(a).mean() / math.log(L)) if L > 1 else 0.0}
    for k, g in outputs.get("G", {}).items():
        rep["gate"][k] = {"zero_share": float((g == 0).mean()), "mean": float(g.mean()), "min": float(g.min())}
    return rep


# ----------------------------------------------------------------------------- MMD alignment
@torch.no_grad()
def alignment_samples(model: MCIHN, tensors: dict, space: str = "xi") -> dict:
    """The two samples each MMD term compares (Eq. 12), over the whole of ``tensors`` at once.

    Returns {"v-ta": (core (N', d), pair (N', d)), ...}: the core modality's code S^m and the pair feature
    F^{o1 o2} of the two others, as utterance vectors (mean over L) or tokens, as the model's
    ``mmd_samples`` says. ``space="xi"`` applies the shared layer xi (what L_Adp sees); ``"raw"`` does not.
    Three-modality models with the gate only.
    """
    model.eval()
    if model.mmd is None or len(model.modalities) != 3:
        raise ValueError("alignment_samples needs the three-modality model with the cross-modal gate")
    out = model(tensors)
    how = model.mmd.samples
    f = (lambda t: model.mmd.xi(as_samples(t, how))) if space == "xi" else (lambda t: as_samples(t, how))  # noqa: E731
    res = {}
    for m in paper_order(model.modalities):
        o1, o2 = others_of(m, model.modalities)
        key = pair_key(o1, o2)
        res[f"{LETTER[m]}-{key}"] = (f(out.S[m]).cpu().numpy(), f(out.F[key]).cpu().numpy())
    return res


def mmd_report(samples: dict, multipliers=(0.25, 0.5, 1.0, 2.0, 4.0)) -> dict:
    """MMD^2 (the package's estimator, :func:`mcihn.model.mmd.mmd2`) of each (core, pair) sample pair."""
    return {k: float(mmd2(torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64),
                          multipliers)) for k, (x, y) in samples.items()}


def mmd_probe(tensors: dict, every: int = 1):
    """An ``on_epoch`` callback for :meth:`mcihn.training.trainer.Trainer.fit`: adds ``record["mmd"]`` with the MMD^2
    terms on ``tensors`` (usually the validation split) after the shared layer xi ("xi") and without it
    ("raw"), and the singular values of xi's weight ("xi_singular_values"), every ``every`` epochs."""
    def probe(trainer, record):
        if record["epoch"] % every:
            return
        model = trainer.model
        batch = {k: v.to(trainer.device) for k, v in tensors.items()}
        record["mmd"] = {"xi": mmd_report(alignment_samples(model, batch, "xi"), model.mmd.multipliers),
                         "raw": mmd_report(alignment_samples(model, batch, "raw"), model.mmd.multipliers),
                         "xi_singular_values": torch.linalg.svdvals(model.mmd.xi.weight.detach().float()).cpu().tolist()}
    return probe


def mmd_toy(shifts, n: int = 200, dim: int = 2, gammas=(1.0, 4.0), repeats: int = 20, seed: int = 0) -> dict:
    """MMD^2 between P = N(0, I) and Q = N(shift * e_1, I) in ``dim`` dimensions: estimates against the exact value.

    For each shift, ``repeats`` pairs of samples (n points each) are drawn; both estimators of
    :func:`mcihn.model.mmd.gaussian_mmd2` (biased V, unbiased U) are computed with the fixed kernel ``gammas``.
    Returns arrays over the shifts: "exact" (population MMD^2), "exact_biased" (expected V estimate),
    "v_mean", "v_std", "u_mean", "u_std".
    """
    g = torch.Generator().manual_seed(seed)
    res = {k: [] for k in ("exact", "exact_biased", "v_mean", "v_std", "u_mean", "u_std")}
    for shift in shifts:
        mu = np.zeros(dim)
        mu[0] = shift
        v, u = [], []
        for _ in range(repeats):
            x = torch.randn(n, dim, generator=g, dtype=torch.float64)
            y = torch.randn(n, dim, generator=g, dtype=torch.float64) + torch.as_tensor(mu)
            v.append(float(gaussian_mmd2(x, y, gammas)))
            u.append(float(gaussian_mmd2(x, y, gammas, unbiased=True)))
        res["exact"].append(gaussian_mmd2_analytic(np.zeros(dim), 1.0, mu, 1.0, gammas))
        res["exact_biased"].append(gaussian_mmd2_analytic(np.zeros(dim), 1.0, mu, 1.0, gammas, n=n, m=n))
        res["v_mean"].append(np.mean(v)), res["v_std"].append(np.std(v))
        res["u_mean"].append(np.mean(u)), res["u_std"].append(np.std(u))
    return {k: np.asarray(v) for k, v in res.items()}


# ----------------------------------------------------------------------------- predictions
def class_confusion(pred, label, dataset: str) -> tuple[np.ndarray, list[str]]:
    """Confusion counts (true class x predicted class) of the finest classes the paper reports:
    MOSI's 7 classes (clip to [-3, 3] and round, as Acc-7) or SIMS's 5 (the Acc-5 bins).
    Returns (counts (C, C), class names)."""
    from ..metrics import _SIMS_EDGES, _sims_class  # the metric's own class boundaries

    p, y = np.asarray(pred).ravel(), np.asarray(label).ravel()
    if dataset == "sims":
        edges = _SIMS_EDGES["Mult_acc_5"]
        cp, cy = _sims_class(np.clip(p, -1, 1), edges), _sims_class(np.clip(y, -1, 1), edges)
        names = ["negative", "weakly neg.", "neutral", "weakly pos.", "positive"]
    else:
        cp, cy = np.round(np.clip(p, -3, 3)).astype(int) + 3, np.round(np.clip(y, -3, 3)).astype(int) + 3
        names = [str(c) for c in range(-3, 4)]
    counts = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(counts, (cy, cp), 1)
    return counts, names


# ----------------------------------------------------------------------------- projections
def pca_2d(fit, *others) -> tuple:
    """The first two principal axes of the rows of ``fit`` (n, k), centred on its mean, and every array of
    ``others`` (m, k) projected on the same axes: (fit (n, 2), *others (m, 2)). A linear map, so distances
    in the picture never exaggerate those of the codes (unlike UMAP, which places an outlying group
    wherever its neighbour graph puts it)."""
    x = np.asarray(fit, np.float64).reshape(len(fit), -1)
    centre = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - centre, full_matrices=False)
    axes = vt[:2].T  # (k, 2)
    axes = axes * np.where(axes[np.abs(axes).argmax(axis=0), [0, 1]] < 0, -1.0, 1.0)  # a fixed sign per axis
    return tuple((np.asarray(a, np.float64).reshape(len(a), -1) - centre) @ axes for a in (x, *others))


def umap_2d(x, n_neighbors: int = 15, seed: int = 0) -> np.ndarray:
    """A 2-D UMAP embedding of the rows of x (n, k), seeded (single-threaded, reproducible).

    The first call in a process compiles UMAP's numba code (about 10-15 s on a laptop CPU); later
    calls on a few hundred points take well under a second.

    numba's OpenMP layer resets the process-wide OpenMP thread count, which torch shares; the torch
    setting is restored afterwards (a QUICK run pinned to one thread would otherwise train on all cores
    again, which on a busy machine was 15x slower).
    """
    import umap  # imported here: only the notebooks need it

    x = np.asarray(x, np.float32).reshape(len(x), -1)
    threads = torch.get_num_threads()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "n_jobs overridden by random_state", numba deprecations
            reducer = umap.UMAP(n_neighbors=min(n_neighbors, len(x) - 1), random_state=seed, n_components=2)
            return reducer.fit_transform(x)
    finally:
        torch.set_num_threads(threads)


# ----------------------------------------------------------------------------- tuning
def trials_frame(study) -> "pd.DataFrame":
    """One row per finished trial of an Optuna study: "trial", "value" (its objective, the validation MAE),
    "best so far" (the running minimum) and one column per searched parameter."""
    import pandas as pd

    rows = [{"trial": t.number, "value": t.value, **t.params} for t in study.trials
            if t.value is not None and math.isfinite(t.value)]
    df = pd.DataFrame(rows).sort_values("trial").reset_index(drop=True)
    df.insert(2, "best so far", df["value"].cummin())
    return df


def param_effects(df, params) -> dict:
    """For each parameter, how much the trial value moves with it: the Spearman rank correlation of the
    parameter with the value (sign: larger parameter, larger MAE) and the spread of the value between the
    trials with the parameter's lowest and highest values (the mean over the lower and upper half).
    With a handful of trials this is a hint, not a measurement."""
    from scipy.stats import spearmanr

    out = {}
    for p in params:
        x, y = df[p].astype(float).to_numpy(), df["value"].to_numpy()
        if len(np.unique(x)) < 2:
            out[p] = {"spearman": 0.0, "low half": float(y.mean()), "high half": float(y.mean())}
            continue
        order = np.argsort(x, kind="stable")
        half = len(x) // 2
        out[p] = {"spearman": float(spearmanr(x, y).statistic),
                  "low half": float(y[order[:half]].mean()), "high half": float(y[order[-half:]].mean())}
    return out


#: The rule of :func:`spread_verdict`, in words (the notebooks print it with their verdicts).
SPREAD_RULE = ("a gap counts when the two means differ by more than the sum of their seed standard deviations, "
               "i.e. when the bars mean ± std over seeds do not overlap")


def spread_verdict(a, b, lower_is_better: bool = True, name: str = "the value", labels=("a", "b")) -> dict:
    """Is the difference between two settings larger than the seed spread? One rule for every notebook.

    ``a`` and ``b``: one value per seed of each setting (e.g. test MAE over the seeds). The rule
    (:data:`SPREAD_RULE`): the gap counts when ``|mean(a) - mean(b)| > std(a) + std(b)``, the standard
    deviations over seeds being the population ones (ddof=0, as MMSA and the tables' ``±``), so that it
    says what the figures' error bars show: the bars mean ± std do not overlap. With one seed per side
    the spread is 0 and any gap exceeds it: the sentence says so.

    Returns {"difference": mean(a) - mean(b), "spread": std(a) + std(b), "exceeds_spread": bool,
    "better": the label of the better setting when the gap counts (``lower_is_better`` decides) else None,
    "rule": SPREAD_RULE, "sentence": one line for the notebook}.
    """
    va, vb = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if va.size == 0 or vb.size == 0:
        raise ValueError("spread_verdict: each side needs at least one value (one per seed)")
    if not (np.isfinite(va).all() and np.isfinite(vb).all()):
        raise ValueError("spread_verdict: the values must be finite numbers")
    diff = float(va.mean() - vb.mean())
    spread = float(va.std() + vb.std())
    exceeds = abs(diff) > spread
    la, lb = labels
    better = (la if (diff < 0) == lower_is_better else lb) if exceeds else None
    seeds = f"{va.size} and {vb.size} seeds" if va.size != vb.size else f"{va.size} seed{'s' * (va.size > 1)} each"
    head = f"{name}: {la} minus {lb} = {diff:+.4f}; seed spread (std {la} + std {lb}, {seeds}) {spread:.4f}: "
    if exceeds:
        tail = f"the gap exceeds the spread ({better} is better)"
        if min(va.size, vb.size) < 2:
            tail += ", but one seed has no spread to compare with"
    else:
        tail = "within the seed spread, no conclusion"
    return {"difference": diff, "spread": spread, "exceeds_spread": bool(exceeds), "better": better,
            "rule": SPREAD_RULE, "sentence": head + tail + "."}
