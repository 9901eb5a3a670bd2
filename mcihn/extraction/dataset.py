"""From a folder of raw clips to an MMSA pickle: ``python -m mcihn extract``.

Input, the MMSA-FET convention (how CMU-MOSI and CH-SIMS are distributed raw)::

    DIR/label.csv                  video_id, clip_id, text, label, [label_T, label_A, label_V,] [annotation,] mode
    DIR/Raw/<video_id>/<clip_id>.mp4   (another container / a pure audio file works too: .mkv .avi .wav ...)

Output: the pickle :func:`mcihn.data.mmsa.load_mmsa` reads (``train`` / ``valid`` / ``test`` from ``mode``,
ids ``"<video_id>$_$<clip_id>"`` as in MMSA), plus ``meta``: the extraction settings, model names, feature
sizes, package versions, the skipped clips and the clips without audio / video.

Resumable: every finished clip is cached in ``OUT.cache/`` (one small ``.npz`` each, keyed by the settings'
fingerprint, the clip's file and its text); a rerun after a crash only extracts what is missing. The cache is
removed when the pickle is written (``keep_cache`` keeps it).

Missing streams (documented choice): a clip without an audio track gets zero audio features with length 0,
a pure audio file zero vision features with length 0 (the model masks them out); both are listed in
``meta["no_audio"]`` / ``meta["no_video"]`` and in the summary. Anything else that fails (missing or
corrupt file, empty text) is reported by clip id and either fails the run (default) or is skipped.
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import pickle
import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..data import LABEL_RANGE
from ..utils import make_temp_file
from .features import ExtractionConfig, Extractors, fit_audio, fit_frames
from .media import MediaError, probe_streams, read_audio, read_video_frames

REQUIRED_COLUMNS = ("video_id", "clip_id", "text", "label", "mode")
UNIMODAL = ("label_T", "label_A", "label_V")
MODES = {"train": "train", "valid": "valid", "test": "test"}
MEDIA_EXTS = (".mp4", ".mkv", ".avi", ".mov", ".webm", ".flv", ".wav", ".mp3", ".m4a", ".flac", ".aac", ".ogg")


class LabelFileError(ValueError):
    """label.csv is malformed; the message names the file, the line and the column."""


class ExtractionError(ValueError):
    """A bad clip stopped the run (``on_error="fail"``); the message names the clip and its label.csv line."""


class ClipError(ValueError):
    """One clip cannot be extracted; ``clip_id`` says which."""

    def __init__(self, clip_id: str, problem: str):
        super().__init__(f"clip {clip_id!r}: {problem}")
        self.clip_id, self.problem = clip_id, problem


@dataclass
class Clip:
    """One row of label.csv."""
    id: str               # MMSA id: "<video_id>$_$<clip_id>"
    video_id: str
    clip_id: str
    text: str
    label: float
    mode: str
    line: int             # line in label.csv (1 = header), for messages
    unimodal: dict        # {"T": float, "A": ..., "V": ...} for CH-SIMS, else {}
    annotation: str = ""


# ----------------------------------------------------------------------------------------- label.csv
def read_label_csv(path, dataset: str | None = None) -> tuple[list[Clip], str]:
    """Parse and check label.csv: returns (clips, dataset). Every problem is a LabelFileError naming the line.

    ``dataset`` ("mosi" | "sims") fixes the label range; None infers it: "sims" when label_T/A/V exist.
    Empty text is not a file error (a clip may lack a transcript): it is reported per clip at extraction.
    """
    path = Path(path)
    if not path.is_file():
        raise LabelFileError(f"{path}: label file not found (expected DIR/label.csv, the MMSA-FET layout)")
    with io.StringIO(_read_utf8(path), newline="") as f:
        reader = csv.DictReader(f)
        cols = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in cols]
        if missing:
            raise LabelFileError(f"{path}: missing column(s) {missing}; found {cols}; "
                                 f"required: {list(REQUIRED_COLUMNS)}")
        has_uni = all(c in cols for c in UNIMODAL)
        if dataset is None:
            dataset = "sims" if has_uni else "mosi"
        if dataset not in LABEL_RANGE:
            raise ValueError(f"dataset must be one of {sorted(LABEL_RANGE)}, got {dataset!r}")
        lo, hi = LABEL_RANGE[dataset]
        clips, seen = [], {}
        for line, row in enumerate(reader, start=2):
            where = f"{path}, line {line}"
            vid, cid = (row.get("video_id") or "").strip(), (row.get("clip_id") or "").strip()
            if not vid or not cid:
                raise LabelFileError(f"{where}: empty video_id or clip_id")
            clip_name = f"{vid}$_${cid}"
            mode = (row.get("mode") or "").strip().lower()
            if mode not in MODES:
                raise LabelFileError(f"{where} (clip {clip_name!r}), column 'mode': unknown mode {row.get('mode')!r}; "
                                     f"expected one of {sorted(MODES)}")

            def number(col):
                try:
                    v = float(row.get(col))
                except (TypeError, ValueError):
                    raise LabelFileError(f"{where} (clip {clip_name!r}), column {col!r}: "
                                         f"not a number: {row.get(col)!r}") from None
                if not np.isfinite(v) or not lo - 1e-6 <= v <= hi + 1e-6:
                    raise LabelFileError(f"{where} (clip {clip_name!r}), column {col!r}: {v} is outside the "
                                         f"{dataset.upper()} label range [{lo}, {hi}]")
                return v

            label = number("label")
            uni = {c[-1]: number(c) for c in UNIMODAL} if has_uni else {}
            if clip_name in seen:
                raise LabelFileError(f"{where}: clip {clip_name!r} already listed on line {seen[clip_name]}")
            seen[clip_name] = line
            clips.append(Clip(clip_name, vid, cid, row.get("text") or "", label, MODES[mode], line, uni,
                              (row.get("annotation") or "").strip()))
    if not clips:
        raise LabelFileError(f"{path}: no clips (only a header?)")
    return clips, dataset


def _read_utf8(path: Path) -> str:
    """The text of a UTF-8 file (a BOM, as Excel writes, is dropped); other bytes: an error naming the line."""
    raw = path.read_bytes()
    if raw.startswith(codecs.BOM_UTF8):
        raw = raw[len(codecs.BOM_UTF8):]
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        line = raw.count(b"\n", 0, e.start) + 1
        raise LabelFileError(f"{path}, line {line}: not UTF-8 (byte 0x{raw[e.start]:02x} at column "
                             f"{e.start - line_start + 1}); save the file as UTF-8") from None


def check_splits(clips: list[Clip], path) -> None:
    """Every split needs clips: refuse a label.csv without train, valid or test rows before any extraction."""
    missing = [s for s in MODES.values() if not any(c.mode == s for c in clips)]
    if missing:
        raise LabelFileError(f"{path}: no clip of mode {', '.join(repr(s) for s in missing)} (column 'mode'); "
                             "the pickle needs train, valid and test clips")


def find_media(raw_dir: Path, clip: Clip) -> Path:
    """Raw/<video_id>/<clip_id>.mp4, else the same name with another media extension."""
    base = raw_dir / clip.video_id / clip.clip_id
    for ext in MEDIA_EXTS:
        if base.with_name(base.name + ext).is_file():
            return base.with_name(base.name + ext)
    raise ClipError(clip.id, f"media file not found: {base}.mp4 (nor another of {', '.join(MEDIA_EXTS[1:])})")


# ------------------------------------------------------------------------------------------- one clip
def decode_clip(path, cfg: ExtractionConfig, clip_id: str | None = None) -> dict:
    """Decode what the extractors need: frames (k, H, W, 3) with k <= frames, 16 kHz audio or None."""
    streams = probe_streams(path, clip_id)
    out = {"frames": None, "audio": None, "n_decoded": 0}
    if "vision" in cfg.modalities and streams["video"]:
        frames, info = read_video_frames(path, cfg.frames, clip_id)  # (frames, H, W, 3), evenly spaced
        out["frames"], _ = fit_frames(frames, info["n_decoded"], cfg.frames)
        out["n_decoded"] = info["n_decoded"]
    if "audio" in cfg.modalities and streams["audio"]:
        out["audio"] = read_audio(path, clip_id=clip_id)  # (S,) float32, 16 kHz mono
        if out["audio"] is not None and len(out["audio"]) == 0:
            out["audio"] = None
    return out


def encode_batch(ex: Extractors, decoded: list[dict], texts: list[str]) -> list[dict]:
    """Run the encoders on a batch of decoded clips; every array fitted to its configured length."""
    cfg, n = ex.cfg, len(decoded)
    res = [dict() for _ in range(n)]
    if ex.vision is not None:
        have = [i for i, d in enumerate(decoded) if d["frames"] is not None]
        if have:
            stacked = np.concatenate([decoded[i]["frames"] for i in have])  # (sum k_i, H, W, 3)
            emb = ex.vision(stacked)  # (sum k_i, D_v)
            start = 0
            for i in have:
                k = len(decoded[i]["frames"])
                res[i]["vision"], res[i]["vision_len"] = pad_rows(emb[start:start + k], cfg.frames), k
                start += k
        for i in set(range(n)) - set(have):
            res[i]["vision"], res[i]["vision_len"] = np.zeros((cfg.frames, ex.vision.dim), np.float32), 0
    if ex.text is not None:
        states, triple = ex.text(texts)  # (B, T_t, D_t), (B, 3, T_t)
        for i in range(n):
            res[i]["text"], res[i]["text_bert"] = states[i], triple[i]
    if ex.audio is not None:
        have = [i for i, d in enumerate(decoded) if d["audio"] is not None]
        seqs = ex.audio([decoded[i]["audio"] for i in have]) if have else []
        for i, seq in zip(have, seqs):
            res[i]["audio"], res[i]["audio_len"] = fit_audio(seq, cfg.audio_len, cfg.audio_fit)
            res[i]["audio_frames"] = len(seq)
        for i in set(range(n)) - set(have):
            res[i]["audio"], res[i]["audio_len"] = np.zeros((cfg.audio_len, ex.audio.dim), np.float32), 0
            res[i]["audio_frames"] = 0
    return res


def pad_rows(x: np.ndarray, length: int) -> np.ndarray:
    """(k, D) -> (length, D) with zero rows appended (k <= length)."""
    out = np.zeros((length, x.shape[1]), np.float32)
    out[:len(x)] = x
    return out


def extract_clip(ex: Extractors, path, text: str, clip_id: str | None = None) -> dict:
    """One clip end to end (used by ``predict``): {"vision", "vision_len", "text", "text_bert", "audio", ...}."""
    if "text" in ex.cfg.modalities and not text.strip():
        raise ClipError(clip_id or str(path), "empty text (BERT needs a transcript)")
    return encode_batch(ex, [decode_clip(path, ex.cfg, clip_id)], [text])[0]


# --------------------------------------------------------------------------------------- the dataset
def _cache_key(clip: Clip, media: Path | None) -> str:
    """A clip's cache name: its id, its text and its media file's size and time (none for text only)."""
    import hashlib
    st = media.stat() if media is not None else None
    stamp = f"{st.st_size}\0{st.st_mtime_ns}" if st is not None else "text-only"
    return hashlib.sha256(f"{clip.id}\0{clip.text}\0{stamp}".encode()).hexdigest()[:20]


def _write_npz(path: Path, arrays: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def extract_dataset(dataset_dir, out, cfg: ExtractionConfig | None = None, device="cpu", dataset: str | None = None,
                    on_error: str = "fail", cache_dir=None, keep_cache: bool = False, progress: bool = True,
                    workers: int = 2, log=print) -> dict:
    """Extract every clip of ``dataset_dir`` into the MMSA pickle ``out``; returns the summary dict.

    ``on_error``: "fail" stops at the first bad clip (naming it), "skip" reports it and goes on.
    ``workers``: threads decoding the next batch of clips while the encoders run on the current one.
    The summary: {"out", "dataset", "clips", "extracted", "from_cache", "skipped": [{"id", "reason"}],
    "no_audio": [...], "no_video": [...], "splits": {split: n}, "load_seconds" (loading the encoders),
    "seconds" (decoding, encoding and writing, after loading), "clips_per_s" (new clips / seconds)}.
    """
    from tqdm.auto import tqdm

    if on_error not in ("fail", "skip"):
        raise ValueError(f"on_error must be 'fail' or 'skip', got {on_error!r}")
    cfg = cfg or ExtractionConfig()
    dataset_dir, out = Path(dataset_dir), Path(out)
    # everything checkable is checked before the encoders load and the first clip is decoded
    if out.is_dir():
        raise ValueError(f"{out}: the output pickle is a folder; pass a file name (e.g. {out / 'features.pkl'})")
    clips, dataset = read_label_csv(dataset_dir / "label.csv", dataset)
    check_splits(clips, dataset_dir / "label.csv")
    raw_dir = dataset_dir / "Raw"
    # text alone (--modalities t) needs no media: a label.csv with transcripts is the whole dataset
    needs_media = any(m in cfg.modalities for m in ("audio", "vision"))
    if needs_media and not raw_dir.is_dir():
        raise FileNotFoundError(f"{raw_dir}: no Raw/ folder (expected Raw/<video_id>/<clip_id>.mp4)")
    cache = Path(cache_dir) if cache_dir else out.with_name(out.name + ".cache")
    cache = cache / cfg.fingerprint()
    skipped, done, n_cached, n_new = [], {}, 0, 0

    def bad(clip, err):
        if on_error == "fail":
            raise ExtractionError(f"{err}  [label.csv line {clip.line}; pass --on-error skip to skip bad clips; "
                                  "finished clips are cached, so a rerun resumes]") from err
        skipped.append({"id": clip.id, "line": clip.line, "reason": str(err)})
        log(f"skipped {clip.id}: {err}")

    todo = []  # (clip, media path, cache file)
    for clip in clips:
        try:
            media = find_media(raw_dir, clip) if needs_media else None
        except ClipError as e:
            bad(clip, e)
            continue
        f = cache / clip.video_id / f"{clip.clip_id}.{_cache_key(clip, media)}.npz"
        if f.exists():
            done[clip.id], n_cached = f, n_cached + 1
        else:
            todo.append((clip, media, f))
    skipped_ids = {s["id"] for s in skipped}
    kept_modes = {c.mode for c in clips if c.id not in skipped_ids}
    if len(kept_modes) < len(MODES):  # --on-error skip dropped every clip of a split: say so before extracting
        raise ValueError(f"{dataset_dir}: no clip of mode {sorted(set(MODES.values()) - kept_modes)} is left "
                         f"({len(skipped)} skipped); the pickle needs train, valid and test")
    t_load = time.time()
    ex = Extractors(cfg, device)
    t0 = time.time()  # throughput is measured from here: decoding + encoding, not model loading
    log(f"extracting {len(clips)} clips from {dataset_dir} ({dataset}); models: vision {cfg.vision_model}, "
        f"text {cfg.text_model}, audio {cfg.audio_model} [{cfg.audio_layer}]; sizes {ex.dims}; cache {cache}")
    if n_cached:
        log(f"resuming: {n_cached} clips already extracted in {cache}")

    def decode(item):  # runs in a worker thread; FFmpeg decodes with the GIL released
        clip, media, _ = item
        try:
            if "text" in cfg.modalities and not clip.text.strip():
                raise ClipError(clip.id, "empty text (BERT needs a transcript)")
            return decode_clip(media, cfg, clip.id) if media is not None else {"frames": None, "audio": None,
                                                                                 "n_decoded": 0}
        except (MediaError, ClipError) as e:
            return e

    batches = [todo[i:i + cfg.batch_size] for i in range(0, len(todo), cfg.batch_size)]
    bar = tqdm(total=len(todo), desc="extract", unit="clip", disable=not progress)
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        # decode batch k+1 while the encoders run on batch k
        pending = [pool.submit(decode, it) for it in batches[0]] if batches else []
        for k, items in enumerate(batches):
            results = [f.result() for f in pending]
            pending = [pool.submit(decode, it) for it in batches[k + 1]] if k + 1 < len(batches) else []
            batch, decoded = [], []
            for item, r in zip(items, results):
                if isinstance(r, Exception):
                    bad(item[0], r)
                    bar.update(1)
                else:
                    batch.append(item)
                    decoded.append(r)
            if not batch:
                continue
            for (clip, media, f), feats in zip(batch, encode_batch(ex, decoded, [c.text for c, _, _ in batch])):
                _write_npz(f, feats)
                done[clip.id] = f
                n_new += 1
            bar.update(len(batch))
    bar.close()

    kept = [c for c in clips if c.id in done]
    obj, flags = assemble(kept, done, dataset, cfg)
    for split in MODES:
        if not obj[split]["id"].size:
            raise ValueError(f"{dataset_dir}: no clip of mode {split!r} was extracted "
                             f"({len(skipped)} skipped); the pickle needs train, valid and test")
    secs = time.time() - t0
    summary = {"out": str(out), "dataset": dataset, "clips": len(clips), "extracted": n_new, "from_cache": n_cached,
               "skipped": skipped, "no_audio": flags["no_audio"], "no_video": flags["no_video"],
               "splits": {s: int(obj[s]["id"].size) for s in MODES}, "seconds": round(secs, 2),
               "load_seconds": round(t0 - t_load, 2),
               "clips_per_s": round(n_new / secs, 3) if n_new else None}
    obj["meta"]["skipped"] = skipped
    write_pickle(out, obj)
    if not keep_cache:
        shutil.rmtree(cache, ignore_errors=True)
        parent = cache.parent
        if parent.is_dir() and not any(parent.iterdir()):
            parent.rmdir()
    return summary


def assemble(clips: list[Clip], files: dict, dataset: str, cfg: ExtractionConfig) -> tuple[dict, dict]:
    """Cached per-clip arrays -> the MMSA dict {split: {...}, "meta": {...}}, in label.csv order."""
    obj, flags = {}, {"no_audio": [], "no_video": []}
    for split in MODES:
        rows = [c for c in clips if c.mode == split]
        feats = [dict(np.load(files[c.id])) for c in rows]
        d = {"id": np.array([c.id for c in rows], dtype=object),
             "raw_text": np.array([c.text for c in rows], dtype=object),
             "regression_labels": np.array([c.label for c in rows], dtype=np.float32),
             "annotations": np.array([c.annotation for c in rows], dtype=object)}
        for key, fld in (("T", "regression_labels_T"), ("A", "regression_labels_A"), ("V", "regression_labels_V")):
            if rows and rows[0].unimodal:
                d[fld] = np.array([c.unimodal[key] for c in rows], dtype=np.float32)
        for m in cfg.modalities:
            d[m] = np.stack([f[m] for f in feats]).astype(np.float32) if feats else np.zeros((0, 0, 0), np.float32)
            if m == "text":
                d["text_bert"] = np.stack([f["text_bert"] for f in feats]) if feats else np.zeros((0, 3, 0), np.int64)
            else:
                d[f"{m}_lengths"] = np.array([int(f[f"{m}_len"]) for f in feats], dtype=np.int64)
        for c, f in zip(rows, feats):
            if "audio" in cfg.modalities and int(f["audio_len"]) == 0:
                flags["no_audio"].append(c.id)
            if "vision" in cfg.modalities and int(f["vision_len"]) == 0:
                flags["no_video"].append(c.id)
        obj[split] = d
    obj["meta"] = {"dataset": dataset, "source": "mcihn extract", "extraction": {**asdict(cfg),
                   "fingerprint": cfg.fingerprint()}, **flags}
    return obj, flags


def write_pickle(path, obj) -> None:
    """pickle.dump to a temporary file in the same folder, then rename: no half-written pickle, ever."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = make_temp_file(path)
    try:
        with os.fdopen(fd, "wb") as f:
            pickle.dump(obj, f, protocol=4)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
