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

Re-grasping (docs/recovery.md). Where the program expects an object held (from
:data:`HOLD_CHECK_S` after a segment that closes the gripper within :data:`GRASP_ASSOC_M` of a
free object, until the next segment that opens it: :func:`grasp_windows`), every observation
checks it is: the fingers are at least :data:`MIN_FINGER_GAP_M` apart and the TCP-object
distance is within :data:`SLIP_M` of the closing keyframe's. When it is not (dropped in the
carry, knocked out of the fingers, an offset grasp that missed), once the object lies still
(:data:`REST_SPEED`) and unless it already lies within :data:`PLACED_M` of where the program sets
it down, the policy goes back: the program restarts at that grasp's approach moves, rebuilt for
the object's current pose (position, height, yaw of its most horizontal axis) from the current
TCP pose, as fast as needed to end :data:`RETRY_SETTLE_S` before the episode does (never faster
than :data:`RETRY_TIME_SCALE` x the expert's moves); the object is followed through the
approach. At most ``max_retries`` (:data:`MAX_RETRIES`) re-grasps per episode; ``regrasps``
lists them (frame, object, why). A policy that takes over mid-episode (a closed-loop
continuation, ``EpisodeContext.start_frame``) resumes its program clock at that frame and
warm-starts its IK from the command in force.

``noisy_expert``: the same policy with closed-loop actuation noise (temporally correlated
Gaussian noise on the joint targets [rad]), latency (the command executed is the one computed
``latency`` frames earlier) and hesitation (with probability ``hesitation`` per step the arm
holds its last command and the program clock stalls for that frame). ``level`` scales all three
from their defaults (``level=1``: 0.02 rad, 1 frame, 0.1); explicit values override.
"""

from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

import mujoco
import numpy as np

from simfail.core.program import Program
from simfail.core.robot import HOME_QPOS, PandaIK, topdown_quat
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
#: A closing keyframe within this distance [m] of a free object's origin grasps that object.
GRASP_ASSOC_M = 0.08
#: Delay [s] after a closing segment ends before the hold is first checked (fingers settled).
HOLD_CHECK_S = 0.1
#: Finger opening [m] (both fingers) below which the gripper closed on nothing.
MIN_FINGER_GAP_M = 0.004
#: Change [m] of the TCP-object distance, from the grasp's reach, that means "not in the hand".
SLIP_M = 0.03
#: An object this close [m, horizontally] to where the program releases it is not re-grasped.
PLACED_M = 0.06
#: Speed [m/s] under which a dropped object lies still (a re-grasp waits for it).
REST_SPEED = 0.05
#: Re-grasps per episode.
MAX_RETRIES = 2
#: Fastest re-grasp: its moves' durations as a fraction of the expert's (when time is short).
RETRY_TIME_SCALE = 0.6
#: Time [s] a re-grasp leaves, between its release and the episode's end, for the object to settle.
RETRY_SETTLE_S = 0.5
#: Shortest move [s] of a re-grasp program.
MIN_SEGMENT_S = 0.3
#: Shortest move [s] of a re-grasp program that closes or opens the gripper.
MIN_GRIP_S = 0.4


def _rot(q: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q, float) / max(float(np.linalg.norm(q)), 1e-12))
    return m.reshape(3, 3)


def _yaw_delta(q0: np.ndarray, q1: np.ndarray) -> float:
    """Rotation about world z [rad] that takes orientation ``q0`` to ``q1`` (wxyz)."""
    r = _rot(q1) @ _rot(q0).T
    return float(np.arctan2(r[1, 0], r[0, 0]))


@dataclass(frozen=True)
class GraspWindow:
    """Where a program expects an object held: from ``start`` to ``end`` [s, program time].

    ``index`` is the program's closing segment, ``first`` the first segment of the open-gripper
    moves that lead to it (its approach), ``reach`` the distance [m] between the closing
    keyframe and the object's origin (the TCP-object distance while it is held)."""

    obj: str
    index: int
    first: int
    start: float
    end: float
    reach: float


def grasp_windows(program: Program, layout: Any, objects: set[str]) -> list[GraspWindow]:
    """The grasps of ``program``: every segment whose gripper command rises above 0.5 with its
    keyframe within :data:`GRASP_ASSOC_M` of a free tracked object of ``objects`` (the nearest
    one is the object grasped). A closing far from every free object (a drawer handle, a
    fixture) is not checked."""
    out = []
    segs = program.segments
    t = 0.0
    starts = []
    for s in segs:
        starts.append(t)
        t += s.duration
    for g, s in enumerate(segs):
        if not (s.grip > 0.5 and (g == 0 or segs[g - 1].grip <= 0.5)):
            continue
        cands = sorted((float(np.linalg.norm(np.asarray(o.pos, float) - np.asarray(s.pos, float))), o.name)
                       for o in layout.objects if o.name in objects)
        if not cands or cands[0][0] > GRASP_ASSOC_M:
            continue
        first = g
        while first > 0 and segs[first - 1].grip <= 0.5:
            first -= 1
        rel = next((k for k in range(g + 1, len(segs)) if segs[k].grip <= 0.5), len(segs))
        end = starts[rel] if rel < len(segs) else float("inf")
        out.append(GraspWindow(cands[0][1], g, first, starts[g] + s.duration + HOLD_CHECK_S, end, cands[0][0]))
    return out


def _changes_grip(segs: list, i: int, grip0: float) -> bool:
    """Whether move ``i`` changes the gripper command from the move before it."""
    before = segs[i - 1].grip if i else grip0
    return (segs[i].grip > 0.5) != (before > 0.5)


def _plane_yaw(q: np.ndarray) -> float:
    """Heading [rad] of the most horizontal body axis of orientation ``q`` (wxyz): the yaw a
    top-down grasp aligns with, for an object lying on any of its faces."""
    r = _rot(q)
    j = int(np.argmin(np.abs(r[2])))
    return float(np.arctan2(r[1, j], r[0, j]))


@dataclass
class _Retry:
    """A re-grasp in progress: the program restarts at segment ``first`` at clock ``t0``
    [frames] from the TCP pose ``pos``/``quat``; ``obj`` is re-targeted every step until
    program time ``chase_until`` [s] (the start of its closing segment)."""

    obj: str
    first: int
    t0: int
    pos: np.ndarray
    quat: np.ndarray
    chase_until: float
    scale: float = 1.0
    #: gripper command before the re-grasp program's first move
    grip0: float = 0.0


class ExpertPolicy:
    """The task's scripted expert, re-targeted to the objects' current poses every step, and
    re-grasping an object that is not in the hand where the program expects it held (module
    docstring).

    Args:
        noise: Standard deviation [rad] of the actuation noise on each joint target.
        latency: Frames between computing a command and executing it.
        hesitation: Probability per step of holding the last command (the clock stalls).
        name: Display name.
        max_retries: Re-grasps allowed per episode (0: never go back).
    """

    needs = PolicyNeeds(privileged=True)

    def __init__(self, noise: float = 0.0, latency: int = 0, hesitation: float = 0.0, name: str = "expert",
                 max_retries: int = MAX_RETRIES):
        if noise < 0 or latency < 0 or not 0.0 <= hesitation < 1.0 or max_retries < 0:
            raise ValueError(f"need noise >= 0, latency >= 0, 0 <= hesitation < 1, max_retries >= 0; got {noise}, "
                             f"{latency}, {hesitation}, {max_retries}")
        self.noise, self.latency, self.hesitation = float(noise), int(latency), float(hesitation)
        self.max_retries = int(max_retries)
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
        start = context.start_action
        last = np.concatenate([HOME_QPOS, [0.0]]) if start is None else np.asarray(start, np.float64).copy()
        if start is not None:  # a continuation: IK warm-starts from the command in force
            self._ik.warm_start(last[:7])
        self._clock = int(context.start_frame)  # program frames executed (stalls while hesitating)
        self._frozen: set[str] = set()
        # name -> re-targeted (x, y, yaw, z); z is None (the layout's height) except for an
        # object being re-grasped, which is taken where it lies (on a tower, in a bowl ...)
        self._moved: dict[str, tuple[float, float, float, float | None]] = {}
        self._q0: dict[str, np.ndarray] = {}
        self._key: tuple | None = None
        self._retry: _Retry | None = None
        self.retries = 0
        #: the program phase of the last command (the rollout's phase label, as run_program's)
        self.phase = ""
        #: ``(frame observed, object, why)`` of every re-grasp started this episode
        self.regrasps: list[tuple[int, str, str]] = []
        self._noise = np.zeros(7)
        self._queue: deque[np.ndarray] = deque()
        self._last = last
        self._last_quat = topdown_quat(0.0)
        self._objects = {o.name: o for o in self._layout0.objects if o.free}
        self._pos: dict[str, np.ndarray] = {}  # object positions at the last observation [m]
        self._prev_pos: dict[str, np.ndarray] = {}
        self._build()

    # ------------------------------------------------------------------ programs
    def _layout_now(self) -> Any:
        if not self._moved:
            return self._layout0
        layout = copy.copy(self._layout0)
        now = self._moved
        layout.objects = [
            replace(o, pos=(now[o.name][0], now[o.name][1], o.pos[2] if now[o.name][3] is None else now[o.name][3]),
                    yaw=now[o.name][2]) if o.name in now else o
            for o in self._layout0.objects
        ]
        return layout

    def _build(self) -> None:
        """The active program: the expert program on the current layout, or the re-grasp
        program cut from it (segments from the retried grasp's approach on, the final hold
        left out, durations scaled by the re-grasp's ``scale``), and its grasp windows."""
        layout = self._layout_now()
        program = self._task.expert_program(layout)
        r = self._retry
        if r is not None:
            segs = program.segments[r.first:]
            if len(segs) > 1 and segs[-1].phase == "hold":
                segs = segs[:-1]
            # a move that closes or opens the gripper gets at least MIN_GRIP_S (the fingers need it)
            segs = [replace(s, duration=max(MIN_GRIP_S if _changes_grip(segs, i, r.grip0) else MIN_SEGMENT_S,
                                            s.duration * r.scale)) for i, s in enumerate(segs)]
            program = Program(start_pos=r.pos, start_quat=r.quat, segments=segs)
        self._program = program
        self._windows = grasp_windows(program, layout, set(self._objects) & set(self._layout0.tracked))

    def _t0(self) -> int:
        return 0 if self._retry is None else self._retry.t0

    # ------------------------------------------------------------------ re-targeting
    def _retarget(self, obs: dict[str, Any]) -> None:
        names = self._layout0.tracked
        poses = np.asarray(obs["objects"], np.float64).reshape(-1, 7)
        self._prev_pos, self._pos = self._pos, {n: p[:3].copy() for n, p in zip(names, poses)}
        tcp = np.asarray(obs["tcp_pos"], np.float64)
        r = self._retry
        chase = r.obj if r is not None and (self._clock + 1 - r.t0) / self._fps < r.chase_until else None
        for name, pose in zip(names, poses):
            spec = self._objects.get(name)
            if spec is None:
                continue
            self._q0.setdefault(name, pose[3:].copy())
            if name == chase:  # the object being re-grasped follows its pose until the hand closes on it
                dyaw = float(np.angle(np.exp(1j * (_plane_yaw(pose[3:]) - _plane_yaw(self._q0[name])))))
                self._moved[name] = (float(pose[0]), float(pose[1]), spec.yaw + dyaw, float(pose[2]))
                continue
            if name in self._frozen or (r is not None and name == r.obj):
                continue  # keeps the pose it was last re-targeted to (if any)
            if np.linalg.norm(pose[:3] - tcp) < FREEZE_M:
                self._frozen.add(name)
                continue
            dxy = float(np.linalg.norm(pose[:2] - np.asarray(spec.pos[:2])))
            dyaw = _yaw_delta(self._q0[name], pose[3:])
            if dxy > RETARGET_M or abs(dyaw) > RETARGET_RAD:
                self._moved[name] = (float(pose[0]), float(pose[1]), spec.yaw + dyaw, None)
            else:
                self._moved.pop(name, None)
        key = tuple(sorted(self._moved.items()))
        if key == self._key:
            return
        self._key = key
        self._build()

    # ------------------------------------------------------------------ re-grasping
    def _not_held(self, obs: dict[str, Any], w: GraspWindow) -> str | None:
        """Why ``w.obj`` is not in the hand (None: it is): the fingers closed on nothing, or
        the object's origin is not at the grasp's reach from the TCP (within :data:`SLIP_M`)."""
        names = self._layout0.tracked
        pose = np.asarray(obs["objects"], np.float64).reshape(-1, 7)[names.index(w.obj)]
        tcp = np.asarray(obs["tcp_pos"], np.float64)
        state = np.asarray(obs["state"], np.float64)
        gap = float(state[7] + state[8])
        dist = float(np.linalg.norm(pose[:3] - tcp))
        if gap < MIN_FINGER_GAP_M:
            return f"the fingers closed on nothing ({gap * 1000:.1f} mm apart)"
        if abs(dist - w.reach) > SLIP_M:
            return f"it is {dist * 100:.1f} cm from the TCP, {w.reach * 100:.1f} cm expected"
        return None

    def _moving(self, obs: dict[str, Any], name: str) -> bool:
        """Whether ``name`` moved faster than :data:`REST_SPEED` since the last observation (a
        falling object is judged once it lies still)."""
        names = self._layout0.tracked
        pos = np.asarray(obs["objects"], np.float64).reshape(-1, 7)[names.index(name), :3]
        prev = self._prev_pos.get(name)
        return prev is None or float(np.linalg.norm(pos - prev)) * self._fps > REST_SPEED

    def _placed(self, obs: dict[str, Any], w: GraspWindow) -> bool:
        """Whether ``w.obj`` already lies where the program sets it down: within
        :data:`PLACED_M` (horizontally) of the keyframe of the move that releases it, when that
        is not where it was taken from."""
        segs = self._program.segments
        rel = next((k for k in range(w.index + 1, len(segs)) if segs[k].grip <= 0.5), None)
        if rel is None:  # never released
            return False
        put = np.asarray(segs[rel].pos, float)[:2]
        if float(np.linalg.norm(put - np.asarray(self._objects[w.obj].pos, float)[:2])) < 2 * PLACED_M:
            return False  # put back where it was taken (a tool, a cup): its goal is not a place
        names = self._layout0.tracked
        pose = np.asarray(obs["objects"], np.float64).reshape(-1, 7)[names.index(w.obj)]
        return float(np.linalg.norm(pose[:2] - put)) < PLACED_M

    def _check_grasp(self, obs: dict[str, Any], f: int) -> None:
        """Start a re-grasp when the program expects an object held at the observed frame
        ``f - 1`` and it is not (at most ``max_retries`` per episode)."""
        if self.retries >= self.max_retries:
            return
        t_obs = (f - 1 - self._t0()) / self._fps
        w = next((w for w in self._windows if w.start <= t_obs < w.end), None)
        if w is None:
            return
        why = self._not_held(obs, w)
        if why is None or self._moving(obs, w.obj) or self._placed(obs, w):
            return
        self.retries += 1
        self.regrasps.append((f - 1, w.obj, why))
        pos = np.asarray(obs["tcp_pos"], np.float64)
        first = w.first + (self._retry.first if self._retry is not None else 0)
        index = w.index + (self._retry.first if self._retry is not None else 0)
        self._retry = _Retry(w.obj, first, f - 1, pos, self._last_quat.copy(), 0.0, grip0=float(self._last[7]))
        # as fast as needed to finish (and settle) before the episode ends, never faster than
        # RETRY_TIME_SCALE x the expert's moves
        segs = self._task.expert_program(self._layout_now()).segments[first:]
        # the time needed: up to the end of the last move that opens the gripper (the retreat
        # after it may be cut off by the episode's end)
        opens = [i for i in range(1, len(segs)) if segs[i].grip <= 0.5 < segs[i - 1].grip]
        if opens:
            end = opens[-1] + 1
        else:
            end = len(segs) - 1 if len(segs) > 1 and segs[-1].phase == "hold" else len(segs)
        need = sum(s.duration for s in segs[:end])
        left = (self._ctx.n_frames - f) / self._fps - RETRY_SETTLE_S
        self._retry.scale = float(np.clip(left / max(need, 1e-6), RETRY_TIME_SCALE, 1.0))
        self._build()
        # the object is followed through the approach moves (all but the last open move)
        self._retry.chase_until = sum(s.duration for s in self._program.segments[:max(index - first - 1, 1)])
        self._frozen.discard(w.obj)
        self._key = None
        self._retarget(obs)

    # ------------------------------------------------------------------ acting
    def act(self, observation: dict[str, Any]) -> np.ndarray:
        if self._ctx is None:
            raise PolicyError(f"policy {self.name!r}: act() before start_episode()")
        self._retarget(observation)
        if self.hesitation > 0.0 and self._rng.random() < self.hesitation:
            command = self._last.copy()  # hold: the program clock stalls
        else:
            f = self._clock + 1
            self._check_grasp(observation, f)
            t = (f - self._t0()) / self._fps
            pos, quat = self._program.pose_at(t)
            arm = self._ik.solve(pos, quat)
            command = np.concatenate([arm, [self._program.grip_at(t - 1.0 / self._fps)]])
            self.phase = self._program.phase_at(t - 1.0 / self._fps)
            self._clock = f
            self._last = command.copy()
            self._last_quat = np.asarray(quat, np.float64)
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
def make_expert(max_retries: int = MAX_RETRIES) -> ExpertPolicy:
    """The scripted expert as a closed-loop policy (no noise); ``max_retries`` re-grasps."""
    return ExpertPolicy(max_retries=max_retries)


#: ``level=1`` defaults of ``noisy_expert``: actuation noise [rad], latency [frames], hesitation.
NOISY_DEFAULTS = {"noise": 0.02, "latency": 1, "hesitation": 0.1}


@register_policy("noisy_expert")
def make_noisy_expert(level: float = 1.0, noise: float | None = None, latency: int | None = None,
                      hesitation: float | None = None, max_retries: int = MAX_RETRIES) -> ExpertPolicy:
    """The expert with actuation noise, latency and hesitation, scaled by ``level``."""
    if level < 0:
        raise ValueError(f"level must be >= 0, got {level}")
    d = NOISY_DEFAULTS
    return ExpertPolicy(
        noise=d["noise"] * level if noise is None else noise,
        latency=int(round(d["latency"] * level)) if latency is None else latency,
        hesitation=min(0.9, d["hesitation"] * level) if hesitation is None else hesitation,
        name="noisy_expert", max_retries=max_retries,
    )
