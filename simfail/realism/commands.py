"""``simfail realism``: edit a dataset's videos toward photorealism.

``simfail realism data=DIR out=DIR2 model=PATH [key=value ...]`` composes
``configs/realism.yaml`` with the overrides (Hydra), edits every episode with the model,
checks that each failure stays visible, and writes a new simfail dataset. ``--cfg`` prints the
composed settings and exits. See :mod:`simfail.realism.edit` for what is written.
"""

from __future__ import annotations

import json
from typing import Any


__all__ = ["cmd_realism", "realism_settings"]


def realism_settings(args: list[str]) -> dict[str, Any]:
    """Composed settings of ``simfail realism`` from ``key=value`` arguments."""
    from simfail.cli import checked_overrides, compose

    overrides, _ = checked_overrides(args, "realism", "realism", "simfail realism data=DIR out=DIR2 model=PATH")
    return compose("realism", overrides)


def _table(summary: dict[str, Any]) -> str:
    lines = [f"dataset: {summary['out']}",
             f"episodes written: {summary['episodes_written']} of {summary['episodes_in']} "
             f"(groups: {summary['groups_written']}, left out: {len(summary['rejected'])})"]
    t = summary["timing"]
    lines.append(f"frames edited: {t['frames']}  edit: {t['frames_per_s_edit']} frames/s  overall: "
                 f"{t['frames_per_s_total']} frames/s  peak RSS: {t['peak_rss_mb']} MB"
                 + (f"  peak CUDA: {t['peak_cuda_mb']} MB" if "peak_cuda_mb" in t else ""))
    if summary.get("groups_resumed"):
        lines.append(f"resumed: {summary['groups_resumed']} group(s) were done by the interrupted run(s)")
    lines.append(f"{'episode':>7}  {'group':>5}  {'variant':<22} {'edge':>6} {'object':>6} {'temporal':>8}  written")
    for e in summary["episodes"]:
        obj = "-" if e["object"] is None else f"{e['object']:.3f}"
        tmp = "-" if e.get("temporal") is None else f"{e['temporal']:.3f}"
        lines.append(f"{e['source_episode']:>7}  {e['group']:>5}  {str(e['variant'])[:22]:<22} {e['edge']:>6.3f} "
                     f"{obj:>6} {tmp:>8}  {'yes' if e['written'] else 'no: ' + '; '.join(e['reasons'])}")
    return "\n".join(lines)


def cmd_realism(args: list[str]) -> int:
    show = "--cfg" in args
    cfg = realism_settings([a for a in args if a != "--cfg"])
    if show:
        print(json.dumps(cfg, indent=2))
        return 0
    from simfail.realism.edit import run_realism

    summary = run_realism(cfg)
    print(_table(summary))
    return 0
