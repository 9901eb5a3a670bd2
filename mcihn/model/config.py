"""One configuration object for MCIHN, with a ``paper`` preset and a ``tiny`` preset.

Only the *model and training* sizes live here. The input sizes (sequence length
T_m and feature width D_m of each modality) always come from the data and are
passed to :class:`mcihn.model.mcihn.MCIHN` separately, so that the same config trains
on CLIP/BERT/wav2vec2 features (10x512, 36x768, 128x512), on MMSA's MOSI pickles
(50x768, 375x5, 500x20) or on the synthetic data without edits.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..data.normalize import ZSCORE_RULES
from ..modalities import MODALITIES, parse_modalities
from .aae import DISC_SAMPLES
from .ffm import FFM_VALUES
from .linear_path import LINEAR_INITS
from .mmd import XI_KINDS
from .text_encoder import TEXT_LR

#: Algorithm 1's per-batch schedule (``MCIHN.training_phases``).
SCHEDULES = ("joint", "phases")
from ..modalities import letters as modality_letters

#: Learning-rate schedules after the warm-up (``mcihn.training.trainer.lr_factor``).
LR_SCHEDULES = ("constant", "cosine")
#: The training recipe of MCIHN's ``auto`` preset: AdamW with decoupled weight
#: decay, one epoch of linear warm-up, a cosine decay to 0.1 x lr over the epoch budget. Chosen on the
#: validation splits of the development suite (README, "The development suite").
TRAINING_RECIPE = dict(weight_decay=0.01, warmup_epochs=1.0, lr_schedule="cosine")
#: Training-set size from which the ``auto`` preset uses the paper's sizes (L = 32, d = 256); below it,
#: AUTO_SMALL_SIZES. The suite's data sets (300-2000 training clips) are all below it.
AUTO_LARGE_FROM = 4000
AUTO_SMALL_SIZES = dict(latent_len=16, latent_dim=128, heads=4, disc_hidden=128)


def check_training_fields(cfg) -> None:
    """The optimiser fields every model's config shares (MCIHN's and the baselines')."""
    if not (0 <= cfg.weight_decay < float("inf")):
        raise ValueError(f"weight_decay must be a finite number >= 0, got {cfg.weight_decay}")
    if not (0 <= cfg.warmup_epochs < float("inf")):
        raise ValueError(f"warmup_epochs must be a finite number >= 0, got {cfg.warmup_epochs}")
    if cfg.lr_schedule not in LR_SCHEDULES:
        raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, not {cfg.lr_schedule!r}")
    if cfg.zscore not in ZSCORE_RULES:
        raise ValueError(f"zscore must be one of {ZSCORE_RULES}, not {cfg.zscore!r}")


