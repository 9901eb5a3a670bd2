"""Tests for the table commands (mcihn.experiments.tables, ``python -m mcihn experiment``): every row on tiny
synthetic data, the written files, best-per-column marking, the published rows, resumability."""
from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest
import torch

import mcihn.training.runner as runner_mod
import mcihn.training.trainer as train_mod
from conftest import SMALL_DIMS
from mcihn.cli import main
from mcihn.experiments.tables import TABLES, ExperimentTable, run_table, table2, table3
from mcihn.paper import PAPER_COLUMNS, PUBLISHED, TABLE_ROWS, comparable_with, published_rows
from mcihn.data import synthetic_data, write_synthetic

pytestmark = pytest.mark.usefixtures("torch_single_thread")

TINY_SPLITS = {"train": 40, "valid": 16, "test": 16}
QUIET = dict(progress=False, log=lambda *a, **k: None)


@pytest.fixture(scope="module")
def tiny_data():
    return synthetic_data("mosi", splits=dict(TINY_SPLITS), dims=dict(SMALL_DIMS), seed=3)


@pytest.fixture(scope="module")
def tables(tiny_data, tmp_path_factory):
    """Table 2 and Table 3, one epoch, seeds 1 and 2, each into its own folder."""
    out = {}
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for fn in (table2, table3):
            d = tmp_path_factory.mktemp(fn.__name__)
            out[fn.__name__] = (fn(tiny_data, seeds=[1, 2], epochs=1, out_dir=d, **QUIET), d)
    finally:
        torch.set_num_threads(old)
    return out


@pytest.mark.parametrize("name, labels", [
    ("table2", ["Late fusion", "TFN", "LMF", "MulT", "Self-MM", "EMT", "CMHFM", "MCIHN"]),
    ("table3", ["-VT", "-VA", "-TA", "MCIHN-1", "MCIHN-2", "MCIHN"]),
])
def test_every_row_is_trained_and_written(tables, name, labels):
    table, d = tables[name]
    assert [r["label"] for r in table.rows] == labels
    assert table.synthetic and table.dataset == "mosi" and table.preset == "tiny" and table.seeds == [1, 2]
    md = (d / f"{name}.md").read_text()
    assert md == table.to_markdown() and "SYNTHETIC" in md.splitlines()[0]
    refs = {r["label"].split(" (")[0]: r["mean"]["MAE"] for r in table.references}  # floors on the same data
    assert set(refs) == {"mean predictor", "ridge on pooled features"} and refs["ridge on pooled features"] < refs["mean predictor"]
    assert "| mean predictor |" in md and "reference, same data" in md
    for label in labels:
        assert re.search(rf"^\| {re.escape(label)} \| .* \| this run, 2 seed\(s\) \|", md, flags=re.M), label
    lines = list(csv.DictReader(io.StringIO((d / f"{name}.csv").read_text())))
    ours = [ln for ln in lines if ln["source"] == "this run"]
    assert [ln["Methods"] for ln in ours] == labels
    # synthetic data: the paper's rows (real MOSI, other features) would mean nothing next to ours
    assert not [ln for ln in lines if ln["source"].startswith("published")]
    on_disk = json.loads((d / f"{name}.json").read_text())
    assert [r["label"] for r in on_disk["rows"]] == labels
    for row in table.rows:  # each row is an ordinary `train` run in its own folder, both seeds finished
        res = json.loads((d / row["folder"] / "results.json").read_text())
        assert res["model"] == row["model"] and [r["seed"] for r in res["per_seed"]] == [1, 2]
        assert row["mean"] == res["mean"] and row["std"] == res["std"]
        assert all((d / row["folder"] / f"seed_{s}" / "result.json").exists() for s in (1, 2))
        assert all(h["epoch"] == 1 for s in (1, 2)
                   for h in json.loads((d / row["folder"] / f"seed_{s}" / "history.json").read_text()))


def test_table3_rows_are_the_ablation_switches(tables):
    table, _ = tables["table3"]
    cfg = {r["label"]: r["config"] for r in table.rows}
    assert sorted(cfg["-VT"]["modalities"]) == ["text", "vision"]
    assert sorted(cfg["-VA"]["modalities"]) == ["audio", "vision"]
    assert sorted(cfg["-TA"]["modalities"]) == ["audio", "text"]
    assert (cfg["MCIHN-1"]["use_aae"], cfg["MCIHN-1"]["use_cgmm"]) == (False, True)
    assert (cfg["MCIHN-2"]["use_aae"], cfg["MCIHN-2"]["use_cgmm"]) == (True, False)
    assert [r["variant"] for r in table.rows] == ["-VT", "-VA", "-TA", "MCIHN-1", "MCIHN-2", "MCIHN"]


