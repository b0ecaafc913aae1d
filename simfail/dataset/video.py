"""H.264 mp4 encoding through the ffmpeg binary that imageio-ffmpeg ships; probing and decoding through PyAV.

Frames are streamed to one ffmpeg process per output file as raw ``rgb24`` bytes (no temporary
images), so several episodes can be appended to the same mp4 one after the other. The input
frame rate is an integer, so the frame with running number ``i`` in the file has presentation
time exactly ``i / fps`` seconds; :meth:`VideoEncoder.append` returns the ``[from, to)`` time
range (seconds) of what it appended, which is what LeRobot v3.0 stores as
``videos/<key>/from_timestamp`` and ``to_timestamp``.

Probing and decoding go through PyAV (libavformat/libavcodec, the library LeRobot decodes
with) instead of parsing ffmpeg's text output: :func:`probe_video` reads the stream's codec,
pixel format and size, :func:`decode_frames` returns ``uint8 (N, H, W, 3)`` RGB arrays starting
at a presentation time, :func:`frame_times` lists the presentation times of every decoded frame
of a file (used by consistency checks).
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import SimfailError

__all__ = [
    "VideoCodecError",
    "VideoEncoder",
    "VideoInfo",
    "decode_frames",
    "encode_video",
    "ffmpeg_exe",
    "frame_times",
    "probe_video",
]


class VideoCodecError(SimfailError, RuntimeError):
    """ffmpeg failed to encode or decode a video (the message carries ffmpeg's own error)."""


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary bundled with imageio-ffmpeg (or the one it was told to use)."""
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise VideoCodecError("imageio-ffmpeg is not installed; it provides the ffmpeg binary") from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:  # pragma: no cover - broken installation
        raise VideoCodecError(f"no ffmpeg binary available: {exc}") from exc


def _tail(text: bytes | str, limit: int = 2000) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text[-limit:] if len(text) > limit else text


def _lower_priority(pid: int, nice: int) -> None:
    """Set process ``pid``'s niceness to ``nice`` (never below this process's own)."""
    try:
        own = os.getpriority(os.PRIO_PROCESS, 0)
        os.setpriority(os.PRIO_PROCESS, pid, max(own, min(19, nice)))
    except (AttributeError, OSError):  # no POSIX priorities here, or the child already exited
        pass


class VideoEncoder:
    """Streams ``uint8 (T, H, W, 3)`` RGB frames into one H.264 (libx264, yuv420p) mp4 file.

    Usage::

        enc = VideoEncoder(path, fps=10, height=256, width=256)
        t0, t1 = enc.append(frames_episode_0)   # 0.0, T0 / fps
        t1, t2 = enc.append(frames_episode_1)
        enc.close()                              # the mp4 is complete only after close()

    Args:
        path: Output file (always written as mp4, whatever its suffix).
        fps: Integer frame rate; frame ``i`` of the file gets presentation time ``i / fps``.
        height, width: Frame size in pixels; both must be even (yuv420p).
        crf: x264 constant rate factor (lower is better quality, 23 is x264's default).
        preset: x264 speed preset.
        gop: Maximum keyframe interval in frames (default ``2 * fps``), which bounds the cost
            of seeking to any frame.
        threads: x264 threads (default: let x264 decide).
        nice: Scheduling niceness (0-19) of the ffmpeg process. A positive value makes
            encoding use only the CPU time that physics and rendering leave idle (on a small
            machine llvmpipe's rasterizer threads stall a whole frame when ffmpeg preempts
            one of them); ignored where the OS cannot lower a child's priority.

    The encoder is also a context manager: leaving the block normally closes it, leaving it
    with an exception aborts it and removes the partial file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fps: int,
        height: int,
        width: int,
        crf: int = 23,
        preset: str = "veryfast",
        gop: int | None = None,
        threads: int | None = None,
        nice: int = 0,
    ) -> None:
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        if height <= 0 or width <= 0 or height % 2 or width % 2:
            raise ValueError(f"H.264 yuv420p needs a positive even frame size, got {height}x{width}")
        self.path = Path(path)
        self.fps = int(fps)
        self.height = int(height)
        self.width = int(width)
        self.gop = int(gop) if gop else 2 * self.fps
        self._frames = 0
        self._closed = False
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{self.width}x{self.height}",
            "-framerate", str(self.fps), "-i", "-",
            "-an", "-map_metadata", "-1",
            "-c:v", "libx264", "-preset", preset, "-crf", str(crf),
            "-g", str(self.gop), "-pix_fmt", "yuv420p",
        ]
        if threads:
            cmd += ["-threads", str(int(threads))]
        # bitexact keeps library version strings and other run-dependent bits out of the file.
        cmd += ["-fflags", "+bitexact", "-flags:v", "+bitexact", "-f", "mp4", str(self.path)]
        self._stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=self._stderr)
        except OSError as exc:
            self._stderr.close()
            raise VideoCodecError(f"could not start ffmpeg: {exc}") from exc
        if nice:
            _lower_priority(self._proc.pid, int(nice))

    @property
    def frames_written(self) -> int:
        """Number of frames appended so far."""
        return self._frames

    @property
    def duration(self) -> float:
        """Duration in seconds of what was appended so far (``frames_written / fps``)."""
        return self._frames / self.fps

    def append(self, frames: np.ndarray) -> tuple[float, float]:
        """Append ``uint8 (T, H, W, 3)`` RGB frames; returns their ``(from, to)`` seconds.

        ``from`` is the presentation time of the first appended frame and ``to = from + T/fps``
        (the time just after the last one), as LeRobot v3.0 stores them.
        """
        if self._closed:
            raise VideoCodecError(f"encoder for {self.path} is already closed")
        frames = np.asarray(frames)
        if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[1:] != (self.height, self.width, 3):
            raise ValueError(
                f"frames must be uint8 (T, {self.height}, {self.width}, 3), got {frames.dtype} {frames.shape}"
            )
        start = self._frames
        if frames.shape[0]:
            data = np.ascontiguousarray(frames)
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write(memoryview(data).cast("B"))
            except (BrokenPipeError, OSError) as exc:
                self.abort()
                raise VideoCodecError(f"ffmpeg stopped while encoding {self.path}: {self._error_text()}") from exc
            self._frames += int(frames.shape[0])
        return start / self.fps, self._frames / self.fps

    def close(self) -> None:
        """Finish the file. An encoder that received no frame writes no file."""
        if self._closed:
            return
        if self._frames == 0:
            self.abort()
            return
        self._closed = True
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        rc = self._proc.wait()
        message = self._error_text()
        self._stderr.close()
        if rc != 0:
            _remove_quietly(self.path)
            raise VideoCodecError(f"ffmpeg exited with status {rc} while encoding {self.path}: {message}")

    def abort(self) -> None:
        """Stop ffmpeg and remove the (partial) output file."""
        if self._closed:
            return
        self._closed = True
        try:
            if self._proc.stdin is not None:
                self._proc.stdin.close()
        except (BrokenPipeError, OSError):
            pass
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        _remove_quietly(self.path)
        # keep stderr readable for the error message of a failed append
        self._stderr_text = self._read_stderr()
        self._stderr.close()

    def _read_stderr(self) -> str:
        try:
            self._stderr.seek(0)
            return _tail(self._stderr.read())
        except (OSError, ValueError):
            return ""

    def _error_text(self) -> str:
        text = getattr(self, "_stderr_text", None)
        if text is None:
            text = self._read_stderr()
        return text or "(no message from ffmpeg)"

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def __del__(self) -> None:  # pragma: no cover - safety net
        if not getattr(self, "_closed", True):
            try:
                self.abort()
            except Exception:
                pass


