"""The benchmark metadata of a dataset folder (``benchmark.json``, written by ``simfail
benchmark build``), read for ``run``: which groups a split holds and which operators are held
out. A dataset without it (any ``simfail generate`` output) is scored whole, every operator
reported, none marked held out."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simfail.errors import ConfigError, read_json

__all__ = ["BenchmarkMeta", "load_benchmark_meta", "META_FILES"]

#: Where the metadata may be, relative to the dataset folder, first found wins.
META_FILES: tuple[str, ...] = ("benchmark.json", "meta/benchmark.json")


@dataclass
class BenchmarkMeta:
    """``path``: the file read (``None``: no metadata); ``splits``: ``{split: [group ids]}``;
    ``held_out_operators``: operator names no training split contains; ``raw``: the file."""

    path: Path | None
    splits: dict[str, list[int]] = field(default_factory=dict)
    held_out_operators: list[str] = field(default_factory=list)
    raw: dict[str, Any] = field(default_factory=dict)

    def sources(self, split: str | None, root: Path, all_groups: Any) -> tuple[list[tuple[str, Path, list[int] | None]], str]:
        """``[(name, dataset folder, groups or None for all)]`` to score, and a note. A built
        benchmark (``simfail benchmark build``: one dataset per split and category, listed in
        ``splits.<split>.datasets``) gives the split's datasets; a single dataset gives itself
        with the split's groups (:meth:`groups`)."""
        split_info = (self.raw.get("splits") or {}).get(split) if self.path is not None else None
        if isinstance(split_info, dict) and isinstance(split_info.get("datasets"), list):
            rels = [str(r) for r in split_info["datasets"]]
            return [(r, root / r, None) for r in rels], f"split {split!r} of {self.path.name}: {len(rels)} datasets"
        if self.path is not None and isinstance(self.raw.get("datasets"), dict) and split in (None, "", "all"):
            rels = sorted(self.raw["datasets"])
            return [(r, root / r, None) for r in rels], f"every dataset of {self.path.name}"
        if self.path is not None and isinstance(self.raw.get("datasets"), dict):
            have = ", ".join(sorted(self.raw.get("splits") or {})) or "no splits"
            raise ConfigError(f"split={split!r} is not in {self.path} (it has {have})")
        groups, note = self.groups(split, all_groups())
        return [("", root, groups)], note

    def roles(self, rel: str) -> dict[int, list[str]]:
        """``{episode_index: roles}`` of one dataset of a built benchmark (empty when absent)."""
        ds = (self.raw.get("datasets") or {}).get(rel) or {}
        return {int(e["episode_index"]): list(e.get("roles") or []) for e in ds.get("episodes") or []
                if isinstance(e, dict) and "episode_index" in e}

    def groups(self, split: str | None, all_groups: list[int]) -> tuple[list[int], str]:
        """The groups of ``split`` and a note saying where they came from. Without metadata
        every group is used (``split`` is then only a label)."""
        if self.path is None:
            return list(all_groups), "no benchmark metadata: every group of the dataset"
        if split in (None, "", "all"):
            return list(all_groups), "split=all: every group"
        if split not in self.splits:
            raise ConfigError(f"split={split!r} is not in {self.path} (it has {', '.join(sorted(self.splits)) or 'no splits'})")
        have = set(all_groups)
        groups = [g for g in self.splits[split] if g in have]
        if not groups:
            raise ConfigError(f"split={split!r} of {self.path} names no group of this dataset")
        return groups, f"split {split!r} of {self.path.name}"


def _group_list(value: Any) -> list[int]:
    if isinstance(value, dict):
        for key in ("groups", "group_ids"):
            if key in value:
                return _group_list(value[key])
        return []
    if isinstance(value, list):
        return sorted(int(g) for g in value if isinstance(g, (int, float)) and not isinstance(g, bool))
    return []


def _operators(value: Any) -> list[str]:
    if isinstance(value, dict):
        return sorted({str(o) for v in value.values() for o in _operators(v)})
    if isinstance(value, list):
        return sorted({str(o) for o in value if isinstance(o, str)})
    return []


def load_benchmark_meta(data: str | Path) -> BenchmarkMeta:
    """Read the dataset's benchmark metadata; ``BenchmarkMeta(None)`` when there is none.

    Accepted shape: ``{"splits": {NAME: [groups] | {"groups": [...], "held_out_operators":
    [...]}}, "held_out_operators": [...] | {category: [...]}}``; held-out operators are the
    union of the top-level list and every split's.
    """
    root = Path(data)
    for rel in META_FILES:
        p = root / rel
        if p.is_file():
            raw = read_json(p, ConfigError, "the benchmark metadata ")
            if not isinstance(raw, dict):
                raise ConfigError(f"{p} must hold a JSON object")
            splits_raw = raw.get("splits") or {}
            splits = {str(k): _group_list(v) for k, v in splits_raw.items()} if isinstance(splits_raw, dict) else {}
            held = set(_operators(raw.get("held_out_operators")))
            if isinstance(splits_raw, dict):
                for v in splits_raw.values():
                    if isinstance(v, dict):
                        held |= set(_operators(v.get("held_out_operators")))
            return BenchmarkMeta(p, splits, sorted(held), raw)
    return BenchmarkMeta(None)
