"""Preference-guided self-distillation (section 4 of the paper).

A stochastic reward model is sampled several times on an A/B pair whose preference is known.
Each draw gives one dense trace per side; its returns (sums) imply an order. Draws whose
order matches the known preference are kept, and the less-preferred side's trace of one of
them becomes a dense negative example for in-context use (GVL module A).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from simfail.errors import ConfigError, RewardModelError

from .harness import predict_episode
from .metrics import episode_return, rescale_to_unit
from .protocol import EpisodeInput, Example, RewardModel


@dataclass
class DistillResult:
    """Outcome of :func:`self_distill`.

    Attributes:
        trace: the less-preferred episode's dense trace (model units, all ``T`` frames) of the
            selected draw, or ``None`` when no draw agreed with the preference.
        preferred_trace: the preferred episode's trace of the same draw, or ``None``.
        less_preferred: ``"a"`` or ``"b"``.
        n_agreed: draws whose order (strictly) matches the preference.
        n_samples: draws requested (``k``).
        n_errors: draws lost to :class:`RewardModelError` (either side).
        chosen: index of the selected draw, or ``None``.
        returns_a, returns_b: return of each draw per side (NaN for failed draws).
        value_range: the model's declared range (to rescale ``trace``).
        errors: messages of the failed draws.
    """

    trace: np.ndarray | None
    preferred_trace: np.ndarray | None
    less_preferred: str
    n_agreed: int
    n_samples: int
    n_errors: int
    chosen: int | None
    returns_a: np.ndarray
    returns_b: np.ndarray
    value_range: tuple[float, float] | None
    errors: list[str] = field(default_factory=list)

    @property
    def agreement_rate(self) -> float | None:
        ok = self.n_samples - self.n_errors
        return self.n_agreed / ok if ok else None

    def to_example(self, frames: np.ndarray, description: str | None = None) -> Example:
        """The selected trace as a failure reference (:class:`Example`) for module A.

        ``frames`` are the less-preferred episode's frames (all ``T`` of them, the ones
        ``trace`` covers); rewards are rescaled to ``[0, 1]`` with the model's range.
        """

        if self.trace is None:
            raise ConfigError("no draw agreed with the preference: nothing to turn into an example")
        frames = np.asarray(frames)
        if frames.shape[0] != self.trace.shape[0]:
            raise ConfigError(f"{frames.shape[0]} frames for a trace of {self.trace.shape[0]}")
        rewards = np.clip(rescale_to_unit(self.trace, self.value_range), 0.0, 1.0)
        return Example(frames=frames, rewards=rewards, description=description, is_failure=True)


def self_distill(
    model: RewardModel,
    ep_a: EpisodeInput,
    ep_b: EpisodeInput,
    preferred: Literal["a", "b"],
    *,
    k: int = 10,
    seed: int = 0,
    select: Literal["margin", "first"] = "margin",
) -> DistillResult:
    """Draw ``k`` samples of ``model`` on both episodes and keep one whose order agrees.

    Draw ``i`` calls ``model.sample`` on A and then on B with one generator
    ``numpy.random.default_rng([seed, i])``; its returns are ``Σ_t r_t`` of the traces mapped
    to full length (as in the harness). The draw agrees when
    ``sign(R_A - R_B) = +1`` for ``preferred="a"`` (``-1`` for ``"b"``); ties never agree.
    Among agreeing draws ``select="margin"`` keeps the one with the largest
    ``|R_A - R_B|`` (earliest on ties), ``"first"`` the earliest. Failed draws
    (:class:`RewardModelError`) are counted and skipped. Works with any model with
    ``sample(ep, rng)`` and dense output.
    """

    if preferred not in ("a", "b"):
        raise ConfigError(f"preferred must be 'a' or 'b', got {preferred!r}")
    if select not in ("margin", "first"):
        raise ConfigError(f"select must be 'margin' or 'first', got {select!r}")
    if k < 1:
        raise ConfigError(f"k must be >= 1, got {k}")
    if not hasattr(model, "sample"):
        raise ConfigError(f"model {model.name!r} has no sample() method: self-distillation needs a stochastic model")
    if model.requirements.output != "dense":
        raise ConfigError(f"self-distillation needs a dense model, {model.name!r} outputs {model.requirements.output!r}")
    want = 1.0 if preferred == "a" else -1.0
    ra = np.full(k, np.nan)
    rb = np.full(k, np.nan)
    traces: list[tuple[np.ndarray, np.ndarray] | None] = []
    errors: list[str] = []
    for i in range(k):
        rng = np.random.default_rng([seed, i])
        try:
            ta, _ = predict_episode(model, ep_a, rng=rng)
            tb, _ = predict_episode(model, ep_b, rng=rng)
        except RewardModelError as exc:
            errors.append(f"draw {i}: {exc}")
            traces.append(None)
            continue
        ra[i], rb[i] = episode_return(ta, "sum"), episode_return(tb, "sum")
        traces.append((ta, tb))
    agree = [i for i in range(k) if traces[i] is not None and np.sign(ra[i] - rb[i]) == want]
    chosen = None
    if agree:
        chosen = max(agree, key=lambda i: (abs(ra[i] - rb[i]), -i)) if select == "margin" else agree[0]
    trace = pref = None
    if chosen is not None:
        ta, tb = traces[chosen]  # type: ignore[misc]
        trace, pref = (tb, ta) if preferred == "a" else (ta, tb)
    return DistillResult(
        trace=trace,
        preferred_trace=pref,
        less_preferred="b" if preferred == "a" else "a",
        n_agreed=len(agree),
        n_samples=k,
        n_errors=len(errors),
        chosen=chosen,
        returns_a=ra,
        returns_b=rb,
        value_range=model.requirements.value_range,
        errors=errors,
    )
