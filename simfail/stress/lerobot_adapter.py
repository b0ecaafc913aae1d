"""``lerobot_reward``: a LeRobot reward model (``lerobot.rewards``: SARM, Robometer, ...) as a
simfail stress/benchmark model.

LeRobot's reward-model interface (``lerobot.rewards.pretrained.PreTrainedRewardModel``) is a
``torch.nn.Module`` with a class method ``from_pretrained(path)`` and
``compute_reward(batch: dict[str, Tensor]) -> Tensor`` returning one reward per batch element,
shape ``(B,)``. This adapter loads such a model from a LOCAL folder only and calls it with one
batch element per frame of an episode:

============================== ===================================================================
batch key                      value
============================== ===================================================================
``observation.images.<view>``  ``float32 (T, 3, H, W)`` in ``[0, 1]`` (LeRobot's channel-first
                               image convention), one key per view in ``views``
``task``                       ``list[str]`` of length ``T``, the episode's instruction
``index``                      ``int64 (T,)`` frame indices ``0..T-1``
``timestamp``                  ``float32 (T,)`` seconds
============================== ===================================================================

The returned ``(T,)`` tensor is the dense reward (values checked against ``value_range``;
``None`` = any finite values). The batch is given raw: a model whose LeRobot pipeline needs
its pre-processor (text or video embeddings computed outside the model) must be wrapped by a
class that applies it inside ``compute_reward``.

``model.path`` must be an existing local folder (a ``from_pretrained`` checkpoint: weights and
``config.json``); URLs and hub ids are refused, and the Hugging Face hub is put in offline mode
while loading, so nothing is ever downloaded. ``model.cls`` is the reward class as
``package.module:Class``; without it the class is looked up from ``config.json``'s ``type``
through ``lerobot.rewards.factory.get_reward_model_class`` (needs lerobot installed).
The score cache keys the model by the bytes of every file in ``path``
(:mod:`simfail.stress.identity`).
"""

from __future__ import annotations

import importlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError, RewardModelError

from .protocol import EpisodeInput, ModelRequirements, register_model

__all__ = ["LeRobotRewardModel", "check_local_path"]

_URL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def check_local_path(path: Any) -> Path:
    """The checkpoint folder, or ConfigError: a URL, a hub id (``org/name`` that is not a
    folder here) or a missing folder are refused with one line."""
    if path in (None, ""):
        raise ConfigError("lerobot_reward: model.path=DIR is required (a local from_pretrained folder)")
    text = str(path)
    if _URL.match(text) or text.startswith(("hf:", "hf.co/", "huggingface.co/")):
        raise ConfigError(f"lerobot_reward: model.path={text!r} is a URL; only local folders are loaded (download it first)")
    p = Path(text).expanduser()
    if not p.exists():
        if re.fullmatch(r"[\w.-]+/[\w.-]+", text):
            raise ConfigError(f"lerobot_reward: model.path={text!r} looks like a hub id and is not a local folder; "
                              "only local folders are loaded (download it first)")
        raise ConfigError(f"lerobot_reward: model.path={text!r} does not exist")
    if not p.is_dir():
        raise ConfigError(f"lerobot_reward: model.path={text!r} is not a folder (a from_pretrained checkpoint folder)")
    return p


