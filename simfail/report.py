"""Plain-text summary tables printed at the end of long commands."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def write_summary_json(path: str | Path, summary: dict[str, Any]) -> None:
    """Save a command's summary as indented JSON (values JSON cannot hold written as ``str``),
    atomically: a reader sees the old file or the whole new one."""
    import json

    from simfail.learn.checkpoint import atomic_write_bytes

    atomic_write_bytes(path, (json.dumps(summary, indent=2, default=str) + "\n").encode())


def table(rows: list[list[str]], header: list[str]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)
    fmt = lambda r: "  ".join(str(c).ljust(w) for c, w in zip(r, widths))  # noqa: E731
    return "\n".join([fmt(header), line, *(fmt(r) for r in rows)])


def summary_table(s: dict[str, Any]) -> str:
    t = s["time"]
    total = s["seconds"]
    head = [
        f"dataset: {s['out']}",
        f"groups written: {s['groups']} (already there: {len(s['skipped_groups'])})   "
        f"episodes: {s['episodes']}   successful: {s['success']}   time: {total:.1f} s"
        + (f"   ({s['episodes'] / total * 3600:.0f} episodes/h)" if total > 0 and s["episodes"] else ""),
        f"time split: physics {t['physics']:.1f} s and labels {t['labels']:.1f} s on the main thread; "
        f"rendering {t['render']:.1f} s and encode+write {t['write_encode']:.1f} s on their own threads, "
        f"overlapped" + (f" (the camera visibility pass: {t['visibility']:.1f} s on the render thread)"
                         if "visibility" in t else ""),
    ]
    v = s.get("events_by_views")
    if v:
        head.append("failure events seen by 0/1/2/3 camera views: " + "/".join(str(v[k]) for k in "0123")
                    + (f" ({v['unknown']} not computed)" if v.get("unknown") else ""))
    head.append("")
    rows = [[k, str(v)] for k, v in s["failures_by_type"].items()] or [["(none)", "0"]]
    return "\n".join(head) + table(rows, ["failure event", "episodes"])
