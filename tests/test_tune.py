"""`tune`: an Optuna study on the validation split only, shared through its storage, and `train --params`.

Several workers on one PostgreSQL study: tests/test_tune_db.py."""
import contextlib
import csv
import json
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import SMALL_DIMS
from mcihn.cli import main
from mcihn.data import from_mmsa_dict, make_synthetic
from mcihn.experiments.tune import (PAPER_GRID, open_storage, read_params, searched_fields, suggest, tune,
                                   without_test)
from mcihn.model.config import MCIHNConfig
from mcihn.training.registry import make_config

pytestmark = pytest.mark.usefixtures("torch_single_thread")
SPLITS = {"train": 48, "valid": 16, "test": 16}
FIX = {"epochs": 2, "latent_len": 4, "latent_dim": 12, "heads": 3, "disc_hidden": 8}


def data(scramble_test: bool = False):
    obj = make_synthetic("mosi", splits=dict(SPLITS), dims=dict(SMALL_DIMS), seed=4)
    if scramble_test:
        rng = np.random.default_rng(0)
        obj["test"]["regression_labels"] = rng.permutation(obj["test"]["regression_labels"])
        obj["test"]["audio"] = rng.normal(size=obj["test"]["audio"].shape).astype(np.float32)
    return from_mmsa_dict(obj, source="tune-test")


def values(study):
    return [(t.params, t.value) for t in study.trials]


def test_the_study_never_sees_the_test_split(tmp_path):
    kw = dict(model="mcihn", preset="tiny", trials=3, seeds=(1,), overrides=FIX, progress=False, log=lambda *a: None,
              sampler_seed=0)
    a = tune(data(), tmp_path / "a", **kw)
    b = tune(data(scramble_test=True), tmp_path / "b", **kw)
    assert values(a) == values(b) and len(a.trials) == 3
    assert "test" not in without_test(data()).splits
    for t in a.trials:  # every searched weight is from the paper's grid
        assert {t.params[k] for k in ("mmd_weight", "adv_weight")} <= set(PAPER_GRID)
    best = json.loads((tmp_path / "a" / "best.json").read_text())
    assert best["value"] == min(v for _, v in values(a)) and best["selected_on"].startswith("validation")
    assert (tmp_path / "a" / "trials.csv").read_text().count("\n") == 4


def test_a_study_continues_in_its_storage(tmp_path):
    kw = dict(model="tfn", preset="tiny", seeds=(1,), overrides={"epochs": 1}, progress=False, log=lambda *a: None)
    tune(data(), tmp_path, trials=1, **kw)
    again = tune(data(), tmp_path, trials=2, storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="tfn-tiny", **kw)
    assert len(again.trials) == 2  # one more trial added to the same study
    assert "mmd_weight" not in again.trials[0].params and "dropout" in again.trials[0].params
    assert searched_fields(make_config("tfn", "tiny")) == ["dropout", "lr"]
    assert "text_lr" in searched_fields(MCIHNConfig.tiny(text_encoder="x"))


