"""Algorithm 1 - training MCIHN for one seed.

Per batch, in this order (Alg. 1 lines 8-23), each phase with its own Adam
optimiser over exactly the parameters the paper says it updates:

    1. reconstruction  L_AE (Eq. 4)               -> encoders E + decoders D         (line 12)
    2. discriminator   L_disc (Eq. 5), codes fixed -> discriminators D_omega          (line 13)
    3. generator       fool D_omega (Eq. 5)        -> encoders E                      (line 13)
    4. main            L_Mul + lambda L_Adp        -> encoders, CGMM, xi, FFM, head   (lines 14-23)

Phases 1-3 exist only with the AAE (not in MCIHN-1). Decoders and discriminators
get no gradient from the main loss, so "update all parameters" in line 23 and
"update everything L_Combined reaches" are the same thing.

The baselines (``mcihn.baselines``: TFN, LMF, MulT, late fusion) train with the same loop,
the same early stopping and the same checkpoints, with phase 4 alone: one Adam on every
parameter, loss L_Mul (Eq. 18, the MAE). ``mcihn.registry`` builds the model from its config.

Early stopping watches the validation MAE (= L_Mul on the validation split);
the test split is never looked at here. A checkpoint is written atomically every
epoch (``last.pt``, for ``resume``) and whenever validation improves (``best.pt``).
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .aae import discriminator_loss, generator_loss, reconstruction_loss
from .config import MCIHNConfig
from .metrics import evaluate as evaluate_metrics
from .model import MCIHN, main_loss
from .registry import build_model, model_kind
from .utils import atomic_torch_save, atomic_write_json

CHECKPOINT_FORMAT = "mcihn-checkpoint-v1"
#: Optimiser key -> phase name of Algorithm 1.
PHASES = {"rec": "reconstruction", "disc": "discriminator", "gen": "generator", "main": "main (L_Mul + lambda L_Adp)"}


class NonFiniteLossError(RuntimeError):
    """A loss became NaN or inf; the message names the phase, epoch and batch."""


def iterate_batches(tensors: dict, batch_size: int, generator: torch.Generator | None = None):
    """Yield dicts of (B, ...) slices of ``tensors`` (all with the same first axis N).

    With a generator the order is a fresh random permutation (training); without
    one, the natural order (evaluation).
    """
    n = len(tensors["label"])
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size].to(tensors["label"].device)
        yield {k: v[idx] for k, v in tensors.items()}


@torch.no_grad()
def predict(model, tensors: dict, batch_size: int = 256):
    """Predictions (N,) on CPU and the mean L_Adp over the split (None for a model without one), in eval mode."""
    model.eval()
    preds, adp, n = [], 0.0, 0
    for batch in iterate_batches(tensors, batch_size):
        out = model(batch)
        preds.append(out.pred.float().cpu())
        if out.loss_adp is None:
            adp = None
        elif adp is not None:
            adp += out.loss_adp.float().item() * len(batch["label"])
        n += len(batch["label"])
    return torch.cat(preds), (adp / max(n, 1) if adp is not None else None)


class Trainer:
    """Holds the model, its optimisers (four for MCIHN, one without the AAE) and the training state of one run.

    ``cfg`` is an :class:`MCIHNConfig` or the config of a baseline (see ``mcihn.registry``).
    """

    def __init__(self, cfg: MCIHNConfig, dims: dict, device="cpu", amp: bool = False, seed: int = 0):
        self.cfg, self.device = cfg, torch.device(device)
        self.kind = model_kind(cfg)
        self.model = build_model(cfg, dims).to(self.device)
        # Phases 1-3 of Algorithm 1 exist only for MCIHN with its adversarial autoencoders.
        self.aae_phases = isinstance(self.model, MCIHN) and cfg.use_aae

        def adam(params, lr=cfg.lr):
            return torch.optim.Adam(params, lr=lr, foreach=True)  # foreach: one fused loop, also on CPU

        self.opt = {"main": adam(self.model.main_parameters())}
        if self.aae_phases:
            self.opt["rec"] = adam(self.model.encoder_parameters() + self.model.decoder_parameters())
            self.opt["disc"] = adam(self.model.discriminator_parameters(), cfg.lr * cfg.adv_lr_scale)
            self.opt["gen"] = adam(self.model.encoder_parameters(), cfg.lr * cfg.adv_lr_scale)
        # bf16 autocast on CUDA needs no gradient scaler.
        self.amp = bool(amp) and self.device.type == "cuda"
        self.shuffle = torch.Generator().manual_seed(seed)
        self.epoch, self.history = 0, []
        self.best_val, self.best_epoch, self.bad_epochs = float("inf"), 0, 0
        self.best_state = None  # weights of the best validation epoch, in memory

    def autocast(self):
        if self.amp:
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _step(self, name: str, loss: torch.Tensor, where: str) -> float:
        value = loss.item()
        if not torch.isfinite(loss):
            raise NonFiniteLossError(f"non-finite loss ({value}) in the {PHASES[name]} phase at {where}; "
                                     "lower the learning rate, check the inputs for extreme values, or try without --amp")
        opt = self.opt[name]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], self.cfg.grad_clip, foreach=True)
        opt.step()
        return value

    # ---- the four phases of Algorithm 1 -----------------------------------------------
    def step_reconstruction(self, batch, where="?") -> float:
        """Alg. 1 lines 9-12: L_AE (Eq. 4) summed over modalities; updates encoders + decoders."""
        with self.autocast():
            S = self.model.encode(batch)
            loss = sum(reconstruction_loss(batch[m], self.model.aae[m].decoder(S[m]).float(), batch.get(m + "_mask"))
                       for m in self.model.modalities)
        return self._step("rec", loss, where)

    def step_discriminator(self, batch, where="?") -> float:
        """Alg. 1 line 13 (first half): Eq. 5 for D_omega; codes are computed without gradients."""
        with torch.no_grad(), self.autocast():
            S = self.model.encode(batch)
        with self.autocast():
            loss = sum(discriminator_loss(self.model.aae[m].discriminator, S[m].float()) for m in self.model.modalities)
        return self._step("disc", loss, where)

    def step_generator(self, batch, where="?") -> float:
        """Alg. 1 line 13 (second half): encoders learn to fool the (fixed) discriminators."""
        with self.autocast():
            S = self.model.encode(batch)
            loss = self.cfg.adv_weight * sum(generator_loss(self.model.aae[m].discriminator, S[m].float())
                                             for m in self.model.modalities)
        return self._step("gen", loss, where)

    def step_main(self, batch, where="?") -> dict:
        """Alg. 1 lines 14-23: L_Combined = L_Mul + lambda * L_Adp (Eq. 18-19).

        A baseline has no L_Adp: its loss is L_Mul alone and it logs {"total", "mul"}.
        """
        with self.autocast():
            out = self.model(batch)
            if isinstance(self.model, MCIHN):
                total, l_mul, l_adp = main_loss(out, batch["label"], self.cfg.mmd_weight)
            else:
                total = l_mul = F.l1_loss(out.pred.float(), batch["label"].float())  # Eq. 18
                l_adp = None
        value = self._step("main", total, where)
        logs = {"total": value, "mul": l_mul.item()}
        if l_adp is not None:
            logs["adp"] = l_adp.item()
        return logs

    def train_batch(self, batch, where="?") -> dict:
        self.model.train()
        logs = {}
        if self.aae_phases:
            logs["rec"] = self.step_reconstruction(batch, where)
            logs["disc"] = self.step_discriminator(batch, where)
            logs["gen"] = self.step_generator(batch, where)
        logs.update(self.step_main(batch, where))
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
        from tqdm.auto import tqdm

        out_dir = Path(out_dir) if out_dir is not None else None
        n_batches = -(-len(train["label"]) // self.cfg.batch_size)
        while not self.finished:
            epoch, t0 = self.epoch + 1, time.time()
            sums: dict = {}
            bar = tqdm(iterate_batches(train, self.cfg.batch_size, self.shuffle), total=n_batches,
                       desc=f"epoch {epoch}/{self.cfg.epochs}", leave=False, disable=not progress)
            for i, batch in enumerate(bar):
                logs = self.train_batch(batch, where=f"epoch {epoch}, batch {i + 1}/{n_batches}")
                for k, v in logs.items():
                    sums[k] = sums.get(k, 0.0) + v
                bar.set_postfix({k: f"{v / (i + 1):.3f}" for k, v in sums.items()})
            record = {"epoch": epoch, "train": {k: v / n_batches for k, v in sums.items()},
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
            self.model.load_state_dict(load_checkpoint_file(best_file)["model"])
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
                        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []},
            })
        return ck

    def load_checkpoint(self, ck: dict) -> None:
        """Restore a ``last.pt`` (everything) or a ``best.pt`` (weights only)."""
        self.model.load_state_dict(ck["model"])
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
