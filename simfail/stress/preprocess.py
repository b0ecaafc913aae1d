"""Shape an episode to what a reward model asked for (views, frame count, frame size) and map
its per-frame output back to the episode's full length. Pure numpy."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from simfail.errors import DatasetFormatError

from .protocol import EpisodeInput, ModelRequirements


def subsample_indices(n_frames: int, max_frames: int | None) -> np.ndarray:
    """Frame indices kept when at most ``max_frames`` of ``n_frames`` may be shown.

    Uniform in time, first and last frame always kept: ``floor(linspace(0, T-1, M) + 0.5)``
    with ``M = min(T, max_frames)``. Rounding half up keeps the indices strictly increasing
    (consecutive linspace points are at least one frame apart when ``M <= T``).
    ``max_frames=None`` keeps every frame.
    """

    if n_frames < 1:
        raise ValueError(f"an episode needs at least one frame, got {n_frames}")
    if max_frames is None or n_frames <= max_frames:
        return np.arange(n_frames)
    if max_frames < 2:
        raise ValueError(f"max_frames must be >= 2 to keep the first and last frame, got {max_frames}")
    idx = np.floor(np.linspace(0.0, n_frames - 1, max_frames) + 0.5).astype(np.int64)
    return np.unique(idx)


def interpolate_to_length(values: np.ndarray, indices: np.ndarray, n_frames: int) -> np.ndarray:
    """Map values given at frame ``indices`` back to all ``n_frames`` frames.

    Linear interpolation in frame index (equivalently in time, frames being equally spaced);
    the kept frames keep their values exactly. ``indices`` must include ``0`` and
    ``n_frames - 1`` (as :func:`subsample_indices` guarantees), so no extrapolation happens.
    """

    values = np.asarray(values, dtype=np.float64)
    indices = np.asarray(indices)
    if values.shape != indices.shape:
        raise ValueError(f"values {values.shape} and indices {indices.shape} differ in shape")
    if len(indices) == n_frames:
        return values.copy()
    return np.interp(np.arange(n_frames, dtype=np.float64), indices.astype(np.float64), values)


def _axis_weights(n_in: int, n_out: int) -> np.ndarray:
    """``(n_out, n_in)`` resampling matrix: area averaging when shrinking, bilinear otherwise."""
    if n_out == n_in:
        return np.eye(n_in)
    if n_out < n_in:
        # Output pixel k covers source interval [k*s, (k+1)*s), s = n_in/n_out; each source
        # pixel i = [i, i+1) contributes its overlap with that interval, divided by s.
        s = n_in / n_out
        lo = np.arange(n_out)[:, None] * s
        hi = lo + s
        i = np.arange(n_in)[None, :]
        overlap = np.clip(np.minimum(hi, i + 1) - np.maximum(lo, i), 0.0, None)
        return overlap / s
    # Bilinear with pixel centres aligned (half-pixel convention), edges clamped.
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0.0, n_in - 1)
    i0 = np.floor(x).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = x - i0
    w = np.zeros((n_out, n_in))
    rows = np.arange(n_out)
    np.add.at(w, (rows, i0), 1.0 - frac)
    np.add.at(w, (rows, i1), frac)
    return w


def resize_frames(frames: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``uint8 (T, H, W, 3)`` (or a single ``(H, W, 3)`` image) to ``size=(h, w)``.

    Each axis is resampled separately: area averaging when it shrinks, bilinear interpolation
    (half-pixel centres, clamped edges) when it grows. Output is rounded to ``uint8``.
    """

    arr = np.asarray(frames)
    single = arr.ndim == 3
    if single:
        arr = arr[None]
    if arr.ndim != 4:
        raise ValueError(f"expected (T,H,W,C) or (H,W,C) frames, got shape {arr.shape}")
    h, w = int(size[0]), int(size[1])
    if arr.shape[1:3] == (h, w):
        out = arr.astype(np.uint8, copy=True)
    else:
        wy = _axis_weights(arr.shape[1], h)
        wx = _axis_weights(arr.shape[2], w)
        tmp = np.einsum("oh,thwc->towc", wy, arr.astype(np.float64), optimize=True)
        res = np.einsum("pw,towc->topc", wx, tmp, optimize=True)
        out = np.clip(np.floor(res + 0.5), 0, 255).astype(np.uint8)
    return out[0] if single else out


def _check_frames(ep: EpisodeInput, view: str) -> np.ndarray:
    if view not in ep.frames:
        raise DatasetFormatError(f"episode {ep.episode_id!r} has no {view!r} view (has {sorted(ep.frames)})")
    arr = ep.frames[view]
    if not isinstance(arr, np.ndarray) or arr.dtype != np.uint8 or arr.ndim != 4 or arr.shape[-1] != 3:
        raise DatasetFormatError(
            f"episode {ep.episode_id!r}: view {view!r} must be uint8 (T,H,W,3), got "
            f"{getattr(arr, 'dtype', type(arr).__name__)} {getattr(arr, 'shape', '')}"
        )
    return arr


def prepare_input(ep: EpisodeInput, req: ModelRequirements) -> tuple[EpisodeInput, np.ndarray]:
    """Return the episode as the model should see it, and the kept frame indices.

    Keeps only ``req.views``; subsamples every per-frame array (frames, privileged labels,
    frame times) with :func:`subsample_indices`; resizes frames and the goal image to
    ``req.frame_size``; drops the goal image, examples and privileged labels unless asked for.
    ``fps`` becomes the mean rate of the kept frames. The input is not modified.
    """

    n = ep.length
    for view in ep.frames:
        arr = _check_frames(ep, view)
        if arr.shape[0] != n:
            raise DatasetFormatError(f"episode {ep.episode_id!r}: view {view!r} has {arr.shape[0]} frames, expected {n}")
    idx = subsample_indices(n, req.max_frames)
    frames: dict[str, np.ndarray] = {}
    for view in req.views:
        arr = _check_frames(ep, view)[idx]
        if req.frame_size is not None:
            arr = resize_frames(arr, req.frame_size)
        frames[view] = arr
    privileged = None
    if req.privileged and ep.privileged is not None:
        privileged = {}
        for key, val in ep.privileged.items():
            val = np.asarray(val)
            if val.ndim == 0:  # an episode-level label (the score): nothing to subsample
                privileged[key] = val
                continue
            if val.shape[:1] != (n,):
                raise DatasetFormatError(f"episode {ep.episode_id!r}: privileged {key!r} has shape {val.shape}, expected ({n}, ...)")
            privileged[key] = val[idx]
    goal = None
    if req.wants_goal_image and ep.goal_image is not None:
        goal = np.asarray(ep.goal_image)
        if req.frame_size is not None:
            goal = resize_frames(goal, req.frame_size)
    fps = float(ep.fps)
    if len(idx) < n and n > 1:
        fps = float(ep.fps) * (len(idx) - 1) / (n - 1)
    times = ep.frame_times if ep.frame_times is not None else np.arange(n) / float(ep.fps)
    out = replace(
        ep,
        frames=frames,
        fps=fps,
        goal_image=goal,
        examples=ep.examples if req.wants_examples else None,
        privileged=privileged,
        frame_times=np.asarray(times, dtype=np.float64)[idx],
    )
    return out, idx
