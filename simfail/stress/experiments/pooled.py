"""The margin of two models pooled over training seeds, with a paired cluster-bootstrap interval.

Each model is trained once per seed and every seed's model is scored on the same held-out
groups and pairs. Per seed ``s`` and group ``g`` a model has ``(n_pairs, n_disagree)``. Pooling
sums over seeds inside each group: ``n_g = Σ_s n_{s,g}``, ``d_g = Σ_s d_{s,g}``, so the pooled
accuracy is ``A = 1 - Σ_g d_g / Σ_g n_g`` (every seed's pairs count once) and the groups stay
the unit of resampling: a replicate draws groups with replacement and takes *all* seeds of a
drawn group for *both* models (:func:`simfail.learn.paired.paired_bootstrap_difference` on the
pooled counts). Seeds are not resampled: with three seeds the interval covers scene and pair
variance, and the spread between seeds is reported beside it (per-seed margins).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from simfail.errors import ConfigError

__all__ = ["Counts", "pool_seeds", "accuracy", "pooled_margin"]

#: group key -> (n_pairs, n_disagree)
Counts = Mapping[str, tuple[int, int]]


def pool_seeds(per_seed: Sequence[Counts]) -> dict[str, tuple[int, int]]:
    """Sum each group's counts over seeds. Every seed must hold the same groups with the same
    pair counts (the same test pairs scored), else :class:`ConfigError`."""
    if not per_seed:
        raise ConfigError("no seed to pool")
    keys = set(per_seed[0])
    out: dict[str, list[int]] = {k: [0, 0] for k in keys}
    for s, c in enumerate(per_seed):
        if set(c) != keys:
            raise ConfigError(f"seed #{s} was scored on other groups ({sorted(set(c) ^ keys)[:5]} differ)")
        for k, (n, d) in c.items():
            if n != per_seed[0][k][0]:
                raise ConfigError(f"group {k}: seed #{s} has {n} pairs, seed #0 {per_seed[0][k][0]}")
            out[k][0] += int(n)
            out[k][1] += int(d)
    return {k: (v[0], v[1]) for k, v in sorted(out.items())}


def accuracy(counts: Counts) -> float | None:
    """``1 - Σ d / Σ n`` (``None`` without pairs)."""
    n = sum(v[0] for v in counts.values())
    return None if n == 0 else 1.0 - sum(v[1] for v in counts.values()) / n


def pooled_margin(a_per_seed: Sequence[Counts], b_per_seed: Sequence[Counts], *, n_boot: int, confidence: float,
                  seed: int) -> dict[str, Any]:
    """``A_b - A_a`` pooled over seeds with its paired cluster-bootstrap interval over groups,
    plus each seed's own ``A_a``, ``A_b`` and margin. ``a_per_seed[s]`` and ``b_per_seed[s]``
    come from the models of training seed ``s``."""
    from simfail.learn.paired import paired_bootstrap_difference

    if len(a_per_seed) != len(b_per_seed):
        raise ConfigError(f"{len(a_per_seed)} seeds of one arm against {len(b_per_seed)} of the other")
    pa, pb = pool_seeds(a_per_seed), pool_seeds(b_per_seed)
    if set(pa) != set(pb) or any(pa[k][0] != pb[k][0] for k in pa):
        raise ConfigError("the two arms were not scored on the same groups and pairs")
    if not any(v[0] for v in pa.values()):
        raise ConfigError("no strict pair in the held-out groups: nothing to compare")
    pa = {k: v for k, v in pa.items() if v[0]}
    pb = {k: pb[k] for k in pa}
    res = paired_bootstrap_difference(pa, pb, n_boot=n_boot, confidence=confidence, seed=seed)
    per_seed = []
    for ca, cb in zip(a_per_seed, b_per_seed):
        aa, ab = accuracy(ca), accuracy(cb)
        per_seed.append({"accuracy_a": aa, "accuracy_b": ab,
                         "difference": None if aa is None or ab is None else ab - aa})
    res["per_seed"] = per_seed
    res["n_seeds"] = len(a_per_seed)
    res["n_pairs_per_seed"] = sum(v[0] for v in a_per_seed[0].values())
    return res
