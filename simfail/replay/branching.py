"""Counterfactual variants branched from a replayed demo.

A replayed demo (:class:`~simfail.replay.verify.Replayed`: its trace and the runner state of
every frame) becomes a :class:`simfail.counterfactual.source.SourceEpisode` of kind ``demo``;
every operator of ``failures=`` (the generic, task-independent operators of
:mod:`simfail.counterfactual.operators`) makes a failure variant (magnitude drawn in its failure
range) and, with ``near_misses=true``, a near-miss variant (its near-miss range).
:func:`simfail.counterfactual.replay.branch` runs each one from the demo's saved state at its
onset frame ``k``, so frames ``0..k`` are the demo's, bit for bit.

Operator parameters come from ``OPERATOR.KEY=VALUE`` on the command line (``push.object=red_cube``,
``gripper_release.onset=0.5``), see :func:`simfail.replay.command.split_args`. Every edit is
built (onsets resolved against the demo's length, object names against its scene) in the verify
pass, before anything is written.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from simfail.core.rollout import RolloutResult, Snapshot
from simfail.errors import ConfigError, UnknownNameError

#: Variant kinds: a magnitude from the operator's failure range, or from its near-miss range.
KINDS = ("failure", "near_miss")


@dataclass
class DemoVariant:
    """One variant of a demo's group.

    Attributes:
        name: Variant name (``push``, ``push:near_miss``).
        operator: Generic operator name.
        kind: ``failure`` or ``near_miss``.
        magnitude: In ``[0, 1]``.
        edit: The operator's :class:`~simfail.counterfactual.edit.Edit` on this demo.
        onset_frame: Last frame shared with the demo.
    """

    name: str
    operator: str
    kind: str
    magnitude: float
    edit: Any
    onset_frame: int


def _operators():
    try:
        from simfail.counterfactual import operators
    except ImportError as exc:  # pragma: no cover - simfail.counterfactual ships with simfail
        raise ConfigError(f"failures= needs simfail.counterfactual's generic operators: {exc}") from exc
    return operators


def check_operators(names: list[str], params: dict[str, Any]) -> None:
    """Unknown operator names, parameters of operators not asked for, and ill-typed or
    out-of-range parameters: one :class:`ConfigError` each (before any file is read)."""
    if not names and not params:
        return
    ops = _operators()
    known = ops.operator_names()
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"failures lists {dup} more than once")
    for n in names:
        if n not in known:
            raise UnknownNameError("generic operator", n, known)
    for n, p in params.items():
        if n not in names:
            raise ConfigError(f"parameters given for {n!r}, which failures= does not list ({names})")
        if not isinstance(p, dict):
            raise ConfigError(f"{n}: parameters must be KEY=VALUE, got {p!r}")
        ops.get_operator(n).check_params(p)


def demo_source(runner, rep, origin: dict[str, Any]):
    """The replayed demo as a :class:`SourceEpisode` (kind ``demo``): its trace, the runner state
    of every frame and the exact command of every step (as the simulator received it)."""
    from simfail.counterfactual.source import SourceEpisode, phase_spans

    states = [Snapshot(s.sim_state, None) for s in rep.states]
    actions = np.array([s.sim_state[-8:] for s in rep.states[1:]], dtype=np.float64).reshape(-1, 8)
    org = {"kind": "demo", "scene_seed": int(rep.demo.scene_seed), "episode": int(rep.demo.index), **origin}
    return SourceEpisode(runner.task, runner.scene, actions, states, rep.trace,
                         phase_spans(list(rep.trace.phase)), org)


def variant_rng(seed: int, demo_index: int, scene_seed: int, name: str, kind: str) -> np.random.Generator:
    """The generator of one variant's magnitude and sampled parameters."""
    return np.random.default_rng(np.random.SeedSequence(
        [int(seed), int(demo_index), int(scene_seed), zlib.crc32(name.encode()), zlib.crc32(kind.encode()), 0xDE30]))


def plan_variants(runner, rep, cfg, origin: dict[str, Any]):
    """``(source, variants)`` of a replayed demo: one :class:`DemoVariant` per operator and kind.

    Raises:
        ConfigError: an onset past the demo's end, an unknown phase or object, a bad parameter
            (one line naming the demo episode and the operator).
    """
    if not cfg.failures:
        return None, []
    ops = _operators()
    source = demo_source(runner, rep, origin)
    kinds = KINDS if cfg.near_misses else KINDS[:1]
    out: list[DemoVariant] = []
    for name in cfg.failures:
        op = ops.get_operator(name)
        for kind in kinds:
            rng = variant_rng(cfg.seed, rep.demo.index, rep.demo.scene_seed, name, kind)
            lo, hi = op.failure_range if kind == "failure" else op.near_miss_range
            m = float(rng.uniform(lo, hi))
            try:
                edit = op.make_edit(source, m, rng, **dict(cfg.operator_params.get(name, {})))
            except ConfigError as exc:
                raise ConfigError(f"demo episode {rep.demo.index} ({rep.demo.length} frames): {exc}") from None
            vname = name if kind == "failure" else f"{name}:near_miss"
            out.append(DemoVariant(vname, name, kind, m, edit, int(edit.onset)))
    return source, out


def branch_variant(runner, source, spec: DemoVariant, continuation: str) -> tuple[RolloutResult, dict[str, Any]]:
    """Run one variant from the demo's state at its onset; ``(result, simfail.perturbation)``."""
    from simfail.counterfactual.replay import branch

    trace, states = branch(runner, source, spec.edit, continuation=continuation)
    params = {"name": spec.operator, "kind": spec.kind, "magnitude": round(spec.magnitude, 4),
              "onset_frame": spec.onset_frame, "onset_time_s": round(spec.onset_frame / source.fps, 4),
              "continuation": continuation, "source": source.describe(), **spec.edit.params}
    return RolloutResult(trace), params


def realized(operator: str, variant_events, reference_events) -> bool:
    """Whether a variant shows its operator's intended effect as an event type the demo itself
    does not have (a demo that already fails does not realize its variants' failures)."""
    had = {e.type for e in reference_events}
    return bool(_operators().get_operator(operator).realized([e for e in variant_events if e.type not in had]))