def test_columns_follow_the_paper(tables):
    table, _ = tables["table2"]
    header = next(ln for ln in table.to_markdown().splitlines() if ln.startswith("| Methods"))
    assert [c.split(" (")[0] for c in header.strip("| ").split(" | ")[1:6]] == ["Acc-2", "F1", "Acc-7", "MAE", "Corr"]
    assert [t for t, _ in PAPER_COLUMNS["sims"]] == ["Acc-2", "F1", "Acc-3", "Acc-5", "MAE", "Corr"]


def _fake_table(dataset="mosi") -> ExperimentTable:
    keys = [k for _, k in PAPER_COLUMNS[dataset]]

    def row(label, values):
        return {"label": label, "mean": dict(zip(keys, values)), "std": {k: 0.01 for k in keys},
                "per_seed": [{}, {}], "train_time_s": 75.0}

    t = ExperimentTable("table2", dataset, "fake", True, [1, 2], "tiny")
    t.rows = [row("A", (0.800, 0.790, 0.30, 0.90, 0.50)), row("B", (0.8004, 0.700, 0.35, 0.80, 0.60)),
              row("C", (0.700, 0.800, 0.35, 0.85, float("nan")))]
    return t


def test_best_per_column_is_marked_with_ties_and_lower_is_better_for_mae():
    t = _fake_table()
    # A and B print the same Acc-2 (80.0): both are best; Acc-7 35.0 is a tie of B and C; MAE: lowest wins
    assert t.best() == {"Acc-2": ["A", "B"], "F1": ["C"], "Acc-7": ["B", "C"], "MAE": ["B"], "Corr": ["B"]}
    md = t.to_markdown()
    row_b = next(ln for ln in md.splitlines() if ln.startswith("| B |"))
    assert row_b.split(" | ")[1:6] == ["**80.0 ± 1.0**", "70.0 ± 1.0", "**35.0 ± 1.0**", "**0.800 ± 0.010**",
                                       "**0.600 ± 0.010**"]
    row_c = next(ln for ln in md.splitlines() if ln.startswith("| C |"))
    assert row_c.split(" | ")[5] == "-" and "1 min 15 s" in row_c  # undefined Corr; the training time
    lines = {ln["Methods"]: ln for ln in csv.DictReader(io.StringIO(t.to_csv()))}
    assert lines["B"]["best"] == "Acc-2;Acc-7;MAE;Corr" and lines["C"]["best"] == "F1;Acc-7"
    assert lines["A"]["Acc-2"] == "80.0" and lines["A"]["MAE"] == "0.9" and lines["C"]["Corr"] == ""


def test_published_rows_are_the_papers_and_labelled_as_such():
    t = _fake_table()
    t.published = published_rows("table2", "mosi")
    mosi = {p["label"]: p["values"] for p in t.published}
    assert mosi["MCIHN"] == {"Acc-2": 84.4, "F1": 84.1, "Acc-7": 48.2, "MAE": 0.701, "Corr": 0.796}
    assert mosi["Self-MM"]["Acc-2"] == 83.4 and mosi["TFN"]["MAE"] == 0.901
    sims = {p["label"]: p["values"] for p in published_rows("table2", "sims")}
    assert sims["MCIHN"] == {"Acc-2": 82.8, "F1": 82.6, "Acc-3": 68.8, "Acc-5": 45.2, "MAE": 0.391, "Corr": 0.653}
    t3 = {p["label"]: p["values"] for p in published_rows("table3", "mosi")}
    assert t3["MCIHN-2"] == {"Acc-2": 79.6, "F1": 78.9, "Acc-7": 32.7, "MAE": 0.774, "Corr": 0.715}
    md = t.to_markdown()
    assert "| MCIHN | 84.4 | 84.1 | 48.2 | 0.701 | 0.796 | published, CMU-MOSI (other features) | - |" in md
    assert "other features" in md.splitlines()[0] and "not the data our rows were trained on" in md.splitlines()[0]
    assert "**" not in "".join(ln for ln in md.splitlines() if "published, CMU-MOSI" in ln)  # never marked best


PAPER = Path("/work/shared/paper/000_0cb58dcd6fe9f5fa.txt")


@pytest.mark.skipif(not PAPER.exists(), reason="the paper's text is not on this machine")
def test_published_numbers_match_the_paper_text():
    text = PAPER.read_text()
    tables = text.split("Table 2: Baseline")[0].rsplit("Methods", 1)[1], text.split("Table 3: Ablation")[0].rsplit(
        "Methods", 1)[1]
    for name, block in zip(("table2", "table3"), tables):
        for line in block.strip().splitlines()[1:]:
            label, *nums = line.split()
            nums = tuple(float(x) for x in nums)
            assert nums[:6] == PUBLISHED[name]["sims"][label], (name, label)
            assert nums[6:] == PUBLISHED[name]["mosi"][label], (name, label)


