"""The embedded synthetic dataset, in the MMSA pickle structure, shaped like real sentiment data.

It is *synthetic*: every consumer prints so. It exists so that the tests, the quick
runs, the notebooks and the default of ``python -m mcihn train`` have data with the exact layout
of MMSA's ``unaligned_50.pkl`` (MOSI- or MOSEI-shaped: labels in [-3, 3]) or of CH-SIMS
(SIMS-shaped: labels in [-1, 1] plus unimodal labels T/A/V).

It rewards what real sentiment data reward (CMU-MOSI: text carries most of the label, linearly; audio
and vision are weak, noisy and shift between speakers; a little of the label is cross-modal). Each clip i
has three hidden "evidence" scores u_t, u_a, u_v ~ N(0, 1), one per modality, and its sentiment is

    raw_i = 1.0 u_t + 0.3 u_a + 0.35 u_v + 0.5 u_t u_v + 0.4 eta_i     (eta_i ~ N(0, 1): annotators disagree)

scaled, clipped and quantised to 0.2 steps (:data:`WEIGHTS`, :data:`INTERACTION`, :data:`LABEL_NOISE`). So
(1) a ridge regression on time-pooled text features is a strong baseline, as on real data; (2) audio and
vision add a little each, through weak and noisy features; (3) a part of the answer, u_t u_v, exists in no
single modality and no linear model of pooled features can represent it: fusion can still win, but by
a margin of the size seen on real data, not by a factor of three.

Clips belong to speakers (about 12 clips each, disjoint across splits, as in MOSI's speaker-independent
split; the speaker is the part of the id before ``$_$``). Modality m of clip i is a sequence of length
len_i <= T_m (the rest is zero padding, as in MMSA) whose valid frames are

    X[t] = a_m u_m * p_m * (1 + 0.5 sin(phase_i + t)) + o_speaker,m + n_i * q_m + noise * eps_t,   eps_t ~ N(0, I)

with fixed random directions p_m (signal) and q_m (a per-clip nuisance n_i that does not affect the
label), a per-modality signal amplitude a_m (:data:`AMPLITUDE`: text clear, audio faint), and a
per-speaker offset o (audio and vision only, :data:`SPEAKER_SHIFT`) that has a component along p_m: a
speaker who sounds cheerful whatever they say, so the weak modalities mislead on unseen speakers. Then a
per-feature scale and offset so that the raw features need normalising, like real BERT/COVAREP features,
and the last :data:`DEAD_DIMS` feature dimensions of audio and vision are constant (real OpenFace and
COVAREP features have such dimensions).
"""
from __future__ import annotations

import numpy as np

#: Split sizes of CMU-MOSI (Table 1 of the paper: 1284 / 229 / 686).
MOSI_SPLITS = {"train": 1284, "valid": 229, "test": 686}
SIMS_SPLITS = {"train": 1368, "valid": 456, "test": 457}
#: Split sizes of CMU-MOSEI in MMSA's distribution.
MOSEI_SPLITS = {"train": 16326, "valid": 1871, "test": 4659}
SPLIT_SIZES = {"mosi": MOSI_SPLITS, "mosei": MOSEI_SPLITS, "sims": SIMS_SPLITS}
#: Feature sizes (T, D) of MMSA's unaligned pickles (MMSA config_regression.json, datasetCommonParams:
#: seq_lens and feature_dims): MOSI / MOSEI unaligned_50.pkl, SIMS unaligned_39.pkl. ``dims="mmsa"``.
MMSA_DIMS = {"mosi": {"text": (50, 768), "audio": (375, 5), "vision": (500, 20)},
             "mosei": {"text": (50, 768), "audio": (500, 74), "vision": (375, 35)},
             "sims": {"text": (39, 768), "audio": (400, 33), "vision": (55, 709)}}
#: Upper end of the label range of each kind (the range is symmetric: mcihn.data.mmsa.LABEL_RANGE).
LABEL_BOUND = {"mosi": 3.0, "mosei": 3.0, "sims": 1.0}
#: Default feature sizes (T, D): small enough for CPU, all different so swapped axes fail loudly.
DEFAULT_DIMS = {"text": (24, 48), "audio": (40, 24), "vision": (16, 32)}
#: The paper's sizes (Sec. 4.3): CLIP 10x512, BERT 36x768, wav2vec2 128x512.
PAPER_DIMS = {"text": (36, 768), "audio": (128, 512), "vision": (10, 512)}

