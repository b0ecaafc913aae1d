"""The benchmark recipe: ``configs/benchmark/<version>.yaml`` as a checked :class:`BenchmarkSpec`.

A recipe names the task categories (in the paper's order of complexity), the splits (each a
base scene seed and a number of groups per category: ``simfail generate``'s ``seed`` and
``groups``), the operator mix per category, the operators held out of training (test only),
the clean alternatives, and the image size. ``simfail benchmark build`` turns it into data;
the data's hashes live in ``benchmarks/<id>.sha256`` (:func:`hash_file_path`), where ``id``
is the version, with ``-SIZE`` appended for a size other than the recipe's own
(``v1-128``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import yaml

from simfail.errors import ConfigError, UnknownNameError

#: Split names in build order; ``test`` is the one that holds the held-out operators.
SPLITS: tuple[str, ...] = ("train", "val", "test")
TEST = "test"


@dataclass(frozen=True)
class SplitSpec:
    """One split: ``groups`` scenes per category, scene seeds drawn from base ``seed``."""

    name: str
    seed: int
    groups: int


@dataclass(frozen=True)
class ClosedLoopSpec:
    """Closed-loop policy rollouts of a recipe (``closed_loop:``): ``samples`` rollouts of
    ``policy`` (a registered policy name) with ``kwargs`` (``category_kwargs[c]`` overriding
    them for category ``c``) on every scene of each split in ``splits``, plus the scripted
    expert's episode (``simfail rollout include_expert=true``), one dataset per split and
    category at ``DIR/closed_loop/<split>/<category>``."""

    policy: str
    kwargs: dict[str, Any]
    samples: int
    splits: tuple[str, ...]
    category_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def kwargs_of(self, category: str) -> dict[str, Any]:
        return {**self.kwargs, **self.category_kwargs.get(category, {})}

    def describe(self) -> dict[str, Any]:
        return {"policy": self.policy, "kwargs": dict(self.kwargs), "samples": self.samples,
                "splits": list(self.splits), "category_kwargs": {c: dict(v) for c, v in self.category_kwargs.items()}}


#: Folder (relative to the benchmark folder) of the closed-loop datasets of a split.
CLOSED_LOOP_DIR = "closed_loop"


def closed_loop_rel(split: str, category: str) -> str:
    """``closed_loop/<split>/<category>``: where a split's rollouts of a category live."""
    return f"{CLOSED_LOOP_DIR}/{split}/{category}"


@dataclass(frozen=True)
class BenchmarkSpec:
    """A checked benchmark recipe (see the module docstring and docs/benchmark.md)."""

    version: str
    size: int
    fps: int
    categories: tuple[str, ...]
    splits: tuple[SplitSpec, ...]
    operators: dict[str, tuple[str, ...]]
    held_out_operators: dict[str, tuple[str, ...]]
    alternatives: tuple[str, ...]
    near_misses: bool = True
    match_duration: bool = True
    delayed_lag_s: float = 1.0
    crf: int = 23
    description: str = ""
    closed_loop: Optional[ClosedLoopSpec] = None
    extra: dict[str, Any] = field(default_factory=dict)

    def bench_id(self, size: int | None = None) -> str:
        """``version`` at the recipe's own size, ``version-SIZE`` otherwise."""
        size = self.size if size is None else int(size)
        return self.version if size == self.size else f"{self.version}-{size}"

    def split(self, name: str) -> SplitSpec:
        for s in self.splits:
            if s.name == name:
                return s
        raise UnknownNameError("split", name, [s.name for s in self.splits])

    def operators_of(self, split: str, category: str) -> list[str]:
        """The failure operators a split uses for a category: held-out ones only in ``test``."""
        held = set(self.held_out_operators.get(category, ()))
        ops = list(self.operators[category])
        return ops if split == TEST else [o for o in ops if o not in held]


