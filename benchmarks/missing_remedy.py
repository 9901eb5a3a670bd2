"""MCIHN with missing modalities: the cause, and the remedy ``missing_aug`` measured (issue 20).

    python benchmarks/missing_remedy.py codes CHECKPOINT          # the cause, for one trained model
    python benchmarks/missing_remedy.py run --seeds 1111 2222 3333 --out runs/missing
    python benchmarks/missing_remedy.py table runs/missing > benchmarks/missing_remedy.md
    python benchmarks/missing_remedy.py run --data mosi-ta --seeds 1111 2222 3333 --out runs/missing-ta
    python benchmarks/missing_remedy.py table --data mosi-ta runs/missing-ta > benchmarks/missing_remedy_mosi_ta.md

``codes``: where the encoders put an all-missing input (every step 0 after normalisation, i.e. the training
mean, masks unchanged: what ``mask_time_steps(t, 1.0)`` feeds the model) against the codes of real clips.
Each code S^m (L, d) is flattened; "nearest real" is the distance to the nearest code of a training clip,
next to the same distance for the real test clips (what a real clip's neighbourhood looks like). It also
gives the prediction at r = 1 against the mean predictor.

``run``: trains MCIHN (tiny preset, embedded synthetic data; with ``--data mosi-ta`` the suite's real MOSI
text + audio development set, ../shared/data/mosi-audio/, auto preset) with ``missing_aug`` 0, 0.25 and 0.5,
and late fusion and EMT for reference (``--variants`` to choose), one folder per model and seed, then ``evaluate_robustness`` on the test split of each
(r = 0, 0.1, ..., 1, 3 draws per rate). A finished seed is read back, not retrained. ``table`` prints the
markdown table (mean ± population std over the seeds), the seed-spread verdict on the complete-data
validation MAE (``analysis.spread_verdict``) and the code report of the first seed of each MCIHN variant.

Everything on the CPU, one thread (``torch.set_num_threads(1)``); timings are not reported.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))

#: name -> (model kind, config overrides)
VARIANTS = {
    "MCIHN": ("mcihn", {"missing_aug": 0.0}),  # trained on complete data only, as the paper (the default is 0.5)
    "MCIHN + missing_aug 0.25": ("mcihn", {"missing_aug": 0.25}),
    "MCIHN + missing_aug 0.5": ("mcihn", {"missing_aug": 0.5}),
    "late fusion": ("late", {}),
    "EMT": ("emt", {}),  # the best baseline without audio and at r = 0.5 on the embedded data (docs/baselines.md)
}


# ---------------------------------------------------------------------------------------------- the cause
def code_report(checkpoint, data=None) -> dict:
    """:func:`mcihn.experiments.robustness.code_report` of a saved MCIHN model on its own data (train and test
    splits, the checkpoint's normaliser)."""
    from mcihn.experiments.robustness import _data_for, code_report as report
    from mcihn.training.runner import load_model

    model, cfg, normalizer, ck = load_model(checkpoint)
    data = _data_for(ck, checkpoint, data, None)
    t = {s: normalizer.transform(data[s]).to_tensors(cfg.modalities) for s in ("train", "test")}
    return report(model, t["train"], t["test"])


def print_code_report(rep: dict, name: str = "") -> str:
    lines = [f"Codes of an all-missing input{' (' + name + ')' if name else ''}, test split:", "",
             "| modality | norm real | norm missing | nearest train code: real test clip (median / 95th pct) "
             "| nearest train code: all-missing (median) |", "|---|---|---|---|---|"]
    for m, r in rep["modalities"].items():
        lines.append(f"| {m} | {r['norm real']:.2f} | {r['norm missing']:.2f} | "
                     f"{r['nearest real, real test clips (median)']:.2f} / "
                     f"{r['nearest real, real test clips (95th pct)']:.2f} | "
                     f"{r['nearest real, all-missing (median)']:.2f} |")
    r1 = rep["r=1"]
    lines += ["", f"r = 1: predictions {r1['prediction mean']:+.3f} ± {r1['prediction std']:.3f} (training mean label "
                  f"{r1['training mean label']:+.3f}); MAE {r1['MAE']:.3f} vs the mean predictor's "
                  f"{r1['mean predictor MAE']:.3f}"]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the runs
def load(data_name: str, cache: Path):
    """(data, preset): the embedded synthetic data (tiny preset), or the suite's real ``mosi-ta`` entry (auto
    preset, text + audio; its CSV in ../shared/data/mosi-audio/, transcripts encoded once into ``cache``)."""
    if data_name == "synthetic":
        from mcihn.data import synthetic_data
        return synthetic_data(kind="mosi", seed=0), "tiny"
    from mcihn.experiments.suite import ENTRIES
    return ENTRIES[data_name].load(SHARED, cache), "auto"


def run(seeds, out: Path, variants=None, data_name: str = "synthetic") -> None:
    from mcihn.experiments.robustness import evaluate_robustness
    from mcihn.training.registry import make_config
    from mcihn.training.runner import run_seed

    torch.set_num_threads(1)
    data, preset = load(data_name, out / "cache")
    modalities = tuple(data.dims) if data_name != "synthetic" else None
    for name in variants or VARIANTS:
        kind, over = VARIANTS[name]
        over = {**over, **({"modalities": modalities} if modalities else {})}
        cfg = make_config(kind, preset, n_train=len(data["train"]), **over)
        for seed in seeds:
            d = out / _slug(name) / f"seed_{seed}"
            if not (d / "robustness.json").exists():
                res = run_seed(data, cfg, seed, out_dir=d, device="cpu", resume=True, progress=False,
                               log=lambda *a, **k: None)
                rob = evaluate_robustness(d / "best.pt", data)
                rob["valid"] = res["valid"]
                (d / "robustness.json").write_text(json.dumps(rob, indent=1))
            print(f"{name} seed {seed}: done", flush=True)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()


def _ms(vals, digits=3) -> str:
    vals = [v for v in vals if v is not None]
    if not vals:
        return "-"
    if len(vals) == 1:
        return f"{vals[0]:.{digits}f}"
    return f"{np.mean(vals):.{digits}f} ± {np.std(vals):.{digits}f}"  # population std, as the tables' ±


def table(out: Path, data_name: str = "synthetic") -> str:
    data = load(data_name, out / "cache")[0] if data_name != "synthetic" else None
    rows = ["| model | seeds | valid MAE (complete) | test MAE (complete) | text dropped | audio dropped "
            "| vision dropped | r = 0.5 | r = 1 | mean predictor | AUC of MAE (↓) |",
            "|---|---|---|---|---|---|---|---|---|---|---|"]
    reports, valid = [], {}
    for name in VARIANTS:
        files = sorted((out / _slug(name)).glob("seed_*/robustness.json"))
        if not files:
            continue
        rs = [json.loads(f.read_text()) for f in files]
        mae = lambda f: [f(r) for r in rs]  # noqa: E731
        valid[name] = [r["valid"]["MAE"] for r in rs]
        rows.append(" | ".join([
            f"| {name}", str(len(rs)), _ms(mae(lambda r: r["valid"]["MAE"])), _ms(mae(lambda r: r["full"]["MAE"])),
            *(_ms(mae(lambda r, m=m: r["dropped"][m]["MAE"] if m in r["dropped"] else None))
              for m in ("text", "audio", "vision")),
            _ms(mae(lambda r: r["metrics"]["MAE"][r["rates"].index(0.5)])),
            _ms(mae(lambda r: r["metrics"]["MAE"][-1])), _ms(mae(lambda r: r["mean_predictor"]["MAE"])),
            _ms(mae(lambda r: r["auc"]["MAE"]))]) + " |")
        if VARIANTS[name][0] == "mcihn":
            reports.append(print_code_report(code_report(files[0].parent / "best.pt", data), f"{name}, {files[0].parent.name}"))
    from mcihn.notebook.analysis import spread_verdict
    verdicts = [spread_verdict(valid[name], valid["MCIHN"], name="complete-data validation MAE",
                               labels=(name, "MCIHN"))["sentence"]
                for name in valid if name != "MCIHN" and VARIANTS[name][0] == "mcihn" and "MCIHN" in valid]
    what = ("the embedded synthetic data (tiny preset)" if data is None else
            f"{data_name}, {data.source} (auto preset, modalities {'+'.join(data.dims)})")
    return (f"MAE on {what}, mean ± std over the seeds; robustness on the test split, r = 0, 0.1, ..., 1, "
            "3 draws per rate, mean predictor = the training mean label; CPU, 1 thread, a shared machine.\n\n" + "\n".join(rows) + "\n\n"
            + "".join(v + "\n\n" for v in verdicts) + "\n\n".join(reports) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("codes")
    c.add_argument("checkpoint")
    r = sub.add_parser("run")
    r.add_argument("--seeds", type=int, nargs="+", default=[1111, 2222, 3333])
    r.add_argument("--variants", nargs="+", choices=list(VARIANTS))
    r.add_argument("--data", default="synthetic", choices=["synthetic", "mosi-ta"],
                   help="the embedded synthetic data (default) or the real MOSI text + audio development set")
    r.add_argument("--out", required=True)
    t = sub.add_parser("table")
    t.add_argument("out")
    t.add_argument("--data", default="synthetic", choices=["synthetic", "mosi-ta"])
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    if a.cmd == "codes":
        print(print_code_report(code_report(a.checkpoint)))
    elif a.cmd == "run":
        run(a.seeds, Path(a.out), a.variants, a.data)
    else:
        print(table(Path(a.out), a.data), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
