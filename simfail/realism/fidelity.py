"""Is the failure still visible after the edit? A structural and temporal comparison of
original and edited frames of one episode.

Three scores (1 for an identity edit):

* ``edge`` - agreement of the image edges (Sobel magnitude above the per-frame 85th
  percentile) of original and edited frames over the whole episode: the F1 score of edge
  pixels matched within ``tolerance`` pixels, summed over every view and frame.
* ``object`` - for every failure event, the objects it names (``objects``: roles such as
  ``object`` / ``obstacle`` or ``robot``) are located with the simulator's segmentation in the
  frames ``visible_frame - window .. visible_frame + window``; per view and frame, the mean of
  the correlation (Pearson) of the gradient magnitudes of original and edited frame inside the
  object's mask grown by 2 px, and of how much of the mask's outline the edited frame still
  draws as edges relative to the original. An event scores the mean over the views and frames
  where its objects cover at least ``min_pixels``, at the best offset in time within
  ``max_shift`` frames (edited frame ``t`` against original frame ``t + k``, the same ``k`` for
  the whole event, so a small delay the temporal check tolerates is not punished here); the
  episode scores its *worst* event (every failure must stay visible). ``None`` when no event
  has a visible object (expert episodes).
* ``temporal`` - are the frames still in their order and time? Frame-to-frame changes of the
  grey images (block-averaged to about ``temporal_size`` px on the short side, mean removed per
  frame, all views together) of the edit are compared with those of the original, frame by
  frame (cosine similarity, weighted by how much the original moves in that frame), over
  windows of ``temporal_window`` frames. Each window may be offset by up to ``max_shift``
  frames (its best offset counts); the episode scores its *worst* window among those whose
  original motion energy is at least ``motion_min`` times the mean window's. Changes of
  appearance that stay the same over time (colour, gamma, blur, noise, compression, texture)
  keep it near 1; reversed, shuffled, frozen or held frames and shifts by more than
  ``max_shift`` frames drop it to about 0 (changes of consecutive frames are nearly
  uncorrelated, so even a 3-frame shift decorrelates). ``None`` when the original does not
  move at all.

An episode passes when ``edge >= edge_min``, ``object`` is ``None`` or ``>= object_min``, and
``temporal`` is ``None`` or ``>= temporal_min``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from simfail.errors import ConfigError
from simfail.realism.conditioning import Conditioning
from simfail.realism.imageops import dilate, edge_map, grad_mag, to_gray

__all__ = ["FidelityConfig", "FidelityResult", "TemporalResult", "edge_agreement", "object_agreement",
           "temporal_agreement", "check_episode"]


@dataclass
class FidelityConfig:
    """Thresholds and windows of the fidelity check (``fidelity.*`` in ``configs/realism.yaml``).

    The default thresholds are the midpoints between the lowest score of appearance-preserving
    edits and the highest score of failure-destroying ones measured by
    :mod:`simfail.realism.calibrate` (pick/place and pour, 256x256, 10 fps; see docs/realism.md).

    Attributes:
        enabled: False writes every episode (the scores are still computed and recorded).
        edge_min: Edge-agreement F1 an episode needs, in ``[-1, 1]`` (in practice ``[0, 1]``).
        object_min: Agreement inside the failure objects' masks an episode needs, ``[-1, 1]``.
        temporal_min: Temporal agreement (worst window) an episode needs, ``[-1, 1]``.
        window: Frames either side of a failure's ``visible_frame`` the object check looks at.
        tolerance: Pixels an edge may move and still match.
        min_pixels: Pixels an object must cover in a view and frame to be judged there.
        temporal_window: Frame-to-frame changes per window of the temporal check (frames, >= 2).
        max_shift: Frames an edit may be offset in time and still agree (>= 0): the temporal
            check's windows and the object check's events take their best offset within it.
        motion_min: A window is judged when the original's motion energy in it is at least this
            share of the mean window's (``[0, 1]``; windows where nothing moves are not judged).
        temporal_size: Short side, in pixels, the temporal check block-averages the views to.
    """

    enabled: bool = True
    edge_min: float = 0.57
    object_min: float = 0.74
    temporal_min: float = 0.74
    window: int = 3
    tolerance: int = 1
    min_pixels: int = 4
    temporal_window: int = 8
    max_shift: int = 2
    motion_min: float = 0.25
    temporal_size: int = 32

    def validate(self) -> None:
        """Raises ConfigError (one message) for the first value out of range."""
        for name in ("edge_min", "object_min", "temporal_min"):
            v = float(getattr(self, name))
            if not -1.0 <= v <= 1.0:
                raise ConfigError(f"fidelity.{name} must be in [-1, 1], got {v}")
        if int(self.window) < 0 or int(self.tolerance) < 0 or int(self.min_pixels) < 1:
            raise ConfigError("fidelity.window and fidelity.tolerance must be >= 0, fidelity.min_pixels >= 1")
        if int(self.temporal_window) < 2:
            raise ConfigError(f"fidelity.temporal_window must be >= 2 frames, got {self.temporal_window}")
        if int(self.max_shift) < 0:
            raise ConfigError(f"fidelity.max_shift must be >= 0 frames, got {self.max_shift}")
        if not 0.0 <= float(self.motion_min) <= 1.0:
            raise ConfigError(f"fidelity.motion_min must be in [0, 1], got {self.motion_min}")
        if int(self.temporal_size) < 4:
            raise ConfigError(f"fidelity.temporal_size must be >= 4 pixels, got {self.temporal_size}")


@dataclass
class FidelityResult:
    """Scores of one episode (see the module docstring) and why it failed, if it did.

    ``temporal_lag`` is the offset in frames (edited frame ``t`` shows original frame
    ``t + lag``) at which the whole episode agrees best, searched within ``max_shift``;
    ``temporal_frames`` the first and last frame of the worst window.
    """

    edge: float
    object: float | None
    passed: bool
    reasons: list[str] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    temporal: float | None = None
    temporal_lag: int | None = None
    temporal_frames: tuple[int, int] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"edge": round(float(self.edge), 4),
                "object": None if self.object is None else round(float(self.object), 4),
                "temporal": None if self.temporal is None else round(float(self.temporal), 4),
                "temporal_lag": self.temporal_lag,
                "temporal_frames": None if self.temporal_frames is None else list(self.temporal_frames),
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


def _features(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Gradient magnitude and edge map of one uint8 ``(H, W, 3)`` frame."""
    g = to_gray(frame)
    return grad_mag(g), edge_map(g[None])[0]


