"""Reorient task: scene, expert, failure operators and detectors, run in the physics.

Fast by default (one physics-only group, shared by the module, plus one replay); the
100-seed expert success rate and a rendered CLI dataset are marked slow.
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest

from conftest import assert_group_shares_expert_prefix, assert_arrays_equal, episode_by_variant, expert_outcomes, replay_config, run_expert, small_config

from simfail.core.builder import build_scene
from simfail.core.scene import StageConfig
from simfail.core.task import get_task
from simfail.generate import scene_seed
from simfail.labels import reorient_detectors as rdet

#: Every operator once in its failure range, plus near misses: group 0 (seed 0) is a yaw
#: instance, group 4 an upright one.
GROUP = 0
UPRIGHT_GROUP = 4
REQUIRED = {"incomplete_rotation": "incomplete_rotation", "drop": "drop", "roll_off": "rolled_off"}


@pytest.fixture(scope="module")
def task():
    return get_task("reorient")


@pytest.fixture(scope="module")
def cfg():
    base = small_config(task="reorient")
    return dataclasses.replace(base, failures=dataclasses.replace(base.failures, near_misses=True))


@pytest.fixture(scope="module")
def group(task, cfg):
    from simfail.generate import generate_group

    return generate_group(task, cfg, GROUP, render=False)


@pytest.fixture(scope="module")
def upright_group(task, cfg):
    from simfail.generate import generate_group

    return generate_group(task, cfg, UPRIGHT_GROUP, render=False)


@pytest.fixture(scope="module", params=["yaw", "upright"])
def any_group(request, group, upright_group):
    """Group 0 (yaw instance) and group 4 (upright instance)."""
    res = group if request.param == "yaw" else upright_group
    assert res.episodes[0].instruction and _mode(res) == request.param
    return res


def _mode(res) -> str:
    from simfail.core.builder import layout_rng

    return get_task("reorient").sample_layout(layout_rng(res.seed), res.seed).params["mode"]


@pytest.fixture(scope="module")
def expert_run(task):
    """``(trace, layout, success, events)`` of the expert on group 0's scene."""
    return run_expert(task, scene_seed(0, GROUP, 0))


# --------------------------------------------------------------------------- scene


def test_layout_fixed_width_and_goal_is_visual_only(task):
    nqs, modes = set(), set()
    for seed in range(10):
        scene = build_scene(task, seed, StageConfig(64, 64))
        p = scene.layout.params
        nqs.add(scene.model.nq)
        modes.add(p["mode"])
        assert scene.layout.tracked == ["object", "bystander", "distractor"]
        for k in range(4):
            g = scene.model.geom(f"goal_{k}")
            assert g.contype[0] == 0 and g.conaffinity[0] == 0
        assert p["goal_color"] in scene.layout.instruction
        if p["mode"] == "yaw":
            assert np.deg2rad(40) <= abs(p["delta"]) <= np.deg2rad(80) and p["rot_axis"] == [0.0, 0.0, 1.0]
        else:
            assert p["delta"] == pytest.approx(np.pi / 2) and p["goal_dir"] == [0.0, 0.0, 1.0]
            assert p["rot_axis"][2] == pytest.approx(0.0)
    assert len(nqs) == 1 and modes == {"yaw", "upright"}


@pytest.mark.parametrize("axis_yaw", np.linspace(-np.pi / 2, np.pi / 2, 7))
@pytest.mark.parametrize("delta", [-1.4, -0.7, 0.7, 1.4])
def test_fold_yaws_keeps_the_wrist_in_range(axis_yaw, delta):
    from simfail.scenes.reorient import fold_yaws

    y0, y1 = fold_yaws(axis_yaw, delta)
    assert y1 - y0 == pytest.approx(delta)
    assert np.sin(y0 - axis_yaw) == pytest.approx(0.0, abs=1e-9)  # hand x along the axis (mod pi)
    assert max(abs(y0), abs(y1)) <= np.pi / 2 + abs(delta) / 2 + 1e-9


# --------------------------------------------------------------------------- expert


def test_expert_succeeds_cleanly(any_group):
    ep = any_group.episodes[0]
    assert ep.variant == "expert" and ep.success and ep.failures == [] and ep.score == 100.0
    assert ep.columns["progress"][-1] == pytest.approx(1.0)
    assert np.all(np.diff(ep.columns["progress"].astype(float)) > -0.05)


def test_expert_turns_the_object_onto_the_goal(expert_run):
    trace, layout, ok, events = expert_run
    err = np.rad2deg(rdet.orientation_error(trace, layout))
    assert err[0] > 35.0 and err[-1] < np.rad2deg(rdet.PRECISE_TOL)
    travel = np.rad2deg(rdet.rotation_travel(trace, layout))
    assert travel[-1] == pytest.approx(np.rad2deg(abs(layout.params["delta"])), abs=5.0)


# --------------------------------------------------------------------------- failures in the physics


@pytest.mark.parametrize("op", sorted(REQUIRED))
def test_required_failures_happen(any_group, op):
    ep = episode_by_variant(any_group)[op]
    types = [e.type for e in ep.failures]
    assert REQUIRED[op] in types, (op, types)
    assert not ep.success and ep.score < any_group.episodes[0].score


def test_incomplete_rotation_measures_the_residual(any_group):
    ev = next(e for e in episode_by_variant(any_group)["incomplete_rotation"].failures if e.type == "incomplete_rotation")
    assert ev.measurements["residual_deg"] > np.rad2deg(rdet.ORIENT_TOL)
    assert ev.measurements["turned_deg"] < ev.measurements["goal_turn_deg"]


