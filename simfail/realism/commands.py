"""``simfail realism``: edit a dataset's videos toward photorealism.

``simfail realism data=DIR out=DIR2 model=PATH [key=value ...]`` composes
``configs/realism.yaml`` with the overrides (Hydra), edits every episode with the model,
checks that each failure stays visible, and writes a new simfail dataset. ``--cfg`` prints the
composed settings and exits. See :mod:`simfail.realism.edit` for what is written.
"""

from __future__ import annotations

from typing import Any


__all__ = ["cmd_realism", "realism_main", "realism_settings"]


def realism_settings(args: list[str]) -> dict[str, Any]:
    """Composed and type-checked settings of ``simfail realism`` from ``key=value`` arguments
    (``data``/``out`` may still be missing: :func:`simfail.realism.edit.run_realism` checks
    what a run needs)."""
    import dataclasses

    from simfail.commands import get_command
    from simfail.schema import build

    cmd = get_command("realism")
    return dataclasses.asdict(build(cmd.schema, cmd.yaml_name, args, command=cmd.name, required=False))


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


def realism_main(cfg: Any) -> int:
    """``run`` of ``simfail realism``: edit, write, print the per-episode table."""
    import dataclasses

    from simfail.realism.edit import run_realism

    summary = run_realism(dataclasses.asdict(cfg))
    print(_table(summary))
    if summary.get("executor"):  # a sharded run: per-worker episodes/hour and the merge cost
        from simfail.scale.sharded import worker_table

        print(worker_table(summary))
    return 0


def cmd_realism(args: list[str]) -> int:
    """``simfail realism key=value ...`` (raises SimfailError on bad input)."""
    from simfail.commands import invoke

    return invoke("realism", args)