def object_agreement(original: np.ndarray, edited: np.ndarray, mask: np.ndarray, grow: int = 2,
                     tolerance: int = 1, *, features: tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
                     | None = None) -> float:
    """Agreement inside one object's ``mask`` in one frame: the mean of (a) the correlation of
    gradient magnitudes inside the mask grown by ``grow`` px and (b) how much of the mask's
    outline the edited frame still draws as edges (within ``tolerance`` px), relative to the
    original frame (capped at 1). ``features``: the frames' :func:`_features` when already known."""
    (g_o, e_o), (g_e, e_e) = features or (_features(original), _features(edited))
    region = dilate(mask, grow)
    corr = _corr(g_o[region], g_e[region])
    outline = dilate(mask, 1) & dilate(~mask, 1)  # pixels on either side of the border
    n = int(outline.sum())
    if n == 0:
        return corr
    rec_o = float((outline & dilate(e_o, tolerance)).sum()) / n
    rec_e = float((outline & dilate(e_e, tolerance)).sum()) / n
    ratio = 1.0 if rec_o < 1e-6 else min(1.0, rec_e / rec_o)
    return 0.5 * (corr + ratio)


@dataclass
class TemporalResult:
    """Temporal agreement of one episode: ``score`` in ``[-1, 1]`` (worst judged window),
    ``frames`` ``(first, last)`` frame of that window, ``lag`` [frames] of the best whole-episode
    agreement within ``max_shift``."""

    score: float
    frames: tuple[int, int]
    lag: int


