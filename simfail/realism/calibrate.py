"""Calibrating the fidelity thresholds without a diffusion model.

A good realism edit changes how things look and keeps what happens; a bad one loses the
failure. This module imitates both on a real simfail dataset and measures what the fidelity
check (:mod:`simfail.realism.fidelity`) says:

* **appearance edits** (must be accepted): a global colour / white-balance shift, brightness
  and contrast, gamma, Gaussian blur, per-frame sensor noise, JPEG compression, a mild
  multiplicative texture overlay, and all of these combined;
* **tolerated** (must be accepted): the whole video delayed by ``max_shift`` frames;
* **failure-destroying edits** (must be rejected): the failure events' objects removed
  (inpainted with the true background, rendered from the simulator with those objects hidden)
  or moved sideways, time reversed, frames shuffled, frozen from shortly before the failure,
  one frame held for ``temporal_window + 2`` frames, every frame shown twice (half the frame
  rate), a shift by ``max_shift + 1`` frames either way, and 8x8-tile scrambled frames.

For each score (``edge``, ``object``, ``temporal``) the lowest value among the accepted edits
and the highest among the destroying edits that score is meant to catch (see
:data:`TARGETS`) give the separating range; the suggested threshold is its midpoint (or,
where the ranges overlap, the threshold with the fewest errors). The report says, per edit,
how many episodes the shipped thresholds (``configs/realism.yaml``) and the suggested ones
accept.

Command line (``python -m simfail.realism.calibrate`` is an alias)::

    simfail calibrate DIR [out=REPORT.json] [max_groups=N] [max_episodes=N] [seed=0] [fidelity.KEY=VALUE ...]
    simfail calibrate DIR1 DIR2    # several datasets pooled (or data=[DIR1,DIR2])

The random parts of an episode's edits are seeded from ``(seed, episode index)`` alone, so a
pooled run scores every episode exactly as a run on its dataset alone does.
"""

from __future__ import annotations

import dataclasses
import io
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError, SimfailError
from simfail.realism.fidelity import FidelityConfig, check_episode

__all__ = ["CalibrationConfig", "APPEARANCE", "TOLERATED", "DESTROYING", "TARGETS", "SCORES", "appearance_edits",
           "destroying_edits", "calibrate", "calibration_table", "suggest_threshold", "main"]

SCORES = ("edge", "object", "temporal")
APPEARANCE = ("colour", "brightness_contrast", "gamma", "blur", "noise", "jpeg", "texture", "combined")
#: Edits that must be accepted although they are not pure appearance changes (``{S}`` is
#: ``fidelity.max_shift``).
TOLERATED = ("delay_{S}",)
DESTROYING = ("inpaint", "move", "reverse", "shuffle", "freeze", "hold", "stutter", "delay_{S1}", "advance_{S1}",
              "scramble")
#: Destroying edits each score is meant to catch (the others may pass it; another score rejects them).
TARGETS = {
    "edge": ("scramble",),
    "object": ("inpaint", "move", "scramble"),
    "temporal": ("reverse", "shuffle", "freeze", "hold", "stutter", "delay_{S1}", "advance_{S1}"),
}

Frames = dict[str, np.ndarray]


@dataclass
class CalibrationConfig:
    """Settings of :func:`calibrate`.

    Attributes:
        data: The simfail dataset to calibrate on, or a list of them (pooled).
        out: Optional JSON report path (scores of every episode and edit, the summary).
        max_groups: Use only the first N groups of each dataset (None: all).
        max_episodes: Use only the first N episodes of those groups per dataset (None: all).
        seed: Seed of the random parts of the edits (noise, texture, shuffles).
        fidelity: The fidelity settings the scores are computed with (windows, tolerance ...)
            and whose thresholds are reported as "shipped"; defaults: ``configs/realism.yaml``.
    """

    data: str | list[str]
    out: str | None = None
    max_groups: int | None = None
    max_episodes: int | None = None
    seed: int = 0
    fidelity: FidelityConfig = field(default_factory=FidelityConfig)

    def validate(self) -> None:
        """Raises ConfigError (one message) for the first bad value."""
        data = [self.data] if isinstance(self.data, str) else list(self.data or [])
        if not data or not all(isinstance(d, str) and d for d in data):
            raise ConfigError(f"data must be a dataset folder or a list of them, got {self.data!r}")
        for name in ("max_groups", "max_episodes"):
            v = getattr(self, name)
            if v is not None and int(v) < 1:
                raise ConfigError(f"{name} must be >= 1, got {v}")
        self.fidelity.validate()


