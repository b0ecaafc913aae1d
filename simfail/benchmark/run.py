"""``simfail benchmark run model=NAME data=DIR [split=test]``: the leaderboard of one reward
model beside the ``random`` and ``constant`` baselines.

Scoring goes through the stress harness's one path (:func:`simfail.stress.commands.
score_evaluate`: the same model loading, episode inputs, output checks and score cache as
``simfail evaluate``), and every number comes from :mod:`simfail.stress.metrics` /
:func:`simfail.stress.harness.evaluate`:

* per task category, in the paper's order of complexity (:data:`PAPER_ORDER`): ``A`` (ties
  count as disagreements, the paper's formula) with its cluster-bootstrap interval over
  groups, ``A`` with ties as half a point, the tie rate, the mean per-group disagreement
  ``D_c``, VOC on expert episodes, the false-positive rate, and the failure-timing lag
  (median seconds from the failure becoming visible to the reward falling 10% of its range,
  with the share of failures detected at all);
* per subset (:mod:`simfail.benchmark.pairs`): ``A`` on the pairs each subset holds;
* per operator: ``A`` of references vs that operator's episodes, held-out operators marked
  (from the dataset's ``benchmark.json``; :mod:`simfail.benchmark.meta`).

Outputs in ``out`` (default ``DATA/benchmark_runs/<model>``): ``results.json`` (the dataset's
content hash, the split and its groups, each model's identity -- name, arguments, weights
hash -- and every table's numbers), ``leaderboard.txt`` (the tables), ``figure3.png`` (the
paper's figure 3: ``A`` per category for each model, dashed chance line) and ``scores/cache``
(the score caches, keyed by weights and dataset content hashes).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from simfail.commands import Command
from simfail.config import _f
from simfail.errors import ConfigError

__all__ = ["BenchmarkRunConfig", "COMMAND", "PAPER_ORDER", "benchmark_run", "leaderboard_text", "main", "model_label"]

#: The paper's seven task categories in its order of increasing complexity (its figs. 1, 3).
PAPER_ORDER: tuple[str, ...] = ("pick_place", "push_pull", "open_close", "stack", "reorient", "pour", "tool_use")

#: The privileged progress model whose wrong orderings define the ``hard`` subset.
HARD_REFERENCE: tuple[str, dict[str, Any]] = ("progress_only", {"mode": "progress"})

RUN_VERSION = 1

#: Baselines every leaderboard shows (honest numbers: chance and all-ties beside every model).
MANDATORY_BASELINES: tuple[str, ...] = ("random", "constant")


@dataclass
class BenchmarkRunConfig:
    """``simfail benchmark run``: score a reward model and the baselines on a benchmark split."""

    model: Optional[str] = _f(None, "a registered model (oracle, progress_only, rewind, lerobot_reward ...) or "
                    "package.module:Class; model.KEY=VALUE passes one constructor argument", "model=progress_only",
                    required=True)
    model_kwargs: Dict[str, Any] = _f(factory=dict, help="all constructor arguments at once, a JSON object",
                                      example="model_kwargs='{\"mode\": \"progress\"}'")
    data: Optional[str] = _f(None, "the benchmark (or any simfail dataset) folder", "data=DIR", required=True)
    split: str = _f("test", "split of the benchmark's benchmark.json (all: every group; a dataset without "
                    "benchmark metadata is scored whole)", "split=validation")
    out: Optional[str] = _f(None, "results folder (default DATA/benchmark_runs/<model>)", "out=RUN")
    baselines: List[str] = _f(factory=lambda: ["random", "constant"], help="baseline models scored beside it; "
                              "random (seeded per-frame rewards) and constant (the same reward everywhere) are "
                              "always among them, more may be added", example="baselines=[random,constant,oracle]")
    returns: str = _f("sum", "episode return from a dense reward (sum, last, mean)", "returns=last")
    bootstrap: int = _f(1000, "cluster-bootstrap replicates over groups (0: no intervals)", "bootstrap=200",
                        range=(0, None))
    confidence: float = _f(0.95, "confidence of the intervals, in (0, 1)", "confidence=0.9", range=(0.0, 1.0))
    seed: int = _f(0, "seed of the bootstrap and of the random baseline", "seed=1", range=(0, None))
    tie_tol: float = _f(0.0, "returns closer than this are a tie", "tie_tol=0.01", range=(0.0, None))
    timing_threshold: float = _f(0.1, "failure detected when the reward falls this share of its range",
                                 "timing_threshold=0.2", range=(0.0, 1.0))
    batch_size: int = _f(8, "episodes per predict_batch call / cache flush", "batch_size=16", range=(1, None))
    figure: bool = _f(True, "draw figure3.png (needs matplotlib)", "figure=false")
    cache: bool = _f(True, "reuse and extend the score caches in OUT/scores/cache", "cache=false")
    progress: bool = _f(True, "progress bars while scoring", "progress=false")
    label: Optional[str] = _f(None, "the model's name in tables and results (default: the model and its arguments; "
                              "e.g. to tell checkpoints apart)", "label=rewind_with_failures_seed0")

    def validate(self) -> None:
        from simfail.errors import UnknownNameError
        from simfail.stress import metrics as M
        from simfail.stress.protocol import available_models

        if not self.model:
            raise ConfigError("model= is required (a registered name or package.module:Class)")
        if not self.data:
            raise ConfigError("data=DIR is required (a simfail dataset or benchmark folder)")
        if self.returns not in M.RETURN_MODES:
            raise UnknownNameError("return mode", str(self.returns), M.RETURN_MODES)
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence!r}")
        missing = [b for b in MANDATORY_BASELINES if b not in self.baselines]
        if missing:
            raise ConfigError(f"baselines={list(self.baselines)} leaves out {', '.join(missing)}: every table shows the "
                              "random and constant baselines (add models, do not remove these)")
        known = available_models()
        for b in self.baselines:
            if b not in known and ":" not in b:
                raise UnknownNameError("baseline model", str(b), known)


# ----------------------------------------------------------------------------- scoring


def model_label(spec: str, kwargs: dict[str, Any]) -> str:
    """``spec`` plus its arguments: ``progress_only mode=progress``."""
    from simfail.stress.commands import public_kwargs

    shown = public_kwargs(kwargs)
    return " ".join([spec, *(f"{k}={v}" for k, v in sorted(shown.items()))])


def _score(spec: str, kwargs: dict[str, Any], cfg: BenchmarkRunConfig, groups: list[int], scores_dir: Path):
    """One model through ``simfail evaluate``'s scoring path; ``(DatasetRun, info)``."""
    from simfail.stress.commands import score_evaluate
    from simfail.stress.settings import EvaluateConfig

    ecfg = dataclasses.asdict(EvaluateConfig())
    ecfg.update(model=spec, model_kwargs=dict(kwargs), data=str(cfg.data), out=str(scores_dir), groups=list(groups),
                returns=cfg.returns, bootstrap=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed,
                tie_tol=cfg.tie_tol, timing_threshold=cfg.timing_threshold, batch_size=cfg.batch_size,
                cache=cfg.cache, progress=cfg.progress, curves=0, video="none")
    drun, info, _ = score_evaluate(ecfg, accept=_not_pairwise)
    return drun, info


