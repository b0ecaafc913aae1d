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


#: Privileged labels the oracle can return: per-frame ``reward`` / ``progress`` (dense, in
#: [0, 1]) or the episode ``score`` (one value in [0, 100]).
ORACLE_KEYS: tuple[str, ...] = ("reward", "progress", "score")


@register_model("oracle")
class OracleModel:
    """Returns a ground-truth label (privileged).

    ``key="reward"`` (default): the dense failure-aware reward. Its preference accuracy is the
    ceiling the dense labels allow under the chosen return definition; it is below 1 where the
    time-integrated return and the episode score disagree (a late failure collects more reward
    than an early one that scores higher; a success with a safety violation keeps its score
    but its reward is 0 after the violation). ``key="score"``: the episode score, which *defines*
    the ground-truth ranking, so its accuracy is 1 by construction: the sanity check of the
    metric pipeline. ``key="progress"``: task progress (ignores failures, like progress_only).
    """

    name = "oracle"

    def __init__(self, key: str = "reward") -> None:
        if key not in ORACLE_KEYS:
            raise UnknownNameError("oracle key", key, ORACLE_KEYS)
        self.key = key
        if key == "score":
            self.requirements = ModelRequirements(views=(), privileged=True, output="episode", value_range=(0.0, 100.0))
        else:
            self.requirements = ModelRequirements(views=(), privileged=True, value_range=(0.0, 1.0))

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        value = _privileged(ep, self.key, self.name)
        return value.reshape(()) if self.key == "score" else value


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


def _episode_seed(seed: int, episode_id: str) -> int:
    import hashlib

    return int.from_bytes(hashlib.sha256(f"{int(seed)}:{episode_id}".encode()).digest()[:8], "little")


@register_model("random")
class RandomModel:
    """Seeded random per-frame rewards, uniform in ``[0, 1]``: the chance baseline.

    Episode ``e`` gets the draws of ``numpy.random.default_rng(sha256(f"{seed}:{e}"))``, so an
    episode's trace does not depend on which other episodes are scored or in what order. Two
    episodes' summed returns tie with probability 0, so its expected preference accuracy is 0.5
    whatever the return definition.
    """

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ConfigError(f"random: seed must be an integer >= 0, got {seed!r}")
        self.seed = seed
        self.requirements = ModelRequirements(views=(), value_range=(0.0, 1.0))

    def identity(self) -> dict:
        return {"model": "random", "seed": self.seed}

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        return np.random.default_rng(_episode_seed(self.seed, ep.episode_id)).random(ep.length)


@register_model("constant")
class ConstantModel:
    """The same reward ``value`` on every frame of every episode.

    With ``value=0`` (default) every return (sum, last or mean) is 0: every strict pair is a
    model tie, so ``A = 0`` with ties as disagreements and ``0.5`` with ties as half. (A
    non-zero value with ``returns=sum`` ranks episodes by their length: that is the time
    baseline, ``progress_only mode=time``, not a constant.)
    """

    name = "constant"

    def __init__(self, value: float = 0.0) -> None:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"constant: value must be a number in [0, 1], got {value!r}")
        self.value = float(value)
        self.requirements = ModelRequirements(views=(), value_range=(0.0, 1.0))

    def identity(self) -> dict:
        return {"model": "constant", "value": self.value}

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        return np.full(ep.length, self.value)
