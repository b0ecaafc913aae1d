"""The per-frame progress model: frame features + instruction embedding -> progress in [0, 1].

``RewindNet(frames (B, T, H, W, 3) uint8, text (B, D)) -> (B, T)`` in ``[0, 1]``. Each frame
goes through :class:`~simfail.learn.encoder.FrameEncoder`; the instruction embedding is
projected and concatenated to every frame's features; a one-layer *causal* GRU runs over time
(the value of frame ``t`` depends on frames ``0..t`` only, as in ReWiND's causal transformer)
and a linear head with a sigmoid gives the progress of every frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from . import require_torch
from .encoder import FrameEncoder

torch = require_torch()
nn = torch.nn

__all__ = ["NetConfig", "RewindNet"]


@dataclass(frozen=True)
class NetConfig:
    text_dim: int = 64
    feat_dim: int = 64
    width: int = 16
    hidden: int = 64
    temporal: bool = True  # False: per-frame MLP only (no GRU)

    def to_dict(self) -> dict:
        return asdict(self)


class RewindNet(nn.Module):
    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = FrameEncoder(cfg.feat_dim, cfg.width)
        self.text = nn.Linear(cfg.text_dim, cfg.feat_dim)
        self.fuse = nn.Sequential(nn.Linear(2 * cfg.feat_dim, cfg.hidden), nn.ReLU())
        self.gru = nn.GRU(cfg.hidden, cfg.hidden, batch_first=True) if cfg.temporal else None
        self.head = nn.Linear(cfg.hidden, 1)

    def forward(self, frames: "torch.Tensor", text: "torch.Tensor") -> "torch.Tensor":
        b, t = frames.shape[:2]
        f = self.encoder(frames.reshape(b * t, *frames.shape[2:])).reshape(b, t, -1)
        c = torch.relu(self.text(text.float()))[:, None, :].expand(b, t, -1)
        h = self.fuse(torch.cat([f, c], dim=-1))
        if self.gru is not None:
            h, _ = self.gru(h)
        return torch.sigmoid(self.head(h).squeeze(-1))
