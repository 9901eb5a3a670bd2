"""Do the defaults travel to planted data of a kind the suite does not have? (issue 17's held-out criterion)

    python benchmarks/unseen_kind_probe.py write --out runs/unseen            # two MMSA pickles + their floors
    python -m mcihn experiment suite --out runs/unseen/suite --models mcihn tfn --jobs 2 --threads 1 \\
        --seeds 1111 1112 1113 --entries audio-led-700=runs/unseen/audio-led-700.pkl \\
        window-interaction-700=runs/unseen/window-interaction-700.pkl
    python benchmarks/suite_tables.py runs/unseen/suite > benchmarks/unseen_kind_runs/tables.md

The records of the run reported in docs/results.md are in ``benchmarks/unseen_kind_runs/runs/``.

The issue judges MCIHN on "a planted synthetic set of a kind you have not seen". The suite's three kinds
(``mcihn.data.planted.KIND_SPECS``) were used to choose the defaults, so they cannot say whether the choice
generalises. This script adds two kinds with knob values that no suite set has, only here (the package's
generator is not changed), and writes each as an MMSA pickle that ``experiment suite`` reads as a
``NAME=PATH`` entry; the pickle's meta carries the Bayes floor. Nothing is chosen on these sets: they are
run once, after the defaults were fixed, and only reported.

* ``audio-led``: audio carries the label, text is weak (the suite's sets all lean on text);
* ``window-interaction``: a text x vision product as in "interaction", with the evidence in windows of
  5-10 steps under a weaker salience cue than "window".
"""
from __future__ import annotations

import argparse
import pickle
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (spec in the format of KIND_SPECS, description, training clips)
PROBE_KINDS = {
    "audio-led": ({"weights": {"text": 0.4, "audio": 1.0, "vision": 0.3}, "interaction": 0.0, "label_noise": 0.5,
                   "amplitude": {"text": 0.5, "audio": 0.6, "vision": 0.4}, "window": None, "cue": 0.0},
                  "audio carries the label, text weak, vision weaker", 700),
    "window-interaction": ({"weights": {"text": 0.7, "audio": 0.2, "vision": 0.0}, "interaction": 0.7,
                            "label_noise": 0.5, "amplitude": {"text": 1.2, "audio": 1.2, "vision": 1.2},
                            "window": (5, 10), "cue": 1.5},
                           "a text x vision product, evidence in windows of 5-10 steps, a weak cue", 700),
}


def write(out: Path, seed: int = 0, n_train: int | None = None) -> dict:
    """Write ``out/<kind>-<n>.pkl`` for every probe kind (``n_train`` overrides each kind's training clips);
    returns name -> (path, test floor)."""
    from mcihn.data import planted

    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for kind, (spec, description, n_kind) in PROBE_KINDS.items():
        n = n_train or n_kind
        if kind in planted.KIND_SPECS:
            raise ValueError(f"probe kind {kind!r} is one of the suite's kinds")
        planted.KIND_SPECS[kind], planted.PLANTED_KINDS[kind] = spec, description  # registered for this call only
        try:
            obj = planted.make_planted(kind, n_train=n, seed=seed)
        finally:
            del planted.KIND_SPECS[kind], planted.PLANTED_KINDS[kind]
        path = out / f"{kind}-{n}.pkl"
        tmp = path.with_suffix(".tmp")
        with open(tmp, "wb") as f:
            pickle.dump(obj, f)
        tmp.replace(path)
        written[f"{kind}-{n}"] = (path, obj["meta"]["bayes_floor"]["test"])
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("write", help="write the probe sets as MMSA pickles")
    w.add_argument("--out", required=True)
    a = p.parse_args(argv)
    written = write(Path(a.out))
    for name, (path, floor) in written.items():
        print(f"{name}={path}  (test Bayes floor {floor:.3f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
