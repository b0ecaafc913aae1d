"""The driver side of a sharded dataset command: shards out, committed groups merged in.

``generate``, ``rollout`` and ``realism`` share it (:mod:`simfail.scale.sharded`,
:mod:`simfail.scale.rollout`, :mod:`simfail.scale.realism`). A command gives

* the output :class:`~simfail.dataset.writer.DatasetWriter` (opened new / overwrite / resume),
* ``plan``: the run's groups in the order a local run writes them (any picklable items;
  ``group_of(item)`` is the item's group id),
* ``make_spec(index, root, items)``: one work item that writes ``items`` into the shard
  directory ``root`` (resuming it: Ray may re-run a task whose worker died) and returns a small
  picklable result,
* ``work``: the function the executor runs on a spec (``work(spec, report)``).

:func:`drive_shards` cuts the groups still to do into shards of ``per_task`` consecutive
groups under ``<out>/.shards/shard-NNNNN/``, runs them on the executor and, every time a shard
completes, adopts the longest run of next groups (in plan order) that are done into the output
with :func:`simfail.dataset.merge.merge_items` (hard links, no re-encoding), so the merge
overlaps the work. A group a completed shard did not commit is *empty* (a rollout group whose
every episode was skipped, a realism group whose every edit was rejected): it is skipped, as a
local run skips it. ``on_adopt(group, source, committed)`` lets the command collect the group's
meta (its ``meta/simfail.json`` entries) from the shard in plan order.

On ``resume`` the groups already in the output and those committed in the shards of a killed
driver are re-attached, and only the rest is run. The caller writes the final meta and then
calls :func:`remove_shards`.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Sequence

from simfail.dataset import layout as L
from simfail.errors import DatasetFormatError
from simfail.scale.executor import Executor

__all__ = ["SHARDS_DIR", "SHARDS_PER_WORKER", "DriveResult", "auto_groups_per_task", "drive_shards",
           "existing_shards", "remove_shards", "shard_groups"]

#: Where the shards of a run live, inside the output directory.
SHARDS_DIR = ".shards"
#: Shards per worker when ``per_task=0`` (small enough to balance, big enough that a shard's
#: start-up, building the task's scene prototype or loading a model, stays a small share).
SHARDS_PER_WORKER = 4


def shard_groups(todo: Sequence[Any], per_shard: int) -> list[list[Any]]:
    """``todo`` cut into consecutive runs of ``per_shard`` groups (the last may be shorter)."""
    if per_shard < 1:
        raise ValueError(f"per_shard must be >= 1, got {per_shard}")
    return [list(todo[i:i + per_shard]) for i in range(0, len(todo), per_shard)]


def auto_groups_per_task(n_groups: int, workers: int) -> int:
    return max(1, math.ceil(n_groups / max(1, workers * SHARDS_PER_WORKER)))


def existing_shards(shards_root: Path) -> list[tuple[int, Path]]:
    """``(index, path)`` of the shard directories under ``shards_root``, by index."""
    out = []
    if shards_root.is_dir():
        for p in sorted(shards_root.glob("shard-*")):
            try:
                out.append((int(p.name.split("-", 1)[1]), p))
            except ValueError:
                continue
    return out


def remove_shards(writer) -> None:
    shutil.rmtree(Path(writer.root) / SHARDS_DIR, ignore_errors=True)


@dataclass
class DriveResult:
    """What :func:`drive_shards` did: the work items' results (in completion order), the groups
    re-attached on resume (in the output already, and in earlier shards), the merge cost."""

    shard_results: list[Any] = field(default_factory=list)
    out_done: list[int] = field(default_factory=list)
    attached: list[int] = field(default_factory=list)
    #: group id -> the shard dataset (a :class:`~simfail.dataset.merge.SourceDataset`) holding it,
    #: for every group found committed in an earlier driver's shards (those of ``out_done`` too)
    in_shards: dict[int, Any] = field(default_factory=dict)
    todo: int = 0
    merge_seconds: float = 0.0
    verify_seconds: float = 0.0


def drive_shards(writer, executor: Executor, plan: Sequence[Hashable], *,
                 work: Callable[[Any, Any], Any],
                 make_spec: Callable[[int, str, list[Any]], Any],
                 group_of: Callable[[Any], int] = lambda item: int(item),
                 resume: bool = False, per_task: int = 0,
                 on_adopt: Callable[[int, Any, bool], None] | None = None,
                 env: Callable[[int], dict[str, str]] | None = None,
                 desc: str = "simfail", unit: str = "group", progress: bool = True,
                 log: Callable[[str], None] = print) -> DriveResult:
    """Run ``plan``'s groups as shards on ``executor`` and merge them into ``writer`` (see the
    module docstring). ``on_adopt(group id, source dataset, committed)`` is called once per
    group in plan order, also for groups re-attached from shards (not for those already in the
    output). The executor's ``report(groups=, episodes=)`` calls drive one progress bar."""
    from tqdm import tqdm

    from simfail.dataset.merge import MergeItem, merge_items, open_source

    shards_root = Path(writer.root) / SHARDS_DIR
    if not resume:
        shutil.rmtree(shards_root, ignore_errors=True)
    out_done = set(writer.completed_groups())

    # groups committed in the shards of an earlier (killed) driver: re-attached, not redone
    available: dict[int, tuple[Any, Any]] = {}  # group id -> (source, SourceGroup or None: empty)
    if resume:
        for _, path in existing_shards(shards_root):
            if not (path / L.MARKER_NAME).is_file():  # killed before its writer opened
                continue
            src = open_source(path)
            for g in src.groups:
                available.setdefault(g.group_id, (src, g))
    attached = sorted(g for g in available if g not in out_done)
    todo = [item for item in plan if group_of(item) not in out_done and group_of(item) not in available]
    per = per_task or auto_groups_per_task(len(todo), executor.workers)
    first_index = max((i for i, _ in existing_shards(shards_root)), default=-1) + 1
    specs = [make_spec(first_index + j, str(shards_root / f"shard-{first_index + j:05d}"), items)
             for j, items in enumerate(shard_groups(todo, per))]
    groups_of_spec = [[group_of(it) for it in items] for items in shard_groups(todo, per)]
    if attached or out_done:
        log(f"simfail: resuming: {len(out_done)} groups in {writer.root}, {len(attached)} in shards; "
            f"{len(todo)} to do")

    result = DriveResult(out_done=sorted(out_done), attached=attached, todo=len(todo),
                         in_shards={g: src for g, (src, _) in available.items()})
    order = [group_of(item) for item in plan if group_of(item) not in out_done]
    pos = 0

    def advance() -> None:
        nonlocal pos
        ready: list[tuple[int, Any, Any]] = []
        while pos < len(order) and order[pos] in available:
            g = order[pos]
            ready.append((g, *available[g]))
            pos += 1
        if not ready:
            return
        items = [MergeItem(src, sg, g) for g, src, sg in ready if sg is not None]
        if items:
            stats = merge_items(writer, items, link=True)
            result.merge_seconds += stats.seconds
            result.verify_seconds += stats.verify_seconds
        if on_adopt is not None:
            for g, src, sg in ready:
                on_adopt(g, src, sg is not None)

    bar = tqdm(total=len(todo), desc=f"{desc} [{executor.name} x{executor.workers}]", unit=unit,
               disable=not progress)
    episodes_done = 0

    def on_progress(inc: dict[str, int]) -> None:
        nonlocal episodes_done
        episodes_done += int(inc.get("episodes", 0))
        bar.update(int(inc.get("groups", 0)))
        bar.set_postfix(episodes=episodes_done)

    try:
        advance()
        for i, res in executor.map(work, specs, on_progress=on_progress, env=env):
            result.shard_results.append(res)
            src = open_source(Path(shards_root / f"shard-{first_index + i:05d}"))
            committed = {sg.group_id: sg for sg in src.groups}
            for g in groups_of_spec[i]:  # the shard completed: a group it did not commit is empty
                available.setdefault(g, (src, committed.get(g)))
            advance()
    finally:
        bar.close()
    if pos < len(order):
        raise DatasetFormatError(f"groups {order[pos:pos + 10]} were not done by any shard; rerun with resume=true")
    return result
