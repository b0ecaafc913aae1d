"""Score a reward model on a simfail dataset, with a per-episode score cache, and collect every
metric of the stress test into one JSON-serialisable dict (``metrics.json``).

Score cache
-----------
``<report>/cache/<model_key>.jsonl``: the first line is a header (cache version, model key,
model spec, arguments and requirements, dataset fingerprint); every further line is one
result. Dense and episode-level models: ``{"ep": i, "n": T, "raw": [...], "idx": [...] |
null, "error": null | msg, "error_type": ..., "seconds": s}`` where ``raw`` is the validated
output on the frames the model saw (``idx``; ``null`` means all ``T`` frames). Pairwise models:
``{"pair": [i, j], "prob": p | null, "error": ...}``. Lines are appended (and flushed) after
every chunk of episodes, so an interrupted run loses at most one chunk; a later line for the
same episode replaces an earlier one; a truncated last line is ignored. The raw outputs do not
depend on the return definition, so ``returns=sum|last|mean`` all reuse the same cache.

``model_key`` is ``<name>-<sha1[:12]>`` of the model spec, its keyword arguments, its
requirements, (for models given goal images or examples) the input settings that choose
them, and the hash of its weights (:func:`simfail.stress.identity.model_identity`: the bytes
of every checkpoint file or folder an argument names, or the model's declared identity), so a
checkpoint retrained in place gets another cache file. A header whose dataset fingerprint
(episode count, groups, lengths, scores, variants and the content hash of every data, meta and
video file: :func:`simfail.stress.identity.dataset_content_hash`) differs from the dataset
being scored means the cache belongs to another dataset (or the same folder regenerated with
other labels or pixels): the file is renamed to ``*.jsonl.stale`` and scoring starts afresh.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from simfail.dataset.reader import SimfailDataset
from simfail.errors import ConfigError, OutputDirError

from . import metrics as M
from .dataset_adapter import DatasetEpisodes, episode_id
from .harness import EpisodeOutcome, PairOutcome, RunResult, evaluate, run_model
from .preprocess import interpolate_to_length
from .protocol import RewardModel

__all__ = ["CACHE_VERSION", "DatasetRun", "ScoreCache", "collect_metrics", "dataset_fingerprint", "model_key", "score_dataset"]

CACHE_VERSION = 2


def _canon(obj: Any) -> str:
    def default(o: Any) -> Any:
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, (tuple, set, frozenset)):
            return list(o)
        return repr(o)

    return json.dumps(obj, sort_keys=True, default=default, separators=(",", ":"))


def model_key(
    spec: str, name: str, kwargs: Mapping[str, Any], requirements: Any, inputs: Mapping[str, Any] | None = None,
    weights_hash: str | None = None,
) -> str:
    """``<name>-<hash>``: identifies a model configuration in the score cache; ``weights_hash``
    is ``model_identity(...)["weights_hash"]`` (``None``: a model without weights)."""
    payload = {"spec": spec, "kwargs": dict(kwargs), "requirements": asdict(requirements), "inputs": dict(inputs or {}),
               "weights": weights_hash}
    digest = hashlib.sha1(_canon(payload).encode()).hexdigest()[:12]
    safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "model"
    return f"{safe}-{digest}"


def dataset_fingerprint(ds: SimfailDataset) -> str:
    """Hash of what scoring depends on: per episode its group, length, score, variant, task,
    and the content hash of the dataset's files (labels, metadata, pixels)."""
    from .identity import dataset_content_hash

    r = ds.episodes
    rows = [(e["simfail.group_id"], e["length"], e["simfail.score"], e.get("simfail.variant"), e.get("tasks")) for e in r]
    return hashlib.sha1(_canon([ds.num_frames, rows, dataset_content_hash(ds.root)]).encode()).hexdigest()[:16]


