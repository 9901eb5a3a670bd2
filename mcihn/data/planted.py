"""Planted synthetic sets: MOSI-shaped data whose difficulty is set by knobs, each with its Bayes floor.

The embedded set of ``synthetic.py`` rewards any deep model (a ridge regression on pooled features
reaches 0.9 MAE there, deep models 0.3), so it cannot choose between defaults. The sets here look
like real sentiment data in the ways that matter for that choice, and each comes with the test MAE an
oracle would reach (``meta["bayes_floor"]``), so a result reads as "1.3x the floor", not as a bare MAE.

Every clip i has one hidden evidence score per modality, s_t, s_a, s_v ~ N(0, 1) (independent), and its
label is

    r_i = f(s_i) + tau * eta_i,   eta_i ~ N(0, 1)              (label noise: annotators disagree)
    y_i = 0.2 * round(clip(r_i, -3, 3) / 0.2)                  (MOSI's [-3, 3], averaged-annotator steps)

with f set by the kind (:data:`PLANTED_KINDS`, weights in :data:`KIND_SPECS`):

    "linear"        f = 1.1 s_t + 0.3 s_a + 0.25 s_v,       tau 0.55; text clean, audio and vision weak
    "interaction"   f = 0.8 s_t + 0.3 s_a + 0.9 s_t s_v,    tau 0.5;  s_v enters only through the product:
                    vision alone says nothing, and no linear model of pooled features can represent s_t s_v
    "window"        f = 0.9 s_t + 0.55 s_a + 0.55 s_v,      tau 0.5;  each modality's evidence sits in a
                    window of 3-6 steps only (see below): pooling over the whole clip dilutes it

Modality m of clip i is a sequence of its own length T_m (each modality different: unaligned, like
MMSA's ``unaligned_50.pkl``) whose first ``len_i`` steps are real (a random length per clip and
modality) and the rest zero padding. In a latent space, the real steps are

    z[t] = s_m * env[t] * p_m + o_speaker + n_i * q_m + env[t] * c_m + eps_t,   eps_t ~ N(0, I)   # (D_m,)

* p_m: the signal direction, |p_m| = the per-step amplitude rho_m (:data:`KIND_SPECS`, "amplitude");
* env (T_m,): 1 at every real step ("linear", "interaction"), or 1 inside one window of 3-6 steps at a
  random place within the real steps and 0 elsewhere ("window");
* o_speaker: a per-speaker offset (speakers have ~12 clips each, disjoint across splits, as in MOSI's
  speaker-independent splits; the speaker is the part of the id before ``$_$``), and n_i q_m a per-clip
  nuisance: neither affects the label, both orthogonal to p_m;
* c_m: a salience cue inside the window ("window" kind only; zero otherwise), orthogonal to p_m, the
  way an expression or a stressed word stands out: a learner can find the window from it, pooling cannot;
* the features are then x = z * scale + offset per feature (un-normalised, like COVAREP/OpenFace), and a
  few feature dimensions are constant ("dead", :data:`DEAD_DIMS`: real audio/vision features have them).

The Bayes floor. The oracle knows the generator's parameters (p_m, the envelope and window of every
clip, scale, offset, which dimensions are dead, the weights of f and tau), everything except the
hidden draws s, o, n, eps, eta. Projecting the de-scaled features on p_m gives, per real step,
``u[t] = p_m . z[t] / |p_m| = s_m rho_m env[t] + N(0, 1)`` (the nuisances are orthogonal to p_m), so the
posterior of s_m given the clip's features is exactly Gaussian:

    precision = 1 + rho_m^2 sum_t env[t]^2,     mean = rho_m sum_t env[t] u[t] / precision

and independent across modalities. For each clip we draw :data:`FLOOR_SAMPLES` samples of s from the
posterior, integrate the label noise exactly (the probability of each of the 31 label values given s is
a difference of normal CDFs), average to the clip's posterior distribution of y, take its median as the
prediction and its expected absolute deviation from that median as the clip's expected MAE. The floor
of a split is the mean over its clips: the expected test MAE of the best possible predictor, exact up to
Monte Carlo error in s (small: the label noise, which dominates, is integrated exactly). Because the
oracle knows the generator, the floor is a lower bound for any learner. About 85% of it is label noise
(the floor of an oracle that knew s exactly is 0.43 / 0.38 / 0.39 against 0.52 / 0.47 / 0.46), so a learner
can come near it: with 1000 training clips a ridge regression on pooled features reaches ~1.05x the floor
on "linear" (~1.2x with 300) but ~1.65x on the other two, where an MLP on pooled features gets ~1.2x on
"interaction"; on "window" a learner must find the windows (the cue shows where) to come near it.
``meta["oracle_mae"]`` is the realised MAE of the oracle's predictions on the drawn labels (it scatters
around the floor by sampling error, ~0.4 / sqrt(N)).
"""
from __future__ import annotations

