"""The perturbation interface: a parameterized edit of an expert program.

A perturbation takes the expert :class:`~simfail.core.program.Program`, the scene layout and a
*magnitude* in [0, 1] and returns a branched program (identical to the expert up to the onset
time) plus the parameters it used. Magnitudes are normalized so that, for every operator,
``failure_range`` gives full failures and ``near_miss_range`` gives near misses that usually
still succeed; the physics decides what actually happened, and the detectors label it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from simfail.errors import ConfigError

if TYPE_CHECKING:
    from simfail.core.program import Program
    from simfail.core.task import Layout, Task


@dataclass(frozen=True)
class Applied:
    """Result of applying a perturbation: the new program, its onset [s] and its parameters."""

    program: Program
    onset_time: float
    params: dict[str, Any]


@dataclass(frozen=True)
class Perturbation:
    """A named failure operator.

    Attributes:
        name: Operator name used in configs (``failures=[drop,collision]``).
        intended: Event types that confirm the intended failure happened.
        description: One line for ``simfail list``.
        fn: ``fn(task, layout, expert, magnitude, rng) -> Applied``.
        failure_range: Magnitudes that should produce the failure.
        near_miss_range: Magnitudes that should (mostly) not, or only mildly.
    """

    name: str
    intended: tuple[str, ...]
    description: str
    fn: Callable[..., Applied]
    failure_range: tuple[float, float] = (0.7, 1.0)
    near_miss_range: tuple[float, float] = (0.05, 0.3)

    def apply(self, task: Task, layout: Layout, expert: Program, magnitude: float, rng: np.random.Generator) -> Applied:
        if not 0.0 <= magnitude <= 1.0:
            raise ConfigError(f"perturbation {self.name!r}: magnitude must be in [0, 1], got {magnitude}")
        return self.fn(task, layout, expert, float(magnitude), rng)

    def realized(self, events) -> bool:
        """Whether a variant's failure events show the intended failure."""
        return any(e.type in self.intended for e in events)

    def make_edit(self, source, magnitude: float, rng: np.random.Generator, ik=None):
        """The :class:`~simfail.counterfactual.edit.ProgramEdit` of this operator on a scripted
        expert's :class:`~simfail.counterfactual.source.SourceEpisode` (``source.program`` is the
        expert program): the edited program, run through the IK from the onset frame on (the
        last frame at or before the onset time), with the group's ``ik`` (or a new one)."""
        from simfail.core.builder import make_ik
        from simfail.core.rollout import onset_frame
        from simfail.counterfactual.edit import ProgramEdit

        if source.program is None:
            raise ConfigError(f"perturbation {self.name!r} edits the scripted expert's program; "
                              f"this {source.origin.get('kind')} source has none (use a generic operator)")
        applied = self.apply(source.task, source.layout, source.program, magnitude, rng)
        k = onset_frame(applied.onset_time, source.fps)
        params = {"onset_time_s": round(applied.onset_time, 4), "onset_frame": k, **applied.params}
        return ProgramEdit(k, source.n_frames - 2, params, program=applied.program, ik=ik if ik is not None else make_ik())