def _not_pairwise(model: Any) -> None:
    if model.requirements.output == "pairwise":
        raise ConfigError(f"model {model.name!r} is pairwise: benchmark run scores dense or episode-level models "
                          "(use simfail evaluate for pairwise models)")


def _context(rel: str, group: Any) -> Any:
    """A group's context key, unique over the datasets of a split."""
    return f"{rel}#{int(group)}" if rel else int(group)


@dataclass
class ScoredSet:
    """A model's scores over every dataset of a split, joined: one :class:`RunResult` whose
    contexts are :func:`_context` keys (``run``), and the counts of the parts."""

    run: Any
    model_key: str
    indices: list[int]
    indices_by_source: list[list[int]]
    n_computed: int
    n_cached: int

    @classmethod
    def join(cls, parts: list[tuple[str, Any, dict[str, Any]]]) -> "ScoredSet":
        outcomes, indices = [], []
        for rel, drun, _ in parts:
            outcomes += [dataclasses.replace(o, context=_context(rel, o.context)) for o in drun.run.outcomes]
            indices += list(drun.indices)
        first = parts[0][1]
        return cls(dataclasses.replace(first.run, outcomes=outcomes), first.model_key, indices,
                   [list(d.indices) for _, d, _ in parts], sum(d.n_computed for _, d, _ in parts),
                   sum(d.n_cached for _, d, _ in parts))


