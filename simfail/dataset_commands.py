"""``simfail generate``, ``bench``, ``rates``, ``check`` and ``list``: the ``run(cfg) -> int``
functions the command registry (:mod:`simfail.commands`) calls with a checked config."""

from __future__ import annotations

import json
from dataclasses import replace

from simfail.config import BenchConfig, CheckConfig, GenerateConfig, ListConfig

__all__ = ["run_generate", "run_bench", "run_generate_bench", "run_rates", "run_check", "run_list"]


def run_generate(cfg: GenerateConfig) -> int:
    from simfail.generate import run
    from simfail.report import summary_table

    summary = run(cfg)
    print(summary_table(summary))
    if "workers" in summary:  # executor=ray: one row per worker (simfail.scale.sharded)
        from simfail.scale.sharded import worker_table

        print(worker_table(summary))
    return 0


def run_bench(cfg: BenchConfig) -> int:
    """``simfail bench``: dispatch on ``mode`` (:data:`simfail.config.BENCH_MODES`)."""
    from simfail.commands import _resolve
    from simfail.config import BENCH_MODES

    return int(_resolve(BENCH_MODES[cfg.mode])(cfg) or 0)


def run_generate_bench(cfg: BenchConfig) -> int:
    """``simfail bench`` (mode=generate): episodes/hour against the slowest resource alone."""
    from simfail.bench import BenchConfig as BenchRun
    from simfail.bench import bench_table, run_bench as measure

    result = measure(BenchRun(generate=cfg.generate_config(), repeats=cfg.repeats, visibility=cfg.visibility))
    print(bench_table(result))
    if cfg.json is not None:
        from simfail.learn.checkpoint import atomic_write_bytes

        atomic_write_bytes(cfg.json, (json.dumps(result.to_dict(), indent=2) + "\n").encode())
    return 0


def run_rates(cfg: GenerateConfig) -> int:
    from simfail.core.task import get_task
    from simfail.generate import run_tasks, task_config
    from simfail.rates import measure_rates, rates_overview, rates_table

    results = []
    for name in run_tasks(cfg):
        r = measure_rates(replace(task_config(cfg, get_task(name)), task=name), progress=cfg.progress)
        results.append(r)
        print(rates_table(r))
    if len(results) > 1:
        print(rates_overview(results))
    return 0


def run_check(cfg: CheckConfig) -> int:
    from simfail.dataset.reader import SimfailDataset

    if cfg.benchmark is not None:  # a whole benchmark folder against its published hashes
        from simfail.benchmark.check import check_benchmark

        return check_benchmark(cfg.benchmark, cfg.data)

    problems = SimfailDataset(cfg.data).check()
    for p in problems:
        print(f"problem: {p}")
    print("ok" if not problems else f"{len(problems)} problem(s)")
    return 0 if not problems else 1


def _ranges(p) -> str:
    (a, b), (c, d) = p.failure_range, p.near_miss_range
    return f"failure {a:g}-{b:g}, near miss {c:g}-{d:g}"


def run_list(_: ListConfig) -> int:
    from simfail.core.task import get_task, task_names
    from simfail.counterfactual.operators import OPERATORS

    for name in task_names():
        task = get_task(name)
        print(f"{name}: {task.description}")
        for pname, p in task.perturbations().items():
            via = f" [generic {p.operator}]" if hasattr(p, "operator") else ""
            print(f"  {pname:<20} {p.description}{via}  (detected as: {', '.join(p.intended)}; {_ranges(p)})")
    print("generic operators (every task; failures=[generic] selects them all; docs/counterfactuals.md):")
    for oname in OPERATORS.names():
        op = OPERATORS.get(oname)
        seen = ", ".join(op.intended) if op.intended else "any failure event"
        print(f"  {oname:<20} {op.description}  (params: {op.summary()}; detected as: {seen}; {_ranges(op)})")
    from simfail.perturbations.nuisance import ALTERNATIVES

    print("clean alternatives (every task; failures.alternatives=[...], docs/benchmark.md):")
    for pname, p in ALTERNATIVES.items():
        print(f"  {pname:<20} {p.description}")
    return 0
