"""Camera visibility of failure events (simfail.labels.visibility) on scenes built to be seen
by one view only or by none, the earliest-over-views rule, the reward penalty at the visible
frame, the dataset round trip, evaluate's exclusion of unseen failures, determinism and the
counterfactual prefix rule on a generated group."""

from __future__ import annotations

import json

import mujoco
import numpy as np
import pytest

import simfail  # noqa: F401  (sets MUJOCO_GL before the first context)
from simfail.core.episode import VIEWS, FailureEvent, failures_from_json, failures_to_json
from simfail.labels.scoring import REWARD_WEIGHT, dense_reward
from simfail.labels.visibility import RULE_BY_TYPE, apply_visibility, visibility_queries, with_visibility
from simfail.render.segmentation import SegmentationRenderer
from simfail.render.worker import RenderWorker

T = 12
#: frame from which the block moves / the robot touches it
MOVE = 5

# Three cameras aim at the block on a table. Tall walls stand between the block and the
# left and right cameras; the wrist camera rides on a free body ("arm") and looks down from
# above, past them. "hidden" lies
# under the table top and "far" outside every camera's field of view.
SCENE = """
<mujoco>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <geom name="table" type="box" pos="0 0 -0.05" size="0.5 0.5 0.05" rgba=".6 .5 .4 1"/>
    <body name="focus" pos="0 0 0.03"/>
    <camera name="left" pos="-0.8 0 0.4" mode="targetbody" target="focus" fovy="50"/>
    <camera name="right" pos="0.8 0 0.4" mode="targetbody" target="focus" fovy="50"/>
    <body name="arm" pos="0 0.05 1.0">
      <freejoint/>
      <camera name="wrist" fovy="50"/>
      <site name="tcp"/>
      <geom type="sphere" size="0.01" contype="0" conaffinity="0"/>
    </body>
    <geom name="wall_left" type="box" pos="-0.25 0 0.3" size="0.01 0.3 0.3"/>
    <geom name="wall_right" type="box" pos="0.25 0 0.3" size="0.01 0.3 0.3"/>
    <body name="block" pos="0 0 0.03"><freejoint/><geom type="box" size="0.03 0.03 0.03" rgba="1 0 0 1"/></body>
    <body name="hidden" pos="0 0 -0.3"><freejoint/><geom type="box" size="0.03 0.03 0.03"/></body>
    <body name="far" pos="0 3 0.03"><freejoint/><geom type="box" size="0.03 0.03 0.03"/></body>
    <body name="robot" pos="0 0.2 0.03"><freejoint/><geom type="sphere" size="0.03" rgba="0 0 1 1"/></body>
  </worldbody>
</mujoco>
"""


@pytest.fixture(scope="module")
def model():
    return mujoco.MjModel.from_xml_string(SCENE)


def _qpos(model, moves: dict[str, tuple[float, float, float]], start: int = MOVE) -> np.ndarray:
    """(T, nq) states: each named body shifted by ``moves[name]`` [m] from frame ``start`` on."""
    q0 = model.qpos0.copy()
    rows = np.repeat(q0[None], T, axis=0)
    for name, delta in moves.items():
        adr = model.jnt_qposadr[model.body_jntadr[model.body(name).id]]
        rows[start:, adr : adr + 3] += np.asarray(delta)
    return rows


class _Contacts:
    """The two things of a Trace that contact queries read."""

    def __init__(self, frames: np.ndarray, entities=("world", "robot", "block")):
        self.entity_names = list(entities)
        self._frames = frames

    def __len__(self) -> int:
        return len(self._frames)

    def impulse(self, a: str, b: str) -> np.ndarray:
        return np.where(self._frames, 0.05, 0.0)


def _event(kind: str, objects: tuple[str, ...], onset: int = 3, visible: int = 4, category: str = "task") -> FailureEvent:
    return FailureEvent(kind, category, onset, onset, visible, 1.0, objects, f"test {kind}")


def _views(model, qpos, events, trace=None) -> list[dict]:
    robot = [model.body("robot").id]
    queries = visibility_queries(model, robot, events, trace)
    with RenderWorker(model, VIEWS, 32, 32, seg_size=64) as worker:
        return worker.submit_visibility(qpos, queries).result()


def test_segmentation_ids_are_model_geoms(model):
    data = mujoco.MjData(model)
    mujoco.mj_forward(model, data)
    r = SegmentationRenderer(model, VIEWS, 64, 64)
    try:
        ids = r.render_ids(data)
    finally:
        r.close()
    block = model.body("block").geomadr[0]
    for v in VIEWS:
        assert ids[v].shape == (64, 64) and ids[v].dtype == np.int32
        assert set(np.unique(ids[v])) <= set(range(-1, model.ngeom))
    # the wrist camera sees the block; the walls hide it from the other two
    assert (ids["wrist"] == block).sum() >= 9
    assert (ids["left"] == block).sum() == 0 and (ids["right"] == block).sum() == 0
    assert (ids["left"] == model.geom("wall_left").id).sum() > 100


