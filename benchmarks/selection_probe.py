"""How much of MCIHN's validation-to-test gap on the real sets is the choice of the epoch? A probe, for analysis.

    python benchmarks/selection_probe.py --entry mosi-text --seeds 1111 1112 1113 --cache runs/suite/cache

Trains MCIHN with the suite's defaults (``experiments.suite.ours_config``) and, after every epoch, scores the
weights on validation *and* test (test only to analyse the rules afterwards; no rule below looks at it). Then
compares what three selection rules would have reported on test:

    best      the epoch of the best validation MAE (what the trainer does)
    smoothed  the epoch whose 3-epoch centred mean of validation MAE is best (a less noisy choice)
    last      the last epoch trained (early stopping's end)

and, for reference only, the best test MAE of any epoch (an oracle no rule can reach). One JSON line per seed.
Results: benchmarks/selection_probe.md. Nothing here changes the package.
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from mcihn.experiments.suite import ENTRIES, find_shared, ours_config
from mcihn.metrics import evaluate
from mcihn.training.runner import model_tensors, prepare, run_seed


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entry", choices=["mosi-ta", "mosi-text"], required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    p.add_argument("--cache", default="runs/suite/cache")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    data = ENTRIES[a.entry].load(find_shared(), a.cache)  # the suite's own loader
    cfg = ours_config("mcihn", ENTRIES[a.entry], data, {"linear_init": "zero"})  # one run per seed, as measured
    prepared = prepare(data, cfg)
    test = {k: v for k, v in model_tensors(prepared[0]["test"], cfg).items()}
    for seed in a.seeds:
        per_epoch = []  # (valid MAE, test MAE) after each epoch

        def score(trainer, record):
            with torch.random.fork_rng(devices=[]):  # MCIHN's forward draws MMD samples even here: keep the
                pred, _ = trainer.predict(test)      # global stream as training left it (the suite's trajectory)
            per_epoch.append((record["valid"]["loss_mul"],
                              evaluate(pred.numpy(), test["label"].numpy(), data.dataset)["MAE"]))

        res = run_seed(data, cfg, seed, device="cpu", progress=False, log=lambda *x: None, prepared=prepared,
                       on_epoch=score)
        v, t = np.array(per_epoch).T
        smooth = np.convolve(np.pad(v, 1, mode="edge"), np.ones(3) / 3, mode="valid")  # centred 3-epoch mean
        pick = {"best": int(np.argmin(v)), "smoothed": int(np.argmin(smooth)), "last": len(v) - 1}
        print(json.dumps({"entry": a.entry, "seed": seed, "epochs": len(v), "reported_test": round(res["test"]["MAE"], 4),
                          **{f"{k}_epoch": i + 1 for k, i in pick.items()},
                          **{f"{k}_test": round(float(t[i]), 4) for k, i in pick.items()},
                          "oracle_test": round(float(t.min()), 4), "oracle_epoch": int(np.argmin(t)) + 1}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
