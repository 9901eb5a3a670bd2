"""Multi-seed experiments: train one model per seed, pick epochs on validation, report test.

Layout of an output folder DIR::

    DIR/results.json              dataset, config, per-seed valid/test metrics, mean and std
    DIR/seed_1111/last.pt         full training state after the last finished epoch (resume)
    DIR/seed_1111/best.pt         weights of the best validation epoch (+ config, dims, normaliser)
    DIR/seed_1111/history.json    one record per epoch: every loss term, validation metrics
    DIR/seed_1111/result.json     this seed's final valid/test metrics (written last: marks it done)
    DIR/seed_1111/start_zero/...  with linear_init="auto": one such folder per start of the linear path, and
                                  the kept start's best.pt and result.json one level up (training/starts.py)

Only the validation split chooses anything (the epoch, through early stopping);
the test split is evaluated once per seed, with the best checkpoint reloaded.

``cfg`` may be an :class:`MCIHNConfig` or a baseline's config (``mcihn.training.registry``): the same
runner trains TFN, LMF, MulT and late fusion, and the checkpoints record which model they hold.
"""
from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from ..model.config import MCIHNConfig
from ..data import MultimodalData, Normalizer, load_mmsa, normalize
from ..data.normalize import ZSCORE_RULES, centred_only
from ..metrics import evaluate as evaluate_metrics
from ..model.text_encoder import (TEXT_MAX_LEN, TextEncoder, TextEncoderError, WithTextEncoder, check_token_ids,
                                  encoder_vocab_size, load_pretrained, token_ids)
from .registry import build_model, model_kind
from .checkpoint import (REQUIRED_KEYS, RESUME_KEYS, check_checkpoint_keys, checkpoint_config, checkpoint_dims,
                         load_checkpoint_file, load_weights)
from .trainer import Trainer, predict
from ..utils import atomic_write_json, jsonable, remove_stale_temp_files, resolve_device, set_seed

#: MMSA reports five runs with seeds 1111-1115.
DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)


def model_tensors(split, cfg) -> dict:
    """The tensors a model of ``cfg`` reads from one split: its modalities' features and masks, the labels,
    and the token ids when it fine-tunes a text encoder."""
    return split.to_tensors(cfg.modalities, text_ids=bool(getattr(cfg, "text_encoder", None)))


def prepare_inputs(data: MultimodalData, cfg) -> MultimodalData:
    """Check that ``data`` has what a model of ``cfg`` reads, before any training; with a text encoder,
    add token ids for every split, checked against the encoder.

    The pickle's ``text_bert`` is used when present; else ``raw_text`` is tokenised with the encoder's
    tokenizer (``TEXT_MAX_LEN`` tokens). Refuses data without a modality of the config, data with
    neither ids nor transcripts, and ids outside the encoder's vocabulary (a tokenizer of another model).
    """
    have = list(data.splits["train"].features)
    missing = [m for m in cfg.modalities if m not in have]
    if missing:
        raise ValueError(f"{data.source}: the data has no {', '.join(missing)} features (it holds {', '.join(have)}); "
                         f"choose modalities it has (--modalities {''.join(m[0] for m in have)})")
    name = getattr(cfg, "text_encoder", None)
    if not name:
        return data
    vocab = encoder_vocab_size(name)
    splits, tokenizer = {}, None
    for s, split in data.splits.items():
        ids = split.text_bert
        if ids is None:
            if split.raw_text is None:
                raise TextEncoderError(f"{data.source}: split '{s}' has neither 'text_bert' (token ids) nor "
                                       "'raw_text' (transcripts): a text encoder needs one of them")
            tokenizer = tokenizer or load_pretrained(name, "tokenizer")
            ids = token_ids(tokenizer, split.raw_text, TEXT_MAX_LEN)
        check_token_ids(ids, vocab, f"{data.source}: split '{s}'")
        splits[s] = dataclasses.replace(split, text_bert=ids)
    return dataclasses.replace(data, splits=splits)


def prepare(data: MultimodalData, cfg) -> tuple[MultimodalData, Normalizer]:
    """:func:`prepare_inputs`, then z-scoring with train-split statistics of the features the model reads
    (not the pickle's text features when a text encoder makes its own), under the rule ``cfg.zscore``
    (:mod:`mcihn.data.normalize`: by default a pretrained encoder's text states are only centred)."""
    data = prepare_inputs(data, cfg)
    own_text = bool(getattr(cfg, "text_encoder", None))
    return normalize(data, [m for m in cfg.modalities if not (own_text and m == "text")] or [],
                     getattr(cfg, "zscore", "auto"))


