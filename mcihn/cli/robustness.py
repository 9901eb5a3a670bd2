"""``robustness``: a trained model with each modality dropped and with a growing share of time steps missing."""
from __future__ import annotations

from pathlib import Path

from ..training.registry import MODEL_KINDS
from .options import DATASET_CHOICES, POSITIVE_INT, RATE, add_threads_arg


def add_robustness(sub):
    p = sub.add_parser("robustness", help="a trained model with each modality dropped and with a growing share "
                                          "of time steps missing; writes DIR/robustness.json and .png")
    p.add_argument("--checkpoint", required=True, nargs="+",
                   help=f"best.pt of any model ({', '.join(MODEL_KINDS)}); several seeds of one model give the mean "
                        "and std over seeds (EMT-DLFR's AUILC protocol), e.g. runs/x/seed_*/best.pt")
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
    from ..metrics import METRIC_KEYS
    from ..utils import OutLock, check_writable

    out = Path(a.out)
    check_writable(out, "--out", folder=True)
    known = sorted({k for keys in METRIC_KEYS.values() for k in keys})
    if a.metric not in known:  # before the model is scored (which metrics a dataset has is checked after)
        raise ValueError(f"--metric {a.metric}: not a metric; choose from {known}")
    with OutLock(out, "--out"):
        return _robustness(a, out)


def _robustness(a, out: Path) -> int:
    from ..experiments.robustness import DEFAULT_RATES, combine_seeds, evaluate_robustness, plot_robustness
    from ..utils import atomic_write_bytes, atomic_write_json

    missing = [c for c in a.checkpoint if not Path(c).is_file()]
    if missing:  # every file before any is scored
        raise FileNotFoundError(f"--checkpoint {missing[0]}: no such file")
    per_seed = [evaluate_robustness(c, a.data, split=a.split, dataset=a.dataset,
                                    rates=a.rates if a.rates else DEFAULT_RATES, repeats=a.repeats, seed=a.seed,
                                    device=a.device) for c in a.checkpoint]
    res = per_seed[0] if len(per_seed) == 1 else combine_seeds(per_seed)
    if a.metric not in res["metrics"]:
        raise ValueError(f"--metric {a.metric}: not a metric of {res['dataset']}; choose from {sorted(res['metrics'])}")
    k = a.metric

    def show(v, s=None):
        return "undefined" if v is None else f"{v:.4f}" + ("" if s is None else f" ± {s:.4f}")

    over = f", mean ± std over {res['seeds']} seeds" if "seeds" in res else ""
    print(f"{res['variant']} on {res['split']} ({'SYNTHETIC ' if res['synthetic'] else ''}{res['dataset']}), {k}{over}:")
    print("  all present      " + show(res["full"][k], res.get("full_std", {}).get(k)))
    for m, metrics in res["dropped"].items():
        print(f"  {m + ' dropped':<16} " + show(metrics[k], res.get("dropped_std", {}).get(m, {}).get(k)))
    for i, (r, v) in enumerate(zip(res["rates"], res["metrics"][k])):
        print(f"  missing rate {r:<4g} " + show(v, res["std"][k][i] if "seeds" in res else None))
    print("  area under the curve (AUILC) " + show(res["auc"][k], res.get("auc_std", {}).get(k)))
    if res.get("mean_predictor") and res["mean_predictor"].get(k) is not None:
        print(f"  mean predictor   {res['mean_predictor'][k]:.4f}")
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
