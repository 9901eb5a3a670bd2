"""Tests for missing-modality robustness (mcihn.experiments.robustness, ``python -m mcihn robustness``)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import SMALL_DIMS, make_batch
from mcihn.cli import main
from mcihn.data import load_mmsa
from mcihn.training.registry import make_config
from mcihn.experiments.robustness import (DEFAULT_RATES, area_under_curve, code_report, combine_seeds,
                                         drop_modality, evaluate_robustness, mask_time_steps, plot_robustness,
                                         robustness_curve, summarize_curves)
from mcihn.training.runner import evaluate_checkpoint, load_model, run_seed
from mcihn.data import write_synthetic

pytestmark = pytest.mark.usefixtures("torch_single_thread")

QUIET = dict(progress=False, log=lambda *a, **k: None)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small pickle, and an MCIHN and a late-fusion model trained on it for 3 epochs."""
    tmp = tmp_path_factory.mktemp("robust")
    path = tmp / "x.pkl"
    write_synthetic(path, splits={"train": 96, "valid": 24, "test": 40}, dims=dict(SMALL_DIMS), seed=4)
    data = load_mmsa(path)
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cks = {}
        for kind in ("mcihn", "late"):
            run_seed(data, make_config(kind, "tiny", epochs=3), 1, out_dir=tmp / kind, device="cpu", **QUIET)
            cks[kind] = tmp / kind / "best.pt"
    finally:
        torch.set_num_threads(old)
    return path, data, cks


# ----------------------------------------------------------------------------- masking
def test_mask_time_steps_sets_the_share_of_real_steps_it_is_asked_for():
    lengths = {m: torch.randint(1, 41, (300,), generator=torch.Generator().manual_seed(1)).tolist()
               for m in ("text", "audio", "vision")}
    batch = make_batch(dims={"text": (40, 3), "audio": (40, 2), "vision": (40, 4)}, lengths=lengths, seed=1)
    for rate in (0.0, 0.3, 0.7, 1.0):
        out = mask_time_steps(batch, rate, generator=torch.Generator().manual_seed(0))
        for m in ("text", "audio", "vision"):
            real = batch[m + "_mask"]
            zeroed = (out[m] == 0).all(-1) & (batch[m] != 0).any(-1)  # (N, T): steps that were set to 0
            share = zeroed[real].float().mean().item()
            assert abs(share - rate) < 0.03, (m, rate, share)
            assert (out[m][~real] == 0).all()  # padding stays 0
            kept = ~zeroed & real
            assert torch.equal(out[m][kept], batch[m][kept])  # the others are untouched
            assert out[m + "_mask"] is batch[m + "_mask"] and out["label"] is batch["label"]
    assert all(torch.equal(mask_time_steps(batch, 0.0)[m], batch[m]) for m in ("text", "audio", "vision"))


def test_mask_time_steps_is_seeded_and_limited_to_the_modalities_asked(batch):
    a = mask_time_steps(batch, 0.5, ["audio"], torch.Generator().manual_seed(3))
    b = mask_time_steps(batch, 0.5, ["audio"], torch.Generator().manual_seed(3))
    assert torch.equal(a["audio"], b["audio"])
    assert torch.equal(a["text"], batch["text"]) and torch.equal(a["vision"], batch["vision"])
    dropped = drop_modality(batch, "vision")
    assert (dropped["vision"] == 0).all() and torch.equal(dropped["text"], batch["text"])
    with pytest.raises(ValueError, match="missing rate"):
        mask_time_steps(batch, 1.5)
    with pytest.raises(ValueError, match="no modality"):
        mask_time_steps(batch, 0.5, ["smell"])


def test_area_under_curve():
    rates = [0.0, 0.25, 0.5, 1.0]  # uneven steps on purpose
    assert area_under_curve(rates, [0.7] * 4) == pytest.approx(0.7)
    assert area_under_curve(rates, [1 - r for r in rates]) == pytest.approx(0.5)
    assert area_under_curve(rates, [1.0, 0.5, None, 0.0]) is None


