"""Cross-check: MMSA's own TFN, LMF and MulT against ours, on one MMSA-format synthetic pickle.

Not part of the test suite: a script that trains both sides and writes a table
(``benchmarks/mmsa_crosscheck.md``). Issue 13, item 6.

What it needs (besides this package)
------------------------------------
MMSA 2.2.1 (github.com/thuiar/MMSA, the field's reference implementations) without its dependencies,
so that pip does not replace torch / numpy / transformers::

    pip install --no-deps mmsa easydict nvidia-ml-py

``easydict`` is imported by MMSA's config; ``nvidia-ml-py`` provides the ``pynvml`` module that
``MMSA.utils.functions`` imports at import time (it is only used to pick a GPU; the ``pynvml`` package on
PyPI is a shim that needs ``nvidia-ml-py`` anyway). MMSA's other imports (pandas, scikit-learn, tqdm,
transformers) are this package's dependencies already.

What each side does
-------------------
MMSA: MMSA's own code path of ``MMSA_run`` / ``MMSA.run._run`` for one seed, unchanged: the config from
MMSA's ``config/config_regression.json`` (``get_config_regression(model, "mosi")``: MOSI's default
hyper-parameters), ``setup_seed(seed)``, ``MMDataLoader`` on the pickle (``custom_feature``), ``AMIO`` (the
model classes ``MMSA.models.singleTask.TFN / LMF / MULT``), ``ATIO().getTrain(args)`` (the trainers
``MMSA.trains.singleTask.*``: their optimiser, loss, schedule and early stopping), ``do_train``, the best
checkpoint reloaded, ``do_test`` on the test split; the metrics are MMSA's ``MetricsTop``. The only things
not done as ``MMSA_run`` does them: ``torch.cuda.set_device`` (CPU-only torch), ``num_workers=0`` in the
data loaders (no worker processes on a 2-core machine; the batches and their order are the same), and
no one-second ``time.sleep`` after each seed. Each seed runs in its own process. That code lives in
``mcihn.experiments.mmsa_models.run_mmsa_model`` (``load_mmsa(PKL)`` re-written as an MMSA pickle in WORK, the
same arrays; this script's ``run_mmsa`` only calls it and keeps its JSON layout and log files).

Ours: ``mcihn.training.run_experiment(load_mmsa(PKL), make_config(kind, "paper"), seeds=[seed],
out_dir=None, device="cpu")`` = ``python -m mcihn train --data PKL --model KIND --preset paper --seeds SEED
--out DIR`` without the checkpoint files (``--out`` writes ``last.pt`` every epoch: TFN's is ~220 MB);
metrics by ``mcihn.metrics.evaluate``.

The same pickle, the same seeds, ``OMP_NUM_THREADS=1`` and ``torch.set_num_threads(1)`` everywhere. The
pickle is ``mcihn.data.synthetic.write_synthetic(PKL, kind="mosi", dims=SMALL_DIMS, seed=0)``: what
``python -m mcihn make-synthetic --out PKL`` writes (MOSI's split sizes 1284 / 229 / 686, MMSA's keys and
layout, zero padding after each sequence's real steps) but with smaller feature sizes (text 16 x 32,
audio 24 x 16, vision 12 x 16), so that MMSA's MulT trains in CPU time; ``--dims default`` uses the
CLI's sizes (text 24 x 48, audio 40 x 24, vision 16 x 32). Text is given as features (``use_bert`` is
False in MMSA's TFN / LMF / MulT configs, so MMSA reads the pickle's ``text`` key, as ours does).

Usage
-----
    # everything: the pickle, 3 seeds x (MMSA tfn lmf mult + ours tfn lmf mult mcihn), two processes at a
    # time, then the table in benchmarks/mmsa_crosscheck.md (between its table markers)
    OMP_NUM_THREADS=1 python benchmarks/mmsa_crosscheck.py all --work /tmp/mmsa_xc --jobs 2

    # one side, one model, one seed (what `all` runs in each process; writes WORK/<side>_<model>_<seed>.json)
    OMP_NUM_THREADS=1 python benchmarks/mmsa_crosscheck.py run --side mmsa --model tfn --seed 1111 \\
        --data /tmp/mmsa_xc/synth.pkl --work /tmp/mmsa_xc

    # the table again from WORK's JSON files
    python benchmarks/mmsa_crosscheck.py report --work /tmp/mmsa_xc --md benchmarks/mmsa_crosscheck.md

``--smoke`` (with ``all``) checks the wiring in a minute: a small pickle, MMSA's early stop 1, our epochs 2.
``--zscore`` (``run --side mmsa`` or ``all --mmsa-zscore MODELS``) gives MMSA a copy of the pickle z-scored
per feature with the train split's statistics over real steps (padding kept 0): the preprocessing our
pipeline does, to separate its effect from the models' (side name ``mmsa_z``; ``run_mmsa_model(zscore=True)``).
Self-MM is not run on MMSA's side: see the report (``SKIPPED``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")
os.environ.setdefault("TQDM_DISABLE", "1")  # MMSA's trainers wrap every loader in tqdm

import numpy as np  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (1111, 1112, 1113)
MMSA_MODELS = ("tfn", "lmf", "mult")
OURS_MODELS = ("tfn", "lmf", "mult", "mcihn")
SMALL_DIMS = {"text": (16, 32), "audio": (24, 16), "vision": (12, 16)}
TITLE = {"tfn": "TFN", "lmf": "LMF", "mult": "MulT", "mcihn": "MCIHN"}
SIDE_TITLE = {"mmsa": "MMSA 2.2.1", "mmsa_z": "MMSA 2.2.1, z-scored copy", "ours": "mcihn (paper preset)"}
#: Rough CPU seconds of one seed at SMALL_DIMS (measured on the 2-core machine), to start the longest first.
COST = {("ours", "mcihn"): 450, ("ours", "tfn"): 320, ("mmsa", "mult"): 250, ("ours", "mult"): 230,
        ("mmsa", "tfn"): 200, ("mmsa", "lmf"): 15, ("ours", "lmf"): 15}
SKIPPED = ("Self-MM (MMSA `self_mm`) is not run: MMSA's Self-MM reads text only as token ids through a BERT "
           "(`use_bert: true`, `text_bert` of the pickle), and the synthetic pickle's `text_bert` ids are random "
           "integers in [1000, 30000) that carry none of the planted label signal (which is in the `text` "
           "features), and lie outside the vocabulary of the tiny local BERT `make_tiny_bert` writes "
           "(its WordPiece vocabulary is a few hundred tokens). MMSA's Self-MM would thus train on a text "
           "modality with no information while ours (`selfmm`, text from the `text` features) has it: no "
           "like-for-like comparison is possible on this data.")


def log_lines(path):
    return path.read_text().splitlines() if path.exists() else []


# ----------------------------------------------------------------------------- data
def write_data(path: Path, dims: str = "small", smoke: bool = False) -> Path:
    from mcihn.data.synthetic import DEFAULT_DIMS, write_synthetic

    kw = dict(kind="mosi", seed=0, dims=SMALL_DIMS if dims == "small" else DEFAULT_DIMS)
    if smoke:  # multiples of the batch sizes + a remainder > 1 (MMSA's BatchNorm needs 2 samples per batch)
        kw["splits"] = {"train": 100, "valid": 40, "test": 40}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_synthetic(path, **kw)
    return path


# ----------------------------------------------------------------------------- one seed, MMSA's side
def run_mmsa(model: str, seed: int, pkl: Path, work: Path, smoke: bool = False, zscore: bool = False) -> dict:
    """MMSA's own ``model`` on the pickle ``pkl`` for one seed: ``mcihn.experiments.mmsa_models.run_mmsa_model``
    (MMSA's code path; ``zscore``: on the z-scored copy; it writes its MMSA pickle into ``work``), its MMSA
    log written to ``work/logs``, the result in this script's JSON layout."""
    import torch

    torch.set_num_threads(1)
    from mcihn.data import load_mmsa
    from mcihn.experiments.mmsa_models import run_mmsa_model

    r = run_mmsa_model(model, load_mmsa(pkl), seed, work, "tav", zscore=zscore,
                       overrides={"early_stop": 1} if smoke else None)
    (work / "logs").mkdir(exist_ok=True)
    (work / "logs" / f"mmsa_{model}_{seed}{'_z' if zscore else ''}.log").write_text("\n".join(r["mmsa_log"]) + "\n")
    return {"test": r["mmsa_test"], "metrics_match_mcihn_evaluate": r["metrics_match"], "mcihn_evaluate": r["test"],
            "epochs_run": r["epochs_run"], "best_epoch": r["best_epoch"], "best_valid_loss": r["valid_mae"],
            "valid_loss": r["valid_loss"], "train_time_s": r["train_time_s"], "wall_s": r["wall_s"],
            "cpu_s": r["cpu_s"], "params": r["params"], "hyper_parameters": r["hyper_parameters"],
            "mmsa_pickle": r["pickle"]}


# ----------------------------------------------------------------------------- one seed, our side
def run_ours(model: str, seed: int, pkl: Path, smoke: bool = False) -> dict:
    import torch

    torch.set_num_threads(1)
    from mcihn.data import load_mmsa
    from mcihn.training import run_experiment
    from mcihn.training.registry import make_config

    c0, w0 = time.process_time(), time.time()
    data = load_mmsa(pkl)
    cfg = make_config(model, "paper", **(dict(epochs=2, patience=1) if smoke else {}))
    res = run_experiment(data, cfg, seeds=[seed], out_dir=None, device="cpu", progress=False, log=lambda *a: None)
    wall, cpu = time.time() - w0, time.process_time() - c0
    r = res["per_seed"][0]
    hist = res["histories"][seed]
    n_params = sum(p.numel() for p in _build(cfg, data).parameters() if p.requires_grad)
    c = cfg.to_dict()
    hp = {k: c[k] for k in c if k not in ("notes", "modalities", "text_encoder", "text_lr", "mmd_multipliers")}
    return {"test": r["test"], "epochs_run": r["epochs_run"], "best_epoch": r["best_epoch"],
            "best_valid_loss": min(h["valid"]["loss_mul"] for h in hist),
            "valid_loss": [round(h["valid"]["loss_mul"], 4) for h in hist],
            "train_time_s": r["train_time_s"], "wall_s": round(wall, 2), "cpu_s": round(cpu, 2),
            "params": int(n_params), "hyper_parameters": hp}


def _build(cfg, data):
    from mcihn.training.registry import build_model

    return build_model(cfg, dict(data.dims))


# ----------------------------------------------------------------------------- the table
def fmt(vals, scale=1.0, digits=3):
    v = np.asarray(vals, float) * scale
    return f"{v.mean():.{digits}f} ± {v.std():.{digits}f}"  # population std, as MMSA and mcihn.summarize


def report(work: Path, md: Path | None, note: str = "") -> str:
    runs = {}
    for f in sorted(work.glob("*.json")):
        if f.name == "env.json":
            continue
        r = json.loads(f.read_text())
        runs.setdefault((r["side"], r["model"]), []).append(r)
    env = json.loads((work / "env.json").read_text()) if (work / "env.json").exists() else {}
    order = [(s, m) for m in ("tfn", "lmf", "mult", "mcihn") for s in ("mmsa", "mmsa_z", "ours") if (s, m) in runs]
    rows = ["| model | side | seeds | MAE ↓ | Corr | Acc-2 (Has0) % | Acc-7 % | F1 (Has0) % | epochs: best / run, per seed "
            "| params | train wall, all seeds | CPU, all seeds |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    checks = []
    for side, model in order:
        rs = sorted(runs[(side, model)], key=lambda r: r["seed"])
        t = lambda k: [r["result"]["test"][k] for r in rs]  # noqa: E731
        ep = ", ".join(f"{r['result']['best_epoch']}/{r['result']['epochs_run']}" for r in rs)
        seeds = " ".join(str(r["seed"]) for r in rs)
        rows.append(f"| {TITLE[model]} | {SIDE_TITLE[side]} | {seeds} | {fmt(t('MAE'))} | {fmt(t('Corr'))} "
                    f"| {fmt(t('Has0_acc_2'), 100, 1)} | {fmt(t('Mult_acc_7'), 100, 1)} "
                    f"| {fmt(t('Has0_F1_score'), 100, 1)} | {ep} | {rs[0]['result']['params']:,} "
                    f"| {sum(r['result']['train_time_s'] for r in rs):.0f} s "
                    f"| {sum(r['result']['cpu_s'] for r in rs):.0f} s |")
        if side.startswith("mmsa"):
            checks += [r["result"]["metrics_match_mcihn_evaluate"] for r in rs]
    lines = ["<!-- table:begin (written by benchmarks/mmsa_crosscheck.py report) -->", ""]
    if env:
        lines += [f"Measured {env.get('date', '?')}: {env.get('machine', '?')}; {env.get('cpu', '?')}; "
                  f"`OMP_NUM_THREADS=1`, `torch.set_num_threads(1)`, {env.get('jobs', 1)} run(s) at a time; "
                  f"torch {env.get('torch', '?')}, MMSA {env.get('mmsa', '?')}, Python {env.get('python', '?')}; "
                  + (env.get("load_note") or f"load average before the runs: {env.get('loadavg', '?')}, after: "
                     f"{_loadavg()}") + f". Data: `{env.get('data', '?')}` ({env.get('dims', '?')}). "
                  f"Test split ({env.get('n_test', '?')} clips), mean ± std (population, as MMSA) over the seeds of each row "
                  "(± 0.000 with one seed).", ""]
    lines += rows + [""]
    if checks:
        lines.append(f"Metric functions: on every MMSA run ({len(checks)}), `mcihn.metrics.evaluate` on MMSA's own "
                     f"test predictions gives {'exactly' if all(checks) else 'NOT'} the values of MMSA's "
                     f"`MetricsTop` ({sum(checks)}/{len(checks)} identical).")
    lines += ["", "Train wall = the training loops (MMSA `do_train`, ours `Trainer.fit`), summed over seeds; CPU = the "
              "whole process per seed (data loading, training, test), summed.", ""]
    if note:
        lines += [note, ""]
    lines.append("<!-- table:end -->")
    block = "\n".join(lines)
    if md is not None:
        old = md.read_text() if md.exists() else ""
        if "<!-- table:begin" in old and "<!-- table:end -->" in old:
            head, rest = old.split("<!-- table:begin", 1)
            tail = rest.split("<!-- table:end -->", 1)[1]
            new = head + block + tail
        else:
            new = old + ("\n" if old else "") + block + "\n"
        md.write_text(new)
    return block


def _loadavg():
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def _n_test(pkl: Path) -> int:
    import pickle

    with open(pkl, "rb") as f:
        return len(pickle.load(f)["test"]["regression_labels"])


def environment(work: Path, data: Path, jobs: int, seeds, dims: str) -> None:
    import torch

    from mcihn.data.synthetic import DEFAULT_DIMS

    try:
        from importlib.metadata import version
        mmsa_version = version("MMSA")
    except Exception:  # noqa: BLE001
        mmsa_version = "?"
    cpu = "?"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                   if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    env = {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "machine": f"{os.cpu_count()}-core CPU shared with other jobs",
           "cpu": cpu, "torch": torch.__version__, "mmsa": mmsa_version, "python": platform.python_version(),
           "loadavg": _loadavg(), "jobs": jobs, "n_test": _n_test(data), "seeds": list(seeds), "data": str(data),
           "dims": ", ".join(f"{m} {t}x{d}" for m, (t, d) in (SMALL_DIMS if dims == "small" else DEFAULT_DIMS).items())}
    (work / "env.json").write_text(json.dumps(env, indent=1))


# ----------------------------------------------------------------------------- commands
def cmd_run(a) -> int:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    pkl = Path(a.data)
    side = a.side
    if a.zscore:
        if side != "mmsa":
            raise SystemExit("--zscore is for --side mmsa (ours z-scores by itself)")
        side = "mmsa_z"
    out = work / f"{side}_{a.model}_{a.seed}.json"
    if side.startswith("mmsa"):
        result = run_mmsa(a.model, a.seed, pkl, work, smoke=a.smoke, zscore=a.zscore)
    else:
        result = run_ours(a.model, a.seed, pkl, smoke=a.smoke)
    cmd = "OMP_NUM_THREADS=1 python " + " ".join([str(Path(sys.argv[0]))] + sys.argv[1:])
    out.write_text(json.dumps({"side": side, "model": a.model, "seed": a.seed, "data": str(pkl), "command": cmd,
                               "result": result}, indent=1))
    t = result["test"]
    print(f"{side} {a.model} seed {a.seed}: MAE {t['MAE']:.4f} Corr {t['Corr']:.4f} Acc2 {t['Has0_acc_2']:.4f} "
          f"Acc7 {t['Mult_acc_7']:.4f}  epochs {result['best_epoch']}/{result['epochs_run']}  "
          f"train {result['train_time_s']:.0f}s cpu {result['cpu_s']:.0f}s", flush=True)
    return 0


def cmd_all(a) -> int:
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    pkl = Path(a.data) if a.data else work / ("smoke.pkl" if a.smoke else "synth.pkl")
    if not pkl.exists():
        write_data(pkl, a.dims, a.smoke)
    environment(work, pkl, a.jobs, a.seeds, a.dims)
    jobs = [("mmsa", m, s) for m in a.mmsa for s in a.seeds] + [("ours", m, s) for m in a.ours for s in a.seeds]
    jobs += [("mmsa_z", m, s) for m in a.mmsa_zscore for s in a.seeds]
    jobs = [j for j in jobs if not (work / f"{j[0]}_{j[1]}_{j[2]}.json").exists()]  # resume
    jobs = [j for j in jobs if f"{j[0]}:{j[1]}:{j[2]}" not in set(a.exclude)]
    if a.order == "cost":  # longest first (balanced lanes), MCIHN (no MMSA counterpart) last
        jobs.sort(key=lambda j: (j[1] == "mcihn", -COST.get((j[0].replace("_z", ""), j[1]), 100)))
    else:  # seed by seed (every model of one seed before the next seed): complete rows if stopped early
        jobs.sort(key=lambda j: (j[1] == "mcihn", a.seeds.index(j[2]), j[0] == "mmsa_z",
                                 -COST.get((j[0].replace("_z", ""), j[1]), 100)))
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", TQDM_DISABLE="1")
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    (work / "logs").mkdir(exist_ok=True)

    def one(job):
        side, model, seed = job
        if (work / f"{side}_{model}_{seed}.json").exists():  # done meanwhile (another `all` or `run`)
            return 0
        cmd = [sys.executable, str(Path(__file__).resolve()), "run", "--side", side.replace("_z", ""),
               "--model", model, "--seed", str(seed), "--data", str(pkl), "--work", str(work)]
        cmd += ["--zscore"] if side == "mmsa_z" else []
        cmd += ["--smoke"] if a.smoke else []
        with open(work / "logs" / f"{side}_{model}_{seed}.out", "w") as out:
            p = subprocess.run(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
        tail = log_lines(work / "logs" / f"{side}_{model}_{seed}.out")[-1:]
        print(f"[{time.strftime('%H:%M:%S')}] {side} {model} {seed}: rc {p.returncode} {' '.join(tail)}", flush=True)
        return p.returncode

    t0 = time.time()
    with ThreadPoolExecutor(max_workers=a.jobs) as pool:
        rcs = list(pool.map(one, jobs))
    print(f"all runs: {time.time() - t0:.0f} s wall", flush=True)
    print(report(work, Path(a.md) if a.md else None))
    return max(rcs, default=0)


def cmd_report(a) -> int:
    print(report(Path(a.work), Path(a.md) if a.md else None))
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="one side, one model, one seed -> WORK/<side>_<model>_<seed>.json")
    r.add_argument("--side", choices=("mmsa", "ours"), required=True)
    r.add_argument("--model", required=True)
    r.add_argument("--seed", type=int, required=True)
    r.add_argument("--data", required=True)
    r.add_argument("--work", required=True)
    r.add_argument("--zscore", action="store_true", help="MMSA on a z-scored copy of the pickle (side mmsa_z)")
    r.add_argument("--smoke", action="store_true")
    r.set_defaults(fn=cmd_run)
    al = sub.add_parser("all", help="pickle + every run (subprocesses) + report")
    al.add_argument("--work", required=True)
    al.add_argument("--data", help="an existing pickle (default: WORK/synth.pkl, written if missing)")
    al.add_argument("--dims", choices=("small", "default"), default="small")
    al.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    al.add_argument("--mmsa", nargs="*", default=list(MMSA_MODELS), choices=MMSA_MODELS)
    al.add_argument("--ours", nargs="*", default=list(OURS_MODELS), choices=OURS_MODELS)
    al.add_argument("--mmsa-zscore", nargs="*", default=[], choices=MMSA_MODELS)
    al.add_argument("--jobs", type=int, default=1, help="processes at a time (each one thread)")
    al.add_argument("--order", choices=("cost", "seed"), default="cost",
                    help="cost: longest runs first; seed: all models of one seed, then the next seed")
    al.add_argument("--exclude", nargs="*", default=[], metavar="SIDE:MODEL:SEED", help="runs to leave out")
    al.add_argument("--md", default=None, help="write the table into this markdown file")
    al.add_argument("--smoke", action="store_true", help="tiny pickle, MMSA early stop 1, ours 2 epochs")
    al.set_defaults(fn=cmd_all)
    rp = sub.add_parser("report", help="the table from WORK's JSON files")
    rp.add_argument("--work", required=True)
    rp.add_argument("--md", default=None)
    rp.set_defaults(fn=cmd_report)
    a = p.parse_args(argv)
    return a.fn(a)


if __name__ == "__main__":
    sys.exit(main())
