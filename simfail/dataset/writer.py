"""Crash-safe writer of simfail datasets in the LeRobot v3.0 layout.

The unit of writing is a counterfactual group (an expert episode plus its variants). Each group
is written atomically: its files are prepared under ``<root>/.staging/``, flushed to disk, then
moved into place with ``os.replace``, the group's ``meta/episodes/...parquet`` file last. That
file is the commit marker: a group whose episodes file exists is complete, anything else is an
orphan that ``mode="resume"`` removes. ``finalize()`` rebuilds every ``meta/`` summary from the
committed episodes files, so it may be called after every group and after a resume.

Image statistics in the ``stats/observation.images.<view>/<stat>`` episode columns are nested
lists of shape ``(3, 1, 1)`` (per channel, values in ``[0, 1]``), ``count`` is ``[n]``.
"""

from __future__ import annotations

import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simfail.core.episode import VIEWS, EpisodeRecord, FailureEvent, failures_to_json, strict_preferences
from simfail.dataset import layout as L
from simfail.dataset.stats import aggregate_stats, image_stats, numeric_stats
from simfail.dataset.video import VideoEncoder
from simfail.errors import DatasetFormatError, OutputDirError

__all__ = ["DatasetWriter", "episodes_schema", "data_schema"]

_MODES = ("new", "resume", "overwrite")
_PARQUET_OPTS: dict[str, Any] = {"compression": "zstd", "compression_level": 3, "use_dictionary": True}
_PA_TYPES = {"float32": pa.float32(), "float64": pa.float64(), "int64": pa.int64(), "bool": pa.bool_()}


# --------------------------------------------------------------------------------------------
# schemas


def _hf_feature(spec: dict[str, Any]) -> dict[str, Any]:
    value = {"dtype": spec["dtype"], "_type": "Value"}
    if spec["shape"] == [1]:
        return value
    return {"feature": value, "length": int(spec["shape"][0]), "_type": "Sequence"}


def data_schema(features: dict[str, dict[str, Any]]) -> pa.Schema:
    """Arrow schema of the per-frame parquet files (with the ``huggingface`` metadata entry)."""
    fields = []
    for name, spec in features.items():
        t = _PA_TYPES[spec["dtype"]]
        fields.append(pa.field(name, t if spec["shape"] == [1] else pa.list_(t, int(spec["shape"][0]))))
    hf = {"info": {"features": {name: _hf_feature(spec) for name, spec in features.items()}}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf, separators=(",", ":"))})


def episodes_schema(features: dict[str, dict[str, Any]], video_keys: list[str],
                    policy_column: bool = False) -> pa.Schema:
    """Arrow schema of the ``meta/episodes/...parquet`` files (``simfail.policy`` last, in
    datasets of policy rollouts only)."""
    i64, f64 = pa.int64(), pa.float64()
    fields = [
        pa.field("episode_index", i64),
        pa.field("tasks", pa.list_(pa.string())),
        pa.field("length", i64),
        pa.field("dataset_from_index", i64),
        pa.field("dataset_to_index", i64),
        pa.field("data/chunk_index", i64),
        pa.field("data/file_index", i64),
    ]
    for key in video_keys:
        fields += [
            pa.field(f"videos/{key}/chunk_index", i64),
            pa.field(f"videos/{key}/file_index", i64),
            pa.field(f"videos/{key}/from_timestamp", f64),
            pa.field(f"videos/{key}/to_timestamp", f64),
        ]
    fields += [pa.field("meta/episodes/chunk_index", i64), pa.field("meta/episodes/file_index", i64)]
    for name in features:
        for stat in L.STAT_NAMES:
            fields.append(pa.field(f"stats/{name}/{stat}", pa.list_(i64 if stat == "count" else f64)))
    for key in video_keys:
        for stat in L.STAT_NAMES:
            t = pa.list_(i64) if stat == "count" else pa.list_(pa.list_(pa.list_(f64)))
            fields.append(pa.field(f"stats/{key}/{stat}", t))
    fields += [
        pa.field("simfail.group_id", i64),
        pa.field("simfail.variant", pa.string()),
        pa.field("simfail.success", pa.bool_()),
        pa.field("simfail.score", f64),
        pa.field("simfail.rank", i64),
        pa.field("simfail.failures", pa.string()),
        pa.field("simfail.seed", i64),
        pa.field("simfail.task", pa.string()),
        pa.field("simfail.perturbation", pa.string()),
    ]
    if policy_column:
        fields.append(pa.field("simfail.policy", pa.string()))
    return pa.schema(fields)


def _tasks_table(tasks: list[str]) -> pa.Table:
    """``meta/tasks.parquet``: ``pandas.read_parquet`` gives a frame indexed by ``task``."""
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [
            {"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
             "metadata": {"encoding": "UTF-8"}}
        ],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
    }
    schema = pa.schema(
        [pa.field("task_index", pa.int64()), pa.field("task", pa.string())],
        metadata={"pandas": json.dumps(pandas_meta)},
    )
    return pa.Table.from_arrays(
        [pa.array(range(len(tasks)), type=pa.int64()), pa.array(tasks, type=pa.string())], schema=schema
    )


_PREFERENCES_SCHEMA = pa.schema(
    [
        pa.field("group_id", pa.int64()),
        pa.field("episode_a", pa.int64()),
        pa.field("episode_b", pa.int64()),
        pa.field("preferred", pa.int64()),
        pa.field("score_a", pa.float64()),
        pa.field("score_b", pa.float64()),
    ]
)


