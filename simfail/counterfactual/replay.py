"""Branch a counterfactual variant from a source episode, stepping the scene runner.

:func:`branch` restores the source's saved state at the edit's onset frame ``k`` (simulator
state, last command, the trace cut to frames ``0..k``), then steps the
:class:`~simfail.core.runner.SceneRunner` one frame at a time: the command of step ``f`` comes
from the edit (:meth:`~simfail.counterfactual.edit.Edit.action`) while ``f <= edit.end``, or
always in the ``open_loop`` continuation; in ``closed_loop`` a *driver* (a policy adapter with
``start(core, frame)`` and ``act(core, frame) -> (8,)``) commands every step after
``edit.end``. The variant's frames ``0..k`` are the source's, bit for bit (qpos, qvel,
actions, labels), because they *are* the source's recorded frames and its state is restored
exactly; ``from_start=True`` re-simulates them instead (the source's commands from the rest
state), which ``tests/test_counterfactual.py`` uses to prove the same identity by replay.

:func:`replay_actions` runs a bare action array from the scene's rest state (demos, rollouts
without saved states). Both record through the runner: simfail has one stepping loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from simfail.core.rollout import Snapshot
from simfail.core.runner import HOME_ACTION, RunnerState
from simfail.errors import ConfigError, UnknownNameError

if TYPE_CHECKING:
    from simfail.core.runner import SceneRunner
    from simfail.core.sim import SimCore
    from simfail.counterfactual.edit import Edit
    from simfail.counterfactual.source import SourceEpisode
    from simfail.labels.trace import Trace

#: What happens after the operator's last step: ``open_loop`` keeps answering with the edit
#: (the rest of the source's commands as the operator left them); ``closed_loop`` hands
#: control to a driver (a policy) from step ``edit.end + 1``.
CONTINUATIONS = ("open_loop", "closed_loop")
#: Phase label of the frames a closed-loop driver commands (unless it has a ``phase``).
DRIVER_PHASE = "policy"


class Driver(Protocol):
    """A closed-loop continuation (``simfail/counterfactual/closed_loop.py``)."""

    def start(self, core: SimCore, frame: int) -> None: ...

    def act(self, core: SimCore, frame: int) -> np.ndarray: ...


def check_continuation(continuation: str, driver: Any = None) -> None:
    if continuation not in CONTINUATIONS:
        raise UnknownNameError("continuation", continuation, CONTINUATIONS)
    if continuation == "closed_loop" and not (callable(getattr(driver, "start", None))
                                              and callable(getattr(driver, "act", None))):
        raise ConfigError("continuation=closed_loop needs a driver with start(core, frame) and act(core, frame)")


def _use_scene(runner: SceneRunner, source: SourceEpisode) -> None:
    """Make ``runner`` hold the source's scene (load it if it holds another)."""
    if runner.task.name != source.task.name:
        raise ConfigError(f"the runner runs task {runner.task.name!r}, the source episode is {source.task.name!r}")
    if runner.scene is not source.scene and runner.scene_seed != int(source.layout.seed):
        runner.load(int(source.layout.seed))


def replay_actions(runner: SceneRunner, actions: np.ndarray, phases: list[str] | None = None) -> tuple[Trace, list[Snapshot]]:
    """Run ``actions`` (``(n_steps, 8)``, step ``f``: frame f -> f + 1) from the loaded
    scene's rest state; return the trace and every frame's state. ``phases`` (per frame,
    optional) label the frames, else ``demo``."""
    from simfail.counterfactual.source import DEMO_PHASE

    n = len(actions) + 1
    labels = list(phases) if phases is not None and len(phases) >= n else [DEMO_PHASE] * n
    runner.reset_state()
    runner.start(HOME_ACTION, labels[0])
    core = runner.core
    states = [Snapshot(core.get_state(), None)]
    for f in range(len(actions)):
        runner.step(np.asarray(actions[f], dtype=np.float64), labels[f + 1])
        states.append(Snapshot(core.get_state(), None))
    return runner.trace, states


def _check_command(cmd: Any, f: int, who: str) -> np.ndarray:
    from simfail.policy.base import PolicyError

    try:
        arr = np.asarray(cmd, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{who} at step {f}: the command is not numeric: {exc}") from None
    if arr.shape != (8,):
        raise PolicyError(f"{who} at step {f}: the command must have shape (8,), got {np.shape(cmd)}")
    if not np.all(np.isfinite(arr)):
        raise PolicyError(f"{who} at step {f}: the command holds NaN or infinite values")
    return arr


def branch(runner: SceneRunner, source: SourceEpisode, edit: Edit, n_frames: int | None = None,
           continuation: str = "open_loop", driver: Driver | None = None, *,
           from_start: bool = False) -> tuple[Trace, list[Snapshot]]:
    """Run the variant of ``source`` that ``edit`` makes; return its trace and per-frame states.

    Args:
        runner: The scene runner (loaded with the source's scene if it holds another).
        source: The episode to branch from.
        edit: The operator's edit; ``edit.onset`` is the last frame shared with the source.
        n_frames: Frames of the variant (frame 0 included); the source's length by default.
        continuation: ``open_loop`` or ``closed_loop`` (see :data:`CONTINUATIONS`).
        driver: The closed-loop policy adapter (``closed_loop`` only).
        from_start: Re-simulate frames ``1..k`` from the source's commands instead of
            restoring frame ``k``'s state (the result is the same, bit for bit).

    Raises:
        ConfigError: an onset outside ``0 .. n_frames - 2``, an unknown continuation, or a
            closed loop without a driver.
    """
    n = int(source.n_frames if n_frames is None else n_frames)
    k = int(edit.onset)
    check_continuation(continuation, driver)
    if not 0 <= k <= min(n, source.n_frames) - 2:
        raise ConfigError(f"onset frame {k} lies outside the episode: a variant branches at frames 0.."
                          f"{min(n, source.n_frames) - 2} of a {source.n_frames}-frame source")
    if edit.end < k:
        raise ConfigError(f"the edit ends at step {edit.end}, before its onset frame {k}")
    _use_scene(runner, source)
    core = runner.core
    if from_start:
        runner.restore(RunnerState(source.states[0].sim_state, 1), source.trace)
        states = [source.states[0]]
        for f in range(k):
            runner.step(source.actions[f].copy(), source.trace.phase[f + 1])
            states.append(Snapshot(core.get_state(), source.states[f + 1].ik_q))
    else:
        runner.restore(RunnerState(source.states[k].sim_state, k + 1), source.trace)
        states = list(source.states[: k + 1])
    edit.begin(source, core)
    driving = False
    who = f"closed-loop driver {type(driver).__name__}"
    for f in range(k, n - 1):
        edit.world(f, core)
        if continuation == "closed_loop" and f > edit.end:
            if not driving:
                driver.start(core, f)
                driving = True
            cmd = _check_command(driver.act(core, f), f, who)
            phase = getattr(driver, "phase", DRIVER_PHASE)
        else:
            cmd = np.asarray(edit.action(f, source, core), dtype=np.float64)
            phase = edit.phase(f, source)
        runner.step(cmd, phase)
        states.append(Snapshot(core.get_state(), edit.ik_state() if not driving else None))
    return runner.trace, states
