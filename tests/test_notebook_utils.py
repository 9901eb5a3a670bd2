"""mcihn.notebook.session (settings, data, the cache of trained runs, records) and mcihn.notebook.plots."""
import json
import math

import matplotlib
import numpy as np
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mcihn.notebook import analysis, plots  # noqa: E402
from mcihn import notebook as nbu  # noqa: E402
from mcihn.model.config import MCIHNConfig  # noqa: E402
from mcihn.data import synthetic_data, write_synthetic  # noqa: E402


@pytest.mark.parametrize("value, expected", [(None, False), ("1", True), ("true", True), ("0", False),
                                             ("", False), ("no", False), ("False", False), ("yes", True)])
def test_quick_from_env(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("MCIHN_QUICK", raising=False)
    else:
        monkeypatch.setenv("MCIHN_QUICK", value)
    assert nbu.quick_from_env() is expected


def test_cache_dir_from_env_or_the_checkout(monkeypatch, tmp_path):
    monkeypatch.setenv("MCIHN_CACHE_DIR", str(tmp_path / "c"))
    assert nbu.default_cache_dir() == tmp_path / "c"
    monkeypatch.delenv("MCIHN_CACHE_DIR")
    root = nbu.find_repo_root(nbu.__file__)
    assert (root / "pyproject.toml").exists()
    monkeypatch.chdir(root / "notebooks")  # where Jupyter starts a notebook's kernel
    assert nbu.default_cache_dir() == root / "data" / "cache"
    assert nbu.default_data_dir() == root / "data"
    assert nbu.find_repo_root(tmp_path) is None


def test_subsample_keeps_order_and_alignment(small_data):
    sub = nbu.subsample(small_data, {"train": 10, "valid": 5, "test": 100})
    assert [len(sub[s]) for s in ("train", "valid", "test")] == [10, 5, len(small_data["test"])]
    ids = sub["train"].ids
    full = small_data["train"]
    idx = [full.ids.index(i) for i in ids]
    assert idx == sorted(idx)
    np.testing.assert_array_equal(sub["train"].features["audio"], full.features["audio"][idx])
    np.testing.assert_array_equal(sub["train"].labels, full.labels[idx])
    assert "subset" in sub.source
    again = nbu.subsample(small_data, {"train": 10, "valid": 5, "test": 100})
    assert again["train"].ids == ids


def test_load_data_synthetic_quick_is_announced(capsys):
    data = nbu.load_data("synthetic", quick=True)
    assert {s: len(data[s]) for s in data.splits} == nbu.QUICK_SPLITS
    out = capsys.readouterr().out
    assert data.synthetic and "SYNTHETIC" in out


def test_load_data_from_a_pickle_equals_the_in_memory_set(tmp_path, capsys):
    path = write_synthetic(tmp_path / "s.pkl", kind="mosi", splits=dict(nbu.QUICK_SPLITS), seed=nbu.DATA_SEED)
    from_file = nbu.load_data(path, quick=True)
    in_memory = nbu.load_data("synthetic", quick=True)
    assert "SYNTHETIC" in capsys.readouterr().out  # announced from the pickle's meta too
    assert nbu.data_fingerprint(from_file) == nbu.data_fingerprint(in_memory)
    other = synthetic_data("mosi", splits=dict(nbu.QUICK_SPLITS), seed=nbu.DATA_SEED + 1)
    assert nbu.data_fingerprint(other) != nbu.data_fingerprint(in_memory)
    with pytest.raises(FileNotFoundError, match="synthetic"):
        nbu.load_data(tmp_path / "missing.pkl")


def test_setup_quick_and_full(tmp_path):
    old = torch.get_num_threads()
    try:
        s = nbu.setup(QUICK=True, SEED=3, DEVICE="cpu", CACHE_DIR=tmp_path, log=lambda *a: None)
        assert s.quick and s.preset == "tiny" and s.seeds == nbu.QUICK_SEEDS and torch.get_num_threads() == 1
        cfg = s.config(mmd_weight=0.5)
        assert cfg.epochs == nbu.QUICK_EPOCHS and cfg.batch_size == nbu.QUICK_BATCH and cfg.mmd_weight == 0.5
        assert s.config(batch_size=16).batch_size == 16  # explicit overrides win
        assert s.cache_dir == tmp_path
        assert nbu.setup(QUICK=True, PRESET="paper", DEVICE="cpu", log=lambda *a: None).config().latent_dim == 256
    finally:
        torch.set_num_threads(old)
    full = nbu.setup(QUICK=False, EPOCHS=7, SEEDS=[5], DEVICE="cpu", CACHE_DIR=tmp_path, log=lambda *a: None)
    assert len(full.data["train"]) == 1284 and full.seeds == (5,) and torch.get_num_threads() == old
    assert full.config().epochs == 7 and full.config().batch_size == MCIHNConfig.tiny().batch_size


@pytest.fixture
def small_settings(small_data, tmp_path):
    return nbu.Settings(quick=True, seed=1, data=small_data, device=torch.device("cpu"), preset="tiny", epochs=2,
                        seeds=(1, 2), cache_dir=tmp_path, umap_points=50)


def _tiny(settings, **overrides):
    return settings.config(latent_len=4, latent_dim=12, heads=3, disc_hidden=8, **overrides)


def test_cached_seed_trains_once_then_reads_back(small_settings, torch_single_thread, capsys):
    cfg = _tiny(small_settings)
    first = nbu.cached_seed(small_settings, cfg, 1)
    assert not first["cached"] and (first["folder"] / "result.json").exists()
    assert first["folder"].parent == nbu.run_folder(small_settings, cfg)
    assert all("mmd" in h for h in first["history"])  # the per-epoch MMD probe of the full model
    second = nbu.cached_seed(small_settings, cfg, 1)
    assert second["cached"] and second["test"] == first["test"] and len(second["history"]) == 2
    for (k, v), w in zip(first["model"].state_dict().items(), second["model"].state_dict().values()):
        torch.testing.assert_close(v, w, msg=k)
    assert "read from the cache" in capsys.readouterr().out
    other = _tiny(small_settings, mmd_weight=0.5)
    assert nbu.run_folder(small_settings, other) != nbu.run_folder(small_settings, cfg)  # any config change: new run
    bimodal = nbu.cached_seed(small_settings, _tiny(small_settings, modalities="vt"), 1)
    assert all("mmd" not in h for h in bimodal["history"])


def test_model_config_trains_a_baseline_like_mcihn(small_settings, torch_single_thread):
    from mcihn.baselines import LateFusionConfig
    cfg = small_settings.model_config("late")
    assert isinstance(cfg, LateFusionConfig) and cfg.epochs == 2 and cfg.batch_size == nbu.session.QUICK_BATCH
    assert small_settings.model_config("mcihn") == small_settings.config()
    run = nbu.cached_seed(small_settings, cfg, 1)  # a baseline through the cache (no MMD probe)
    assert run["folder"].parent == nbu.run_folder(small_settings, cfg) and "mmd" not in run["history"][0]
    assert nbu.cached_seed(small_settings, cfg, 1)["cached"]


def test_pca_2d_projects_on_the_first_two_axes_of_the_fitted_rows():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)) * [5.0, 2.0, 0.3, 0.2, 0.1] + 7.0
    fit, some = analysis.pca_2d(x, x[:10])
    np.testing.assert_allclose(some, fit[:10])
    np.testing.assert_allclose(fit.mean(0), 0, atol=1e-9)
    var = fit.var(0)
    assert var[0] == pytest.approx(25, rel=0.2) and var[1] == pytest.approx(4, rel=0.2)
    # a linear map: the projected distance of two points never exceeds their distance
    assert np.linalg.norm(fit[0] - fit[1]) <= np.linalg.norm(x[0] - x[1]) + 1e-9