def _motion(views: list[np.ndarray], size: int) -> np.ndarray:
    """Frame-to-frame changes ``(T - 1, P)`` of uint8 ``(T, H, W, 3)`` views: grey, block-averaged
    to about ``size`` px on the short side, the mean of every frame's change removed per view
    (a global brightness flicker is no motion), all views side by side."""
    parts = []
    for frames in views:
        g = to_gray(frames)
        t, h, w = g.shape
        k = max(1, int(round(min(h, w) / max(1, size))))
        h2, w2 = h // k * k, w // k * k
        small = g[:, :h2, :w2].reshape(t, h2 // k, k, w2 // k, k).mean(axis=(2, 4)).reshape(t, -1)
        d = np.diff(small.astype(np.float64), axis=0)
        parts.append(d - d.mean(axis=1, keepdims=True))
    return np.concatenate(parts, axis=1)


def temporal_agreement(original: list[np.ndarray], edited: list[np.ndarray], *, window: int = 8, max_shift: int = 2,
                       motion_min: float = 0.25, size: int = 32) -> TemporalResult | None:
    """Do the edited views change from frame to frame like the original ones, at the same time?

    ``original`` / ``edited``: the views of one episode, uint8 ``(T, H, W, 3)`` each (same
    shapes). For every pair of consecutive frames ``t`` and every offset ``k`` in
    ``[-max_shift, max_shift]`` frames, the cosine similarity of the edited change ``t`` and
    the original change ``t + k``; a window of ``window`` changes scores its best offset (the
    mean similarity weighted by the original's motion energy), and the episode its worst window
    among those where the original moves (energy >= ``motion_min`` x the mean window's).
    ``None`` when the original does not move (or has a single frame).
    """
    d_o = _motion(original, size)
    d_e = _motion(edited, size)
    n = d_o.shape[0]
    energy = (d_o * d_o).sum(axis=1)
    if n < 1 or float(energy.sum()) <= 1e-12:
        return None
    norm_o, norm_e = np.sqrt(energy), np.sqrt((d_e * d_e).sum(axis=1))
    win = max(1, min(int(window), n))
    starts = n - win + 1
    csum = np.concatenate([[0.0], np.cumsum(energy)])
    win_energy = csum[win:] - csum[:-win]  # energy of the original in windows [s, s + win)
    judged = win_energy >= float(motion_min) * float(win_energy.mean())
    best = np.full(starts, -np.inf)
    whole: dict[int, float] = {}
    for k in range(-int(max_shift), int(max_shift) + 1):
        lo, hi = max(0, -k), min(n, n - k)  # edited change t pairs with original change t + k
        num = np.zeros(n)
        den = np.zeros(n)
        if hi > lo:
            dots = (d_e[lo:hi] * d_o[lo + k:hi + k]).sum(axis=1)
            norms = norm_e[lo:hi] * norm_o[lo + k:hi + k]
            cos = np.where(norms > 1e-12, dots / np.maximum(norms, 1e-12), 0.0)
            num[lo:hi] = energy[lo + k:hi + k] * cos
            den[lo:hi] = energy[lo + k:hi + k]
        cn = np.concatenate([[0.0], np.cumsum(num)])
        cd = np.concatenate([[0.0], np.cumsum(den)])
        wn, wd = cn[win:] - cn[:-win], cd[win:] - cd[:-win]
        score = np.where(wd > 1e-12, wn / np.maximum(wd, 1e-12), -np.inf)
        best = np.maximum(best, score)
        whole[k] = float(cn[-1] / cd[-1]) if cd[-1] > 1e-12 else -np.inf
    masked = np.where(judged, best, np.inf)
    s = int(np.argmin(masked))
    lag = max(whole, key=lambda k: (whole[k], -abs(k)))
    return TemporalResult(float(best[s]), (s, s + win), int(lag))


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
    t = int(next(iter(original.values())).shape[0])
    shift = int(cfg.max_shift)
    cache: dict[tuple[str, str, int], tuple[np.ndarray, np.ndarray]] = {}

    def feats(which: str, v: str, i: int) -> tuple[np.ndarray, np.ndarray]:
        key = (which, v, i)
        if key not in cache:
            cache[key] = _features((original if which == "o" else edited)[v][i])
        return cache[key]

    for ev in failures:
        labels = sorted(labels_of(tuple(ev.objects)))
        lo, hi = max(0, int(ev.visible_frame) - cfg.window), min(t, int(ev.visible_frame) + cfg.window + 1)
        # edited frame i against original frame i + k (its mask too), for every offset k within
        # max_shift: the best offset counts (the temporal check bounds the offset)
        by_shift: dict[int, list[float]] = {}
        for k in range(-shift, shift + 1):
            vals: list[float] = []
            for v in views:
                seg = conditioning[v].seg
                for i in range(lo, hi):
                    j = i + k
                    if not 0 <= j < t:
                        continue
                    mask = np.isin(seg[j], labels) if labels else np.zeros(seg[j].shape, bool)
                    if int(mask.sum()) < cfg.min_pixels:
                        continue
                    vals.append(object_agreement(original[v][j], edited[v][i], mask, tolerance=cfg.tolerance,
                                                 features=(feats("o", v, j), feats("e", v, i))))
            if vals:
                by_shift[k] = vals
        best = max(by_shift, key=lambda k: (float(np.mean(by_shift[k])), -abs(k))) if by_shift else None
        score = None if best is None else float(np.mean(by_shift[best]))
        events.append({"type": ev.type, "objects": list(ev.objects), "frames": [lo, hi - 1],
                       "object": None if score is None else round(score, 4),
                       "samples": 0 if best is None else len(by_shift[best]), "shift": best})
        if score is not None:
            scores.append(score)
    obj = min(scores) if scores else None
    temporal = temporal_agreement([original[v] for v in views], [edited[v] for v in views],
                                  window=int(cfg.temporal_window), max_shift=int(cfg.max_shift),
                                  motion_min=float(cfg.motion_min), size=int(cfg.temporal_size))
    reasons = []
    if edge < cfg.edge_min:
        reasons.append(f"edge agreement {edge:.3f} < {cfg.edge_min}")
    if obj is not None and obj < cfg.object_min:
        worst = min((e for e in events if e["object"] is not None), key=lambda e: e["object"])
        reasons.append(f"failure '{worst['type']}' objects {worst['objects']} agreement {obj:.3f} < {cfg.object_min} "
                       f"around frames {worst['frames'][0]}..{worst['frames'][1]}")
    if temporal is not None and temporal.score < cfg.temporal_min:
        reasons.append(f"temporal agreement {temporal.score:.3f} < {cfg.temporal_min} in frames "
                       f"{temporal.frames[0]}..{temporal.frames[1]} (frames reversed, shuffled, frozen or shifted by "
                       f"more than {int(cfg.max_shift)})")
    return FidelityResult(edge, obj, not reasons, reasons, events,
                          temporal=None if temporal is None else temporal.score,
                          temporal_lag=None if temporal is None else temporal.lag,
                          temporal_frames=None if temporal is None else temporal.frames)