def _remove_quietly(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def encode_video(path: str | os.PathLike[str], frames: np.ndarray, fps: int, **kwargs) -> tuple[float, float]:
    """Encode one ``uint8 (T, H, W, 3)`` clip to ``path``; returns ``(0.0, T / fps)``."""
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (T, H, W, 3), got shape {frames.shape}")
    with VideoEncoder(path, fps=fps, height=frames.shape[1], width=frames.shape[2], **kwargs) as enc:
        span = enc.append(frames)
    return span


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    codec: str
    pix_fmt: str


def _open_input(path: str | os.PathLike[str]) -> Any:
    """``av.open(path)`` for reading, with PyAV's errors as :class:`VideoCodecError`."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoCodecError(f"video file not found: {path}")
    try:
        container = av.open(str(path), mode="r")
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise VideoCodecError(f"cannot open {path} as a video: {exc}") from exc
    if not container.streams.video:
        container.close()
        raise VideoCodecError(f"no video stream found in {path}")
    return container


def probe_video(path: str | os.PathLike[str]) -> VideoInfo:
    """Codec, pixel format and frame size of the first video stream of ``path`` (PyAV)."""
    with _open_input(path) as container:
        ctx = container.streams.video[0].codec_context
        fmt = ctx.format.name if ctx.format is not None else str(ctx.pix_fmt)
        return VideoInfo(width=int(ctx.width), height=int(ctx.height), codec=str(ctx.name), pix_fmt=fmt)


def _decode(container: Any, path: Path) -> Iterator[Any]:
    """Decoded frames of the first video stream, PyAV errors as :class:`VideoCodecError`."""
    import av

    stream = container.streams.video[0]
    try:
        yield from container.decode(stream)
    except (av.FFmpegError, ValueError) as exc:
        raise VideoCodecError(f"could not decode {path}: {exc}") from exc


def decode_frames(
    path: str | os.PathLike[str],
    *,
    start_time: float = 0.0,
    num_frames: int | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Decode frames of ``path`` as ``uint8 (N, H, W, 3)`` RGB (PyAV, libavcodec).

    Args:
        start_time: Presentation time (seconds) of the first frame to return; the demuxer
            seeks to the keyframe at or before it and the frames before it are decoded and
            dropped.
        num_frames: How many frames to return (default: all until the end of the file).
        size: ``(H, W)`` the frames must have (checked); default: the stream's size.
    """
    path = Path(path)
    with _open_input(path) as container:
        stream = container.streams.video[0]
        h, w = (int(size[0]), int(size[1])) if size is not None else (stream.codec_context.height,
                                                                       stream.codec_context.width)
        if num_frames is not None and num_frames <= 0:
            return np.zeros((0, h, w, 3), dtype=np.uint8)
        tb = Fraction(stream.time_base)
        # 1 ms earlier than asked, so rounding can never drop the requested frame; any frame
        # rate below 1000 fps keeps the previous frame out.
        first = max(0.0, start_time - 1e-3)
        if start_time > 0:
            container.seek(int(Fraction(first) / tb), stream=stream, backward=True, any_frame=False)
        out: list[np.ndarray] = []
        for frame in _decode(container, path):
            if frame.pts is not None and float(frame.pts * tb) < first:
                continue
            if (frame.height, frame.width) != (h, w):
                raise VideoCodecError(f"{path} holds {frame.height}x{frame.width} frames, expected {h}x{w}")
            out.append(frame.to_ndarray(format="rgb24"))
            if num_frames is not None and len(out) >= num_frames:
                break
    if not out:
        return np.zeros((0, h, w, 3), dtype=np.uint8)
    return np.stack(out)


def frame_times(path: str | os.PathLike[str]) -> np.ndarray:
    """Presentation times (seconds, float64, sorted) of every frame that decodes from ``path``.

    The file is fully decoded (no conversion to RGB), so the count is the true number of
    decodable frames.
    """
    path = Path(path)
    with _open_input(path) as container:
        tb = Fraction(container.streams.video[0].time_base)
        pts = [int(f.pts) for f in _decode(container, path) if f.pts is not None]
    return np.sort(np.asarray([float(p * tb) for p in pts], dtype=np.float64))
