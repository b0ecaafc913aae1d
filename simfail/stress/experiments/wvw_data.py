"""The datasets the ``with_vs_without`` experiment trains and tests on, built into ``OUT/data``.

One folder per (role, category), each written by simfail's own commands:

=================  =====================================================================
``train/C``        ``simfail generate task=C groups=G seed=train_seed``: the training
                   scenes, expert + one scripted variant per operator.
``experts/C``      ``simfail generate task=C groups=F_C seed=train_seed+1`` with no
                   variants: the extra expert scenes ``expert_only`` gets to match the
                   ``F_C`` failure episodes ``with_failures`` trains on.
``test/C``         ``simfail generate task=C groups=T seed=test_seed``: held-out scenes.
``closed_train/C`` ``simfail rollout policy=P task=C seeds=G seed=train_seed``: closed-loop
                   policy rollouts on the training scenes (rollout and generate with the
                   same ``seed`` share their scenes).
``closed_test/C``  the same on the test scenes, with the scripted expert in each group.
=================  =====================================================================

A folder is generated into ``OUT/data/.partial/`` and moved into place when complete, so a
killed run leaves either a finished dataset (reused) or a partial one (rebuilt). The scene
seeds of every training dataset are checked disjoint from the test scenes'.

:func:`build_data` is the one place that knows where the data comes from. With ``data=DIR`` (a
``simfail benchmark build`` folder, :mod:`simfail.benchmark`) the benchmark's ``train/C`` and
``test/C`` datasets are used in place of the generated ones, its held-out operators join
``holdout_operators``, and ``experts/C`` and the rollouts use its split seeds, image size and fps.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simfail.errors import ConfigError

from .budget import Catalog, EpisodeRef

__all__ = ["DataLayout", "build_data", "catalog", "is_failure_row"]

ROLES = ("train", "experts", "test", "closed_train", "closed_test")


@dataclass
class DataLayout:
    root: Path
    categories: list[str]
    paths: dict[str, Path] = field(default_factory=dict)  # "role/category" -> dataset folder
    held_out: list[str] = field(default_factory=list)  # operators never trained on
    benchmark: dict[str, Any] | None = None  # id, version, size and split seeds of data= (None: generated)

    def path(self, role: str, category: str) -> Path:
        return self.paths[f"{role}/{category}"]

    def has(self, role: str, category: str) -> bool:
        return f"{role}/{category}" in self.paths


def _run_command(name: str, args: list[str], log: Path) -> None:
    """Run a simfail command in this process, its printout appended to ``log``."""
    from simfail.commands import invoke

    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "a") as fh, contextlib.redirect_stdout(fh), contextlib.redirect_stderr(fh):
        print(f"$ simfail {name} {' '.join(args)}", flush=True)
        code = invoke(name, args)
    if code != 0:
        raise ConfigError(f"simfail {name} {' '.join(args)} exited with {code} (see {log})")


def _ensure(root: Path, name: str, command: str, args: list[str], log: Path) -> Path:
    final = root / name
    if final.is_dir():
        return final
    tmp = root / ".partial" / name
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _run_command(command, [*args, f"out={tmp}", "progress=false"], log)
    final.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, final)
    return final


def _scripted_operators(category: str, operators: list[str]) -> list[str]:
    from simfail.task_registry import get_task

    offered = list(get_task(category).perturbations())
    return offered if operators == ["all"] else [o for o in operators if o in offered]


def _benchmark(cfg: Any) -> dict[str, Any]:
    """``benchmark.json`` of ``data=`` (a ``simfail benchmark build`` folder), checked for what
    the experiment needs: the categories, and the train and test splits' datasets and seeds."""
    root = Path(str(cfg.data))
    try:
        bench = json.loads((root / "benchmark.json").read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"data={root} is not a built benchmark (no readable benchmark.json: simfail benchmark build)") from exc
    missing = [c for c in cfg.categories if c not in bench.get("categories", [])]
    if missing:
        raise ConfigError(f"data={root}: the benchmark has no category {missing} (it has {bench.get('categories')}); "
                          "choose categories= among them")
    for split in ("train", "test"):
        if split not in bench.get("splits", {}):
            raise ConfigError(f"data={root}: the benchmark has no {split} split")
    return bench


