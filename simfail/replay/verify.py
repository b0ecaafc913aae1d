"""Replay one demo on the scene runner and check it against the demo's recorded ``sim.qpos``.

The runner loads the demo's (task, scene seed) scene at rest (robot home, gripper open: the
state every simfail episode starts from), opens a trace at frame 0 and steps it with
``actions[t]`` for ``t = 0 .. T-2`` (LeRobot convention: ``actions[t]`` is the command issued
after observing frame ``t``). Frame ``t``'s ``qpos`` is compared with the demo's, frame 0
included (a wrong scene seed shows there). The runner applies every command at float32, the
precision a dataset stores it in, so a simfail dataset replays bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simfail.core.runner import HOME_ACTION, RunnerState, SceneRunner
from simfail.counterfactual.source import DEMO_PHASE
from simfail.errors import SimfailError
from simfail.labels.trace import Trace
from simfail.replay.demos import DemoEpisode

#: Phase label of replayed frames in the trace (a demo carries no phases of its own): the
#: label :meth:`simfail.counterfactual.source.SourceEpisode.from_actions` gives them too.
REPLAY_PHASE = DEMO_PHASE


class ReplayDivergenceError(SimfailError):
    """A replayed demo left its recorded ``sim.qpos`` by more than the tolerance."""


@dataclass
class Replayed:
    """A replayed demo: its trace and, per frame ``t``, the runner state at frame ``t``.

    Attributes:
        demo: The demo that was replayed.
        trace: Frames ``0..T-1`` as the runner recorded them.
        states: ``states[t]`` restores the runner to frame ``t`` exactly (for branching).
        max_abs_diff: Largest ``|qpos - demo qpos|`` over all frames and joints (None: the
            demo has no ``sim.qpos``); 0.0 is a bit-for-bit replay.
    """

    demo: DemoEpisode
    trace: Trace
    states: list[RunnerState] = field(default_factory=list)
    max_abs_diff: float | None = None

    @property
    def verified(self) -> bool:
        return self.max_abs_diff is not None


def _diff(runner: SceneRunner, demo: DemoEpisode, frame: int) -> tuple[float, int]:
    """(max |qpos - recorded qpos|, the qpos index where it is largest) at ``frame``."""
    q = runner.core.data.qpos
    ref = demo.qpos[frame]
    d = np.abs(q - ref[: q.shape[0]])
    k = int(np.argmax(d))
    return float(d[k]), k


def replay_demo(runner: SceneRunner, demo: DemoEpisode, *, tolerance: float = 0.0, keep_states: bool = True,
                where: str = "") -> Replayed:
    """Replay ``demo`` on ``runner`` (any scene loaded or none; the demo's is loaded here).

    Args:
        runner: A :class:`SceneRunner` of the demo's task at the demo dataset's frame rate.
        tolerance: Largest ``|qpos - demo qpos|`` accepted at any frame (rad for hinge joints,
            m for positions); 0.0 asks for a bit-for-bit replay.
        keep_states: Save the runner state at every frame (needed to branch variants).
        where: The demo dataset, named in the error.

    Raises:
        ReplayDivergenceError: at the first frame past ``tolerance``, naming the episode, the
            frame, the max abs difference and the qpos index.
        SimulationUnstableError: the physics diverged numerically.
    """
    if runner.task.name != demo.task:
        raise ValueError(f"runner of task {runner.task.name!r} cannot replay a {demo.task!r} demo")
    runner.load(demo.scene_seed)
    if demo.qpos is not None and demo.qpos.shape[1] < runner.core.model.nq:
        raise ReplayDivergenceError(
            f"demo episode {demo.index}{where}: sim.qpos is {demo.qpos.shape[1]} wide, the {demo.task} scene of "
            f"seed {demo.scene_seed} has nq={runner.core.model.nq}")
    runner.start(HOME_ACTION, REPLAY_PHASE)
    states = [runner.snapshot()] if keep_states else []
    worst = 0.0

    def check(frame: int) -> None:
        nonlocal worst
        if demo.qpos is None:
            return
        d, k = _diff(runner, demo, frame)
        worst = max(worst, d)
        if not d <= tolerance:
            hint = " (is simfail.seed the scene seed it was recorded on?)" if frame == 0 else ""
            raise ReplayDivergenceError(
                f"demo episode {demo.index}{where} diverges from its sim.qpos at frame {frame}: max abs difference "
                f"{d:.3g} (qpos[{k}]) > tolerance {tolerance:g}{hint}")

    check(0)
    for t in range(demo.length - 1):
        runner.step(demo.actions[t], REPLAY_PHASE)
        if keep_states:
            states.append(runner.snapshot())
        check(t + 1)
    return Replayed(demo, runner.trace, states, worst if demo.qpos is not None else None)
