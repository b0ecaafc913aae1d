"""``simfail rollout executor=ray``: rollout groups sharded over workers, merged into ONE dataset.

The same executor interface and driver as ``generate`` (:mod:`simfail.scale.driver`): groups
``0 .. seeds-1`` are cut into shards of ``ray.groups_per_task``; each shard loads the policies
once, rolls its groups out with :func:`simfail.policy.rollout.rollout_group` and writes them
into ``<out>/.shards/shard-NNNNN/`` through the writer a local run uses (atomic groups, resumed
when Ray re-runs a task whose worker died); the driver adopts the committed groups in group
order (hard links, no re-encoding). A group whose every episode was skipped
(``on_policy_error=skip``) is committed nowhere, as in a local run; its meta entry still comes
from the shard. The dataset equals a local run's byte for byte (``meta/simfail.json`` differs
only by the recorded ``executor``/``ray`` settings); the per-policy summary is the local run's
(scores are gathered per episode, not as per-shard aggregates).

With ``render=false`` nothing is written: the shards only roll out and label, and the summary
is assembled from their per-episode results.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from simfail.scale.driver import drive_shards, remove_shards, shard_groups
from simfail.scale.executor import Report, make_executor, worker_identity

__all__ = ["RolloutShardSpec", "rollout_shard", "run_sharded_rollout"]


@dataclass
class RolloutShardSpec:
    """One work item: roll out ``groups`` (group ids) of ``cfg`` into ``root`` (``None``:
    ``render=false``, nothing is written)."""

    index: int
    root: str | None
    groups: list[int]
    cfg: Any  # RolloutConfig


def light_result(res) -> SimpleNamespace:
    """What :func:`simfail.policy.rollout.summarize` reads of a group result, picklable and small
    (no frames, no traces)."""
    episodes = [SimpleNamespace(policy=e.policy, success=bool(e.success), score=float(e.score),
                                perturbation=dict(e.perturbation),
                                failures=[SimpleNamespace(type=ev.type) for ev in e.failures])
                for e in res.episodes]
    t = res.timing
    return SimpleNamespace(group_id=res.group_id, episodes=episodes, policy_errors=list(res.policy_errors),
                           unstable_variants=list(res.unstable_variants),
                           perturbations_skipped=list(getattr(res, "perturbations_skipped", [])),
                           timing=SimpleNamespace(physics=t.physics, labels=t.labels, render=t.render),
                           policy_time=SimpleNamespace(policy=res.policy_time.policy))


def rollout_shard(spec: RolloutShardSpec, report: Report) -> dict[str, Any]:
    """Roll out a shard's groups (resuming its directory); runs in the worker process."""
    from simfail.core.runner import SceneRunner
    from simfail.core.scene import StageConfig
    from simfail.core.task import get_task
    from simfail.generate import GroupSink
    from simfail.policy import rollout as R

    t0 = time.perf_counter()
    cfg = spec.cfg
    task = get_task(cfg.task)
    runner = SceneRunner(task, cfg.fps, StageConfig(width=cfg.width, height=cfg.height))
    model = runner.prototype_model
    policies = R.load_policies(cfg, task, list(runner.prototype.layout.tracked))
    writer = sink = None
    done: set[int] = set()
    seeds: dict[int, dict[str, Any]] = {}
    if spec.root is not None:
        root = Path(spec.root)
        writer = R.dataset_writer(cfg, model, root, "resume" if root.is_dir() and any(root.iterdir()) else "new")
        done = set(writer.completed_groups())
        meta_path = root / "meta" / "simfail.json"
        if meta_path.is_file():
            seeds = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items()
                     if int(k) in done}
        sink = GroupSink(writer, model.nq, model.nv)
    results = []
    try:
        for g in spec.groups:
            if g in done:
                continue
            res = R.rollout_group(task, cfg, policies, g, runner, render=cfg.render, defer_frames=True)
            seeds[g] = R.group_entry(cfg, runner, res)
            results.append(light_result(res))
            if sink is not None and res.episodes:
                sink.submit_result(res, R._meta(cfg, model, dict(seeds)))
            else:
                res.cancel_frames()
            report(groups=1, episodes=len(res.episodes))
        if sink is not None:
            sink.wait()
    finally:
        R.close_sink_and_observers(sink, policies)
    if writer is not None:
        writer.finalize(R._meta(cfg, model, seeds))
    return {"shard": spec.index, "worker": worker_identity(), "seconds": time.perf_counter() - t0,
            "results": results, "skipped": len(done)}