# ----------------------------------------------------------------------------- curves of trained models
@pytest.mark.parametrize("kind", ["mcihn", "late"])
def test_curve_at_rate_0_equals_the_plain_evaluation(trained, kind):
    path, _, cks = trained
    res = evaluate_robustness(cks[kind], path, rates=(0.0, 0.5, 1.0), repeats=2)
    plain = evaluate_checkpoint(cks[kind], path)
    assert res["full"] == plain
    assert {k: v[0] for k, v in res["metrics"].items()} == plain
    assert res["model"] == kind and res["rates"] == [0.0, 0.5, 1.0] and res["split"] == "test"
    assert set(res["dropped"]) == {"text", "audio", "vision"}


def test_curve_is_reproducible_and_moves_with_the_rate(trained):
    path, data, cks = trained
    model, cfg, norm, _ = load_model(cks["late"])
    tensors = norm.transform(data["test"]).to_tensors(cfg.modalities)
    a = robustness_curve(model, tensors, "mosi", rates=DEFAULT_RATES, repeats=2, seed=5)
    b = robustness_curve(model, tensors, "mosi", rates=DEFAULT_RATES, repeats=2, seed=5)
    c = robustness_curve(model, tensors, "mosi", rates=DEFAULT_RATES, repeats=2, seed=6)
    assert a == b
    assert a["metrics"]["MAE"][5] != c["metrics"]["MAE"][5]  # other random missing steps
    assert len(a["metrics"]["MAE"]) == 11 and a["auc"]["MAE"] == pytest.approx(
        np.trapezoid(a["metrics"]["MAE"], a["rates"]) if hasattr(np, "trapezoid") else np.trapz(a["metrics"]["MAE"],
                                                                                                  a["rates"]))
    # at rate 1 every input is at its training mean: a late-fusion model then predicts one constant
    pred = model(mask_time_steps(tensors, 1.0)).pred
    assert torch.allclose(pred, pred[0].expand_as(pred))
    assert a["metrics"]["Corr"][-1] is None and a["auc"]["Corr"] is None  # Corr of a constant is undefined
    # dropping a modality is the same as missing all of its steps
    dropped = robustness_curve(model, tensors, "mosi", rates=(0.0, 1.0), repeats=1, modalities=["text"])
    assert dropped["metrics"]["MAE"][1] == a["dropped"]["text"]["MAE"]
    with pytest.raises(ValueError, match="increasing"):
        robustness_curve(model, tensors, "mosi", rates=(0.5, 0.0))


def test_plot_compares_models(trained):
    path, _, cks = trained
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    res = {k: evaluate_robustness(ck, path, rates=(0.0, 0.5, 1.0), repeats=1) for k, ck in cks.items()}
    fig = plot_robustness(res, metric="Has0_acc_2")
    ax = fig.axes[0]
    assert len(ax.lines) == 3 and ax.lines[0].get_label().startswith("mcihn (AUC")
    np.testing.assert_allclose(ax.lines[1].get_ydata(), res["late"]["metrics"]["Has0_acc_2"])
    # the reference level: the training mean predicted for every test clip, on the same split for both models
    _, data, _ = trained
    y = data["test"].labels
    floor = float(np.mean((y >= 0) == (data["train"].labels.mean() >= 0)))
    assert res["mcihn"]["mean_predictor"] == res["late"]["mean_predictor"]
    assert res["mcihn"]["mean_predictor"]["Has0_acc_2"] == pytest.approx(floor)
    assert ax.lines[2].get_label().startswith("mean predictor")
    np.testing.assert_allclose(ax.lines[2].get_ydata(), [floor, floor])
    plt.close(fig)


