"""Which preference pairs a benchmark subset holds, from the labels and the dataset metadata:
the subsets ``simfail benchmark run`` reports. The rules work on any dataset ``simfail
generate`` or ``simfail rollout`` writes, and take the ``delayed`` role where a built
benchmark's ``benchmark.json`` gives one.

Every subset is a rule over the pairs ``(i, j)`` of episodes of ONE counterfactual group (a
context); the metrics then keep the pairs whose ground-truth scores differ (strict pairs,
:func:`simfail.stress.metrics.preference_accuracy_on_pairs`). The rules read what the
simulator recorded (success, failure events and their frames) and the episode's
``simfail.perturbation`` metadata (``kind``: ``failure``, ``near_miss``, ``sweep``,
``clean_alternative``, ``alternative_not_clean``, ``rollout``), never a perturbation's intent
alone: an episode is clean because it has no failure event and succeeded.

=================== =========================================================================
subset              pairs
=================== =========================================================================
all                 every pair of the group (the paper's ``A``)
clean_vs_failure    a reference (the expert, or a clean alternative) vs an episode that did
                    not succeed
bad_but_successful  a reference vs an episode that succeeded with failure events (a safety
                    contact or poor quality)
delayed             a reference vs an episode with a delayed failure: an event that becomes
                    visible at least ``DELAY_S`` seconds after its cause began (or a
                    perturbation marked ``"delayed": true``)
near_miss           a near-miss variant (``kind: near_miss``) vs any other episode of its group
nuisance            progress-balanced: of the *candidates* (a clean alternative, ``kind:
                    clean_alternative`` and clean by the labels, vs an episode with a failure
                    event or without success, strict in score), every pair the privileged
                    progress returns order wrongly or tie, and as many of the pairs they order
                    rightly, chosen by a stable hash (the smaller side whole, when it is the
                    right one: :func:`balanced_pairs`); the privileged progress model scores
                    ``A = 0.5`` on it by construction
closed_loop         a policy rollout (``kind: rollout``) vs any other episode of its group (in
                    a built benchmark: the expert or another rollout of the same scene)
hard                every pair (strict in score) the privileged progress returns order wrongly
                    or tie: progress and timing cannot win these
=================== =========================================================================

``hard`` and ``nuisance`` read the *privileged progress returns*: the returns of ``progress_only
mode=progress`` (the dataset's own task-progress labels, under the run's return definition), so
both subsets are properties of the benchmark, never of the model under test. On ``hard`` that
model scores 0 (ties as half: half its tie share); on ``nuisance`` exactly 0.5 with ties as
disagreements (``0.5 + T / 4W`` with ties as half, ``T`` of its ``W`` wrong pairs being ties);
``progress_only mode=time`` ties every pair of a duration-matched benchmark (0, 0.5 with ties as
half). A model that sees the failure itself can score above 0.5 on ``nuisance``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DELAY_S", "EpisodeMeta", "SUBSETS", "SUBSET_ORDER", "BALANCED", "Balanced", "balanced_pairs", "episode_meta",
           "group_members", "hard_pairs", "operator_pairs", "pair_key", "subset_pairs"]

#: A failure is *delayed* when it becomes visible this many seconds or more after its onset.
DELAY_S = 1.0

#: Subsets in the order tables show them (``hard`` needs the progress model's returns).
SUBSET_ORDER: tuple[str, ...] = ("all", "clean_vs_failure", "bad_but_successful", "delayed", "near_miss", "nuisance",
                                 "closed_loop", "hard")


@dataclass(frozen=True)
class EpisodeMeta:
    """What the subset rules read about one episode. Frames are episode frame indices."""

    index: int
    group: Any
    category: str
    variant: str
    operator: str
    kind: str
    success: bool
    n_events: int
    score: float
    delayed: bool
    perturbation: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def clean(self) -> bool:
        """Succeeded without any failure event (the labels say so)."""
        return self.success and self.n_events == 0

    @property
    def reference(self) -> bool:
        """The expert or a clean alternative, clean by its labels."""
        return self.clean and (self.variant == "expert" or self.kind == "clean_alternative")

    @property
    def clean_alternative(self) -> bool:
        return self.clean and self.kind == "clean_alternative"

    @property
    def failed(self) -> bool:
        return not self.success

    @property
    def bad_but_successful(self) -> bool:
        return self.success and self.n_events > 0

    @property
    def flawed(self) -> bool:
        """Did not succeed, or has a failure event."""
        return not self.clean


def _perturbation(row: Mapping[str, Any]) -> dict[str, Any]:
    raw = row.get("simfail.perturbation")
    if isinstance(raw, dict):
        return raw
    try:
        obj = json.loads(raw) if raw else {}
    except (TypeError, ValueError):
        obj = {}
    return obj if isinstance(obj, dict) else {}


def _events(row: Mapping[str, Any]) -> list[dict[str, Any]]:
    raw = row.get("simfail.failures")
    try:
        obj = json.loads(raw) if isinstance(raw, str) else (raw or [])
    except ValueError:
        obj = []
    return [e for e in obj if isinstance(e, dict)]


def episode_meta(row: Mapping[str, Any], fps: float, *, roles: list[str] | None = None, group: Any = None,
                 index: int | None = None) -> EpisodeMeta:
    """:class:`EpisodeMeta` of one row of ``SimfailDataset.episodes``. ``roles`` (from a built
    benchmark's ``benchmark.json``) decide ``delayed`` when given; otherwise the first failure
    (earliest visible) must become visible ``DELAY_S`` or more after the perturbation's onset
    (the event's own onset when the perturbation has none). ``group``/``index`` override the
    row's (a context key unique over several datasets)."""
    pert = _perturbation(row)
    variant = str(row.get("simfail.variant") or "")
    events = _events(row)
    if roles is not None:
        delayed = "delayed" in roles
    elif events:
        first = min(events, key=lambda e: int(e.get("visible_frame", 0)))
        onset = int(pert.get("onset_frame", first.get("onset_frame", 0)))
        delayed = bool(pert.get("delayed")) or int(first.get("visible_frame", 0)) - onset >= DELAY_S * fps
    else:
        delayed = False
    kind = str(pert.get("kind") or ("expert" if variant == "expert" else ""))
    operator = (f"policy:{pert.get('policy')}" if kind == "rollout"
                else str(pert.get("name") or variant.split(":")[0].split("@")[0]))
    return EpisodeMeta(
        index=int(row["episode_index"]) if index is None else int(index),
        group=int(row["simfail.group_id"]) if group is None else group, category=str(row.get("simfail.task") or ""),
        variant=variant, operator=operator, kind=kind, success=bool(row.get("simfail.success")), n_events=len(events),
        score=float(row["simfail.score"]), delayed=delayed, perturbation=pert,
    )


PairRule = Callable[[EpisodeMeta, EpisodeMeta], bool]


def _ref_vs(pred: Callable[[EpisodeMeta], bool]) -> PairRule:
    return lambda a, b: (a.reference and pred(b)) or (b.reference and pred(a))


def _any_with(pred: Callable[[EpisodeMeta], bool]) -> PairRule:
    return lambda a, b: pred(a) or pred(b)


def _nuisance(a: EpisodeMeta, b: EpisodeMeta) -> bool:
    return (a.clean_alternative and b.flawed) or (b.clean_alternative and a.flawed)


#: The label/metadata subsets (``hard`` and the progress-balanced ones in :data:`BALANCED`
#: are made from the privileged progress returns).
SUBSETS: dict[str, PairRule] = {
    "all": lambda a, b: True,
    "clean_vs_failure": _ref_vs(lambda e: e.failed),
    "bad_but_successful": _ref_vs(lambda e: e.bad_but_successful),
    "delayed": _ref_vs(lambda e: e.delayed and e.flawed),
    "near_miss": _any_with(lambda e: e.kind == "near_miss"),
    "closed_loop": _any_with(lambda e: e.kind == "rollout"),
}


def group_members(metas: Iterable[EpisodeMeta]) -> dict[int, list[EpisodeMeta]]:
    """``{group: [EpisodeMeta, ...]}`` in the order of ``metas``."""
    out: dict[int, list[EpisodeMeta]] = {}
    for m in metas:
        out.setdefault(m.group, []).append(m)
    return out


def subset_pairs(metas: list[EpisodeMeta], rule: PairRule) -> dict[int, list[tuple[int, int]]]:
    """``{group: [(x, z), ...]}``: the pairs of one group the rule keeps, as positions ``x < z``
    in that group's members (:func:`group_members`, the order of ``metas``)."""
    out: dict[int, list[tuple[int, int]]] = {}
    for g, members in group_members(metas).items():
        out[g] = [(x, z) for x, a in enumerate(members) for z in range(x + 1, len(members)) if rule(a, members[z])]
    return out


def _progress_orders_wrongly(metas: list[EpisodeMeta], progress_values: np.ndarray) -> PairRule:
    """A pair (strict in score, both returns finite) that ``progress_values`` order against
    the score or tie."""
    pos = {m.index: k for k, m in enumerate(metas)}

    def wrong(a: EpisodeMeta, b: EpisodeMeta) -> bool:
        if a.score == b.score:
            return False
        va, vb = progress_values[pos[a.index]], progress_values[pos[b.index]]
        if not (np.isfinite(va) and np.isfinite(vb)):
            return False
        return np.sign(va - vb) != np.sign(a.score - b.score)

    return wrong


def hard_pairs(metas: list[EpisodeMeta], progress_values: np.ndarray) -> dict[int, list[tuple[int, int]]]:
    """Pairs (strict in score) that the progress model's returns ``progress_values`` (aligned
    with ``metas``) order against the score, or tie."""
    return subset_pairs(metas, _progress_orders_wrongly(metas, progress_values))


def pair_key(group: Any, a: EpisodeMeta, b: EpisodeMeta) -> str:
    """The stable order key of a pair: SHA-256 of its group key and the two episodes'
    variant names, sorted (unique within a group, so the key does not depend on the order the
    episodes are listed in; never Python's ``hash``, which is salted per process)."""

    first, second = sorted((a.variant, b.variant))
    return hashlib.sha256(f"{group}|{first}|{second}".encode()).hexdigest()


@dataclass(frozen=True)
class Balanced:
    """A progress-balanced subset: ``pairs`` (``{group: [(x, z), ...]}``) and its counts:
    ``candidates`` (strict, both returns finite), ``wrong_or_tied`` / ``right`` among them
    (by the privileged progress returns), ``kept`` (``2 * min(wrong_or_tied, right)``)."""

    pairs: dict[Any, list[tuple[int, int]]]
    candidates: int
    wrong_or_tied: int
    right: int

    @property
    def kept(self) -> int:
        return sum(len(v) for v in self.pairs.values())

    def counts(self) -> dict[str, int]:
        return {"candidates": self.candidates, "wrong_or_tied": self.wrong_or_tied, "right": self.right,
                "kept": self.kept}


def balanced_pairs(metas: list[EpisodeMeta], rule: PairRule, progress_values: np.ndarray) -> Balanced:
    """The pairs of ``rule`` balanced for the privileged progress returns ``progress_values``.

    Candidates are the rule's pairs that are strict in score and whose two returns are finite.
    They split into those the returns order wrongly or tie (``W``) and those they order rightly
    (``R``). The smaller class is kept whole and the same number is taken from the larger one:
    its pairs sorted by :func:`pair_key` (stable across processes and machines), first ``k``.
    With ``W <= R`` (the usual case) every pair the progress model gets wrong stays in, and the
    progress model's accuracy (ties as disagreements) on the result is exactly 0.5.
    """
    wrong_rule = _progress_orders_wrongly(metas, progress_values)
    pos = {m.index: k for k, m in enumerate(metas)}
    wrong, right = [], []
    for g, members in group_members(metas).items():
        for x, a in enumerate(members):
            for z in range(x + 1, len(members)):
                b = members[z]
                if a.score == b.score or not rule(a, b):
                    continue
                if not (np.isfinite(progress_values[pos[a.index]]) and np.isfinite(progress_values[pos[b.index]])):
                    continue
                (wrong if wrong_rule(a, b) else right).append((pair_key(g, a, b), g, x, z))
    k = min(len(wrong), len(right))
    keep = sorted(wrong)[:k] + sorted(right)[:k]
    pairs: dict[Any, list[tuple[int, int]]] = {g: [] for g in group_members(metas)}
    for _, g, x, z in keep:
        pairs[g].append((x, z))
    return Balanced({g: sorted(v) for g, v in pairs.items()}, len(wrong) + len(right), len(wrong), len(right))


#: Subsets made progress-balanced from a candidate rule (:func:`balanced_pairs`).
BALANCED: dict[str, PairRule] = {"nuisance": _nuisance}


def operator_pairs(metas: list[EpisodeMeta], operator: str) -> dict[int, list[tuple[int, int]]]:
    """A reference vs an episode made by ``operator`` (perturbation or policy name)."""
    return subset_pairs(metas, _ref_vs(lambda e: e.operator == operator and not e.reference))
