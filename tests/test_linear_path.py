"""MCIHNConfig.linear_path: a linear regression on the time-averaged inputs beside the network (issue 17,
an addition to the paper, ``mcihn/model/linear_path.py``).

On in the ``auto`` preset only; its weights start at 0 so an untrained model predicts what the paper's does; it pools only the
real time steps (an empty clip gives 0, not NaN); it is trained by the task loss; old checkpoints without the
field resume as runs without it.
"""
from __future__ import annotations

import pytest
import torch

from conftest import AWKWARD_DIMS, AWKWARD_MODEL, make_batch
from mcihn.model.config import MCIHNConfig
from mcihn.model.linear_path import LinearPath, masked_mean
from mcihn.model.mcihn import MCIHN
from mcihn.training.runner import run_seed

pytestmark = pytest.mark.usefixtures("torch_single_thread")


def _model(on: bool, **kw) -> MCIHN:
    torch.manual_seed(0)
    return MCIHN(MCIHNConfig.tiny(**AWKWARD_MODEL, linear_path=on, **kw), AWKWARD_DIMS)


def test_on_in_the_auto_preset_only():
    for make in (MCIHNConfig, MCIHNConfig.paper, MCIHNConfig.tiny):
        assert make().linear_path is False
    for n_train in (None, 300, 10_000):
        assert MCIHNConfig.auto(n_train).linear_path is True
    assert MCIHNConfig.auto(300, linear_path=False).linear_path is False
    assert _model(False).linear is None