def test_the_mmd_probe_does_not_change_training(small_settings, torch_single_thread, quiet):
    from mcihn.training.runner import run_seed
    cfg = _tiny(small_settings)
    probed = nbu.cached_seed(small_settings, cfg, 1, log=lambda *a: None)
    plain = run_seed(small_settings.data, cfg, 1, device="cpu", **quiet)
    assert [h["train"] for h in probed["history"]] == [h["train"] for h in plain["history"]]
    assert probed["test"] == plain["test"]


def test_notebook_tables_use_the_one_table_runner(small_settings, torch_single_thread, monkeypatch):
    import mcihn.experiments.tables as tables

    calls = []
    real = tables.run_table
    monkeypatch.setattr(tables, "run_table", lambda *a, **k: calls.append((a, k)) or real(*a, **k))
    monkeypatch.setattr(small_settings, "epochs", 1)
    t = nbu.run_table(small_settings, "table3", labels=["-VT", "MCIHN-1"], log=lambda *a: None)
    assert len(calls) == 1 and calls[0][0][0] == "table3"
    assert [r["label"] for r in t.rows] == ["-VT", "MCIHN-1"]
    for r in t.rows:
        assert len(r["per_seed"]) == len(small_settings.seeds)
        maes = [run["test"]["MAE"] for run in r["per_seed"]]
        assert r["mean"]["MAE"] == pytest.approx(np.mean(maes)) and r["std"]["MAE"] == pytest.approx(np.std(maes))
    again = nbu.run_table(small_settings, "table3", labels=["-VT", "MCIHN-1"], log=lambda *a: None)  # from the cache
    assert [r["per_seed"] for r in again.rows] == [r["per_seed"] for r in t.rows]
    with pytest.raises(ValueError, match="no row"):
        nbu.run_table(small_settings, "table3", labels=["MCIHN-9"])


