"""The counterfactual figure: an expert episode and one of its failure variants, a few frames
each from one camera view, above both episodes' reward curves with the variant's event markers.

Frames are chosen to tell the story: the first frame, the failure's onset, shortly after it
becomes visible, and the last frame (more frames are spread evenly between). The expert is
shown at the same frame indices, so each column compares the two simulations at the same time.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simfail.dataset.reader import SimfailDataset
from simfail.errors import ConfigError, OutputDirError, UnknownNameError

from .data import events_of

__all__ = ["FigureChoice", "choose_pair", "key_frames", "write_figure"]


@dataclass(frozen=True)
class FigureChoice:
    """The episodes a figure shows (episode indices of the dataset)."""

    group: int
    expert: int
    variant: int


def choose_pair(ds: SimfailDataset, group: int | None = None, variant: str | None = None) -> FigureChoice:
    """The expert and the failure variant to draw.

    Without ``variant`` the variant is the group's lowest-scoring episode that has a failure
    event; without ``group`` the first group that has one (and, when ``variant`` is given, a
    variant of that name).

    Raises:
        ConfigError: the group does not exist, has no expert, or no such failure variant.
    """
    groups = ds.groups()
    if group is not None and group not in groups:
        raise ConfigError(f"group {group} is not in {ds.root} (groups: {sorted(groups)[:20]})")
    names = sorted({str(ds.episode(e)["simfail.variant"]) for eps in groups.values() for e in eps})
    if variant is not None and variant not in names:
        raise UnknownNameError("variant", variant, names)
    for gid in [group] if group is not None else sorted(groups):
        rows = {e: ds.episode(e) for e in groups[gid]}
        experts = [e for e, r in rows.items() if r["simfail.variant"] == "expert"]
        cands = [e for e, r in rows.items() if r["simfail.variant"] != "expert" and events_of(r)
                 and (variant is None or r["simfail.variant"] == variant)]
        if experts and cands:
            worst = min(cands, key=lambda e: (float(rows[e]["simfail.score"]), e))
            return FigureChoice(gid, experts[0], worst)
    where = f"group {group}" if group is not None else str(ds.root)
    what = f"a {variant!r} variant with a failure event" if variant else "a failure variant"
    raise ConfigError(f"{where} has no expert with {what} to draw")


def key_frames(length: int, events: list[dict], n: int, after: int = 10) -> list[int]:
    """``n`` distinct frame indices in ``[0, length)``, sorted. In this order, as many as fit:
    the first visible event's visible frame, the last frame, the first frame, ``after`` frames
    past the visible one (the aftermath), the event's onset; then frames spread to fill gaps."""
    first = min(events, key=lambda e: e["visible_frame"]) if events else None
    order = [length - 1, 0] if first is None else [
        int(first["visible_frame"]), length - 1, 0, int(first["visible_frame"]) + after, int(first["onset_frame"])]
    chosen: list[int] = []
    for k in order:
        k = min(max(k, 0), length - 1)
        if k not in chosen and len(chosen) < n:
            chosen.append(k)
    while len(chosen) < min(n, length):  # greedy: the frame farthest from every chosen one
        cand = np.arange(length)
        dist = np.min(np.abs(cand[:, None] - np.asarray(chosen)[None, :]), axis=1)
        chosen.append(int(cand[np.argmax(dist)]))
    return sorted(chosen)


def _label(row: dict) -> str:
    ok = "success" if row["simfail.success"] else "failure"
    return f"{row['simfail.variant']} ({ok}, score {float(row['simfail.score']):.1f})"


