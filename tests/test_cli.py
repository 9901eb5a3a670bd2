"""Tests for the command line (mcihn.cli.main), run in-process on a small synthetic pickle."""
from __future__ import annotations

import json
import time
import os
import pickle

import pytest
import torch

from conftest import SMALL_DIMS, SMALL_SPLITS
from mcihn.cli import main
from mcihn.data import load_mmsa
from mcihn.metrics import METRIC_KEYS
from mcihn.data import MOSI_SPLITS, write_synthetic

pytestmark = pytest.mark.usefixtures("torch_single_thread")

MOSI_KEYS = set(METRIC_KEYS["mosi"])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small pickle and one `train` run of two seeds into run/ (shared by the tests below)."""
    tmp = tmp_path_factory.mktemp("cli")
    data = tmp / "x.pkl"
    write_synthetic(data, splits=dict(SMALL_SPLITS), dims=dict(SMALL_DIMS), seed=1)
    out = tmp / "run"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rc = main(["train", "--data", str(data), "--preset", "tiny", "--epochs", "2", "--seeds", "1", "2",
                   "--out", str(out), "--quiet"])
    finally:
        torch.set_num_threads(old)
    return rc, data, out


def test_train_returns_0_and_writes_results(trained):
    rc, data, out = trained
    assert rc == 0
    res = json.loads((out / "results.json").read_text())
    for key in ("dataset", "config", "per_seed", "mean", "std"):
        assert key in res
    assert res["dataset"] == "mosi" and res["synthetic"] is True
    assert res["config"]["preset"] == "tiny" and res["config"]["epochs"] == 2
    assert [r["seed"] for r in res["per_seed"]] == [1, 2]
    for r in res["per_seed"]:
        assert {"seed", "best_epoch", "valid", "test"} <= set(r) and r["best_epoch"] in (1, 2)
        assert set(r["test"]) == MOSI_KEYS
        for f in ("best.pt", "last.pt", "history.json", "result.json"):
            assert (out / f"seed_{r['seed']}" / f).exists()
    assert set(res["mean"]) == set(res["std"]) == MOSI_KEYS


def test_second_train_into_the_same_out_refuses_without_resume(trained, capsys):
    rc0, data, out = trained
    before = (out / "results.json").read_bytes()
    rc = main(["train", "--data", str(data), "--preset", "tiny", "--epochs", "2", "--seeds", "1", "2",
               "--out", str(out), "--quiet"])
    assert rc != 0
    err = capsys.readouterr().err
    assert str(out) in err and "--resume" in err
    assert (out / "results.json").read_bytes() == before


def test_train_resume_of_a_finished_run_does_not_retrain(trained, capsys):
    _, data, out = trained
    last = {s: (out / f"seed_{s}" / "last.pt").read_bytes() for s in (1, 2)}
    old = json.loads((out / "results.json").read_text())
    rc = main(["train", "--data", str(data), "--preset", "tiny", "--epochs", "2", "--seeds", "1", "2",
               "--out", str(out), "--quiet", "--resume"])
    assert rc == 0
    assert "finished earlier" in capsys.readouterr().out
    assert {s: (out / f"seed_{s}" / "last.pt").read_bytes() for s in (1, 2)} == last
    assert json.loads((out / "results.json").read_text())["per_seed"] == old["per_seed"]


@pytest.mark.parametrize("split", ["test", "valid"])
def test_evaluate_reproduces_the_training_metrics(trained, split, capsys):
    _, data, out = trained
    ck = out / "seed_1" / "best.pt"
    rc = main(["evaluate", "--checkpoint", str(ck), "--data", str(data), "--split", split])
    assert rc == 0
    written = out / "seed_1" / f"eval_x_{split}.json"
    assert str(written) in capsys.readouterr().out
    ev = json.loads(written.read_text())
    assert ev["split"] == split and ev["checkpoint"] == str(ck)
    seed1 = json.loads((out / "results.json").read_text())["per_seed"][0]
    assert set(ev["metrics"]) == set(seed1[split]) == MOSI_KEYS
    assert ev["metrics"] == seed1[split]  # same weights, same normaliser, same data


def test_evaluate_out_option(trained, tmp_path):
    _, data, out = trained
    target = tmp_path / "sub" / "m.json"
    assert main(["evaluate", "--checkpoint", str(out / "seed_2" / "best.pt"), "--data", str(data),
                 "--out", str(target)]) == 0
    assert set(json.loads(target.read_text())["metrics"]) == MOSI_KEYS


@pytest.mark.parametrize("content", [b"this is not a pickle", None], ids=["garbage", "truncated"])
def test_corrupt_data_file_returns_2_and_names_it(trained, content, tmp_path, capsys):
    _, data, out = trained
    bad = tmp_path / "broken.pkl"
    bad.write_bytes(content if content is not None else data.read_bytes()[:2000])
    rc = main(["train", "--data", str(bad), "--preset", "tiny", "--epochs", "1", "--seeds", "1",
               "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and str(bad) in err
    assert not (tmp_path / "r" / "results.json").exists()
    rc = main(["evaluate", "--checkpoint", str(out / "seed_1" / "best.pt"), "--data", str(bad)])
    assert rc == 2
    assert str(bad) in capsys.readouterr().err


def test_missing_data_file_returns_2(tmp_path, capsys):
    missing = tmp_path / "nope.pkl"
    rc = main(["train", "--data", str(missing), "--out", str(tmp_path / "r"), "--quiet"])
    assert rc == 2 and "nope.pkl" in capsys.readouterr().err


def test_evaluate_on_data_with_other_sizes_returns_2(trained, tmp_path, capsys):
    _, _, out = trained
    other = tmp_path / "other.pkl"
    write_synthetic(other, splits={"train": 4, "valid": 2, "test": 3}, dims={**SMALL_DIMS, "audio": (7, 4)})
    rc = main(["evaluate", "--checkpoint", str(out / "seed_1" / "best.pt"), "--data", str(other)])
    assert rc == 2
    err = capsys.readouterr().err
    assert "audio" in err and "(7, 4)" in err


def test_bad_modalities_returns_2(trained, tmp_path, capsys):
    """--modalities is an option value: argparse refuses it, naming the option, before anything is loaded."""
    _, data, _ = trained
    with pytest.raises(SystemExit) as exc:
        main(["train", "--data", str(data), "--modalities", "tx", "--out", str(tmp_path / "r"), "--quiet"])
    assert exc.value.code == 2 and "argument --modalities" in capsys.readouterr().err


def test_train_needs_out():
    with pytest.raises(SystemExit) as exc:
        main(["train"])
    assert exc.value.code == 2


def test_make_synthetic_writes_a_mosi_shaped_pickle(tmp_path, capsys):
    path = tmp_path / "s" / "x.pkl"
    assert main(["make-synthetic", "--out", str(path), "--seed", "3"]) == 0
    assert "SYNTHETIC" in capsys.readouterr().out
    data = load_mmsa(path)
    assert data.dataset == "mosi" and data.synthetic
    assert {s: len(data[s]) for s in data.splits} == MOSI_SPLITS
    with open(path, "rb") as f:
        assert pickle.load(f)["meta"]["seed"] == 3


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("MCIHN_SLOW") != "1", reason="set MCIHN_SLOW=1 to run")
def test_train_on_the_embedded_synthetic_default(tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(["train", "--epochs", "1", "--seeds", "1", "--out", str(out), "--quiet"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "SYNTHETIC" in printed
    res = json.loads((out / "results.json").read_text())
    assert res["synthetic"] is True and res["config"]["preset"] == "tiny"
    assert set(res["per_seed"][0]["test"]) == MOSI_KEYS
    # evaluate reads the same embedded data without --data, and gives the training run's test metrics
    assert main(["evaluate", "--checkpoint", str(out / "seed_1" / "best.pt")]) == 0
    assert json.loads((out / "seed_1" / "eval_synthetic_test.json").read_text())["metrics"] == res["per_seed"][0]["test"]
    # predict refuses a checkpoint of synthetic features at once (no encoder produces them), and a missing video
    t0 = time.time()
    assert main(["predict", "--checkpoint", str(out / "seed_1" / "best.pt"), "--video", str(tmp_path / "clip.mp4"),
                 "--text", "fine"]) == 2
    assert "--video" in capsys.readouterr().err
    (tmp_path / "clip.mp4").write_bytes(b"x")
    assert main(["predict", "--checkpoint", str(out / "seed_1" / "best.pt"), "--video", str(tmp_path / "clip.mp4"),
                 "--text", "fine"]) == 2
    assert "SYNTHETIC features" in capsys.readouterr().err and time.time() - t0 < 30  # no model hub retries


@pytest.mark.parametrize("extra, message", [
    (["--patience", "0"], "argument --patience: must be >= 1"),  # argparse: exits with 2, naming the option
    (["--device", "foo"], "--device 'foo'"),
    (["--mmd-weight", "-1"], "argument --mmd-weight: must be a finite number >= 0"),
    (["--zscore", "none"], "argument --zscore: invalid choice"),
])
def test_bad_training_options_return_2_before_training(trained, tmp_path, capsys, extra, message):
    _, data, _ = trained
    try:
        rc = main(["train", "--data", str(data), "--preset", "tiny", "--seeds", "1", "--out", str(tmp_path / "r"),
                   "--quiet", *extra])
    except SystemExit as e:
        rc = e.code
    assert rc == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing half-written


def test_out_that_is_a_file_returns_2(trained, tmp_path, capsys):
    _, data, _ = trained
    (tmp_path / "f").write_text("x")
    rc = main(["train", "--data", str(data), "--preset", "tiny", "--seeds", "1", "--out", str(tmp_path / "f")])
    assert rc == 2 and "not a folder" in capsys.readouterr().err


def test_evaluate_junk_checkpoint_returns_2(trained, tmp_path, capsys):
    _, data, _ = trained
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    assert main(["evaluate", "--checkpoint", str(junk), "--data", str(data)]) == 2
    assert "junk.pt: not a readable MCIHN checkpoint" in capsys.readouterr().err


def test_resume_on_other_training_data_is_refused(trained, tmp_path, capsys):
    _, data, out = trained
    other = tmp_path / "other.pkl"
    write_synthetic(other, splits=dict(SMALL_SPLITS), dims=dict(SMALL_DIMS), seed=99)  # same sizes, other values
    import shutil
    shutil.copytree(out, tmp_path / "run")
    rc = main(["train", "--data", str(other), "--preset", "tiny", "--epochs", "3", "--seeds", "1", "2",
               "--out", str(tmp_path / "run"), "--quiet", "--resume"])
    assert rc == 2 and "training split differs" in capsys.readouterr().err


def test_zscore_option_reaches_the_config_and_the_run(tmp_path):
    """--zscore all: the training config says so and the prepared inputs z-score a real set's text too."""
    from mcihn.cli import build_parser
    from mcihn.cli.train import _train_config
    from mcihn.data import from_mmsa_dict
    from mcihn.training.runner import prepare

    from test_data import make_mmsa

    parser = build_parser()
    real = from_mmsa_dict(make_mmsa(), "memory")
    for extra, rule, centred in (([], "auto", ("text",)), (["--zscore", "all"], "all", ())):
        cfg = _train_config(parser.parse_args(["train", "--out", str(tmp_path), *extra]), "tiny")
        assert cfg.zscore == rule
        assert prepare(real, cfg)[1].centred == centred


