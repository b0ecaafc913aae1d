"""Tests of simfail.dataset.video (H.264 mp4 through imageio-ffmpeg's ffmpeg)."""

from __future__ import annotations

import os

import numpy as np
import pytest

from simfail.dataset.video import (
    VideoEncoder,
    decode_frames,
    encode_video,
    frame_times,
    probe_video,
)


def moving_square(t: int, h: int = 64, w: int = 64, offset: int = 0) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    frames = np.zeros((t, h, w, 3), dtype=np.uint8)
    frames[..., 0] = (xx * 3) % 200
    frames[..., 1] = (yy * 3) % 200
    frames[..., 2] = 80
    for i in range(t):
        x = (3 * i + offset) % (w - 16)
        frames[i, 20:36, x : x + 16] = (250, 240, 20)
    return frames


def test_append_returns_spans_and_round_trips(tmp_path):
    clips = [moving_square(12), moving_square(7, offset=11), moving_square(15, offset=23)]
    path = tmp_path / "v.mp4"
    with VideoEncoder(path, fps=10, height=64, width=64) as enc:
        spans = [enc.append(c) for c in clips]
        assert enc.frames_written == 34
    assert spans == [(0.0, 1.2), (1.2, 1.9), (1.9, 3.4)]

    info = probe_video(path)
    assert (info.width, info.height, info.codec, info.pix_fmt) == (64, 64, "h264", "yuv420p")

    everything = decode_frames(path)
    assert everything.shape == (34, 64, 64, 3) and everything.dtype == np.uint8
    assert np.abs(everything.astype(int) - np.concatenate(clips)).mean() < 4.0

    for (start, _), clip in zip(spans, clips):
        got = decode_frames(path, start_time=start, num_frames=len(clip), size=(64, 64))
        assert got.shape == clip.shape
        err = np.abs(got.astype(int) - clip).mean(axis=(1, 2, 3))
        assert err.max() < 4.0
        # the seek lands on the right frame: frame 0 matches clip frame 0 better than frame 1
        assert np.abs(got[0].astype(int) - clip[0]).mean() < np.abs(got[0].astype(int) - clip[1]).mean()


def test_frame_times_are_exact_multiples_of_1_over_fps(tmp_path):
    path = tmp_path / "v.mp4"
    encode_video(path, moving_square(25), fps=15)
    times = frame_times(path)
    assert len(times) == 25
    np.testing.assert_allclose(times, np.arange(25) / 15, atol=1e-9)


def test_encoding_is_deterministic(tmp_path):
    clip = moving_square(20)
    encode_video(tmp_path / "a.mp4", clip, fps=10)
    encode_video(tmp_path / "b.mp4", clip, fps=10)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError):
        VideoEncoder(tmp_path / "odd.mp4", fps=10, height=63, width=64)
    with pytest.raises(ValueError):
        VideoEncoder(tmp_path / "fps.mp4", fps=0, height=64, width=64)
    enc = VideoEncoder(tmp_path / "x.mp4", fps=10, height=64, width=64)
    with pytest.raises(ValueError):
        enc.append(np.zeros((3, 32, 32, 3), dtype=np.uint8))
    with pytest.raises(ValueError):
        enc.append(np.zeros((3, 64, 64, 3), dtype=np.float32))
    enc.close()  # nothing appended: no file
    assert not (tmp_path / "x.mp4").exists()


def test_abort_on_exception_removes_file(tmp_path):
    path = tmp_path / "partial.mp4"
    with pytest.raises(RuntimeError):
        with VideoEncoder(path, fps=10, height=64, width=64) as enc:
            enc.append(moving_square(5))
            raise RuntimeError("boom")
    assert not path.exists()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no POSIX process priorities")
def test_nice_encoder_runs_at_low_priority_and_writes_the_same_bytes(tmp_path):
    clip = moving_square(20)
    with VideoEncoder(tmp_path / "nice.mp4", fps=10, height=64, width=64, nice=19) as enc:
        # the child runs while it still waits for input
        assert os.getpriority(os.PRIO_PROCESS, enc._proc.pid) == 19
        enc.append(clip)
    encode_video(tmp_path / "plain.mp4", clip, fps=10)
    assert (tmp_path / "nice.mp4").read_bytes() == (tmp_path / "plain.mp4").read_bytes()
