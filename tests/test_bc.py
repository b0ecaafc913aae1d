"""The ``bc`` policy: ``simfail train-policy``, its checkpoints, and the policy acting in the env.

One tiny dataset (two pick/place expert episodes, 64x64) is written once for the module; every
training run is a few steps of a small network.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simfail.cli import main
from simfail.errors import ConfigError

TINY = ["steps=12", "batch_size=16", "hidden=16", "layers=1", "chunk=3", "width=4", "progress=false"]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bc") / "pick"
    argv = ["generate", "task=pick_place", "groups=2", "failures.failure_variants=false", "render.width=64",
            "render.height=64", "seed=0", f"out={out}", "progress=false"]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def mlp(data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bc") / "mlp"
    assert main(["train-policy", f"data={data}", f"out={out}", *TINY]) == 0
    return out


def _train(data, out, *extra) -> Path:
    assert main(["train-policy", f"data={data}", f"out={out}", *TINY, *extra]) == 0
    return Path(out) / "policy.pt"


# ----------------------------------------------------------------------------- data

def test_observations_rebuilt_from_qpos_equal_the_envs():
    """tcp_pos and objects recomputed from a stored qpos are the env's observation, bit for bit."""
    from simfail.core.builder import build_scene, make_core
    from simfail.core.scene import StageConfig
    from simfail.env import SimfailEnv
    from simfail.policy.bc_data import observation_from_qpos

    env = SimfailEnv("pick_place", width=64, height=64)
    obs, _ = env.reset(options={"scene_seed": 7})
    rng = np.random.default_rng(0)
    seen = [obs]
    for _ in range(6):
        obs, *_ = env.step(rng.uniform(env.action_space.low, env.action_space.high))
        seen.append(obs)
    core = make_core(build_scene(env.task, 7, StageConfig(width=64, height=64)), env.fps)
    for q, o in zip(env.trace.qpos, seen):
        rebuilt = observation_from_qpos(core, env.object_names, np.asarray(q))
        np.testing.assert_array_equal(rebuilt["tcp_pos"], o["tcp_pos"])
        np.testing.assert_array_equal(rebuilt["objects"], o["objects"])


def test_demos_are_the_successful_episodes_with_chunk_targets(data):
    from simfail.policy.bc_data import load_demos
    from simfail.policy.bc_train import build_training_set

    ds = load_demos(str(data))
    assert ds.task == "pick_place" and len(ds.demos) == 2 and ds.n_objects >= 2
    d = ds.demos[0]
    assert d.state.shape == (len(d), 9) and d.objects.shape == (len(d), 7 * ds.n_objects)
    ts = build_training_set(ds, "mlp", 3, (), "delta")
    # chunk k of frame t is the action of frame t+k minus the joint angles at t (clamped at the end)
    np.testing.assert_allclose(ts.target[0, 2, :7], d.action[2, :7] - d.state[0, :7], atol=1e-6)
    np.testing.assert_array_equal(ts.target[len(d) - 1, 2], np.concatenate([d.action[-1, :7] - d.state[-1, :7], d.action[-1, 7:]]))
    tcp = build_training_set(ds, "mlp", 3, (), "tcp")
    np.testing.assert_allclose(tcp.target[5, 0, :7], d.action_tcp[5], atol=1e-6)
    assert np.all(tcp.target[:, :, 3:7].reshape(-1, 4) @ np.array([0, 1, 0, 0]) >= 0)  # one quaternion sign


# ----------------------------------------------------------------------------- training, checkpoints

def test_train_writes_a_checkpoint_that_round_trips(mlp, data):
    from simfail.policy.bc import load_bc_checkpoint, make_bc_policy

    assert sorted(p.name for p in mlp.iterdir()) == ["config.json", "policy.pt", "train_log.json"]
    ck = load_bc_checkpoint(mlp)
    assert ck["task"] == "pick_place" and ck["model"]["kind"] == "mlp" and ck["train"]["summary"]["demos"] == 2
    a, b = make_bc_policy(str(mlp)), make_bc_policy(str(mlp / "policy.pt"))
    obs = _first_observation()
    a.reset(0), b.reset(0)
    np.testing.assert_array_equal(a.act(obs), b.act(obs))


def test_same_seed_same_bytes_other_seed_other_weights(data, tmp_path):
    one = _train(data, tmp_path / "a", "seed=3")
    two = _train(data, tmp_path / "b", "seed=3")
    three = _train(data, tmp_path / "c", "seed=4")
    assert one.read_bytes() == two.read_bytes()
    assert one.read_bytes() != three.read_bytes()


