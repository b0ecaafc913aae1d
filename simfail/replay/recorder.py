"""Write a demo dataset (the contract of :mod:`simfail.replay.demos`) from recorded episodes.

Teleoperation or any script drives the Gymnasium env (:mod:`simfail.env`); after each episode
:meth:`DemoRecorder.add_env_episode` takes its task, scene seed, commands and ``qpos`` from the
env's trace. Bare arrays go in through :meth:`DemoRecorder.add`::

    import simfail.env  # registers simfail/PickPlace-v0 ...
    from simfail.replay.recorder import DemoRecorder

    env = simfail.env.make_env("pick_place", width=64, height=64)
    with DemoRecorder("demos", fps=env.fps) as rec:
        obs, info = env.reset(options={"scene_seed": 7})
        for _ in range(40):
            obs, reward, terminated, truncated, info = env.step(my_teleop_command())
        rec.add_env_episode(env)

The folder appears when the recorder closes without error (written in a staging folder next
to it, then renamed: a crash leaves no half dataset). ``simfail replay demos=demos`` then
replays, verifies (the env's ``qpos`` is stored) and branches from every episode.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simfail.dataset import layout as L
from simfail.errors import ConfigError, OutputDirError
from simfail.replay.demos import ACTION_WIDTH, QPOS_COLUMN, SEED_COLUMN, TASK_COLUMN


def lerobot_actions(trace_actions) -> np.ndarray:
    """A trace's ``action`` list (entry ``f``: the command that drove the step into frame ``f``;
    entry 0 the rest command) as a LeRobot ``action`` column (row ``t``: the command issued after
    observing frame ``t``; the last row repeats the last command), ``float32 (T, 8)``."""
    a = np.asarray(trace_actions, dtype=np.float32).reshape(-1, ACTION_WIDTH)
    return np.concatenate([a[1:], a[-1:]], axis=0)


class DemoRecorder:
    """Collects demo episodes and writes them as one LeRobot v3.0 demo dataset at ``root``.

    Args:
        root: Output folder; must not exist or be empty (``overwrite=True`` replaces it).
        fps: Frames per second the actions were issued at (the env's ``fps``).
    """

    def __init__(self, root: str | os.PathLike[str], fps: int, *, overwrite: bool = False):
        self.root = Path(root)
        if isinstance(fps, bool) or int(fps) != fps or fps < 1:
            raise ConfigError(f"fps must be a whole number >= 1, got {fps!r}")
        self.fps = int(fps)
        self.overwrite = bool(overwrite)
        if self.root.exists() and (not self.root.is_dir() or any(self.root.iterdir())):
            if not self.overwrite:
                raise OutputDirError(f"{self.root} exists and is not an empty folder (overwrite=True replaces a "
                                     "dataset)")
            if not (self.root / L.INFO_PATH).is_file():
                raise OutputDirError(f"refusing to overwrite {self.root}: it is not a LeRobot dataset "
                                     f"(no {L.INFO_PATH})")
        self._episodes: list[dict] = []

    def add(self, task: str, scene_seed: int, actions: np.ndarray, qpos: np.ndarray | None = None,
            instruction: str = "") -> int:
        """Add one episode; returns its episode index.

        Args:
            task: simfail task name.
            scene_seed: The scene seed it ran on.
            actions: ``(T, 8)``, LeRobot convention (row ``t`` issued after observing frame ``t``).
            qpos: ``(T, nq)`` MuJoCo ``qpos`` per frame, optional (replay checks against it).
            instruction: Language instruction (LeRobot ``tasks``), optional.
        """
        from simfail.core.task import task_names

        if task not in task_names():
            from simfail.errors import UnknownNameError

            raise UnknownNameError("task", task, task_names())
        a = np.asarray(actions, dtype=np.float32)
        if a.ndim != 2 or a.shape[1] != ACTION_WIDTH or len(a) < 2:
            raise ConfigError(f"actions must be (T >= 2, {ACTION_WIDTH}), got shape {a.shape}")
        if not np.isfinite(a).all():
            raise ConfigError("actions hold NaN or infinite values")
        q = None
        if qpos is not None:
            q = np.asarray(qpos, dtype=np.float64)
            if q.ndim != 2 or len(q) != len(a):
                raise ConfigError(f"qpos must be (T={len(a)}, nq), got shape {q.shape}")
        self._episodes.append({"task": task, "seed": int(scene_seed), "actions": a, "qpos": q,
                               "instruction": instruction or task})
        return len(self._episodes) - 1

    def add_trace(self, task: str, scene_seed: int, trace, instruction: str = "") -> int:
        """Add an episode from a runner's :class:`~simfail.labels.trace.Trace` (commands and qpos)."""
        return self.add(task, scene_seed, lerobot_actions(trace.action), np.array(trace.qpos), instruction)

    def add_env_episode(self, env) -> int:
        """Add the episode the env (:class:`simfail.env.SimfailEnv`) has run since its last reset."""
        env = getattr(env, "unwrapped", env)
        if env.trace is None or len(env.trace) < 2:
            raise ConfigError("the env has no episode to add: reset() it and step() at least once")
        return self.add_trace(env.task_name, int(env.scene_seed), env.trace, env.scene.layout.instruction)

    # ------------------------------------------------------------------ writing
    def close(self) -> Path:
        """Write the dataset (staged next to ``root``, then renamed into place)."""
        if not self._episodes:
            raise ConfigError("no episodes to write")
        self.root.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{self.root.name}.", dir=self.root.parent))
        try:
            self._write(stage)
            if self.root.exists():
                shutil.rmtree(self.root) if self.root.is_dir() else self.root.unlink()
            os.replace(stage, self.root)
        except BaseException:
            shutil.rmtree(stage, ignore_errors=True)
            raise
        return self.root

    def _write(self, root: Path) -> None:
        eps = self._episodes
        tasks = sorted({e["instruction"] for e in eps})
        task_index = {t: i for i, t in enumerate(tasks)}
        with_qpos = all(e["qpos"] is not None for e in eps)
        nq = max(e["qpos"].shape[1] for e in eps) if with_qpos else 0
        cols: dict[str, list] = {k: [] for k in ("episode_index", "frame_index", "index", "timestamp", "task_index")}
        actions, qpos, ep_rows = [], [], []
        start = 0
        for i, e in enumerate(eps):
            n = len(e["actions"])
            cols["episode_index"].append(np.full(n, i, np.int64))
            cols["frame_index"].append(np.arange(n, dtype=np.int64))
            cols["index"].append(np.arange(start, start + n, dtype=np.int64))
            cols["timestamp"].append((np.arange(n) / self.fps).astype(np.float32))
            cols["task_index"].append(np.full(n, task_index[e["instruction"]], np.int64))
            actions.append(e["actions"])
            if with_qpos:
                qpos.append(np.pad(e["qpos"], ((0, 0), (0, nq - e["qpos"].shape[1]))))
            ep_rows.append({"episode_index": i, "tasks": [e["instruction"]], "length": n, "data/chunk_index": 0,
                            "data/file_index": 0, "dataset_from_index": start, "dataset_to_index": start + n,
                            TASK_COLUMN: e["task"], SEED_COLUMN: e["seed"]})
            start += n
        arrays = {k: pa.array(np.concatenate(v)) for k, v in cols.items()}
        a = np.concatenate(actions)
        arrays["action"] = pa.FixedSizeListArray.from_arrays(pa.array(a.reshape(-1)), ACTION_WIDTH)
        if with_qpos:
            q = np.concatenate(qpos)
            arrays[QPOS_COLUMN] = pa.FixedSizeListArray.from_arrays(pa.array(q.reshape(-1)), nq)
        data = root / L.data_path(0, 0)
        data.parent.mkdir(parents=True)
        pq.write_table(pa.table(arrays), data)
        epath = root / L.episodes_path(0, 0)
        epath.parent.mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(ep_rows), epath)
        pq.write_table(pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks)}),
                       root / L.TASKS_PATH)
        features = {
            "episode_index": {"dtype": "int64", "shape": [1], "names": None},
            "frame_index": {"dtype": "int64", "shape": [1], "names": None},
            "index": {"dtype": "int64", "shape": [1], "names": None},
            "timestamp": {"dtype": "float32", "shape": [1], "names": None},
            "task_index": {"dtype": "int64", "shape": [1], "names": None},
            "action": {"dtype": "float32", "shape": [ACTION_WIDTH],
                       "names": [f"joint{i}_target" for i in range(1, 8)] + ["gripper_close"]},
        }
        if with_qpos:
            features[QPOS_COLUMN] = {"dtype": "float64", "shape": [nq], "names": None}
        info = {"codebase_version": L.CODEBASE_VERSION, "robot_type": "franka_panda", "fps": self.fps,
                "total_episodes": len(eps), "total_frames": start, "total_tasks": len(tasks), "chunks_size": 1000,
                "splits": {"train": f"0:{len(eps)}"}, "data_path": L.DATA_PATH, "video_path": None,
                "features": features}
        (root / L.INFO_PATH).write_text(json.dumps(info, indent=2) + "\n")

    def __enter__(self) -> DemoRecorder:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        if exc_type is None:
            self.close()
