"""Sec. 3.2 and 4.3, Eq. 1-3: the pretrained encoders that turn a clip into X_v, X_t, X_a.

    X_v = CLIP(Video)      (T_v, D_v) = (10, 512)   image embeddings of N frames sampled evenly (Eq. 1)
    X_t = BERT(Text)       (T_t, D_t) = (36, 768)   last-layer token states (Eq. 2)
    X_a = Wav2Vec(Audio)   (T_a, D_a) = (128, 512)  wav2vec2 frames of 16 kHz mono speech (Eq. 3)

Each encoder is loaded through transformers from a hub name *or a local folder* (``save_pretrained``
output), so the same code runs on the paper's models, on a copy of them on an offline machine, and on the
tiny random models the tests build. Sizes (D_v, D_t, D_a) are read from the loaded model, never assumed.

Which output the paper's sizes imply (see ../shared/paper-reading-notes.md):
* CLIP: ``get_image_features``, i.e. the projection of the pooled [CLS] state: 512-d for ViT-B/32.
* BERT: ``last_hidden_state`` (768-d for bert-base); MMSA also keeps the tokenizer's (ids, mask, segment
  ids) triple as ``text_bert``, and so do we.
* wav2vec2: 512 is the width of the *convolutional feature encoder* (``extract_features``); the
  transformer's states are 1024-d for the large XLSR models. ``audio_layer="transformer"`` gives those.

Every extractor returns numpy arrays fitted to the configured length with the true length beside them
(padding is zero; lengths mark the valid prefix, which the model masks).
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from ..utils import from_pretrained
from .media import pad_or_truncate, resample_sequence

#: The paper's encoders (Sec. 4.3). Text and audio follow the language (CMU-MOSI: en, CH-SIMS: zh).
DEFAULT_MODELS = {
    "vision": {"en": "openai/clip-vit-base-patch32", "zh": "openai/clip-vit-base-patch32"},
    "text": {"en": "bert-base-uncased", "zh": "bert-base-chinese"},
    # "wav2vec2-large-xlsr-53-english" and "...-zh-cn-gpt" in the paper; these are their hub repositories.
    "audio": {"en": "jonatasgrosman/wav2vec2-large-xlsr-53-english",
              "zh": "ydshieh/wav2vec2-large-xlsr-53-chinese-zh-cn-gpt"},
}
SAMPLE_RATE = 16000  # wav2vec2 is trained on 16 kHz audio


@dataclass
class ExtractionConfig:
    """What to extract and how; every field is recorded in the output pickle's ``meta["extraction"]``."""
    language: str = "en"
    vision_model: str | None = None     # None -> DEFAULT_MODELS["vision"][language]
    text_model: str | None = None
    audio_model: str | None = None
    frames: int = 10                    # T_v: frames sampled evenly over the clip
    text_len: int = 36                  # T_t: tokens incl. [CLS] and [SEP]
    audio_len: int = 128                # T_a: wav2vec2 frames
    audio_layer: str = "conv"           # "conv": extract_features (512-d); "transformer": last_hidden_state
    audio_fit: str = "resample"         # longer than audio_len: "resample" the whole clip, or "truncate"
    batch_size: int = 16                # clips per forward pass
    modalities: tuple = ("text", "audio", "vision")
    extras: dict = field(default_factory=dict)  # filled in: package versions, model sizes

    def __post_init__(self):
        if self.language not in ("en", "zh"):
            raise ValueError(f"language must be 'en' or 'zh', got {self.language!r}")
        for m in ("vision", "text", "audio"):
            if getattr(self, f"{m}_model") is None:
                setattr(self, f"{m}_model", DEFAULT_MODELS[m][self.language])
        for name in ("frames", "text_len", "audio_len", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.text_len < 3:
            raise ValueError(f"text_len must be >= 3 ([CLS], one token, [SEP]), got {self.text_len}")
        if self.audio_layer not in ("conv", "transformer"):
            raise ValueError(f"audio_layer must be 'conv' or 'transformer', got {self.audio_layer!r}")
        if self.audio_fit not in ("resample", "truncate"):
            raise ValueError(f"audio_fit must be 'resample' or 'truncate', got {self.audio_fit!r}")
        self.modalities = tuple(self.modalities)

    def fingerprint(self) -> str:
        """Hash of everything that changes the features (not the batch size): keys the per-clip cache."""
        keep = {k: v for k, v in asdict(self).items() if k not in ("batch_size", "extras")}
        return hashlib.sha256(json.dumps(keep, sort_keys=True).encode()).hexdigest()[:16]


def versions() -> dict:
    """Versions of the libraries that shape the features (recorded in the pickle)."""
    import av
    import transformers

    from .. import __version__
    return {"mcihn": __version__, "torch": str(torch.__version__), "transformers": str(transformers.__version__),
            "av": str(av.__version__), "numpy": str(np.__version__)}


def _quiet_transformers():
    """Loading reports and 'newly initialised' notes are noise for a feature extractor; errors still show."""
    from transformers.utils import logging
    logging.set_verbosity_error()
    logging.disable_progress_bar()


def _load(model_cls, name: str, what: str, **kwargs):
    """from_pretrained with an error that says which model failed and how to fix it offline."""
    try:
        return from_pretrained(model_cls, name, **kwargs)  # local files first: no waiting on an unreachable hub
    except (OSError, ValueError) as e:
        raise OSError(f"cannot load the {what} model {name!r}: {e}\n  Give a local folder (save_pretrained output) "
                      f"or a hub name; offline, download it once elsewhere and set HF_HUB_OFFLINE=1 "
                      f"(see the README, 'Feature extraction').") from e


# ------------------------------------------------------------------------------------------- vision
class VisionExtractor:
    """CLIP image embeddings of video frames (Eq. 1): frames (N, H, W, 3) uint8 -> (N, D_v) float32."""

    def __init__(self, name: str, device="cpu"):
        from transformers import AutoImageProcessor, CLIPModel
        _quiet_transformers()
        # backend="pil": resize / crop / normalise with Pillow + numpy (no torchvision needed)
        self.processor = _load(AutoImageProcessor, name, "vision", backend="pil")
        self.model = _load(CLIPModel, name, "vision").to(device).eval()
        self.device, self.name = device, name
        self.dim = self.model.config.projection_dim

    @torch.no_grad()
    def __call__(self, frames: np.ndarray) -> np.ndarray:
        """(K, H, W, 3) uint8 RGB (any number of frames, e.g. B clips x N frames) -> (K, D_v) float32."""
        pixels = self.processor(images=list(frames), return_tensors="pt")["pixel_values"]  # (K, 3, 224, 224)
        out = self.model.get_image_features(pixel_values=pixels.to(self.device))
        emb = out if isinstance(out, torch.Tensor) else out.pooler_output  # transformers 5 returns an output object
        return emb.float().cpu().numpy()  # (K, D_v): visual_projection(pooled [CLS])


# --------------------------------------------------------------------------------------------- text
class TextExtractor:
    """BERT token states (Eq. 2) and MMSA's ``text_bert`` triple, both ``text_len`` tokens long."""

    def __init__(self, name: str, text_len: int, device="cpu"):
        from transformers import AutoModel, AutoTokenizer
        _quiet_transformers()
        self.tokenizer = _load(AutoTokenizer, name, "text")
        self.model = _load(AutoModel, name, "text").to(device).eval()
        self.device, self.name, self.text_len = device, name, text_len
        self.dim = self.model.config.hidden_size

    @torch.no_grad()
    def __call__(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """B strings -> states (B, T_t, D_t) float32 (zero at padding), text_bert (B, 3, T_t) int64."""
        enc = self.tokenizer(list(texts), max_length=self.text_len, padding="max_length", truncation=True,
                             return_tensors="pt")
        ids, mask = enc["input_ids"], enc["attention_mask"]  # (B, T_t) each
        segments = enc.get("token_type_ids", torch.zeros_like(ids))
        states = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).last_hidden_state
        states = states.float().cpu() * mask[..., None]  # (B, T_t, D_t), padding rows set to 0
        triple = torch.stack([ids, mask, segments], dim=1)  # (B, 3, T_t): MMSA's text_bert layout
        return states.numpy(), triple.long().numpy()


def sentence_embeddings(states: np.ndarray, text_bert: np.ndarray) -> np.ndarray:
    """Mean of the valid token states: (B, T, D), (B, 3, T) -> (B, D), L2-normalised (cosine = dot)."""
    mask = text_bert[:, 1, :, None].astype(states.dtype)  # (B, T, 1)
    mean = (states * mask).sum(1) / np.maximum(mask.sum(1), 1)
    return mean / np.maximum(np.linalg.norm(mean, axis=-1, keepdims=True), 1e-12)


# -------------------------------------------------------------------------------------------- audio
class AudioExtractor:
    """wav2vec2 frames (Eq. 3): 16 kHz mono waveforms -> (T_i, D_a) per clip, one frame per 20 ms."""

    def __init__(self, name: str, layer: str = "conv", device="cpu"):
        from transformers import AutoFeatureExtractor, AutoModel
        _quiet_transformers()
        self.processor = _load(AutoFeatureExtractor, name, "audio")
        self.model = _load(AutoModel, name, "audio").to(device).eval()
        if not hasattr(self.model, "_get_feat_extract_output_lengths"):
            raise ValueError(f"audio model {name!r} ({type(self.model).__name__}) is not a wav2vec2-style model")
        self.device, self.name, self.layer = device, name, layer
        cfg = self.model.config
        self.dim = cfg.conv_dim[-1] if layer == "conv" else cfg.hidden_size
        # Shortest input giving one output frame: the conv stack's receptive field (400 samples = 25 ms).
        rf, jump = 1, 1
        for k, s in zip(cfg.conv_kernel, cfg.conv_stride):
            rf, jump = rf + (k - 1) * jump, jump * s
        self.min_samples = rf
        # Models trained with attention masks (layer-norm feature encoders, e.g. XLSR-53) can be batched
        # with padding; group-norm ones (wav2vec2-base) normalise over time, so padding would change them.
        self.batchable = bool(getattr(self.processor, "return_attention_mask", False))

    def n_frames(self, n_samples: int) -> int:
        """Output frames for an input of ``n_samples`` samples (the conv stack's arithmetic)."""
        return int(self.model._get_feat_extract_output_lengths(torch.tensor([n_samples]))[0])

    @torch.no_grad()
    def _forward(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        enc = self.processor(waves, sampling_rate=SAMPLE_RATE, return_tensors="pt", padding=True,
                             return_attention_mask=self.batchable)
        kwargs = {"input_values": enc["input_values"].to(self.device)}  # (B, S_max)
        if self.batchable:
            kwargs["attention_mask"] = enc["attention_mask"].to(self.device)
        out = self.model(**kwargs)
        seq = out.extract_features if self.layer == "conv" else out.last_hidden_state  # (B, T_max, D_a)
        return [seq[i, :self.n_frames(len(w))].float().cpu().numpy() for i, w in enumerate(waves)]

    def __call__(self, waves: list[np.ndarray]) -> list[np.ndarray]:
        """B waveforms (S_i,) float32 at 16 kHz -> B arrays (T_i, D_a); too-short clips are zero-padded."""
        waves = [np.pad(w, (0, max(0, self.min_samples - len(w)))).astype(np.float32) for w in waves]
        if self.batchable:
            return self._forward(waves)
        return [self._forward([w])[0] for w in waves]


def fit_audio(seq: np.ndarray, length: int, mode: str = "resample") -> tuple[np.ndarray, int]:
    """(T, D) wav2vec2 frames -> (length, D) and the true length.

    Shorter than ``length``: zero-padded, true length T. Longer: ``"resample"`` interpolates the whole clip
    down to ``length`` frames (all valid), ``"truncate"`` keeps the first ``length``.
    """
    if mode == "resample" and len(seq) > length:
        return resample_sequence(seq, length).astype(np.float32), length
    out, n = pad_or_truncate(seq, length)
    return out.astype(np.float32, copy=False), n


def fit_frames(frames: np.ndarray, n_decoded: int, n: int) -> tuple[np.ndarray, int]:
    """(n, H, W, 3) evenly sampled frames -> the distinct frames, and how many are valid.

    A clip with at least ``n`` frames gives ``n`` distinct frames. A shorter one was sampled with
    repeats (every decoded frame once or more, in order); keep each frame once so the sequence is a
    valid prefix of ``n_decoded`` frames, to be zero-padded after encoding.
    """
    if n_decoded >= n:
        return frames, n
    from .media import sample_frame_indices
    idx = sample_frame_indices(n_decoded, n)  # sorted, covers 0..n_decoded-1
    first = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])  # position of each frame's first copy
    return frames[first], n_decoded


class Extractors:
    """The three encoders of one :class:`ExtractionConfig`, loaded once (only the modalities asked for)."""

    def __init__(self, cfg: ExtractionConfig, device="cpu"):
        self.cfg, self.device = cfg, device
        self.vision = VisionExtractor(cfg.vision_model, device) if "vision" in cfg.modalities else None
        self.text = TextExtractor(cfg.text_model, cfg.text_len, device) if "text" in cfg.modalities else None
        self.audio = AudioExtractor(cfg.audio_model, cfg.audio_layer, device) if "audio" in cfg.modalities else None
        cfg.extras = {"versions": versions(), "dims": self.dims, "sample_rate": SAMPLE_RATE}

    @property
    def dims(self) -> dict:
        """{modality: D} read from the loaded models."""
        return {m: getattr(self, m).dim for m in ("text", "audio", "vision") if getattr(self, m) is not None}
