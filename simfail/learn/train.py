"""Training loop of the rewind reward model (MSE on per-frame progress targets).

Deterministic on CPU: a given seed, data and thread count give the same weights (torch's
deterministic algorithms are switched on for the run and the batches come from one seeded
``numpy`` generator).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from simfail.errors import ConfigError

from . import require_torch
from .data import Pool, sample_batch

__all__ = ["TrainConfig", "TrainResult", "train", "predict_frames"]


@dataclass
class TrainConfig:
    epochs: int = 30
    batches_per_epoch: int = 16
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-4
    clip_frames: int = 32
    rewind_frac: float = 0.3
    seed: int = 0
    threads: int = 1

    def check(self) -> None:
        for key in ("epochs", "batches_per_epoch", "batch_size", "clip_frames", "threads"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < (3 if key == "clip_frames" else 1):
                raise ConfigError(f"{key} must be an integer >= {3 if key == 'clip_frames' else 1}, got {v!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got {self.seed!r}")
        if not (isinstance(self.lr, (int, float)) and np.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not (isinstance(self.weight_decay, (int, float)) and self.weight_decay >= 0):
            raise ConfigError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        if not (isinstance(self.rewind_frac, (int, float)) and 0.0 <= self.rewind_frac <= 1.0):
            raise ConfigError(f"rewind_frac must be in [0, 1], got {self.rewind_frac!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class TrainResult:
    log: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0


def train(net: Any, pool: Pool, cfg: TrainConfig, *, progress: bool = False) -> TrainResult:
    """Train ``net`` (a :class:`~simfail.learn.model.RewindNet`) in place on clips of ``pool``."""
    torch = require_torch()
    cfg.check()
    if not pool.episodes:
        raise ConfigError("empty training set: no episode to train on")
    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    try:
        torch.manual_seed(cfg.seed)
        rng = np.random.default_rng(cfg.seed)
        opt = torch.optim.AdamW(net.parameters(), lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
        total = cfg.epochs * cfg.batches_per_epoch
        sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 0.5 * (1 + np.cos(np.pi * min(s, total) / total)))
        res = TrainResult()
        t0 = time.perf_counter()
        net.train()
        for epoch in range(cfg.epochs):
            sums = {"loss": 0.0, "forward": 0.0, "rewound": 0.0}
            counts = {"forward": 0, "rewound": 0}
            for _ in range(cfg.batches_per_epoch):
                frames, text, target, rew = sample_batch(pool, rng, cfg.batch_size, cfg.clip_frames, cfg.rewind_frac)
                pred = net(torch.from_numpy(frames), torch.from_numpy(text))
                per = ((pred - torch.from_numpy(target)) ** 2).mean(dim=1)
                loss = per.mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
                opt.step()
                sched.step()
                sums["loss"] += float(loss.detach())
                per_np = per.detach().numpy()
                for key, mask in (("rewound", rew), ("forward", ~rew)):
                    sums[key] += float(per_np[mask].sum())
                    counts[key] += int(mask.sum())
            row = {
                "epoch": epoch + 1,
                "loss": sums["loss"] / cfg.batches_per_epoch,
                "loss_forward": sums["forward"] / counts["forward"] if counts["forward"] else None,
                "loss_rewound": sums["rewound"] / counts["rewound"] if counts["rewound"] else None,
                "seconds": round(time.perf_counter() - t0, 3),
            }
            res.log.append(row)
            if progress:
                fw = row["loss_forward"]
                rw = row["loss_rewound"]
                print(f"epoch {epoch + 1}/{cfg.epochs}: loss {row['loss']:.5f} (forward {fw if fw is None else round(fw, 5)}, "
                      f"rewound {rw if rw is None else round(rw, 5)}) {row['seconds']:.1f}s", flush=True)
        res.seconds = time.perf_counter() - t0
        net.eval()
        return res
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)


def predict_frames(net: Any, frames: np.ndarray, text: np.ndarray) -> np.ndarray:
    """Progress of every frame of one clip: ``frames uint8 (T,h,w,3)``, ``text (D,)`` -> ``float64 (T,)``."""
    torch = require_torch()
    net.eval()
    with torch.no_grad():
        out = net(torch.from_numpy(np.ascontiguousarray(frames))[None], torch.from_numpy(np.asarray(text, np.float32))[None])
    return out[0].double().numpy()