def run_sharded_rollout(cfg) -> dict[str, Any]:
    """``simfail rollout`` on ``cfg.executor`` (see the module docstring); the summary of a local
    run plus the per-worker table's fields."""
    from simfail.core.runner import SceneRunner
    from simfail.core.scene import StageConfig
    from simfail.core.task import get_task
    from simfail.policy import rollout as R
    from simfail.scale.sharded import worker_rates

    t_start = time.perf_counter()
    task = get_task(cfg.task)
    runner = SceneRunner(task, cfg.fps, StageConfig(width=cfg.width, height=cfg.height))
    model = runner.prototype_model
    for lp in R.load_policies(cfg, task, list(runner.prototype.layout.tracked)):  # bad policies: before any work
        lp.observer.close()
    mode = "resume" if cfg.resume else "overwrite" if cfg.overwrite else "new"
    out = Path(cfg.out)
    created = not out.exists()
    with make_executor(cfg.executor, cfg.ray) as executor:
        if not cfg.render:
            specs = [RolloutShardSpec(i, None, groups, cfg) for i, groups in
                     enumerate(shard_groups(list(range(cfg.seeds)), cfg.ray.groups_per_task or 1))]
            shard_results = [r for _, r in executor.map(rollout_shard, specs)]
            skipped: list[int] = []
            writer = None
            merge_s = verify_s = 0.0
        else:
            writer = R.dataset_writer(cfg, model, cfg.out, mode)
            seeds: dict[int, dict[str, Any]] = {}
            meta_path = writer.root / "meta" / "simfail.json"
            out_done = set(writer.completed_groups())
            if meta_path.is_file():
                seeds = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items()}

            def on_adopt(g: int, src, committed: bool) -> None:
                entry = src.meta.get("groups", {}).get(str(g))
                if entry is not None:
                    seeds[g] = entry

            try:
                run = drive_shards(
                    writer, executor, list(range(cfg.seeds)), work=rollout_shard,
                    make_spec=lambda index, root, groups: RolloutShardSpec(index, root, groups, cfg),
                    resume=mode == "resume", per_task=cfg.ray.groups_per_task, on_adopt=on_adopt,
                    desc=f"simfail rollout {cfg.task}", progress=cfg.progress)
            except BaseException:
                if created and writer.num_groups == 0:  # a failed new run leaves no folder behind
                    shutil.rmtree(out, ignore_errors=True)
                raise
            for g in out_done - set(seeds):
                if g in run.in_shards:
                    on_adopt(g, run.in_shards[g], True)
            writer.finalize(R._meta(cfg, model, seeds))
            remove_shards(writer)
            shard_results = run.shard_results
            skipped = sorted(out_done | set(run.attached))
            merge_s, verify_s = run.merge_seconds, run.verify_seconds
        name = executor.name
    results = sorted((r for s in shard_results for r in s["results"]), key=lambda r: r.group_id)
    summary = R.summarize(results)
    summary.update({"seconds": time.perf_counter() - t_start, "skipped_groups": skipped,
                    "out": str(writer.root) if writer else None, "executor": name,
                    "workers": worker_rates(shard_results, lambda r: sum(len(x.episodes) for x in r["results"]),
                                            lambda r: len(r["results"])),
                    "merge_seconds": merge_s, "verify_seconds": verify_s})
    return summary
