"""``simfail benchmark SUB ...``: the frozen reward-model benchmark (simfail-bench).

One registry entry (``benchmark`` in :mod:`simfail.commands`) whose sub-commands are the
``variants`` this package collects (see :func:`commands`): every module of this package that
defines a module-level ``COMMAND`` (a :class:`simfail.commands.Command` named ``"benchmark
SUB"``) is one sub-command. ``build`` lives in :mod:`simfail.benchmark.build`; further
sub-commands (``run``, ``compare``) add their own module beside it and need no edit here.

Keep those modules light at import time (heavy imports inside ``run``): ``simfail benchmark
--help`` imports every one of them.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

__all__ = ["commands", "SUBCOMMAND_PREFIX"]

#: Every sub-command's ``Command.name`` starts with this; the rest is what the user types.
SUBCOMMAND_PREFIX = "benchmark "


def commands() -> dict[str, Any]:
    """``{sub-command: Command}`` from every module of this package that defines ``COMMAND``,
    in name order (the variants of ``simfail benchmark``)."""
    out: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        cmd = getattr(module, "COMMAND", None)
        if cmd is None:
            continue
        if not cmd.name.startswith(SUBCOMMAND_PREFIX):
            raise ValueError(f"{module.__name__}.COMMAND is named {cmd.name!r}; expected '{SUBCOMMAND_PREFIX}SUB'")
        sub = cmd.name[len(SUBCOMMAND_PREFIX):]
        if sub in out:
            raise ValueError(f"two modules define the benchmark sub-command {sub!r}")
        out[sub] = cmd
    return dict(sorted(out.items()))
