"""Behaviour-cloning demonstrations from a simfail dataset.

A demonstration is one *successful* episode (``simfail.success``) of a simfail dataset. For
every frame ``t`` it yields

* the observation the Gymnasium env (:class:`simfail.env.SimfailEnv`) would have shown at that
  frame: ``state`` (9,) from the ``observation.state`` column, and ``tcp_pos`` (3,) and
  ``objects`` (7 * n_objects,) recomputed from the stored simulator configuration
  ``sim.qpos`` by MuJoCo's forward kinematics on the episode's own scene (rebuilt from its
  scene seed ``simfail.seed``), exactly as the env computes them (tests compare the two);
* the episode time ``t / fps`` [s];
* the action column (LeRobot convention: ``action[t]`` is the command issued after frame ``t``)
  and the TCP pose its joint targets command (forward kinematics on the same scene);
* optionally the decoded camera frames of some views (uint8 ``(T, H, W, 3)`` each).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import mujoco
import numpy as np

from simfail.core.builder import build_scene, make_core
from simfail.core.scene import StageConfig
from simfail.core.sim import SimCore
from simfail.core.task import Task, get_task, task_names
from simfail.errors import ConfigError, UnknownNameError

__all__ = ["Demo", "DemoSet", "load_demos", "observation_from_qpos", "observation_features", "feature_size"]


@dataclass
class Demo:
    """One successful episode, frame-aligned arrays."""

    episode: int
    seed: int
    state: np.ndarray  # (T, 9) float32
    tcp_pos: np.ndarray  # (T, 3) float32
    objects: np.ndarray  # (T, 7n) float32
    action: np.ndarray  # (T, 8) float32
    action_tcp: np.ndarray  # (T, 7) float64: TCP pose the action's joint targets put the hand in (x y z qw qx qy qz)
    frames: dict[str, np.ndarray] = field(default_factory=dict)  # view -> (T, H, W, 3) uint8

    def __len__(self) -> int:
        return int(self.state.shape[0])

    def observation(self, t: int) -> dict[str, Any]:
        """The env observation at frame ``t`` (pixels included when frames were loaded)."""
        obs: dict[str, Any] = {"state": self.state[t], "tcp_pos": self.tcp_pos[t], "objects": self.objects[t]}
        if self.frames:
            obs["pixels"] = {v: f[t] for v, f in self.frames.items()}
        return obs


@dataclass
class DemoSet:
    task: str
    fps: int
    demos: list[Demo]
    n_objects: int
    image_size: tuple[int, int] | None = None  # (height, width) of the loaded frames
    skipped_failed: int = 0  # episodes of the task left out because they did not succeed

    @property
    def n_frames(self) -> int:
        return sum(len(d) for d in self.demos)


def observation_from_qpos(core: SimCore, objects: Sequence[str], qpos: np.ndarray) -> dict[str, np.ndarray]:
    """``tcp_pos`` and ``objects`` of the env observation for one configuration ``qpos``.

    Runs MuJoCo's forward kinematics on ``core.data`` (its state is overwritten), then reads the
    TCP site and the tracked bodies' world poses (``x y z qw qx qy qz``) as
    :meth:`simfail.env.SimfailEnv._observation` does.
    """
    m, d = core.model, core.data
    d.qpos[:] = np.asarray(qpos, dtype=np.float64)[: m.nq]
    mujoco.mj_kinematics(m, d)
    obj = np.concatenate([np.concatenate([d.body(n).xpos, d.body(n).xquat]) for n in objects])
    return {"tcp_pos": core.tcp_pos().astype(np.float32), "objects": obj.astype(np.float32)}


#: Reference orientation for the sign of TCP quaternions (the top-down grasp at yaw 0): q and -q
#: are the same rotation; the one closer to this is used, so targets vary continuously.
QUAT_REFERENCE = np.array([0.0, 1.0, 0.0, 0.0])


def canonical_quat(q: np.ndarray) -> np.ndarray:
    """``q`` (..., 4) wxyz with the sign that makes its dot product with :data:`QUAT_REFERENCE` >= 0."""
    q = np.asarray(q, np.float64)
    sign = np.where((q * QUAT_REFERENCE).sum(axis=-1, keepdims=True) < 0, -1.0, 1.0)
    return q * sign


def tcp_pose_of_joints(core: SimCore, arm_q: np.ndarray) -> np.ndarray:
    """(7,) TCP pose (world position [m], canonical wxyz quaternion) with the arm at ``arm_q`` [rad].

    Forward kinematics on ``core.data`` (its state is overwritten)."""
    m, d = core.model, core.data
    d.qpos[core.robot.arm_qpos] = np.asarray(arm_q, np.float64)[:7]
    mujoco.mj_kinematics(m, d)
    quat = np.zeros(4)
    mujoco.mju_mat2Quat(quat, d.site_xmat[core.robot.tcp_site])
    return np.concatenate([d.site_xpos[core.robot.tcp_site], canonical_quat(quat)])


def feature_size(n_objects: int) -> int:
    """Length of :func:`observation_features`' vector for a task with ``n_objects`` tracked objects."""
    return 9 + 3 + 7 * n_objects + 3 * n_objects + 1


