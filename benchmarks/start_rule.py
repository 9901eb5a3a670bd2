"""The rule of ``linear_init="auto"`` (``mcihn/training/starts.py``) read off finished suite runs.

    python benchmarks/start_rule.py benchmarks/suite_runs
    python benchmarks/start_rule.py benchmarks/unseen_kind_runs

How its records were made (a suite folder ``runs/suite``): ``python benchmarks/start_rule.py runs/suite
--run-starts --jobs 2`` trains both starts' rows of the MCIHN rows where they are missing (``run_starts``), ``--write
runs/suite`` then makes the rule's records the MCIHN rows. (``experiment suite`` with today's defaults trains the
same runs whole: ``--check`` compares the two.)

For every (data set, seed) that has both a run from the zero start (row "MCIHN linear_init=zero", or "MCIHN"
from before the rule) and one from the frozen ridge start (row "MCIHN linear_init=ridge_frozen"), the rule keeps
the run with the lower validation MAE, exactly as ``run_both_starts`` does for one seed (each start's run is an
ordinary ``run_seed`` with the same seed, so the auto run's two halves are these two records). Prints validation
and test MAE (mean ± std over seeds) of both starts, of the rule, and of the ridge reference, and how often each
start was kept. Nothing is trained here, except with ``--run-starts`` / ``--train``. ``--check RECORD ...``
compares records trained with ``linear_init=auto`` (the suite's MCIHN row today) against what this script derives
for their data set and seed; ``--write DIR`` makes the derived records the MCIHN rows of the suite folder DIR (the
zero-start runs kept as the rows "... linear_init=zero").
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mcihn.experiments.suite import load_records
from mcihn.utils import atomic_write_json

ZERO = "MCIHN"  # the suite's MCIHN row; its ablation rows ("values S^m", "text only") are paired the same way


def base_rows() -> dict:
    """Label -> Row of the suite's MCIHN rows whose config trains both starts today (the default and its two
    ablation rows)."""
    from mcihn.experiments.suite import default_rows

    return {r.label: r for r in default_rows(models=("mcihn",), mmsa=()) if r.side == "ours"}


def with_start(row, start: str):
    """The variant row of ``row`` with ``linear_init=start`` (as ``experiment suite --set`` names it)."""
    from mcihn.experiments.suite import Row

    return Row(f"{row.label} linear_init={start}", "ours", row.kind,
               tuple(sorted({**dict(row.overrides), "linear_init": start}.items())))


def pairs(records: list[dict], base: str = ZERO) -> dict:
    """(entry, seed) -> {"zero": record, "ridge_frozen": record} of the row ``base`` where both exist: the zero
    start is the row "<base> linear_init=zero" (or ``base`` itself in records from before the rule), the frozen
    ridge start "<base> linear_init=ridge_frozen"."""
    out = {}
    for r in records:
        if r["row"] == f"{base} linear_init=zero" or (r["row"] == base and r.get("config", {}).get(
                "linear_init", "zero") == "zero"):
            out.setdefault((r["entry"], r["seed"]), {})["zero"] = r
        elif r["row"] == f"{base} linear_init=ridge_frozen":
            out.setdefault((r["entry"], r["seed"]), {})["ridge_frozen"] = r
    return {k: v for k, v in out.items() if len(v) == 2}


def kept(pair: dict) -> str:
    """The start the rule keeps: the lower validation MAE, zero on a tie (``starts.AUTO_STARTS`` order)."""
    return min(("zero", "ridge_frozen"), key=lambda s: pair[s]["valid"]["MAE"])


def ms(v) -> str:
    v = np.asarray(v, float)
    return f"{v.mean():.3f} ± {v.std():.3f}"


def table(records: list[dict]) -> str:
    both = pairs(records)
    from mcihn.experiments.suite import ENTRIES

    found = set(e for e, _ in both)
    entries = [e for e in ENTRIES if e in found] + sorted(found - set(ENTRIES))  # the suite's order first
    lines = ["| data set (seeds) | split | zero start | frozen ridge start | rule (lower validation) | ridge | "
             "rule kept |", "|---|---|---|---|---|---|---|"]
    total = {"zero": [], "ridge_frozen": [], "rule": []}
    for e in entries:
        seeds = sorted(s for ee, s in both if ee == e)
        runs = [both[(e, s)] for s in seeds]
        ridge = [r["test"]["MAE"] for r in records if r["row"] == "ridge (pooled)" and r["entry"] == e]
        ridge_v = [r["valid"]["MAE"] for r in records if r["row"] == "ridge (pooled)" and r["entry"] == e]
        picks = [kept(p) for p in runs]
        for split in ("valid", "test"):
            z = [p["zero"][split]["MAE"] for p in runs]
            f = [p["ridge_frozen"][split]["MAE"] for p in runs]
            a = [p[k][split]["MAE"] for p, k in zip(runs, picks)]
            if split == "valid":
                for k, v in (("zero", z), ("ridge_frozen", f), ("rule", a)):
                    total[k].append(np.mean(v))
            ref = (ridge_v if split == "valid" else ridge)
            lines.append(f"| {e} ({len(seeds)}) | {split} | {ms(z)} | {ms(f)} | {ms(a)} | "
                         f"{ref[0]:.3f} | " + (f"zero {picks.count('zero')}, frozen {picks.count('ridge_frozen')}"
                                               if split == "valid" else "") + " |")
    lines.append("")
    lines.append("Sum over data sets of the mean validation MAE: " + ", ".join(
        f"{k} {sum(v):.3f}" for k, v in total.items()))
    return "\n".join(lines) + "\n"


def check(record: Path, records: list[dict]) -> str:
    """Compare a record trained with linear_init='auto' to the rule applied to its two starts' records."""
    rec = json.loads(record.read_text())
    pair = pairs(records)[(rec["entry"], rec["seed"])]
    k = kept(pair)
    same = all(rec[f] == pair[k][f] for f in ("valid", "test", "best_epoch"))
    return (f"{record}: trained auto record ({rec['entry']}, seed {rec['seed']}) valid MAE {rec['valid']['MAE']:.6f}, "
            f"test {rec['test']['MAE']:.6f}; derived (start {k}) valid {pair[k]['valid']['MAE']:.6f}, test "
            f"{pair[k]['test']['MAE']:.6f}: {'identical' if same else 'DIFFERENT'}")


