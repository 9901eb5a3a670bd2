"""EMT-DLFR - Efficient Multimodal Transformer with Dual-Level Feature Restoration (Sun, Lian, Liu and
Tao, IEEE Trans. Affective Computing 2023). Reference: the authors' repository sunlicai/EMT-DLFR
(``models/missingTask/EMT_DLFR.py``, ``models/subNets/EMT.py``, ``trains/missingTask/EMT_DLFR.py``).

The network:

1. Unimodal encoders. Text: in the paper a fine-tuned BERT (its [CLS] vector = the utterance
   vector, its token states = the local sequence); here the token states are pre-extracted, so the
   local sequence is a linear map of them (D_t -> text_out) and the utterance vector their mean
   over the real tokens. Audio / vision: an LSTM; its per-step outputs are the local sequence, its
   state at the last real frame the utterance vector, both through one linear layer
   (``RecurrentSubnet``).
2. Projection of every modality to width d (linear, no bias). The *global multimodal context*
   (GMC) is the stack of the M projected utterance vectors, G (B, M, d); the *local* sequences
   X_m (B, T_m, d) get sinusoidal positions.
3. EMT layers. In each layer and for each modality m, a mutual promotion unit (MPU) of two halves:
       X_m' = half(X_m <- G)     local  <- global: cross-attention of X_m's steps to the M GMC tokens,
                                  then self-attention over X_m, then a GEGLU feed-forward block
       G_m  = half(G   <- X_m)   global <- local: cross-attention of the M tokens to X_m's real steps,
                                  then self-attention over the M tokens, then the feed-forward block
   (pre-LayerNorm, a residual around every block). The cross-attentions cost O(M T_m), linear in
   the sequence length, where MulT's pairwise crossmodal attention costs O(T_i T_j). The M updated
   contexts G_1..G_M are merged by attention pooling: a score for each (a linear, tanh, linear on
   the flattened (M d) context), softmax over the M, weighted sum -> the next layer's G.
   ``local_self_attention=False`` drops the self-attention over X_m, which makes the whole fusion
   linear in T_m; ``share`` (the released configs: mpu_share = modality_share = layer_share = True)
   uses one half-MPU module for both directions, all modalities and all layers.
4. Prediction: [utterance vectors; flattened G] -> ReLU(linear) -> ReLU(linear) -> linear.

Dual-level feature restoration (DLFR), on an *incomplete view* of each training batch:

* Incomplete view: each real time step of each modality is masked with probability
  ``mask_rate`` (its features set to 0, the training mean after normalisation; the released code
  replaces text tokens by BERT's [UNK] id). The padding masks are those of the complete view: a
  masked step is still a step, its content is missing.
* Both views go through the same network. Task loss: L1 of the incomplete view's prediction.
* High-level attraction (utterance level, SimSiam): for the GMC and each modality's utterance
  vector, a projector (linear + BatchNorm without affine) gives z and a predictor (linear,
  BatchNorm, ReLU, linear) gives p; L_attra = sum over the four of
  -1/2 [cos(p_incomplete, stop-grad z_complete) + cos(p_complete, stop-grad z_incomplete)],
  plus, as in the released trainer, the L1 of the complete view's prediction.
* Low-level reconstruction (token level): a linear decoder per modality maps the incomplete view's
  EMT output X_m' back to the input features; SmoothL1 on the *masked real* positions only,
  summed and divided by (number of such positions x D_m), as the released ``ReconLoss``.
* L = L1(incomplete) + w_attra L_attra + w_recon L_recon (released MOSI config: both weights 1).

With ``dlfr=False`` the model is EMT alone: one view, L = L1 of its prediction. Prediction
(validation, test, ``predict``) always uses the complete input: the incomplete view is a training
device here (the released code evaluates on test data with a fixed missing rate; our robustness
command measures that separately, for every model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.phases import Phase
from .common import BaselineConfig, BaselineModel, BaselineOutput, RecurrentSubnet, masked_mean
from .mult import sinusoidal_positions


@dataclass
class EMTConfig(BaselineConfig):
    """Sizes of EMT-DLFR. Paper preset: the released MOSI config (LSTMs audio 32 -> 16, vision 64 -> 32,
    text_out 768; d 128, 3 layers, 4 heads, feed-forward x4, all modules shared; predictors gmc 128,
    text 256, audio 8, vision 16; prediction MLP 256; attention dropout 0.3 there, one rate here)."""

    text_out: int = 768
    audio_hidden: int = 32
    audio_out: int = 16
    vision_hidden: int = 64
    vision_out: int = 32
    d_model: int = 128
    layers: int = 3
    heads: int = 4
    ff_expansion: int = 4
    share: bool = True
    local_self_attention: bool = True
    gmc_pred_dim: int = 128
    text_pred_dim: int = 256
    audio_pred_dim: int = 8
    vision_pred_dim: int = 16
    post_fusion_dim: int = 256
    dropout: float = 0.1
    dlfr: bool = True                # the dual-level feature restoration losses (False: EMT alone)
    mask_rate: float = 0.2           # probability that a real time step is missing in the incomplete view
    attra_weight: float = 1.0
    recon_weight: float = 1.0

    kind: ClassVar[str] = "emt"
    title: ClassVar[str] = "EMT"
    TINY: ClassVar[dict] = dict(text_out=16, audio_hidden=8, audio_out=8, vision_hidden=8, vision_out=8, d_model=16,
                                layers=1, heads=2, ff_expansion=2, gmc_pred_dim=8, text_pred_dim=8, audio_pred_dim=4,
                                vision_pred_dim=4, post_fusion_dim=16)
    MIN_MODALITIES: ClassVar[int] = 2

    def __post_init__(self):
        super().__post_init__()
        if self.d_model % self.heads:
            raise ValueError(f"d_model={self.d_model} must be divisible by heads={self.heads}")
        if not (0 <= self.mask_rate < 1):
            raise ValueError(f"mask_rate must be in [0, 1), got {self.mask_rate}")

    @property
    def variant(self) -> str:
        name = super().variant
        return name if self.dlfr else name.replace(self.title, self.title + " (no DLFR)", 1)

    def out_dim(self, m: str) -> int:
        return {"text": self.text_out, "audio": self.audio_out, "vision": self.vision_out}[m]

    def pred_dim(self, m: str) -> int:
        return {"gmc": self.gmc_pred_dim, "text": self.text_pred_dim, "audio": self.audio_pred_dim,
                "vision": self.vision_pred_dim}[m]


# ----------------------------------------------------------------------------- the EMT layers
def attention_mask(mask: torch.Tensor | None) -> torch.Tensor | None:
    """(B, T) True = real -> key_padding_mask (B, T) True = ignore; a row without a real step ignores
    nothing (it attends to zeros) so that the softmax stays finite."""
    if mask is None:
        return None
    return ~(mask | ~mask.any(dim=1, keepdim=True))


class GEGLU(nn.Module):
    """The released feed-forward block: linear to 2 k d, x * GELU(gate), linear back to d."""

    def __init__(self, d: int, k: int, dropout: float):
        super().__init__()
        self.inp, self.out, self.drop = nn.Linear(d, 2 * k * d), nn.Linear(k * d, d), nn.Dropout(dropout)

    def forward(self, x):
        a, gate = self.inp(x).chunk(2, dim=-1)  # (..., k d) each
        return self.drop(self.out(a * F.gelu(gate)))


class HalfMPU(nn.Module):
    """One direction of a mutual promotion unit: target <- source cross-attention, (optional) self-attention
    over the target, feed-forward; pre-LayerNorm and a residual around each."""

    def __init__(self, d: int, heads: int, ff_expansion: int, dropout: float):
        super().__init__()
        self.ln_q, self.ln_kv, self.ln_self, self.ln_ff = (nn.LayerNorm(d) for _ in range(4))
        self.cross = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.self_attn = nn.MultiheadAttention(d, heads, dropout=dropout, batch_first=True)
        self.ff = GEGLU(d, ff_expansion, dropout)

    def forward(self, x, source, source_pad=None, x_pad=None, self_attention: bool = True):
        """x (B, T_x, d) attends to source (B, T_s, d); pads (B, T) True = ignore -> (B, T_x, d)."""
        kv = self.ln_kv(source)
        x = x + self.cross(self.ln_q(x), kv, kv, key_padding_mask=source_pad, need_weights=False)[0]
        if self_attention:
            h = self.ln_self(x)
            x = x + self.self_attn(h, h, h, key_padding_mask=x_pad, need_weights=False)[0]
        return x + self.ff(self.ln_ff(x))


class ContextPool(nn.Module):
    """Attention pooling of the M updated contexts: (B, M, M d) -> (B, M d)."""

    def __init__(self, width: int):
        super().__init__()
        self.score = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1))

    def forward(self, contexts: torch.Tensor) -> torch.Tensor:
        w = torch.softmax(self.score(contexts), dim=1)  # (B, M, 1)
        return (w * contexts).sum(dim=1)  # (B, M d)


class EMTFusion(nn.Module):
    """The EMT stack: G (B, M, d) and local sequences [X_m (B, T_m, d)] -> (G (B, M, d), [X_m' (B, T_m, d)])."""

    def __init__(self, cfg: EMTConfig, n_modalities: int):
        super().__init__()
        self.cfg, self.M = cfg, n_modalities
        d = cfg.d_model

        def half():
            return HalfMPU(d, cfg.heads, cfg.ff_expansion, cfg.dropout)

        if cfg.share:  # one module everywhere (the released configs)
            self.shared = half()
        else:  # per layer, per modality, per direction ("local" <- global, "global" <- local)
            self.units = nn.ModuleList([nn.ModuleList([nn.ModuleDict({"local": half(), "global": half()})
                                                       for _ in range(n_modalities)]) for _ in range(cfg.layers)])
        self.pools = nn.ModuleList([ContextPool(n_modalities * d) for _ in range(1 if cfg.share else cfg.layers)])

    def unit(self, layer: int, m: int, direction: str) -> HalfMPU:
        return self.shared if self.cfg.share else self.units[layer][m][direction]

    def forward(self, g: torch.Tensor, xs: list, pads: list):
        B = g.shape[0]
        for layer in range(self.cfg.layers):
            contexts, new_xs = [], []
            for i, (x, pad) in enumerate(zip(xs, pads)):
                new_xs.append(self.unit(layer, i, "local")(x, g, None, pad, self.cfg.local_self_attention))
                contexts.append(self.unit(layer, i, "global")(g, x, pad, None, True))  # (B, M, d)
            stacked = torch.stack(contexts, dim=1).reshape(B, self.M, -1)  # (B, M contexts, M d)
            pool = self.pools[0 if self.cfg.share else layer]
            g = pool(stacked).reshape(B, self.M, -1)  # (B, M d) -> (B, M, d)
            xs = new_xs
        return g, xs


# ----------------------------------------------------------------------------- DLFR pieces
class Projector(nn.Module):
    """SimSiam projector: linear + BatchNorm without affine parameters."""

    def __init__(self, d: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, d), nn.BatchNorm1d(d, affine=False))

    def forward(self, x):
        return self.net(x)


class Predictor(nn.Module):
    """SimSiam predictor: linear (no bias), BatchNorm, ReLU, linear."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),
                                 nn.Linear(hidden, d))

    def forward(self, x):
        return self.net(x)


def incomplete_view(batch: dict, modalities, rate: float, generator: torch.Generator | None = None):
    """Mask each real step of each of ``modalities`` with probability ``rate``.

    Returns (view, missing): ``view`` a copy of ``batch`` whose listed modalities have the masked
    steps set to 0 (every other key is the batch's own tensor, untouched), ``missing`` {m: (B, T_m)
    bool, True = a real step that was masked}. The padding masks are not changed."""
    view, missing = dict(batch), {}
    for m in modalities:
        x = batch[m]  # (B, T, D)
        real = batch.get(m + "_mask")
        real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device) if real is None else real
        draw = torch.rand(x.shape[:2], generator=generator, device=generator.device if generator else x.device)
        missing[m] = (draw.to(x.device) < rate) & real  # (B, T)
        view[m] = x.masked_fill(missing[m][..., None], 0.0)
    return view, missing


def masked_reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """SmoothL1 summed over the positions ``where`` (B, T) True and divided by their count x D (the released
    ReconLoss); recon, target (B, T, D). Positions outside ``where`` contribute nothing."""
    w = where[..., None].to(recon.dtype)  # (B, T, 1)
    loss = F.smooth_l1_loss(recon * w, target * w, reduction="sum")
    return loss / (w.sum() * recon.shape[-1] + 1e-6)


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """SimSiam's D(p, z) = -cos(p, stop-grad z), averaged over the batch: (B, d), (B, d) -> ()."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


# ----------------------------------------------------------------------------- the model
class EMT(BaselineModel):
    def __init__(self, cfg: EMTConfig, dims: dict):
        """cfg: sizes; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__(cfg, dims)
        d = cfg.d_model
        self.encoder = nn.ModuleDict()
        for m in self.modalities:
            D = self.dims[m][1]
            if m == "text":
                self.encoder[m] = nn.Linear(D, cfg.text_out)
            else:
                hidden = cfg.audio_hidden if m == "audio" else cfg.vision_hidden
                self.encoder[m] = RecurrentSubnet(D, hidden, cfg.out_dim(m), cfg.dropout)
        self.proj = nn.ModuleDict({m: nn.Linear(cfg.out_dim(m), d, bias=False) for m in self.modalities})
        for m in self.modalities:
            self.register_buffer(f"pos_{m}", sinusoidal_positions(self.dims[m][0], d), persistent=False)
        self.fusion = EMTFusion(cfg, len(self.modalities))
        gmc_dim = len(self.modalities) * d
        fused_in = sum(cfg.out_dim(m) for m in self.modalities) + gmc_dim
        self.post = nn.Sequential(nn.Dropout(cfg.dropout), nn.Linear(fused_in, cfg.post_fusion_dim), nn.ReLU(),
                                  nn.Linear(cfg.post_fusion_dim, cfg.post_fusion_dim), nn.ReLU(),
                                  nn.Linear(cfg.post_fusion_dim, 1))
        if cfg.dlfr:
            widths = {"gmc": gmc_dim, **{m: cfg.out_dim(m) for m in self.modalities}}
            self.projector = nn.ModuleDict({k: Projector(w) for k, w in widths.items()})
            self.predictor = nn.ModuleDict({k: Predictor(w, cfg.pred_dim(k)) for k, w in widths.items()})
            self.decoder = nn.ModuleDict({m: nn.Linear(d, self.dims[m][1]) for m in self.modalities})
        # the incomplete views' masks: drawn from the global torch RNG (seeded per run by set_seed)

    def encode(self, batch: dict) -> dict:
        """One view -> {"pred" (B,), "utt" {m: (B, out_m)}, "gmc" (B, M d), "local" {m: (B, T_m, d)}}."""
        utt, local, pads = {}, [], []
        for m in self.modalities:
            x, mask = batch[m], batch.get(m + "_mask")
            if mask is not None:
                x = x * mask[..., None].to(x.dtype)  # padding to 0
            if m == "text":
                seq = self.encoder[m](x)  # (B, T_t, text_out)
                utt[m] = masked_mean(seq, mask)  # (B, text_out)
            else:
                utt[m], seq = self.encoder[m](x, mask)  # (B, out_m), (B, T_m, out_m)
            local.append(self.proj[m](seq) + getattr(self, f"pos_{m}").to(seq.dtype))  # (B, T_m, d)
            pads.append(attention_mask(mask))
        g = torch.stack([self.proj[m](utt[m]) for m in self.modalities], dim=1)  # (B, M, d): the GMC
        g, local = self.fusion(g, local, pads)
        gmc = g.flatten(1)  # (B, M, d) -> (B, M d)
        h = torch.cat([utt[m] for m in self.modalities] + [gmc], dim=-1)  # (B, sum out_m + M d)
        return {"pred": self.post(h).squeeze(-1), "utt": utt, "gmc": gmc,
                "local": dict(zip(self.modalities, local))}

    def forward(self, batch: dict) -> BaselineOutput:
        """The complete view: pred (B,), unimodal utterance vectors {m: (B, out_m)}, fused GMC (B, M d)."""
        out = self.encode(batch)
        return BaselineOutput(pred=out["pred"], unimodal=out["utt"], fused=out["gmc"])

    # ---- training ---------------------------------------------------------------------
    def training_phases(self) -> list[Phase]:
        name = "main (EMT-DLFR: L1 + attraction + reconstruction)" if self.cfg.dlfr else "main (EMT: L1)"
        return [Phase("main", name, self.main_parameters(), self.task_loss)]

    def task_loss(self, batch: dict):
        y = batch["label"].float()
        if not self.cfg.dlfr:
            return super().task_loss(batch)
        full = self.encode(batch)
        view, missing = incomplete_view(batch, self.modalities, self.cfg.mask_rate)
        part = self.encode(view)
        loss_pred = F.l1_loss(part["pred"].float(), y)  # the task loss: the incomplete view's prediction
        loss_full = F.l1_loss(full["pred"].float(), y)
        # high-level attraction (SimSiam, both directions) - BatchNorm needs two samples
        attra = loss_full
        if y.shape[0] > 1:
            for k in ["gmc"] + self.modalities:
                a = full["gmc"] if k == "gmc" else full["utt"][k]
                b = part["gmc"] if k == "gmc" else part["utt"][k]
                z_a, z_b = self.projector[k](a), self.projector[k](b)
                p_a, p_b = self.predictor[k](z_a), self.predictor[k](z_b)
                attra = attra + 0.5 * (negative_cosine(p_b, z_a) + negative_cosine(p_a, z_b))
        recon = sum(masked_reconstruction_loss(self.decoder[m](part["local"][m]).float(), batch[m].float(), missing[m])
                    for m in self.modalities)
        total = loss_pred + self.cfg.attra_weight * attra + self.cfg.recon_weight * recon
        return total, {"total": total.detach(), "mul": loss_pred.detach(), "attra": attra.detach(),
                       "recon": recon.detach()}
