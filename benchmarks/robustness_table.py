"""The README's robustness table: one line per model from the ``robustness.json`` files that
``python -m mcihn robustness --out DIR/<model>`` wrote::

    for m in late tfn lmf mult selfmm emt cmhfm mcihn; do
        python -m mcihn robustness --checkpoint runs/readme/t2/$m/seed_1111/best.pt --out runs/readme/rob/$m --threads 1
    done
    python benchmarks/robustness_table.py runs/readme/rob
"""
import json
import sys
from pathlib import Path


def main(folder: str) -> int:
    rows = ["| model | all present | text dropped | audio dropped | vision dropped | r = 0.5 | r = 1 | AUC of MAE (↓) "
            "| AUC of Acc-2 (↑) |", "|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(Path(folder).glob("*/robustness.json")):
        r = json.loads(f.read_text())
        mae = r["metrics"]["MAE"]
        half, last = mae[r["rates"].index(0.5)], mae[-1]
        dropped = [f"{r['dropped'][m]['MAE']:.3f}" if m in r["dropped"] else "-" for m in ("text", "audio", "vision")]
        rows.append(f"| {r['variant']} | {r['full']['MAE']:.3f} | " + " | ".join(dropped)
                    + f" | {half:.3f} | {last:.3f} | {r['auc']['MAE']:.3f} | {100 * r['auc']['Has0_acc_2']:.1f} |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
