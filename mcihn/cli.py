"""Command line: ``python -m mcihn {train, evaluate, extract, predict, experiment, robustness, bench, make-synthetic}``.

    python -m mcihn train --out runs/demo                     # embedded SYNTHETIC MOSI-shaped data, tiny preset
    python -m mcihn train --data MOSI/unaligned_50.pkl --out runs/mosi   # the real thing (auto preset: sizes from the data)
    python -m mcihn train --model tfn --out runs/tfn          # a baseline: tfn, lmf, mult, late
    python -m mcihn evaluate --checkpoint runs/mosi/seed_1111/best.pt --data MOSI/unaligned_50.pkl
    python -m mcihn extract --dataset-dir MOSI_raw --out mosi_clip.pkl       # raw clips -> MMSA pickle
    python -m mcihn predict --checkpoint runs/mosi/seed_1111/best.pt --video clip.mp4 --text "..."
    python -m mcihn experiment table2 --out runs/t2           # every Table 2 model over 5 seeds
    python -m mcihn robustness --checkpoint runs/t2/tfn/seed_1111/best.pt --out runs/t2/robust_tfn
    python -m mcihn bench --preset paper
"""
from __future__ import annotations

import argparse
import contextlib
import errno
import json
import math
import sys
import warnings
from pathlib import Path

from .model.config import MCIHNConfig
from .modalities import parse_modalities


# ----------------------------------------------------------------------------- option values, checked by argparse
def _int_from(lo: int):
    """argparse type: an integer >= lo (argparse names the option in its error)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {value}")
        return value
    parse.__name__ = f"integer >= {lo}"
    return parse


def _float_in(lo: float, hi: float = math.inf, lo_open: bool = False):
    """argparse type: a finite number in [lo, hi] (or (lo, hi] with ``lo_open``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not math.isfinite(value) or value < lo or value > hi or (lo_open and value == lo):
            bounds = f"{'>' if lo_open else '>='} {lo:g}" + (f" and <= {hi:g}" if hi < math.inf else "")
            raise argparse.ArgumentTypeError(f"must be a finite number {bounds}, got {text}")
        return value
    parse.__name__ = "number"
    return parse


def _modalities(text: str) -> str:
    """argparse type of --modalities: a non-empty subset of t, a, v, each letter once."""
    try:
        parse_modalities(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e).removeprefix("modalities: ")) from None
    return text


_modalities.__name__ = "modalities"


class _Seeds(argparse.Action):
    """--seeds: each seed once (a seed given twice would train the same run twice and report a spread of 0)."""

    def __call__(self, parser, namespace, values, option_string=None):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            parser.error(f"argument {option_string}: seed(s) {', '.join(map(str, twice))} given more than once; "
                         "each seed trains one run")
        setattr(namespace, self.dest, values)


POSITIVE_INT, COUNT = _int_from(1), _int_from(0)
POSITIVE, NON_NEGATIVE, RATE = _float_in(0, lo_open=True), _float_in(0), _float_in(0, 1)


def add_threads_arg(p) -> None:
    """``--threads N`` of every command that trains or extracts (applied by :func:`apply_threads`)."""
    p.add_argument("--threads", type=POSITIVE_INT, metavar="N",
                   help="torch CPU threads (default: OMP_NUM_THREADS if set, else 1 for the tiny preset and "
                        "one per physical core otherwise; see mcihn.utils.default_threads)")


def _threads_preset(a) -> str | None:
    """The preset a command will run, as far as the command line says (None: large models or unknown)."""
    if a.command in ("train", "experiment", "tune"):
        return a.preset or ("auto" if a.data else "tiny")
    if a.command == "bench":
        return a.preset
    return None


def apply_threads(a) -> int | None:
    """Set torch's CPU threads for command ``a`` (``--threads`` or the default); None if it has no such flag."""
    if not hasattr(a, "threads"):
        return None
    from .utils import set_threads
    a.threads = set_threads(a.threads, preset=_threads_preset(a))
    return a.threads


def _add_run_args(p, resume: str, out: str) -> None:
    """The options every command that trains over seeds shares (train, experiment)."""
    p.add_argument("--seeds", type=int, nargs="+", action=_Seeds, help="default: 1111 1112 1113 1114 1115 (as MMSA)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA only)")
    p.add_argument("--resume", action="store_true", help=resume)
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    add_threads_arg(p)
    p.add_argument("--out", required=True, help=out)


