"""``train`` (MCIHN or a baseline over several seeds) and ``evaluate`` (a saved checkpoint on one split)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..data.normalize import ZSCORE_RULES
from ..modalities import parse_modalities
from ..model.config import MCIHNConfig
from ..model.linear_path import LINEAR_INITS
from ..training.registry import MODEL_KINDS
from .options import (BASELINES, DATASET_CHOICES, NON_NEGATIVE, POSITIVE, POSITIVE_INT, PRESET_CHOICES, RATE,
                      add_run_args, add_threads_arg, modalities_arg)


# ----------------------------------------------------------------------------- train
def add_train(sub):
    p = sub.add_parser("train", help="train MCIHN (or a baseline) over several seeds and write DIR/results.json")
    p.add_argument("--model", default="mcihn", choices=MODEL_KINDS,
                   help=f"mcihn (default) or a baseline: {BASELINES} (see mcihn/baselines/)")
    p.add_argument("--data", help="MMSA pickle (unaligned_50.pkl, aligned_50.pkl, unaligned_39.pkl, or "
                                   "any file of that structure); without it, an embedded SYNTHETIC dataset is used")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: from the pickle)")
    p.add_argument("--modalities", type=modalities_arg,
                   help="non-empty subset of t (text), a (audio), v (vision); default tav")
    p.add_argument("--no-aae", action="store_true", help="ablation MCIHN-1: no adversarial autoencoders")
    p.add_argument("--no-cgmm", action="store_true", help="ablation MCIHN-2: no cross-modal gate, no MMD")
    p.add_argument("--preset", choices=PRESET_CHOICES,
                   help="auto: sizes from the training-set size and the suite's training recipe (default with --data); "
                        "paper: the paper's settings (Sec. 4.3); tiny: tests and the synthetic default")
    p.add_argument("--epochs", type=POSITIVE_INT, help="maximum epochs (early stopping may end sooner)")
    p.add_argument("--patience", type=POSITIVE_INT, help="early-stopping patience in epochs")
    p.add_argument("--mmd-weight", type=NON_NEGATIVE, help="lambda in L = L_Mul + lambda L_Adp")
    p.add_argument("--missing-aug", type=RATE,
                   help="addition: probability per training clip and modality that its input is made missing for the "
                        "task loss (whole or a random share of its steps set to the training mean); default 0.5, 0 = off as in the paper")
    p.add_argument("--linear-path", choices=["on", "off"],
                   help="addition: a linear regression on the time-averaged inputs, added to the prediction (wide "
                        "and deep; mcihn/model/linear_path.py); default on with the auto preset, off with paper (as "
                        "the paper) and tiny")
    p.add_argument("--linear-init", choices=LINEAR_INITS,
                   help="addition: how the linear path starts: auto (default with the auto preset: one run from zero "
                        "and one from the ridge regression kept fixed, the lower validation MAE kept; twice the "
                        "training time), zero, ridge, ridge_frozen (mcihn/training/starts.py)")
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
    p.add_argument("--zscore", choices=ZSCORE_RULES,
                   help="which features are z-scored with train-split statistics: auto (default: all but the text of "
                        "real data, a pretrained encoder's states, which is only centred) or all")
    p.add_argument("--text-encoder", metavar="NAME_OR_DIR",
                   help="fine-tune this BERT-family encoder inside the model (Sec. 4.3), on the pickle's token ids "
                        "(text_bert) or its raw_text: a hub name (bert-base-uncased, bert-base-chinese) or a local "
                        "folder; default: the pickle's frozen text features")
    p.add_argument("--text-lr", type=POSITIVE, help="learning rate of the text encoder (default 2e-5, the paper's)")
    p.add_argument("--params", metavar="BEST_JSON",
                   help="settings chosen by `tune` (its DIR/best.json); flags given here override them")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training steps (for CUDA; on the CPU it does not pay, see the README)")
    add_run_args(p, resume="continue an interrupted run in --out", out="output folder")


#: train options that only MCIHN has: option attribute -> flag.
MCIHN_ONLY = {"no_aae": "--no-aae", "no_cgmm": "--no-cgmm", "mmd_weight": "--mmd-weight",
              "mmd_samples": "--mmd-samples", "adv_lr_scale": "--adv-lr-scale", "schedule": "--schedule",
              "adv_weight": "--adv-weight", "rec_weight": "--rec-weight", "disc_samples": "--disc-samples", "xi": "--xi",
              "missing_aug": "--missing-aug", "linear_path": "--linear-path", "linear_init": "--linear-init"}


def cmd_train(a) -> int:
    from ..metrics import format_table, metric_legend
    from ..training.runner import DEFAULT_SEEDS, holds_runs, run_experiment
    from ..utils import OutLock, check_writable, resolve_device

    device = resolve_device(a.device)  # every option is checked before the data are loaded or anything written
    check_writable(a.out, "--out", folder=True)
    from ..training.registry import default_preset
    # every option, --params included, is checked before the data are loaded ("auto" sizes come with the data)
    _train_config(a, a.preset or ("auto" if a.data else "tiny"))
    out = Path(a.out)
    with OutLock(out, "--out"):  # one writer per folder
        if not a.resume and out.exists() and holds_runs(out):
            print(f"error: {out} already holds a run; pass --resume to continue it, or choose another --out",
                  file=sys.stderr)
            return 2
        if a.data:
            from ..data import load_mmsa
            data = load_mmsa(a.data, dataset=a.dataset)
        else:
            from ..data import synthetic_data
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
                             progress=not a.quiet, compile=a.compile, legend=True)
    rows = {f"seed {r['seed']} (epoch {r['best_epoch']}" + (f", start {r['start']}" if "start" in r else "") + ")":
            r["test"] for r in res["per_seed"]}
    rows[f"{cfg.variant} mean"] = res["mean"]
    print(f"\nTest metrics ({data.dataset}{', SYNTHETIC data' if data.synthetic else ''}; "
          "epochs chosen on validation):")
    print(metric_legend(data.dataset) + "; (↑) higher is better, (↓) lower")
    print(format_table(rows, data.dataset, std={f"{cfg.variant} mean": res["std"]}))
    print(f"\nwrote {out / 'results.json'}")
    return 0


def _train_config(a, preset: str, n_train: int | None = None):
    """The config that ``train`` asks for: MCIHN with its switches, or a baseline (``--model``), starting
    from the settings of ``--params`` (a tune's best.json) when given."""
    tuned = {}
    if a.params:
        from ..experiments.tune import read_params
        tuned = read_params(a.params, a.model)  # keys, types and values checked, naming the file
    from_params = tuned.pop("modalities", None)
    modalities = parse_modalities(a.modalities if a.modalities is not None else from_params or "tav")
    training = {**tuned, **{k: v for k, v in dict(epochs=a.epochs, patience=a.patience, lr=a.lr,
                                                   batch_size=a.batch_size, text_encoder=a.text_encoder,
                                                   text_lr=a.text_lr, zscore=a.zscore).items() if v is not None}}
    if a.model == "mcihn":
        extra = {k: getattr(a, k) for k in ("mmd_weight", "mmd_samples", "adv_lr_scale", "schedule", "adv_weight",
                                             "rec_weight", "disc_samples", "xi", "missing_aug", "linear_init")
                 if getattr(a, k) is not None}
        if a.linear_path is not None:
            extra["linear_path"] = a.linear_path == "on"
        return MCIHNConfig.from_preset(preset, n_train=n_train, modalities=modalities, use_aae=not a.no_aae,
                                       use_cgmm=not a.no_cgmm, **{**training, **extra})
    used = [flag for attr, flag in MCIHN_ONLY.items() if getattr(a, attr) not in (None, False)]
    if used:
        raise ValueError(f"{', '.join(used)}: option(s) of MCIHN, not of --model {a.model}")
    from ..training.registry import make_config
    return make_config(a.model, preset, n_train=n_train, modalities=modalities, **training)


def _sizes(cfg) -> str:
    """The model sizes of a config, for the log line: "L=8, d=32, heads=4" or "text_dim=16, ..."."""
    if isinstance(cfg, MCIHNConfig):
        return f"L={cfg.latent_len}, d={cfg.latent_dim}, heads={cfg.heads}"
    from ..baselines.common import BaselineConfig
    shared = {f for f in BaselineConfig.__dataclass_fields__}
    return ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k not in shared)


# ----------------------------------------------------------------------------- evaluate
def add_evaluate(sub):
    p = sub.add_parser("evaluate", help="metrics of a saved checkpoint on one split of a pickle")
    p.add_argument("--checkpoint", required=True, help="a best.pt (or last.pt) written by train")
    p.add_argument("--data", help="MMSA pickle; without it, the embedded SYNTHETIC dataset (as train uses)")
    p.add_argument("--split", default="test", choices=["train", "valid", "test"], help="split to score (default test)")
    p.add_argument("--dataset", choices=DATASET_CHOICES, help="label range and metrics (default: the checkpoint's)")
    p.add_argument("--device", default="cpu", help="cpu (default), cuda, auto")
    add_threads_arg(p)
    p.add_argument("--out", help="metrics JSON (default: next to the checkpoint)")


def cmd_evaluate(a) -> int:
    from ..metrics import format_table
    from ..training.runner import evaluate_checkpoint
    from ..utils import atomic_write_json, check_writable

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
