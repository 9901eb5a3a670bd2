"""The development suite: several unlike data sets, every model asked for, several seeds, one table.

A default is only worth the name if it holds on data nobody tuned it on. The suite puts the models of
this package (and, when MMSA 2.2.1 is installed, MMSA's own TFN and LMF) on data sets that look like
the world, next to the field's reference points on the same splits: the mean predictor, a ridge
regression on time-pooled features (alpha on valid), and, for planted sets, the Bayes floor (the MAE an
oracle that knows the generator reaches, ``mcihn.data.planted``). It writes the test table that the
README shows and, separately, the validation table that chooses defaults (never the test one).

Entries (``ENTRIES``; ``--entries`` picks some, ``NAME=PATH`` adds an MMSA pickle of your own):

    mosi-ta           real CMU-MOSI, 62 videos split by video: frozen MiniLM text + openSMILE audio
    mosi-text         real CMU-MOSI transcripts, standard split: frozen MiniLM text only
    linear-2000       planted: a label carried mostly linearly by text; ridge is hard to beat
    interaction-1000  planted: a cross-modal interaction no single modality shows
    window-1000       planted: evidence in a short random window, heavy per-step noise
    interaction-300   planted: the interaction set with 300 training clips

Layout of DIR::

    DIR/suite.md, DIR/suite.json          the test table (mean +- std over seeds) and every record
    DIR/valid.md                          the validation MAE of every row on every data set (what chooses)
    DIR/runs/<entry>/<row>/<seed>.json    one record per run (written last: a rerun skips it)
    DIR/cache/                            encoded transcripts (MiniLM states), reused by reruns

A missing or malformed entry is reported by name and the rest of the suite runs; a killed suite
continues with ``resume`` (finished records are read back; without it a non-empty DIR is refused).
``jobs`` trains several runs at a time in worker processes (``experiment suite --jobs N``).

MMSA's TFN and LMF read text through an LSTM's last state over every step, padding included, so they are
given each sequence with its zeros first (``mmsa_models.SUITE_PAD``; with the zeros after the words they
stayed at the mean predictor on the real sets, the older rows "..., zeros after the words").
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..metrics import evaluate
from ..utils import atomic_write_bytes, atomic_write_json, jsonable
from .reference import mean_reference, modality_subsets, ridge_reference

#: Columns of the table: (title, metric key, scale for display).
COLUMNS = (("MAE", "MAE", 1.0), ("Corr", "Corr", 1.0), ("Has0 Acc-2", "Has0_acc_2", 100.0))
#: Where the real development files are looked for when no folder is given (relative to the working
#: folder and to the repository): the layout of the project's ``../shared/data``.
SHARED_CANDIDATES = ("../shared/data", "shared/data")


@dataclass(frozen=True)
class Entry:
    """One data set of the suite: how to load it and which modalities the models read."""

    name: str
    source: str          # "mosi-ta" | "mosi-text" | "planted" | "pickle"
    modalities: str
    arg: str = ""        # file or folder (real data, pickle) or planted kind
    n_train: int = 0     # planted: training clips
    description: str = ""

    def load(self, shared: Path | None, cache_dir: Path):
        """The entry's :class:`MultimodalData`; raises with the entry's name and file on any problem."""
        from ..data import load_mmsa
        from ..data.real import load_mosi_ta, load_mosi_text

        if self.source == "planted":
            from ..data.planted import planted_data

            return planted_data(self.arg, n_train=self.n_train, seed=0)
        if self.source == "pickle":
            return load_mmsa(self.arg)
        path = Path(self.arg) if self.arg else (shared / SHARED_FILES[self.source] if shared else None)
        if path is None:
            raise FileNotFoundError(f"no folder with the real development files: give --shared DIR (where "
                                    f"{SHARED_FILES[self.source]} lies) or {self.name}=PATH")
        loader = load_mosi_ta if self.source == "mosi-ta" else load_mosi_text
        return loader(path, cache_dir=cache_dir)


SHARED_FILES = {"mosi-ta": "mosi-audio/mosi_ta_dev.csv", "mosi-text": "mosi-text"}

ENTRIES = {e.name: e for e in (
    Entry("mosi-ta", "mosi-ta", "ta", description="real CMU-MOSI text + audio, 62 videos split by video"),
    Entry("mosi-text", "mosi-text", "t", description="real CMU-MOSI transcripts, standard split"),
    Entry("linear-2000", "planted", "tav", "linear", 2000, "planted: mostly linear in text"),
    Entry("interaction-1000", "planted", "tav", "interaction", 1000, "planted: cross-modal interaction"),
    Entry("window-1000", "planted", "tav", "window", 1000, "planted: evidence in a short window"),
    Entry("interaction-300", "planted", "tav", "interaction", 300, "planted: interaction, 300 clips"),
)}


def parse_entries(specs) -> list[Entry]:
    """Entry names of ``ENTRIES`` and ``NAME=PATH`` items (a real file for mosi-ta / mosi-text, else an
    MMSA pickle with all its modalities, or ``NAME=PATH:MODALITIES``)."""
    out = []
    for spec in specs or list(ENTRIES):
        if "=" not in spec:
            if spec not in ENTRIES:
                raise ValueError(f"unknown suite entry {spec!r}; choose from {', '.join(ENTRIES)} or NAME=PATH")
            out.append(ENTRIES[spec])
            continue
        name, path = spec.split("=", 1)
        if name in SHARED_FILES:
            out.append(Entry(name, name, ENTRIES[name].modalities, path, description=ENTRIES[name].description))
        else:
            path, _, mods = path.partition(":")
            out.append(Entry(name, "pickle", mods or "tav", path, description=f"MMSA pickle {path}"))
    return out


def find_shared() -> Path | None:
    here = Path(__file__).resolve().parents[2]
    for c in SHARED_CANDIDATES:
        for base in (Path.cwd(), here):
            if (base / c).is_dir():
                return (base / c).resolve()
    return None


# ------------------------------------------------------------------------------------------ one run
@dataclass(frozen=True)
class Row:
    """A line of the table: ``ours`` (a registry model with config overrides), ``mmsa`` or a reference."""

    label: str
    side: str            # "ours" | "mmsa" | "ref"
    kind: str            # registry kind, MMSA model name, or "mean" / "ridge" / "floor"
    overrides: tuple = ()

    @property
    def slug(self) -> str:
        extra = "".join(f"_{k}-{v}" for k, v in self.overrides)
        return f"{self.side}_{self.kind}{extra}".replace("/", "-")


def ours_config(kind: str, entry: Entry, data, overrides=()):
    """The config ``python -m mcihn train --data FILE --model KIND`` uses on this data (its defaults), with
    the entry's modalities and ``overrides``."""
    from ..training.registry import default_config

    return default_config(kind, data, **{"modalities": entry.modalities, **dict(overrides)})


