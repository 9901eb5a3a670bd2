"""What the baselines share: a config base class with ``paper`` / ``tiny`` presets, the output
record, masked pooling, and the unimodal subnetworks of TFN (reused by LMF).

Every baseline reads the same batch dict as MCIHN: for each active modality m,
``batch[m]`` (B, T_m, D_m) and ``batch[m + "_mask"]`` (B, T_m) bool (True = a real time
step), plus ``batch["label"]`` (B,). Input sizes come from the data (``dims``: modality ->
(T_m, D_m)), never from constants. A forward pass returns a :class:`BaselineOutput`, whose
``pred`` (B,) is all the trainer and the metrics need.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model.config import PRESETS, check_training_fields
from ..model.linear_path import masked_mean  # noqa: F401 (the baselines import it from here)
from ..model.phases import Phase
from ..model.text_encoder import TEXT_LR
from ..modalities import MODALITIES, input_sizes, parse_modalities
from ..modalities import letters as modality_letters

#: Training settings of every ``tiny`` preset: the same as ``MCIHNConfig.tiny`` so that a table
#: compares models trained with one budget (lr 3e-3, at most 30 epochs, patience 8, no dropout).
TINY_TRAINING = dict(lr=3e-3, epochs=30, patience=8, dropout=0.0)
#: The same preset names as MCIHN's.
PRESET_NAMES = tuple(PRESETS)


@dataclass
class BaselineConfig:
    """Fields every baseline has; each model's config adds its own sizes.

    The training fields mean what they mean in :class:`mcihn.model.config.MCIHNConfig` (Adam lr,
    batch size, maximum epochs, early-stopping patience on validation MAE, gradient-norm
    clipping). The ``paper`` preset trains with the MCIHN paper's settings (Adam 1e-3, batch 32)
    and the same epoch budget as ``MCIHNConfig.paper``, so that all rows of a table see the
    same training budget; the model sizes of that preset follow each baseline's own paper.
    """

    modalities: tuple = MODALITIES
    dropout: float = 0.2
    lr: float = 1e-3
    batch_size: int = 32
    epochs: int = 40
    patience: int = 8
    grad_clip: float | None = 5.0
    weight_decay: float = 0.0
    warmup_epochs: float = 0.0
    lr_schedule: str = "constant"
    zscore: str = "auto"              # as MCIHNConfig: what the pipeline z-scores
    text_encoder: str | None = None  # as MCIHNConfig: a fine-tuned BERT-family encoder
    text_lr: float = TEXT_LR
    preset: str = "paper"
    notes: dict = field(default_factory=dict)

    kind: ClassVar[str] = ""          # name on the command line: "tfn", "lmf", ...
    title: ClassVar[str] = ""         # name in the tables: "TFN", "LMF", ...
    TINY: ClassVar[dict] = {}         # model sizes of the tiny preset
    MIN_MODALITIES: ClassVar[int] = 1

    def __post_init__(self):
        self.modalities = parse_modalities(self.modalities)
        if len(self.modalities) < self.MIN_MODALITIES:
            raise ValueError(f"{self.title} needs at least {self.MIN_MODALITIES} modalities, got {self.modalities}")
        if not (0 <= self.dropout < 1):
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if not (self.lr > 0 and self.lr < float("inf")):
            raise ValueError(f"lr must be a finite number > 0, got {self.lr}")
        if not (self.text_lr > 0 and self.text_lr < float("inf")):
            raise ValueError(f"text_lr must be a finite number > 0, got {self.text_lr}")
        check_training_fields(self)
        for f in dataclasses.fields(self):
            if f.type == "int" and getattr(self, f.name) < 1:
                raise ValueError(f"{f.name} must be >= 1, got {getattr(self, f.name)}")

    # ---- presets (same names as MCIHNConfig's) ------------------------------------------
    @classmethod
    def paper(cls, **overrides):
        return cls(**{"preset": "paper", **overrides})

    @classmethod
    def tiny(cls, **overrides):
        return cls(**{**TINY_TRAINING, **cls.TINY, "preset": "tiny", **overrides})

    @classmethod
    def auto(cls, n_train: int | None = None, **overrides):
        """The default for real data: the ``paper`` settings. MCIHN's training recipe
        (``mcihn.model.config.TRAINING_RECIPE``) did not help TFN on the suite's validation splits (README,
        "The development suite"), so the baselines keep plain Adam; ``n_train`` is accepted for
        symmetry with MCIHN's ``auto``."""
        return cls(**{"preset": "auto", **overrides})

    @classmethod
    def from_preset(cls, name: str, n_train: int | None = None, **overrides):
        if name not in PRESET_NAMES:
            raise ValueError(f"unknown preset {name!r}; choose from {list(PRESET_NAMES)}")
        return cls.auto(n_train, **overrides) if name == "auto" else getattr(cls, name)(**overrides)

    # ---- (de)serialisation: plain types only, so checkpoints load with weights_only=True ----
    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["modalities"] = list(self.modalities)
        return d

    @classmethod
    def from_dict(cls, d: dict):
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})

    @property
    def variant(self) -> str:
        """Row name in a table: "TFN", or "TFN (-VT)" on a subset of the modalities."""
        if len(self.modalities) == len(MODALITIES):
            return self.title
        letters = modality_letters(self.modalities)
        return f"{self.title} (-{letters.upper()})"


