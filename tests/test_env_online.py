"""The Gymnasium env online: incremental labels, ``reward_mode``, ``obs_mode=lerobot``."""

from __future__ import annotations

import numpy as np
import pytest

import simfail.env as senv
from simfail.core.robot import HOME_QPOS, PandaIK, topdown_quat
from simfail.core.task import task_names
from simfail.labels.scoring import dense_reward

SMALL = dict(width=64, height=64)


def test_lerobot_observation_keys():
    env = senv.make_env(obs_mode="lerobot", views=("left", "wrist"), **SMALL)
    obs, _ = env.reset(seed=0)
    assert set(obs) == {"pixels", "agent_pos"} and set(obs["pixels"]) == {"left", "wrist"}
    assert obs["agent_pos"].shape == (9,) and obs["agent_pos"].dtype == np.float32
    assert obs["pixels"]["left"].shape == (64, 64, 3) and obs["pixels"]["left"].dtype == np.uint8
    assert env.observation_space.contains(obs)
    env.close()


def test_bad_modes_are_errors():
    with pytest.raises(ValueError, match="reward_mode"):
        senv.make_env(reward_mode="shaped", **SMALL)
    with pytest.raises(ValueError, match="obs_mode"):
        senv.make_env(obs_mode="rgb", **SMALL)


def _into_cup_actions(env):
    ik = PandaIK()
    ik.reset(HOME_QPOS)
    obs = env._observation()
    cup = obs["objects"].reshape(-1, 7)[2, :3].astype(float)
    start = np.array([0.40, 0.0, 0.35])
    goal = np.array([cup[0], cup[1], 0.06])
    t = 0
    while True:
        t += 1
        w = min(1.0, t / 25.0)
        yield np.concatenate([ik.solve(start + w * (goal - start), topdown_quat(0.0)), [1.0]])


def test_detection_is_incremental_and_ends_exact():
    env = senv.make_env(reward_mode="dense", **SMALL)
    env.reset(seed=1)
    rewards, infos = [], []
    for action in _into_cup_actions(env):
        _, reward, terminated, truncated, info = env.step(action)
        rewards.append(reward)
        infos.append(info)
        if terminated or truncated:
            break
    steps = len(rewards)
    assert truncated and steps == env.max_episode_steps == 80
    # O(1) amortized: geometric checkpoints, not one detection per step
    assert env.labeler.detect_calls <= 25, env.labeler.detect_calls
    # the final verdict is the offline one on the whole trace
    success, events = env.task.detect(env.trace, env.scene.layout)
    assert infos[-1]["events"] == events and infos[-1]["success"] == success
    # the cup was hit: a safety event is reported online, before the end
    first = next(i for i, inf in enumerate(infos) if any(e.category == "safety" for e in inf["events"]))
    assert first < steps - 1
    # the dense reward is 0 once it is known; at the end it equals the dataset's dense reward
    assert all(r == 0.0 for r in rewards[first:])
    progress = env.task.progress(env.trace, env.scene.layout)
    assert rewards[-1] == pytest.approx(float(dense_reward(progress, events)[-1]), abs=1e-6)


def test_detect_ratio_zero_detects_every_step():
    env = senv.make_env(detect_ratio=0.0, max_episode_steps=10, **SMALL)
    env.reset(seed=0)
    for _ in range(10):
        env.step(np.concatenate([HOME_QPOS, [0.0]]))
    assert env.labeler.detect_calls == 10


# ---------------------------------------------------------------------------- incremental progress
class _RandomWalk:
    """Random joint targets from home (0.15 rad per step), random gripper: off-task states."""

    def __init__(self, env):
        self.rng = np.random.default_rng(7)
        self.low, self.high = env.action_space.low.astype(float), env.action_space.high.astype(float)
        self.q = HOME_QPOS.copy()

    def act(self, obs):
        self.q = np.clip(self.q + self.rng.normal(0.0, 0.15, 7), self.low[:7], self.high[:7])
        return np.concatenate([self.q, [float(self.rng.random() < 0.5)]])


class _Expert:
    """The closed-loop expert (grasps, lifts, places, releases: every progress stage)."""

    def __init__(self, env):
        from simfail.policy.base import EpisodeContext
        from simfail.policy.expert import make_expert

        self.policy = make_expert()
        self.policy.reset(3)
        low, high = env.action_space.low.astype(float), env.action_space.high.astype(float)
        self.policy.start_episode(EpisodeContext(env.task_name, env.scene.layout.instruction, env.fps,
                                                 env.max_episode_steps + 1, env.scene_seed, low, high,
                                                 layout=env.scene.layout, task_obj=env.task))

    def act(self, obs):
        return self.policy.act(obs)


def _online_vs_offline(task_name, policy_cls, reward_mode):
    """Step a whole episode; at every step compare the reward with the offline computation on
    the whole trace so far. Returns (steps, episode success)."""
    env = senv.make_env(task_name, reward_mode=reward_mode, **SMALL)
    obs, info = env.reset(seed=2)
    layout = env.scene.layout
    assert info["progress"] == float(env.task.progress(env.trace, layout)[-1])
    policy = policy_cls(env)
    steps = 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.act(obs))
        steps += 1
        offline = float(env.task.progress(env.trace, layout)[-1])
        assert info["progress"] == offline, (task_name, steps, info["progress"], offline)
        if reward_mode == "progress":
            assert reward == offline
        else:
            assert reward == senv.online_dense_reward(offline, info["events"], info["frame"])
        if truncated:
            break
    full = env.task.progress(env.trace, layout)
    assert steps == env.max_episode_steps
    # every frame read twice at most: the cost of a step does not grow with the episode
    assert env.progress_tracker.frames_read == 1 + 2 * steps
    env.close()
    return float(full.max()), bool(info["success"])


@pytest.mark.parametrize("reward_mode", senv.REWARD_MODES)
@pytest.mark.parametrize("task_name", task_names())
def test_online_progress_equals_offline_on_whole_episodes(task_name, reward_mode):
    best, _ = _online_vs_offline(task_name, _Expert, reward_mode)
    # the episode went through the progress stages (not a trivially constant comparison)
    assert best >= 0.8, (task_name, best)
    _online_vs_offline(task_name, _RandomWalk, reward_mode)


def test_a_step_reads_a_constant_number_of_frames(monkeypatch):
    """Work counted, not timed: rows of trace arrays built per step (every ``Trace._arr`` call
    on any trace, the env's own and the progress views) are the same late in a long episode as
    early on, except at the labeler's geometric checkpoints."""
    from simfail.labels.trace import Trace

    rows = {"n": 0}
    original = Trace._arr

    def counting(self, name):
        cache = self.__dict__.get("_cache", {})
        hit = cache.get(name)
        if hit is None or hit[0] != len(self.qpos):
            rows["n"] += len(self.qpos)
        return original(self, name)

    monkeypatch.setattr(Trace, "_arr", counting)
    env = senv.make_env("tool_use", max_episode_steps=400, **SMALL)
    env.reset(seed=0)
    per_step, checkpoint = [], []
    for _ in range(399):
        calls, before = env.labeler.detect_calls, rows["n"]
        env.step(np.concatenate([HOME_QPOS, [0.0]]))
        per_step.append(rows["n"] - before)
        checkpoint.append(env.labeler.detect_calls != calls)
    plain = [r for r, c in zip(per_step, checkpoint) if not c]
    assert sum(checkpoint) <= 30 and len(plain) >= 360
    early, late = plain[10:40], plain[-30:]
    assert max(late) == max(early) and max(late) <= 2 * 20, (max(early), max(late))
    env.close()
