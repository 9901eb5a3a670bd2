"""The development suite's tables and its targets (issue 17), from the per-run records of one or more suite folders.

    python benchmarks/suite_tables.py benchmarks/suite_runs --out benchmarks/suite_runs/tables.md

Writes test MAE, test Has0 Acc-2 and validation MAE (rows x data sets, mean ± std over seeds, the count in
brackets where it is not the usual), the best epochs of MCIHN and TFN, and one table of the targets, each
decided by the rule of the notebooks (``mcihn.notebook.analysis.spread_verdict``: a gap counts when it is
larger than std a + std b over seeds). Nothing is trained here.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from mcihn.experiments.suite import ENTRIES, load_records, pivot_markdown
from mcihn.notebook.analysis import spread_verdict

ROWS = ("mean predictor", "ridge (pooled)", "Bayes floor", "MCIHN", "MCIHN linear_path=False",
        "MCIHN, values S^m (Eq. 15 as read)", "MCIHN, text only", "TFN", "MMSA TFN", "MMSA LMF", "MMSA TFN, zeros after the words",
        "MMSA LMF, zeros after the words")
#: The issue's own numbers for one data set: (MAE at most, Has0 Acc-2 % at least) of MCIHN's mean over seeds.
ISSUE_TARGETS = {"mosi-ta": (0.88, 80.3)}


def values(records, row, entry, split="test", key="MAE"):
    return [r[split][key] for r in records if r["row"] == row and r["entry"] == entry and r[split].get(key) is not None]


def target_rows(records, entries) -> list[str]:
    """One line per (data set, target): the numbers and whether it is met."""
    out = ["| data set | target | numbers (test MAE, mean ± std over seeds) | met |", "|---|---|---|---|"]

    def ms(v):
        v = np.asarray(v, float)
        return f"{v.mean():.3f} ± {v.std():.3f} ({len(v)})"

    for e in entries:
        mc, tfn, text = (values(records, r, e) for r in ("MCIHN", "TFN", "MCIHN, text only"))
        ridge = values(records, "ridge (pooled)", e)
        floor = values(records, "Bayes floor", e)
        if not mc:
            continue
        if ridge:
            ahead = sum(v <= ridge[0] for v in mc)
            out.append(f"| {e} | MCIHN at or below the ridge regression, every seed | MCIHN {ms(mc)}; ridge "
                       f"{ridge[0]:.3f}; {ahead} of {len(mc)} seeds at or below | {'yes' if ahead == len(mc) else 'no'} |")
        for other, label in ((tfn, "our TFN"), (text, "MCIHN, text only")):
            if other:
                v = spread_verdict(mc, other)
                out.append(f"| {e} | MCIHN not worse than {label} beyond the spread | MCIHN {ms(mc)}; {ms(other)}; "
                           f"spread {v['spread']:.3f} | {'no' if v['better'] == 'b' else 'yes'} |")
        mmsa = values(records, "MMSA TFN", e)
        if tfn and mmsa:
            v = spread_verdict(tfn, mmsa)
            out.append(f"| {e} | our TFN not worse than MMSA's TFN beyond the spread | TFN {ms(tfn)}; MMSA TFN "
                       f"{ms(mmsa)}; spread {v['spread']:.3f} | {'no' if v['better'] == 'b' else 'yes'} |")
        for m in ("MMSA TFN", "MMSA LMF"):
            other = values(records, m, e)
            if other:
                v = spread_verdict(mc, other)
                out.append(f"| {e} | MCIHN ahead of {m} beyond the spread | MCIHN {ms(mc)}; {ms(other)}; spread "
                           f"{v['spread']:.3f} | {'yes' if v['better'] == 'a' else 'no'} |")
        if e in ISSUE_TARGETS:
            mae_max, acc_min = ISSUE_TARGETS[e]
            acc = 100 * np.asarray(values(records, "MCIHN", e, key="Has0_acc_2"))
            met = np.mean(mc) <= mae_max and acc.mean() >= acc_min
            out.append(f"| {e} | MCIHN MAE <= {mae_max} and Has0 Acc-2 >= {acc_min} | MAE {ms(mc)}; Acc-2 "
                       f"{acc.mean():.1f} ± {acc.std():.1f} | {'yes' if met else 'no'} |")
        if floor:
            ratio = np.mean(mc) / floor[0]
            out.append(f"| {e} | MCIHN within 1.4 x the Bayes floor | {np.mean(mc):.3f} / {floor[0]:.3f} = "
                       f"{ratio:.2f} | {'yes' if ratio <= 1.4 else 'no'} |")
        firsts = [f"{r['row']} seed {r['seed']}" for r in records if r["entry"] == e and r["row"] in ("MCIHN", "TFN")
                  and r.get("best_epoch") == 1]
        out.append(f"| {e} | no seed of MCIHN or TFN best at epoch 1 | {', '.join(firsts) or 'none'} | "
                   f"{'no' if firsts else 'yes'} |")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("folders", nargs="+", help="suite folders (their runs/*/*/*.json)")
    p.add_argument("--out", help="write the tables here (default: print)")
    a = p.parse_args(argv)
    records = load_records(*a.folders)
    present = {r["entry"] for r in records}
    entries = [e for e in ENTRIES if e in present] + sorted(present - set(ENTRIES))
    rows = [r for r in ROWS if any(x["row"] == r for x in records)]
    rows += sorted({x["row"] for x in records} - set(rows))
    seeds = sorted({r["seed"] for r in records if r.get("best_epoch") is not None})  # trained rows
    head = (f"mean ± std over the seeds of {seeds[0]}-{seeds[-1]} each row has (the count in brackets)" if seeds
            else "mean ± std over seeds (the count in brackets)")
    acc_rows = [r for r in rows if r != "Bayes floor"]  # the floor is an MAE
    parts = [f"Test MAE (lower is better), {head}:\n\n",
             pivot_markdown(records, "test", "MAE", rows=rows, entries=entries),
             f"\nTest Has0 Acc-2 %, {head}:\n\n",
             pivot_markdown(records, "test", "Has0_acc_2", rows=acc_rows, entries=entries, scale=100.0, digits=1),
             f"\nValidation MAE (what chooses), {head}:\n\n",
             pivot_markdown(records, "valid", "MAE", rows=rows, entries=entries), "\n"]
    for row in ("MCIHN", "TFN"):
        parts.append(f"Best epochs of {row}: " + "; ".join(
            f"{e} {[r['best_epoch'] for r in sorted(records, key=lambda r: r['seed']) if r['row'] == row and r['entry'] == e]}"
            for e in entries if any(r["row"] == row and r["entry"] == e for r in records)) + ".\n")
    parts += ["\nTargets of issue 17 on the suite (test split; rule: a gap counts when it exceeds std a + std b):\n\n",
              "\n".join(target_rows(records, entries)) + "\n"]
    text = "".join(parts)
    if a.out:
        Path(a.out).write_text(text)
        print(f"wrote {a.out}")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