def test_interrupted_run_resumes_to_the_same_bytes(data, tmp_path, monkeypatch, capsys):
    from simfail.policy import bc_train

    straight = _train(data, tmp_path / "straight", "checkpoint_every=5")
    real_save = bc_train._save

    def save_then_die(path, payload):
        real_save(path, payload)
        if path.name == bc_train.STATE_FILE and payload["step"] == 10:
            raise KeyboardInterrupt

    monkeypatch.setattr(bc_train, "_save", save_then_die)
    argv = ["train-policy", f"data={data}", f"out={tmp_path / 'cut'}", *TINY, "checkpoint_every=5"]
    assert main(argv) == 130
    assert not (tmp_path / "cut" / "policy.pt").exists() and (tmp_path / "cut" / "train_state.pt").is_file()
    monkeypatch.setattr(bc_train, "_save", real_save)
    assert "resume=true" in _error(capsys, argv)  # a second plain run refuses to overwrite the interrupted one
    assert main([*argv, "resume=true"]) == 0
    assert "resumed from step" in capsys.readouterr().out
    assert (tmp_path / "cut" / "policy.pt").read_bytes() == straight.read_bytes()
    assert not (tmp_path / "cut" / "train_state.pt").exists()


def test_resume_with_other_settings_is_refused(data, tmp_path, monkeypatch, capsys):
    from simfail.policy import bc_train

    real_save = bc_train._save

    def save_then_die(path, payload):
        real_save(path, payload)
        if path.name == bc_train.STATE_FILE:
            raise KeyboardInterrupt

    monkeypatch.setattr(bc_train, "_save", save_then_die)
    argv = ["train-policy", f"data={data}", f"out={tmp_path / 'cut'}", *TINY, "checkpoint_every=5"]
    assert main(argv) == 130
    monkeypatch.setattr(bc_train, "_save", real_save)
    assert "settings differ" in _error(capsys, [*argv, "resume=true", "lr=0.5"])


# ----------------------------------------------------------------------------- acting in the env

def _first_observation(**env_kwargs):
    from simfail.env import SimfailEnv

    env = SimfailEnv("pick_place", width=64, height=64, **env_kwargs)
    obs, _ = env.reset(options={"scene_seed": 11})
    return obs


@pytest.mark.parametrize("actions", ["tcp", "delta"])
def test_mlp_policy_acts_validly_in_the_env(data, tmp_path, actions):
    from simfail.env import SimfailEnv
    from simfail.policy.bc import make_bc_policy
    from simfail.policy.evaluate import evaluate_policy, heldout_seeds

    policy = make_bc_policy(str(_train(data, tmp_path / actions, f"actions={actions}").parent))
    env = SimfailEnv("pick_place", width=64, height=64)
    obs, _ = env.reset(options={"scene_seed": 5})
    policy.reset(5)
    for _ in range(4):
        a = policy.act(obs)
        assert a.shape == (8,) and a.dtype == np.float32 and np.all(np.isfinite(a))
        assert env.action_space.contains(np.clip(a, env.action_space.low, env.action_space.high))
        assert a[7] in (0.0, 1.0)  # snapped to the expert's open / closed commands
        obs, *_ = env.step(a)
    result = evaluate_policy(policy, "pick_place", heldout_seeds(2), max_steps=6)
    assert result.n == 2 and len(result.episodes) == 2
    assert {e.seed for e in result.episodes} == set(heldout_seeds(2))
    assert 0.0 <= result.success_rate <= 1.0
    assert all(0.0 <= e.progress <= 1.0 and not e.success for e in result.episodes)  # 6 frames cannot succeed


def test_cnn_trains_and_acts_on_camera_images(data, tmp_path):
    from simfail.policy.bc import make_bc_policy
    from simfail.policy.evaluate import evaluate_policy, heldout_seeds

    out = _train(data, tmp_path / "cnn", "model=cnn", "views=[left]", "steps=3").parent
    policy = make_bc_policy(str(out))
    assert policy.views == ("left",) and policy.image_size == (64, 64)
    with pytest.raises(ConfigError, match="camera images"):
        policy.act(_first_observation())  # no pixels in the observation
    obs = _first_observation(pixels=True, views=("left",))
    a = policy.act(obs)
    assert a.shape == (8,) and np.all(np.isfinite(a))
    result = evaluate_policy(policy, "pick_place", heldout_seeds(1), max_steps=3)
    assert result.n == 1


def test_heldout_seeds_are_not_training_seeds(data):
    from simfail.dataset.reader import SimfailDataset
    from simfail.policy.evaluate import heldout_seeds

    ds = SimfailDataset(data)
    assert not {int(ds.episode(e)["simfail.seed"]) for e in range(ds.num_episodes)} & set(heldout_seeds(50))


