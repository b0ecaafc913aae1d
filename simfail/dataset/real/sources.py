"""Readers of real releases: a RoboArena dump and a LeRobot v3 dataset with human labels.

Both return a :class:`RealRelease`: episodes with their human score (already on simfail's
0-100), success, instruction, category, context and the video span of every view, plus the
A/B verdicts. Every problem is one :class:`~simfail.dataset.real.probe.RealDataError` naming the file,
field or episode; nothing is written by a reader.

Video spans must be constant-frame-rate: frame ``i`` of an episode at ``start + i / fps``
within 1e-4 s (LeRobot's tolerance, the one ``simfail check`` applies), ``fps`` a whole number
shared by every file of the release.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import read_json

from .mapping import RealMapping
from .probe import RealDataError, VideoProbe, probe_video

__all__ = ["VideoSpan", "RealEpisode", "RealVerdict", "RealRelease", "read_roboarena", "read_lerobot", "read_release"]

_TOL = 1e-4


@dataclass
class VideoSpan:
    """Frames ``[start, start + length / fps)`` of ``path`` (``location``: the source's
    ``(chunk, file)`` when the file is a LeRobot file shared by several episodes)."""

    path: Path
    start: float
    n_frames: int
    probe: VideoProbe = field(repr=False)
    location: tuple[int, int] | None = None


@dataclass
class RealEpisode:
    key: str
    context: str
    policy: str
    instruction: str
    score: float  # 0..100
    success: bool
    category: str
    videos: dict[str, VideoSpan]
    length: int = 0
    rationale: str | None = None  # a per-episode rationale (LeRobot column), if the release has one


@dataclass
class RealVerdict:
    """An A/B verdict between episodes ``a`` and ``b`` (indices into ``RealRelease.episodes``);
    ``winner`` is ``a``, ``b`` or ``None`` for a tie."""

    a: int
    b: int
    winner: int | None
    rationale: str | None = None


@dataclass
class RealRelease:
    episodes: list[RealEpisode]
    verdicts: list[RealVerdict]
    fps: int
    views: list[str]
    sizes: dict[str, tuple[int, int]]
    codecs: dict[str, str]
    dropped_views: dict[str, int] = field(default_factory=dict)  # view -> episodes lacking it
    trimmed: dict[str, dict[str, int]] = field(default_factory=dict)  # episode key -> view -> frames left out
    layout: str = "per_episode"  # per_episode (one mp4 per episode) | shared (LeRobot files kept)


# --------------------------------------------------------------------------- shared checks


def _whole_fps(probe: VideoProbe) -> int:
    fps = int(round(probe.fps))
    if fps < 1 or abs(probe.fps - fps) > 1e-3:
        raise RealDataError(f"{probe.path}: frame rate {probe.fps:.4f} fps is not a whole number; LeRobot v3 stores an "
                            "integer fps (re-mux the file at a whole frame rate)")
    return fps


def _check_regular(times: np.ndarray, fps: int, where: str) -> None:
    if times.size < 1:
        raise RealDataError(f"{where}: the video has no frames")
    dev = np.abs(times - times[0] - np.arange(times.size) / fps)
    if dev.max() > _TOL:
        i = int(np.argmax(dev))
        raise RealDataError(f"{where}: frame {i} is {dev[i]:.6f} s off a constant {fps} fps clock (tolerance {_TOL} s); "
                            "variable-frame-rate video cannot be stored without re-encoding")


def _finish(episodes: list[RealEpisode], verdicts: list[RealVerdict], mapping: RealMapping, layout: str) -> RealRelease:
    """Common fps, views present in every episode, per-view frame size, trimmed lengths."""
    if not episodes:
        raise RealDataError("the release holds no episode")
    fps_seen: dict[int, str] = {}
    for ep in episodes:
        for view, span in ep.videos.items():
            fps_seen.setdefault(_whole_fps(span.probe), f"{ep.key} {view}")
    if len(fps_seen) > 1:
        raise RealDataError(f"videos have different frame rates ({', '.join(f'{f} fps in {w}' for f, w in sorted(fps_seen.items()))}); "
                            "a dataset has one fps")
    fps = next(iter(fps_seen))
    views, dropped = [], {}
    for view in mapping.views:
        lacking = sum(1 for ep in episodes if view not in ep.videos)
        if lacking == 0:
            views.append(view)
        else:
            dropped[view] = lacking
    if not views:
        raise RealDataError("no view is present in every episode")
    sizes: dict[str, tuple[int, int]] = {}
    codecs: dict[str, str] = {}
    for view in views:
        for ep in episodes:
            p = ep.videos[view].probe
            size = (p.height, p.width)
            if sizes.setdefault(view, size) != size:
                raise RealDataError(f"view {view}: {ep.key} is {size[1]}x{size[0]} but other episodes are {sizes[view][1]}x{sizes[view][0]}; "
                                    "one LeRobot video feature has one frame size")
            codecs.setdefault(view, p.codec)
    trimmed: dict[str, dict[str, int]] = {}
    for ep in episodes:
        for view in list(ep.videos):
            if view not in views:
                del ep.videos[view]
        n = min(span.n_frames for span in ep.videos.values())
        for view, span in ep.videos.items():
            times = span.probe.times
            first = int(np.searchsorted(times, span.start - _TOL))
            _check_regular(times[first:first + n], fps, f"{ep.key} view {view} ({span.path})")
            if span.n_frames > n and layout == "per_episode":
                trimmed.setdefault(ep.key, {})[view] = span.n_frames - n
        if layout == "shared" and any(span.n_frames != n for span in ep.videos.values()):
            raise RealDataError(f"{ep.key}: its views hold different numbers of frames")
        ep.length = n
    return RealRelease(episodes, verdicts, fps, views, sizes, codecs, dropped, trimmed, layout)


def _score(value: Any, mapping: RealMapping, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)) or not np.isfinite(float(value)):
        raise RealDataError(f"{where}: score {mapping.score}={value!r} is not a number")
    if not mapping.in_scale(float(value)):
        lo, hi = mapping.score_scale
        raise RealDataError(f"{where}: score {mapping.score}={value!r} is outside the declared scale [{lo:g}, {hi:g}]")
    return mapping.to_score(float(value))


def _success(value: Any, where: str, name: str) -> bool:
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    if isinstance(value, float) and value in (0.0, 1.0):
        return bool(value)
    raise RealDataError(f"{where}: success {name}={value!r} is not a boolean (true/false or 0/1)")


# --------------------------------------------------------------------------- RoboArena


def read_roboarena(src: str | Path, mapping: RealMapping) -> RealRelease:
    """Read ``src/<sessions>/<session>/<metadata>`` and each policy's ``<id>_<name>/`` videos."""
    import yaml

    root = Path(src) / mapping.sessions
    if not root.is_dir():
        raise RealDataError(f"{Path(src)} is not a RoboArena dump: {mapping.sessions}/ is missing")
    episodes: list[RealEpisode] = []
    verdicts: list[RealVerdict] = []
    probes: dict[Path, VideoProbe] = {}
    for sdir in sorted(p for p in root.iterdir() if p.is_dir()):
        meta_path = sdir / mapping.metadata
        where = f"session {sdir.name}"
        if not meta_path.is_file():
            raise RealDataError(f"{where}: {mapping.metadata} is missing")
        try:
            meta = yaml.safe_load(meta_path.read_text())
        except (OSError, yaml.YAMLError) as exc:
            raise RealDataError(f"cannot read {meta_path}: {str(exc).splitlines()[0]}") from exc
        if not isinstance(meta, dict):
            raise RealDataError(f"{meta_path} does not hold a YAML mapping")
        instr = meta.get(mapping.instruction or "language_instruction")
        if not isinstance(instr, str) or not instr.strip():
            raise RealDataError(f"{where}: {mapping.instruction} (the instruction) is missing from {mapping.metadata}")
        policies = meta.get(mapping.policies)
        if not isinstance(policies, dict) or not policies:
            raise RealDataError(f"{where}: {mapping.policies} (policy id -> its fields) is missing from {mapping.metadata}")
        ids: list[str] = []
        index_of: dict[str, int] = {}
        for pid, entry in policies.items():
            pid = str(pid)
            pwhere = f"{where} policy {pid}"
            if not isinstance(entry, dict):
                raise RealDataError(f"{pwhere}: expected a mapping of fields, got {entry!r}")
            name_key = mapping.policy or "policy_name"
            if name_key not in entry:
                raise RealDataError(f"{pwhere}: field {name_key} is missing")
            if mapping.score not in entry:
                raise RealDataError(f"{pwhere}: score field {mapping.score} is missing")
            name = str(entry[name_key])
            raw = entry[mapping.score]
            score = _score(raw, mapping, pwhere)
            if mapping.success is not None:
                if mapping.success not in entry:
                    raise RealDataError(f"{pwhere}: success field {mapping.success} is missing")
                success = _success(entry[mapping.success], pwhere, mapping.success)
            else:
                success = float(raw) >= float(mapping.success_at)  # type: ignore[arg-type]
            pdir = sdir / f"{pid}_{name}"
            if not pdir.is_dir():
                raise RealDataError(f"{pwhere}: episode without video: folder {pdir.name}/ is missing")
            videos: dict[str, VideoSpan] = {}
            for view, pattern in mapping.views.items():
                found = sorted(pdir.glob(pattern))
                if len(found) > 1:
                    raise RealDataError(f"{pwhere}: several files match view {view} ({pattern}): {[f.name for f in found]}")
                if not found:
                    if view in mapping.required_views:
                        raise RealDataError(f"{pwhere}: episode without video: no {view} view ({pattern}) in {pdir.name}/")
                    continue
                probe = probes.get(found[0]) or probe_video(found[0])
                probes[found[0]] = probe
                if probe.n_frames == 0:
                    raise RealDataError(f"{pwhere}: episode without video: {found[0].name} has no frames")
                videos[view] = VideoSpan(found[0], float(probe.times[0]), probe.n_frames, probe)
            index_of[pid] = len(episodes)
            ids.append(pid)
            episodes.append(RealEpisode(f"{sdir.name}/{pid}", sdir.name, name, instr.strip(), score, success,
                                        mapping.category_of(instr, entry), videos))
        verdict = meta.get(mapping.preference or "preference")
        rationale = meta.get(mapping.rationale or "feedback")
        rationale = str(rationale).strip() if rationale not in (None, "") else None
        if verdict is None:
            continue
        if len(ids) != 2:
            raise RealDataError(f"{where}: an A/B verdict needs exactly two policies, the session has {len(ids)}")
        a, b = index_of[ids[0]], index_of[ids[1]]
        text = str(verdict).strip()
        if mapping.is_tie(text):
            winner = None
        elif text in index_of:
            winner = index_of[text]
        elif text.upper() in ("A", "B"):
            winner = a if text.upper() == "A" else b
        else:
            raise RealDataError(f"{where}: preference {verdict!r} names an unknown episode (policies: {', '.join(ids)}; "
                                f"or A, B, {', '.join(mapping.tie)})")
        verdicts.append(RealVerdict(a, b, winner, rationale))
    return _finish(episodes, verdicts, mapping, "per_episode")