@dataclass
class BaselineOutput:
    """What a baseline's forward pass returns. Only ``pred`` is needed for training."""

    pred: torch.Tensor                                   # (B,) predicted sentiment
    unimodal: dict = field(default_factory=dict)         # modality -> its representation (B, d_m) or (B,)
    fused: torch.Tensor | None = None                    # the fused representation (model-specific shape)
    attention: dict = field(default_factory=dict)        # name -> attention weights (MulT)
    loss_adp: torch.Tensor | None = None                 # no auxiliary loss: the trainer uses the MAE alone


class BaselineModel(nn.Module):
    """Common wiring: check the config against the data, keep the input sizes, one parameter group."""

    def __init__(self, cfg: BaselineConfig, dims: dict):
        super().__init__()
        self.cfg = cfg
        self.modalities = list(cfg.modalities)
        self.dims = input_sizes(self.modalities, dims)  # m -> (T_m, D_m), from the data

    def main_parameters(self):
        """Every parameter: a baseline's one training phase updates them all."""
        return list(self.parameters())

    def training_phases(self) -> list[Phase]:
        """One phase: L_Mul (Eq. 18, the MAE) on every parameter, one Adam. A baseline with more
        losses (auxiliary tasks, restoration terms) overrides this; the trainer needs no edit."""
        return [Phase("main", "main (L_Mul)", self.main_parameters(), self.task_loss)]

    def task_loss(self, batch: dict):
        """Eq. 18: the mean absolute error of the prediction. Returns (loss, logs)."""
        loss = F.l1_loss(self(batch).pred.float(), batch["label"].float())
        return loss, {"total": loss.detach(), "mul": loss.detach()}

    @torch.no_grad()
    def predict(self, batch: dict) -> torch.Tensor:
        return self.forward(batch).pred


# ----------------------------------------------------------------------------- masked sequence helpers
def last_valid(h: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """h (B, T, H) at each sequence's last real step -> (B, H); an empty sequence gives 0.

    Assumes padding comes after the real steps (MMSA's layout).
    """
    if mask is None:
        return h[:, -1]
    lengths = mask.sum(dim=1)  # (B,)
    idx = (lengths - 1).clamp_min(0)  # (B,)
    out = h[torch.arange(h.shape[0], device=h.device), idx]  # (B, H)
    return out * (lengths > 0)[:, None].to(out.dtype)


def mlp(sizes: list[int], dropout: float) -> nn.Sequential:
    """Linear -> ReLU -> Dropout for each consecutive pair of ``sizes`` (ReLU after every layer)."""
    layers = []
    for a, b in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(a, b), nn.ReLU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


# ----------------------------------------------------------------------------- TFN's unimodal subnetworks
class LanguageSubnet(nn.Module):
    """TFN's spoken-language embedding subnetwork: an LSTM over the word features, its state at the
    last real word, then two fully connected ReLU layers: (B, T, D) -> z (B, hidden).

    The LSTM runs over the padded sequence and we read its state at the last *real* step; an LSTM
    is causal, so the padding after that step cannot change it (no packing needed).
    """

    def __init__(self, d_in: int, hidden: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.fc = mlp([hidden, hidden, hidden], dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        h, _ = self.lstm(x)  # (B, T, hidden)
        return self.fc(self.drop(last_valid(h, mask)))  # (B, hidden)


class PooledSubnet(nn.Module):
    """TFN's visual / acoustic embedding subnetwork: the mean over the real time steps, then
    ``layers`` fully connected ReLU layers: (B, T, D) -> z (B, hidden)."""

    def __init__(self, d_in: int, hidden: int, dropout: float, layers: int = 3):
        super().__init__()
        self.net = mlp([d_in] + [hidden] * layers, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(masked_mean(x, mask))  # (B, D) -> (B, hidden)


# ----------------------------------------------------------------------------- Self-MM's / EMT's audio-vision subnetwork
class RecurrentSubnet(nn.Module):
    """The audio / vision subnetwork of Self-MM and EMT-DLFR: a one-layer LSTM over the frames, its
    state at the last real frame, dropout, and a linear layer (MMSA's ``AuViSubNet``).

    (B, T, D) -> (utterance vector (B, out), per-step outputs (B, T, out)); EMT uses the per-step
    outputs (through the same linear layer) as the modality's local sequence. The released code
    packs the padded sequence; an LSTM is causal, so reading the state at the last real step gives
    the same vector without packing (padded steps come after the real ones, MMSA's layout).
    """

    def __init__(self, d_in: int, hidden: int, out: int, dropout: float):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, batch_first=True)
        self.drop = nn.Dropout(dropout)
        self.linear = nn.Linear(hidden, out)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None):
        h, _ = self.lstm(x)  # (B, T, hidden)
        utt = self.linear(self.drop(last_valid(h, mask)))  # (B, hidden) -> (B, out)
        return utt, self.linear(h)  # (B, out), (B, T, out)