def test_evaluate_names_a_bad_policy_seed_and_step():
    from simfail.policy import PolicyError
    from simfail.policy.evaluate import evaluate_policy

    class Bad:
        name = "bad"

        def __init__(self, out):
            self.out, self.n = out, 0

        def reset(self, seed):
            self.n = 0

        def act(self, obs):
            self.n += 1
            hold = np.r_[np.asarray(obs["state"], np.float64)[:7], 0.0]  # keep the arm where it is: valid
            return hold if self.n < 3 else self.out

    for out, what in ((np.zeros(5), "shape"), (np.full(8, np.nan), "non-finite"), (np.full(8, 9.0), "outside")):
        with pytest.raises(PolicyError, match=f"policy bad .*{what}.*step 2|policy bad .*step 2.*{what}"):
            evaluate_policy(Bad(out), "pick_place", [3], max_steps=4)


# ----------------------------------------------------------------------------- bad input

def _error(capsys, argv) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: "), err
    return err[0]


def test_bad_inputs_give_one_clear_error(data, mlp, tmp_path, capsys):
    out = f"out={tmp_path / 'x'}"
    assert "is not a simfail dataset" in _error(capsys, ["train-policy", f"data={tmp_path / 'none'}", out])
    assert "steps must be in [1" in _error(capsys, ["train-policy", f"data={data}", out, "steps=0"])
    assert "not a whole number" in _error(capsys, ["train-policy", f"data={data}", out, "steps=many"])
    assert "unknown train-policy setting 'stpes'" in _error(capsys, ["train-policy", f"data={data}", out, "stpes=3"])
    assert "unknown model value 'rnn'" in _error(capsys, ["train-policy", f"data={data}", out, "model=rnn"])
    assert "data= is required" in _error(capsys, ["train-policy", out])
    assert "only 2 successful" in _error(capsys, ["train-policy", f"data={data}", out, "demos=5", *TINY])
    assert "exists; pass overwrite=true" in _error(capsys, ["train-policy", f"data={data}", f"out={mlp}", *TINY])
    assert not (tmp_path / "x").exists()  # nothing written by any refused run


def test_a_dataset_without_successes_is_refused(data, tmp_path, capsys):
    import shutil

    failed = tmp_path / "failed"
    shutil.copytree(data, failed)
    for path in (failed / "meta" / "episodes").rglob("*.parquet"):
        t = pq.read_table(path)
        i = t.column_names.index("simfail.success")
        pq.write_table(t.set_column(i, "simfail.success", pa.array([False] * t.num_rows)), path)
    msg = _error(capsys, ["train-policy", f"data={failed}", f"out={tmp_path / 'o'}", *TINY])
    assert "no successful pick_place episode" in msg and not (tmp_path / "o").exists()


def test_missing_or_corrupt_checkpoints_are_clear_errors(mlp, tmp_path):
    from simfail.policy.bc import make_bc_policy

    with pytest.raises(ConfigError, match="does not exist"):
        make_bc_policy(str(tmp_path / "nothing"))
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "policy.pt").write_bytes((mlp / "policy.pt").read_bytes()[:200])
    with pytest.raises(ConfigError, match="cannot read the bc checkpoint"):
        make_bc_policy(str(bad))
    with pytest.raises(ConfigError, match="ensemble_decay"):
        make_bc_policy(str(mlp), ensemble_decay="fast")


# ----------------------------------------------------------------------------- rollout

def test_bc_is_registered_and_declares_its_needs(mlp):
    from simfail.policy import PolicyNeeds, available_policies, load_policy

    assert "bc" in available_policies()
    policy = load_policy("bc", checkpoint=str(mlp))
    assert policy.needs == PolicyNeeds(views=(), image_size=None, chunk=1, privileged=False)


def test_rollout_policy_bc_writes_a_dataset_that_passes_check(mlp, tmp_path, capsys):
    out = tmp_path / "bc_rollouts"
    argv = ["rollout", "policy=bc", f"policy.checkpoint={mlp}", "task=pick_place", "seeds=1", "samples=1",
            f"out={out}", "render.width=64", "render.height=64", "progress=false"]
    assert main(argv) == 0
    assert main(["check", str(out)]) == 0
    from simfail.dataset.reader import SimfailDataset

    ds = SimfailDataset(str(out))
    assert len(ds) == 1
    capsys.readouterr()
    # the policy on another task than it was trained on: one clear line, no dataset
    msg = _error(capsys, [*argv[:3], "task=stack", *argv[4:6], f"out={tmp_path / 'wrong'}", *argv[7:]])
    assert "trained on pick_place, not stack" in msg and not (tmp_path / "wrong" / "meta").exists()