def _values(drun: Any) -> np.ndarray:
    return np.array([o.value for o in drun.run.outcomes], dtype=np.float64)


# ----------------------------------------------------------------------------- metrics


def _acc(pa: Any) -> dict[str, Any]:
    return {
        "A": pa.accuracy, "ci": list(pa.ci) if pa.ci else None,
        "A_ties_half": pa.accuracy_ties_half, "ci_ties_half": list(pa.ci_ties_half) if pa.ci_ties_half else None,
        "tie_rate": pa.tie_rate, "n_pairs": pa.n_pairs, "n_groups": len(pa.contexts), "n_missing": pa.n_missing,
        "mean_D_c": float(np.mean([c.disagreement for c in pa.contexts.values()])) if pa.contexts else None,
    }


def _pairs_accuracy(metas: list[Any], values: np.ndarray, pair_map: dict[int, list[tuple[int, int]]],
                    cfg: BenchmarkRunConfig) -> dict[str, Any]:
    from simfail.stress import metrics as M

    from .pairs import group_members

    pos = {m.index: k for k, m in enumerate(metas)}
    contexts = {}
    for g, members in group_members(metas).items():
        pairs = pair_map.get(g) or []
        if not pairs:
            continue
        y = [m.score for m in members]
        v = [values[pos[m.index]] for m in members]
        contexts[g] = (y, v, pairs)
    pa = M.preference_accuracy_on_pairs(contexts, n_boot=cfg.bootstrap, confidence=cfg.confidence, seed=cfg.seed,
                                        tie_tol=cfg.tie_tol)
    return _acc(pa)


def _category_row(drun: Any, category: str | None, cfg: BenchmarkRunConfig, fps: float) -> dict[str, Any]:
    """:func:`simfail.stress.harness.evaluate` on the episodes of one category (``None``: all)."""
    from simfail.stress.harness import evaluate

    outs = [o for o in drun.run.outcomes if category is None or o.task == category]
    rep = evaluate(dataclasses.replace(drun.run, outcomes=outs), n_boot=cfg.bootstrap, confidence=cfg.confidence,
                   seed=cfg.seed, tie_tol=cfg.tie_tol, timing_threshold=cfg.timing_threshold)
    pref = rep["preference"]
    per = [c["D"] for c in pref["per_context"].values() if c["D"] is not None]
    timing = rep.get("failure_timing") or {}
    lag = timing.get("median_lag")
    return {
        "A": pref["accuracy"], "ci": pref["ci"], "A_ties_half": pref["accuracy_ties_half"],
        "ci_ties_half": pref["ci_ties_half"], "tie_rate": pref["tie_rate"], "n_pairs": pref["n_pairs"],
        "n_groups": pref["n_contexts"], "n_missing": pref["n_missing"],
        "mean_D_c": float(np.mean(per)) if per else None,
        "voc": (rep.get("voc") or {}).get("mean"),
        "false_positive_rate": (rep.get("false_positive") or {}).get("rate"),
        "timing_median_lag_s": (lag / fps) if lag is not None else None,
        "timing_detection_rate": timing.get("detection_rate"),
        "timing_n": timing.get("n"),
        "n_errors": rep["n_errors"],
    }


def _model_results(drun: Any, info: dict[str, Any], metas: list[Any], categories: list[str], operators: list[str],
                   hard: dict[int, list[tuple[int, int]]] | None, balanced: dict[str, Any], cfg: BenchmarkRunConfig,
                   fps: float) -> dict[str, Any]:
    from .pairs import BALANCED, SUBSETS, operator_pairs, subset_pairs

    values = _values(drun)
    subsets = {name: _pairs_accuracy(metas, values, subset_pairs(metas, rule), cfg) for name, rule in SUBSETS.items()}
    for name in BALANCED:
        b = balanced.get(name)
        subsets[name] = ({**_pairs_accuracy(metas, values, b.pairs, cfg), "n_candidates": b.candidates}
                         if b is not None else None)
    subsets["hard"] = _pairs_accuracy(metas, values, hard, cfg) if hard is not None else None
    return {
        "identity": info["model"]["identity"],
        "model_key": drun.model_key,
        "n_episodes": len(drun.indices),
        "n_computed": drun.n_computed,
        "n_cached": drun.n_cached,
        "by_category": {"all": _category_row(drun, None, cfg, fps),
                        **{c: _category_row(drun, c, cfg, fps) for c in categories}},
        "subsets": subsets,
        "by_operator": {op: _pairs_accuracy(metas, values, operator_pairs(metas, op), cfg) for op in operators},
    }


