"""Checkpoints: what a run saves, and how it is read back safely.

A checkpoint is a dict of plain types and tensors only, so ``torch.load(weights_only=True)`` reads it
without running code::

    format       "mcihn-checkpoint-v1"
    model_kind   registry name ("mcihn", "tfn", ...), config (dict), dims ({m: [T_m, D_m]})
    model        state_dict; epoch
    ...          what the runner adds: normalizer, dataset, data_source, extraction, seed
    (last.pt only) optimizers {phase key: state}, history, best_val, best_epoch, bad_epochs, rng

``best.pt`` holds the best validation epoch's weights; ``last.pt`` everything needed to resume.
"""
from __future__ import annotations

import torch

CHECKPOINT_FORMAT = "mcihn-checkpoint-v1"


def load_checkpoint_file(path) -> dict:
    """torch.load with weights_only=True (no code runs), and a clear error for other files."""
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # not a torch file, truncated, or holding code (refused by weights_only)
        raise ValueError(f"{path}: not a readable MCIHN checkpoint ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(ck, dict) or ck.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not an MCIHN checkpoint (expected format {CHECKPOINT_FORMAT!r})")
    return ck
