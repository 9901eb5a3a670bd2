"""Sentiment of one raw clip: ``python -m mcihn predict --checkpoint best.pt --video clip.mp4 --text "..."``.

The clip goes through the same encoders as the training data (Eq. 1-3, :mod:`mcihn.extraction.features`), is
z-scored with the checkpoint's training-split statistics, and through the trained model. The encoders are
taken from the checkpoint when its training pickle was made by ``mcihn extract`` (it records them), else
from the arguments or the paper's defaults; sequence lengths always come from the checkpoint.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..data import LABEL_RANGE, SplitData
from .dataset import extract_clip
from .features import ExtractionConfig, Extractors
from ..training.runner import load_model, model_tensors
from ..utils import resolve_device

# MOSI's seven classes after rounding to -3..3 (MMSA's Acc-7); SIMS uses the same words on [-1, 1].
_POLARITY = {-3: "strongly negative", -2: "negative", -1: "weakly negative", 0: "neutral",
             1: "weakly positive", 2: "positive", 3: "strongly positive"}


def extraction_config_for(ck: dict, language: str | None = None, **models) -> ExtractionConfig:
    """The checkpoint's extraction settings, overridden by non-None ``models`` (vision_model=... etc.)."""
    rec = dict(ck.get("extraction") or {})
    dims = ck["dims"]  # modality -> (T, D): the lengths the model was trained on
    kw = {k: rec[k] for k in ("language", "vision_model", "text_model", "audio_model", "audio_layer", "audio_fit")
          if k in rec}
    if language:
        kw["language"] = language
        if not any(models.values()):  # a new language without explicit models: that language's defaults
            kw = {k: v for k, v in kw.items() if not k.endswith("_model")}
    kw.update({k: v for k, v in models.items() if v})
    lengths = {"vision": "frames", "text": "text_len", "audio": "audio_len"}
    kw.update({lengths[m]: int(dims[m][0]) for m in dims})
    return ExtractionConfig(modalities=tuple(m for m in ("text", "audio", "vision") if m in dims), **kw)


def check_can_predict(checkpoint, ck: dict, cfg, video, models: dict) -> None:
    """Refuse, before any encoder is loaded: a missing media file; a checkpoint trained on synthetic
    features (no encoder produces them); one whose features' encoders are unknown and not given."""
    if any(m in cfg.modalities for m in ("audio", "vision")) and not Path(video).is_file():
        raise FileNotFoundError(f"--video {video}: no such file")
    source = str(ck.get("data_source", "?"))
    if ck.get("synthetic") or source.upper().startswith("SYNTHETIC"):
        raise ValueError(f"{checkpoint}: trained on SYNTHETIC features ({source}), which no encoder produces, so a "
                         "raw clip cannot be scored with it; train on a pickle made by `python -m mcihn extract`")
    if not ck.get("extraction") and not any(models.values()) and not ck.get("text_encoder"):
        raise ValueError(f"{checkpoint}: its training features ({source}) were not made by `mcihn extract`, so the "
                         "encoders they came from are unknown; pass them (--vision-model, --text-model, --audio-model)")


def predict_clip(checkpoint, video, text: str, device="cpu", language: str | None = None,
                 extractors: Extractors | None = None, **models) -> dict:
    """Score one clip. Returns {"score", "clipped", "polarity", "class7", "dataset", "models", "lengths"}.

    Everything that can be checked without the encoders is checked first (the media file, where the
    checkpoint's features came from), so a wrong call fails at once instead of after loading models.
    """
    model, cfg, normalizer, ck = load_model(checkpoint)
    check_can_predict(checkpoint, ck, cfg, video, models)
    if ck.get("text_encoder"):  # a fine-tuned encoder: its own tokenizer makes the ids
        models = {**models, "text_model": models.get("text_model") or ck["text_encoder"]["name"]}
    device = resolve_device(device) if isinstance(device, str) else device
    ex = extractors or Extractors(extraction_config_for(ck, language, **models), device)
    for m, (T, D) in ck["dims"].items():
        if m in cfg.modalities and ex.dims[m] != D:
            name = getattr(ex.cfg, f"{m}_model")
            raise ValueError(f"{checkpoint}: the model was trained on {D}-d {m} features but the {m} encoder "
                             f"{name!r} gives {ex.dims[m]}-d; pass the encoder the training data was made with "
                             f"(--{m}-model)")
    feats = extract_clip(ex, video, text, clip_id=str(video))
    split = SplitData(
        name="predict",
        features={m: feats[m][None] for m in cfg.modalities},  # (1, T_m, D_m)
        lengths={m: np.array([int(feats["text_bert"][1].sum()) if m == "text" else int(feats[f"{m}_len"])])
                 for m in cfg.modalities},
        labels=np.zeros(1, np.float32), ids=[str(video)],
        text_bert=feats["text_bert"][None] if "text_bert" in feats else None)
    batch = {k: v.to(device) for k, v in model_tensors(normalizer.transform(split), cfg).items()}
    model.to(device)
    with torch.no_grad():
        score = float(model(batch).pred.reshape(-1)[0])  # Eq. 18: the regression output
    dataset = ck.get("dataset", "mosi")
    lo, hi = LABEL_RANGE[dataset]
    clipped = float(np.clip(score, lo, hi))
    scale = 3.0 / hi  # SIMS [-1, 1] -> the 7-point scale
    cls = int(np.round(clipped * scale))
    return {"score": score, "clipped": clipped, "class7": cls, "polarity": _POLARITY[cls], "dataset": dataset,
            "models": {m: getattr(ex.cfg, f"{m}_model") for m in cfg.modalities},
            "lengths": {m: int(split.lengths[m][0]) for m in cfg.modalities}}
