"""Why MMSA's TFN beats ours on the real MOSI transcripts: one difference at a time, on a suite entry.

    python benchmarks/text_norm_probe.py --entry mosi-text --model tfn --variant raw --seeds 1111 1112 1113
    python benchmarks/text_norm_probe.py --entry mosi-ta --model mcihn --variant raw

Each run is the suite's own (``experiments.suite.ours_config``: the defaults of ``train --data FILE``) with the
variant's changes, one JSON line per seed (valid and test MAE, Has0 Acc-2, best epoch):

    raw       the text features as the encoder gave them, not even centred (the other modalities are
              z-scored as usual). MMSA feeds every feature raw.
    zall      every modality z-scored, text too (``zscore="all"``: the pipeline before 2026-12-05; the
              base is now ``"auto"``, which centres a real set's text without scaling it)
    small     TFN with MMSA's MOSI sizes where ours has a counterpart: text 32, inference layers 64
    drop5     dropout 0.5 (MMSA's TFN: 0.3 on the subnetworks, 0.5 after the fusion)
    bounded   the output squashed as MMSA's TFN does: 6 sigmoid(y) - 3 (TFN or MCIHN)

Variants combine with "+" ("raw+small"). The text cache is read from --cache (the suite's DIR/cache).
Results and what they say: benchmarks/text_norm_probe.md. A probe, not a default: nothing here changes the package.
"""
from __future__ import annotations

import argparse
from pathlib import Path
import json

import torch

from mcihn.data import normalize
from mcihn.experiments.suite import ENTRIES, find_shared, ours_config
from mcihn.training import runner
from mcihn.training.runner import run_experiment


def apply_variant(parts: set, model: str) -> dict:
    """Patch the pipeline for the variant's parts (this process only); returns config overrides."""
    over = {}
    if "raw" in parts:
        prepare_inputs = runner.prepare_inputs
        runner.prepare = lambda d, cfg: normalize(prepare_inputs(d, cfg), [m for m in cfg.modalities if m != "text"])
    if "bounded" in parts:  # MOSI's label range [-3, 3]
        if model == "tfn":
            from mcihn.baselines.tfn import TFN as cls
        else:
            from mcihn.model.mcihn import MCIHN as cls
        forward = cls.forward

        def bounded(self, batch, *args, **kwargs):
            out = forward(self, batch, *args, **kwargs)
            out.pred = torch.sigmoid(out.pred) * 6 - 3
            return out

        cls.forward = bounded
    if "zall" in parts:
        over["zscore"] = "all"
    if "drop5" in parts:
        over["dropout"] = 0.5
    if "small" in parts:
        if model != "tfn":
            raise SystemExit("variant small is TFN's")
        over.update(text_dim=32, post_hidden=64)
    unknown = parts - {"raw", "zall", "bounded", "drop5", "small", "base"}
    if unknown:
        raise SystemExit(f"unknown variant part(s) {sorted(unknown)}")
    return over


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--entry", choices=["mosi-ta", "mosi-text"], required=True)
    p.add_argument("--model", choices=["tfn", "mcihn"], required=True)
    p.add_argument("--variant", default="raw", help="parts joined by +: raw, zall, small, drop5, bounded (base: none)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    p.add_argument("--cache", default="runs/suite/cache", help="the suite's text cache (encoded transcripts)")
    p.add_argument("--shared", help="folder with mosi-audio/ and mosi-text/ (default ../shared/data)")
    a = p.parse_args(argv)
    torch.set_num_threads(1)
    data = ENTRIES[a.entry].load(Path(a.shared) if a.shared else find_shared(), a.cache)  # the suite's loader
    over = apply_variant(set(a.variant.split("+")), a.model)
    cfg = ours_config(a.model, ENTRIES[a.entry], data, tuple(over.items()))
    for s in a.seeds:
        res = run_experiment(data, cfg, seeds=[s], out_dir=None, device="cpu", progress=False, log=lambda *x: None)
        r = res["per_seed"][0]
        print(json.dumps({"entry": a.entry, "model": a.model, "variant": a.variant, "seed": s,
                          "valid": round(r["valid"]["MAE"], 4), "test": round(r["test"]["MAE"], 4),
                          "acc2": round(r["test"]["Has0_acc_2"], 4), "best": r["best_epoch"]}), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