def compile_phases(trainer: Trainer) -> Trainer:
    """``torch.compile`` each training phase's loss function (forward; AOTAutograd derives the backward).

    Model-agnostic: it wraps ``phase.loss`` of ``trainer.phases`` and leaves the model's modules, their
    state dict and the checkpoints unchanged. Meant for CUDA (see the README, "Speed": on the CPU the tiny
    and paper presets do not gain); needs a C++ compiler on the CPU, Triton on CUDA. Evaluation stays eager.
    """
    import dataclasses

    import torch

    trainer.phases = [dataclasses.replace(p, loss=torch.compile(p.loss)) for p in trainer.phases]
    return trainer


def run_seed(data: MultimodalData, cfg: MCIHNConfig, seed: int, out_dir=None, device="auto",
             amp: bool = False, resume: bool = False, progress: bool = True, log=print,
             prepared: tuple | None = None, on_epoch=None, evaluate_test: bool = True, compile: bool = False,
             legend: bool = False) -> dict:
    """Train and evaluate one seed.

    Returns {"seed", "best_epoch", "epochs_run", "valid", "test", "history", "model"} where valid/test
    are metric dicts of the best validation epoch's weights and "model" is the trained model
    (absent when a finished run is read back with ``resume``); with ``linear_init="auto"`` also "start" (the start
    of the linear path kept) and "starts" (both runs' validation MAE and best epoch: ``training/starts.py``).
    ``prepared`` = (normalised data, normaliser) saves recomputing the statistics for every seed. ``on_epoch`` is
    passed to :meth:`Trainer.fit`. ``evaluate_test=False`` (tuning) never touches a test split; ``data`` may then
    have none. ``compile``: :func:`compile_phases`. ``legend``: log what the epoch lines' names mean, once.
    """
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None:
        _clean(out_dir, log)
    if getattr(cfg, "linear_init", "zero") == "auto":  # one run per start, validation keeps one (training/starts.py)
        from .starts import run_both_starts

        return run_both_starts(run_seed, data, cfg, seed, out_dir, log=log, on_epoch=on_epoch, device=device,
                               amp=amp, resume=resume, progress=progress, prepared=prepared,
                               evaluate_test=evaluate_test, compile=compile, legend=legend)
    device = resolve_device(device) if isinstance(device, str) else device
    normed, normalizer = prepared or prepare(data, cfg)
    if out_dir is not None and any(out_dir.glob("start_*")):
        raise ValueError(f"{out_dir}: holds a run of linear_init='auto' (start_* folders), not of linear_init="
                         f"{getattr(cfg, 'linear_init', 'zero')!r}; use another --out or the same settings")
    done, last_ck = resume_point(out_dir, resume, cfg, normed, normalizer, seed, log)
    if done is not None:
        return done
    set_seed(seed)
    trainer = Trainer(cfg, input_dims(normed, cfg), device=device, amp=amp, seed=seed)
    if compile:
        compile_phases(trainer)
    extra = {"seed": seed, "dataset": data.dataset, "data_source": data.source, "synthetic": bool(data.synthetic),
             "normalizer": normalizer.state_dict()}
    if isinstance(trainer.model, WithTextEncoder):  # rebuilt from this without the original folder
        extra["text_encoder"] = trainer.model.encoder.spec()
    if data.meta.get("extraction"):  # features made by `mcihn extract`: `predict` reuses the same encoders
        extra["extraction"] = data.meta["extraction"]
    splits = ("train", "valid", "test") if evaluate_test else ("train", "valid")
    tensors = {s: model_tensors(normed[s], cfg) for s in splits}
    tensors = {s: {k: v.to(device) for k, v in t.items()} for s, t in tensors.items()}
    if last_ck is not None:
        trainer.load_checkpoint(last_ck, source=out_dir / "last.pt")
        log(f"seed {seed}: resuming after epoch {trainer.epoch} from {out_dir / 'last.pt'}")
    elif getattr(cfg, "linear_init", "zero") != "zero":  # MCIHN's config: it implies the path (baselines lack it)
        from ..model.linear_path import init_from_ridge, start_at_ridge

        frozen = cfg.linear_init == "ridge_frozen"
        fit = init_from_ridge(trainer.model.linear, tensors["train"], tensors["valid"], reference=frozen)
        if frozen:
            start_at_ridge(trainer.model.ffm.head, fit["intercept"])
        log(f"seed {seed}: linear path starts at the ridge regression (alpha {fit['alpha']:.3g}, valid MAE "
            f"{fit['valid_mae']:.3f} with its intercept, modalities {''.join(m[0] for m in fit['modalities'])}"
            f"{'; kept fixed, the network learns the rest' if frozen else ''})")
    t0 = time.time()
    trainer.fit(tensors["train"], tensors["valid"], data.dataset, out_dir=out_dir, extra_state=extra,
                progress=progress, log=log, on_epoch=on_epoch, legend=legend)
    log(f"seed {seed}: {trainer.stop_reason()}")
    trainer.restore_best(out_dir / "best.pt" if out_dir is not None else None)  # the best epoch, not the last
    res = {"seed": seed, "best_epoch": trainer.best_epoch, "epochs_run": trainer.epoch,
           "train_time_s": round(time.time() - t0, 2)}
    for split in splits[1:]:
        pred, _ = trainer.predict(tensors[split])
        res[split] = evaluate_metrics(pred.numpy(), tensors[split]["label"].cpu().numpy(), data.dataset)
    if out_dir is not None:
        atomic_write_json(out_dir / "result.json", res)
        if "text_encoder" in extra:
            # A fine-tuned encoder makes last.pt large (BERT-base: weights and Adam's two moments, about
            # 1.3 GB): once the seed is done only best.pt (the weights, about 440 MB) is kept.
            (out_dir / "last.pt").unlink(missing_ok=True)
    res["history"] = trainer.history
    res["model"] = trainer.model
    return res