def recipe_names() -> list[str]:
    folder = resources.files("simfail.configs").joinpath("benchmark")
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_spec(version: str) -> BenchmarkSpec:
    """The packaged recipe ``configs/benchmark/<version>.yaml``, checked (see :func:`parse_spec`)."""
    known = recipe_names()
    if version not in known:
        raise UnknownNameError("benchmark version", version, known)
    text = resources.files("simfail.configs").joinpath("benchmark", f"{version}.yaml").read_text()
    return parse_spec(yaml.safe_load(text) or {}, source=f"configs/benchmark/{version}.yaml")


def _names(value: Any, what: str, source: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{source}: {what} must be a list of names, got {value!r}")
    if len(set(value)) != len(value):
        raise ConfigError(f"{source}: {what} lists a name twice: {list(value)}")
    return tuple(value)


def parse_spec(d: dict[str, Any], source: str = "recipe") -> BenchmarkSpec:
    """Check a recipe dict: known keys, categories, operators and alternatives; split seeds
    distinct, groups >= 1; held-out operators among the category's operators, and at least one
    operator per category left for training."""
    from simfail.core.task import get_task, task_names
    from simfail.perturbations.nuisance import ALTERNATIVES

    keys = {"version", "size", "fps", "categories", "splits", "operators", "held_out_operators", "alternatives",
            "near_misses", "match_duration", "delayed_lag_s", "crf", "description", "closed_loop"}
    unknown = sorted(set(d) - keys)
    if unknown:
        raise ConfigError(f"{source}: unknown keys {unknown}; known: {sorted(keys)}")
    for k in ("version", "size", "fps", "categories", "splits", "operators"):
        if k not in d:
            raise ConfigError(f"{source}: missing key {k!r}")
    cats = _names(d["categories"], "categories", source)
    for c in cats:
        if c not in task_names():
            raise UnknownNameError("task", c, task_names())
    splits = []
    for name in SPLITS:
        s = (d["splits"] or {}).get(name)
        if not isinstance(s, dict) or set(s) != {"seed", "groups"}:
            raise ConfigError(f"{source}: splits.{name} must be {{seed: INT, groups: INT}}, got {s!r}")
        if int(s["groups"]) < 1 or int(s["seed"]) < 0:
            raise ConfigError(f"{source}: splits.{name}: groups >= 1 and seed >= 0, got {s}")
        splits.append(SplitSpec(name, int(s["seed"]), int(s["groups"])))
    extra = sorted(set(d["splits"]) - set(SPLITS))
    if extra:
        raise ConfigError(f"{source}: unknown splits {extra}; known: {list(SPLITS)}")
    if len({s.seed for s in splits}) != len(splits):
        raise ConfigError(f"{source}: the splits' base seeds must differ: {[s.seed for s in splits]}")
    operators, held = {}, {}
    for c in cats:
        offered = list(get_task(c).perturbations())
        ops = _names((d["operators"] or {}).get(c, []), f"operators.{c}", source)
        for o in ops:
            if o not in offered:
                raise UnknownNameError(f"{c} failure", o, offered)
        h = _names((d.get("held_out_operators") or {}).get(c, []), f"held_out_operators.{c}", source)
        for o in h:
            if o not in ops:
                raise ConfigError(f"{source}: held-out operator {c}:{o} is not in operators.{c}")
        if len(h) >= len(ops):
            raise ConfigError(f"{source}: {c} holds out every operator; training needs at least one")
        operators[c], held[c] = ops, h
    for c in set(d.get("held_out_operators") or {}) - set(cats):
        raise ConfigError(f"{source}: held_out_operators names {c!r}, not one of the categories")
    alts = _names(d.get("alternatives", []), "alternatives", source)
    for a in alts:
        if a not in ALTERNATIVES:
            raise UnknownNameError("clean alternative", a, list(ALTERNATIVES))
    size, fps = int(d["size"]), int(d["fps"])
    if not 64 <= size <= 1024 or size % 2:
        raise ConfigError(f"{source}: size must be even and in [64, 1024], got {size}")
    closed = parse_closed_loop(d["closed_loop"], cats, source) if d.get("closed_loop") is not None else None
    return BenchmarkSpec(version=str(d["version"]), size=size, fps=fps, categories=cats, splits=tuple(splits),
                         operators=operators, held_out_operators=held, alternatives=alts,
                         near_misses=bool(d.get("near_misses", True)), match_duration=bool(d.get("match_duration", True)),
                         delayed_lag_s=float(d.get("delayed_lag_s", 1.0)), crf=int(d.get("crf", 23)),
                         description=str(d.get("description", "")), closed_loop=closed)


def _kwargs(value: Any, what: str, source: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{source}: {what} must be a mapping of argument names to values, got {value!r}")
    for k, v in value.items():
        if not isinstance(v, (bool, int, float, str)):
            raise ConfigError(f"{source}: {what}.{k} must be a number, a string or a boolean, got {v!r}")
    return dict(value)


def parse_closed_loop(d: Any, categories: tuple[str, ...], source: str) -> ClosedLoopSpec:
    """Check ``closed_loop: {policy, kwargs, samples, splits, category_kwargs}``: a registered
    policy (an unknown one lists the known ones), its arguments accepted by the policy's factory
    (it is built once per category here, so a bad argument is one error before any work),
    ``samples >= 1``, known splits, categories of the recipe."""
    from simfail.policy.registry import available_policies, load_policy

    keys = {"policy", "kwargs", "samples", "splits", "category_kwargs"}
    if not isinstance(d, dict):
        raise ConfigError(f"{source}: closed_loop must be a mapping {{policy, kwargs, samples, splits}}, got {d!r}")
    unknown = sorted(set(d) - keys)
    if unknown:
        raise ConfigError(f"{source}: unknown keys closed_loop.{unknown}; known: {sorted(keys)}")
    for k in ("policy", "samples", "splits"):
        if k not in d:
            raise ConfigError(f"{source}: closed_loop needs {k!r}")
    policy = d["policy"]
    known = available_policies()
    if not isinstance(policy, str) or policy not in known:
        raise UnknownNameError("closed_loop policy", str(policy), known)
    samples = d["samples"]
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ConfigError(f"{source}: closed_loop.samples must be a whole number >= 1, got {samples!r}")
    splits = _names(d["splits"], "closed_loop.splits", source)
    for s in splits:
        if s not in SPLITS:
            raise UnknownNameError("closed_loop split", s, list(SPLITS))
    if not splits:
        raise ConfigError(f"{source}: closed_loop.splits names no split")
    kwargs = _kwargs(d.get("kwargs"), "closed_loop.kwargs", source)
    per_raw = d.get("category_kwargs") or {}
    if not isinstance(per_raw, dict):
        raise ConfigError(f"{source}: closed_loop.category_kwargs must map categories to arguments, got {per_raw!r}")
    per = {}
    for c, v in per_raw.items():
        if c not in categories:
            raise ConfigError(f"{source}: closed_loop.category_kwargs names {c!r}, not one of the categories")
        per[c] = _kwargs(v, f"closed_loop.category_kwargs.{c}", source)
    spec = ClosedLoopSpec(policy, kwargs, samples, splits, per)
    for c in categories:
        try:
            load_policy(policy, **spec.kwargs_of(c))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: closed_loop policy {policy!r} refuses the arguments "
                              f"{spec.kwargs_of(c)} ({c}): {exc}") from exc
    return spec


def hashes_dir() -> Path:
    """Folder of the published hash files (``benchmarks/`` of the repository, packaged as
    ``simfail.benchmarks``)."""
    return Path(str(resources.files("simfail.benchmarks")))


def hash_file_path(bench_id: str) -> Path:
    return hashes_dir() / f"{bench_id}.sha256"


def published_ids() -> list[str]:
    return sorted(p.name[:-7] for p in hashes_dir().glob("*.sha256"))