def test_paper_table_layout_and_formatting():
    from mcihn.paper import paper_table, published_rows

    rows = {"a": {"Has0_acc_2": 0.8444, "Has0_F1_score": 0.84, "Mult_acc_7": 0.482, "MAE": 0.7012, "Corr": math.nan},
            "b": {"Has0_acc_2": 0.5, "Has0_F1_score": 0.5, "Mult_acc_7": 0.1, "MAE": 1.0, "Corr": 0.1}}
    t = paper_table(rows, "mosi", std={"a": {"Has0_acc_2": 0.01, "MAE": 0.0123}})
    assert list(t.columns) == ["Acc-2", "F1", "Acc-7", "MAE", "Corr"]
    assert t.loc["a", "Acc-2"] == "84.4 ± 1.0" and t.loc["a", "MAE"] == "0.701 ± 0.012"
    assert t.loc["a", "Corr"] == "n/a" and t.loc["b", "Acc-7"] == "10.0"
    sims = paper_table({"x": {"Mult_acc_2": 0.8, "F1_score": 0.8, "Mult_acc_3": 0.6, "Mult_acc_5": 0.4,
                              "MAE": 0.4, "Corr": 0.6}}, "sims")
    assert list(sims.columns) == ["Acc-2", "F1", "Acc-3", "Acc-5", "MAE", "Corr"]
    rep = paper_table({}, "mosi", published=published_rows("table2", "mosi", ["MCIHN"]))
    assert rep.loc["MCIHN (published)", "Acc-7"] == "48.2" and rep.loc["MCIHN (published)", "MAE"] == "0.701"


def test_write_record(tmp_path):
    rec = nbu.write_record(tmp_path / "r.json", {"x": np.float32(1.5), "bad": float("nan"), "t": (1, 2)})
    on_disk = json.loads((tmp_path / "r.json").read_text())
    assert on_disk == rec and rec["x"] == 1.5 and rec["bad"] is None and rec["t"] == [1, 2]
    assert rec["mcihn_path"].endswith("mcihn")
    assert nbu.write_record(None, {"y": 1})["y"] == 1  # no path: nothing written, still returned


# ----------------------------------------------------------------------------- plots: titled and labelled
def _labelled(fig):
    for ax in fig.axes:
        if not ax.axison or ax.get_label() == "<colorbar>":
            continue
        assert ax.get_title(), "every panel has a title"
        assert ax.get_xlabel() and ax.get_ylabel(), f"panel {ax.get_title()!r} has axis labels"