# --------------------------------------------------------------------------------------------
# file helpers


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, **_PARQUET_OPTS)
    return sink.getvalue().to_pybytes()


def _write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _ensure_dir(path: Path) -> None:
    """Create ``path`` (and missing parents), making each new directory entry durable."""
    if path.is_dir():
        return
    _ensure_dir(path.parent)
    try:
        path.mkdir()
    except FileExistsError:
        return
    _fsync_dir(path.parent)


def _remove_quietly(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _link_or_copy(src: Path, dst: Path, *, link: bool) -> None:
    """``dst`` becomes a durable copy of ``src``: a hard link when ``link`` and the file system
    allow it (same bytes, no copy), else a byte copy flushed to disk."""
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copyfile(src, dst)
    _fsync_file(dst)


def _list_column(table: pa.Table, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A (possibly nested) list column whose rows all have ``shape`` as ``(N, *shape)``."""
    arr = table.column(name).combine_chunks()
    while pa.types.is_list(arr.type) or pa.types.is_fixed_size_list(arr.type) or pa.types.is_large_list(arr.type):
        arr = arr.flatten()
    return arr.to_numpy(zero_copy_only=False).reshape((table.num_rows,) + tuple(shape))


@dataclass
class _Group:
    group_id: int
    k: int
    episodes: pa.Table


# --------------------------------------------------------------------------------------------


#: x264 threads per view encoder. The three views are encoded by three ffmpeg processes at
#: once, beside the next group's physics and rendering; one thread each keeps them from
#: oversubscribing small machines (measured with ``simfail bench`` on 2 cores).
ENCODER_THREADS = 1


class DatasetWriter:
    """Writes counterfactual groups of :class:`~simfail.core.episode.EpisodeRecord` to ``root``.

    Args:
        root: Dataset directory.
        fps: Frame rate of every episode (integer).
        image_size: ``(H, W)`` of every camera view (both even).
        state_names, action_names: Names of the ``observation.state`` / ``action`` entries.
        nq, nv: Widths of ``sim.qpos`` / ``sim.qvel``.
        robot_type: Stored in ``meta/info.json``.
        mode: ``"new"`` (root missing or empty), ``"resume"`` (continue the dataset in root,
            discarding any incomplete group) or ``"overwrite"`` (delete the simfail dataset in
            root first).
        chunks_size: Files per chunk directory.
        crf, preset: x264 settings of the mp4 files.
        encoder_nice: Niceness of the ffmpeg encoders (see :class:`VideoEncoder`).
        policy_column: Add the ``simfail.policy`` episode column (policy rollouts).

    Raises:
        OutputDirError: root is not usable in the requested mode or cannot be written.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        fps: int,
        image_size: tuple[int, int],
        state_names: list[str],
        action_names: list[str],
        nq: int,
        nv: int,
        robot_type: str = "franka_panda",
        mode: str = "new",
        chunks_size: int = 1000,
        crf: int = 23,
        preset: str = "veryfast",
        encoder_nice: int = 0,
        policy_column: bool = False,
    ) -> None:
        if mode not in _MODES:
            raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
        if int(fps) != fps or fps <= 0:
            raise ValueError(f"fps must be a positive integer, got {fps!r}")
        h, w = (int(v) for v in image_size)
        if h <= 0 or w <= 0 or h % 2 or w % 2:
            raise ValueError(f"image_size must be positive and even (H.264 yuv420p), got {tuple(image_size)}")
        if int(nq) <= 0 or int(nv) <= 0:
            raise ValueError(f"nq and nv must be positive, got nq={nq} nv={nv}")
        if int(chunks_size) <= 0:
            raise ValueError(f"chunks_size must be positive, got {chunks_size}")
        self.root = Path(root)
        self.fps = int(fps)
        self.image_size = (h, w)
        self.state_names = [str(n) for n in state_names]
        self.action_names = [str(n) for n in action_names]
        self.nq, self.nv = int(nq), int(nv)
        self.robot_type = str(robot_type)
        self.chunks_size = int(chunks_size)
        self.crf, self.preset = int(crf), str(preset)
        self.encoder_nice = int(encoder_nice)
        self.video_keys = [L.video_key(v) for v in VIEWS]
        self.features = L.frame_features(self.state_names, self.action_names, self.nq, self.nv)
        self._data_schema = data_schema(self.features)
        self.policy_column = bool(policy_column)
        self._episodes_schema = episodes_schema(self.features, self.video_keys, self.policy_column)

        self._groups: list[_Group] = []
        self._group_ids: set[int] = set()
        self._tasks: dict[str, int] = {}
        self._next_episode = 0
        self._next_index = 0

        self._open(mode)

    # ---------------------------------------------------------------- configuration / opening

    def _config(self) -> dict[str, Any]:
        return {
            "format": "simfail-lerobot",
            "codebase_version": L.CODEBASE_VERSION,
            "fps": self.fps,
            "image_size": list(self.image_size),
            "views": list(VIEWS),
            "state_names": self.state_names,
            "action_names": self.action_names,
            "nq": self.nq,
            "nv": self.nv,
            "robot_type": self.robot_type,
            "chunks_size": self.chunks_size,
        }

    def _open(self, mode: str) -> None:
        root = self.root
        if root.exists() and not root.is_dir():
            raise OutputDirError(f"output path {root} exists and is not a directory")
        non_empty = root.is_dir() and any(root.iterdir())
        if mode == "new" and non_empty:
            raise OutputDirError(
                f"output directory {root} is not empty; pass resume=true to continue the dataset in it "
                "or overwrite=true to replace it"
            )
        if mode == "overwrite" and non_empty:
            if not self._looks_like_simfail(root):
                raise OutputDirError(
                    f"refusing to overwrite {root}: it is not empty and does not look like a simfail dataset "
                    f"(no {L.SIMFAIL_META_PATH} and no {L.MARKER_NAME} marker); choose another output directory"
                )
            try:
                shutil.rmtree(root)
            except OSError as exc:
                raise OutputDirError(f"cannot delete the existing dataset in {root}: {exc}") from exc
            non_empty = False
        if mode == "resume" and non_empty:
            if not self._looks_like_simfail(root):
                raise OutputDirError(
                    f"cannot resume in {root}: it is not empty and does not look like a simfail dataset "
                    f"(no {L.SIMFAIL_META_PATH} and no {L.MARKER_NAME} marker)"
                )
            self._check_writable()
            self._check_config_matches()
            self._cleanup_and_load()
            return
        # fresh dataset
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputDirError(f"cannot create output directory {root}: {exc.strerror or exc}") from exc
        self._check_writable()
        self._write_marker()
        self._tidy_staging()

    @staticmethod
    def _looks_like_simfail(root: Path) -> bool:
        return (root / L.MARKER_NAME).is_file() or (root / L.SIMFAIL_META_PATH).is_file()

    def _check_writable(self) -> None:
        probe = self.root / f".simfail-write-probe-{os.getpid()}"
        try:
            with open(probe, "wb") as fh:
                fh.write(b"probe")
            os.remove(probe)
        except OSError as exc:
            raise OutputDirError(
                f"output directory {self.root} is not writable ({exc.strerror or exc}); "
                "fix its permissions or choose another directory"
            ) from exc

    def _write_marker(self) -> None:
        self._atomic_write(self.root / L.MARKER_NAME, (L.dumps_json(self._config()) + "\n").encode())

    def _config_from_info(self) -> dict[str, Any] | None:
        path = self.root / L.INFO_PATH
        try:
            info = json.loads(path.read_text())
            feats = info["features"]
            key0 = L.video_key(VIEWS[0])
            return {
                "format": "simfail-lerobot",
                "codebase_version": info["codebase_version"],
                "fps": int(info["fps"]),
                "image_size": list(feats[key0]["shape"][:2]),
                "views": [k.removeprefix("observation.images.") for k in feats if k.startswith("observation.images.")],
                "state_names": feats["observation.state"]["names"],
                "action_names": feats["action"]["names"],
                "nq": int(feats["sim.qpos"]["shape"][0]),
                "nv": int(feats["sim.qvel"]["shape"][0]),
                "robot_type": info["robot_type"],
                "chunks_size": int(info["chunks_size"]),
            }
        except (OSError, ValueError, KeyError, TypeError, IndexError):
            return None

    def _check_config_matches(self) -> None:
        marker = self.root / L.MARKER_NAME
        existing: dict[str, Any] | None = None
        if marker.is_file():
            try:
                existing = json.loads(marker.read_text())
            except (OSError, ValueError):
                existing = None
        if existing is None:
            existing = self._config_from_info()
        if existing is None:
            raise OutputDirError(
                f"cannot resume in {self.root}: its {L.MARKER_NAME} marker and {L.INFO_PATH} are missing or "
                "unreadable; pass overwrite=true to start again"
            )
        mine = self._config()
        diffs = [
            f"{k}={existing.get(k)!r} (this run: {mine[k]!r})"
            for k in mine
            if k not in ("format",) and existing.get(k) != mine[k]
        ]
        if diffs:
            raise OutputDirError(
                f"cannot resume in {self.root}: the existing dataset was written with different settings: "
                + "; ".join(diffs)
                + ". Use the same settings, overwrite=true, or another output directory"
            )
        if not marker.is_file():
            self._write_marker()

    def _cleanup_and_load(self) -> None:
        root = self.root
        shutil.rmtree(root / L.STAGING_NAME, ignore_errors=True)
        committed: dict[int, Path] = {}
        for c, f, path in L.list_chunk_files(root / "meta" / "episodes", "parquet"):
            committed[c * self.chunks_size + f] = path
        n = len(committed)
        if sorted(committed) != list(range(n)):
            missing = sorted(set(range(max(committed, default=-1) + 1)) - set(committed))
            raise DatasetFormatError(
                f"dataset in {root} is damaged: episodes files of groups {missing[:10]} are missing while later "
                "groups exist; it cannot be resumed (use overwrite=true)"
            )
        # orphans of an interrupted group: data/video files with no committed episodes file
        bases = [(root / "data", "parquet")] + [(root / "videos" / key, "mp4") for key in self.video_keys]
        for base, ext in bases:
            for c, f, path in L.list_chunk_files(base, ext):
                if c * self.chunks_size + f >= n:
                    _remove_quietly(path)
        for k in range(n):
            path = committed[k]
            try:
                table = pq.read_table(path)
            except (OSError, pa.ArrowException) as exc:
                raise DatasetFormatError(f"cannot read committed episodes file {path}: {exc}") from exc
            if not table.schema.equals(self._episodes_schema, check_metadata=False):
                raise DatasetFormatError(
                    f"episodes file {path} does not have the columns this writer produces; cannot resume"
                )
            self._register_group(table, k, path)
        self._write_marker()
        self._tidy_staging()

    def _register_group(self, table: pa.Table, k: int, path: Path | None = None) -> None:
        where = path or f"group #{k}"
        gids = set(table.column("simfail.group_id").to_pylist())
        if len(gids) != 1:
            raise DatasetFormatError(f"{where}: episodes of several groups {sorted(gids)} in one file")
        gid = int(gids.pop())
        ep = table.column("episode_index").to_numpy()
        frm = table.column("dataset_from_index").to_numpy()
        to = table.column("dataset_to_index").to_numpy()
        if (
            not np.array_equal(ep, np.arange(self._next_episode, self._next_episode + len(ep)))
            or frm[0] != self._next_index
            or np.any(frm[1:] != to[:-1])
        ):
            raise DatasetFormatError(f"{where}: episode or frame indices do not continue the previous groups")
        c, f = L.group_location(k, self.chunks_size)
        needed = [self.root / L.data_path(c, f)] + [self.root / L.video_path(key, c, f) for key in self.video_keys]
        missing = [str(p) for p in needed if not p.is_file()]
        if missing:
            raise DatasetFormatError(f"{where}: committed group {gid} lacks files {missing}")
        if gid in self._group_ids:
            raise DatasetFormatError(f"{where}: group {gid} is committed twice")
        for tasks in table.column("tasks").to_pylist():
            for task in tasks:
                self._tasks.setdefault(task, len(self._tasks))
        self._groups.append(_Group(gid, k, table))
        self._group_ids.add(gid)
        self._next_episode = int(ep[-1]) + 1
        self._next_index = int(to[-1])

    # ---------------------------------------------------------------- public state

    def completed_groups(self) -> list[int]:
        """Group ids committed so far, in commit order."""
        return [g.group_id for g in self._groups]

    @property
    def num_groups(self) -> int:
        return len(self._groups)

    @property
    def num_episodes(self) -> int:
        return self._next_episode

    @property
    def num_frames(self) -> int:
        return self._next_index

    @property
    def tasks(self) -> dict[str, int]:
        """Task string -> task_index, in order of first appearance."""
        return dict(self._tasks)

    # ---------------------------------------------------------------- validation

    def _validate_frames(self, group_id: int, i: int, rec: EpisodeRecord) -> None:
        """The views and image size of episode ``i``'s frames."""
        h, w = self.image_size
        where = f"group {group_id} episode {i} (variant {rec.variant!r})"
        try:
            rec.validate()  # dtype, shape and frame count of every view
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from exc
        if set(rec.frames) != set(VIEWS) or len(rec.frames) != len(VIEWS):
            raise ValueError(f"{where}: views {sorted(rec.frames)} != {list(VIEWS)}")
        for view in VIEWS:
            shape = rec.frames[view].shape
            if shape[1:3] != (h, w):
                raise ValueError(f"{where}: view {view!r} frames are {shape[1]}x{shape[2]}, dataset is {h}x{w}")

    def _validate(self, group_id: int, episodes: list[EpisodeRecord], *, frames: bool = True) -> None:
        """Check a group before anything is written (``frames=False``: all but the frames,
        which are checked per episode as they arrive)."""
        if not episodes:
            raise ValueError(f"group {group_id} has no episodes")
        if group_id in self._group_ids:
            raise ValueError(f"group {group_id} is already in the dataset at {self.root}")
        for i, rec in enumerate(episodes):
            if not isinstance(rec, EpisodeRecord):
                raise TypeError(f"group {group_id} item {i} is a {type(rec).__name__}, not an EpisodeRecord")
            where = f"group {group_id} episode {i} (variant {rec.variant!r})"
            if not rec.columns:
                raise ValueError(f"{where}: record has no columns")
            try:
                rec.validate()
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from exc
            if int(rec.group_id) != group_id:
                raise ValueError(f"{where}: record has group_id {rec.group_id}")
            if int(rec.fps) != self.fps:
                raise ValueError(f"{where}: record has fps {rec.fps}, dataset has {self.fps}")
            missing = [c for c in L.RECORD_COLUMNS if c not in rec.columns]
            extra = sorted(set(rec.columns) - set(L.RECORD_COLUMNS))
            if missing or extra:
                raise ValueError(f"{where}: missing columns {missing}, unexpected columns {extra}")
            n = rec.length
            if n < 1:
                raise ValueError(f"{where}: episode has no frames")
            if frames:
                self._validate_frames(group_id, i, rec)
            widths = {
                "observation.state": len(self.state_names),
                "action": len(self.action_names),
                "sim.qpos": self.nq,
                "sim.qvel": self.nv,
            }
            for name in L.RECORD_COLUMNS:
                arr = np.asarray(rec.columns[name])
                if name in widths:
                    ok = arr.shape == (n, widths[name])
                    want = f"({n}, {widths[name]})"
                else:
                    ok = arr.shape in ((n,), (n, 1))
                    want = f"({n},)"
                if not ok:
                    raise ValueError(f"{where}: column {name!r} has shape {arr.shape}, expected {want}")
                if name == "failure":
                    if arr.dtype != np.bool_ and not (
                        np.issubdtype(arr.dtype, np.integer) and np.isin(arr, (0, 1)).all()
                    ):
                        raise ValueError(f"{where}: column 'failure' must be bool, got {arr.dtype}")
                elif not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
                    raise ValueError(f"{where}: column {name!r} must be numeric, got {arr.dtype}")
                elif not np.isfinite(arr).all():
                    raise ValueError(f"{where}: column {name!r} contains NaN or infinite values")
            if not isinstance(rec.instruction, str) or not rec.instruction:
                raise ValueError(f"{where}: instruction must be a non-empty string")
            if not isinstance(rec.variant, str) or not rec.variant:
                raise ValueError(f"{where}: variant must be a non-empty string")
            if not isinstance(rec.task, str):
                raise ValueError(f"{where}: task must be a string")
            if not np.isfinite(float(rec.score)):
                raise ValueError(f"{where}: score must be finite")
            if not all(isinstance(e, FailureEvent) for e in rec.failures):
                raise ValueError(f"{where}: failures must be FailureEvent objects")
            try:
                L.dumps_json(rec.perturbation, indent=None)
                int(rec.seed), int(rec.rank)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from exc

    # ---------------------------------------------------------------- building tables

    def _data_table(
        self, episodes: list[EpisodeRecord], ep_indices: list[int], task_indices: list[int]
    ) -> pa.Table:
        lengths = [rec.length for rec in episodes]
        total = sum(lengths)
        arrays: dict[str, pa.Array] = {}

        def cat(name: str, dtype: Any) -> np.ndarray:
            return np.concatenate([np.asarray(rec.columns[name], dtype=dtype) for rec in episodes])

        for name, spec in self.features.items():
            if name in L.RECORD_COLUMNS:
                dtype = np.dtype(spec["dtype"])
                values = cat(name, dtype)
                if spec["shape"] == [1]:
                    arrays[name] = pa.array(values.reshape(-1), type=_PA_TYPES[spec["dtype"]])
                else:
                    width = int(spec["shape"][0])
                    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=_PA_TYPES[spec["dtype"]])
                    arrays[name] = pa.FixedSizeListArray.from_arrays(flat, width)
        frame_index = np.concatenate([np.arange(n, dtype=np.int64) for n in lengths])
        arrays["timestamp"] = pa.array((frame_index / self.fps).astype(np.float32))
        arrays["frame_index"] = pa.array(frame_index)
        arrays["episode_index"] = pa.array(np.repeat(np.asarray(ep_indices, dtype=np.int64), lengths))
        arrays["index"] = pa.array(np.arange(self._next_index, self._next_index + total, dtype=np.int64))
        arrays["task_index"] = pa.array(np.repeat(np.asarray(task_indices, dtype=np.int64), lengths))
        done = np.zeros(total, dtype=bool)
        done[np.cumsum(lengths) - 1] = True
        arrays["next.done"] = pa.array(done)
        return pa.Table.from_arrays([arrays[name] for name in self.features], schema=self._data_schema)

    def _episode_stats(
        self, rec: EpisodeRecord, ep_index: int, task_index: int, start: int
    ) -> dict[str, dict[str, np.ndarray]]:
        n = rec.length
        out: dict[str, dict[str, np.ndarray]] = {}
        for name in self.features:
            if name in L.RECORD_COLUMNS:
                values = np.asarray(rec.columns[name])
                if name in ("observation.state", "action", "progress", "reward"):
                    values = values.astype(np.float32)  # stats of the values as stored
            elif name == "timestamp":
                values = (np.arange(n) / self.fps).astype(np.float32)
            elif name == "frame_index":
                values = np.arange(n)
            elif name == "episode_index":
                values = np.full(n, ep_index)
            elif name == "index":
                values = np.arange(start, start + n, dtype=np.int64)
            elif name == "task_index":
                values = np.full(n, task_index)
            elif name == "next.done":
                values = np.zeros(n, dtype=bool)
                values[-1] = True
            else:  # pragma: no cover - features are fixed
                raise AssertionError(name)
            out[name] = numeric_stats(values)
        return out

    # ---------------------------------------------------------------- writing

    def write_group(self, group_id: int, episodes: list[EpisodeRecord], *,
                    frames_ready: Callable[[int], None] | None = None,
                    ready: Callable[[], None] | None = None) -> list[int]:
        """Write one counterfactual group atomically; returns the episode indices it assigned.

        Every record is validated before anything touches the disk. On any error (or a crash)
        no part of the group stays visible once the dataset is reopened with ``mode="resume"``.

        Frames still being drawn: ``frames_ready(j)`` blocks until episode ``j``'s frames are
        attached (``episodes[j].frames``); the view encoders call it episode by episode, so
        episode ``j`` is encoded while later ones are drawn. ``ready()`` blocks until
        everything the group's labels depend on is in (e.g. the camera visibility pass); it is
        called once the frames are encoded, before the tables are built. Each episode's frames
        are validated as they arrive, the rest of the group up front and again at the end.
        """
        group_id = int(group_id)
        episodes = list(episodes)
        self._validate(group_id, episodes, frames=frames_ready is None)

        k = len(self._groups)
        chunk, file = L.group_location(k, self.chunks_size)
        ep_indices = list(range(self._next_episode, self._next_episode + len(episodes)))
        tasks = dict(self._tasks)
        task_indices = [tasks.setdefault(rec.instruction, len(tasks)) for rec in episodes]
        lengths = [rec.length for rec in episodes]
        starts = np.concatenate([[0], np.cumsum(lengths)]) + self._next_index

        stage = self.root / L.STAGING_NAME / f"group-{k:06d}"
        shutil.rmtree(stage, ignore_errors=True)
        try:
            stage.mkdir(parents=True)
            staged: list[tuple[Path, Path]] = []
            # videos: one file per view, the episodes one after the other; the views are encoded
            # concurrently (one ffmpeg process each; pipe writes release the GIL), each episode
            # as soon as its frames are drawn
            h, w = self.image_size

            def encode(view: str, key: str) -> list[tuple[float, float]]:
                tmp = stage / f"{key}.mp4"
                with VideoEncoder(tmp, fps=self.fps, height=h, width=w, crf=self.crf, preset=self.preset,
                                  threads=ENCODER_THREADS, nice=self.encoder_nice) as enc:
                    out = []
                    for j, rec in enumerate(episodes):
                        if frames_ready is not None:
                            frames_ready(j)
                            self._validate_frames(group_id, j, rec)
                        out.append(enc.append(rec.frames[view]))
                _fsync_file(tmp)
                return out

            with ThreadPoolExecutor(max_workers=len(VIEWS)) as pool:
                futures = {key: pool.submit(encode, view, key) for view, key in zip(VIEWS, self.video_keys)}
            spans = {key: fut.result() for key, fut in futures.items()}
            if ready is not None:
                ready()
            if frames_ready is not None or ready is not None:
                self._validate(group_id, episodes)  # the labels ready() completed, the frames
            # data
            data_tmp = stage / "data.parquet"
            _write_file(data_tmp, _parquet_bytes(self._data_table(episodes, ep_indices, task_indices)))
            staged.append((data_tmp, self.root / L.data_path(chunk, file)))
            for key in self.video_keys:
                staged.append((stage / f"{key}.mp4", self.root / L.video_path(key, chunk, file)))
            # episodes (commit marker)
            rows: dict[str, list[Any]] = {f.name: [] for f in self._episodes_schema}
            for j, rec in enumerate(episodes):
                row: dict[str, Any] = {
                    "episode_index": ep_indices[j],
                    "tasks": [rec.instruction],
                    "length": lengths[j],
                    "dataset_from_index": int(starts[j]),
                    "dataset_to_index": int(starts[j + 1]),
                    "data/chunk_index": chunk,
                    "data/file_index": file,
                    "meta/episodes/chunk_index": chunk,
                    "meta/episodes/file_index": file,
                }
                for key in self.video_keys:
                    row[f"videos/{key}/chunk_index"] = chunk
                    row[f"videos/{key}/file_index"] = file
                    row[f"videos/{key}/from_timestamp"] = float(spans[key][j][0])
                    row[f"videos/{key}/to_timestamp"] = float(spans[key][j][1])
                stats = self._episode_stats(rec, ep_indices[j], task_indices[j], int(starts[j]))
                for view, key in zip(VIEWS, self.video_keys):
                    stats[key] = image_stats(rec.frames[view])
                for name, st in stats.items():
                    for s in L.STAT_NAMES:
                        row[f"stats/{name}/{s}"] = np.asarray(st[s]).tolist()
                row.update(
                    {
                        "simfail.group_id": group_id,
                        "simfail.variant": rec.variant,
                        "simfail.success": bool(rec.success),
                        "simfail.score": float(rec.score),
                        "simfail.rank": int(rec.rank),
                        "simfail.failures": failures_to_json(list(rec.failures)),
                        "simfail.seed": int(rec.seed),
                        "simfail.task": rec.task,
                        "simfail.perturbation": L.dumps_json(rec.perturbation, indent=None),
                    }
                )
                if self.policy_column:
                    row["simfail.policy"] = rec.policy or ""
                for name in rows:
                    rows[name].append(row[name])
            ep_table = pa.Table.from_arrays(
                [pa.array(rows[f.name], type=f.type) for f in self._episodes_schema], schema=self._episodes_schema
            )
            self._stage_episodes_file(stage, staged, ep_table, chunk, file)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            self._tidy_staging()
            raise
        self._commit_staged(stage, staged, ep_table, k)
        return ep_indices

    def adopt_group(self, group_id: int, data: pa.Table, episodes: pa.Table, videos: dict[str, Path],
                    *, link: bool = False) -> list[int]:
        """Commit a group written by another :class:`DatasetWriter` (a shard, another dataset)
        as the next group of this one, atomically, without re-encoding its videos.

        ``data`` and ``episodes`` are the group's ``data/`` and ``meta/episodes/`` tables,
        ``videos`` its mp4 file per video key (one file per group: every episode's
        ``from_timestamp`` / ``to_timestamp`` stays valid as is). Episode, frame and task
        indices, the group id, the chunk/file locations and the statistics of the index
        columns are rewritten; ``sim.qpos`` / ``sim.qvel`` narrower than this dataset's are
        zero-padded (with their statistics), as ``task=all`` does; everything else is kept bit for bit, so a group adopted into the
        same position gives the same bytes as writing it directly. ``link=True`` hard-links
        the videos when the file system allows (the caller then must not modify the sources).
        """
        group_id = int(group_id)
        if group_id in self._group_ids:
            raise ValueError(f"group {group_id} is already in the dataset at {self.root}")
        if set(videos) != set(self.video_keys):
            raise ValueError(f"group {group_id}: videos {sorted(videos)} != {self.video_keys}")
        lengths = [int(v) for v in episodes.column("length").to_pylist()]
        if data.num_rows != sum(lengths):
            raise DatasetFormatError(f"group {group_id}: {data.num_rows} data rows, episodes hold {sum(lengths)} frames")
        k = len(self._groups)
        chunk, file = L.group_location(k, self.chunks_size)
        n_eps = len(lengths)
        ep_indices = np.arange(self._next_episode, self._next_episode + n_eps, dtype=np.int64)
        tasks = dict(self._tasks)
        instructions = [t[0] for t in episodes.column("tasks").to_pylist()]
        task_indices = np.asarray([tasks.setdefault(t, len(tasks)) for t in instructions], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64) + self._next_index

        cols = {name: data.column(name).combine_chunks() for name in self.features}
        widths = {"sim.qpos": self.nq, "sim.qvel": self.nv}
        padded: dict[str, int] = {}  # column -> zeros appended (a narrower task's sim state)
        for name, width in widths.items():
            have = cols[name].type.list_size
            if have > width:
                raise ValueError(f"group {group_id}: {name} has {have} entries, this dataset {width}")
            if have < width:
                flat = cols[name].flatten().to_numpy(zero_copy_only=False).reshape(-1, have)
                flat = np.pad(flat, ((0, 0), (0, width - have)))
                cols[name] = pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), type=pa.float64()), width)
                padded[name] = width - have
        cols["episode_index"] = pa.array(np.repeat(ep_indices, lengths))
        cols["index"] = pa.array(np.arange(starts[0], starts[-1], dtype=np.int64))
        cols["task_index"] = pa.array(np.repeat(task_indices, lengths))
        data_table = pa.Table.from_arrays([cols[name] for name in self.features], schema=self._data_schema)

        ep_cols = {f.name: episodes.column(f.name).combine_chunks() for f in self._episodes_schema}
        i64 = pa.int64()
        ep_cols["episode_index"] = pa.array(ep_indices, type=i64)
        ep_cols["dataset_from_index"] = pa.array(starts[:-1], type=i64)
        ep_cols["dataset_to_index"] = pa.array(starts[1:], type=i64)
        located = ["data", "meta/episodes"] + [f"videos/{key}" for key in self.video_keys]
        for prefix in located:
            ep_cols[f"{prefix}/chunk_index"] = pa.array([chunk] * n_eps, type=i64)
            ep_cols[f"{prefix}/file_index"] = pa.array([file] * n_eps, type=i64)
        ep_cols["simfail.group_id"] = pa.array([group_id] * n_eps, type=i64)
        for name, extra in padded.items():  # the zeros' statistics are exact: all 0, count unchanged
            for s in L.STAT_NAMES:
                if s != "count":
                    key = f"stats/{name}/{s}"
                    rows = [list(v) + [0.0] * extra for v in ep_cols[key].to_pylist()]
                    ep_cols[key] = pa.array(rows, type=self._episodes_schema.field(key).type)
        index_values = {
            "episode_index": lambda j: np.full(lengths[j], ep_indices[j]),
            "index": lambda j: np.arange(starts[j], starts[j + 1], dtype=np.int64),
            "task_index": lambda j: np.full(lengths[j], task_indices[j]),
        }
        for name, values in index_values.items():
            per = [numeric_stats(values(j)) for j in range(n_eps)]
            for s in L.STAT_NAMES:
                field = self._episodes_schema.field(f"stats/{name}/{s}")
                ep_cols[f"stats/{name}/{s}"] = pa.array([np.asarray(st[s]).tolist() for st in per], type=field.type)
        ep_table = pa.Table.from_arrays([ep_cols[f.name] for f in self._episodes_schema], schema=self._episodes_schema)

        stage = self.root / L.STAGING_NAME / f"group-{k:06d}"
        shutil.rmtree(stage, ignore_errors=True)
        try:
            stage.mkdir(parents=True)
            staged: list[tuple[Path, Path]] = []
            data_tmp = stage / "data.parquet"
            _write_file(data_tmp, _parquet_bytes(data_table))
            staged.append((data_tmp, self.root / L.data_path(chunk, file)))
            for key in self.video_keys:
                tmp = stage / f"{key}.mp4"
                _link_or_copy(Path(videos[key]), tmp, link=link)
                staged.append((tmp, self.root / L.video_path(key, chunk, file)))
            self._stage_episodes_file(stage, staged, ep_table, chunk, file)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        self._commit_staged(stage, staged, ep_table, k)
        return ep_indices.tolist()

    def _tidy_staging(self) -> None:
        try:
            os.rmdir(self.root / L.STAGING_NAME)  # only when empty
        except OSError:
            pass

    def _stage_episodes_file(self, stage: Path, staged: list[tuple[Path, Path]], ep_table, chunk: int,
                             file: int) -> None:
        """Stage a group's episodes file (the commit marker, moved into place last) and sync the stage."""
        ep_tmp = stage / "episodes.parquet"
        _write_file(ep_tmp, _parquet_bytes(ep_table))
        staged.append((ep_tmp, self.root / L.episodes_path(chunk, file)))
        _fsync_dir(stage)

    def _commit_staged(self, stage: Path, staged: list[tuple[Path, Path]], ep_table, k: int) -> None:
        """Move a staged group into place (episodes file last), then register it and tidy up."""
        self._commit(staged)
        # committed: the episodes file is in place
        self._register_group(ep_table, k)
        shutil.rmtree(stage, ignore_errors=True)
        self._tidy_staging()

    def _commit(self, staged: list[tuple[Path, Path]]) -> None:
        """Move staged files into place, the last one (the episodes file) as commit marker."""
        moved: list[Path] = []
        try:
            for src, dst in staged[:-1]:
                _ensure_dir(dst.parent)
                os.replace(src, dst)
                moved.append(dst)
            for parent in sorted({dst.parent for _, dst in staged[:-1]}):
                _fsync_dir(parent)
            src, dst = staged[-1]
            _ensure_dir(dst.parent)
            os.replace(src, dst)
        except BaseException:
            self._discard(moved)
            shutil.rmtree(staged[-1][0].parent, ignore_errors=True)
            raise
        _fsync_dir(dst.parent)

    def _discard(self, paths: list[Path]) -> None:
        """Remove files of a group whose commit failed (``resume`` would remove them too)."""
        for path in paths:
            _remove_quietly(path)

    # ---------------------------------------------------------------- finalize

    def _atomic_write(self, path: Path, data: bytes) -> None:
        try:
            if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
                return  # unchanged: keeps finalize() cheap and idempotent
        except OSError:
            pass
        tmp_dir = self.root / L.STAGING_NAME
        tmp_dir.mkdir(parents=True, exist_ok=True)
        tmp = tmp_dir / f"meta-{path.name}.tmp"
        _write_file(tmp, data)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, path)
        _fsync_dir(path.parent)

    def _all_episodes(self) -> pa.Table:
        if not self._groups:
            return self._episodes_schema.empty_table()
        return pa.concat_tables([g.episodes for g in self._groups])

    def info(self) -> dict[str, Any]:
        """The ``meta/info.json`` content for what is committed now."""
        h, w = self.image_size
        feats: dict[str, Any] = {}
        for name in ("observation.state", "action"):
            feats[name] = self.features[name]
        for key in self.video_keys:
            feats[key] = L.video_feature(h, w, self.fps)
        for name, spec in self.features.items():
            feats.setdefault(name, spec)
        return {
            "codebase_version": L.CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": self.num_episodes,
            "total_frames": self.num_frames,
            "total_tasks": len(self._tasks),
            "chunks_size": self.chunks_size,
            "data_files_size_in_mb": L.DEFAULT_DATA_FILE_SIZE_IN_MB,
            "video_files_size_in_mb": L.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
            "fps": self.fps,
            "splits": {"train": f"0:{self.num_episodes}"},
            "data_path": L.DATA_PATH,
            "video_path": L.VIDEO_PATH,
            "features": feats,
        }

    def _aggregate(self, table: pa.Table) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        if table.num_rows == 0:
            return out
        shapes: dict[str, tuple[int, ...]] = {name: (int(spec["shape"][0]),) for name, spec in self.features.items()}
        for key in self.video_keys:
            shapes[key] = (3, 1, 1)
        for name, shape in shapes.items():
            per = {
                s: _list_column(table, f"stats/{name}/{s}", (1,) if s == "count" else shape) for s in L.STAT_NAMES
            }
            agg = aggregate_stats(per)
            out[name] = {s: np.asarray(agg[s]).tolist() for s in L.STAT_NAMES}
        return out

    def _preferences(self) -> pa.Table:
        cols: dict[str, list[Any]] = {f.name: [] for f in _PREFERENCES_SCHEMA}
        for g in self._groups:
            idx = [int(v) for v in g.episodes.column("episode_index").to_pylist()]
            scores = [float(v) for v in g.episodes.column("simfail.score").to_pylist()]
            for p in strict_preferences(g.group_id, idx, scores):
                for name in cols:
                    cols[name].append(getattr(p, name))
        return pa.Table.from_arrays(
            [pa.array(cols[f.name], type=f.type) for f in _PREFERENCES_SCHEMA], schema=_PREFERENCES_SCHEMA
        )

    def finalize(self, extra_simfail_meta: dict[str, Any] | None = None) -> None:
        """Write ``meta/info.json``, ``stats.json``, ``tasks.parquet``, ``preferences.parquet`` and
        ``simfail.json`` for the committed groups. Cheap, atomic per file and idempotent."""
        extra = dict(extra_simfail_meta or {})
        table = self._all_episodes()
        prefs = self._preferences()
        tasks = [t for t, _ in sorted(self._tasks.items(), key=lambda kv: kv[1])]
        meta = self.root / "meta"
        self._atomic_write(meta / "info.json", (L.dumps_json(self.info(), indent=4, sort_keys=False) + "\n").encode())
        self._atomic_write(meta / "stats.json", (L.dumps_json(self._aggregate(table), indent=4) + "\n").encode())
        self._atomic_write(meta / "tasks.parquet", _parquet_bytes(_tasks_table(tasks)))
        self._atomic_write(meta / "preferences.parquet", _parquet_bytes(prefs))
        totals = {
            "format": "simfail-lerobot",
            "codebase_version": L.CODEBASE_VERSION,
            "total_groups": len(self._groups),
            "total_episodes": self.num_episodes,
            "total_frames": self.num_frames,
            "total_tasks": len(tasks),
            "total_preferences": prefs.num_rows,
            "views": list(VIEWS),
        }
        try:
            text = L.dumps_json({**extra, **totals}, indent=2)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra_simfail_meta is not JSON serialisable: {exc}") from exc
        self._atomic_write(meta / "simfail.json", (text + "\n").encode())
        self._tidy_staging()