def applies(row: Row, entry: Entry) -> bool:
    """A row that fixes its own modalities runs only on entries with more modalities that include them."""
    over = dict(row.overrides)
    if "ffm_values" in over and len(entry.modalities) < 2:  # one modality: the fusion has no pairs to read
        return False
    mods = over.get("modalities")
    return mods is None or (set(mods) < set(entry.modalities))


def stale_record(rec: dict, row: Row, entry: Entry, data) -> list[str]:
    """How a saved record of one of our rows differs from what the row trains now (a default changed since,
    for example); empty when it is today's run (``runner.config_changes``)."""
    if row.side != "ours" or "config" not in rec:
        return []
    from ..training.runner import config_changes

    return config_changes(rec["config"], ours_config(row.kind, entry, data, row.overrides), data)


def run_one(row: Row, entry: Entry, data, seed: int, work: Path, device: str = "cpu") -> dict:
    """Train (or compute) one row on one entry with one seed; returns the record written to disk."""
    t0 = time.time()
    if row.side == "ours":
        from ..training.runner import run_experiment

        cfg = ours_config(row.kind, entry, data, row.overrides)
        res = run_experiment(data, cfg, seeds=[seed], out_dir=None, device=device, progress=False,
                             log=lambda *a: None)
        r, hist = res["per_seed"][0], res["histories"][seed]
        rec = {"valid": r["valid"], "test": r["test"], "best_epoch": r["best_epoch"], "epochs_run": r["epochs_run"],
               "curve": [[round(h["train"].get("mul", h["train"].get("total", math.nan)), 4),
                          round(h["valid"]["loss_mul"], 4)] for h in hist],
               "config": cfg.to_dict()}
        if "start" in r:  # linear_init="auto": the start kept and both starts' validation MAE (training/starts.py)
            rec.update(start=r["start"], starts=r["starts"])
    elif row.side == "mmsa":
        from .mmsa_models import SUITE_PAD, run_mmsa_model

        pad = dict(row.overrides).get("pad", SUITE_PAD)
        r = run_mmsa_model(row.kind, data, seed, work / "mmsa", modalities=entry.modalities, pad=pad)
        rec = {"valid": {"MAE": r["valid_mae"]}, "test": r["test"], "best_epoch": r["best_epoch"],
               "epochs_run": r["epochs_run"], "hyper_parameters": r.get("hyper_parameters"), "pad": pad,
               "valid_curve": r["valid_loss"]}
    else:
        rec = reference(row.kind, data, entry.modalities)
    import torch

    rec.update(row=row.label, entry=entry.name, seed=seed, seconds=round(time.time() - t0, 1),
               device=str(device) if row.side == "ours" else ("cpu" if row.side == "mmsa" else None),
               torch=torch.__version__)
    return rec


