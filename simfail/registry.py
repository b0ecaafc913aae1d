"""A named registry: objects registered under a name by a decorator, found by name or by
``package.module:attr`` (any importable callable).

Policies (:mod:`simfail.policy.registry`) and reward models (:mod:`simfail.stress.protocol`)
each own one :class:`NamedRegistry`; the built-ins register themselves when the modules in
``builtin_modules`` are imported (on the first lookup).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from simfail.errors import ConfigError, UnknownNameError

#: Builds the error raised when ``module`` of a ``module:attr`` spec cannot be imported, from
#: (spec, module name, the ImportError); returning ``None`` re-raises the ImportError.
ImportErrorHook = Callable[[str, str, ImportError], "Exception | None"]


def qualname(obj: Any) -> str:
    """``module.QualifiedName`` of a class or function (how two registrations are compared)."""
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


class NamedRegistry:
    """Name -> class or factory, for one ``kind`` of object (``"policy"``, ``"model"``).

    Args:
        kind: the word used in messages (``unknown policy 'x'``).
        builtin_modules: modules whose import registers the built-ins.
        forbidden: characters a name may not contain (``':'`` always, it marks ``module:attr``).
        tolerate_missing_deps: skip a built-in module whose own optional dependency is missing
            (a missing built-in module itself still raises).
        import_error: see :data:`ImportErrorHook`; by default a one-line :class:`ConfigError`.
    """

    def __init__(self, kind: str, builtin_modules: tuple[str, ...], *, forbidden: str = ":",
                 tolerate_missing_deps: bool = False, import_error: ImportErrorHook | None = None):
        self.kind = kind
        self.builtin_modules = builtin_modules
        self.forbidden = forbidden if ":" in forbidden else ":" + forbidden
        self.tolerate_missing_deps = tolerate_missing_deps
        self._import_error = import_error or self._default_import_error
        self._entries: dict[str, Callable[..., Any]] = {}

    def _default_import_error(self, spec: str, mod_name: str, exc: ImportError) -> Exception:
        return ConfigError(f"{self.kind} {spec!r}: cannot import {mod_name!r}: {exc}")

    def register(self, name: str) -> Callable[[Any], Any]:
        """Decorator registering a class or factory under ``name``.

        Registering a different object under a name already taken raises :class:`ConfigError`;
        re-registering the same qualified name (a module reload) replaces the entry.
        """
        if not isinstance(name, str) or not name or any(c in name for c in self.forbidden):
            chars = " or ".join(repr(c) for c in self.forbidden)
            raise ConfigError(f"{self.kind} names must be non-empty strings without {chars}, got {name!r}")

        def deco(obj: Any) -> Any:
            old = self._entries.get(name)
            if old is not None and qualname(old) != qualname(obj):
                raise ConfigError(f"{self.kind} name {name!r} is already registered to {qualname(old)}")
            self._entries[name] = obj
            return obj

        return deco

    def load_builtins(self) -> None:
        for mod in self.builtin_modules:
            try:
                importlib.import_module(mod)
            except ModuleNotFoundError as exc:  # a built-in whose optional dependency is missing
                if self.tolerate_missing_deps and (exc.name is None or not mod.startswith(exc.name)):
                    continue
                raise

    def names(self) -> list[str]:
        """Sorted registered names (built-ins included)."""
        self.load_builtins()
        return sorted(self._entries)

    def get(self, name: str) -> Callable[..., Any]:
        """The object registered as ``name``; :class:`UnknownNameError` (with a hint) if none."""
        self.load_builtins()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, list(self._entries))
        return self._entries[name]

    def resolve(self, spec: str) -> Callable[..., Any]:
        """The class or factory ``spec`` names: a registered name or ``package.module:attr``."""
        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"{self.kind} spec must be a non-empty string, got {spec!r}")
        if ":" not in spec:
            return self.get(spec)
        mod_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(mod_name)
        except ImportError as exc:
            err = self._import_error(spec, mod_name, exc)
            if err is None:
                raise
            raise err from None
        obj: Any = module
        for part in attr.split("."):
            if not part or not hasattr(obj, part):
                known = [n for n in dir(module) if not n.startswith("_")]
                raise UnknownNameError(f"attribute of {mod_name}", attr, known)
            obj = getattr(obj, part)
        if not callable(obj):
            raise ConfigError(f"{self.kind} {spec!r} is not a class or factory")
        return obj