def test_tune_command_then_train_with_its_params(tmp_path, capsys):
    pkl = tmp_path / "d.pkl"
    obj = make_synthetic("mosi", splits=dict(SPLITS), dims=dict(SMALL_DIMS), seed=4)
    pkl.write_bytes(pickle.dumps(obj, protocol=4))
    out = tmp_path / "study"
    assert main(["tune", "--data", str(pkl), "--model", "late", "--preset", "tiny", "--trials", "2", "--seeds", "1",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert "--params" in capsys.readouterr().out
    params = read_params(out / "best.json", "late")
    assert set(params) >= {"dropout", "lr"} and "epochs" not in params  # the study's epoch cap is not taken
    run = tmp_path / "run"
    assert main(["train", "--data", str(pkl), "--model", "late", "--preset", "tiny", "--params", str(out / "best.json"),
                 "--seeds", "1", "--epochs", "1", "--out", str(run), "--quiet"]) == 0
    cfg = json.loads((run / "results.json").read_text())["config"]
    assert cfg["lr"] == pytest.approx(params["lr"]) and cfg["dropout"] == params["dropout"] and cfg["epochs"] == 1
    assert main(["train", "--data", str(pkl), "--model", "tfn", "--params", str(out / "best.json"), "--out",
                 str(tmp_path / "r2")]) == 2
    assert "tuned for --model late" in capsys.readouterr().err


REPO = Path(__file__).resolve().parents[1]
QUIET = dict(progress=False, log=lambda *a, **k: None)


def rows(folder) -> list[dict]:
    with open(Path(folder) / "trials.csv", newline="") as f:
        return list(csv.DictReader(f))


def finished_params(study) -> list[tuple]:
    return [tuple(sorted(t.params.items())) for t in study.trials if t.state.name == "COMPLETE"]


def pickle_file(folder, splits=SPLITS) -> Path:
    path = Path(folder) / "d.pkl"
    path.write_bytes(pickle.dumps(make_synthetic("mosi", splits=dict(splits), dims=dict(SMALL_DIMS), seed=4),
                                  protocol=4))
    return path


def test_extending_a_study_draws_new_settings(tmp_path, capsys):
    """Issue 19, defect 1: --trials 3, then --trials 5 in the same folder re-ran trials 0 and 1 (every process seeded
    its sampler with 0). Now each run draws its own settings, and --trials counts the finished trials in all."""
    pkl, out = pickle_file(tmp_path), tmp_path / "T"
    argv = ["tune", "--data", str(pkl), "--model", "late", "--preset", "tiny", "--seeds", "1", "--epochs", "1",
            "--out", str(out), "--quiet"]
    assert main([*argv, "--trials", "3"]) == 0
    assert main([*argv, "--trials", "5"]) == 0
    assert main([*argv, "--trials", "5"]) == 0  # nothing left to run
    table = rows(out)
    assert [r["state"] for r in table] == ["COMPLETE"] * 5
    settings = [(r["dropout"], r["lr"]) for r in table]
    assert len(set(settings)) == 5, settings
    # a fixed --sampler-seed is reproducible, and still does not repeat itself when the study grows
    a = tune(data(), tmp_path / "a", model="late", trials=2, seeds=(1,), overrides={"epochs": 1}, sampler_seed=7,
             **QUIET)
    a = tune(data(), tmp_path / "a", model="late", trials=4, seeds=(1,), overrides={"epochs": 1}, sampler_seed=7,
             **QUIET)
    assert len(set(finished_params(a))) == 4


def _wait_for(predicate, proc, timeout: float = 150, what: str = ""):
    """Poll ``predicate`` until it returns something true; fail if ``proc`` ends first or time runs out."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        value = predicate()
        if value:
            return value
        if proc.poll() is not None:
            out, err = proc.communicate()
            raise AssertionError(f"the worker ended (exit {proc.returncode}) before {what}: {out[-1000:]} {err[-2000:]}")
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _running_trial_of(url: str, pid: int):
    """The number (+1) of a RUNNING trial that process ``pid`` is training (all its settings drawn), else None. Read
    from the SQLite file read-only: the test must not write to (or create tables in) the worker's database."""
    import sqlite3

    path = Path(url.removeprefix("sqlite:///"))
    fields = len(searched_fields(make_config("mcihn", "tiny")))
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
            rows = db.execute(
                "SELECT t.number, (SELECT value_json FROM trial_user_attributes a WHERE a.trial_id = t.trial_id AND "
                "a.key = 'pid'), (SELECT COUNT(*) FROM trial_params p WHERE p.trial_id = t.trial_id) FROM trials t "
                "WHERE t.state = 'RUNNING'").fetchall()
    except sqlite3.Error:  # no file or no tables yet, or busy
        return None
    for number, pid_json, n_params in rows:
        if pid_json is not None and json.loads(pid_json) == pid and n_params == fields:
            return number + 1  # (0 is falsy)
    return None


def _tune_process(pkl, out, *args):
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mcihn", "tune", "--data", str(pkl), "--preset", "tiny", "--seeds",
                             "1", "--out", str(out), *args], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


#: Enough clips and epochs (with --epochs 15) that a trial runs for a second or two: a signal lands inside a trial.
SLOW_SPLITS = {"train": 240, "valid": 24, "test": 8}


def test_sigterm_ends_a_worker_cleanly_and_the_trial_is_run_again(tmp_path):
    """Issue 19, defect 5 and SIGTERM: a worker stopped in its second trial writes trials.csv and best.json from the
    finished trial, prints one line (no Optuna traceback, no --resume), exits 143; the interrupted trial is failed and
    queued again with the same settings, and the next run trains it."""
    pkl, out = pickle_file(tmp_path, SLOW_SPLITS), tmp_path / "T"
    url = f"sqlite:///{out / 'study.db'}"
    p = _tune_process(pkl, out, "--trials", "4", "--epochs", "15")
    try:  # wait until a trial has finished and the next one trains
        n = _wait_for(lambda: max(0, (_running_trial_of(url, p.pid) or 0) - 1), p, what="a second trial to run")
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=120)
    finally:
        p.kill()
    assert p.returncode == 143, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("terminated (SIGTERM)") and "--resume" not in err, err
    assert str(out / "trials.csv") in err
    table = rows(out)
    assert [r["state"] for r in table] == ["COMPLETE"] * n + ["FAIL", "WAITING"], table
    assert "interrupted" in table[n]["note"] and table[n + 1]["note"].startswith(f"retry of trial {n}")
    assert json.loads((out / "best.json").read_text())["trial"] < n
    assert not (out / ".mcihn.lock").read_text()  # released
    assert main(["tune", "--data", str(pkl), "--preset", "tiny", "--seeds", "1", "--epochs", "1", "--trials",
                 str(n + 1), "--out", str(out), "--quiet"]) == 0
    table = rows(out)
    assert [r["state"] for r in table] == ["COMPLETE"] * n + ["FAIL", "COMPLETE"], table
    assert table[n + 1]["lr"] == table[n]["lr"] and table[n + 1]["dropout"] == table[n]["dropout"]


