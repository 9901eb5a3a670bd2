"""What one training step of the trainer needs, apart from the epoch loop (``trainer.py``).

    iterate_batches   a split's tensors in batches: a fresh random order (training) or the natural one
    predict           a model's predictions on a split, in eval mode
    make_optimizers   one AdamW per training phase, over exactly that phase's parameters
    lr_factor         the learning-rate multiplier of a step: warm-up, then constant or cosine
    NonFiniteWatch    stops training at the first NaN / inf loss, naming the phase, epoch and batch
"""
from __future__ import annotations

import math

import torch


def iterate_batches(tensors: dict, batch_size: int, generator: torch.Generator | None = None):
    """Yield dicts of (B, ...) slices of ``tensors`` (all with the same first axis N, on one device).

    With a generator the order is a fresh random permutation (training), drawn on the generator's
    device; without one, the natural order (evaluation).
    """
    n = len(tensors["label"])
    device = tensors["label"].device
    if generator is not None:
        order = torch.randperm(n, generator=generator, device=generator.device).to(device)
    else:
        order = torch.arange(n, device=device)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield {k: v[idx] for k, v in tensors.items()}


@torch.no_grad()
def predict(model, tensors: dict, batch_size: int = 256):
    """Predictions (N,) on CPU and the mean L_Adp over the split (None for a model without one), in eval mode."""
    model.eval()
    preds, adp, n = [], 0.0, 0
    for batch in iterate_batches(tensors, batch_size):
        out = model(batch)
        preds.append(out.pred.float().cpu())
        if getattr(out, "loss_adp", None) is None:
            adp = None
        elif adp is not None:
            adp += out.loss_adp.float().item() * len(batch["label"])
        n += len(batch["label"])
    return torch.cat(preds), (adp / max(n, 1) if adp is not None else None)


def make_optimizers(phases, cfg) -> dict:
    """One optimiser per phase, keyed by ``phase.key``, over exactly that phase's parameters.

    AdamW: Adam with decoupled weight decay (cfg.weight_decay; 0 = plain Adam). Biases and normalisation
    gains (1-d tensors) are not decayed. foreach: one fused loop, also on CPU. Each parameter group keeps
    its starting learning rate as ``base_lr``, which :func:`lr_factor` scales per step.
    """
    wd = float(getattr(cfg, "weight_decay", 0.0))
    opt = {p.key: torch.optim.AdamW(
        [{"params": [q for q in p.params if q.ndim > 1], "weight_decay": wd},
         {"params": [q for q in p.params if q.ndim <= 1], "weight_decay": 0.0},
         *({"weight_decay": 0.0, **g} for g in p.extra_groups)], lr=cfg.lr * p.lr_scale, foreach=True)
        for p in phases}
    for o in opt.values():
        for g in o.param_groups:
            g["base_lr"] = g["lr"]
    return opt


def lr_factor(step: int, steps_per_epoch: int, cfg) -> float:
    """Learning-rate multiplier at optimiser step ``step`` (0-based): a linear warm-up over
    ``cfg.warmup_epochs`` epochs, then ``cfg.lr_schedule``: "constant" (1) or "cosine" (from 1 down
    to 0.1 at the epoch budget ``cfg.epochs``). A function of the step count alone, so a resumed run
    continues on the same curve without saving a scheduler."""
    warm = getattr(cfg, "warmup_epochs", 0.0) * steps_per_epoch
    if warm > 0 and step < warm:
        return (step + 1) / (warm + 1)
    if getattr(cfg, "lr_schedule", "constant") == "cosine":
        total = max(cfg.epochs * steps_per_epoch - warm, 1)
        t = min(max(step - warm, 0) / total, 1.0)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t))
    return 1.0


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; the message names the phase, epoch and batch."""


class NonFiniteWatch:
    """Remembers the first non-finite loss of a window of steps, on the loss's device."""

    def __init__(self, immediate: bool):
        self.immediate = immediate
        self.where, self.first, self.value = [], None, None

    def add(self, loss: torch.Tensor, phase_name: str, where: str) -> None:
        if self.immediate:
            if not torch.isfinite(loss):
                self._raise(phase_name, where, loss.item())
            return
        bad = ~torch.isfinite(loss.detach())
        i = len(self.where)
        self.where.append((phase_name, where))
        if self.first is None:
            self.first = torch.full((), -1, dtype=torch.long, device=loss.device)
            self.value = torch.zeros((), dtype=torch.float32, device=loss.device)
        new = bad & (self.first < 0)
        self.first = torch.where(new, torch.full_like(self.first, i), self.first)
        self.value = torch.where(new, loss.detach().float(), self.value)

    def check(self) -> None:
        """Read the window (one host sync); raise for its first non-finite loss."""
        if self.first is not None:
            i = int(self.first.item())
            if i >= 0:
                self._raise(*self.where[i], float(self.value.item()))
        self.where, self.first, self.value = [], None, None

    @staticmethod
    def _raise(phase_name: str, where: str, value: float):
        raise NonFiniteLossError(f"non-finite loss ({value}) in the {phase_name} phase at {where}; "
                                 "lower the learning rate, check the inputs for extreme values, or try without --amp")
