"""The book's robustness table: one line per model from the ``robustness.json`` files that
``python -m mcihn robustness --out DIR/<model>`` wrote, for one seed or (several checkpoints) the mean ± std
over seeds (EMT-DLFR's AUILC protocol)::

    for m in late tfn lmf mult selfmm emt cmhfm mcihn; do
        python -m mcihn robustness --checkpoint runs/readme/t2/$m/seed_*/best.pt --out runs/readme/rob5/$m --threads 1
    done
    python benchmarks/robustness_table.py runs/readme/rob5
"""
import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    rows = ["| model | all present | text dropped | audio dropped | vision dropped | r = 0.5 | r = 1 | AUC of MAE (↓) "
            "| AUC of Acc-2 (↑) |", "|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(Path(folder).glob("*/robustness.json")):
        r = json.loads(f.read_text())
        several = r.get("seeds", 1) > 1

        def cell(v, s=None, scale=1.0, digits=3):
            return f"{scale * v:.{digits}f}" + (f" ± {scale * s:.{digits}f}" if several and s is not None else "")

        mae, std = r["metrics"]["MAE"], r.get("std", {}).get("MAE", [None] * len(r["rates"]))
        i = r["rates"].index(0.5)
        dropped = [cell(r["dropped"][m]["MAE"], r.get("dropped_std", {}).get(m, {}).get("MAE")) if m in r["dropped"]
                   else "-" for m in ("text", "audio", "vision")]
        rows.append(f"| {r['variant']} | {cell(r['full']['MAE'], r.get('full_std', {}).get('MAE'))} | "
                    + " | ".join(dropped) + f" | {cell(mae[i], std[i])} | {cell(mae[-1], std[-1])} | "
                    + f"{cell(r['auc']['MAE'], r.get('auc_std', {}).get('MAE'))} | "
                    + f"{cell(r['auc']['Has0_acc_2'], r.get('auc_std', {}).get('Has0_acc_2'), 100, 1)} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
