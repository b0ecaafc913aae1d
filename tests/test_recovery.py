"""Closed-loop continuation after a perturbation, the re-grasping expert, and the recovered event
(docs/recovery.md)."""

from __future__ import annotations

import numpy as np
import pytest

from simfail import cli
from simfail.core.rollout import RolloutResult, frame_count
from simfail.core.runner import SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.task import get_task, task_names
from simfail.counterfactual.closed_loop import PolicyDriver, policy_driver
from simfail.counterfactual.operators import get_operator
from simfail.counterfactual.replay import branch
from simfail.counterfactual.source import SourceEpisode
from simfail.generate import GroupTiming, _record, expert_start
from simfail.labels.scoring import episode_score
from simfail.policy import PolicyError, register_policy
from simfail.policy.expert import ExpertPolicy
from simfail.policy.rollout import PolicySpec, load_one, run_policy

FPS = 10


class Setup:
    """Group 0's scene of a task (the scene generate uses), its clean expert as a source."""

    def __init__(self, task_name: str, group: int = 0):
        self.task = get_task(task_name)
        self.runner = SceneRunner(self.task, FPS, StageConfig(width=64, height=64))
        self.n = frame_count(self.task.duration, FPS)
        start = expert_start(self.task, 0, group, self.runner, self.n, GroupTiming())
        self.scene = start.scene
        self.expert = _record(self.task, self.scene, start.result, group, "expert", {}, FPS)
        self.source = SourceEpisode.from_expert(self.task, self.scene, start.result, {"group": group},
                                                program=start.program)

    def loaded(self, spec: str = "expert"):
        return load_one(PolicySpec(spec, spec, {}), list(self.runner.prototype.layout.tracked), 64, 64)

    def variant(self, op: str, magnitude: float, continuation: str, rng: int = 0, spec: str = "expert", **params):
        edit = get_operator(op).make_edit(self.source, magnitude, np.random.default_rng(rng), **params)
        lp = self.loaded(spec)
        driver = policy_driver(lp, self.runner, self.n, 0, ("v", op)) if continuation == "closed_loop" else None
        trace, states = branch(self.runner, self.source, edit, self.n, continuation=continuation, driver=driver)
        ep = _record(self.task, self.scene, RolloutResult(trace, states), 0, op, dict(edit.params), FPS)
        return ep, edit, lp


@pytest.fixture(scope="module")
def pick_place():
    return Setup("pick_place")


def _types(ep):
    return [e.type for e in ep.failures]


# ------------------------------------------------------------------ the expert stays clean


@pytest.mark.parametrize("task_name,group", [
    *[(t, 0) for t in task_names()],
    *[pytest.param(t, g, marks=pytest.mark.slow) for t in task_names() for g in (1, 2)],
])
def test_closed_loop_expert_is_a_clean_success_on_every_task(task_name, group):
    """Unperturbed, the re-grasping expert never re-grasps and succeeds with no event (group 0
    of every task in the default suite, groups 1 and 2 with -m slow)."""
    s = Setup(task_name, group)
    lp = s.loaded()
    ctx = policy_driver(lp, s.runner, s.n, 0, 0).context
    run = run_policy(s.runner, lp, ctx, 0, episode_key=(group, "x"))
    ok, events = s.task.detect(run.trace, s.scene.layout)
    assert ok and not events, (task_name, group, events)
    assert lp.policy.regrasps == []


# ------------------------------------------------------------------ recovery


def test_small_offset_recovers_and_a_large_one_fails(pick_place):
    """A 6 cm offset through the descent makes the grasp miss; the closed-loop expert goes back,
    re-grasps and succeeds (a recovered event). A 50 cm offset sweeps the arm through the cup:
    it topples off the table, a safety failure nothing repairs (no recovered event, score 0)."""
    small, _, lp = pick_place.variant("action_offset", 0.5, "closed_loop", rng=0, onset="descend@0.6",
                                      distance=0.06, duration=1.2)
    assert lp.policy.regrasps, "the expert went back for the cube"
    assert small.success and "missed_grasp" in _types(small) and "recovered" in _types(small), small.failures
    assert not any(e.category == "safety" for e in small.failures)
    large, _, _ = pick_place.variant("action_offset", 1.0, "closed_loop", rng=3, onset="descend@0.6",
                                     distance=0.5, duration=1.2)
    assert "recovered" not in _types(large) and {"collision", "topple"} <= set(_types(large)), large.failures
    assert large.score < 50.0 < small.score < pick_place.expert.score


