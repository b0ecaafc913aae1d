"""Geom-id segmentation of the camera views, for deciding what a camera can see.

:class:`SegmentationRenderer` draws the same named cameras as
:class:`~simfail.render.renderer.MultiViewRenderer` (all views of a frame tiled into one
framebuffer, one readback) with MuJoCo's ``mjRND_SEGMENT`` + ``mjRND_IDCOLOR`` flags: every
pixel's colour encodes the index of the scene geom drawn there (no lighting, no blending, so
the ids are exact), which the renderer maps back to the model's geom id. Pixels that show no
model geom (background, decorations) get ``-1``. Occlusion is the z-buffer's: a pixel holds the
nearest geom only.

It is meant to run small (e.g. 64x64 per view): its cost is per draw call, not per pixel.
"""

from __future__ import annotations

import mujoco
import numpy as np

from simfail.render.renderer import MultiViewRenderer

__all__ = ["SegmentationRenderer"]

_GEOM = int(mujoco.mjtObj.mjOBJ_GEOM)


class SegmentationRenderer(MultiViewRenderer):
    """Renders ``{view: int32 (H, W)}`` model geom ids (``-1``: no geom) of named cameras.

    Same arguments and thread rules as :class:`MultiViewRenderer`.
    """

    def __init__(self, model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int):
        super().__init__(model, views, width, height)
        self._scene.flags[mujoco.mjtRndFlag.mjRND_SEGMENT] = 1
        self._scene.flags[mujoco.mjtRndFlag.mjRND_IDCOLOR] = 1
        # scene-geom index + 1 -> model geom id (-1: not a model geom), one table per view
        self._lut = [np.full(1, -1, dtype=np.int32) for _ in self.views]

    def _scene_lut(self) -> np.ndarray:
        """Lookup table from ``color id`` (scene geom index + 1; 0 = background) to model geom id
        for the scene as it was last updated."""
        scn = self._scene
        n = int(scn.ngeom)
        lut = np.full(n + 1, -1, dtype=np.int32)
        for i in range(n):
            g = scn.geoms[i]
            if int(g.objtype) == _GEOM:
                lut[i + 1] = int(g.objid)
        return lut

    def render_ids_into(self, data: mujoco.MjData, out: dict[str, np.ndarray]) -> None:
        """Write the geom ids of the views named in ``out`` (a subset of :attr:`views`; the
        others are not drawn) for ``data``'s (posed) state into ``out[view]``, an
        ``int32 (H, W)`` array, rows top-down."""
        if self._con is None:
            from simfail.errors import RenderBackendError

            raise RenderBackendError("render called after close")
        self._gl.make_current()
        m, scn, con, opt = self._model, self._scene, self._con, self._option
        cat = mujoco.mjtCatBit.mjCAT_ALL.value
        for k, (cam, tile) in enumerate(zip(self._cameras, self._tiles)):
            if self.views[k] not in out:
                continue
            mujoco.mjv_updateScene(m, data, opt, None, cam, cat, scn)
            self._lut[k] = self._scene_lut()  # ~20 us; exact even if the scene's geoms change
            mujoco.mjr_render(tile, scn, con)
        mujoco.mjr_readPixels(self._buffer, None, self._full, con)
        rgb = self._buffer[::-1].astype(np.int32)
        ids = rgb[..., 0] | (rgb[..., 1] << 8) | (rgb[..., 2] << 16)
        w = self.width
        for k, v in enumerate(self.views):
            if v not in out:
                continue
            lut = self._lut[k]
            tile = ids[:, k * w : (k + 1) * w]
            np.copyto(out[v], lut[np.clip(tile, 0, len(lut) - 1)])

    def render_ids(self, data: mujoco.MjData, views: tuple[str, ...] | None = None) -> dict[str, np.ndarray]:
        """``{view: int32 (H, W)}`` geom ids of ``data``'s posed state (new arrays), for
        ``views`` (default: all)."""
        out = {v: np.empty((self.height, self.width), dtype=np.int32) for v in (views or self.views)}
        self.render_ids_into(data, out)
        return out
