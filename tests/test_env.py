"""Tests of simfail.env.SimfailEnv (Gymnasium API, registration, seeding, expert, pixels)."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np

from simfail.core.task import task_names
import pytest
from gymnasium.utils.env_checker import check_env

import simfail.env as senv
from simfail.core.builder import make_core, make_ik
from simfail.core.rollout import run_program

ID = "simfail/PickPlace-v0"
SMALL = dict(width=64, height=64)

#: check_env warnings that are expected by design: object positions are unbounded (an object
#: pushed off the table falls freely) and the action box is the joint ctrlrange, not [-1, 1].
ALLOWED_WARNINGS = ("space minimum value is -infinity", "space maximum value is infinity",
                    "symmetric and normalized space")


def expert_actions(env):
    """Yield the scripted expert's actions for ``env``'s current scene (as in core/rollout.py)."""
    program = env.task.expert_program(env.scene.layout)
    ik = make_ik()
    f = 0
    while True:
        f += 1
        t = f / env.fps
        pos, quat = program.pose_at(t)
        yield np.concatenate([ik.solve(pos, quat), [program.grip_at(t - 1.0 / env.fps)]])


def test_check_env_passes_with_render_check():
    env = gymnasium.make(ID, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=False)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert not unexpected, unexpected
    env.close()


@pytest.mark.parametrize("modes", [{}, {"obs_mode": "lerobot", "reward_mode": "dense"}], ids=["default", "lerobot-dense"])
@pytest.mark.parametrize("task_name", task_names())
def test_every_task_env_passes_check_env(task_name, modes):
    env = gymnasium.make(senv.env_id(task_name), **modes, **SMALL)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped, skip_render_check=True)
    unexpected = [str(w.message) for w in caught if not any(a in str(w.message) for a in ALLOWED_WARNINGS)]
    assert not unexpected, (task_name, unexpected)
    env.close()


def test_gymnasium_make_and_registration_guard():
    assert ID in gymnasium.registry
    env = gymnasium.make(ID, **SMALL)
    obs, info = env.reset(seed=3)
    assert env.observation_space.contains(obs)
    assert isinstance(env.unwrapped, senv.SimfailEnv) and env.unwrapped.task_name == "pick_place"
    assert info["instruction"] and info["scene_seed"] == env.unwrapped.scene_seed
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and 0.0 <= reward <= 1.0
    env.close()
    # "module:id" form and a second registration pass neither fail nor re-register
    env2 = gymnasium.make("simfail.env:" + ID, **SMALL)
    env2.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ids = senv.register_envs()
    assert ID in ids and len(ids) == len(set(ids)) == len(task_names())
    assert not caught


def test_spaces():
    env = senv.make_env(**SMALL)
    a = env.action_space
    assert a.shape == (8,) and a.dtype == np.float32
    assert a.low[7] == 0.0 and a.high[7] == 1.0
    assert np.all(np.isfinite(a.low)) and np.all(a.low < a.high)
    obs_space = env.observation_space
    assert set(obs_space.spaces) == {"state", "tcp_pos", "objects"}
    assert obs_space["state"].shape == (9,) and np.all(np.isfinite(obs_space["state"].low))
    assert obs_space["tcp_pos"].shape == (3,) and np.all(np.isfinite(obs_space["tcp_pos"].high))
    obs, _ = env.reset(seed=0)
    n = len(env.scene.layout.free_objects)
    assert obs_space["objects"].shape == (7 * n,)
    for key, space in obs_space.spaces.items():
        assert obs[key].dtype == np.float32 == space.dtype
    # privileged object poses in layout order
    pos0 = np.array(env.scene.layout.obj(env.scene.layout.free_objects[0]).pos)
    assert np.allclose(obs["objects"][:3], pos0, atol=1e-3)


def test_random_episode_stays_in_space_and_truncates_at_horizon():
    env = senv.make_env(**SMALL)
    assert env.max_episode_steps == round(env.task.duration * env.fps) == 80
    obs, _ = env.reset(seed=11)
    env.action_space.seed(11)
    steps, done = 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        steps += 1
        assert env.observation_space.contains(obs), steps
        assert 0.0 <= reward <= 1.0
        done = terminated or truncated
    assert truncated and steps == 80 and len(env.trace) == 81
    assert info["frame"] == 80 and isinstance(info["events"], list)

    short = senv.make_env(max_episode_steps=3, **SMALL)
    short.reset(seed=0)
    flags = [short.step(short.action_space.sample())[3] for _ in range(3)]
    assert flags == [False, False, True]


def test_seeding_determinism():
    a, b = senv.make_env(**SMALL), senv.make_env(**SMALL)
    oa, ia = a.reset(seed=42)
    ob, ib = b.reset(seed=42)
    assert ia["scene_seed"] == ib["scene_seed"]
    rng = np.random.default_rng(0)
    for _ in range(20):
        act = rng.uniform(a.action_space.low, a.action_space.high).astype(np.float32)
        oa, ra, ta, tra, _ = a.step(act)
        ob, rb, tb, trb, _ = b.step(act)
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
        assert ra == rb and ta == tb and tra == trb
    # another seed gives another scene; an explicit scene seed overrides the draw
    assert a.reset(seed=43)[1]["scene_seed"] != ia["scene_seed"]
    _, info = a.reset(seed=1, options={"scene_seed": 1234})
    assert info["scene_seed"] == a.scene_seed == a.scene.layout.seed == 1234
    with pytest.raises(ValueError):
        a.reset(options={"bogus": 1})


def test_out_of_box_actions_are_clipped():
    a, b = senv.make_env(**SMALL), senv.make_env(**SMALL)
    a.reset(seed=5)
    b.reset(seed=5)
    rng = np.random.default_rng(1)
    for _ in range(5):
        act = rng.uniform(a.action_space.low, a.action_space.high)
        wild = act + rng.choice([-10.0, 10.0], size=8)
        oa = a.step(wild)[0]
        ob = b.step(np.clip(wild, b.action_space.low, b.action_space.high))[0]
        for k in oa:
            np.testing.assert_array_equal(oa[k], ob[k])
    np.testing.assert_array_equal(a.trace.action[-1], b.trace.action[-1])
    with pytest.raises(ValueError):
        a.step(np.full(8, np.nan))
    fresh = senv.make_env(**SMALL)
    with pytest.raises(gymnasium.error.ResetNeeded):
        fresh.step(fresh.action_space.sample())


def test_expert_succeeds_and_matches_rollout():
    env = senv.make_env(**SMALL)
    env.reset(seed=0)
    terminated = truncated = False
    steps = 0
    for action in expert_actions(env):
        obs, reward, terminated, truncated, info = env.step(action)
        steps += 1
        if terminated or truncated:
            break
    assert terminated and not truncated and steps < env.max_episode_steps
    assert info["success"] and info["is_success"]
    assert reward >= 0.95
    assert info["events"] == []
    # the env drives the same core as the generator: its trace equals run_program's bit for bit
    ref = run_program(make_core(env.scene, env.fps), make_ik(), env.task.expert_program(env.scene.layout),
                      len(env.trace), keep_snapshots=False)
    for qa, qb in zip(ref.trace.qpos, env.trace.qpos, strict=True):
        np.testing.assert_array_equal(qa, qb)


def test_pixels_observation_and_render():
    env = senv.make_env(pixels=True, render_mode="rgb_array", **SMALL)
    obs, _ = env.reset(seed=2)
    assert set(obs["pixels"]) == {"left", "right", "wrist"}
    for view, img in obs["pixels"].items():
        assert img.shape == (64, 64, 3) and img.dtype == np.uint8, view
        assert img.std() > 0, view  # not a blank image
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    frame = env.render()
    np.testing.assert_array_equal(frame, obs["pixels"]["left"])
    env.close()
    env.close()  # closing twice is allowed


def test_render_without_pixels():
    env = senv.make_env(render_mode="rgb_array", **SMALL)
    env.reset(seed=4)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.step(env.action_space.sample())
    env.reset(seed=5)  # a new scene gets a new renderer
    assert env.render().shape == (64, 64, 3)
    env.close()
    quiet = senv.make_env(**SMALL)
    quiet.reset(seed=4)
    with pytest.warns(UserWarning, match="render_mode"):
        assert quiet.render() is None
