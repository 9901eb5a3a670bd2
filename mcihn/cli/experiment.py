"""``experiment``: Table 2 (baselines), Table 3 (ablations) or the development suite, every row over the seeds."""
from __future__ import annotations

from .options import DATASET_CHOICES, POSITIVE_INT, PRESET_CHOICES, add_run_args


def add_experiment(sub):
    p = sub.add_parser("experiment", help="re-run Table 2 (baselines) or Table 3 (ablations): every model over "
                                          "the seeds, on the same data; writes DIR/tableN.md / .csv / .json")
    p.add_argument("table", choices=["table2", "table3", "suite"],
                   help="table2: Late fusion, TFN, LMF, MulT, Self-MM, EMT, CMHFM, MCIHN; table3: -VT, -VA, -TA, MCIHN-1, "
                        "MCIHN-2, MCIHN; suite: the development suite (real MOSI sets and planted sets, every model "
                        "with its defaults next to mean, ridge, Bayes floor and MMSA's TFN / LMF: experiments/suite.py)")
    p.add_argument("--data", help="MMSA pickle; without it, the embedded SYNTHETIC dataset")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: from the pickle)")
    p.add_argument("--preset", choices=PRESET_CHOICES,
                   help="model sizes (default: auto with --data, tiny on the synthetic default)")
    p.add_argument("--epochs", type=POSITIVE_INT, help="maximum epochs of every model (quick runs)")
    p.add_argument("--models", nargs="+", help="only these rows (folder names: late tfn lmf mult selfmm emt cmhfm mcihn / "
                                               "mcihn-vt mcihn-va mcihn-ta mcihn-1 mcihn-2 mcihn)")
    g = p.add_argument_group("suite only")
    g.add_argument("--entries", nargs="+", metavar="ENTRY",
                   help="suite data sets: mosi-ta mosi-text linear-2000 interaction-1000 window-1000 interaction-300 "
                        "(default all), or NAME=PATH for an MMSA pickle (NAME=PATH:ta to pick modalities)")
    g.add_argument("--shared", help="folder with mosi-audio/mosi_ta_dev.csv and mosi-text/ (default: ../shared/data "
                                    "when it exists); see data/README.md for where to get them")
    g.add_argument("--mmsa", nargs="*", default=["tfn", "lmf"], choices=["tfn", "lmf", "mult"],
                   help="MMSA 2.2.1's own models to run too (default tfn lmf; needs pip install --no-deps mmsa "
                        "easydict nvidia-ml-py; skipped with a message without it)")
    g.add_argument("--jobs", type=POSITIVE_INT, default=1, metavar="N",
                   help="train N runs at a time, each in its own process with --threads torch threads (default 1 "
                        "thread there); N at most the number of cores. The suite trains on the CPU unless --device "
                        "names a GPU (its records are CPU runs)")
    g.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides of MCIHN's row, as an extra row named by them (e.g. --set lr=3e-4)")
    add_run_args(p, resume="continue an interrupted table run in --out", out="output folder (one sub-folder per model)")


def cmd_experiment(a) -> int:
    import time

    if a.table == "suite":
        return cmd_suite(a)
    from ..experiments.tables import TABLES, resolve_data, run_table
    from ..training.runner import DEFAULT_SEEDS
    from ..utils import OutLock, check_writable, resolve_device

    device = resolve_device(a.device)  # fail before loading data or training
    check_writable(a.out, "--out", folder=True)
    if a.models:
        rows = [r.slug for r in TABLES[a.table]]
        unknown = [m for m in a.models if m not in rows]
        if unknown:
            raise ValueError(f"--models: {a.table} has no row(s) {unknown}; its rows are {rows}")
    with OutLock(a.out, "--out"):
        data = resolve_data(a.data, a.dataset)
        if data.synthetic:
            print("NOTE: SYNTHETIC data with a planted structure (mcihn/data/synthetic.py), not CMU-MOSI or CH-SIMS.")
        t0 = time.time()
        table = run_table(a.table, data, seeds=a.seeds or list(DEFAULT_SEEDS), out_dir=a.out, preset=a.preset,
                          epochs=a.epochs, models=a.models, device=device, amp=a.amp, resume=a.resume,
                          progress=not a.quiet)
    print("\n" + table.to_markdown())
    print(f"wall time {time.time() - t0:.0f} s; wrote " + ", ".join(str(p) for p in table.files.values()))
    return 0


def cmd_suite(a) -> int:
    from ..experiments.suite import default_rows, parse_entries, run_suite

    if a.data:
        raise SystemExit("error: experiment suite takes its data sets from --entries, not --data")
    try:
        entries = parse_entries(a.entries)
        sets = _parse_sets(a.set)
        check_sets(sets)
    except (ValueError, TypeError) as e:
        raise SystemExit(f"error: {e}")
    models = a.models or ["mcihn", "tfn"]
    variants = [("MCIHN " + " ".join(a.set), "mcihn", sets)] if sets else []
    rows = default_rows(models=models, mmsa=a.mmsa, variants=variants)
    from ..utils import OutLock, check_writable, resolve_device
    device = resolve_device("cpu" if a.device == "auto" else a.device)  # the suite's records are CPU runs
    check_writable(a.out, "--out", folder=True)
    with OutLock(a.out, "--out"):
        res = run_suite(a.out, entries, rows, seeds=a.seeds or (1111, 1112, 1113, 1114, 1115), shared=a.shared,
                        resume=a.resume, jobs=a.jobs, device=str(device),
                        threads=getattr(a, "threads_asked", None) or 1)
    print(res.to_markdown("test"))
    print(f"wrote {a.out}/suite.md, valid.md, suite.json" + (f"; not run: {', '.join(res.errors)}" if res.errors else "")
          + (f"; {len(res.stale)} record(s) made with another config not used (listed above)" if res.stale else ""))
    return 0


def check_sets(sets: dict) -> None:
    """Refuse ``--set`` overrides that MCIHN's config does not have or rejects, before any training. They are
    checked on the preset the suite's rows train (``auto``; its sizes follow each entry's training split, which
    does not matter here: the sizes for an unknown one are used), so settings that need the auto preset's linear
    path pass."""
    import dataclasses

    from ..training.registry import config_class

    if not sets:
        return
    known = {f.name for f in dataclasses.fields(config_class("mcihn"))}
    unknown = sorted(set(sets) - known)
    if unknown:
        raise ValueError(f"--set {unknown[0]}=...: MCIHN has no setting {unknown[0]!r} (see MCIHNConfig)")
    config_class("mcihn").from_preset("auto", **sets)


def _parse_sets(items) -> dict:
    import ast

    out = {}
    for item in items:
        key, eq, value = item.partition("=")
        if not eq:
            raise SystemExit(f"error: --set {item!r}: write KEY=VALUE")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out
