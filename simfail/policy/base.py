"""The policy interface: what a policy is, what it may ask for, and how its output is checked.

A policy is any object with

- ``reset(seed: int) -> None``: start a new episode; all of the policy's randomness must come
  from ``seed`` (the same seed and observations give the same actions);
- ``act(observation) -> action``: ``observation`` is the Gymnasium env's ``Dict`` observation
  (:mod:`simfail.core.observation`: ``state`` (9,) [rad, m], ``tcp_pos`` (3,) [m, world],
  ``objects`` (7 n,) poses, and ``pixels`` ``{view: uint8 (H, W, 3)}`` when the policy asks for
  views); ``action`` is the env's action, ``(8,)``: seven arm joint position targets [rad] and the
  gripper close command in [0, 1]. A policy whose ``needs.chunk`` is ``c > 1`` returns ``(c, 8)``
  actions, executed one per frame before it is asked again.

Optional:

- ``needs``: a :class:`PolicyNeeds` (views, image size, action chunk, privileged scene access);
- ``start_episode(context: EpisodeContext)``: called after ``reset`` with the episode's task,
  instruction, frame rate and length (and, for a policy that declares ``privileged=True``, the
  scene layout: the scripted expert needs it; a learned policy should not);
- ``name``: a display name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from simfail.errors import SimfailError

#: Width of an action: seven joint targets [rad] and the gripper close command.
ACTION_DIM = 8


class PolicyError(SimfailError):
    """A policy raised, or returned an action of the wrong shape, NaN or out of range."""


@dataclass(frozen=True)
class PolicyNeeds:
    """What a policy asks of the rollout.

    Attributes:
        views: Cameras whose images go into ``observation["pixels"]`` (empty: no images).
        image_size: ``(height, width)`` of those images [px]; ``None``: the run's render size.
        chunk: Actions returned per ``act`` call (action chunking); 1 = one ``(8,)`` action.
        privileged: The policy reads the scene layout from ``start_episode`` (the scripted
            expert does; its rollouts are not those of a policy that sees only observations).
    """

    views: tuple[str, ...] = ()
    image_size: tuple[int, int] | None = None
    chunk: int = 1
    privileged: bool = False


@dataclass
class EpisodeContext:
    """What a policy may know about the episode it is about to run (see the module docstring)."""

    task: str
    instruction: str
    fps: int
    n_frames: int
    scene_seed: int
    #: the action box: ``(8,)`` lower / upper bounds (joint targets [rad], gripper [0, 1])
    action_low: np.ndarray = field(default_factory=lambda: np.zeros(ACTION_DIM), repr=False)
    action_high: np.ndarray = field(default_factory=lambda: np.ones(ACTION_DIM), repr=False)
    layout: Any = field(default=None, repr=False)
    task_obj: Any = field(default=None, repr=False)
    #: frame at which the policy takes control: 0 for a rollout; the frame after a
    #: perturbation's last step for a closed-loop continuation (frame ``t`` is at ``t / fps`` s)
    start_frame: int = 0
    #: the ``(8,)`` command in force when the policy takes control (None: the home command)
    start_action: np.ndarray | None = field(default=None, repr=False)


@runtime_checkable
class Policy(Protocol):
    def reset(self, seed: int) -> None: ...

    def act(self, observation: dict[str, Any]) -> Any: ...


def policy_needs(policy: Any) -> PolicyNeeds:
    needs = getattr(policy, "needs", None)
    if needs is None:
        return PolicyNeeds()
    if not isinstance(needs, PolicyNeeds):
        raise PolicyError(f"policy {type(policy).__name__}: needs must be a PolicyNeeds, got {type(needs).__name__}")
    if needs.chunk < 1:
        raise PolicyError(f"policy {type(policy).__name__}: needs.chunk must be >= 1, got {needs.chunk}")
    return needs


def check_actions(out: Any, chunk: int, low: np.ndarray, high: np.ndarray, where: str) -> np.ndarray:
    """A policy's output as ``(chunk, 8)`` float64 actions, or :class:`PolicyError` naming
    ``where`` (policy, seed, step) and the problem. Nothing is clipped or replaced: joint targets
    must lie in ``[low, high]`` (the env's action box) and the gripper command in [0, 1]."""
    try:
        arr = np.asarray(out, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PolicyError(f"{where}: the action is not numeric ({type(out).__name__}): {exc}") from None
    want = (ACTION_DIM,) if chunk == 1 else (chunk, ACTION_DIM)
    if arr.shape != want and not (chunk == 1 and arr.shape == (1, ACTION_DIM)):
        raise PolicyError(f"{where}: the action must have shape {want}, got {arr.shape}")
    arr = arr.reshape(-1, ACTION_DIM)
    bad = ~np.isfinite(arr)
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        raise PolicyError(f"{where}: the action has {int(bad.sum())} non-finite value(s) (NaN/inf), "
                          f"first at action {i} entry {j}")
    tol = 1e-6
    out_lo, out_hi = arr < low - tol, arr > high + tol
    if (out_lo | out_hi).any():
        i, j = (int(v) for v in np.argwhere(out_lo | out_hi)[0])
        raise PolicyError(f"{where}: action {i} entry {j} = {arr[i, j]!r} is outside its range "
                          f"[{low[j]:.4f}, {high[j]:.4f}] (7 joint targets [rad], gripper in [0, 1])")
    return arr