import numpy as np

from .synthetic import put_modality

#: kind -> what it tests (the formulas are in the module docstring).
PLANTED_KINDS = {
    "linear": "the label is mostly linear in text's evidence, audio and vision weak and noisy: "
              "a ridge regression on time-pooled features is hard to beat",
    "interaction": "a linear part plus a text x vision product that no single modality shows and no linear "
                   "model of pooled features can represent: fusion must model the interaction",
    "window": "each modality's evidence sits in a short random window (3-6 steps) under heavy per-step noise: "
              "pooling over the whole clip dilutes it, a learner must find the window",
}
#: The knobs of each kind. weights: linear part of f; interaction: weight of s_t * s_v; label_noise: tau;
#: amplitude: rho_m, the signal's size per real step against unit per-step noise; window: (min, max) length
#: of the evidence window or None; cue: size of the salience cue inside the window.
KIND_SPECS = {
    "linear": {"weights": {"text": 1.1, "audio": 0.3, "vision": 0.25}, "interaction": 0.0, "label_noise": 0.55,
               "amplitude": {"text": 1.0, "audio": 0.25, "vision": 0.25}, "window": None, "cue": 0.0},
    "interaction": {"weights": {"text": 0.8, "audio": 0.3, "vision": 0.0}, "interaction": 0.9, "label_noise": 0.5,
                    "amplitude": {"text": 1.0, "audio": 0.4, "vision": 1.0}, "window": None, "cue": 0.0},
    "window": {"weights": {"text": 0.9, "audio": 0.55, "vision": 0.55}, "interaction": 0.0, "label_noise": 0.5,
               "amplitude": {"text": 1.8, "audio": 1.8, "vision": 1.8}, "window": (3, 6), "cue": 3.0},
}
#: Default (T, D) per modality: small for CPU, every T and every D different so swapped axes fail loudly.
PLANTED_DIMS = {"text": (32, 48), "audio": (40, 24), "vision": (24, 32)}
#: Constant ("dead") feature dimensions per modality (the last ones; the first of them is exactly 0).
DEAD_DIMS = {"text": 0, "audio": 3, "vision": 2}
LABEL_BOUND = 3.0
LABEL_STEP = 0.2
#: Posterior samples of the evidence per clip for the floor.
FLOOR_SAMPLES = 512
#: Mean number of clips per speaker, and the size of the speaker offset and of the clip nuisance.
CLIPS_PER_SPEAKER = 12
SPEAKER_SCALE, NUISANCE_SCALE = 0.5, 1.5
_MODALITIES = ("text", "audio", "vision")
_GRID = np.round(np.arange(-LABEL_BOUND, LABEL_BOUND + LABEL_STEP / 2, LABEL_STEP), 10)  # (31,) label values
_EDGES = (_GRID[:-1] + _GRID[1:]) / 2  # (30,) y <= _GRID[j] iff r < _EDGES[j]


