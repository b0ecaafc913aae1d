"""Run a reward model over episodes and score it against the ground truth.

The harness is dataset-agnostic: it takes an iterable of ``(EpisodeInput, ground_truth)``
pairs. ``ground_truth`` is a mapping with

========== =========================================================================
key        meaning
========== =========================================================================
context    counterfactual group / task context key (``group_id`` accepted instead)
task       task category name (``"pick_place"`` ...)
score      episode score in ``[0, 100]`` (``y`` of the paper)
success    bool, task achieved (if absent: no failure event of category ``task``)
variant    ``"expert"`` or the perturbation name
failures   list of :class:`simfail.core.episode.FailureEvent` (or their dicts)
reward     optional ``(T,)`` ground-truth dense reward in ``[0, 1]``
progress   optional ``(T,)`` ground-truth task progress in ``[0, 1]``
========== =========================================================================

Model errors (:class:`RewardModelError`, including GVL parse and request errors) are caught
per episode (per pair for pairwise models), recorded with their message and counted in the
report; the affected episodes' pairs are left out of the accuracy and counted as missing,
never turned into numbers.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.errors import ConfigError, RewardModelError

from . import metrics as M
from .preprocess import interpolate_to_length, prepare_input
from .protocol import EpisodeInput, ModelRequirements, RewardModel, validate_output


@dataclass
class EpisodeOutcome:
    """What the model said about one episode, next to the ground truth.

    ``dense`` is the model's per-frame output mapped to all ``T`` frames (model units),
    ``None`` for episode-level and pairwise models or on error; ``raw`` the validated output on
    the frames the model saw (indices ``model_indices``); ``value`` the episode return
    (``NaN`` on error or for pairwise models); ``error`` the message of a caught
    :class:`RewardModelError`.
    """

    episode_id: str
    context: Hashable
    task: str
    variant: str
    score: float
    success: bool
    failures: list[FailureEvent]
    n_frames: int
    dense: np.ndarray | None = None
    value: float = float("nan")
    error: str | None = None
    error_type: str | None = None
    n_model_frames: int = 0
    seconds: float = 0.0
    gt_reward: np.ndarray | None = field(default=None, repr=False)
    raw: np.ndarray | None = field(default=None, repr=False)
    model_indices: np.ndarray | None = field(default=None, repr=False)

    def to_record(self) -> dict[str, Any]:
        """Per-episode JSON-serialisable summary (no arrays)."""
        return {
            "episode_id": self.episode_id,
            "context": self.context if isinstance(self.context, (int, str)) else str(self.context),
            "task": self.task,
            "variant": self.variant,
            "score": self.score,
            "success": self.success,
            "failure_types": sorted({f.type for f in self.failures}),
            "value": None if np.isnan(self.value) else self.value,
            "n_frames": self.n_frames,
            "n_model_frames": self.n_model_frames,
            "seconds": self.seconds,
            "error_type": self.error_type,
            "error": self.error,
        }

    @property
    def safety_failure(self) -> bool:
        return any(f.category == "safety" for f in self.failures)

    def first_visible_frame(self, min_severity: float = 0.0) -> int | None:
        frames = [f.visible_frame for f in self.failures if f.severity >= min_severity]
        return min(frames) if frames else None

    def scored(self) -> M.ScoredEpisode:
        return M.ScoredEpisode(
            context=self.context,
            category=self.task,
            score=self.score,
            value=self.value,
            variant=self.variant,
            failure_types=tuple(sorted({f.type for f in self.failures})),
            success=self.success,
            safety_failure=self.safety_failure,
            episode_id=self.episode_id,
        )


@dataclass
class PairOutcome:
    """A pairwise model's answer for one strict pair (``prob`` = P(a preferred over b))."""

    context: Hashable
    a: int
    b: int
    prob: float = float("nan")
    error: str | None = None
    error_type: str | None = None


@dataclass
class RunResult:
    model_name: str
    requirements: ModelRequirements
    return_mode: str
    outcomes: list[EpisodeOutcome]
    pairs: list[PairOutcome] = field(default_factory=list)

    def records(self) -> list[dict[str, Any]]:
        """One :meth:`EpisodeOutcome.to_record` per episode."""
        return [o.to_record() for o in self.outcomes]

    @property
    def errors(self) -> list[dict[str, Any]]:
        out = [
            {"episode_id": o.episode_id, "type": o.error_type, "message": o.error} for o in self.outcomes if o.error
        ]
        out += [
            {"pair": [self.outcomes[p.a].episode_id, self.outcomes[p.b].episode_id], "type": p.error_type, "message": p.error}
            for p in self.pairs
            if p.error
        ]
        return out


