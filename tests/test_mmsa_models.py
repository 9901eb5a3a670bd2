"""mcihn.experiments.mmsa_models: MMSA's own TFN / LMF on this package's data (skipped without MMSA)."""
from __future__ import annotations

import math
import pickle
import types

import numpy as np
import pytest

from mcihn.data.normalize import fit_normalizer
from mcihn.data.synthetic import synthetic_data
from mcihn.experiments import mmsa_models
from mcihn.experiments.mmsa_models import (mmsa_available, mmsa_pickle_dict, run_mmsa_model, write_mmsa_pickle)
from mcihn.metrics import METRIC_KEYS

REASON = mmsa_available()
needs_mmsa = pytest.mark.skipif(REASON is not None, reason=str(REASON))

#: 64 / 32 / 32 clips: whole batches of 32 (TFN) and one of 64 (LMF), never a last batch of one clip.
SPLITS = {"train": 64, "valid": 32, "test": 32}
DIMS = {"text": (6, 8), "audio": (5, 4), "vision": (4, 6)}
KEYS = {"test", "valid_mae", "best_epoch", "epochs_run", "params", "hyper_parameters", "train_time_s"}


@pytest.fixture(scope="module")
def data():
    return synthetic_data(kind="mosi", splits=SPLITS, dims=DIMS)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("mmsa")