def _norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, numpy only (Abramowitz & Stegun 7.1.26 for erf: absolute error < 1.5e-7)."""
    a = np.abs(x) / np.sqrt(2.0)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    erf = 1.0 - poly * np.exp(-a * a)
    return 0.5 * (1.0 + np.sign(x) * erf)


def _label_function(spec: dict, s: dict) -> np.ndarray:
    """f(s): s is modality -> array (any shape, all the same); returns that shape."""
    f = sum(spec["weights"][m] * s[m] for m in _MODALITIES)
    return f + spec["interaction"] * s["text"] * s["vision"]


def _to_label(r: np.ndarray) -> np.ndarray:
    """Clip to [-3, 3] and round to the 0.2 grid."""
    return np.round(np.clip(r, -LABEL_BOUND, LABEL_BOUND) / LABEL_STEP) * LABEL_STEP


def _orthonormal(rng, D_live: int, k: int) -> np.ndarray:
    """(k, D_live): k random orthonormal rows."""
    q, _ = np.linalg.qr(rng.normal(size=(D_live, k)))
    return q.T


def _modality_params(rng, T: int, D: int, n_dead: int, amplitude: float) -> dict:
    """Fixed per-dataset parameters of one modality (the same 'meaning' of each feature in every split)."""
    live = np.arange(D) < D - n_dead  # (D,) bool
    basis = np.zeros((3, D))
    basis[:, live] = _orthonormal(rng, int(live.sum()), 3)  # rows: signal, nuisance, cue directions
    scale = np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=D))  # (D,) per-feature scale
    offset = rng.normal(scale=2.0, size=D)  # (D,)
    dead_value = offset.copy()  # (D,) value of the dead dimensions at real steps
    dead_value[D - n_dead:D - n_dead + 1] = 0.0  # the first dead dimension is exactly 0, the others constant
    return {"p": basis[0] * amplitude, "q": basis[1], "c": basis[2], "amplitude": float(amplitude),
            "live": live, "scale": scale, "offset": offset, "dead_value": dead_value, "T": T, "D": D}


def _speaker_offsets(rng, n_speakers: int, par: dict) -> np.ndarray:
    """(n_speakers, D) offsets on the live dimensions, orthogonal to the signal direction."""
    o = rng.normal(scale=SPEAKER_SCALE, size=(n_speakers, par["D"])) * par["live"]
    u = par["p"] / np.linalg.norm(par["p"])
    return o - np.outer(o @ u, u)


def _envelope(rng, lengths: np.ndarray, T: int, window) -> np.ndarray:
    """(N, T) float: 1 at the steps carrying evidence (all real steps, or one window of them), else 0."""
    t = np.arange(T)[None, :]
    if window is None:
        return (t < lengths[:, None]).astype(np.float64)
    w = np.minimum(rng.integers(window[0], window[1] + 1, size=len(lengths)), lengths)  # (N,)
    start = np.floor(rng.uniform(size=len(lengths)) * (lengths - w + 1)).astype(np.int64)  # (N,)
    return ((t >= start[:, None]) & (t < (start + w)[:, None])).astype(np.float64)


def _features(rng, s, env, lengths, speaker, par, spec) -> np.ndarray:
    """One modality's features (N, T, D) float32, zero beyond each length."""
    N, T = env.shape
    D = par["D"]
    offsets = _speaker_offsets(rng, int(speaker.max()) + 1, par)  # (S, D)
    nuisance = rng.normal(scale=NUISANCE_SCALE, size=N)  # (N,)
    z = (s[:, None, None] * env[..., None] * par["p"]  # (N, T, D) signal
         + offsets[speaker][:, None, :]  # per-speaker offset
         + nuisance[:, None, None] * par["q"]  # per-clip nuisance
         + spec["cue"] * env[..., None] * par["c"]  # salience cue of the window
         + rng.normal(size=(N, T, D)) * par["live"])  # per-step noise
    x = z * par["scale"] + par["offset"]  # un-normalised
    x[:, :, ~par["live"]] = par["dead_value"][~par["live"]]  # dead dimensions: constant
    x[np.arange(T)[None, :] >= lengths[:, None]] = 0.0  # MMSA pads with zeros
    return x.astype(np.float32)


def posterior(x: np.ndarray, env: np.ndarray, par: dict) -> tuple[np.ndarray, np.ndarray]:
    """The oracle's posterior N(mean, sd^2) of a modality's evidence s_m given its features.

    x (N, T, D) features as stored (float32), env (N, T) the envelope (0 at padding), par the
    modality's parameters. Returns mean (N,), sd (N,).
    """
    live = par["live"]
    z = (x[:, :, live].astype(np.float64) - par["offset"][live]) / par["scale"][live]  # (N, T, D_live)
    rho = par["amplitude"]
    u = z @ (par["p"][live] / rho)  # (N, T): s rho env + N(0, 1) at real steps
    precision = 1.0 + rho ** 2 * (env ** 2).sum(axis=1)  # (N,)
    mean = rho * (env * u).sum(axis=1) / precision
    return mean, 1.0 / np.sqrt(precision)