def _add_train(sub):
    p = sub.add_parser("train", help="train MCIHN (or a baseline) over several seeds and write DIR/results.json")
    p.add_argument("--model", default="mcihn", choices=MODEL_CHOICES,
                   help="mcihn (default) or a baseline: tfn, lmf, mult, late, selfmm, emt, cmhfm (see mcihn/baselines/)")
    p.add_argument("--data", help="MMSA pickle (unaligned_50.pkl, aligned_50.pkl, unaligned_39.pkl, or "
                                   "any file of that structure); without it, an embedded SYNTHETIC dataset is used")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: from the pickle)")
    p.add_argument("--modalities", type=_modalities,
                   help="non-empty subset of t (text), a (audio), v (vision); default tav")
    p.add_argument("--no-aae", action="store_true", help="ablation MCIHN-1: no adversarial autoencoders")
    p.add_argument("--no-cgmm", action="store_true", help="ablation MCIHN-2: no cross-modal gate, no MMD")
    p.add_argument("--preset", choices=PRESET_CHOICES,
                   help="auto: sizes from the training-set size and the suite's training recipe (default with --data); "
                        "paper: the paper's settings (Sec. 4.3); tiny: tests and the synthetic default")
    p.add_argument("--epochs", type=POSITIVE_INT, help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--patience", type=POSITIVE_INT, help="early-stopping patience in epochs")
    p.add_argument("--mmd-weight", type=NON_NEGATIVE, help="lambda in L = L_Mul + lambda L_Adp")
    p.add_argument("--mmd-samples", choices=["pooled", "tokens"],
                   help="MMD samples: utterance vectors (pooled, default) or all B*L latent vectors (tokens)")
    p.add_argument("--adv-lr-scale", type=NON_NEGATIVE,
                   help="learning-rate factor of the discriminator (and, with --schedule phases, generator) step "
                        "(default 1)")
    p.add_argument("--schedule", choices=["joint", "phases"],
                   help="Algorithm 1 per batch: joint (default: a discriminator step, then one Adam on L_Mul + lambda "
                        "L_Adp + w_rec L_AE + w_adv L_gen) or phases (four optimisers, one per phase)")
    p.add_argument("--adv-weight", type=NON_NEGATIVE, help="w_adv, weight of the generator loss (Eq. 5); default 0 (off: every positive weight lost on "
                        "validation, see the README); 0.1 is the best positive weight we measured")
    p.add_argument("--rec-weight", type=NON_NEGATIVE,
                   help="w_rec, weight of the reconstruction loss (Eq. 4) in the joint schedule; default 0.1")
    p.add_argument("--disc-samples", choices=["tokens", "pooled", "flat"],
                   help="what the discriminator scores against N(0, I): each latent vector (tokens, default), the "
                        "utterance vector (pooled) or the whole code (flat)")
    p.add_argument("--xi", choices=["orthogonal", "linear", "none"],
                   help="the MMD's shared layer xi: orthogonal (default; L_Adp cannot fall by collapsing it), linear "
                        "(free, as printed) or none")
    p.add_argument("--lr", type=POSITIVE, help="Adam learning rate of every module but a text encoder (paper: 1e-3)")
    p.add_argument("--batch-size", type=POSITIVE_INT, help="batch size (paper: 32)")
    p.add_argument("--text-encoder", metavar="NAME_OR_DIR",
                   help="fine-tune this BERT-family encoder inside the model (Sec. 4.3), on the pickle's token ids "
                        "(text_bert) or its raw_text: a hub name (bert-base-uncased, bert-base-chinese) or a local "
                        "folder; default: the pickle's frozen text features")
    p.add_argument("--text-lr", type=POSITIVE, help="learning rate of the text encoder (default 2e-5, the paper's)")
    p.add_argument("--params", metavar="BEST_JSON",
                   help="settings chosen by `tune` (its DIR/best.json); flags given here override them")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training steps (for CUDA; on the CPU it does not pay, see the README)")
    _add_run_args(p, resume="continue an interrupted run in --out", out="output folder")


def cmd_train(a) -> int:
    from .metrics import format_table
    from .training.runner import DEFAULT_SEEDS, run_experiment
    from .utils import OutLock, check_writable, resolve_device

    device = resolve_device(a.device)  # every option is checked before the data are loaded or anything written
    check_writable(a.out, "--out", folder=True)
    from .training.registry import default_preset
    # every option, --params included, is checked before the data are loaded ("auto" sizes come with the data)
    _train_config(a, a.preset or ("auto" if a.data else "tiny"))
    out = Path(a.out)
    with OutLock(out, "--out"):  # one writer per folder
        if not a.resume and out.exists() and any(out.glob("seed_*/last.pt")):
            print(f"error: {out} already holds a run; pass --resume to continue it, or choose another --out",
                  file=sys.stderr)
            return 2
        if a.data:
            from .data import load_mmsa
            data = load_mmsa(a.data, dataset=a.dataset)
        else:
            from .data import synthetic_data
            data = synthetic_data(kind=a.dataset or "mosi", seed=0)
        preset = a.preset or default_preset(data)
        cfg = _train_config(a, preset, n_train=len(data["train"]))
        print(f"data: {data.source}  [{data.dataset}; " + ", ".join(
            f"{s} {len(data[s])}" for s in data.splits) + "; " + ", ".join(
            f"{m} {T}x{D}" for m, (T, D) in data.dims.items()) + "]")
        if data.synthetic:
            print("NOTE: this is SYNTHETIC data with a planted structure (mcihn/data/synthetic.py), not CMU-MOSI or "
                  "CH-SIMS. Pass --data PATH/TO/unaligned_50.pkl for real results; see data/README.md.")
        print(f"model: {cfg.variant}, preset {cfg.preset} ({_sizes(cfg)}), "
              f"modalities {''.join(m[0] for m in cfg.modalities)}, max {cfg.epochs} epochs, patience {cfg.patience}")
        if device.type == "cpu" and getattr(a, "threads", None) is not None:
            print(f"torch CPU threads: {a.threads} (--threads N to change)")
        seeds = a.seeds or list(DEFAULT_SEEDS)
        res = run_experiment(data, cfg, seeds=seeds, out_dir=out, device=device, amp=a.amp, resume=a.resume,
                             progress=not a.quiet, compile=a.compile)
    rows = {f"seed {r['seed']} (epoch {r['best_epoch']})": r["test"] for r in res["per_seed"]}
    rows[f"{cfg.variant} mean"] = res["mean"]
    print(f"\nTest metrics ({data.dataset}{', SYNTHETIC data' if data.synthetic else ''}; "
          "epochs chosen on validation):")
    print(format_table(rows, data.dataset, std={f"{cfg.variant} mean": res["std"]}))
    print(f"\nwrote {out / 'results.json'}")
    return 0


#: Names of ``mcihn.data.mmsa.LABEL_RANGE`` (a test keeps them in step; kept here so that argparse runs before torch loads).
DATASET_CHOICES = ("mosi", "mosei", "sims")
#: Names of ``mcihn.training.registry.MODELS`` (a test keeps the two in step; importing the registry here would load torch
#: before argparse has even checked the command line).
MODEL_CHOICES = ("mcihn", "tfn", "lmf", "mult", "late", "selfmm", "emt", "cmhfm")
#: Names of ``mcihn.model.config.PRESETS`` (kept in step by the same test).
PRESET_CHOICES = ("auto", "paper", "tiny")
#: train options that only MCIHN has: option attribute -> flag.
MCIHN_ONLY = {"no_aae": "--no-aae", "no_cgmm": "--no-cgmm", "mmd_weight": "--mmd-weight",
              "mmd_samples": "--mmd-samples", "adv_lr_scale": "--adv-lr-scale", "schedule": "--schedule",
              "adv_weight": "--adv-weight", "rec_weight": "--rec-weight", "disc_samples": "--disc-samples", "xi": "--xi"}


def _train_config(a, preset: str, n_train: int | None = None):
    """The config that ``train`` asks for: MCIHN with its switches, or a baseline (``--model``), starting
    from the settings of ``--params`` (a tune's best.json) when given."""
    tuned = {}
    if a.params:
        from .experiments.tune import read_params
        tuned = read_params(a.params, a.model)  # keys, types and values checked, naming the file
    from_params = tuned.pop("modalities", None)
    modalities = parse_modalities(a.modalities if a.modalities is not None else from_params or "tav")
    training = {**tuned, **{k: v for k, v in dict(epochs=a.epochs, patience=a.patience, lr=a.lr,
                                                   batch_size=a.batch_size, text_encoder=a.text_encoder,
                                                   text_lr=a.text_lr).items() if v is not None}}
    if a.model == "mcihn":
        extra = {k: getattr(a, k) for k in ("mmd_weight", "mmd_samples", "adv_lr_scale", "schedule", "adv_weight",
                                             "rec_weight", "disc_samples", "xi") if getattr(a, k) is not None}
        return MCIHNConfig.from_preset(preset, n_train=n_train, modalities=modalities, use_aae=not a.no_aae,
                                       use_cgmm=not a.no_cgmm, **{**training, **extra})
    used = [flag for attr, flag in MCIHN_ONLY.items() if getattr(a, attr) not in (None, False)]
    if used:
        raise ValueError(f"{', '.join(used)}: option(s) of MCIHN, not of --model {a.model}")
    from .training.registry import make_config
    return make_config(a.model, preset, n_train=n_train, modalities=modalities, **training)


def _sizes(cfg) -> str:
    """The model sizes of a config, for the log line: "L=8, d=32, heads=4" or "text_dim=16, ..."."""
    if isinstance(cfg, MCIHNConfig):
        return f"L={cfg.latent_len}, d={cfg.latent_dim}, heads={cfg.heads}"
    from .baselines.common import BaselineConfig
    shared = {f for f in BaselineConfig.__dataclass_fields__}
    return ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k not in shared)


