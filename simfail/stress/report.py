"""The report folder of ``simfail evaluate`` and the side-by-side tables of ``simfail compare``.

A report folder holds:

* ``metrics.json`` - every number (see :func:`simfail.stress.runner.collect_metrics`);
* ``summary.txt`` - the table ``simfail evaluate`` prints;
* ``accuracy_by_category.png`` / ``accuracy_by_failure.png`` - preference accuracy per task
  category / failure type with bootstrap intervals and a dashed chance line at 0.5;
* ``curves/<episode_id>.png`` - for a sample of episodes (whole groups, drawn with the run's
  seed): the model's reward (rescaled to ``[0, 1]`` with its declared range) against the
  ground-truth reward and progress, the window after the first failure becomes visible shaded;
* ``media/`` - per-episode GIFs when ``video="gif"``;
* ``index.html`` - the metrics table, both charts and, for each sampled episode, its video
  beside its curve. The page is built with the dataset viewer's page frame and components
  (:mod:`simfail.viewer`): the curve is the viewer's interactive SVG (ground truth, progress,
  the model, the events' onset/visible/irreversible markers, a cursor following the video; the
  PNG stays linked) and the video plays with the viewer's segment player. With
  ``video="reference"`` (default) the video is the dataset's own mp4, referenced by relative
  path with a media fragment ``#t=from,to`` selecting the episode (the report then only plays
  next to its dataset); ``"gif"`` writes a small GIF per episode; ``"none"`` shows curves only.
* ``cache/`` - the score cache (:class:`simfail.stress.runner.ScoreCache`).

Plots use matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simfail.dataset import layout as L
from simfail.errors import ConfigError, OutputDirError, UnknownNameError, read_json
from simfail.viewer.page import render_page

from . import metrics as M

__all__ = [
    "VIDEO_MODES",
    "accuracy_chart",
    "compare_reports",
    "format_table",
    "key_numbers",
    "load_metrics",
    "sample_episodes",
    "summary_rows",
    "write_report",
]

VIDEO_MODES: tuple[str, ...] = ("reference", "gif", "none")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------- formatting


def _f(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x)
    if isinstance(x, (int, np.integer)):
        return str(int(x))
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    return "nan" if np.isnan(v) else f"{v:.{digits}f}"


def _acc(entry: Mapping[str, Any] | None) -> str:
    if not entry or entry.get("accuracy") is None:
        return "-" if not entry else f"- (0 pairs, {entry.get('n_missing', 0)} missing)"
    ci = entry.get("ci")
    s = _f(entry["accuracy"])
    if ci:
        s += f" [{_f(ci[0])}, {_f(ci[1])}]"
    s += f" ({entry['n_pairs']} pairs"
    if entry.get("n_missing"):
        s += f", {entry['n_missing']} missing"
    return s + ")"


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Plain-text table with left-aligned columns."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def summary_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(label, text)`` rows of the summary ``simfail evaluate`` prints."""
    s = metrics["summary"]
    run = metrics.get("run", {})
    model = metrics.get("model", {})
    label = str(model.get("spec", s.get("model")))
    if model.get("kwargs"):
        label += " " + " ".join(f"{k}={v}" for k, v in sorted(model["kwargs"].items()))
    if s.get("privileged"):
        label += "  (privileged: reads ground-truth labels)"
    rows = [
        ("model", label),
        ("output", f"{s.get('output')}" + (f", return={metrics['return_mode']}" if metrics.get("return_mode") else "")),
        ("episodes", f"{run.get('n_episodes', s.get('n_episodes'))} (computed {run.get('n_computed', '-')}, cached {run.get('n_cached', '-')})"),
        ("accuracy A", _acc(s["preference"])),
    ]
    if s["preference"].get("accuracy_ties_half") is not None:  # absent in reports written before it existed
        p = s["preference"]
        rows.append(("  A, ties as half", f"{_f(p['accuracy_ties_half'])} (tie rate {_f(p['tie_rate'])}: "
                     "A counts a tie as a disagreement)"))
    for mode, rep in (metrics.get("by_return") or {}).items():
        if mode != metrics.get("return_mode"):
            rows.append((f"  A with return={mode}", _acc(rep["preference"])))
    for cat, e in (s.get("preference_by_task") or {}).items():
        rows.append((f"  task {cat}", _acc(e)))
    for ft, e in (s.get("preference_by_failure_type") or {}).items():
        rows.append((f"  failure {ft}", _acc(e)))
    if s.get("voc") is not None:
        v = s["voc"]
        rows.append(("VOC (experts)", f"{_f(v['mean'])} (n={v['n']}, constant={v['n_constant']})"))
    if s.get("kendall") is not None:
        k = s["kendall"]
        rows.append(("Kendall tau", f"{_f(k['mean'])} ({k['n_groups']} groups, {k['n_skipped']} skipped)"))
    if s.get("false_positive") is not None:
        fp = s["false_positive"]
        rows.append(("false positives", f"{_f(fp['rate'])} ({fp['n_false_positive']}/{fp['n_failure']} failure episodes)"))
    if s.get("failure_timing") is not None:
        t = s["failure_timing"]
        rows.append(("failure timing", f"detected {_f(t['detection_rate'])} of {t['n']}, mean lag {_f(t['mean_lag'], 1)} frames, mean depth {_f(t['mean_depth'])}"))
    if s.get("dense_agreement") is not None:
        d = s["dense_agreement"]
        rows.append(("vs GT reward", f"Pearson {_f(d['mean_pearson'])} (n={d['n_pearson']}), MSE {_f(d['mean_mse'])} (n={d['n']})"))
    un = metrics.get("unseen")
    if un is not None:
        rows.append(("unseen failures", f"{un['events']} events in {un['episodes']} episodes, {un['pairs']} pairs "
                     + ("excluded (exclude_unseen=true)" if un["excluded"] else "kept (exclude_unseen=false)")))
    err = metrics.get("errors", {})
    by = ", ".join(f"{k}: {v}" for k, v in sorted(err.get("by_type", {}).items()))
    rows.append(("errors", f"{err.get('n', s.get('n_errors', 0))}" + (f" ({by})" if by else "")))
    return rows


