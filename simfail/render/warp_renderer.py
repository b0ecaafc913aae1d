"""Batch ray-traced rendering of recorded states on MuJoCo Warp (``render.backend=warp``).

Where :class:`~simfail.render.renderer.MultiViewRenderer` rasterizes one state at a time,
:class:`WarpBatchRenderer` renders ``batch`` recorded states per call: each state is one Warp
*world*. A call sets every world's ``qpos`` from the recorded ``sim.qpos`` rows, runs forward
kinematics (``mujoco_warp.fwd_kinematics``: body, geom, camera and light poses), refits the
scene BVH and ray-traces every view of every world in one kernel launch. Besides RGB it gives
planar depth (metres from the camera plane) and MuJoCo-style segmentation
(``(object id, object type)`` per pixel, ``(-1, -1)`` for background).

It runs on whatever device Warp picks: a CUDA GPU when there is one, else Warp's CPU device
(correct but slow, see docs/rendering.md). The first render in a process compiles Warp's
kernels (cached on disk under ``~/.cache/warp``).

Differences from the OpenGL renderer, measured in ``tests/test_warp_renderer.py`` and
``docs/rendering.md``: one ray per pixel centre (no rasterizer edge rules) so object outlines
differ by single pixels; ``qpos`` is float32 on the device; Warp's lighting model is not
OpenGL's fixed pipeline (brighter diffuse shading), so RGB agrees only up to a measured PSNR.
"""

from __future__ import annotations

import threading

import mujoco
import numpy as np

from simfail.errors import RenderBackendError

__all__ = ["WarpBatchRenderer", "import_warp"]

_INIT_LOCK = threading.Lock()


def import_warp():
    """``(warp, mujoco_warp)``, or one clear error naming the optional extra."""
    try:
        import warp as wp

        # before Warp initializes: no banner and no per-module load lines, warnings only
        wp.config.log_level = getattr(wp, "LOG_WARNING", 30)
        import mujoco_warp as mjw
    except ImportError as exc:
        raise RenderBackendError(
            f"render.backend=warp needs MuJoCo Warp ({exc}); install the optional extra: pip install 'simfail[warp]'"
        ) from exc
    with _INIT_LOCK:
        wp.init()
    return wp, mjw


def unpack_rgb(packed: np.ndarray) -> np.ndarray:
    """``uint8 (..., 3)`` RGB from Warp's packed ``uint32`` pixels (``0xAARRGGBB``)."""
    p = packed.astype(np.uint32, copy=False)
    return np.stack([(p >> 16) & 0xFF, (p >> 8) & 0xFF, p & 0xFF], axis=-1).astype(np.uint8)