def cmd_evaluate(a) -> int:
    from .metrics import format_table
    from .training.runner import evaluate_checkpoint
    from .utils import atomic_write_json, check_writable

    stem = Path(a.data).stem if a.data else "synthetic"
    out = Path(a.out) if a.out else Path(a.checkpoint).with_name(f"eval_{stem}_{a.split}.json")
    check_writable(out, "--out", folder=False)
    metrics = evaluate_checkpoint(a.checkpoint, a.data, split=a.split, dataset=a.dataset, device=a.device)
    print(format_table({f"{Path(a.checkpoint).name} on {a.split}": metrics}, a.dataset or _dataset_of(metrics)))
    atomic_write_json(out, {"checkpoint": str(a.checkpoint), "data": str(a.data) if a.data else "SYNTHETIC (embedded)",
                            "split": a.split, "metrics": metrics})
    print(f"wrote {out}")
    return 0


def _dataset_of(metrics: dict) -> str:
    return "sims" if "Mult_acc_3" in metrics else "mosi"


def _add_experiment(sub):
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
    g.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                   help="config overrides of MCIHN's row, as an extra row named by them (e.g. --set lr=3e-4)")
    _add_run_args(p, resume="continue an interrupted table run in --out", out="output folder (one sub-folder per model)")


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


