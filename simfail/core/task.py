"""Task specifications and the task registry.

A task (``pick_place`` ...) knows how to sample a randomized scene layout from a seed, write
it as MJCF, program its expert, measure progress and success from privileged simulator state,
and which perturbations it offers. Tasks live in the ``scenes`` package and register
themselves by name (:mod:`simfail.task_registry`), the way dm_control and MuJoCo Playground register their suites.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import mujoco
import numpy as np

from simfail.core.program import Program
from simfail.core.robot import HOME_QPOS, RobotIndex
from simfail.core.scene import ObjectSpec, StageConfig

if TYPE_CHECKING:
    from simfail.labels.trace import Trace
    from simfail.core.episode import FailureEvent
    from simfail.perturbations.base import Perturbation


@dataclass
class Layout:
    """A randomized scene instance.

    Attributes:
        task: Task name.
        seed: Seed it was sampled from.
        objects: Every object in the scene.
        roles: Role name -> object name (``object``, ``target``, ``obstacle``, ``distractor0``...).
        instruction: The natural-language instruction for the robot.
        params: Task-specific numbers (heights, radii ...), all plain floats.
        tracked_names: Bodies whose contacts, poses and velocities the simulation core tracks
            (its *entities*), in order. ``None`` means every free object. Set it to track a fixed
            fixture (a cabinet with a drawer joint) or to leave out swarms of small bodies
            (pouring particles), which are read from ``sim.qpos`` through
            :meth:`~simfail.labels.trace.Trace.joint_qpos` instead.
    """

    task: str
    seed: int
    objects: list[ObjectSpec]
    roles: dict[str, str]
    instruction: str
    params: dict[str, Any] = field(default_factory=dict)
    tracked_names: list[str] | None = None

    def obj(self, role_or_name: str) -> ObjectSpec:
        name = self.roles.get(role_or_name, role_or_name)
        for o in self.objects:
            if o.name == name:
                return o
        raise KeyError(role_or_name)

    @property
    def free_objects(self) -> list[str]:
        return [o.name for o in self.objects if o.free]

    @property
    def tracked(self) -> list[str]:
        """Entity bodies of the simulation core (see ``tracked_names``)."""
        return list(self.tracked_names) if self.tracked_names is not None else self.free_objects


class Task(ABC):
    """Interface every task implements. Subclasses set :attr:`name` and register.

    Every subclass's :meth:`detect` result passes through the one recovery rule
    (:func:`simfail.labels.recovery.recovery_events`): a successful episode whose transient
    failure the robot repaired gets a ``recovered`` event, whoever calls ``detect``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("detect")
        if own is not None and not getattr(own, "_with_recovery", False):
            cls.detect = _with_recovery(own)  # type: ignore[method-assign]

    name: str = ""
    #: Episode length in seconds (the expert program is padded with a hold to this length).
    duration: float = 8.0
    description: str = ""

    @abstractmethod
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout: ...

    @abstractmethod
    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        """MJCF of the stage and objects, without the robot (merged in by the builder)."""

    @abstractmethod
    def expert_program(self, layout: Layout) -> Program: ...

    @abstractmethod
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        """Per-frame task progress in [0, 1] from privileged state.

        Contract (what makes the env's progress reward O(1) per step, see
        :class:`simfail.labels.online.OnlineProgress`): ``progress[t]`` reads frames 0 and ``t``
        only, unless the task overrides :meth:`progress_at` to carry what it needs from the
        frames in between. ``tests/test_env_online.py`` checks the online value against this
        function on every task.
        """

    def progress_at(self, view: Trace, layout: Layout, state: dict) -> float:
        """Progress at the last frame of ``view``, a trace of the episode's frame 0 and its newest
        frame ``t`` (one frame at ``t = 0``); ``state`` is this episode's carry, ``{}`` at reset,
        passed back at every frame in order. Equals ``self.progress(trace, layout)[t]`` on the
        whole trace. Default: progress is frame-local (a function of frames 0 and ``t``)."""
        return float(self.progress(view, layout)[-1])

    @abstractmethod
    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        """(success, failure events) read from the simulator state trace."""

    def perturbations(self) -> dict[str, Perturbation]:
        """Failure operators this task offers, by name."""
        return {}

    def initial_qpos(self, model: mujoco.MjModel, layout: Layout) -> np.ndarray:
        """Robot at home, fingers open, objects where the layout puts them (MJCF defaults)."""
        data = mujoco.MjData(model)
        qpos = data.qpos.copy()  # qpos0: bodies at their MJCF poses
        idx = RobotIndex.from_model(model)
        qpos[idx.arm_qpos] = HOME_QPOS
        qpos[idx.finger_qpos] = 0.04
        return qpos


def _with_recovery(detect: Any) -> Any:
    """``detect`` followed by the recovery rule (events re-sorted by visible frame, type)."""

    @functools.wraps(detect)
    def detect_with_recovery(self: Task, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        from simfail.labels.recovery import recovery_events

        success, events = detect(self, trace, layout)
        extra = recovery_events(trace, layout, success, events, lambda: self.progress(trace, layout))
        if not extra:
            return success, events
        return success, sorted([*events, *extra], key=lambda e: (e.visible_frame, e.type))

    detect_with_recovery._with_recovery = True  # type: ignore[attr-defined]
    return detect_with_recovery


# The registry itself lives in simfail.task_registry (light: no MuJoCo import), re-exported here.
from simfail.task_registry import TASKS, get_task, register_task, task_names  # noqa: E402,F401
