"""``simfail experiment NAME key=value ...``: named, configured experiments.

Each experiment registers a typed config dataclass (fields with ``help``/``example``
metadata, ranges checked by ``validate()``), a ``run(cfg) -> dict`` and a ``table(result) ->
str``. The command parses ``key=value`` against the dataclass, runs it and writes
``OUT/results.json`` (atomic) and ``OUT/results.txt`` (the table), then prints the table.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from simfail.errors import ConfigError, UnknownNameError

__all__ = ["Experiment", "register_experiment", "experiment_names", "get_experiment", "parse_config", "run_experiment",
           "run_experiment_args"]


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    config: type
    run: Callable[[Any], dict[str, Any]]
    table: Callable[[dict[str, Any]], str]


_REGISTRY: dict[str, Experiment] = {}
_BUILTIN = ("simfail.stress.experiments.real_plus_sim",)


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


def _convert(text: str, kind: str, key: str) -> Any:
    import yaml

    try:
        v = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        v = text
    base = kind.replace(" | None", "")
    if v is None and kind.endswith("| None"):
        return None
    if base == "str":
        return text
    if base == "bool":
        if not isinstance(v, bool):
            raise ConfigError(f"{key} must be true or false, got {text!r}")
        return v
    if base == "int":
        if isinstance(v, bool) or not isinstance(v, int):
            raise ConfigError(f"{key} must be an integer, got {text!r}")
        return v
    if base == "float":
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"{key} must be a number, got {text!r}")
        return float(v)
    raise ConfigError(f"{key}: unsupported setting type {kind}")  # pragma: no cover - configs use the types above


def parse_config(cls: type, args: list[str], command: str) -> Any:
    """``key=value`` arguments as an instance of the dataclass ``cls`` (``validate()``-d)."""
    kinds = {f.name: str(f.type) for f in fields(cls)}
    values: dict[str, Any] = {}
    for a in args:
        key, sep, value = a.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {a!r}")
        if key not in kinds:
            raise UnknownNameError(f"{command} setting", key, list(kinds))
        values[key] = _convert(value, kinds[key], key)
    missing = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING and f.name not in values]  # type: ignore[misc]
    if missing:
        raise ConfigError(f"{command}: {', '.join(f'{m}=' for m in missing)} required")
    cfg = cls(**values)
    cfg.validate()
    return cfg


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


def run_experiment_args(args: list[str]) -> int:
    """``simfail experiment NAME key=value ...``."""
    if not args or "=" in args[0]:
        raise ConfigError(f"usage: simfail experiment NAME key=value ... (experiments: {', '.join(experiment_names())})")
    exp = get_experiment(args[0])
    cfg = parse_config(exp.config, args[1:], f"experiment {exp.name}")
    result = run_experiment(exp.name, cfg)
    print(exp.table(result))
    print(f"results: {Path(cfg.out) / 'results.json'}")
    return 0