def cmd_suite(a) -> int:
    from .experiments.suite import default_rows, parse_entries, run_suite
    from .training.registry import config_class, model_kind

    if a.data:
        raise SystemExit("error: experiment suite takes its data sets from --entries, not --data")
    try:
        entries = parse_entries(a.entries)
        sets = _parse_sets(a.set)
        if sets:
            import dataclasses
            known = {f.name for f in dataclasses.fields(config_class("mcihn"))}
            unknown = sorted(set(sets) - known)
            if unknown:
                raise ValueError(f"--set {unknown[0]}=...: MCIHN has no setting {unknown[0]!r} (see MCIHNConfig)")
            config_class("mcihn").paper(**sets)  # check the values before any training
    except (ValueError, TypeError) as e:
        raise SystemExit(f"error: {e}")
    models = a.models or ["mcihn", "tfn"]
    variants = [("MCIHN " + " ".join(a.set), "mcihn", sets)] if sets else []
    rows = default_rows(models=models, mmsa=a.mmsa, variants=variants)
    from .utils import OutLock, check_writable
    check_writable(a.out, "--out", folder=True)
    with OutLock(a.out, "--out"):
        res = run_suite(a.out, entries, rows, seeds=a.seeds or (1111, 1112, 1113, 1114, 1115), shared=a.shared,
                        resume=a.resume)
    print(res.to_markdown("test"))
    print(f"wrote {a.out}/suite.md, valid.md, suite.json" + (f"; not run: {', '.join(res.errors)}" if res.errors else ""))
    return 0


def cmd_experiment(a) -> int:
    import time

    if a.table == "suite":
        return cmd_suite(a)
    from .experiments.tables import TABLES, resolve_data, run_table
    from .training.runner import DEFAULT_SEEDS
    from .utils import OutLock, check_writable, resolve_device

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


def _add_tune(sub):
    p = sub.add_parser("tune", help="hyper-parameter search with Optuna on the VALIDATION split (test is not loaded)")
    p.add_argument("--data", help="MMSA pickle; without it, the embedded SYNTHETIC dataset")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: from the pickle)")
    p.add_argument("--model", default="mcihn", choices=MODEL_CHOICES, help="model to tune (default mcihn)")
    p.add_argument("--preset", choices=PRESET_CHOICES, help="default: auto with --data, tiny on synthetic data")
    p.add_argument("--modalities", type=_modalities, default="tav", help="non-empty subset of t, a, v")
    p.add_argument("--text-encoder", metavar="NAME_OR_DIR", help="fine-tune this text encoder (see train)")
    p.add_argument("--trials", type=POSITIVE_INT, default=20, help="trials in the study in all (a rerun adds what is missing)")
    p.add_argument("--seeds", type=int, nargs="+", action=_Seeds, default=[1111, 1112],
                   help="seeds per trial; the value is their mean validation MAE")
    p.add_argument("--epochs", type=POSITIVE_INT, help="maximum epochs per run (early stopping may end sooner)")
    p.add_argument("--storage", help="Optuna storage URL (default sqlite:///DIR/study.db); several processes or "
                                     "machines with the same URL and --study-name share one study (postgresql://... "
                                     "needs pip install -e \".[tune-db]\")")
    p.add_argument("--study-name", help="default: MODEL-PRESET")
    p.add_argument("--sampler-seed", type=int, metavar="N",
                   help="seed of this worker's TPE sampler, plus the trials the study holds (default: random; each "
                        "worker draws other settings)")
    p.add_argument("--heartbeat", type=POSITIVE_INT, default=60, metavar="SECONDS",
                   help="a running trial's heartbeat period; a trial silent for 3 periods (a killed worker) is marked "
                        "failed and run again by another worker (default 60)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--quiet", action="store_true", help="no line per trial")
    add_threads_arg(p)
    p.add_argument("--out", required=True, help="output folder: study.db, trials.csv, best.json (one per worker)")