# ------------------------------------------------------------------------------ edits


def _f(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32) / 255.0


def _u8(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _per_frame(frames: np.ndarray, fn: Callable[[Any], Any]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(fn(Image.fromarray(f))) for f in frames]).astype(np.uint8)


def _blur(frames: np.ndarray, sigma: float) -> np.ndarray:
    from PIL import ImageFilter

    return _per_frame(frames, lambda im: im.filter(ImageFilter.GaussianBlur(sigma)))


def _jpeg(frames: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    def enc(im):
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=int(quality))
        return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")

    return _per_frame(frames, enc)


def _texture(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """A smooth random field in about ``[-1, 1]`` (grain ~1/16 of the short side), ``(H, W)``."""
    from PIL import Image

    h, w = shape
    cell = max(2, min(h, w) // 16)
    coarse = rng.uniform(-1.0, 1.0, size=(max(2, h // cell + 1), max(2, w // cell + 1))).astype(np.float32)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BICUBIC), dtype=np.float32).clip(-1, 1)


def appearance_edits(frames: Frames, rng: np.random.Generator) -> dict[str, Frames]:
    """Edits that change the look of every view the same way in every frame (and per-frame
    noise / compression), the kind a good photoreal edit makes; ``{name: {view: uint8}}``."""
    h, w = next(iter(frames.values())).shape[1:3]
    sigma = max(0.5, min(h, w) / 256.0)  # blur radius [px]: 1 px at 256x256
    gains, offsets = np.array([1.12, 1.0, 0.86], np.float32), np.array([0.02, 0.0, -0.02], np.float32)
    tex = {v: _texture((h, w), rng) for v in frames}
    out: dict[str, Frames] = {
        "colour": {v: _u8(_f(x) * gains + offsets) for v, x in frames.items()},
        "brightness_contrast": {v: _u8((_f(x) - 0.5) * 0.75 + 0.56) for v, x in frames.items()},
        "gamma": {v: _u8(_f(x) ** 1.5) for v, x in frames.items()},
        "blur": {v: _blur(x, sigma) for v, x in frames.items()},
        "noise": {v: _u8(_f(x) + rng.normal(0.0, 6.0 / 255.0, x.shape).astype(np.float32)) for v, x in frames.items()},
        "jpeg": {v: _jpeg(x, 30) for v, x in frames.items()},
        "texture": {v: _u8(_f(x) * (1.0 + 0.08 * tex[v][None, :, :, None])) for v, x in frames.items()},
    }
    combined = {}
    for v, x in frames.items():
        y = _u8(((_f(x) * gains + offsets).clip(0, 1) ** 1.2) * (1.0 + 0.08 * tex[v][None, :, :, None]))
        y = _blur(y, sigma)
        y = _u8(_f(y) + rng.normal(0.0, 4.0 / 255.0, y.shape).astype(np.float32))
        combined[v] = _jpeg(y, 40)
    out["combined"] = combined
    return out


def _reindex(frames: Frames, idx: np.ndarray) -> Frames:
    return {v: np.ascontiguousarray(x[idx]) for v, x in frames.items()}


def _scramble(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Shuffle square tiles (1/8 of the short side) inside every frame, the same way in all frames."""
    t, h, w, c = x.shape
    b = max(2, min(h, w) // 8)
    hh, ww = h // b * b, w // b * b
    y = x.copy()
    tiles = x[:, :hh, :ww].reshape(t, hh // b, b, ww // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(t, -1, b, b, c)
    tiles = tiles[:, rng.permutation(tiles.shape[1])]
    y[:, :hh, :ww] = tiles.reshape(t, hh // b, ww // b, b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(t, hh, ww, c)
    return y


def temporal_edits(frames: Frames, focus: int, rng: np.random.Generator, cfg: FidelityConfig) -> dict[str, Frames]:
    """Edits that keep every frame but change when it is shown; ``focus`` [frame] is where the
    failure becomes visible (freezes and holds start two frames before it)."""
    t = next(iter(frames.values())).shape[0]
    ar = np.arange(t)
    s = int(cfg.max_shift)
    f0 = int(np.clip(focus - 2, 0, max(0, t - 1)))
    hold = ar.copy()
    hold[f0:f0 + int(cfg.temporal_window) + 2] = f0
    return {
        f"delay_{s}": _reindex(frames, np.clip(ar - s, 0, t - 1)),
        "reverse": _reindex(frames, ar[::-1]),
        "shuffle": _reindex(frames, rng.permutation(t)),
        "freeze": _reindex(frames, np.minimum(ar, f0)),
        "hold": _reindex(frames, hold),
        "stutter": _reindex(frames, ar // 2 * 2),
        f"delay_{s + 1}": _reindex(frames, np.clip(ar - (s + 1), 0, t - 1)),
        f"advance_{s + 1}": _reindex(frames, np.clip(ar + s + 1, 0, t - 1)),
    }


def destroying_edits(frames: Frames, masks: dict[str, np.ndarray] | None, background: Frames | None, focus: int,
                     rng: np.random.Generator, cfg: FidelityConfig) -> dict[str, Frames]:
    """Edits that lose the failure: ``inpaint`` / ``move`` (only with the event objects'
    ``masks`` ``{view: bool (T, H, W)}`` and the ``background`` rendered without them), the
    temporal ones of :func:`temporal_edits` except the tolerated delay, and ``scramble``."""
    out: dict[str, Frames] = {}
    if masks is not None and background is not None:
        from simfail.realism.imageops import dilate

        inpaint, move = {}, {}
        for v, x in frames.items():
            m = dilate(masks[v], 1)[..., None]
            clean = np.where(m, background[v], x)
            inpaint[v] = clean
            dx = max(2, x.shape[2] // 6)  # sideways by a sixth of the width
            shifted_m = np.zeros_like(m)
            shifted_m[:, :, dx:] = m[:, :, :-dx]
            shifted_x = np.zeros_like(x)
            shifted_x[:, :, dx:] = x[:, :, :-dx]
            move[v] = np.where(shifted_m, shifted_x, clean)
        out["inpaint"], out["move"] = inpaint, move
    tol = {n.format(S=int(cfg.max_shift)) for n in TOLERATED}
    out.update({k: v for k, v in temporal_edits(frames, focus, rng, cfg).items() if k not in tol})
    out["scramble"] = {v: _scramble(x, rng) for v, x in frames.items()}
    return out


# ------------------------------------------------------------------------------ running


def _names(cfg: FidelityConfig) -> tuple[tuple[str, ...], tuple[str, ...], dict[str, tuple[str, ...]]]:
    s = int(cfg.max_shift)

    def fmt(names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(n.format(S=s, S1=s + 1) for n in names)

    return fmt(TOLERATED), fmt(DESTROYING), {k: fmt(v) for k, v in TARGETS.items()}


def _background(cond_r, qpos: np.ndarray, labels: set[int]) -> Frames:
    """Colour frames of the scene with every geom of ``labels`` hidden (alpha 0 is not drawn)."""
    model = cond_r.model
    geoms = [g for g in range(model.ngeom) if int(cond_r.geom_label[g]) in labels]
    saved = model.geom_rgba[geoms].copy()
    try:
        model.geom_rgba[geoms, 3] = 0.0
        _, rgb = cond_r.render(qpos, rgb=True)
    finally:
        model.geom_rgba[geoms] = saved
    return rgb


def suggest_threshold(accepted: list[float], rejected: list[float]) -> dict[str, Any]:
    """Threshold separating ``accepted`` scores (>= it) from ``rejected`` ones (< it): the
    midpoint of the gap when there is one, else the candidate with the fewest errors (ties:
    the lower, i.e. the one accepting more)."""
    acc = sorted(float(a) for a in accepted)
    rej = sorted(float(r) for r in rejected)
    if not acc or not rej:
        return {"threshold": None, "accept_min": acc[0] if acc else None, "reject_max": rej[-1] if rej else None,
                "separates": None, "errors": None}
    lo, hi = acc[0], rej[-1]
    if lo > hi:
        thr = (lo + hi) / 2.0
        errors = 0
    else:
        values = sorted(set(acc + rej))
        cands = [values[0] - 1e-6] + [(a + b) / 2.0 for a, b in zip(values, values[1:])] + [values[-1] + 1e-6]
        scored = [(sum(a < c for a in acc) + sum(r >= c for r in rej), c) for c in cands]
        errors, thr = min(scored, key=lambda x: (x[0], x[1]))
    return {"threshold": round(thr, 4), "accept_min": round(lo, 4), "reject_max": round(hi, 4),
            "separates": lo > hi, "errors": int(errors)}


def _passes(row: dict[str, Any], thr: dict[str, float | None]) -> bool:
    for s in SCORES:
        v, t = row.get(s), thr.get(s)
        if v is not None and t is not None and v < t:
            return False
    return True


def _score_episode(ds, di: int, gid: int, ep: int, cond_r, cfg: CalibrationConfig,
                   tolerated: tuple[str, ...]) -> list[dict[str, Any]]:
    """Scores of every edit of one episode (one row per edit)."""
    fcfg = cfg.fidelity
    rng = np.random.default_rng(np.random.SeedSequence([int(cfg.seed), int(ep), 0xCA1]))
    frames = {v: ds.episode_frames(ep, v) for v in VIEWS}
    qpos = ds.episode_columns(ep)["sim.qpos"]
    cond = cond_r.render(qpos)
    failures = ds.failures(ep)
    t = next(iter(frames.values())).shape[0]
    focus = min((int(f.visible_frame) for f in failures), default=t // 2)
    labels: set[int] = set()
    for f in failures:
        labels |= cond_r.labels_of(tuple(f.objects))
    masks = background = None
    if labels:
        masks = {v: np.isin(cond[v].seg, sorted(labels)) for v in VIEWS}
        background = _background(cond_r, qpos, labels)
    edits: dict[str, tuple[str, Frames]] = {"identity": ("reference", frames)}
    edits.update({k: ("appearance", e) for k, e in appearance_edits(frames, rng).items()})
    temporal = temporal_edits(frames, focus, rng, fcfg)
    edits.update({k: ("tolerated", temporal[k]) for k in tolerated})
    edits.update({k: ("destroying", e) for k, e in destroying_edits(frames, masks, background, focus, rng, fcfg).items()})
    variant = str(ds.episode(ep)["simfail.variant"])
    rows = []
    for name, (kind, edited) in edits.items():
        res = check_episode(frames, edited, cond, failures, cond_r.labels_of, fcfg)
        rows.append({"dataset": di, "episode": ep, "group": gid, "variant": variant, "edit": name, "kind": kind,
                     "edge": round(float(res.edge), 4),
                     "object": None if res.object is None else round(float(res.object), 4),
                     "temporal": None if res.temporal is None else round(float(res.temporal), 4)})
    return rows


def calibrate(cfg: CalibrationConfig, *, log=print) -> dict[str, Any]:
    """Score every appearance / tolerated / destroying edit of every episode with the fidelity
    check; returns ``{"rows": [...], "edits": {...}, "thresholds": {...}, ...}`` (see the module
    docstring) and writes it to ``cfg.out`` when set.

    Raises:
        SimfailError: bad settings or an unreadable dataset.
    """
    from simfail.dataset.reader import SimfailDataset
    from simfail.realism.conditioning import SceneConditioner

    cfg.validate()
    fcfg = cfg.fidelity
    tolerated, destroying, targets = _names(fcfg)
    paths = [cfg.data] if isinstance(cfg.data, str) else list(cfg.data)
    rows: list[dict[str, Any]] = []
    datasets: list[dict[str, Any]] = []
    for di, path in enumerate(paths):
        ds = SimfailDataset(path)
        h, w = (int(v) for v in ds.info["features"][ds.video_keys[0]]["shape"][:2])
        if tuple(sorted(ds.views)) != tuple(sorted(VIEWS)):
            raise SimfailError(f"{path} has views {list(ds.views)}; calibration expects {list(VIEWS)}")
        groups = ds.groups()
        gids = list(groups)[: cfg.max_groups] if cfg.max_groups else list(groups)
        episodes = [(g, ep) for g in gids for ep in groups[g]]
        if cfg.max_episodes:
            episodes = episodes[: int(cfg.max_episodes)]
        datasets.append({"data": str(Path(path).resolve()), "episodes": len(episodes),
                         "groups": len({g for g, _ in episodes}), "image_size": [h, w], "fps": ds.fps,
                         "task": ds.simfail_meta.get("task")})
        for gid in gids:
            eps = [ep for g, ep in episodes if g == gid]
            if eps:
                with SceneConditioner(ds.simfail_meta, gid, h, w, VIEWS) as cond_r:
                    for ep in eps:
                        rows.extend(_score_episode(ds, di, gid, ep, cond_r, cfg, tolerated))
                        log(f"calibrate: {Path(path).name} episode {ep} (group {gid}, "
                            f"{ds.episode(ep)['simfail.variant']}): scored")
    accepted_kinds = ("reference", "appearance", "tolerated")
    thresholds: dict[str, dict[str, Any]] = {}
    for s in SCORES:
        acc = [r[s] for r in rows if r["kind"] in accepted_kinds and r[s] is not None]
        rej = [r[s] for r in rows if r["edit"] in targets[s] and r[s] is not None]
        thresholds[s] = suggest_threshold(acc, rej)
    shipped = {"edge": fcfg.edge_min, "object": fcfg.object_min, "temporal": fcfg.temporal_min}
    suggested = {s: thresholds[s]["threshold"] for s in SCORES}
    order = ["identity", *APPEARANCE, *tolerated, *destroying]
    edits_summary: dict[str, dict[str, Any]] = {}
    for name in order:
        sel = [r for r in rows if r["edit"] == name]
        if not sel:
            continue
        entry: dict[str, Any] = {"kind": sel[0]["kind"], "n": len(sel),
                                 "accepted_shipped": sum(_passes(r, shipped) for r in sel),
                                 "accepted_suggested": sum(_passes(r, suggested) for r in sel)}
        for s in SCORES:
            vals = [r[s] for r in sel if r[s] is not None]
            entry[s] = None if not vals else {"min": round(min(vals), 4), "median": round(float(np.median(vals)), 4),
                                              "max": round(max(vals), 4), "n": len(vals)}
        edits_summary[name] = entry
    report = {"datasets": datasets, "episodes": sum(d["episodes"] for d in datasets), "seed": int(cfg.seed),
              "fidelity": dataclasses.asdict(fcfg),
              "targets": {k: list(v) for k, v in targets.items()}, "thresholds": thresholds, "shipped": shipped,
              "edits": edits_summary, "rows": rows}
    if cfg.out:
        out = Path(cfg.out).expanduser()
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(json.dumps(report, indent=1) + "\n")
        tmp.replace(out)
    return report


def calibration_table(report: dict[str, Any]) -> str:
    """The report as text: per edit the min / median / max of every score and how many episodes
    the shipped and the suggested thresholds accept; then the thresholds."""
    def rng(e: dict[str, Any] | None) -> str:
        return "-" if e is None else f"{e['min']:.3f} {e['median']:.3f} {e['max']:.3f}"

    lines = [f"calibration on {d['data']} ({d['task']}): {d['episodes']} episodes, {d['groups']} groups, "
             f"{d['image_size'][0]}x{d['image_size'][1]} px, {d['fps']} fps" for d in report["datasets"]]
    lines += [f"{'edit':<20} {'kind':<10} {'n':>3}  {'edge min/med/max':<20} {'object min/med/max':<20} "
             f"{'temporal min/med/max':<20} {'acc.shipped':>11} {'acc.suggested':>13}"]
    for name, e in report["edits"].items():
        lines.append(f"{name:<20} {e['kind']:<10} {e['n']:>3}  {rng(e['edge']):<20} {rng(e['object']):<20} "
                     f"{rng(e['temporal']):<20} {e['accepted_shipped']:>7}/{e['n']:<3} {e['accepted_suggested']:>9}/{e['n']:<3}")
    lines.append("thresholds (accepted edits >= threshold > destroying edits the score targets):")
    for s, t in report["thresholds"].items():
        sep = {True: "separates", False: f"overlaps ({t['errors']} errors)", None: "no data"}[t["separates"]]
        lines.append(f"  {s + '_min':<13} suggested {t['threshold']}  shipped {report['shipped'][s]}  "
                     f"(accepted min {t['accept_min']}, targeted destroying max {t['reject_max']}: {sep}; "
                     f"targets {', '.join(report['targets'][s])})")
    return "\n".join(lines)


# ------------------------------------------------------------------------------ command line


def _parse(args: list[str]) -> CalibrationConfig:
    """The checked :class:`CalibrationConfig` of ``simfail calibrate`` arguments."""
    from simfail.commands import build_config

    return build_config("calibrate", args).calibration_config()


def run(cfg: Any) -> int:
    """``run`` of ``simfail calibrate``: calibrate, print the table (progress on stderr)."""
    ccfg = cfg.calibration_config() if hasattr(cfg, "calibration_config") else cfg
    report = calibrate(ccfg, log=lambda m: print(m, file=sys.stderr))
    print(calibration_table(report))
    if ccfg.out:
        print(f"report: {ccfg.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m simfail.realism.calibrate data=DIR ...``: an alias of ``simfail calibrate``."""
    from simfail.cli import main as cli_main

    return cli_main(["calibrate", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