def test_masked_mean_pools_the_real_steps_only():
    x = torch.tensor([[[1.0, 2.0], [3.0, 4.0], [100.0, 100.0]],
                      [[5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
                      [[50.0, 50.0], [50.0, 50.0], [50.0, 50.0]]])  # (3, 3, 2)
    mask = torch.tensor([[True, True, False], [True, True, True], [False, False, False]])
    got = masked_mean(x, mask)  # (3, 2)
    assert torch.equal(got, torch.tensor([[2.0, 3.0], [7.0, 8.0], [0.0, 0.0]]))  # padding ignored; empty -> 0
    assert torch.equal(masked_mean(x, None), x.mean(dim=1))


def test_the_path_is_a_linear_function_of_the_pooled_inputs():
    dims = {"text": (3, 2), "audio": (2, 1)}
    path = LinearPath(dims)
    assert torch.equal(path.linear.weight, torch.zeros(1, 3))  # starts at 0
    with torch.no_grad():
        path.linear.weight.copy_(torch.tensor([[1.0, -2.0, 10.0]]))
    batch = {"text": torch.tensor([[[1.0, 1.0], [3.0, 5.0], [9.0, 9.0]]]), "text_mask": torch.tensor([[True, True, False]]),
             "audio": torch.tensor([[[4.0], [0.0]]]), "audio_mask": torch.tensor([[False, False]])}
    # text mean (2, 3), audio empty -> 0: 1 * 2 - 2 * 3 + 10 * 0 = -4
    assert path(batch).tolist() == [-4.0]


def test_starts_as_the_paper_model_and_changes_no_other_weight():
    off, on = _model(False), _model(True)
    shared = {k: v for k, v in on.state_dict().items() if not k.startswith("linear.")}
    assert shared.keys() == off.state_dict().keys()
    assert all(torch.equal(shared[k], off.state_dict()[k]) for k in shared)  # built first: the same draws
    batch = make_batch(B=5, seed=4)
    off.eval(), on.eval()
    assert torch.equal(off.predict(batch), on.predict(batch))


def test_adds_its_output_to_the_prediction_and_gets_the_task_gradient():
    on = _model(True, missing_aug=0.0)
    on.eval()  # no dropout: the two predictions compare exactly
    batch = make_batch(B=6, seed=5)
    deep = on.predict(batch)
    with torch.no_grad():
        on.linear.linear.weight.fill_(0.5)
    assert torch.allclose(on.predict(batch), deep + on.linear(batch))
    assert any(p is on.linear.linear.weight for p in on.main_parameters())
    main = next(p for p in on.training_phases() if p.key == "main")
    loss, _ = main.loss(batch)
    loss.backward()
    assert on.linear.linear.weight.grad.abs().sum() > 0


def test_an_empty_modality_gives_a_finite_prediction():
    on = _model(True)
    on.eval()
    batch = make_batch(B=3, seed=6)
    batch["audio_mask"] = torch.zeros_like(batch["audio_mask"])
    batch["audio"] = torch.zeros_like(batch["audio"])
    with torch.no_grad():
        on.linear.linear.weight.fill_(1.0)
    assert torch.isfinite(on.predict(batch)).all()


def test_trains_and_a_run_saved_before_the_field_resumes(small_data, small_cfg, quiet, tmp_path):
    """A run of the trainer moves the path's weights off 0; a checkpoint without the field reads as made without
    the path (resumes under linear_path=False, is refused under True)."""
    res = run_seed(small_data, small_cfg(epochs=2, linear_path=True), 5, device="cpu", **quiet)
    assert res["model"].linear.linear.weight.abs().sum() > 0
    run_seed(small_data, small_cfg(epochs=2), 5, out_dir=tmp_path, device="cpu", **quiet)
    last = tmp_path / "last.pt"
    ck = torch.load(last, weights_only=True)
    del ck["config"]["linear_path"]  # as written by the code before
    torch.save(ck, last)
    assert run_seed(small_data, small_cfg(epochs=3), 5, out_dir=tmp_path, device="cpu", resume=True,
                    **quiet)["epochs_run"] == 3
    with pytest.raises(ValueError, match="linear_path"):
        run_seed(small_data, small_cfg(epochs=4, linear_path=True), 5, out_dir=tmp_path, device="cpu",
                 resume=True, **quiet)


def test_train_flag_sets_the_switch(tmp_path, capsys):
    from conftest import SMALL_DIMS, SMALL_SPLITS
    from mcihn.cli import main
    from mcihn.data import write_synthetic
    from mcihn.training.trainer import load_checkpoint_file
    pkl = tmp_path / "x.pkl"
    write_synthetic(pkl, splits=dict(SMALL_SPLITS), dims=dict(SMALL_DIMS), seed=1)
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--seeds", "1", "--quiet", "--data", str(pkl), "--epochs", "1",
                 "--linear-path", "on", "--out", str(out)]) == 0
    ck = load_checkpoint_file(out / "seed_1" / "best.pt")
    assert ck["config"]["linear_path"] is True
    assert any(k.startswith("linear.") for k in ck["model"])
    try:
        code = main(["train", "--model", "tfn", "--linear-path", "on", "--data", str(pkl), "--out", str(tmp_path / "t")])
    except SystemExit as e:
        code = e.code
    assert code != 0
    assert "--linear-path: option(s) of MCIHN, not of --model tfn" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_ridge_init_is_checked_in_the_config():
    assert MCIHNConfig.auto(300).linear_init == "auto"  # the auto preset trains both starts
    assert MCIHNConfig.auto(300, linear_path=False).linear_init == "zero"  # no path: nothing to start
    assert MCIHNConfig.auto(300, text_encoder="some/bert").linear_init == "zero"  # no ridge on token states
    assert MCIHNConfig.auto(300, linear_init="ridge").linear_init == "ridge"
    assert MCIHNConfig.paper().linear_init == MCIHNConfig.tiny().linear_init == "zero"
    with pytest.raises(ValueError, match="needs linear_path=True"):
        MCIHNConfig.tiny(linear_init="ridge")
    with pytest.raises(ValueError, match="text_encoder"):
        MCIHNConfig.auto(300, linear_init="ridge", text_encoder="some/bert")
    with pytest.raises(ValueError, match="linear_init"):
        MCIHNConfig.auto(300, linear_init="ols")


