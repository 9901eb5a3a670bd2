"""Hyper-parameter search on the validation split only, with Optuna.

Sec. 4.3: "The hyperparameters in the model are tuned within the range [0.001, 0.01, 0.1, 0.3, 0.5,
0.7, 0.9, 0.99]". The paper does not say which, nor on which split; MMSA's tune mode selects on the
*test* split. Here:

* the searched fields are the loss weights the paper's range fits (lambda of L_Adp, the adversarial
  and reconstruction weights: ``PAPER_GRID``) and dropout, each over that grid, plus the learning
  rates on a log scale; a field the model's config does not have is left out (a baseline has no
  lambda);
* a trial's value is the validation MAE of the best epoch, averaged over ``seeds``;
* the test split is **removed** from the data before the first trial, so nothing in the study can
  read it (``tests/test_tune.py`` scrambles the test labels and gets the same study);
* the study lives in an SQLite file in the output folder by default; ``storage`` takes any database
  URL Optuna accepts (``postgresql://...``), and several machines running ``tune`` with the same
  ``--storage`` and ``--study-name`` share one study (Optuna's own way: each process asks the database
  for its next trial).

Output folder DIR::

    DIR/study.db      the Optuna study (SQLite, unless --storage says otherwise)
    DIR/trials.csv    one line per trial: number, state, value (mean valid MAE), params, per-seed MAEs
    DIR/best.json     {"params", "value", "trial", "model", "preset", "seeds", "config"}: `train --params` reads it
"""
from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from ..data import MultimodalData
from ..training.registry import make_config, model_kind
from ..training.runner import prepare, run_seed
from ..utils import atomic_write_bytes, atomic_write_json, jsonable

#: Sec. 4.3's range for the model's hyper-parameters.
PAPER_GRID = (0.001, 0.01, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99)
#: config field -> how it is searched: ("grid",) over PAPER_GRID, or ("log", low, high).
SEARCH_SPACE = {
    "mmd_weight": ("grid",),      # lambda, Eq. 19
    "adv_weight": ("grid",),      # weight of the generator loss, Eq. 5
    "rec_weight": ("grid",),      # weight of the reconstruction loss, Eq. 4
    "dropout": ("grid",),
    "lr": ("log", 1e-4, 1e-2),
    "text_lr": ("log", 5e-6, 1e-4),  # only with a fine-tuned text encoder
}
#: dropout in [0, 1): 0.99 would leave almost nothing.
DROPOUT_GRID = tuple(v for v in PAPER_GRID if v <= 0.7)


def searched_fields(cfg) -> list[str]:
    """The SEARCH_SPACE fields this config has (text_lr only with a text encoder)."""
    fields = {f.name for f in dataclasses.fields(cfg)}
    return [k for k in SEARCH_SPACE if k in fields and (k != "text_lr" or getattr(cfg, "text_encoder", None))]


def suggest(trial, cfg) -> dict:
    """One point of the search space for ``cfg``'s fields."""
    params = {}
    for name in searched_fields(cfg):
        how = SEARCH_SPACE[name]
        if how[0] == "grid":
            params[name] = trial.suggest_categorical(name, list(DROPOUT_GRID if name == "dropout" else PAPER_GRID))
        else:
            params[name] = trial.suggest_float(name, how[1], how[2], log=True)
    return params


def without_test(data: MultimodalData) -> MultimodalData:
    """The data with its test split removed: what tuning may see."""
    return dataclasses.replace(data, splits={s: v for s, v in data.splits.items() if s != "test"})


def tune(data: MultimodalData, out_dir, model: str = "mcihn", preset: str = "tiny", trials: int = 20,
         seeds=(1111, 1112), storage: str | None = None, study_name: str | None = None, overrides: dict | None = None,
         device="cpu", sampler_seed: int = 0, progress: bool = True, log=print):
    """Run (or continue) a study; returns it. ``overrides`` fix other config fields (epochs, modalities, ...)."""
    import optuna

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_train = len(data["train"])  # sizes of the auto preset
    base = make_config(model, preset, n_train=n_train, **(overrides or {}))  # config errors before any trial
    seen = without_test(data)
    prepared = prepare(seen, base)  # checked inputs and train-split statistics, shared by every trial
    storage = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
    name = study_name or f"{model_kind(base)}-{preset}"
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True,
                                sampler=optuna.samplers.TPESampler(seed=sampler_seed))
    quiet = lambda *a, **k: None  # noqa: E731

    def objective(trial):
        params = suggest(trial, base)
        cfg = make_config(model, preset, n_train=n_train, **{**(overrides or {}), **params})
        maes = []
        for seed in seeds:
            res = run_seed(seen, cfg, seed, device=device, progress=False, log=quiet, prepared=prepared,
                           evaluate_test=False)
            maes.append(res["valid"]["MAE"])
            trial.report(sum(maes) / len(maes), len(maes) - 1)
        trial.set_user_attr("valid_mae_per_seed", maes)
        return sum(maes) / len(maes)

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    todo = max(0, trials - len([t for t in study.trials if t.state.is_finished()]))
    log(f"study {name!r} in {storage}: {len(study.trials)} trial(s) so far, {todo} to run; "
        f"fields {searched_fields(base)}; value = validation MAE over seeds {list(seeds)} (the test split is not loaded)")
    if todo:
        study.optimize(objective, n_trials=todo, show_progress_bar=progress)
    write_results(study, out_dir, model, preset, seeds, base, overrides)
    return study


def write_results(study, out_dir: Path, model: str, preset: str, seeds, base, overrides) -> None:
    """DIR/trials.csv and DIR/best.json (atomically)."""
    import csv
    import io

    fields = searched_fields(base)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", "state", "valid_MAE", *fields, "valid_MAE_per_seed"])
    for t in study.trials:
        w.writerow([t.number, t.state.name, "" if t.value is None else round(t.value, 5),
                    *[t.params.get(f, "") for f in fields], t.user_attrs.get("valid_mae_per_seed", "")])
    atomic_write_bytes(out_dir / "trials.csv", buf.getvalue().encode())
    done = [t for t in study.trials if t.value is not None and math.isfinite(t.value)]
    if done:
        best = study.best_trial
        cfg = type(base).from_dict({**base.to_dict(), **best.params})  # the study's config with the best trial's values
        atomic_write_json(out_dir / "best.json", jsonable({
            "params": best.params, "value": best.value, "trial": best.number, "model": model, "preset": preset,
            "seeds": list(seeds), "overrides": overrides or {}, "config": cfg.to_dict(),
            "selected_on": "validation MAE (the test split was not loaded)"}))


def read_params(path, model: str | None = None) -> dict:
    """The chosen settings of a ``best.json`` (``train --params``): the params, plus the fixed overrides.
    With ``model``, refuses a study of another model (its fields would not fit)."""
    import json

    try:
        best = json.loads(Path(path).read_text())
        params = {**best.get("overrides", {}), **best["params"]}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"--params {path}: not a best.json written by `tune` ({type(e).__name__}: {e})") from e
    if model is not None and best.get("model", model) != model:
        raise ValueError(f"--params {path}: settings tuned for --model {best.get('model')}, not {model}")
    return params