def key_numbers(metrics: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Comparable numbers of one report: ``{row label: {"value": v, "ci": [lo, hi] | None,
    "n": pairs | None}}`` (accuracy rows are ``A``, ``A task:<cat>``, ``A failure:<type>``)."""
    s = metrics["summary"]
    out: dict[str, dict[str, Any]] = {}

    def acc(label: str, e: Mapping[str, Any] | None) -> None:
        if e is not None:
            out[label] = {"value": e.get("accuracy"), "ci": e.get("ci"), "n": e.get("n_pairs")}

    acc("A", s.get("preference"))
    for cat, e in (s.get("preference_by_task") or {}).items():
        acc(f"A task:{cat}", e)
    for ft, e in (s.get("preference_by_failure_type") or {}).items():
        acc(f"A failure:{ft}", e)

    def num(label: str, v: Any) -> None:
        out[label] = {"value": v, "ci": None, "n": None}

    num("VOC", (s.get("voc") or {}).get("mean"))
    num("Kendall tau", (s.get("kendall") or {}).get("mean"))
    num("false positive rate", (s.get("false_positive") or {}).get("rate"))
    num("detection rate", (s.get("failure_timing") or {}).get("detection_rate"))
    num("mean lag (frames)", (s.get("failure_timing") or {}).get("mean_lag"))
    num("Pearson vs GT", (s.get("dense_agreement") or {}).get("mean_pearson"))
    num("MSE vs GT", (s.get("dense_agreement") or {}).get("mean_mse"))
    num("errors", metrics.get("errors", {}).get("n", s.get("n_errors")))
    return out


# --------------------------------------------------------------------------- charts


def accuracy_chart(
    path: str | Path,
    series: Mapping[str, Mapping[str, Mapping[str, Any] | None]],
    *,
    title: str,
    xlabel: str,
) -> Path:
    """Grouped bar chart of preference accuracy: ``series = {series name: {group label:
    summary with accuracy/ci/n_pairs}}``; bootstrap intervals as error bars, a dashed line at
    0.5 (chance), pair counts above the bars. One series gives a plain bar chart."""
    plt = _plt()
    path = Path(path)
    groups: list[str] = []
    for entries in series.values():
        for g in entries:
            if g not in groups:
                groups.append(g)
    n_series = max(len(series), 1)
    fig_w = max(5.0, 1.0 + 0.55 * len(groups) * n_series + 0.4 * len(groups))
    fig, ax = plt.subplots(figsize=(min(fig_w, 24.0), 4.2))
    width = min(0.8 / n_series, 0.5)
    x = np.arange(len(groups))
    for k, (name, entries) in enumerate(series.items()):
        vals, lo, hi, counts = [], [], [], []
        for g in groups:
            e = entries.get(g) or {}
            a = e.get("accuracy")
            vals.append(np.nan if a is None else float(a))
            ci = e.get("ci")
            lo.append(0.0 if a is None or not ci else max(float(a) - ci[0], 0.0))
            hi.append(0.0 if a is None or not ci else max(ci[1] - float(a), 0.0))
            counts.append(e.get("n_pairs"))
        pos = x - width * n_series / 2 + width * (k + 0.5)
        bars = ax.bar(pos, np.nan_to_num(vals, nan=0.0), width * 0.92, yerr=[lo, hi], capsize=3, label=name)
        for b, v, c, up in zip(bars, vals, counts, hi):
            txt = "n/a" if np.isnan(v) else (f"n={c}" if c is not None else "")
            ax.text(b.get_x() + b.get_width() / 2, (0 if np.isnan(v) else v + up) + 0.02, txt, ha="center", va="bottom", fontsize=7)
    ax.axhline(0.5, color="k", linestyle="--", linewidth=1, label="chance (0.5)")
    ax.set_xticks(x)
    ax.set_xticklabels(groups, rotation=20 if len(groups) > 4 else 0, ha="right" if len(groups) > 4 else "center")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("preference accuracy A")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    if not groups:
        ax.text(0.5, 0.5, "no strict preference pairs", ha="center", va="center", transform=ax.transAxes)
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2 if len(groups) > 4 else -0.14), ncol=min(len(series) + 1, 4), frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def _curve_png(path: Path, o: Any, progress: np.ndarray | None, value_range: tuple[float, float] | None, title: str) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 3.0))
    t = np.arange(o.n_frames)
    if o.gt_reward is not None:
        ax.plot(t, o.gt_reward, color="tab:green", linewidth=3.5, alpha=0.6, label="ground-truth reward")
    if progress is not None:
        ax.plot(t, progress, color="tab:green", linestyle=":", linewidth=1.2, label="ground-truth progress")
    if o.dense is not None:
        ax.plot(t, M.rescale_to_unit(o.dense, value_range), color="tab:blue", linewidth=1.6, label="model")
        if o.model_indices is not None and len(o.model_indices) < o.n_frames:
            ax.plot(o.model_indices, M.rescale_to_unit(o.raw, value_range), "o", color="tab:blue", markersize=3)
    elif o.error:
        ax.text(0.5, 0.5, f"model error: {o.error_type}", ha="center", va="center", transform=ax.transAxes, color="tab:red")
    if o.failures:
        first = min(o.failures, key=lambda f: f.visible_frame)
        v = min(first.visible_frame, o.n_frames - 1)
        ax.axvspan(v, max(o.n_frames - 1, v + 0.5), color="tab:red", alpha=0.15, label=f"after {first.type} visible")
        if first.onset_frame < v:
            ax.axvline(first.onset_frame, color="tab:red", linestyle=":", linewidth=1)
    ax.set_xlim(0, max(o.n_frames - 1, 1))
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("frame")
    ax.set_ylabel("reward (rescaled)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _finite_list(values: Any) -> list[float | None] | None:
    """Per-frame values as a JSON list (NaN and infinities as null)."""
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return [round(float(v), 4) if np.isfinite(v) else None for v in arr]


def _curve_payload(o: Any, progress: np.ndarray | None, value_range: tuple[float, float] | None) -> dict[str, Any]:
    """One sampled episode as the shared curve component reads it (one value per frame)."""
    return {
        "length": int(o.n_frames),
        "progress": _finite_list(progress),
        "reward": _finite_list(o.gt_reward),
        "model": None if o.dense is None else _finite_list(M.rescale_to_unit(o.dense, value_range)),
        "events": [f.to_dict() for f in o.failures],
    }


def sample_episodes(groups: Mapping[Any, Sequence[int]], n: int, seed: int) -> list[int]:
    """Up to ``n`` episodes, taken as whole groups in an order drawn with ``seed`` (so an
    expert is shown next to its own failures); the last group may be cut short."""
    if n <= 0:
        return []
    keys = list(groups)
    order = np.random.default_rng(seed).permutation(len(keys))
    out: list[int] = []
    for i in order:
        for ep in groups[keys[i]]:
            if len(out) < n:
                out.append(int(ep))
    return sorted(out)


# --------------------------------------------------------------------------- report folder


def _write_gif(path: Path, frames: np.ndarray, fps: float) -> None:
    import imageio.v3 as iio

    idx = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), 80)).round().astype(int))
    step = (len(frames) - 1) / max(len(idx) - 1, 1)
    iio.imwrite(path, frames[idx], extension=".gif", duration=int(round(1000.0 * step / max(fps, 1e-6))), loop=0)


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    drun: Any,
    *,
    n_curves: int = 12,
    video: str = "reference",
    seed: int = 0,
) -> Path:
    """Write the report folder (see the module docstring) and return its path.

    ``drun`` is the :class:`simfail.stress.runner.DatasetRun` the metrics were computed from.
    """

    if video not in VIDEO_MODES:
        raise UnknownNameError("video mode", video, VIDEO_MODES)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / "metrics.json").write_text(L.dumps_json(metrics) + "\n")
    except OSError as exc:
        raise OutputDirError(f"cannot write the report to {out}: {exc.strerror or exc}") from exc
    (out / "summary.txt").write_text(format_table(["metric", "value"], summary_rows(metrics)) + "\n")
    s = metrics["summary"]
    name = str(metrics.get("model", {}).get("spec", s.get("model")))
    cat = {"all": s["preference"], **(s.get("preference_by_task") or {})}
    accuracy_chart(out / "accuracy_by_category.png", {name: cat}, title=f"{name}: preference accuracy by task", xlabel="task category")
    accuracy_chart(
        out / "accuracy_by_failure.png", {name: dict(s.get("preference_by_failure_type") or {})},
        title=f"{name}: preference accuracy by failure type (clean vs failure pairs)", xlabel="failure type",
    )

    run = drun.run
    adapter = drun.adapter
    ds = adapter.dataset
    pos = {ep: i for i, ep in enumerate(drun.indices)}
    groups: dict[Any, list[int]] = {}
    for ep in drun.indices:
        groups.setdefault(adapter.group_of(ep), []).append(ep)
    sample = sample_episodes(groups, n_curves, seed)
    (out / "curves").mkdir(exist_ok=True)
    view = adapter.requirements.views[0] if adapter.requirements.views else (ds.views[0] if ds.views else None)
    if video == "gif" and view is not None:
        (out / "media").mkdir(exist_ok=True)
    cards = []
    episodes_js: list[dict[str, Any]] = []  # the page's JSON: what the shared curve component draws
    for ep in sample:
        o = run.outcomes[pos[ep]]
        progress = adapter.columns(ep).get("progress")
        fails = ", ".join(sorted({f.type for f in o.failures})) or "none"
        val = "-" if np.isnan(o.value) else _f(o.value)
        title = f"{o.episode_id}, group {o.context}, {o.variant}: score {o.score:g}\nfailures: {fails}; model return {val}"
        curve = out / "curves" / f"{o.episode_id}.png"
        _curve_png(curve, o, progress, run.requirements.value_range, title)
        media = ""
        if view is not None and video == "reference":
            mp4, t0, t1 = ds.video_file(ep, view)
            rel = os.path.relpath(mp4.resolve(), out.resolve())
            media = (
                f'<video class="segment" muted playsinline preload="metadata" width="256" data-from="{t0:.6f}" '
                f'data-to="{t1:.6f}" src="{html.escape(Path(rel).as_posix())}#t={t0:.3f},{t1:.3f}"></video>'
            )
        elif view is not None and video == "gif":
            gif = out / "media" / f"{o.episode_id}.gif"
            _write_gif(gif, adapter.frames(ep, view), float(ds.fps))
            media = f'<img src="media/{gif.name}" width="256">'
        info = (
            f"<b>{html.escape(o.episode_id)}</b><br>group {html.escape(str(o.context))}<br>{html.escape(o.variant)}<br>"
            f"score {o.score:g}<br>failures: {html.escape(fails)}<br>model return: {val}"
        )
        if o.error:
            info += f'<br><span class="err">{html.escape(o.error_type or "error")}</span>'
        episodes_js.append(_curve_payload(o, progress, run.requirements.value_range))
        cards.append(
            f'<tr class="report-episode" data-episode="{len(episodes_js) - 1}"><td>{info}</td><td>{media}</td>'
            f'<td class="curve-slot"><a class="png" href="curves/{curve.name}"><img src="curves/{curve.name}"></a></td></tr>'
        )

    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary_rows(metrics))
    err_items = "".join(
        f"<li>{html.escape(str(e.get('episode_id') or e.get('pair')))}: {html.escape(str(e.get('message')))}</li>"
        for e in metrics.get("errors", {}).get("messages", [])[:50]
    )
    body = f"""<p>Dataset: {html.escape(str(metrics.get('dataset', {}).get('root', '')))}. All numbers: <a href="metrics.json">metrics.json</a>.</p>
<table>{rows}</table>
<h2>Preference accuracy</h2>
<img src="accuracy_by_category.png"> <img src="accuracy_by_failure.png">
{f'<h2>Errors</h2><ul>{err_items}</ul>' if err_items else ''}
<h2>Episodes ({len(sample)} sampled)</h2>
<p>Model reward rescaled to [0, 1] with its declared range; markers: the failures' onset, visible and
irreversible frames; the cursor follows the video (click a curve to seek). The static curve (shaded after the
first failure becomes visible) stays in <code>curves/</code>.</p>
<table class="report-episodes"><tr><th>episode</th><th>video</th><th>reward curve</th></tr>{''.join(cards)}</table>"""
    page = render_page(f"Reward-model stress test: {name}", body, data={"fps": ds.fps, "episodes": episodes_js},
                       subtitle=f"simfail evaluate · {len(sample)} episodes shown")
    (out / "index.html").write_text(page)
    return out


# --------------------------------------------------------------------------- compare


def load_metrics(path: str | Path) -> dict[str, Any]:
    """``metrics.json`` of a report folder (or the file itself)."""
    p = Path(path)
    if p.is_dir():
        p = p / "metrics.json"
    if not p.is_file():
        raise ConfigError(f"{path} is not an evaluate report (no metrics.json)")
    data = read_json(p)
    if not isinstance(data, dict) or "summary" not in data:
        raise ConfigError(f"{p} is not a simfail evaluate metrics.json")
    return data


def _report_labels(reports: Sequence[tuple[str, Mapping[str, Any]]]) -> list[str]:
    names = []
    for path, m in reports:
        model = m.get("model", {})
        label = str(model.get("spec") or m["summary"].get("model"))
        if model.get("kwargs"):
            label += "(" + ",".join(f"{k}={v}" for k, v in sorted(model["kwargs"].items())) + ")"
        names.append(label)
    if len(set(names)) < len(names):
        names = [f"{n} [{Path(p).name}]" for n, (p, _) in zip(names, reports)]
    return names


def compare_reports(report_paths: Sequence[str | Path], out_dir: str | Path) -> tuple[str, Path]:
    """Side-by-side table of several reports: writes ``compare.txt``, ``compare.json``,
    ``compare.html``, ``compare.png`` (accuracy by task category, grouped by report) and
    ``compare_by_failure.png``; returns the text table and the folder."""
    if not report_paths:
        raise ConfigError("usage: simfail compare REPORT1 REPORT2 ... out=DIR")
    reports = [(str(p), load_metrics(p)) for p in report_paths]
    labels = _report_labels(reports)
    numbers = [key_numbers(m) for _, m in reports]
    rows_order: list[str] = []
    for nums in numbers:
        for k in nums:
            if k not in rows_order:
                rows_order.append(k)
    acc_rows = [k for k in rows_order if k == "A" or k.startswith("A ")]
    rows_order = acc_rows + [k for k in rows_order if k not in acc_rows]

    def cell(e: Mapping[str, Any] | None) -> str:
        if e is None:
            return "-"
        s = _f(e.get("value"))
        if e.get("ci"):
            s += f" [{_f(e['ci'][0])}, {_f(e['ci'][1])}]"
        return s

    table_rows = [[k] + [cell(n.get(k)) for n in numbers] for k in rows_order]
    text = format_table(["metric"] + labels, table_rows)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create {out}: {exc.strerror or exc}") from exc
    (out / "compare.txt").write_text(text + "\n")
    (out / "compare.json").write_text(
        L.dumps_json({"reports": [{"label": lab, "path": p, "numbers": n} for lab, (p, _), n in zip(labels, reports, numbers)]}) + "\n"
    )
    by_cat = {lab: {"all": m["summary"]["preference"], **(m["summary"].get("preference_by_task") or {})} for lab, (_, m) in zip(labels, reports)}
    accuracy_chart(out / "compare.png", by_cat, title="preference accuracy by task", xlabel="task category")
    by_fail = {lab: dict(m["summary"].get("preference_by_failure_type") or {}) for lab, (_, m) in zip(labels, reports)}
    accuracy_chart(out / "compare_by_failure.png", by_fail, title="preference accuracy by failure type", xlabel="failure type")
    head = "".join(f"<th>{html.escape(lab)}</th>" for lab in labels)
    body_rows = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in table_rows)
    links = "".join(
        f'<li>{html.escape(lab)}: <a href="{html.escape(Path(os.path.relpath(Path(p).resolve(), out.resolve())).as_posix())}">{html.escape(p)}</a></li>'
        for lab, (p, _) in zip(labels, reports)
    )
    body = f"""<ul>{links}</ul>
<table><tr><th>metric</th>{head}</tr>{body_rows}</table>
<h2>Preference accuracy</h2><img src="compare.png"><br><img src="compare_by_failure.png">"""
    (out / "compare.html").write_text(render_page("Reward-model comparison", body, subtitle=f"simfail compare · {len(reports)} reports"))
    return text, out
