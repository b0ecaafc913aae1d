"""``simfail experiment NAME key=value ...``: named, configured experiments.

Each experiment registers a typed config dataclass (fields with ``help``/``example``
metadata, ranges checked by ``validate()``), a ``run(cfg) -> dict`` and a ``table(result) ->
str``. Each is a variant of the ``experiment`` command in :mod:`simfail.commands` (see
:func:`commands`): the schema machinery types and checks ``key=value`` against the dataclass
(``simfail experiment NAME --help`` lists its keys); the command runs it and writes
``OUT/results.json`` (atomic) and ``OUT/results.txt`` (the table), then prints the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from simfail.errors import ConfigError, UnknownNameError

__all__ = ["Experiment", "register_experiment", "experiment_names", "get_experiment", "run_experiment", "run_and_print",
           "commands", "run_experiment_args"]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    config: type
    run: Callable[[Any], dict[str, Any]]
    table: Callable[[dict[str, Any]], str]


_REGISTRY: dict[str, Experiment] = {}
_BUILTIN = ("simfail.stress.experiments.real_plus_sim", "simfail.stress.experiments.with_vs_without")


def register_experiment(exp: Experiment) -> Experiment:
    old = _REGISTRY.get(exp.name)
    if old is not None and old.run.__qualname__ != exp.run.__qualname__:
        raise ConfigError(f"experiment name {exp.name!r} is already registered")
    _REGISTRY[exp.name] = exp
    return exp


def _load() -> None:
    import importlib

    for mod in _BUILTIN:
        importlib.import_module(mod)


def experiment_names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get_experiment(name: str) -> Experiment:
    _load()
    if name not in _REGISTRY:
        raise UnknownNameError("experiment", name, list(_REGISTRY))
    return _REGISTRY[name]


def run_experiment(name: str, cfg: Any) -> dict[str, Any]:
    """Run a configured experiment; writes ``cfg.out/results.json`` and ``results.txt``."""
    from dataclasses import asdict

    from simfail.learn.checkpoint import atomic_write_bytes

    exp = get_experiment(name)
    result = exp.run(cfg)
    result = {"experiment": name, "config": asdict(cfg), **result}
    out = Path(cfg.out)
    atomic_write_bytes(out / "results.json", (json.dumps(result, indent=2, allow_nan=False, default=str) + "\n").encode())
    atomic_write_bytes(out / "results.txt", (exp.table(result) + "\n").encode())
    return result


def run_and_print(name: str, cfg: Any) -> int:
    """``run`` of ``simfail experiment NAME``: run it, print the table and where the results are."""
    exp = get_experiment(name)
    result = run_experiment(exp.name, cfg)
    print(exp.table(result))
    print(f"results: {Path(cfg.out) / 'results.json'}")
    return 0


def commands() -> dict[str, Any]:
    """Every registered experiment as a :class:`simfail.commands.Command` (the variants of
    ``simfail experiment``): its config dataclass is the schema, so ``simfail experiment NAME
    --help`` lists its keys and ``key=value`` arguments are typed and checked by Hydra."""
    import functools

    from simfail.commands import Command

    out = {}
    for name in experiment_names():
        exp = get_experiment(name)
        needed = [f.metadata.get("example", f"{f.name}=...") for f in fields(exp.config) if f.metadata.get("required")]
        out[name] = Command(f"experiment {name}", exp.description, exp.config, functools.partial(run_and_print, name),
                            example=" ".join(["simfail experiment", name, *needed]), config_name=f"experiment_{name}")
    return out


def run_experiment_args(args: list[str]) -> int:
    """``simfail experiment NAME key=value ...`` (through the command registry)."""
    from simfail.commands import invoke

    return invoke("experiment", list(args))