# ----------------------------------------------------------------------------- the command
def test_robustness_command_writes_json_and_png(trained, tmp_path, capsys):
    path, _, cks = trained
    out = tmp_path / "r"
    rc = main(["robustness", "--checkpoint", str(cks["mcihn"]), "--data", str(path), "--rates", "0", "0.5", "1",
               "--repeats", "2", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "text dropped" in printed and "area under the curve" in printed
    res = json.loads((out / "robustness.json").read_text())
    assert res["rates"] == [0.0, 0.5, 1.0] and set(res["auc"]) == set(res["metrics"]) == set(res["full"])
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_robustness_command_errors(trained, tmp_path, capsys):
    path, _, cks = trained
    rc = main(["robustness", "--checkpoint", str(cks["late"]), "--out", str(tmp_path / "r")])
    assert rc == 2 and "pass the data" in capsys.readouterr().err  # trained on a pickle, not the embedded set
    rc = main(["robustness", "--checkpoint", str(cks["late"]), "--data", str(path), "--metric", "Acc-9",
               "--rates", "0", "--out", str(tmp_path / "r")])
    assert rc == 2 and "--metric Acc-9" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # nothing half-written


# ----------------------------------------------------------------------------- over seeds (AUILC)
@pytest.fixture(scope="module")
def second_seed(trained, tmp_path_factory):
    """A second seed of the MCIHN of ``trained``, on the same pickle."""
    path, data, cks = trained
    out = tmp_path_factory.mktemp("robust2") / "mcihn"
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run_seed(data, make_config("mcihn", "tiny", epochs=3), 2, out_dir=out, device="cpu", **QUIET)
    finally:
        torch.set_num_threads(old)
    return out / "best.pt"


def test_combine_seeds_is_the_mean_and_spread_over_seeds(trained, second_seed):
    path, _, cks = trained
    rates = (0.0, 0.5, 1.0)
    a, b = (evaluate_robustness(c, path, rates=rates, repeats=2) for c in (cks["mcihn"], second_seed))
    assert a["full"]["MAE"] != b["full"]["MAE"], "two seeds, two models"
    both = combine_seeds([a, b])
    assert both["seeds"] == 2 and both["rates"] == [0.0, 0.5, 1.0] and both["variant"] == a["variant"]
    for i in range(3):
        pair = [a["metrics"]["MAE"][i], b["metrics"]["MAE"][i]]
        assert both["metrics"]["MAE"][i] == pytest.approx(np.mean(pair))
        assert both["std"]["MAE"][i] == pytest.approx(np.std(pair))
    # AUILC: the mean of the seeds' areas, which is also the area of the mean curve (the trapezoid rule is linear)
    assert both["auc"]["MAE"] == pytest.approx((a["auc"]["MAE"] + b["auc"]["MAE"]) / 2)
    assert both["auc"]["MAE"] == pytest.approx(area_under_curve(both["rates"], both["metrics"]["MAE"]))
    assert both["auc_std"]["MAE"] == pytest.approx(abs(a["auc"]["MAE"] - b["auc"]["MAE"]) / 2)
    assert both["dropped"]["text"]["MAE"] == pytest.approx((a["dropped"]["text"]["MAE"] + b["dropped"]["text"]["MAE"]) / 2)
    undefined = {**b, "auc": {**b["auc"], "Corr": None}}  # as for a seed that predicts a constant at r = 1
    assert combine_seeds([a, undefined])["auc"]["Corr"] is None, "undefined for one seed: undefined in the mean"
    assert [s["checkpoint"] for s in both["per_seed"]] == [str(cks["mcihn"]), str(second_seed)]
    with pytest.raises(ValueError, match="differ in 'model'"):
        combine_seeds([a, evaluate_robustness(cks["late"], path, rates=rates, repeats=2)])
    with pytest.raises(ValueError, match="differ in 'rates'"):
        combine_seeds([a, evaluate_robustness(second_seed, path, rates=(0.0, 1.0), repeats=2)])


def test_robustness_command_over_seeds(trained, second_seed, tmp_path, capsys):
    path, _, cks = trained
    out = tmp_path / "r2"
    rc = main(["robustness", "--checkpoint", str(cks["mcihn"]), str(second_seed), "--data", str(path),
               "--rates", "0", "0.5", "1", "--repeats", "1", "--out", str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "mean ± std over 2 seeds" in printed and "(AUILC)" in printed and "mean predictor" in printed
    res = json.loads((out / "robustness.json").read_text())
    assert res["seeds"] == 2 and len(res["per_seed"]) == 2 and set(res["auc_std"]) == set(res["auc"])
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rc = main(["robustness", "--checkpoint", str(cks["mcihn"]), str(tmp_path / "nope.pt"), "--data", str(path),
               "--out", str(tmp_path / "r3")])
    assert rc != 0 and "nope.pt" in capsys.readouterr().err
    assert not (tmp_path / "r3" / "robustness.json").exists()


# ----------------------------------------------------------------------------- the cause, and curves over seeds
def test_code_report_measures_the_all_missing_codes_against_real_ones(trained):
    _, data, cks = trained
    model, cfg, normalizer, _ = load_model(cks["mcihn"])
    t = {s: normalizer.transform(data[s]).to_tensors(cfg.modalities) for s in ("train", "test")}
    rep = code_report(model, t["train"], t["test"], batch_size=7, codes=True)  # batches of 7: same as one pass
    with torch.no_grad():
        whole = {m: s.flatten(1).numpy() for m, s in model.eval().encode(mask_time_steps(t["test"], 1.0)).items()}
        real = {m: s.flatten(1) for m, s in model.encode(t["train"]).items()}
    assert set(rep["modalities"]) == set(cfg.modalities)
    for m, r in rep["modalities"].items():
        np.testing.assert_allclose(rep["codes"]["missing"][m], whole[m], atol=1e-5)
        assert rep["codes"]["train"][m].shape == (len(data["train"]), cfg.latent_len * cfg.latent_dim)
        nearest = torch.cdist(torch.as_tensor(whole[m]), real[m]).min(dim=1).values.median()
        assert r["nearest real, all-missing (median)"] == pytest.approx(float(nearest), rel=1e-4)
        assert r["distance ratio"] == pytest.approx(r["nearest real, all-missing (median)"]
                                                    / r["nearest real, real test clips (median)"])
        assert r["nearest real, real test clips (95th pct)"] >= r["nearest real, real test clips (median)"] > 0
    res = evaluate_robustness(cks["mcihn"], data)
    assert rep["r=1"]["MAE"] == pytest.approx(res["metrics"]["MAE"][-1], abs=1e-4)  # r = 1 as the curve has it
    assert rep["r=1"]["mean predictor MAE"] == pytest.approx(res["mean_predictor"]["MAE"], abs=1e-4)  # metrics: 4 decimals
    assert "codes" not in code_report(model, t["train"], t["test"])


def test_summarize_curves_over_seeds(trained):
    _, data, cks = trained
    runs = [evaluate_robustness(cks[k], data, rates=(0, 0.5, 1), repeats=2) for k in ("mcihn", "late")]
    s = summarize_curves(runs)
    per_seed = np.array([r["metrics"]["MAE"] for r in runs])
    assert s["rates"] == [0.0, 0.5, 1.0]
    np.testing.assert_allclose(s["per_seed"], per_seed)
    assert s["mean"] == pytest.approx(per_seed.mean(0).tolist()) and s["std"] == pytest.approx(per_seed.std(0).tolist())
    assert s["last"] == pytest.approx(per_seed[:, -1].tolist()) and s["auc"] == [r["auc"]["MAE"] for r in runs]
    assert s["full"] == [r["full"]["MAE"] for r in runs]
    assert s["dropped"]["text"] == [r["dropped"]["text"]["MAE"] for r in runs]
    with pytest.raises(ValueError, match="different rates"):
        summarize_curves([runs[0], evaluate_robustness(cks["late"], data, rates=(0, 1))])
    with pytest.raises(ValueError, match="no results"):
        summarize_curves([])
