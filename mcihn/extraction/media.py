"""Decoding raw clips and fitting sequences to fixed lengths (the first step of feature extraction).

The paper (Sec. 3.2, 4.3) feeds CLIP with N frames sampled evenly over a clip and wav2vec2 with 16 kHz
mono speech; every modality is then padded / truncated / resampled to a fixed length. This module holds
only those decoding and sequence utilities:

* :func:`sample_frame_indices` - which N of the decoded frames to keep (hand-written: the convention).
* :func:`probe_streams`     - does the file have video, audio (pure audio files, silent clips)?
* :func:`read_video_frames`     - (N, H, W, 3) uint8 RGB frames, decoded with PyAV (FFmpeg in the wheel).
* :func:`read_audio`            - (S,) float32 mono at 16 kHz, or ``None`` for a clip without audio.
* :func:`pad_or_truncate`, :func:`resample_sequence` - (T, D) -> (L, D), with the true length.

Every failure to read a file is a :class:`MediaError` naming the file (and the clip id when given).
"""
from __future__ import annotations

import os

import av
import av.error
import numpy as np

__all__ = ["MediaError", "probe_streams", "sample_frame_indices", "read_video_frames", "read_audio", "pad_or_truncate",
           "resample_sequence"]


class MediaError(ValueError):
    """A clip cannot be decoded; the message says which file (and clip) and what is wrong."""

    def __init__(self, path, problem: str, clip_id: str | None = None):
        where = f"clip {clip_id!r} ({os.fspath(path)})" if clip_id is not None else f"{os.fspath(path)}"
        super().__init__(f"{where}: {problem}")
        self.path, self.problem, self.clip_id = os.fspath(path), problem, clip_id


# ----------------------------------------------------------------------------------------- sampling
def sample_frame_indices(total: int, n: int) -> np.ndarray:
    """Indices of ``n`` frames spread evenly over ``total`` decoded frames: (n,) int64.

    The clip is cut into ``n`` equal segments and the frame at the centre of each is taken:
    ``idx_i = floor((i + 0.5) * total / n)``, computed exactly in integers as ``(2i+1)*total // (2n)``.
    E.g. total=100, n=10 -> [5, 15, ..., 95]; total=7, n=3 -> [1, 3, 5].
    A clip shorter than ``n`` frames never fails: indices repeat (total=2, n=5 -> [0, 0, 1, 1, 1]),
    so a model always sees ``n`` frames. ``total == 0`` is a :class:`MediaError` (nothing to sample).
    """
    if n < 1:
        raise ValueError(f"need n >= 1 frames to sample, got {n}")
    if total < 0:
        raise ValueError(f"total frame count must be >= 0, got {total}")
    if total == 0:
        raise MediaError("<video>", "no decoded frames to sample from (total == 0)")
    i = np.arange(n, dtype=np.int64)
    return (2 * i + 1) * int(total) // (2 * n)


# ----------------------------------------------------------------------------------------- decoding
def _why(e: BaseException) -> str:
    """Short reason from an FFmpeg error, without the file name PyAV appends."""
    return f"{type(e).__name__}: {getattr(e, 'strerror', None) or e}"


def _open(path, clip_id):
    """av.open with every failure (missing, not media, truncated) turned into a MediaError."""
    if not os.path.exists(path):
        raise MediaError(path, "file not found", clip_id)
    try:
        return av.open(os.fspath(path))
    except (av.error.FFmpegError, OSError, EOFError) as e:
        raise MediaError(path, f"cannot open as media ({_why(e)})", clip_id) from e


def _video_stream(container):
    """The first real video stream (cover art in an m4a / mp3 is a one-frame 'video' stream: skipped)."""
    for s in container.streams.video:
        if not (s.disposition & av.stream.Disposition.attached_pic):
            return s
    return None


def probe_streams(path, clip_id: str | None = None) -> dict:
    """Which streams a file has, without decoding: {"video": bool, "audio": bool}.

    Cover art (an attached picture in an m4a / mp3) does not count as video. A file with neither
    stream is a :class:`MediaError`, as is a missing or unreadable one.
    """
    with _open(path, clip_id) as container:
        found = {"video": _video_stream(container) is not None, "audio": bool(container.streams.audio)}
    if not any(found.values()):
        raise MediaError(path, "neither a video nor an audio stream", clip_id)
    return found


def _decode_selected(path, clip_id, indices) -> tuple[dict[int, np.ndarray], int, dict]:
    """One decoding pass: RGB arrays of the frames in ``indices`` (only those are kept), the decoded count."""
    wanted, kept, count = set(int(i) for i in indices), {}, 0
    with _open(path, clip_id) as container:
        stream = _video_stream(container)
        if stream is None:
            raise MediaError(path, "no video stream", clip_id)
        stream.thread_type = "AUTO"  # frame/slice threads; frames still come out in display order
        rate = stream.average_rate or stream.guessed_rate
        info = {"fps": float(rate) if rate else 0.0, "width": stream.codec_context.width,
                "height": stream.codec_context.height}
        if stream.duration is not None and stream.time_base is not None:
            info["duration_s"] = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            info["duration_s"] = container.duration / av.time_base
        try:
            for frame in container.decode(stream):
                if count in wanted:
                    kept[count] = frame.to_ndarray(format="rgb24")  # (H, W, 3) uint8
                count += 1
        except (av.error.FFmpegError, EOFError) as e:
            raise MediaError(path, f"corrupt video data after {count} frames ({_why(e)})",
                             clip_id) from e
    return kept, count, info


