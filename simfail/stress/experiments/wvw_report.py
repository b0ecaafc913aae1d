"""The table and the plot of :mod:`.with_vs_without` (from its ``results.json`` dict)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["table", "plot_margins"]


def _fmt(x: float | None, sign: bool = False) -> str:
    return "-" if x is None else (f"{x:+.3f}" if sign else f"{x:.3f}")


def table(result: dict[str, Any]) -> str:
    """The markdown table of the margins, then the budget of each comparison."""
    head = ["comparison (test set)", "arm A", "arm B", "A(A) per seed", "A(B) per seed", "A(A) pooled", "A(B) pooled",
            "margin B - A [95% CI]", "groups", "pairs/seed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in result["comparisons"]:
        name = c["name"].replace("  ", "&nbsp;&nbsp;") if c["name"].startswith("  ") else c["name"]
        if "error" in c:
            lines.append(f"| {name} | {c['arm_a']} | {c['arm_b']} | - | - | - | - | - ({c['error']}) | - | - |")
            continue
        ps = c["per_seed"]
        lo, hi = c["ci"]
        lines.append("| " + " | ".join([
            name, c["arm_a"], c["arm_b"],
            " / ".join(_fmt(p["accuracy_a"]) for p in ps), " / ".join(_fmt(p["accuracy_b"]) for p in ps),
            _fmt(c["accuracy_a"]), _fmt(c["accuracy_b"]),
            f"{c['difference']:+.3f} [{lo:+.3f}, {hi:+.3f}]", str(c["n_contexts"]), str(c["n_pairs_per_seed"])]) + " |")
    tied = [c for c in result["comparisons"] if c.get("ties_a") or c.get("ties_b")]
    lines.append("")
    if tied:
        lines.append("Model ties (counted as disagreements; A with a tie as half a point in results.json): " + "; ".join(
            f"{c['name'].strip()}: {c['arm_a']} {c['ties_a']}, {c['arm_b']} {c['ties_b']} of {c['n_pairs']} pairs" for c in tied))
    else:
        lines.append("No model tied any scored pair (A with ties as half a point equals A).")
    lines.append("")
    lines.append("| budget | arms | distinct training episodes per category | total | optimizer steps x clips |")
    lines.append("|---|---|---|---|---|")
    for study, b in result["budgets"].items():
        per = b["distinct_episodes_per_category"]
        lines.append(f"| {study} | {' = '.join(b['arms'])} | {', '.join(f'{k} {v}' for k, v in per.items())} | "
                     f"{sum(per.values())} | {b['optimizer_steps']} x {b['batch_size']} |")
    return "\n".join(lines)


def plot_margins(result: dict[str, Any], path: Path) -> None:
    """Forest plot: each comparison's pooled margin with its interval, per-seed margins as dots."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simfail.learn.checkpoint import atomic_write_bytes

    rows = [c for c in result["comparisons"] if "error" not in c]
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    for y, c in enumerate(reversed(rows)):
        lo, hi = c["ci"]
        color = "tab:orange" if c["arm_b"] == "closed_loop" else "tab:blue"
        ax.plot([lo, hi], [y, y], color=color, lw=2)
        ax.plot([c["difference"]], [y], "o", color=color)
        ax.plot([p["difference"] for p in c["per_seed"]], [y] * len(c["per_seed"]), "x", color="gray", ms=5)
    ax.axvline(0.0, color="k", lw=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{c['arm_b']} - {c['arm_a']}: {c['name'].strip()}" for c in reversed(rows)], fontsize=7)
    ax.set_xlabel("margin in preference accuracy A (pooled over seeds; x: single seeds)")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