def cmd_tune(a) -> int:
    from .experiments.tables import resolve_data
    from .experiments.tune import HEARTBEAT_S, check_storage, open_storage, tune
    from .training.registry import default_preset, make_config
    from .utils import OutLock, check_writable, resolve_device

    device = resolve_device(a.device)  # every option is checked before the data are loaded or anything written
    check_writable(a.out, "--out", folder=True)
    overrides = {"modalities": a.modalities, **({"epochs": a.epochs} if a.epochs else {}),
                 **({"text_encoder": a.text_encoder} if a.text_encoder else {})}
    make_config(a.model, a.preset or ("auto" if a.data else "tiny"), **overrides)
    if a.storage:
        check_storage(a.storage)
    out = Path(a.out)
    with OutLock(out, "--out"):
        url = a.storage or f"sqlite:///{(out / 'study.db').resolve()}"
        storage = open_storage(url, a.heartbeat or HEARTBEAT_S)
        data = resolve_data(a.data, a.dataset)
        if data.synthetic:
            print("NOTE: SYNTHETIC data with a planted structure (mcihn/data/synthetic.py), not CMU-MOSI or CH-SIMS.")
        preset = a.preset or default_preset(data)
        study = tune(data, out, model=a.model, preset=preset, trials=a.trials, seeds=a.seeds, storage=storage,
                     study_name=a.study_name, overrides=overrides, device=device, sampler_seed=a.sampler_seed,
                     progress=not a.quiet)
    best = json.loads((out / "best.json").read_text()) if (out / "best.json").exists() else None
    if best is None:
        print(f"no finished trial yet; wrote {out / 'trials.csv'}")
        return 0
    print(f"best trial {best['trial']}: validation MAE {best['value']:.4f} with {best['params']} "
          f"({best['finished_trials']} finished trial(s))")
    print(f"wrote {out / 'best.json'} and trials.csv; train it with: python -m mcihn train "
          f"{'--data ' + a.data + ' ' if a.data else ''}--params {out / 'best.json'} --out DIR")
    return 0


