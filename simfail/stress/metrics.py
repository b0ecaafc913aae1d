"""Metrics of the reward-model stress test. Pure numpy/scipy; every function documents its
exact definition.

Notation: a *context* ``c`` is a set of rollouts of one task from one (similar) initial state;
in simfail it is a counterfactual group (the expert plus its perturbed variants). ``y`` are
ground-truth episode scores in ``[0, 100]`` and ``ŷ`` the model's returns.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import stats

RETURN_MODES: tuple[str, ...] = ("sum", "last", "mean")


# --------------------------------------------------------------------------- returns


def episode_return(rewards: np.ndarray, mode: str = "sum") -> float:
    """Model return of one episode from its per-frame rewards ``r_1..r_T``.

    ``sum``: ``Σ_t r_t`` (the paper's ``ŷ``); ``last``: ``r_T``; ``mean``: ``Σ_t r_t / T``.
    """

    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    if r.size == 0:
        raise ValueError("cannot compute the return of an empty reward trace")
    if mode == "sum":
        return float(r.sum())
    if mode == "last":
        return float(r[-1])
    if mode == "mean":
        return float(r.mean())
    raise ValueError(f"unknown return mode {mode!r}; known: {', '.join(RETURN_MODES)}")


# --------------------------------------------------------------------------- preference accuracy


@dataclass(frozen=True)
class ContextCounts:
    """Pair counts of one context.

    ``n_pairs`` = |P_c| (strict ground-truth pairs whose model sign is known), ``n_disagree``
    = pairs ordered against the ground truth (model ties included: the paper's formula),
    ``n_missing`` = strict pairs left out because the model value of one side is missing
    (NaN: the model errored on that episode), ``n_tie`` = the disagreements that are model ties
    (``s_M = 0``).
    """

    n_pairs: int
    n_disagree: int
    n_missing: int = 0
    n_tie: int = 0

    @property
    def disagreement(self) -> float | None:
        """``D_c = n_disagree / n_pairs``, ``None`` when the context has no strict pair."""
        return self.n_disagree / self.n_pairs if self.n_pairs else None


@dataclass
class PreferenceAccuracy:
    """Result of :func:`preference_accuracy`.

    Attributes:
        accuracy: ``A = 1 - Σ_c |P_c| D_c / Σ_c |P_c|``, ``None`` when no context has a pair.
        n_pairs: ``Σ_c |P_c|``.
        n_disagree: ``Σ_c |P_c| D_c``.
        n_missing: strict pairs dropped because a model value was missing (counted, not scored).
        contexts: per-context counts (``D_c`` is ``contexts[key].disagreement``), only the
            contexts with at least one pair.
        skipped: keys of contexts with no strict pair (all ``y`` tied, or fewer than two
            rollouts, or every pair missing).
        ci: bootstrap percentile interval ``(low, high)`` of ``A``, or ``None``.
        confidence, n_boot, seed: settings of the bootstrap.
        n_tie: strict pairs the model ties (``s_M = 0``); they are disagreements in ``A``.
        accuracy_ties_half: ``1 - (n_disagree - n_tie / 2) / n_pairs``: a tie counted as half
            a point (the expectation of a fair coin flip on ties), ``None`` without pairs.
        tie_rate: ``n_tie / n_pairs``, ``None`` without pairs.
        ci_ties_half: the same cluster bootstrap (same draws) of ``accuracy_ties_half``.
    """

    accuracy: float | None
    n_pairs: int
    n_disagree: int
    n_missing: int
    contexts: dict[Hashable, ContextCounts]
    skipped: list[Hashable]
    ci: tuple[float, float] | None = None
    confidence: float = 0.95
    n_boot: int = 0
    seed: int | None = None
    n_tie: int = 0
    ci_ties_half: tuple[float, float] | None = None

    @property
    def accuracy_ties_half(self) -> float | None:
        return 1.0 - (self.n_disagree - 0.5 * self.n_tie) / self.n_pairs if self.n_pairs else None

    @property
    def tie_rate(self) -> float | None:
        return self.n_tie / self.n_pairs if self.n_pairs else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "accuracy_ties_half": self.accuracy_ties_half,
            "tie_rate": self.tie_rate,
            "n_tie": self.n_tie,
            "ci_ties_half": list(self.ci_ties_half) if self.ci_ties_half is not None else None,
            "n_pairs": self.n_pairs,
            "n_disagree": self.n_disagree,
            "n_missing": self.n_missing,
            "n_contexts": len(self.contexts),
            "n_skipped_contexts": len(self.skipped),
            "ci": list(self.ci) if self.ci is not None else None,
            "confidence": self.confidence,
            "n_boot": self.n_boot,
            "seed": self.seed,
            "per_context": {
                str(k): {"n_pairs": c.n_pairs, "n_disagree": c.n_disagree, "n_tie": c.n_tie, "D": c.disagreement}
                for k, c in self.contexts.items()
            },
        }


def _sign_matrix_from_values(v: np.ndarray, tie_tol: float) -> np.ndarray:
    d = v[:, None] - v[None, :]
    s = np.sign(d)
    if tie_tol > 0:
        s[np.abs(d) <= tie_tol] = 0.0
    return s  # NaN where a value is missing


def _count_pairs(y: np.ndarray, model_sign: np.ndarray, pairs: Iterable[tuple[int, int]] | None) -> ContextCounts:
    """Count strict pairs and disagreements given ``model_sign[i, j] = s_M^{ij}`` (NaN = missing)."""
    n = len(y)
    if pairs is None:
        ii, jj = np.triu_indices(n, k=1)
    else:
        plist = list(pairs)
        if not plist:
            return ContextCounts(0, 0, 0)
        ii = np.array([p[0] for p in plist], dtype=np.int64)
        jj = np.array([p[1] for p in plist], dtype=np.int64)
    sh = np.sign(y[ii] - y[jj])
    strict = sh != 0
    sm = model_sign[ii, jj]
    missing = strict & np.isnan(sm)
    scored = strict & ~np.isnan(sm)
    dis = scored & (sm != sh)
    tie = scored & (sm == 0)
    return ContextCounts(int(scored.sum()), int(dis.sum()), int(missing.sum()), int(tie.sum()))


def bootstrap_accuracy_ci(
    n_pairs: Sequence[int], n_disagree: Sequence[float], *, n_boot: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``A`` over contexts.

    Each of ``n_boot`` replicates draws ``C`` contexts with replacement (``C`` = number of
    contexts with pairs: a cluster bootstrap over groups, the pairs of a context stay
    together) using ``numpy.random.default_rng(seed)`` and computes
    ``A* = 1 - Σ n_disagree / Σ n_pairs`` over the draw; the interval is the
    ``(1-confidence)/2`` and ``(1+confidence)/2`` quantiles (numpy's linear method) of the
    ``A*``. ``None`` when there are no contexts or ``n_boot < 1``.
    """

    npairs = np.asarray(n_pairs, dtype=np.float64)
    ndis = np.asarray(n_disagree, dtype=np.float64)
    c = len(npairs)
    if c == 0 or n_boot < 1:
        return None
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, c, size=(n_boot, c))
    a = 1.0 - ndis[draws].sum(axis=1) / npairs[draws].sum(axis=1)
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(a, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


def _aggregate(
    counts: Mapping[Hashable, ContextCounts], *, n_boot: int, confidence: float, seed: int
) -> PreferenceAccuracy:
    kept = {k: c for k, c in counts.items() if c.n_pairs > 0}
    skipped = [k for k, c in counts.items() if c.n_pairs == 0]
    n_pairs = sum(c.n_pairs for c in kept.values())
    n_dis = sum(c.n_disagree for c in kept.values())
    n_tie = sum(c.n_tie for c in kept.values())
    n_missing = sum(c.n_missing for c in counts.values())
    acc = 1.0 - n_dis / n_pairs if n_pairs else None
    ci = ci_half = None
    if n_boot > 0 and kept:
        pairs = [c.n_pairs for c in kept.values()]
        ci = bootstrap_accuracy_ci(pairs, [c.n_disagree for c in kept.values()], n_boot=n_boot, confidence=confidence, seed=seed)
        ci_half = bootstrap_accuracy_ci(
            pairs, [c.n_disagree - 0.5 * c.n_tie for c in kept.values()], n_boot=n_boot, confidence=confidence, seed=seed
        )
    return PreferenceAccuracy(acc, n_pairs, n_dis, n_missing, kept, skipped, ci, confidence, n_boot,
                              seed if n_boot > 0 else None, n_tie, ci_half)


def _iter_contexts(contexts: Mapping[Hashable, Any] | Sequence[Any]) -> Iterable[tuple[Hashable, Any]]:
    if isinstance(contexts, Mapping):
        return contexts.items()
    return enumerate(contexts)


def _score_vectors(key: Hashable, y: Sequence[float], yhat: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """One context's true scores ``y`` and model returns ``ŷ`` as flat float64 arrays;
    ``ValueError`` naming the context when their sizes differ."""
    y = np.asarray(y, dtype=np.float64).reshape(-1)
    yhat = np.asarray(yhat, dtype=np.float64).reshape(-1)
    if y.shape != yhat.shape:
        raise ValueError(f"context {key!r}: {y.size} scores but {yhat.size} model returns")
    return y, yhat


def preference_accuracy(
    contexts: Mapping[Hashable, tuple[Sequence[float], Sequence[float]]] | Sequence[tuple[Sequence[float], Sequence[float]]],
    *,
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    tie_tol: float = 0.0,
) -> PreferenceAccuracy:
    """Preference ordering accuracy of the paper (section 3.1).

    ``contexts`` is a sequence (keys = positions) or a mapping of ``(y, ŷ)``: ground-truth
    scores and model returns of the rollouts of one context, in the same order.

    For each context: ``P_c = {(i, j) : i < j, y_i != y_j}`` (pairs tied in ``y`` are excluded);
    ``s_H = sign(y_i - y_j)``, ``s_M = sign(ŷ_i - ŷ_j)`` where ``|ŷ_i - ŷ_j| <= tie_tol``
    counts as ``s_M = 0``; ``D_c = |{(i, j) in P_c : s_M != s_H}| / |P_c|``. A model tie
    (``s_M = 0``) is therefore a disagreement, never half a point. Overall
    ``A = 1 - Σ_c |P_c| D_c / Σ_c |P_c|`` (contexts weighted by their pair count).
    Contexts with no strict pair are skipped and listed in ``skipped``. A NaN ``ŷ`` (a model
    error) removes that rollout's pairs from ``P_c``; they are counted in ``n_missing``.

    With ``n_boot > 0`` a bootstrap interval over contexts is added
    (:func:`bootstrap_accuracy_ci`, seed recorded in the result).
    """

    counts: dict[Hashable, ContextCounts] = {}
    for key, (y, yhat) in _iter_contexts(contexts):
        y, yhat = _score_vectors(key, y, yhat)
        counts[key] = _count_pairs(y, _sign_matrix_from_values(yhat, tie_tol), None)
    return _aggregate(counts, n_boot=n_boot, confidence=confidence, seed=seed)


def preference_accuracy_on_pairs(
    contexts: Mapping[Hashable, tuple[Sequence[float], Sequence[float], Iterable[tuple[int, int]]]],
    *,
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
    tie_tol: float = 0.0,
) -> PreferenceAccuracy:
    """:func:`preference_accuracy` restricted to chosen pairs: each context is ``(y, ŷ, pairs)``
    with ``pairs`` index pairs ``(i, j)`` into ``y``; only those of them with ``y_i != y_j``
    enter ``P_c``. Ties, missing values and the cluster bootstrap over contexts are as there."""

    counts: dict[Hashable, ContextCounts] = {}
    for key, (y, yhat, pairs) in contexts.items():
        y, yhat = _score_vectors(key, y, yhat)
        counts[key] = _count_pairs(y, _sign_matrix_from_values(yhat, tie_tol), pairs)
    return _aggregate(counts, n_boot=n_boot, confidence=confidence, seed=seed)


def pairwise_preference_accuracy(
    contexts: Mapping[Hashable, tuple[Sequence[float], np.ndarray]] | Sequence[tuple[Sequence[float], np.ndarray]],
    *,
    n_boot: int = 0,
    confidence: float = 0.95,
    seed: int = 0,
) -> PreferenceAccuracy:
    """Preference accuracy of a pairwise model.

    Each context is ``(y, P)`` with ``P[i, j]`` = the model's probability that rollout ``i``
    is preferred over ``j`` (NaN where not available). ``s_M^{ij} = sign(P[i, j] - 0.5)``
    (so ``P = 0.5`` is a tie, a disagreement); everything else as in
    :func:`preference_accuracy`. Only ``P[i, j]`` with ``i < j`` is read.
    """

    counts: dict[Hashable, ContextCounts] = {}
    for key, (y, p) in _iter_contexts(contexts):
        y = np.asarray(y, dtype=np.float64).reshape(-1)
        p = np.asarray(p, dtype=np.float64)
        if p.shape != (y.size, y.size):
            raise ValueError(f"context {key!r}: probability matrix must be ({y.size}, {y.size}), got {p.shape}")
        counts[key] = _count_pairs(y, np.sign(p - 0.5), None)
    return _aggregate(counts, n_boot=n_boot, confidence=confidence, seed=seed)


@dataclass(frozen=True)
class ScoredEpisode:
    """One rollout with its ground truth and the model's return, for the grouping helpers.

    ``value`` is the model return (NaN when the model errored). ``failure_types`` are the
    types of the episode's confirmed failure events; ``safety_failure`` says whether any of
    them has category ``"safety"``.
    """

    context: Hashable
    category: str
    score: float
    value: float
    variant: str = ""
    failure_types: tuple[str, ...] = ()
    success: bool = True
    safety_failure: bool = False
    episode_id: str = ""

    @property
    def is_reference(self) -> bool:
        """Expert or clean: the expert variant, or any episode without a failure event."""
        return self.variant == "expert" or not self.failure_types


def _by_context(episodes: Iterable[ScoredEpisode]) -> dict[Hashable, list[ScoredEpisode]]:
    out: dict[Hashable, list[ScoredEpisode]] = defaultdict(list)
    for e in episodes:
        out[e.context].append(e)
    return dict(out)


def contexts_from_episodes(episodes: Iterable[ScoredEpisode]) -> dict[Hashable, tuple[np.ndarray, np.ndarray]]:
    """``{context: (y, ŷ)}`` in the order the episodes came."""
    return {
        k: (np.array([e.score for e in eps], dtype=np.float64), np.array([e.value for e in eps], dtype=np.float64))
        for k, eps in _by_context(episodes).items()
    }


def preference_accuracy_by_category(episodes: Sequence[ScoredEpisode], **kwargs: Any) -> dict[str, PreferenceAccuracy]:
    """:func:`preference_accuracy` separately for each task category (all pairs of each
    context, contexts grouped by the category of their episodes). ``kwargs`` are passed on."""
    by_cat: dict[str, list[ScoredEpisode]] = defaultdict(list)
    for e in episodes:
        by_cat[e.category].append(e)
    return {cat: preference_accuracy(contexts_from_episodes(eps), **kwargs) for cat, eps in sorted(by_cat.items())}


def preference_accuracy_by_failure_type(
    episodes: Sequence[ScoredEpisode], *, n_boot: int = 0, confidence: float = 0.95, seed: int = 0, tie_tol: float = 0.0
) -> dict[str, PreferenceAccuracy]:
    """Preference accuracy restricted to one failure type at a time.

    For failure type ``f`` and context ``c``: the reference set ``R_c`` holds the context's
    expert-or-clean episodes (variant ``"expert"``, or no failure event at all); the target
    set ``F_c`` holds the episodes with at least one failure event of type ``f``. The pairs are
    ``P_c^f = {(r, e) : r in R_c, e in F_c, r != e, y_r != y_e}``: only comparisons of a clean
    rollout against a rollout showing ``f`` (never two failures against each other). ``D_c``,
    the weighting by ``|P_c^f|``, ties in ``ŷ``, missing values and the bootstrap are as in
    :func:`preference_accuracy`. Contexts with no such strict pair are skipped.
    """

    groups = _by_context(episodes)
    types = sorted({t for e in episodes for t in e.failure_types})
    out: dict[str, PreferenceAccuracy] = {}
    for f in types:
        counts: dict[Hashable, ContextCounts] = {}
        for key, eps in groups.items():
            ref = [i for i, e in enumerate(eps) if e.is_reference]
            tgt = [i for i, e in enumerate(eps) if f in e.failure_types]
            if not tgt:
                continue
            pairs = [(r, t) for r in ref for t in tgt if r != t]
            y = np.array([e.score for e in eps], dtype=np.float64)
            v = np.array([e.value for e in eps], dtype=np.float64)
            counts[key] = _count_pairs(y, _sign_matrix_from_values(v, tie_tol), pairs)
        out[f] = _aggregate(counts, n_boot=n_boot, confidence=confidence, seed=seed)
    return out


# --------------------------------------------------------------------------- VOC


@dataclass(frozen=True)
class VOCResult:
    """``value``: Spearman correlation; ``constant``: the prediction (or the episode) had no
    variation, so ``value`` was set to 0.0 by definition."""

    value: float
    constant: bool


def voc(values: Sequence[float]) -> VOCResult:
    """Value-order correlation of one episode.

    Spearman's rank correlation between the predicted per-frame values (in time order) and
    the frame order ``0..T-1``: the Pearson correlation of their ranks (ties get average
    ranks). A constant prediction (or ``T < 2``) has no defined correlation: it returns
    ``0.0`` with ``constant=True`` (no progress information, neither credit nor penalty).
    """

    v = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(v)):
        raise ValueError("VOC needs finite values")
    if v.size < 2 or np.all(v == v[0]):
        return VOCResult(0.0, True)
    rv = stats.rankdata(v)
    rt = np.arange(v.size, dtype=np.float64)
    rv = rv - rv.mean()
    rt = rt - rt.mean()
    rho = float(np.dot(rv, rt) / np.sqrt(np.dot(rv, rv) * np.dot(rt, rt)))
    return VOCResult(float(np.clip(rho, -1.0, 1.0)), False)


@dataclass(frozen=True)
class VOCSummary:
    mean: float | None
    n: int
    n_constant: int
    values: tuple[float, ...]


def mean_voc(traces: Iterable[Sequence[float]]) -> VOCSummary:
    """Mean of :func:`voc` over episodes (the paper uses expert episodes); constant
    predictions enter as 0.0 and are counted in ``n_constant``. ``mean`` is ``None`` when
    there is no episode."""
    res = [voc(t) for t in traces]
    vals = tuple(r.value for r in res)
    return VOCSummary(float(np.mean(vals)) if vals else None, len(vals), sum(r.constant for r in res), vals)


# --------------------------------------------------------------------------- Kendall tau


def kendall_tau(returns: Sequence[float], gt_scores: Sequence[float]) -> float | None:
    """Kendall's tau-b between model returns and ground-truth scores of one group.

    ``None`` (the group is skipped) when fewer than two finite returns remain or the
    ground-truth scores are all tied (no order to recover). When the ground truth varies but
    the returns are all equal, tau is 0.0 (no ordering information). Episodes with a NaN
    return (model errors) are left out.
    """

    r = np.asarray(returns, dtype=np.float64).reshape(-1)
    y = np.asarray(gt_scores, dtype=np.float64).reshape(-1)
    if r.shape != y.shape:
        raise ValueError(f"{r.size} returns but {y.size} scores")
    ok = np.isfinite(r)
    r, y = r[ok], y[ok]
    if r.size < 2 or np.all(y == y[0]):
        return None
    if np.all(r == r[0]):
        return 0.0
    return float(stats.kendalltau(r, y, variant="b").statistic)


@dataclass(frozen=True)
class KendallSummary:
    mean: float | None
    n_groups: int
    n_skipped: int
    per_group: dict[Hashable, float]


def mean_kendall_tau(
    groups: Mapping[Hashable, tuple[Sequence[float], Sequence[float]]] | Sequence[tuple[Sequence[float], Sequence[float]]],
) -> KendallSummary:
    """Unweighted mean of :func:`kendall_tau` over groups given as ``(returns, gt_scores)``;
    groups where it is ``None`` are skipped and counted."""
    per: dict[Hashable, float] = {}
    skipped = 0
    for key, (r, y) in _iter_contexts(groups):
        t = kendall_tau(r, y)
        if t is None:
            skipped += 1
        else:
            per[key] = t
    mean = float(np.mean(list(per.values()))) if per else None
    return KendallSummary(mean, len(per), skipped, per)


# --------------------------------------------------------------------------- false positives


@dataclass
class FalsePositiveResult:
    """Result of :func:`false_positive_rate`.

    ``rate = n_false_positive / n_failure`` over the categories that have an expert return
    (``None`` when there is no failure episode there); ``by_category`` has the same per
    category; ``thresholds`` the median expert return per category; ``n_skipped`` failure
    episodes in categories without an expert return or with a missing (NaN) return.
    """

    rate: float | None
    n_failure: int
    n_false_positive: int
    by_category: dict[str, dict[str, Any]] = field(default_factory=dict)
    thresholds: dict[str, float] = field(default_factory=dict)
    n_skipped: int = 0


def false_positive_rate(episodes: Sequence[ScoredEpisode]) -> FalsePositiveResult:
    """Share of failure episodes the model scores like an expert.

    A *failure episode* is one with ``success`` false or any safety failure
    (``safety_failure``). In each task category the threshold is the median of the model
    returns of its expert episodes (variant ``"expert"``, finite returns). A failure episode
    is a *false positive* when its return is ``>=`` that threshold.
    """

    thresholds: dict[str, float] = {}
    by_cat: dict[str, list[ScoredEpisode]] = defaultdict(list)
    for e in episodes:
        by_cat[e.category].append(e)
    for cat, eps in by_cat.items():
        expert = [e.value for e in eps if e.variant == "expert" and np.isfinite(e.value)]
        if expert:
            thresholds[cat] = float(np.median(expert))
    n_fail = n_fp = skipped = 0
    per: dict[str, dict[str, Any]] = {}
    for cat, eps in sorted(by_cat.items()):
        fails = [e for e in eps if (not e.success) or e.safety_failure]
        if cat not in thresholds:
            skipped += len(fails)
            continue
        usable = [e for e in fails if np.isfinite(e.value)]
        skipped += len(fails) - len(usable)
        fp = sum(e.value >= thresholds[cat] for e in usable)
        per[cat] = {"n_failure": len(usable), "n_false_positive": int(fp), "rate": fp / len(usable) if usable else None}
        n_fail += len(usable)
        n_fp += int(fp)
    return FalsePositiveResult(n_fp / n_fail if n_fail else None, n_fail, n_fp, per, thresholds, skipped)


# --------------------------------------------------------------------------- failure timing


@dataclass(frozen=True)
class FailureTiming:
    """Result of :func:`failure_timing` for one episode.

    Attributes:
        visible_frame: ground-truth frame where the first failure becomes visible (``v``).
        baseline: the model's running maximum before ``v``: ``max(r[0..v-1])`` (``r[0]`` if
            ``v = 0``).
        detected_frame: first frame ``t >= v`` with ``r[t] <= baseline - threshold * range``,
            ``None`` if there is none (a miss).
        lag: ``detected_frame - v`` in frames, ``None`` for a miss.
        depth: ``(baseline - min(r[v:])) / range``, clipped at 0: how far the reward fell after
            the failure became visible, as a share of the range.
    """

    visible_frame: int
    baseline: float
    detected_frame: int | None
    lag: int | None
    depth: float

    @property
    def detected(self) -> bool:
        return self.detected_frame is not None


def _range_of(r: np.ndarray, value_range: tuple[float, float] | None) -> float:
    if value_range is not None:
        return float(value_range[1] - value_range[0])
    span = float(r.max() - r.min()) if r.size else 0.0
    return span if span > 0 else 1.0


def failure_timing(
    rewards: Sequence[float], visible_frame: int, *, value_range: tuple[float, float] | None = (0.0, 1.0), threshold: float = 0.1
) -> FailureTiming:
    """How fast, and how far, a model's per-frame reward falls once a failure is visible.

    ``rewards`` is the model's dense reward over all ``T`` frames. ``range`` is the model's
    declared ``value_range`` width (``high - low``), or, when it declares none, the trace's
    own ``max - min`` (1 if constant). See :class:`FailureTiming` for the definitions; a
    drop that already happened before ``v`` is detected at ``v`` (lag 0).
    """

    r = np.asarray(rewards, dtype=np.float64).reshape(-1)
    v = int(visible_frame)
    if not 0 <= v < r.size:
        raise ValueError(f"visible_frame {v} outside the trace of {r.size} frames")
    rng = _range_of(r, value_range)
    baseline = float(r[:v].max()) if v > 0 else float(r[0])
    after = r[v:]
    hit = np.flatnonzero(after <= baseline - threshold * rng + 1e-12 * rng)
    det = int(v + hit[0]) if hit.size else None
    depth = max(0.0, (baseline - float(after.min())) / rng)
    return FailureTiming(v, baseline, det, (det - v) if det is not None else None, depth)


def summarize_timing(results: Iterable[FailureTiming]) -> dict[str, Any]:
    """Counts and averages over episodes: ``detection_rate`` = detected / all, ``miss_rate``,
    ``mean_lag``/``median_lag`` over detected episodes (frames), ``mean_depth`` over all."""
    res = list(results)
    lags = [r.lag for r in res if r.lag is not None]
    n = len(res)
    return {
        "n": n,
        "n_detected": len(lags),
        "detection_rate": len(lags) / n if n else None,
        "miss_rate": (n - len(lags)) / n if n else None,
        "mean_lag": float(np.mean(lags)) if lags else None,
        "median_lag": float(np.median(lags)) if lags else None,
        "mean_depth": float(np.mean([r.depth for r in res])) if res else None,
    }


def rescale_to_unit(values: Sequence[float], value_range: tuple[float, float] | None) -> np.ndarray:
    """``(v - low) / (high - low)`` with the declared range; without one, min-max scaling of
    the values themselves (all zeros when constant)."""
    v = np.asarray(values, dtype=np.float64)
    if value_range is not None:
        lo, hi = value_range
    else:
        lo, hi = float(v.min()), float(v.max())
        if hi <= lo:
            return np.zeros_like(v)
    return (v - lo) / (hi - lo)


@dataclass(frozen=True)
class DenseAgreement:
    """``pearson``: Pearson r of rescaled model rewards and ground-truth rewards (``None`` when
    either is constant); ``mse``: mean squared difference of the two."""

    pearson: float | None
    mse: float


def dense_agreement(
    model_rewards: Sequence[float], gt_rewards: Sequence[float], value_range: tuple[float, float] | None = (0.0, 1.0)
) -> DenseAgreement:
    """Compare a model's dense reward with the ground-truth dense reward (in ``[0, 1]``) of the
    same ``T`` frames, after rescaling the model's values with :func:`rescale_to_unit`."""
    m = rescale_to_unit(model_rewards, value_range).reshape(-1)
    g = np.asarray(gt_rewards, dtype=np.float64).reshape(-1)
    if m.shape != g.shape:
        raise ValueError(f"model trace has {m.size} frames, ground truth {g.size}")
    mse = float(np.mean((m - g) ** 2))
    if m.size < 2 or np.all(m == m[0]) or np.all(g == g[0]):
        return DenseAgreement(None, mse)
    return DenseAgreement(float(np.corrcoef(m, g)[0, 1]), mse)
