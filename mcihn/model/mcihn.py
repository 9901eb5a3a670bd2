"""The MCIHN model (Fig. 1(a)): AAEs (Sec. 3.3) -> CGMM + MMD (Sec. 3.4) -> FFM (Sec. 3.5).

A batch is a dict of tensors: for each active modality m, ``batch[m]`` (B, T_m, D_m)
and ``batch[m + "_mask"]`` (B, T_m) bool (True = a real time step), plus
``batch["label"]`` (B,). Input sizes come from the data (``dims``), never from
constants.

``MCIHN.forward`` returns an :class:`MCIHNOutput` holding everything a student may
want to look at: latent codes S, reconstructions, CGMM attention alpha and gates G,
pair features F, FFM attention weights and the MMD terms.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from .aae import ModalityAAE, discriminator_loss, generator_loss, reconstruction_loss
from .cgmm import CGMMOutput, CrossModalGate, plain_pairs
from ..modalities import input_sizes
from .config import MCIHNConfig
from .ffm import FeatureFusion
from .linear_path import LinearPath
from .mmd import FeatureAdaptiveMMD
from .phases import Phase


@dataclass
class MCIHNOutput:
    pred: torch.Tensor                               # (B,) predicted sentiment y^p
    S: dict = field(default_factory=dict)            # modality -> latent code (B, L, d)
    X_hat: dict = field(default_factory=dict)        # modality -> reconstruction (B, T_m, D_m) (AAE only)
    alpha: dict = field(default_factory=dict)        # core modality -> CGMM attention (B, L, L), Eq. 7
    A: dict = field(default_factory=dict)            # core modality -> transferred attention (B, L, d), Eq. 8
    G: dict = field(default_factory=dict)            # pair "vt" -> gate activations (B, L, d), Eq. 10
    F: dict = field(default_factory=dict)            # pair "vt" -> pair feature (B, L, d), Eq. 11
    fused: dict = field(default_factory=dict)        # "v-ta" -> FFM output (B, L, d), Eq. 16
    ffm_attention: dict = field(default_factory=dict)  # "v-ta" -> FFM attention (B, h, L, L), Eq. 15
    mmd_terms: dict = field(default_factory=dict)    # "v-ta" -> h_k^2, Eq. 12
    loss_adp: torch.Tensor | None = None             # L_Adp, Eq. 14 (0 without CGMM)


class MCIHN(nn.Module):
    """AAEs -> CGMM + MMD -> FFM, and the training phases of Algorithm 1.

    Read in this order: the wiring (``__init__``), the forward pass (``encode``, ``forward``), Algorithm 1
    (parameter groups, ``training_phases`` and the losses of its phases), the random streams.
    """

    #: Tests only: compute the terms of weight 0 too (``model.keep_zero_terms = True`` before
    #: ``training_phases()``); they must change nothing in the training.
    keep_zero_terms: bool = False

    def __init__(self, cfg: MCIHNConfig, dims: dict):
        """cfg: sizes and switches; dims: modality -> (T_m, D_m) read from the data."""
        super().__init__()
        self.cfg = cfg
        self.modalities = list(cfg.modalities)
        self.dims = input_sizes(self.modalities, dims)  # m -> (T_m, D_m), from the data
        L, d = cfg.latent_len, cfg.latent_dim
        self.aae = nn.ModuleDict({
            m: ModalityAAE(T, D, L, d, cfg.disc_hidden, cfg.enc_kernel, adversarial=cfg.use_aae,
                           disc_samples=cfg.disc_samples, enc_dropout=cfg.enc_dropout)
            for m, (T, D) in self.dims.items()
        })
        self.use_gate = cfg.use_cgmm and len(self.modalities) >= 2
        self.cgmm = CrossModalGate(self.modalities, d) if self.use_gate else None
        self.mmd = (FeatureAdaptiveMMD(self.modalities, d, cfg.mmd_multipliers, cfg.mmd_samples, cfg.xi)
                    if self.use_gate else None)
        self._seed_prior_stream()  # one draw from the global stream, here: the FFM's initial weights follow it
        # missing_aug's stream, seeded from the prior's seed (no draw from the global stream: off = as before)
        self._missing = (torch.Generator().manual_seed(self.prior_seed ^ MISSING_SALT) if cfg.missing_aug > 0
                         else None)
        self.ffm = FeatureFusion(self.modalities, d, cfg.heads, cfg.dropout, cfg.ffm_values)
        self.linear = (LinearPath(self.dims, trainable=cfg.linear_init != "ridge_frozen") if cfg.linear_path
                       else None)  # an addition (linear_path.py)

    # ==== the forward pass: encode, gate, fuse ========================================================
    def encode(self, batch: dict) -> dict:
        """Latent codes only: modality -> S^m (B, L, d)."""
        return {m: self.aae[m].encoder(batch[m], batch.get(m + "_mask")) for m in self.modalities}

    def forward(self, batch: dict, reconstruct: bool = False) -> MCIHNOutput:
        """batch: m -> (B, T_m, D_m), m + "_mask" -> (B, T_m) bool, for each active modality m.

        Returns an MCIHNOutput: pred (B,), S m -> (B, L, d), X_hat m -> (B, T_m, D_m) when
        ``reconstruct`` (AAE only), alpha m -> (B, L, L), A m -> (B, L, d), G / F pair -> (B, L, d),
        fused / ffm_attention "v-ta" -> (B, L, d) / (B, h, L, L), mmd_terms and loss_adp (scalars).
        """
        S = self.encode(batch)  # Alg. 1 line 9
        out = MCIHNOutput(pred=None, S=S)
        if reconstruct and self.cfg.use_aae:  # Alg. 1 line 10
            out.X_hat = {m: self.aae[m].decoder(S[m]) for m in self.modalities}
        if self.use_gate:
            gate = self.cgmm(S)  # Eq. 6-11
            out.loss_adp, out.mmd_terms = self.mmd(S, gate.F)  # Eq. 12-14
        else:
            gate = plain_pairs(S, self.modalities) if len(self.modalities) >= 2 else CGMMOutput()
            out.loss_adp = S[self.modalities[0]].new_zeros(())
        out.alpha, out.A, out.G, out.F = gate.alpha, gate.A, gate.G, gate.F
        out.pred, out.fused, out.ffm_attention = self.ffm(S, gate.F)  # Eq. 15-17
        if self.linear is not None:
            out.pred = out.pred + self.linear(batch)  # y_deep + w^T (pooled inputs), (B,)
        return out

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        return self.forward(batch).pred

    # ==== Algorithm 1: parameter groups, training phases and their losses =============================
    # ---- parameter groups: which phase updates what --------------------------------------------------
    def encoder_parameters(self):
        return [p for m in self.modalities for p in self.aae[m].encoder.parameters()]

    def decoder_parameters(self):
        return [p for m in self.modalities if self.aae[m].decoder is not None for p in self.aae[m].decoder.parameters()]

    def discriminator_parameters(self):
        return [p for m in self.modalities if self.aae[m].discriminator is not None
                for p in self.aae[m].discriminator.parameters()]

    def main_parameters(self):
        """Everything L_Combined reaches: encoders, CGMM, xi of the MMD, FFM and head (and the linear path)."""
        rest = [p for mod in (self.cgmm, self.mmd, self.ffm, self.linear) if mod is not None for p in mod.parameters()
                if p.requires_grad]  # a frozen linear path (linear_init="ridge_frozen") is not trained
        return self.encoder_parameters() + rest

    # ---- the training phases, in the paper's order (lines 8-23) --------------------------------------
    def training_phases(self) -> list[Phase]:
        """The phases the trainer runs on every batch, in order, each with its own optimiser.

        ``schedule="joint"`` (default)::

            disc  discriminator  L_disc (Eq. 5), codes detached -> discriminators D_omega       (line 13)
            main  L_Mul + lambda L_Adp + w_rec L_AE + w_adv L_gen -> encoders E, decoders D,
                  CGMM, xi, FFM, head: ONE Adam, so the weights set each term's pull  (lines 9-23)

        ``schedule="phases"`` (the paper read literally, one optimiser per phase)::

            rec   reconstruction L_AE (Eq. 4)                  -> encoders + decoders          (line 12)
            disc  discriminator  L_disc (Eq. 5), codes fixed   -> discriminators               (line 13)
            gen   generator      w_adv L_gen (Eq. 5)           -> encoders                     (line 13)
            main  L_Mul + lambda L_Adp (Eq. 18-19)             -> encoders, CGMM, xi, FFM, head (lines 14-23)

        Without the AAE (MCIHN-1) only ``main`` (L_Mul + lambda L_Adp) exists. A term whose weight is 0
        is left out (``keep_zero_terms`` computes it anyway, for the tests: the training is the same).
        Decoders and discriminators get no gradient from L_Combined, so "update all parameters" in line
        23 and "update everything the loss reaches" are the same thing.
        """
        cfg = self.cfg
        if not cfg.use_aae:
            return [Phase("main", "main (L_Mul + lambda L_Adp)", self.main_parameters(), self._main_loss)]
        disc = Phase("disc", "discriminator", self.discriminator_parameters(), self._disc_loss, cfg.adv_lr_scale)
        if cfg.schedule == "joint":
            joint = Phase("main", "joint (L_Mul + lambda L_Adp + w_rec L_AE + w_adv L_gen)",
                          self.main_parameters() + self.decoder_parameters(), self._joint_loss)
            return [disc, joint] if self._used(cfg.adv_weight) else [joint]
        return [
            Phase("rec", "reconstruction", self.encoder_parameters() + self.decoder_parameters(), self._rec_loss),
            disc,
            Phase("gen", "generator", self.encoder_parameters(), self._gen_loss, cfg.adv_lr_scale),
            Phase("main", "main (L_Mul + lambda L_Adp)", self.main_parameters(), self._main_loss),
        ]

    def _used(self, weight: float) -> bool:
        return weight != 0 or self.keep_zero_terms

    # ---- the losses of the phases --------------------------------------------------------------------
    def _reconstruction(self, batch, S) -> torch.Tensor:
        """Eq. 4 summed over the modalities, from the codes S."""
        return sum(reconstruction_loss(batch[m], self.aae[m].decoder(S[m]).float(), batch.get(m + "_mask"))
                   for m in self.modalities)

    def _adversarial(self, S) -> torch.Tensor:
        """The generator side of Eq. 5, summed over the modalities."""
        return sum(generator_loss(self.aae[m].discriminator, S[m].float(), self.cfg.disc_samples)
                   for m in self.modalities)

    def _rec_loss(self, batch):
        """Alg. 1 lines 9-12: L_AE (Eq. 4)."""
        loss = self._reconstruction(batch, self.encode(batch))
        return loss, {"rec": loss.detach()}

    def _disc_loss(self, batch):
        """Alg. 1 line 13 (first half): Eq. 5 for D_omega; the codes are computed without gradients."""
        with torch.no_grad():
            S = self.encode(batch)
        gen = self.prior_generator(next(iter(S.values())).device)
        losses, accs = zip(*(discriminator_loss(self.aae[m].discriminator, S[m].float(), self.cfg.disc_samples, gen)
                             for m in self.modalities))
        loss = sum(losses)
        return loss, {"disc": loss.detach(), "disc_acc": torch.stack(accs).mean()}

    def _gen_loss(self, batch):
        """Alg. 1 line 13 (second half): the encoders learn to fool the (fixed) discriminators."""
        loss = self.cfg.adv_weight * self._adversarial(self.encode(batch))
        return loss, {"gen": loss.detach()}

    def _main_loss(self, batch):
        """Alg. 1 lines 14-23: L_Combined = L_Mul + lambda * L_Adp (Eq. 18-19)."""
        total, l_mul, l_adp = main_loss(self(self.missing_augment(batch)), batch["label"], self.cfg.mmd_weight)
        return total, {"total": total.detach(), "mul": l_mul.detach(), "adp": l_adp.detach()}

    def _joint_loss(self, batch):
        """Alg. 1 lines 9-23 in one step: L_Mul + lambda L_Adp + w_rec L_AE + w_adv L_gen."""
        cfg = self.cfg
        out = self(self.missing_augment(batch))
        total, l_mul, l_adp = main_loss(out, batch["label"], cfg.mmd_weight)
        logs = {"mul": l_mul.detach(), "adp": l_adp.detach()}
        if self._used(cfg.rec_weight):
            l_rec = self._reconstruction(batch, out.S)  # restores the complete input from the codes
            total = total + cfg.rec_weight * l_rec
            logs["rec"] = l_rec.detach()
        if self._used(cfg.adv_weight):
            l_gen = self._adversarial(out.S)
            total = total + cfg.adv_weight * l_gen
            logs["gen"] = l_gen.detach()
        return total, {"total": total.detach(), **logs}

    # ---- an addition: training with missing inputs (cfg.missing_aug) ---------------------------------
    def missing_augment(self, batch: dict) -> dict:
        """The batch the task loss sees: in training mode with ``cfg.missing_aug`` = p > 0, each clip's
        modality is, with probability p, made missing, half the time its whole sequence and half the time
        a share u ~ U(0, 1) of its time steps (each independently), by setting it to 0 (the training mean),
        masks and labels unchanged: what ``experiments.robustness.mask_time_steps`` does at evaluation.
        Otherwise (p = 0, or eval mode) the batch itself. The draws come from the model's own stream
        (``generators()["missing"]``), on the CPU, a fixed count per batch: the same on any device, and a
        resumed run continues them exactly. With a fine-tuned text encoder, text is left as it is."""
        if self._missing is None or not self.training:
            return batch
        out = dict(batch)
        skip = {"text"} if self.cfg.text_encoder else set()
        for m in self.modalities:
            x = batch[m]
            B, T = x.shape[:2]
            g = self._missing
            hit = torch.rand(B, generator=g) < self.cfg.missing_aug  # (B,) this modality of this clip
            whole = torch.rand(B, generator=g) < 0.5  # (B,) all steps, or a share of them
            share = torch.rand(B, 1, generator=g)  # (B, 1)
            steps = torch.rand(B, T, generator=g) < share  # (B, T)
            if m in skip:
                continue
            gone = (hit[:, None] & (whole[:, None] | steps)).to(x.device)  # (B, T)
            out[m] = x.masked_fill(gone[..., None], 0.0)
        return out

    # ---- random streams of the model's own (saved in checkpoints for resume) -------------------------
    def _seed_prior_stream(self) -> None:
        """The prior samples of the discriminator have a random stream of their own (seeded here, from the
        global stream), so the discriminator step leaves the global stream (dropout) as it finds it. The
        generator itself is made on the first batch, on the batch's device (:meth:`prior_generator`)."""
        self.prior_seed = int(torch.randint(0, 2**62, (1,)).item())
        self._prior = None

    def prior_generator(self, device) -> torch.Generator:
        """The random stream of the prior samples N(0, I) (Eq. 5), apart from the global one."""
        if self._prior is None or self._prior.device != torch.device(device):
            self._prior = torch.Generator(device=device).manual_seed(self.prior_seed)
        return self._prior

    def generators(self) -> dict:
        """Random streams of the model's own, saved in checkpoints so that a resumed run continues exactly."""
        gens = {"prior": self._prior} if self._prior is not None else {}
        if self._missing is not None:
            gens["missing"] = self._missing
        return gens


#: Mixed into the prior stream's seed to seed the stream of ``missing_augment``.
MISSING_SALT = 0x6D697373


# ==== Eq. 18-19: the task loss of the main and joint phases ===========================================
def main_loss(out: MCIHNOutput, y: torch.Tensor, mmd_weight: float):
    """Eq. 18-19 with a weight: L = L_Mul + lambda * L_Adp. Returns (total, L_Mul, L_Adp)."""
    l_mul = F.l1_loss(out.pred.float(), y.float())  # Eq. 18, mean absolute error
    l_adp = out.loss_adp.float()
    return l_mul + mmd_weight * l_adp, l_mul, l_adp