@pytest.fixture
def one_thread():
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- without MMSA
@pytest.mark.parametrize("module, hint", [("easydict", "easydict"), ("pynvml", "nvidia-ml-py"), ("MMSA", "mmsa")])
def test_unavailable_gives_a_reason(monkeypatch, module, hint):
    """Only ``module`` is missing (the others import as stand-ins), whether or not MMSA is installed here."""

    def fake_import(name):
        if name == module or name.startswith(module + "."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return types.ModuleType(name)

    monkeypatch.setattr(mmsa_models.importlib, "import_module", fake_import)
    reason = mmsa_available()
    assert isinstance(reason, str) and "pip install" in reason and hint in reason and "\n" not in reason


def test_run_raises_the_reason_without_mmsa(monkeypatch, data, tmp_path):
    monkeypatch.setattr(mmsa_models, "mmsa_available", lambda: "MMSA cannot be imported; install it with: pip ...")
    with pytest.raises(RuntimeError, match="MMSA cannot be imported"):
        run_mmsa_model("tfn", data, 1, tmp_path)


def test_absent_modalities_are_one_zero_step(data):
    d = mmsa_pickle_dict(data, "t")
    for s in ("train", "valid", "test"):
        n = SPLITS[s]
        np.testing.assert_array_equal(d[s]["text"], data[s].features["text"])
        for m in ("audio", "vision"):
            assert d[s][m].shape == (n, 1, 1) and d[s][m].dtype == np.float32 and not d[s][m].any()
            np.testing.assert_array_equal(d[s][f"{m}_lengths"], np.ones(n))
        np.testing.assert_array_equal(d[s]["regression_labels"], data[s].labels)
    assert d["meta"]["absent"] == ["audio", "vision"]
    with pytest.raises(ValueError, match="no"):
        mmsa_pickle_dict(synthetic_data(kind="mosi", splits=SPLITS, dims={"text": (6, 8)}), "ta")


def test_pickle_written_once_and_zscored(data, tmp_path):
    p = write_mmsa_pickle(data, tmp_path, "ta")
    mtime = p.stat().st_mtime_ns
    assert write_mmsa_pickle(data, tmp_path, "ta") == p and p.stat().st_mtime_ns == mtime  # reused
    z = write_mmsa_pickle(data, tmp_path, "ta", zscore=True)
    assert z != p and "_z_" in z.name and write_mmsa_pickle(data, tmp_path, "tav") not in (p, z)
    with open(z, "rb") as f:
        obj = pickle.load(f)
    norm = fit_normalizer(data, ("text", "audio"))
    for s in ("train", "test"):
        want = norm.transform(data[s])
        for m in ("text", "audio"):
            np.testing.assert_array_equal(obj[s][m], want.features[m])
        assert obj[s]["vision"].shape == (SPLITS[s], 1, 1)


def test_front_padding_moves_real_steps_last(data, tmp_path):
    """pad="front": each clip's real steps end the sequence, zeros first, lengths unchanged; its own pickle."""
    d = mmsa_pickle_dict(data, "ta", pad="front")
    assert d["meta"]["pad"] == "front"
    for s in ("train", "test"):
        x, lengths = data[s].features["text"], data[s].lengths["text"]
        T = x.shape[1]
        assert lengths.min() < T  # some clips are padded, so the test can fail
        for i, n in enumerate(lengths):
            np.testing.assert_array_equal(d[s]["text"][i, T - n:], x[i, :n])
            assert not d[s]["text"][i, :T - n].any()
        np.testing.assert_array_equal(d[s]["audio_lengths"], data[s].lengths["audio"])
    end = write_mmsa_pickle(data, tmp_path, "ta")
    front = write_mmsa_pickle(data, tmp_path, "ta", pad="front")
    assert front != end and "_front_" in front.name
    assert mmsa_models.data_fingerprint(data, "ta", pad="front") != mmsa_models.data_fingerprint(data, "ta")
    from mcihn.data import load_mmsa
    from mcihn.data.pickles import DataFormatError

    assert load_mmsa(str(end)).dims["text"] == data.dims["text"]  # this package reads its own layout back
    with pytest.raises(DataFormatError, match="'pad'.*zeros first"):  # and refuses the other
        load_mmsa(str(front))
    with pytest.raises(ValueError, match="pad must be"):
        mmsa_pickle_dict(data, "ta", pad="left")


# ----------------------------------------------------------------------------- with MMSA
@needs_mmsa
@pytest.mark.parametrize("model", ["tfn", "lmf"])
@pytest.mark.parametrize("modalities", ["tav", "ta", "t"])
@pytest.mark.parametrize("pad", ["end", "front"])
def test_mmsa_model_runs(one_thread, data, work, model, modalities, pad):
    r = run_mmsa_model(model, data, 1111, work, modalities, overrides={"early_stop": 1}, pad=pad)
    assert KEYS <= set(r)
    assert set(r["test"]) == set(METRIC_KEYS["mosi"])
    assert all(math.isfinite(v) for v in r["test"].values()), r["test"]
    assert r["metrics_match"]  # mcihn.metrics.evaluate == MMSA's MetricsTop on MMSA's predictions
    assert all(r["test"][k] == pytest.approx(r["mmsa_test"][k], abs=1e-9) for k in r["test"])
    assert r["hyper_parameters"]["early_stop"] == 1 and r["epochs_run"] == r["best_epoch"] + 1
    assert len(r["valid_loss"]) == r["epochs_run"] and r["valid_mae"] == min(r["valid_loss"])
    assert r["valid_loss"].index(r["valid_mae"]) + 1 == r["best_epoch"]
    assert r["params"] > 0 and r["train_time_s"] >= 0
    # sizes from the data; absent modalities as one feature of one step (audio, vision time-averaged: T = 1)
    dims = [DIMS[m][1] if m[0] in modalities else 1 for m in ("text", "audio", "vision")]
    assert r["input_sizes"] == {"feature_dims": dims, "seq_lens": [DIMS["text"][0], 1, 1]}
    assert r["absent"] == [m for m in ("text", "audio", "vision") if m[0] not in modalities]
    assert not list((work / "ckpt").iterdir())  # the checkpoint is deleted
    written = [p.name for p in work.glob(f"mmsa_mosi_{modalities}_*.pkl")]
    assert sum(("_front_" in n) == (pad == "front") for n in written) == 1  # one pickle per data set and layout
    assert r["pad"] == pad


@needs_mmsa
def test_refusals(data, tmp_path):
    with pytest.raises(ValueError, match="all three modalities"):
        run_mmsa_model("mult", data, 1, tmp_path, "ta")
    with pytest.raises(ValueError, match="model must be"):
        run_mmsa_model("self_mm", data, 1, tmp_path)
    odd = synthetic_data(kind="mosi", splits={"train": 65, "valid": 32, "test": 32}, dims=DIMS)
    with pytest.raises(ValueError, match="one clip"):  # 65 = 2 x 32 + 1: MMSA's BatchNorm would fail
        run_mmsa_model("tfn", odd, 1, tmp_path)
    assert not list(tmp_path.glob("*.pkl"))  # refused before anything is written
