"""Counterfactual variants branched from a replayed demo (generic operators of
:mod:`simfail.counterfactual`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simfail.errors import ConfigError


@dataclass
class DemoVariant:
    """One variant of a demo's group: operator, magnitude, its edit and onset frame."""

    name: str
    operator: str
    kind: str
    magnitude: float
    onset_frame: int
    edit: Any = None
    params: dict[str, Any] = field(default_factory=dict)


def check_operator_names(names: list[str]) -> None:
    if names:
        raise ConfigError("failures= needs simfail.counterfactual's generic operators")


def plan_variants(runner, rep, cfg) -> list[DemoVariant]:
    return []


def branch(runner, rep, spec, cfg, root):
    raise NotImplementedError