def test_roll_off_is_a_delayed_failure(any_group):
    ep = episode_by_variant(any_group)["roll_off"]
    ev = next(e for e in ep.failures if e.type == "rolled_off")
    grip = ep.columns["action"][:, 7]
    # the gripper is already opening at the onset, and the roll shows only afterwards
    assert grip[ev.onset_frame - 1] < 0.5 or grip[ev.onset_frame] < 0.5
    assert ev.visible_frame > ev.onset_frame
    assert ev.measurements["roll_distance_m"] > rdet.ROLL_DIST or ev.measurements["distance_to_goal_m"] > rdet.GOAL_RADIUS


def test_drop_happens_while_turning(any_group):
    ev = next(e for e in episode_by_variant(any_group)["drop"].failures if e.type == "drop")
    assert ev.measurements["release_height_m"] > rdet.PLACE_CLEARANCE
    assert 0.0 <= ev.measurements["turned_deg"] < ev.measurements["goal_turn_deg"]


def test_overshoot_is_bad_but_successful(any_group):
    ep = episode_by_variant(any_group)["overshoot"]
    assert ep.success
    assert [e.type for e in ep.failures] == ["overshoot"] and ep.failures[0].category == "quality"
    assert ep.score < any_group.episodes[0].score


def test_collision_is_a_safety_event(any_group):
    ep = episode_by_variant(any_group)["collision"]
    assert {"collision", "topple"} & {e.type for e in ep.failures}
    assert all(e.category == "safety" for e in ep.failures if e.type in ("collision", "topple"))
    assert ep.score < 60.0


def test_near_misses_score_at_least_their_failures(any_group):
    eps = episode_by_variant(any_group)
    for op in ("incomplete_rotation", "roll_off", "overshoot", "collision"):
        assert eps[f"{op}:near_miss"].score >= eps[op].score, op
    assert eps["incomplete_rotation:near_miss"].success


# --------------------------------------------------------------------------- determinism


def test_variants_equal_the_expert_up_to_onset(group):
    assert_group_shares_expert_prefix(group)


def test_same_seed_twice_is_identical(task, cfg, group):
    from simfail.generate import generate_group

    again = generate_group(task, replay_config(cfg), GROUP, render=False)
    assert [e.variant for e in again.episodes] == [e.variant for e in group.episodes]
    for a, b in zip(group.episodes, again.episodes):
        assert_arrays_equal(a.columns["sim.qpos"], b.columns["sim.qpos"], a.variant)
        assert a.failures == b.failures and a.score == b.score


# --------------------------------------------------------------------------- detectors on edited real traces


def _edited(trace, name: str = "object"):
    out = copy.deepcopy(trace)
    out.__dict__.pop("_cache", None)
    return out, out.object_names.index(name)


def test_clean_expert_trace_has_no_reorient_events(expert_run):
    trace, layout, ok, events = expert_run
    assert ok and events == []
    for fn in (rdet.drops, rdet.orientation_outcome, rdet.overshoot, rdet.rolls_off, rdet.misplaced):
        assert fn(trace, layout) == []


def test_detector_sees_a_roll_after_release(expert_run):
    trace, layout, _, _ = expert_run
    e = rdet.final_release(trace, layout)
    t, i = _edited(trace)
    for f in range(e + 1, len(t.obj_pos)):  # the object creeps 1 cm per frame after release
        t.obj_pos[f] = t.obj_pos[f].copy()
        t.obj_pos[f][i, 1] += 0.01 * (f - e)
    (ev,) = rdet.rolls_off(t, layout)
    assert ev.type == "rolled_off" and ev.onset_frame == e and ev.visible_frame == e + 2


def test_detector_sees_a_residual_angle(expert_run):
    trace, layout, _, _ = expert_run
    t, i = _edited(trace)
    turn = np.deg2rad(25.0)
    rz = np.array([np.cos(turn / 2), 0.0, 0.0, np.sin(turn / 2)])
    for f in range(rdet.final_release(trace, layout), len(t.obj_quat)):
        w0, v0 = rz[0], rz[1:]
        q = t.obj_quat[f][i]
        w1, v1 = q[0], q[1:]
        t.obj_quat[f] = t.obj_quat[f].copy()
        t.obj_quat[f][i] = np.concatenate([[w0 * w1 - v0 @ v1], w0 * v1 + w1 * v0 + np.cross(v0, v1)])
    (ev,) = rdet.orientation_outcome(t, layout)
    assert ev.type in ("incomplete_rotation", "over_rotation")
    assert ev.measurements["residual_deg"] == pytest.approx(25.0, abs=1.0)


# --------------------------------------------------------------------------- slow


@pytest.mark.slow
def test_expert_success_100_seeds(task):
    outcomes = expert_outcomes(task, 100)
    clean = [o for o in outcomes if o.success and not o.events]
    failed = [(o.group, o.seed, [e.type for e in o.events]) for o in outcomes if o not in clean]
    assert len(clean) >= 95, failed


@pytest.mark.slow
def test_rendered_dataset_checks(tmp_path):
    from simfail.cli import main

    out = tmp_path / "ds"
    assert main(["generate", "task=reorient", f"out={out}", "groups=1", "render.width=64", "render.height=64",
                 "progress=false"]) == 0
    assert main(["check", str(out)]) == 0
