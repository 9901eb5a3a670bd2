"""Algorithm 1: the training loop of one seed, for any model of the registry.

A model says what training means for it through ``training_phases()`` (``mcihn.model.phases``):
an ordered list of phases, each a loss and the parameters it updates. Per batch the trainer
runs them in that order, each with its own Adam optimiser over exactly its parameters. For
MCIHN that is Alg. 1 lines 8-23 (see ``MCIHN.training_phases``); for a baseline one phase,
its task loss L_Mul (Eq. 18). The trainer has no model-specific code.

Early stopping watches the validation MAE (= L_Mul on the validation split); the test split is
never looked at here. A checkpoint is written atomically every epoch (``last.pt``, for resume)
and whenever validation improves (``best.pt``); its format, and what a resume restores, are in
``checkpoint.py``. The pieces of a step (batches, optimisers, the learning-rate curve, the check for
non-finite losses) are in ``steps.py``.

Host synchronisation: a non-finite loss stops training, naming the phase, epoch and batch. On a
GPU the check is kept on the device and read every ``sync_every`` batches (and at the end of each
epoch), so the step does not wait for the GPU; on the CPU there is nothing to wait for and it is
read at once, before the bad step is applied. Loss logs are summed on the device likewise.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch

from ..metrics import evaluate as evaluate_metrics
from .checkpoint import load_checkpoint_file, load_weights, make_checkpoint, restore_training_state, save_epoch
from .registry import build_model, model_kind
from .steps import NonFiniteWatch, iterate_batches, lr_factor, make_optimizers, predict

# Names this module has always offered (tests, notebooks, scripts import them from here).
from .checkpoint import CHECKPOINT_FORMAT  # noqa: F401
from .steps import NonFiniteLossError  # noqa: F401


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
        self.opt = make_optimizers(self.phases, cfg)
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

    # ---- the epoch loop ---------------------------------------------------------------
    def fit(self, train: dict, valid: dict, dataset: str, out_dir=None, extra_state: dict | None = None,
            progress: bool = True, log=print, on_epoch=None, legend: bool = False) -> list:
        """Train until ``cfg.epochs`` or early stopping; returns the history (one dict per epoch).

        ``train`` / ``valid``: tensors from ``SplitData.to_tensors`` already on the device.
        ``extra_state`` (config, dims, normaliser, ...) is stored in every checkpoint.
        Continues from ``self.epoch`` (set by :meth:`load_checkpoint` when resuming).
        ``on_epoch(trainer, record)``, when given, runs after each epoch's validation and may add
        keys to ``record`` (what it adds is saved in the history); the notebooks use it to
        follow quantities such as the per-term MMD during training. ``legend``: log what the epoch
        line's names mean (:func:`epoch_legend`) above the first one.
        """
        out_dir = Path(out_dir) if out_dir is not None else None
        while not self.finished:
            epoch, t0 = self.epoch + 1, time.time()
            record = {"epoch": epoch, "train": self.train_epoch(train, epoch, progress),
                      "valid": self.validate(valid, dataset), "time_s": round(time.time() - t0, 3)}
            if on_epoch is not None:
                on_epoch(self, record)
            improved = self._end_epoch(record)
            if legend:  # once, above the first epoch line
                log(epoch_legend(record["train"]))
                legend = False
            log(epoch_line(record, improved))
            if out_dir is not None:
                save_epoch(self, out_dir, extra_state, improved)
        return self.history

    def _end_epoch(self, record: dict) -> bool:
        """Add ``record`` to the history and update early stopping; True when validation improved."""
        self.history.append(record)
        self.epoch = record["epoch"]
        improved = record["valid"]["loss_mul"] < self.best_val - 1e-6
        if improved:
            self.best_val, self.best_epoch, self.bad_epochs = record["valid"]["loss_mul"], self.epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        else:
            self.bad_epochs += 1
        return improved

    @property
    def finished(self) -> bool:
        """True when the epoch budget is spent or early stopping has triggered."""
        return self.epoch >= self.cfg.epochs or self.bad_epochs >= self.cfg.patience

    def stop_reason(self) -> str:
        """Why training stopped (or would stop now), in words, with the epoch chosen on validation."""
        if self.epoch >= self.cfg.epochs:
            why = f"epoch limit reached ({self.cfg.epochs} epochs)"
        elif self.bad_epochs >= self.cfg.patience:
            why = (f"early stopping at epoch {self.epoch}: no better validation MAE for {self.cfg.patience} epochs "
                   "(patience)")
        else:
            why = f"not finished (epoch {self.epoch} of at most {self.cfg.epochs})"
        return f"{why}; best epoch {self.best_epoch}"

    def train_epoch(self, train: dict, epoch: int, progress: bool = True) -> dict:
        """One pass over ``train`` in a fresh random order; returns the mean of each log over the batches."""
        from tqdm.auto import tqdm

        n_batches = -(-len(train["label"]) // self.cfg.batch_size)
        for phase in self.phases:  # per-epoch state of the model (Phase.epoch_start), e.g. Self-MM's label banks
            if phase.epoch_start is not None:
                phase.epoch_start(epoch, train)
        watch = NonFiniteWatch(immediate=self.sync_every == 1)
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

    # ---- one batch: every phase of the model, in order ---------------------------------
    def train_batch(self, batch: dict, where: str = "?", watch: NonFiniteWatch | None = None) -> dict:
        """All phases on one batch; returns {log name: detached scalar tensor}."""
        self.model.train()
        logs = {}
        for phase in self.phases:
            logs.update(self.run_phase(phase, batch, where, watch))
        return logs

    def run_phase(self, phase, batch: dict, where: str = "?", watch: NonFiniteWatch | None = None) -> dict:
        """Compute ``phase``'s loss on ``batch`` and take one step of its optimiser; returns its logs."""
        with self.autocast():
            loss, logs = phase.loss(batch)
        (watch or NonFiniteWatch(immediate=True)).add(loss, phase.name, where)
        opt = self.opt[phase.key]
        for g in opt.param_groups:  # warm-up and schedule (lr_factor), from the step count
            g["lr"] = g["base_lr"] * self.lr_scale
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(phase.all_params(), self.cfg.grad_clip, foreach=True)
        opt.step()
        return logs

    def autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

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

    def restore_best(self, best_file=None) -> None:
        """Load the best validation epoch's weights: from memory, else from ``best_file`` (after a resume)."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        elif best_file is not None and Path(best_file).exists():
            load_weights(self.model, load_checkpoint_file(best_file)["model"], best_file)
        else:
            raise RuntimeError("no best epoch to restore: training ran no epoch")

    # ---- checkpoints (made and read back in checkpoint.py) -------------------------------
    def checkpoint(self, extra_state: dict | None = None, full: bool = True) -> dict:
        """:func:`checkpoint.make_checkpoint` of this trainer."""
        return make_checkpoint(self, extra_state, full)

    def load_checkpoint(self, ck: dict, source="checkpoint") -> None:
        """Restore a ``last.pt`` (everything) or a ``best.pt`` (weights only); ``source`` names it in errors."""
        restore_training_state(self, ck, source)


def epoch_line(record: dict, improved: bool) -> str:
    """The progress line of one epoch: its training logs, the validation MAE, and ``*`` when it improved."""
    return (f"epoch {record['epoch']:3d}  " + "  ".join(f"{k} {v:.4f}" for k, v in record["train"].items())
            + f"  | valid MAE {record['valid']['loss_mul']:.4f}" + ("  *" if improved else ""))


#: What the names of an epoch line stand for; a model logs some of them (each phase's ``loss`` returns its logs).
LOG_NAMES = {
    "total": "the loss the step minimises",
    "mul": "L_Mul, the task's L1 loss (Eq. 18)",
    "adp": "L_Adp, the MMD loss (Eq. 14)",
    "rec": "L_AE, the reconstruction loss (Eq. 4)",
    "gen": "the generator loss (Eq. 5)",
    "disc": "the discriminator loss (Eq. 5)",
    "disc_acc": "the discriminator's accuracy",
    "attra": "EMT's attraction loss", "recon": "EMT's reconstruction loss",
    "uni": "CMHFM's unimodal task L1", "bi": "CMHFM's bimodal task L1", "tri": "CMHFM's trimodal task L1",
    "text": "Self-MM's text task L1", "audio": "Self-MM's audio task L1", "vision": "Self-MM's vision task L1",
}


def epoch_legend(train_logs) -> str:
    """One line saying what the names of an epoch line (:func:`epoch_line`) mean, for the logs it shows."""
    names = [f"{k} = {LOG_NAMES.get(k, 'a training log of the model')}" for k in train_logs]
    return ("legend: " + "; ".join(names) + " (training means over the epoch); valid MAE = L_Mul on the validation "
            "split; * = best validation MAE so far (saved as best.pt)")
