"""Policies by name: ``register_policy`` and ``load_policy``.

The loading rules are those of reward models (:func:`simfail.stress.protocol.load_model`): a
registered name, or ``package.module:factory`` (any callable returning a policy); keyword
arguments come from ``policy.KEY=VALUE`` on the command line (values read as YAML). An unknown
name lists the known ones; a module that cannot be imported is one line.

Built-in policies are registered by importing the modules in :data:`BUILTIN_MODULES`; to ship
a new one, decorate its factory with ``@register_policy("name")`` and add its module there.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable

from simfail.errors import ConfigError, UnknownNameError
from simfail.policy.base import Policy

_REGISTRY: dict[str, Callable[..., Any]] = {}

#: Modules whose import registers the built-in policies (one line per policy module).
BUILTIN_MODULES: tuple[str, ...] = (
    "simfail.policy.expert",
    "simfail.policy.lerobot",
)


def register_policy(name: str) -> Callable[[Any], Any]:
    """Decorator registering a policy class or factory under ``name``."""
    if not isinstance(name, str) or not name or ":" in name or "=" in name:
        raise ConfigError(f"policy names must be non-empty strings without ':' or '=', got {name!r}")

    def deco(obj: Any) -> Any:
        old = _REGISTRY.get(name)
        if old is not None and _qualname(old) != _qualname(obj):
            raise ConfigError(f"policy name {name!r} is already registered to {_qualname(old)}")
        _REGISTRY[name] = obj
        return obj

    return deco


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _load_builtins() -> None:
    for mod in BUILTIN_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError as exc:  # a built-in whose optional dependency is missing
            if exc.name is None or not mod.startswith(exc.name):
                continue
            raise


def available_policies() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The class or factory a spec names (registered name or ``module:attr``)."""
    if not isinstance(spec, str) or not spec:
        raise ConfigError(f"policy spec must be a non-empty string, got {spec!r}")
    if ":" not in spec:
        _load_builtins()
        if spec not in _REGISTRY:
            raise UnknownNameError("policy", spec, list(_REGISTRY))
        return _REGISTRY[spec]
    mod_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(mod_name)
    except ImportError as exc:
        raise ConfigError(f"policy {spec!r}: cannot import {mod_name!r}: {exc}") from None
    obj: Any = module
    for part in attr.split("."):
        if not part or not hasattr(obj, part):
            known = [n for n in dir(module) if not n.startswith("_")]
            raise UnknownNameError(f"attribute of {mod_name}", attr, known)
        obj = getattr(obj, part)
    if not callable(obj):
        raise ConfigError(f"policy {spec!r} is not a class or factory")
    return obj


def load_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from a registered name or ``module:factory`` with ``kwargs``.

    Raises:
        UnknownNameError: unknown name or attribute (the known ones are listed).
        ConfigError: the module cannot be imported, the factory rejects the arguments, or the
            object built has no ``reset(seed)`` / ``act(observation)``.
    """
    factory = resolve_factory(spec)
    try:
        policy = factory(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"policy {spec!r}: bad arguments {sorted(kwargs)}: {exc}") from None
    except ImportError as exc:
        raise ConfigError(f"policy {spec!r}: {exc}") from None
    if not (callable(getattr(policy, "reset", None)) and callable(getattr(policy, "act", None))):
        raise ConfigError(f"policy {spec!r} built a {type(policy).__name__}, which has no reset(seed) and "
                          "act(observation) methods")
    return policy