def test_moved_object_behind_two_walls_is_seen_by_the_wrist_view_only(model):
    qpos = _qpos(model, {"block": (0.0, 0.05, 0.0)})
    (frames,) = _views(model, qpos, [_event("topple", ("block",))])
    assert frames == {"left": None, "right": None, "wrist": MOVE}
    ev = with_visibility(_event("topple", ("block",)), frames)
    assert ev.visible_in == ("wrist",) and ev.visible_frame == MOVE and ev.seen


def test_an_object_that_does_not_change_is_not_visibly_changed(model):
    qpos = _qpos(model, {})
    (frames,) = _views(model, qpos, [_event("topple", ("block",))])
    assert frames == {"left": None, "right": None, "wrist": None}


def test_a_moving_camera_does_not_make_a_still_object_visibly_changed(model):
    # the wrist camera moves 6 cm: the block shifts in its image, but it has not moved
    qpos = _qpos(model, {"arm": (0.06, 0.0, 0.0)})
    (frames,) = _views(model, qpos, [_event("topple", ("block",))])
    assert frames == {v: None for v in VIEWS}
    # the block moving while the camera moves is seen
    qpos = _qpos(model, {"arm": (0.06, 0.0, 0.0), "block": (0.0, 0.05, 0.0)})
    (frames,) = _views(model, qpos, [_event("topple", ("block",))])
    assert frames == {"left": None, "right": None, "wrist": MOVE}


def test_a_carried_object_is_changed_when_it_leaves_the_hand_not_while_carried(model):
    # "drop" subjects are compared with a counterfactual that moves rigidly with the hand
    # (the body of the "tcp" site, here the camera's "arm")
    carried = _qpos(model, {"arm": (0.06, 0.0, 0.0), "block": (0.06, 0.0, 0.0)})
    (frames,) = _views(model, carried, [_event("drop", ("block",))])
    assert frames["wrist"] is None, "moving along with the hand is not a visible change"
    left_behind = _qpos(model, {"arm": (0.06, 0.0, 0.0)})
    (frames,) = _views(model, left_behind, [_event("drop", ("block",))])
    assert frames["wrist"] == MOVE, "staying put while the hand moves on is"


@pytest.mark.parametrize("body", ["hidden", "far"])
def test_object_under_the_table_or_out_of_frame_is_seen_by_no_view(model, body):
    qpos = _qpos(model, {body: (0.0, 0.1, 0.0)})
    (frames,) = _views(model, qpos, [_event("off_table", (body,), category="safety")])
    assert frames == {v: None for v in VIEWS}
    ev = with_visibility(_event("off_table", (body,), category="safety"), frames)
    assert ev.visible_in == () and ev.seen is False
    assert ev.visible_frame == 4, "an event no view sees keeps its physics visible frame"


def test_state_events_are_seen_from_the_physics_frame_where_on_screen(model):
    qpos = _qpos(model, {})
    events = [_event("wrong_placement", ("block", "focus"), onset=2, visible=7),
              _event("wrong_placement", ("hidden",), onset=2, visible=7)]
    seen, hidden = _views(model, qpos, events)
    assert seen == {"left": None, "right": None, "wrist": 7}
    assert hidden == {v: None for v in VIEWS}


def test_end_of_episode_verdicts_use_the_state_rule(model):
    """A verdict (the object was never touched, never grasped, never reached its goal) is a
    state: nothing moves, so it is seen where the subject is on screen, not never."""
    from simfail.labels.detectors import VERDICT_TYPES

    assert all(RULE_BY_TYPE.get(t) == "state" for t in VERDICT_TYPES)
    qpos = _qpos(model, {})
    (seen,) = _views(model, qpos, [_event("never_touched", ("block", "focus"), onset=9, visible=9)])
    assert seen == {"left": None, "right": None, "wrist": 9}


def test_contact_on_screen_makes_a_collision_visible(model):
    # the robot sphere comes to touch the block at frame MOVE; the block does not move
    qpos = _qpos(model, {"robot": (0.0, -0.14, 0.0)})
    touching = np.arange(T) >= MOVE
    ev = _event("collision", ("robot", "block"), category="safety")
    (with_contact,) = _views(model, qpos, [ev], _Contacts(touching))
    assert with_contact == {"left": None, "right": None, "wrist": MOVE}
    (without,) = _views(model, qpos, [ev], _Contacts(np.zeros(T, bool)))
    assert without == {v: None for v in VIEWS}, "no contact and no change: nothing to see"


def test_earliest_view_wins_and_events_round_trip_through_json():
    ev = with_visibility(_event("drop", ("cube",)), {"left": 9, "right": 6, "wrist": None})
    assert ev.visible_frame == 6 and ev.visible_in == ("left", "right")
    back = failures_from_json(failures_to_json([ev]))
    assert back == [ev] and back[0].visible_frames == {"left": 9, "right": 6, "wrist": None}
    # events written before visibility existed read back with it unknown (None)
    old = {k: v for k, v in ev.to_dict().items() if k not in ("visible_frames", "visible_in")}
    legacy = FailureEvent.from_dict(old)
    assert legacy.visible_frames is None and legacy.visible_in is None and legacy.seen is None
    assert json.loads(failures_to_json([legacy]))[0]["visible_in"] is None