def train_auto(folder: Path, entry: str, seed: int, out: Path) -> Path:
    """Train the suite's MCIHN row as it is today (``linear_init="auto"``) on one (data set, seed), one torch
    thread, as a suite worker does; write its record to ``out/<entry>-<seed>.json`` (for ``--check``)."""
    import torch

    from mcihn.experiments.suite import ENTRIES, default_rows, find_shared, run_one

    torch.set_num_threads(1)
    row = next(r for r in default_rows(models=("mcihn",), mmsa=()) if r.label == ZERO)
    e = ENTRIES[entry]
    data = e.load(find_shared(), folder / "cache")
    rec = run_one(row, e, data, seed, out)
    assert rec["config"]["linear_init"] == "auto", rec["config"]["linear_init"]
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{entry}-{seed}.json"
    atomic_write_json(path, rec)
    return path


def run_starts(folder: Path, entries=None, jobs: int = 2, threads: int = 1) -> None:
    """Train, where ``folder`` lacks them, both starts' rows of every row of :func:`base_rows` (the rows
    "<row> linear_init=zero" and "<row> linear_init=ridge_frozen"), 5 seeds, as the suite trains any row."""
    from mcihn.experiments.suite import run_suite
    from mcihn.training.starts import AUTO_STARTS

    rows = [with_start(r, s) for r in base_rows().values() for s in AUTO_STARTS]
    run_suite(folder, entries=entries, rows=rows, resume=True, jobs=jobs, threads=threads)


def write_rule_records(folder: Path, records: list[dict]) -> list[Path]:
    """Make the rule the suite's MCIHN rows in ``folder`` (a suite folder whose rows hold zero-start runs): for
    each row of :func:`base_rows`, its zero-start runs move to the row "<row> linear_init=zero", and for every
    (data set, seed) with both starts the kept run becomes the row's record, its config's ``linear_init`` "auto",
    its seconds both runs', with "start", "starts" and "derived_from" (the two records' paths) added."""
    out = []
    for label, row in base_rows().items():
        zero_slug, frozen_slug = with_start(row, "zero").slug, with_start(row, "ridge_frozen").slug
        for (entry, seed), pair in sorted(pairs(records, label).items()):
            zero_dir = folder / "runs" / entry / zero_slug
            zero_dir.mkdir(exist_ok=True)
            atomic_write_json(zero_dir / f"{seed}.json", {**pair["zero"], "row": f"{label} linear_init=zero"})
            k = kept(pair)
            rec = {**pair[k], "row": label, "config": {**pair[k]["config"], "linear_init": "auto"},
                   "seconds": round(pair["zero"]["seconds"] + pair["ridge_frozen"]["seconds"], 1), "start": k,
                   "starts": {s: {"valid_mae": pair[s]["valid"]["MAE"], "best_epoch": pair[s]["best_epoch"]}
                              for s in ("zero", "ridge_frozen")},
                   "derived_from": [f"runs/{entry}/{zero_slug}/{seed}.json", f"runs/{entry}/{frozen_slug}/{seed}.json"]}
            atomic_write_json(folder / "runs" / entry / row.slug / f"{seed}.json", rec)
            out.append(folder / "runs" / entry / row.slug / f"{seed}.json")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", type=Path, help="suite folders (their runs/*/*/*.json are read)")
    p.add_argument("--check", type=Path, nargs="*", default=[], help="records trained with linear_init=auto")
    p.add_argument("--train", nargs="*", default=[], metavar="ENTRY:SEED",
                   help="train today's MCIHN row (linear_init=auto) on these and --check each (train_auto)")
    p.add_argument("--train-out", type=Path, default=Path("runs/start_rule_check"), help="where --train writes")
    p.add_argument("--run-starts", action="store_true",
                   help="first train both starts' rows of the MCIHN rows in the first folder, where missing "
                        "(run_starts)")
    p.add_argument("--entries", nargs="+", help="with --run-starts: suite entries (default: the suite's six)")
    p.add_argument("--jobs", type=int, default=2, help="with --run-starts: runs at a time (one torch thread each)")
    p.add_argument("--write", type=Path, help="make the rule the MCIHN row of this suite folder (write_rule_records)")
    a = p.parse_args(argv)
    if a.run_starts:
        run_starts(a.folders[0], a.entries, a.jobs)
    records = load_records(*a.folders)
    print(table(records))
    for r in a.check:
        print(check(r, records))
    for spec in a.train:
        entry, seed = spec.rsplit(":", 1)
        path = train_auto(a.folders[0], entry, int(seed), a.train_out)
        print(check(path, records))
    if a.write:
        print(f"wrote {len(write_rule_records(a.write, records))} records of the rule into {a.write}")


if __name__ == "__main__":
    main()