@dataclass
class MCIHNConfig:
    """Every size and switch of the model and of Algorithm 1.

    Model (Sec. 3.3-3.5)
        latent_len (L), latent_dim (d): size of every latent code S^m, (B, L, d).
        heads (h): heads of the fusion attention, Eq. 15. d must divide by h.
        dropout: on attention weights and before the regression head (paper: 0.5).
        enc_dropout: dropout inside each encoder, on its input features and on its code S.
        enc_kernel: width of the temporal convolution inside each encoder.
        disc_hidden: hidden width of the AAE discriminators.
        mmd_multipliers: Gaussian bandwidths of the multi-kernel MMD, as multiples
            of the median pairwise squared distance (Eq. 12-14).
        mmd_samples: ``"pooled"`` (one sample per utterance: S averaged over L) or
            ``"tokens"`` (each of the B*L latent vectors is a sample).
        mmd_weight (lambda): weight of L_Adp; Eq. 19 prints 1, the default 0.1 was chosen on validation
            (lambda = 1 stalled near the mean predictor on a 600-clip synthetic set: README).
        ffm_values: where the fusion attention takes its values: "core" (Eq. 15 read as S^m) or "pairs" (the
            pair features F^{m o1}, F^{m o2}, where the modalities multiply; the auto preset's choice).
        xi: the MMD's shared layer: "orthogonal" (default; L_Adp cannot fall by collapsing it),
            "linear" (free, as printed) or "none" (see ``mmd.make_xi``).
        disc_samples: what the discriminator scores against N(0, I): "tokens" (each of the B*L
            latent vectors, default), "pooled" (the mean over L) or "flat" (the whole code).
    Ablations (Table 3)
        modalities: any non-empty subset of text/audio/vision.
        use_aae: False = MCIHN-1 (no decoder, no discriminator, no AE/GAN phases).
        use_cgmm: False = MCIHN-2 (pair features are plain means, no MMD term).
    Training (Algorithm 1, Sec. 4.3)
        lr, batch_size, epochs (max), patience (early stopping on validation MAE), grad_clip (None = off).
        weight_decay: AdamW's decoupled weight decay on weight matrices (0 = Adam, as the paper).
        zscore: which input features are z-scored with train-split statistics: "auto" (default: all but the
            text of real data, a pretrained encoder's states, which is only centred) or "all"
            (``mcihn.data.normalize``; docs/results.md, "What is z-scored").
        warmup_epochs: linear learning-rate warm-up; lr_schedule: "constant" or "cosine" after it
            (``mcihn.training.trainer.lr_factor``).
        schedule: "joint" (default): per batch a discriminator step on detached codes, then ONE
            Adam step on L_Mul + lambda L_Adp + rec_weight L_AE + adv_weight L_gen over encoders,
            decoders, CGMM, xi, FFM and head, so each weight sets its term's share of the step.
            "phases": four Adam optimisers, one per phase (rec, disc, gen, main) - Adam then makes
            every phase's step about lr long whatever its weight. See ``MCIHN.training_phases``.
        rec_weight (w_rec), adv_weight (w_adv): weights of L_AE (Eq. 4) and of the generator loss
            (Eq. 5) in the joint objective ("phases" runs L_AE unweighted); there a weight of 0 trains exactly as
            without that term (L_AE and L_gen are then not computed; L_Adp always is, for the logs). The
            defaults (w_rec 0.1, w_adv 0: the adversarial term off) were chosen on validation MAE, where
            every positive w_adv tried lost (README, "Where Algorithm 1's weights come from"); w_adv = 0.1 was the
            best positive weight.
        adv_lr_scale: learning-rate factor of the discriminator (and, with "phases", generator) step.
    Missing modalities (an addition, not in the paper)
        missing_aug: probability, per training clip and modality, that the input of that modality is made
            missing for the task loss: with even odds its whole sequence, or a random share of its time steps
            (uniform in 0-1), is replaced by 0 (the training mean after normalisation), the mask and the label
            unchanged. Default 0.5 (every preset; chosen on the complete-data validation splits of the suite and of
            the embedded data, where it is level with 0 within the seed spread: docs/results.md, "Missing-modality
            training on the suite"); 0 = off, the training exactly as without it (and as the paper). Why: a model never shown a
            missing input maps one to a code unlike any real clip's and its head extrapolates from there
            (benchmarks/missing_remedy.md); shown some, with their true labels, it learns what missing looks like and
            to lean on what is left. Training only (never at evaluation), drawn from a random stream of the
            model's own (saved in checkpoints, so a resumed run continues exactly); the reconstruction term
            restores the complete input (as EMT-DLFR's restoration). With a fine-tuned text encoder
            (``text_encoder``), text is left complete (its missing value is a token, not a mean).
    Linear path (an addition, not in the paper)
        linear_path: add a linear regression on each modality's time-averaged input to Eq. 17's output ("wide and
            deep", ``model/linear_path.py``); its weights start at 0. On in the ``auto`` preset (the default on real
            data: chosen on the validation splits of the suite, docs/results.md, "A linear path beside the
            network"); off in ``paper`` (the paper's model) and ``tiny`` (level on the embedded data).
        linear_init: how its weights start: "zero" (the untrained model is the paper's), "ridge" (a ridge
            regression on the training split's time-averaged inputs, its penalty chosen on the validation MAE,
            before the first epoch: ``linear_path.init_from_ridge``), "ridge_frozen" (the suite's ridge reference
            itself, z-scored columns and best modality subset, kept fixed, with Eq. 17's head starting at zero and
            the ridge intercept, so the network learns the ridge's residual) or "auto": each seed trained from
            "zero" and from "ridge_frozen", the run with the lower validation MAE kept (``training/starts.py``;
            twice the training time). "auto" is the ``auto`` preset's (with a fine-tuned text encoder, "zero"):
            each start wins on different kinds of data and only validation can tell which kind a data set is; on
            the suite's validation splits it kept the better start in 5 of 5 seeds on each set where the two
            differ beyond the seed spread (docs/results.md, "Both starts, validation keeps one"). "zero" in
            ``paper`` and ``tiny`` (no path).
    Text encoder (Sec. 4.3)
        text_encoder: a hub name or local folder of a BERT-family model fine-tuned inside the model
            on the pickle's token ids (``model/text_encoder.py``); None = frozen text features.
        text_lr: its learning rate (the paper's 2e-5); every other module keeps ``lr``.
    """

    latent_len: int = 32
    latent_dim: int = 256
    heads: int = 8
    dropout: float = 0.5
    enc_dropout: float = 0.0
    enc_kernel: int = 3
    disc_hidden: int = 256
    mmd_multipliers: tuple = (0.25, 0.5, 1.0, 2.0, 4.0)
    mmd_samples: str = "pooled"
    mmd_weight: float = 0.1
    modalities: tuple = MODALITIES
    use_aae: bool = True
    use_cgmm: bool = True
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 40
    patience: int = 8
    adv_weight: float = 0.0
    adv_lr_scale: float = 1.0
    rec_weight: float = 0.1
    missing_aug: float = 0.5
    linear_path: bool = False
    linear_init: str = "zero"
    schedule: str = "joint"
    disc_samples: str = "tokens"
    xi: str = "orthogonal"
    ffm_values: str = "core"
    grad_clip: float | None = 5.0
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    lr_schedule: str = "constant"
    zscore: str = "auto"
    text_encoder: str | None = None
    text_lr: float = TEXT_LR
    preset: str = "paper"
    notes: dict = field(default_factory=dict)

    def __post_init__(self):
        self.modalities = parse_modalities(self.modalities)
        self.mmd_multipliers = tuple(float(x) for x in self.mmd_multipliers)
        if self.enc_kernel % 2 == 0:
            raise ValueError(f"enc_kernel must be odd so the temporal convolution keeps the length, got {self.enc_kernel}")
        if self.mmd_samples not in ("pooled", "tokens"):
            raise ValueError(f"mmd_samples must be 'pooled' or 'tokens', not {self.mmd_samples!r}")
        for name, choices in (("schedule", SCHEDULES), ("disc_samples", DISC_SAMPLES), ("xi", XI_KINDS),
                              ("ffm_values", FFM_VALUES), ("linear_init", LINEAR_INITS)):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {choices}, not {getattr(self, name)!r}")
        check_training_fields(self)
        for name in ("mmd_weight", "adv_weight", "adv_lr_scale", "rec_weight", "dropout", "enc_dropout"):
            value = getattr(self, name)
            if not (value >= 0 and value < float("inf")):
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.linear_init != "zero" and not self.linear_path:
            raise ValueError(f"linear_init={self.linear_init!r} starts the linear path: it needs linear_path=True")
        if self.linear_init != "zero" and self.text_encoder:
            raise ValueError(f"linear_init={self.linear_init!r} fits the path on text features before training; "
                             "with a fine-tuned text_encoder the path reads token states that do not exist yet: "
                             "use linear_init='zero'")
        if not 0 <= self.missing_aug <= 1:
            raise ValueError(f"missing_aug must be a probability in [0, 1], got {self.missing_aug}")
        if self.dropout >= 1 or self.enc_dropout >= 1:
            raise ValueError(f"dropout and enc_dropout must be < 1, got {self.dropout}, {self.enc_dropout}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (self.text_lr > 0 and self.text_lr < float("inf")):
            raise ValueError(f"text_lr must be a finite number > 0, got {self.text_lr}")
        for name in ("latent_len", "latent_dim", "heads", "batch_size", "epochs", "patience", "enc_kernel",
                     "disc_hidden"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.latent_dim % self.heads:
            raise ValueError(f"latent_dim={self.latent_dim} must be divisible by heads={self.heads}")

    # ---- presets -------------------------------------------------------
    @classmethod
    def paper(cls, **overrides) -> "MCIHNConfig":
        """Sec. 4.3: L=32, d=256, dropout 0.5, Adam lr 1e-3, batch 32. Heads: the
        paper does not say; 8 heads of 32 dims is the common choice at d=256."""
        return cls(**{"preset": "paper", **overrides})

    @classmethod
    def tiny(cls, **overrides) -> "MCIHNConfig":
        """Small and fast, for tests, CI and the synthetic quick runs. A model this small
        takes a larger step (lr 3e-3) and needs no dropout; patience is longer than the
        paper preset's because its validation curve is noisier."""
        base = dict(latent_len=8, latent_dim=32, heads=4, dropout=0.0, disc_hidden=32, lr=3e-3,
                    epochs=30, patience=8, preset="tiny")
        return cls(**{**base, **overrides})

    @classmethod
    def auto(cls, n_train: int | None = None, **overrides) -> "MCIHNConfig":
        """The default for real data: sizes that follow the training-set size ``n_train`` (the paper's
        from ``AUTO_LARGE_FROM`` clips, ``AUTO_SMALL_SIZES`` below, and below when unknown), the
        paper's dropout 0.5 and lr 1e-3, plus ``TRAINING_RECIPE``, encoder dropout 0.1, the fusion
        attention's values from the pair features (``ffm_values="pairs"``: README, "The development suite") and
        the linear path beside the network (``linear_path``), trained from both of its starts with the one
        validation prefers kept (``linear_init="auto"``; "zero" with a fine-tuned text encoder)."""
        sizes = {} if n_train is not None and n_train >= AUTO_LARGE_FROM else AUTO_SMALL_SIZES
        path = overrides.get("linear_path", True)
        start = "auto" if path and not overrides.get("text_encoder") else "zero"  # both starts, validation keeps one
        return cls(**{**sizes, **TRAINING_RECIPE, "enc_dropout": 0.1, "ffm_values": "pairs", "linear_path": True,
                      "linear_init": start, "preset": "auto", **overrides})

    @classmethod
    def from_preset(cls, name: str, n_train: int | None = None, **overrides) -> "MCIHNConfig":
        """A preset by name; ``n_train`` (training clips) is read by ``auto`` only."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}; choose from {sorted(PRESETS)}")
        if name == "auto":
            return cls.auto(n_train, **overrides)
        return PRESETS[name](**overrides)

    # ---- (de)serialisation: plain types only, so checkpoints load with weights_only=True
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["modalities"] = list(self.modalities)
        d["mmd_multipliers"] = list(self.mmd_multipliers)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "MCIHNConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def variant(self) -> str:
        """Name of the Table 3 row this config is: MCIHN, MCIHN-1, MCIHN-2, -VT, -VA, -TA, ..."""
        if len(self.modalities) == 3 and self.use_aae != self.use_cgmm:
            return "MCIHN-1" if not self.use_aae else "MCIHN-2"
        letters = modality_letters(self.modalities)
        name = "MCIHN" if len(self.modalities) == 3 else f"-{letters.upper()}"
        off = [part for part, on in (("AAE", self.use_aae), ("CGMM", self.use_cgmm)) if not on]
        return name + (f" (no {', no '.join(off)})" if off else "")


PRESETS = {"auto": MCIHNConfig.auto, "paper": MCIHNConfig.paper, "tiny": MCIHNConfig.tiny}