def test_init_from_ridge_sets_the_ridge_coefficients_of_the_pooled_inputs():
    """A label linear in the masked time means: the path's weights become sklearn's ridge coefficients for the
    alpha with the lowest validation MAE, and the path then predicts the label up to its mean."""
    import numpy as np
    from sklearn.linear_model import Ridge

    from mcihn.model.linear_path import init_from_ridge

    g = torch.Generator().manual_seed(0)
    dims = {"text": (5, 3), "audio": (4, 2)}
    w_true = torch.tensor([1.0, -2.0, 0.5, 0.0, 3.0], dtype=torch.float64)

    def split(n):
        t = {m: torch.randn(n, T, D, generator=g) for m, (T, D) in dims.items()}
        for m, (T, _) in dims.items():
            lengths = torch.randint(1, T + 1, (n,), generator=g)
            t[m + "_mask"] = torch.arange(T)[None] < lengths[:, None]  # (n, T)
            t[m] = t[m] * t[m + "_mask"][..., None]  # zero padding
        pooled = torch.cat([masked_mean(t[m], t[m + "_mask"]) for m in dims], -1).double()  # (n, 5)
        t["label"] = (pooled @ w_true + 0.7).float()  # (n,)
        return t, pooled

    (train, x_tr), (valid, _) = split(200), split(50)
    path = LinearPath(dims)
    fit = init_from_ridge(path, train, valid, alphas=(1e-3, 100.0))
    assert fit["alpha"] == 1e-3 and fit["valid_mae"] < 0.01  # the exact linear label: the small penalty wins
    want = Ridge(alpha=1e-3).fit(x_tr.numpy(), train["label"].double().numpy()).coef_
    assert np.allclose(path.linear.weight.detach().numpy().ravel(), want, atol=1e-5)
    assert torch.allclose(path(valid) + 0.7, valid["label"], atol=0.02)  # the intercept is left to the network

    # reference=True (ridge_frozen): the suite's ridge (z-scored columns, best modality subset) folded into w and b
    train["label"] = (x_tr[:, :3] @ w_true[:3] + 0.7).float()  # text alone carries the label
    valid["label"] = (torch.cat([masked_mean(valid[m], valid[m + "_mask"]) for m in dims], -1).double()[:, :3]
                      @ w_true[:3] + 0.7).float()
    fit = init_from_ridge(path, train, valid, alphas=(1e-3, 100.0), reference=True)
    assert fit["modalities"] == ["text"] and fit["valid_mae"] < 0.01
    assert torch.count_nonzero(path.linear.weight[0, 3:]) == 0  # audio's columns left out
    assert torch.allclose(path(valid) + fit["intercept"], valid["label"], atol=0.01)


def test_ridge_init_starts_training_at_the_ridge_and_resumes_exactly(small_data, small_cfg, quiet, tmp_path):
    """The fit happens once, before the first epoch; a resumed run reads the weights from its checkpoint and
    ends where an uninterrupted one does."""
    cfg = dict(linear_path=True, linear_init="ridge")
    zero = run_seed(small_data, small_cfg(epochs=1, linear_path=True), 5, device="cpu", **quiet)
    logs = []
    ridge = run_seed(small_data, small_cfg(epochs=1, **cfg), 5, device="cpu", progress=False, log=logs.append)
    assert any("linear path starts at the ridge regression" in str(line) for line in logs)
    assert not torch.allclose(zero["model"].linear.linear.weight, ridge["model"].linear.linear.weight)
    straight = run_seed(small_data, small_cfg(epochs=3, **cfg), 5, device="cpu", **quiet)
    run_seed(small_data, small_cfg(epochs=2, **cfg), 5, out_dir=tmp_path, device="cpu", **quiet)
    logs = []
    resumed = run_seed(small_data, small_cfg(epochs=3, **cfg), 5, out_dir=tmp_path, device="cpu", resume=True,
                       progress=False, log=logs.append)
    assert not any("ridge regression" in str(line) for line in logs)  # not fitted again over the checkpoint
    assert resumed["valid"]["MAE"] == straight["valid"]["MAE"] and resumed["epochs_run"] == 3