def build_data(cfg: Any, root: Path, *, progress: Callable[[str], None] = lambda s: None) -> DataLayout:
    """Build (or reuse) every dataset of the experiment under ``root`` (see the module docstring).
    With ``cfg.data`` (a built benchmark) its ``train/C`` and ``test/C`` datasets are used as
    they are, and the extra experts and the closed-loop rollouts are made on the benchmark's
    scenes at its image size and fps."""
    from simfail.dataset.reader import SimfailDataset

    lay = DataLayout(root, list(cfg.categories), held_out=list(cfg.holdout_operators))
    shutil.rmtree(root / ".partial", ignore_errors=True)  # what a killed run left half written
    log = root / "commands.log"
    px, fps = cfg.render_size, cfg.fps
    seeds = {"train": cfg.train_seed, "test": cfg.test_seed}
    groups = {"train": cfg.train_groups, "test": cfg.test_groups}
    if cfg.data not in (None, ""):
        bench = _benchmark(cfg)
        px, fps = int(bench["size"]), int(bench["fps"])
        for split in ("train", "test"):
            seeds[split] = int(bench["splits"][split]["seed"])
            groups[split] = int(bench["splits"][split]["groups_per_category"])
        lay.held_out = sorted(set(lay.held_out) | {o for ops in bench.get("held_out_operators", {}).values() for o in ops})
        lay.benchmark = {"path": str(Path(str(cfg.data)).resolve()), "id": bench.get("id"), "version": bench.get("version"),
                         "size": px, "fps": fps, "seeds": seeds, "groups_per_category": groups}
    size = [f"render.width={px}", f"render.height={px}", f"render.fps={fps}"]
    for c in cfg.categories:
        if lay.benchmark is None:
            ops = _scripted_operators(c, list(cfg.operators))
            if not ops:
                raise ConfigError(f"operators={list(cfg.operators)}: none is an operator of {c}")
            fail = f"failures=[{','.join(ops)}]"
            progress(f"data: train/{c}")
            lay.paths[f"train/{c}"] = _ensure(root, f"train/{c}", "generate",
                                              [f"task={c}", f"groups={groups['train']}", f"seed={seeds['train']}", fail, *size], log)
            progress(f"data: test/{c}")
            lay.paths[f"test/{c}"] = _ensure(root, f"test/{c}", "generate",
                                             [f"task={c}", f"groups={groups['test']}", f"seed={seeds['test']}", fail, *size], log)
        else:
            for split in ("train", "test"):
                lay.paths[f"{split}/{c}"] = Path(str(cfg.data)) / split / c
        cat = _catalog_train(SimfailDataset(lay.path("train", c)), f"train/{c}", c, lay.held_out)
        n_extra = len(cat[1])
        if n_extra:
            progress(f"data: experts/{c}")
            lay.paths[f"experts/{c}"] = _ensure(root, f"experts/{c}", "generate",
                                                [f"task={c}", f"groups={n_extra}", f"seed={seeds['train'] + 1}",
                                                 "failures.failure_variants=false", *size], log)
        if cfg.closed_loop:
            pol = [f"policy={cfg.closed_loop_policy}", *(f"policy.{k}={v}" for k, v in sorted(cfg.closed_loop_kwargs.items())),
                   f"samples={cfg.closed_loop_samples}", f"task={c}", "on_policy_error=skip", *size]
            progress(f"data: closed_train/{c}")
            lay.paths[f"closed_train/{c}"] = _ensure(root, f"closed_train/{c}", "rollout",
                                                     [*pol, f"seeds={groups['train']}", f"seed={seeds['train']}"], log)
            progress(f"data: closed_test/{c}")
            lay.paths[f"closed_test/{c}"] = _ensure(root, f"closed_test/{c}", "rollout",
                                                    [*pol, f"seeds={groups['test']}", f"seed={seeds['test']}",
                                                     "include_expert=true"], log)
    _check_disjoint_scenes(lay)
    return lay


def _scene_seeds(path: Path) -> set[int]:
    from simfail.dataset.reader import SimfailDataset

    ds = SimfailDataset(path)
    return {int(ds.episode(e)["simfail.seed"]) for eps in ds.groups().values() for e in eps
            if str(ds.episode(e)["simfail.variant"]) == "expert" or "#" not in str(ds.episode(e)["simfail.variant"])}


def _check_disjoint_scenes(lay: DataLayout) -> None:
    for c in lay.categories:
        test = _scene_seeds(lay.path("test", c))
        for role in ("train", "experts"):
            if lay.has(role, c):
                both = test & _scene_seeds(lay.path(role, c))
                if both:
                    raise ConfigError(f"{role}/{c} and test/{c} share scene seeds {sorted(both)[:3]}: choose other seeds")


def is_failure_row(row: Any) -> bool:
    """A rollout episode is a failure when its labels say so: not a success, or any failure event."""
    fails = row.get("simfail.failures") or "[]"
    if isinstance(fails, str):
        fails = json.loads(fails)
    return not bool(row["simfail.success"]) or bool(fails)


def _catalog_train(ds: Any, name: str, c: str, held_out: list[str]) -> tuple[list[EpisodeRef], list[EpisodeRef]]:
    from simfail.learn.data import select_episodes

    variants = {str(ds.episode(e)["simfail.variant"]) for eps in ds.groups().values() for e in eps}
    sel = select_episodes(ds, "with_failures", holdout_failures=sorted(set(held_out) & variants))
    var = lambda e: str(ds.episode(e)["simfail.variant"])  # noqa: E731
    return ([EpisodeRef(name, e, True, c, "expert") for e in sel.experts],
            [EpisodeRef(name, e, False, c, var(e)) for e in sel.failures])


def catalog(lay: DataLayout) -> Catalog:
    """The training episodes of every category (:class:`~.budget.Catalog`)."""
    from simfail.dataset.reader import SimfailDataset

    cat = Catalog()
    for c in lay.categories:
        cat.experts[c], cat.failures[c] = _catalog_train(SimfailDataset(lay.path("train", c)), f"train/{c}", c, lay.held_out)
        cat.extra_experts[c] = []
        if lay.has("experts", c):
            ds = SimfailDataset(lay.path("experts", c))
            cat.extra_experts[c] = [EpisodeRef(f"experts/{c}", e, True, c, "expert")
                                    for g, eps in sorted(ds.groups().items()) for e in eps
                                    if str(ds.episode(e)["simfail.variant"]) == "expert" and bool(ds.episode(e)["simfail.success"])]
        if lay.has("closed_train", c):
            ds = SimfailDataset(lay.path("closed_train", c))
            cat.closed_failures[c] = [EpisodeRef(f"closed_train/{c}", e, False, c, str(ds.episode(e)["simfail.variant"]))
                                      for g, eps in sorted(ds.groups().items()) for e in eps if is_failure_row(ds.episode(e))]
    return cat