class ScoreCache:
    """Append-only JSON-lines cache of one model configuration's outputs (see module doc).

    ``enabled=False`` keeps results in memory only (nothing is read or written).
    """

    def __init__(self, path: str | Path, header: Mapping[str, Any], *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.header = {"cache_version": CACHE_VERSION, **dict(header)}
        self.enabled = enabled
        self.episodes: dict[int, dict[str, Any]] = {}
        self.pairs: dict[tuple[int, int], dict[str, Any]] = {}
        self.stale_moved: Path | None = None
        if enabled:
            self._load()

    def _same(self, other: Mapping[str, Any]) -> bool:
        keys = ("cache_version", "model_key", "dataset_fingerprint")
        return all(other.get(k) == self.header.get(k) for k in keys)

    def _load(self) -> None:
        if not self.path.is_file():
            return
        try:
            lines = self.path.read_text().splitlines()
        except OSError as exc:
            raise OutputDirError(f"cannot read the score cache {self.path}: {exc}") from exc
        head: Any = None
        if lines:
            try:
                head = json.loads(lines[0])
            except ValueError:
                head = None
        if not isinstance(head, dict) or not self._same(head):
            stale = self.path.with_name(self.path.name + ".stale")
            os.replace(self.path, stale)
            self.stale_moved = stale
            return
        for line in lines[1:]:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a line cut short by an interruption
            if not isinstance(rec, dict):
                continue
            if "ep" in rec:
                self.episodes[int(rec["ep"])] = rec
            elif "pair" in rec and len(rec["pair"]) == 2:
                self.pairs[(int(rec["pair"][0]), int(rec["pair"][1]))] = rec

    def add(self, records: Sequence[Mapping[str, Any]]) -> None:
        for rec in records:
            if "ep" in rec:
                self.episodes[int(rec["ep"])] = dict(rec)
            else:
                self.pairs[(int(rec["pair"][0]), int(rec["pair"][1]))] = dict(rec)
        if not self.enabled or not records:
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.path.is_file() or self.path.stat().st_size == 0
            with open(self.path, "a") as fh:
                if new:
                    fh.write(json.dumps(self.header, sort_keys=True, default=str) + "\n")
                for rec in records:
                    fh.write(json.dumps(rec, allow_nan=False) + "\n")
                fh.flush()
        except OSError as exc:
            raise OutputDirError(f"cannot write the score cache {self.path}: {exc.strerror or exc}") from exc


@dataclass
class DatasetRun:
    """A model scored on (a subset of) a dataset; ``run`` holds one outcome per episode of
    ``indices`` (values computed with ``run.return_mode``)."""

    run: RunResult
    indices: list[int]
    adapter: DatasetEpisodes
    model_key: str
    cache_path: Path | None
    n_computed: int = 0
    n_cached: int = 0
    model_seconds: float = 0.0
    input_seconds: float = 0.0
    wall_seconds: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def with_return(self, mode: str) -> RunResult:
        """The same run with episode returns recomputed under another return definition."""
        if mode not in M.RETURN_MODES:
            raise ConfigError(f"unknown return mode {mode!r}; known: {', '.join(M.RETURN_MODES)}")
        outs = []
        for o in self.run.outcomes:
            if o.dense is not None:
                o = replace(o, value=M.episode_return(o.dense, mode))
            outs.append(o)
        return replace(self.run, return_mode=mode, outcomes=outs)


def _record(ep: int, o: EpisodeOutcome) -> dict[str, Any]:
    idx = o.model_indices
    full = idx is None or (len(idx) == o.n_frames and np.array_equal(idx, np.arange(o.n_frames)))
    raw = None if o.raw is None else np.asarray(o.raw, dtype=np.float64).tolist()
    return {
        "ep": int(ep),
        "n": int(o.n_frames),
        "raw": raw,
        "idx": None if full else [int(i) for i in idx],  # type: ignore[union-attr]
        "error": o.error,
        "error_type": o.error_type,
        "seconds": float(o.seconds),
    }


def _outcome_from(ep: int, gt: Mapping[str, Any], rec: Mapping[str, Any] | None, output: str) -> EpisodeOutcome:
    n = int(gt["length"])
    o = EpisodeOutcome(
        episode_id=episode_id(ep),
        context=gt["context"],
        task=str(gt["task"]),
        variant=str(gt["variant"]),
        score=float(gt["score"]),
        success=bool(gt["success"]),
        failures=list(gt["failures"]),
        n_frames=n,
        gt_reward=gt.get("reward"),
    )
    if rec is None:
        return o
    o.seconds = float(rec.get("seconds") or 0.0)
    if rec.get("error") or rec.get("raw") is None:
        o.error = rec.get("error") or "no output recorded"
        o.error_type = rec.get("error_type") or "RewardModelError"
        return o
    raw = np.asarray(rec["raw"], dtype=np.float64)
    idx = np.arange(n) if rec.get("idx") is None else np.asarray(rec["idx"], dtype=np.int64)
    o.raw, o.model_indices, o.n_model_frames = raw, idx, int(len(idx))
    if output == "dense":
        o.dense = interpolate_to_length(raw, idx, n)
    else:
        o.value = float(raw.reshape(()))
    return o


def _retry(rec: Mapping[str, Any], retry_errors: bool) -> bool:
    """Recompute a cached error? Always for request errors (a remote endpoint was down or
    timed out), for any error with ``retry_errors``."""
    if not rec.get("error"):
        return False
    return retry_errors or str(rec.get("error_type") or "").endswith("RequestError")


def _usable(rec: Mapping[str, Any] | None, n: int, retry_errors: bool) -> bool:
    if rec is None or int(rec.get("n", -1)) != n:
        return False
    return not _retry(rec, retry_errors)


def _progress_bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="ep", disable=not enabled or total == 0, file=sys.stderr, dynamic_ncols=True)