def test_frozen_ridge_start_is_the_ridge_and_keeps_it(small_data, small_cfg, quiet):
    """linear_init="ridge_frozen": before the first step the model predicts what the ridge regression does (head
    at zero weights and the ridge intercept); training moves the network, never the path's weights."""
    import numpy as np

    from mcihn.training.runner import model_tensors
    from mcihn.model.linear_path import init_from_ridge, start_at_ridge
    from mcihn.training.trainer import Trainer

    cfg = small_cfg(epochs=2, linear_path=True, linear_init="ridge_frozen", missing_aug=0.0)
    trainer = Trainer(cfg, dict(small_data.dims), device="cpu", seed=5)
    model = trainer.model
    assert not model.linear.linear.weight.requires_grad
    assert all(p is not model.linear.linear.weight for p in model.main_parameters())
    train, valid = (model_tensors(small_data.splits[s], cfg) for s in ("train", "valid"))
    fit = init_from_ridge(model.linear, train, valid, reference=True)
    start_at_ridge(model.ffm.head, fit["intercept"])
    model.eval()
    pred = model.predict(valid).numpy()
    ridge_mae = float(np.mean(np.abs(pred - valid["label"].numpy())))
    assert abs(ridge_mae - fit["valid_mae"]) < 1e-4  # the untrained model is the ridge regression

    logs = []
    one = run_seed(small_data, small_cfg(**{**cfg.to_dict(), "epochs": 1}), 5, device="cpu", progress=False,
                   log=logs.append)
    assert any("kept fixed" in str(line) for line in logs)
    two = run_seed(small_data, cfg, 5, device="cpu", **quiet)
    w1, w2 = one["model"].linear.linear.weight, two["model"].linear.linear.weight
    assert not w2.requires_grad and torch.count_nonzero(w2) > 0
    assert torch.equal(w1, w2)  # the same fit, untouched by a second epoch
    assert torch.count_nonzero(two["model"].ffm.head.weight) > 0  # the network trains (its head started at 0)


def test_auto_start_keeps_the_start_with_the_lower_validation_mae(small_data, small_cfg, quiet, tmp_path):
    """linear_init="auto" (training/starts.py): one run per start, the lower validation MAE kept; its best.pt and
    result.json are the seed's; a killed run resumes each start from its own folder and chooses the same."""
    import json

    from mcihn.training.runner import load_model

    cfg = dict(linear_path=True, missing_aug=0.0)
    each = {s: run_seed(small_data, small_cfg(epochs=2, linear_init=s, **cfg), 5, device="cpu", **quiet)
            for s in ("zero", "ridge_frozen")}
    want = min(each, key=lambda s: each[s]["valid"]["MAE"])
    logs = []
    auto = run_seed(small_data, small_cfg(epochs=2, linear_init="auto", **cfg), 5, out_dir=tmp_path, device="cpu",
                    progress=False, log=logs.append)
    assert auto["start"] == want and any("kept start" in str(line) for line in logs)
    assert {s: v["valid_mae"] for s, v in auto["starts"].items()} == {s: r["valid"]["MAE"] for s, r in each.items()}
    assert auto["valid"] == each[want]["valid"] and auto["test"] == each[want]["test"]
    assert json.loads((tmp_path / "result.json").read_text())["start"] == want
    model, saved_cfg, _, _ = load_model(tmp_path / "best.pt")  # the kept run's weights and concrete start
    assert saved_cfg.linear_init == want
    assert torch.equal(model.linear.linear.weight, auto["model"].linear.linear.weight)

    # Kill after the first start: the second start's folder is gone; resuming trains only what is missing.
    import shutil
    shutil.rmtree(tmp_path / "start_ridge_frozen")
    (tmp_path / "result.json").unlink()
    logs = []
    again = run_seed(small_data, small_cfg(epochs=2, linear_init="auto", **cfg), 5, out_dir=tmp_path, device="cpu",
                     resume=True, progress=False, log=logs.append)
    assert any("finished earlier" in str(line) for line in logs)  # the zero start read back, not retrained
    assert again["start"] == want and again["valid"] == auto["valid"]


