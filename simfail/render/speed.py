"""``simfail render-speed``: render speed of backend/preset pairs on the same recorded frames.

``simfail render-speed task=pick_place size=256 frames=81 runs=[egl:fast,egl:lab,warp:fast]``
simulates group 0's expert (physics only), then renders its first ``frames`` recorded
``sim.qpos`` rows with each ``backend:preset`` pair on one thread, after one warm-up call
(which for ``warp`` includes compiling its kernels), and prints one table row per pair in
view-frames per second (one view-frame = one view of one recorded state). Used for the
numbers in docs/rendering.md; the whole pipeline's speed is measured by ``simfail bench``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError

__all__ = ["RenderSpeedConfig", "measure", "run"]


def _f(default: Any = None, help: str = "", example: str = "", factory: Any = None, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    return field(default_factory=factory, metadata=md) if factory is not None else field(default=default, metadata=md)


@dataclass
class RenderSpeedConfig:
    """``simfail render-speed``: which scene, image size, frames and backend:preset pairs."""

    task: str = _f("pick_place", "task whose group-0 expert is rendered (see simfail list)", "task=pour")
    size: int = _f(256, "image width and height in pixels (even)", "size=128", range=(16, 1024))
    frames: int = _f(81, "recorded states rendered per pair (at most the expert's length)", "frames=40",
                     range=(2, None))
    runs: list[str] = _f(factory=lambda: ["egl:fast", "egl:lab"],
                         help="backend:preset pairs to time, in order (see simfail generate --help)",
                         example="runs=[egl:fast,warp:lab]")

    def validate(self) -> None:
        from simfail.task_registry import task_names
        from simfail.errors import UnknownNameError
        from simfail.render.backends import BACKEND_NAMES
        from simfail.render.presets import PRESET_NAMES

        if self.task not in task_names():
            raise UnknownNameError("task", self.task, task_names())
        if self.size % 2:
            raise ConfigError(f"size must be an even number of pixels, got {self.size}")
        if not self.runs:
            raise ConfigError("runs needs at least one backend:preset pair, e.g. runs=[egl:fast]")
        for r in self.runs:
            backend, sep, preset = str(r).partition(":")
            if not sep or backend not in BACKEND_NAMES or preset not in PRESET_NAMES:
                raise ConfigError(f"runs: {r!r} is not backend:preset with backend one of {list(BACKEND_NAMES)} "
                                  f"and preset one of {list(PRESET_NAMES)}")

    def pairs(self) -> list[tuple[str, str]]:
        return [tuple(str(r).split(":", 1)) for r in self.runs]  # type: ignore[misc]


def measure(task_name: str, size: int, frames: int, runs: list[tuple[str, str]]) -> list[dict]:
    """One dict per ``(backend, preset)`` pair: view-frames rendered, seconds, view-frames/s."""
    import mujoco

    from simfail.config import GenerateConfig, RenderConfig
    from simfail.core.builder import build_scene
    from simfail.core.task import get_task
    from simfail.generate import _stage, generate_group
    from simfail.render.backends import make_renderer
    from simfail.render.presets import render_model
    from simfail.render.worker import render_states

    task = get_task(task_name)
    cfg = GenerateConfig(task=task_name, render=RenderConfig(width=size, height=size), progress=False)
    res = generate_group(task, cfg, 0, render=False)
    qpos = res.episodes[0].columns["sim.qpos"][:frames]
    scene = build_scene(task, res.seed, _stage(cfg))
    rows = []
    for backend, preset in runs:
        model = render_model(scene.model, scene.xml, preset)
        data = mujoco.MjData(model)
        out = {v: np.empty((len(qpos), size, size, 3), np.uint8) for v in VIEWS}
        renderer = make_renderer(backend, model, VIEWS, size, size)
        try:
            render_states(renderer, model, data, qpos[:2], out)  # warm-up (warp: kernel compile)
            t0 = time.perf_counter()
            render_states(renderer, model, data, qpos, out)
            dt = time.perf_counter() - t0
        finally:
            renderer.close()
        rows.append({"backend": backend, "preset": preset, "size": size, "view_frames": len(qpos) * len(VIEWS),
                     "seconds": dt, "view_frames_per_s": len(qpos) * len(VIEWS) / dt})
    return rows


def run(cfg: RenderSpeedConfig) -> int:
    rows = measure(cfg.task, cfg.size, cfg.frames, cfg.pairs())
    print(f"{'backend':8} {'preset':6} {'size':>5} {'view-frames':>11} {'s':>7} {'view-frames/s':>13}")
    for r in rows:
        print(f"{r['backend']:8} {r['preset']:6} {r['size']:5d} {r['view_frames']:11d} {r['seconds']:7.2f} "
              f"{r['view_frames_per_s']:13.1f}")
    return 0
