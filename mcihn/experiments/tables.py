"""Tables 2 and 3 of the paper, re-run: every model on the same features, splits, seeds and metrics.

The paper's Table 2 compares MCIHN with baselines whose numbers are copied from other papers,
computed on other features. Here every row is trained by the same trainer (``mcihn.training``) on the
same data, with the same seeds, early stopping on the same validation split and MMSA's metrics
on the same test split:

    table2   Late fusion (the floor), TFN, LMF, MulT, Self-MM, EMT, CMHFM, MCIHN   (baselines)
    table3   -VT, -VA, -TA, MCIHN-1 (no AAE), MCIHN-2 (no CGMM), MCIHN    (ablations)

Layout of an output folder DIR (one folder per model, each an ordinary ``train`` run)::

    DIR/table2.md, DIR/table2.csv   the table: mean +- std over seeds, best of our rows marked
    DIR/table2.json                 everything: per-seed metrics, timings, published rows
    DIR/<model>/results.json        as written by ``python -m mcihn train``
    DIR/<model>/seed_1111/...       checkpoints; a finished seed has result.json

A run that was interrupted continues where it stopped with ``resume=True`` (CLI ``--resume``):
finished model x seed folders are read back, an unfinished seed continues from its last epoch.

The paper's own figures are shown below our rows, labelled as published on other features, when
the dataset is MOSI or SIMS. They are not comparable number for number with ours: other
features, other code, other tuning; and on the synthetic data, other data altogether.

From a notebook::

    from mcihn.experiments.tables import table2
    t = table2(out_dir="runs/t2", seeds=[1111, 1112], epochs=5, resume=True)
    print(t.to_markdown())
"""
from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

from ..data import MultimodalData, load_mmsa
from ..metrics import LOWER_IS_BETTER, display_digits, display_scale, format_metric, is_defined
from .reference import mean_reference, ridge_reference
from ..paper import DATASET_NAME, PUBLISHED_SOURCE, TABLE_ROWS, columns, comparable_with, published_rows
from ..training.registry import default_preset, make_config
from ..training.runner import DEFAULT_SEEDS, holds_runs, run_experiment
from ..utils import atomic_write_bytes, atomic_write_json, jsonable

@dataclass(frozen=True)
class Row:
    """One model of a table: its label, registry kind, output folder and config switches."""

    label: str
    kind: str
    slug: str
    overrides: tuple = ()  # (field, value) pairs for the config
    description: str = ""

    def config(self, preset: str, **training):
        return make_config(self.kind, preset, **dict(self.overrides), **training)


def _slug(label: str, kind: str) -> str:
    """Output folder of a row: "MCIHN-1" -> "mcihn-1", "-VT" -> "mcihn-vt", "Late fusion" -> "late"."""
    if label.startswith("-"):
        return kind + label.lower()
    if label.lower().replace("-", "") == kind:  # "Self-MM" -> "selfmm"
        return kind
    return kind if label.lower().startswith(kind) and not label[len(kind):].strip("-").isdigit() else label.lower()


#: The rows of each table (from :data:`mcihn.paper.TABLE_ROWS`).
TABLES = {name: tuple(Row(label, kind, _slug(label, kind), tuple(switches.items()), what)
                      for label, kind, switches, what in rows) for name, rows in TABLE_ROWS.items()}


