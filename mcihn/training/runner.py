"""Multi-seed experiments: train one model per seed, pick epochs on validation, report test.

Layout of an output folder DIR::

    DIR/results.json              dataset, config, per-seed valid/test metrics, mean and std
    DIR/seed_1111/last.pt         full training state after the last finished epoch (resume)
    DIR/seed_1111/best.pt         weights of the best validation epoch (+ config, dims, normaliser)
    DIR/seed_1111/history.json    one record per epoch: every loss term, validation metrics
    DIR/seed_1111/result.json     this seed's final valid/test metrics (written last: marks it done)

Only the validation split chooses anything (the epoch, through early stopping);
the test split is evaluated once per seed, with the best checkpoint reloaded.

``cfg`` may be an :class:`MCIHNConfig` or a baseline's config (``mcihn.training.registry``): the same
runner trains TFN, LMF, MulT and late fusion, and the checkpoints record which model they hold.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from ..model.config import MCIHNConfig
from ..data import MultimodalData, Normalizer, load_mmsa, normalize
from ..metrics import evaluate as evaluate_metrics
from .registry import build_model, config_from_dict, model_kind
from .checkpoint import load_checkpoint_file
from .trainer import Trainer, predict
from ..utils import atomic_write_json, jsonable, resolve_device, set_seed

#: MMSA reports five runs with seeds 1111-1115.
DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)


def compile_phases(trainer: Trainer) -> Trainer:
    """``torch.compile`` each training phase's loss function (forward; AOTAutograd derives the backward).

    Model-agnostic: it wraps ``phase.loss`` of ``trainer.phases`` and leaves the model's modules, their
    state dict and the checkpoints unchanged. Meant for CUDA (see README_speed.md: on the CPU the tiny
    and paper presets do not gain); needs a C++ compiler on the CPU, Triton on CUDA. Evaluation stays eager.
    """
    import dataclasses

    import torch

    trainer.phases = [dataclasses.replace(p, loss=torch.compile(p.loss)) for p in trainer.phases]
    return trainer


def run_seed(data: MultimodalData, cfg: MCIHNConfig, seed: int, out_dir=None, device="auto",
             amp: bool = False, resume: bool = False, progress: bool = True, log=print,
             prepared: tuple | None = None, on_epoch=None, compile: bool = False) -> dict:
    """Train and evaluate one seed.

    Returns {"seed", "best_epoch", "epochs_run", "valid", "test", "history", "model"} where valid/test
    are metric dicts of the best validation epoch's weights and "model" is the trained model
    (absent when a finished run is read back with ``resume``). ``prepared`` = (normalised data,
    normaliser) saves recomputing the statistics for every seed. ``on_epoch`` is passed to
    :meth:`Trainer.fit`. ``compile``: :func:`compile_phases`.
    """
    device = resolve_device(device) if isinstance(device, str) else device
    out_dir = Path(out_dir) if out_dir is not None else None
    normed, normalizer = prepared or normalize(data, cfg.modalities)
    set_seed(seed)
    trainer = Trainer(cfg, data.dims, device=device, amp=amp, seed=seed)
    if compile:
        compile_phases(trainer)
    extra = {"seed": seed, "dataset": data.dataset, "data_source": data.source,
             "normalizer": normalizer.state_dict()}
    if data.meta.get("extraction"):  # features made by `mcihn extract`: `predict` reuses the same encoders
        extra["extraction"] = data.meta["extraction"]
    last = out_dir / "last.pt" if out_dir is not None else None
    if resume and last is not None and last.exists():
        ck = load_checkpoint_file(last)
        check_resumable(ck, cfg, data, normalizer, last)
        trainer.load_checkpoint(ck)
        if trainer.finished and (out_dir / "result.json").exists():
            log(f"seed {seed}: finished earlier (epoch {trainer.epoch}), read from {out_dir / 'result.json'}")
            res = json.loads((out_dir / "result.json").read_text())
            res["history"] = trainer.history
            return res
        log(f"seed {seed}: resuming after epoch {trainer.epoch} from {last}")
    tensors = {s: normed[s].to_tensors(cfg.modalities) for s in ("train", "valid", "test")}
    tensors = {s: {k: v.to(device) for k, v in t.items()} for s, t in tensors.items()}
    t0 = time.time()
    trainer.fit(tensors["train"], tensors["valid"], data.dataset, out_dir=out_dir, extra_state=extra,
                progress=progress, log=log, on_epoch=on_epoch)
    trainer.restore_best(out_dir / "best.pt" if out_dir is not None else None)  # the best epoch, not the last
    res = {"seed": seed, "best_epoch": trainer.best_epoch, "epochs_run": trainer.epoch,
           "train_time_s": round(time.time() - t0, 2)}
    for split in ("valid", "test"):
        pred, _ = trainer.predict(tensors[split])
        res[split] = evaluate_metrics(pred.numpy(), tensors[split]["label"].cpu().numpy(), data.dataset)
    if out_dir is not None:
        atomic_write_json(out_dir / "result.json", res)
    res["history"] = trainer.history
    res["model"] = trainer.model
    return res


#: Config fields that may change between a run and its resumption.
RESUMABLE_CHANGES = {"epochs", "patience", "notes"}


def check_resumable(ck: dict, cfg: MCIHNConfig, data: MultimodalData, normalizer: Normalizer, path) -> None:
    """Refuse to resume a checkpoint made with another model, config, dataset, input sizes or training features."""
    old_kind, new_kind = ck.get("model_kind", "mcihn"), model_kind(cfg)
    if old_kind != new_kind:
        raise ValueError(f"{path}: cannot resume: the run trained model {old_kind!r}, now {new_kind!r}; "
                         "use another --out")
    old, new = ck["config"], cfg.to_dict()
    diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
    if diff:
        raise ValueError(f"{path}: cannot resume: the run was made with a different config ("
                         + ", ".join(f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in diff)
                         + "); use another --out or the same settings")
    if ck.get("dataset") != data.dataset:
        raise ValueError(f"{path}: cannot resume: the run was on dataset {ck.get('dataset')!r}, now {data.dataset!r}")
    dims = {m: list(v) for m, v in data.dims.items() if m in cfg.modalities}
    if {m: list(v) for m, v in ck["dims"].items()} != dims:
        raise ValueError(f"{path}: cannot resume: it was trained on input sizes {ck['dims']}, the data has {dims}")
    if not same_normalizer(ck["normalizer"], normalizer.state_dict()):  # a cheap fingerprint of the train split
        raise ValueError(f"{path}: cannot resume: the training split differs from the one the run started on "
                         f"(its feature statistics changed); use another --out")


def same_normalizer(a: dict, b: dict) -> bool:
    """True when two Normalizer state dicts hold the same statistics (same training features)."""
    import torch

    return a.keys() == b.keys() and all(
        torch.allclose(a[m][k].float(), b[m][k].float(), rtol=1e-5, atol=1e-6) for m in a for k in ("mean", "std"))


def summarize(per_seed: list, split: str = "test") -> tuple[dict, dict]:
    """Mean and (population, as MMSA) standard deviation of each metric over seeds."""
    keys = per_seed[0][split].keys()
    vals = {k: np.array([r[split][k] if r[split][k] is not None else np.nan for r in per_seed], float) for k in keys}
    return ({k: float(np.mean(v)) for k, v in vals.items()}, {k: float(np.std(v)) for k, v in vals.items()})


def run_experiment(data: MultimodalData, cfg: MCIHNConfig, seeds=DEFAULT_SEEDS, out_dir=None, device="auto",
                   amp: bool = False, resume: bool = False, progress: bool = True, log=print,
                   compile: bool = False) -> dict:
    """Train one model per seed and write DIR/results.json (see the module docstring)."""
    out_dir = Path(out_dir) if out_dir is not None else None
    prepared = normalize(data, cfg.modalities)  # training-split statistics, the same for every seed
    per_seed = []
    for seed in seeds:
        log(f"--- seed {seed} ({cfg.variant}, preset {cfg.preset}) ---")
        r = run_seed(data, cfg, seed, out_dir / f"seed_{seed}" if out_dir else None, device=device, amp=amp,
                     resume=resume, progress=progress, log=log, prepared=prepared, compile=compile)
        per_seed.append(r)
    mean, std = summarize(per_seed)
    results = {
        "dataset": data.dataset, "data_source": data.source, "synthetic": data.synthetic,
        "model": model_kind(cfg), "variant": cfg.variant, "config": cfg.to_dict(),
        "dims": {m: list(v) for m, v in data.dims.items()},
        "per_seed": [{k: r[k] for k in ("seed", "best_epoch", "epochs_run", "train_time_s", "valid", "test") if k in r}
                     for r in per_seed],
        "mean": mean, "std": std,
        "valid_mean": summarize(per_seed, "valid")[0],
    }
    if out_dir is not None:
        atomic_write_json(out_dir / "results.json", results)
    results = jsonable(results)
    results["histories"] = {r["seed"]: r["history"] for r in per_seed}  # also in DIR/seed_*/history.json
    return results


def load_model(checkpoint):
    """Rebuild a trained model from a checkpoint: returns (model, config, normaliser, checkpoint dict).

    The model's class comes from the checkpoint's ``model_kind`` (MCIHN when absent: older checkpoints).
    """
    ck = load_checkpoint_file(checkpoint)
    cfg = config_from_dict(ck["config"], ck.get("model_kind", "mcihn"))
    model = build_model(cfg, {m: tuple(v) for m, v in ck["dims"].items()})
    model.load_state_dict(ck["model"])
    model.eval()
    return model, cfg, Normalizer.from_state_dict(ck["normalizer"]), ck


def check_fits_checkpoint(data: MultimodalData, split: str, cfg, ck: dict) -> None:
    """Refuse data without ``split`` or with other input sizes (T, D) than the checkpoint was trained on."""
    if split not in data.splits:
        raise ValueError(f"{data.source}: no split {split!r}; it has {sorted(data.splits)}")
    for m in cfg.modalities:
        if tuple(data.dims[m]) != tuple(ck["dims"][m]):
            raise ValueError(f"{data.source}: {m} features are {data.dims[m]} (T, D) but the checkpoint was trained "
                             f"on {tuple(ck['dims'][m])}")


def evaluate_checkpoint(checkpoint, data_path, split: str = "test", dataset: str | None = None,
                        device="cpu") -> dict:
    """Metrics of a saved model on one split of a pickle, with the checkpoint's own normaliser."""
    model, cfg, normalizer, ck = load_model(checkpoint)
    data = load_mmsa(data_path, dataset=dataset or ck.get("dataset"))
    check_fits_checkpoint(data, split, cfg, ck)
    device = resolve_device(device)
    model.to(device)
    tensors = {k: v.to(device) for k, v in normalizer.transform(data[split]).to_tensors(cfg.modalities).items()}
    pred, _ = predict(model, tensors)
    return evaluate_metrics(pred.numpy(), tensors["label"].cpu().numpy(), data.dataset)
