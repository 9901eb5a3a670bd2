"""Self-MM - self-supervised multi-task learning of modality-specific representations (Yu, Xu, Yuan and
Wu, AAAI 2021). Reference: MMSA's ``SELF_MM`` model and trainer (the authors' code).

The network (MMSA's ``models/multiTask/SELF_MM.py``):

1. Unimodal subnetworks. Text: in the paper a fine-tuned BERT and its [CLS] vector; here the
   features are pre-extracted token states, so the text vector is their mean over the real tokens
   through a linear projection (D_t -> text_out), the stand-in for the [CLS] vector. Audio and
   vision: an LSTM, its state at the last real frame, a linear layer (``RecurrentSubnet``).
2. Four representations, each one ReLU layer on dropout of its input:
       F*_m = ReLU(W_m^1 [z_t; z_a; z_v] + b)       fusion, (B, post_fusion_dim)
       F*_s = ReLU(W_s^1 z_s + b)                   s in {t, a, v}, (B, post_s_dim)
3. Four heads, each ReLU(linear) then a linear output: y_M, y_T, y_A, y_V (B,).

Training (MMSA's ``trains/multiTask/SELF_MM.py``). Only the multimodal label y_m exists (on MOSI);
the unimodal labels y_s are *generated* by the unimodal label generation module (ULGM) and kept
per training sample:

* Feature banks: F*_m and every F*_s of each training sample, (N, d), overwritten for a batch's
  samples after each step (the features of that forward pass, detached). Label banks: y_m and every
  y_s, (N,), y_s initialised to y_m.
* Class centres, recomputed from the banks: C^p_s = mean of F*_s over samples with y_s > 0, C^n_s
  over y_s < 0 (MMSA's ``excludeZero``: labels of exactly 0 belong to neither); likewise C^p_m,
  C^n_m with y_m.
* Relative distance of a sample to the positive centre: with D^p = ||F* - C^p||_2 and
  D^n = ||F* - C^n||_2, alpha = (D^n - D^p) / (D^p + eps) for the fusion (alpha_m) and for each
  modality (alpha_s). Large alpha: the sample's representation sits on the positive side.
* Label shift: the unimodal label should differ from y_m as alpha_s differs from alpha_m; the
  paper combines a ratio and a difference estimate,
       y_s^new = 1/2 (y_m alpha_s / alpha_m) + 1/2 (y_m + alpha_s - alpha_m),    clipped to [-H, H]
  (H: the label bound, 3 on MOSI / MOSEI, 1 on SIMS).
* Momentum over epochs: at epoch n,  y_s <- (n - 1)/(n + 1) y_s + 2/(n + 1) y_s^new, i.e. y_s is a
  weighted mean of all the epochs' estimates with weights growing with the epoch. Updates start at
  epoch 2 (MMSA: ``if epochs > 1``): in epoch 1 the feature banks are still being filled.
* Loss: L = sum_{i in {m, t, a, v}} mean_batch( w_i |y_hat_i - y_i| ), L1 for every task, with w_m = 1
  and w_s = tanh(|y_s - y_m|): a modality whose generated label agrees with y_m contributes little.
  In epoch 1 all y_s = y_m, so the unimodal heads get no gradient yet (as in MMSA).

Order within a batch, as MMSA: forward; the loss with the label banks as they are; (from epoch 2) the
labels of the batch's samples are updated from the batch's features and the centres of the banks
before this batch; then the batch's features are written to the banks. The trainer steps Adam.

The epoch number and the banks' initialisation come from the training phase's ``epoch_start`` hook
(``mcihn.model.phases.Phase``), which the trainer calls before every epoch with the training
tensors; batches carry each sample's ``"index"``. All banks are buffers: they are in every
checkpoint, so a resumed run continues with the labels it had generated. Prediction (evaluation,
``predict``) uses y_M alone and needs neither.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.phases import Phase
from .common import BaselineConfig, BaselineModel, BaselineOutput, RecurrentSubnet, masked_mean

#: MMSA's ``MIN``: keeps the relative distances finite when a feature sits on its centre.
EPS = 1e-8
#: Bank names: the fusion representation and each modality's.
FUSION = "fusion"


@dataclass
class SelfMMConfig(BaselineConfig):
    """Sizes of Self-MM. Paper preset: MMSA's MOSI settings (text_out 768 = BERT's width; audio LSTM 16
    -> 16, vision LSTM 32 -> 32; post dims fusion 128, text 32, audio 16, vision 32)."""

    text_out: int = 768
    audio_hidden: int = 16
    audio_out: int = 16
    vision_hidden: int = 32
    vision_out: int = 32
    post_fusion_dim: int = 128
    post_text_dim: int = 32
    post_audio_dim: int = 16
    post_vision_dim: int = 32
    dropout: float = 0.1
    update_start_epoch: int = 2          # first epoch whose batches update the unimodal labels (MMSA: epochs > 1)
    label_bound: float | None = None     # H; None: the largest |y_m| of the training split (3 on MOSI, 1 on SIMS)

    kind: ClassVar[str] = "selfmm"
    title: ClassVar[str] = "Self-MM"
    TINY: ClassVar[dict] = dict(text_out=16, audio_hidden=8, audio_out=8, vision_hidden=8, vision_out=8,
                                post_fusion_dim=16, post_text_dim=8, post_audio_dim=8, post_vision_dim=8)

    def __post_init__(self):
        super().__post_init__()
        if self.label_bound is not None and not self.label_bound > 0:
            raise ValueError(f"label_bound must be > 0 (or None: from the data), got {self.label_bound}")

    def out_dim(self, m: str) -> int:
        return {"text": self.text_out, "audio": self.audio_out, "vision": self.vision_out}[m]

    def post_dim(self, m: str) -> int:
        return {FUSION: self.post_fusion_dim, "text": self.post_text_dim, "audio": self.post_audio_dim,
                "vision": self.post_vision_dim}[m]


class Head(nn.Module):
    """Dropout -> ReLU(linear) = the representation F* (B, d) -> ReLU(linear) -> linear = y (B,)."""

    def __init__(self, d_in: int, d: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.layer1, self.layer2, self.out = nn.Linear(d_in, d), nn.Linear(d, d), nn.Linear(d, 1)

    def forward(self, x: torch.Tensor):
        f = F.relu(self.layer1(self.drop(x)))  # (B, d)
        return self.out(F.relu(self.layer2(f))).squeeze(-1), f  # (B,), (B, d)


def relative_distance(f: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor) -> torch.Tensor:
    """alpha = (D^n - D^p) / (D^p + eps): f (B, d), centres (d,) -> (B,)."""
    d_p = torch.linalg.vector_norm(f - pos, dim=-1)  # (B,)
    d_n = torch.linalg.vector_norm(f - neg, dim=-1)  # (B,)
    return (d_n - d_p) / (d_p + EPS)


def shifted_label(y_m: torch.Tensor, alpha_s: torch.Tensor, alpha_m: torch.Tensor, bound: float) -> torch.Tensor:
    """The ULGM's new unimodal label: the mean of the ratio estimate y_m alpha_s / alpha_m and the
    difference estimate y_m + alpha_s - alpha_m, clipped to [-H, H]. All (B,)."""
    ratio = y_m * alpha_s / (alpha_m + EPS)
    difference = y_m + alpha_s - alpha_m
    return (0.5 * ratio + 0.5 * difference).clamp(-bound, bound)


def momentum_update(old: torch.Tensor, new: torch.Tensor, epoch: int) -> torch.Tensor:
    """y_s <- (n - 1)/(n + 1) y_s + 2/(n + 1) y_s^new at epoch n (the weights sum to 1)."""
    n = float(epoch)
    return (n - 1) / (n + 1) * old + 2 / (n + 1) * new


class SelfMM(BaselineModel):
    def __init__(self, cfg: SelfMMConfig, dims: dict):
        """cfg: sizes; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__(cfg, dims)
        self.subnet = nn.ModuleDict()
        for m in self.modalities:
            D = self.dims[m][1]
            if m == "text":
                self.subnet[m] = nn.Linear(D, cfg.text_out)  # on the masked mean of the token states
            else:
                hidden = cfg.audio_hidden if m == "audio" else cfg.vision_hidden
                self.subnet[m] = RecurrentSubnet(D, hidden, cfg.out_dim(m), cfg.dropout)
        self.tasks = [FUSION] + self.modalities
        fused_in = sum(cfg.out_dim(m) for m in self.modalities)
        self.heads = nn.ModuleDict({t: Head(fused_in if t == FUSION else cfg.out_dim(t), cfg.post_dim(t), cfg.dropout)
                                    for t in self.tasks})
        # ULGM state over the training set, sized at the first epoch (epoch_start): buffers, so checkpoints hold it.
        for t in self.tasks:
            self.register_buffer(f"bank_feat_{t}", torch.zeros(0, cfg.post_dim(t)))  # (N, d_t)
            self.register_buffer(f"bank_label_{t}", torch.zeros(0))  # (N,); the fusion row is y_m
        self.register_buffer("label_bound", torch.tensor(float(cfg.label_bound or 0.0)))  # H
        self.epoch = 0  # set by epoch_start; only the training loss reads it

    # ---- the network -----------------------------------------------------------------
    def encode(self, batch: dict) -> tuple[dict, dict]:
        """-> (predictions {task: (B,)}, representations F* {task: (B, d_task)}) for tasks fusion, text, ..."""
        z = {}
        for m in self.modalities:
            mask = batch.get(m + "_mask")
            if m == "text":
                z[m] = self.subnet[m](masked_mean(batch[m], mask))  # (B, D_t) -> (B, text_out)
            else:
                z[m] = self.subnet[m](batch[m], mask)[0]  # (B, out_m)
        fused = torch.cat([z[m] for m in self.modalities], dim=-1)  # (B, sum out_m)
        preds, feats = {}, {}
        for t in self.tasks:
            preds[t], feats[t] = self.heads[t](fused if t == FUSION else z[t])
        return preds, feats

    def forward(self, batch: dict) -> BaselineOutput:
        """pred = y_M (B,); unimodal: modality -> y_s (B,); fused: F*_m (B, post_fusion_dim)."""
        preds, feats = self.encode(batch)
        return BaselineOutput(pred=preds[FUSION], unimodal={m: preds[m] for m in self.modalities}, fused=feats[FUSION])

    # ---- the ULGM's banks ---------------------------------------------------------------
    def bank(self, kind: str, task: str) -> torch.Tensor:
        return getattr(self, f"bank_{kind}_{task}")

    @property
    def banks_ready(self) -> bool:
        return self.bank("label", FUSION).numel() > 0

    def start_epoch(self, epoch: int, train: dict) -> None:
        """Phase hook: remember the epoch; before the first one, size the banks to the training split
        and set every label to y_m (MMSA's ``init_labels``). After a resume the banks come from the
        checkpoint and are left as they are."""
        self.epoch = int(epoch)
        n = len(train["label"])
        if self.banks_ready and self.bank("label", FUSION).shape[0] == n:
            return
        if "index" not in train:
            raise ValueError("Self-MM needs each training sample's 'index' (SplitData.to_tensors adds it)")
        y = torch.zeros(n, device=self.label_bound.device)
        y[train["index"].to(y.device)] = train["label"].to(y)  # (N,) in index order
        for t in self.tasks:
            setattr(self, f"bank_feat_{t}", torch.zeros(n, self.cfg.post_dim(t), device=y.device))
            setattr(self, f"bank_label_{t}", y.clone())
        if self.cfg.label_bound is None:
            self.label_bound.fill_(float(y.abs().max()) or 1.0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        """Banks are sized by the training split: take the checkpoint's size before copying into them."""
        for name in list(self._buffers):
            key = prefix + name
            if name.startswith("bank_") and key in state_dict and state_dict[key].shape != self._buffers[name].shape:
                self._buffers[name] = torch.zeros_like(state_dict[key], device=self._buffers[name].device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def centres(self, task: str) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(C^p, C^n) (d,) of one bank, split by that bank's labels (> 0 and < 0); None if a class is empty."""
        feats, labels = self.bank("feat", task), self.bank("label", task)
        pos, neg = labels > 0, labels < 0
        if not pos.any() or not neg.any():
            return None
        return feats[pos].mean(dim=0), feats[neg].mean(dim=0)

    @torch.no_grad()
    def update_labels(self, feats: dict, index: torch.Tensor, epoch: int) -> None:
        """The ULGM step for one batch: new unimodal labels of samples ``index`` (B,) from their
        representations ``feats`` {task: (B, d)}, the banks' centres and the momentum of ``epoch``."""
        c_m = self.centres(FUSION)
        if c_m is None:  # no positive or no negative sample: no relative distance to measure
            return
        alpha_m = relative_distance(feats[FUSION], *c_m)  # (B,)
        y_m = self.bank("label", FUSION)[index]  # (B,)
        for m in self.modalities:
            c_s = self.centres(m)
            if c_s is None:
                continue
            alpha_s = relative_distance(feats[m], *c_s)  # (B,)
            new = shifted_label(y_m, alpha_s, alpha_m, float(self.label_bound))
            bank = self.bank("label", m)
            bank[index] = momentum_update(bank[index], new, epoch)

    @torch.no_grad()
    def store_features(self, feats: dict, index: torch.Tensor) -> None:
        for t in self.tasks:
            self.bank("feat", t)[index] = feats[t].detach().to(self.bank("feat", t).dtype)

    # ---- training ---------------------------------------------------------------------
    def training_phases(self) -> list[Phase]:
        """One phase: the four weighted L1 task losses on every parameter, one Adam; its epoch_start
        hook keeps the epoch and the banks."""
        return [Phase("main", "main (Self-MM multi-task L1)", self.main_parameters(), self.task_loss,
                      epoch_start=self.start_epoch)]

    def task_loss(self, batch: dict):
        """sum_i mean(w_i |y_hat_i - y_i|) with the banks' labels; then the ULGM updates (no gradient)."""
        if "index" not in batch:
            raise ValueError("Self-MM trains on batches with each sample's 'index' (SplitData.to_tensors adds it)")
        if not self.banks_ready:
            raise RuntimeError("Self-MM's label banks are empty: training must go through the phase's epoch_start "
                               "hook (the Trainer calls it before each epoch)")
        index = batch["index"].to(self.label_bound.device)
        preds, feats = self.encode(batch)
        y_m = self.bank("label", FUSION)[index]  # (B,)
        logs, total = {}, 0.0
        for t in self.tasks:
            y_t = self.bank("label", t)[index].clone()  # (B,): the labels before this batch's update
            w = torch.ones_like(y_t) if t == FUSION else torch.tanh((y_t - y_m).abs())
            loss_t = (w * (preds[t].float() - y_t).abs()).mean()
            total = total + loss_t
            logs["mul" if t == FUSION else t] = loss_t.detach()
        if self.epoch >= self.cfg.update_start_epoch:
            self.update_labels({t: f.detach().float() for t, f in feats.items()}, index, self.epoch)
        self.store_features(feats, index)
        logs["total"] = total.detach()
        return total, logs
