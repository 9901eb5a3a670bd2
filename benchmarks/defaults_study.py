"""Where the defaults come from: a small grid of MCIHN settings, chosen on the validation split.

Each setting is a list of config overrides (``field=value``), trained over the seeds with the same
runner as ``python -m mcihn train``; the table shows validation MAE (what chooses) and test MAE (reported
once), mean ± std over the seeds, and the discriminator's accuracy (0.5 = chance) where there is one::

    python benchmarks/defaults_study.py --out runs/defaults_synth                      # embedded synthetic data
    python benchmarks/defaults_study.py --data runs/mosi_text/mosi_text.pkl --preset paper --modalities t \\
        --out runs/defaults_mosi_text --settings "adv_weight=0" "adv_weight=0.1" "use_aae=False"

Finished seeds are read back on a rerun (``--out`` keeps one folder per setting).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DEFAULT_SETTINGS = ("adv_weight=0", "adv_weight=0.001", "adv_weight=0.01", "adv_weight=0.1",
                    "schedule=phases adv_weight=1 mmd_weight=0.1 xi=linear rec_weight=1", "use_aae=False")


def parse_setting(text: str) -> dict:
    out = {}
    for item in text.split():
        key, value = item.split("=", 1)
        for cast in (int, float):
            try:
                value = cast(value)
                break
            except ValueError:
                pass
        out[key] = {"True": True, "False": False}.get(value, value) if isinstance(value, str) else value
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", help="MMSA pickle (default: the embedded synthetic data)")
    ap.add_argument("--preset", default=None, help="default: tiny on synthetic data, paper otherwise")
    ap.add_argument("--modalities", default="tav")
    ap.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    ap.add_argument("--seeds", type=int, nargs="+", default=[1111, 1112, 1113])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True, type=Path)
    a = ap.parse_args(argv)

    import numpy as np
    import torch
    torch.set_num_threads(a.threads)
    from mcihn.experiments.tables import resolve_data
    from mcihn.model.config import MCIHNConfig
    from mcihn.training import run_experiment

    data = resolve_data(a.data)
    preset = a.preset or ("tiny" if data.synthetic else "paper")
    rows = []
    for text in a.settings:
        over = parse_setting(text)
        cfg = MCIHNConfig.from_preset(preset, modalities=a.modalities, **over)
        slug = "_".join(f"{k}-{v}" for k, v in over.items()) or "defaults"
        t0 = time.time()
        res = run_experiment(data, cfg, seeds=a.seeds, out_dir=a.out / slug, resume=True, progress=False,
                             log=lambda *x, **k: None)
        valid = [r["valid"]["MAE"] for r in res["per_seed"]]
        test = [r["test"]["MAE"] for r in res["per_seed"]]
        acc = [h["train"]["disc_acc"] for hist in res["histories"].values() for h in hist if "disc_acc" in h["train"]]
        rows.append({"setting": text, "valid": (float(np.mean(valid)), float(np.std(valid))),
                     "test": (float(np.mean(test)), float(np.std(test))),
                     "disc_acc": (float(np.mean(acc)), float(np.max(acc))) if acc else None,
                     "best_epochs": [r["best_epoch"] for r in res["per_seed"]], "wall_s": round(time.time() - t0, 1)})
        r = rows[-1]
        print(f"{text:70s} valid {r['valid'][0]:.3f} ± {r['valid'][1]:.3f}  test {r['test'][0]:.3f} ± {r['test'][1]:.3f}"
              f"  ({r['wall_s']:.0f} s)", flush=True)
    lines = [f"{data.source}; preset {preset}; modalities {a.modalities}; seeds {a.seeds}; {a.threads} torch thread(s). "
             "Chosen on validation MAE; test shown once.", "",
             "| setting (overrides of the preset) | valid MAE | test MAE | disc. accuracy mean / max | best epochs |",
             "|---|---|---|---|---|"]
    for r in rows:
        acc = f"{r['disc_acc'][0]:.2f} / {r['disc_acc'][1]:.2f}" if r["disc_acc"] else "-"
        lines.append(f"| `{r['setting']}` | {r['valid'][0]:.3f} ± {r['valid'][1]:.3f} | {r['test'][0]:.3f} ± "
                     f"{r['test'][1]:.3f} | {acc} | {r['best_epochs']} |")
    (a.out / "study.md").write_text("\n".join(lines) + "\n")
    (a.out / "study.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
