"""What a counterfactual changes from its onset on: the commands, and the world.

An :class:`Edit` is applied by :func:`simfail.counterfactual.replay.branch`: the variant
restores its source's state at frame ``onset`` (the last frame shared with the source), then
for every step ``f >= onset`` (step ``f`` drives frame ``f`` -> ``f + 1``) asks the edit for the
command (:meth:`Edit.action`) and lets it disturb the world (:meth:`Edit.world`, e.g. an
external force on an object body). ``end`` is the last step the operator itself acts: in the
``closed_loop`` continuation a policy takes over at step ``end + 1``; in ``open_loop`` the edit
keeps answering (usually the rest of the source's commands, as the operator left them).

Commands are ``(8,)`` float64: seven arm joint position targets [rad] and the gripper close
command in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from simfail.core.program import Program
    from simfail.core.robot import PandaIK
    from simfail.core.sim import SimCore
    from simfail.counterfactual.source import SourceEpisode


@dataclass
class Edit:
    """Base edit: from ``onset`` on, replay the source's commands unchanged.

    Attributes:
        onset: Frame ``k``: the last frame shared with the source (its state is restored).
        end: Last step the operator acts (``>= onset``).
        params: JSON-able parameters recorded in ``simfail.perturbation``.
    """

    onset: int
    end: int
    params: dict[str, Any] = field(default_factory=dict)

    def begin(self, source: SourceEpisode, core: SimCore) -> None:
        """Called once after the source's state at ``onset`` is restored (reset own state)."""

    def action(self, f: int, source: SourceEpisode, core: SimCore) -> np.ndarray:
        """The command of step ``f`` (``f >= onset``): by default the source's own (its last
        command is held past the source's end)."""
        return source.actions[min(f, len(source.actions) - 1)].copy()

    def world(self, f: int, core: SimCore) -> None:
        """Disturb the world before step ``f`` (default: nothing). An edit that sets a force
        clears it itself once its window is over."""

    def phase(self, f: int, source: SourceEpisode) -> str:
        """Phase label of frame ``f + 1`` (the frame step ``f`` leads to): the source's."""
        return source.trace.phase[min(f + 1, source.n_frames - 1)]

    def ik_state(self) -> np.ndarray | None:
        """The IK warm start to save with each frame's state (``None``: the edit uses no IK)."""
        return None


@dataclass
class CommandEdit(Edit):
    """An edit given as a precomputed command per step from the onset on.

    ``commands[i]`` is the command of step ``onset + i``; past its end the last one is held.
    ``phases[i]`` (optional) labels frame ``onset + i + 1``; otherwise the source's labels.
    """

    commands: np.ndarray = field(default_factory=lambda: np.zeros((0, 8)))
    phases: list[str] | None = None

    def action(self, f: int, source: SourceEpisode, core: SimCore) -> np.ndarray:
        i = f - self.onset
        if len(self.commands) == 0:
            return super().action(f, source, core)
        return self.commands[min(i, len(self.commands) - 1)].copy()

    def phase(self, f: int, source: SourceEpisode) -> str:
        if self.phases:
            return self.phases[min(f - self.onset, len(self.phases) - 1)]
        return super().phase(f, source)


@dataclass
class ForceEdit(CommandEdit):
    """A :class:`CommandEdit` that also applies an external force to one body.

    ``force`` [N] (world frame, at the body's centre of mass) acts on ``body_id`` during steps
    ``force_first .. force_last`` (through ``data.xfrc_applied``, which is part of the saved
    simulator state) and is cleared afterwards.
    """

    body_id: int = -1
    force: np.ndarray = field(default_factory=lambda: np.zeros(3))
    force_first: int = 0
    force_last: int = -1

    def world(self, f: int, core: SimCore) -> None:
        xfrc = core.data.xfrc_applied[self.body_id]
        if self.force_first <= f <= self.force_last:
            xfrc[:3] = self.force
            xfrc[3:] = 0.0
        elif f == self.force_last + 1:
            xfrc[:] = 0.0


@dataclass
class ProgramEdit(Edit):
    """A keyframe :class:`~simfail.core.program.Program` (a task perturbation's edited
    program) executed through the IK from the onset on, exactly as
    :func:`~simfail.core.rollout.run_program` does: step ``f`` commands the IK solution of the
    program's pose at ``(f + 1) / fps`` and its gripper at ``f / fps``; the IK warm start is
    restored from the source's snapshot at the onset. Its frames are bit-identical to
    ``run_program(start=expert, start_frame=onset)``."""

    program: Program | None = None
    ik: PandaIK | None = None

    def begin(self, source: SourceEpisode, core: SimCore) -> None:
        ik_q = source.states[self.onset].ik_q
        if ik_q is None:
            raise ValueError("a program edit needs a source with IK warm starts (the scripted expert)")
        self.ik.configuration.update(np.array(ik_q, copy=True))

    def action(self, f: int, source: SourceEpisode, core: SimCore) -> np.ndarray:
        fps = source.fps
        t = (f + 1) / fps
        pos, quat = self.program.pose_at(t)
        arm_q = self.ik.solve(pos, quat)
        return np.concatenate([arm_q, [self.program.grip_at(t - 1.0 / fps)]])

    def phase(self, f: int, source: SourceEpisode) -> str:
        fps = source.fps
        return self.program.phase_at((f + 1) / fps - 1.0 / fps)

    def ik_state(self) -> np.ndarray:
        return self.ik.configuration.q.copy()