def test_choices_are_read_from_the_registries():
    """--model, --dataset (make-synthetic: --kind) and --preset offer what the registries hold, with no copy."""
    import argparse

    from mcihn.cli import build_parser
    from mcihn.data.mmsa import LABEL_RANGE
    from mcihn.data.normalize import ZSCORE_RULES
    from mcihn.model.config import PRESETS
    from mcihn.training.registry import MODEL_KINDS

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    registry = {"--model": tuple(MODEL_KINDS), "--dataset": tuple(LABEL_RANGE), "--kind": tuple(LABEL_RANGE),
                "--preset": tuple(PRESETS), "--zscore": ZSCORE_RULES}
    seen = set()
    for name, p in sub.choices.items():
        for act in p._actions:
            flag = next((f for f in act.option_strings if f in registry), None)
            if flag and not (name == "bench" and flag == "--preset"):  # bench times the paper and tiny sizes only
                assert tuple(act.choices) == registry[flag], (name, flag)
                seen.add(flag)
    assert seen == set(registry)


def test_every_option_of_every_command_has_help():
    """`--help` explains every flag (issue 11): no argparse option without a help text."""
    import argparse

    from mcihn.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(act.option_strings) or act.dest}"
               for name, p in sub.choices.items() for act in p._actions
               if not isinstance(act, argparse._HelpAction) and not act.help]
    assert not missing, missing


def test_interrupt_and_disk_full_messages_say_what_each_command_keeps(tmp_path):
    """The one line printed after Ctrl-C / SIGTERM or a full disk names what is kept: the suite's records,
    a training run's epochs."""
    from mcihn.cli import _on_disk_full, _on_interrupt, build_parser

    suite = build_parser().parse_args(["experiment", "suite", "--out", str(tmp_path / "s")])
    train = build_parser().parse_args(["train", "--out", str(tmp_path / "t")])
    assert str(tmp_path / "s" / "runs") in _on_interrupt(suite) and "--resume" in _on_interrupt(suite)
    assert "last.pt" not in _on_interrupt(suite) and "records" in _on_disk_full(suite)
    assert "seed_*/last.pt" in _on_interrupt(train) and "epochs" in _on_disk_full(train)
