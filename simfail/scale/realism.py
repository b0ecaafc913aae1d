"""``simfail realism executor=ray``: the source dataset's groups sharded over workers, the
edited groups merged into ONE dataset.

The same executor interface and driver as ``generate`` (:mod:`simfail.scale.driver`): the
groups to edit (the source's, ``max_groups`` applied) are cut into shards of
``ray.groups_per_task``; each shard is an ordinary realism run restricted to its groups
(:func:`simfail.realism.edit.run_realism` with ``only_groups``) into
``<out>/.shards/shard-NNNNN/``, so it loads the editor once, commits every group atomically and
resumes when Ray re-runs a task whose worker died. The driver adopts the committed groups in the
source's group order (hard links, no re-encoding); a group whose every edit failed the fidelity
check is committed nowhere, as in a local run. The edited frames, parquet and videos equal a
local run's byte for byte (the editor is seeded per group, :func:`~simfail.realism.edit.group_seed`).

``meta/simfail.json`` ``realism`` is the local run's record assembled from the shards': per-group
prompts, per-episode fidelity entries (``episode`` renumbered to the output's indices),
rejections and empty groups in group order; ``timing`` adds the shards' frames and seconds
(``seconds_total`` is the driver's wall time) and ``shards`` counts them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simfail.scale.driver import drive_shards, remove_shards
from simfail.scale.executor import RayConfig, Report, make_executor, worker_identity

__all__ = ["RealismShardSpec", "realism_shard", "run_sharded_realism"]

#: Per-group lists of the realism record, assembled from the shards in group order.
GROUP_LISTS = ("episodes", "rejected")
#: Timing counters added over the shards.
SUMMED_TIMING = ("frames", "seconds_edit", "seconds_conditioning", "seconds_fidelity", "denoise_calls",
                 "chunks_denoised")


@dataclass
class RealismShardSpec:
    """One work item: edit the source ``groups`` into ``root`` with the settings ``cfg``."""

    index: int
    root: str
    groups: list[int]
    cfg: dict[str, Any]


def realism_shard(spec: RealismShardSpec, report: Report) -> dict[str, Any]:
    """A realism run over the shard's groups into its directory (resumed if it exists)."""
    from simfail.realism.edit import run_realism

    t0 = time.perf_counter()
    root = Path(spec.root)
    cfg = {**spec.cfg, "out": str(root), "executor": "local", "only_groups": list(spec.groups), "max_groups": None,
           "progress": False, "overwrite": False, "resume": root.is_dir() and any(root.iterdir())}
    summary = run_realism(cfg, log=lambda *_: None, report=report)
    return {"shard": spec.index, "worker": worker_identity(), "seconds": time.perf_counter() - t0,
            "episodes": summary["episodes_written"], "groups": len(spec.groups), "timing": summary["timing"]}


