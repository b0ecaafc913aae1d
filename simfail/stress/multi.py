"""``simfail evaluate data=[SIM,REAL,...]``: one model on several datasets, reported per source,
per category and on the real part alone (the paper's figure 3) beside the synthetic part.

Each dataset is scored exactly as a single ``evaluate`` would (its own report folder
``OUT/<source name>/`` with its cache, charts and ``metrics.json``); this module then pools the
per-episode returns into contexts keyed ``(source, group)`` -- a context never spans two
datasets -- and computes the accuracy ``A`` (:func:`simfail.stress.metrics.preference_accuracy`,
contexts bootstrapped) over: all sources, the real sources only, the synthetic sources only,
each source, and each ``(source, category)``. For real sources it also scores the human A/B
verdicts (strict ones: ties are left out): the share of verdicts whose preferred rollout the
model's return ranks strictly higher.

``split=MODEL_DIR`` (or its ``split.json``, written by ``simfail train-reward``) restricts every
dataset the split names to its held-out groups, so a trained model is scored on contexts it
never saw; datasets it names with no held-out group are scored in full and flagged
``trained_on`` in the summary.
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError, read_json

from . import metrics as M

__all__ = ["source_names", "load_split", "run_evaluate_multi", "multi_rows", "verdict_accuracy", "episode_values"]

SPLIT_NAME = "split.json"


def source_names(paths: Sequence[str | Path]) -> list[str]:
    """Short unique names of datasets: their folder names (``_2``, ``_3`` ... on a clash)."""
    out: list[str] = []
    for p in paths:
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(str(p)).resolve().name) or "data"
        name, k = base, 2
        while name in out:
            name, k = f"{base}_{k}", k + 1
        out.append(name)
    return out


def load_split(value: str | Path) -> dict[str, Any]:
    """The split written by ``simfail train-reward`` (a model folder or its ``split.json``)."""
    p = Path(str(value))
    if p.is_dir():
        p = p / SPLIT_NAME
    if not p.is_file():
        raise ConfigError(f"split={value}: no {SPLIT_NAME} there (train-reward writes one next to model.pt)")
    d = read_json(p)
    if not isinstance(d, dict) or not isinstance(d.get("sources"), list):
        raise ConfigError(f"{p} is not a train-reward split (no 'sources' list)")
    return d


def episode_values(metrics: Mapping[str, Any]) -> dict[int, float]:
    """Model return of every scored episode of one report (``NaN`` on an error); empty for
    pairwise models, whose reports hold no per-episode value."""
    mode = metrics.get("return_mode")
    out: dict[int, float] = {}
    for row in metrics.get("episodes", []):
        if "returns" in row:
            v = (row["returns"] or {}).get(mode)
        elif "value" in row:
            v = row["value"]
        else:
            return {}
        out[int(row["episode_index"])] = float("nan") if v is None else float(v)
    return out


def verdict_accuracy(verdicts: Sequence[Mapping[str, Any]], values: Mapping[int, float], *, tie_tol: float = 0.0) -> dict[str, Any]:
    """Agreement with human A/B verdicts: over strict verdicts (ties left out) whose two
    episodes both have a model value, the share where the preferred one's return is higher by
    more than ``tie_tol`` (a model tie is a disagreement, as in ``A``)."""
    n = agree = ties = missing = 0
    for v in verdicts:
        a, b, p = int(v["episode_a"]), int(v["episode_b"]), int(v["preferred"])
        if a not in values or b not in values:
            continue  # outside the evaluated episodes (e.g. a context the model trained on)
        if bool(v.get("tie")) or p < 0:
            ties += 1
            continue
        va, vb = values[a], values[b]
        if not (np.isfinite(va) and np.isfinite(vb)):
            missing += 1
            continue
        win, lose = (va, vb) if p == a else (vb, va)
        n += 1
        agree += int(win - lose > tie_tol)
    return {"accuracy": agree / n if n else None, "n_pairs": n, "n_agree": agree, "n_ties_left_out": ties, "n_missing": missing}


def _acc(contexts: Mapping[Hashable, tuple[np.ndarray, np.ndarray]], cfg: Mapping[str, Any], salt: int) -> dict[str, Any]:
    pa = M.preference_accuracy(contexts, n_boot=int(cfg["bootstrap"]), confidence=float(cfg["confidence"]),
                               seed=int(cfg["seed"]) + salt, tie_tol=float(cfg["tie_tol"]))
    return {"accuracy": pa.accuracy, "ci": list(pa.ci) if pa.ci else None, "n_pairs": pa.n_pairs, "n_contexts": len(pa.contexts)}


def run_evaluate_multi(cfg: dict[str, Any]) -> tuple[dict[str, Any], Path]:
    """Score ``cfg["model"]`` on every dataset of ``cfg["data"]`` (a list) and pool the results."""
    from simfail.dataset.reader import SimfailDataset
    from simfail.learn.checkpoint import atomic_write_bytes

    from .commands import _default_out, run_evaluate

    paths = [str(p) for p in cfg["data"]]
    if not paths:
        raise ConfigError("data=[...] is empty: give at least one dataset folder")
    if cfg.get("groups") is not None:
        raise ConfigError("groups= selects groups of one dataset; with several datasets use split=MODEL_DIR")
    datasets = [SimfailDataset(p) for p in paths]  # every dataset must open before anything is scored
    names = source_names(paths)
    out = Path(str(cfg["out"])) if cfg.get("out") not in (None, "") else _default_out(Path(paths[0]).resolve().parent, cfg)
    split = load_split(cfg["split"]) if cfg.get("split") not in (None, "") else None
    held: dict[str, list[int] | None] = {}
    if split is not None:
        for s in split["sources"]:
            held[str(Path(s["path"]).resolve())] = [int(g) for g in s.get("heldout_groups", [])]
    sources: dict[str, Any] = {}
    contexts: dict[str, dict[Hashable, tuple[np.ndarray, np.ndarray]]] = {"all": {}, "real": {}, "sim": {}}
    by_cat: dict[tuple[str, str], dict[Hashable, tuple[np.ndarray, np.ndarray]]] = {}
    for k, (name, path, ds) in enumerate(zip(names, paths, datasets)):
        sub = {**cfg, "data": path, "out": str(out / name), "groups": None, "split": None}
        key = str(Path(path).resolve())
        trained_on = False
        if key in held:
            if held[key]:
                sub["groups"] = held[key]
            else:
                trained_on = True
        metrics, folder = run_evaluate(sub)
        values = episode_values(metrics)
        entry: dict[str, Any] = {
            "path": str(Path(path).resolve()), "kind": ds.source, "report": str(folder),
            "n_episodes": len(metrics.get("episodes", [])), "fps": ds.fps, "views": ds.views,
            "image_size": list(next(iter(ds.info["features"][k2]["shape"][:2] for k2 in ds.video_keys), [])),
            "groups": sub["groups"], "trained_on": trained_on,
            "A": {k2: metrics["summary"]["preference"].get(k2) for k2 in ("accuracy", "ci", "n_pairs", "n_contexts")},
            "A_by_category": {c: {k2: e.get(k2) for k2 in ("accuracy", "ci", "n_pairs", "n_contexts")}
                              for c, e in (metrics["summary"].get("preference_by_task") or {}).items()},
        }
        if ds.source == "real":
            entry["human_verdicts"] = verdict_accuracy(ds.verdicts, values, tie_tol=float(cfg["tie_tol"])) if values else None
        sources[name] = entry
        if not values:
            continue
        groups: dict[int, list[dict[str, Any]]] = {}
        for row in metrics["episodes"]:
            groups.setdefault(int(row["group_id"]), []).append(row)
        for gid, rows in groups.items():
            y = np.array([r["score"] for r in rows], dtype=np.float64)
            v = np.array([values[int(r["episode_index"])] for r in rows], dtype=np.float64)
            ctx = (name, gid)
            contexts["all"][ctx] = (y, v)
            contexts["real" if ds.source == "real" else "sim"][ctx] = (y, v)
            by_cat.setdefault((ds.source, str(rows[0]["task"])), {})[ctx] = (y, v)
    pooled = {part: (_acc(c, cfg, salt) if c else None) for salt, (part, c) in enumerate(contexts.items())}
    per_cat = {f"{kind}:{cat}": _acc(c, cfg, 10 + i) for i, ((kind, cat), c) in enumerate(sorted(by_cat.items()))}
    result = {
        "report_version": 1,
        "model": {"spec": cfg["model"]},
        "return_mode": cfg["returns"],
        "split": str(cfg["split"]) if cfg.get("split") else None,
        "A": pooled,
        "A_by_source_kind_and_category": per_cat,
        "sources": sources,
        "settings": {k: cfg[k] for k in ("bootstrap", "confidence", "seed", "tie_tol", "returns")},
    }
    text = json.dumps(result, indent=2, default=str, allow_nan=False)
    atomic_write_bytes(out / "metrics.json", (text + "\n").encode())
    from .report import format_table

    atomic_write_bytes(out / "summary.txt", (format_table(["metric", "value"], multi_rows(result)) + "\n").encode())
    return result, out


def _fmt(e: Mapping[str, Any] | None) -> str:
    if not e or e.get("accuracy") is None:
        return "-"
    ci = e.get("ci")
    ci_text = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
    return f"{e['accuracy']:.3f}{ci_text} ({e['n_pairs']} pairs, {e.get('n_contexts', '-')} contexts)"


def multi_rows(result: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Rows of the table ``simfail evaluate data=[...]`` prints."""
    rows = [("model", str(result["model"]["spec"])), ("A, all sources", _fmt(result["A"]["all"])),
            ("A, real part alone (paper fig. 3)", _fmt(result["A"]["real"])), ("A, synthetic part", _fmt(result["A"]["sim"]))]
    for key, e in result["A_by_source_kind_and_category"].items():
        rows.append((f"  {key}", _fmt(e)))
    for name, s in result["sources"].items():
        note = " (trained on: in-sample)" if s["trained_on"] else (" (held-out groups)" if s["groups"] else "")
        rows.append((f"source {name} [{s['kind']}]{note}", _fmt(s["A"])))
        for cat, e in s["A_by_category"].items():
            rows.append((f"  {name} {cat}", _fmt(e)))
        hv = s.get("human_verdicts")
        if hv:
            acc = "-" if hv["accuracy"] is None else f"{hv['accuracy']:.3f}"
            rows.append((f"  {name} human A/B verdicts", f"{acc} ({hv['n_agree']}/{hv['n_pairs']} strict; {hv['n_ties_left_out']} ties left out)"))
    return rows