def write_figure(ds: SimfailDataset, path: str | Path, *, group: int | None = None, variant: str | None = None,
                 view: str | None = None, frames: int = 4, dpi: int = 110) -> tuple[Path, FigureChoice]:
    """Draw the figure to ``path`` (PNG). Returns the path and the episodes drawn.

    Raises:
        ConfigError / UnknownNameError: bad group, variant or view, or frames < 2.
        OutputDirError: the file cannot be written.
    """
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    if frames < 2 or frames > 12:
        raise ConfigError(f"frames must be between 2 and 12, got {frames}")
    view = view or ds.views[0]
    if view not in ds.views:
        raise UnknownNameError("view", view, ds.views)
    choice = choose_pair(ds, group, variant)
    rows = {k: ds.episode(e) for k, e in (("expert", choice.expert), ("variant", choice.variant))}
    cols = {k: ds.episode_columns(e) for k, e in (("expert", choice.expert), ("variant", choice.variant))}
    # an event's visible frame in the drawn view, where the dataset stores it per view
    events = [dict(e, visible_frame=e["visible_frames"][view])
              if isinstance(e.get("visible_frames"), dict) and e["visible_frames"].get(view) is not None else e
              for e in events_of(rows["variant"])]
    lengths = {k: int(r["length"]) for k, r in rows.items()}
    idx = key_frames(lengths["variant"], events, frames, after=int(ds.fps))
    imgs = {k: ds.episode_frames(e, view) for k, e in (("expert", choice.expert), ("variant", choice.variant))}

    fps = float(ds.fps)
    h, w = imgs["variant"].shape[1:3]
    ncol = len(idx)
    fig_w = 2.0 * ncol + 1.0
    fig = plt.figure(figsize=(fig_w, 2.0 * 2 * h / w + 3.4), constrained_layout=True)
    gs = fig.add_gridspec(3, ncol, height_ratios=[h / w, h / w, 1.1 * (ncol / 4)])
    first = min(events, key=lambda e: e["visible_frame"])
    colors = {"expert": "#1f8a4c", "variant": "#c0392b"}
    for r, key in enumerate(("expert", "variant")):
        for c, f in enumerate(idx):
            ax = fig.add_subplot(gs[r, c])
            fe = min(f, lengths[key] - 1)
            ax.imshow(imgs[key][fe], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_color(colors[key])
                s.set_linewidth(2)
            if r == 0:
                tags = [name for key_, name in (("onset_frame", "onset"), ("visible_frame", "visible")) if f == first[key_]]
                ax.set_title(f"t = {f / fps:.1f} s" + (f" ({', '.join(tags)})" if tags else ""), fontsize=9)
            if c == 0:
                ax.set_ylabel(_label(rows[key]), fontsize=9, color=colors[key])
    ax = fig.add_subplot(gs[2, :])
    for key in ("expert", "variant"):
        t = np.arange(lengths[key]) / fps
        rew = np.asarray(cols[key]["reward"], dtype=float).reshape(lengths[key], -1)[:, 0]
        ax.plot(t, rew, color=colors[key], linewidth=2.2, label=f"reward: {rows[key]['simfail.variant']}")
        if "progress" in cols[key]:
            prog = np.asarray(cols[key]["progress"], dtype=float).reshape(lengths[key], -1)[:, 0]
            ax.plot(t, prog, color=colors[key], linewidth=1, linestyle=":", label=f"progress: {rows[key]['simfail.variant']}")
    styles = (("onset_frame", ":", "onset"), ("visible_frame", "--", "visible"), ("irreversible_frame", "-", "irreversible"))
    for frame_key, ls, name in styles:
        ax.axvline(first[frame_key] / fps, color="#555", linestyle=ls, linewidth=1, label=f"{first['type']} {name}")
    for f in idx:
        ax.axvline(f / fps, color="#bbb", linewidth=0.6, zorder=0)
    ax.set_xlim(0, (max(lengths.values()) - 1) / fps)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("dense reward / progress")
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.grid(alpha=0.25)
    instruction = (rows["expert"].get("tasks") or [""])[0]
    why = textwrap.shorten(str(first.get("rationale", "")), 150)
    fig.suptitle(f"{rows['expert'].get('simfail.task', '')}: \u201c{instruction}\u201d  (group {choice.group}, {view} view)\n"
                 f"{first['type']}: {why}", fontsize=10)
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.partial")
        fig.savefig(tmp, dpi=dpi, format="png")
        tmp.replace(path)
    except OSError as exc:
        raise OutputDirError(f"cannot write the figure to {path}: {exc.strerror or exc}") from exc
    finally:
        plt.close(fig)
    return path, choice