class WarpBatchRenderer:
    """Renders named cameras of one model for ``batch`` states per call.

    The same small interface as :class:`~simfail.render.renderer.MultiViewRenderer`
    (``views``, ``width``, ``height``, ``render``, ``render_into``, ``close``) plus
    :meth:`render_batch` / :meth:`render_states_into` for many recorded states at once.

    Args:
        model: The compiled scene to draw (the preset's render model).
        views: Camera names, e.g. ``("left", "right", "wrist")``.
        width, height: Image size of each view in pixels.
        batch: Worlds per kernel launch (states rendered per call); longer inputs are split.
        depth, segmentation: Also compute depth / segmentation (RGB is always computed).
        shadows: Ray-traced shadows (on for the ``lab`` preset).
        skybox: Shade background rays with the model's skybox texture, if it has one.
        device: A Warp device name (``"cpu"``, ``"cuda:0"``); ``None``: Warp's default.
    """

    def __init__(self, model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int, *,
                 batch: int = 32, depth: bool = False, segmentation: bool = False,
                 shadows: bool | None = None, skybox: bool | None = None, device: str | None = None):
        self.views = tuple(views)
        if not self.views:
            raise RenderBackendError("a renderer needs at least one camera view")
        if width <= 0 or height <= 0:
            raise RenderBackendError(f"image size must be positive, got {width}x{height}")
        if batch < 1:
            raise RenderBackendError(f"batch must be >= 1, got {batch}")
        cam_ids = []
        for v in self.views:
            cam_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, v)
            if cam_id < 0:
                raise RenderBackendError(f"scene has no camera named {v!r}")
            cam_ids.append(cam_id)
        self.width, self.height, self.batch = int(width), int(height), int(batch)
        self.depth, self.segmentation = bool(depth), bool(segmentation)
        wp, mjw = import_warp()
        self._wp, self._mjw = wp, mjw
        if shadows is None:  # the model asks for shadows when any light casts one
            shadows = bool(model.vis.quality.shadowsize > 0 and np.any(model.light_castshadow))
        has_skybox = bool(np.any(model.tex_type == mujoco.mjtTexture.mjTEXTURE_SKYBOX))
        skybox = has_skybox if skybox is None else (skybox and has_skybox)
        self._nq = model.nq
        self._model = model
        try:
            with wp.ScopedDevice(device):
                self._m = mjw.put_model(model)
                self._d = mjw.make_data(model, nworld=self.batch)
                self._rc = mjw.create_render_context(
                    model, nworld=self.batch, cam_res=(self.width, self.height), render_rgb=True,
                    render_depth=self.depth, render_seg=self.segmentation, cam_active=sorted(set(cam_ids)),
                    use_shadows=bool(shadows), render_skybox=skybox)
                self._device = wp.get_device()
        except RenderBackendError:
            raise
        except Exception as exc:  # Warp raises plain exceptions for device and model problems
            raise RenderBackendError(f"MuJoCo Warp could not set up rendering: {exc}") from exc
        # rendered camera k of the context is camera cam_id_map[k] of the model
        order = [int(c) for c in self._rc.cam_id_map.numpy()]
        self._index = {v: order.index(c) for v, c in zip(self.views, cam_ids)}
        self._pixels = self.width * self.height
        self._rgb_adr = self._rc.rgb_adr.numpy()
        self._depth_adr = self._rc.depth_adr.numpy()
        self._seg_adr = self._rc.seg_adr.numpy()
        self._closed = False

    # -- many states per call -------------------------------------------------------------
    def _launch(self, qpos: np.ndarray) -> None:
        """Pose ``len(qpos) <= batch`` worlds (the rest repeat the last row) and render them."""
        wp, mjw = self._wp, self._mjw
        rows = np.empty((self.batch, self._nq), dtype=np.float32)
        rows[: len(qpos)] = qpos
        rows[len(qpos):] = qpos[-1]
        with wp.ScopedDevice(self._device):
            self._d.qpos.assign(rows)
            mjw.fwd_kinematics(self._m, self._d)
            mjw.refit_bvh(self._m, self._d, self._rc)
            mjw.render(self._m, self._d, self._rc)
            wp.synchronize_device(self._device)

    def _image(self, buf: np.ndarray, adr: np.ndarray, view: str, n: int) -> np.ndarray:
        k = self._index[view]
        a = int(adr[k])
        flat = buf[:n, a : a + self._pixels]
        return flat.reshape((n, self.height, self.width) + flat.shape[2:])

    def render_states_into(self, qpos: np.ndarray, out: dict[str, np.ndarray],
                           depth: dict[str, np.ndarray] | None = None,
                           seg: dict[str, np.ndarray] | None = None) -> None:
        """Render row ``f`` of ``qpos`` ``(T, nq)`` into ``out[view][f]`` (``uint8 (T, H, W, 3)``),
        and when given (and enabled) ``depth[view][f]`` (``float32 (T, H, W)``, metres) and
        ``seg[view][f]`` (``int32 (T, H, W, 2)``: object id, ``mjtObj`` type; -1 background).
        Rows are top-down (image convention)."""
        if self._closed:
            raise RenderBackendError("render called after close")
        qpos = np.asarray(qpos, dtype=np.float64)
        if qpos.ndim != 2 or qpos.shape[1] != self._nq:
            raise RenderBackendError(f"qpos must be (T, {self._nq}), got {qpos.shape}")
        if depth is not None and not self.depth:
            raise RenderBackendError("this renderer was created with depth=False")
        if seg is not None and not self.segmentation:
            raise RenderBackendError("this renderer was created with segmentation=False")
        for s in range(0, len(qpos), self.batch):
            chunk = qpos[s : s + self.batch]
            n = len(chunk)
            self._launch(chunk)
            rgb = self._rc.rgb_data.numpy()
            for v in self.views:
                out[v][s : s + n] = unpack_rgb(self._image(rgb, self._rgb_adr, v, n))
            if depth is not None:
                buf = self._rc.depth_data.numpy()
                for v in self.views:
                    depth[v][s : s + n] = self._image(buf, self._depth_adr, v, n)
            if seg is not None:
                buf = self._rc.seg_data.numpy()
                for v in self.views:
                    seg[v][s : s + n] = self._image(buf, self._seg_adr, v, n)

    def render_batch(self, qpos: np.ndarray) -> dict[str, dict[str, np.ndarray]]:
        """``{"rgb": {view: (T, H, W, 3) uint8}, "depth": {...}, "seg": {...}}`` for the rows
        of ``qpos`` (depth and seg only when enabled; new arrays)."""
        n, h, w = len(qpos), self.height, self.width
        out = {"rgb": {v: np.empty((n, h, w, 3), np.uint8) for v in self.views}}
        if self.depth:
            out["depth"] = {v: np.empty((n, h, w), np.float32) for v in self.views}
        if self.segmentation:
            out["seg"] = {v: np.empty((n, h, w, 2), np.int32) for v in self.views}
        self.render_states_into(qpos, out["rgb"], out.get("depth"), out.get("seg"))
        return out

    # -- the MultiViewRenderer interface (one state) ---------------------------------------
    def render(self, data: mujoco.MjData) -> dict[str, np.ndarray]:
        """``{view: uint8 (H, W, 3)}`` for ``data.qpos`` (new arrays)."""
        return {v: a[0] for v, a in self.render_batch(data.qpos[None])["rgb"].items()}

    def render_into(self, data: mujoco.MjData, out: dict[str, np.ndarray]) -> None:
        """Render every view of ``data.qpos`` into ``out[view]`` (``uint8 (H, W, 3)``).
        Only ``qpos`` is read: the kinematics run on the device."""
        self.render_states_into(data.qpos[None], {v: out[v][None] for v in self.views})

    def close(self) -> None:
        """Drop the device arrays (idempotent)."""
        self._closed = True
        self._m = self._d = self._rc = None

    def __enter__(self) -> WarpBatchRenderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