def test_release_in_the_carry_is_regrasped_closed_loop(pick_place):
    """gripper_release early in the carry: open loop the cube is dropped and the task fails;
    closed loop the expert re-grasps it: the drop stays labelled where it happened and a
    recovered event lands after it, on a success scored between the two."""
    closed, edit, lp = pick_place.variant("gripper_release", 0.9, "closed_loop")
    opened, _, _ = pick_place.variant("gripper_release", 0.9, "open_loop")
    assert "drop" in _types(opened) and not opened.success
    assert lp.policy.regrasps and closed.success
    drop = next(e for e in closed.failures if e.type == "drop")
    rec = next(e for e in closed.failures if e.type == "recovered")
    open_drop = next(e for e in opened.failures if e.type == "drop")
    assert drop.onset_frame == open_drop.onset_frame >= edit.onset  # same physics, same frame
    assert rec.category == "quality" and rec.onset_frame > drop.irreversible_frame
    assert closed.columns["progress"][rec.onset_frame] >= closed.columns["progress"][-1] - 0.02
    assert opened.score < closed.score < pick_place.expert.score == 100.0


def test_recovered_score_sits_between_clean_and_unrecovered(pick_place):
    closed, _, _ = pick_place.variant("gripper_release", 0.9, "closed_loop")
    rec = next(e for e in closed.failures if e.type == "recovered")
    assert 0.2 <= rec.severity <= 1.0
    # without the recovered event the same success would score higher: it costs 25 x severity
    rest = [e for e in closed.failures if e.type != "recovered"]
    prog = closed.columns["progress"]
    assert closed.score == pytest.approx(episode_score(True, prog, rest) - 25 * rec.severity, abs=0.11)
    assert closed.score > 60.0  # above any failure's base


def test_a_drop_without_regrasp_is_not_a_recovery(pick_place):
    """The recovered rule needs the object held again: open loop, a drop that still lands in
    the bowl is a quality drop, never a recovery."""
    from simfail.labels.recovery import recovery_events

    for m in (0.2, 0.5, 0.9):
        ep, _, _ = pick_place.variant("gripper_release", m, "open_loop")
        assert "recovered" not in _types(ep)
    ep, _, _ = pick_place.variant("gripper_release", 0.9, "closed_loop")
    drop = [e for e in ep.failures if e.type == "drop"]
    assert recovery_events(pick_place.runner.trace, pick_place.scene.layout, False, drop, ep.columns["progress"]) == []


def test_retry_limit_zero_never_goes_back(pick_place):
    edit = get_operator("gripper_release").make_edit(pick_place.source, 0.9, np.random.default_rng(0))
    lp = pick_place.loaded()
    lp.policy.max_retries = 0
    driver = policy_driver(lp, pick_place.runner, pick_place.n, 0, "x")
    trace, _ = branch(pick_place.runner, pick_place.source, edit, pick_place.n, continuation="closed_loop",
                      driver=driver)
    assert lp.policy.regrasps == []
    ok, events = pick_place.task.detect(trace, pick_place.scene.layout)
    assert not ok and "recovered" not in [e.type for e in events]


# ------------------------------------------------------------------ prefix identity and determinism


@pytest.mark.parametrize("op", ["gripper_release", "action_offset", "freeze"])
def test_closed_loop_variants_share_the_prefix_bit_for_bit(pick_place, op):
    """A closed-loop variant equals its source (state, actions, labels) up to its onset, and
    re-simulating the prefix from the rest state gives the same variant bit for bit."""
    s = pick_place
    edit = get_operator(op).make_edit(s.source, 0.8, np.random.default_rng(0))
    k = edit.onset
    runs = []
    for from_start in (False, True):
        driver = policy_driver(s.loaded(), s.runner, s.n, 0, ("v", op))
        trace, _ = branch(s.runner, s.source, edit, s.n, continuation="closed_loop", driver=driver,
                          from_start=from_start)
        runs.append(trace)
    a, b = runs
    src = s.source.trace
    np.testing.assert_array_equal(np.array(a.qpos[: k + 1]), np.array(src.qpos[: k + 1]))
    np.testing.assert_array_equal(np.array(a.action[: k + 1]), np.array(src.action[: k + 1]))
    np.testing.assert_array_equal(np.array(a.qpos), np.array(b.qpos))
    np.testing.assert_array_equal(np.array(a.action), np.array(b.action))
    _, events = s.task.detect(a, s.scene.layout)
    assert all(e.onset_frame > k for e in events)  # causal: nothing before the divergence


def test_rollout_perturb_variants_share_the_rollout_prefix():
    from simfail.policy.rollout import RolloutConfig, load_policies, rollout_group

    task = get_task("pick_place")
    cfg = RolloutConfig(task="pick_place", policy="expert", samples=1, width=64, height=64, progress=False,
                        perturb=["gripper_release@0.9", "freeze"], continuation="closed_loop")
    cfg.validate()
    runner = SceneRunner(task, cfg.fps, StageConfig(width=64, height=64))
    pols = load_policies(cfg, task, list(runner.prototype.layout.tracked))
    res = rollout_group(task, cfg, pols, 0, runner, render=False)
    eps = {e.variant: e for e in res.episodes}
    src = eps["expert#0"]
    mid = sum(get_operator("freeze").failure_range) / 2  # no magnitude given: the failure range's middle
    assert set(eps) == {"expert#0", "expert#0+gripper_release@0.9", f"expert#0+freeze@{mid:g}"}
    for name, ep in eps.items():
        if name == "expert#0":
            continue
        k = ep.perturbation["onset_frame"]
        assert ep.perturbation["continuation"] == "closed_loop" and ep.perturbation["source"]["kind"] == "rollout"
        np.testing.assert_array_equal(ep.columns["sim.qpos"][: k + 1], src.columns["sim.qpos"][: k + 1])
        np.testing.assert_array_equal(ep.columns["reward"][: k + 1], src.columns["reward"][: k + 1])
        np.testing.assert_array_equal(ep.columns["failure"][: k + 1], src.columns["failure"][: k + 1])
    assert "recovered" in _types(eps["expert#0+gripper_release@0.9"])


