"""Render backends by name (``render.backend``): the renderer classes the render worker uses.

``egl`` (the default)
    :class:`~simfail.render.renderer.MultiViewRenderer`: OpenGL rasterization through EGL
    (``MUJOCO_GL=egl``: Mesa llvmpipe on a CPU, the vendor driver on a GPU), one state per call.
``warp``
    :class:`~simfail.render.warp_renderer.WarpBatchRenderer`: MuJoCo Warp ray tracing, many
    recorded states per call (optional extra ``simfail[warp]``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from simfail.errors import ConfigError

if TYPE_CHECKING:  # this module stays light: simfail.config reads BACKEND_NAMES
    import mujoco

__all__ = ["BACKENDS", "BACKEND_NAMES", "backend_names", "make_renderer"]


def _egl(model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int):
    from simfail.render.renderer import MultiViewRenderer

    return MultiViewRenderer(model, views, width, height)


#: Worlds per MuJoCo Warp call in the render worker: the frames of a group's episodes are queued
#: and drawn this many at a time (a pick/place group at 10 fps has about 400-1,000 new frames).
WARP_BATCH = 256


def _warp(model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int):
    from simfail.render.warp_renderer import WarpBatchRenderer

    return WarpBatchRenderer(model, views, width, height, batch=WARP_BATCH)


#: ``render.backend`` name -> renderer factory ``(model, views, width, height)``.
BACKENDS: dict[str, Callable] = {"egl": _egl, "warp": _warp}

#: The allowed ``render.backend`` values, default first.
BACKEND_NAMES: tuple[str, ...] = tuple(BACKENDS)


def backend_names() -> list[str]:
    return sorted(BACKENDS)


def make_renderer(backend: str, model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int):
    """A renderer of ``backend`` for ``model`` (raises RenderBackendError if it cannot start)."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown render backend {backend!r}; known: {', '.join(backend_names())}")
    return BACKENDS[backend](model, tuple(views), int(width), int(height))
