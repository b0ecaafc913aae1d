"""The ``bc`` policy: a behaviour-cloning network trained by ``simfail train-policy``.

``make_bc_policy(checkpoint)`` loads ``policy.pt`` (a folder holding it, or the file) and
returns a :class:`BCPolicy`: ``reset(seed)`` at the start of an episode, then
``act(observation) -> (8,) float32`` once per frame, where ``observation`` is the Dict of
:class:`simfail.env.SimfailEnv` (``state``, ``tcp_pos``, ``objects``, and ``pixels`` for the
image model: the policy declares the ``views`` and ``image_size`` it needs).

At every frame the network predicts the next ``chunk`` actions; with ``temporal_ensemble``
(default) the action sent is the weighted mean of every still-valid prediction for this frame,
weights ``exp(-ensemble_decay * age)`` (``age`` in frames since the prediction was made), as in
ACT's temporal ensembling; without it, the newest prediction's first action is sent. When the
demonstrations' gripper command takes only two values (the expert opens or closes), the
gripper output is snapped to the nearer one. The policy
counts its frames since ``reset``: the episode time is one of its inputs (the expert it imitates
is time-parameterised).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError
from simfail.policy.base import EpisodeContext, PolicyNeeds
from simfail.policy.registry import register_policy

__all__ = ["BCPolicy", "make_bc_policy", "load_bc_checkpoint"]


def load_bc_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a ``policy.pt`` written by ``simfail train-policy`` (clear :class:`ConfigError` otherwise)."""
    from simfail.learn import require_torch

    from .bc_train import FORMAT, POLICY_FILE, VERSION

    torch = require_torch()
    if path in (None, ""):
        raise ConfigError("the bc policy needs a checkpoint: policy.checkpoint=DIR (written by simfail train-policy)")
    p = Path(str(path))
    if p.is_dir():
        p = p / POLICY_FILE
    if not p.is_file():
        raise ConfigError(f"bc checkpoint {p} does not exist (train one with simfail train-policy data=DIR out=DIR)")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(f"cannot read the bc checkpoint {p}: {msg}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ConfigError(f"{p} is not a simfail bc checkpoint")
    if obj.get("version") != VERSION:
        raise ConfigError(f"{p}: bc checkpoint version {obj.get('version')!r}, this simfail reads version {VERSION}")
    for key in ("task", "fps", "n_objects", "model", "views", "norm", "state_dict"):
        if key not in obj:
            raise ConfigError(f"{p}: bc checkpoint lacks {key!r}")
    obj["path"] = str(p)
    return obj


def _as_bool(value: Any, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise ConfigError(f"{name} must be true or false, got {value!r}")


class BCPolicy:
    """A trained ``bc`` network acting in a simfail env (see the module docstring)."""

    name = "bc"

    def __init__(self, ckpt: dict[str, Any], device: str = "cpu", temporal_ensemble: bool = True,
                 ensemble_decay: float = 0.5):
        from simfail.learn import require_torch

        from .bc_model import BCNet, ModelConfig

        torch = require_torch()
        self._torch = torch
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise ConfigError(f"bad device {device!r} for the bc policy: {exc}") from exc
        try:
            net = BCNet(ModelConfig(**ckpt["model"]))
            net.load_state_dict(ckpt["state_dict"])
        except (TypeError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"{ckpt.get('path', 'checkpoint')} does not match the bc network: {str(exc).splitlines()[0]}") from exc
        self.net = net.to(self.device).eval()
        self.kind = net.cfg.kind
        self.chunk = net.cfg.chunk
        self.task = str(ckpt["task"])
        self.fps = int(ckpt["fps"])
        self.n_objects = int(ckpt["n_objects"])
        #: Camera views the policy reads (empty for the state model) and their (height, width).
        self.views: tuple[str, ...] = tuple(ckpt["views"])
        self.image_size: tuple[int, int] | None = tuple(ckpt["image_size"]) if ckpt.get("image_size") else None
        self.chunk_length = self.chunk
        norm = {k: np.asarray(v.numpy(), np.float32) for k, v in ckpt["norm"].items()}
        self._x_mean, self._x_std = norm["x_mean"], norm["x_std"]
        self._y_mean, self._y_std = norm["y_mean"], norm["y_std"]
        self.actions = str(ckpt.get("actions", "delta"))
        if self.actions not in ("tcp", "absolute", "delta"):
            raise ConfigError(f"{ckpt.get('path', 'checkpoint')}: unknown action mode {self.actions!r}")
        levels = ckpt.get("gripper_levels")
        self.gripper_levels = None if levels is None else np.asarray(levels, np.float64)
        self.temporal_ensemble = _as_bool(temporal_ensemble, "temporal_ensemble")
        try:
            self.ensemble_decay = float(ensemble_decay)
        except (TypeError, ValueError):
            raise ConfigError(f"ensemble_decay must be a number >= 0, got {ensemble_decay!r}") from None
        if not (np.isfinite(self.ensemble_decay) and self.ensemble_decay >= 0):
            raise ConfigError(f"ensemble_decay must be a number >= 0, got {ensemble_decay!r}")
        self.reset(0)

    @property
    def needs(self) -> PolicyNeeds:
        """What the rollout must give: the cnn's views at its training image size; one action per call
        (the chunk is blended inside, by temporal ensembling); no privileged scene access."""
        return PolicyNeeds(views=self.views, image_size=self.image_size, chunk=1, privileged=False)

    def start_episode(self, context: EpisodeContext) -> None:
        """Refuse an episode the network cannot read: another task or frame rate than trained on."""
        if context.task != self.task:
            raise ConfigError(f"the bc policy was trained on {self.task}, not {context.task}")
        if int(context.fps) != self.fps:
            raise ConfigError(f"the bc policy was trained at {self.fps} fps (its time input); this run has "
                              f"{context.fps} fps")

    def reset(self, seed: int) -> None:
        """Start a new episode (the network is deterministic: ``seed`` changes nothing)."""
        self._step = 0
        self._plans: list[tuple[int, np.ndarray]] = []  # (frame the plan was made, (chunk, 8) predicted outputs)
        if self.actions == "tcp":
            from simfail.core.builder import make_ik

            self._ik = make_ik()  # starts at the home pose, as the expert's

    def _inputs(self, observation: dict[str, Any]):
        from .bc_data import observation_features

        t = self._step / self.fps
        objects = np.asarray(observation["objects"]).reshape(-1)
        if objects.size != 7 * self.n_objects:
            raise ConfigError(f"the bc policy was trained on {self.task} ({self.n_objects} objects); the observation "
                              f"has {objects.size // 7}")
        if self.kind == "mlp":
            low = observation_features(observation, t)
            imgs = None
        else:
            low = np.concatenate([np.asarray(observation["state"], np.float32).reshape(-1), [np.float32(t)]])
            pixels = observation.get("pixels")
            if not isinstance(pixels, dict) or any(v not in pixels for v in self.views):
                raise ConfigError(f"the bc cnn policy needs the camera images {list(self.views)} in the observation "
                                  "(SimfailEnv(pixels=True, views=policy.views))")
            frames = [np.asarray(pixels[v]) for v in self.views]
            h, w = self.image_size
            for v, f in zip(self.views, frames):
                if f.shape != (h, w, 3) or f.dtype != np.uint8:
                    raise ConfigError(f"the bc cnn policy needs {w}x{h} uint8 RGB images; view {v} is "
                                      f"{f.dtype} {f.shape}")
            imgs = np.concatenate(frames, axis=-1).transpose(2, 0, 1)[None]
        low = (low.astype(np.float32) - self._x_mean) / self._x_std
        return low[None].astype(np.float32), imgs

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        """The action after this observation: (8,) float32, 7 joint targets [rad] + gripper in [0, 1]."""
        torch = self._torch
        low, imgs = self._inputs(observation)
        prev = torch.get_num_threads()
        torch.set_num_threads(1)  # one frame at a time: a thread pool only adds waiting (and nondeterminism)
        try:
            with torch.no_grad():
                out = self.net(torch.from_numpy(low).to(self.device),
                               None if imgs is None else torch.from_numpy(np.ascontiguousarray(imgs)).to(self.device))
        finally:
            torch.set_num_threads(prev)
        pred = out[0].cpu().numpy() * self._y_std + self._y_mean  # (chunk, 8)
        plan = pred.astype(np.float64)
        if self.actions == "delta":
            plan[:, :7] += np.asarray(observation["state"], np.float64).reshape(-1)[:7]
        now = self._step
        self._plans.append((now, plan))
        self._plans = [(t0, p) for t0, p in self._plans if now - t0 < self.chunk]
        if self.temporal_ensemble:
            ages = np.array([now - t0 for t0, _ in self._plans], np.float64)
            wts = np.exp(-self.ensemble_decay * ages)
            acts = np.stack([p[now - t0] for t0, p in self._plans])
            action = (wts[:, None] * acts).sum(axis=0) / wts.sum()
        else:
            action = plan[0]
        if self.gripper_levels is not None:  # snap to the demonstrations' open / closed commands
            action[7] = self.gripper_levels[np.argmin(np.abs(self.gripper_levels - action[7]))]
        action[7] = np.clip(action[7], 0.0, 1.0)
        if self.actions == "tcp":
            quat = action[3:7] / max(float(np.linalg.norm(action[3:7])), 1e-9)
            action = np.concatenate([self._ik.solve(action[:3], quat), action[7:8]])
        self._step += 1
        return action.astype(np.float32)


@register_policy("bc")
def make_bc_policy(checkpoint: str = "", device: str = "cpu", temporal_ensemble: bool = True,
                   ensemble_decay: float = 0.5) -> BCPolicy:
    """The ``bc`` policy from a ``simfail train-policy`` output folder (or its ``policy.pt``).

    Raises:
        ConfigError: the checkpoint is missing, unreadable, not a bc checkpoint, or does not
            match the network; bad device or ensembling settings.
    """
    return BCPolicy(load_bc_checkpoint(checkpoint), device=device, temporal_ensemble=temporal_ensemble,
                    ensemble_decay=ensemble_decay)
