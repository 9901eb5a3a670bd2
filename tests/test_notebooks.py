"""The notebooks as tests: conventions (static, fast), then one papermill execution of each notebook with
assertions on what it recorded.

How the notebook tests fit together (see also conftest.py at the repository root and notebooks/README.md):

* Every ``notebooks/NN_*.ipynb`` is picked up automatically, including ones added later.
* ``test_notebook_runs`` executes each notebook once with papermill, in QUICK mode (``MCIHN_QUICK=1`` from
  the environment, not injected, so the committed parameters cell is what runs), in ``notebooks/`` as the
  working directory, with a per-cell timeout (``MCIHN_NB_CELL_TIMEOUT``, default 300 s). Injected
  parameters: ``RECORD`` (a JSON path) and ``OUT`` (a scratch path) when the notebook declares them, and a
  few per-notebook extras (notebook 05 reads its data from a pickle file, to test ``-p DATA path``).
  Trained runs go to the session's cache (``MCIHN_CACHE_DIR``), shared by all notebooks as in real use.
* The ``test_NN_*`` functions assert on the recorded JSON: losses finite and falling, the MMD of aligned
  features below the unaligned, the trained model's validation MAE below the mean predictor's, every
  row of the ablation table present.
* Afterwards, in the same ``python -m pytest`` session, nbval (``--nbval-lax``, pyproject.toml) runs each
  committed notebook again exactly as a student opens it. Its runs come from the cache, so it costs
  kernel start-up, plotting and UMAP, not training.
"""
from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

import nbformat
import pytest

from mcihn.model.config import MCIHNConfig

ROOT = Path(__file__).resolve().parents[1]
NB_DIR = ROOT / "notebooks"
NOTEBOOKS = sorted(NB_DIR.glob("[0-9][0-9]_*.ipynb"))
CELL_TIMEOUT = int(os.environ.get("MCIHN_NB_CELL_TIMEOUT", "300"))
REQUIRED_PARAMETERS = ("QUICK", "SEED", "DATA", "EPOCHS", "DEVICE", "RECORD")