def oracle(mean: dict, sd: dict, spec: dict, rng, samples: int = FLOOR_SAMPLES, chunk: int = 128):
    """Posterior of each clip's label -> (median prediction (N,), expected |y - median| (N,)).

    mean, sd: modality -> (N,), the Gaussian posterior of each evidence score. The label noise is
    integrated exactly; the evidence by ``samples`` posterior draws per clip.
    """
    N = len(mean["text"])
    med, err = np.empty(N), np.empty(N)
    tau = spec["label_noise"]
    for lo in range(0, N, chunk):
        sl = slice(lo, min(N, lo + chunk))
        s = {m: mean[m][sl, None] + sd[m][sl, None] * rng.normal(size=(sl.stop - sl.start, samples))
             for m in _MODALITIES}  # m -> (n, K)
        f = _label_function(spec, s)  # (n, K)
        cdf = _norm_cdf((_EDGES[None, None, :] - f[..., None]) / tau).mean(axis=1)  # (n, 30): P(y <= grid[j])
        cdf = np.concatenate([cdf, np.ones((len(cdf), 1))], axis=1)  # (n, 31)
        prob = np.diff(cdf, axis=1, prepend=0.0)  # (n, 31)
        j = np.argmax(cdf >= 0.5, axis=1)  # (n,) first grid value with P(y <= g) >= 1/2: a median
        med[sl] = _GRID[j]
        err[sl] = (prob * np.abs(_GRID[None, :] - _GRID[j][:, None])).sum(axis=1)
    return med, err


