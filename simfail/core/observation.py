"""Observations of a running scene, as the Gymnasium env and policies see them.

``default`` mode (the env's ``Dict`` observation, the policy interface's ``observation``):

- ``state``: ``(9,) float32``: seven arm joint angles [rad], two finger positions [m];
- ``tcp_pos``: ``(3,) float32``: tool centre point, world frame [m];
- ``objects``: ``(7 * n,) float32``: ``x y z qw qx qy qz`` of every tracked object, world frame;
- ``pixels`` (when asked): ``{view: uint8 (H, W, 3)}`` of the current frame.

``lerobot`` mode (LeRobot's gym-env keys): ``pixels`` ``{view: uint8 (H, W, 3)}`` and
``agent_pos`` ``(9,) float32`` (the ``state`` above).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simfail.core.sim import SimCore
from simfail.errors import UnknownNameError

OBS_MODES: tuple[str, ...] = ("default", "lerobot")


class Observer:
    """Builds observations of the live simulation; renders camera images at most once a frame.

    Args:
        object_names: Bodies of the ``objects`` entry, in order.
        views: Cameras of ``pixels``.
        width, height: Image size [px].
        pixels: Put the images in the observation (always on in ``lerobot`` mode).
        mode: One of :data:`OBS_MODES`.
        extra_views: Cameras rendered besides ``views`` (the env's ``render`` needs ``left``).
    """

    def __init__(self, object_names: list[str], views: tuple[str, ...], width: int, height: int, *,
                 pixels: bool = False, mode: str = "default", extra_views: tuple[str, ...] = ()):
        if mode not in OBS_MODES:
            raise UnknownNameError("observation mode", mode, OBS_MODES)
        self.object_names = list(object_names)
        self.views = tuple(views)
        self.width, self.height = int(width), int(height)
        self.mode = mode
        self.pixels = bool(pixels) or mode == "lerobot"
        draw = self.views if self.pixels else ()
        self.render_views = tuple(dict.fromkeys((*draw, *extra_views)))
        self._renderer = None
        self._model = None
        self._frames: dict[str, np.ndarray] | None = None
        self._key: Any = None

    def frames(self, core: SimCore, key: Any) -> dict[str, np.ndarray]:
        """Images of every rendered view for the current state; ``key`` identifies the frame
        (the same key returns the cached images)."""
        if self._renderer is None or self._model is not core.model:
            self.close()
            from simfail.render.renderer import MultiViewRenderer

            self._renderer = MultiViewRenderer(core.model, self.render_views, self.width, self.height)
            self._model = core.model
        if self._frames is None or self._key != key:
            self._frames = self._renderer.render(core.data)
            self._key = key
        return self._frames

    def observe(self, core: SimCore, key: Any) -> dict[str, Any]:
        state = core.robot_state().astype(np.float32)
        if self.mode == "lerobot":
            frames = self.frames(core, key)
            return {"pixels": {v: frames[v].copy() for v in self.views}, "agent_pos": state}
        d = core.data
        objects = np.concatenate([np.concatenate([d.body(n).xpos, d.body(n).xquat]) for n in self.object_names])
        obs: dict[str, Any] = {
            "state": state,
            "tcp_pos": core.tcp_pos().astype(np.float32),
            "objects": objects.astype(np.float32),
        }
        if self.pixels:
            frames = self.frames(core, key)
            obs["pixels"] = {v: frames[v].copy() for v in self.views}
        return obs

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
        self._renderer, self._model, self._frames, self._key = None, None, None, None