def read_video_frames(path, n: int, clip_id: str | None = None) -> tuple[np.ndarray, dict]:
    """Decode ``path`` and return ``n`` frames sampled evenly over the clip, plus facts about it.

    Returns ``(frames, info)``: frames (n, H, W, 3) uint8 RGB, chosen by :func:`sample_frame_indices`
    over the number of *decoded* frames; info = {"n_decoded", "fps", "duration_s", "width", "height",
    "n_header"}; n_header is the frame count in the container header (0 when it has none).

    Memory: never more than ``n`` frames are held. The frame count is first predicted without
    decoding - the container header (``stream.frames``) when it gives one, else by counting the video
    packets while demuxing (cheap: no decoding) - then one decoding pass keeps only the wanted frames.
    If the decoder's true count differs from the prediction (a lying header, undecodable packets),
    the indices are recomputed and the clip decoded a second time: exactness over speed, rarely paid.
    A file whose header promises frames that do not decode (fewer than 90 %: a truncated download
    with the index at the front) is a MediaError, not a silently shorter clip.
    Rotation metadata (phone videos) is not applied.
    """
    with _open(path, clip_id) as container:
        stream = _video_stream(container)
        if stream is None:
            raise MediaError(path, "no video stream", clip_id)
        header = predicted = int(stream.frames)  # read now: a closed container's streams are invalid
        if not predicted:
            try:
                predicted = sum(1 for p in container.demux(stream) if p.size)
            except (av.error.FFmpegError, EOFError) as e:
                raise MediaError(path, f"corrupt video data ({_why(e)})", clip_id) from e
    indices = sample_frame_indices(max(predicted, 1), n)
    kept, count, info = _decode_selected(path, clip_id, indices)
    if count == 0:
        raise MediaError(path, "the video stream decodes to zero frames", clip_id)
    if header and count < 0.9 * header:
        raise MediaError(path, f"only {count} of the {header} frames in the header decode "
                               "(truncated or damaged file)", clip_id)
    if count != predicted:  # the prediction was wrong: sample over the true count
        indices = sample_frame_indices(count, n)
        kept, count, info = _decode_selected(path, clip_id, indices)
    frames = np.stack([kept[int(i)] for i in indices])
    info["n_decoded"], info["n_header"] = count, header
    info.setdefault("duration_s", count / info["fps"] if info["fps"] else 0.0)
    return frames, info


def read_audio(path, sample_rate: int = 16000, clip_id: str | None = None) -> np.ndarray | None:
    """First audio stream of a video or audio file as (S,) float32 mono at ``sample_rate``, in [-1, 1].

    FFmpeg's resampler does both the downmix (stereo -> mono) and the rate change; it is flushed at the
    end so the last samples are not lost. Values are clipped to [-1, 1] (lossy codecs overshoot a bit).
    Returns ``None`` when the file has no audio stream: the caller decides (zero audio plus a flag).
    """
    with _open(path, clip_id) as container:
        if not container.streams.audio:
            return None
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks = []
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler count samples; odd timestamps must not confuse it
                chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(frame)]
            chunks += [f.to_ndarray().reshape(-1) for f in resampler.resample(None)]  # flush
        except (av.error.FFmpegError, EOFError) as e:
            raise MediaError(path, f"corrupt audio data ({_why(e)})", clip_id) from e
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return np.clip(audio.astype(np.float32, copy=False), -1.0, 1.0)


# ----------------------------------------------------------------------------------------- sequences
def pad_or_truncate(x: np.ndarray, length: int) -> tuple[np.ndarray, int]:
    """(T, ...) -> (length, ...) along axis 0: zero rows appended, or rows dropped from the end.

    Returns ``(y, true_length)`` with ``true_length = min(T, length)`` (the valid-prefix length the
    models use for masking). The dtype is kept. E.g. [[1], [2]] with length 3 -> ([[1], [2], [0]], 2).
    """
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    x = np.asarray(x)
    t = min(x.shape[0], length)
    y = np.zeros((length,) + x.shape[1:], dtype=x.dtype)
    y[:t] = x[:t]
    return y, t


def resample_sequence(x: np.ndarray, length: int) -> np.ndarray:
    """(T, D) -> (length, D) by linear interpolation along time, with exact endpoints.

    Output row j sits at time ``j * (T - 1) / (length - 1)`` of the input, so row 0 equals x[0] and the
    last row equals x[-1]; ``T == length`` is the identity, ``T == 1`` repeats the single row, and
    ``length == 1`` keeps x[0]. Vectorised form of ``np.interp`` applied to every column.
    Floating inputs keep their dtype; integer inputs come back as float64.
    """
    x = np.asarray(x)
    if length < 1:
        raise ValueError(f"length must be >= 1, got {length}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"cannot resample an empty sequence of shape {x.shape}")
    dtype = x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64
    t = x.shape[0]
    if t == length:
        return x.astype(dtype, copy=True)
    pos = np.linspace(0.0, t - 1, length) if length > 1 else np.zeros(1)
    lo = np.floor(pos).astype(np.int64).clip(0, t - 1)
    hi = np.minimum(lo + 1, t - 1)
    w = (pos - lo).reshape((length,) + (1,) * (x.ndim - 1))
    return ((1.0 - w) * x[lo] + w * x[hi]).astype(dtype)
