"""What the notebooks share: settings from the parameters cell, data, a cache of trained runs, records.

Every notebook in ``notebooks/`` starts the same way::

    S = notebook_utils.setup(QUICK=QUICK, SEED=SEED, DATA=DATA, EPOCHS=EPOCHS, DEVICE=DEVICE)
    cfg = S.config()                        # the preset for this data, EPOCHS applied
    run = notebook_utils.cached_seed(S, cfg, SEED)   # trains once, then reads back from the cache
    ...
    notebook_utils.write_record(RECORD, {...})       # what the papermill tests assert on

QUICK mode (``MCIHN_QUICK=1`` or ``-p QUICK True``) shrinks everything so that a notebook runs in
class on a laptop CPU: a few hundred clips, the ``tiny`` preset, batches of 64, a dozen epochs, two seeds. Without
QUICK the same cells run the full experiment (all clips, five seeds, early stopping), on the GPU
when there is one.

The cache. A trained run is stored under ``data/cache/runs/<variant>-<tag>-<key>/seed_<seed>/`` in the
layout of :mod:`mcihn.runner` (best.pt, last.pt, history.json, result.json); ``key`` is a hash of the
data and of the whole config, so a run is reused only for exactly the same data and settings. Asking
again for a finished run reads it back instead of training; an interrupted one is resumed. This is how
notebook 03 reuses the model that notebook 05 trained (or trains it, at the requested size, when 05
has not run), and how every notebook runs alone. ``MCIHN_CACHE_DIR`` moves the cache (the tests use a
temporary one).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import MCIHNConfig
from .data import MultimodalData, load_mmsa
from .runner import DEFAULT_SEEDS, load_model, run_seed, summarize
from .utils import atomic_write_json, jsonable, resolve_device, set_seed

#: Clips per split in QUICK mode (synthetic data, or a random subset of a real pickle).
QUICK_SPLITS = {"train": 320, "valid": 100, "test": 100}
#: Maximum epochs in QUICK mode (early stopping may end sooner).
QUICK_EPOCHS = 12
#: Batch size in QUICK mode: 64 instead of the paper's 32 halves the number of (overhead-bound) steps.
QUICK_BATCH = 64
#: Seeds of multi-seed runs in QUICK mode (two: the least that gives a standard deviation).
QUICK_SEEDS = (1111, 1112)
#: The synthetic data set is always built with this seed: SEED changes the model, not the data.
DATA_SEED = 0


def quick_from_env(default: bool = False) -> bool:
    """True when ``MCIHN_QUICK`` is set to anything but "", "0", "false", "no" (case-insensitive)."""
    value = os.environ.get("MCIHN_QUICK")
    if value is None:
        return default
    return value.strip().lower() not in ("", "0", "false", "no")


def find_repo_root(start=None) -> Path | None:
    """The first folder at or above ``start`` (default: the working directory) that holds this
    project (``pyproject.toml`` and ``mcihn/``); None when there is none."""
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "mcihn").is_dir():
            return folder
    return None


def default_data_dir() -> Path:
    """``data/`` of the checkout the notebook runs in (found from the working directory, then from this
    package's location), else ``./data``. Notebooks write what they produce here, whatever their working
    directory: ``notebooks/`` under Jupyter, the repository under ``papermill`` without ``--cwd``."""
    root = find_repo_root() or find_repo_root(Path(__file__).parent)
    return (root / "data") if root is not None else Path("data")


def default_cache_dir() -> Path:
    """``$MCIHN_CACHE_DIR`` if set, else ``data/cache`` of the checkout the notebook runs in."""
    if os.environ.get("MCIHN_CACHE_DIR"):
        return Path(os.environ["MCIHN_CACHE_DIR"])
    return default_data_dir() / "cache"


def subsample(data: MultimodalData, sizes: dict, seed: int = DATA_SEED) -> MultimodalData:
    """A random subset of each split (at most ``sizes[split]`` clips, order kept), same normalisation source."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, sd in data.splits.items():
        n = min(len(sd), int(sizes.get(name, len(sd))))
        idx = np.sort(rng.choice(len(sd), size=n, replace=False))
        splits[name] = dataclasses.replace(
            sd, features={m: x[idx] for m, x in sd.features.items()},
            lengths={m: v[idx] for m, v in sd.lengths.items()}, labels=sd.labels[idx],
            ids=[sd.ids[i] for i in idx], unimodal_labels={k: v[idx] for k, v in sd.unimodal_labels.items()},
            raw_text=[sd.raw_text[i] for i in idx] if sd.raw_text is not None else None)
    return dataclasses.replace(data, splits=splits, source=f"{data.source} (random subset: "
                               + ", ".join(f"{k} {len(v)}" for k, v in splits.items()) + ")")


def load_data(DATA: str = "synthetic", quick: bool = False, dataset: str | None = None,
              log=print) -> MultimodalData:
    """``"synthetic"`` -> the synthetic set (QUICK: 320/100/100 clips; else MOSI's split sizes), or a
    path to an MMSA pickle (QUICK: a random subset of the same sizes). Prints what was loaded, and
    says loudly when the data are synthetic."""
    from .synthetic import synthetic_data

    if str(DATA) == "synthetic":
        data = synthetic_data(kind=dataset or "mosi", splits=dict(QUICK_SPLITS) if quick else None, seed=DATA_SEED)
    else:
        path = Path(DATA)
        if not path.exists():
            raise FileNotFoundError(
                f"DATA={DATA!r}: no such file (relative paths start at {Path.cwd()}). Pass an MMSA pickle such as "
                "data/MOSI/unaligned_50.pkl (see data/README.md), the output of notebook 01, or 'synthetic'.")
        data = load_mmsa(path, dataset=dataset)
        if quick:
            data = subsample(data, QUICK_SPLITS)
    sizes = ", ".join(f"{s} {len(data[s])}" for s in data.splits)
    dims = ", ".join(f"{m} {T}x{D}" for m, (T, D) in data.dims.items())
    log(f"data: {data.source}\n      {data.dataset.upper()} labels; clips {sizes}; features (T x D) {dims}")
    if data.synthetic:
        log("NOTE: SYNTHETIC data (mcihn/synthetic.py), with a planted cross-modal structure. Nothing in this "
            "notebook says anything about CMU-MOSI or CH-SIMS; run it with -p DATA path/to/unaligned_50.pkl for that.")
    return data


@dataclass
class Settings:
    """Everything the parameters cell decides, resolved once: see :func:`setup`."""

    quick: bool
    seed: int
    data: MultimodalData
    device: torch.device
    preset: str
    epochs: int | None
    seeds: tuple
    cache_dir: Path
    umap_points: int

    def config(self, **overrides) -> MCIHNConfig:
        """The preset's config with EPOCHS (if set), QUICK's batch size and ``overrides`` applied."""
        base = {"epochs": int(self.epochs)} if self.epochs is not None else {}
        if self.quick:
            base["batch_size"] = QUICK_BATCH
        return MCIHNConfig.from_preset(self.preset, **{**base, **overrides})


def setup(QUICK: bool = False, SEED: int = 1111, DATA: str = "synthetic", EPOCHS: int | None = None,
          DEVICE: str = "auto", PRESET: str | None = None, DATASET: str | None = None, SEEDS=None,
          CACHE_DIR=None, log=print) -> Settings:
    """Resolve the parameters cell of a notebook (names as in the cell) into :class:`Settings`.

    QUICK: small data (320/100/100 clips), at most 12 epochs, batch 64, seeds 1111-1112, 300 points per UMAP,
    and one CPU thread (the tiny model gains nothing from more, and extra threads slow down sharply
    when other processes share the cores). Otherwise: all clips, the preset's epochs with early
    stopping, seeds 1111-1115, 2000 UMAP points.
    PRESET None: ``tiny`` on synthetic data or in QUICK mode, ``paper`` on real data (as the CLI).
    """
    quick = bool(QUICK)
    set_seed(int(SEED))
    device = resolve_device(DEVICE) if isinstance(DEVICE, str) else torch.device(DEVICE)
    if quick and device.type == "cpu":
        torch.set_num_threads(1)
    data = load_data(DATA, quick=quick, dataset=DATASET, log=log)
    preset = PRESET or ("tiny" if (data.synthetic or quick) else "paper")
    epochs = EPOCHS if EPOCHS else (QUICK_EPOCHS if quick else None)
    seeds = tuple(SEEDS) if SEEDS else (QUICK_SEEDS if quick else DEFAULT_SEEDS)
    s = Settings(quick=quick, seed=int(SEED), data=data, device=device, preset=preset, epochs=epochs,
                 seeds=seeds, cache_dir=Path(CACHE_DIR) if CACHE_DIR else default_cache_dir(),
                 umap_points=300 if quick else 2000)
    gpu = f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""
    log(f"mode: {'QUICK' if quick else 'full'}; device {device}{gpu}, {torch.get_num_threads()} CPU thread(s); "
        f"preset {preset}, {'max ' + str(s.config().epochs)} epochs; seeds {list(seeds)}; cache {s.cache_dir}")
    return s


# ----------------------------------------------------------------------------- the cache of trained runs
def data_fingerprint(data: MultimodalData) -> dict:
    """A cheap identity of a data set's *content* (not of its path): sizes, and a hash of the labels, the
    lengths and the first clips' features. The same arrays loaded from a pickle or built in memory match."""
    h = hashlib.sha1()
    for name in sorted(data.splits):
        sd = data.splits[name]
        h.update(name.encode())
        h.update(np.ascontiguousarray(sd.labels).tobytes())
        for m in sorted(sd.features):
            h.update(np.ascontiguousarray(sd.features[m][:4]).tobytes())
            h.update(np.ascontiguousarray(sd.lengths[m]).tobytes())
    return {"dataset": data.dataset, "dims": {m: list(v) for m, v in data.dims.items()},
            "sizes": {s: len(v) for s, v in data.splits.items()}, "hash": h.hexdigest()[:16]}


def run_folder(S: Settings, cfg: MCIHNConfig, tag: str = "") -> Path:
    """``cache/runs/<variant>-<tag>-<key>``: key hashes the data and every config field."""
    blob = json.dumps({"data": data_fingerprint(S.data), "config": cfg.to_dict(), "tag": tag}, sort_keys=True)
    key = hashlib.sha1(blob.encode()).hexdigest()[:10]
    name = re.sub(r"[^A-Za-z0-9]+", "_", cfg.variant).strip("_") or "run"
    return S.cache_dir / "runs" / "-".join(p for p in (name, tag, key) if p)


def cached_seed(S: Settings, cfg: MCIHNConfig, seed: int, tag: str = "", on_epoch=None, verbose: bool = False,
                log=print) -> dict:
    """Train one seed with :func:`mcihn.runner.run_seed`, or read it back from the cache.

    Returns run_seed's dict ("seed", "best_epoch", "epochs_run", "valid", "test", "history") with
    "model" (the best validation epoch's weights, on ``S.device``, eval mode), "folder" and "cached"
    (True when nothing was trained).

    For the three-modality model with the gate, each epoch's history record also gets "mmd": the MMD^2
    terms on the validation split (:func:`mcihn.analysis.mmd_probe`), so that notebook 04 can plot them for
    any cached run. Use a distinct ``tag`` with your own ``on_epoch``, so that a run trained without it
    is not reused.
    """
    if on_epoch is None and cfg.use_cgmm and len(cfg.modalities) == 3:
        from .analysis import mmd_probe, model_inputs
        on_epoch = mmd_probe(model_inputs(S.data, "valid", cfg.modalities))
    folder = run_folder(S, cfg, tag) / f"seed_{seed}"
    cached = (folder / "result.json").exists()
    t0 = time.time()
    res = run_seed(S.data, cfg, seed, out_dir=folder, device=S.device, resume=True, progress=False,
                   log=log if verbose else (lambda *a, **k: None), on_epoch=on_epoch)
    if "model" not in res:  # read back from the cache: rebuild the best epoch's model
        res["model"] = load_model(folder / "best.pt")[0]
    res["model"] = res["model"].to(S.device).eval()
    res["folder"], res["cached"] = folder, cached
    how = "read from the cache" if cached else f"trained in {time.time() - t0:.1f} s"
    log(f"{cfg.variant} seed {seed}: {how} ({res['epochs_run']} epochs, best epoch {res['best_epoch']}, "
        f"valid MAE {res['valid']['MAE']:.3f})")
    return res


def cached_experiment(S: Settings, cfg: MCIHNConfig, seeds=None, tag: str = "", log=print) -> dict:
    """:func:`cached_seed` for each seed, then mean and (population) std of the metrics over seeds.

    Returns {"variant", "per_seed": [run dicts], "mean", "std", "valid_mean"} (test metrics unless
    said otherwise), in the spirit of :func:`mcihn.runner.run_experiment`.
    """
    runs = [cached_seed(S, cfg, s, tag=tag, log=log) for s in (seeds or S.seeds)]
    mean, std = summarize(runs)
    return {"variant": cfg.variant, "per_seed": runs, "mean": mean, "std": std,
            "valid_mean": summarize(runs, "valid")[0]}


# ----------------------------------------------------------------------------- Table 3
#: The ablation rows of the paper's Table 3, in its order, as config overrides.
TABLE3_VARIANTS = {
    "-VT": {"modalities": "vt"},
    "-VA": {"modalities": "va"},
    "-TA": {"modalities": "ta"},
    "MCIHN-1": {"use_aae": False},
    "MCIHN-2": {"use_cgmm": False},
    "MCIHN": {},
}


#: What each Table 3 row changes (Sec. 4.6, and the README's paper-to-code table for the wiring).
TABLE3_DESCRIPTIONS = {
    "-VT": "vision and text only: one pair feature F^vt, one MMD term",
    "-VA": "vision and audio only",
    "-TA": "text and audio only",
    "MCIHN-1": "no AAE: the same encoders, trained by the main loss alone (no decoder, no discriminator)",
    "MCIHN-2": "no CGMM: each pair feature is the mean of the two codes, and there is no MMD term",
    "MCIHN": "the full model",
}


def run_table3(S: Settings, seeds=None, variants: dict | None = None, log=print, **overrides) -> dict:
    """Train (or read back) every Table 3 variant over ``seeds``: name -> :func:`cached_experiment` dict.

    ``overrides`` apply to every variant (for instance ``mmd_weight=0.3``)."""
    out = {}
    for name, switches in (variants or TABLE3_VARIANTS).items():
        cfg = S.config(**{**overrides, **switches})
        out[name] = cached_experiment(S, cfg, seeds=seeds, log=log)
    return out


#: The paper's table columns (Tables 2 and 3) -> the MMSA metric keys. MOSI's Acc-2 / F1 are MMSA's
#: "Has0" pair (negative vs non-negative), as the baselines' published numbers show (reading notes).
PAPER_COLUMNS = {
    "mosi": (("Acc-2", "Has0_acc_2"), ("F1", "Has0_F1_score"), ("Acc-7", "Mult_acc_7"), ("MAE", "MAE"),
             ("Corr", "Corr")),
    "sims": (("Acc-2", "Mult_acc_2"), ("F1", "F1_score"), ("Acc-3", "Mult_acc_3"), ("Acc-5", "Mult_acc_5"),
             ("MAE", "MAE"), ("Corr", "Corr")),
}


#: The numbers the paper reports (Tables 2 and 3; means of 5 runs on the real data sets), for comparison
#: on real data only: next to synthetic results they would mean nothing.
PAPER_REPORTED = {
    "mosi": {"-VT": (80.9, 80.6, 35.7, 0.734, 0.732), "-VA": (79.9, 79.9, 33.9, 0.798, 0.729),
             "-TA": (80.1, 80.0, 33.4, 0.757, 0.739), "MCIHN-1": (80.3, 79.6, 33.6, 0.781, 0.732),
             "MCIHN-2": (79.6, 78.9, 32.7, 0.774, 0.715), "MCIHN": (84.4, 84.1, 48.2, 0.701, 0.796)},
    "sims": {"-VT": (78.7, 78.5, 65.4, 41.5, 0.428, 0.596), "-VA": (77.3, 77.2, 63.7, 40.7, 0.449, 0.586),
             "-TA": (77.6, 77.6, 64.1, 40.1, 0.442, 0.581), "MCIHN-1": (78.8, 78.8, 63.9, 40.9, 0.433, 0.586),
             "MCIHN-2": (77.8, 75.6, 63.2, 39.8, 0.446, 0.574), "MCIHN": (82.8, 82.6, 68.8, 45.2, 0.391, 0.653)},
}


def paper_reported(dataset: str, rows=None):
    """The paper's reported rows (default: all of Table 3, whose last row is Table 2's MCIHN) as a
    DataFrame in the paper's layout, for ``dataset`` "mosi" or "sims"."""
    import pandas as pd

    name = "sims" if dataset == "sims" else "mosi"
    cols = [c for c, _ in PAPER_COLUMNS[name]]
    table = {r: dict(zip(cols, PAPER_REPORTED[name][r])) for r in (rows or PAPER_REPORTED[name])}
    return pd.DataFrame.from_dict(table, orient="index")


def paper_table(rows: dict, dataset: str, std: dict | None = None):
    """A pandas DataFrame in the paper's layout: one row per entry of ``rows`` (name -> metrics), the
    paper's columns, accuracies and F1 x100 with one decimal, MAE and Corr with three; "mean ± std"
    where ``std`` has the row."""
    import pandas as pd

    cols = PAPER_COLUMNS["sims" if dataset == "sims" else "mosi"]
    table = {}
    for name, metrics in rows.items():
        cells = {}
        for col, key in cols:
            scale, fmt = (1.0, "{:.3f}") if key in ("MAE", "Corr") else (100.0, "{:.1f}")
            value = metrics.get(key)
            text = "-" if value is None or not np.isfinite(value) else fmt.format(value * scale)
            s = (std or {}).get(name, {}).get(key)
            if s is not None and text != "-" and np.isfinite(s):
                text += " ± " + fmt.format(s * scale)
            cells[col] = text
        table[name] = cells
    return pd.DataFrame.from_dict(table, orient="index")


# ----------------------------------------------------------------------------- records for the tests
def write_record(path, record: dict) -> dict:
    """Write ``record`` as JSON to ``path`` (when a path is given; NaN/inf become null), with the folder
    the ``mcihn`` package was imported from (the tests check that the kernel ran the code under test).
    Returns the plain-JSON version, so the notebook can show what it recorded."""
    import mcihn

    plain = jsonable({**record, "mcihn_path": str(Path(mcihn.__file__).resolve().parent)})
    if path:
        atomic_write_json(path, plain)
    return plain