def _default_out(data: Path, label: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9_.=-]+", "_", label).strip("_")[:120] or "model"
    return data / "benchmark_runs" / name


def _entries(cfg: BenchmarkRunConfig) -> list[tuple[str, dict[str, Any]]]:
    out = [(cfg.model, dict(cfg.model_kwargs))]
    for b in cfg.baselines:
        kw = {"seed": cfg.seed} if b == "random" else {}
        if (b, kw) not in out and not (b == cfg.model and not cfg.model_kwargs):
            out.append((b, kw))
    return out


def benchmark_run(cfg: BenchmarkRunConfig) -> tuple[dict[str, Any], Path]:
    """Score the model and the baselines, compute every table; returns ``(results, out)`` and
    writes ``results.json``, ``leaderboard.txt`` and ``figure3.png`` to ``out``."""
    from simfail.dataset import layout as L
    from simfail.dataset.reader import SimfailDataset
    from simfail.learn.checkpoint import atomic_write_bytes
    from simfail.stress.identity import dataset_content_hash

    from .meta import load_benchmark_meta
    from .pairs import BALANCED, balanced_pairs, episode_meta, hard_pairs

    data = Path(str(cfg.data))
    meta = load_benchmark_meta(data)
    sources, groups_note = meta.sources(cfg.split, data, lambda: sorted(SimfailDataset(data).groups()))
    label = str(cfg.label).strip() if cfg.label not in (None, "") else model_label(cfg.model, cfg.model_kwargs)
    out = Path(cfg.out) if cfg.out else _default_out(data, label)
    if (out / L.INFO_PATH).is_file() or (out / L.MARKER_NAME).is_file():
        raise ConfigError(f"out={out} is a dataset folder; choose another results folder")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"out={out} exists and is not a folder")

    datasets = []
    for rel, path, groups in sources:
        if not (path / L.INFO_PATH).is_file():
            raise ConfigError(f"{path} is not a simfail dataset (listed by {meta.path})")
        ds = SimfailDataset(path)
        datasets.append((rel, path, ds, groups if groups is not None else sorted(ds.groups())))
    fps = datasets[0][2].fps

    def score_all(spec: str, kw: dict[str, Any]) -> tuple[ScoredSet, dict[str, Any]]:
        parts = []
        for rel, path, _, groups in datasets:
            sub_cfg = dataclasses.replace(cfg, data=str(path))
            parts.append((rel, *_score(spec, kw, sub_cfg, groups, out / "scores" / (rel or "."))))
        return ScoredSet.join(parts), parts[0][2]

    scored: dict[str, tuple[Any, dict[str, Any]]] = {}
    for k, (spec, kw) in enumerate(_entries(cfg)):  # the first entry is the model under test
        scored[label if k == 0 else model_label(spec, kw)] = score_all(spec, kw)
    first = next(iter(scored.values()))[0]
    metas = []
    for (rel, _, ds, _), idx in zip(datasets, first.indices_by_source):
        rows, roles = ds.episodes, meta.roles(rel)
        for i in idx:
            metas.append(episode_meta(rows[i], ds.fps, roles=roles.get(i) if roles else None,
                                      group=_context(rel, rows[i]["simfail.group_id"]), index=len(metas)))
    present = sorted({m.category for m in metas})
    categories = [c for c in PAPER_ORDER if c in present] + [c for c in present if c not in PAPER_ORDER]
    operators = sorted({m.operator for m in metas if not m.reference and m.variant != "expert"})

    hard_label = model_label(*HARD_REFERENCE)
    hard_drun, hard_info = scored[hard_label] if hard_label in scored else score_all(*HARD_REFERENCE)
    hv = _values(hard_drun)
    hard = hard_pairs(metas, hv) if np.isfinite(hv).any() else None
    balanced = ({name: balanced_pairs(metas, rule, hv) for name, rule in BALANCED.items()}
                if np.isfinite(hv).any() else {})
    hashes = {rel or ".": dataset_content_hash(path) for rel, path, _, _ in datasets}
    content_hash = next(iter(hashes.values())) if len(hashes) == 1 else "sha256:" + hashlib.sha256(
        "\n".join(f"{k} {v}" for k, v in sorted(hashes.items())).encode()).hexdigest()

    results: dict[str, Any] = {
        "benchmark_run_version": RUN_VERSION,
        "dataset": {
            "root": str(data.resolve()), "content_hash": content_hash, "content_hashes": hashes, "split": cfg.split,
            "groups": {rel or ".": g for rel, _, _, g in datasets}, "groups_note": groups_note,
            "n_episodes": len(metas), "fps": fps,
            "benchmark_meta": str(meta.path) if meta.path else None,
            "held_out_operators": meta.held_out_operators,
        },
        "settings": {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("model_kwargs",)},
        "model": label,
        "categories": categories,
        "operators": operators,
        "hard_reference": {"model": hard_label, "identity": hard_info["model"]["identity"],
                           "n_errors": int(np.isnan(hv).sum())},
        "balanced_subsets": {name: {**b.counts(), "reference": hard_label} for name, b in balanced.items()},
        "models": {},
    }
    for lab, (drun, info) in scored.items():
        results["models"][lab] = _model_results(drun, info, metas, categories, operators, hard, balanced, cfg, fps)
    text = leaderboard_text(results)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "results.json", (json.dumps(results, indent=2, allow_nan=False, default=str) + "\n").encode())
    atomic_write_bytes(out / "leaderboard.txt", (text + "\n").encode())
    results["figure"] = None
    if cfg.figure:
        results["figure"] = str(draw_figure3(results, out / "figure3.png"))
    return results, out


