"""`tune`: an Optuna study on the validation split only, shared through its storage, and `train --params`."""
import json

import numpy as np
import pytest

from conftest import SMALL_DIMS
from mcihn.cli import main
from mcihn.data import from_mmsa_dict, make_synthetic
from mcihn.experiments.tune import PAPER_GRID, read_params, searched_fields, tune, without_test
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
    kw = dict(model="mcihn", preset="tiny", trials=3, seeds=(1,), overrides=FIX, progress=False, log=lambda *a: None)
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
    import pickle

    pkl = tmp_path / "d.pkl"
    obj = make_synthetic("mosi", splits=dict(SPLITS), dims=dict(SMALL_DIMS), seed=4)
    pkl.write_bytes(pickle.dumps(obj, protocol=4))
    out = tmp_path / "study"
    assert main(["tune", "--data", str(pkl), "--model", "late", "--preset", "tiny", "--trials", "2", "--seeds", "1",
                 "--epochs", "1", "--out", str(out), "--quiet"]) == 0
    assert "--params" in capsys.readouterr().out
    params = read_params(out / "best.json", "late")
    assert set(params) >= {"dropout", "lr", "epochs"}
    run = tmp_path / "run"
    assert main(["train", "--data", str(pkl), "--model", "late", "--preset", "tiny", "--params", str(out / "best.json"),
                 "--seeds", "1", "--out", str(run), "--quiet"]) == 0
    cfg = json.loads((run / "results.json").read_text())["config"]
    assert cfg["lr"] == pytest.approx(params["lr"]) and cfg["dropout"] == params["dropout"] and cfg["epochs"] == 1
    assert main(["train", "--data", str(pkl), "--model", "tfn", "--params", str(out / "best.json"), "--out",
                 str(tmp_path / "r2")]) == 2
    assert "tuned for --model late" in capsys.readouterr().err