def test_a_killed_trial_is_failed_and_run_again(tmp_path):
    """Issue 19, defect 10: a SIGKILLed worker's trial stayed RUNNING forever. The next worker on the machine sees
    that its process is gone, marks it failed and runs its settings again."""
    pkl, out = pickle_file(tmp_path, SLOW_SPLITS), tmp_path / "T"
    url = f"sqlite:///{out / 'study.db'}"
    p = _tune_process(pkl, out, "--trials", "3", "--epochs", "15")
    try:
        _wait_for(lambda: _running_trial_of(url, p.pid), p, what="a running trial")
    finally:
        p.kill()
        p.communicate()
    study = tune(data(), out, trials=1, seeds=(1,), overrides={"epochs": 1}, storage=url, study_name="mcihn-tiny",
                 **QUIET)
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "COMPLETE"], states
    assert study.trials[1].params == study.trials[0].params
    assert study.trials[1].system_attrs["failed_trial"] == 0
    assert "queued again as trial 1" in rows(out)[0]["note"]


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_a_silent_trial_of_another_machine_is_failed_after_its_grace_period(tmp_path):
    """A trial whose heartbeat stopped (a worker on another machine was lost) is failed and retried by Optuna's
    heartbeat check, with the same settings."""
    import optuna

    url = f"sqlite:///{tmp_path / 'study.db'}"
    storage = open_storage(url, heartbeat_interval=1, grace_period=1)
    study = optuna.create_study(study_name="s", storage=storage, direction="minimize")
    lost = study.ask()
    params = suggest(lost, make_config("late", "tiny"))
    lost.set_user_attr("host", "another-machine")
    lost.set_user_attr("pid", os.getpid())
    storage.record_heartbeat(lost._trial_id)
    time.sleep(2.2)
    study = tune(data(), tmp_path, model="late", trials=1, seeds=(1,), overrides={"epochs": 1}, storage=storage,
                 study_name="s", **QUIET)
    assert [t.state.name for t in study.trials] == ["FAIL", "COMPLETE"]
    assert study.trials[1].params == params


def test_train_params_takes_the_tuned_settings_not_the_studys_epoch_cap(tmp_path):
    """A study run with ``tune --epochs 2`` records ``"overrides": {"epochs": 2}``; ``train --params`` takes the
    tuned hyper-parameters and the modalities, and trains to the preset's epoch budget (or ``--epochs``)."""
    from mcihn.cli import build_parser
    from mcihn.cli.train import _train_config

    best = tmp_path / "best.json"
    best.write_text(json.dumps({"model": "tfn", "preset": "tiny", "params": {"lr": 0.002, "dropout": 0.3},
                                "overrides": {"modalities": "ta", "epochs": 2, "patience": 1}}))

    def config(*flags):
        a = build_parser().parse_args(["train", "--model", "tfn", "--params", str(best), "--out", str(tmp_path / "r"),
                                       *flags])
        return _train_config(a, "tiny")

    tiny = make_config("tfn", "tiny")
    cfg = config()
    assert cfg.lr == 0.002 and cfg.dropout == 0.3 and cfg.modalities == ("text", "audio")
    assert (cfg.epochs, cfg.patience) == (tiny.epochs, tiny.patience) != (2, 1)
    assert config("--epochs", "5").epochs == 5
