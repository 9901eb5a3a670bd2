"""Decoding and sequence utilities: hand-computed cases, and real media files written with PyAV."""
from __future__ import annotations

import numpy as np
import pytest

from mcihn.extraction.fixtures import expected_clip_frame, write_test_clip, write_test_wav
from mcihn.extraction.media import (MediaError, pad_or_truncate, read_audio, read_video_frames, resample_sequence,
                                    sample_frame_indices)


def dominant_hz(x: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum) * sample_rate / len(x))


# ------------------------------------------------------------------------------------ frame indices
@pytest.mark.parametrize("total, n, expected", [
    (100, 10, [5, 15, 25, 35, 45, 55, 65, 75, 85, 95]),
    (7, 3, [1, 3, 5]),
    (10, 4, [1, 3, 6, 8]),               # floor(1.25), floor(3.75), floor(6.25), floor(8.75)
    (15, 4, [1, 5, 9, 13]),
    (5, 5, [0, 1, 2, 3, 4]),             # total == n: every frame once
    (9, 1, [4]),                         # a single frame: the middle one
    (2, 5, [0, 0, 1, 1, 1]),             # shorter than n: repeats, never fails
    (3, 10, [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]),
])
def test_sample_frame_indices_hand_computed(total, n, expected):
    idx = sample_frame_indices(total, n)
    assert idx.shape == (n,) and np.issubdtype(idx.dtype, np.integer)
    assert idx.tolist() == expected


def test_sample_frame_indices_matches_formula_and_rejects_bad_counts():
    for total in range(1, 60):
        for n in (1, 3, 10, 16):
            idx = sample_frame_indices(total, n)
            want = [int(np.floor((i + 0.5) * total / n)) for i in range(n)]
            assert idx.tolist() == want and idx.min() >= 0 and idx.max() < total
    with pytest.raises(MediaError):
        sample_frame_indices(0, 10)
    with pytest.raises(ValueError):
        sample_frame_indices(10, 0)


# ------------------------------------------------------------------------------------ sequences
def test_pad_or_truncate_hand_computed():
    x = np.array([[1, 2], [3, 4], [5, 6]], dtype=np.int32)
    y, t = pad_or_truncate(x, 5)
    assert t == 3 and y.dtype == np.int32
    assert y.tolist() == [[1, 2], [3, 4], [5, 6], [0, 0], [0, 0]]
    y, t = pad_or_truncate(x, 2)
    assert t == 2 and y.tolist() == [[1, 2], [3, 4]]
    y, t = pad_or_truncate(x, 3)
    assert t == 3 and y.tolist() == x.tolist() and y is not x
    y, t = pad_or_truncate(np.zeros((0, 4), np.float32), 2)
    assert t == 0 and y.shape == (2, 4)


def test_resample_sequence_hand_computed():
    x = np.array([[0.0, 10.0], [2.0, 20.0], [6.0, 40.0]], dtype=np.float32)
    y = resample_sequence(x, 5)  # output times 0, 0.5, 1, 1.5, 2 on the input's time axis
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, [[0, 10], [1, 15], [2, 20], [4, 30], [6, 40]])
    np.testing.assert_allclose(resample_sequence(x, 2), [[0, 10], [6, 40]])   # exact endpoints
    np.testing.assert_allclose(resample_sequence(x, 4), [[0, 10], [4 / 3, 50 / 3], [10 / 3, 80 / 3], [6, 40]],
                               rtol=1e-6)
    np.testing.assert_array_equal(resample_sequence(x, 3), x)                  # identity
    np.testing.assert_array_equal(resample_sequence(x[:1], 4), np.repeat(x[:1], 4, axis=0))  # T == 1
    assert resample_sequence(np.array([[1], [3]]), 3).tolist() == [[1.0], [2.0], [3.0]]  # int -> float


def test_resample_sequence_equals_np_interp_per_column():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(37, 5))
    for length in (1, 8, 128):
        y = resample_sequence(x, length)
        pos = np.linspace(0, 36, length) if length > 1 else np.zeros(1)
        want = np.stack([np.interp(pos, np.arange(37), x[:, d]) for d in range(5)], axis=1)
        np.testing.assert_allclose(y, want, atol=1e-12)


# ------------------------------------------------------------------------------------ real media files
@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """1.5 s at 10 fps = 15 frames of 32x24, with a 440 Hz AAC tone at 16 kHz."""
    return write_test_clip(tmp_path_factory.mktemp("media") / "clip.mp4", seconds=1.5, fps=10, tone_hz=440.0)


def _bar_left(frame: np.ndarray) -> int:
    """Left edge of the bright vertical bar on the black background."""
    bright = frame.astype(float).mean(axis=(0, 2)) > 60
    assert bright.any(), "no bar found"
    return int(np.argmax(bright))


