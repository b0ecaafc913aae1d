"""The bc / noisy_expert table of docs/policies.md and README.md, from ``simfail rollout`` summaries.

    python tools/policy_table.py SUMMARY.json [SUMMARY.json ...] > table.md

Each SUMMARY.json is what ``simfail rollout ... json=SUMMARY.json`` saved. One row per (task,
policy label): the policy (``bc`` with the number of demos and training steps read from its
checkpoint's ``config.json``, ``noisy_expert`` with its ``level``), the success rate over the
run's initial states, the most frequent event types among the *failed* episodes (episodes
carrying each type), the failed episodes that carry no event at all, and the mean score.
Nothing is typed in by hand: every number comes from the summaries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

#: Row order of the tasks (the README's order of the categories).
TASK_ORDER = ("pick_place", "stack", "tool_use", "push_pull", "open_close", "reorient", "pour")
TOP = 3


def policy_cell(spec: dict) -> tuple[str, str, tuple]:
    """(policy, setting, sort key) of a summary's ``policy_specs`` entry."""
    name, kwargs = spec["spec"], spec.get("kwargs", {})
    if name == "bc":
        cfg = json.loads((Path(str(kwargs["checkpoint"])) / "config.json").read_text())
        train = cfg["train"]["settings"]
        return "bc", f"{train['demos']} demos, {train['steps']} steps", (0, int(train["demos"]))
    if name == "noisy_expert":
        level = float(kwargs.get("level", 1.0))
        return "noisy_expert", f"level {level:g}", (1, level)
    return name, ", ".join(f"{k}={v}" for k, v in sorted(kwargs.items())), (2, name)


def rows(paths: list[str]) -> list[list[str]]:
    out, seen = [], set()
    for path in paths:
        s = json.loads(Path(path).read_text())
        for label, p in s["policies"].items():
            key = (s["task"], label)
            if key in seen:
                raise SystemExit(f"{path}: task {s['task']} policy {label} appears twice")
            seen.add(key)
            policy, setting, order = policy_cell(s["policy_specs"][label])
            n, k = p["episodes"], p["success"]
            top = sorted(p["failures_of_failed"].items(), key=lambda kv: (-kv[1], kv[0]))[:TOP]
            out.append(((TASK_ORDER.index(s["task"]) if s["task"] in TASK_ORDER else 99, order),
                        [s["task"], policy, setting, f"{k}/{n} ({100 * k / n:.0f}%)" if n else "-",
                         ", ".join(f"{t} ({c})" for t, c in top) or "-", str(p["failed_no_event"]),
                         f"{p['score_mean']:.1f}"]))
    return [r for _, r in sorted(out, key=lambda x: x[0])]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("summaries", nargs="+")
    args = ap.parse_args()
    head = ["task", "policy", "trained on / noise", "success", "most frequent events of the failed episodes",
            "failed, no event", "mean score"]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for r in rows(args.summaries):
        print("| " + " | ".join(r) + " |")


if __name__ == "__main__":
    main()
