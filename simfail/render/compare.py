"""Compare two renderers on the same recorded states: segmentation agreement and RGB PSNR.

Used by ``tests/test_warp_renderer.py`` and to measure the numbers in docs/rendering.md.
Segmentation pixels are ``(object id, mjtObj type)`` pairs as ``mujoco.Renderer`` and MuJoCo
Warp give them; background is ``(-1, -1)`` in both and is compared as a class of its own (a
pixel that one renderer calls background and the other an object is a disagreement).
"""

from __future__ import annotations

import mujoco
import numpy as np

__all__ = ["egl_reference", "seg_agreement", "psnr", "geoms_of_body", "visible"]


def egl_reference(model: mujoco.MjModel, views: tuple[str, ...], qpos: np.ndarray, width: int, height: int
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """OpenGL RGB ``{view: uint8 (T, H, W, 3)}`` and segmentation ``{view: int32 (T, H, W, 2)}``
    of the rows of ``qpos`` (``mujoco.Renderer``, posed by kinematics as the render worker does)."""
    data = mujoco.MjData(model)
    n = len(qpos)
    rgb = {v: np.empty((n, height, width, 3), np.uint8) for v in views}
    seg = {v: np.empty((n, height, width, 2), np.int32) for v in views}
    with mujoco.Renderer(model, height=height, width=width) as r:
        for f, q in enumerate(qpos):
            data.qpos[:] = q
            mujoco.mj_kinematics(model, data)
            mujoco.mj_camlight(model, data)
            for v in views:
                r.update_scene(data, camera=v)
                r.disable_segmentation_rendering()
                rgb[v][f] = r.render()
                r.enable_segmentation_rendering()
                seg[v][f] = r.render()
    return rgb, seg


def seg_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of pixels whose ``(id, type)`` pairs are equal (background included)."""
    return float((a == b).all(axis=-1).mean())


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two ``uint8`` images (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def geoms_of_body(model: mujoco.MjModel, body: str) -> np.ndarray:
    """Geom ids of the body named ``body`` and of its descendants."""
    bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, body)
    if bid < 0:
        raise KeyError(f"no body named {body!r}")
    bodies = [b for b in range(model.nbody) if b == bid or _descends(model, b, bid)]
    return np.flatnonzero(np.isin(model.geom_bodyid, bodies))


def _descends(model: mujoco.MjModel, b: int, ancestor: int) -> bool:
    while b > 0:
        b = int(model.body_parentid[b])
        if b == ancestor:
            return True
    return False


def visible(seg: np.ndarray, geom_ids: np.ndarray) -> np.ndarray:
    """Per leading index of ``seg`` (..., H, W, 2): the number of pixels showing one of ``geom_ids``."""
    hit = (seg[..., 1] == int(mujoco.mjtObj.mjOBJ_GEOM)) & np.isin(seg[..., 0], geom_ids)
    return hit.sum(axis=(-1, -2))
