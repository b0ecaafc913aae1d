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
