"""The ``rewind`` stress model: a ReWiND-style reward model trained by ``simfail train-reward``.

``simfail evaluate model=rewind model.checkpoint=MODEL_DIR data=DIR``. The checkpoint says
which view, frame size and number of frames the model reads (the harness prepares the
episode accordingly); the output is a dense progress value in ``[0, 1]`` per frame given.
Needs ``torch`` (``pip install 'simfail[learn]'``), imported only when the model is built.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simfail.errors import ConfigError, RewardModelError

from .protocol import EpisodeInput, ModelRequirements, register_model

__all__ = ["RewindRewardModel"]


@register_model("rewind")
class RewindRewardModel:
    """Args:
        checkpoint: model folder (or its ``model.pt``) written by ``simfail train-reward``.
        threads: torch CPU threads used while predicting.
    """

    name = "rewind"

    def __init__(self, checkpoint: str | None = None, threads: int = 1) -> None:
        from simfail.learn.checkpoint import build_from_checkpoint, load_checkpoint

        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be a positive integer, got {threads!r}")
        obj = load_checkpoint(checkpoint)
        self.net, self.text = build_from_checkpoint(obj)
        self.threads = threads
        inp = obj["input"]
        self.view = str(inp["view"])
        self.requirements = ModelRequirements(
            views=(self.view,), max_frames=int(inp["max_frames"]), frame_size=tuple(int(x) for x in inp["frame_size"]),
            value_range=(0.0, 1.0),
        )
        self.train_summary: dict[str, Any] = dict(obj.get("train", {}).get("summary", {}))

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        from simfail.learn.train import predict_frames

        import torch

        if self.view not in ep.frames:
            raise RewardModelError(f"rewind: episode {ep.episode_id!r} has no {self.view!r} view (has {sorted(ep.frames)})")
        frames = ep.frames[self.view]
        prev = torch.get_num_threads()
        torch.set_num_threads(self.threads)
        try:
            out = predict_frames(self.net, frames, self.text.embed(ep.instruction))
        finally:
            torch.set_num_threads(prev)
        return np.clip(out, 0.0, 1.0)

    def predict_batch(self, eps: list[EpisodeInput]) -> list[np.ndarray]:
        return [self.predict(e) for e in eps]
