"""Small numpy image operations shared by the conditioning and the fidelity check."""

from __future__ import annotations

import numpy as np

__all__ = ["to_gray", "grad_mag", "edge_map", "dilate", "resize_frames"]


def to_gray(frames: np.ndarray) -> np.ndarray:
    """``(..., H, W, 3)`` uint8/float -> ``(..., H, W)`` float32 in [0, 1]."""
    x = np.asarray(frames, dtype=np.float32)
    if x.max(initial=0.0) > 1.5:
        x = x / 255.0
    return x[..., 0] * 0.299 + x[..., 1] * 0.587 + x[..., 2] * 0.114


def grad_mag(img: np.ndarray) -> np.ndarray:
    """Sobel gradient magnitude of ``(..., H, W)`` float images (edge-replicated borders)."""
    p = np.pad(img, [(0, 0)] * (img.ndim - 2) + [(1, 1), (1, 1)], mode="edge")
    c = p[..., 1:-1, :]
    gx = (p[..., :-2, 2:] + 2 * c[..., :, 2:] + p[..., 2:, 2:]) - (p[..., :-2, :-2] + 2 * c[..., :, :-2] + p[..., 2:, :-2])
    m = p[..., :, 1:-1]
    gy = (p[..., 2:, :-2] + 2 * m[..., 2:, :] + p[..., 2:, 2:]) - (p[..., :-2, :-2] + 2 * m[..., :-2, :] + p[..., :-2, 2:])
    return np.sqrt(gx * gx + gy * gy).astype(np.float32)


def edge_map(img: np.ndarray, *, quantile: float = 0.85, floor: float = 0.08) -> np.ndarray:
    """Boolean edges of ``(..., H, W)`` float images: gradient magnitude above the per-image
    ``quantile`` and above an absolute ``floor`` (so flat images have no edges)."""
    g = grad_mag(img)
    flat = g.reshape(g.shape[:-2] + (-1,))
    thr = np.quantile(flat, quantile, axis=-1)[..., None, None]
    return (g > np.maximum(thr, floor)) & (g > 0)


def dilate(mask: np.ndarray, r: int) -> np.ndarray:
    """Binary dilation of ``(..., H, W)`` by a ``(2r+1)`` square."""
    out = np.asarray(mask, dtype=bool)
    if r <= 0:
        return out
    h, w = out.shape[-2:]
    p = np.pad(out, [(0, 0)] * (out.ndim - 2) + [(r, r), (r, r)])
    acc = np.zeros_like(out)
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            acc |= p[..., dy : dy + h, dx : dx + w]
    return acc


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 ``(T, H, W, 3)`` frames (bicubic; a no-op at the same size)."""
    frames = np.asarray(frames)
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    return np.stack(
        [np.asarray(Image.fromarray(f).resize((width, height), Image.BICUBIC)) for f in frames]
    ).astype(np.uint8)