# ----------------------------------------------------------------------------- the table object
@dataclass
class ExperimentTable:
    """A finished table: our rows (mean and std over seeds) and the paper's published rows."""

    name: str                         # "table2" | "table3"
    dataset: str                      # "mosi" | "sims" (decides the columns)
    data_source: str
    synthetic: bool
    seeds: list
    preset: str
    rows: list = field(default_factory=list)       # {"label", "model", "variant", "mean", "std", "per_seed", ...}
    published: list = field(default_factory=list)  # {"label", "values": {column title: value}}
    references: list = field(default_factory=list)  # {"label", "mean": metrics}: mean predictor, ridge (same data)
    files: dict = field(default_factory=dict)      # "md" / "csv" / "json" -> path, when written

    @property
    def columns(self) -> tuple:
        return columns(self.dataset)

    def row(self, label: str) -> dict:
        return next(r for r in self.rows if r["label"] == label)

    # ---- numbers in the paper's units (the one rule is mcihn.metrics.display_scale / display_digits)
    def shown(self, row: dict, key: str) -> float | None:
        """A row's mean for ``key`` in paper units, rounded as printed (None when undefined)."""
        v = row["mean"].get(key)
        return round(v * display_scale(key), display_digits(key)) if is_defined(v) else None

    def best(self) -> dict:
        """Column title -> labels of our rows with the best printed mean (ties share it)."""
        out = {}
        for title, key in self.columns:
            vals = {r["label"]: self.shown(r, key) for r in self.rows}
            vals = {k: v for k, v in vals.items() if v is not None}
            if vals:
                target = (min if key in LOWER_IS_BETTER else max)(vals.values())
                out[title] = [k for k, v in vals.items() if v == target]
        return out

    # ---- renderings ---------------------------------------------------------------------
    def caption(self) -> str:
        data = (f"SYNTHETIC {self.dataset.upper()}-shaped data (mcihn/data/synthetic.py), not {DATASET_NAME[self.dataset]}"
                if self.synthetic else f"{DATASET_NAME[self.dataset]} ({self.data_source})")
        seeds = ", ".join(str(s) for s in self.seeds)
        binary = ("Acc-2 / F1 are MMSA's Has0_acc_2 / Has0_F1_score (negative vs non-negative). "
                  if self.dataset == "mosi" else "")
        text = (f"{self.name.replace('table', 'Table ')} re-run by mcihn on {data}; {self.preset} preset; "
                f"test split, mean ± std over {len(self.seeds)} seed(s) ({seeds}); bold = best of the rows trained "
                f"here. {binary}Accuracies and F1 in %.")
        if self.published:
            text += (f" The rows marked 'published' are the {PUBLISHED_SOURCE[self.name]} figures on "
                     f"{DATASET_NAME[self.dataset]} with the authors' own features and code: other features, "
                     "not comparable number for number" + (", and not the data our rows were trained on."
                                                           if self.synthetic else "."))
        return text

    def published_source(self) -> str:
        return f"published, {DATASET_NAME[self.dataset]} (other features)"

    def to_markdown(self) -> str:
        best = self.best()
        titles = [t for t, _ in self.columns]
        arrows = [f"{t} ({'↓' if k in LOWER_IS_BETTER else '↑'})" for t, k in self.columns]
        lines = [self.caption(), "", "| Methods | " + " | ".join(arrows) + " | source | train time |",
                 "|---|" + "---|" * (len(titles) + 2)]
        for r in self.rows:
            cells = []
            for title, key in self.columns:
                m = self.shown(r, key)
                if m is None:
                    cells.append("-")
                    continue
                s = r["std"].get(key)
                text = f"{m:.{display_digits(key)}f}"
                if s is not None and not math.isnan(s) and len(r["per_seed"]) > 1:
                    text += f" ± {s * display_scale(key):.{display_digits(key)}f}"
                cells.append(f"**{text}**" if r["label"] in best.get(title, ()) else text)
            lines.append(f"| {r['label']} | " + " | ".join(cells)
                         + f" | this run, {len(r['per_seed'])} seed(s) | {format_seconds(r['train_time_s'])} |")
        for ref in self.references:  # floors on the same data and splits, not bolded
            cells = [format_metric(k, ref["mean"].get(k)) for _, k in self.columns]
            lines.append(f"| {ref['label']} | " + " | ".join(cells) + " | reference, same data | - |")
        for p in self.published:
            cells = [f"{p['values'][t]:.{display_digits(k)}f}" if p["values"].get(t) is not None else "-"
                     for t, k in self.columns]
            lines.append(f"| {p['label']} | " + " | ".join(cells) + f" | {self.published_source()} | - |")
        return "\n".join(lines) + "\n"

    def to_csv(self) -> str:
        """One line per row, paper units; ``std`` columns empty for published rows; ``best`` lists the
        columns where the row is the best of ours."""
        best = self.best()
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        header = ["Methods", "source", "seeds"]
        for title, _ in self.columns:
            header += [title, f"{title} std"]
        w.writerow(header + ["train_time_s", "best"])
        for r in self.rows:
            line = [r["label"], "this run", len(r["per_seed"])]
            for title, key in self.columns:
                m, s = self.shown(r, key), r["std"].get(key)
                line += ["" if m is None else m,
                         "" if s is None or math.isnan(s) else round(s * display_scale(key), display_digits(key) + 1)]
            line += [r["train_time_s"], ";".join(t for t, labels in best.items() if r["label"] in labels)]
            w.writerow(line)
        for p in self.published:
            line = [p["label"], self.published_source(), ""]
            for title, _ in self.columns:
                line += [p["values"].get(title, ""), ""]
            w.writerow(line + ["", ""])
        return buf.getvalue()

    def to_dict(self) -> dict:
        return jsonable({"name": self.name, "dataset": self.dataset, "data_source": self.data_source,
                         "synthetic": self.synthetic, "seeds": list(self.seeds), "preset": self.preset,
                         "columns": [list(c) for c in self.columns], "rows": self.rows,
                         "published": self.published, "references": self.references, "best": self.best(),
                         "caption": self.caption()})

    def write(self, out_dir) -> dict:
        """Write DIR/<name>.md, .csv and .json atomically; returns their paths."""
        out_dir = Path(out_dir)
        self.files = {"md": out_dir / f"{self.name}.md", "csv": out_dir / f"{self.name}.csv",
                      "json": out_dir / f"{self.name}.json"}
        atomic_write_bytes(self.files["md"], self.to_markdown().encode())
        atomic_write_bytes(self.files["csv"], self.to_csv().encode())
        atomic_write_json(self.files["json"], self.to_dict())
        return self.files


def format_seconds(s: float | None) -> str:
    if s is None:
        return "-"
    s = int(round(s))
    return f"{s // 60} min {s % 60:02d} s" if s >= 60 else f"{s} s"


