"""Algorithm 1: the training loop of one seed, for any model of the registry.

A model says what training means for it through ``training_phases()`` (``mcihn.model.phases``):
an ordered list of phases, each a loss and the parameters it updates. Per batch the trainer
runs them in that order, each with its own Adam optimiser over exactly its parameters. For
MCIHN that is Alg. 1 lines 8-23 (see ``MCIHN.training_phases``); for a baseline one phase,
its task loss L_Mul (Eq. 18). The trainer has no model-specific code.

Early stopping watches the validation MAE (= L_Mul on the validation split); the test split is
never looked at here. A checkpoint is written atomically every epoch (``last.pt``, for resume)
and whenever validation improves (``best.pt``); its format is in ``checkpoint.py``.

Host synchronisation: a non-finite loss stops training, naming the phase, epoch and batch. On a
GPU the check is kept on the device and read every ``sync_every`` batches (and at the end of each
epoch), so the step does not wait for the GPU; on the CPU there is nothing to wait for and it is
read at once, before the bad step is applied. Loss logs are summed on the device likewise.
"""
from __future__ import annotations

import contextlib
import math
import time
from pathlib import Path

import torch

from ..metrics import evaluate as evaluate_metrics
from ..utils import atomic_torch_save, atomic_write_json
from .checkpoint import CHECKPOINT_FORMAT, load_checkpoint_file, load_weights
from .registry import build_model, model_kind


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; the message names the phase, epoch and batch."""


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


class _NonFiniteWatch:
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


class Trainer:
    """Holds the model, one optimiser per training phase, and the training state of one run.

    ``cfg`` is an :class:`MCIHNConfig` or the config of a baseline (see ``mcihn.training.registry``).
    """

    def __init__(self, cfg, dims: dict, device="cpu", amp: bool = False, seed: int = 0, sync_every: int = 25,
                 text_encoder=None):
        self.cfg, self.device = cfg, torch.device(device)
        self.kind = model_kind(cfg)
        self.model = build_model(cfg, dims, text_encoder).to(self.device)
        self.phases = self.model.training_phases()
        # AdamW: Adam with decoupled weight decay (cfg.weight_decay; 0 = plain Adam). Biases and
        # normalisation gains (1-d tensors) are not decayed. foreach: one fused loop, also on CPU.
        wd = float(getattr(cfg, "weight_decay", 0.0))
        self.opt = {p.key: torch.optim.AdamW(
            [{"params": [q for q in p.params if q.ndim > 1], "weight_decay": wd},
             {"params": [q for q in p.params if q.ndim <= 1], "weight_decay": 0.0},
             *({"weight_decay": 0.0, **g} for g in p.extra_groups)], lr=cfg.lr * p.lr_scale, foreach=True)
            for p in self.phases}
        for o in self.opt.values():
            for g in o.param_groups:
                g["base_lr"] = g["lr"]
        # bf16 autocast on CUDA needs no gradient scaler.
        self.amp = bool(amp) and self.device.type == "cuda"
        # CPU: read every loss at once (nothing to wait for); GPU: every sync_every batches.
        self.sync_every = 1 if self.device.type == "cpu" else max(1, int(sync_every))
        shuffle_device = self.device if self.device.type == "cuda" else "cpu"
        self.shuffle = torch.Generator(device=shuffle_device).manual_seed(seed)
        self.epoch, self.history = 0, []
        self.best_val, self.best_epoch, self.bad_epochs = float("inf"), 0, 0
        self.best_state = None  # weights of the best validation epoch, in memory
        self.lr_scale = 1.0  # set per batch by train_epoch (lr_factor)

    def autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    # ---- one batch: every phase of the model, in order ---------------------------------
    def run_phase(self, phase, batch: dict, where: str = "?", watch: _NonFiniteWatch | None = None) -> dict:
        """Compute ``phase``'s loss on ``batch`` and take one step of its optimiser; returns its logs."""
        with self.autocast():
            loss, logs = phase.loss(batch)
        (watch or _NonFiniteWatch(immediate=True)).add(loss, phase.name, where)
        opt = self.opt[phase.key]
        for g in opt.param_groups:  # warm-up and schedule (lr_factor), from the step count
            g["lr"] = g["base_lr"] * self.lr_scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(phase.all_params(), self.cfg.grad_clip, foreach=True)
        opt.step()
        return logs

    def train_batch(self, batch: dict, where: str = "?", watch: _NonFiniteWatch | None = None) -> dict:
        """All phases on one batch; returns {log name: detached scalar tensor}."""
        self.model.train()
        logs = {}
        for phase in self.phases:
            logs.update(self.run_phase(phase, batch, where, watch))
        return logs

    # ---- evaluation -------------------------------------------------------------------
    def predict(self, tensors: dict, batch_size: int = 256):
        with self.autocast():
            return predict(self.model, tensors, batch_size)

    def validate(self, tensors: dict, dataset: str) -> dict:
        pred, adp = self.predict(tensors)
        y = tensors["label"].cpu()
        res = {"loss_mul": float((pred - y).abs().mean())}
        if adp is not None:
            res["loss_adp"] = adp
        res.update(evaluate_metrics(pred.numpy(), y.numpy(), dataset))
        return res

    # ---- the epoch loop ---------------------------------------------------------------
    def train_epoch(self, train: dict, epoch: int, progress: bool = True) -> dict:
        """One pass over ``train`` in a fresh random order; returns the mean of each log over the batches."""
        from tqdm.auto import tqdm

        n_batches = -(-len(train["label"]) // self.cfg.batch_size)
        for phase in self.phases:  # per-epoch state of the model (Phase.epoch_start), e.g. Self-MM's label banks
            if phase.epoch_start is not None:
                phase.epoch_start(epoch, train)
        watch = _NonFiniteWatch(immediate=self.sync_every == 1)
        sums: dict = {}
        bar = tqdm(iterate_batches(train, self.cfg.batch_size, self.shuffle), total=n_batches,
                   desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, disable=not progress)
        for i, batch in enumerate(bar):
            self.lr_scale = lr_factor((epoch - 1) * n_batches + i, n_batches, self.cfg)
            logs = self.train_batch(batch, where=f"epoch {epoch}, batch {i + 1}/{n_batches}", watch=watch)
            for k, v in logs.items():  # summed on the device, in float64
                sums[k] = sums.get(k, 0.0) + v.detach().double()
            if (i + 1) % self.sync_every == 0 or i + 1 == n_batches:
                watch.check()
                if progress:
                    bar.set_postfix({k: f"{float(v) / (i + 1):.3f}" for k, v in sums.items()})
        return {k: float(v) / n_batches for k, v in sums.items()}

    def fit(self, train: dict, valid: dict, dataset: str, out_dir=None, extra_state: dict | None = None,
            progress: bool = True, log=print, on_epoch=None) -> list:
        """Train until ``cfg.epochs`` or early stopping; returns the history (one dict per epoch).

        ``train`` / ``valid``: tensors from ``SplitData.to_tensors`` already on the device.
        ``extra_state`` (config, dims, normaliser, ...) is stored in every checkpoint.
        Continues from ``self.epoch`` (set by :meth:`load_checkpoint` when resuming).
        ``on_epoch(trainer, record)``, when given, runs after each epoch's validation and may add
        keys to ``record`` (what it adds is saved in the history); the notebooks use it to
        follow quantities such as the per-term MMD during training.
        """
        out_dir = Path(out_dir) if out_dir is not None else None
        while not self.finished:
            epoch, t0 = self.epoch + 1, time.time()
            record = {"epoch": epoch, "train": self.train_epoch(train, epoch, progress),
                      "valid": self.validate(valid, dataset), "time_s": round(time.time() - t0, 3)}
            if on_epoch is not None:
                on_epoch(self, record)
            self.history.append(record)
            self.epoch = epoch
            improved = record["valid"]["loss_mul"] < self.best_val - 1e-6
            if improved:
                self.best_val, self.best_epoch, self.bad_epochs = record["valid"]["loss_mul"], epoch, 0
                self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            else:
                self.bad_epochs += 1
            log(f"epoch {epoch:3d}  " + "  ".join(f"{k} {v:.4f}" for k, v in record["train"].items())
                + f"  | valid MAE {record['valid']['loss_mul']:.4f}" + ("  *" if improved else ""))
            if out_dir is not None:
                if improved:
                    atomic_torch_save(self.checkpoint(extra_state, full=False), out_dir / "best.pt")
                atomic_torch_save(self.checkpoint(extra_state, full=True), out_dir / "last.pt")
                atomic_write_json(out_dir / "history.json", self.history)
        return self.history

    @property
    def finished(self) -> bool:
        """True when the epoch budget is spent or early stopping has triggered."""
        return self.epoch >= self.cfg.epochs or self.bad_epochs >= self.cfg.patience

    def restore_best(self, best_file=None) -> None:
        """Load the best validation epoch's weights: from memory, else from ``best_file`` (after a resume)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif best_file is not None and Path(best_file).exists():
            load_weights(self.model, load_checkpoint_file(best_file)["model"], best_file)
        else:
            raise RuntimeError("no best epoch to restore: training ran no epoch")

    # ---- checkpoints (plain types and tensors only: torch.load(weights_only=True) works) ----
    def checkpoint(self, extra_state: dict | None = None, full: bool = True) -> dict:
        ck = {"format": CHECKPOINT_FORMAT, "model_kind": self.kind, "config": self.cfg.to_dict(),
              "dims": {m: list(v) for m, v in self.model.dims.items()},
              "model": self.model.state_dict(), "epoch": self.epoch, **(extra_state or {})}
        if full:
            ck.update({
                "optimizers": {k: o.state_dict() for k, o in self.opt.items()},
                "history": self.history, "best_val": self.best_val, "best_epoch": self.best_epoch,
                "bad_epochs": self.bad_epochs,
                "rng": {"torch": torch.get_rng_state(), "shuffle": self.shuffle.get_state(),
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
                        # the model's own streams (MCIHN's prior samples), by name
                        "model": {k: g.get_state() for k, g in self._model_generators().items()}},
            })
        return ck

    def _model_generators(self) -> dict:
        return self.model.generators() if hasattr(self.model, "generators") else {}

    def _restore_model_generators(self, states: dict) -> None:
        """Continue the model's own random streams: MCIHN's prior stream is made on the first batch, so it
        is made here first, on the training device."""
        if "prior" in states and hasattr(self.model, "prior_generator"):
            self.model.prior_generator(self.device)
        for k, g in self._model_generators().items():
            if k in states:
                g.set_state(states[k])

    def load_checkpoint(self, ck: dict, source="checkpoint") -> None:
        """Restore a ``last.pt`` (everything) or a ``best.pt`` (weights only); ``source`` names it in errors."""
        load_weights(self.model, ck["model"], source)
        self.epoch = int(ck.get("epoch", 0))
        if "optimizers" in ck:
            for k, o in self.opt.items():
                o.load_state_dict(ck["optimizers"][k])
            self.history = list(ck["history"])
            self.best_val, self.best_epoch = float(ck["best_val"]), int(ck["best_epoch"])
            self.bad_epochs = int(ck["bad_epochs"])
            torch.set_rng_state(ck["rng"]["torch"])
            self.shuffle.set_state(ck["rng"]["shuffle"])
            if ck["rng"]["cuda"] and torch.cuda.is_available():
                torch.cuda.set_rng_state_all(ck["rng"]["cuda"])
            if ck["rng"].get("model"):
                self._restore_model_generators(ck["rng"]["model"])
