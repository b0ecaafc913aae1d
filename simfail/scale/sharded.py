"""``simfail generate`` on an executor: groups sharded over work items, shards merged into ONE
dataset.

1. The driver opens the output dataset (``new`` / ``overwrite`` / ``resume`` as a local run
   does) and plans the run's groups exactly as a local run (:func:`simfail.generate.group_plan`:
   same group ids, same per-group scene seeds).
2. The groups not yet in the output nor committed in a shard are cut into shards of
   ``ray.groups_per_task`` consecutive groups. Each shard is one work item: it writes its groups
   into ``<out>/.shards/shard-NNNNN/`` with the ordinary :class:`DatasetWriter` (one atomic
   commit per group) and resumes that directory if it already exists. A worker killed mid-group
   (``kill -9``) therefore loses that group's work only: Ray re-runs the task, the shard writer
   drops the uncommitted group's orphans, skips the committed groups and redoes the rest.
3. As shards complete, the driver adopts their groups, in group-id order (the longest run of
   next groups that are committed), into the output through
   :func:`simfail.dataset.merge.merge_items` (the same code as ``simfail merge``; videos are
   hard-linked, never re-encoded) and re-verifies their frame counts, so the merge overlaps the
   generation (:func:`simfail.scale.driver.drive_shards`, shared with ``rollout`` and ``realism``).
   At the end it writes the meta and removes the shards. As every group occupies its own file
   index in both paths, the merged dataset is
   byte for byte the one a local run writes (``meta/simfail.json`` differs only in the recorded
   ``executor``/``ray`` config).

A killed driver loses nothing committed: ``resume=true`` re-attaches the shards' committed
groups (and the output's), and generates only the rest. The shard directories must be on
storage every worker and the driver share (the output directory on a shared file system); for
machines that do not share storage, generate per machine and join with ``simfail merge``.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from simfail.config import GenerateConfig
from simfail.errors import DatasetFormatError
from simfail.scale.driver import DriveResult, drive_shards, remove_shards
from simfail.scale.executor import Executor, Report, worker_identity
from simfail.scale.gpu import egl_device_env

__all__ = ["ShardSpec", "generate_shard", "run_sharded", "worker_rates", "worker_table"]

@dataclass
class ShardSpec:
    """One work item: generate ``groups`` (``(task, group id)``) into ``root``."""

    index: int
    root: str
    groups: list[tuple[str, int]]
    cfg: GenerateConfig
    #: the dataset's sim.qpos / sim.qvel widths (the widest task of the whole run)
    nq: int
    nv: int


def generate_shard(spec: ShardSpec, report: Report) -> dict[str, Any]:
    """Generate a shard's groups into its directory (resuming it); ``report(groups=1,
    episodes=n)`` after each group is committed. Runs in the worker process."""
    from simfail.dataset.writer import DatasetWriter
    from simfail.generate import (
        ACTION_NAMES, STATE_NAMES, GroupSink, _meta, make_group_runner, summarize, task_config, write_group,
    )
    from simfail.core.task import get_task

    t0 = time.perf_counter()
    cfg = spec.cfg
    names = list(dict.fromkeys(t for t, _ in spec.groups))
    tasks = {t: get_task(t) for t in names}
    envs = {t: make_group_runner(tasks[t], task_config(cfg, tasks[t])) for t in names}
    probes = {t: envs[t].prototype_model for t in names}
    root = Path(spec.root)
    mode = "resume" if root.is_dir() and any(root.iterdir()) else "new"
    writer = DatasetWriter(
        root, fps=cfg.render.fps, image_size=(cfg.render.height, cfg.render.width),
        state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=spec.nq, nv=spec.nv, mode=mode,
        chunks_size=cfg.dataset.chunks_size, crf=cfg.dataset.crf, preset=cfg.dataset.preset,
        encoder_nice=cfg.dataset.encoder_nice,
    )
    done = set(writer.completed_groups())
    meta_path = root / "meta" / "simfail.json"
    seeds: dict[int, dict[str, Any]] = {}
    if meta_path.is_file():
        seeds = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items() if int(k) in done}
    results = []

    class _ReportingSink(GroupSink):
        def _write(self, group_id, episodes, meta, ready, *args):
            super()._write(group_id, episodes, meta, ready, *args)
            report(groups=1, episodes=len(episodes))

    with _ReportingSink(writer, spec.nq, spec.nv) as sink:
        for name, g in spec.groups:
            if g in done:
                continue
            task = tasks[name]
            res = write_group(sink, cfg, probes, seeds, task, name, g, envs[name])
            results.append(res)
    writer.finalize(_meta(cfg, probes, seeds))
    timing = Counter()
    for res in results:
        for k in ("physics", "render", "labels"):
            timing[k] += getattr(res.timing, k)
    timing["write_encode"] = sink.write_s + sink.finalize_s
    return {"shard": spec.index, "worker": worker_identity(), "seconds": time.perf_counter() - t0,
            "summary": summarize(results), "time": dict(timing), "skipped": len(done)}


def run_sharded(cfg: GenerateConfig, executor: Executor, *, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate ``cfg`` on ``executor`` into ``cfg.out`` (see the module docstring)."""
    from simfail.core.task import get_task
    from simfail.dataset.writer import DatasetWriter
    from simfail.generate import (
        ACTION_NAMES, STATE_NAMES, _meta, group_plan, make_group_runner, run_tasks, task_config, validate_failures,
    )

    t_start = time.perf_counter()
    validate_failures(cfg)
    names = run_tasks(cfg)
    tasks = {t: get_task(t) for t in names}
    probes = {t: make_group_runner(tasks[t], task_config(cfg, tasks[t])).prototype_model for t in names}
    nq = max(m.nq for m in probes.values())
    nv = max(m.nv for m in probes.values())
    mode = "resume" if cfg.resume else "overwrite" if cfg.overwrite else "new"
    writer = DatasetWriter(
        cfg.out, fps=cfg.render.fps, image_size=(cfg.render.height, cfg.render.width),
        state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=nq, nv=nv, mode=mode,
        chunks_size=cfg.dataset.chunks_size, crf=cfg.dataset.crf, preset=cfg.dataset.preset,
        encoder_nice=cfg.dataset.encoder_nice,
    )
    out_done = set(writer.completed_groups())
    seeds: dict[int, dict[str, Any]] = {}
    meta_path = writer.root / "meta" / "simfail.json"
    if meta_path.is_file():
        seeds = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items() if int(k) in out_done}

    def on_adopt(g: int, src, committed: bool) -> None:
        entry = src.meta.get("groups", {}).get(str(g))
        if entry is None:
            raise DatasetFormatError(f"shard {src.root} holds group {g} but not its entry in meta/simfail.json")
        seeds[g] = entry

    def env(i: int) -> dict[str, str]:
        return egl_device_env(cfg.render.backend, cfg.render.gpu, i,
                              reserved=cfg.executor == "ray" and cfg.ray.gpus_per_worker > 0)

    run = drive_shards(
        writer, executor, group_plan(cfg), work=generate_shard, group_of=lambda item: item[1],
        make_spec=lambda index, root, groups: ShardSpec(index, root, groups, cfg, nq, nv),
        resume=mode == "resume", per_task=cfg.ray.groups_per_task, on_adopt=on_adopt, env=env,
        desc=f"simfail {cfg.task}", progress=cfg.progress, log=log)
    for g in out_done - set(seeds):  # merged by a killed driver before it wrote their entries
        if g in run.in_shards:
            on_adopt(g, run.in_shards[g], True)
    missing = sorted(out_done - set(seeds))
    if missing:  # a killed driver merged these groups but had not written their entries yet
        raise DatasetFormatError(f"groups {missing[:10]} are in {cfg.out} but not in its meta/simfail.json")
    writer.finalize(_meta(cfg, probes, seeds))
    remove_shards(writer)
    return _summary(cfg, run, writer, sorted(out_done | set(run.attached)), time.perf_counter() - t_start, executor)


