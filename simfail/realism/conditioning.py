"""Structure maps rendered from the simulator: depth, segmentation and edges per frame.

The scene of a group is rebuilt from the dataset's ``meta/simfail.json`` (task and scene seed
of the group) with :func:`simfail.core.builder.build_scene`, posed per frame from the stored
``sim.qpos`` column (kinematics only, as the generator renders), and drawn with
``mujoco.Renderer``'s depth and segmentation modes for every camera view. These are cheap
render passes: no physics runs.

Segmentation labels: ``0`` background (table, floor, anything static), ``1`` the robot,
``2 + k`` the ``k``-th object of the layout (:attr:`SceneConditioner.labels` names them).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from simfail.core.episode import VIEWS
from simfail.errors import DatasetFormatError, RenderBackendError

__all__ = ["Conditioning", "SceneConditioner", "control_frames", "CONTROLS"]

#: Control signals the pipeline can be given (see :func:`control_frames`).
CONTROLS = ("depth", "edges", "seg")

BACKGROUND, ROBOT = 0, 1


@dataclass
class Conditioning:
    """Structure of one episode's camera view: ``depth`` float32 ``(T, H, W)`` [m],
    ``seg`` int16 ``(T, H, W)`` labels, ``edges`` bool ``(T, H, W)`` (depth and label
    discontinuities)."""

    depth: np.ndarray
    seg: np.ndarray
    edges: np.ndarray

    @property
    def length(self) -> int:
        return int(self.depth.shape[0])


def _edges(depth: np.ndarray, seg: np.ndarray) -> np.ndarray:
    """Geometric edges: label changes and depth discontinuities (relative jump > 2%)."""
    seg_e = np.zeros(seg.shape, dtype=bool)
    seg_e[..., :, 1:] |= seg[..., :, 1:] != seg[..., :, :-1]
    seg_e[..., 1:, :] |= seg[..., 1:, :] != seg[..., :-1, :]
    # second differences of log depth: ~0 on planes seen in perspective, large at a jump
    d = np.log(np.maximum(depth, 1e-3))
    depth_e = np.zeros(depth.shape, dtype=bool)
    dx = np.abs(d[..., :, 2:] - 2 * d[..., :, 1:-1] + d[..., :, :-2]) > 0.05
    dy = np.abs(d[..., 2:, :] - 2 * d[..., 1:-1, :] + d[..., :-2, :]) > 0.05
    depth_e[..., :, 1:-1] |= dx
    depth_e[..., 1:-1, :] |= dy
    return seg_e | depth_e


def control_frames(cond: Conditioning, control: str = "depth") -> np.ndarray:
    """uint8 ``(T, H, W, 3)`` control video of one view.

    ``depth``: near = bright, normalised by robust near/far bounds over the whole clip (not per
    frame, so brightness does not flicker). ``edges``: white geometric edges on black.
    ``seg``: a fixed colour per label.
    """
    if control == "depth":
        d = cond.depth
        near, far = np.quantile(d, 0.01), np.quantile(d, 0.99)
        inv = 1.0 / np.maximum(d, 1e-3)
        lo, hi = 1.0 / max(far, 1e-3), 1.0 / max(near, 1e-3)
        v = np.clip((inv - lo) / max(hi - lo, 1e-6), 0.0, 1.0)
        g = (v * 255.0 + 0.5).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    if control == "edges":
        g = (np.asarray(cond.edges) * 255).astype(np.uint8)
        return np.repeat(g[..., None], 3, axis=-1)
    if control == "seg":
        rng = np.random.default_rng(7)
        palette = rng.integers(40, 255, size=(256, 3), dtype=np.uint8)
        palette[BACKGROUND] = (0, 0, 0)
        palette[ROBOT] = (255, 255, 255)
        return palette[np.asarray(cond.seg) % 256]
    raise ValueError(f"unknown control {control!r}; known: {', '.join(CONTROLS)}")


class SceneConditioner:
    """Renders depth / segmentation / edges of one counterfactual group's scene.

    Args:
        meta: ``meta/simfail.json`` of the dataset.
        group_id: The group whose scene to rebuild.
        height, width: Image size of the dataset's views.

    Raises:
        DatasetFormatError: the metadata lacks the group's task or seed.
        RenderBackendError: no OpenGL context could be created.
    """

    def __init__(self, meta: dict[str, Any], group_id: int, height: int, width: int,
                 views: tuple[str, ...] = VIEWS) -> None:
        os.environ.setdefault("MUJOCO_GL", "egl")
        import mujoco

        from simfail.core.builder import build_scene
        from simfail.core.robot import RobotIndex
        from simfail.core.scene import StageConfig
        from simfail.core.task import get_task

        entry = (meta.get("groups") or {}).get(str(int(group_id)))
        if not isinstance(entry, dict) or "seed" not in entry:
            raise DatasetFormatError(
                f"meta/simfail.json has no task/seed for group {group_id}: cannot rebuild its scene to render "
                "depth and segmentation"
            )
        task_name = entry.get("task") or meta.get("task")
        task = get_task(str(task_name))
        self.scene = build_scene(task, int(entry["seed"]), StageConfig(width=width, height=height))
        self.layout = self.scene.layout
        self.model = self.scene.model
        self.views = tuple(views)
        self.height, self.width = int(height), int(width)
        m = self.model
        self._mj = mujoco
        self.data = mujoco.MjData(m)
        # geom -> label
        robot_bodies = set(RobotIndex.from_model(m).body_ids.tolist())
        obj_label = {}
        for k, o in enumerate(self.layout.objects):
            try:
                obj_label[int(m.body(o.name).id)] = 2 + k
            except KeyError:
                continue
        labels = np.zeros(m.ngeom, dtype=np.int16)
        for g in range(m.ngeom):
            b = int(m.geom_bodyid[g])
            if b in robot_bodies:
                labels[g] = ROBOT
                continue
            lab = BACKGROUND
            while b > 0:  # walk up to the object's body (objects may have child bodies)
                if b in obj_label:
                    lab = obj_label[b]
                    break
                b = int(m.body_parentid[b])
            labels[g] = lab
        self.geom_label = labels
        #: label -> name (``background``, ``robot``, object names)
        self.labels = ["background", "robot"] + [o.name for o in self.layout.objects]
        try:
            self._renderer = mujoco.Renderer(m, height=self.height, width=self.width)
        except Exception as exc:  # mujoco raises plain Exceptions from the GL layer
            raise RenderBackendError(
                f"could not create an OpenGL context with MUJOCO_GL={os.environ.get('MUJOCO_GL')}: {exc}"
            ) from exc

    # ------------------------------------------------------------------ labels

    def labels_of(self, names: list[str] | tuple[str, ...]) -> set[int]:
        """Segmentation labels of failure-event objects: roles (``object``, ``target``,
        ``obstacle``, ``distractor0`` ...), object names, or ``robot``."""
        out: set[int] = set()
        for n in names:
            if n == "robot":
                out.add(ROBOT)
                continue
            name = self.layout.roles.get(n, n)
            if name in self.labels[2:]:
                out.add(self.labels.index(name))
        return out

    # ------------------------------------------------------------------ rendering

    def pose(self, qpos: np.ndarray) -> None:
        nq = self.model.nq
        q = np.asarray(qpos, dtype=np.float64)
        if q.shape[-1] < nq:
            raise DatasetFormatError(f"sim.qpos has {q.shape[-1]} entries, the rebuilt scene needs {nq}")
        self.data.qpos[:] = q[:nq]  # task=all datasets zero-pad qpos to the widest task
        self._mj.mj_kinematics(self.model, self.data)
        self._mj.mj_camlight(self.model, self.data)

    def render(self, qpos: np.ndarray, *, rgb: bool = False) -> dict[str, Conditioning] | tuple[dict[str, Conditioning], dict[str, np.ndarray]]:
        """Conditioning of every view for ``qpos`` ``(T, nq)``; with ``rgb=True`` also the
        colour frames ``{view: uint8 (T, H, W, 3)}`` (to check the scene was rebuilt right)."""
        qpos = np.atleast_2d(np.asarray(qpos))
        t = qpos.shape[0]
        h, w = self.height, self.width
        depth = {v: np.empty((t, h, w), np.float32) for v in self.views}
        seg = {v: np.empty((t, h, w), np.int16) for v in self.views}
        colour = {v: np.empty((t, h, w, 3), np.uint8) for v in self.views} if rgb else {}
        r = self._renderer
        geom_type = int(self._mj.mjtObj.mjOBJ_GEOM)
        for i in range(t):
            self.pose(qpos[i])
            for v in self.views:
                r.update_scene(self.data, camera=v)
                if rgb:
                    colour[v][i] = r.render()
                r.enable_depth_rendering()
                depth[v][i] = r.render()
                r.disable_depth_rendering()
                r.enable_segmentation_rendering()
                s = r.render()
                r.disable_segmentation_rendering()
                ids, types = s[..., 0], s[..., 1]
                lab = np.zeros((h, w), np.int16)
                is_geom = (types == geom_type) & (ids >= 0)
                lab[is_geom] = self.geom_label[ids[is_geom]]
                seg[v][i] = lab
        out = {v: Conditioning(depth[v], seg[v], _edges(depth[v], seg[v])) for v in self.views}
        return (out, colour) if rgb else out

    def close(self) -> None:
        self._renderer.close()

    def __enter__(self) -> SceneConditioner:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