def default_sizes(n_train: int, n_valid: int | None = None, n_test: int | None = None) -> dict:
    """Split sizes: valid max(200, n_train // 5) and test max(400, n_train // 2) unless given."""
    n_valid = max(200, n_train // 5) if n_valid is None else n_valid
    n_test = max(400, n_train // 2) if n_test is None else n_test
    sizes = {"train": int(n_train), "valid": int(n_valid), "test": int(n_test)}
    if min(sizes.values()) < 1:
        raise ValueError(f"every split needs at least one clip, got {sizes}")
    return sizes


def make_planted(kind: str, n_train: int = 1000, n_valid: int | None = None, n_test: int | None = None,
                 seed: int = 0, dims: dict | None = None, return_hidden: bool = False):
    """Build a planted set as a dict with MMSA's pickle structure: {'train'|'valid'|'test': {...}, 'meta': {...}}.

    kind: one of :data:`PLANTED_KINDS`. n_valid / n_test: default :func:`default_sizes`. dims: modality ->
    (T, D), default :data:`PLANTED_DIMS` (T >= 8 and D >= 3 + dead dimensions + 1). Same arguments and seed ->
    identical arrays. ``meta["bayes_floor"]`` = {"valid": float, "test": float}, the expected MAE of the
    oracle (module docstring); ``meta["oracle_mae"]`` its realised MAE on these labels.

    return_hidden: also return a second dict of what the oracle knows and what it does not:
    ``{"spec", "params": m -> parameters, split: {"evidence": m -> (N,), "envelope": m -> (N, T),
    "label_noise": (N,), "raw": (N,) r before clipping, "posterior_mean"/"posterior_sd": m -> (N,),
    "oracle_pred": (N,), "expected_error": (N,)}}``.
    """
    if kind not in KIND_SPECS:
        raise ValueError(f"kind must be one of {sorted(KIND_SPECS)}, not {kind!r}")
    spec = KIND_SPECS[kind]
    sizes = default_sizes(n_train, n_valid, n_test)
    dims = {m: tuple(int(v) for v in dims[m]) for m in _MODALITIES} if dims else dict(PLANTED_DIMS)
    for m, (T, D) in dims.items():
        if T < 8 or D < DEAD_DIMS[m] + 4:
            raise ValueError(f"dims[{m!r}] = {(T, D)}: need T >= 8 and D >= {DEAD_DIMS[m] + 4}")
    rng = np.random.default_rng(seed)
    params = {m: _modality_params(rng, T, D, DEAD_DIMS[m], spec["amplitude"][m]) for m, (T, D) in dims.items()}
    floor_rng = np.random.default_rng([int(seed), 1])  # separate stream: the floor does not change the data
    out = {"meta": {"synthetic": True, "dataset": "mosi", "planted_kind": kind, "seed": int(seed),
                    "generator": "mcihn.data.planted.make_planted", "description": PLANTED_KINDS[kind],
                    "dims": {m: list(v) for m, v in dims.items()}, "splits": dict(sizes),
                    "spec": {"weights": dict(spec["weights"]), "interaction": spec["interaction"],
                             "label_noise": spec["label_noise"], "amplitude": dict(spec["amplitude"]),
                             "window": list(spec["window"]) if spec["window"] else None, "cue": spec["cue"],
                             "dead_dims": dict(DEAD_DIMS)},
                    "floor_samples": FLOOR_SAMPLES, "bayes_floor": {}, "oracle_mae": {}}}
    hidden = {"spec": spec, "params": params}  # what the oracle knows
    for split, n in sizes.items():
        s = {m: rng.normal(size=n) for m in _MODALITIES}  # hidden evidence, (N,) each
        eta = rng.normal(size=n)
        raw = _label_function(spec, s) + spec["label_noise"] * eta  # (N,)
        y = _to_label(raw)
        n_spk = max(1, int(round(n / CLIPS_PER_SPEAKER)))
        speaker = np.sort(rng.integers(0, n_spk, size=n))  # (N,) clips of a speaker are consecutive, as in MMSA
        d = {"id": [f"planted_{split}_spk{speaker[i]:04d}$_${i}" for i in range(n)],
             "raw_text": [f"planted {kind} clip {i} of split {split}" for i in range(n)],
             "regression_labels": y.astype(np.float32),
             "annotations": np.where(y > 0, "Positive", np.where(y < 0, "Negative", "Neutral")).tolist()}
        h = {"evidence": s, "label_noise": eta, "raw": raw, "speaker": speaker, "envelope": {}, "lengths": {},
             "posterior_mean": {}, "posterior_sd": {}}
        for m, (T, D) in dims.items():
            lengths = rng.integers(max(8, T // 3), T + 1, size=n)  # (N,) each modality its own lengths
            env = _envelope(rng, lengths, T, spec["window"])  # (N, T)
            x = _features(rng, s[m], env, lengths, speaker, params[m], spec)  # (N, T, D)
            put_modality(d, m, x, lengths, rng)
            h["envelope"][m], h["lengths"][m] = env, lengths
            h["posterior_mean"][m], h["posterior_sd"][m] = posterior(x, env, params[m])
        if split != "train":
            pred, err = oracle(h["posterior_mean"], h["posterior_sd"], spec, floor_rng)
            h["oracle_pred"], h["expected_error"] = pred, err
            out["meta"]["bayes_floor"][split] = float(err.mean())
            out["meta"]["oracle_mae"][split] = float(np.abs(pred - y).mean())
        out[split] = d
        hidden[split] = h
    return (out, hidden) if return_hidden else out


def planted_data(kind: str, **kwargs):
    """The planted set as a validated :class:`mcihn.data.mmsa.MultimodalData` (in memory); ``data.meta``
    carries ``bayes_floor`` and ``planted_kind``. Keyword arguments: those of :func:`make_planted`."""
    from .mmsa import from_mmsa_dict

    if kwargs.get("return_hidden"):
        raise ValueError("planted_data returns the data only; call make_planted(..., return_hidden=True)")
    obj = make_planted(kind, **kwargs)
    seed = obj["meta"]["seed"]
    data = from_mmsa_dict(obj, source=f"PLANTED SYNTHETIC '{kind}' data (seed {seed}), not a real dataset",
                          dataset="mosi")
    data.synthetic = True
    data.meta = dict(obj["meta"])
    return data


def bayes_floor(data, split: str = "test") -> float:
    """The Bayes floor of ``split`` of a planted set: a :class:`MultimodalData` or :func:`make_planted`'s dict."""
    meta = data.get("meta", {}) if isinstance(data, dict) else getattr(data, "meta", {})
    if "bayes_floor" not in (meta or {}):
        raise ValueError("not a planted set: its meta has no 'bayes_floor'")
    if split not in meta["bayes_floor"]:
        raise KeyError(f"no floor for split {split!r}; have {sorted(meta['bayes_floor'])}")
    return float(meta["bayes_floor"][split])
