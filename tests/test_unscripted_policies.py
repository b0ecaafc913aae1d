"""Labels that hold for behaviour no operator produces.

A family of unscripted policies, defined here, drives today's Gymnasium env
(:class:`simfail.env.SimfailEnv`) on every task; ``task.detect`` then labels ``env.trace``.
The rules checked on every rollout (docs/labels-rules.md):

* a rollout that does not succeed carries a task event saying why, so its ``failure`` flag
  (from :func:`simfail.labels.scoring.failure_mask`) is set by its last frame;
* every object the robot touches without holding it and that ends moved (``MOVED`` m) or
  tipped (``TIPPED`` rad) is named by an event;
* nothing falls below the floor: an object off the table lands on it;
* every event's frames are ordered and inside the episode.

The default run uses one seed and short rollouts; the slow one three seeds at full length.
"""

from __future__ import annotations

import numpy as np
import pytest

from simfail.core.builder import make_ik
from simfail.core.robot import HOME_QPOS, topdown_quat
from simfail.core.scene import FLOOR_Z
from simfail.core.task import task_names
from simfail.env import SimfailEnv
from simfail.labels import detectors as det
from simfail.labels.scoring import failure_mask

#: Horizontal move [m] / tilt [rad] of an object the robot touched that must be labelled
#: (above the detectors' 2 cm / 20 degrees: the test does not re-derive their thresholds).
MOVED = 0.03
TIPPED = np.deg2rad(25.0)
#: The tall bystander of each task, the one a careless robot knocks over.
BYSTANDER = {"pick_place": "obstacle", "stack": "bystander", "reorient": "bystander", "pour": "bystander",
             "tool_use": "cup", "push_pull": "bottle", "open_close": "cup"}


# ---------------------------------------------------------------------------- policies
class Frozen:
    """Does nothing: holds the home pose, gripper open."""

    def reset(self, seed: int, env: SimfailEnv) -> None:
        pass

    def act(self, obs, env: SimfailEnv) -> np.ndarray:
        return np.concatenate([HOME_QPOS, [0.0]])


class RandomWalk:
    """Random joint targets: a random walk from home (0.12 rad per step), random gripper."""

    def reset(self, seed: int, env: SimfailEnv) -> None:
        self.rng = np.random.default_rng(seed)
        self.q = HOME_QPOS.copy()

    def act(self, obs, env: SimfailEnv) -> np.ndarray:
        low, high = env.action_space.low.astype(float), env.action_space.high.astype(float)
        self.q = np.clip(self.q + self.rng.normal(0.0, 0.12, 7), low[:7], high[:7])
        return np.concatenate([self.q, [float(self.rng.random() < 0.5)]])


class Jerky:
    """Bangs between two postures every frame while opening and closing the gripper."""

    def reset(self, seed: int, env: SimfailEnv) -> None:
        rng = np.random.default_rng(seed)
        self.delta = rng.uniform(-0.35, 0.35, 7)
        self.t = 0

    def act(self, obs, env: SimfailEnv) -> np.ndarray:
        self.t += 1
        sign = 1.0 if self.t % 2 else -1.0
        return np.concatenate([HOME_QPOS + sign * self.delta, [float(self.t % 4 < 2)]])


class _Waypoints:
    """Follows TCP waypoints (top-down gripper) with the project's IK, ``speed`` m/s."""

    speed = 0.25
    grip = 1.0

    def waypoints(self, env: SimfailEnv) -> list[np.ndarray]:
        raise NotImplementedError

    def reset(self, seed: int, env: SimfailEnv) -> None:
        self.ik = make_ik()
        self.path = [np.asarray(env.trace.tcp[0], float), *self.waypoints(env)]
        self.k, self.pos = 1, self.path[0].copy()

    def act(self, obs, env: SimfailEnv) -> np.ndarray:
        step = self.speed / env.fps
        while self.k < len(self.path) and np.linalg.norm(self.path[self.k] - self.pos) < 1e-9:
            self.k += 1
        if self.k < len(self.path):
            d = self.path[self.k] - self.pos
            self.pos = self.pos + d * min(1.0, step / np.linalg.norm(d))
        q = self.ik.solve(self.pos, topdown_quat(0.0))
        return np.concatenate([q, [self.grip]])


class Sweep(_Waypoints):
    """Sweeps the closed gripper across the table, 2.5 cm above it, in two passes."""

    speed = 0.45

    def waypoints(self, env):
        z = 0.025
        return [np.array(p) for p in ([0.45, 0.32, 0.15], [0.45, 0.32, z], [0.45, -0.32, z], [0.60, -0.32, z],
                                       [0.60, 0.32, z])]


