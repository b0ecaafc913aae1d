"""The JSON a viewer page reads: a dataset's groups and episodes, their events and curves, and
where each episode's segment lies in the concatenated LeRobot v3 video files.

Times are seconds; frames are 0-based indices into an episode (frame ``k`` of an episode is
presented at ``from_timestamp + k / fps`` of its view's mp4). Video paths are POSIX paths
relative to the dataset root (``videos/<key>/chunk-XXX/file-YYY.mp4``); the exported folder and
the server use the same relative paths, so the page works unchanged in both modes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from simfail.dataset.reader import SimfailDataset
from simfail.errors import ConfigError

__all__ = ["POLICY_COLUMN", "dataset_payload", "episode_payload", "events_of", "video_sources"]

#: Episode column naming the policy that produced an episode (datasets of policy rollouts).
POLICY_COLUMN = "simfail.policy"
_DIGITS = 4  # decimals kept of per-frame curves (the page draws them; 1e-4 is below a pixel)


def _curve(values: Any) -> list[float]:
    arr = np.asarray(values, dtype=np.float64).reshape(len(values), -1)[:, 0]
    return [round(float(v), _DIGITS) for v in arr]


def events_of(row: dict[str, Any]) -> list[dict[str, Any]]:
    """The episode's failure events as stored (every key kept, e.g. ``visible_frames``)."""
    text = row.get("simfail.failures") or "[]"
    try:
        events = json.loads(text)
    except ValueError:
        return []
    return [e for e in events if isinstance(e, dict)] if isinstance(events, list) else []


def video_sources(ds: SimfailDataset, ep: int) -> dict[str, dict[str, Any]]:
    """``{view: {"src": relative mp4 path, "from": s, "to": s}}`` of one episode."""
    out = {}
    for view in ds.views:
        path, t0, t1 = ds.video_file(ep, view)
        out[view] = {"src": path.relative_to(ds.root).as_posix(), "from": round(t0, 6), "to": round(t1, 6)}
    return out


def episode_payload(ds: SimfailDataset, ep: int) -> dict[str, Any]:
    """One episode: identity, outcome, events, per-frame ``progress``/``reward``/``failure``
    (one value per frame) and its video segments."""
    row = ds.episode(ep)
    cols = ds.episode_columns(ep)
    length = int(row["length"])
    tasks = row.get("tasks") or []
    out = {
        "index": int(ep),
        "group": int(row["simfail.group_id"]),
        "task": str(row.get("simfail.task") or (tasks[0] if tasks else "")),
        "instruction": str(tasks[0]) if tasks else "",
        "variant": str(row.get("simfail.variant", "")),
        "policy": None if row.get(POLICY_COLUMN) is None else str(row[POLICY_COLUMN]),
        "success": bool(row.get("simfail.success", False)),
        "score": float(row["simfail.score"]),
        "rank": None if row.get("simfail.rank") is None else int(row["simfail.rank"]),
        "length": length,
        "events": events_of(row),
        "videos": video_sources(ds, ep),
    }
    for name in ("progress", "reward"):
        if name in cols:
            out[name] = _curve(cols[name])
    if "failure" in cols:
        out["failure"] = [bool(v) for v in np.asarray(cols["failure"]).reshape(length, -1)[:, 0]]
    return out


def dataset_payload(ds: SimfailDataset, groups: Iterable[int] | None = None, title: str | None = None) -> dict[str, Any]:
    """Everything the viewer page shows, for the chosen groups (all by default).

    Raises:
        ConfigError: a chosen group is not in the dataset.
    """
    all_groups = ds.groups()
    chosen = sorted(all_groups) if groups is None else list(groups)
    missing = [g for g in chosen if g not in all_groups]
    if missing:
        raise ConfigError(f"groups {missing} are not in {ds.root} (it has groups {sorted(all_groups)[:20]}"
                          + (" ..." if len(all_groups) > 20 else "") + ")")
    episodes = [episode_payload(ds, ep) for g in chosen for ep in all_groups[g]]
    group_rows = []
    for g in chosen:
        eps = [e for e in episodes if e["group"] == g]
        group_rows.append({"id": g, "task": eps[0]["task"], "instruction": eps[0]["instruction"],
                           "episodes": [e["index"] for e in eps]})
    return {
        "title": title or Path(ds.root).resolve().name,
        "root": str(Path(ds.root).resolve()),
        "fps": ds.fps,
        "views": ds.views,
        "has_policy": any(e["policy"] is not None for e in episodes),
        "groups": group_rows,
        "episodes": episodes,
    }
