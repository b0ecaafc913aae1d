"""``simfail render-preview``: a side-by-side picture of render presets (rows) and views
(columns) of one scene at its initial state.

``simfail render-preview out=docs/images/lab_preset.png size=256`` draws group 0's pick/place
scene with the ``egl`` backend, one row per preset (``presets=[fast,lab]``), and writes a PNG
(atomically: a temporary file in the same folder, then renamed; missing folders are created).
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError
from simfail.render.backends import BACKEND_NAMES

__all__ = ["RenderPreviewConfig", "preview", "run"]


def _f(default: Any = None, help: str = "", example: str = "", factory: Any = None, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    return field(default_factory=factory, metadata=md) if factory is not None else field(default=default, metadata=md)


@dataclass
class RenderPreviewConfig:
    """``simfail render-preview``: scene, image size, presets, backend and the PNG to write."""

    task: str = _f("pick_place", "task whose group-0 scene is drawn (see simfail list)", "task=pour")
    size: int = _f(256, "width and height of each view's image in pixels (even)", "size=128", range=(16, 1024))
    presets: list[str] = _f(factory=lambda: ["fast", "lab"], help="render presets, one row each, top to bottom",
                            example="presets=[lab]")
    backend: str = _f("egl", "renderer (as render.backend of simfail generate)", "backend=warp",
                      choices=list(BACKEND_NAMES))
    out: str = _f("lab_preset.png", "PNG file to write (replaced atomically; missing folders are created)", "out=preview.png")

    def validate(self) -> None:
        from simfail.task_registry import task_names
        from simfail.errors import UnknownNameError
        from simfail.render.presets import PRESET_NAMES

        if self.task not in task_names():
            raise UnknownNameError("task", self.task, task_names())
        if self.size % 2:
            raise ConfigError(f"size must be an even number of pixels, got {self.size}")
        if not self.presets:
            raise ConfigError("presets needs at least one preset, e.g. presets=[lab]")
        for p in self.presets:
            if p not in PRESET_NAMES:
                raise UnknownNameError("render preset", str(p), list(PRESET_NAMES))
        if not self.out.lower().endswith(".png"):
            raise ConfigError(f"out must be a .png file, got {self.out!r}")
        folder = os.path.dirname(os.path.abspath(self.out))
        while not os.path.exists(folder):  # run() creates the missing folders
            folder = os.path.dirname(folder)
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise ConfigError(f"out: cannot write to {folder}")


def preview(task_name: str, size: int, presets: list[str], backend: str = "egl") -> np.ndarray:
    """``uint8 (len(presets) * size, len(VIEWS) * size, 3)``: row ``i`` is preset ``presets[i]``."""
    import mujoco

    from simfail.core.builder import build_scene
    from simfail.core.scene import StageConfig
    from simfail.core.task import get_task
    from simfail.render.backends import make_renderer
    from simfail.render.presets import render_model

    scene = build_scene(get_task(task_name), 0, StageConfig(size, size))
    rows = []
    for preset in presets:
        model = render_model(scene.model, scene.xml, preset)
        data = mujoco.MjData(model)
        data.qpos[:] = scene.qpos0
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        r = make_renderer(backend, model, VIEWS, size, size)
        try:
            im = r.render(data)
        finally:
            r.close()
        rows.append(np.concatenate([im[v] for v in VIEWS], axis=1))
    return np.concatenate(rows, axis=0)


def run(cfg: RenderPreviewConfig) -> int:
    import imageio.v3 as iio

    img = preview(cfg.task, cfg.size, list(cfg.presets), cfg.backend)
    folder = os.path.dirname(os.path.abspath(cfg.out))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".png", dir=folder)
    os.close(fd)
    try:
        iio.imwrite(tmp, img)
        os.replace(tmp, cfg.out)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {cfg.out} ({img.shape[1]}x{img.shape[0]}: views {', '.join(VIEWS)}; rows {', '.join(cfg.presets)})")
    return 0
