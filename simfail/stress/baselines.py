"""Reference reward models that need no weights: an upper bound and two progress-only
strawmen that ignore failures (what the paper's reward models are accused of doing)."""

from __future__ import annotations

import numpy as np

from simfail.errors import ConfigError, RewardModelError, UnknownNameError

from .protocol import EpisodeInput, ModelRequirements, register_model


def _privileged(ep: EpisodeInput, key: str, model: str) -> np.ndarray:
    if not ep.privileged or key not in ep.privileged:
        have = sorted(ep.privileged) if ep.privileged else []
        raise RewardModelError(f"{model}: episode {ep.episode_id!r} carries no privileged {key!r} label (has {have})")
    return np.asarray(ep.privileged[key], dtype=np.float64).reshape(-1)


@register_model("oracle")
class OracleModel:
    """Returns the ground-truth dense reward (privileged). Its preference accuracy is the
    ceiling the dataset's labels allow under the chosen return definition."""

    name = "oracle"

    def __init__(self, key: str = "reward") -> None:
        self.key = key
        self.requirements = ModelRequirements(views=(), privileged=True, value_range=(0.0, 1.0))

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        return _privileged(ep, self.key, self.name)


PROGRESS_MODES: tuple[str, ...] = ("time", "progress")


@register_model("progress_only")
class ProgressOnlyModel:
    """A reward that only tracks progress and never sees failures.

    ``mode="time"``: the linear ramp ``t / (T - 1)`` (``0`` for a one-frame episode); it reads
    nothing from the episode but its length. ``mode="progress"``: the privileged ground-truth
    task progress in ``[0, 1]``, which keeps rising through safety violations and quality
    failures because progress ignores them.
    """

    name = "progress_only"

    def __init__(self, mode: str = "time") -> None:
        if mode not in PROGRESS_MODES:
            raise UnknownNameError("progress_only mode", mode, PROGRESS_MODES)
        self.mode = mode
        self.requirements = ModelRequirements(views=(), privileged=(mode == "progress"), value_range=(0.0, 1.0))

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        if self.mode == "progress":
            return _privileged(ep, "progress", self.name)
        n = ep.length
        if n < 1:
            raise ConfigError("episode without frames")
        return np.zeros(1) if n == 1 else np.arange(n, dtype=np.float64) / (n - 1)