def _add_robustness(sub):
    p = sub.add_parser("robustness", help="a trained model with each modality dropped and with a growing share "
                                          "of time steps missing; writes DIR/robustness.json and .png")
    p.add_argument("--checkpoint", required=True, help="best.pt of any model (mcihn, tfn, lmf, mult, late, selfmm, emt, cmhfm)")
    p.add_argument("--data", help="MMSA pickle (default: the embedded synthetic data, if the model was trained on it)")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: from the pickle)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="split to score (default test)")
    p.add_argument("--rates", type=RATE, nargs="+", help="missing rates in [0, 1] (default 0, 0.1, ..., 1)")
    p.add_argument("--repeats", type=POSITIVE_INT, default=3, help="random draws per rate, averaged")
    p.add_argument("--seed", type=int, default=0, help="seed of the random missing steps")
    p.add_argument("--metric", default="MAE", help="metric plotted (any key of the metrics, default MAE)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    add_threads_arg(p)
    p.add_argument("--out", required=True, help="output folder")


def cmd_robustness(a) -> int:
    from .metrics import METRIC_KEYS
    from .utils import OutLock, check_writable

    out = Path(a.out)
    check_writable(out, "--out", folder=True)
    known = sorted({k for keys in METRIC_KEYS.values() for k in keys})
    if a.metric not in known:  # before the model is scored (which metrics a dataset has is checked after)
        raise ValueError(f"--metric {a.metric}: not a metric; choose from {known}")
    with OutLock(out, "--out"):
        return _robustness(a, out)


def _robustness(a, out: Path) -> int:
    from .experiments.robustness import DEFAULT_RATES, evaluate_robustness, plot_robustness
    from .utils import atomic_write_bytes, atomic_write_json

    res = evaluate_robustness(a.checkpoint, a.data, split=a.split, dataset=a.dataset,
                              rates=a.rates if a.rates else DEFAULT_RATES, repeats=a.repeats, seed=a.seed,
                              device=a.device)
    if a.metric not in res["metrics"]:
        raise ValueError(f"--metric {a.metric}: not a metric of {res['dataset']}; choose from {sorted(res['metrics'])}")
    print(f"{res['variant']} on {res['split']} ({'SYNTHETIC ' if res['synthetic'] else ''}{res['dataset']}), "
          f"{a.metric}:")
    print("  all present      " + f"{res['full'][a.metric]:.4f}")
    for m, metrics in res["dropped"].items():
        print(f"  {m + ' dropped':<16} {metrics[a.metric]:.4f}")
    for r, v in zip(res["rates"], res["metrics"][a.metric]):
        print(f"  missing rate {r:<4g} " + ("-" if v is None else f"{v:.4f}"))
    auc = res["auc"][a.metric]
    print("  area under the curve " + ("undefined" if auc is None else f"{auc:.4f}"))
    import io

    import matplotlib.pyplot as plt
    fig = plot_robustness(res, metric=a.metric)
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(out / "robustness.png", png.getvalue())  # the figure first, the JSON last: both or neither
    try:
        atomic_write_json(out / "robustness.json", res)
    except BaseException:
        (out / "robustness.png").unlink(missing_ok=True)
        raise
    print(f"wrote {out / 'robustness.json'}, {out / 'robustness.png'}")
    return 0


def cmd_bench(a) -> int:
    from .bench import run_bench, run_extract_bench
    from .utils import check_writable

    if a.out:
        check_writable(a.out, "--out", folder=False)
    if a.extract:
        res = run_extract_bench(size=a.preset, n_clips=a.clips, device=a.device, batch_size=min(a.batch_size, 8))
        if a.out:
            from .utils import atomic_write_json
            atomic_write_json(a.out, res)
        return 0
    res = run_bench(preset=a.preset, device=a.device, batch_size=a.batch_size, steps=a.steps,
                    amp=a.amp, threads=a.threads, mmd_samples=a.mmd_samples, compile=a.compile)
    if a.out:
        from .utils import atomic_write_json
        atomic_write_json(a.out, res)
    return 0


def cmd_make_synthetic(a) -> int:
    from .data import PAPER_DIMS, write_synthetic
    from .utils import check_writable

    check_writable(a.out, "--out", folder=False)
    if a.paper_dims and a.mmsa_dims:
        raise ValueError("--paper-dims and --mmsa-dims: choose one")
    dims = PAPER_DIMS if a.paper_dims else "mmsa" if a.mmsa_dims else None
    path = write_synthetic(a.out, kind=a.kind, seed=a.seed, dims=dims, noise=a.noise)
    print(f"wrote SYNTHETIC {a.kind.upper()}-shaped data to {path}")
    return 0


def _add_extract(sub):
    from .extraction.features import DEFAULT_MODELS
    p = sub.add_parser("extract", help="raw clips (label.csv + Raw/<video>/<clip>.mp4) -> an MMSA pickle, "
                                       "with CLIP / BERT / wav2vec2")
    p.add_argument("--dataset-dir", required=True, help="folder with label.csv and Raw/ (the MMSA-FET layout)")
    p.add_argument("--modalities", type=_modalities, default="tav",
                   help="what to extract, a subset of t, a, v (default tav); t alone needs no Raw/ folder, only the "
                        "transcripts of label.csv")
    p.add_argument("--out", required=True, help="output pickle (train with: python -m mcihn train --data OUT)")
    p.add_argument("--language", default="en", choices=["en", "zh"], help="picks the default text and audio models")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range (default: sims when label_T/A/V exist)")
    p.add_argument("--vision-model", help=f"hub name or local folder (default {DEFAULT_MODELS['vision']['en']})")
    p.add_argument("--text-model", help="default bert-base-uncased (en), bert-base-chinese (zh)")
    p.add_argument("--audio-model", help=f"default {DEFAULT_MODELS['audio']['en']} (en), "
                                         f"{DEFAULT_MODELS['audio']['zh']} (zh)")
    p.add_argument("--frames", type=POSITIVE_INT, default=10, help="video frames sampled evenly per clip (T_v)")
    p.add_argument("--text-len", type=POSITIVE_INT, default=36, help="BERT tokens incl. [CLS]/[SEP] (T_t)")
    p.add_argument("--audio-len", type=POSITIVE_INT, default=128, help="wav2vec2 frames (T_a)")
    p.add_argument("--audio-layer", default="conv", choices=["conv", "transformer"],
                   help="conv: the 512-d feature encoder output (the paper's size); transformer: last hidden states")
    p.add_argument("--audio-fit", default="resample", choices=["resample", "truncate"],
                   help="audio longer than --audio-len: resample the whole clip, or keep the beginning")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=16, help="clips per forward pass")
    p.add_argument("--workers", type=COUNT, default=2, help="threads decoding video / audio ahead of the encoders")
    p.add_argument("--on-error", default="fail", choices=["fail", "skip"],
                   help="a bad clip (missing/corrupt file, empty text) stops the run, or is reported and skipped")
    p.add_argument("--cache-dir", help="per-clip cache for resuming (default OUT.cache)")
    p.add_argument("--keep-cache", action="store_true", help="keep the per-clip cache after success")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_threads_arg(p)