def score_dataset(
    model: RewardModel,
    adapter: DatasetEpisodes,
    *,
    cache: ScoreCache,
    model_key: str,
    return_mode: str = "sum",
    batch_size: int = 8,
    retry_errors: bool = False,
    progress: bool = True,
) -> DatasetRun:
    """Run ``model`` on the adapter's episodes that the cache does not hold yet, then build a
    :class:`RunResult` over all of them from the cache.

    Dense/episode models are run in chunks of ``max(batch_size, 1)`` episodes, pairwise models
    one group at a time (all strict pairs of the group must be cached for it to be skipped).
    ``retry_errors`` recomputes episodes whose cached result is an error; otherwise errors are
    cached like any result, except request errors (``*RequestError``: an endpoint down or
    timing out), which are always recomputed.
    """

    if return_mode not in M.RETURN_MODES:
        raise ConfigError(f"unknown return mode {return_mode!r}; known: {', '.join(M.RETURN_MODES)}")
    req = model.requirements
    indices = list(adapter.indices)
    t_start = time.perf_counter()
    gts = {ep: adapter.ground_truth(ep) for ep in indices}
    n_computed = 0
    model_s = input_s = 0.0

    if req.output != "pairwise":
        missing = [ep for ep in indices if not _usable(cache.episodes.get(ep), int(gts[ep]["length"]), retry_errors)]
        chunk = max(int(batch_size), 1)
        with _progress_bar(len(missing), f"scoring {model.name}", progress) as bar:
            for start in range(0, len(missing), chunk):
                part = missing[start : start + chunk]
                t0 = time.perf_counter()
                res = run_model(model, adapter.iter_items(part), return_mode=return_mode, batch_size=batch_size)
                wall = time.perf_counter() - t0
                spent = sum(o.seconds for o in res.outcomes)
                model_s += spent
                input_s += max(wall - spent, 0.0)
                cache.add([_record(ep, o) for ep, o in zip(part, res.outcomes)])
                n_computed += len(part)
                bar.update(len(part))
        outcomes = [_outcome_from(ep, gts[ep], cache.episodes.get(ep), req.output) for ep in indices]
        for o in outcomes:
            if o.dense is not None:
                o.value = M.episode_return(o.dense, return_mode)
        run = RunResult(model.name, req, return_mode, outcomes)
    else:
        groups: dict[Any, list[int]] = defaultdict(list)
        for ep in indices:
            groups[gts[ep]["context"]].append(ep)

        def strict_pairs(eps: list[int]) -> list[tuple[int, int]]:
            return [(a, b) for i, a in enumerate(eps) for b in eps[i + 1 :] if gts[a]["score"] != gts[b]["score"]]

        def done(eps: list[int]) -> bool:
            for p in strict_pairs(eps):
                rec = cache.pairs.get(p)
                if rec is None or _retry(rec, retry_errors):
                    return False
            return True

        todo = [eps for eps in groups.values() if not done(eps)]
        with _progress_bar(sum(len(e) for e in todo), f"scoring {model.name}", progress) as bar:
            for eps in todo:
                t0 = time.perf_counter()
                res = run_model(model, adapter.iter_items(eps), return_mode=return_mode)
                model_s += time.perf_counter() - t0
                cache.add(
                    [
                        {"pair": [eps[p.a], eps[p.b]], "prob": None if p.error else float(p.prob), "error": p.error, "error_type": p.error_type}
                        for p in res.pairs
                    ]
                )
                n_computed += len(eps)
                bar.update(len(eps))
        outcomes = [_outcome_from(ep, gts[ep], None, "pairwise") for ep in indices]
        pos = {ep: i for i, ep in enumerate(indices)}
        pairs = []
        for eps in groups.values():
            for a, b in strict_pairs(eps):
                rec = cache.pairs.get((a, b)) or {"error": "no output recorded", "error_type": "RewardModelError"}
                pairs.append(
                    PairOutcome(
                        gts[a]["context"], pos[a], pos[b],
                        prob=float("nan") if rec.get("prob") is None else float(rec["prob"]),
                        error=rec.get("error"), error_type=rec.get("error_type"),
                    )
                )
        run = RunResult(model.name, req, return_mode, outcomes, pairs)

    return DatasetRun(
        run=run,
        indices=indices,
        adapter=adapter,
        model_key=model_key,
        cache_path=cache.path if cache.enabled else None,
        n_computed=n_computed,
        n_cached=len(indices) - n_computed,
        model_seconds=model_s,
        input_seconds=input_s,
        wall_seconds=time.perf_counter() - t_start,
    )