def test_read_video_frames_samples_the_right_moments(clip):
    frames, info = read_video_frames(clip, 4, clip_id="c1")
    assert frames.shape == (4, 24, 32, 3) and frames.dtype == np.uint8
    assert info["n_decoded"] == 15 and info["fps"] == pytest.approx(10.0)
    assert info["duration_s"] == pytest.approx(1.5, abs=0.1)
    assert (info["width"], info["height"]) == (32, 24)
    # Sampled frames 1, 5, 9, 13 (t = 0.1, 0.5, 0.9, 1.3 s); bar of 4 px moves over 28 px in 1.5 s:
    # left = round(28 * t / 1.5) = 2, 9, 17, 24.
    assert [_bar_left(f) for f in frames] == pytest.approx([2, 9, 17, 24], abs=1)
    assert np.abs(frames[0].astype(int) - frames[-1].astype(int)).mean() > 10  # motion
    for f, i in zip(frames, [1, 5, 9, 13]):
        drawn = expected_clip_frame(i / 10, 1.5, (32, 24))
        left = _bar_left(drawn)
        inside = (slice(2, 22), slice(left + 1, left + 3))  # bar interior, away from chroma-blurred edges
        np.testing.assert_allclose(f[inside].mean(axis=(0, 1)), drawn[inside].mean(axis=(0, 1)), atol=25)
    assert f[:, :max(left - 2, 1)].max() < 40  # background stays black


def test_read_video_frames_clip_shorter_than_n_repeats_frames(tmp_path):
    path = write_test_clip(tmp_path / "short.mp4", seconds=0.3, fps=10, audio=False)  # 3 frames
    frames, info = read_video_frames(path, 10)
    assert frames.shape[0] == 10 and info["n_decoded"] == 3
    # indices [0, 0, 0, 1, 1, 1, 1, 2, 2, 2]
    np.testing.assert_array_equal(frames[0], frames[2])
    np.testing.assert_array_equal(frames[3], frames[6])
    assert not np.array_equal(frames[0], frames[9])


def test_read_video_frames_without_header_count_mkv(tmp_path):
    """Matroska stores no frame count: the count comes from the demuxed packets instead."""
    frames, info = read_video_frames(write_test_clip(tmp_path / "clip.mkv", seconds=1.5, audio=False), 4)
    assert info["n_header"] == 0 and info["n_decoded"] == 15
    assert [_bar_left(f) for f in frames] == pytest.approx([2, 9, 17, 24], abs=1)


def test_read_audio_of_clip(clip):
    audio = read_audio(clip, clip_id="c1")
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - 1.5 * 16000) <= 0.05 * 1.5 * 16000  # AAC pads to whole 1024-sample frames
    assert -1.0 <= audio.min() and audio.max() <= 1.0
    assert dominant_hz(audio, 16000) == pytest.approx(440.0, abs=10)
    assert np.sqrt(np.mean(audio[2000:-2000] ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.15)


def test_read_audio_resamples_stereo_wav_to_16k_mono(tmp_path):
    path = write_test_wav(tmp_path / "tone.wav", seconds=1.2, tone_hz=300.0, sample_rate=44100, channels=2)
    audio = read_audio(path)
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert len(audio) == 19200  # PCM has no codec padding: 52920 samples * 16000 / 44100, tail flushed
    assert dominant_hz(audio, 16000) == pytest.approx(300.0, abs=10)
    assert 0.25 < np.abs(audio).max() <= 1.0
    assert len(read_audio(path, sample_rate=8000)) == 9600


def test_clip_without_audio(tmp_path):
    path = write_test_clip(tmp_path / "silent.mp4", seconds=0.5, audio=False)
    assert read_audio(path) is None
    assert read_video_frames(path, 2)[0].shape == (2, 24, 32, 3)


# ------------------------------------------------------------------------------------ bad inputs
def _bad_files(tmp_path, clip):
    data = open(clip, "rb").read()
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4000))
    (tmp_path / "truncated.mp4").write_bytes(data[: len(data) // 2])  # index (moov) at the end: lost
    (tmp_path / "empty.mp4").write_bytes(b"")
    return ["random.mp4", "truncated.mp4", "empty.mp4", "missing.mp4"]


def test_bad_files_raise_media_error_naming_the_file(tmp_path, clip):
    for name in _bad_files(tmp_path, clip):
        with pytest.raises(MediaError, match=name) as err:
            read_video_frames(tmp_path / name, 4, clip_id="vid_7$001")
        assert "vid_7$001" in str(err.value)
        with pytest.raises(MediaError, match=name):
            read_audio(tmp_path / name)
    with pytest.raises(MediaError, match="not found"):
        read_audio(tmp_path / "missing.mp4")


def test_truncated_fast_start_mp4_is_an_error_not_a_shorter_clip(tmp_path):
    """With the index at the front the file still opens, but half the promised frames are gone."""
    path = write_test_clip(tmp_path / "fs.mp4", seconds=3.0, options={"movflags": "faststart"})
    data = open(path, "rb").read()
    (tmp_path / "fs_cut.mp4").write_bytes(data[: len(data) // 2])
    assert read_video_frames(path, 4)[1]["n_header"] == 30
    with pytest.raises(MediaError, match=r"fs_cut\.mp4.*of the 30 frames"):
        read_video_frames(tmp_path / "fs_cut.mp4", 4)


def test_audio_only_file_has_no_video(tmp_path):
    path = write_test_wav(tmp_path / "voice.wav", seconds=0.2)
    with pytest.raises(MediaError, match=r"voice\.wav.*no video stream"):
        read_video_frames(path, 4)
