"""What is z-scored: the suite's rows under the rule "all" (every modality z-scored) against "auto" (a real
set's text, a pretrained encoder's states, only centred), from the per-run records of two suite folders.

    python benchmarks/zscore_rule.py --all benchmarks/zscore_rule_runs/all --auto benchmarks/zscore_rule_runs/auto \
        --out benchmarks/zscore_rule.md

Only rows of this package's models on real entries differ between the rules: the planted sets are synthetic
(every modality z-scored under both), the references (mean, ridge) do their own scaling, and MMSA's rows read the
features raw. Per row and data set: validation MAE (what chose the rule) and test MAE under each rule, mean ± std
over the seeds both sides have, and whether the gap exceeds the seed spread
(``mcihn.notebook.analysis.spread_verdict``). Nothing is trained here: the runs are the suite's
(``python -m mcihn experiment suite --entries mosi-ta mosi-text``); the "all" records are the suite's of
2026-12-04, when "all" was the pipeline (a record whose config has no ``zscore`` was run under "all").
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mcihn.experiments.suite import ENTRIES, load_records
from mcihn.notebook.analysis import spread_verdict


def by_run(records) -> dict:
    """{(entry, row): {seed: record}} of the trained rows (those with a best epoch)."""
    out: dict = {}
    for r in records:
        if r.get("best_epoch") is not None and r["row"].startswith(("MCIHN", "TFN", "Late", "LMF", "MulT")):
            out.setdefault((r["entry"], r["row"]), {})[r["seed"]] = r
    return out


def compare(old: dict, new: dict) -> list[str]:
    """One markdown line per (data set, row) both folders hold, on the seeds both have."""
    lines = ["| data set | row | seeds | valid MAE, all | valid MAE, auto | valid: better beyond the spread | "
             "test MAE, all | test MAE, auto | test: better beyond the spread |", "|---|---|---|" + "---|" * 6]
    order = {e: i for i, e in enumerate(ENTRIES)}
    for key in sorted(set(old) & set(new), key=lambda k: (order.get(k[0], 99), k)):
        seeds = sorted(set(old[key]) & set(new[key]))
        if not seeds:
            continue
        cells = []
        for split in ("valid", "test"):
            a = [old[key][s][split]["MAE"] for s in seeds]
            b = [new[key][s][split]["MAE"] for s in seeds]
            v = spread_verdict(a, b, labels=("all", "auto"))
            cells += [f"{np.mean(a):.3f} ± {np.std(a):.3f}", f"{np.mean(b):.3f} ± {np.std(b):.3f}",
                      f"{v['better'] or 'neither'} ({v['difference']:+.3f}, spread {v['spread']:.3f})"]
        lines.append(f"| {key[0]} | {key[1]} | {seeds[0]}-{seeds[-1]} ({len(seeds)}) | " + " | ".join(cells) + " |")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--all", required=True, nargs="+", help="suite folders run under zscore=all")
    p.add_argument("--auto", required=True, nargs="+", help="suite folders run under zscore=auto")
    p.add_argument("--out", help="write the table here (default: print)")
    a = p.parse_args(argv)
    old, new = by_run(load_records(*a.all)), by_run(load_records(*a.auto))
    both = set(old) & set(new)  # (data set, row) pairs the two folders hold: what is compared
    for name, recs, rule in (("--all", old, "all"), ("--auto", new, "auto")):
        wrong = sorted({k for k in both for r in recs[k].values()
                        if r.get("config", {}).get("zscore", "all") != rule})  # records from before the rule: "all"
        if wrong:
            p.error(f"{name}: records not run under zscore={rule}: {wrong[:3]}")
    text = "\n".join(compare(old, new)) + "\n"
    if a.out:
        Path(a.out).write_text(text)
        print(f"wrote {a.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
