"""Equal-budget training arms: which episodes each model of the experiment trains on.

Two arms compared at an *equal budget* train for the same optimizer steps (the training
settings are shared, see :mod:`.with_vs_without`) on the same number of *distinct* episodes,
category by category:

* ``expert_only`` vs ``with_failures``: ``with_failures`` trains on the experts of the training
  scenes plus their scripted failure variants (held-out operators removed), ``n_c`` episodes
  in category ``c``; ``expert_only`` trains on the same experts plus the experts of
  ``n_c - G_c`` more scenes, so it also sees ``n_c`` distinct episodes (all successes).
* ``scripted`` vs ``closed_loop``: both train on the experts of the training scenes plus
  ``K_c`` failures: scripted perturbation variants of those scenes or closed-loop policy
  failures rolled out on the same scenes, ``K_c`` the smaller of the two counts; the larger
  set is subsampled without replacement by a generator seeded with ``(seed, category)``.

Everything here is pure bookkeeping over :class:`EpisodeRef`; :func:`check_equal_budget`
raises when two arms differ in size in any category.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simfail.errors import ConfigError

__all__ = ["EpisodeRef", "Catalog", "Arm", "with_vs_without_arms", "scripted_vs_closed_arms", "leave_out",
           "check_equal_budget"]


@dataclass(frozen=True, order=True)
class EpisodeRef:
    """One training episode: ``dataset`` (a name relative to the experiment's data folder),
    its ``index`` there, and whether it is trained as an expert (progress target, rewound
    clips) or as a failure (its dense ``reward`` as the target)."""

    dataset: str
    index: int
    expert: bool
    category: str
    variant: str = ""

    def to_list(self) -> list[Any]:
        return [self.dataset, self.index, self.expert, self.category, self.variant]


@dataclass
class Catalog:
    """Per category: ``experts`` of the training scenes, their scripted ``failures`` (held-out
    operators already removed), ``extra_experts`` (experts of further scenes, in scene order)
    and ``closed_failures`` (closed-loop policy failures on the training scenes)."""

    experts: dict[str, list[EpisodeRef]] = field(default_factory=dict)
    failures: dict[str, list[EpisodeRef]] = field(default_factory=dict)
    extra_experts: dict[str, list[EpisodeRef]] = field(default_factory=dict)
    closed_failures: dict[str, list[EpisodeRef]] = field(default_factory=dict)


@dataclass
class Arm:
    name: str
    episodes: list[EpisodeRef]

    @property
    def n_distinct(self) -> int:
        return len(set(self.episodes))

    def by_category(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for e in self.episodes:
            d = out.setdefault(e.category, {"experts": 0, "failures": 0})
            d["experts" if e.expert else "failures"] += 1
        return dict(sorted(out.items()))

    def summary(self) -> dict[str, Any]:
        return {"name": self.name, "n_episodes": self.n_distinct, "n_experts": sum(e.expert for e in self.episodes),
                "n_failures": sum(not e.expert for e in self.episodes), "by_category": self.by_category()}


def _categories(cat: Catalog, categories: Sequence[str]) -> list[str]:
    missing = [c for c in categories if c not in cat.experts]
    if missing:
        raise ConfigError(f"no training data for categories {missing}")
    return list(categories)


def with_vs_without_arms(cat: Catalog, categories: Sequence[str]) -> tuple[Arm, Arm]:
    """``(expert_only, with_failures)`` over ``categories`` (see the module docstring)."""
    wo, wf = [], []
    for c in _categories(cat, categories):
        experts, fails = cat.experts[c], cat.failures.get(c, [])
        need = len(fails)
        extra = cat.extra_experts.get(c, [])
        if len(extra) < need:
            raise ConfigError(f"{c}: expert_only needs {need} extra expert scenes to match with_failures, has {len(extra)}")
        wf += experts + fails
        wo += experts + extra[:need]
    return Arm("expert_only", wo), Arm("with_failures", wf)


def scripted_vs_closed_arms(cat: Catalog, categories: Sequence[str], seed: int) -> tuple[Arm, Arm]:
    """``(scripted, closed_loop)`` over ``categories``: the training experts plus ``K_c``
    failures of each kind (see the module docstring)."""
    sc, cl = [], []
    for k, c in enumerate(_categories(cat, categories)):
        s, f = sorted(cat.failures.get(c, [])), sorted(cat.closed_failures.get(c, []))
        n = min(len(s), len(f))
        rng = np.random.default_rng([int(seed), *c.encode()])
        pick = (lambda xs: [xs[i] for i in sorted(rng.choice(len(xs), size=n, replace=False))] if len(xs) > n else list(xs))
        sc += cat.experts[c] + pick(s)
        cl += cat.experts[c] + pick(f)
    return Arm("scripted", sc), Arm("closed_loop", cl)


def leave_out(arm: Arm, category: str) -> Arm:
    """The arm without one category (leave-one-category-out training)."""
    return Arm(arm.name, [e for e in arm.episodes if e.category != category])


def check_equal_budget(a: Arm, b: Arm) -> dict[str, int]:
    """Both arms have the same number of distinct episodes in every category (and no episode
    twice); returns the per-category count, else :class:`ConfigError`."""
    for arm in (a, b):
        if arm.n_distinct != len(arm.episodes):
            dup = [e for e, n in Counter(arm.episodes).items() if n > 1]
            raise ConfigError(f"arm {arm.name} lists episodes twice: {dup[:3]}")
    ca = Counter(e.category for e in a.episodes)
    cb = Counter(e.category for e in b.episodes)
    if ca != cb:
        raise ConfigError(f"unequal budget: {a.name} {dict(ca)} vs {b.name} {dict(cb)} distinct episodes per category")
    return dict(sorted(ca.items()))


def counts(mapping: Mapping[str, Sequence[EpisodeRef]]) -> dict[str, int]:
    return {k: len(v) for k, v in sorted(mapping.items())}
