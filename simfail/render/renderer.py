"""Multi-view offscreen rendering with a clear error when no OpenGL backend works.

simfail sets ``MUJOCO_GL=egl`` unless the user chose a backend: EGL renders through Mesa
llvmpipe on a CPU machine and through the vendor driver on a GPU machine.
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from simfail.errors import RenderBackendError


class MultiViewRenderer:
    """Renders named cameras of one model at one resolution.

    Args:
        model: The compiled scene; its offscreen buffer must be at least ``width x height``.
        views: Camera names, e.g. ``("left", "right", "wrist")``.
        width, height: Image size in pixels.
    """

    def __init__(self, model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int):
        self.views = tuple(views)
        for v in self.views:
            if mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, v) < 0:
                raise RenderBackendError(f"scene has no camera named {v!r}")
        try:
            self._renderer = mujoco.Renderer(model, height=height, width=width)
        except Exception as exc:  # mujoco raises plain Exceptions from the GL layer
            backend = os.environ.get("MUJOCO_GL", "(unset)")
            raise RenderBackendError(
                f"could not create an OpenGL context with MUJOCO_GL={backend}: {exc}. "
                "On a machine without a display use MUJOCO_GL=egl (needs libEGL + Mesa, e.g. "
                "Debian packages libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (libosmesa6)."
            ) from exc
        self.width, self.height = width, height

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """``{view: uint8 (H, W, 3)}`` for the current state of ``data`` (new arrays)."""
        out = {v: np.empty((self.height, self.width, 3), dtype=np.uint8) for v in self.views}
        self.render_into(data, out)
        return out

    def render_into(self, data: mujoco.MjData, out: dict[str, np.ndarray]) -> None:
        """Render every view of the current state of ``data`` into ``out[view]``, a C-contiguous
        ``uint8 (H, W, 3)`` array (e.g. one frame of a preallocated episode video), with no
        intermediate copy."""
        for v in self.views:
            self._renderer.update_scene(data, camera=v)
            self._renderer.render(out=out[v])

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> MultiViewRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