# --------------------------------------------------------------------------- metrics.json

_ORDER_KEYS = ("preference", "preference_by_task", "preference_by_failure_type", "kendall", "false_positive")


def collect_metrics(
    drun: DatasetRun,
    *,
    n_boot: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    tie_tol: float = 0.0,
    timing_threshold: float = 0.1,
    min_severity: float = 0.0,
    max_error_messages: int = 200,
    info: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Everything ``metrics.json`` holds.

    * ``summary``: :func:`simfail.stress.harness.evaluate` of the chosen return definition
      (overall accuracy ``A`` with its bootstrap CI and per-context ``D_c``/``|P_c|``, per task
      category and failure type, Kendall tau, false positives, VOC on experts, failure timing,
      Pearson/MSE against the ground-truth dense reward), without the error list.
    * ``by_return`` (dense models): the order-based metrics (``preference``, ``..._by_task``,
      ``..._by_failure_type``, ``kendall``, ``false_positive``) for each of ``sum``, ``last``,
      ``mean``.
    * ``errors``: ``n``, ``by_type`` counts, ``n_episodes_with_error``, ``n_pairs_with_error``
      and up to ``max_error_messages`` messages.
    * ``episodes``: one row per episode (ground truth, model returns under every definition,
      error).
    * ``run``: computed/cached counts and seconds.
    """

    run = drun.run
    kw = dict(n_boot=n_boot, confidence=confidence, seed=seed, tie_tol=tie_tol, timing_threshold=timing_threshold, min_severity=min_severity)
    summary = evaluate(run, **kw)
    errors = summary.pop("errors")
    dense = run.requirements.output == "dense"
    by_return = None
    if dense:
        by_return = {}
        for mode in M.RETURN_MODES:
            rep = summary if mode == run.return_mode else evaluate(drun.with_return(mode), **kw)
            by_return[mode] = {k: rep[k] for k in _ORDER_KEYS}
    episodes = []
    for ep, o in zip(drun.indices, run.outcomes):
        row: dict[str, Any] = {
            "episode_index": ep,
            "episode_id": o.episode_id,
            "group_id": o.context,
            "task": o.task,
            "variant": o.variant,
            "score": o.score,
            "success": o.success,
            "failure_types": sorted({f.type for f in o.failures}),
            "first_visible_frame": o.first_visible_frame(),
            "n_frames": o.n_frames,
            "n_model_frames": o.n_model_frames,
            "seconds": o.seconds,
            "error_type": o.error_type,
            "error": o.error,
        }
        if dense:
            row["returns"] = {m: (None if o.dense is None else M.episode_return(o.dense, m)) for m in M.RETURN_MODES}
        elif run.requirements.output == "episode":
            row["value"] = None if np.isnan(o.value) else float(o.value)
        episodes.append(row)
    req = run.requirements
    return {
        "report_version": 1,
        **dict(info or {}),
        "model_key": drun.model_key,
        "requirements": asdict(req),
        "return_mode": run.return_mode if dense else None,
        "summary": summary,
        "by_return": by_return,
        "errors": {
            "n": len(errors),
            "by_type": dict(Counter(str(e.get("type")) for e in errors)),
            "n_episodes_with_error": sum(1 for o in run.outcomes if o.error),
            "n_pairs_with_error": sum(1 for p in run.pairs if p.error),
            "messages": errors[:max_error_messages],
            "n_messages_left_out": max(0, len(errors) - max_error_messages),
        },
        "episodes": episodes,
        "run": {
            "n_episodes": len(drun.indices),
            "n_computed": drun.n_computed,
            "n_cached": drun.n_cached,
            "model_seconds": drun.model_seconds,
            "input_seconds": drun.input_seconds,
            "wall_seconds": drun.wall_seconds,
            "cache": str(drun.cache_path) if drun.cache_path else None,
            "missing_goal_images": len(drun.adapter.missing_goal),
        },
    }
