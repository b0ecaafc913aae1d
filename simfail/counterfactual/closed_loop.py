"""A policy in the loop: the driver that closed-loop rollouts and continuations share.

:class:`PolicyDriver` is the one stepping path of a policy on a scene: it observes the live
simulation core through the policy's :class:`~simfail.core.observation.Observer` (the same
observation a rollout or the Gymnasium env gives), calls ``act``, checks the output
(:func:`~simfail.policy.base.check_actions`: shape, NaN, range; nothing clipped), queues an
action chunk (``needs.chunk > 1``: one action per step before the policy is asked again), and
turns any error of the policy into one :class:`~simfail.policy.base.PolicyError` line naming the
policy, the scene seed, the policy seed and the step.

Two callers:

- :func:`simfail.policy.rollout.run_policy`: a rollout from the scene's rest state; the driver
  starts at frame 0 and commands every step;
- :func:`simfail.counterfactual.replay.branch` with ``continuation="closed_loop"``: after a
  perturbation's last step ``edit.end`` the driver starts at frame ``edit.end + 1`` of the
  perturbed state; the policy is told where it takes over through
  :attr:`~simfail.policy.base.EpisodeContext.start_frame` and ``start_action`` (the scripted
  expert resumes its program clock there; a learned policy just observes).

Frames and steps: step ``f`` drives frame ``f`` to ``f + 1``; ``act(core, f)`` observes frame
``f`` (the core's current state) and returns step ``f``'s ``(8,)`` command (seven arm joint
targets [rad], the gripper close command in [0, 1]).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any, Callable

import numpy as np

from simfail.core.sim import SimCore
from simfail.policy.base import EpisodeContext, PolicyError

#: Phase label of the frames a policy commands.
POLICY_PHASE = "policy"


class PolicyDriver:
    """Runs a loaded policy (:class:`simfail.policy.rollout.LoadedPolicy`) on a live core.

    Args:
        loaded: The policy with its ``needs`` and observer.
        context: The episode's context (``start_frame`` / ``start_action`` are filled in by
            :meth:`start`).
        policy_seed: The seed passed to ``reset``.
        episode_key: Identifies the episode for the observer's image cache.
    """

    def __init__(self, loaded: Any, context: EpisodeContext, policy_seed: int, episode_key: Any):
        self.loaded = loaded
        self.context = context
        self.policy_seed = int(policy_seed)
        self.episode_key = episode_key
        self.where = (f"policy {loaded.spec.label!r} on scene seed {context.scene_seed} "
                      f"(policy seed {self.policy_seed})")
        self.policy_s = 0.0  # seconds spent in the policy's act()
        self.act_calls = 0
        self._queue: list[np.ndarray] = []

    @property
    def phase(self) -> str:
        """Phase label of the frame the last command leads to: the policy's own ``phase``
        attribute when it has one (the scripted expert names its program's phase), else
        :data:`POLICY_PHASE`."""
        own = getattr(self.loaded.policy, "phase", None)
        return own if isinstance(own, str) and own else POLICY_PHASE

    def _guarded(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except PolicyError as exc:
            raise PolicyError(f"{self.where} {what}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - any error of user code becomes one clear line
            raise PolicyError(f"{self.where} raised {type(exc).__name__} {what}: {exc}") from exc

    def start(self, core: SimCore, frame: int) -> None:
        """Reset the policy and start its episode at ``frame`` of the core's current state."""
        pol, needs = self.loaded.policy, self.loaded.needs
        ctx = self.context
        if frame:
            ctx = replace(ctx, start_frame=int(frame), start_action=core.get_state()[-8:].copy())
        self._guarded("in reset()", pol.reset, self.policy_seed)
        begin = getattr(pol, "start_episode", None)
        if callable(begin):
            self._guarded("in start_episode()", begin, ctx if needs.privileged else
                          replace(ctx, layout=None, task_obj=None))
        self._queue = []

    def act(self, core: SimCore, frame: int) -> np.ndarray:
        """Step ``frame``'s command: the next queued action, asking the policy when the queue
        is empty (it observes frame ``frame``)."""
        if not self._queue:
            from simfail.policy.base import check_actions

            obs = self.loaded.observer.observe(core, (self.episode_key, frame))
            t0 = time.perf_counter()
            out = self._guarded(f"at step {frame}", self.loaded.policy.act, obs)
            self.policy_s += time.perf_counter() - t0
            self.act_calls += 1
            ctx = self.context
            self._queue = list(check_actions(out, self.loaded.needs.chunk, ctx.action_low, ctx.action_high,
                                             f"{self.where} at step {frame}"))
        return self._queue.pop(0)


def policy_driver(loaded: Any, runner: Any, n_frames: int, policy_seed: int, episode_key: Any) -> PolicyDriver:
    """A :class:`PolicyDriver` for ``loaded`` on the runner's loaded scene, with the episode
    context a rollout of ``n_frames`` frames gives (action box from the scene's actuators)."""
    from simfail.policy.rollout import action_box

    scene, task = runner.scene, runner.task
    low, high = action_box(runner)
    ctx = EpisodeContext(task.name, scene.layout.instruction, runner.fps, int(n_frames), int(runner.scene_seed),
                         low, high, layout=scene.layout, task_obj=task)
    return PolicyDriver(loaded, ctx, policy_seed, episode_key)


def continuation_policy(spec: str, runner: Any, width: int, height: int) -> Any:
    """The :class:`~simfail.policy.rollout.LoadedPolicy` of ``spec`` (a registered name or
    ``module:factory``) for closed-loop continuations on ``runner``'s task, built once per
    runner and spec (a learned policy's checkpoint is read once)."""
    from simfail.policy.rollout import PolicySpec, load_one

    cache = runner.__dict__.setdefault("_continuation_policies", {})
    key = (spec, int(width), int(height))
    if key not in cache:
        names = list(runner.prototype.layout.tracked)
        cache[key] = load_one(PolicySpec(spec.rsplit(":", 1)[-1], spec, {}), names, width, height)
    return cache[key]
