"""``simfail scale-report``: measure what a scaled-out run costs and project a million episodes.

Every number of the "Measured" tables in docs/scale.md and README.md comes from this command,
never from hand edits (``update=[README.md,docs/scale.md]`` rewrites the block between
``<!-- scale-report -->`` and ``<!-- /scale-report -->`` in each file). It

1. generates ``groups`` groups through the sharded driver (:func:`simfail.scale.sharded.run_sharded`)
   on ``executor`` (``ray``: a Ray instance, as ``simfail generate executor=ray``), giving each
   worker's episodes/hour (episodes over the seconds its shards ran: the worker's busy time);
2. merges the generated dataset into a new one twice, with ``simfail merge``'s code: copying the
   videos (``link=false``) and hard-linking them (``link=true``, what the Ray driver does). The
   merge cost per 1,000 episodes is the wall time of adopting the groups and re-verifying their
   frame counts (what the driver does per shard); the final ``finalize`` (stats, preferences,
   info over every episode; once per run) is reported on its own, and CPU seconds of the whole;
3. measures the bytes per episode written (videos, data parquet, meta);
4. projects ``target`` episodes on ``machines`` machines: each machine runs ``workers per machine``
   workers at the measured per-worker rate; the one driver merges at the measured hard-link rate
   while the workers generate. The run takes the longer of generation and merging, plus nothing
   else modelled (Ray start-up, the final ``finalize`` over every group: see docs/scale.md); the
   table says which one limits it, and the write bandwidth the storage must sustain.

The machine's load average is recorded before and after: on a shared machine every wall time is
inflated and the projection with it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, List, Optional

from simfail.config import _f
from simfail.errors import ConfigError
from simfail.scale.executor import EXECUTORS, RayConfig

__all__ = ["ScaleReportConfig", "measure", "project", "markdown", "run", "update_block"]

BEGIN, END = "<!-- scale-report -->", "<!-- /scale-report -->"


@dataclass
class ScaleReportConfig:
    """``simfail scale-report``: per-worker episodes/hour, merge cost, a million-episode projection."""

    task: str = _f("pick_place", "task category generated for the measurement", "task=stack")
    groups: int = _f(3, "groups generated for the measurement", "groups=6", range=(1, None))
    operators: List[str] = _f(factory=lambda: ["all"], help="failure operators of the groups (generate's failures=)",
                              example="operators=[drop]")
    width: int = _f(256, "image width [px]", "width=128", range=(16, 2048))
    height: int = _f(256, "image height [px]", "height=128", range=(16, 2048))
    fps: int = _f(10, "frames per second", "fps=5", range=(1, 120))
    executor: str = _f("ray", "where the measured groups run: ray or local", "executor=local",
                       choices=list(EXECUTORS))
    ray: RayConfig = _f(factory=RayConfig, help="Ray settings of the measured run (executor=ray)")
    machines: List[int] = _f(factory=lambda: [1, 10, 100, 1000], help="cluster sizes to project",
                             example="machines=[1,8,64]")
    workers_per_machine: Optional[int] = _f(None, "workers per machine in the projection (null: the measured run's)",
                                            "workers_per_machine=1", range=(1, None))
    target: int = _f(1_000_000, "episodes to project for", "target=100000", range=(1, None))
    out: str = _f("scale_report", "working folder (the generated and merged datasets; replaced)", "out=/tmp/sr")
    json: Optional[str] = _f(None, "also save the measurements and projection as JSON", "json=scale.json")
    update: List[str] = _f(factory=list, help="markdown files whose scale-report block is rewritten",
                           example="update=[README.md,docs/scale.md]")
    progress: bool = _f(True, "progress bars", "progress=false")

    def validate(self) -> None:
        from simfail.config import check_json_path
        from simfail.schema import check_ranges

        check_ranges(self)
        self.ray.validate()
        if not self.machines or not all(isinstance(m, int) and m >= 1 for m in self.machines):
            raise ConfigError(f"machines must be a list of whole numbers >= 1, got {self.machines!r}")
        check_json_path(self.json)


def check_update_files(paths: list[str]) -> None:
    """Every ``update=`` file exists and has the marked block (checked before any measuring)."""
    for p in paths:
        text = Path(p).read_text() if Path(p).is_file() else ""
        if BEGIN not in text or END not in text:
            raise ConfigError(f"update={p}: the file has no {BEGIN} ... {END} block to rewrite")


def _load() -> float | None:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _dir_bytes(root: Path) -> dict[str, int]:
    out = {"videos": 0, "data": 0, "meta": 0}
    for p in root.rglob("*"):
        if p.is_file():
            part = p.relative_to(root).parts[0]
            out[part if part in out else "meta"] += p.stat().st_size
    return out


def measure(cfg: ScaleReportConfig) -> dict[str, Any]:
    """Run the measurement (generation on the executor, two merges, sizes); see the module docstring."""
    from simfail.commands import build_config
    from simfail.dataset.merge import MergeConfig, merge
    from simfail.scale.executor import make_executor
    from simfail.scale.sharded import run_sharded

    work = Path(cfg.out)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    gen_dir = work / "generated"
    ray_args = [f"ray.{k}={'null' if v is None else v}" for k, v in asdict(cfg.ray).items()]
    gcfg = build_config("generate", [
        f"task={cfg.task}", f"groups={cfg.groups}", f"failures.names=[{','.join(cfg.operators)}]",
        f"render.width={cfg.width}", f"render.height={cfg.height}", f"render.fps={cfg.fps}", f"out={gen_dir}",
        f"executor={cfg.executor}", f"progress={str(cfg.progress).lower()}", *ray_args])
    load_before = _load()
    t0 = time.perf_counter()
    with make_executor(cfg.executor, cfg.ray) as executor:
        workers = executor.workers
        summary = run_sharded(gcfg, executor, log=lambda *_: None)
    wall = time.perf_counter() - t0
    merges = {}
    for mode, link in (("copy", False), ("link", True)):
        c0, w0 = time.process_time(), time.perf_counter()
        m = merge(MergeConfig(dirs=[str(gen_dir)], out=str(work / f"merged_{mode}"), link=link, progress=False))
        merges[mode] = {"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
                        "adopt_s": m["seconds"], "verify_s": m["verify_seconds"], "episodes": m["episodes"]}
    sizes = _dir_bytes(gen_dir)
    eps = summary["episodes"]
    rates = [w["episodes_per_hour"] for w in summary["workers"].values()]
    return {
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cpus": os.cpu_count(), "load_average_before": load_before, "load_average_after": _load(),
        "run": {"task": cfg.task, "groups": summary["groups"], "episodes": eps, "width": cfg.width,
                "height": cfg.height, "fps": cfg.fps, "failures": list(cfg.operators), "executor": cfg.executor,
                "workers": workers, "cpus_per_worker": cfg.ray.cpus_per_worker, "wall_s": wall,
                "driver_merge_s": summary["merge_seconds"] + summary["verify_seconds"]},
        "workers": summary["workers"],
        "per_worker_episodes_per_hour": sum(rates) / len(rates) if rates else 0.0,
        "merge": merges,
        "bytes_per_episode": {k: v / eps for k, v in sizes.items()} if eps else {},
    }


def project(m: dict[str, Any], machines: list[int], target: int, workers_per_machine: int | None = None) -> list[dict]:
    """Per cluster size: generation hours (workers at the measured rate), the driver's merge hours
    (the measured hard-link merge), the wall estimate (the longer), which limits, and the storage
    write rate [MB/s] and total [GB]."""
    w = workers_per_machine or int(m["run"]["workers"])
    rate = m["per_worker_episodes_per_hour"]
    link = m["merge"]["link"]
    merge_s_per_ep = (link["adopt_s"] + link["verify_s"]) / max(1, link["episodes"])
    bpe = sum(m["bytes_per_episode"].values())
    rows = []
    for n in machines:
        gen_h = target / (rate * w * n) if rate > 0 else float("inf")
        merge_h = target * merge_s_per_ep / 3600.0
        wall = max(gen_h, merge_h)
        write_mb_s = (target / wall / 3600.0) * bpe / 1e6 if wall > 0 else 0.0
        rows.append({"machines": n, "workers": w * n, "generate_h": gen_h, "merge_h": merge_h, "wall_h": wall,
                     "limit": "workers (generation)" if gen_h >= merge_h else "driver (merge)",
                     "storage_write_mb_s": write_mb_s, "storage_total_gb": target * bpe / 1e9})
    return rows


def _hours(h: float) -> str:
    return f"{h:,.0f} h" if h >= 10 else f"{h:.1f} h" if h >= 1 else f"{h * 60:.0f} min"


def markdown(m: dict[str, Any], rows: list[dict], target: int) -> str:
    """The scale-report block: what was run, the measured rates, the projection table."""
    r = m["run"]
    lb, la = m["load_average_before"], m["load_average_after"]
    load = (f"load average {lb:.1f} before, {la:.1f} after on {m['cpus']} cores"
            if lb is not None and la is not None else "load average unknown")
    copy, link = m["merge"]["copy"], m["merge"]["link"]
    k = lambda x, e: 1000.0 * x / max(1, e)  # noqa: E731 (seconds per 1,000 episodes)
    bpe = m["bytes_per_episode"]
    lines = [
        f"Measured by `simfail scale-report` on {m['when']} ({load}; no GPU): {r['task']}, "
        f"{r['width']}x{r['height']}, 3 views, {r['fps']} fps, failures {','.join(r['failures'])}, "
        f"{r['groups']} groups = {r['episodes']} episodes on `executor={r['executor']}` with {r['workers']} "
        f"worker(s) of {r['cpus_per_worker']:g} CPU(s); whole command {r['wall_s']:.1f} s.",
        "",
        "| measured | value |",
        "|---|---|",
        f"| per-worker episodes/hour (episodes over the worker's busy seconds) | **{m['per_worker_episodes_per_hour']:,.0f}** |",
        f"| merge, copying videos (`simfail merge`), per 1,000 episodes | "
        f"{k(copy['adopt_s'] + copy['verify_s'], copy['episodes']):.1f} s |",
        f"| merge, hard links (`link=true`, what the Ray driver does), per 1,000 episodes | "
        f"**{k(link['adopt_s'] + link['verify_s'], link['episodes']):.1f} s** |",
        f"| merge CPU seconds per 1,000 episodes, hard links (copy) | {k(link['cpu_s'], link['episodes']):.1f} "
        f"({k(copy['cpu_s'], copy['episodes']):.1f}) s, the final meta included |",
        f"| final meta (`finalize`: stats, preferences, info) once per run, here | "
        f"{link['wall_s'] - link['adopt_s'] - link['verify_s']:.2f} s for {link['episodes']} episodes |",
        f"| bytes per episode (videos / data / meta) | {sum(bpe.values()) / 1e3:,.0f} KB ({bpe.get('videos', 0) / 1e3:,.0f} / "
        f"{bpe.get('data', 0) / 1e3:,.0f} / {bpe.get('meta', 0) / 1e3:,.0f} KB) |",
        "",
        f"Projected time for {target:,} episodes (each machine like this one, {rows[0]['workers']} worker(s) per "
        "machine at the measured rate; one driver merging with hard links while the workers generate):",
        "",
        "| machines | generation | driver merge | estimate | limited by | storage write rate | storage total |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['machines']:,} | {_hours(row['generate_h'])} | {_hours(row['merge_h'])} | "
                     f"**{_hours(row['wall_h'])}** | {row['limit']} | {row['storage_write_mb_s']:.1f} MB/s | "
                     f"{row['storage_total_gb']:,.0f} GB |")
    return "\n".join(lines)


def update_block(path: str | Path, block: str) -> None:
    """Replace the text between the scale-report markers of ``path`` with ``block`` (atomic)."""
    from simfail.learn.checkpoint import atomic_write_bytes

    p = Path(path)
    text = p.read_text()
    pattern = re.compile(re.escape(BEGIN) + r".*?" + re.escape(END), re.S)
    if not pattern.search(text):
        raise ConfigError(f"update={p}: the file has no {BEGIN} ... {END} block to rewrite")
    new = pattern.sub(lambda _: f"{BEGIN}\n{block}\n{END}", text, count=1)
    atomic_write_bytes(str(p), new.encode())


def run(cfg: ScaleReportConfig) -> int:
    """``simfail scale-report``: measure, project, print, save and update the docs blocks."""
    check_update_files(cfg.update)
    m = measure(cfg)
    rows = project(m, list(cfg.machines), cfg.target, cfg.workers_per_machine)
    block = markdown(m, rows, cfg.target)
    print(block)
    if cfg.json:
        from simfail.learn.checkpoint import atomic_write_bytes

        atomic_write_bytes(cfg.json, (json.dumps({"measured": m, "projection": rows}, indent=2) + "\n").encode())
    for p in cfg.update:
        update_block(p, block)
    return 0
