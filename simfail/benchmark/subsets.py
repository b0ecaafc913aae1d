"""Pair subsets of a built benchmark, from the episode roles in ``benchmark.json``.

Pairs are the paper's strict pairs inside one group (one scene): ``(better, worse)`` episode
indices with ``score[better] > score[worse]``. A subset keeps the pairs whose two episodes have
the roles it names (:data:`SUBSETS`); :func:`subset_accuracy` scores a model's per-episode
returns on them (a tie counts as a disagreement, as in the paper, and as half in ``A_half``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["SUBSETS", "subset_pairs", "subset_accuracy", "cached_returns"]

Roles = list[str]

#: subset -> predicate on (roles of the better episode, roles of the worse one)
SUBSETS: dict[str, Callable[[Roles, Roles], bool]] = {
    "clean_vs_failure": lambda a, b: "expert" in a and "expert" not in b,
    # a clean alternative (another way of doing it well) against a failure or sloppy variant
    "nuisance": lambda a, b: "clean_alternative" in a and bool({"failure", "near_miss"} & set(b)),
    "bad_but_successful": lambda a, b: bool({"expert", "clean_alternative"} & set(a)) and "bad_but_successful" in b,
    "delayed": lambda a, b: bool({"expert", "clean_alternative"} & set(a)) and "delayed" in b,
    "near_miss": lambda a, b: "near_miss" in a or "near_miss" in b,
    "held_out_operator": lambda a, b: "held_out_operator" in a or "held_out_operator" in b,
}


def subset_pairs(episodes: list[dict[str, Any]], scores: Mapping[int, float]) -> dict[str, list[tuple[int, int]]]:
    """``{subset: [(better, worse), ...]}`` over the strict pairs of each group.

    Args:
        episodes: A dataset's ``benchmark.json`` episode rows (``episode_index``, ``group_id``, ``roles``).
        scores: Episode index -> ground-truth score (0-100).
    """
    by_group: dict[int, list[dict[str, Any]]] = {}
    for e in episodes:
        by_group.setdefault(int(e["group_id"]), []).append(e)
    out: dict[str, list[tuple[int, int]]] = {name: [] for name in SUBSETS}
    for rows in by_group.values():
        for a in rows:
            for b in rows:
                ia, ib = int(a["episode_index"]), int(b["episode_index"])
                if scores[ia] <= scores[ib]:
                    continue
                for name, keep in SUBSETS.items():
                    if keep(a["roles"], b["roles"]):
                        out[name].append((ia, ib))
    return out


def subset_accuracy(pairs: list[tuple[int, int]], returns: Mapping[int, float], tie_tol: float = 0.0) -> dict[str, Any]:
    """``A`` (ties are disagreements), ``A_half`` (ties count half), tie rate and pair count."""
    if not pairs:
        return {"pairs": 0, "A": None, "A_half": None, "ties": None}
    right = sum(returns[a] - returns[b] > tie_tol for a, b in pairs)
    ties = sum(abs(returns[a] - returns[b]) <= tie_tol for a, b in pairs)
    n = len(pairs)
    return {"pairs": n, "A": right / n, "A_half": (right + 0.5 * ties) / n, "ties": ties / n}


def cached_returns(report: str | Path) -> dict[int, float]:
    """Summed per-frame rewards per episode from a ``simfail evaluate`` report's score cache
    (``REPORT/cache/*.jsonl``; one model per report)."""
    files = sorted(Path(report, "cache").glob("*.jsonl"))
    if len(files) != 1:
        raise ValueError(f"{report}: expected one score cache, found {len(files)}")
    out: dict[int, float] = {}
    for line in files[0].read_text().splitlines()[1:]:
        row = json.loads(line)
        if row.get("raw") is not None:
            out[int(row["ep"])] = float(sum(row["raw"]))
    return out
