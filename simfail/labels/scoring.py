"""Dense failure-aware reward, per-frame failure flags and the episode score.

Definitions (also in docs/labels.md):

* ``progress[t]`` in [0, 1]: task progress from privileged state (task-specific, see the
  task's ``progress``).
* ``failure[t]``: True from the *visible* frame of the first failure event on.
* ``reward[t] = progress[t] * prod_e (1 - W[cat_e] * severity_e)`` over the task and quality
  events ``e`` whose visible frame is ``<= t`` (``W = {task: 0.5, quality: 0.3}``), and
  ``reward[t] = 0`` from the visible frame of any safety event on. The penalty therefore lands
  at the frame where a camera can see the failure.
* ``score`` in [0, 100]: ``base - penalties``, clipped; ``base = 100`` for a success, else
  ``60 * progress[-1]``; every safety event costs ``50 * severity``, every quality event
  ``25 * severity`` (task failures are already in the base). Scores are rounded to 0.1.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent

REWARD_WEIGHT = {"task": 0.5, "quality": 0.3}
SCORE_PENALTY = {"safety": 50.0, "quality": 25.0, "task": 0.0}
FAILED_BASE = 60.0


def failure_mask(n: int, events: list[FailureEvent]) -> np.ndarray:
    mask = np.zeros(n, dtype=bool)
    if events:
        mask[min(e.visible_frame for e in events):] = True
    return mask


def dense_reward(progress: np.ndarray, events: list[FailureEvent]) -> np.ndarray:
    """Failure-aware dense reward in [0, 1] (see module docstring)."""
    n = len(progress)
    factor = np.ones(n)
    for e in events:
        t = min(max(e.visible_frame, 0), n)
        if e.category == "safety":
            factor[t:] = 0.0
        else:
            factor[t:] *= 1.0 - REWARD_WEIGHT[e.category] * e.severity
    return np.clip(progress * factor, 0.0, 1.0).astype(np.float32)


def episode_score(success: bool, progress: np.ndarray, events: list[FailureEvent]) -> float:
    """Episode score in [0, 100] (see module docstring)."""
    base = 100.0 if success else FAILED_BASE * float(progress[-1])
    penalty = sum(SCORE_PENALTY[e.category] * e.severity for e in events)
    return float(np.round(np.clip(base - penalty, 0.0, 100.0), 1))
