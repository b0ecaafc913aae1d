"""The realization / recovery table of docs/recovery.md and README.md, from ``simfail rollout``
summaries.

    python tools/recovery_table.py SUMMARY.json [SUMMARY.json ...] > table.md

Each SUMMARY.json is what ``simfail rollout policy=P task=T perturb=[...] continuation=C
json=SUMMARY.json`` saved (one policy, one task, one continuation per file). One row per
(task, policy), one column per generic operator; a cell reads ``open k/n; closed k/n, rec k/n``:
variants whose events show the operator's intended failure (realized) in the open-loop and the
closed-loop continuation, and closed-loop variants that end with a ``recovered`` event. Every
number comes from the summaries; nothing is typed in by hand.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Row order of the tasks (the README's order of the categories).
TASK_ORDER = ("pick_place", "stack", "tool_use", "push_pull", "open_close", "reorient", "pour")


def variant_counts(summary: dict) -> dict[tuple[str, str], dict[str, int]]:
    """``{(policy, operator): {episodes, realized, recovered}}`` of one summary's perturbed rows
    (labels ``policy+operator@magnitude``)."""
    out: dict[tuple[str, str], dict[str, int]] = {}
    for label, row in summary["policies"].items():
        if "+" not in label or "realized" not in row:
            continue
        policy, _, op = label.partition("+")
        out[(policy, op.split("@")[0])] = {"episodes": int(row["episodes"]), "realized": int(row["realized"]),
                                           "recovered": int(row["recovered"])}
    return out


def table(paths: list[str]) -> str:
    cells: dict[tuple[str, str, str], dict[str, dict[str, int]]] = {}
    operators: list[str] = []
    for path in paths:
        s = json.loads(Path(path).read_text())
        cont = {row.get("continuation") for row in s["policies"].values() if "continuation" in row}
        if len(cont) != 1:
            raise SystemExit(f"{path}: expected one continuation, found {sorted(map(str, cont))}")
        continuation = cont.pop()
        for (policy, op), counts in variant_counts(s).items():
            cells.setdefault((s["task"], policy, op), {})[continuation] = counts
            if op not in operators:
                operators.append(op)
    rows = sorted({(t, p) for t, p, _ in cells}, key=lambda tp: (TASK_ORDER.index(tp[0]) if tp[0] in TASK_ORDER else 99,
                                                                 tp[1]))
    lines = ["| task | policy | " + " | ".join(operators) + " |", "|---|---|" + "---|" * len(operators)]
    for task, policy in rows:
        out = []
        for op in operators:
            c = cells.get((task, policy, op), {})
            o, cl = c.get("open_loop"), c.get("closed_loop")
            parts = []
            if o:
                parts.append(f"open {o['realized']}/{o['episodes']}")
            if cl:
                parts.append(f"closed {cl['realized']}/{cl['episodes']}, rec {cl['recovered']}/{cl['episodes']}")
            out.append("; ".join(parts) or "n/a")
        lines.append(f"| {task} | {policy} | " + " | ".join(out) + " |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summaries", nargs="+")
    print(table(ap.parse_args().summaries))


if __name__ == "__main__":
    main()