# ----------------------------------------------------------------------------- tables


def _num(x: Any, nd: int = 3) -> str:
    return "-" if x is None else f"{x:.{nd}f}"


def _ci(a: Any, ci: Any) -> str:
    if a is None:
        return "-"
    return f"{a:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _lag(row: dict[str, Any]) -> str:
    if not row.get("timing_n"):
        return "-"
    lag = row.get("timing_median_lag_s")
    if lag is None:
        return f"none detected (0/{row['timing_n']})"
    return f"{lag:.2f} s ({row['timing_detection_rate']:.0%} of {row['timing_n']})"


def _pair_accuracy_rows(models: dict[str, Any], section: str, keys: Sequence[str], digits: int) -> list[list[Any]]:
    """One leaderboard row per model: its label, then ``A/A(ties=1/2) (pairs)`` (``digits``
    decimals) of each of ``keys`` in the model's ``section`` (``subsets``, ``by_operator``);
    ``-`` where that key has no pair."""
    rows = []
    for lab, m in models.items():
        row = [lab]
        for key in keys:
            r = m[section].get(key)
            of = f" of {r['n_candidates']}" if r and "n_candidates" in r else ""
            row.append("-" if not r or not r["n_pairs"]
                       else f"{r['A']:.{digits}f}/{r['A_ties_half']:.{digits}f} ({r['n_pairs']}{of})")
        rows.append(row)
    return rows


