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
  URL Optuna accepts (``postgresql://...``), and several processes or machines running ``tune`` with the same
  ``--storage`` and ``--study-name`` (each with its own ``--out``) share one study, Optuna's own way: each
  worker asks the database for its next trial. So that they share it well:

  - each worker's TPE sampler has its own seed (random, or ``sampler_seed`` plus the trials the study already
    holds), so no two workers and no rerun draw the same settings; a setting equal to a finished trial's is
    not trained again;
  - ``trials`` is the number of finished trials in the study in all: a worker stops when the finished and
    running trials reach it (a trial started in a race past it is pruned unrun);
  - a running trial records a heartbeat every ``heartbeat_interval`` seconds; one not heard of for
    ``grace_period`` seconds (a killed worker, a lost machine) is marked failed and queued again with the
    same settings (Optuna's RetryHeartbeatStaleTrialCallback); a worker on the same machine re-queues the
    trial of a dead local process at once, and a Ctrl-C or SIGTERM re-queues the interrupted trial;
  - every worker writes ``trials.csv`` and ``best.json`` of what has finished when it stops, interrupted
    or not.

Output folder DIR::

    DIR/study.db      the Optuna study (SQLite, unless --storage says otherwise)
    DIR/trials.csv    one line per trial: number, state, value (mean valid MAE), params, per-seed MAEs, the
                      worker (host:pid) that ran it, a note (a retry, a failure, a trial not run)
    DIR/best.json     {"params", "value", "trial", "model", "preset", "seeds", "config", "finished_trials"}:
                      `train --params` reads it
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import inspect
import logging
import math
import os
import random
import re
import socket
import time
import warnings
from pathlib import Path

from ..data import MultimodalData
from ..training.registry import config_class, make_config, model_kind
from ..training.runner import prepare, run_seed
from ..utils import atomic_write_bytes, atomic_write_json, jsonable, pid_alive

#: Seconds between two heartbeats of a running trial (``--heartbeat``); a trial not heard of for
#: GRACE_FACTOR times as long is marked failed and retried.
HEARTBEAT_S = 60
GRACE_FACTOR = 3
#: How often one trial is retried after its worker died.
MAX_RETRY = 3

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


def shown_url(url: str) -> str:
    """A storage URL without its password, for messages."""
    try:
        from sqlalchemy.engine import make_url
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL (or an old SQLAlchemy): hide what looks like a password
        return re.sub(r"://([^:/@]*):[^@/]*@", r"://\1:***@", url)


def check_storage(url: str, flag: str = "--storage") -> None:
    """Refuse, before any data is loaded or anything written, a storage URL that cannot work: not a URL, a
    database kind SQLAlchemy does not know, a driver that is not installed, an SQLite file in a missing folder."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        u = make_url(url)
    except (ArgumentError, ValueError) as e:
        raise ValueError(f"{flag} {url}: not a database URL ({e}); write e.g. sqlite:///DIR/study.db or "
                         "postgresql://USER:PASSWORD@HOST/DB") from None
    shown = shown_url(url)
    try:
        dialect = u.get_dialect()
    except NoSuchModuleError:
        raise ValueError(f"{flag} {shown}: unknown database kind {u.drivername!r}; use sqlite, postgresql or "
                         "mysql") from None
    load = getattr(dialect, "import_dbapi", None) or getattr(dialect, "dbapi")
    try:
        load()
    except ImportError as e:
        raise ValueError(f"{flag} {shown}: the Python driver of {u.drivername!r} is not installed "
                         f"({type(e).__name__}: {e}); for PostgreSQL: pip install -e \".[tune-db]\" "
                         "(psycopg)") from None
    if u.get_backend_name() == "sqlite" and u.database not in (None, "", ":memory:"):
        folder = Path(u.database).expanduser().parent
        if not folder.is_dir():
            raise ValueError(f"{flag} {shown}: the folder {folder} of the SQLite file does not exist")


#: A worker's user attributes of a trial, which a retry must not inherit (another worker will run it).
_WORKER_ATTRS = ("host", "pid", "worker", "sampler_seed", "failure")


class _Retry:
    """Optuna's callback that queues a failed trial again with the same settings (``RetryHeartbeatStaleTrialCallback``;
    ``RetryFailedTrialCallback`` before Optuna 4.9), minus the failed worker's attributes: a queued trial must not
    look like a trial of the dead process that ran the original."""

    def __init__(self, max_retry: int = MAX_RETRY):
        import optuna

        cls = (getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
               or optuna.storages.RetryFailedTrialCallback)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ExperimentalWarning
            self.inner = cls(max_retry=max_retry)

    def __call__(self, study, trial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k not in _WORKER_ATTRS}
        self.inner(study, trial)


def _retry_callback() -> _Retry:
    return _Retry()


def open_storage(url: str, heartbeat_interval: int = HEARTBEAT_S, grace_period: int | None = None,
                 flag: str = "--storage"):
    """An Optuna RDBStorage with heartbeats and the retry callback; errors (server down, bad password, ...) name
    ``flag`` and the URL (without its password) in one line."""
    import optuna

    check_storage(url, flag)
    params = inspect.signature(optuna.storages.RDBStorage.__init__).parameters
    callback = ("heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params
                else "failed_trial_callback")
    heartbeat_interval = max(1, int(heartbeat_interval))
    from sqlalchemy.engine import make_url
    engine = {"connect_args": {"connect_timeout": 20}} if make_url(url).get_backend_name() == "postgresql" else None
    for attempt in range(6):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the heartbeat's ExperimentalWarning
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, heartbeat_interval=heartbeat_interval,
                    grace_period=int(grace_period or GRACE_FACTOR * heartbeat_interval),
                    **{callback: _retry_callback()})
        except Exception as e:  # noqa: BLE001 - SQLAlchemy's and the driver's errors: one line
            if attempt < 5 and _creating_tables(e):  # workers started together on a new database: let one win
                time.sleep(0.2 + 0.4 * attempt + random.random() * 0.3)
                continue
            first = (str(e).strip().splitlines() or [""])[0][:200]
            raise ValueError(f"{flag} {shown_url(url)}: cannot open the study database ({type(e).__name__}: "
                             f"{first})") from None


def _creating_tables(e: Exception) -> bool:
    """True for the error of a worker that raced another one creating the study tables of a new database (SQLAlchemy's
    create_all checks, then creates)."""
    text = str(e).lower()
    return "already exists" in text or "duplicate key" in text or "database is locked" in text


class _NoFailedTrialLog(logging.Filter):
    """Optuna logs a failed trial with its traceback; the command line says what happened in one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        return not (msg.startswith("Trial ") and " failed" in msg)


