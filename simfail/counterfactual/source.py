"""The episode a counterfactual branches from: actions, per-frame states and phases.

A :class:`SourceEpisode` is any recorded trajectory of a simfail scene, whoever produced it:
the scripted expert (:meth:`SourceEpisode.from_expert`), a policy's closed-loop rollout
(:meth:`SourceEpisode.from_rollout`) or a bare action array, e.g. a user's demonstration
(:meth:`SourceEpisode.from_actions`). It holds what a variant needs to branch at any frame
``k``: the simulator state of every frame (restored exactly, so the variant's frames
``0..k`` equal the source's bit for bit), the command of every step, and the phases.

Frames and steps: frame ``f`` is the state after ``f`` steps (time ``f / fps`` s); step ``f``
drives frame ``f`` to frame ``f + 1`` with the command ``actions[f]`` (seven arm joint targets
[rad], gripper close in [0, 1]). In the trace, ``trace.action[f + 1]`` is that command (stored
float32); ``actions`` keeps the exact float64 command the simulator received.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from simfail.core.rollout import RolloutResult, Snapshot
from simfail.errors import ConfigError

if TYPE_CHECKING:
    from simfail.core.builder import BuiltScene
    from simfail.core.runner import SceneRunner
    from simfail.core.task import Task
    from simfail.labels.trace import Trace

#: Kinds of source an episode can come from (``origin["kind"]``).
ORIGIN_KINDS = ("expert", "rollout", "demo")
#: Phase label of the frames of a replayed bare action array.
DEMO_PHASE = "demo"


def phase_spans(phases: list[str]) -> dict[str, tuple[int, int]]:
    """``{name: (first_frame, last_frame)}`` of every phase label of a trace's phase column
    (first and last frame carrying the label; empty names are skipped)."""
    out: dict[str, tuple[int, int]] = {}
    for f, name in enumerate(phases):
        if not name:
            continue
        out[name] = (out[name][0], f) if name in out else (f, f)
    return out


def phase_runs(phases: list[str], name: str) -> list[tuple[int, int]]:
    """Contiguous runs ``(first_frame, last_frame)`` of the phase label ``name``, in order
    (a task with two carries, such as stack, has two runs of ``carry``)."""
    runs: list[tuple[int, int]] = []
    start = None
    for f, p in enumerate([*phases, None]):
        if p == name and start is None:
            start = f
        elif p != name and start is not None:
            runs.append((start, f - 1))
            start = None
    return runs


@dataclass
class SourceEpisode:
    """A recorded episode that counterfactual variants branch from.

    Attributes:
        task: The task category.
        scene: The built scene (layout, model, initial qpos) it ran in.
        actions: ``(n_frames - 1, 8)`` float64: the command of step ``f`` (frame f -> f + 1).
        states: Per-frame restorable states (``states[f]``: frame ``f``): a
            :class:`~simfail.core.rollout.Snapshot` holding the simulator state (with the last
            command, see :meth:`SimCore.get_state`) and the expert's IK warm start (``None`` for
            sources that did not use the IK).
        trace: The recorded trace (its frames ``0..k`` become a variant's prefix).
        phases: ``{name: (first_frame, last_frame)}`` from the trace's phase column.
        origin: ``{"kind": expert|rollout|demo, ...ids}`` (scene seed, policy, episode ...).
        program: The scripted expert's keyframe program (expert sources only): what the
            task-specific operators (``perturbations/<task>.py``) edit.
    """

    task: Task
    scene: BuiltScene
    actions: np.ndarray
    states: list[Snapshot]
    trace: Trace
    phases: dict[str, tuple[int, int]] = field(default_factory=dict)
    origin: dict[str, Any] = field(default_factory=dict)
    program: Any = None

    def __post_init__(self) -> None:
        a = np.asarray(self.actions, dtype=np.float64)
        if a.ndim != 2 or a.shape[1] != 8:
            raise ConfigError(f"source actions must be (n_frames - 1, 8), got shape {a.shape}")
        if len(self.states) != len(a) + 1 or len(self.trace) != len(a) + 1:
            raise ConfigError(f"source episode: {len(a)} actions need {len(a) + 1} states and trace frames, "
                              f"got {len(self.states)} states and {len(self.trace)} frames")
        kind = self.origin.get("kind")
        if kind not in ORIGIN_KINDS:
            raise ConfigError(f"source origin kind must be one of {list(ORIGIN_KINDS)}, got {kind!r}")
        self.actions = a

    # ------------------------------------------------------------------ readouts
    @property
    def n_frames(self) -> int:
        """Frames of the episode, frame 0 included."""
        return len(self.states)

    @property
    def fps(self) -> int:
        return int(self.trace.fps)

    @property
    def layout(self):
        return self.scene.layout

    def phase_runs(self, name: str) -> list[tuple[int, int]]:
        """Contiguous runs of phase ``name`` (see :func:`phase_runs`)."""
        return phase_runs(list(self.trace.phase), name)

    def command_before(self, k: int) -> np.ndarray:
        """The command in force when frame ``k`` was reached (step ``k - 1``'s command; at
        frame 0 the command the robot rests under), float64 (8,)."""
        return self.states[k].sim_state[-8:].copy()

    def describe(self) -> dict[str, Any]:
        """The JSON-able ``source`` entry of ``simfail.perturbation``."""
        return dict(self.origin)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_expert(cls, task: Task, scene: BuiltScene, result: RolloutResult,
                    origin: dict[str, Any] | None = None, program: Any = None) -> SourceEpisode:
        """The scripted expert's rollout (``run_program`` with ``keep_snapshots=True``): its
        snapshots are the states (IK warm start included) and each step's exact command is the
        last action saved in the next frame's state."""
        if len(result.snapshots) != len(result.trace):
            raise ConfigError("the expert rollout kept no per-frame snapshots (run_program keep_snapshots=True)")
        actions = _actions_from_states([s.sim_state for s in result.snapshots])
        org = {"kind": "expert", "scene_seed": int(scene.layout.seed), **(origin or {})}
        return cls(task, scene, actions, list(result.snapshots), result.trace,
                   phase_spans(list(result.trace.phase)), org, program)

    @classmethod
    def from_rollout(cls, runner: SceneRunner, trace: Trace, states: list[Any] | None = None,
                     origin: dict[str, Any] | None = None) -> SourceEpisode:
        """A policy's closed-loop episode recorded on ``runner`` (which holds its scene).

        ``states`` are its per-frame :class:`~simfail.core.runner.RunnerState` s, snapshots or
        raw simulator state vectors; without them the episode's commands (exact float64 when
        states are given, else the trace's float32 ``action`` column) are replayed from the
        scene's rest state to rebuild them, and the replay must reproduce the trace's ``qpos``
        bit for bit (else :class:`ConfigError` naming the first differing frame).
        """
        org = {"kind": "rollout", "scene_seed": int(runner.scene_seed), **(origin or {})}
        if states is not None:
            snaps = [_as_snapshot(s) for s in states]
            actions = _actions_from_states([s.sim_state for s in snaps])
            return cls(runner.task, runner.scene, actions, snaps, trace, phase_spans(list(trace.phase)), org)
        actions = np.asarray(np.array(trace.action[1:]), dtype=np.float64)
        from simfail.counterfactual.replay import replay_actions

        new_trace, snaps = replay_actions(runner, actions, phases=list(trace.phase))
        _check_same_qpos(trace, new_trace, what=f"rollout {org}")
        return cls(runner.task, runner.scene, actions, snaps, trace, phase_spans(list(trace.phase)), org)

    @classmethod
    def from_actions(cls, runner: SceneRunner, actions: np.ndarray, origin: dict[str, Any] | None = None,
                     phases: list[str] | None = None) -> SourceEpisode:
        """Replay a bare ``(n_frames - 1, 8)`` action array (a demonstration) on ``runner``,
        which must hold the demo's scene (``runner.load(scene_seed)``), from its rest state.

        ``phases`` (one label per frame, optional) become the trace's phase column; without
        them every frame is labelled ``demo``. Raises :class:`ConfigError` for an array of the
        wrong shape or holding NaN / infinite values.
        """
        a = np.asarray(actions)
        if a.ndim != 2 or a.shape[1] != 8 or len(a) < 1:
            raise ConfigError(f"demo actions must be an (n_steps, 8) array (7 joint targets [rad] + gripper), "
                              f"got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            bad = int(np.argwhere(~np.isfinite(a))[0][0])
            raise ConfigError(f"demo actions hold NaN or infinite values (first at step {bad})")
        from simfail.counterfactual.replay import replay_actions

        a = a.astype(np.float64)
        trace, snaps = replay_actions(runner, a, phases=phases)
        org = {"kind": "demo", "scene_seed": int(runner.scene_seed), **(origin or {})}
        return cls(runner.task, runner.scene, a, snaps, trace, phase_spans(list(trace.phase)), org)


def _actions_from_states(states: list[np.ndarray]) -> np.ndarray:
    """Step ``f``'s exact command: the last action saved in frame ``f + 1``'s state."""
    return np.array([np.asarray(s)[-8:] for s in states[1:]], dtype=np.float64).reshape(-1, 8)


def _as_snapshot(s: Any) -> Snapshot:
    if isinstance(s, Snapshot):
        return s
    sim_state = getattr(s, "sim_state", s)
    return Snapshot(np.asarray(sim_state, dtype=np.float64), None)


def _check_same_qpos(a: Trace, b: Trace, what: str) -> None:
    if len(a) != len(b):
        raise ConfigError(f"{what}: replay gave {len(b)} frames, the trace holds {len(a)}")
    for f, (qa, qb) in enumerate(zip(a.qpos, b.qpos)):
        if not np.array_equal(qa, qb):
            raise ConfigError(f"{what}: replaying its actions diverges from the recorded qpos at frame {f} "
                              f"(max |diff| {float(np.max(np.abs(qa - qb))):.3g})")
