"""``tune``: a hyper-parameter search with Optuna on the validation split."""
from __future__ import annotations

import json
from pathlib import Path

from ..training.registry import MODEL_KINDS
from .options import DATASET_CHOICES, POSITIVE_INT, PRESET_CHOICES, Seeds, add_threads_arg, modalities_arg


def add_tune(sub):
    p = sub.add_parser("tune", help="hyper-parameter search with Optuna on the VALIDATION split (test is not loaded)")
    p.add_argument("--data", help="MMSA pickle; without it, the embedded SYNTHETIC dataset")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: from the pickle)")
    p.add_argument("--model", default="mcihn", choices=MODEL_KINDS, help="model to tune (default mcihn)")
    p.add_argument("--preset", choices=PRESET_CHOICES, help="default: auto with --data, tiny on synthetic data")
    p.add_argument("--modalities", type=modalities_arg, default="tav", help="non-empty subset of t, a, v")
    p.add_argument("--text-encoder", metavar="NAME_OR_DIR", help="fine-tune this text encoder (see train)")
    p.add_argument("--trials", type=POSITIVE_INT, default=20, help="trials in the study in all (a rerun adds what is missing)")
    p.add_argument("--seeds", type=int, nargs="+", action=Seeds, default=[1111, 1112],
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
    from ..experiments.tables import resolve_data
    from ..experiments.tune import HEARTBEAT_S, check_storage, open_storage, tune
    from ..training.registry import default_preset, make_config
    from ..utils import OutLock, check_writable, resolve_device

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