_FILTER = _NoFailedTrialLog()


def _quiet_optuna() -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for name in ("optuna.study._optimize", "optuna.study.study"):
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)


def _counts(study) -> tuple[int, int]:
    """(finished, running) trials of the study."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING))
    done = sum(t.state == TrialState.COMPLETE for t in trials)
    return done, len(trials) - done


def _fail_and_retry(study, trial_id: int, retry) -> bool:
    """Mark a running trial failed and queue it again (True), unless another worker finished or failed it first."""
    import optuna
    from optuna.trial import TrialState

    try:
        if not study._storage.set_trial_state_values(trial_id, state=TrialState.FAIL):
            return False
    except optuna.exceptions.UpdateFinishedTrialError:
        return False
    retry(study, study._storage.get_trial(trial_id))
    return True


def reclaim_trials(study, retry, log=print) -> list[int]:
    """Fail and re-queue the running trials whose worker is gone: those of a dead process of this machine (at
    once) and those whose heartbeat stopped (Optuna's ``fail_stale_trials``). Returns the reclaimed numbers."""
    import optuna
    from optuna.trial import TrialState

    host, me, numbers = socket.gethostname(), os.getpid(), []
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and pid != me and not pid_alive(pid):
            if _fail_and_retry(study, t._trial_id, retry):
                numbers.append(t.number)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ExperimentalWarning
        optuna.storages.fail_stale_trials(study)
    numbers += sorted({t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))} - before)
    if numbers:
        log(f"trial(s) {', '.join(map(str, numbers))} of a worker that stopped (killed or lost): marked failed and "
            "queued again with the same settings")
    return numbers


