"""``simfail benchmark compare RUN1 RUN2 ... [out=DIR]``: several ``benchmark run`` results
side by side (every table of :func:`simfail.benchmark.run.leaderboard_text`, one row per model).

Results are only comparable on the same data and metric definitions: runs whose datasets have
different content hashes (:func:`simfail.stress.identity.dataset_content_hash`), different
splits, or other ``returns`` / ``tie_tol`` / ``timing_threshold`` / ``confidence`` settings are
refused with one line. A model present in several runs with the same identity (name, arguments,
weights hash) is shown once; two different identities under one label get a ``#2`` suffix.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, List, Optional

from simfail.commands import Command
from simfail.config import _f
from simfail.errors import ConfigError

__all__ = ["BenchmarkCompareConfig", "COMMAND", "compare_runs", "load_run", "main"]


@dataclass
class BenchmarkCompareConfig:
    """``simfail benchmark compare RUN1 RUN2 ... [out=DIR]``."""

    runs: List[str] = _f(factory=list, help="benchmark run folders (or their results.json), one or more",
                         example="simfail benchmark compare RUN1 RUN2", positional=True, required=True)
    out: Optional[str] = _f(None, "folder of compare.txt, compare.json and figure3.png (default: none written)",
                            "out=DIR")

    def validate(self) -> None:
        if not self.runs:
            raise ConfigError("give one or more benchmark run folders: simfail benchmark compare RUN1 RUN2")


def load_run(path: str | Path) -> dict[str, Any]:
    """A run's ``results.json`` (the folder or the file)."""
    p = Path(path)
    f = p / "results.json" if p.is_dir() else p
    try:
        obj = json.loads(f.read_text())
    except OSError as exc:
        raise ConfigError(f"{path} is not a benchmark run folder: cannot read {f} ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise ConfigError(f"{f} is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict) or "benchmark_run_version" not in obj or "models" not in obj:
        raise ConfigError(f"{f} is not the results.json of simfail benchmark run")
    return obj


#: Settings that change what the numbers mean: runs must agree on them.
_SAME_SETTINGS: tuple[str, ...] = ("returns", "tie_tol", "timing_threshold", "confidence")


def _same_identity(a: dict[str, Any], b: dict[str, Any]) -> bool:
    keys = ("spec", "args", "weights_hash")
    return all(a.get(k) == b.get(k) for k in keys)


def compare_runs(paths: list[str]) -> dict[str, Any]:
    """Merged results: the first run's dataset block, the union of models (deduplicated by
    identity) and of categories/operators. ConfigError when the runs' dataset hashes or
    splits differ."""
    runs = [(p, load_run(p)) for p in paths]
    base_path, base = runs[0]
    h0, s0 = base["dataset"]["content_hash"], base["dataset"]["split"]
    for p, r in runs[1:]:
        h, s = r["dataset"]["content_hash"], r["dataset"]["split"]
        if h != h0:
            raise ConfigError(f"cannot compare: {p} was run on dataset {h[:23]}, {base_path} on {h0[:23]} "
                              "(different data; rerun both on the same benchmark copy)")
        if s != s0 or r["dataset"]["groups"] != base["dataset"]["groups"]:
            raise ConfigError(f"cannot compare: {p} scored split {s!r}, {base_path} split {s0!r} (other groups)")
        for key in _SAME_SETTINGS:
            a, b = base["settings"].get(key), r["settings"].get(key)
            if a != b:
                raise ConfigError(f"cannot compare: {p} used {key}={b}, {base_path} {key}={a} (other metric definitions)")
    models: dict[str, Any] = {}
    for _, r in runs:
        for lab, m in r["models"].items():
            name, k = lab, 1
            while name in models and not _same_identity(models[name]["identity"], m["identity"]):
                k += 1
                name = f"{lab} #{k}"
            models.setdefault(name, m)
    cats = list(base["categories"])
    for _, r in runs[1:]:
        cats += [c for c in r["categories"] if c not in cats]
    ops = sorted({o for _, r in runs for o in r["operators"]})
    return {**base, "models": models, "categories": cats, "operators": ops, "compared": [str(p) for p, _ in runs]}


def main(cfg: BenchmarkCompareConfig) -> int:
    from simfail.learn.checkpoint import atomic_write_bytes

    from .run import draw_figure3, leaderboard_text

    merged = compare_runs(list(cfg.runs))
    text = leaderboard_text(merged)
    print(text)
    if cfg.out:
        out = Path(cfg.out)
        atomic_write_bytes(out / "compare.txt", (text + "\n").encode())
        atomic_write_bytes(out / "compare.json", (json.dumps(merged, indent=2, allow_nan=False, default=str) + "\n").encode())
        draw_figure3(merged, out / "figure3.png")
        print(f"comparison: {out}", file=sys.stdout)
    return 0


COMMAND = Command("benchmark compare", "several benchmark run results side by side (same dataset hash only)",
                  "simfail.benchmark.compare:BenchmarkCompareConfig", "simfail.benchmark.compare:main",
                  example="simfail benchmark compare RUN1 RUN2 out=DIR")