# ------------------------------------------------------------------ bad input


@register_policy("test_raises_when_taking_over")
class RaisesWhenTakingOver(ExpertPolicy):
    """The expert, except that it raises on its third action after a mid-episode takeover."""

    def start_episode(self, context):
        super().start_episode(context)
        self._calls, self._continuation = 0, context.start_frame > 0

    def act(self, observation):
        self._calls += 1
        if self._continuation and self._calls == 3:
            raise RuntimeError("lost")
        return super().act(observation)


def test_a_policy_that_raises_in_the_continuation_is_one_error_and_writes_nothing(capsys, tmp_path):
    out = tmp_path / "ds"
    code = cli.main(["rollout", "policy=test_raises_when_taking_over", "seeds=1", "samples=1", f"out={out}",
                     "perturb=[gripper_release]", "continuation=closed_loop", "render.width=64",
                     "render.height=64", "progress=false"])
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith("simfail: error: policy 'test_raises_when_taking_over' on scene seed ")
    assert "(policy seed " in lines[0] and "raised RuntimeError at step " in lines[0] and "lost" in lines[0]
    assert not out.exists()


def test_driver_reports_bad_actions_like_a_rollout(pick_place):
    class Short:
        def reset(self, seed):
            pass

        def act(self, obs):
            return np.zeros(7)

    lp = pick_place.loaded()
    lp.policy = Short()
    lp.spec = PolicySpec("short", "short", {})
    drv = PolicyDriver(lp, policy_driver(pick_place.loaded(), pick_place.runner, pick_place.n, 5, 0).context, 5, 0)
    edit = get_operator("freeze").make_edit(pick_place.source, 0.5, np.random.default_rng(0))
    with pytest.raises(PolicyError, match=r"policy 'short' on scene seed \d+ \(policy seed 5\) at step \d+: "
                                          r"the action must have shape \(8,\), got \(7,\)"):
        branch(pick_place.runner, pick_place.source, edit, pick_place.n, continuation="closed_loop", driver=drv)


@pytest.mark.parametrize("argv,needle", [
    (["perturb=[nope]"], "unknown generic operator 'nope'"),
    (["perturb=[freeze@2]"], "magnitude must be in [0, 1]"),
    (["continuation=closed"], "unknown continuation"),
])
def test_bad_perturb_settings_are_one_error(capsys, tmp_path, argv, needle):
    code = cli.main(["rollout", f"out={tmp_path / 'x'}", "progress=false", *argv])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and needle in err, err


@register_policy("test_home_never_grasps")
class HomeNeverGrasps:
    """Holds the home pose with the gripper open: no carry, nothing to release."""

    def reset(self, seed):
        pass

    def act(self, observation):
        from simfail.core.runner import HOME_ACTION

        return HOME_ACTION.copy()


def test_an_operator_that_does_not_apply_to_a_rollout_is_left_out_and_counted(capsys, tmp_path):
    import json

    code = cli.main(["rollout", "policy=test_home_never_grasps", "seeds=1", "samples=1", "render=false",
                     "perturb=[gripper_release,freeze]", "continuation=closed_loop", "progress=false",
                     f"json={tmp_path / 's.json'}"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["perturbations_skipped"] == 1
    assert set(summary["policies"]) == {"test_home_never_grasps", "test_home_never_grasps+freeze@0.8"}
    assert "did not apply (left out): 1" in captured.out


def test_generate_continuation_closed_loop_recovers_and_records_it():
    from dataclasses import replace

    from simfail.config import FailuresConfig, GenerateConfig
    from simfail.generate import generate_group

    base = GenerateConfig(task="pick_place", groups=1, progress=False)
    base.render.width = base.render.height = 64
    base.failures = FailuresConfig(names=["gripper_release"], failure_variants=True, near_misses=False, sweep=[0.9])
    eps = {}
    for cont in ("open_loop", "closed_loop"):
        cfg = replace(base, continuation=cont)
        cfg.validate()
        res = generate_group(get_task("pick_place"), cfg, 0, render=False)
        eps[cont] = [e for e in res.episodes if e.variant != "expert"]
        assert eps[cont] and all(e.perturbation["continuation"] == cont for e in eps[cont])
    assert not any("recovered" in _types(e) for e in eps["open_loop"])
    assert any("recovered" in _types(e) and e.success for e in eps["closed_loop"]), \
        [(e.variant, _types(e)) for e in eps["closed_loop"]]
