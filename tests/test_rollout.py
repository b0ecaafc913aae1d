"""Policies in the loop: tiny policies defined here, the shipped experts, ``simfail rollout``
(labels, determinism, check/evaluate, bad input) and the LeRobot adapter."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from simfail import cli
from simfail.core.robot import HOME_QPOS, PandaIK, topdown_quat
from simfail.core.rollout import frame_count, run_program
from simfail.core.runner import SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.task import get_task
from simfail.dataset.reader import SimfailDataset
from simfail.errors import ConfigError, UnknownNameError
from simfail.policy import PolicyError, PolicyNeeds, load_policy, register_policy
from simfail.policy.rollout import RolloutConfig, load_policies, rollout_group

SMALL = ["render.width=64", "render.height=64", "progress=false"]
HOME = np.concatenate([HOME_QPOS, [0.0]])


# ------------------------------------------------------------------ tiny policies


@register_policy("test_random")
class RandomPolicy:
    """Uniform random joint targets near home and a random gripper command."""

    def reset(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def act(self, observation):
        return np.concatenate([HOME_QPOS + self.rng.uniform(-0.4, 0.4, 7), [self.rng.uniform(0, 1)]])


@register_policy("test_constant")
class ConstantPolicy:
    """Holds the home pose with the gripper open: touches nothing, does nothing."""

    def reset(self, seed: int) -> None:
        pass

    def act(self, observation):
        return HOME.copy()


@register_policy("test_into_cup")
class IntoCupPolicy:
    """Drives the closed gripper through the cup (pick_place's obstacle, objects entry 2)."""

    def reset(self, seed: int) -> None:
        self.ik = PandaIK()
        self.ik.reset(HOME_QPOS)
        self.t = 0

    def act(self, observation):
        self.t += 1
        cup = np.asarray(observation["objects"], float).reshape(-1, 7)[2, :3]
        start = np.array([0.40, 0.0, 0.35])
        goal = np.array([cup[0], cup[1], 0.06])
        w = min(1.0, self.t / 25.0)
        q = self.ik.solve(start + w * (goal - start) + [0.0, 0.0, 0.0], topdown_quat(0.0))
        return np.concatenate([q, [1.0]])


@register_policy("test_raises")
class RaisingPolicy:
    def reset(self, seed: int) -> None:
        self.n = 0

    def act(self, observation):
        self.n += 1
        if self.n == 4:
            raise RuntimeError("boom")
        return HOME.copy()


@register_policy("test_bad_output")
class BadOutputPolicy:
    """Returns a bad action at step 2: ``kind`` = shape | nan | range."""

    def __init__(self, kind: str = "shape"):
        self.kind = kind

    def reset(self, seed: int) -> None:
        self.n = 0

    def act(self, observation):
        self.n += 1
        if self.n < 3:
            return HOME.copy()
        if self.kind == "shape":
            return np.zeros(7)
        a = HOME.copy()
        if self.kind == "nan":
            a[3] = np.nan
        else:
            a[7] = 1.5
        return a


class TinyLeRobot:
    """Implements LeRobot's select_action interface; records the batches it saw."""

    def __init__(self):
        import torch

        self.net = torch.nn.Linear(9, 8)
        torch.nn.init.zeros_(self.net.weight)
        with torch.no_grad():
            self.net.bias.copy_(torch.as_tensor(HOME, dtype=torch.float32))
        self.batches = []
        self.resets = 0

    def reset(self):
        self.resets += 1

    def eval(self):
        return self

    def select_action(self, batch):
        self.batches.append({k: (v.clone() if hasattr(v, "clone") else v) for k, v in batch.items()})
        return self.net(batch["observation.state"])


def make_tiny_lerobot():
    return TinyLeRobot()


# ------------------------------------------------------------------ helpers


def _group(task_name, policies, *, samples=1, include_expert=False, group=0, **cfg_kw):
    task = get_task(task_name)
    cfg = RolloutConfig(task=task_name, policies=list(policies), samples=samples, include_expert=include_expert,
                        width=64, height=64, progress=False, **cfg_kw)
    cfg.validate()
    runner = SceneRunner(task, cfg.fps, StageConfig(width=64, height=64))
    pols = load_policies(cfg, task, list(runner.prototype.layout.tracked))
    return rollout_group(task, cfg, pols, group, runner, render=False)


def _by_variant(res):
    return {e.variant: e for e in res.episodes}


def run_cli(capsys, argv):
    code = cli.main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def _digest(root: Path) -> dict[str, str]:
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in (".parquet", ".mp4"):
            out[str(p.relative_to(root))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


# ------------------------------------------------------------------ labels of tiny policies


def test_tiny_policies_get_the_expected_labels():
    res = _group("pick_place", ["test_random", "test_constant", "test_into_cup"], include_expert=True)
    eps = _by_variant(res)
    assert eps["expert"].success and eps["expert"].policy == "scripted_expert"
    for name in ("test_random#0", "test_constant#0", "test_into_cup#0"):
        assert not eps[name].success, name
        assert eps[name].score < eps["expert"].score, name
        assert eps[name].policy == name.split("#")[0]
    # the constant policy never moves: nothing is touched, nothing is moved
    assert not any(e.category == "safety" for e in eps["test_constant#0"].failures)
    # driving the gripper through the cup: a safety event on the cup, seen by the physics
    cup = [e for e in eps["test_into_cup#0"].failures if "obstacle" in e.objects]
    assert cup and {e.type for e in cup} & {"collision", "topple"}, eps["test_into_cup#0"].failures
    assert any(e.category == "safety" for e in cup)
    assert eps["test_into_cup#0"].columns["reward"][-1] == 0.0  # a safety event zeroes the reward
    # ranks: the expert first
    assert eps["expert"].rank == 1
    assert all(e.rank > 1 for v, e in eps.items() if v != "expert")


def test_rollout_events_carry_camera_visibility():
    """Rollout labels visibility through generate's render worker hook: every event of a
    rendered policy episode has its per-view visible frames (none before its physics onset),
    and with visibility=False they stay uncomputed."""
    from simfail.core.episode import VIEWS

    task = get_task("pick_place")
    cfg = RolloutConfig(task="pick_place", policies=["test_into_cup"], samples=1, include_expert=True,
                        width=64, height=64, progress=False)
    cfg.validate()
    runner = SceneRunner(task, cfg.fps, StageConfig(width=64, height=64))
    pols = load_policies(cfg, task, list(runner.prototype.layout.tracked))
    res = rollout_group(task, cfg, pols, 0, runner, render=True)
    events = [e for ep in res.episodes for e in ep.failures]
    assert events, "driving into the cup raises events"
    for e in events:
        assert e.visible_frames is not None and set(e.visible_frames) == set(VIEWS), e
        seen = [v for v in VIEWS if e.visible_frames[v] is not None]
        assert list(e.visible_in) == seen
        if seen:
            assert e.visible_frame == min(e.visible_frames[v] for v in seen) >= e.onset_frame
    assert any(e.visible_in for e in events), "the cup collision is on screen in some view"
    off = rollout_group(task, cfg, pols, 0, runner, render=True, visibility=False)
    assert all(e.visible_in is None and e.visible_frames is None for ep in off.episodes for e in ep.failures)
    # visibility moves only the camera-dependent labels, never what the physics saw
    assert [(e.type, e.onset_frame) for ep in res.episodes for e in sorted(ep.failures, key=lambda e: e.type)] == \
        [(e.type, e.onset_frame) for ep in off.episodes for e in sorted(ep.failures, key=lambda e: e.type)]


def test_closed_loop_expert_equals_open_loop_when_nothing_moves():
    res = _group("pick_place", ["expert"], samples=2, include_expert=True)
    eps = _by_variant(res)
    for v in ("expert#0", "expert#1"):
        np.testing.assert_array_equal(eps[v].columns["sim.qpos"], eps["expert"].columns["sim.qpos"])
        assert eps[v].success and eps[v].score == 100.0 and not eps[v].failures


def test_closed_loop_expert_follows_a_moved_cube():
    """The cube starts 5 cm away from where the layout says: the open-loop program closes on
    nothing, the closed-loop expert re-targets its grasp and succeeds."""
    from simfail.core.builder import make_ik
    from simfail.policy.base import EpisodeContext
    from simfail.policy.rollout import action_box, run_policy
    from simfail.generate import expert_start, GroupTiming

    task = get_task("pick_place")
    runner = SceneRunner(task, 10, StageConfig(width=64, height=64))
    n = frame_count(task.duration, 10)
    start = expert_start(task, 0, 0, runner, n, GroupTiming())
    adr = runner.core.joint_index["object_free"][0]
    toward_robot = -np.sign(runner.scene.qpos0[adr + 1]) * 0.05
    runner.scene.qpos0[adr + 1] += toward_robot  # move the cube sideways before the episode
    runner.reset_state()
    open_loop = run_program(runner, make_ik(), task.expert_program(runner.scene.layout), n)
    ok_open, _ = task.detect(open_loop.trace, runner.scene.layout)
    cfg = RolloutConfig(policy="expert", width=64, height=64, progress=False)
    (lp,) = load_policies(cfg, task, list(runner.prototype.layout.tracked))
    low, high = action_box(runner)
    ctx = EpisodeContext(task.name, "", 10, n, start.seed, low, high, layout=runner.scene.layout, task_obj=task)
    run = run_policy(runner, lp, ctx, 0, episode_key=0)
    ok_closed, events = task.detect(run.trace, runner.scene.layout)
    assert not ok_open
    assert ok_closed, events


def test_noisy_expert_levels_are_graded_and_seeded():
    res = _group("pick_place", ["expert", "low=noisy_expert", "high=noisy_expert"], samples=2,
                 policy_kwargs={"low.level": 0.5, "high.level": 3.0})
    eps = _by_variant(res)
    mean = {p: np.mean([e.score for v, e in eps.items() if v.startswith(p + "#")]) for p in ("expert", "low", "high")}
    assert mean["expert"] >= mean["low"] >= mean["high"], mean
    assert mean["high"] < 100.0
    assert eps["high#0"].perturbation["kwargs"] == {"level": 3.0}
    # two samples of one policy differ (different policy seeds)
    assert not np.array_equal(eps["high#0"].columns["action"], eps["high#1"].columns["action"])


# ------------------------------------------------------------------ the command


@pytest.fixture(scope="module")
def rollout_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("rollouts") / "ds"
    code = cli.main(["rollout", "policies=[expert,noisy=noisy_expert]", "task=pick_place", "seeds=2", "samples=1",
                     "include_expert=true", f"out={out}", *SMALL])
    assert code == 0
    return out


def test_rollout_dataset_passes_check_and_evaluate(rollout_dir, capsys, tmp_path):
    ds = SimfailDataset(rollout_dir)
    assert ds.check() == []
    policies = sorted({ds.episode(i)["simfail.policy"] for i in range(len(ds))})
    assert policies == ["expert", "noisy", "scripted_expert"]
    assert len(ds.groups()) == 2 and all(len(v) == 3 for v in ds.groups().values())
    code, out, err = run_cli(capsys, ["evaluate", "model=oracle", f"data={rollout_dir}", f"out={tmp_path / 'rep'}",
                                      "bootstrap=10"])
    assert code == 0, err
    assert (tmp_path / "rep" / "metrics.json").is_file()


def test_same_seeds_give_the_same_bytes_and_resume(rollout_dir, tmp_path, capsys):
    again = tmp_path / "again"
    assert cli.main(["rollout", "policies=[expert,noisy=noisy_expert]", "task=pick_place", "seeds=1", "samples=1",
                     "include_expert=true", f"out={again}", *SMALL]) == 0
    assert cli.main(["rollout", "policies=[expert,noisy=noisy_expert]", "task=pick_place", "seeds=2", "samples=1",
                     "include_expert=true", f"out={again}", "resume=true", *SMALL]) == 0
    a, b = _digest(rollout_dir), _digest(again)
    assert a and a == b


def test_summary_table_per_policy(rollout_dir, capsys):
    # the fixture printed the table; rerunning prints it again for a new folder
    from simfail.policy.rollout import summarize, summary_table

    res = _group("pick_place", ["test_constant"], samples=2)
    s = summarize([res])
    text = summary_table({**s, "seconds": 1.0, "out": "x"})
    assert "test_constant" in text and "0%" in text and "score p10/p50/p90" in text
    p = s["policies"]["test_constant"]
    assert p["episodes"] == 2 and p["success"] == 0
    # every failed episode carries an event (the verdict rule), counted per failed episode
    assert p["failed_no_event"] == 0 and p["failures_of_failed"]
    assert all(n <= 2 for n in p["failures_of_failed"].values()) and p["failures_of_failed"].items() <= p["failures"].items()


# ------------------------------------------------------------------ bad input


@pytest.mark.parametrize("spec,needle", [
    ("test_raises", "raised RuntimeError at step 3: boom"),
    ("test_bad_output", "must have shape (8,), got (7,)"),
])
def test_a_bad_policy_is_one_error_and_writes_nothing(capsys, tmp_path, spec, needle):
    out = tmp_path / "ds"
    code, _, err = run_cli(capsys, ["rollout", f"policy={spec}", "seeds=1", "samples=1", f"out={out}", *SMALL])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("simfail: error: policy "), err
    assert needle in lines[0] and "scene seed" in lines[0] and "policy seed" in lines[0]
    assert not out.exists()


@pytest.mark.parametrize("kind,needle", [("nan", "non-finite"), ("range", "outside its range")])
def test_nan_and_out_of_range_actions_are_errors(kind, needle):
    with pytest.raises(PolicyError, match=needle) as info:
        _group("pick_place", ["test_bad_output"], policy_kwargs={"kind": kind})
    assert "'test_bad_output'" in str(info.value) and "at step 2" in str(info.value)


def test_on_policy_error_skip_counts_the_episode(tmp_path, capsys):
    out = tmp_path / "ds"
    code, text, err = run_cli(capsys, ["rollout", "policies=[test_constant,test_raises]", "seeds=1", "samples=2",
                                       f"out={out}", "on_policy_error=skip", *SMALL])
    assert code == 0, err
    ds = SimfailDataset(out)
    assert ds.check() == []
    assert sorted(ds.episode(i)["simfail.variant"] for i in range(len(ds))) == ["test_constant#0", "test_constant#1"]
    import json

    meta = json.loads((out / "meta" / "simfail.json").read_text())
    assert meta["rollout"]["policy_errors_skipped"] == 2
    assert len(meta["groups"]["0"]["policy_errors"]) == 2
    row = next(line for line in text.splitlines() if line.startswith("test_raises"))
    assert row.split()[1] == "0" and row.split()[5] == "2"  # 0 episodes, 2 errors skipped


def test_unknown_policy_lists_the_known_ones(capsys, tmp_path):
    code, _, err = run_cli(capsys, ["rollout", "policy=nope", f"out={tmp_path / 'x'}", *SMALL])
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "unknown policy 'nope'" in err and "expert" in err and "noisy_expert" in err
    with pytest.raises(UnknownNameError):
        load_policy("nope")


def test_import_error_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(capsys, ["rollout", "policy=no_such_module_xyz:make", f"out={tmp_path / 'x'}", *SMALL])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "cannot import 'no_such_module_xyz'" in err
    with pytest.raises(ConfigError, match="bad arguments"):
        load_policy("expert", nonsense=1)


def test_bad_settings_are_one_error(capsys, tmp_path):
    for argv, needle in ((["seeds=0"], "seeds must be"), (["on_policy_error=maybe"], "unknown on_policy_error"),
                         (["policies=[noisy_expert,noisy_expert]"], "labels must be unique"),
                         (["colour=red"], "unknown rollout setting"), (["samples=abc"], "samples: "),
                         (["render=maybe"], "render: "), (["policies=[a=,b]"], "bad policy entry"),
                         (["task=all"], "unknown task 'all'")):
        code, _, err = run_cli(capsys, ["rollout", f"out={tmp_path / 'x'}", *argv, *SMALL])
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "x").exists()


# ------------------------------------------------------------------ LeRobot adapter


def test_lerobot_adapter_feeds_lerobot_batches():
    import torch

    from simfail.policy.lerobot import LeRobotAdapter

    inner = TinyLeRobot()
    pol = LeRobotAdapter(inner, views=("left", "wrist"), image_size=(48, 32))
    assert pol.needs == PolicyNeeds(views=("left", "wrist"), image_size=(48, 32))
    task = get_task("pick_place")
    cfg = RolloutConfig(policy="expert", width=64, height=64, progress=False)
    runner = SceneRunner(task, 10, StageConfig(width=64, height=64))
    from simfail.policy.rollout import LoadedPolicy, PolicySpec
    from simfail.core.observation import Observer

    lp = LoadedPolicy(PolicySpec("tiny", "tiny", {}), pol, pol.needs,
                      Observer(list(runner.prototype.layout.tracked), ("left", "wrist"), 32, 48, pixels=True))
    res = rollout_group(task, cfg.__class__(task="pick_place", samples=1, width=64, height=64), [lp], 0, runner,
                        render=False)
    (ep,) = res.episodes
    assert inner.resets == 1 and len(inner.batches) == ep.length - 1
    b = inner.batches[0]
    assert set(b) == {"observation.images.left", "observation.images.wrist", "observation.state", "task"}
    img = b["observation.images.left"]
    assert img.dtype == torch.float32 and tuple(img.shape) == (1, 3, 48, 32)
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and float(img.std()) > 0
    assert tuple(b["observation.state"].shape) == (1, 9)
    assert b["task"] == [ep.instruction] and ep.instruction
    np.testing.assert_allclose(ep.columns["action"][0], HOME, atol=1e-6)
    lp.observer.close()


def test_lerobot_registered_factory_builds_a_target(capsys, tmp_path):
    pol = load_policy("lerobot", target="test_rollout:make_tiny_lerobot", views=["right"])
    assert pol.needs.views == ("right",)
    with pytest.raises(PolicyError, match="exactly one of"):
        load_policy("lerobot")


# ------------------------------------------------------------------ chunks, runner state, bench


@register_policy("test_chunked")
class ChunkedPolicy:
    """Returns three actions per call (action chunking); ``bad=True`` returns two."""

    needs = PolicyNeeds(chunk=3)

    def __init__(self, bad: bool = False):
        self.bad = bad

    def reset(self, seed: int) -> None:
        self.calls = 0

    def act(self, observation):
        self.calls += 1
        return np.tile(HOME, (2 if self.bad else 3, 1))


def test_action_chunks_are_executed_one_per_frame():
    res = _group("pick_place", ["test_chunked"])
    (ep,) = res.episodes
    assert ep.length == 81 and res.policy_time.act_calls == 27  # 80 steps / 3 per call
    with pytest.raises(PolicyError, match=r"must have shape \(3, 8\), got \(2, 8\)"):
        _group("pick_place", ["test_chunked"], policy_kwargs={"bad": True})


def test_runner_snapshot_restore_is_exact():
    task = get_task("pick_place")
    runner = SceneRunner(task, 10, StageConfig(width=64, height=64))
    runner.load(7)
    runner.start(HOME, "x")
    rng = np.random.default_rng(0)
    actions = [np.concatenate([HOME_QPOS + rng.uniform(-0.3, 0.3, 7), [rng.uniform()]]) for _ in range(12)]
    for a in actions[:5]:
        runner.step(a, "x")
    snap = runner.snapshot()
    for a in actions[5:]:
        runner.step(a, "x")
    first = runner.trace
    runner.restore(snap)
    assert len(runner.trace) == 6
    for a in actions[5:]:
        runner.step(a, "x")
    for qa, qb in zip(first.qpos, runner.trace.qpos, strict=True):
        np.testing.assert_array_equal(qa, qb)
    np.testing.assert_array_equal(np.array(first.contact_impulse), np.array(runner.trace.contact_impulse))


def test_bench_mode_rollout_reports_both(capsys, tmp_path):
    import json

    path = tmp_path / "bench.json"
    code, out, err = run_cli(capsys, ["bench", "mode=rollout", "groups=1", "failures=[drop]", f"json={path}",
                                      *SMALL])
    assert code == 0, err
    r = json.loads(path.read_text())
    assert r["generate"]["episodes"] == r["rollout"]["episodes"] == 2
    assert r["rollout"]["policy_seconds"] > 0 and r["ratio"] > 0
    assert "generate" in out and "rollout (policy excluded)" in out and "episodes/h" in out


def test_rollout_settings_are_a_typed_schema(capsys):
    """``simfail rollout --help`` comes from RolloutConfig; generate's spellings and the
    ``policy.KEY=VALUE`` mapping land in the typed config."""
    from simfail.commands import build_config

    code, text, _ = run_cli(capsys, ["rollout", "--help"])
    assert code == 0
    for key in ("policy", "policies", "seeds", "samples", "include_expert", "on_policy_error", "json", "render"):
        assert f"\n  {key}  (" in text, key
    cfg = build_config("rollout", ["policies=[expert,noisy=noisy_expert]", "policy.noisy.level=2", "render=false",
                                   "render.width=64", "task=stack", "json=s.json"])
    assert isinstance(cfg, RolloutConfig) and cfg.policies == ["expert", "noisy=noisy_expert"]
    assert cfg.policy_kwargs == {"noisy.level": 2} and cfg.render is False and cfg.width == 64
    assert cfg.task == "stack" and cfg.json == "s.json"


def test_bench_mode_is_a_checked_field(capsys):
    from simfail.commands import build_config
    from simfail.config import BenchConfig

    cfg = build_config("bench", ["mode=rollout", "policy=noisy_expert", "policy.level=2"])
    assert isinstance(cfg, BenchConfig) and cfg.mode == "rollout" and cfg.policy_kwargs == {"level": 2}
    assert build_config("bench", []).mode == "generate"
    for argv, needle in ((["mode=fast"], "unknown mode value 'fast'"), (["mode=rollout", "policy=nope"], "unknown policy"),
                         (["mode=rollout", "repeats=2"], "runs once"), (["policy=noisy_expert"], "mode=rollout only")):
        code, _, err = run_cli(capsys, ["bench", *argv, "--cfg"])
        assert code == 2 and needle in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_policy_table_tool_reads_rollout_summaries(capsys, tmp_path):
    """tools/policy_table.py (the docs' bc / noisy_expert table) builds its rows from the
    summaries ``simfail rollout json=`` saves: task, policy setting, success, events."""
    import importlib.util
    import json

    path = tmp_path / "s.json"
    code, _, err = run_cli(capsys, ["rollout", "policies=[n1=noisy_expert,c=test_constant]", "policy.n1.level=1",
                                    "seeds=1", "samples=1", "render=false", f"json={path}", *SMALL])
    assert code == 0, err
    s = json.loads(path.read_text())
    assert s["task"] == "pick_place" and s["policy_specs"]["n1"] == {"spec": "noisy_expert", "kwargs": {"level": 1}}
    spec = importlib.util.spec_from_file_location("policy_table", Path(__file__).parents[1] / "tools" / "policy_table.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.rows([str(path)])
    assert [r[:3] for r in rows] == [["pick_place", "noisy_expert", "level 1"], ["pick_place", "test_constant", ""]]
    c = s["policies"]["c"]
    assert rows[1][3] == "0/1 (0%)" and rows[1][5] == str(c["failed_no_event"]) == "0"
    top = max(c["failures_of_failed"].items(), key=lambda kv: kv[1])
    assert f"{top[0]} ({top[1]})" in rows[1][4]