def run_sharded_realism(cfg: dict[str, Any], *, log=print) -> dict[str, Any]:
    """``simfail realism`` on ``cfg["executor"]`` (see the module docstring); the summary of a
    local run plus the per-worker table's fields."""
    from simfail.dataset.reader import SimfailDataset
    from simfail.errors import ConfigError
    from simfail.realism.edit import _check_out, make_editor, output_writer, source_crf
    from simfail.scale.sharded import worker_rates

    t_start = time.perf_counter()
    if not cfg.get("data"):
        raise ConfigError("data= is required (the simfail dataset to edit)")
    if not cfg.get("out"):
        raise ConfigError("out= is required (a new, empty folder for the edited dataset)")
    data, out = Path(str(cfg["data"])).expanduser(), Path(str(cfg["out"])).expanduser()
    resume, overwrite = bool(cfg.get("resume")), bool(cfg.get("overwrite"))
    src = SimfailDataset(data)
    _check_out(data, out, overwrite, resume)
    make_editor(cfg)  # a missing or broken model: one error before any work
    meta = src.simfail_meta
    groups = src.groups()
    gids = list(groups)
    if cfg.get("max_groups"):
        gids = gids[: int(cfg["max_groups"])]
    ray_cfg = cfg.get("ray") or {}
    ray_cfg = ray_cfg if isinstance(ray_cfg, RayConfig) else RayConfig(**ray_cfg)
    writer = output_writer(src, out, "resume" if resume else "overwrite" if overwrite else "new", source_crf(cfg, meta))
    prior = (meta_of(writer.root).get("realism") or {}) if resume else {}
    out_done = set(writer.completed_groups())
    record: dict[str, Any] = {k: v for k, v in prior.items() if k not in GROUP_LISTS + ("prompts", "empty_groups")}
    record.update({"prompts": {}, "episodes": [], "rejected": [], "empty_groups": []})
    for key in GROUP_LISTS:  # what an interrupted driver already merged
        record[key] = [e for e in prior.get(key) or [] if int(e["group"]) in out_done]
    record["prompts"] = {k: v for k, v in (prior.get("prompts") or {}).items() if int(k) in out_done}
    kept_groups = {str(g): meta["groups"][str(g)] for g in sorted(out_done) if str(g) in (meta.get("groups") or {})}
    next_episode = writer.num_episodes

    def on_adopt(g: int, shard, committed: bool) -> None:
        nonlocal next_episode
        rec = shard.meta.get("realism") or {}
        for k, v in rec.items():  # the run's settings (the same in every shard)
            if k not in GROUP_LISTS + ("prompts", "empty_groups", "timing"):
                record.setdefault(k, v)
        if str(g) in (rec.get("prompts") or {}):
            record["prompts"][str(g)] = rec["prompts"][str(g)]
        for e in rec.get("episodes") or []:
            if int(e["group"]) == g:
                e = dict(e)
                if e.get("written"):
                    e["episode"] = next_episode
                    next_episode += 1
                record["episodes"].append(e)
        record["rejected"].extend(r for r in rec.get("rejected") or [] if int(r["group"]) == g)
        if committed:
            if str(g) in (meta.get("groups") or {}):
                kept_groups[str(g)] = meta["groups"][str(g)]
        else:
            record["empty_groups"].append(g)

    shard_cfg = {k: v for k, v in cfg.items() if k != "ray"}
    with make_executor(str(cfg.get("executor")), ray_cfg) as executor:
        run = drive_shards(
            writer, executor, gids, work=realism_shard,
            make_spec=lambda index, root, items: RealismShardSpec(index, root, items, shard_cfg),
            resume=resume, per_task=ray_cfg.groups_per_task, on_adopt=on_adopt,
            desc="simfail realism", progress=bool(cfg.get("progress", True)), log=log)
        name = executor.name
    timing = {k: 0 for k in SUMMED_TIMING}
    for r in run.shard_results:
        for k in SUMMED_TIMING:
            timing[k] += r["timing"].get(k) or 0
    timing["seconds_total"] = round(time.perf_counter() - t_start, 3)
    timing["frames_per_s_edit"] = round(timing["frames"] / timing["seconds_edit"], 3) if timing["seconds_edit"] else None
    timing["frames_per_s_total"] = round(timing["frames"] / timing["seconds_total"], 3)
    timing["peak_rss_mb"] = max((r["timing"].get("peak_rss_mb") or 0.0 for r in run.shard_results), default=0.0)
    timing["shards"] = len(run.shard_results)
    record["timing"] = timing
    writer.finalize({**meta, "groups": dict(sorted(kept_groups.items(), key=lambda kv: int(kv[0]))),
                     "realism": record})
    remove_shards(writer)
    return {
        "out": str(writer.root), "episodes_in": sum(len(groups[g]) for g in gids), "episodes_written": writer.num_episodes,
        "groups_written": writer.num_groups, "groups_resumed": len(out_done) + len(run.attached),
        "rejected": record["rejected"], "timing": timing, "episodes": record["episodes"],
        "executor": name, "workers": worker_rates(run.shard_results, lambda r: r["episodes"], lambda r: r["groups"]),
        "merge_seconds": run.merge_seconds, "verify_seconds": run.verify_seconds,
    }


def meta_of(root: Path) -> dict[str, Any]:
    import json

    from simfail.dataset import layout as L

    path = Path(root) / L.SIMFAIL_META_PATH
    try:
        return json.loads(path.read_text()) if path.is_file() else {}
    except (OSError, ValueError):
        return {}