def test_auto_start_needs_the_linear_path():
    with pytest.raises(ValueError, match="linear_path"):
        MCIHNConfig.tiny(linear_init="auto")


def test_train_with_data_keeps_a_start_and_evaluates_it(tmp_path, capsys):
    """`train --preset auto` (what `train --data` uses on real data) trains both starts per seed: the seed folder
    holds both runs and the kept one's best.pt, which `evaluate` reads as any other; a second run in the same
    folder needs --resume; --linear-init zero trains once."""
    import json

    from conftest import SMALL_DIMS, SMALL_SPLITS
    from mcihn.cli import main
    from mcihn.data import write_synthetic

    pkl = tmp_path / "x.pkl"
    write_synthetic(pkl, splits=dict(SMALL_SPLITS), dims=dict(SMALL_DIMS), seed=1)
    out = tmp_path / "run"
    args = ["train", "--preset", "auto", "--seeds", "1", "--quiet", "--data", str(pkl), "--epochs", "1", "--out",
            str(out)]
    assert main(args) == 0
    printed = capsys.readouterr().out
    res = json.loads((out / "results.json").read_text())
    assert res["config"]["linear_init"] == "auto"
    seed = res["per_seed"][0]
    assert seed["start"] in ("zero", "ridge_frozen") and set(seed["starts"]) == {"zero", "ridge_frozen"}
    assert f"start {seed['start']})" in printed
    for start in ("zero", "ridge_frozen"):
        assert (out / "seed_1" / f"start_{start}" / "result.json").exists()
    assert main(["evaluate", "--checkpoint", str(out / "seed_1" / "best.pt"), "--data", str(pkl),
                 "--split", "test"]) == 0
    evaluated = json.loads((out / "seed_1" / "eval_x_test.json").read_text())
    assert evaluated["metrics"]["MAE"] == pytest.approx(seed["test"]["MAE"], abs=1e-4)
    assert main(args) == 2  # the folder holds a run: --resume or another --out
    one = tmp_path / "zero"
    assert main([*args[:-1], str(one), "--linear-init", "zero"]) == 0
    assert not list(one.glob("seed_1/start_*")) and (one / "seed_1" / "last.pt").exists()


def test_a_seed_folder_holds_one_kind_of_run(small_data, small_cfg, quiet, tmp_path):
    """A folder of one start's run is not resumed as linear_init='auto' (whose two runs live in start_*/), nor the
    other way round: the error names the folder, and nothing is trained or written."""
    one = dict(epochs=1, linear_path=True, missing_aug=0.0)
    run_seed(small_data, small_cfg(linear_init="zero", **one), 5, out_dir=tmp_path / "single", device="cpu", **quiet)
    before = sorted(p.name for p in (tmp_path / "single").iterdir())
    with pytest.raises(ValueError, match="single.*holds a run of one start"):
        run_seed(small_data, small_cfg(linear_init="auto", **one), 5, out_dir=tmp_path / "single", device="cpu",
                 resume=True, **quiet)
    assert sorted(p.name for p in (tmp_path / "single").iterdir()) == before
    run_seed(small_data, small_cfg(linear_init="auto", **one), 5, out_dir=tmp_path / "both", device="cpu", **quiet)
    with pytest.raises(ValueError, match="both.*holds a run of linear_init='auto'"):
        run_seed(small_data, small_cfg(linear_init="zero", **one), 5, out_dir=tmp_path / "both", device="cpu",
                 resume=True, **quiet)
