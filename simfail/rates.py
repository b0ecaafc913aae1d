"""Measure expert success and failure realization rates (physics only, no rendering).

* expert success rate: share of scene seeds whose expert succeeds with no failure event;
* realization rate of a perturbation: share of its variants in which the detectors confirm
  one of the operator's ``intended`` event types (any failure event for the generic operators
  whose ``intended`` is empty: freeze, speedup, delay, truncate, push), split into failure-range
  variants and near misses, with the task success of the failure-range variants. Variants are
  labelled by what happened either way; this measures how reliably each operator produces its
  failure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simfail.config import GenerateConfig
from simfail.core.task import get_task
from simfail.generate import available_operators, generate_group, make_group_runner
from simfail.report import table


@dataclass
class Rates:
    task: str
    groups: int
    expert_attempts: int
    expert_successes: int
    realized: dict[str, list[int]] = field(default_factory=dict)  # name -> [realized, total]
    #: name -> variant kind (failure, near_miss, sweep) -> [realized, total]
    realized_by_kind: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    #: name -> variant kind -> [task successes, total]
    success_by_kind: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    success_of_variants: dict[str, list[int]] = field(default_factory=dict)
    mean_score: dict[str, float] = field(default_factory=dict)
    #: variants left out because their physics diverged, by operator
    diverged: dict[str, int] = field(default_factory=dict)
    #: mean score by operator and magnitude label ("near miss" or "0.25" ...), from
    #: ``failures=sweep`` runs: is the score monotone in severity?
    sweep_scores: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    @property
    def expert_success_rate(self) -> float:
        return self.expert_successes / max(self.expert_attempts, 1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "groups": self.groups, "expert_attempts": self.expert_attempts,
            "expert_successes": self.expert_successes, "expert_success_rate": self.expert_success_rate,
            "realized": self.realized, "realized_by_kind": self.realized_by_kind,
            "success_by_kind": self.success_by_kind, "variant_success": self.success_of_variants, "mean_score": self.mean_score,
            "diverged": self.diverged,
            "sweep_mean_score": {n: {k: sum(v) / len(v) for k, v in d.items()} for n, d in self.sweep_scores.items()},
        }


def measure_rates(cfg: GenerateConfig, progress: bool = True) -> Rates:
    from tqdm import tqdm

    task = get_task(cfg.task)
    perts = available_operators(task)
    rates = Rates(cfg.task, cfg.groups, 0, 0)
    scores: dict[str, list[float]] = {}
    runner = make_group_runner(task, cfg)
    for g in tqdm(range(cfg.groups), desc=f"rates {cfg.task}", unit="group", disable=not progress):
        res = generate_group(task, cfg, g, render=False, runner=runner)
        rates.expert_attempts += 1 + len(res.rejected_seeds)
        rates.expert_successes += 1
        for u in res.unstable_variants:
            name = u["variant"].split(":")[0].split("@")[0]
            rates.diverged[name] = rates.diverged.get(name, 0) + 1
        for ep in res.episodes:
            name = "expert" if ep.variant == "expert" else ep.perturbation["name"]
            scores.setdefault(name, []).append(ep.score)
            rates.success_of_variants.setdefault(name, [0, 0])
            rates.success_of_variants[name][0] += int(ep.success)
            rates.success_of_variants[name][1] += 1
            if name == "expert":
                continue
            kind = ep.perturbation.get("kind")
            if kind in ("sweep", "near_miss"):
                label = "near miss" if kind == "near_miss" else f"{float(ep.perturbation['magnitude']):.2f}"
                rates.sweep_scores.setdefault(name, {}).setdefault(label, []).append(ep.score)
            hit = perts[name].realized(ep.failures)
            rates.realized.setdefault(name, [0, 0])
            rates.realized[name][0] += int(hit)
            rates.realized[name][1] += 1
            per_kind = rates.realized_by_kind.setdefault(name, {}).setdefault(str(kind), [0, 0])
            per_kind[0] += int(hit)
            per_kind[1] += 1
            ok_kind = rates.success_by_kind.setdefault(name, {}).setdefault(str(kind), [0, 0])
            ok_kind[0] += int(ep.success)
            ok_kind[1] += 1
    rates.mean_score = {k: float(sum(v) / len(v)) for k, v in scores.items()}
    return rates


def rates_table(r: Rates) -> str:
    rows = []
    for name, (hit, n) in r.realized.items():
        s, sn = r.success_of_variants[name]
        by_kind = r.realized_by_kind.get(name, {})
        split = [f"{by_kind[k][0]}/{by_kind[k][1]}" if k in by_kind else "-" for k in ("failure", "near_miss")]
        ok_kind = r.success_by_kind.get(name, {}).get("failure")
        rows.append([name, f"{hit}/{n}", f"{hit / n:.0%}", *split, f"{s}/{sn}",
                     f"{ok_kind[0]}/{ok_kind[1]}" if ok_kind else "-", f"{r.mean_score[name]:.1f}"])
    head = (f"task {r.task}: expert success {r.expert_successes}/{r.expert_attempts} seeds "
            f"({r.expert_success_rate:.1%}); expert mean score {r.mean_score.get('expert', 0):.1f}\n")
    if r.diverged:
        head += f"variants left out because the physics diverged: {r.diverged}\n"
    out = head + table(rows, ["failure", "realized", "rate", "of failure variants", "of near misses", "task success",
                              "of failure variants", "mean score"])
    if r.sweep_scores:
        out += "\n" + sweep_table(r)
    return out


#: Score points a sweep may rise between neighbouring magnitudes and still count as falling
#: (rounding and the few groups a sweep runs on).
SWEEP_TOLERANCE = 1.0


def sweep_table(r: Rates) -> str:
    """Mean score per operator at each magnitude (near miss first): falls with severity?"""
    labels = sorted({k for d in r.sweep_scores.values() for k in d}, key=lambda k: -1.0 if k == "near miss" else float(k))
    rows = []
    for name, d in r.sweep_scores.items():
        means = [sum(d[k]) / len(d[k]) if k in d else None for k in labels]
        # monotone over the fixed magnitudes (a near miss's magnitude lies anywhere in its range)
        got = [m for k, m in zip(labels, means) if m is not None and k != "near miss"]
        monotone = all(a >= b - SWEEP_TOLERANCE for a, b in zip(got, got[1:]))
        rows.append([name, *("-" if m is None else f"{m:.1f}" for m in means), "yes" if monotone else "no"])
    return table(rows, ["mean score by magnitude", *labels, "falls with magnitude"])


def rates_overview(results: list[Rates]) -> str:
    """One row per task: expert success and the worst / mean realization over its operators."""
    rows = []
    for r in results:
        rates = [hit / n for hit, n in r.realized.values() if n]
        worst = min(r.realized.items(), key=lambda kv: kv[1][0] / max(kv[1][1], 1)) if r.realized else None
        rows.append([r.task, f"{r.expert_successes}/{r.expert_attempts}", f"{r.expert_success_rate:.1%}",
                     f"{sum(rates) / len(rates):.0%}" if rates else "-",
                     f"{worst[0]} {worst[1][0]}/{worst[1][1]}" if worst else "-"])
    return table(rows, ["task", "expert ok/attempts", "expert success", "mean realization", "lowest realization"])