def test_an_interrupted_table_continues_where_it_stopped(tiny_data, tmp_path, monkeypatch):
    kw = dict(seeds=[1, 2], epochs=2, models=["late", "tfn"], **QUIET)
    reference = table2(tiny_data, out_dir=tmp_path / "ref", **kw)

    real_run_seed, calls = runner_mod.run_seed, []

    def run_seed_then_die(*a, **k):
        calls.append(a[2])
        if len(calls) == 3:  # late: seeds 1 and 2 finished; tfn seed 1 starts, then the machine goes down
            raise KeyboardInterrupt
        return real_run_seed(*a, **k)

    monkeypatch.setattr(runner_mod, "run_seed", run_seed_then_die)
    with pytest.raises(KeyboardInterrupt):
        table2(tiny_data, out_dir=tmp_path / "B", **kw)
    monkeypatch.setattr(runner_mod, "run_seed", real_run_seed)
    assert (tmp_path / "B" / "late" / "results.json").exists() and not (tmp_path / "B" / "table2.md").exists()

    with pytest.raises(ValueError, match="resume"):  # without resume a started folder is refused
        table2(tiny_data, out_dir=tmp_path / "B", **kw)
    late_ck = (tmp_path / "B" / "late" / "seed_1" / "last.pt").read_bytes()
    real_fit, fitted = train_mod.Trainer.fit, []

    def counting_fit(self, *a, **k):
        fitted.append(self.kind)
        return real_fit(self, *a, **k)

    monkeypatch.setattr(train_mod.Trainer, "fit", counting_fit)
    resumed = table2(tiny_data, out_dir=tmp_path / "B", resume=True, **kw)
    assert fitted == ["tfn", "tfn"]  # only the unfinished model x seed pairs were trained
    assert (tmp_path / "B" / "late" / "seed_1" / "last.pt").read_bytes() == late_ck
    for a, b in zip(reference.rows, resumed.rows):
        assert (a["label"], a["mean"], a["std"]) == (b["label"], b["mean"], b["std"])
    assert resumed.to_markdown().split("| source")[0] == reference.to_markdown().split("| source")[0]


def test_bad_arguments_fail_before_training(tiny_data, tmp_path):
    with pytest.raises(ValueError, match="no row"):
        table2(tiny_data, models=["nope"], out_dir=tmp_path / "x", **QUIET)
    with pytest.raises(ValueError, match="unknown table"):
        run_table("table9", tiny_data, **QUIET)
    with pytest.raises(ValueError, match="repeats"):
        table3(tiny_data, seeds=[1, 1], **QUIET)
    assert not (tmp_path / "x").exists()
    assert set(TABLES) == {"table2", "table3"}


def test_experiment_command(tmp_path, capsys):
    data = tmp_path / "x.pkl"
    write_synthetic(data, splits=dict(TINY_SPLITS), dims=dict(SMALL_DIMS), seed=2)
    out = tmp_path / "t3"
    args = ["experiment", "table3", "--data", str(data), "--epochs", "1", "--seeds", "7", "--models", "mcihn-vt",
            "mcihn-1", "--out", str(out), "--quiet"]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "| -VT |" in printed and "| MCIHN-1 |" in printed and "published, CMU-MOSI" not in printed  # synthetic
    for f in ("table3.md", "table3.csv", "table3.json", "mcihn-vt/results.json", "mcihn-1/seed_7/best.pt"):
        assert (out / f).exists(), f
    assert main(args) == 2 and "--resume" in capsys.readouterr().err
    before = (out / "mcihn-1" / "seed_7" / "last.pt").read_bytes()
    assert main(args + ["--resume"]) == 0
    assert (out / "mcihn-1" / "seed_7" / "last.pt").read_bytes() == before
    assert main(["experiment", "table2", "--data", str(data), "--models", "mcihn-vt", "--out",
                 str(tmp_path / "y")]) == 2
    assert "no row(s) ['mcihn-vt']" in capsys.readouterr().err


def test_the_papers_rows_are_one_list():
    """TABLE_ROWS is the one list of rows: Table 3's switches make the row they name, every row the paper
    publishes for MOSI exists in both datasets, and published rows are shown on real data only."""
    from mcihn.model.config import MCIHNConfig

    for label, kind, switches, what in TABLE_ROWS["table3"]:
        assert kind == "mcihn" and MCIHNConfig.tiny(**switches).variant == label and what
    assert [r.label for r in TABLES["table3"]] == [label for label, *_ in TABLE_ROWS["table3"]]
    assert set(PUBLISHED["table3"]["mosi"]) == {label for label, *_ in TABLE_ROWS["table3"]}
    assert {label for label, *_ in TABLE_ROWS["table2"]} - {"Late fusion"} <= set(PUBLISHED["table2"]["mosi"])
    assert comparable_with("mosi", synthetic=False) and not comparable_with("mosi", synthetic=True)