def _ids(paths):
    return [p.stem for p in paths]


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _parameters_cell(nb):
    cells = [c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", [])]
    return cells[0] if len(cells) == 1 else None


# ----------------------------------------------------------------------------- conventions (no execution)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_conventions(path):
    nb = _read(path)
    cells = nb.cells
    assert cells[0].cell_type == "markdown" and cells[0].source.startswith(f"# {path.stem[:2]}"), \
        "the first cell is a markdown title '# NN ...'"
    assert "time" in cells[0].source.lower(), "the introduction says how long the notebook takes"
    code = [c for c in cells if c.cell_type == "code"]
    assert "import" in code[0].source, "the first code cell holds the imports"
    params = _parameters_cell(nb)
    assert params is not None, "exactly one code cell is tagged 'parameters' (papermill)"
    assert cells.index(params) < 4, "the parameters cell comes right after the imports"
    for name in REQUIRED_PARAMETERS:
        assert f"\n{name} = " in "\n" + params.source, f"the parameters cell sets {name}"
    assert "MCIHN_QUICK" in params.source or "quick_from_env" in params.source, "QUICK is read from MCIHN_QUICK"
    tail = "\n".join(c.source for c in cells[-3:] if c.cell_type == "markdown")
    assert "Summary" in tail and "Exercises" in tail, "the notebook ends with a summary and exercises"
    assert nb.metadata.get("kernelspec", {}).get("name") == "python3"


def test_notebooks_are_numbered_and_indexed():
    numbers = [p.stem[:2] for p in NOTEBOOKS]
    assert len(numbers) == len(set(numbers)), f"two notebooks share a number: {numbers}"
    index, readme = (NB_DIR / "README.md").read_text(), (ROOT / "README.md").read_text()
    for p in NOTEBOOKS:
        assert p.name in index, f"notebooks/README.md does not list {p.name}"
        assert p.name in readme, f"README.md does not list {p.name}"


# ----------------------------------------------------------------------------- execution with papermill
# The `executed` fixture (each notebook run once per session with papermill) is in tests/conftest.py, shared
# with tests/test_book.py.
def _numbers(x, where="record"):
    """Every number in a JSON value, with its path."""
    if isinstance(x, dict):
        for k, v in x.items():
            yield from _numbers(v, f"{where}.{k}")
    elif isinstance(x, list):
        for i, v in enumerate(x):
            yield from _numbers(v, f"{where}[{i}]")
    elif isinstance(x, (int, float)) and not isinstance(x, bool):
        yield where, x


def _stream_text(nb) -> str:
    return "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                     if o.get("output_type") == "stream")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_runs(path, executed):
    res = executed(path.stem)
    record = res["record"]
    if "RECORD" in res["parameters"]:
        assert isinstance(record, dict) and record, "the notebook wrote its record"
        bad = [w for w, v in _numbers(record) if not math.isfinite(v)]
        assert not bad, f"non-finite values recorded: {bad[:5]}"
        if "mcihn_path" in record:  # the kernel imported the package under test
            assert Path(record["mcihn_path"]) == ROOT / "mcihn", record["mcihn_path"]
    declared_data = str(_parameters_cell(_read(path)).source)
    if 'DATA = "synthetic"' in declared_data:  # synthetic data must be announced as such
        assert "SYNTHETIC" in _stream_text(res["nb"]), "the output does not say that the data are synthetic"


# ----------------------------------------------------------------------------- what each notebook recorded
def _decreasing(values) -> bool:
    return values[-1] < values[0]


def test_01_feature_extraction(executed):
    r = executed("01_feature_extraction")["record"]
    assert r["text_dim"] == 384 and r["X_t"] == [36, 384], "MiniLM's width, read from the model"
    assert r["X_v"][0] == 10 and r["audio_frames"] == r["audio_frames_expected"]
    assert r["sim_movie_movie"] > r["sim_movie_other"] + 0.3, "two sentences about a film are closer than unrelated ones"
    assert r["dims"]["text"] == [36, 384] and r["dims"]["vision"][0] == 10 and r["dims"]["audio"][0] == 128
    assert all(n > 0 for n in r["splits"].values())


def test_02_aae_latents(executed):
    r = executed("02_aae_latents")["record"]
    assert r["synthetic"] and r["quick"]
    assert _decreasing(r["losses"]["rec"]), "the reconstruction loss falls during training"
    assert _decreasing(r["losses"]["mul"]), "the training MAE falls during training"
    for m, after in r["prior"]["after training"].items():
        before = r["prior"]["before training"][m]
        # the lesson: training brings the codes closer to N(0, 1), by a margin (QUICK: KS 0.31-0.35 -> 0.13-0.15)
        assert after["ks"] < 0.75 * before["ks"], f"{m}: training brings the codes closer to N(0, 1)"
        assert 0 <= r["aae"][m]["disc_accuracy"] <= 1
    assert all(0 <= a <= 1 for a in r["losses"]["disc_acc"]), "the discriminator's accuracy is logged per epoch"
    with_adv, without = r["compare"]["with adversarial phase"], r["compare"]["without (adv_weight=0)"]
    assert with_adv["ks"] < without["ks"] and with_adv["std"] > without["std"], \
        "without the generator's gradient the codes drift away from N(0, 1) and shrink"


def test_03_cgmm_attention(executed):
    r = executed("03_cgmm_attention")["record"]
    L, h = r["latent_len"], r["heads"]
    for m, shape in r["shapes"]["alpha"].items():
        assert shape[1:] == [L, L], (m, shape)
    for k, shape in r["shapes"]["ffm_attention"].items():
        assert shape[1:] == [h, L, L], (k, shape)
    for when, rep in r["attention"].items():
        for part in ("alpha", "ffm"):
            for k, v in rep[part].items():
                assert v["row_sum_error"] < 1e-4, (when, part, k)
                assert 0 <= v["entropy_ratio"] <= 1 + 1e-6, (when, part, k)
        for k, v in rep["gate"].items():
            assert v["min"] >= 0 and 0 <= v["zero_share"] <= 1, (when, k)
    assert set(r["shapes"]["G"]) == {"vt", "va", "ta"}
    # the lesson: the initial model's attention is uniform; training sharpens the fusion attention (QUICK, seed
    # 1111: a-vt 0.77) much more than alpha (0.999), and separates the latent slots (similarity ~1 -> 0.53-0.95)
    after, before = r["ffm_entropy"]["after training"], r["ffm_entropy"]["before training"]
    assert min(after.values()) < 0.9, f"the fusion attention stays near uniform after training: {after}"
    assert min(before.values()) > 0.98, before
    alpha_after = [v["entropy_ratio"] for v in r["attention"]["after training"]["alpha"].values()]
    alpha_before = [v["entropy_ratio"] for v in r["attention"]["before training"]["alpha"].values()]
    assert min(alpha_before) > 0.98 and min(alpha_after) < min(alpha_before), "training moves alpha off uniform"
    assert min(alpha_after) > 0.9 and min(alpha_after) > min(after.values()), "alpha stays broader than the fusion"
    assert min(r["position_similarity_before"].values()) > 0.98, "the initial slots are near copies"
    assert min(r["position_similarity"].values()) < 0.95, "training separates the latent slots"


def test_04_mmd_alignment(executed):
    r = executed("04_mmd_alignment")["record"]
    toy = r["toy"]
    assert toy["exact"][0] == pytest.approx(0.0, abs=1e-12)  # P = Q
    assert all(b > a for a, b in zip(toy["exact"], toy["exact"][1:])), "MMD grows with the shift"
    se = [s / math.sqrt(20) for s in toy["u_std"]]  # 20 repetitions per shift
    for u, exact, e in zip(toy["u_mean"], toy["exact"], se):
        assert abs(u - exact) < 4 * e + 1e-3, "the unbiased estimate agrees with the closed form"
    for v, exact_b, s in zip(toy["v_mean"], toy["exact_biased"], toy["v_std"]):
        assert abs(v - exact_b) < 4 * s / math.sqrt(20) + 1e-3, "the biased estimate matches its expectation"
    lams = sorted(float(k) for k in r["lambda_table"])
    table = {float(k): v for k, v in r["lambda_table"].items()}
    assert lams[0] == 0.0 and lams[-1] > 0
    for lam, row in table.items():  # every comparison carries its seed spread
        assert len(row["per_seed"]) == len(r["seeds"]) >= 2, lam
        assert set(row["std"]) == set(row["mean"]) and all(v >= 0 for v in row["std"].values()), lam
    key = "MMD² after ξ (sum)"
    assert table[lams[-1]]["mean"][key] < table[0.0]["mean"][key], \
        "aligned (λ > 0) features have a lower MMD than unaligned (λ = 0) ones"
    v = r["lambda_verdict"][key]  # the lesson: the alignment effect is larger than the seed spread
    assert v["exceeds_spread"] and v["difference"] < 0, v
    for k, v in r["lambda_verdict"].items():  # the printed verdict is what the numbers say, by the one rule
        assert v["exceeds_spread"] == (abs(v["difference"]) > v["spread"]), k
        hi, lo = (table[lams[-1]], table[0.0])
        assert v["difference"] == pytest.approx(hi["mean"][k] - lo["mean"][k], abs=1e-9), k
        assert v["spread"] == pytest.approx(hi["std"][k] + lo["std"][k], abs=1e-9), k
    for term, after in r["umap_mmd"]["after training"].items():
        assert after < r["umap_mmd"]["before training"][term], term
    assert all(set(e) == {"xi", "raw", "xi_singular_values"} for e in r["mmd_per_epoch"])


def test_05_training(executed):
    res = executed("05_training")
    r = res["record"]
    assert res["parameters"]["DATA"].endswith(".pkl") and r["synthetic"], "ran on a pickle file (-p DATA)"
    for seed, hist in r["histories"].items():
        for term in ("rec", "mul", "adp", "total"):  # the defaults: adversarial term off, so no disc / gen logs
            assert all(math.isfinite(h["train"][term]) for h in hist), (seed, term)
        assert _decreasing([h["train"]["total"] for h in hist]), f"seed {seed}: the training loss falls"
    floor = r["mean_predictor_valid_mae"]
    for seed, valid in r["valid"].items():
        # the lesson: a trained model, clearly below the floor (QUICK: 0.56-0.58 against 1.05)
        assert valid["MAE"] < 0.85 * floor, f"seed {seed}: validation MAE {valid['MAE']} vs mean predictor {floor}"
    assert r["test_mean"]["MAE"] < r["test_floor"]["MAE"]
    assert set(r["test_mean"]) >= {"Has0_acc_2", "Has0_F1_score", "Mult_acc_7", "MAE", "Corr"}


def test_06_ablations(executed):
    r = executed("06_ablations")["record"]
    assert list(r["rows"]) == ["-VT", "-VA", "MCIHN"], "QUICK: the rows that carry the lesson"
    va = r["rows"]["-VA"]
    for name in ("-VT", "MCIHN"):  # planted: text carries the label, so the row without text is far behind
        row = r["rows"][name]
        assert row["mean"]["MAE"] < va["mean"]["MAE"] - max(row["std"]["MAE"], va["std"]["MAE"]), name
        assert row["mean"]["MAE"] < va["mean"]["MAE"] - 0.1, f"{name}: the gap to -VA is large, not marginal"
    for name, row in r["rows"].items():
        assert len(row["per_seed"]) == len(r["seeds"]) >= 2, name
        assert math.isfinite(row["mean"]["MAE"]) and row["std"]["MAE"] >= 0, name
    assert r["rows"]["-VA"]["variant"] == "-VA" and r["rows"]["-VT"]["variant"] == "-VT"
    for name, g in r["gaps"].items():  # every comparison with MCIHN is stated against the seed spread, one rule
        row, ref = r["rows"][name], r["rows"]["MCIHN"]
        assert g["difference"] == pytest.approx(row["mean"]["MAE"] - ref["mean"]["MAE"], abs=1e-4), name
        assert g["spread"] == pytest.approx(row["std"]["MAE"] + ref["std"]["MAE"], abs=1e-4), name
        assert g["exceeds_spread"] == (abs(g["difference"]) > g["spread"]), name
    assert r["gaps"]["-VA"]["exceeds_spread"] and r["gaps"]["-VA"]["better"] == "MCIHN"


def test_07_tuning(executed):
    r = executed("07_tuning")["record"]
    assert r["synthetic"] and r["quick"]
    values = r["trial_values"]
    assert len(values) >= 2 and r["best_value"] == pytest.approx(min(values)), "the chosen trial is the lowest"
    assert set(r["best_params"]) >= {"mmd_weight", "adv_weight", "rec_weight", "lr"}
    for name in ("defaults", "tuned"):  # test reported for the chosen setting, over the seeds
        assert len(r["test_reported"][name]) == len(r["seeds"]) >= 2, name
        assert all(math.isfinite(x) for x in r["test_reported"][name])
        row = r["compare"][name]
        assert row["test std"] >= 0 and row["valid std"] >= 0, name
    assert r["test_spread"] >= 0 and math.isfinite(r["test_gap"])
    v = r["test_verdict"]  # the printed verdict is what the numbers say, by the one rule of every notebook
    assert v["exceeds_spread"] == (abs(r["test_gap"]) > r["test_spread"])
    assert r["test_gap"] == pytest.approx(r["compare"]["defaults"]["test MAE"] - r["compare"]["tuned"]["test MAE"],
                                          abs=1e-9)
    assert set(r["param_effects"]) >= {"mmd_weight", "lr"}



def test_08_missing_modalities(executed):
    res = executed("08_missing_modalities")
    r, text = res["record"], _stream_text(res["nb"])
    plain, remedy = r["names"]["plain"], r["names"]["remedy"]
    assert r["missing_aug"] == MCIHNConfig().missing_aug, "the remedy shown is MCIHN's default"
    curves, floor = r["curves"], r["mean_predictor_test_mae"]
    assert set(curves) == {plain, remedy, "late fusion", "TFN"}
    for name, c in curves.items():
        assert len(c["per_seed"]) == len(r["seeds"]) >= 2, name
        assert c["rates"][0] == 0 and c["rates"][-1] == 1 and len(c["rates"]) == 11, name
        assert set(c["dropped"]) == {"text", "audio", "vision"}, name
        assert c["mean"][0] == pytest.approx(float(sum(c["full"]) / len(c["full"])), abs=1e-6), name  # r = 0: complete
    # the failure: without the remedy, r = 1 is farther from the mean predictor than with it, beyond the seed spread
    off, fixed = curves[plain]["last"], curves[remedy]["last"]
    v = r["verdicts"]["r1 distance to the mean predictor"]
    assert v["a"] == pytest.approx([abs(x - floor) for x in off]) and v["b"] == pytest.approx([abs(x - floor) for x in fixed])
    assert v["exceeds_spread"] and v["better"] == remedy, v["sentence"]
    assert r["verdicts"]["r1 plain vs mean predictor"]["better"] == "mean predictor"
    assert curves[plain]["std"][-1] > curves[remedy]["std"][-1], "the summary: without it, seeds differ more at r = 1"
    # the remedy falls back to the mean predictor at r = 1, and so do the two baselines (the summary says so)
    assert abs(sum(fixed) / len(fixed) - floor) < 0.1, (fixed, floor)
    for name in ("late fusion", "TFN"):
        assert abs(sum(curves[name]["last"]) / len(r["seeds"]) - floor) < 0.1, name
    # the cause: the all-missing codes lie farther from the training codes without the remedy than with it
    ratio = r["code_ratio"]
    v = r["verdicts"]["code ratio"]
    assert v["a"] == pytest.approx(ratio[plain]) and v["b"] == pytest.approx(ratio[remedy])
    assert v["exceeds_spread"] and v["better"] == remedy, v["sentence"]
    assert min(ratio[plain]) > 1.0, "without the remedy the all-missing codes lie farther out than a real clip's"
    assert sum(ratio[remedy]) / len(ratio[remedy]) < 1.5, "with it, about as near the training codes as a real clip's"
    for name, per_seed in r["codes"].items():
        for seed_codes, seed_ratio in zip(per_seed, ratio[name]):
            assert seed_ratio == pytest.approx(sum(m["distance ratio"] for m in seed_codes.values()) / len(seed_codes))
    # the price: both settings' complete-data validation MAE, over the same seeds
    v = r["verdicts"]["complete valid"]
    assert v["a"] == pytest.approx(r["valid"][remedy]) and v["b"] == pytest.approx(r["valid"][plain])
    # every verdict: its numbers recomputed from the values it compared, and its sentence printed where stated
    assert len(r["verdicts"]) == 3 * 5 + 5
    for key, v in r["verdicts"].items():
        n_a, n_b = len(v["a"]), len(v["b"])
        ma, mb = sum(v["a"]) / n_a, sum(v["b"]) / n_b
        sa = math.sqrt(sum((x - ma) ** 2 for x in v["a"]) / n_a)
        sb = math.sqrt(sum((x - mb) ** 2 for x in v["b"]) / n_b)
        assert v["difference"] == pytest.approx(ma - mb, abs=1e-9), key
        assert v["spread"] == pytest.approx(sa + sb, abs=1e-9), key
        assert v["exceeds_spread"] == (abs(ma - mb) > sa + sb), key
        if ":" in key:  # section 5's table: the values are the curves' numbers
            measure, pair = key.split(": ", 1)
            other = pair.split(" vs ")[1]
            get = {"r = 1": lambda c: c["last"], "AUC of MAE": lambda c: c["auc"]}.get(
                measure, lambda c: c["dropped"][measure.removesuffix(" dropped")])
            assert v["a"] == pytest.approx(get(curves[remedy])) and v["b"] == pytest.approx(get(curves[other])), key
    for key in ("r1 plain vs mean predictor", "code ratio", "r1 distance to the mean predictor", "complete valid",
                "complete test", f"r = 1: {remedy} vs {plain}"):
        assert r["verdicts"][key]["sentence"] in text, key