def observation_features(obs: dict[str, Any], time_s: float) -> np.ndarray:
    """The state-based policy's input vector (float32).

    ``state`` (9: joint angles [rad], finger positions [m]), ``tcp_pos`` (3, world [m]),
    ``objects`` (7n: poses, world), each object's position relative to the TCP (3n, world
    axes [m]) and the time since the episode started (1, [s]).
    """
    state = np.asarray(obs["state"], np.float32).reshape(-1)
    tcp = np.asarray(obs["tcp_pos"], np.float32).reshape(3)
    objects = np.asarray(obs["objects"], np.float32).reshape(-1)
    rel = (objects.reshape(-1, 7)[:, :3] - tcp[None]).reshape(-1)
    return np.concatenate([state, tcp, objects, rel, np.array([time_s], np.float32)]).astype(np.float32)


def _dataset_task(ds, episodes: list[int], task: str | None) -> str:
    found = sorted({str(ds.episode(e)["simfail.task"]) for e in episodes})
    if task is not None:
        if task not in task_names():
            raise UnknownNameError("task", task, task_names())
        if task not in found:
            raise ConfigError(f"the dataset {ds.root} has no episode of task {task!r} (it holds {', '.join(found) or 'none'})")
        return task
    if len(found) != 1:
        raise ConfigError(f"the dataset {ds.root} holds several tasks ({', '.join(found)}): pick one with task=NAME")
    return found[0]


def load_demos(data: str, *, task: str | None = None, demos: int = 0, views: Sequence[str] = (),
               progress: bool = False) -> DemoSet:
    """The first ``demos`` successful episodes (all when 0) of ``task`` in dataset order.

    Raises:
        DatasetFormatError: ``data`` is not a simfail dataset.
        ConfigError: no successful episode, several tasks without ``task=``, fewer successful
            episodes than ``demos``, or an unknown view.
    """
    from simfail.dataset.reader import SimfailDataset

    ds = SimfailDataset(data)
    if ds.num_episodes == 0:
        raise ConfigError(f"the dataset {ds.root} holds no episode")
    all_eps = list(range(ds.num_episodes))
    name = _dataset_task(ds, all_eps, task)
    of_task = [e for e in all_eps if ds.episode(e)["simfail.task"] == name]
    ok = [e for e in of_task if bool(ds.episode(e)["simfail.success"])]
    skipped = len(of_task) - len(ok)
    if not ok:
        raise ConfigError(f"the dataset {ds.root} has no successful {name} episode to imitate "
                          f"({len(of_task)} episode(s), all failed)")
    if demos:
        if demos > len(ok):
            raise ConfigError(f"demos={demos} but the dataset {ds.root} has only {len(ok)} successful {name} episodes")
        ok = ok[:demos]
    for v in views:
        if v not in ds.views:
            raise UnknownNameError("view", v, ds.views)
    t = get_task(name)
    out: list[Demo] = []
    n_objects = 0
    iterator = ok
    if progress:
        from tqdm import tqdm

        iterator = tqdm(ok, desc=f"demos ({name})", unit="ep")
    for e in iterator:
        out.append(_load_one(ds, t, e, views))
        n_objects = out[-1].objects.shape[1] // 7
    size = None
    if views:
        f = out[0].frames[views[0]]
        size = (int(f.shape[1]), int(f.shape[2]))
    return DemoSet(task=name, fps=ds.fps, demos=out, n_objects=n_objects, image_size=size,
                   skipped_failed=skipped)


def _load_one(ds, task: Task, ep: int, views: Sequence[str]) -> Demo:
    row = ds.episode(ep)
    seed = int(row["simfail.seed"])
    cols = ds.episode_columns(ep)
    scene = build_scene(task, seed, StageConfig(width=64, height=64))
    core = make_core(scene, ds.fps)
    objects = list(scene.layout.tracked)
    qpos = np.asarray(cols["sim.qpos"], np.float64)
    obs = [observation_from_qpos(core, objects, q) for q in qpos]
    action = np.asarray(cols["action"], np.float32)
    action_tcp = np.stack([tcp_pose_of_joints(core, a[:7]) for a in action.astype(np.float64)])
    frames = {v: ds.episode_frames(ep, v) for v in views}
    return Demo(
        episode=ep,
        seed=seed,
        state=np.asarray(cols["observation.state"], np.float32),
        tcp_pos=np.stack([o["tcp_pos"] for o in obs]),
        objects=np.stack([o["objects"] for o in obs]),
        action=action,
        action_tcp=action_tcp,
        frames=frames,
    )
