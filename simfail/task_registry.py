"""The one task registry: task name -> its :class:`~simfail.core.task.Task` class, or the
module that defines it (imported on first lookup, so listing the names imports nothing heavy).

A task module registers its class with :func:`register_task` (a class decorator, the way
dm_control and MuJoCo Playground register their suites); the built-in tasks are listed here by
module so that ``import simfail`` can register their Gymnasium ids without importing MuJoCo.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from simfail.errors import UnknownNameError

if TYPE_CHECKING:
    from simfail.core.task import Task

__all__ = ["register_task", "task_names", "get_task", "task_class", "env_id", "register_envs", "TASKS"]

#: name -> Task class, or the module (``"simfail.scenes.pour"``) that registers it on import.
TASKS: dict[str, Any] = {
    "pick_place": "simfail.scenes.pick_place",
    "push_pull": "simfail.scenes.push_pull",
    "open_close": "simfail.scenes.open_close",
    "stack": "simfail.scenes.stack",
    "reorient": "simfail.scenes.reorient",
    "pour": "simfail.scenes.pour",
    "tool_use": "simfail.scenes.tool_use",
}


def register_task(cls: type[Task]) -> type[Task]:
    """Class decorator: make ``cls`` available as ``get_task(cls.name)``."""
    if not getattr(cls, "name", ""):
        raise ValueError("task classes need a name")
    TASKS[cls.name] = cls
    return cls


def task_names() -> list[str]:
    """Every registered task name, sorted (imports no task module)."""
    return sorted(TASKS)


def task_class(name: str) -> type[Task]:
    if name not in TASKS:
        raise UnknownNameError("task", name, task_names())
    entry = TASKS[name]
    if isinstance(entry, str):
        importlib.import_module(entry)
        entry = TASKS[name]
        if isinstance(entry, str):
            raise UnknownNameError("task", name, [n for n, e in TASKS.items() if not isinstance(e, str) or n != name])
    return entry


def get_task(name: str) -> Task:
    """A fresh instance of task ``name``."""
    return task_class(name)()


def env_id(task: str) -> str:
    """Gymnasium id of a task: ``pick_place`` -> ``simfail/PickPlace-v0``."""
    return "simfail/" + "".join(part.capitalize() for part in task.split("_")) + "-v0"


def register_envs() -> list[str]:
    """Register ``simfail/<Task>-v0`` for every task with Gymnasium (an entry-point string: the
    environment module, and MuJoCo, load only on ``gymnasium.make``); ids already registered are
    left alone. Returns the ids."""
    import gymnasium

    ids = []
    for name in task_names():
        eid = env_id(name)
        if eid not in gymnasium.registry:
            gymnasium.register(id=eid, entry_point="simfail.env:SimfailEnv", kwargs={"task": name})
        ids.append(eid)
    return ids
