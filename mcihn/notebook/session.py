"""What the notebooks share: settings from the parameters cell, data, a cache of trained runs, records.

Every notebook in ``notebooks/`` starts the same way::

    S = nbu.setup(QUICK=QUICK, SEED=SEED, DATA=DATA, EPOCHS=EPOCHS, DEVICE=DEVICE)
    cfg = S.config()                        # the preset for this data, EPOCHS applied
    run = nbu.cached_seed(S, cfg, SEED)   # trains once, then reads back from the cache
    ...
    nbu.write_record(RECORD, {...})       # what the papermill tests assert on

QUICK mode (``MCIHN_QUICK=1`` or ``-p QUICK True``) shrinks everything so that a notebook runs in
class on a laptop CPU: a few hundred clips, the ``tiny`` preset, batches of 64, a dozen epochs, two seeds. Without
QUICK the same cells run the full experiment (all clips, five seeds, early stopping), on the GPU
when there is one.

The cache. A trained run is stored under ``data/cache/runs/<variant>-<tag>-<key>/seed_<seed>/`` in the
layout of :mod:`mcihn.training.runner` (best.pt, last.pt, history.json, result.json); ``key`` is a hash of the
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

from ..model.config import MCIHNConfig
from ..data import MultimodalData, load_mmsa
from ..training.runner import DEFAULT_SEEDS, load_model, run_seed, summarize
from ..training.registry import default_preset
from ..utils import atomic_write_json, jsonable, resolve_device, set_seed

#: Clips per split in QUICK mode (synthetic data, or a random subset of a real pickle). Every training clip
#: of the MOSI-sized synthetic set: with 320 (the old QUICK size) the model overfitted by epoch 3 (valid MAE
#: 0.95 against the mean predictor's 1.07) and its attention stayed uniform; with 1284 and 12 epochs it
#: reaches about 0.57 and the fusion attention leaves uniform (measured, seeds 1111-1112). Validation and
#: test stay small: they cost evaluation time on every epoch, not learning.
QUICK_SPLITS = {"train": 1284, "valid": 150, "test": 150}
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
    """``"synthetic"`` -> the synthetic set (QUICK: 1284/150/150 clips; else MOSI's split sizes), or a
    path to an MMSA pickle (QUICK: a random subset of the same sizes). Prints what was loaded, and
    says loudly when the data are synthetic."""
    from ..data import synthetic_data

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
        log("NOTE: SYNTHETIC data (mcihn/data/synthetic.py), with a planted cross-modal structure. Nothing in this "
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
        return MCIHNConfig.from_preset(self.preset, n_train=len(self.data["train"]), **{**base, **overrides})

    def model_config(self, kind: str, **overrides):
        """:meth:`config` for any model of the registry (``"late"``, ``"tfn"``, ...; ``"mcihn"`` is :meth:`config`):
        the same preset, EPOCHS and QUICK batch size, so that a baseline is trained like MCIHN."""
        from ..training.registry import make_config

        base = {"epochs": int(self.epochs)} if self.epochs is not None else {}
        if self.quick:
            base["batch_size"] = QUICK_BATCH
        return make_config(kind, self.preset, n_train=len(self.data["train"]), **{**base, **overrides})


def setup(QUICK: bool = False, SEED: int = 1111, DATA: str = "synthetic", EPOCHS: int | None = None,
          DEVICE: str = "auto", PRESET: str | None = None, DATASET: str | None = None, SEEDS=None,
          CACHE_DIR=None, log=print) -> Settings:
    """Resolve the parameters cell of a notebook (names as in the cell) into :class:`Settings`.

    QUICK: small data (1284/150/150 clips), at most 12 epochs, batch 64, seeds 1111-1112, 300 points per UMAP,
    and one CPU thread (the tiny model gains nothing from more, and extra threads slow down sharply
    when other processes share the cores). Otherwise: all clips, the preset's epochs with early
    stopping, seeds 1111-1115, 2000 UMAP points.
    PRESET None: ``tiny`` on synthetic data or in QUICK mode, else what the CLI uses
    (``mcihn.training.registry.default_preset``: ``auto`` on real data).
    """
    quick = bool(QUICK)
    set_seed(int(SEED))
    device = resolve_device(DEVICE) if isinstance(DEVICE, str) else torch.device(DEVICE)
    if quick and device.type == "cpu":
        torch.set_num_threads(1)
    data = load_data(DATA, quick=quick, dataset=DATASET, log=log)
    preset = PRESET or ("tiny" if quick else default_preset(data))
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


def cached_seed(S: Settings, cfg, seed: int, tag: str = "", on_epoch=None, verbose: bool = False,
                log=print) -> dict:
    """Train one seed with :func:`mcihn.training.runner.run_seed`, or read it back from the cache.

    Returns run_seed's dict ("seed", "best_epoch", "epochs_run", "valid", "test", "history") with
    "model" (the best validation epoch's weights, on ``S.device``, eval mode), "folder" and "cached"
    (True when nothing was trained).

    For the three-modality model with the gate, each epoch's history record also gets "mmd": the MMD^2
    terms on the validation split (:func:`mcihn.notebook.analysis.mmd_probe`), so that notebook 04 can plot them for
    any cached run. Use a distinct ``tag`` with your own ``on_epoch``, so that a run trained without it
    is not reused.
    """
    if on_epoch is None and getattr(cfg, "use_cgmm", False) and len(cfg.modalities) == 3:  # MCIHN only
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
    said otherwise), in the spirit of :func:`mcihn.training.runner.run_experiment`.
    """
    runs = [cached_seed(S, cfg, s, tag=tag, log=log) for s in (seeds or S.seeds)]
    mean, std = summarize(runs)
    return {"variant": cfg.variant, "per_seed": runs, "mean": mean, "std": std,
            "valid_mean": summarize(runs, "valid")[0]}


# ----------------------------------------------------------------------------- Tables 2 and 3
def run_table(S: Settings, name: str, labels=None, log=print):
    """Table ``name`` ("table2" / "table3") with the notebook's data, preset, seeds and epochs, through the one
    table runner :func:`mcihn.experiments.tables.run_table`; finished seeds are read back from the cache.
    ``labels``: a subset of the table's row labels (e.g. ["-VT", "MCIHN"])."""
    from ..experiments.tables import TABLES
    from ..experiments.tables import run_table as run

    rows = TABLES[name]
    if labels is not None:
        unknown = sorted(set(labels) - {r.label for r in rows})
        if unknown:
            raise ValueError(f"{name} has no row(s) {unknown}; its rows are {[r.label for r in rows]}")
    slugs = None if labels is None else [r.slug for r in rows if r.label in set(labels)]
    training = {"batch_size": QUICK_BATCH} if S.quick else {}
    key = hashlib.sha1(json.dumps({"data": data_fingerprint(S.data), "preset": S.preset, "epochs": S.epochs,
                                   "training": training}, sort_keys=True).encode()).hexdigest()[:10]
    return run(name, S.data, seeds=S.seeds, out_dir=S.cache_dir / "tables" / f"{name}-{key}", preset=S.preset,
               epochs=S.epochs, overrides=training, models=slugs, device=S.device, resume=True, log=log)


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


# ----------------------------------------------------------------------------- tuning (notebook 07)
#: QUICK tuning: trials, maximum epochs per trial and the seeds a trial is averaged over. 12 epochs as the
#: QUICK runs: at 8 every trial sat at 0.89-0.91 (the model had not yet left its plateau), a study of noise.
QUICK_TUNE = {"trials": 4, "epochs": 12, "seeds": (1111,)}


def cached_tune(S: Settings, trials: int | None = None, seeds=None, epochs: int | None = None, study_dir=None,
                log=print):
    """An Optuna study of :func:`mcihn.experiments.tune.tune` on the notebook's data and preset (the test split
    is removed before the first trial), stored in ``study_dir`` (default: a folder of the cache keyed by the
    data and the settings). A folder that already holds the asked number of finished trials is read back
    (its ``study.db``): nothing is trained. Returns (study, folder)."""
    from ..experiments.tune import tune

    q = QUICK_TUNE if S.quick else {"trials": 30, "epochs": None, "seeds": (1111, 1112)}
    trials = int(trials or q["trials"])
    seeds = tuple(seeds or q["seeds"])
    epochs = epochs or q["epochs"] or S.epochs
    overrides = {"epochs": int(epochs)} if epochs else {}
    if S.quick:
        overrides["batch_size"] = QUICK_BATCH
    if study_dir is None:
        key = hashlib.sha1(json.dumps({"data": data_fingerprint(S.data), "preset": S.preset, "seeds": seeds,
                                       "overrides": overrides}, sort_keys=True).encode()).hexdigest()[:10]
        study_dir = S.cache_dir / "tune" / f"{S.preset}-{key}"
    study = tune(S.data, study_dir, model="mcihn", preset=S.preset, trials=trials, seeds=seeds,
                 overrides=overrides, device=S.device, sampler_seed=0, progress=False, log=log)
    return study, Path(study_dir)