def holds_runs(folder: Path) -> bool:
    """True when ``folder`` (a ``run_experiment`` DIR) holds a started seed: a ``last.pt`` in ``seed_*/`` or, with
    ``linear_init="auto"``, in ``seed_*/start_*/``."""
    return any(Path(folder).glob("seed_*/**/last.pt"))


def resume_point(out_dir, resume: bool, cfg, normed: MultimodalData, normalizer: Normalizer, seed: int,
                 log=print) -> tuple[dict | None, dict | None]:
    """Where ``run_seed`` starts: ``(result, None)`` for a seed finished earlier (its result read back),
    ``(None, last_ck)`` to continue from ``last.pt``, ``(None, None)`` to start afresh.

    Without ``resume`` (or an ``out_dir``) it always starts afresh. A finished seed is recognised two ways:
    its ``last.pt`` says training is over (epoch budget or patience, under the current ``cfg``) and
    ``result.json`` exists; or, for a fine-tuned text encoder, whose ``last.pt`` is removed once the seed is
    done (see ``run_seed``), ``result.json`` and ``best.pt`` exist without ``last.pt``. Either checkpoint
    is checked against the current config, data and normaliser (:func:`check_resumable`) first.
    """
    if not resume or out_dir is None:
        return None, None
    last, best, result = out_dir / "last.pt", out_dir / "best.pt", out_dir / "result.json"
    if last.exists():
        ck = load_checkpoint_file(last)
        check_checkpoint_keys(ck, last, (*REQUIRED_KEYS, *RESUME_KEYS))
        check_resumable(ck, cfg, normed, normalizer, last)
        over = int(ck.get("epoch", 0)) >= cfg.epochs or int(ck["bad_epochs"]) >= cfg.patience  # Trainer.finished
        if not (over and result.exists()):
            return None, ck
        log(f"seed {seed}: finished earlier (epoch {int(ck.get('epoch', 0))}), read from {result}")
        res = json.loads(result.read_text())
        res["history"] = list(ck["history"])
        return res, None
    if result.exists() and best.exists():  # a fine-tuned-encoder run keeps no last.pt once its seed is done
        ck = load_checkpoint_file(best)
        check_checkpoint_keys(ck, best)
        check_resumable(ck, cfg, normed, normalizer, best)
        log(f"seed {seed}: finished earlier, read from {result}")
        res = json.loads(result.read_text())
        history = out_dir / "history.json"
        res["history"] = json.loads(history.read_text()) if history.exists() else []
        return res, None
    return None, None