def predict_episode(
    model: RewardModel, ep: EpisodeInput, *, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, int]:
    """Prepare ``ep`` for ``model``, call it (``sample(ep, rng)`` when ``rng`` is given, else
    ``predict``), validate the output and return it with the number of frames the model saw.

    Dense outputs come back interpolated to all ``T`` frames of ``ep`` (shape ``(T,)``);
    episode outputs as a 0-d array. Raises :class:`RewardModelError` on a bad output.
    """

    req = model.requirements
    if req.output == "pairwise":
        raise ConfigError(f"model {model.name!r} is pairwise: use compare(), not predict()")
    prepared, idx = prepare_input(ep, req)
    if rng is not None:
        if not hasattr(model, "sample"):
            raise ConfigError(f"model {model.name!r} has no sample() method")
        raw = model.sample(prepared, rng)  # type: ignore[attr-defined]
    else:
        raw = model.predict(prepared)
    return _finish(model, ep, raw, idx), len(idx)


def _validate(model: RewardModel, ep: EpisodeInput, raw: Any, idx: np.ndarray) -> np.ndarray:
    req = model.requirements
    return validate_output(
        raw, kind=req.output, n_frames=len(idx), value_range=req.value_range, model_name=model.name, episode_id=ep.episode_id
    )


def _finish(model: RewardModel, ep: EpisodeInput, raw: Any, idx: np.ndarray) -> np.ndarray:
    arr = _validate(model, ep, raw, idx)
    if model.requirements.output == "dense":
        return interpolate_to_length(arr, idx, ep.length)
    return arr


def _outcome(ep: EpisodeInput, gt: Mapping[str, Any]) -> EpisodeOutcome:
    if "context" in gt:
        ctx = gt["context"]
    elif "group_id" in gt:
        ctx = gt["group_id"]
    else:
        raise ConfigError(f"ground truth of episode {ep.episode_id!r} has no 'context' (or 'group_id')")
    for key in ("score", "task"):
        if key not in gt:
            raise ConfigError(f"ground truth of episode {ep.episode_id!r} has no {key!r}")
    fails = [f if isinstance(f, FailureEvent) else FailureEvent.from_dict(f) for f in gt.get("failures", [])]
    reward = gt.get("reward")
    return EpisodeOutcome(
        episode_id=ep.episode_id,
        context=ctx,
        task=str(gt["task"]),
        variant=str(gt.get("variant", "")),
        score=float(gt["score"]),
        success=bool(gt["success"]) if "success" in gt else not any(f.category == "task" for f in fails),
        failures=fails,
        n_frames=ep.length,
        gt_reward=np.asarray(reward, dtype=np.float64) if reward is not None else None,
    )


def _with_privileged(ep: EpisodeInput, gt: Mapping[str, Any], req: ModelRequirements) -> EpisodeInput:
    if not req.privileged:
        return ep
    priv = dict(ep.privileged or {})
    for key in ("reward", "progress", "score"):
        if key not in priv and gt.get(key) is not None:
            priv[key] = np.asarray(gt[key])
    return replace(ep, privileged=priv)


