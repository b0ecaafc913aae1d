"""Run programs on the simulation core, frame by frame, and branch counterfactuals.

:func:`run_program` executes a :class:`~simfail.core.program.Program`: at frame ``f`` it asks the
program for the TCP pose at time ``(f + 1) / fps``, solves IK for it, and steps the core with
the resulting joint targets and gripper command. Because the program is open-loop, two
programs that agree up to time ``t_on`` issue identical actions for every step ending at or
before ``t_on``; a variant therefore starts from the expert's saved snapshot at frame
``floor(t_on * fps)`` (simulator state *and* IK warm start) and is bit-identical to the expert
up to that frame. ``tests/test_determinism.py`` checks this against a full replay.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from simfail.core.program import Program
from simfail.core.robot import PandaIK
from simfail.core.runner import FrameRecorder, RunnerState
from simfail.core.sim import SimCore
from simfail.labels.trace import Trace


@dataclass
class Snapshot:
    """Everything needed to continue a rollout from a frame exactly."""

    sim_state: np.ndarray
    ik_q: np.ndarray


@dataclass
class RolloutResult:
    trace: Trace
    snapshots: list[Snapshot] = field(default_factory=list)


def frame_count(duration: float, fps: int) -> int:
    """Frames of an episode of ``duration`` seconds, including frame 0."""
    return int(round(duration * fps)) + 1


def onset_frame(t_on: float, fps: int) -> int:
    """Last frame shared with the expert when a program changes from time ``t_on`` on."""
    return max(0, int(math.floor(t_on * fps + 1e-9)))


def run_program(
    core: SimCore | FrameRecorder,
    ik: PandaIK,
    program: Program,
    n_frames: int,
    *,
    start: RolloutResult | None = None,
    start_frame: int = 0,
    keep_snapshots: bool = True,
) -> RolloutResult:
    """Execute ``program`` for ``n_frames`` frames on the runner (or a bare core).

    Args:
        core: The :class:`~simfail.core.runner.SceneRunner` (or a bare ``SimCore``, wrapped in
            a :class:`~simfail.core.runner.FrameRecorder`), already reset to the initial state
            (ignored when ``start`` is given).
        ik: IK solver, already reset to the home pose (ignored when ``start`` is given).
        program: Program to execute.
        n_frames: Total frames of the episode (including frame 0).
        start: A previous rollout to branch from; frames ``0..start_frame`` are copied from it.
        start_frame: Frame of ``start`` to continue from.
        keep_snapshots: Save a snapshot at every frame (needed to branch from this rollout).
    """
    rec = core if isinstance(core, FrameRecorder) else FrameRecorder(core)
    sim = rec.core
    fps = sim.fps
    if start is None:
        action0 = np.concatenate([ik.arm_q, [program.grip_at(0.0)]])
        result = RolloutResult(rec.start(action0, program.phase_at(0.0)))
        if keep_snapshots:
            result.snapshots.append(Snapshot(sim.get_state(), ik.configuration.q.copy()))
        first = 1
    else:
        snap = start.snapshots[start_frame]
        rec.restore(RunnerState(snap.sim_state, start_frame + 1), start.trace)
        ik.configuration.update(snap.ik_q.copy())
        result = RolloutResult(rec.trace)
        if keep_snapshots:
            result.snapshots = list(start.snapshots[: start_frame + 1])
        first = start_frame + 1
    for f in range(first, n_frames):
        t = f / fps
        pos, quat = program.pose_at(t)
        arm_q = ik.solve(pos, quat)
        action = np.concatenate([arm_q, [program.grip_at(t - 1.0 / fps)]])
        rec.step(action, program.phase_at(t - 1.0 / fps))
        if keep_snapshots:
            result.snapshots.append(Snapshot(sim.get_state(), ik.configuration.q.copy()))
    return result
