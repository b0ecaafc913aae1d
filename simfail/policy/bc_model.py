"""Networks of the ``bc`` policy: a state MLP and a small image CNN, both predicting action chunks.

Both map an observation at frame ``t`` to a chunk of the next ``chunk`` actions
``a[t], ..., a[t + chunk - 1]`` (LeRobot convention: ``a[t]`` is issued after frame ``t``),
each ``(8,)``: the seven arm joint targets as *deltas* from the current joint angles [rad]
and the gripper close command in [0, 1]. Inputs and targets are normalised with the training
data's mean and standard deviation (stored in the checkpoint as buffers).

* ``mlp``: :func:`simfail.policy.bc_data.observation_features` (state, TCP, object poses,
  object-TCP offsets, time) -> hidden layers -> chunk.
* ``cnn``: the camera images of ``views`` (stacked on the channel axis, uint8 -> [0, 1]) ->
  four convolutions -> spatial soft-argmax keypoints, concatenated with the robot state and
  time (no privileged object poses) -> hidden layers -> chunk.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from simfail.learn import require_torch

torch = require_torch()
nn = torch.nn

__all__ = ["ModelConfig", "BCNet", "MODEL_KINDS", "low_dim_size"]

#: Registered network kinds.
MODEL_KINDS = ("mlp", "cnn")
#: Low-dimensional input of the image model: robot state (9) + time (1).
CNN_LOW_DIM = 10


def low_dim_size(kind: str, n_objects: int) -> int:
    from .bc_data import feature_size

    return feature_size(n_objects) if kind == "mlp" else CNN_LOW_DIM


@dataclass
class ModelConfig:
    kind: str
    in_dim: int  # low-dimensional input size
    chunk: int
    hidden: int = 256
    layers: int = 3
    channels: int = 6  # image channels (3 per view), cnn only
    width: int = 32  # first convolution's channels, cnn only

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class SpatialSoftArgmax(nn.Module):
    """``(B, C, H, W)`` feature maps -> ``(B, 2C)`` expected image coordinates in [-1, 1]."""

    def forward(self, x):
        b, c, h, w = x.shape
        att = torch.softmax(x.reshape(b, c, h * w), dim=-1).reshape(b, c, h, w)
        ys = torch.linspace(-1.0, 1.0, h, dtype=x.dtype, device=x.device)
        xs = torch.linspace(-1.0, 1.0, w, dtype=x.dtype, device=x.device)
        ey = (att.sum(dim=3) * ys).sum(dim=2)
        ex = (att.sum(dim=2) * xs).sum(dim=2)
        return torch.cat([ex, ey], dim=1)


def _mlp(in_dim: int, hidden: int, layers: int, out_dim: int):
    mods: list[Any] = []
    d = in_dim
    for _ in range(layers):
        mods += [nn.Linear(d, hidden), nn.LayerNorm(hidden), nn.GELU()]
        d = hidden
    mods.append(nn.Linear(d, out_dim))
    return nn.Sequential(*mods)


class BCNet(nn.Module):
    """``forward(low_dim (B, in_dim) normalised, images (B, C, H, W) uint8 or None)`` -> ``(B, chunk, 8)``
    normalised actions."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.kind not in MODEL_KINDS:
            raise ValueError(f"unknown model kind {cfg.kind!r}")
        self.cfg = cfg
        out = cfg.chunk * 8
        if cfg.kind == "mlp":
            self.encoder = None
            self.head = _mlp(cfg.in_dim, cfg.hidden, cfg.layers, out)
        else:
            w = cfg.width
            self.encoder = nn.Sequential(
                nn.Conv2d(cfg.channels, w, 5, stride=2, padding=2), nn.GELU(),
                nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GELU(),
                nn.Conv2d(2 * w, 2 * w, 3, stride=1, padding=1), nn.GELU(),
                nn.Conv2d(2 * w, 2 * w, 3, stride=1, padding=1),
                SpatialSoftArgmax(),
            )
            self.head = _mlp(4 * w + cfg.in_dim, cfg.hidden, cfg.layers, out)

    def forward(self, low_dim, images=None):
        x = low_dim
        if self.encoder is not None:
            if images is None:
                raise ValueError("the cnn policy needs images")
            x = torch.cat([self.encoder(images.float() / 255.0), low_dim], dim=1)
        return self.head(x).reshape(low_dim.shape[0], self.cfg.chunk, 8)