# ----------------------------------------------------------------------------- running a table
def resolve_data(data=None, dataset: str | None = None) -> MultimodalData:
    """None -> the embedded SYNTHETIC data (``dataset`` kind, seed 0, as ``train`` uses); a path -> the
    MMSA pickle there; a :class:`MultimodalData` is returned as is."""
    if isinstance(data, MultimodalData):
        return data
    if data is None:
        from ..data import synthetic_data
        return synthetic_data(kind=dataset or "mosi", seed=0)
    return load_mmsa(data, dataset=dataset)


def run_table(name: str, data=None, *, dataset: str | None = None, seeds=DEFAULT_SEEDS, out_dir=None,
              preset: str | None = None, epochs: int | None = None, overrides: dict | None = None, models=None,
              device="auto", amp: bool = False,
              resume: bool = False, published: bool = True, references: bool = True, progress: bool = False,
              log=print) -> ExperimentTable:
    """Train every row of table ``name`` ("table2" or "table3") over ``seeds`` and return the table.

    data: None (embedded synthetic data), a pickle path, or a MultimodalData. preset: "paper" or
    "tiny" (default: tiny on synthetic data, paper otherwise). epochs: overrides every row's maximum
    epochs (quick runs); overrides: other training fields set for every row (e.g. ``{"batch_size": 64}``). models: subset of the rows' folder names (e.g. ["tfn", "mcihn"]).
    out_dir: where the rows' runs and the table files go (None: train in memory, write nothing).
    resume: continue an interrupted run in out_dir; without it, a folder that already holds a run
    of one of the rows is refused. published: add the paper's rows (on real MOSI / SIMS only: next to other data they mean nothing).
    references: add the mean predictor and a ridge regression on pooled features (same data and splits).
    """
    if name not in TABLES:
        raise ValueError(f"unknown table {name!r}; choose from {sorted(TABLES)}")
    rows = TABLES[name]
    if models is not None:
        known = {r.slug for r in rows}
        unknown = sorted(set(models) - known)
        if unknown:
            raise ValueError(f"{name} has no row(s) {unknown}; its rows are {[r.slug for r in rows]}")
        rows = tuple(r for r in rows if r.slug in set(models))
    seeds = [int(s) for s in seeds]
    if not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be a non-empty list without repeats, got {seeds}")
    out_dir = Path(out_dir) if out_dir is not None else None
    if out_dir is not None and out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"{out_dir}: exists and is not a folder")
    data = resolve_data(data, dataset)
    preset = preset or default_preset(data)
    training = {**(overrides or {}), **({"epochs": epochs} if epochs is not None else {}), "n_train": len(data["train"])}
    configs = [(row, row.config(preset, **training)) for row in rows]  # config errors before any training
    if out_dir is not None and not resume:
        started = [row.slug for row in rows if holds_runs(out_dir / row.slug)]
        if started:
            raise ValueError(f"{out_dir} already holds runs of {started}; pass resume=True (--resume) to continue, "
                             "or choose another output folder")

    table = ExperimentTable(name, data.dataset, data.source, data.synthetic, seeds, preset)
    for row, cfg in configs:
        log(f"=== {name}: {row.label} ({cfg.variant}, preset {preset}) ===")
        res = run_experiment(data, cfg, seeds=seeds, out_dir=out_dir / row.slug if out_dir else None, device=device,
                             amp=amp, resume=resume, progress=progress, log=log)
        times = [r.get("train_time_s") for r in res["per_seed"]]
        table.rows.append({
            "label": row.label, "model": row.kind, "variant": res["variant"], "folder": row.slug,
            "mean": res["mean"], "std": res["std"], "valid_mean": res["valid_mean"],
            "per_seed": res["per_seed"],
            "train_time_s": round(sum(t for t in times if t is not None), 2),
            "config": res["config"],
        })
    if published and comparable_with(data.dataset, data.synthetic):
        table.published = published_rows(name, data.dataset)
    if references:  # the floors any row must beat, on the same splits (ridge's alpha chosen on validation)
        ridge = ridge_reference(data, "".join(m[0] for m in data.dims))
        table.references = [{"label": "mean predictor", "mean": mean_reference(data)["test"]},
                            {"label": f"ridge on pooled features (alpha {ridge['alpha']:.3g} on valid)",
                             "mean": ridge["test"]}]
    if out_dir is not None:
        table.write(out_dir)
    return table


def table2(data=None, **kwargs) -> ExperimentTable:
    """Table 2: Late fusion, TFN, LMF, MulT and MCIHN on the same data. Arguments: :func:`run_table`."""
    return run_table("table2", data, **kwargs)


def table3(data=None, **kwargs) -> ExperimentTable:
    """Table 3: -VT, -VA, -TA, MCIHN-1, MCIHN-2 and MCIHN on the same data. Arguments: :func:`run_table`."""
    return run_table("table3", data, **kwargs)


def load_table(path) -> dict:
    """Read back a DIR/table2.json (or table3.json) as a dict."""
    import json
    return json.loads(Path(path).read_text())
