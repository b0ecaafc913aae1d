"""Is the failure still visible after the edit? A structural comparison of original and edited
frames of one episode.

Two scores in ``[0, 1]`` (1 for an identity edit):

* ``edge`` - agreement of the image edges (Sobel magnitude above the per-frame 85th
  percentile) of original and edited frames over the whole episode: the F1 score of edge
  pixels matched within ``tolerance`` pixels, summed over every view and frame.
* ``object`` - for every failure event, the objects it names (``objects``: roles such as
  ``object`` / ``obstacle`` or ``robot``) are located with the simulator's segmentation in the
  frames ``visible_frame - window .. visible_frame + window``; inside each object's mask
  (grown by 2 px) the gradient magnitudes of original and edited frames are correlated
  (Pearson). An event scores the mean over the views and frames where its objects cover at
  least ``min_pixels``; the episode scores its *worst* event (every failure must stay visible).
  ``None`` when no event has a visible object (expert episodes).

An episode passes when ``edge >= edge_min`` and ``object`` is ``None`` or ``>= object_min``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from simfail.errors import ConfigError
from simfail.realism.conditioning import Conditioning
from simfail.realism.imageops import dilate, edge_map, grad_mag, to_gray

__all__ = ["FidelityConfig", "FidelityResult", "edge_agreement", "object_agreement", "check_episode"]


@dataclass
class FidelityConfig:
    enabled: bool = True
    edge_min: float = 0.45
    object_min: float = 0.45
    window: int = 3
    tolerance: int = 1
    min_pixels: int = 4

    def validate(self) -> None:
        for name in ("edge_min", "object_min"):
            v = float(getattr(self, name))
            if not -1.0 <= v <= 1.0:
                raise ConfigError(f"fidelity.{name} must be in [-1, 1], got {v}")
        if int(self.window) < 0 or int(self.tolerance) < 0 or int(self.min_pixels) < 1:
            raise ConfigError("fidelity.window and fidelity.tolerance must be >= 0, fidelity.min_pixels >= 1")


@dataclass
class FidelityResult:
    edge: float
    object: float | None
    passed: bool
    reasons: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"edge": round(float(self.edge), 4),
                "object": None if self.object is None else round(float(self.object), 4),
                "passed": bool(self.passed), "reasons": list(self.reasons), "events": list(self.events)}


def edge_agreement(original: np.ndarray, edited: np.ndarray, tolerance: int = 1) -> float:
    """F1 of edge pixels of uint8 ``(T, H, W, 3)`` frames matched within ``tolerance`` px."""
    eo = edge_map(to_gray(original))
    ee = edge_map(to_gray(edited))
    no, ne = int(eo.sum()), int(ee.sum())
    if no == 0 and ne == 0:
        return 1.0
    if no == 0 or ne == 0:
        return 0.0
    recall = float((eo & dilate(ee, tolerance)).sum()) / no
    precision = float((ee & dilate(eo, tolerance)).sum()) / ne
    return 0.0 if recall + precision == 0 else 2 * recall * precision / (recall + precision)


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if den < 1e-12:
        return 1.0 if np.allclose(a, b) else 0.0
    return float((a * b).sum() / den)


def object_agreement(original: np.ndarray, edited: np.ndarray, mask: np.ndarray, grow: int = 2,
                     tolerance: int = 1) -> float:
    """Agreement inside one object's ``mask`` in one frame: the mean of (a) the correlation of
    gradient magnitudes inside the mask grown by ``grow`` px and (b) how much of the mask's
    outline the edited frame still draws as edges (within ``tolerance`` px), relative to the
    original frame (capped at 1)."""
    region = dilate(mask, grow)
    g_o = grad_mag(to_gray(original))
    g_e = grad_mag(to_gray(edited))
    corr = _corr(g_o[region], g_e[region])
    outline = dilate(mask, 1) & dilate(~mask, 1)  # pixels on either side of the border
    n = int(outline.sum())
    if n == 0:
        return corr
    e_o = edge_map(to_gray(original)[None])[0]
    e_e = edge_map(to_gray(edited)[None])[0]
    rec_o = float((outline & dilate(e_o, tolerance)).sum()) / n
    rec_e = float((outline & dilate(e_e, tolerance)).sum()) / n
    ratio = 1.0 if rec_o < 1e-6 else min(1.0, rec_e / rec_o)
    return 0.5 * (corr + ratio)


def check_episode(
    original: dict[str, np.ndarray],
    edited: dict[str, np.ndarray],
    conditioning: dict[str, Conditioning],
    failures: list[Any],
    labels_of: Callable[[tuple[str, ...]], set[int]],
    cfg: FidelityConfig | None = None,
) -> FidelityResult:
    """Fidelity of one episode's edit (``{view: uint8 (T, H, W, 3)}`` before and after)."""
    cfg = cfg or FidelityConfig()
    views = list(original)
    for v in views:
        if edited[v].shape != original[v].shape:
            return FidelityResult(0.0, None, False, [f"view {v}: edited frames {edited[v].shape} != {original[v].shape}"])
    # edge agreement pooled over all views and frames (views share H x W)
    edge = edge_agreement(np.concatenate([original[v] for v in views]),
                          np.concatenate([edited[v] for v in views]), int(cfg.tolerance))

    events: list[dict[str, Any]] = []
    scores: list[float] = []
    for ev in failures:
        labels = labels_of(tuple(ev.objects))
        t = int(next(iter(original.values())).shape[0])
        lo, hi = max(0, int(ev.visible_frame) - cfg.window), min(t, int(ev.visible_frame) + cfg.window + 1)
        vals: list[float] = []
        for v in views:
            seg = conditioning[v].seg
            for i in range(lo, hi):
                mask = np.isin(seg[i], list(labels)) if labels else np.zeros(seg[i].shape, bool)
                if int(mask.sum()) < cfg.min_pixels:
                    continue
                vals.append(object_agreement(original[v][i], edited[v][i], mask, tolerance=cfg.tolerance))
        score = float(np.mean(vals)) if vals else None
        events.append({"type": ev.type, "objects": list(ev.objects), "frames": [lo, hi - 1],
                       "object": None if score is None else round(score, 4), "samples": len(vals)})
        if score is not None:
            scores.append(score)
    obj = min(scores) if scores else None
    reasons = []
    if edge < cfg.edge_min:
        reasons.append(f"edge agreement {edge:.3f} < {cfg.edge_min}")
    if obj is not None and obj < cfg.object_min:
        worst = min((e for e in events if e["object"] is not None), key=lambda e: e["object"])
        reasons.append(f"failure '{worst['type']}' objects {worst['objects']} agreement {obj:.3f} < {cfg.object_min} "
                       f"around frames {worst['frames'][0]}..{worst['frames'][1]}")
    return FidelityResult(edge, obj, not reasons, reasons, events)
