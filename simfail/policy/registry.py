"""Policies by name: ``register_policy`` and ``load_policy``.

The loading rules are those of reward models (:func:`simfail.stress.protocol.load_model`): a
registered name, or ``package.module:factory`` (any callable returning a policy); keyword
arguments come from ``policy.KEY=VALUE`` on the command line (values read as YAML). An unknown
name lists the known ones; a module that cannot be imported is one line.

Built-in policies are registered by importing the modules in :data:`BUILTIN_MODULES`; to ship
a new one, decorate its factory with ``@register_policy("name")`` and add its module there.
"""

from __future__ import annotations

from typing import Any, Callable

from simfail.errors import ConfigError
from simfail.policy.base import Policy
from simfail.registry import NamedRegistry

#: Modules whose import registers the built-in policies (one line per policy module).
BUILTIN_MODULES: tuple[str, ...] = (
    "simfail.policy.expert",
    "simfail.policy.lerobot",
    "simfail.policy.bc",
)

#: The policies by name (built-ins whose optional dependency is missing are skipped).
POLICIES = NamedRegistry("policy", BUILTIN_MODULES, forbidden=":=", tolerate_missing_deps=True)


def register_policy(name: str) -> Callable[[Any], Any]:
    """Decorator registering a policy class or factory under ``name``."""
    return POLICIES.register(name)


def available_policies() -> list[str]:
    return POLICIES.names()


def resolve_factory(spec: str) -> Callable[..., Any]:
    """The class or factory a spec names (registered name or ``module:attr``)."""
    return POLICIES.resolve(spec)


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