def reference(kind: str, data, modalities: str) -> dict:
    if kind == "mean":
        return mean_reference(data)
    if kind == "ridge":  # the best subset of the entry's modalities, chosen on the validation MAE
        subsets = ["".join(c) for c in modality_subsets(modalities)]
        fits = {m: ridge_reference(data, m) for m in subsets}
        best = min(fits, key=lambda m: fits[m]["valid"]["MAE"])
        return {**fits[best], "modalities": best,
                "subsets": {m: {s: round(f[s]["MAE"], 4) for s in ("valid", "test")} for m, f in fits.items()}}
    floor = (data.meta or {}).get("bayes_floor")
    if not floor:
        return {"valid": {}, "test": {}}
    return {s: {"MAE": float(floor[s])} for s in ("valid", "test")}


# ------------------------------------------------------------------------------------------ the suite
def mean_std(values, digits: int = 3, count: bool = False) -> str:
    """One table cell: "-" for no value, the value for one, "mean ± std" (population std, as MMSA) for more,
    followed by the number of values in brackets when ``count``."""
    v = np.asarray(values, float)
    if len(v) == 0:
        return "-"
    if len(v) == 1:
        return f"{v[0]:.{digits}f}"
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}" + (f" ({len(v)})" if count else "")


@dataclass
class SuiteResult:
    records: list = field(default_factory=list)
    errors: dict = field(default_factory=dict)   # entry -> message
    stale: list = field(default_factory=list)    # records on disk made with another config: not used
    rows: list = field(default_factory=list)
    entries: list = field(default_factory=list)

    def cell(self, entry: str, row: str, split: str, key: str):
        vals = [r[split].get(key) for r in self.records if r["entry"] == entry and r["row"] == row
                and r[split].get(key) is not None]
        return vals

    def to_markdown(self, split: str = "test") -> str:
        lines = []
        for e in self.entries:
            lines.append(f"\n### {e.name}: {e.description} ({split} split)\n")
            if e.name in self.errors:
                lines.append(f"not run: {self.errors[e.name]}\n")
                continue
            lines.append("| row | seeds | " + " | ".join(c[0] for c in COLUMNS) + " | best epochs |")
            lines.append("|---|---|" + "---|" * len(COLUMNS) + "---|")
            for row in self.rows:
                recs = [r for r in self.records if r["entry"] == e.name and r["row"] == row.label]
                if not recs:
                    continue
                cells = []
                for _, key, scale in COLUMNS:
                    v = np.array(self.cell(e.name, row.label, split, key), float) * scale
                    cells.append(mean_std(v, digits=1 if scale != 1 else 3))
                best = ",".join(str(r["best_epoch"]) for r in recs if r.get("best_epoch") is not None) or "-"
                seeds = len(recs) if row.side != "ref" else "-"
                lines.append(f"| {row.label} | {seeds} | " + " | ".join(cells) + f" | {best} |")
        return "\n".join(lines) + "\n"