def leaderboard_text(results: dict[str, Any]) -> str:
    """Every table of a benchmark run (or of several, side by side: ``simfail benchmark
    compare`` passes merged results)."""
    from simfail.stress.report import format_table

    models = results["models"]
    d = results["dataset"]
    parts = [f"dataset {d['root']}  {d['content_hash'][:23]}  split={d['split']} ({d['groups_note']}; "
             f"{sum(len(g) for g in d['groups'].values())} groups, {d['n_episodes']} episodes)",
             "A: ties count as disagreements (the paper's formula); A(ties=1/2): a tie is half a point; "
             "[95% cluster bootstrap over groups]"]
    errs = {lab: m["by_category"]["all"].get("n_errors", 0) for lab, m in models.items()}
    if any(errs.values()):
        parts.append("model errors (episodes left out of the pairs): "
                     + ", ".join(f"{lab}: {n}" for lab, n in errs.items() if n))
    head = ["model", "A [CI]", "A(ties=1/2)", "ties", "mean D_c", "VOC", "FP rate", "timing lag (detected)", "pairs"]
    for cat in ["all", *results["categories"]]:
        rows = []
        for lab, m in models.items():
            r = m["by_category"].get(cat)
            if r is None:
                continue
            rows.append([lab, _ci(r["A"], r["ci"]), _num(r["A_ties_half"]), _num(r["tie_rate"], 2), _num(r["mean_D_c"]),
                         _num(r["voc"]), _num(r["false_positive_rate"]), _lag(r), r["n_pairs"]])
        parts += ["", f"== {cat} ==", format_table(head, rows)]
    from .pairs import SUBSET_ORDER

    rows = _pair_accuracy_rows(models, "subsets", SUBSET_ORDER, digits=3)
    parts += ["", "== subsets: A / A(ties=1/2) (strict pairs) ==", format_table(["model", *SUBSET_ORDER], rows)]
    for name, b in (results.get("balanced_subsets") or {}).items():
        parts.append(f"{name}: {b['kept']} of {b['candidates']} candidate pairs, balanced for {b['reference']} "
                     f"({b['wrong_or_tied']} it orders wrongly or ties, {b['right']} rightly: the smaller side whole, "
                     "as many of the other by a stable hash), so that model scores 0.5 there by construction")
    held = set(d.get("held_out_operators") or [])
    ops = [o for o in results["operators"] if o in held] if held else list(results["operators"])
    title = ("== held-out operators: A / A(ties=1/2) (pairs), reference vs that operator =="
             if held else "== by operator (no held-out operators in the metadata): A / A(ties=1/2) (pairs) ==")
    rows = _pair_accuracy_rows(models, "by_operator", ops, digits=2)
    if ops:
        parts += ["", title, format_table(["model", *ops], rows)]
    return "\n".join(parts)


def draw_figure3(results: dict[str, Any], path: Path) -> Path:
    """The paper's figure 3 for these models: ``A`` per category (paper order) with its
    interval, one bar per model, the chance level 0.5 dashed. Written atomically (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from simfail.learn.checkpoint import atomic_write_bytes

    cats = list(results["categories"])
    models = results["models"]
    width = 0.8 / max(len(models), 1)
    fig, ax = plt.subplots(figsize=(max(6.0, 3.0 + 1.2 * len(cats)), 3.8))
    x = np.arange(len(cats))
    for k, (lab, m) in enumerate(models.items()):
        a = [m["by_category"][c]["A"] for c in cats]
        ci = [m["by_category"][c]["ci"] for c in cats]
        vals = np.array([np.nan if v is None else v for v in a])
        err = np.array([[v - c[0], c[1] - v] if (c and v is not None) else [0, 0] for v, c in zip(a, ci)]).T
        ax.bar(x + (k - (len(models) - 1) / 2) * width, vals, width, yerr=err if err.size else None, capsize=2, label=lab)
    ax.axhline(0.5, ls="--", color="k", lw=1, label="random guessing")
    ax.set_xticks(x, [c.replace("_", "/") for c in cats], rotation=20)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("preference ordering accuracy A")
    ax.set_title("A by task, increasing complexity (paper fig. 3)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return path


def main(cfg: BenchmarkRunConfig) -> int:
    """``run`` of ``simfail benchmark run``: score, write, print the tables."""
    results, out = benchmark_run(cfg)
    print(leaderboard_text(results))
    print(f"results: {out / 'results.json'}" + (f"  figure: {results['figure']}" if results.get("figure") else ""),
          file=sys.stdout)
    return 0


COMMAND = Command("benchmark run", "score a reward model and the random/constant baselines on a benchmark split",
                  "simfail.benchmark.run:BenchmarkRunConfig", "simfail.benchmark.run:main",
                  example="simfail benchmark run model=progress_only data=DIR split=test",
                  split="simfail.stress.commands:split_model_args", config_name="benchmark_run")
