"""``linear_init="auto"``: train from both starts of the linear path, keep the one validation prefers.

The two starts of :mod:`mcihn.model.linear_path` win on different kinds of data (docs/results.md, "Learning what
the ridge leaves"): where the label is mostly a linear function of the pooled inputs, starting at the ridge
regression and learning its residual (``ridge_frozen``) is better; where the signal sits in interactions or in
short windows of the sequences, the network trained from the paper's start (``zero``) is. Which kind a new
data set is cannot be read off before training, but each run's own validation MAE says which start served it
better. So, for one seed::

    r_zero  = run_seed(linear_init="zero")           DIR/start_zero/
    r_ridge = run_seed(linear_init="ridge_frozen")   DIR/start_ridge_frozen/
    keep the one with the lower validation MAE (ties: zero), copied to DIR/best.pt and DIR/result.json

Only the validation split chooses (as it chooses the epoch); both runs are evaluated on test by
:func:`run_seed` as usual, but only the kept one is reported. Twice the training time. Each start is an
ordinary run of its own folder, so kill and resume work as for any seed, and the choice is made again, the
same way, from the finished runs.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

from ..utils import atomic_write_bytes, atomic_write_json

#: The starts that ``linear_init="auto"`` trains, in the order that wins ties.
AUTO_STARTS = ("zero", "ridge_frozen")


def run_both_starts(run_seed, data, cfg, seed: int, out_dir: Path | None = None, log=print, on_epoch=None,
                    **kwargs) -> dict:
    """``run_seed`` (``mcihn.training.runner.run_seed``) once per start in :data:`AUTO_STARTS`; returns the
    kept run's dict with "start" (the start kept) and "starts" (start -> {"valid_mae", "best_epoch"}) added.

    ``on_epoch`` is called after every epoch of both runs (each run's history gets what it adds); ``legend``
    goes to the first run only. Refuses a seed folder that holds a single run (``last.pt``: a run of one start,
    made before "auto" or with another ``linear_init``), which resuming must not mix with these two.
    """
    if out_dir is not None and (out_dir / "last.pt").exists():
        raise ValueError(f"{out_dir}: holds a run of one start of the linear path (last.pt), not of "
                         "linear_init='auto'; resume it with the linear_init it was made with (train --linear-init "
                         "...) or use another --out")
    legend = kwargs.pop("legend", False)
    runs = {}
    for i, start in enumerate(AUTO_STARTS):
        sub = dataclasses.replace(cfg, linear_init=start)
        folder = out_dir / f"start_{start}" if out_dir is not None else None
        log(f"seed {seed}: linear path start {start!r} ({i + 1} of {len(AUTO_STARTS)})")
        runs[start] = run_seed(data, sub, seed, folder, log=log, on_epoch=on_epoch, legend=legend and i == 0,
                               **kwargs)
    kept = min(AUTO_STARTS, key=lambda s: runs[s]["valid"]["MAE"])  # min keeps the first of equal values
    starts = {s: {"valid_mae": float(r["valid"]["MAE"]), "best_epoch": int(r["best_epoch"])} for s, r in runs.items()}
    log(f"seed {seed}: kept start {kept!r} (validation MAE "
        + ", ".join(f"{s} {v['valid_mae']:.4f}" for s, v in starts.items()) + ")")
    res = {**runs[kept], "start": kept, "starts": starts}
    if all("train_time_s" in r for r in runs.values()):  # the cost of the seed is both runs'
        res["train_time_s"] = round(sum(r["train_time_s"] for r in runs.values()), 2)
    if out_dir is not None:  # the seed's folder reads as any other seed's: best.pt and result.json of the kept run
        atomic_write_bytes(out_dir / "best.pt", (out_dir / f"start_{kept}" / "best.pt").read_bytes())
        atomic_write_json(out_dir / "result.json", {k: v for k, v in res.items() if k not in ("history", "model")})
    return res