def default_rows(models=("mcihn", "tfn"), mmsa=("tfn", "lmf"), variants=(), mcihn_ablations: bool = True) -> list[Row]:
    """References first, then our models; with ``mcihn_ablations`` (and MCIHN among ``models``) two MCIHN rows
    that test its defaults: the fusion's values as Eq. 15 is read (S^m), and text alone (the strongest single
    modality of every entry: the ridge's per-subset fits in suite.json show it); then MMSA's models (given
    their sequences with the zeros first, ``mmsa_models.SUITE_PAD``), and
    ``variants`` ((label, kind, overrides))."""
    from ..training.registry import config_class

    rows = [Row("mean predictor", "ref", "mean"), Row("ridge (pooled)", "ref", "ridge"),
            Row("Bayes floor", "ref", "floor")]
    rows += [Row(config_class(k)().variant if k == "mcihn" else config_class(k).title, "ours", k) for k in models]
    if mcihn_ablations and "mcihn" in models:
        rows.append(Row("MCIHN, values S^m (Eq. 15 as read)", "ours", "mcihn", (("ffm_values", "core"),)))
        rows.append(Row("MCIHN, text only", "ours", "mcihn", (("modalities", "t"),)))
    from .mmsa_models import SUITE_PAD

    rows += [Row(mmsa_label(k, SUITE_PAD), "mmsa", k, (("pad", SUITE_PAD),)) for k in mmsa]
    rows += [Row(label, "ours", kind, tuple(sorted(over.items()))) for label, kind, over in variants]
    return rows


def run_suite(out_dir, entries=None, rows=None, seeds=(1111, 1112, 1113, 1114, 1115), shared=None,
              resume: bool = False, log=print, jobs: int = 1, device: str = "cpu", threads: int = 1) -> SuiteResult:
    """Run every row on every entry over ``seeds``; write DIR/suite.md, valid.md, suite.json.

    ``jobs`` > 1 trains that many runs at a time, each in its own process with ``threads`` torch threads
    (:func:`_pool_job`); a run's record is the same whichever process ran it, since each run seeds itself.
    ``device``: where this package's models train (MMSA's run on the CPU)."""
    out = Path(out_dir)
    if out.exists() and any(not p.name.startswith(".") for p in out.iterdir()) and not resume:  # .mcihn.lock
        raise FileExistsError(f"{out} is not empty: pass resume=True (--resume) to continue that suite")
    out.mkdir(parents=True, exist_ok=True)
    entries = parse_entries(entries) if entries is None or isinstance(entries[0], str) else list(entries)
    rows = rows or default_rows()
    shared = Path(shared) if shared else find_shared()
    res = SuiteResult(rows=rows, entries=entries)
    pending = []  # (entry, row, seed, record path) of runs still to train
    for e in entries:
        try:
            data = e.load(shared, out / "cache")  # also fills the cache the worker processes read
        except Exception as err:  # noqa: BLE001 - one bad entry must not stop the suite
            res.errors[e.name] = f"{type(err).__name__}: {err}"
            log(f"[{e.name}] skipped: {res.errors[e.name]}")
            write_tables(res, out)
            continue
        log(f"[{e.name}] {data.source}: " + ", ".join(f"{s} {len(data[s])}" for s in ("train", "valid", "test"))
            + f"; modalities {e.modalities}; dims {dict(data.dims)}")
        for row in rows:
            if not applies(row, e):
                continue
            if row.side == "mmsa":
                from .mmsa_models import mmsa_available

                why = mmsa_available()
                if why:
                    log(f"[{e.name}] {row.label}: skipped ({why})")
                    continue
            for seed in (seeds if row.side != "ref" else seeds[:1]):  # references are deterministic
                path = out / "runs" / e.name / row.slug / f"{seed}.json"
                if path.exists():
                    rec = json.loads(path.read_text())
                    changes = stale_record(rec, row, e, data)
                    if changes:  # never mixed into a row of today's defaults, never overwritten
                        res.stale.append(str(path))
                        log(f"[{e.name}] {row.label} seed {seed}: not used: {path} was made with another config ("
                            + ", ".join(changes) + "); delete it to re-run that seed, or use another --out")
                        continue
                    res.records.append(rec)
                elif row.side == "ref" or jobs <= 1:  # references take a second: never worth a process
                    _keep(res, _guarded(row, e, seed, path, lambda: run_one(row, e, data, seed, out, device)), log)
                else:
                    pending.append((e, row, seed, path))
        if jobs <= 1 or not pending:
            write_tables(res, out)
    if pending:
        _run_pool(pending, res, out, shared, jobs, device, threads, log)
        write_tables(res, out)
    return res