def cmd_extract(a) -> int:
    from .extraction.dataset import extract_dataset
    from .extraction.features import ExtractionConfig
    from .utils import check_writable, resolve_device

    check_writable(a.out, "--out", folder=False)
    if a.cache_dir:
        check_writable(a.cache_dir, "--cache-dir", folder=True)
    cfg = ExtractionConfig(language=a.language, vision_model=a.vision_model, text_model=a.text_model,
                           audio_model=a.audio_model, frames=a.frames, text_len=a.text_len, audio_len=a.audio_len,
                           audio_layer=a.audio_layer, audio_fit=a.audio_fit, batch_size=a.batch_size,
                           modalities=parse_modalities(a.modalities))
    s = extract_dataset(a.dataset_dir, a.out, cfg, device=resolve_device(a.device), dataset=a.dataset,
                        on_error=a.on_error, cache_dir=a.cache_dir, keep_cache=a.keep_cache, progress=not a.quiet,
                        workers=a.workers)
    rate = f", {s['clips_per_s']} clips/s" if s["clips_per_s"] else ""
    print(f"wrote {s['out']} ({s['dataset']}): " + ", ".join(f"{k} {v}" for k, v in s["splits"].items())
          + f"; {s['extracted']} extracted, {s['from_cache']} from the cache, {len(s['skipped'])} skipped"
          + f" in {s['seconds']:.1f} s{rate}")
    for kind in ("no_audio", "no_video"):
        if s[kind]:
            print(f"  {len(s[kind])} clip(s) without {kind[3:]} (zero features, length 0): {', '.join(s[kind][:10])}"
                  + (" ..." if len(s[kind]) > 10 else ""))
    for sk in s["skipped"]:
        print(f"  skipped {sk['id']} (label.csv line {sk['line']}): {sk['reason']}")
    return 0


def _add_predict(sub):
    p = sub.add_parser("predict", help="sentiment of one raw clip with a trained checkpoint")
    p.add_argument("--checkpoint", required=True, help="e.g. runs/mosi/seed_1111/best.pt")
    p.add_argument("--video", required=True, help="the clip (mp4 or any FFmpeg format)")
    p.add_argument("--text", required=True, help="its transcript")
    p.add_argument("--language", choices=["en", "zh"], help="default: the checkpoint's training data")
    p.add_argument("--vision-model", help="default: the encoder the training pickle records, else the paper's")
    p.add_argument("--text-model", help="as --vision-model (a fine-tuned checkpoint uses its own tokenizer)")
    p.add_argument("--audio-model", help="as --vision-model")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    add_threads_arg(p)


