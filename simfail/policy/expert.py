"""The scripted expert as a closed-loop policy, and its noisy variant.

``expert``: at every step the task's expert program (:meth:`Task.expert_program`) is rebuilt on
a layout whose objects sit where they are *now* (from ``observation["objects"]``), then sampled
at the policy's own clock and solved by IK, exactly as :func:`~simfail.core.rollout.run_program`
does for the open-loop expert. Keyframes are object-relative, so if the cube is nudged before
the grasp, the grasp follows it; if the bowl is shoved, the placement follows it.

- An object is re-targeted only once it moved more than :data:`RETARGET_M` (1 cm) in the plane
  or turned more than :data:`RETARGET_RAD` about world z from where the layout put it: while
  nothing moved the closed-loop expert issues the open-loop expert's actions bit for bit (settling
  by a fraction of a millimetre changes nothing).
- An object is *frozen* (never re-targeted again) once the tool centre point comes within
  :data:`FREEZE_M` of it: from then on the hand is manipulating it (grasping, carrying, pushing,
  wiping), the program's keyframes for it are committed, and the object goes where the program
  takes it. Re-targeting is for objects that moved while the hand was away from them.
- Only the plane position (x, y) and the yaw change; heights stay the layout's. The yaw change
  is measured from the object's orientation at the first observation (a turn before the episode
  starts is not seen).

``noisy_expert``: the same policy with closed-loop actuation noise (temporally correlated
Gaussian noise on the joint targets [rad]), latency (the command executed is the one computed
``latency`` frames earlier) and hesitation (with probability ``hesitation`` per step the arm
holds its last command and the program clock stalls for that frame). ``level`` scales all three
from their defaults (``level=1``: 0.02 rad, 1 frame, 0.1); explicit values override.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import replace
from typing import Any

import mujoco
import numpy as np

from simfail.core.robot import HOME_QPOS, PandaIK
from simfail.policy.base import EpisodeContext, PolicyError, PolicyNeeds
from simfail.policy.registry import register_policy

#: Plane displacement [m] after which an object's keyframes follow it.
RETARGET_M = 0.01
#: Yaw change [rad] after which an object's keyframes follow it.
RETARGET_RAD = 0.1
#: Distance [m] from the TCP within which an object's keyframes are frozen for the episode.
FREEZE_M = 0.10
#: Correlation of the actuation noise between consecutive frames (AR(1) coefficient).
NOISE_CORRELATION = 0.8


def _rot(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, float) / max(float(np.linalg.norm(q)), 1e-12))
    return m.reshape(3, 3)


def _yaw_delta(q0: np.ndarray, q1: np.ndarray) -> float:
    """Rotation about world z [rad] that takes orientation ``q0`` to ``q1`` (wxyz)."""
    r = _rot(q1) @ _rot(q0).T
    return float(np.arctan2(r[1, 0], r[0, 0]))


class ExpertPolicy:
    """The task's scripted expert, re-targeted to the objects' current poses every step.

    Args:
        noise: Standard deviation [rad] of the actuation noise on each joint target.
        latency: Frames between computing a command and executing it.
        hesitation: Probability per step of holding the last command (the clock stalls).
        name: Display name.
    """

    needs = PolicyNeeds(privileged=True)

    def __init__(self, noise: float = 0.0, latency: int = 0, hesitation: float = 0.0, name: str = "expert"):
        if noise < 0 or latency < 0 or not 0.0 <= hesitation < 1.0:
            raise ValueError(f"need noise >= 0, latency >= 0, 0 <= hesitation < 1; got {noise}, {latency}, {hesitation}")
        self.noise, self.latency, self.hesitation = float(noise), int(latency), float(hesitation)
        self.name = name
        self._rng = np.random.default_rng(0)
        self._ctx: EpisodeContext | None = None

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0xE4]))
        self._ctx = None

    def start_episode(self, context: EpisodeContext) -> None:
        if context.layout is None or context.task_obj is None:
            raise PolicyError(f"policy {self.name!r} needs the scene layout (needs.privileged)")
        self._ctx = context
        self._task = context.task_obj
        self._layout0 = context.layout
        self._fps = int(context.fps)
        self._ik = PandaIK()
        self._ik.reset(HOME_QPOS)
        self._clock = 0  # program frames executed (stalls while hesitating)
        self._frozen: set[str] = set()
        self._moved: dict[str, tuple[float, float, float]] = {}  # name -> re-targeted (x, y, yaw)
        self._q0: dict[str, np.ndarray] = {}
        self._key: tuple | None = None
        self._program = self._task.expert_program(self._layout0)
        self._noise = np.zeros(7)
        self._queue: deque[np.ndarray] = deque()
        self._last = np.concatenate([HOME_QPOS, [0.0]])
        self._objects = {o.name: o for o in self._layout0.objects if o.free}

    # ------------------------------------------------------------------ re-targeting
    def _retarget(self, obs: dict[str, Any]) -> None:
        names = self._layout0.tracked
        poses = np.asarray(obs["objects"], np.float64).reshape(-1, 7)
        tcp = np.asarray(obs["tcp_pos"], np.float64)
        for name, pose in zip(names, poses):
            spec = self._objects.get(name)
            if spec is None:
                continue
            self._q0.setdefault(name, pose[3:].copy())
            if name in self._frozen:
                continue  # keeps the pose it was last re-targeted to (if any)
            if np.linalg.norm(pose[:3] - tcp) < FREEZE_M:
                self._frozen.add(name)
                continue
            dxy = float(np.linalg.norm(pose[:2] - np.asarray(spec.pos[:2])))
            dyaw = _yaw_delta(self._q0[name], pose[3:])
            if dxy > RETARGET_M or abs(dyaw) > RETARGET_RAD:
                self._moved[name] = (float(pose[0]), float(pose[1]), spec.yaw + dyaw)
            else:
                self._moved.pop(name, None)
        moved = sorted(self._moved.items())
        key = tuple(moved)
        if key == self._key:
            return
        self._key = key
        if not moved:
            self._program = self._task.expert_program(self._layout0)
            return
        layout = copy.copy(self._layout0)
        now = dict(moved)
        layout.objects = [
            replace(o, pos=(now[o.name][0], now[o.name][1], o.pos[2]), yaw=now[o.name][2]) if o.name in now else o
            for o in self._layout0.objects
        ]
        self._program = self._task.expert_program(layout)

    # ------------------------------------------------------------------ acting
    def act(self, observation: dict[str, Any]) -> np.ndarray:
        if self._ctx is None:
            raise PolicyError(f"policy {self.name!r}: act() before start_episode()")
        self._retarget(observation)
        if self.hesitation > 0.0 and self._rng.random() < self.hesitation:
            command = self._last.copy()  # hold: the program clock stalls
        else:
            f = self._clock + 1
            t = f / self._fps
            pos, quat = self._program.pose_at(t)
            arm = self._ik.solve(pos, quat)
            command = np.concatenate([arm, [self._program.grip_at(t - 1.0 / self._fps)]])
            self._clock = f
            self._last = command.copy()
        if self.noise > 0.0:
            a = NOISE_CORRELATION
            self._noise = a * self._noise + np.sqrt(1.0 - a * a) * self.noise * self._rng.standard_normal(7)
            command = command.copy()
            command[:7] = command[:7] + self._noise
        command = np.clip(command, self._ctx.action_low, self._ctx.action_high)
        if self.latency:
            self._queue.append(command)
            if len(self._queue) <= self.latency:
                return np.concatenate([HOME_QPOS, [0.0]])
            return self._queue.popleft()
        return command


@register_policy("expert")
def make_expert() -> ExpertPolicy:
    """The scripted expert as a closed-loop policy (no noise)."""
    return ExpertPolicy()


#: ``level=1`` defaults of ``noisy_expert``: actuation noise [rad], latency [frames], hesitation.
NOISY_DEFAULTS = {"noise": 0.02, "latency": 1, "hesitation": 0.1}


@register_policy("noisy_expert")
def make_noisy_expert(level: float = 1.0, noise: float | None = None, latency: int | None = None,
                      hesitation: float | None = None) -> ExpertPolicy:
    """The expert with actuation noise, latency and hesitation, scaled by ``level``."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    d = NOISY_DEFAULTS
    return ExpertPolicy(
        noise=d["noise"] * level if noise is None else noise,
        latency=int(round(d["latency"] * level)) if latency is None else latency,
        hesitation=min(0.9, d["hesitation"] * level) if hesitation is None else hesitation,
        name="noisy_expert",
    )