def _guarded(row: Row, entry: Entry, seed: int, path: Path, run) -> tuple[dict | None, str | None]:
    """Run one record and write it to ``path`` (atomically, last: a rerun skips it); (record, error)."""
    try:
        rec = run()
    except Exception as err:  # noqa: BLE001 - one failed run must not stop the suite
        return None, f"[{entry.name}] {row.label} seed {seed}: failed: {type(err).__name__}: {err}"
    if rec["test"]:
        atomic_write_json(path, jsonable(rec))
    return rec, None


def _keep(res: SuiteResult, outcome, log) -> None:
    """Add a finished run's record to ``res`` and log one line; log the error of a failed one."""
    rec, err = outcome
    if err is not None:
        log(err)
        return
    if not rec["test"]:
        return
    res.records.append(rec)
    log(f"[{rec['entry']}] {rec['row']}" + (f" seed {rec['seed']}" if "best_epoch" in rec else "")
        + f": valid MAE {rec['valid'].get('MAE', math.nan):.3f}, test MAE {rec['test']['MAE']:.3f}"
        + (f", best epoch {rec['best_epoch']}" if rec.get("best_epoch") else "") + f" ({rec['seconds']:.0f} s)")


def _run_pool(pending, res: SuiteResult, out: Path, shared, jobs: int, device: str, threads: int, log,
              job=None) -> None:
    """Train the ``pending`` runs in ``jobs`` worker processes (spawned: no state shared with this one), MMSA's
    runs first (the longest here), then ours, larger planted sets first; tables are rewritten as records arrive.

    A run that raises is reported by entry, row and seed and the others go on. A worker that dies (killed, out
    of memory), a full disk, Ctrl-C or SIGTERM stop the pool: queued runs are cancelled, running ones ended,
    and the error is raised (the finished records stay; ``--resume`` continues). ``job``: what a worker runs
    (default :func:`_pool_job`; the tests give others)."""
    import errno
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    order = {"mmsa": 0, "ours": 1}
    pending = sorted(pending, key=lambda j: (order.get(j[1].side, 2), -j[0].n_train))
    log(f"{len(pending)} runs in {jobs} processes ({threads} torch thread(s) each, device {device})")
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), initializer=_worker_init)
    try:
        futures = {pool.submit(job or _pool_job, e, row, seed, str(path), str(out), str(shared) if shared else None,
                               device, threads): (e, row, seed) for e, row, seed, path in pending}
        for f in as_completed(futures):
            e, row, seed = futures[f]
            try:
                rec, err = f.result()
            except BrokenProcessPool as dead:
                unfinished = [f"{x.name}/{r.label}/{s_}" for g, (x, r, s_) in futures.items() if not g.done()
                              or g.exception() is not None]
                raise RuntimeError(f"a worker process died ({dead}); runs not finished: {', '.join(unfinished)}; "
                                   "the finished records are kept: rerun with --resume") from dead
            except OSError as full:
                if full.errno == errno.ENOSPC:
                    raise
                rec, err = None, f"[{e.name}] {row.label} seed {seed}: failed: {type(full).__name__}: {full}"
            _keep(res, (rec, err), log)
            write_tables(res, out)
    except BaseException:
        _stop_pool(pool)
        raise
    pool.shutdown(wait=True)


