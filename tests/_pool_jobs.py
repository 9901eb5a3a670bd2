"""Stand-in jobs for the suite's worker pool (``suite._run_pool(..., job=...)``): module-level, so that a spawned
worker can import them by name; nothing heavy imported (tests/test_suite.py)."""
from __future__ import annotations

import os
import time


def crash(entry, row, seed, *args):
    """The worker dies, as one killed by the kernel would (no exception, no cleanup)."""
    os._exit(3)


def quick_or_slow(entry, row, seed, *args):
    """Seed 1 returns a record at once; any other seed sleeps for a minute (a long run to be stopped)."""
    if seed != 1:
        time.sleep(60)
    return {"test": {"MAE": 0.5}, "valid": {"MAE": 0.5}, "entry": entry.name, "row": row.label, "seed": seed,
            "best_epoch": 1, "seconds": 0.0}, None