def test_plots_are_titled_and_labelled(small_data):
    hist = [{"epoch": e, "train": {"rec": 1.0 / e, "disc": 1.0, "gen": 0.5, "mul": 1.0, "adp": 0.1, "total": 1.1},
             "valid": {"MAE": 1.0 - 0.1 * e}} for e in (1, 2, 3)]
    fig = plots.loss_curves({"a": hist, "b": hist}, reference={"disc": (1.0, "eq")}, best={"a": 3})
    assert sum(ax.axison for ax in fig.axes) == 7 and fig._suptitle.get_text()
    _labelled(fig)
    plt.close(fig)

    fig, axes = plt.subplots(1, 4)
    plots.heatmap(axes[0], np.eye(3), "t", "x", "y", colorbar_label="w")
    plots.scatter_2d(axes[1], np.random.rand(5, 2), "s", values=np.arange(5))
    plots.scatter_2d(axes[2], np.random.rand(4, 2), "g", groups=["u", "u", "v", "v"])
    plots.qq(axes[3], {"z": analysis.normal_qq(np.random.default_rng(0).normal(size=100))})
    _labelled(fig)
    plt.close(fig)

    fig = plots.metric_points({"A": {"MAE": 0.9, "Has0_acc_2": 0.7}, "B": {"MAE": 1.0, "Has0_acc_2": 0.6}},
                              {"A": {"MAE": 0.1, "Has0_acc_2": 0.02}}, ["Has0_acc_2", "MAE"], "points",
                              labels={"Has0_acc_2": "Acc-2"})
    _labelled(fig)
    means = list(fig.axes[0].lines[0].get_ydata())
    assert means == pytest.approx([70.0, 60.0]) and fig.axes[0].get_ylabel() == "Acc-2 (%)"  # percent
    lo, hi = fig.axes[0].get_ylim()
    assert lo < 68.0 and hi > 72.0, "A's interval (70 ± 2) is inside the axis, not clipped"
    assert list(fig.axes[1].lines[0].get_ydata()) == pytest.approx([0.9, 1.0])
    plt.close(fig)

    fig, ax = plt.subplots()
    plots.pred_vs_label(ax, np.zeros(4), np.arange(4.0) - 2, "p", constant=0.1)
    _labelled(fig)
    plt.close(fig)

    curve = {"rates": [0.0, 0.5, 1.0], "per_seed": [[0.6, 0.8, 1.2], [0.7, 0.9, 1.0]], "mean": [0.65, 0.85, 1.1],
             "std": [0.05, 0.05, 0.1], "auc": [0.85, 0.875]}
    fig, axes = plt.subplots(1, 2)
    plots.robustness_bands(axes[0], {"A": curve, "B": curve}, floor=1.0, title="r")
    assert list(axes[0].lines[0].get_ydata()) == pytest.approx(curve["mean"])
    assert "mean predictor (1.000)" in [t.get_text() for t in axes[0].get_legend().get_texts()]
    codes = np.random.default_rng(1).normal(size=(30, 6))
    plots.missing_codes(axes[1], codes, codes[:5], np.zeros((3, 6)), labels=np.arange(5.0), title="c")
    _labelled(fig)
    plt.close(fig)


def test_attention_panel(small_data):
    torch.manual_seed(0)
    from mcihn.model.mcihn import MCIHN
    model = MCIHN(MCIHNConfig.tiny(latent_len=5, latent_dim=12, heads=3), small_data.dims).eval()
    t = analysis.model_inputs(small_data, "test", "tav", max_samples=4)
    out = analysis.collect(model, t, ("alpha", "G", "ffm_attention", "pred"))
    fig = plots.attention_panel(out, 2, "audio", head=1)
    titles = [ax.get_title() for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert titles[0] == f"CGMM {plots.tex('alpha', 'a')} (Eq. 7)" and "head 1" in titles[1]
    assert {f"gate {plots.tex('G', 'va')} (Eq. 10)", f"gate {plots.tex('G', 'ta')} (Eq. 10)"} <= set(titles)
    assert all("$" in s for s in titles), titles  # rendered math, not literal braces
    assert "clip 2" in fig._suptitle.get_text()
    _labelled(fig)
    plt.close(fig)


def test_quick_splits_match_the_documented_sizes():
    """notebooks/README.md and the notebooks quote these sizes; change them together."""
    assert nbu.QUICK_SPLITS == {"train": 1284, "valid": 150, "test": 150}
    assert (nbu.QUICK_EPOCHS, nbu.QUICK_BATCH, nbu.QUICK_SEEDS) == (12, 64, (1111, 1112))