def test_reward_penalty_lands_at_the_camera_visible_frame():
    from simfail.dataset.synthetic import synthetic_episode

    physics = _event("drop", ("cube",), onset=2, visible=4)
    ep = synthetic_episode(0, "drop", length=12, failures=[physics])
    apply_visibility(ep, [{"left": 9, "right": None, "wrist": 7}])
    (ev,) = ep.failures
    assert ev.visible_frame == 7 and ev.visible_in == ("left", "wrist")
    progress = ep.columns["progress"]
    reward = ep.columns["reward"]
    np.testing.assert_allclose(reward[:7], progress[:7], rtol=0, atol=1e-7)
    np.testing.assert_allclose(reward[7:], progress[7:] * (1 - REWARD_WEIGHT["task"]), rtol=1e-6)
    assert not ep.columns["failure"][:7].any() and ep.columns["failure"][7:].all()
    np.testing.assert_array_equal(reward, dense_reward(progress, ep.failures))


def test_visibility_is_deterministic(model):
    qpos = _qpos(model, {"block": (0.0, 0.05, 0.0), "robot": (0.0, -0.14, 0.0)})
    events = [_event("topple", ("block",)), _event("collision", ("robot", "block"), category="safety")]
    trace = _Contacts(np.arange(T) >= MOVE)
    assert _views(model, qpos, events, trace) == _views(model, qpos, events, trace)


# ----------------------------------------------------------------- generated groups


def test_generated_events_carry_per_view_visibility(rendered_group):
    events = [e for ep in rendered_group.episodes for e in ep.failures]
    assert events, "the group has failure events"
    for e in events:
        assert set(e.visible_frames) == set(VIEWS)
        seen = [v for v in VIEWS if e.visible_frames[v] is not None]
        assert list(e.visible_in) == seen
        if seen:
            assert e.visible_frame == min(e.visible_frames[v] for v in seen) >= e.onset_frame


def test_rendered_variant_labels_equal_the_experts_on_the_shared_prefix(rendered_group):
    """A variant's states equal the expert's through its perturbation's onset frame: so must
    its camera-placed reward and failure flags."""
    expert = rendered_group.episodes[0]
    for ep in rendered_group.episodes[1:]:
        k = ep.perturbation["onset_frame"]
        assert np.array_equal(ep.columns["sim.qpos"][: k + 1], expert.columns["sim.qpos"][: k + 1])
        for col in ("reward", "failure"):
            assert np.array_equal(ep.columns[col][: k + 1], expert.columns[col][: k + 1]), (ep.variant, col)


def test_reuse_and_replay_give_the_same_visibility(rendered_group, rendered_group_replayed):
    for a, b in zip(rendered_group.episodes, rendered_group_replayed.episodes):
        assert [e.visible_frames for e in a.failures] == [e.visible_frames for e in b.failures], a.variant


# ----------------------------------------------------------------- evaluate


@pytest.fixture(scope="module")
def unseen_dataset(tmp_path_factory):
    from dataclasses import replace

    from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group
    from simfail.dataset.writer import DatasetWriter

    root = tmp_path_factory.mktemp("unseen") / "ds"
    w = DatasetWriter(root, fps=10, image_size=(64, 64), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    for g in range(2):
        eps = synthetic_group(g, scores=(100.0, 40.0, 75.0), lengths=(8, 8, 8))
        for j, ep in enumerate(eps[1:], start=1):
            # group 0's second variant: a failure no camera shows; the others are seen
            frames = {v: None for v in VIEWS} if (g, j) == (0, 2) else {"left": 4, "right": None, "wrist": 5}
            ep.failures = [with_visibility(e, frames) for e in ep.failures]
        w.write_group(g, eps)
    w.finalize({})
    return root


@pytest.mark.parametrize("exclude", [False, True])
def test_evaluate_counts_and_can_exclude_unseen_failures(unseen_dataset, tmp_path, exclude):
    from simfail.stress.commands import cmd_evaluate

    out = tmp_path / f"report_{exclude}"
    args = [f"data={unseen_dataset}", "model=oracle", f"out={out}", "bootstrap=0", "progress=false",
            "curves=0", "video=none", f"exclude_unseen={'true' if exclude else 'false'}"]
    assert cmd_evaluate(args) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # group 0 has 3 strict pairs (scores 100, 40, 75); the unseen episode is in 2 of them
    assert metrics["unseen"] == {"events": 1, "episodes": 1, "pairs": 2, "unknown": 0, "excluded": exclude}
    assert metrics["dataset"]["n_episodes_scored"] == (5 if exclude else 6)
    assert metrics["summary"]["preference"]["n_pairs"] == (4 if exclude else 6)


def test_exclude_unseen_must_be_a_boolean(unseen_dataset):
    from simfail.errors import ConfigError
    from simfail.stress.commands import evaluate_settings

    with pytest.raises(ConfigError, match="exclude_unseen"):
        evaluate_settings([f"data={unseen_dataset}", "model=oracle", "exclude_unseen=maybe"])
