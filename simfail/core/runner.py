"""The scene runner: the one simulation loop of simfail.

Data flows one way: scene -> runner -> trace -> labels -> writer. A :class:`SceneRunner` builds
the scene of a (task, scene seed) (:func:`~simfail.core.builder.build_scene` +
:func:`~simfail.core.builder.make_core`), steps its :class:`~simfail.core.sim.SimCore` one frame
(``1 / fps`` s) at a time from an action, and records every frame into a
:class:`~simfail.labels.trace.Trace`. Its full state (simulator integration state, last action,
and the number of recorded frames) can be snapshot and restored, which is how counterfactual
variants branch from their expert.

Three clients drive it: the generator (:mod:`simfail.generate`, through
:func:`~simfail.core.rollout.run_program`), policy rollouts (:mod:`simfail.policy.rollout`) and
the Gymnasium adapter (:mod:`simfail.env`). None of them owns a second stepping or recording
path.

Actions are ``(8,)``: seven arm joint position targets [rad] and the gripper close command in
[0, 1] (0 = open 8 cm, 1 = closed).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from simfail.core.builder import BuiltScene, build_scene, make_core
from simfail.core.robot import HOME_QPOS
from simfail.core.scene import StageConfig
from simfail.core.sim import FrameContacts, SimCore
from simfail.core.task import Task
from simfail.labels.trace import Trace

#: The command the robot holds at frame 0 of a scene: home pose, gripper open.
HOME_ACTION = np.concatenate([HOME_QPOS, [0.0]])


def command_precision(action: np.ndarray) -> np.ndarray:
    """``action`` as the runner applies it: rounded to float32 (the stored precision), as float64."""
    return np.asarray(action, np.float32).astype(np.float64)


@dataclass
class RunnerState:
    """A restorable point of a run: simulator state (incl. last action) and trace length."""

    sim_state: np.ndarray
    frames: int


class FrameRecorder:
    """Steps one :class:`SimCore` frame by frame and records each frame into a trace.

    ``start`` opens a new trace at the current state (frame 0); ``step`` advances one frame and
    appends it. ``snapshot``/``restore`` save and return to an exact point of the run.
    """

    def __init__(self, core: SimCore):
        self.core = core
        self.trace: Trace | None = None

    def new_trace(self) -> Trace:
        core = self.core
        return Trace(core.fps, list(core.entity_names), list(core.entity_names[2:]), joint_index=core.joint_index)

    def start(self, action0: np.ndarray, phase: str) -> Trace:
        """Open a new trace whose frame 0 is the core's current state, commanded ``action0``."""
        self.trace = self.new_trace()
        self.trace.record(self.core, action0, None, phase)
        return self.trace

    def step(self, action: np.ndarray, phase: str) -> FrameContacts:
        """Advance the core one frame toward ``action`` and record the new frame.

        The command is rounded to float32 first, the precision the trace and a dataset's
        ``action`` column store: the physics runs on exactly the recorded action, so replaying
        a dataset's actions reproduces its ``sim.qpos`` bit for bit (``simfail replay``)."""
        action = command_precision(action)
        contacts = self.core.step(action)
        self.trace.record(self.core, action, contacts, phase)
        return contacts

    @property
    def frame(self) -> int:
        """Index of the last recorded frame."""
        return len(self.trace) - 1

    def snapshot(self) -> RunnerState:
        return RunnerState(self.core.get_state(), len(self.trace))

    def restore(self, state: RunnerState, trace: Trace | None = None) -> None:
        """Return to ``state``; the trace becomes ``trace`` (or the current one) cut to its frames."""
        self.core.set_state(state.sim_state)
        self.trace = (trace if trace is not None else self.trace).truncate(state.frames)


class SceneRunner(FrameRecorder):
    """Builds the scene of a (task, scene seed) and runs it frame by frame.

    Args:
        task: The task category.
        fps: Frame rate; one step is ``1 / fps`` s.
        stage: Image size of the cameras compiled into the scene (``StageConfig``).
    """

    def __init__(self, task: Task, fps: int, stage: StageConfig):
        self.task = task
        self.fps = int(fps)
        self.stage = stage
        self.scene: BuiltScene | None = None
        self.scene_seed: int | None = None
        self._prototype: BuiltScene | None = None
        super().__init__(None)  # type: ignore[arg-type]

    @property
    def prototype(self) -> BuiltScene:
        """The scene of seed 0: the robot, the state size and the tracked objects of every
        layout of the task are those of this scene (``tests/test_suite.py`` checks this)."""
        if self._prototype is None:
            self._prototype = build_scene(self.task, 0, self.stage)
        return self._prototype

    @property
    def prototype_model(self) -> mujoco.MjModel:
        return self.prototype.model

    def load(self, scene_seed: int) -> BuiltScene:
        """Build the scene of ``scene_seed`` and put it at rest (robot home, gripper open)."""
        scene = build_scene(self.task, int(scene_seed), self.stage)
        self.scene, self.scene_seed = scene, int(scene_seed)
        self.core = make_core(scene, self.fps)
        self.trace = None
        return scene

    def reset_state(self) -> None:
        """Put the loaded scene back at its initial rest state (no trace)."""
        self.core.reset(self.scene.qpos0, HOME_ACTION)
        self.trace = None

    @property
    def layout(self):
        return self.scene.layout