def input_dims(data: MultimodalData, cfg) -> dict:
    """Input sizes of a model of ``cfg``: the data's (T_m, D_m); with a text encoder, text's T is the
    token ids' length (the encoder sets D)."""
    dims = dict(data.dims)
    if getattr(cfg, "text_encoder", None):
        dims["text"] = (int(data.splits["train"].text_bert.shape[-1]), dims["text"][1])
    return dims


def _clean(folder: Path, log) -> None:
    """Remove temporary files that a killed run's atomic writes left in its folder."""
    stale = remove_stale_temp_files(folder)
    if stale:
        log(f"removed {len(stale)} temporary file(s) of an interrupted write in {folder}: "
            + ", ".join(p.name for p in stale))


#: Config fields that may change between a run and its resumption.
RESUMABLE_CHANGES = {"epochs", "patience", "notes"}
#: Config fields added after runs were saved, with the value that trains as before they existed: a checkpoint
#: (or a suite record) without the field reads as made under that value.
ADDED_FIELDS = {"missing_aug": 0.0, "zscore": "all", "linear_path": False, "linear_init": "zero"}


def config_changes(old: dict, cfg, data: MultimodalData) -> list[str]:
    """What differs between a saved config ``old`` (a ``to_dict()``) and ``cfg`` on ``data``, as
    "field: old then, new now" (empty: the same training). Fields in ``RESUMABLE_CHANGES`` do not count;
    a field added since reads as ``ADDED_FIELDS`` says; two ``zscore`` rules count only where they
    normalise ``data`` differently (on synthetic data "auto" is "all")."""
    new = cfg.to_dict()
    old = {**{k: v for k, v in ADDED_FIELDS.items() if k in new}, **old}
    diff = sorted(k for k in set(old) | set(new) if k not in RESUMABLE_CHANGES and old.get(k) != new.get(k))
    if "zscore" in diff and old.get("zscore") in ZSCORE_RULES and \
            centred_only(data, cfg.modalities, old["zscore"]) == centred_only(data, cfg.modalities, new["zscore"]):
        diff.remove("zscore")
    return [f"{k}: {old.get(k)!r} then, {new.get(k)!r} now" for k in diff]


