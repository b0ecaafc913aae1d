"""Multi-view offscreen rendering with a clear error when no OpenGL backend works.

simfail sets ``MUJOCO_GL=egl`` unless the user chose a backend: EGL renders through Mesa
llvmpipe on a CPU machine and through the vendor driver on a GPU machine.

The views of one frame are drawn side by side into one offscreen framebuffer (view ``k`` in
columns ``k*W .. (k+1)*W``) and read back with a single ``glReadPixels``. A software
rasterizer (llvmpipe) only rasterizes when pixels are read, so one readback per frame instead
of one per view lets its threads work on all views at once and waits once instead of three
times. Measured on the shared 2-core CPU machine it uses 4-8% more CPU per view-frame than
``mujoco.Renderer`` (which the bench's render bound therefore also measures; see
docs/scale.md); it stays because the published datasets' bytes are its pixels. The images
are those of ``mujoco.Renderer`` up to rare single edge pixels (sub-pixel snapping of the
shifted viewport; ``tests/test_renderer.py`` bounds the difference).
"""

from __future__ import annotations

import os

import mujoco
import numpy as np

from simfail.errors import RenderBackendError


def _backend_error(exc: Exception) -> RenderBackendError:
    backend = os.environ.get("MUJOCO_GL", "(unset)")
    return RenderBackendError(
        f"could not create an OpenGL context with MUJOCO_GL={backend}: {exc}. "
        "On a machine without a display use MUJOCO_GL=egl (needs libEGL + Mesa, e.g. "
        "Debian packages libegl1 libgl1-mesa-dri) or MUJOCO_GL=osmesa (libosmesa6)."
    )


def _gl_context_class():
    """The GL context class ``mujoco.Renderer`` uses for the ``MUJOCO_GL`` backend."""
    try:
        from mujoco.rendering.classic import gl_context  # mujoco >= 3.4
    except ImportError:  # pragma: no cover - older mujoco
        from mujoco import gl_context
    return getattr(gl_context, "GLContext", None)


class MultiViewRenderer:
    """Renders named cameras of one model at one resolution, all views of a frame in one pass.

    The renderer owns an OpenGL context, which is bound to the thread that uses it: create,
    use and close a renderer on one thread (:class:`simfail.render.worker.RenderWorker` runs
    one on a worker thread).

    Args:
        model: The compiled scene. Its offscreen framebuffer size (``vis.global_.offwidth`` /
            ``offheight``) is raised to ``len(views) * width x height`` while the context is
            created and restored afterwards; the model is otherwise untouched.
        views: Camera names, e.g. ``("left", "right", "wrist")``.
        width, height: Image size of each view in pixels.
    """

    def __init__(self, model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int):
        self.views = tuple(views)
        if not self.views:
            raise RenderBackendError("a renderer needs at least one camera view")
        if width <= 0 or height <= 0:
            raise RenderBackendError(f"image size must be positive, got {width}x{height}")
        cams = []
        for v in self.views:
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, v)
            if cam_id < 0:
                raise RenderBackendError(f"scene has no camera named {v!r}")
            cam = mujoco.MjvCamera()
            cam.type = mujoco.mjtCamera.mjCAMERA_FIXED
            cam.fixedcamid = cam_id
            cams.append(cam)
        self.width, self.height = int(width), int(height)
        self._model = model
        self._cameras = cams
        n = len(self.views)
        self._tiles = [mujoco.MjrRect(k * self.width, 0, self.width, self.height) for k in range(n)]
        self._full = mujoco.MjrRect(0, 0, n * self.width, self.height)
        # bottom-up rows as OpenGL returns them; flipped while splitting into the views
        self._buffer = np.empty((self.height, n * self.width, 3), dtype=np.uint8)
        self._scene = mujoco.MjvScene(model, maxgeom=10000)
        self._option = mujoco.MjvOption()
        self._gl = None
        self._con = None
        vis = model.vis.global_
        saved = (int(vis.offwidth), int(vis.offheight))
        try:
            GLContext = _gl_context_class()
            if GLContext is None:
                raise RuntimeError("no OpenGL backend is available")
            self._gl = GLContext(n * self.width, self.height)
            self._gl.make_current()
            vis.offwidth = max(saved[0], n * self.width)
            vis.offheight = max(saved[1], self.height)
            self._con = mujoco.MjrContext(model, mujoco.mjtFontScale.mjFONTSCALE_150.value)
            mujoco.mjr_setBuffer(mujoco.mjtFramebuffer.mjFB_OFFSCREEN.value, self._con)
            if self._con.offWidth < n * self.width or self._con.offHeight < self.height:
                raise RuntimeError(
                    f"the offscreen framebuffer is {self._con.offWidth}x{self._con.offHeight}, "
                    f"{n * self.width}x{self.height} is needed"
                )
        except RenderBackendError:
            self.close()
            raise
        except Exception as exc:  # mujoco raises plain Exceptions from the GL layer
            self.close()
            raise _backend_error(exc) from exc
        finally:
            vis.offwidth, vis.offheight = saved

    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """``{view: uint8 (H, W, 3)}`` for the current state of ``data`` (new arrays)."""
        out = {v: np.empty((self.height, self.width, 3), dtype=np.uint8) for v in self.views}
        self.render_into(data, out)
        return out

    def render_into(self, data: mujoco.MjData, out: dict[str, np.ndarray]) -> None:
        """Render every view of the current state of ``data`` into ``out[view]``, a
        ``uint8 (H, W, 3)`` array (e.g. one frame of a preallocated episode video).

        ``data`` must be posed: at least ``mj_kinematics`` and ``mj_camlight`` run for its
        ``qpos``. Rows are top-down (image convention).
        """
        if self._con is None:
            raise RenderBackendError("render called after close")
        self._gl.make_current()
        m, scn, con, opt = self._model, self._scene, self._con, self._option
        cat = mujoco.mjtCatBit.mjCAT_ALL.value
        for cam, tile in zip(self._cameras, self._tiles):
            mujoco.mjv_updateScene(m, data, opt, None, cam, cat, scn)
            mujoco.mjr_render(tile, scn, con)
        mujoco.mjr_readPixels(self._buffer, None, self._full, con)
        top_down = self._buffer[::-1]
        w = self.width
        for k, v in enumerate(self.views):
            np.copyto(out[v], top_down[:, k * w : (k + 1) * w])

    def close(self) -> None:
        """Free the GL resources (idempotent)."""
        if self._con is not None:
            if self._gl is not None:
                self._gl.make_current()
            self._con.free()
            self._con = None
        if self._gl is not None:
            self._gl.free()
            self._gl = None

    def __enter__(self) -> MultiViewRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - safety net
        try:
            self.close()
        except Exception:
            pass