def tune(data: MultimodalData, out_dir, model: str = "mcihn", preset: str = "tiny", trials: int = 20,
         seeds=(1111, 1112), storage=None, study_name: str | None = None, overrides: dict | None = None,
         device="cpu", sampler_seed: int | None = None, progress: bool = True, log=print,
         heartbeat_interval: int = HEARTBEAT_S, grace_period: int | None = None):
    """Run (or continue, or join) a study until it holds ``trials`` finished trials; returns it.

    ``overrides`` fix other config fields (epochs, modalities, ...). ``storage``: a URL, an Optuna storage
    (:func:`open_storage`), or None for ``sqlite:///DIR/study.db``. ``sampler_seed``: None draws this worker's
    seed at random; an integer makes a single worker reproducible (the seed is that plus the number of trials
    the study holds, so a rerun does not draw the first settings again). A Ctrl-C (KeyboardInterrupt) re-queues
    the running trial, writes trials.csv and best.json, and is raised again."""
    import optuna

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    n_train = len(data["train"])  # sizes of the auto preset
    base = make_config(model, preset, n_train=n_train, **(overrides or {}))  # config errors before any trial
    seen = without_test(data)
    prepared = prepare(seen, base)  # checked inputs and train-split statistics, shared by every trial
    url = storage if isinstance(storage, str) else getattr(storage, "url", None)
    if storage is None or isinstance(storage, str):
        url = storage or f"sqlite:///{(out_dir / 'study.db').resolve()}"
        storage = open_storage(url, heartbeat_interval, grace_period)
    name = study_name or f"{model_kind(base)}-{preset}"
    _quiet_optuna()
    study = optuna.create_study(study_name=name, storage=storage, direction="minimize", load_if_exists=True)
    if sampler_seed is None:
        seed = int.from_bytes(os.urandom(4), "little") >> 1
    else:
        seed = int(sampler_seed) + len(study.trials)
    study.sampler = optuna.samplers.TPESampler(seed=seed)
    retry = _retry_callback()
    host, pid = socket.gethostname(), os.getpid()
    quiet = lambda *a, **k: None  # noqa: E731
    current = {}

    def objective(trial):
        current["id"] = trial._trial_id
        for k, v in (("host", host), ("pid", pid), ("worker", f"{host}:{pid}"), ("sampler_seed", seed)):
            trial.set_user_attr(k, v)
        ahead = [t for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,
                                                                      optuna.trial.TrialState.RUNNING))
                 if t.number < trial.number]
        if len(ahead) >= trials:  # another worker started the last trial at the same moment
            trial.set_user_attr("not_run", f"not run: the study had its {trials} trials")
            raise optuna.TrialPruned()
        params = suggest(trial, base)
        same = [t.number for t in ahead if t.params == params]
        if same:
            trial.set_user_attr("not_run", f"not run: the settings of trial {same[0]}")
            raise optuna.TrialPruned()
        cfg = make_config(model, preset, n_train=n_train, **{**(overrides or {}), **params})
        maes = []
        try:
            for s in seeds:
                res = run_seed(seen, cfg, s, device=device, progress=False, log=quiet, prepared=prepared,
                               evaluate_test=False)
                maes.append(res["valid"]["MAE"])
                trial.report(sum(maes) / len(maes), len(maes) - 1)
        except KeyboardInterrupt:
            trial.set_user_attr("failure", "interrupted (Ctrl-C or SIGTERM)")
            raise
        trial.set_user_attr("valid_mae_per_seed", maes)
        value = sum(maes) / len(maes)
        if progress:
            log(f"trial {trial.number}: validation MAE {value:.4f} with {params}")
        return value

    reclaim_trials(study, retry, log)
    done, running = _counts(study)
    log(f"study {name!r} in {shown_url(url) if url else storage}: {done} finished trial(s), {running} running in "
        f"other workers, {max(0, trials - done - running)} to run (--trials {trials} in all); fields "
        f"{searched_fields(base)}; value = validation MAE over seeds {list(seeds)} (the test split is not loaded); "
        f"this worker's sampler seed {seed}")
    finished = False
    try:
        while True:
            reclaim_trials(study, retry, log)
            done, running = _counts(study)
            if done + running >= trials:
                break
            current.clear()
            try:
                study.optimize(objective, n_trials=1, show_progress_bar=False)
            except (ValueError, optuna.exceptions.UpdateFinishedTrialError) as e:
                trial = study._storage.get_trial(current["id"]) if current.get("id") is not None else None
                if trial is None or trial.state != optuna.trial.TrialState.FAIL or (
                        isinstance(e, ValueError) and not str(e).startswith("Cannot tell")):
                    raise
                log(f"trial {trial.number} was marked failed by another worker while it ran (its heartbeat came late: "
                    "an overloaded machine? see --heartbeat); its settings were queued again")
        finished = True
    except KeyboardInterrupt:
        if current.get("id") is not None:
            trial = study._storage.get_trial(current["id"])
            if trial.state == optuna.trial.TrialState.FAIL:
                retry(study, trial)  # the next run (or another worker) trains it again
        raise
    finally:  # what has finished, also when stopped (an error while stopping must not hide the first one)
        with contextlib.nullcontext() if finished else contextlib.suppress(Exception):
            write_results(study, out_dir, model, preset, seeds, base, overrides)
    done, running = _counts(study)
    if running:
        log(f"{running} trial(s) still running in other workers; the study will have its {trials} when they finish "
            "(a worker that dies is replaced: its trial is queued again)")
    return study