def _resolve_class(cls: str | None, path: Path) -> Any:
    if cls:
        module, sep, attr = str(cls).partition(":")
        if not sep or not module or not attr:
            raise ConfigError(f"lerobot_reward: model.cls must be package.module:Class, got {cls!r}")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:
            raise ConfigError(f"lerobot_reward: cannot import {module!r}: {exc}") from exc
        except AttributeError as exc:
            raise ConfigError(f"lerobot_reward: {module!r} has no {attr!r}") from exc
    cfg_file = path / "config.json"
    try:
        kind = json.loads(cfg_file.read_text()).get("type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"lerobot_reward: no model.cls given and {cfg_file} cannot be read: {exc}") from exc
    try:
        from lerobot.rewards.factory import get_reward_model_class  # type: ignore[import-not-found]
    except ImportError as exc:
        raise ConfigError(f"lerobot_reward: {cfg_file} names type {kind!r}, but lerobot is not installed; "
                          "pass model.cls=package.module:Class") from exc
    try:
        return get_reward_model_class(str(kind))
    except ValueError as exc:
        raise ConfigError(f"lerobot_reward: {exc}") from exc


class _Offline:
    """Hugging Face hub offline while loading (nothing downloaded even if a class tries)."""

    KEYS = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")

    def __enter__(self) -> None:
        self.old = {k: os.environ.get(k) for k in self.KEYS}
        for k in self.KEYS:
            os.environ[k] = "1"

    def __exit__(self, *exc: Any) -> None:
        for k, v in self.old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@register_model("lerobot_reward")
class LeRobotRewardModel:
    """Args:
        path: local ``from_pretrained`` folder of the reward model (required).
        cls: the reward class as ``package.module:Class`` (default: from ``config.json``).
        views: camera views given as ``observation.images.<view>``.
        frame_size: ``[height, width]`` frames are resized to (``None``: as rendered).
        max_frames: at most this many frames per episode (uniform in time; ``None``: all).
        value_range: declared range of the rewards, ``[low, high]`` or ``None``.
        chunk: frames per ``compute_reward`` call.
        device: torch device.
    """

    name = "lerobot_reward"

    def __init__(self, path: str | None = None, cls: str | None = None, views: Any = ("left",),
                 frame_size: Any = None, max_frames: int | None = None, value_range: Any = (0.0, 1.0),
                 chunk: int = 64, device: str = "cpu") -> None:
        root = check_local_path(path)
        if isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 1:
            raise ConfigError(f"lerobot_reward: chunk must be a positive integer, got {chunk!r}")
        views = (views,) if isinstance(views, str) else tuple(views)
        klass = _resolve_class(cls, root)
        if not hasattr(klass, "from_pretrained"):
            raise ConfigError(f"lerobot_reward: {klass!r} has no from_pretrained(path)")
        try:
            import torch  # noqa: F401
        except ImportError as exc:
            raise ConfigError("lerobot_reward needs torch (pip install 'simfail[learn]')") from exc
        with _Offline():
            try:
                self.model = klass.from_pretrained(str(root))
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise ConfigError(f"lerobot_reward: cannot load {root} with {klass.__name__}: {exc}") from exc
        if not callable(getattr(self.model, "compute_reward", None)):
            raise ConfigError(f"lerobot_reward: {klass.__name__} has no compute_reward(batch)")
        if hasattr(self.model, "eval"):
            self.model.eval()
        self.device = device
        if hasattr(self.model, "to"):
            self.model.to(device)
        self.chunk = chunk
        self.cls_name = f"{klass.__module__}:{klass.__qualname__}"
        self.requirements = ModelRequirements(
            views=views, frame_size=tuple(frame_size) if frame_size is not None else None, max_frames=max_frames,
            value_range=tuple(value_range) if value_range is not None else None,
        )

    def identity(self) -> dict[str, Any]:
        """The class loaded (the weights are hashed from ``path`` by the caller)."""
        return {"class": self.cls_name}

    def _batch(self, ep: EpisodeInput, lo: int, hi: int) -> dict[str, Any]:
        import torch

        batch: dict[str, Any] = {}
        for view in self.requirements.views:
            if view not in ep.frames:
                raise RewardModelError(f"lerobot_reward: episode {ep.episode_id!r} has no {view!r} view")
            frames = np.asarray(ep.frames[view][lo:hi], dtype=np.float32) / 255.0
            batch[f"observation.images.{view}"] = torch.from_numpy(np.ascontiguousarray(frames.transpose(0, 3, 1, 2))).to(self.device)
        n = hi - lo
        times = ep.frame_times[lo:hi] if ep.frame_times is not None else np.arange(lo, hi) / max(ep.fps, 1e-9)
        batch["task"] = [ep.instruction] * n
        batch["index"] = torch.arange(lo, hi, dtype=torch.int64, device=self.device)
        batch["timestamp"] = torch.as_tensor(np.asarray(times, dtype=np.float32), device=self.device)
        return batch

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        import torch

        out = []
        n = ep.length
        with torch.no_grad():
            for lo in range(0, n, self.chunk):
                hi = min(n, lo + self.chunk)
                try:
                    r = self.model.compute_reward(self._batch(ep, lo, hi))
                except RewardModelError:
                    raise
                except Exception as exc:  # a foreign model's failure is this episode's error
                    raise RewardModelError(f"lerobot_reward: compute_reward failed on {ep.episode_id!r}: "
                                           f"{type(exc).__name__}: {exc}") from exc
                arr = r.detach().float().cpu().numpy() if hasattr(r, "detach") else np.asarray(r, dtype=np.float64)
                arr = np.asarray(arr, dtype=np.float64).reshape(-1) if np.ndim(arr) == 2 and np.shape(arr)[1] == 1 else np.asarray(arr, dtype=np.float64)
                if arr.shape != (hi - lo,):
                    raise RewardModelError(f"lerobot_reward: compute_reward returned shape {tuple(arr.shape)} "
                                           f"for a batch of {hi - lo} frames (expected ({hi - lo},))")
                out.append(arr)
        return np.concatenate(out) if out else np.zeros(0)
