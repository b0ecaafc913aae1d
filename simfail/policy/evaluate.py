"""Closed-loop evaluation of a policy in simfail's scenes, judged by simfail's detectors.

:func:`evaluate_policy` runs a policy (``reset(seed)``, ``act(observation) -> (8,)``) in
:class:`simfail.env.SimfailEnv` on given scene seeds, each for the task's full duration (the
generator's episode length, not stopped at success), then labels the whole episode with
``task.detect(env.trace, env.scene.layout)``: success and the failure events, exactly as a
generated episode is labelled. Held-out scene seeds: :func:`heldout_seeds` draws them as
``simfail generate`` does for groups of another base seed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterable

import numpy as np

from simfail.errors import SimfailError
from simfail.policy.base import PolicyError, check_actions

__all__ = ["EpisodeOutcome", "PolicyEvaluation", "evaluate_policy", "heldout_seeds"]


@dataclass
class EpisodeOutcome:
    seed: int
    success: bool
    events: list[str]  # failure types, in detection order
    progress: float = 0.0  # the task's dense progress at the last frame, in [0, 1]
    score_events: list[Any] = field(default_factory=list, repr=False)  # the FailureEvent objects


@dataclass
class PolicyEvaluation:
    task: str
    episodes: list[EpisodeOutcome]

    @property
    def n(self) -> int:
        return len(self.episodes)

    @property
    def success_rate(self) -> float:
        return sum(e.success for e in self.episodes) / self.n if self.n else float("nan")

    @property
    def event_counts(self) -> Counter:
        """Failure type -> number of episodes that carry it (each episode counted once per type)."""
        c: Counter = Counter()
        for e in self.episodes:
            c.update(set(e.events))
        return c

    @property
    def silent_failures(self) -> int:
        """Episodes that did not succeed yet carry no failure event (a detector gap, reported as such)."""
        return sum(1 for e in self.episodes if not e.success and not e.events)

    def top_failures(self, k: int = 3) -> list[tuple[str, int]]:
        return sorted(self.event_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:k]

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "n": self.n, "success_rate": self.success_rate,
                "silent_failures": self.silent_failures,
                "event_counts": dict(sorted(self.event_counts.items())),
                "episodes": [{"seed": e.seed, "success": e.success, "events": e.events, "progress": e.progress}
                             for e in self.episodes]}


def heldout_seeds(n: int, base_seed: int = 10_000) -> list[int]:
    """``n`` scene seeds as ``simfail generate seed=base_seed`` draws them (first attempt of groups 0..n-1).

    Training data generated with another base seed never uses them (31-bit hashes of distinct
    seed tuples; the tests check the overlap with a dataset's seeds is empty).
    """
    from simfail.generate import scene_seed

    return [scene_seed(base_seed, g, 0) for g in range(n)]


def evaluate_policy(policy: Any, task: str, seeds: Iterable[int], *, fps: int = 10, progress: bool = False,
                    max_steps: int | None = None) -> PolicyEvaluation:
    """Run ``policy`` on each scene seed for the task's duration and label each episode.

    The env gives camera images when the policy declares ``views`` (and ``image_size``
    ``(height, width)``). ``max_steps`` shortens the episodes (tests only).

    Raises:
        PolicyError: the policy raised, or returned a wrong-shaped, non-finite or out-of-range
            action (:func:`simfail.policy.base.check_actions`, the rollout's check; the message
            names the policy, the seed and the step).
    """
    from simfail.env import SimfailEnv

    views = tuple(getattr(policy, "views", ()) or ())
    h, w = tuple(getattr(policy, "image_size", None) or (64, 64))
    env = SimfailEnv(task=task, fps=fps, width=w, height=h, views=views or ("left",), pixels=bool(views),
                     max_episode_steps=max_steps)
    seeds = [int(s) for s in seeds]
    it: Iterable[int] = seeds
    if progress:
        from tqdm import tqdm

        it = tqdm(seeds, desc=f"evaluate {getattr(policy, 'name', 'policy')} on {task}", unit="ep")
    out: list[EpisodeOutcome] = []
    low, high = np.asarray(env.action_space.low, np.float64), np.asarray(env.action_space.high, np.float64)
    name = getattr(policy, "name", type(policy).__name__)
    try:
        for s in it:
            obs, _ = env.reset(options={"scene_seed": s})
            policy.reset(s)
            for step in range(env.max_episode_steps):
                try:
                    raw = policy.act(obs)
                except SimfailError:
                    raise
                except Exception as exc:
                    raise PolicyError(f"policy {name} raised at seed {s}, step {step}: "
                                            f"{type(exc).__name__}: {exc}") from exc
                action = check_actions(raw, 1, low, high, f"policy {name} at seed {s}, step {step}")[0]
                obs, _, _, _, _ = env.step(action)
            success, events = env.task.detect(env.trace, env.scene.layout)
            progress = float(env.task.progress(env.trace, env.scene.layout)[-1])
            out.append(EpisodeOutcome(s, bool(success), [e.type for e in events], progress, list(events)))
    finally:
        env.close()
    return PolicyEvaluation(task, out)
