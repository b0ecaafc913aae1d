"""The demo dataset contract and its reader.

A *demo dataset* is a LeRobot v3.0 dataset (``codebase_version: "v3.0"``) that holds, per
episode, the actions to replay and where to replay them. The minimum a user's dataset needs:

``meta/info.json``
    ``codebase_version`` ``"v3.0"``, ``fps`` (the rate the actions were issued at: one action
    per ``1 / fps`` s), ``data_path`` (the LeRobot template, e.g.
    ``data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet``) and ``features.action`` with
    ``shape: [8]``.
``meta/episodes/chunk-XXX/file-YYY.parquet``
    one row per episode: ``episode_index`` (int), ``simfail.task`` (a simfail task name, see
    ``simfail list``) and ``simfail.seed`` (int: the scene seed the episode was recorded on,
    ``env.reset(options={"scene_seed": s})`` / ``info["scene_seed"]``).
``data/chunk-XXX/file-YYY.parquet``
    one row per frame: ``episode_index``, ``frame_index`` (0..T-1, each once) and ``action``
    (8 floats: seven arm joint position targets [rad] and the gripper close command in [0, 1]).
    LeRobot convention: ``action[t]`` is the command issued after observing frame ``t``; it
    drives the step from frame ``t`` to ``t + 1`` (the last row's action is never executed).
    Optional: ``sim.qpos`` (float64, at least the scene's ``nq`` wide; frame ``t``'s MuJoCo
    ``qpos``). Where present, the replay is checked against it.

``simfail generate``/``rollout`` datasets and datasets written by
:class:`~simfail.replay.recorder.DemoRecorder` satisfy the contract. Every violation raises one
:class:`~simfail.errors.SimfailError` naming the dataset (and the episode) before any replay.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from simfail.dataset import layout as L
from simfail.errors import DatasetFormatError, UnknownNameError

#: Width of a replayable action: seven arm joint targets [rad] + the gripper close command [0, 1].
ACTION_WIDTH = 8
#: Episode columns (``meta/episodes``) naming an episode's task and scene seed.
TASK_COLUMN, SEED_COLUMN = "simfail.task", "simfail.seed"
QPOS_COLUMN = "sim.qpos"


class DemoFormatError(DatasetFormatError):
    """A demo dataset breaks the contract of :mod:`simfail.replay.demos`."""


@dataclass
class DemoEpisode:
    """One demonstration to replay.

    Attributes:
        index: Its ``episode_index`` in the demo dataset.
        task: The simfail task name.
        scene_seed: The scene seed it was recorded on.
        actions: ``float32 (T, 8)``; ``actions[t]`` drives the step from frame ``t`` to ``t + 1``.
        qpos: ``float64 (T, nq')`` recorded MuJoCo ``qpos`` per frame, or None (``nq'`` may be
            wider than the scene's ``nq``: zero padding of multi-task datasets).
    """

    index: int
    task: str
    scene_seed: int
    actions: np.ndarray
    qpos: np.ndarray | None

    @property
    def length(self) -> int:
        return int(self.actions.shape[0])


@dataclass
class DemoSet:
    """The demo dataset at ``root``: its frame rate and the selected episodes (by index)."""

    root: Path
    fps: int
    episodes: list[DemoEpisode]

    @property
    def tasks(self) -> list[str]:
        return sorted({d.task for d in self.episodes})


def _fail(root: Path, what: str) -> DemoFormatError:
    return DemoFormatError(f"demo dataset {root}: {what}")


def read_info(root: Path) -> dict:
    """``meta/info.json`` of a LeRobot v3.0 dataset whose actions are 8 wide."""
    if not root.is_dir():
        raise DemoFormatError(f"demos={root} is not a dataset: {'no such folder' if not root.exists() else 'not a folder'}")
    path = root / L.INFO_PATH
    if not path.is_file():
        raise DemoFormatError(f"demos={root} is not a LeRobot dataset: {L.INFO_PATH} is missing")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _fail(root, f"cannot read {L.INFO_PATH}: {exc}") from exc
    if not isinstance(info, dict):
        raise _fail(root, f"{L.INFO_PATH} does not hold a JSON object")
    if info.get("codebase_version") != L.CODEBASE_VERSION:
        raise _fail(root, f"codebase_version is {info.get('codebase_version')!r}, replay reads LeRobot "
                          f"{L.CODEBASE_VERSION!r} datasets")
    fps = info.get("fps")
    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise _fail(root, f"{L.INFO_PATH} fps must be a whole number >= 1, got {fps!r}")
    action = (info.get("features") or {}).get("action")
    if not isinstance(action, dict):
        raise _fail(root, f"{L.INFO_PATH} has no 'action' feature")
    shape = list(action.get("shape") or [])
    if shape != [ACTION_WIDTH]:
        raise _fail(root, f"the action feature is {shape} wide, replay needs [{ACTION_WIDTH}] "
                          "(7 arm joint position targets [rad] + the gripper close command in [0, 1])")
    return info


def _episodes_table(root: Path) -> pa.Table:
    files = L.list_chunk_files(root / "meta" / "episodes", "parquet")
    if not files:
        raise _fail(root, "no episodes files under meta/episodes")
    try:
        table = pa.concat_tables([pq.read_table(p) for _, _, p in files], promote_options="default")
    except (OSError, pa.ArrowException) as exc:
        raise _fail(root, f"cannot read meta/episodes: {exc}") from exc
    if "episode_index" not in table.column_names:
        raise _fail(root, "meta/episodes lacks the episode_index column")
    if TASK_COLUMN not in table.column_names:
        raise _fail(root, f"meta/episodes lacks the task column {TASK_COLUMN!r} (a simfail task name per episode)")
    if SEED_COLUMN not in table.column_names:
        raise _fail(root, f"meta/episodes lacks the scene seed column {SEED_COLUMN!r} "
                          "(the scene seed each episode was recorded on)")
    return table.sort_by("episode_index")


def _data_rows(root: Path, info: dict, wanted: set[int]) -> dict[int, pa.Table]:
    """Per wanted episode, its data rows (every data file is read once)."""
    files = L.list_chunk_files(root / "data", "parquet")
    if not files:
        raise _fail(root, "no data files under data/")
    out: dict[int, list[pa.Table]] = {}
    for _, _, path in files:
        try:
            names = pq.read_schema(path).names
            cols = [c for c in ("episode_index", "frame_index", "action", QPOS_COLUMN) if c in names]
            table = pq.read_table(path, columns=cols)
        except (OSError, pa.ArrowException) as exc:
            raise _fail(root, f"cannot read {path.relative_to(root)}: {exc}") from exc
        for need in ("episode_index", "frame_index", "action"):
            if need not in table.column_names:
                raise _fail(root, f"{path.relative_to(root)} lacks the {need!r} column")
        idx = table.column("episode_index")
        for ep in set(pc.unique(idx).to_pylist()) & wanted:
            out.setdefault(int(ep), []).append(table.filter(pc.equal(idx, ep)))
    return {ep: pa.concat_tables(parts, promote_options="default") for ep, parts in out.items()}


def _matrix(col: pa.ChunkedArray, dtype) -> np.ndarray:
    arr = col.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type):
        return arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), arr.type.list_size).astype(dtype)
    rows = arr.to_pylist()
    widths = {len(r) if r is not None else -1 for r in rows}
    if len(widths) != 1 or -1 in widths:
        raise ValueError(f"rows of different widths {sorted(widths)}")
    return np.asarray(rows, dtype=dtype).reshape(len(rows), widths.pop())


def load_demos(root: str | Path, episodes: list[int] | None = None) -> DemoSet:
    """Read and check the demo dataset at ``root`` (``episodes``: indices to keep, default all).

    Raises:
        DemoFormatError: not a LeRobot v3.0 dataset, actions not 8 wide, no task or scene seed,
            missing or unordered frames, non-finite actions.
        UnknownNameError: an episode's task is not a simfail task.
    """
    from simfail.core.task import task_names

    root = Path(root)
    info = read_info(root)
    table = _episodes_table(root)
    rows = table.select(["episode_index", TASK_COLUMN, SEED_COLUMN]).to_pylist()
    known = {int(r["episode_index"]): r for r in rows}
    if episodes:
        missing = [e for e in episodes if e not in known]
        if missing:
            raise _fail(root, f"has no episode {missing[0]} (episodes {min(known)}..{max(known)})" if known
                        else "has no episodes")
        rows = [known[e] for e in episodes]
    if not rows:
        raise _fail(root, "has no episodes")
    for r in rows:
        ep = r["episode_index"]
        if r[TASK_COLUMN] is None or r[TASK_COLUMN] == "":
            raise _fail(root, f"episode {ep} has no task ({TASK_COLUMN} is empty)")
        if r[TASK_COLUMN] not in task_names():
            raise UnknownNameError(f"task (demo episode {ep} of {root})", str(r[TASK_COLUMN]), task_names())
        seed = r[SEED_COLUMN]
        if seed is None or isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise _fail(root, f"episode {ep} has no scene seed ({SEED_COLUMN} is {seed!r}, needs a whole number >= 0)")
    data = _data_rows(root, info, {int(r["episode_index"]) for r in rows})
    out: list[DemoEpisode] = []
    for r in rows:
        ep = int(r["episode_index"])
        t = data.get(ep)
        if t is None or t.num_rows < 2:
            raise _fail(root, f"episode {ep} has {0 if t is None else t.num_rows} frames in data/, replay needs >= 2")
        t = t.sort_by("frame_index")
        frames = t.column("frame_index").to_numpy()
        if not np.array_equal(frames, np.arange(len(frames))):
            raise _fail(root, f"episode {ep}: frame_index is not 0..{len(frames) - 1}, each once")
        try:
            actions = _matrix(t.column("action"), np.float32)
        except ValueError as exc:
            raise _fail(root, f"episode {ep}: the action column has {exc}") from None
        if actions.shape[1] != ACTION_WIDTH:
            raise _fail(root, f"episode {ep}: actions are {actions.shape[1]} wide, replay needs {ACTION_WIDTH} "
                              "(7 arm joint position targets [rad] + the gripper close command in [0, 1])")
        bad = np.flatnonzero(~np.isfinite(actions).all(axis=1))
        if bad.size:
            raise _fail(root, f"episode {ep}: the action at frame {int(bad[0])} is not finite: {actions[bad[0]].tolist()}")
        qpos = None
        if QPOS_COLUMN in t.column_names:
            try:
                qpos = _matrix(t.column(QPOS_COLUMN), np.float64)
            except ValueError as exc:
                raise _fail(root, f"episode {ep}: the {QPOS_COLUMN} column has {exc}") from None
        out.append(DemoEpisode(ep, str(r[TASK_COLUMN]), int(r[SEED_COLUMN]), actions, qpos))
    return DemoSet(root, int(info["fps"]), out)
