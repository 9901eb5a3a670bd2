"""Loading, checking and normalising MMSA-format data (CMU-MOSI, CMU-MOSEI, CH-SIMS).

MMSA distributes each dataset as one pickle::

    {"train" | "valid" | "test": {
        "id":                (N,) str
        "raw_text":          (N,) str                       optional
        "text":              (N, T_t, D_t) float            e.g. MOSI 50 x 768 (BERT)
        "text_bert":         (N, 3, T_t)  ids/mask/segment  optional; mask row gives text lengths
        "audio":             (N, T_a, D_a) float            e.g. MOSI 375 x 5, MOSEI 500 x 74; may hold -inf padding
        "vision":            (N, T_v, D_v) float            e.g. MOSI 500 x 20, MOSEI 375 x 35
        "audio_lengths", "vision_lengths": (N,) int         optional (aligned pickles: full length)
        "regression_labels": (N,) float                     MOSI / MOSEI in [-3, 3], SIMS in [-1, 1]
        "regression_labels_T/_A/_V": (N,) float             SIMS only: unimodal labels
    }, "meta": {...} optional}

:func:`load_mmsa` opens such a file with the *restricted* unpickler of
``pickles.py`` (a pickle can run any code on load; that one can only build numpy
arrays and plain values), checks every field and returns a :class:`MultimodalData`. Every problem raises
:class:`DataFormatError` naming file, split, field and the first bad sample.

Feature values: NaN and +inf are refused; -inf inside a sample's real time steps is set to 0, as MMSA does
(its audio features use -inf as padding, and some of its files have -inf inside the real steps too), with one
:class:`DataWarning` per split and field giving the count and the first place. Padding steps (beyond a
sample's length) are set to 0 whatever they hold. Ids: a duplicate id within a split, or an id in two splits
(a test clip seen in training: leakage), loads with a :class:`DataWarning` naming file, split and an example.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import warnings

import numpy as np
import torch

from ..modalities import MODALITIES, parse_modalities
from .pickles import DataFormatError, DataWarning, safe_load_pickle

#: Label range of each dataset; MOSEI has MOSI's scale (and MOSI's metrics, mcihn.metrics).
LABEL_RANGE = {"mosi": (-3.0, 3.0), "mosei": (-3.0, 3.0), "sims": (-1.0, 1.0)}
SPLITS = ("train", "valid", "test")
LABEL_TOL = 1e-6
_UNIMODAL = ("T", "A", "V")


# ----------------------------------------------------------------------------- containers
@dataclass
class SplitData:
    """One split. N samples; modality m has T_m time steps of D_m features."""

    name: str                                # "train" | "valid" | "test"
    features: dict[str, np.ndarray]          # m -> (N, T_m, D_m) float32, padding = 0
    lengths: dict[str, np.ndarray]           # m -> (N,) int64, 0 <= length <= T_m
    labels: np.ndarray                       # (N,) float32
    ids: list[str]
    unimodal_labels: dict[str, np.ndarray] = field(default_factory=dict)  # "T"/"A"/"V" -> (N,)
    raw_text: list[str] | None = None
    text_bert: np.ndarray | None = None      # (N, 3, L) int64 token ids / attention mask / segment ids

    def __len__(self) -> int:
        return len(self.labels)

    def mask(self, modality: str) -> np.ndarray:
        """(N, T_m) bool, True at real time steps (t < length)."""
        T = self.features[modality].shape[1]
        return np.arange(T)[None, :] < self.lengths[modality][:, None]

    def to_tensors(self, modalities, text_ids: bool = False) -> dict[str, torch.Tensor]:
        """``{"text": (N,T,D) float32, "text_mask": (N,T) bool, ..., "label": (N,) float32, "index": (N,) long}``.

        Feature tensors share memory with the numpy arrays (``torch.from_numpy``).
        ``modalities`` is a tuple of names or a letter string such as ``"tav"``. ``text_ids`` adds
        ``"text_bert"`` (N, 3, L) int64, for a model that fine-tunes its own text encoder.
        ``index`` is each sample's position in this split (0 .. N-1); batches carry it, so that a
        model with per-sample state over the training set (Self-MM's feature and label banks)
        knows which samples a batch holds. Models that do not need it ignore it.
        """
        out = {}
        for m in parse_modalities(modalities):
            out[m] = torch.from_numpy(self.features[m])
            out[f"{m}_mask"] = torch.from_numpy(self.mask(m))
        if text_ids:
            if self.text_bert is None:
                raise ValueError(f"split {self.name!r} has no token ids (text_bert) for the text encoder")
            out["text_bert"] = torch.from_numpy(self.text_bert)
        out["label"] = torch.from_numpy(self.labels)
        out["index"] = torch.arange(len(self.labels), dtype=torch.long)
        return out


@dataclass
class MultimodalData:
    """The three splits of one dataset plus where they came from."""

    splits: dict[str, SplitData]
    dataset: str                 # "mosi" | "mosei" | "sims"
    source: str                  # file path or e.g. "synthetic MOSI-shaped (seed 0)"
    synthetic: bool = False
    meta: dict = field(default_factory=dict)

    @property
    def dims(self) -> dict[str, tuple[int, int]]:
        """modality -> (T_m, D_m), read from the train split."""
        return {m: tuple(int(s) for s in x.shape[1:]) for m, x in self.splits["train"].features.items()}

    def __getitem__(self, split: str) -> SplitData:
        if split not in self.splits:
            raise KeyError(f"no split {split!r}; have {sorted(self.splits)}")
        return self.splits[split]


# ----------------------------------------------------------------------------- validation
class _Ctx:
    """Formats error messages: '<file>: split 's', field 'f', sample i (id 'x'): what'."""

    def __init__(self, source: str, split: str):
        self.source, self.split, self.ids = source, split, None

    def where(self, fld: str, i: int | None = None) -> str:
        where = f"{self.source}: split '{self.split}', field '{fld}'"
        if i is not None:
            where += f", sample {i}" + (f" (id '{self.ids[i]}')" if self.ids is not None else "")
        return where

    def error(self, fld: str, what: str, i: int | None = None) -> DataFormatError:
        return DataFormatError(f"{self.where(fld, i)}: {what}")

    def warn(self, fld: str, what: str, i: int | None = None) -> None:
        warnings.warn(f"{self.where(fld, i)}: {what}", DataWarning, stacklevel=2)


def _first(bad: np.ndarray) -> int | None:
    """Index of the first True in a (N,) bool array, or None."""
    return int(np.argmax(bad)) if bad.any() else None


def _numeric(ctx: _Ctx, fld: str, value, ndim: int, n: int | None) -> np.ndarray:
    """asarray + checks of rank, numeric dtype and (when n is given) sample count."""
    try:
        x = np.asarray(value)
    except (ValueError, TypeError) as e:  # e.g. ragged nested lists
        raise ctx.error(fld, f"cannot be read as an array ({e})") from e
    if x.ndim != ndim:
        raise ctx.error(fld, f"expected a {ndim}-D array, got shape {x.shape}")
    if x.dtype.kind not in "biuf":
        raise ctx.error(fld, f"expected numbers, got dtype {x.dtype}")
    if n is not None and x.shape[0] != n:
        raise ctx.error(fld, f"has {x.shape[0]} samples but 'id' has {n}")
    return x


def _check_lengths(ctx: _Ctx, fld: str, x: np.ndarray, T: int) -> np.ndarray:
    """(N,) numbers -> (N,) int64, refusing non-integers, negatives and lengths > T."""
    x = x.astype(np.float64)
    i = _first(~np.isfinite(x) | (x != np.round(x)))
    if i is not None:
        raise ctx.error(fld, f"non-integer length {x[i]}", i)
    i = _first(x < 0)
    if i is not None:
        raise ctx.error(fld, f"negative length {int(x[i])}", i)
    i = _first(x > T)
    if i is not None:
        raise ctx.error(fld, f"length {int(x[i])} > sequence length {T}", i)
    return x.astype(np.int64)


def _check_labels(ctx: _Ctx, fld: str, value, n: int, dataset: str) -> np.ndarray:
    """(N,) finite labels inside LABEL_RANGE[dataset] (+- LABEL_TOL) -> float32."""
    arr = np.asarray(value)
    if arr.dtype.kind == "b":  # numpy would read True/False as 1/0: sentiment scores they are not
        raise ctx.error(fld, f"labels are booleans (dtype {arr.dtype}), not sentiment scores in "
                             f"[{LABEL_RANGE[dataset][0]:g}, {LABEL_RANGE[dataset][1]:g}]")
    if arr.ndim == 2 and arr.shape[1] == 1:  # (N, 1) is valid MMSA too (its loader reshapes to (N,))
        value = arr.reshape(-1)
    y = _numeric(ctx, fld, value, 1, n).astype(np.float32)
    i = _first(~np.isfinite(y))
    if i is not None:
        raise ctx.error(fld, f"label is {y[i]}", i)
    lo, hi = LABEL_RANGE[dataset]
    i = _first((y < lo - LABEL_TOL) | (y > hi + LABEL_TOL))
    if i is not None:
        raise ctx.error(fld, f"label {y[i]:g} outside [{lo:g}, {hi:g}] for dataset '{dataset}'", i)
    return y


def _parse_split(raw, split: str, source: str, dataset: str, copy: bool) -> SplitData:
    ctx = _Ctx(source, split)
    if not isinstance(raw, dict):
        raise ctx.error("<split>", f"expected a dict, got {type(raw).__name__}")
    for key in ("id", "regression_labels"):
        if key not in raw:
            raise ctx.error(key, f"missing required key (split has {sorted(map(str, raw))})")
    # A pickle may hold any non-empty subset of the modalities (e.g. text only, from `extract --modalities t`).
    present_modalities = [m for m in MODALITIES if m in raw]
    if not present_modalities:
        raise ctx.error("text", f"no modality: the split needs at least one of {list(MODALITIES)} "
                                f"(split has {sorted(map(str, raw))})")
    ids = np.asarray(raw["id"])
    if ids.ndim != 1:
        raise ctx.error("id", f"expected a 1-D list of ids, got shape {ids.shape}")
    ctx.ids = ids = [str(s) for s in ids]
    n = len(ids)
    if n == 0:
        raise ctx.error("id", "the split has 0 samples")
    _warn_duplicates(ctx, ids)

    features, lengths, text_bert = {}, {}, None
    for m in present_modalities:
        x = _numeric(ctx, m, raw[m], 3, n)
        x = np.array(x, dtype=np.float32, copy=True) if copy else x.astype(np.float32, copy=False)
        for bad, what in ((np.isnan, "NaN"), (np.isposinf, "+inf")):
            i = _first(bad(x).any(axis=(1, 2)))
            if i is not None:
                t, d = np.argwhere(bad(x[i]))[0]
                raise ctx.error(m, f"{what} at time step {t}, feature {d}", i)
        neginf = np.isneginf(x)
        T = x.shape[1]
        if m == "text" and "text_bert" in raw:
            tb = _numeric(ctx, "text_bert", raw["text_bert"], 3, n)
            if tb.shape[1] != 3:
                raise ctx.error("text_bert", f"expected shape (N, 3, L) (ids/mask/segments), got {tb.shape}")
            mask_row = tb[:, 1, :]  # (N, L)
            i = _first(((mask_row != 0) & (mask_row != 1)).any(axis=1))
            if i is not None:
                raise ctx.error("text_bert", "attention-mask row (text_bert[:, 1]) holds values other than 0/1", i)
            lengths[m] = _check_lengths(ctx, "text_bert", mask_row.sum(axis=-1), T)
            text_bert = tb.astype(np.int64)
        elif m != "text" and f"{m}_lengths" in raw:
            fld = f"{m}_lengths"
            lengths[m] = _check_lengths(ctx, fld, _numeric(ctx, fld, raw[fld], 1, n), T)
        else:
            lengths[m] = np.full(n, T, dtype=np.int64)  # aligned data: every step is real
        real = np.arange(T)[None, :] < lengths[m][:, None]  # (N, T): real time steps
        inside = neginf & real[..., None]
        if inside.any():
            i, t, _ = np.argwhere(inside)[0]
            ctx.warn(m, f"{int(inside.sum())} value(s) of -inf inside real time steps (the first at time step {t}) "
                        "set to 0, as MMSA does", int(i))
        x[neginf] = 0.0  # MMSA pads audio with -inf
        x[~real] = 0.0  # padded steps
        features[m] = x

    labels = _check_labels(ctx, "regression_labels", raw["regression_labels"], n, dataset)
    present = [k for k in _UNIMODAL if f"regression_labels_{k}" in raw]
    if present and len(present) < 3:
        missing = next(k for k in _UNIMODAL if k not in present)
        raise ctx.error(f"regression_labels_{missing}", f"missing, while the split has regression_labels_{present[0]}")
    unimodal = {k: _check_labels(ctx, f"regression_labels_{k}", raw[f"regression_labels_{k}"], n, dataset)
                for k in present}
    raw_text = None
    if raw.get("raw_text") is not None:
        rt = np.asarray(raw["raw_text"], dtype=object)
        if rt.ndim != 1 or len(rt) != n:
            raise ctx.error("raw_text", f"expected {n} strings, got shape {rt.shape}")
        raw_text = [str(s) for s in rt]
    return SplitData(split, features, lengths, labels, ids, unimodal, raw_text, text_bert)


def _warn_duplicates(ctx: _Ctx, ids: list[str]) -> None:
    """One DataWarning when ``ids`` repeats an id: the first repeat and how many there are."""
    first, repeats = {}, []
    for i, s in enumerate(ids):
        if s in first:
            repeats.append((first[s], i))
        else:
            first[s] = i
    if repeats:
        i, j = repeats[0]
        ctx.warn("id", f"repeats the id of sample {i}; {len(repeats)} duplicate id(s) in this split", j)


def _warn_shared_ids(source: str, splits: dict[str, SplitData]) -> None:
    """One DataWarning per pair of splits sharing ids (a valid or test clip also in train is leakage)."""
    for a, b in (("train", "valid"), ("train", "test"), ("valid", "test")):
        seen = set(splits[a].ids)
        shared = [i for i, s in enumerate(splits[b].ids) if s in seen]
        if shared:
            ctx = _Ctx(source, b)
            ctx.ids = splits[b].ids
            ctx.warn("id", f"{len(shared)} id(s) of split '{b}' are also in split '{a}' (leakage: {b} metrics "
                           f"would be measured on clips the model saw)", shared[0])


def _infer_dataset(obj: dict, meta: dict, dataset: str | None, source: str) -> str:
    if dataset is None:
        if "dataset" in meta:
            dataset = str(meta["dataset"])
        else:
            dataset = "sims" if "regression_labels_T" in obj["train"] else "mosi"
    if dataset.lower() not in LABEL_RANGE:
        raise DataFormatError(f"{source}: unknown dataset {dataset!r}; expected one of {sorted(LABEL_RANGE)}")
    return dataset.lower()


def _from_dict(obj, source: str, dataset: str | None, copy: bool) -> MultimodalData:
    if not isinstance(obj, dict):
        raise DataFormatError(f"{source}: expected a dict with keys {SPLITS}, got {type(obj).__name__}")
    for s in SPLITS:
        if s not in obj:
            raise DataFormatError(f"{source}: split '{s}', field '<split>': missing (top-level keys {sorted(map(str, obj))})")
        if not isinstance(obj[s], dict):
            raise DataFormatError(f"{source}: split '{s}', field '<split>': expected a dict, got {type(obj[s]).__name__}")
    meta = obj.get("meta") or {}
    if not isinstance(meta, dict):
        raise DataFormatError(f"{source}: top-level 'meta' must be a dict, got {type(meta).__name__}")
    if meta.get("pad", "end") != "end":  # mcihn.experiments.mmsa_models writes such files for MMSA's models
        raise DataFormatError(f"{source}: top-level 'meta', field 'pad': {meta['pad']!r}: the sequences have their "
                              "zeros first (written for MMSA's TFN / LMF); this package reads real steps first: "
                              "write the pickle with pad='end'")
    dataset = _infer_dataset(obj, meta, dataset, source)
    splits = {s: _parse_split(obj[s], s, source, dataset, copy) for s in SPLITS}
    _warn_shared_ids(source, splits)
    present = list(splits["train"].features)
    for s in SPLITS[1:]:  # the same modalities, and (T_m, D_m) as in train: the model is built from train's sizes
        for m in sorted(set(present) ^ set(splits[s].features)):
            where, other = (s, "train") if m in present else ("train", s)
            raise DataFormatError(f"{source}: split '{where}', field '{m}': missing (split '{other}' has it; every "
                                  "split needs the same modalities)")
        for m in present:
            got, want = splits[s].features[m].shape[1:], splits["train"].features[m].shape[1:]
            if got != want:
                raise DataFormatError(f"{source}: split '{s}', field '{m}': (T, D) = {got} differs from train's {want}")
        if (splits[s].text_bert is None) != (splits["train"].text_bert is None):
            raise DataFormatError(f"{source}: split '{s}', field 'text_bert': present in some splits only")
    for m in present:  # normalisation statistics need at least one real time step in train
        if not splits["train"].lengths[m].any():
            raise DataFormatError(f"{source}: split 'train', field '{m}' lengths: every sample has length 0 "
                                  f"(no real {m} time step to learn from)")
    return MultimodalData(splits, dataset, source, bool(meta.get("synthetic", False)), dict(meta))


def from_mmsa_dict(obj: dict, source: str, dataset: str | None = None) -> MultimodalData:
    """Validate an in-memory MMSA-structured dict; the caller's arrays are not modified."""
    return _from_dict(obj, source, dataset, copy=True)


def load_mmsa(path, dataset: str | None = None) -> MultimodalData:
    """Load and validate an MMSA pickle. ``dataset`` ("mosi"/"mosei"/"sims") sets the label range;
    when None it is meta["dataset"], else "sims" if unimodal labels exist, else "mosi" (MMSA's MOSEI
    pickles carry no meta: pass ``dataset="mosei"``; the metrics are MOSI's either way, only the
    dataset's name in tables and checkpoints differs)."""
    return _from_dict(safe_load_pickle(path), str(path), dataset, copy=False)
