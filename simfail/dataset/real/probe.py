"""Video metadata of imported mp4 files, read with PyAV (demuxing only, nothing decoded).

Times are seconds on the file's own clock (``pts * time_base``); frame counts are the number
of video packets that carry a presentation time, which equals the number of decodable frames
for the constant-frame-rate files a release ships (``simfail check`` decodes to confirm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simfail.errors import SimfailError

__all__ = ["VideoProbe", "probe_video", "RealDataError"]


class RealDataError(SimfailError):
    """A real dataset (or its mapping) cannot be imported as declared."""


@dataclass(frozen=True)
class VideoProbe:
    """One video stream: ``width``/``height`` in pixels, ``fps`` the stream's average rate
    (frames per second), ``times`` the sorted presentation times of every frame (s)."""

    path: Path
    width: int
    height: int
    codec: str
    fps: float
    times: np.ndarray = field(repr=False)

    @property
    def n_frames(self) -> int:
        return int(len(self.times))


def probe_video(path: str | Path) -> VideoProbe:
    """Probe the first video stream of ``path``; :class:`RealDataError` when it cannot be read."""
    import av

    path = Path(path)
    if not path.is_file():
        raise RealDataError(f"video file {path} does not exist")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise RealDataError(f"{path} has no video stream")
            stream = container.streams.video[0]
            # r_frame_rate (base_rate): the rate every timestamp is a multiple of; a dropped frame
            # leaves it unchanged (and fails the regularity check) where the average would drift
            rate = stream.base_rate or stream.guessed_rate or stream.average_rate
            tb = stream.time_base
            pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            codec = str(stream.codec_context.name)
    except RealDataError:
        raise
    except (av.error.FFmpegError, OSError, ValueError) as exc:
        raise RealDataError(f"cannot read video {path}: {exc}") from exc
    if tb is None or rate is None:
        raise RealDataError(f"{path}: the video stream declares no time base or frame rate")
    times = np.sort(np.asarray(pts, dtype=np.int64)) * float(tb)
    return VideoProbe(path, width, height, codec, float(rate), times)