def _notes(trials) -> dict:
    """trial number -> a note for trials.csv: a retry, a failure and its retry, a trial not run."""
    from optuna.trial import TrialState

    def previous(t):  # the trial a retry repeats (Optuna's retry_history ends with it)
        history = t.system_attrs.get("retry_history") or [t.system_attrs["failed_trial"]]
        return history[-1]

    retried_as = {previous(t): t.number for t in trials if "failed_trial" in t.system_attrs}
    notes = {}
    for t in trials:
        parts = [f"retry of trial {previous(t)}"] if "failed_trial" in t.system_attrs else []
        if t.state == TrialState.FAIL:
            parts.append(t.user_attrs.get("failure") or "stopped without a result (its worker was killed or lost, "
                                                         "or training failed)")
            if t.number in retried_as:
                parts.append(f"queued again as trial {retried_as[t.number]}")
        elif t.state == TrialState.PRUNED and t.user_attrs.get("not_run"):
            parts.append(t.user_attrs["not_run"])
        elif t.state == TrialState.WAITING:
            parts.append("waiting for a worker")
        notes[t.number] = "; ".join(parts)
    return notes


def write_results(study, out_dir: Path, model: str, preset: str, seeds, base, overrides) -> None:
    """DIR/trials.csv and DIR/best.json (atomically), from the trials the study holds now."""
    import csv
    import io

    from optuna.trial import TrialState

    fields = searched_fields(base)
    trials = study.get_trials(deepcopy=False)
    notes = _notes(trials)
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["trial", "state", "valid_MAE", *fields, "valid_MAE_per_seed", "worker", "note"])
    for t in trials:
        w.writerow([t.number, t.state.name, "" if t.value is None else round(t.value, 5),
                    *[t.params.get(f, "") for f in fields], t.user_attrs.get("valid_mae_per_seed", ""),
                    t.user_attrs.get("worker", ""), notes[t.number]])
    atomic_write_bytes(out_dir / "trials.csv", buf.getvalue().encode())
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None and math.isfinite(t.value)]
    if done:
        best = min(done, key=lambda t: (t.value, t.number))
        cfg = type(base).from_dict({**base.to_dict(), **best.params})  # the study's config with the best trial's values
        atomic_write_json(out_dir / "best.json", jsonable({
            "params": best.params, "value": best.value, "trial": best.number, "model": model, "preset": preset,
            "seeds": list(seeds), "overrides": overrides or {}, "config": cfg.to_dict(), "finished_trials": len(done),
            "selected_on": "validation MAE (the test split was not loaded)"}))


#: dataclass field type (as written in the config classes) -> the JSON values it accepts.
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "bool": (bool,), "None": (type(None),),
               "tuple": (list, tuple, str), "dict": (dict,)}


def check_settings(settings: dict, model: str, where: str) -> None:
    """Refuse settings that a config of ``model`` does not have, or of the wrong JSON type, naming ``where``."""
    fields = {f.name: f for f in dataclasses.fields(config_class(model))}
    unknown = [k for k in settings if k not in fields]
    if unknown:
        raise ValueError(f"{where}: unknown setting(s) {', '.join(map(repr, unknown))} for --model {model}")
    for key, value in settings.items():
        kind = fields[key].type if isinstance(fields[key].type, str) else getattr(fields[key].type, "__name__", "")
        names = [n.strip() for n in str(kind).split("|")]
        if not all(n in _JSON_TYPES for n in names):
            continue  # a type this check does not know: the config checks it
        ok = any(isinstance(value, _JSON_TYPES[n]) for n in names)
        if isinstance(value, bool) and "bool" not in names:
            ok = False  # True is an int to Python, not a number to a config
        if not ok:
            raise ValueError(f"{where}: setting {key!r} is {value!r} ({type(value).__name__}), expected {kind}")


#: Overrides of a study that only bound its cost (``tune --epochs 2``): ``train --params`` does not take them.
BUDGET_FIELDS = ("epochs", "patience")


def read_params(path, model: str | None = None) -> dict:
    """The chosen settings of a ``best.json`` (``train --params``): the tuned params, plus the fixed overrides
    that say which model was tuned (``modalities``, ``text_encoder``), not those that only capped the search's
    budget (:data:`BUDGET_FIELDS`: the study's epoch cap is not the training's). With ``model``, refuses a
    study of another model (its fields would not fit)."""
    import json

    try:
        best = json.loads(Path(path).read_text())
        fixed = {k: v for k, v in best.get("overrides", {}).items() if k not in BUDGET_FIELDS}
        params = {**fixed, **best["params"]}
    except FileNotFoundError:
        raise ValueError(f"--params {path}: no such file") from None
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ValueError(f"--params {path}: not a best.json written by `tune` ({type(e).__name__}: {e})") from None
    if model is not None and best.get("model", model) != model:
        raise ValueError(f"--params {path}: settings tuned for --model {best.get('model')}, not {model}")
    if model is not None:
        check_settings(params, model, f"--params {path}")
        try:  # the values: what the config refuses (lr -5, dropout 2)
            make_config(model, str(best.get("preset", "paper")), **params)
        except (ValueError, TypeError) as e:
            raise ValueError(f"--params {path}: {e}") from None
    return params
