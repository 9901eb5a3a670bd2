"""The development suite and its real-data loaders: files the tests write themselves, a tiny BERT made with
``save_pretrained``, planted entries, resume, and a bad entry reported by name while the rest runs.
The real files under ../shared/data are used when present (skipped otherwise)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mcihn.data.real import RealDataError, load_mosi_ta, load_mosi_text, read_mosi_ta_csv
from mcihn.experiments.suite import ENTRIES, Entry, Row, default_rows, find_shared, parse_entries, run_suite
from mcihn.extraction.fixtures import make_tiny_bert

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    return make_tiny_bert(tmp_path_factory.mktemp("bert") / "bert")


def write_ta_csv(path: Path, n_per_split=(12, 5, 6), n_audio=7, seed=0, bad=None) -> Path:
    rng = np.random.default_rng(seed)
    cols = ["clip_id", "video_id", "split", "label", "text"] + [f"a{i}" for i in range(n_audio)]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        k = 0
        for split, n in zip(("train", "valid", "test"), n_per_split):
            for i in range(n):
                audio = rng.normal(size=n_audio).round(4).tolist()
                audio[0] = 5.0  # a dead feature, as real openSMILE files have
                row = [f"v{k // 4}_{k}", f"v{k // 4}", split, round(float(rng.uniform(-3, 3)), 2),
                       "GOOD MOVIE" if i % 2 else "BAD FILM"] + audio
                if bad and k == bad[0]:
                    row[cols.index(bad[1])] = bad[2]
                w.writerow(row)
                k += 1
    return path


def test_mosi_ta_loader_layout_and_cache(tmp_path, bert):
    path = write_ta_csv(tmp_path / "ta.csv")
    data = load_mosi_ta(path, encoder=bert, cache_dir=tmp_path / "cache")
    assert {s: len(data[s]) for s in ("train", "valid", "test")} == {"train": 12, "valid": 5, "test": 6}
    T, D = data.dims["text"]
    assert data.dims["audio"] == (1, 7) and T == 50 and D == 32
    tr = data["train"]
    assert (tr.lengths["audio"] == 1).all() and tr.features["audio"][:, 0, 0].tolist() == [5.0] * 12
    assert (tr.features["text"][~tr.mask("text")] == 0).all() and tr.raw_text[1] == "GOOD MOVIE"
    assert len(list((tmp_path / "cache").glob("text_*.npz"))) == 1
    again = load_mosi_ta(path, encoder=bert, cache_dir=tmp_path / "cache")  # read back from the cache
    np.testing.assert_array_equal(again["train"].features["text"], tr.features["text"])


@pytest.mark.parametrize("bad, match", [
    ((3, "a2", "x1"), r"line 5 \(clip 'v0_3'\), field 'a2': 'x1' is not a number"),
    ((0, "split", "training"), r"line 2 .*field 'split': 'training' is not train, valid or test"),
    ((7, "label", "nan"), r"line 9 .*field 'label': nan is not finite"),
])
def test_mosi_ta_bad_rows_name_file_line_field(tmp_path, bad, match):
    path = write_ta_csv(tmp_path / "bad.csv", bad=bad)
    with pytest.raises(RealDataError, match=match):
        read_mosi_ta_csv(path)
    with pytest.raises(RealDataError, match="no such file"):
        read_mosi_ta_csv(tmp_path / "missing.csv")


def test_mosi_text_loader(tmp_path, bert):
    for name, n in (("train", 6), ("dev", 3), ("test", 4)):
        (tmp_path / f"{name}.tsv").write_text("text\tlabel\n" + "".join(f"SOME WORDS {i}\t{i / 2 - 1}\n" for i in range(n)))
    data = load_mosi_text(tmp_path, encoder=bert)
    assert list(data.dims) == ["text"] and len(data["valid"]) == 3 and data["test"].labels[1] == -0.5
    (tmp_path / "dev.tsv").write_text("text\tlabel\nA\tpositive\n")
    with pytest.raises(RealDataError, match=r"dev.tsv, line 2, field 'label'"):
        load_mosi_text(tmp_path, encoder=bert)


def test_entries_parse_and_refuse_unknown():
    assert [e.name for e in parse_entries(None)] == list(ENTRIES)
    e = parse_entries(["mine=/x/y.pkl:ta"])[0]
    assert (e.source, e.arg, e.modalities) == ("pickle", "/x/y.pkl", "ta")
    assert parse_entries(["mosi-ta=/data/f.csv"])[0].source == "mosi-ta"
    with pytest.raises(ValueError, match="unknown suite entry 'nope'"):
        parse_entries(["nope"])


def test_rows_with_their_own_modalities_run_only_where_they_are_a_proper_subset():
    from mcihn.experiments.suite import applies

    text_only = next(r for r in default_rows() if r.label == "MCIHN, text only")
    assert applies(text_only, ENTRIES["mosi-ta"]) and applies(text_only, ENTRIES["window-1000"])
    assert not applies(text_only, ENTRIES["mosi-text"])  # the same run as MCIHN's own row there
    core = next(r for r in default_rows() if r.label.startswith("MCIHN, values S^m"))
    assert applies(core, ENTRIES["mosi-ta"]) and not applies(core, ENTRIES["mosi-text"])  # one modality: no pairs
    assert all(applies(r, ENTRIES["mosi-text"]) for r in default_rows() if r not in (text_only, core))


def test_suite_runs_reports_bad_entry_and_resumes(tmp_path):
    """Two planted entries (tiny preset, 2 epochs) and a missing pickle: the bad one is reported by name, the
    others run; a rerun with resume reads every record back and trains nothing."""
    small = [Entry("lin", "planted", "tav", "linear", 300), Entry("gone", "pickle", "tav", str(tmp_path / "no.pkl"))]
    rows = default_rows(models=(), mmsa=()) + [Row("MCIHN tiny", "ours", "mcihn", (("epochs", 2), ("preset", "tiny")))]
    logs = []
    res = run_suite(tmp_path / "s", small, rows, seeds=(1, 2), log=logs.append)
    assert "gone" in res.errors and "no.pkl" in res.errors["gone"]
    assert any("[gone] skipped" in line for line in logs)
    md = (tmp_path / "s" / "suite.md").read_text()
    for label in ("mean predictor", "ridge (pooled)", "Bayes floor", "MCIHN tiny"):
        assert f"| {label} |" in md
    assert "not run: FileNotFoundError" in md
    ours = [r for r in res.records if r["row"] == "MCIHN tiny"]
    assert sorted(r["seed"] for r in ours) == [1, 2] and all(1 <= r["best_epoch"] <= 2 for r in ours)
    floor = next(r for r in res.records if r["row"] == "Bayes floor")["test"]["MAE"]
    mean = next(r for r in res.records if r["row"] == "mean predictor")["test"]["MAE"]
    assert 0 < floor < mean
    with pytest.raises(FileExistsError, match="resume"):
        run_suite(tmp_path / "s", small, rows, seeds=(1, 2), log=logs.append)
    logs.clear()
    again = run_suite(tmp_path / "s", small, rows, seeds=(1, 2), resume=True, log=logs.append)
    assert not any("seed" in line and "MAE" in line for line in logs)  # nothing re-run
    assert json.dumps(sorted(r["test"]["MAE"] for r in again.records)) == json.dumps(
        sorted(r["test"]["MAE"] for r in res.records))
    # a record made before a default changed is reported by path and field, not used and not overwritten;
    # one saved before `zscore` existed is today's run on synthetic data (there "auto" is "all")
    runs = tmp_path / "s" / "runs" / "lin" / rows[-1].slug
    before, older = json.loads((runs / "1.json").read_text()), json.loads((runs / "2.json").read_text())
    before["config"]["missing_aug"] = 0.0
    del older["config"]["zscore"], older["config"]["missing_aug"]
    older["config"]["missing_aug"] = 0.5
    (runs / "1.json").write_text(json.dumps(before))
    (runs / "2.json").write_text(json.dumps(older))
    logs.clear()
    third = run_suite(tmp_path / "s", small, rows, seeds=(1, 2), resume=True, log=logs.append)
    assert third.stale == [str(runs / "1.json")]
    assert any("MCIHN tiny seed 1: not used" in line and "missing_aug: 0.0 then, 0.5 now" in line for line in logs)
    assert [r["seed"] for r in third.records if r["row"] == "MCIHN tiny"] == [2]
    assert json.loads((runs / "1.json").read_text()) == before
    assert json.loads((tmp_path / "s" / "suite.json").read_text())["stale"] == [str(runs / "1.json")]


def test_suite_jobs_give_the_records_of_one_process(tmp_path):
    """--jobs 2: the runs train in two worker processes; each record (metrics, best epoch, curve) is the one a
    single process writes, and a run that fails in a worker is reported by entry, row and seed."""
    small = [Entry("lin", "planted", "tav", "linear", 300)]
    tiny = (("epochs", 2), ("preset", "tiny"))
    rows = [Row("MCIHN tiny", "ours", "mcihn", tiny), Row("TFN tiny", "ours", "tfn", tiny),
            Row("broken", "ours", "mcihn", (("epochs", 2), ("preset", "no-such-preset")))]
    one = run_suite(tmp_path / "one", small, rows[:2], seeds=(1,), log=lambda *a: None)
    logs = []
    two = run_suite(tmp_path / "two", small, rows, seeds=(1,), jobs=2, log=logs.append)
    assert any("2 processes" in line for line in logs)
    assert any(line.startswith("[lin] broken seed 1: failed:") for line in logs)

    def key(res):
        return {r["row"]: (r["test"], r["valid"], r["best_epoch"], r["curve"]) for r in res.records}

    assert len(two.records) == 2 and key(two) == key(one)
    assert sorted(p.parent.name for p in (tmp_path / "two" / "runs" / "lin").glob("*/1.json")) == sorted(
        p.parent.name for p in (tmp_path / "one" / "runs" / "lin").glob("*/1.json"))
    assert "| MCIHN tiny |" in (tmp_path / "two" / "suite.md").read_text()


@pytest.mark.skipif(not (SHARED / "mosi-audio" / "mosi_ta_dev.csv").exists(), reason="../shared/data not present")
def test_real_mosi_ta_file_reads():
    rows = read_mosi_ta_csv(SHARED / "mosi-audio" / "mosi_ta_dev.csv")
    assert len(rows) == 1443 and {r["split"] for r in rows} == {"train", "valid", "test"}
    assert all(r["audio"].shape == (73,) for r in rows)
    assert find_shared() is not None


@pytest.mark.parametrize("argv, message", [
    (["--set", "bogus=1"], "MCIHN has no setting 'bogus'"),
    (["--set", "lr=-1"], "lr must be a finite number > 0"),
    (["--set", "linear_init=ols"], "linear_init must be one of"),
    (["--entries", "nope"], "unknown suite entry 'nope'"),
    (["--data", "x.pkl"], "takes its data sets from --entries"),
])
def test_suite_command_refuses_bad_options_before_anything_runs(tmp_path, argv, message):
    from mcihn.cli import main

    with pytest.raises(SystemExit) as e:
        main(["experiment", "suite", "--out", str(tmp_path / "s"), *argv])
    assert message in str(e.value) and not (tmp_path / "s").exists()


def test_suite_set_overrides_are_checked_on_the_preset_the_rows_train():
    """--set values are checked against the auto preset (the suite's rows): linear_init=ridge needs its linear
    path and passes; on the paper preset it would be refused."""
    from mcihn.cli.experiment import check_sets
    from mcihn.model.config import MCIHNConfig

    check_sets({"linear_init": "ridge"})
    check_sets({})
    with pytest.raises(ValueError, match="needs linear_path=True"):
        MCIHNConfig.paper(linear_init="ridge")
    with pytest.raises(ValueError, match="needs linear_path=True"):
        check_sets({"linear_init": "ridge", "linear_path": False})


def test_one_cell_format_for_every_suite_table():
    from mcihn.experiments.suite import mean_std

    assert mean_std([]) == "-"
    assert mean_std([0.91234]) == "0.912"
    assert mean_std([1.0, 2.0]) == "1.500 ± 0.500"  # population std, as MMSA
    assert mean_std([80.0, 82.0, 84.0], digits=1, count=True) == "82.0 ± 1.6 (3)"


def _suite_tables():
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "suite_tables.py"
    spec = importlib.util.spec_from_file_location("suite_tables", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_targets_table_decides_each_claim_from_the_records():
    """benchmarks/suite_tables.py: each target line says yes or no from the per-seed values, by the spread rule
    (a gap counts when it exceeds std a + std b); a seed best at epoch 1 fails the stability target."""
    def rec(row, mae, seed, best=5, acc=0.8):
        return {"row": row, "entry": "mosi-ta", "seed": seed, "best_epoch": best,
                "test": {"MAE": mae, "Has0_acc_2": acc}, "valid": {"MAE": mae}}

    records = [rec("ridge (pooled)", 0.90, 1111)]
    records += [rec("MCIHN", v, s) for v, s in ((0.85, 1111), (0.87, 1112), (0.86, 1113))]   # 0.860 ± 0.008
    records += [rec("TFN", v, s, best=1 if s == 1112 else 5) for v, s in ((0.95, 1111), (0.96, 1112), (0.97, 1113))]
    records += [rec("MMSA TFN", v, s) for v, s in ((0.865, 1111), (0.855, 1112), (0.86, 1113))]
    lines = {line.split(" | ")[1]: line for line in _suite_tables().target_rows(records, ["mosi-ta"])[2:]}

    def met(key):
        return next(v for k, v in lines.items() if k.startswith(key)).rstrip(" |").endswith("yes")

    assert met("MCIHN at or below the ridge")                     # every seed below 0.90
    assert met("MCIHN not worse than our TFN")
    assert not met("our TFN not worse than MMSA's TFN")            # 0.96 against 0.86: beyond the spread
    assert not met("MCIHN ahead of MMSA TFN")                      # 0.860 against 0.860: no gap
    assert met("MCIHN MAE <= 0.88 and Has0 Acc-2 >= 80.3") is False  # Acc-2 80.0 < 80.3
    assert not met("no seed of MCIHN or TFN best at epoch 1") and "TFN seed 1112" in lines[
        "no seed of MCIHN or TFN best at epoch 1"]


def test_zscore_rule_table_compares_the_same_seeds_and_refuses_records_of_the_wrong_rule(tmp_path):
    """benchmarks/zscore_rule.py: per (data set, row), the seeds both folders have, valid and test MAE under each
    rule and the spread verdict; a folder whose records say another rule is refused with their names."""
    import importlib.util
    import json

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "zscore_rule.py"
    spec = importlib.util.spec_from_file_location("zscore_rule", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)

    def write(folder, seed, mae, rule):
        rec = {"row": "TFN", "entry": "mosi-text", "seed": seed, "best_epoch": 4, "valid": {"MAE": mae},
               "test": {"MAE": mae + 0.05}, "config": {} if rule is None else {"zscore": rule}}
        f = tmp_path / folder / "runs" / "mosi-text" / "ours_tfn" / f"{seed}.json"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(rec))

    for seed, old, new in ((1111, 0.90, 0.86), (1112, 0.91, 0.87), (1113, 0.89, 0.85)):
        write("all", seed, old, None)   # a record from before the rule: run under "all"
        write("auto", seed, new, "auto")
    write("auto", 1114, 0.10, "auto")   # a seed only one side has: left out
    out = tmp_path / "t.md"
    assert mod.main(["--all", str(tmp_path / "all"), "--auto", str(tmp_path / "auto"), "--out", str(out)]) == 0
    line = out.read_text().splitlines()[2]
    assert "| mosi-text | TFN | 1111-1113 (3) | 0.900 ± 0.008 | 0.860 ± 0.008 | auto (+0.040" in line
    with pytest.raises(SystemExit):
        mod.main(["--all", str(tmp_path / "auto"), "--auto", str(tmp_path / "auto")])


def _pending(tmp_path, seeds):
    e, row = Entry("lin", "planted", "tav", "linear", 300), Row("MCIHN tiny", "ours", "mcihn")
    return [(e, row, s, tmp_path / f"{s}.json") for s in seeds], e, row


def test_suite_pool_stops_and_names_the_runs_when_a_worker_dies(tmp_path):
    from _pool_jobs import crash
    from mcihn.experiments.suite import SuiteResult, _run_pool

    pending, e, row = _pending(tmp_path, (1, 2))
    res = SuiteResult(rows=[row], entries=[e])
    with pytest.raises(RuntimeError, match=r"a worker process died.*lin/MCIHN tiny/1.*--resume"):
        _run_pool(pending, res, tmp_path, None, 2, "cpu", 1, log=lambda *a: None, job=crash)
    assert not res.records


def test_suite_pool_interrupted_ends_its_workers_and_keeps_what_finished(tmp_path):
    """Ctrl-C (here: raised while the first record is logged) cancels the queue and ends the running worker at
    once, instead of waiting for its minute-long run; the finished record is kept."""
    import time

    from _pool_jobs import quick_or_slow
    from mcihn.experiments.suite import SuiteResult, _run_pool

    pending, e, row = _pending(tmp_path, (1, 2, 3))
    res = SuiteResult(rows=[row], entries=[e])

    def log(line):
        if "seed 1:" in line:
            raise KeyboardInterrupt

    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        _run_pool(pending, res, tmp_path, None, 2, "cpu", 1, log=log, job=quick_or_slow)
    assert time.monotonic() - t0 < 40  # not the 60 s of the running job, nor 120 s of the queue
    assert [r["seed"] for r in res.records] == [1]


def test_unseen_kind_probe_writes_loadable_sets_with_floors_and_leaves_the_generator_as_it_was(tmp_path):
    """benchmarks/unseen_kind_probe.py: each probe kind becomes an MMSA pickle that a suite entry NAME=PATH
    reads, with its Bayes floor in meta; the kinds are not the suite's and are not left in the package."""
    import importlib.util

    from mcihn.data import planted
    from mcihn.experiments.suite import parse_entries

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "unseen_kind_probe.py"
    spec = importlib.util.spec_from_file_location("unseen_kind_probe", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    kinds_before = dict(planted.KIND_SPECS)
    written = mod.write(tmp_path, n_train=40)
    assert planted.KIND_SPECS == kinds_before and not set(mod.PROBE_KINDS) & set(planted.KIND_SPECS)
    assert sorted(written) == sorted(f"{k}-40" for k in mod.PROBE_KINDS)
    for name, (pkl, floor) in written.items():
        entry, = parse_entries([f"{name}={pkl}"])
        data = entry.load(None, tmp_path)
        assert len(data["train"]) == 40 and set(data.dims) == {"text", "audio", "vision"}
        assert data.meta["planted_kind"] == name.rsplit("-", 1)[0]
        assert 0.3 < floor < 1.0 and floor == data.meta["bayes_floor"]["test"]
    # the audio-led kind's label follows audio more than text: its weights say so and the data show it
    d = mod.write(tmp_path / "big", n_train=400)["audio-led-400"][0]
    data = parse_entries([f"a={d}"])[0].load(None, tmp_path)
    y = data["train"].labels
    def pooled_corr(m):
        x = data["train"].features[m].mean(axis=1)  # (N, D) time means (padding included: enough for a sign)
        x = (x - x.mean(0)) / (x.std(0) + 1e-9)
        beta = np.linalg.lstsq(x, y - y.mean(), rcond=None)[0]
        return np.corrcoef(x @ beta, y)[0, 1]
    assert pooled_corr("audio") > pooled_corr("text")
