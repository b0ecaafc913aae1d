"""The README's simfail-bench v1 leaderboard, by code: every model scored with ``simfail
benchmark run`` on one benchmark split, put side by side with ``simfail benchmark compare``,
then one markdown table of the headline numbers.

    python tools/v1_leaderboard.py --bench BENCH --experiment EXP [--tag T] ... --out OUT [--split test]

BENCH is a folder ``simfail benchmark build`` wrote (e.g. v1-128). EXP is the ``out=`` of
``simfail experiment with_vs_without data=BENCH``: its main-study ``rewind`` models
(``expert_only`` and ``with_failures``, one per training seed, read from ``EXP/results.json``)
are scored from their checkpoints ``EXP/models/<hash>``, one row per seed (nothing is pooled or
typed in here; the pooled margins are the experiment's own table). The reference rows are
``oracle`` and ``progress_only`` in its two modes; every run adds ``random`` and ``constant``.

OUT receives ``runs/<name>/`` (each run's results), ``compare.txt``/``compare.json``/
``figure3.png`` (``simfail benchmark compare``) and ``leaderboard.md`` (the table below).
A run whose ``results.json`` exists is reused (delete it to rescore).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

#: Reference rows: (folder name, label, model, model arguments).
REFERENCES: tuple[tuple[str, str, str, tuple[str, ...]], ...] = (
    ("oracle", "oracle", "oracle", ()),
    ("progress_only_progress", "progress_only mode=progress (privileged)", "progress_only", ("model.mode=progress",)),
    ("progress_only_time", "progress_only mode=time", "progress_only", ("model.mode=time",)),
)
#: Columns of the markdown table after the headline A: subsets, in the run's order.
SUBSETS = ("clean_vs_failure", "bad_but_successful", "delayed", "near_miss", "nuisance", "closed_loop", "hard")


def rewind_models(experiment: Path, tag: str = "") -> list[tuple[str, Path]]:
    """``[(label, checkpoint folder), ...]`` of the experiment's main-study models, in
    ``expert_only`` then ``with_failures`` order, seeds ascending; ``tag`` (e.g. the training
    settings) goes into every label."""
    res = json.loads((experiment / "results.json").read_text())
    out = []
    for name, m in res["models"].items():
        if m.get("study") != "main":
            continue
        arm, _, seed = name.rpartition("_s")
        out.append(((0 if arm == "expert_only" else 1, int(seed)), f"rewind{' ' + tag if tag else ''} {arm} seed {seed}", experiment / "models" / m["hash"]))
    return [(label, path) for _, label, path in sorted(out)]


def run_one(bench: Path, split: str, out: Path, model: str, args: list[str], label: str, bootstrap: int) -> Path:
    from simfail.cli import main

    if (out / "results.json").is_file():
        return out
    argv = ["benchmark", "run", f"model={model}", *args, f"data={bench}", f"split={split}", f"out={out}",
            f"label='{label}'", f"bootstrap={bootstrap}", "figure=false", "progress=false"]
    print("simfail " + " ".join(argv), flush=True)
    if main(argv) != 0:
        raise SystemExit(f"failed: simfail {' '.join(argv)}")
    return out


def _a(row: dict[str, Any] | None) -> str:
    if not row or row.get("A") is None or not row.get("n_pairs"):
        return "-"
    return f"{row['A']:.3f} / {row['A_ties_half']:.3f}"


def markdown(merged: dict[str, Any]) -> str:
    """Headline table: A [CI] over all pairs, ties, then each subset's A / A(ties=1/2) with pairs."""
    models = merged["models"]
    first = next(iter(models.values()))
    counts = {s: first["subsets"].get(s, {}).get("n_pairs", 0) for s in SUBSETS}
    head = ["model", "A [95% CI]", "A (ties=1/2)", "ties"] + [f"{s} ({counts[s]})" for s in SUBSETS]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for lab, m in models.items():
        a = m["by_category"]["all"]
        ci = a.get("ci")
        cells = [lab, f"{a['A']:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""), f"{a['A_ties_half']:.3f}",
                 f"{a['tie_rate']:.2f}"] + [_a(m["subsets"].get(s)) for s in SUBSETS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bench", required=True, type=Path)
    p.add_argument("--experiment", type=Path, action="append", default=[],
                   help="with_vs_without out= folder (rewind rows); repeat for several")
    p.add_argument("--tag", action="append", default=[],
                   help="a label per --experiment, in the same order (e.g. its frame size and steps)")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--split", default="test")
    p.add_argument("--bootstrap", type=int, default=1000)
    a = p.parse_args(argv)
    runs = [run_one(a.bench, a.split, a.out / "runs" / name, model, list(args), label, a.bootstrap)
            for name, label, model, args in REFERENCES]
    if a.tag and len(a.tag) != len(a.experiment):
        p.error("give one --tag per --experiment, or none")
    for k, exp in enumerate(a.experiment):
        for label, ckpt in rewind_models(exp, a.tag[k] if a.tag else ""):
            runs.append(run_one(a.bench, a.split, a.out / "runs" / label.replace(" ", "_"), "rewind",
                                [f"model.checkpoint={ckpt}"], label, a.bootstrap))
    from simfail.cli import main as cli

    if cli(["benchmark", "compare", *map(str, runs), f"out={a.out}"]) != 0:
        return 1
    merged = json.loads((a.out / "compare.json").read_text())
    table = markdown(merged)
    (a.out / "leaderboard.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