def run_model(
    model: RewardModel,
    items: Iterable[tuple[EpisodeInput, Mapping[str, Any]]],
    *,
    return_mode: str = "sum",
    batch_size: int = 8,
) -> RunResult:
    """Run ``model`` on every episode and collect :class:`EpisodeOutcome` records.

    Dense and episode models: ``predict_batch`` is used in batches of ``batch_size`` when the
    model has it; an element of its list may be a :class:`RewardModelError` instance, which
    counts as that episode's error; a batch call that raises :class:`RewardModelError` or
    returns the wrong number of outputs is redone episode by episode. Otherwise ``predict``.
    The return of a dense output is :func:`simfail.stress.metrics.episode_return` of the
    full-length trace with ``return_mode``; an episode-level output is its own return.

    Pairwise models: the prepared inputs are kept per context and ``compare(a, b)`` is called
    once for every pair ``a < b`` with different ground-truth scores.
    """

    if return_mode not in M.RETURN_MODES:
        raise ConfigError(f"unknown return mode {return_mode!r}; known: {', '.join(M.RETURN_MODES)}")
    req = model.requirements
    if req.output == "pairwise":
        return _run_pairwise(model, items, return_mode)
    outcomes: list[EpisodeOutcome] = []
    use_batch = hasattr(model, "predict_batch") and batch_size > 1
    pending: list[tuple[EpisodeInput, EpisodeOutcome]] = []

    def record(o: EpisodeOutcome, ep: EpisodeInput, get_raw: Callable[[], tuple[Any, np.ndarray]]) -> None:
        t0 = time.perf_counter()
        try:
            raw, idx = get_raw()
            if isinstance(raw, BaseException):
                raise raw
            arr = _validate(model, ep, raw, idx)
        except RewardModelError as exc:
            o.error, o.error_type = str(exc), type(exc).__name__
        else:
            o.n_model_frames, o.raw, o.model_indices = len(idx), arr, idx
            if req.output == "dense":
                o.dense = interpolate_to_length(arr, idx, ep.length)
                o.value = M.episode_return(o.dense, return_mode)
            else:
                o.value = float(arr)
        o.seconds += time.perf_counter() - t0

    def single(ep: EpisodeInput) -> tuple[Any, np.ndarray]:
        prepared, idx = prepare_input(ep, req)
        return model.predict(prepared), idx

    def flush() -> None:
        if not pending:
            return
        prepared = [prepare_input(ep, req) for ep, _ in pending]
        t0 = time.perf_counter()
        try:
            raws: list[Any] | None = list(model.predict_batch([p for p, _ in prepared]))  # type: ignore[attr-defined]
            if len(raws) != len(pending):
                raise RewardModelError(f"predict_batch returned {len(raws)} outputs for {len(pending)} episodes")
        except RewardModelError:
            raws = None
        share = (time.perf_counter() - t0) / len(pending)
        for i, (ep, o) in enumerate(pending):
            if raws is None:
                record(o, ep, lambda ep=ep: single(ep))
            else:
                o.seconds += share
                record(o, ep, lambda r=raws[i], idx=prepared[i][1]: (r, idx))
        pending.clear()

    for ep, gt in items:
        ep = _with_privileged(ep, gt, req)
        o = _outcome(ep, gt)
        outcomes.append(o)
        if use_batch:
            pending.append((ep, o))
            if len(pending) >= batch_size:
                flush()
        else:
            record(o, ep, lambda ep=ep: single(ep))
    flush()
    return RunResult(model.name, req, return_mode, outcomes)


def _run_pairwise(model: RewardModel, items: Iterable[tuple[EpisodeInput, Mapping[str, Any]]], return_mode: str) -> RunResult:
    req = model.requirements
    if not hasattr(model, "compare"):
        raise ConfigError(f"model {model.name!r} declares pairwise output but has no compare()")
    outcomes: list[EpisodeOutcome] = []
    by_ctx: dict[Hashable, list[tuple[int, EpisodeInput]]] = defaultdict(list)
    for ep, gt in items:
        ep = _with_privileged(ep, gt, req)
        o = _outcome(ep, gt)
        prepared, idx = prepare_input(ep, req)
        o.n_model_frames = len(idx)
        by_ctx[o.context].append((len(outcomes), prepared))
        outcomes.append(o)
    pairs: list[PairOutcome] = []
    for ctx, members in by_ctx.items():
        for x in range(len(members)):
            for z in range(x + 1, len(members)):
                (ia, ea), (ib, eb) = members[x], members[z]
                if outcomes[ia].score == outcomes[ib].score:
                    continue
                p = PairOutcome(ctx, ia, ib)
                try:
                    raw = model.compare(ea, eb)  # type: ignore[attr-defined]
                    p.prob = float(
                        validate_output(raw, kind="pairwise", model_name=model.name, episode_id=f"{ea.episode_id} vs {eb.episode_id}")
                    )
                except RewardModelError as exc:
                    p.error, p.error_type = str(exc), type(exc).__name__
                pairs.append(p)
    return RunResult(model.name, req, return_mode, outcomes, pairs)


def _acc_summary(pa: M.PreferenceAccuracy) -> dict[str, Any]:
    return {
        "accuracy": pa.accuracy,
        "accuracy_ties_half": pa.accuracy_ties_half,
        "tie_rate": pa.tie_rate,
        "n_pairs": pa.n_pairs,
        "n_missing": pa.n_missing,
        "n_contexts": len(pa.contexts),
        "ci": list(pa.ci) if pa.ci is not None else None,
    }


