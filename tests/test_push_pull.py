"""Push/Pull: scene, expert, every failure operator, determinism and the goal detectors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import assert_group_shares_expert_prefix, expert_outcomes, run_expert, small_config

from simfail.config import FailuresConfig
from simfail.labels import push_pull_detectors as pdet

#: Frames of a push/pull episode: 10 s at 10 fps, frame 0 included.
PUSH_FRAMES = 101
#: Operator -> event type that must show up in its failure variant.
MUST_HAPPEN = {
    "overshoot": "overshoot",
    "too_fast": "overshoot",
    "off_edge": "off_table",
    "bottle_collision": "topple",
    "graze": "collision",
    "wrong_object": "wrong_object",
    "shaky": "shaky_motion",
}
#: Operators whose failure variant still completes the task (a safety or quality problem only).
STILL_SUCCEED = ("graze", "shaky")


@pytest.fixture(scope="module")
def pp_task():
    from simfail.core.task import get_task

    return get_task("push_pull")


def _group(task, group: int, names=("all",), near_misses: bool = False):
    from simfail.generate import generate_group

    cfg = dataclasses.replace(small_config(task="push_pull"),
                              failures=FailuresConfig(names=list(names), near_misses=near_misses))
    return generate_group(task, cfg, group, render=False)


@pytest.fixture(scope="module")
def group0(pp_task):
    return _group(pp_task, 0)


@pytest.fixture(scope="module")
def expert_run(pp_task):
    from simfail.generate import scene_seed

    return run_expert(pp_task, scene_seed(0, 0, 0))


def _by_variant(result) -> dict:
    return {e.variant: e for e in result.episodes}


# --------------------------------------------------------------------------- scene


def test_every_seed_has_the_same_bodies_and_a_matching_instruction(pp_task):
    from simfail.core.builder import build_scene
    from simfail.core.scene import StageConfig

    nq, modes, kinds = set(), set(), set()
    for seed in range(16):
        scene = build_scene(pp_task, seed, StageConfig(width=64, height=64))
        layout, model = scene.layout, scene.model
        nq.add(model.nq)
        modes.add(layout.params["direction"])
        kinds.add(layout.obj("object").kind)
        assert layout.obj("object").label in layout.instruction
        assert layout.obj("goal").label in layout.instruction
        for o in layout.objects:
            assert 0.35 <= o.pos[0] <= 0.65 and abs(o.pos[1]) < 0.3, (seed, o.name, o.pos)
        # the goal is a drawing on the table: fixed, no contacts, not tracked
        g = model.geom("goal")
        assert model.geom_contype[g.id] == 0 and model.geom_conaffinity[g.id] == 0
        assert "goal" not in layout.tracked
        assert set(layout.tracked) == {"object", "bottle", "distractor0", "distractor1"}
        # the table's side edge is within reach of the off-edge push
        assert model.geom("table").size[1] == pytest.approx(layout.params["table_half_y"])
    assert len(nq) == 1
    assert modes == {1.0, -1.0}
    assert kinds == {"box", "cylinder"}


# --------------------------------------------------------------------------- end to end


def test_expert_is_a_clean_success(group0):
    ep = group0.episodes[0]
    assert ep.variant == "expert" and ep.success and ep.failures == []
    assert ep.score == 100.0 and ep.length == PUSH_FRAMES
    p = ep.columns["progress"].astype(float)
    assert p[0] == pytest.approx(0.0, abs=1e-6) and p[-1] == pytest.approx(1.0)
    assert np.all(np.diff(p) > -0.05)


def test_every_operator_produces_its_failure_in_the_physics(group0, pp_task):
    eps = _by_variant(group0)
    assert set(eps) == {"expert", *pp_task.perturbations()}
    for name, event in MUST_HAPPEN.items():
        types = [e.type for e in eps[name].failures]
        assert event in types, (name, types)
        if name in STILL_SUCCEED:
            assert eps[name].success and eps[name].score < 100.0, (name, eps[name].score)
        else:
            assert eps[name].score < 60.0, (name, eps[name].score)
    # the graze touches the bottle but leaves it standing
    assert "topple" not in [e.type for e in eps["graze"].failures]
    # too fast: the object leaves the fingers and slides past the goal after they stop
    over = next(e for e in eps["too_fast"].failures if e.type == "overshoot")
    assert over.measurements["slide_after_contact_m"] > 0.05
    assert over.visible_frame > over.onset_frame


def test_events_are_well_formed(group0):
    for ep in group0.episodes:
        for ev in ep.failures:
            assert 0 <= ev.onset_frame <= ev.visible_frame < ep.length, (ep.variant, ev)
            assert ev.onset_frame <= ev.irreversible_frame < ep.length, (ep.variant, ev)
            assert 0.0 <= ev.severity <= 1.0 and ev.category in ("safety", "task", "quality")
            assert ev.rationale and "{" not in ev.rationale
            assert all(np.isfinite(v) for v in ev.measurements.values())


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_identical_traces_and_labels(pp_task):
    a = _group(pp_task, 1, names=("overshoot",))
    b = _group(pp_task, 1, names=("overshoot",))
    assert a.seed == b.seed
    for ea, eb in zip(a.episodes, b.episodes):
        np.testing.assert_array_equal(ea.columns["sim.qpos"], eb.columns["sim.qpos"])
        np.testing.assert_array_equal(ea.columns["reward"], eb.columns["reward"])
        assert ea.failures == eb.failures and ea.score == eb.score


def test_variants_equal_the_expert_up_to_their_onset(group0):
    assert_group_shares_expert_prefix(group0)


# --------------------------------------------------------------------------- detectors


def _moved(trace, name: str, xy_end: np.ndarray, frames: int = 15):
    """A copy of ``trace`` in which ``name`` glides to ``xy_end`` over the last ``frames`` frames
    and rests there."""
    out = trace.truncate(len(trace))
    k = out.object_names.index(name)
    start = out.obj_pos[-frames - 1][k, :2].copy()
    for i, t in enumerate(range(len(out) - frames, len(out))):
        pos = out.obj_pos[t].copy()
        pos[k, :2] = start + (xy_end - start) * min(1.0, (i + 1) / (frames - 5))
        out.obj_pos[t] = pos
        vel = out.obj_vel[t].copy()
        vel[k] = 0.0
        out.obj_vel[t] = vel
    return out


def test_clean_expert_trace_has_no_events(expert_run, pp_task):
    trace, layout, ok, events = expert_run
    assert ok and events == []
    assert pdet.push_progress(trace, layout)[-1] == pytest.approx(1.0)


def test_goal_region_geometry(expert_run):
    _, layout, _, _ = expert_run
    g, h = pdet.goal_center(layout), layout.params["goal_half"]
    corner = g + 0.95 * h * np.array([1.0, 1.0])
    inside = pdet.inside_goal(np.array([g, g + [0.9 * h, 0.0], corner, g + [1.1 * h, 0.0]]), layout)
    round_goal = bool(layout.params["goal_round"])
    assert inside.tolist() == [True, True, not round_goal, False]
    assert pdet.outside_distance(np.array([g + [h + 0.03, 0.0]]), layout)[0] == pytest.approx(0.03)


def test_hand_made_overshoot_and_undershoot(expert_run):
    trace, layout, _, _ = expert_run
    u, _ = pdet.push_axes(trace, layout)
    g, h = pdet.goal_center(layout), layout.params["goal_half"]
    ok, events = pdet.detect(_moved(trace, "object", g + u * (h + 0.06)), layout)
    assert not ok
    over = [e for e in events if e.type == "overshoot"]
    assert len(over) == 1 and over[0].measurements["overshoot_m"] == pytest.approx(0.06, abs=1e-6)
    ok, events = pdet.detect(_moved(trace, "object", g - u * (h + 0.04)), layout)
    assert not ok and [e.type for e in events] == ["undershoot"]
    # inside, but off-centre: still a success, with a quality event
    ok, events = pdet.detect(_moved(trace, "object", g + u * 0.8 * h), layout)
    assert ok and [(e.type, e.category) for e in events] == [("imprecise_placement", "quality")]


def test_hand_made_wrong_object(expert_run):
    trace, layout, _, _ = expert_run
    # the named object never moves; a distractor ends beside the goal
    still = trace.truncate(len(trace))
    k = still.object_names.index("object")
    for t in range(len(still)):
        pos = still.obj_pos[t].copy()
        pos[k] = still.obj_pos[0][k]
        still.obj_pos[t] = pos
    moved = _moved(still, "distractor0", pdet.goal_center(layout) + [0.0, 0.06])
    # the robot has to have touched it: borrow the expert's contact with the object
    i, j = moved.entity_names.index("robot"), moved.entity_names.index("distractor0")
    o = moved.entity_names.index("object")
    for t in range(len(moved)):
        imp = moved.contact_impulse[t].copy()
        imp[i, j] = imp[j, i] = imp[i, o]
        moved.contact_impulse[t] = imp
    assert [e.type for e in pdet.wrong_object(moved, layout)] == ["wrong_object"]
    assert pdet.wrong_object(trace, layout) == []


# --------------------------------------------------------------------------- rates (slow)


@pytest.mark.slow
def test_expert_success_50_seeds(pp_task):
    outcomes = expert_outcomes(pp_task, 50)
    clean = [o for o in outcomes if o.success and not o.events]
    assert len(clean) >= 48, [(o.seed, [e.type for e in o.events]) for o in outcomes if o not in clean]


@pytest.mark.slow
def test_near_misses_score_between_failures_and_the_expert(pp_task):
    scores: dict[str, list[float]] = {}
    for g in range(3):
        for ep in _group(pp_task, g, near_misses=True).episodes[1:]:
            scores.setdefault(ep.variant, []).append(ep.score)
    for name in ("overshoot", "too_fast", "bottle_collision"):
        near, fail = np.mean(scores[f"{name}:near_miss"]), np.mean(scores[name])
        assert fail < near <= 100.0, (name, fail, near)
