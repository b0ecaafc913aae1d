"""Failures no camera shows: counting them, and leaving them out of an evaluation.

An event with ``visible_in == []`` (see :mod:`simfail.labels.visibility`) happened in the
physics but no camera view shows it, so a reward model that judges videos cannot be blamed for
missing it. ``simfail evaluate exclude_unseen=true`` leaves out every episode with such an
event, and with it every ground-truth preference pair it is part of; the report counts them
either way (``unseen`` in ``metrics.json``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["UnseenCount", "unseen_episodes", "count_unseen"]


@dataclass(frozen=True)
class UnseenCount:
    """Counts over the episodes an evaluation considered.

    Attributes:
        events: Events no view shows.
        episodes: Episodes with at least one such event.
        pairs: Strict ground-truth preference pairs with such an episode on either side.
        unknown: Episodes with events whose visibility was never computed (older datasets).
        excluded: Whether those episodes and pairs were left out of the scores.
    """

    events: int
    episodes: int
    pairs: int
    unknown: int
    excluded: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def unseen_episodes(ds, episodes: list[int]) -> tuple[list[int], int, int]:
    """``(episodes with an event no view shows, number of such events, episodes whose events
    carry no visibility)`` among ``episodes`` of the dataset ``ds``."""
    out, n_events, unknown = [], 0, 0
    for ep in episodes:
        events = ds.failures(ep)
        hidden = [e for e in events if e.visible_in is not None and not e.visible_in]
        if any(e.visible_in is None for e in events):
            unknown += 1
        if hidden:
            out.append(ep)
            n_events += len(hidden)
    return out, n_events, unknown


def count_unseen(ds, episodes: list[int], *, exclude: bool) -> tuple[list[int], UnseenCount]:
    """The episodes to score (without the unseen ones when ``exclude``) and the counts."""
    hidden, n_events, unknown = unseen_episodes(ds, episodes)
    chosen = set(episodes)
    bad = set(hidden)
    pairs = sum(1 for p in ds.preferences
                if p.episode_a in chosen and p.episode_b in chosen and (p.episode_a in bad or p.episode_b in bad))
    keep = [e for e in episodes if e not in bad] if exclude else list(episodes)
    return keep, UnseenCount(n_events, len(hidden), pairs, unknown, bool(exclude))
