"""Per-variant preference accuracy from a ``simfail evaluate`` report's score cache.

The report's ``preference_by_failure_type`` groups episodes by the *detected* failure events,
so a perturbation that also causes other events (a collision that ends in a drop) shows up
under several types. To measure how a model does on a held-out *perturbation* (variant), this
module pairs, in every context, the expert with each episode of that variant (strict pairs
only, model return = sum of the dense output mapped back to the episode's length, ties count
as disagreements as in :func:`simfail.stress.metrics.preference_accuracy`).

``python -m simfail.learn.analysis REPORT DATA [variants=a,b] [returns=sum]`` prints per
variant ``A`` and the pair counts as JSON; :func:`variant_counts` gives per-context counts
for :func:`simfail.learn.paired.paired_bootstrap_difference`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError

__all__ = ["report_returns", "variant_counts", "variant_accuracy", "main"]


def report_returns(report: str | Path, returns: str = "sum") -> dict[int, float]:
    """Episode index -> model return, from ``REPORT/cache/*.jsonl`` (errors are left out)."""
    from simfail.stress.metrics import episode_return
    from simfail.stress.preprocess import interpolate_to_length

    files = sorted((Path(report) / "cache").glob("*.jsonl"))
    if len(files) != 1:
        raise ConfigError(f"{report}: expected one score cache under cache/, found {len(files)}")
    out: dict[int, float] = {}
    for line in files[0].read_text().splitlines()[1:]:
        if not line.strip():
            continue
        rec = json.loads(line)
        if rec.get("error") or rec.get("raw") is None:
            continue
        raw = np.asarray(rec["raw"], dtype=np.float64)
        vals = raw if rec.get("idx") is None else interpolate_to_length(raw, np.asarray(rec["idx"]), int(rec["n"]))
        out[int(rec["ep"])] = episode_return(vals, returns)
    return out


def variant_counts(ds: Any, values: dict[int, float], variant: str) -> dict[str, tuple[int, int]]:
    """Context -> ``(n_pairs, n_disagree)`` over the strict pairs (expert, episode of ``variant``)."""
    counts: dict[str, tuple[int, int]] = {}
    for g, eps in ds.groups().items():
        rows = {e: ds.episode(e) for e in eps if e in values}
        experts = [e for e, r in rows.items() if r["simfail.variant"] == "expert"]
        targets = [e for e, r in rows.items() if r["simfail.variant"] == variant]
        n = d = 0
        for x in experts:
            for t in targets:
                sy = np.sign(float(rows[x]["simfail.score"]) - float(rows[t]["simfail.score"]))
                if sy == 0:
                    continue
                n += 1
                d += int(np.sign(values[x] - values[t]) != sy)
        if n:
            counts[str(g)] = (n, d)
    return counts


def variant_accuracy(report: str | Path, data: str | Path, variants: list[str] | None = None,
                     returns: str = "sum") -> dict[str, dict[str, Any]]:
    from simfail.dataset.reader import SimfailDataset

    ds = SimfailDataset(data)
    values = report_returns(report, returns)
    names = variants or sorted({str(ds.episode(e)["simfail.variant"]) for e in values} - {"expert"})
    out = {}
    for v in names:
        c = variant_counts(ds, values, v)
        n = sum(x[0] for x in c.values())
        d = sum(x[1] for x in c.values())
        out[v] = {"accuracy": (1 - d / n) if n else None, "n_pairs": n, "n_disagree": d, "n_contexts": len(c)}
    return out


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    paths = [a for a in argv if "=" not in a]
    opts = dict(a.split("=", 1) for a in argv if "=" in a)
    if len(paths) != 2:
        print("usage: python -m simfail.learn.analysis REPORT DATA [variants=a,b] [returns=sum]", file=sys.stderr)
        return 2
    variants = [v for v in opts.get("variants", "").split(",") if v] or None
    print(json.dumps(variant_accuracy(paths[0], paths[1], variants, opts.get("returns", "sum")), indent=2))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