# --------------------------------------------------------------------------- LeRobot v3


def _read_table(path: Path):
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.json as pjson
    import pyarrow.parquet as pq

    try:
        if path.suffix == ".parquet":
            return pq.read_table(path)
        if path.suffix == ".csv":
            return pcsv.read_csv(path)
        if path.suffix in (".jsonl", ".json"):
            return pjson.read_json(path)
    except (OSError, pa.ArrowException) as exc:
        raise RealDataError(f"cannot read {path}: {exc}") from exc
    raise RealDataError(f"{path}: unsupported table format (use .parquet, .csv or .jsonl)")


def read_lerobot(src: str | Path, mapping: RealMapping) -> RealRelease:
    """Read a LeRobot v3 dataset's episodes files, its video files and the verdicts table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = Path(src)
    info_path = root / "meta" / "info.json"
    if not info_path.is_file():
        raise RealDataError(f"{root} is not a LeRobot dataset: meta/info.json is missing")
    info = read_json(info_path, RealDataError)
    if str(info.get("codebase_version", "")).split(".")[0] != "v3":
        raise RealDataError(f"{info_path}: codebase_version {info.get('codebase_version')!r} is not LeRobot v3")
    video_keys = [k for k, v in (info.get("features") or {}).items() if isinstance(v, dict) and v.get("dtype") == "video"]
    for view, key in mapping.views.items():
        if key not in video_keys:
            raise RealDataError(f"the mapping names view {view} = {key!r}, which is not a video feature of {root} "
                                f"(video keys: {', '.join(video_keys) or 'none'})")
    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise RealDataError(f"{root}: no episodes files under meta/episodes/")
    try:
        table = pa.concat_tables([pq.read_table(f) for f in files], promote_options="default").sort_by("episode_index")
    except (OSError, pa.ArrowException) as exc:
        raise RealDataError(f"cannot read the episodes files of {root}: {exc}") from exc
    cols = set(table.column_names)
    named = [("score", mapping.score), ("context", mapping.context), ("success", mapping.success),
             ("policy", mapping.policy), ("instruction", mapping.instruction), ("rationale", mapping.rationale)]
    if "column" in mapping.category:
        named.append(("category", mapping.category["column"]))
    for what, col in named:
        if col is not None and col not in cols:
            raise RealDataError(f"the mapping names {what} column {col!r}, which the episodes files of {root} do not have "
                                f"(columns: {', '.join(sorted(c for c in cols if not c.startswith('stats/')))})")
    video_path = str(info.get("video_path") or "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4")
    rows = table.select([c for c in table.column_names if not c.startswith("stats/")]).to_pylist()
    probes: dict[Path, VideoProbe] = {}
    episodes: list[RealEpisode] = []
    index_of: dict[int, int] = {}
    for r in rows:
        ep = int(r["episode_index"])
        where = f"episode {ep}"
        score = _score(r.get(mapping.score), mapping, where)
        success = (_success(r.get(mapping.success), where, mapping.success) if mapping.success is not None
                   else float(r[mapping.score]) >= float(mapping.success_at))  # type: ignore[arg-type]
        tasks = r.get("tasks") or []
        instr = str(r.get(mapping.instruction) if mapping.instruction else (tasks[0] if tasks else "")).strip()
        if not instr:
            raise RealDataError(f"{where}: no instruction (the mapping's instruction field, or the episode's task)")
        length = int(r["length"])
        videos: dict[str, VideoSpan] = {}
        for view, key in mapping.views.items():
            loc_cols = [f"videos/{key}/{c}" for c in ("chunk_index", "file_index", "from_timestamp")]
            if any(r.get(c) is None for c in loc_cols):
                if view in mapping.required_views:
                    raise RealDataError(f"{where}: episode without video: no {key} location in the episodes file")
                continue
            chunk, file = int(r[loc_cols[0]]), int(r[loc_cols[1]])
            path = root / video_path.format(video_key=key, chunk_index=chunk, file_index=file)
            if not path.is_file():
                if view in mapping.required_views:
                    raise RealDataError(f"{where}: episode without video: {path} is missing")
                continue  # an optional view: left out of the import when any episode lacks it
            probe = probes.get(path) or probe_video(path)
            probes[path] = probe
            start = float(r[loc_cols[2]])
            lo = int(np.searchsorted(probe.times, start - _TOL))
            n = int(min(length, probe.n_frames - lo))
            if n < length:
                raise RealDataError(f"{where}: {path.name} holds {max(n, 0)} frames from {start:.4f} s, the episode has {length}")
            videos[view] = VideoSpan(path, float(probe.times[lo]), length, probe, (chunk, file))
        index_of[ep] = len(episodes)
        rationale = r.get(mapping.rationale) if mapping.rationale else None
        episodes.append(RealEpisode(f"episode {ep}", str(r[mapping.context]), str(r.get(mapping.policy) or "rollout")
                                    if mapping.policy else "rollout", instr, score, success,
                                    mapping.category_of(instr, r), videos, length,
                                    str(rationale).strip() if rationale not in (None, "") else None))
    verdicts: list[RealVerdict] = []
    pf = mapping.preferences
    if pf is not None:
        path = root / pf.file
        if not path.is_file():
            raise RealDataError(f"the mapping's preferences file {path} does not exist")
        vt = _read_table(path)
        for col in (pf.episode_a, pf.episode_b, pf.verdict, pf.rationale):
            if col is not None and col not in vt.column_names:
                raise RealDataError(f"the mapping names preference column {col!r}, which {path.name} does not have "
                                    f"(columns: {', '.join(vt.column_names)})")
        for i, v in enumerate(vt.to_pylist()):
            where = f"{path.name} row {i}"
            pair = []
            for col in (pf.episode_a, pf.episode_b):
                e = v[col]
                if isinstance(e, bool) or not isinstance(e, int) or e not in index_of:
                    raise RealDataError(f"{where}: preference names an unknown episode {col}={e!r}")
                pair.append(index_of[e])
            a, b = pair
            if a == b:
                raise RealDataError(f"{where}: a preference compares episode {v[pf.episode_a]} with itself")
            if episodes[a].context != episodes[b].context:
                raise RealDataError(f"{where}: episodes {v[pf.episode_a]} and {v[pf.episode_b]} are in different contexts "
                                    f"({episodes[a].context!r}, {episodes[b].context!r}); a preference compares rollouts of one context")
            verdict = v[pf.verdict]
            text = str(verdict).strip()
            if mapping.is_tie(text):
                winner = None
            elif text.lower() in ("a", "b"):
                winner = a if text.lower() == "a" else b
            elif text.lstrip("-").isdigit() and int(text) in (v[pf.episode_a], v[pf.episode_b]) and not isinstance(verdict, bool):
                winner = index_of[int(text)]
            else:
                raise RealDataError(f"{where}: verdict {verdict!r} names an unknown episode (expected a, b, "
                                    f"{', '.join(mapping.tie)} or episode {v[pf.episode_a]} / {v[pf.episode_b]})")
            rat = v.get(pf.rationale) if pf.rationale else None
            verdicts.append(RealVerdict(a, b, winner, str(rat).strip() if rat not in (None, "") else None))
    return _finish(episodes, verdicts, mapping, "shared")


READERS = {"roboarena": read_roboarena, "lerobot": read_lerobot}


def read_release(src: str | Path, mapping: RealMapping) -> RealRelease:
    """Read ``src`` with the reader of ``mapping.format``."""
    return READERS[mapping.format](src, mapping)