def _summary(cfg: GenerateConfig, run: DriveResult, writer, skipped: list[int], seconds: float,
             executor: Executor) -> dict[str, Any]:
    """``generate``'s summary plus per-worker episodes/hour and the merge cost."""
    by_type: Counter = Counter()
    variants: dict[str, list[int]] = {}
    totals = Counter()
    timing = Counter()
    for r in run.shard_results:
        s = r["summary"]
        for k in ("episodes", "groups", "success"):
            totals[k] += s[k]
        by_type.update(s["failures_by_type"])
        for name, (a, b) in s["variants"].items():
            v = variants.setdefault(name, [0, 0])
            v[0] += a
            v[1] += b
        timing.update(r["time"])
    workers = worker_rates(run.shard_results, lambda r: r["summary"]["episodes"], lambda r: r["summary"]["groups"])
    return {
        "episodes": totals["episodes"], "groups": totals["groups"], "success": totals["success"],
        "failures_by_type": dict(sorted(by_type.items())), "variants": variants,
        "skipped_groups": skipped, "seconds": seconds,
        "time": {"physics": timing["physics"], "render": timing["render"], "labels": timing["labels"],
                 "write_encode": timing["write_encode"]},
        "out": str(writer.root),
        "executor": executor.name, "workers": workers,
        "merge_seconds": run.merge_seconds, "verify_seconds": run.verify_seconds,
    }


def worker_rates(shard_results: list[dict[str, Any]], episodes_of: Callable[[dict], int],
                 groups_of: Callable[[dict], int]) -> dict[str, dict[str, float]]:
    """Per worker (``host:pid``): shards, groups, episodes, busy seconds and episodes/hour, from
    the work items' results (each with ``worker`` and ``seconds``)."""
    workers: dict[str, dict[str, float]] = {}
    for r in shard_results:
        w = workers.setdefault(r["worker"], {"episodes": 0, "groups": 0, "seconds": 0.0, "shards": 0})
        w["episodes"] += episodes_of(r)
        w["groups"] += groups_of(r)
        w["seconds"] += r["seconds"]
        w["shards"] += 1
    for w in workers.values():
        w["episodes_per_hour"] = w["episodes"] * 3600.0 / w["seconds"] if w["seconds"] > 0 else 0.0
    return workers


def worker_table(summary: dict[str, Any]) -> str:
    """Per-worker episodes/hour (a worker = one process on one host) and the merge cost."""
    from simfail.report import table

    rows = [[w, str(int(v["shards"])), str(int(v["groups"])), str(int(v["episodes"])), f"{v['seconds']:.1f}",
             f"{v['episodes_per_hour']:.0f}"]
            for w, v in sorted(summary.get("workers", {}).items())]
    head = f"executor: {summary.get('executor')}   merge: {summary.get('merge_seconds', 0.0):.2f} s " \
           f"(+ {summary.get('verify_seconds', 0.0):.2f} s re-verifying frame counts)"
    if not rows:
        return head
    return head + "\n" + table(rows, ["worker (host:pid)", "shards", "groups", "episodes", "busy s", "episodes/h"])

