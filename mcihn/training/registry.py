"""Every model the package can train, by the name used on the command line and in checkpoints.

    kind     config class                     model class
    mcihn    mcihn.model.config.MCIHNConfig         mcihn.model.mcihn.MCIHN
    tfn      mcihn.baselines.TFNConfig        mcihn.baselines.TFN
    lmf      mcihn.baselines.LMFConfig        mcihn.baselines.LMF
    mult     mcihn.baselines.MulTConfig       mcihn.baselines.MulT
    late     mcihn.baselines.LateFusionConfig mcihn.baselines.LateFusion
    selfmm   mcihn.baselines.SelfMMConfig     mcihn.baselines.SelfMM
    emt      mcihn.baselines.EMTConfig        mcihn.baselines.EMT
    cmhfm    mcihn.baselines.CMHFMConfig      mcihn.baselines.CMHFM

Every config has ``paper`` and ``tiny`` presets, ``to_dict`` / ``from_dict``, ``modalities``,
``variant`` (its row name in a table) and the training fields the trainer reads (lr,
batch_size, epochs, patience, grad_clip). Checkpoints store the kind next to the config
(``"model_kind"``; a checkpoint without it is an MCIHN one), so loading rebuilds the right class.
"""
from __future__ import annotations

from ..baselines import (CMHFM, EMT, LMF, TFN, CMHFMConfig, EMTConfig, LateFusion, LateFusionConfig, LMFConfig, MulT,
                         MulTConfig, SelfMM, SelfMMConfig, TFNConfig)
from ..model.config import MCIHNConfig
from ..model.mcihn import MCIHN
from ..model.text_encoder import TextEncoder, WithTextEncoder

MODELS = {
    "mcihn": (MCIHNConfig, MCIHN),
    "tfn": (TFNConfig, TFN),
    "lmf": (LMFConfig, LMF),
    "mult": (MulTConfig, MulT),
    "late": (LateFusionConfig, LateFusion),
    "selfmm": (SelfMMConfig, SelfMM),
    "emt": (EMTConfig, EMT),
    "cmhfm": (CMHFMConfig, CMHFM),
}
MODEL_KINDS = tuple(MODELS)


def _entry(kind: str):
    if kind not in MODELS:
        raise ValueError(f"unknown model {kind!r}; choose from {list(MODELS)}")
    return MODELS[kind]


def config_class(kind: str) -> type:
    return _entry(kind)[0]


def model_kind(cfg) -> str:
    """The registry name of a config object (exact type: LMFConfig is a TFNConfig subclass)."""
    for kind, (cls, _) in MODELS.items():
        if type(cfg) is cls:
            return kind
    raise TypeError(f"{type(cfg).__name__} is not the config of a registered model")


def make_config(kind: str, preset: str = "paper", n_train: int | None = None, **overrides):
    """``make_config("tfn", "tiny", epochs=5)`` -> TFNConfig.tiny(epochs=5); ``n_train`` sizes the ``auto`` preset."""
    return config_class(kind).from_preset(preset, n_train=n_train, **overrides)


def default_preset(data=None) -> str:
    """The preset a command uses when none is given: ``tiny`` on the embedded synthetic data (``data`` None
    or made by ``synthetic_data``), else ``auto`` (sizes from the training-set size)."""
    embedded = data is None or (getattr(data, "synthetic", False) and not (data.meta or {}).get("planted_kind"))
    return "tiny" if embedded else "auto"


def default_config(kind: str, data=None, preset: str | None = None, **overrides):
    """The config ``python -m mcihn train --data FILE --model KIND`` trains with when no option is given
    (the suite's rows, ``experiment`` and ``tune`` call this too: one place decides)."""
    n_train = len(data["train"]) if data is not None else None
    return make_config(kind, preset or default_preset(data), n_train=n_train, **overrides)


def config_from_dict(d: dict, kind: str = "mcihn"):
    return config_class(kind).from_dict(d)


def build_model(cfg, dims: dict, text_encoder=None):
    """The model for ``cfg`` with input sizes ``dims`` (modality -> (T_m, D_m), read from the data).

    With ``cfg.text_encoder`` set, the model reads its text from a fine-tuned encoder
    (:class:`mcihn.model.text_encoder.WithTextEncoder`): ``text_encoder`` is that loaded
    :class:`TextEncoder` (loaded from ``cfg.text_encoder`` when None), and the text input size becomes
    (token ids' length, the encoder's width).
    """
    model_class = _entry(model_kind(cfg))[1]
    if not getattr(cfg, "text_encoder", None):
        return model_class(cfg, dims)
    if "text" not in cfg.modalities:
        raise ValueError(f"a text encoder ({cfg.text_encoder!r}) needs the text modality; modalities are {cfg.modalities}")
    encoder = text_encoder if text_encoder is not None else TextEncoder.from_pretrained(cfg.text_encoder)
    dims = {**dims, "text": (int(dims["text"][0]), encoder.hidden_size)}  # (L ids, H)
    return WithTextEncoder(model_class(cfg, dims), encoder, cfg.text_lr)
