"""Paired bootstrap of the difference in preference accuracy of two models over contexts.

Both models are scored on the same contexts (counterfactual groups). Each replicate draws
``C`` contexts with replacement (``numpy.random.default_rng(seed)``) and computes
``A_b* - A_a*`` on the *same* draw, with ``A* = 1 - Σ n_disagree / Σ n_pairs`` over the drawn
contexts; the interval is the percentile interval of those differences. Pairing removes the
between-context variance both models share.

``simfail paired REPORT_A REPORT_B [n_boot=10000] [seed=0] [confidence=0.95]
[failure_type=NAME]`` reads two ``simfail evaluate`` reports (``metrics.json``) and prints
``A_B - A_A`` with its interval, as JSON.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError

__all__ = ["paired_bootstrap_difference", "counts_from_metrics", "compare_reports", "run", "main"]


def paired_bootstrap_difference(
    a: Mapping[str, tuple[int, int]],
    b: Mapping[str, tuple[int, int]],
    *,
    n_boot: int = 10000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    """``a``, ``b``: context -> ``(n_pairs, n_disagree)``. Returns the point difference
    ``A_b - A_a`` over the shared contexts, its percentile interval, the share of replicates
    with a difference ``<= 0`` and the counts. Contexts must carry the same ``n_pairs`` in both
    (else the models were not scored on the same pairs: :class:`ConfigError`)."""

    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ConfigError(f"n_boot must be a positive integer, got {n_boot!r}")
    keys = sorted(set(a) & set(b), key=str)
    if not keys:
        raise ConfigError("the two results share no context with pairs")
    only = sorted(set(a) ^ set(b), key=str)
    na = np.array([a[k][0] for k in keys], dtype=np.float64)
    nb = np.array([b[k][0] for k in keys], dtype=np.float64)
    if not np.array_equal(na, nb):
        bad = [k for k, x, y in zip(keys, na, nb) if x != y]
        raise ConfigError(f"contexts {bad[:5]} have different pair counts in the two results (missing model values?)")
    da = np.array([a[k][1] for k in keys], dtype=np.float64)
    db = np.array([b[k][1] for k in keys], dtype=np.float64)
    acc_a = 1.0 - da.sum() / na.sum()
    acc_b = 1.0 - db.sum() / na.sum()
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(keys), size=(n_boot, len(keys)))
    tot = na[draws].sum(axis=1)
    diff = (da[draws].sum(axis=1) - db[draws].sum(axis=1)) / tot
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(diff, [alpha, 1.0 - alpha])
    return {
        "accuracy_a": float(acc_a), "accuracy_b": float(acc_b), "difference": float(acc_b - acc_a),
        "ci": [float(lo), float(hi)], "confidence": confidence, "n_boot": n_boot, "seed": seed,
        "share_le_0": float((diff <= 0).mean()), "n_contexts": len(keys), "n_pairs": int(na.sum()),
        "contexts_not_shared": [str(k) for k in only],
    }


def counts_from_metrics(metrics: Mapping[str, Any] | str | Path, failure_type: str | None = None,
                        returns: str | None = None) -> dict[str, tuple[int, int]]:
    """Context -> ``(n_pairs, n_disagree)`` from a ``metrics.json`` (path, report folder or dict).

    ``failure_type``: use ``preference_by_failure_type[failure_type]`` instead of the overall
    preference. ``returns``: take the ``by_return[returns]`` block when given."""
    if not isinstance(metrics, Mapping):
        p = Path(str(metrics))
        p = p / "metrics.json" if p.is_dir() else p
        if not p.is_file():
            raise ConfigError(f"{p} does not exist (expected a simfail evaluate report folder or its metrics.json)")
        metrics = json.loads(p.read_text())
    block = metrics["by_return"][returns] if returns else metrics["summary"]
    if failure_type is None:
        pref = block["preference"]
    else:
        by = block.get("preference_by_failure_type", {})
        if failure_type not in by:
            raise ConfigError(f"failure type {failure_type!r} not in the report (has {sorted(by)})")
        pref = by[failure_type]
    return {str(k): (int(v["n_pairs"]), int(v["n_disagree"])) for k, v in pref["per_context"].items()}


def compare_reports(report_a: str | Path, report_b: str | Path, *, failure_type: str | None = None,
                    n_boot: int = 10000, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
    out = paired_bootstrap_difference(counts_from_metrics(report_a, failure_type), counts_from_metrics(report_b, failure_type),
                                      n_boot=n_boot, seed=seed, confidence=confidence)
    return {"a": str(report_a), "b": str(report_b), "failure_type": failure_type, **out}


def run(cfg: Any) -> int:
    """``run`` of ``simfail paired REPORT_A REPORT_B``: prints the result as JSON."""
    res = compare_reports(cfg.reports[0], cfg.reports[1], failure_type=cfg.failure_type, n_boot=cfg.n_boot,
                          seed=cfg.seed, confidence=cfg.confidence)
    print(json.dumps(res, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m simfail.learn.paired ...``: an alias of ``simfail paired ...``."""
    from simfail.cli import main as cli_main

    return cli_main(["paired", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