def cmd_predict(a) -> int:
    from .extraction.predict import predict_clip

    r = predict_clip(a.checkpoint, a.video, a.text, device=a.device, language=a.language,
                     vision_model=a.vision_model, text_model=a.text_model, audio_model=a.audio_model)
    if a.json:
        print(json.dumps(r, indent=2))
    else:
        print(f"{a.video}: sentiment {r['score']:+.3f} ({r['polarity']}; {r['dataset'].upper()} scale)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m mcihn", description="MCIHN multimodal sentiment analysis")
    sub = ap.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_extract(sub)
    _add_predict(sub)
    _add_experiment(sub)
    _add_robustness(sub)
    _add_tune(sub)
    p = sub.add_parser("evaluate", help="metrics of a saved checkpoint on one split of a pickle")
    p.add_argument("--checkpoint", required=True, help="a best.pt (or last.pt) written by train")
    p.add_argument("--data", help="MMSA pickle; without it, the embedded SYNTHETIC dataset (as train uses)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="split to score (default test)")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: the checkpoint's)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    add_threads_arg(p)
    p.add_argument("--out", help="metrics JSON (default: next to the checkpoint)")
    p = sub.add_parser("bench", help="training throughput, peak memory and model-FLOP utilisation")
    p.add_argument("--preset", default="paper", choices=["paper", "tiny"], help="model sizes to time (default paper)")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1, ...")
    p.add_argument("--batch-size", type=POSITIVE_INT, default=32, help="batch size (default 32)")
    p.add_argument("--steps", type=POSITIVE_INT, default=10, help="timed training steps (after warm-up)")
    add_threads_arg(p)
    p.add_argument("--amp", action="store_true", help="bfloat16 mixed precision (CUDA only)")
    p.add_argument("--compile", action="store_true", help="torch.compile the training step (compilation timed apart)")
    p.add_argument("--mmd-samples", default="pooled", choices=["pooled", "tokens"], help="MMD samples: utterance vectors or all latent vectors")
    p.add_argument("--out", help="also write the figures as JSON")
    p.add_argument("--extract", action="store_true",
                   help="benchmark feature extraction instead (clips/s; --preset paper = full-size random encoders)")
    p.add_argument("--clips", type=POSITIVE_INT, default=24, help="with --extract: generated clips (4 s, 320x240, 25 fps)")
    p = sub.add_parser("make-synthetic", help="write the synthetic dataset as an MMSA-format pickle")
    p.add_argument("--out", required=True, help="output pickle")
    p.add_argument("--kind", default="mosi", choices=DATASET_CHOICES, help="which dataset's shape, label range and split sizes")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated data (0 is what train uses without --data)")
    p.add_argument("--noise", type=NON_NEGATIVE, default=1.5, help="feature noise (>= 0)")
    p.add_argument("--paper-dims", action="store_true", help="the paper's sizes: text 36x768, audio 128x512, vision 10x512")
    p.add_argument("--mmsa-dims", action="store_true",
                   help="the sizes of MMSA's pickle of --kind (MOSEI: text 50x768, audio 500x74, vision 375x35; ~5.8 GB)")
    return ap


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "bench": cmd_bench, "make-synthetic": cmd_make_synthetic,
            "extract": cmd_extract, "predict": cmd_predict}
COMMANDS.update({"experiment": cmd_experiment, "robustness": cmd_robustness, "tune": cmd_tune})


class Terminated(KeyboardInterrupt):
    """SIGTERM (what ``timeout``, Slurm and ``docker stop`` send), raised in the main thread as a Ctrl-C is."""


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """While a command runs, SIGTERM raises :class:`Terminated` (once: a second one during the clean-up is ignored)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise Terminated()

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _on_interrupt(a) -> str:
    """What a Ctrl-C or SIGTERM leaves behind, and how to go on (one line)."""
    if a.command in ("train", "experiment"):
        return (f"finished epochs are saved under {a.out} (seed_*/last.pt); run the same command with --resume "
                "to continue")
    if a.command == "tune":
        return (f"finished trials are kept in the study and listed in {Path(a.out) / 'trials.csv'} (best.json: the "
                "best so far); run the same command again to continue: the interrupted trial is run again")
    if a.command == "extract":
        cache = a.cache_dir or f"{a.out}.cache"
        return f"finished clips are cached in {cache}; run the same command again to continue"
    return "nothing was written"


def _on_disk_full(a) -> str:
    """How to go on after a write failed for want of space (one line)."""
    if a.command in ("train", "experiment"):
        return "free some space, then run the same command with --resume: the finished epochs are kept"
    if a.command == "tune":
        return "free some space, then run the same command again: the finished trials are kept in the study"
    if a.command == "extract":
        return "free some space, then run the same command again: the finished clips are cached"
    return "free some space and run the command again; no half-written file was left"


def _print_warning(message, category, filename, lineno, file=None, line=None):
    """Warnings as one line ("warning: FILE: split 'test', field 'id': ..."), without Python's source line."""
    print(f"warning: {message}", file=sys.stderr)


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    from .data import DataFormatError
    from .training.trainer import NonFiniteLossError
    with warnings.catch_warnings(), _sigterm_as_interrupt():
        warnings.showwarning = _print_warning
        try:
            apply_threads(a)
            return COMMANDS[a.command](a)
        except NonFiniteLossError as e:
            print(f"training stopped: {e}", file=sys.stderr)
            return 3
        except OSError as e:
            if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
                print(f"error: no space left on device while writing {e.filename or 'a file'}; {_on_disk_full(a)}",
                      file=sys.stderr)
            else:
                print(f"error: {e}", file=sys.stderr)
            return 2
        except (DataFormatError, ValueError) as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except Terminated:
            print(f"\nterminated (SIGTERM): {_on_interrupt(a)}", file=sys.stderr)
            return 143
        except KeyboardInterrupt:
            print(f"\ninterrupted: {_on_interrupt(a)}", file=sys.stderr)
            return 130


if __name__ == "__main__":
    sys.exit(main())
