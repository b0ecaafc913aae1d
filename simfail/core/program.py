"""Expert programs: timed sequences of TCP keyframes, sampled into joint targets.

A :class:`Program` is a list of :class:`Segment` s. Each segment moves the tool centre point
(TCP) from the pose at the end of the previous segment to its own keyframe over ``duration``
seconds with a minimum-jerk time law, while the gripper command holds ``grip`` (0 = open,
1 = closed). Keyframes are computed relative to objects by the task (``pos`` is world frame,
metres; ``yaw`` radians about world z for a top-down tool, or a full ``quat`` (w, x, y, z)).

Perturbations edit programs (insert, move or retime keyframes, change the gripper command)
from an onset time on; everything before the onset is left untouched, which is what makes a
counterfactual variant identical to its expert up to the onset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simfail.core.robot import topdown_quat


@dataclass
class Segment:
    """One move of the program.

    Attributes:
        phase: Name of the phase this move belongs to ("approach", "grasp", "lift" ...).
        pos: Keyframe TCP position, world frame [m].
        yaw: TCP yaw about world z [rad] for a top-down orientation (ignored if ``quat`` set).
        duration: Seconds to reach the keyframe.
        grip: Gripper command during the segment, 0 (open) .. 1 (closed).
        quat: Optional full TCP orientation (w, x, y, z), world frame.
        jitter: Optional lateral oscillation added on top of the path: (amplitude [m], frequency [Hz]).
    """

    phase: str
    pos: np.ndarray
    yaw: float
    duration: float
    grip: float
    quat: np.ndarray | None = None
    jitter: tuple[float, float] | None = None

    def orientation(self) -> np.ndarray:
        return np.asarray(self.quat, float) if self.quat is not None else topdown_quat(self.yaw)


@dataclass
class Program:
    """A start pose and a list of segments. Times are seconds from the episode start.

    A *branched* program (see :meth:`branch`) follows ``base`` exactly up to ``t_branch`` and
    its own segments afterwards (starting from the base's pose at ``t_branch``); with
    ``grip_override`` set it keeps the base's path but replaces the gripper command after
    ``t_branch``. This makes "identical to the expert until the onset" true by construction.
    """

    start_pos: np.ndarray
    start_quat: np.ndarray
    segments: list[Segment] = field(default_factory=list)
    base: Program | None = None
    t_branch: float = 0.0
    grip_override: float | None = None

    def branch(self, t_on: float, segments: list[Segment] | None = None, grip: float | None = None) -> Program:
        """A program equal to this one for ``t <= t_on`` and changed afterwards.

        Args:
            t_on: Onset time [s].
            segments: New moves from ``t_on`` on (start pose = this program's pose at ``t_on``).
                ``None`` keeps this program's path.
            grip: If given, the gripper command after ``t_on``.
        """
        pos, quat = self.pose_at(t_on)
        return Program(start_pos=pos, start_quat=quat, segments=list(segments or []), base=self,
                       t_branch=float(t_on), grip_override=grip)

    def _own(self, t: float) -> bool:
        """True when time ``t`` is governed by this program's own segments (not the base)."""
        return self.base is None or (t > self.t_branch and bool(self.segments))

    @property
    def duration(self) -> float:
        own = float(sum(s.duration for s in self.segments))
        if self.base is None:
            return own
        return self.t_branch + own if self.segments else self.base.duration

    def phase_times(self) -> dict[str, tuple[float, float]]:
        """``{phase: (start, end)}`` in seconds (first and last occurrence of each phase)."""
        out: dict[str, tuple[float, float]] = {}
        t = 0.0
        for s in self.segments:
            start, end = t, t + s.duration
            if s.phase in out:
                out[s.phase] = (out[s.phase][0], end)
            else:
                out[s.phase] = (start, end)
            t = end
        return out

    def index_of(self, phase: str) -> int:
        for i, s in enumerate(self.segments):
            if s.phase == phase:
                return i
        raise KeyError(f"program has no phase {phase!r}; phases: {[s.phase for s in self.segments]}")

    def start_of(self, index: int) -> float:
        return float(sum(s.duration for s in self.segments[:index]))

    def pose_at(self, t: float) -> tuple[np.ndarray, np.ndarray]:
        """TCP (position, quaternion wxyz) commanded at time ``t`` (clamped to the program)."""
        if not self._own(t):
            return self.base.pose_at(t)
        if self.base is not None:
            t = t - self.t_branch
        prev_pos, prev_q = np.asarray(self.start_pos, float), np.asarray(self.start_quat, float)
        acc = 0.0
        for s in self.segments:
            goal_q = s.orientation()
            if t <= acc + s.duration or s is self.segments[-1]:
                u = 1.0 if s.duration <= 0 else float(np.clip((t - acc) / s.duration, 0.0, 1.0))
                w = min_jerk(u)
                pos = prev_pos + w * (np.asarray(s.pos, float) - prev_pos)
                if s.jitter is not None and 0.0 < u < 1.0:
                    amp, freq = s.jitter
                    env = np.sin(np.pi * u)  # fades in and out so keyframes are still met
                    tt = t - acc
                    pos = pos + amp * env * np.array([np.sin(2 * np.pi * freq * tt), np.cos(2 * np.pi * freq * 1.3 * tt), 0.3 * np.sin(2 * np.pi * freq * 0.7 * tt)])
                quat = slerp_wxyz(prev_q, goal_q, w)
                return pos, quat
            prev_pos, prev_q = np.asarray(s.pos, float), goal_q
            acc += s.duration
        return prev_pos, prev_q

    def grip_at(self, t: float) -> float:
        if self.base is not None and t >= self.t_branch and self.grip_override is not None:
            return float(self.grip_override)
        if not self._own(t):
            return self.base.grip_at(t)
        if self.base is not None:
            t = t - self.t_branch
        acc = 0.0
        for s in self.segments:
            if t < acc + s.duration:
                return float(s.grip)
            acc += s.duration
        return float(self.segments[-1].grip) if self.segments else 0.0

    def phase_at(self, t: float) -> str:
        if not self._own(t):
            return self.base.phase_at(t)
        if self.base is not None:
            t = t - self.t_branch
        acc = 0.0
        for s in self.segments:
            if t < acc + s.duration:
                return s.phase
            acc += s.duration
        return self.segments[-1].phase if self.segments else ""


def min_jerk(u: float) -> float:
    """Minimum-jerk time law on [0, 1]: 10u^3 - 15u^4 + 6u^5."""
    return u * u * u * (10.0 - 15.0 * u + 6.0 * u * u)


def slerp_wxyz(q0: np.ndarray, q1: np.ndarray, w: float) -> np.ndarray:
    if np.allclose(q0, q1) or w <= 0.0:
        return np.asarray(q0 if w < 1.0 else q1, float)
    if w >= 1.0:
        return np.asarray(q1, float)
    q0 = np.asarray(q0, float) / np.linalg.norm(q0)
    q1 = np.asarray(q1, float) / np.linalg.norm(q1)
    dot = float(np.dot(q0, q1))
    if dot < 0.0:  # the shorter arc: q and -q are the same rotation
        q1, dot = -q1, -dot
    if dot > 0.9995:  # nearly parallel: normalized lerp is exact to ~1e-7
        q = q0 + w * (q1 - q0)
        return q / np.linalg.norm(q)
    theta = np.arccos(dot)
    return (np.sin((1.0 - w) * theta) * q0 + np.sin(w * theta) * q1) / np.sin(theta)