#: The label: linear weights of the evidence scores, the weight of u_t * u_v, and the annotator noise.
WEIGHTS = {"text": 1.0, "audio": 0.3, "vision": 0.35}
INTERACTION = 0.5
LABEL_NOISE = 0.4
#: Signal size per modality (times the per-feature direction of size 0.5): text clear, audio faint.
AMPLITUDE = {"text": 1.0, "audio": 0.25, "vision": 0.4}
#: Size of the per-speaker offset of the audio and vision features (a part of it along the signal direction).
SPEAKER_SHIFT = {"text": 0.0, "audio": 0.6, "vision": 0.4}
#: Constant feature dimensions at the end of each modality (only where D is large enough to keep 4 live).
DEAD_DIMS = {"text": 0, "audio": 2, "vision": 3}
#: Mean number of clips per speaker.
CLIPS_PER_SPEAKER = 12


def _sequences(rng, u, T, D, noise, directions, speaker, shift, n_dead):
    """u (N,) -> features (N, T, D) float32 and lengths (N,) int64, zero beyond each length."""
    N = len(u)
    p, q, scale, offset = directions
    lengths = rng.integers(max(1, T // 2), T + 1, size=N)  # variable lengths, as in real data
    t = np.arange(T)
    phase = rng.uniform(0, 2 * np.pi, size=(N, 1))
    envelope = 1.0 + 0.5 * np.sin(phase + t[None, :])  # (N, T)
    nuisance = rng.normal(size=(N, 1, 1))
    n_spk = int(speaker.max()) + 1
    spk = rng.normal(scale=shift, size=(n_spk, D)) + rng.normal(scale=shift, size=(n_spk, 1)) * p  # (S, D)
    x = (u[:, None, None] * envelope[..., None] * p  # (N, T, D) signal
         + spk[speaker][:, None, :]  # per-speaker offset (partly along p: a speaker's manner)
         + nuisance * q  # label-free per-clip nuisance
         + noise * rng.normal(size=(N, T, D)))
    x = x * scale + offset  # un-normalised, like real features
    if 0 < n_dead <= D - 4:
        x[:, :, D - n_dead:] = offset[D - n_dead:]  # dead (constant) feature dimensions
    x[t[None, :] >= lengths[:, None]] = 0.0  # MMSA pads with zeros
    return x.astype(np.float32), lengths.astype(np.int64)


def put_modality(split: dict, m: str, x: np.ndarray, lengths: np.ndarray, rng) -> None:
    """Store modality ``m``'s features (N, T, D) and lengths (N,) in an MMSA split dict: audio and vision
    lengths in ``<m>_lengths``; text lengths, as MMSA keeps them, in the mask row of ``text_bert`` (ids, mask,
    segments), with random token ids drawn from ``rng`` at the real steps."""
    split[m] = x
    if m == "text":
        n, T = x.shape[:2]
        mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float32)  # (N, T)
        ids = (rng.integers(1000, 30000, size=(n, T)) * mask).astype(np.float32)
        split["text_bert"] = np.stack([ids, mask, np.zeros_like(mask)], axis=1)  # (N, 3, T)
    else:
        split[f"{m}_lengths"] = lengths.tolist()


def make_synthetic(kind: str = "mosi", splits: dict | None = None, dims: dict | None = None,
                   noise: float = 1.5, seed: int = 0) -> dict:
    """Build a dict with MMSA's pickle structure: {'train'|'valid'|'test': {...}, 'meta': {...}}.

    kind: "mosi" or "mosei" (labels in [-3, 3]) or "sims" (labels in [-1, 1] and regression_labels_T/_A/_V).
    splits: split -> number of clips (default: the real dataset's split sizes, :data:`SPLIT_SIZES`).
    dims: modality -> (T, D) (default :data:`DEFAULT_DIMS`; :data:`PAPER_DIMS` for the paper's), or
        "mmsa" for the sizes of MMSA's pickle of that kind (:data:`MMSA_DIMS`; MOSEI at those sizes
        and split sizes is about 5.8 GB of float32, which is why it is not the default).
    Same arguments and seed -> identical arrays.
    """
    if kind not in SPLIT_SIZES:
        raise ValueError(f"kind must be one of {sorted(SPLIT_SIZES)}, not {kind!r}")
    splits = dict(splits or SPLIT_SIZES[kind])
    if isinstance(dims, str):
        if dims != "mmsa":
            raise ValueError(f"dims must be a dict of (T, D) or 'mmsa', not {dims!r}")
        dims = MMSA_DIMS[kind]
    if not (noise >= 0 and np.isfinite(noise)):
        raise ValueError(f"noise must be a finite number >= 0, got {noise}")
    dims = {m: tuple(int(v) for v in dims[m]) for m in dims} if dims else dict(DEFAULT_DIMS)
    rng = np.random.default_rng(seed)
    # Fixed per-dataset directions: the same "meaning" of each feature in every split.
    directions = {}
    for m, (T, D) in dims.items():
        p = rng.normal(size=D); p *= 1.0 / np.linalg.norm(p) * np.sqrt(D) * 0.5 * AMPLITUDE.get(m, 1.0)
        q = rng.normal(size=D); q *= 1.0 / np.linalg.norm(q) * np.sqrt(D) * 0.5
        directions[m] = (p, q, rng.uniform(0.5, 3.0, size=D), rng.normal(scale=2.0, size=D))
    hi = LABEL_BOUND[kind]
    out = {"meta": {"synthetic": True, "dataset": kind, "seed": int(seed), "noise": float(noise),
                    "generator": "mcihn.data.synthetic.make_synthetic",
                    "dims": {m: list(v) for m, v in dims.items()}}}
    for split, n in splits.items():
        u = {m: rng.normal(size=n) for m in ("text", "audio", "vision")}
        eta = rng.normal(size=n)  # annotator disagreement
        raw = sum(WEIGHTS[m] * u[m] for m in u) + INTERACTION * u["text"] * u["vision"] + LABEL_NOISE * eta
        y = np.clip(raw * (hi / 2.5), -hi, hi)
        y = np.round(y * 5) / 5  # annotator-average style 0.2 steps; exact zeros occur
        n_spk = max(1, int(round(n / CLIPS_PER_SPEAKER)))
        speaker = np.sort(rng.integers(0, n_spk, size=n))  # (N,) a speaker's clips are consecutive, as in MMSA
        d = {"id": [f"synth{split}_spk{speaker[i]:04d}$_${i}" for i in range(n)],
             "raw_text": [f"synthetic clip {i} of split {split}" for i in range(n)],
             "regression_labels": y.astype(np.float32),
             "annotations": np.where(y > 0, "Positive", np.where(y < 0, "Negative", "Neutral")).tolist()}
        for m, (T, D) in dims.items():
            x, lengths = _sequences(rng, u[m], T, D, noise, directions[m], speaker,
                                    SPEAKER_SHIFT.get(m, 0.0), DEAD_DIMS.get(m, 0))
            put_modality(d, m, x, lengths, rng)
        if kind == "sims":  # unimodal labels of CH-SIMS, from each modality's own evidence
            for m, letter in (("text", "T"), ("audio", "A"), ("vision", "V")):
                d[f"regression_labels_{letter}"] = (np.round(np.clip(u[m] / 2, -1, 1) * 5) / 5).astype(np.float32)
        out[split] = d
    return out


def write_synthetic(path, **kwargs) -> str:
    """Write :func:`make_synthetic` to ``path`` as a pickle, atomically (write, then rename)."""
    import pickle

    from ..utils import atomic_write_bytes

    atomic_write_bytes(path, pickle.dumps(make_synthetic(**kwargs), protocol=4))
    return str(path)


def synthetic_data(kind: str = "mosi", **kwargs):
    """The synthetic set as a validated :class:`mcihn.data.mmsa.MultimodalData` (in memory)."""
    from .mmsa import from_mmsa_dict

    seed = kwargs.get("seed", 0)
    obj = make_synthetic(kind=kind, **kwargs)
    data = from_mmsa_dict(obj, source=f"SYNTHETIC {kind.upper()}-shaped data (seed {seed}), not the real dataset",
                          dataset=kind)
    data.synthetic = True
    return data