def _worker_init() -> None:
    """Workers leave Ctrl-C to the main process, which stops them (:func:`_stop_pool`)."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _stop_pool(pool) -> None:
    """Cancel the queued runs and end the running ones (their records are not written: a rerun trains them)."""
    processes = list(getattr(pool, "_processes", {}).values())  # the executor keeps no public handle on them
    pool.shutdown(wait=False, cancel_futures=True)
    for p in processes:
        if p.is_alive():
            p.terminate()
    for p in processes:
        p.join(timeout=10)


_WORKER_DATA: dict = {}  # entry name -> its data, loaded once per worker process


def _pool_job(entry: Entry, row: Row, seed: int, path: str, out: str, shared, device: str, threads: int):
    """One run in a worker process: load the entry once per process (the cache is already filled), train,
    write the record; returns (record, error) as :func:`_guarded`."""
    import torch

    torch.set_num_threads(threads)
    if entry.name not in _WORKER_DATA:
        _WORKER_DATA[entry.name] = entry.load(Path(shared) if shared else None, Path(out) / "cache")
    data = _WORKER_DATA[entry.name]
    return _guarded(row, entry, seed, Path(path), lambda: run_one(row, entry, data, seed, Path(out), device))


def mmsa_label(kind: str, pad: str) -> str:
    """The row label of MMSA's model ``kind`` given its sequences with ``pad`` (one label per layout, so that
    the two never share a row)."""
    from .mmsa_models import SUITE_PAD

    return f"MMSA {kind.upper()}" + ("" if pad == SUITE_PAD else ", zeros after the words")


def load_records(*folders) -> list[dict]:
    """Every per-run record under ``DIR/runs`` of one or more suite folders. Records of MMSA's models written
    before the layout was recorded (no "pad"; they all had the zeros after the words) get that layout's label."""
    out = []
    for p in (p for f in folders for p in sorted(Path(f).glob("runs/*/*/*.json"))):
        rec = json.loads(p.read_text())
        if p.parent.name.startswith("mmsa_") and "pad" not in rec:
            rec.update(pad="end", row=mmsa_label(p.parent.name.split("_")[1], "end"))
        out.append(rec)
    return out


def pivot_markdown(records: list[dict], split: str = "valid", key: str = "MAE", rows=None, entries=None,
                   scale: float = 1.0, digits: int = 3) -> str:
    """One table, a row per table row and a column per data set: mean +- std of ``split``'s ``key`` (times
    ``scale``) over seeds (the view that chooses a default: every data set at once)."""
    entries = entries or list(dict.fromkeys(r["entry"] for r in records))
    rows = rows or list(dict.fromkeys(r["row"] for r in records))
    lines = ["| row | " + " | ".join(entries) + " |", "|---|" + "---|" * len(entries)]
    for row in rows:
        cells = []
        for e in entries:
            cells.append(mean_std([r[split][key] * scale for r in records if r["row"] == row and r["entry"] == e
                                   and r[split].get(key) is not None], digits=digits, count=True))
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def write_tables(res: SuiteResult, out: Path) -> None:
    res.records.sort(key=lambda r: (r["entry"], r["row"], r["seed"]))  # the same files whatever the finishing order
    atomic_write_bytes(out / "suite.md", res.to_markdown("test").encode())
    labels = [r.label for r in res.rows]
    atomic_write_bytes(out / "valid.md", ("Validation MAE, mean ± std (seeds): what chooses a default.\n\n"
                                          + pivot_markdown(res.records, "valid", rows=labels)
                                          + res.to_markdown("valid")).encode())
    atomic_write_json(out / "suite.json", jsonable({"records": res.records, "errors": res.errors,
                                                    "stale": res.stale, "rows": [r.__dict__ for r in res.rows]}))
