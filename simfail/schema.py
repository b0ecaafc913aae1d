"""Typed command configurations: schema fields, Hydra composition, checks and generated help.

A command's configuration is a ``@dataclass`` whose fields carry their documentation in
``metadata``::

    @dataclass
    class MyConfig:
        groups: int = field(default=2, metadata={"help": "counterfactual groups", "example": "groups=10",
                                                  "range": (1, None)})
        data: str | None = field(default=None, metadata={"help": "dataset folder", "example": "data=DIR",
                                                          "positional": True})

        def validate(self) -> None: ...   # cross-field checks, raising simfail.errors.ConfigError

Metadata keys: ``help`` (one line, with units), ``example`` (``key=value``), ``range``
(``(lo, hi)``, inclusive, ``None`` for an open end; applies to each element of a list),
``choices`` (allowed values), ``positional`` (bare command-line arguments fill this field).

:func:`build` turns ``key=value`` arguments into a checked instance: unknown keys are refused
with the closest known key (difflib), Hydra composes the packaged YAML (``configs/<name>.yaml``,
whose defaults list starts with the schema registered in Hydra's ConfigStore as
``<name>_schema``) or the schema alone, OmegaConf checks every type while merging, and then
ranges, choices and ``validate()`` run. Every failure is one :class:`~simfail.errors.ConfigError`.
:func:`describe` prints the same schema as help text (type, default, range, example).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import typing
from importlib import resources
from typing import Any

from simfail.errors import ConfigError, UnknownNameError

__all__ = ["build", "compose", "config_keys", "checked_overrides", "describe", "register_schema", "schema_keys",
           "check_ranges", "group_options", "closest"]

#: Names of the config groups the packaged YAML configs select from (``task=pour`` ...).
GROUPS = ("task", "failures", "render", "dataset")


def closest(name: str, known: list[str] | tuple[str, ...]) -> str | None:
    """The known name nearest to ``name`` (difflib), or None when none is close."""
    m = difflib.get_close_matches(str(name), [str(k) for k in known], n=1, cutoff=0.6)
    return m[0] if m else None


def group_options(group: str) -> list[str]:
    """Option names of a packaged config group (``configs/<group>/*.yaml``)."""
    folder = resources.files("simfail.configs").joinpath(group)
    return sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))


def has_yaml(config_name: str) -> bool:
    return resources.files("simfail.configs").joinpath(f"{config_name}.yaml").is_file()


def config_keys(config_name: str) -> dict[str, Any]:
    """Top-level keys (with defaults) of a packaged primary config ``configs/<name>.yaml``."""
    import yaml

    d = yaml.safe_load(resources.files("simfail.configs").joinpath(f"{config_name}.yaml").read_text()) or {}
    d.pop("defaults", None)
    return d


# ----------------------------------------------------------------------------- schema walking


def _hints(cls: type) -> dict[str, Any]:
    import sys

    mod = sys.modules.get(cls.__module__)
    return typing.get_type_hints(cls, vars(mod) if mod else None)


def _sub_schema(tp: Any) -> type | None:
    """The dataclass behind a field type (``X``, ``X | None``), or None."""
    if dataclasses.is_dataclass(tp):
        return tp
    for arg in typing.get_args(tp):
        if dataclasses.is_dataclass(arg):
            return arg
    return None


def schema_keys(cls: type, prefix: str = "") -> dict[str, tuple[dataclasses.Field, Any]]:
    """Every key of a schema, dotted (``render.width``), with its field and type hint; a nested
    dataclass contributes its own key and its children's."""
    out: dict[str, tuple[dataclasses.Field, Any]] = {}
    hints = _hints(cls)
    for f in dataclasses.fields(cls):
        if f.name.startswith("_") or f.metadata.get("hidden"):
            continue
        key = prefix + f.name
        tp = hints.get(f.name, f.type)
        out[key] = (f, tp)
        sub = _sub_schema(tp)
        if sub is not None:
            out.update(schema_keys(sub, key + "."))
    return out


def _free_keys(cls: type) -> set[str]:
    """Keys whose value is a free-form mapping (``Dict[str, Any]``): any sub-key is allowed."""
    return {k for k, (_, tp) in schema_keys(cls).items() if typing.get_origin(tp) is dict or tp is dict or tp is Any}


def check_keys(cls: type, overrides: list[str], command: str) -> None:
    """Refuse ``key=value`` arguments whose key the schema does not have (the nearest known key
    is named). Config-group selections (``task=pour``) and ``failures=[...]`` are allowed."""
    keys = schema_keys(cls)
    free = _free_keys(cls)
    for o in overrides:
        key = o.partition("=")[0].strip().lstrip("+~")
        if key in keys or key in GROUPS and key.split(".")[0] in keys:
            continue
        parts = key.split(".")
        if any(".".join(parts[:i]) in free for i in range(1, len(parts))):
            continue
        parent = ".".join(parts[:-1])
        level = [k for k in keys if k.count(".") == key.count(".") and k.startswith(parent + "." if parent else "")]
        if parent and parent not in keys:  # the first unknown part is the one to name
            top = parts[0]
            level = [k for k in keys if "." not in k]
            key = top if top not in keys else key
        raise UnknownNameError(f"{command} setting", key, level or list(keys))


# ----------------------------------------------------------------------------- ranges and help


def _in_range(v: Any, rng: tuple[Any, Any]) -> bool:
    lo, hi = rng
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _range_text(rng: tuple[Any, Any]) -> str:
    lo, hi = rng
    if lo is not None and hi is not None:
        return f"in [{lo}, {hi}]"
    return f">= {lo}" if lo is not None else f"<= {hi}"


def check_ranges(obj: Any, prefix: str = "") -> None:
    """Check every field's ``range`` and ``choices`` metadata (recursively); one ConfigError."""
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        key = prefix + f.name
        if dataclasses.is_dataclass(v):
            check_ranges(v, key + ".")
            continue
        if v is None:
            continue
        rng = f.metadata.get("range")
        if rng is not None:
            values = v if isinstance(v, (list, tuple)) else [v]
            for x in values:
                if isinstance(x, (int, float)) and not isinstance(x, bool) and not _in_range(x, rng):
                    raise ConfigError(f"{key} must be {_range_text(rng)}, got {x}")
        choices = f.metadata.get("choices")
        if choices is not None:
            values = v if isinstance(v, (list, tuple)) else [v]
            for x in values:
                if x not in choices:
                    raise UnknownNameError(f"{key} value", str(x), [str(c) for c in choices])


def _type_name(tp: Any) -> str:
    if tp is Any:
        return "any"
    if isinstance(tp, type) and not typing.get_args(tp):
        return {"str": "str", "int": "int", "float": "float", "bool": "bool"}.get(tp.__name__, tp.__name__)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple):
        return f"list[{_type_name(args[0])}]" if args else "list"
    if origin is dict:
        return "mapping"
    if args and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (" | ".join(_type_name(a) for a in rest)) + " | null"
    return str(tp).replace("typing.", "")


def _value_text(v: Any) -> str:
    import json

    if v is None:
        return "null"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, str):
        return v if v and not any(c in v for c in " ,[]{}") else json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_value_text(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value_text(x)}" for k, x in v.items()) + "}"
    return str(v)


def _lookup(d: Any, key: str) -> Any:
    for part in key.split("."):
        if not isinstance(d, dict) or part not in d:
            return dataclasses.MISSING
        d = d[part]
    return d


def describe(cls: type, defaults: dict[str, Any] | None = None, width: int = 100) -> str:
    """Help text of a schema: one entry per key with type, default, range or choices, example,
    and the one-line help. ``defaults``: the composed configuration (the packaged YAML's values
    and config groups) shown instead of the dataclass defaults where given."""
    import textwrap

    lines = []
    for key, (f, tp) in schema_keys(cls).items():
        if _sub_schema(tp) is not None:
            lines.append(f"  {key}.*  {f.metadata.get('help', '')}".rstrip())
            continue
        default = _lookup(defaults, key) if defaults is not None else dataclasses.MISSING
        if default is dataclasses.MISSING:
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
        parts = [_type_name(tp)]
        if f.metadata.get("positional"):
            parts.append("positional")
        if default is not dataclasses.MISSING and not (default is None and f.metadata.get("required")):
            parts.append(f"default {_value_text(default)}")
        if f.metadata.get("required"):
            parts.append("required")
        if f.metadata.get("range") is not None:
            parts.append(_range_text(f.metadata["range"]))
        if f.metadata.get("choices") is not None:
            parts.append("one of " + ", ".join(str(c) for c in f.metadata["choices"]))
        example = f.metadata.get("example") or (f"{key}={_value_text(default)}" if default not in (
            dataclasses.MISSING, None) else "")
        if example:
            parts.append(f"e.g. {example}")
        lines.append(f"  {key}  ({'; '.join(parts)})")
        if f.metadata.get("help"):
            lines += textwrap.wrap(f.metadata["help"], width=width, initial_indent=" " * 6, subsequent_indent=" " * 6)
    return "\n".join(lines)


# ----------------------------------------------------------------------------- composition


@functools.lru_cache(maxsize=None)
def _store() -> Any:
    from hydra.core.config_store import ConfigStore

    return ConfigStore.instance()


def register_schema(config_name: str, cls: type) -> str:
    """Store ``cls`` in Hydra's ConfigStore as ``<config_name>_schema`` (the node a packaged
    YAML's defaults list starts with); returns that name."""
    name = f"{config_name}_schema"
    _store().store(name=name, node=cls)
    return name


def _rewrite_overrides(overrides: list[str]) -> list[str]:
    """``failures=[a,b]`` (or a single operator name) selects operators, not a config file."""
    out = []
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key == "failures":
            v = value.strip()
            if v.startswith("[") or v not in group_options("failures"):
                out.append(f"failures.names=[{v.strip('[]')}]")
                continue
        out.append(o)
    return out


def _check_group_choices(overrides: list[str]) -> None:
    for o in overrides:
        key, sep, value = o.partition("=")
        if sep and key in ("task", "render", "dataset"):
            opts = group_options(key)
            if value not in opts:
                raise UnknownNameError("task" if key == "task" else f"{key} preset", value, opts)


def _clean_message(exc: BaseException, cls: type | None = None) -> str:
    """One line from a Hydra / OmegaConf exception: the key and what was wrong with its value."""
    from omegaconf.errors import OmegaConfBaseException, ValidationError

    chain, e = [], exc
    while e is not None and e not in chain:
        chain.append(e)
        e = e.__cause__ or e.__context__
    for e in chain:
        if isinstance(e, ValidationError):
            key = getattr(e, "full_key", None)
            msg = str(getattr(e, "msg", None) or e).splitlines()[0]
            msg = msg.replace("could not be converted to Integer", "is not a whole number (int)")
            msg = msg.replace("could not be converted to Float", "is not a number (float)")
            msg = msg.replace("could not be converted to Boolean", "is not a boolean (true/false)")
            if key and cls is not None:
                f = schema_keys(cls).get(str(key), (None, None))[0]
                if f is not None and f.metadata.get("example"):
                    msg += f" (e.g. {f.metadata['example']})"
            return f"{key}: {msg}" if key else msg
    for e in chain:
        if isinstance(e, OmegaConfBaseException) and getattr(e, "msg", None):
            key = getattr(e, "full_key", None)
            msg = str(e.msg).splitlines()[0]
            return f"{key}: {msg}" if key and key not in msg else msg
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def compose(config_name: str, overrides: list[str], *, typed: bool = False, schema: type | None = None) -> Any:
    """Compose ``config_name`` (a packaged YAML, or a ConfigStore node) with Hydra.

    Returns a plain dict, or with ``typed=True`` the DictConfig itself (typed by the schema its
    defaults list names). Errors are one :class:`ConfigError`."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    overrides = _rewrite_overrides(overrides)
    _check_group_choices(overrides)
    if schema is not None:
        register_schema(config_name, schema)
    try:
        if GlobalHydra.instance().is_initialized():
            GlobalHydra.instance().clear()
        with initialize_config_module(config_module="simfail.configs", version_base="1.3"):
            cfg = hydra_compose(config_name=config_name, overrides=overrides)
        if typed:
            return cfg
        return OmegaConf.to_container(cfg, resolve=True)
    except (HydraException, OmegaConfBaseException, ValueError, TypeError) as exc:
        raise ConfigError(f"bad configuration: {_clean_message(exc, schema)}") from exc


def checked_overrides(args: list[str], config_name: str, command: str, example: str) -> tuple[list[str], bool]:
    """A command's ``key=value`` arguments as Hydra overrides, every key checked against the
    command's packaged YAML (a typo is one clear error naming the nearest key), and whether
    ``--cfg`` was given."""
    base = config_keys(config_name)
    overrides, show = [], False
    for a in args:
        if a == "--cfg":
            show = True
            continue
        key, sep, _ = a.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"expected key=value, got {a!r} (e.g. {example})")
        top = key.lstrip("+").split(".", 1)[0]
        if top not in base:
            raise UnknownNameError(f"{command} setting", top, list(base))
        overrides.append(a)
    return overrides, show


def build(cls: type, config_name: str, overrides: list[str], *, command: str | None = None,
          updates: dict[str, Any] | None = None, required: bool = True) -> Any:
    """A checked instance of the schema ``cls`` from ``key=value`` overrides.

    ``config_name``: the packaged YAML to compose (its defaults list starts with
    ``<config_name>_schema``) or, where there is none, the schema alone. ``updates``: values
    merged over the composed config (typed) before the checks (positional arguments, mappings
    parsed by the command itself). ``required=False`` skips the required-key check."""
    from omegaconf import OmegaConf, open_dict
    from omegaconf.errors import OmegaConfBaseException

    command = command or config_name
    for o in overrides:
        key, sep, _ = o.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"expected key=value, got {o!r}")
    check_keys(cls, overrides, command)
    name = register_schema(config_name, cls)
    cfg = compose(config_name if has_yaml(config_name) else name, overrides, typed=True, schema=cls)
    try:
        if OmegaConf.get_type(cfg) is not cls:  # composed from a YAML without the schema: type it here
            cfg = OmegaConf.merge(OmegaConf.structured(cls), cfg)
        for k, v in (updates or {}).items():  # top-level keys of the schema; mappings merge
            cur = cfg.get(k)
            if isinstance(v, dict) and OmegaConf.is_dict(cur):
                with open_dict(cur):  # a free mapping (model_kwargs) takes new keys
                    for kk, vv in v.items():
                        cur[kk] = vv
            else:
                cfg[k] = v
        obj = OmegaConf.to_object(cfg)
    except (OmegaConfBaseException, ValueError, TypeError) as exc:
        raise ConfigError(f"bad configuration: {_clean_message(exc, cls)}") from exc
    for key, (f, _) in schema_keys(cls).items():
        if required and f.metadata.get("required") and _get(obj, key) in (None, "", []):
            ex = f.metadata.get("example") or f"{key}=..."
            raise ConfigError(f"{key}= is required (e.g. {ex})")
    check_ranges(obj)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def _get(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj
