"""File layout and feature schema shared by the simfail dataset writer and reader.

A simfail dataset is a LeRobot v3.0 dataset (see ``meta/info.json``) in which every
counterfactual group (an expert episode plus its perturbed variants) occupies exactly one
file index: the ``k``-th committed group lives in chunk ``k // chunks_size``, file
``k % chunks_size`` of ``data/``, of every ``videos/<key>/`` and of ``meta/episodes/``.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"

DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
PREFERENCES_PATH = "meta/preferences.parquet"
SIMFAIL_META_PATH = "meta/simfail.json"

#: Hidden file at the dataset root holding the writer's configuration; it marks the directory
#: as a simfail dataset from the first moment (before any ``meta/info.json`` exists).
MARKER_NAME = ".simfail"
#: Hidden directory where a group's files are prepared before they are moved into place.
STAGING_NAME = ".staging"

DEFAULT_DATA_FILE_SIZE_IN_MB = 100
DEFAULT_VIDEO_FILE_SIZE_IN_MB = 200

#: Statistics stored per episode (``stats/<feature>/<stat>`` columns) and in ``meta/stats.json``.
STAT_NAMES: tuple[str, ...] = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
QUANTILES: dict[str, float] = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}

#: Per-frame columns the simulator side provides in ``EpisodeRecord.columns``.
RECORD_COLUMNS: tuple[str, ...] = (
    "observation.state", "action", "progress", "reward", "failure", "sim.qpos", "sim.qvel",
)
#: Columns the writer adds to every frame.
INDEX_COLUMNS: tuple[str, ...] = ("timestamp", "frame_index", "episode_index", "index", "task_index")

_FILE_RE = re.compile(r"^chunk-(\d{3,})/file-(\d{3,})\.(parquet|mp4)$")


def video_key(view: str) -> str:
    """Feature key of a camera view, e.g. ``observation.images.left``."""
    return f"observation.images.{view}"


def group_location(k: int, chunks_size: int) -> tuple[int, int]:
    """``(chunk_index, file_index)`` of the ``k``-th committed group (0-based)."""
    return k // chunks_size, k % chunks_size


def data_path(chunk_index: int, file_index: int) -> str:
    return DATA_PATH.format(chunk_index=chunk_index, file_index=file_index)


def video_path(key: str, chunk_index: int, file_index: int) -> str:
    return VIDEO_PATH.format(video_key=key, chunk_index=chunk_index, file_index=file_index)


def episodes_path(chunk_index: int, file_index: int) -> str:
    return EPISODES_PATH.format(chunk_index=chunk_index, file_index=file_index)


def parse_chunk_file(rel: str) -> tuple[int, int] | None:
    """``(chunk, file)`` from ``chunk-XXX/file-YYY.ext`` (path relative to the files' base)."""
    m = _FILE_RE.match(rel.replace(os.sep, "/"))
    return (int(m.group(1)), int(m.group(2))) if m else None


def list_chunk_files(base: Path, ext: str) -> list[tuple[int, int, Path]]:
    """Every ``base/chunk-XXX/file-YYY.<ext>`` as ``(chunk, file, path)``, sorted."""
    out: list[tuple[int, int, Path]] = []
    if not base.is_dir():
        return out
    for path in base.glob(f"chunk-*/file-*.{ext}"):
        loc = parse_chunk_file(path.relative_to(base).as_posix())
        if loc is not None:
            out.append((loc[0], loc[1], path))
    out.sort()
    return out


def frame_features(
    state_names: list[str], action_names: list[str], nq: int, nv: int
) -> dict[str, dict[str, Any]]:
    """LeRobot feature specs of the per-frame parquet columns, in column order."""
    return {
        "observation.state": {"dtype": "float32", "shape": [len(state_names)], "names": list(state_names)},
        "action": {"dtype": "float32", "shape": [len(action_names)], "names": list(action_names)},
        "progress": {"dtype": "float32", "shape": [1], "names": None},
        "reward": {"dtype": "float32", "shape": [1], "names": None},
        "failure": {"dtype": "bool", "shape": [1], "names": None},
        "sim.qpos": {"dtype": "float64", "shape": [int(nq)], "names": None},
        "sim.qvel": {"dtype": "float64", "shape": [int(nv)], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
    }


def video_feature(height: int, width: int, fps: int) -> dict[str, Any]:
    """LeRobot feature spec of one camera view stored as mp4."""
    return {
        "dtype": "video",
        "shape": [int(height), int(width), 3],
        "names": ["height", "width", "channels"],
        "info": {
            "video.height": int(height),
            "video.width": int(width),
            "video.codec": "h264",
            "video.pix_fmt": "yuv420p",
            "video.is_depth_map": False,
            "video.fps": int(fps),
            "video.channels": 3,
            "has_audio": False,
        },
    }


def json_default(obj: Any) -> Any:
    """``json.dumps`` fallback for numpy scalars/arrays and paths."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"object of type {type(obj).__name__} is not JSON serialisable")


def dumps_json(obj: Any, *, indent: int | None = 2, sort_keys: bool = True) -> str:
    """Deterministic JSON for everything simfail writes (no NaN/inf, numpy values converted)."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, default=json_default, allow_nan=False)
