"""The paper's facts in one place: its table layouts, its rows and the numbers it publishes.

Everything that prints, plots or compares against the MCIHN paper's Tables 2 and 3 reads from
here: ``PAPER_COLUMNS`` (column titles -> metric keys of :func:`mcihn.metrics.evaluate`),
``TABLE_ROWS`` (each row: its label, the registry model that trains it, the config switches that
make it, and what it changes), ``PUBLISHED`` (the printed numbers) and :func:`paper_table`.

Published numbers are shown only next to results on the dataset they were published for: next
to synthetic results they would mean nothing (``comparable_with``).
"""
from __future__ import annotations

import math

from .metrics import format_metric

#: (column title in the paper, key of mcihn.metrics.evaluate). The paper says "Acc-2" and "F1" for
#: MOSI without saying which of MMSA's two binary splits; its baseline rows are MMSA's "Has0" figures
#: (negative vs non-negative), so those are the columns compared here (reading notes, Metrics).
PAPER_COLUMNS = {
    "sims": (("Acc-2", "Mult_acc_2"), ("F1", "F1_score"), ("Acc-3", "Mult_acc_3"), ("Acc-5", "Mult_acc_5"),
             ("MAE", "MAE"), ("Corr", "Corr")),
    "mosi": (("Acc-2", "Has0_acc_2"), ("F1", "Has0_F1_score"), ("Acc-7", "Mult_acc_7"), ("MAE", "MAE"),
             ("Corr", "Corr")),
}
PAPER_COLUMNS["mosei"] = PAPER_COLUMNS["mosi"]  # MOSEI uses MOSI's label range and metrics
DATASET_NAME = {"mosi": "CMU-MOSI", "sims": "CH-SIMS", "mosei": "CMU-MOSEI"}

#: The rows we train for each table: (label, registry kind, config switches, what the row is).
#: Table 3's switches are the paper's ablations (Sec. 4.6); the README's paper-to-code table says how
#: each is wired.
TABLE_ROWS = {
    "table2": (
        ("Late fusion", "late", {}, "per-modality MLPs, learned weighted sum of their predictions (a floor)"),
        ("TFN", "tfn", {}, "Zadeh et al. 2017: outer product of the three unimodal codes"),
        ("LMF", "lmf", {}, "Liu et al. 2018: TFN's fusion layer as a low-rank sum"),
        ("MulT", "mult", {}, "Tsai et al. 2019: directional crossmodal transformers"),
        ("Self-MM", "selfmm", {}, "Yu et al. 2021: four heads, self-generated unimodal labels (ULGM)"),
        ("EMT", "emt", {}, "Sun et al. 2023: global multimodal context <-> local sequences, dual-level restoration"),
        ("CMHFM", "cmhfm", {}, "unimodal -> bimodal -> trimodal predictions, decision fusion, a loss on each"),
        ("MCIHN", "mcihn", {}, "the full model"),
    ),
    "table3": (
        ("-VT", "mcihn", {"modalities": "vt"}, "vision and text only: one pair feature F^vt, one MMD term"),
        ("-VA", "mcihn", {"modalities": "va"}, "vision and audio only"),
        ("-TA", "mcihn", {"modalities": "ta"}, "text and audio only"),
        ("MCIHN-1", "mcihn", {"use_aae": False},
         "no AAE: the same encoders, trained by the main loss alone (no decoder, no discriminator)"),
        ("MCIHN-2", "mcihn", {"use_cgmm": False},
         "no CGMM: each pair feature is the mean of the two codes, and there is no MMD term"),
        ("MCIHN", "mcihn", {}, "the full model"),
    ),
}