def check_resumable(ck: dict, cfg: MCIHNConfig, data: MultimodalData, normalizer: Normalizer, path) -> None:
    """Refuse to resume a checkpoint made with another model, config, dataset, input sizes or training features."""
    old_kind, new_kind = ck.get("model_kind", "mcihn"), model_kind(cfg)
    if old_kind != new_kind:
        raise ValueError(f"{path}: cannot resume: the run trained model {old_kind!r}, now {new_kind!r}; "
                         "use another --out")
    diff = config_changes(ck["config"], cfg, data)
    if diff:
        raise ValueError(f"{path}: cannot resume: the run was made with a different config (" + ", ".join(diff)
                         + "); use another --out or the same settings")
    if ck.get("dataset") != data.dataset:
        raise ValueError(f"{path}: cannot resume: the run was on dataset {ck.get('dataset')!r}, now {data.dataset!r}")
    dims = {m: list(v) for m, v in input_dims(data, cfg).items() if m in cfg.modalities}
    if getattr(cfg, "text_encoder", None):  # text's width is the encoder's
        dims["text"][1] = ck["dims"]["text"][1]
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
                   compile: bool = False, legend: bool = False) -> dict:
    """Train one model per seed and write DIR/results.json (see the module docstring). ``legend``: log what
    the epoch lines' names mean above the first seed's first line."""
    out_dir = Path(out_dir) if out_dir is not None else None
    prepared = prepare(data, cfg)  # checked inputs and train-split statistics, the same for every seed
    for line in prepared[1].report():  # centred-only modalities, dead features, clipped outliers
        log(line)
    if out_dir is not None:
        _clean(out_dir, log)
    per_seed = []
    for seed in seeds:
        log(f"--- seed {seed} ({cfg.variant}, preset {cfg.preset}) ---")
        r = run_seed(data, cfg, seed, out_dir / f"seed_{seed}" if out_dir else None, device=device, amp=amp,
                     resume=resume, progress=progress, log=log, prepared=prepared, compile=compile,
                     legend=legend and not per_seed)
        per_seed.append(r)
    mean, std = summarize(per_seed)
    results = {
        "dataset": data.dataset, "data_source": data.source, "synthetic": data.synthetic,
        "model": model_kind(cfg), "variant": cfg.variant, "config": cfg.to_dict(),
        "dims": {m: list(v) for m, v in data.dims.items()},
        "per_seed": [{k: r[k] for k in ("seed", "best_epoch", "epochs_run", "train_time_s", "valid", "test", "start",
                                         "starts") if k in r}
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
    check_checkpoint_keys(ck, checkpoint)
    cfg = checkpoint_config(ck, checkpoint)
    dims = checkpoint_dims(ck, checkpoint)
    missing = [m for m in cfg.modalities if m not in dims]
    if missing:
        raise ValueError(f"{checkpoint}: checkpoint 'dims' lacks {missing}, modalities of its model")
    encoder = TextEncoder.from_spec(ck["text_encoder"]) if ck.get("text_encoder") else None
    model = build_model(cfg, dims, encoder)
    load_weights(model, ck["model"], checkpoint)
    model.eval()
    try:
        normalizer = Normalizer.from_state_dict(ck["normalizer"])
    except (KeyError, TypeError, AttributeError, ValueError) as e:
        raise ValueError(f"{checkpoint}: checkpoint 'normalizer' is not a normaliser's state ({type(e).__name__}: "
                         f"{e})") from None
    return model, cfg, normalizer, ck


def check_fits_checkpoint(data: MultimodalData, split: str, cfg, ck: dict) -> None:
    """Refuse data without ``split`` or with other input sizes (T, D) than the checkpoint was trained on.
    With a fine-tuned text encoder, call it after :func:`prepare_inputs`: text is then the token ids, whose
    length is compared (the encoder sets the width)."""
    if split not in data.splits:
        raise ValueError(f"{data.source}: no split {split!r}; it has {sorted(data.splits)}")
    encoder = bool(getattr(cfg, "text_encoder", None))
    dims = input_dims(data, cfg) if encoder else data.dims
    for m in cfg.modalities:
        have, want = tuple(dims[m]), tuple(ck["dims"][m])
        if encoder and m == "text":
            have, want = have[:1], want[:1]  # (L,): token ids; the width is the encoder's
        if have != want:
            what = "token ids are" if encoder and m == "text" else "features are"
            raise ValueError(f"{data.source}: {m} {what} {tuple(dims[m])[:len(have)]} (T, D) but the checkpoint was "
                             f"trained on {want}")


def load_data_for(checkpoint, ck: dict, data_path, dataset: str | None = None) -> MultimodalData:
    """Load a pickle to run a checkpoint on; refuse data of another dataset than the one it was trained on.

    The data's dataset is ``dataset`` (``--dataset``) or the pickle's own (meta["dataset"], else inferred from
    its labels), never silently the checkpoint's: a MOSI model scored with MOSI metrics on SIMS labels is wrong.
    """
    if data_path is None:  # the embedded synthetic data, as `train` uses without --data
        from ..data import synthetic_data
        data = synthetic_data(kind=dataset or ck.get("dataset", "mosi"), seed=0)
    else:
        data = load_mmsa(data_path, dataset=dataset)
    trained = ck.get("dataset")
    if trained is not None and data.dataset != trained:
        how = "--dataset" if dataset else "the pickle's meta or labels"
        raise ValueError(f"{data_path} is dataset {data.dataset!r} (from {how}) but {checkpoint} was trained on "
                         f"{trained!r}: its label range and metrics do not apply; use data of {trained!r}")
    return data


def evaluate_checkpoint(checkpoint, data_path, split: str = "test", dataset: str | None = None,
                        device="cpu") -> dict:
    """Metrics of a saved model on one split of a pickle (None: the embedded synthetic data, as ``train``
    uses without --data), with the checkpoint's own normaliser."""
    model, cfg, normalizer, ck = load_model(checkpoint)
    data = prepare_inputs(load_data_for(checkpoint, ck, data_path, dataset), cfg)
    check_fits_checkpoint(data, split, cfg, ck)
    device = resolve_device(device)
    model.to(device)
    tensors = {k: v.to(device) for k, v in model_tensors(normalizer.transform(data[split]), cfg).items()}
    pred, _ = predict(model, tensors)
    return evaluate_metrics(pred.numpy(), tensors["label"].cpu().numpy(), data.dataset)