def evaluate(
    run: RunResult,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    tie_tol: float = 0.0,
    timing_threshold: float = 0.1,
    min_severity: float = 0.0,
) -> dict[str, Any]:
    """Score a :class:`RunResult`; returns a JSON-serialisable report.

    Contents: error counts and messages; preference accuracy overall (with bootstrap CI),
    per task category and per failure type; for dense models VOC over expert episodes
    (computed on the values of the frames the model saw, before interpolation),
    failure timing (first failure event with ``severity >= min_severity``, visible frame vs
    the model's drop of ``timing_threshold`` of its range) and agreement with the ground-truth
    dense reward; Kendall tau per context; false-positive rate. Metrics a model's output kind
    does not support are ``None``.
    """

    req = run.requirements
    outs = run.outcomes
    kw = dict(n_boot=n_boot, confidence=confidence, seed=seed)
    errors = run.errors
    report: dict[str, Any] = {
        "model": run.model_name,
        "output": req.output,
        "privileged": req.privileged,
        "return_mode": run.return_mode if req.output == "dense" else None,
        "n_episodes": len(outs),
        "n_errors": len(errors),
        "errors": errors,
        "settings": {
            "n_boot": n_boot,
            "confidence": confidence,
            "seed": seed,
            "tie_tol": tie_tol,
            "timing_threshold": timing_threshold,
            "min_severity": min_severity,
        },
    }
    scored = [o.scored() for o in outs]
    if req.output == "pairwise":
        ctx_index: dict[Hashable, list[int]] = defaultdict(list)
        for i, o in enumerate(outs):
            ctx_index[o.context].append(i)
        mats = {}
        for ctx, members in ctx_index.items():
            pos = {g: n for n, g in enumerate(members)}
            p = np.full((len(members), len(members)), np.nan)
            for pr in run.pairs:
                if pr.context == ctx:
                    p[pos[pr.a], pos[pr.b]] = pr.prob
            mats[ctx] = (np.array([outs[i].score for i in members]), p)
        pa = M.pairwise_preference_accuracy(mats, **kw)
        report.update(
            preference=pa.to_dict(),
            preference_by_task=None,
            preference_by_failure_type=None,
            voc=None,
            kendall=None,
            false_positive=None,
            failure_timing=None,
            dense_agreement=None,
        )
        return report

    pa = M.preference_accuracy(M.contexts_from_episodes(scored), tie_tol=tie_tol, **kw)
    report["preference"] = pa.to_dict()
    report["preference_by_task"] = {
        k: _acc_summary(v) for k, v in M.preference_accuracy_by_category(scored, tie_tol=tie_tol, **kw).items()
    }
    report["preference_by_failure_type"] = {
        k: _acc_summary(v) for k, v in M.preference_accuracy_by_failure_type(scored, tie_tol=tie_tol, **kw).items()
    }
    ks = M.mean_kendall_tau({k: (yh, y) for k, (y, yh) in M.contexts_from_episodes(scored).items()})
    report["kendall"] = {"mean": ks.mean, "n_groups": ks.n_groups, "n_skipped": ks.n_skipped}
    fp = M.false_positive_rate(scored)
    report["false_positive"] = {
        "rate": fp.rate,
        "n_failure": fp.n_failure,
        "n_false_positive": fp.n_false_positive,
        "n_skipped": fp.n_skipped,
        "by_task": fp.by_category,
        "thresholds": fp.thresholds,
    }
    if req.output != "dense":
        report.update(voc=None, failure_timing=None, dense_agreement=None)
        return report

    # VOC on the values the model gave for the frames it saw (GVL: the K query frames), not
    # on the interpolated trace.
    vs = M.mean_voc(o.raw for o in outs if o.variant == "expert" and o.raw is not None)
    report["voc"] = {"mean": vs.mean, "n": vs.n, "n_constant": vs.n_constant}
    timings, by_type = [], defaultdict(list)
    pear, mses = [], []
    for o in outs:
        if o.dense is None:
            continue
        v = o.first_visible_frame(min_severity)
        if v is not None and v < o.n_frames:
            t = M.failure_timing(o.dense, v, value_range=req.value_range, threshold=timing_threshold)
            timings.append(t)
            first = min((f for f in o.failures if f.severity >= min_severity), key=lambda f: f.visible_frame)
            by_type[first.type].append(t)
        if o.gt_reward is not None and o.gt_reward.shape == o.dense.shape:
            da = M.dense_agreement(o.dense, o.gt_reward, req.value_range)
            mses.append(da.mse)
            if da.pearson is not None:
                pear.append(da.pearson)
    report["failure_timing"] = {**M.summarize_timing(timings), "by_failure_type": {k: M.summarize_timing(v) for k, v in sorted(by_type.items())}}
    report["dense_agreement"] = {
        "mean_pearson": float(np.mean(pear)) if pear else None,
        "n_pearson": len(pear),
        "mean_mse": float(np.mean(mses)) if mses else None,
        "n": len(mses),
    }
    return report


def stress_test(
    model: RewardModel, items: Iterable[tuple[EpisodeInput, Mapping[str, Any]]], *, return_mode: str = "sum", **eval_kwargs: Any
) -> dict[str, Any]:
    """:func:`run_model` followed by :func:`evaluate`."""
    return evaluate(run_model(model, items, return_mode=return_mode), **eval_kwargs)