#: The MCIHN paper's Tables 2 and 3 as printed (accuracies and F1 in %, MAE and Corr as they are), in the
#: column order of PAPER_COLUMNS; means of 5 runs on the real datasets with the authors' features.
PUBLISHED = {
    "table2": {
        "sims": {"TFN": (78.3, 78.6, 65.1, 39.3, 0.432, 0.591), "LMF": (77.7, 77.8, 64.6, 40.5, 0.441, 0.576),
                 "MulT": (78.2, 78.5, 65.7, 40.0, 0.442, 0.581), "Self-MM": (80.0, 80.4, 65.4, 41.5, 0.425, 0.595),
                 "EMT": (80.1, 80.1, 67.4, 43.5, 0.396, 0.623), "CMHFM": (82.2, 82.3, 66.8, 41.8, 0.408, 0.649),
                 "MCIHN": (82.8, 82.6, 68.8, 45.2, 0.391, 0.653)},
        "mosi": {"TFN": (80.8, 80.7, 34.9, 0.901, 0.698), "LMF": (82.5, 82.4, 33.2, 0.917, 0.695),
                 "MulT": (83.0, 82.8, 40.0, 0.871, 0.698), "Self-MM": (83.4, 83.3, 46.7, 0.708, 0.796),
                 "EMT": (83.3, 83.2, 47.4, 0.705, 0.798), "CMHFM": (81.7, 81.5, 37.5, 0.822, 0.723),
                 "MCIHN": (84.4, 84.1, 48.2, 0.701, 0.796)},
    },
    "table3": {
        "sims": {"-VT": (78.7, 78.5, 65.4, 41.5, 0.428, 0.596), "-VA": (77.3, 77.2, 63.7, 40.7, 0.449, 0.586),
                 "-TA": (77.6, 77.6, 64.1, 40.1, 0.442, 0.581), "MCIHN-1": (78.8, 78.8, 63.9, 40.9, 0.433, 0.586),
                 "MCIHN-2": (77.8, 75.6, 63.2, 39.8, 0.446, 0.574), "MCIHN": (82.8, 82.6, 68.8, 45.2, 0.391, 0.653)},
        "mosi": {"-VT": (80.9, 80.6, 35.7, 0.734, 0.732), "-VA": (79.9, 79.9, 33.9, 0.798, 0.729),
                 "-TA": (80.1, 80.0, 33.4, 0.757, 0.739), "MCIHN-1": (80.3, 79.6, 33.6, 0.781, 0.732),
                 "MCIHN-2": (79.6, 78.9, 32.7, 0.774, 0.715), "MCIHN": (84.4, 84.1, 48.2, 0.701, 0.796)},
    },
}
PUBLISHED_SOURCE = {"table2": "MCIHN paper, Table 2", "table3": "MCIHN paper, Table 3"}


def columns(dataset: str) -> tuple:
    """The paper's (title, metric key) columns for ``dataset``."""
    if dataset not in PAPER_COLUMNS:
        raise ValueError(f"no paper layout for dataset {dataset!r}; choose from {sorted(PAPER_COLUMNS)}")
    return PAPER_COLUMNS[dataset]


def comparable_with(dataset: str, synthetic: bool) -> bool:
    """Published rows are shown only next to results on the real dataset they were published for."""
    return not synthetic and any(dataset in by_data for by_data in PUBLISHED.values())


def published_rows(table: str, dataset: str, labels=None) -> list:
    """The paper's rows of ``table`` for ``dataset`` as [{"label", "values": {column title: value}}]."""
    printed = PUBLISHED[table].get(dataset, {})
    titles = [t for t, _ in columns(dataset)]
    return [{"label": label, "values": dict(zip(titles, vals))} for label, vals in printed.items()
            if labels is None or label in labels]


def paper_table(rows: dict, dataset: str, std: dict | None = None, published: list | None = None):
    """A pandas DataFrame in the paper's layout: one row per ``rows`` entry (name -> metrics of
    :func:`mcihn.metrics.evaluate`), cells "mean ± std" where ``std`` has the row, "n/a" where a metric is
    undefined; ``published`` rows (from :func:`published_rows`) are appended as printed."""
    import pandas as pd

    cols = columns(dataset)
    table = {name: {title: format_metric(key, metrics.get(key), (std or {}).get(name, {}).get(key))
                    for title, key in cols} for name, metrics in rows.items()}
    for p in published or ():
        table[f"{p['label']} (published)"] = {
            title: "-" if p["values"].get(title) is None or math.isnan(p["values"][title]) else str(p["values"][title])
            for title, _ in cols}
    return pd.DataFrame.from_dict(table, orient="index")
