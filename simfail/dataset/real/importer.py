"""``simfail import-real``: a real release as a simfail dataset (``simfail.source = real``).

Layout written (LeRobot v3.0, readable by :class:`~simfail.dataset.reader.SimfailDataset`):

* one context (a RoboArena session) = one simfail group = one data file
  ``data/chunk-C/file-F.parquet`` (the ``k``-th context at ``C, F = divmod(k, chunks_size)``),
  with the index columns only (``timestamp``, ``frame_index``, ``episode_index``, ``index``,
  ``task_index``, ``next.done``): no state, action or simulator columns;
* videos are the release's own files, never re-encoded. A RoboArena dump has one mp4 per
  episode and view: episode ``e``'s file becomes ``videos/<key>/chunk-C/file-F.mp4`` with
  ``C, F = divmod(e, chunks_size)`` and ``from_timestamp`` = the file's first frame time,
  ``to_timestamp = from + length / fps``. An episode's length is its shortest view; frames a
  longer view has after that are left in the file, unused (counted in ``meta/simfail.json``
  ``import.trimmed_frames``, and accepted by ``simfail check`` for real datasets only). A
  LeRobot release keeps its concatenated files at their chunk/file and its timestamps.
  ``videos=link`` (default) hard-links each file (no copy, no extra space; falls back to a
  copy across file systems), ``videos=copy`` copies it;
* episode columns as simfail writes them, from the human labels: ``simfail.group_id``,
  ``simfail.score`` (0-100), ``simfail.success``, ``simfail.rank`` (competition rank of the
  score in its context), ``simfail.variant`` (the policy), ``simfail.task`` (the category),
  ``simfail.failures`` (the evaluator's rationale as a ``human_rationale`` event, see
  :func:`rationale_event`), ``simfail.context`` (the source's context name), ``simfail.source``
  (``"real"``), ``simfail.source_episode``;
* ``meta/preferences.parquet``: the human A/B verdicts as given, ties kept (``tie`` true,
  ``preferred = -1``) with their rationale; readers use only the strict ones.

Everything is read and checked first; the dataset is then written to a temporary folder
beside ``out``, verified with :meth:`SimfailDataset.check` and renamed into place: an error at
any point leaves ``out`` as it was.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from simfail.core.episode import FailureEvent, competition_ranks, failures_to_json
from simfail.dataset import layout as L
from simfail.errors import OutputDirError

from .mapping import RealMapping
from .probe import RealDataError
from .sources import RealRelease

__all__ = ["VIDEO_MODES", "import_release", "rationale_event", "PREFERENCE_SCHEMA"]

VIDEO_MODES: tuple[str, ...] = ("link", "copy")

#: ``meta/preferences.parquet`` of a real dataset: simfail's six columns plus the verdict kind.
PREFERENCE_SCHEMA = pa.schema([
    pa.field("group_id", pa.int64()), pa.field("episode_a", pa.int64()), pa.field("episode_b", pa.int64()),
    pa.field("preferred", pa.int64()), pa.field("score_a", pa.float64()), pa.field("score_b", pa.float64()),
    pa.field("tie", pa.bool_()), pa.field("origin", pa.string()), pa.field("rationale", pa.string()),
])

_INDEX_FEATURES = ("timestamp", "frame_index", "episode_index", "index", "task_index", "next.done")


def rationale_event(text: str, length: int) -> FailureEvent:
    """The evaluator's rationale as an event of the episode it speaks against.

    A human verdict has no frame-level timing: the event spans the whole episode (onset 0,
    irreversible and visible at the last frame) with severity 0, type ``human_rationale``,
    category ``quality``. The stress test leaves these events out of its failure metrics
    (they are not measured failures) but shows their text to models as failure descriptions.
    """
    last = max(int(length) - 1, 0)
    return FailureEvent(type="human_rationale", category="quality", onset_frame=0, irreversible_frame=last,
                        visible_frame=last, severity=0.0, objects=(), rationale=text)


def _features(rel: RealRelease) -> dict[str, dict[str, Any]]:
    feats: dict[str, dict[str, Any]] = {}
    for view in rel.views:
        h, w = rel.sizes[view]
        spec = L.video_feature(h, w, rel.fps)
        spec["info"]["video.codec"] = rel.codecs[view]
        feats[L.video_key(view)] = spec
    full = L.frame_features([], [], 0, 0)
    for name in _INDEX_FEATURES:
        feats[name] = full[name]
    return feats


def _place(src: Path, dst: Path, mode: str) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "link":
        try:
            os.link(src, dst)
            return
        except OSError:
            pass  # another file system, or links not allowed: copy
    shutil.copy2(src, dst)


def _order(rel: RealRelease) -> tuple[list[str], list[int]]:
    """Contexts in order of first appearance and the episodes grouped by context."""
    contexts: list[str] = []
    for ep in rel.episodes:
        if ep.context not in contexts:
            contexts.append(ep.context)
    order = [i for c in contexts for i, ep in enumerate(rel.episodes) if ep.context == c]
    return contexts, order


def _write(tmp: Path, rel: RealRelease, mapping: RealMapping, src: Path, videos: str, chunks_size: int) -> dict[str, Any]:
    from simfail.dataset.stats import aggregate_stats, numeric_stats
    from simfail.dataset.writer import _parquet_bytes, _tasks_table

    contexts, order = _order(rel)
    new_of = {old: new for new, old in enumerate(order)}
    eps = [rel.episodes[i] for i in order]
    group_of = [contexts.index(ep.context) for ep in eps]
    tasks: dict[str, int] = {}
    for ep in eps:
        tasks.setdefault(ep.instruction, len(tasks))
    fps = rel.fps
    # rationale events: against the verdict's loser, or both episodes of a tie
    events: dict[int, list[FailureEvent]] = {i: [] for i in range(len(eps))}
    for i, ep in enumerate(eps):
        if ep.rationale:
            events[i].append(rationale_event(ep.rationale, ep.length))
    for v in rel.verdicts:
        if not v.rationale:
            continue
        a, b = new_of[v.a], new_of[v.b]
        targets = [a, b] if v.winner is None else [b if new_of[v.winner] == a else a]
        for t in targets:
            events[t].append(rationale_event(v.rationale, eps[t].length))
    ranks: dict[int, int] = {}
    for g in range(len(contexts)):
        members = [i for i in range(len(eps)) if group_of[i] == g]
        for i, r in zip(members, competition_ranks([eps[i].score for i in members])):
            ranks[i] = r
    # data files, one per context
    starts = np.concatenate([[0], np.cumsum([ep.length for ep in eps])]).astype(np.int64)
    feats = _features(rel)
    from simfail.dataset.writer import data_schema

    schema = data_schema({k: feats[k] for k in _INDEX_FEATURES})
    per_stats: dict[str, dict[str, list[np.ndarray]]] = {k: {s: [] for s in L.STAT_NAMES} for k in _INDEX_FEATURES}
    ep_rows: dict[str, list[Any]] = {}

    def put(name: str, value: Any) -> None:
        ep_rows.setdefault(name, []).append(value)

    for g in range(len(contexts)):
        members = [i for i in range(len(eps)) if group_of[i] == g]
        cols: dict[str, list[np.ndarray]] = {k: [] for k in _INDEX_FEATURES}
        for i in members:
            n = eps[i].length
            done = np.zeros(n, dtype=bool)
            done[-1] = True
            values = {
                "timestamp": (np.arange(n) / fps).astype(np.float32), "frame_index": np.arange(n, dtype=np.int64),
                "episode_index": np.full(n, i, dtype=np.int64), "index": np.arange(starts[i], starts[i + 1], dtype=np.int64),
                "task_index": np.full(n, tasks[eps[i].instruction], dtype=np.int64), "next.done": done,
            }
            for k, arr in values.items():
                cols[k].append(arr)
                st = numeric_stats(arr)
                for s in L.STAT_NAMES:
                    per_stats[k][s].append(st[s])
        chunk, file = L.group_location(g, chunks_size)
        table = pa.Table.from_arrays([pa.array(np.concatenate(cols[k])) for k in _INDEX_FEATURES], schema=schema)
        path = tmp / L.data_path(chunk, file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(_parquet_bytes(table))
    # videos
    placed: dict[Path, Path] = {}
    for i, ep in enumerate(eps):
        put("episode_index", i)
        put("tasks", [ep.instruction])
        put("length", ep.length)
        put("dataset_from_index", int(starts[i]))
        put("dataset_to_index", int(starts[i + 1]))
        chunk, file = L.group_location(group_of[i], chunks_size)
        put("data/chunk_index", chunk)
        put("data/file_index", file)
        for view in rel.views:
            key = L.video_key(view)
            span = ep.videos[view]
            loc = span.location if rel.layout == "shared" else L.group_location(i, chunks_size)
            assert loc is not None
            dst = tmp / L.video_path(key, loc[0], loc[1])
            if dst not in placed:
                _place(span.path, dst, videos)
                placed[dst] = span.path
            elif placed[dst] != span.path:  # pragma: no cover - locations come from distinct files
                raise RealDataError(f"two source files map to {dst.relative_to(tmp)}")
            put(f"videos/{key}/chunk_index", int(loc[0]))
            put(f"videos/{key}/file_index", int(loc[1]))
            put(f"videos/{key}/from_timestamp", float(span.start))
            put(f"videos/{key}/to_timestamp", float(span.start + ep.length / fps))
        put("meta/episodes/chunk_index", 0)
        put("meta/episodes/file_index", 0)
        put("simfail.group_id", group_of[i])
        put("simfail.variant", ep.policy)
        put("simfail.success", bool(ep.success))
        put("simfail.score", float(ep.score))
        put("simfail.rank", int(ranks[i]))
        put("simfail.failures", failures_to_json(events[i]))
        put("simfail.seed", -1)
        put("simfail.task", ep.category)
        put("simfail.perturbation", "{}")
        put("simfail.context", ep.context)
        put("simfail.source", "real")
        put("simfail.source_episode", ep.key)
    types = {"tasks": pa.list_(pa.string())}
    arrays = {k: pa.array(v, type=types.get(k)) for k, v in ep_rows.items()}
    ep_path = tmp / L.episodes_path(0, 0)
    ep_path.parent.mkdir(parents=True, exist_ok=True)
    ep_path.write_bytes(_parquet_bytes(pa.table(arrays)))
    # preferences: every verdict, ties included
    prefs: dict[str, list[Any]] = {f.name: [] for f in PREFERENCE_SCHEMA}
    for v in rel.verdicts:
        a, b = sorted((new_of[v.a], new_of[v.b]))
        for name, value in (("group_id", group_of[a]), ("episode_a", a), ("episode_b", b),
                            ("preferred", -1 if v.winner is None else new_of[v.winner]), ("score_a", eps[a].score),
                            ("score_b", eps[b].score), ("tie", v.winner is None), ("origin", "human"),
                            ("rationale", v.rationale)):
            prefs[name].append(value)
    meta = tmp / "meta"
    (meta / "preferences.parquet").write_bytes(_parquet_bytes(pa.Table.from_pydict(prefs, schema=PREFERENCE_SCHEMA)))
    (meta / "tasks.parquet").write_bytes(_parquet_bytes(_tasks_table(list(tasks))))
    stats = {}
    for k in _INDEX_FEATURES:
        agg = aggregate_stats({s: np.stack(v) for s, v in per_stats[k].items()})
        stats[k] = {s: np.asarray(agg[s]).tolist() for s in L.STAT_NAMES}
    (meta / "stats.json").write_text(L.dumps_json(stats, indent=4) + "\n")
    info = {
        "codebase_version": L.CODEBASE_VERSION, "robot_type": "real", "total_episodes": len(eps),
        "total_frames": int(starts[-1]), "total_tasks": len(tasks), "chunks_size": chunks_size,
        "data_files_size_in_mb": L.DEFAULT_DATA_FILE_SIZE_IN_MB, "video_files_size_in_mb": L.DEFAULT_VIDEO_FILE_SIZE_IN_MB,
        "fps": fps, "splits": {"train": f"0:{len(eps)}"}, "data_path": L.DATA_PATH, "video_path": L.VIDEO_PATH,
        "features": feats,
    }
    (meta / "info.json").write_text(L.dumps_json(info, indent=4, sort_keys=False) + "\n")
    n_ties = sum(1 for v in rel.verdicts if v.winner is None)
    summary = {
        "format": "simfail-lerobot", "source": "real", "codebase_version": L.CODEBASE_VERSION,
        "total_groups": len(contexts), "total_episodes": len(eps), "total_frames": int(starts[-1]), "total_tasks": len(tasks),
        "total_preferences": len(rel.verdicts) - n_ties, "total_ties": n_ties, "views": rel.views,
        "groups": [{"group_id": g, "context": c, "instruction": next(ep.instruction for ep in eps if ep.context == c),
                    "task": next(ep.category for ep in eps if ep.context == c)} for g, c in enumerate(contexts)],
        "import": {
            "src": str(src.resolve()), "format": mapping.format, "mapping": mapping.to_dict(), "videos": videos,
            "video_layout": rel.layout, "dropped_views": rel.dropped_views, "trimmed_frames": rel.trimmed,
        },
    }
    (meta / "simfail.json").write_text(L.dumps_json(summary, indent=2) + "\n")
    return summary


def import_release(rel: RealRelease, mapping: RealMapping, src: str | Path, out: str | Path, *, videos: str = "link",
                   overwrite: bool = False, chunks_size: int = 1000, verify: bool = True) -> dict[str, Any]:
    """Write ``rel`` as a simfail dataset at ``out`` (atomically); returns ``meta/simfail.json``."""
    from simfail.dataset.reader import SimfailDataset

    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"out={out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(f"out={out} is not empty; pass overwrite=true to replace it")
    if out.resolve() == Path(src).resolve() or Path(src).resolve() in out.resolve().parents:
        raise OutputDirError(f"out={out} is inside the source {src}; write the import elsewhere")
    if out.resolve() in Path(src).resolve().parents:
        raise OutputDirError(f"the source {src} is inside out={out}; replacing out would delete it")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.import-", dir=out.parent))
    try:
        summary = _write(tmp, rel, mapping, Path(src), videos, chunks_size)
        if verify:
            problems = SimfailDataset(tmp).check(videos=True)
            if problems:
                raise RealDataError(f"the imported dataset does not pass simfail check: {problems[0]}"
                                    + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""))
        if out.is_dir():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(tmp, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return summary
