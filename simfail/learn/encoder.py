"""A small CNN image encoder trained from scratch (no pretrained weights).

``uint8 (N, H, W, 3)`` frames -> ``float (N, feat_dim)``. Three strided 3x3 convolutions
(with group normalisation, so a sample's features never depend on the rest of the batch),
global average pooling plus a coarse 2x2 spatial pooling (keeps *where* things are), and a
linear projection.
"""

from __future__ import annotations

from . import require_torch

torch = require_torch()
nn = torch.nn

__all__ = ["FrameEncoder"]


class FrameEncoder(nn.Module):
    def __init__(self, feat_dim: int = 64, width: int = 16) -> None:
        super().__init__()
        w = int(width)
        self.net = nn.Sequential(
            nn.Conv2d(3, w, 3, stride=2, padding=1), nn.GroupNorm(4, w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.ReLU(),
            nn.Conv2d(2 * w, 2 * w, 3, stride=2, padding=1), nn.GroupNorm(4, 2 * w), nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(2)
        self.proj = nn.Linear(2 * w * 4, int(feat_dim))
        self.feat_dim = int(feat_dim)

    def forward(self, images: "torch.Tensor") -> "torch.Tensor":
        """``images``: ``uint8`` or float ``(N, H, W, 3)`` in ``[0, 255]``."""
        x = images.float().permute(0, 3, 1, 2) / 127.5 - 1.0
        x = self.pool(self.net(x)).flatten(1)
        return torch.relu(self.proj(x))