class DriveInto(_Waypoints):
    """Drives the closed gripper through the task's tall bystander at half its height."""

    def waypoints(self, env):
        name = BYSTANDER[env.task_name]
        p = np.asarray(env.trace.pos(name)[0], float)
        toward = p[:2] / np.linalg.norm(p[:2])  # push away from the robot base
        side = np.array([*(p[:2] - 0.12 * toward), p[2]])
        through = np.array([*(p[:2] + 0.15 * toward), p[2]])
        return [side + [0, 0, 0.20], side, through]


POLICIES = {"frozen": Frozen, "random": RandomWalk, "jerky": Jerky, "sweep": Sweep}


# ---------------------------------------------------------------------------- rollout + rules
def rollout(task: str, policy, seed: int, steps: int):
    env = SimfailEnv(task=task, width=64, height=64)
    env.reset(seed=seed)
    policy.reset(seed, env)
    obs = None
    for _ in range(steps):
        obs, *_ = env.step(policy.act(obs, env))
    success, events = env.task.detect(env.trace, env.scene.layout)
    return env, success, events


def rule_problems(env: SimfailEnv, success: bool, events) -> list[str]:
    trace, layout = env.trace, env.scene.layout
    n = len(trace)
    out = []
    for e in events:
        if not (0 <= e.onset_frame <= min(e.visible_frame, e.irreversible_frame) and max(e.visible_frame, e.irreversible_frame) < n):
            out.append(f"{e.type}: frames out of order or range ({e.onset_frame}, {e.irreversible_frame}, {e.visible_frame})")
    if not success:
        if not any(e.category == "task" for e in events):
            out.append(f"no success and no task event ({[e.type for e in events]})")
        if not failure_mask(n, events)[-1]:
            out.append("no success but the failure flag is false at the end")
    named = {o for e in events for o in e.objects}
    for name in layout.tracked:
        if name not in layout.free_objects:
            continue
        held = det.grasped(trace, name)
        touched = ((trace.impulse("robot", name) > det.TOUCH_IMPULSE) & ~held).any()
        pos, tilt = trace.pos(name), trace.tilt(name)
        moved = float(np.linalg.norm(pos[-1, :2] - pos[0, :2]))
        tipped = float(abs(tilt[-1] - tilt[0]))
        if touched and not held.any() and (moved > MOVED or tipped > TIPPED) and name not in named:
            out.append(f"the robot moves the {name} {moved * 100:.1f} cm / tips it {np.rad2deg(tipped):.0f} deg, no event names it")
        if pos[:, 2].min() < FLOOR_Z - 0.05:
            out.append(f"the {name} falls through the floor (z = {pos[:, 2].min():.2f} m)")
    return out


CASES = [(t, p) for t in task_names() for p in POLICIES]


@pytest.mark.parametrize("task,policy", CASES, ids=[f"{t}-{p}" for t, p in CASES])
def test_unscripted_rollouts_obey_the_label_rules(task, policy):
    steps = 45 if policy == "sweep" else 25
    env, success, events = rollout(task, POLICIES[policy](), seed=0, steps=steps)
    problems = rule_problems(env, success, events)
    assert not problems, f"{task} {policy}: " + "; ".join(problems) + f"\nevents: {[(e.type, e.objects) for e in events]}"


@pytest.mark.parametrize("task", task_names())
def test_driving_into_the_bystander_is_a_safety_event(task):
    env, success, events = rollout(task, DriveInto(), seed=0, steps=30)
    name = BYSTANDER[task]
    hits = [e for e in events if e.category == "safety" and name in e.objects]
    assert hits, f"{task}: no safety event names the {name}: {[(e.type, e.objects) for e in events]}"
    assert {e.type for e in hits} & {"collision", "topple", "object_knocked", "shove", "off_table"}
    assert not rule_problems(env, success, events)


def test_a_frozen_robot_fails_with_a_verdict_at_the_last_frame():
    env, success, events = rollout("pick_place", Frozen(), seed=0, steps=20)
    assert not success
    (v,) = [e for e in events if e.category == "task"]
    assert v.type == "never_grasped" and v.onset_frame == v.visible_frame == len(env.trace) - 1
    assert "never grasps the" in v.rationale


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("task,policy", CASES, ids=[f"{t}-{p}" for t, p in CASES])
def test_full_length_unscripted_rollouts_obey_the_label_rules(task, policy, seed):
    env0 = SimfailEnv(task=task, width=64, height=64)
    env, success, events = rollout(task, POLICIES[policy](), seed=seed, steps=env0.max_episode_steps)
    problems = rule_problems(env, success, events)
    assert not problems, f"{task} {policy} seed {seed}: " + "; ".join(problems)
