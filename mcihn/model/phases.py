"""How a model says what training means for it: its phases, each a loss and the parameters it updates.

Algorithm 1 of the paper is a sequence of phases per batch (reconstruction, regularisation, the
joint task objective); a baseline has one phase (its task loss). Each model returns its phases
from ``training_phases()``, and the trainer (``mcihn.training.trainer``) runs them in order, one
optimiser each, without knowing which model it trains. A new model needs no trainer edit.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch


@dataclass
class Phase:
    """One optimisation step per batch.

    key: short name, used for the optimiser, the logs and checkpoints ("rec", "disc", "main").
    name: what the phase is, for messages ("reconstruction (Eq. 4)").
    params: the parameters its optimiser updates (and only those).
    loss: batch -> (loss to minimise, {log name: detached scalar}); the log dict holds what the
        epoch summary and the progress bar show for this phase (its own loss under ``key`` at least).
    lr_scale: this phase's learning rate is the config's ``lr`` times this.
    extra_groups: more parameter groups for the same optimiser, each a dict with its own ``"lr"``
        (a fine-tuned text encoder joins the task phase this way, at lr 2e-5). By convention the
        phase keyed ``"main"`` carries the task loss.
    epoch_start: optional ``(epoch, train_tensors) -> None``, called by the trainer before each
        training epoch (epoch counts from 1; after a resume it continues from the checkpoint's
        epoch). For state that lives per epoch rather than per batch, such as Self-MM's label
        banks (initialised from the training labels, updated from epoch 2 on, with a momentum
        that depends on the epoch). ``train_tensors`` is the whole training split, with its
        ``"index"`` key (N,) (see ``SplitData.to_tensors``).
    """

    key: str
    name: str
    params: list
    loss: Callable[[dict], tuple[torch.Tensor, dict]]
    lr_scale: float = 1.0
    extra_groups: list = field(default_factory=list)
    epoch_start: Callable[[int, dict], None] | None = None

    def all_params(self) -> list:
        """Every parameter this phase's optimiser updates (its own and the extra groups')."""
        return list(self.params) + [p for g in self.extra_groups for p in g["params"]]
