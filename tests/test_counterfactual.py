"""Generic counterfactual operators (simfail/counterfactual): sources, edits, branching.

* prefix identity: every generic operator on every task shares its source's frames 0..k bit
  for bit (qpos, qvel, actions, phases and the labels computed from them), whether the variant
  restores the source's state at k or re-simulates frames 1..k from the source's commands;
* each operator does what it says (commands, forces) and its failure range realizes its effect;
* bad input is one ConfigError line; generate with generic operators passes check.
"""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import pytest
from conftest import SMALL, generate_argv

from simfail.core.rollout import RolloutResult, frame_count, run_program
from simfail.core.runner import HOME_ACTION, SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.task import get_task, task_names
from simfail.counterfactual.operators import get_operator, operator_names, resolve_onset
from simfail.counterfactual.replay import branch
from simfail.counterfactual.source import SourceEpisode
from simfail.errors import ConfigError
from simfail.generate import GroupTiming, _record, expert_start

FPS = 10
#: frames a prefix-identity variant runs past its onset (enough to diverge, cheap on pour)
PAST_ONSET = 6


@lru_cache(maxsize=None)
def expert_source(task_name: str) -> tuple[SceneRunner, SourceEpisode]:
    """The clean expert of group 0 (seed 0) of a task, as a source, with its runner."""
    task = get_task(task_name)
    runner = SceneRunner(task, FPS, StageConfig(SMALL, SMALL))
    n = frame_count(task.duration, FPS)
    st = expert_start(task, 0, 0, runner, n, GroupTiming())
    return runner, SourceEpisode.from_expert(task, st.scene, st.result, {"group": 0}, program=st.program)


def labels(source: SourceEpisode, trace, states) -> dict[str, np.ndarray]:
    rec = _record(source.task, source.scene, RolloutResult(trace, states), 0, "v", {}, FPS)
    return {k: rec.columns[k] for k in ("progress", "reward", "failure")}


def assert_prefix_equal(source: SourceEpisode, trace, k: int, what: str) -> None:
    for name in ("qpos", "qvel", "action", "robot_state", "obj_pos", "contact_impulse"):
        a, b = getattr(source.trace, name)[: k + 1], getattr(trace, name)[: k + 1]
        for f, (x, y) in enumerate(zip(a, b)):
            assert np.array_equal(x, y), f"{what}: {name} differs at frame {f} <= onset {k}"
    assert list(source.trace.phase[: k + 1]) == list(trace.phase[: k + 1]), what


def failure_edit(source: SourceEpisode, name: str, **params):
    op = get_operator(name)
    return op.make_edit(source, op.failure_range[1], np.random.default_rng(7), **params)


# ------------------------------------------------------------------------------ prefix identity


@pytest.mark.parametrize("task_name", task_names())
def test_every_generic_operator_shares_its_sources_prefix_bit_for_bit(task_name):
    """Variants branched at the onset k (restored state) equal the source on frames 0..k
    (qpos, qvel, actions, robot state, object poses, contacts, phases, saved states)."""
    runner, source = expert_source(task_name)
    for name in operator_names():
        edit = failure_edit(source, name)
        k = edit.onset
        n = min(k + 1 + PAST_ONSET, source.n_frames)
        trace, states = branch(runner, source, edit, n)
        assert len(trace) == len(states) == n
        assert_prefix_equal(source, trace, k, f"{task_name}/{name}")
        for f in range(k + 1):
            assert np.array_equal(states[f].sim_state, source.states[f].sim_state)


#: the full-length label check: every task; the slow physics ones under -m slow
LABEL_TASKS = [pytest.param(t, marks=pytest.mark.slow) if t in ("pour", "tool_use", "stack") else t
               for t in task_names()]


@pytest.mark.parametrize("task_name", LABEL_TASKS)
def test_every_generic_operators_labels_equal_the_sources_up_to_the_onset(task_name):
    """The labels a variant's episode gets from its own full trace (progress, reward,
    failure) equal the source's on frames 0..k bit for bit, and the variant diverges."""
    runner, source = expert_source(task_name)
    src_labels = labels(source, source.trace, source.states)
    for name in operator_names():
        edit = failure_edit(source, name)
        k = edit.onset
        full, full_states = branch(runner, source, edit)
        mine = labels(source, full, full_states)
        for col, arr in mine.items():
            assert np.array_equal(arr[: k + 1], src_labels[col][: k + 1]), f"{task_name}/{name}: {col}"
        assert not all(np.array_equal(a, b) for a, b in zip(full.qpos, source.trace.qpos)), \
            f"{task_name}/{name} never diverges"


@pytest.mark.parametrize("name", ["gripper_release", "action_offset", "jitter", "push", "speedup"])
def test_resimulating_the_prefix_gives_the_same_variant(name):
    """``from_start=True`` re-simulates frames 1..k from the source's commands instead of
    restoring frame k: the whole variant is the same, bit for bit."""
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, name)
    a, _ = branch(runner, source, edit)
    b, _ = branch(runner, source, failure_edit(source, name), from_start=True)
    for f, (x, y) in enumerate(zip(a.qpos, b.qpos)):
        assert np.array_equal(x, y), f"{name}: frame {f}"
    assert all(np.array_equal(x, y) for x, y in zip(a.action, b.action))


def test_a_program_edit_equals_run_program_from_the_experts_snapshot():
    """Task operators that edit the expert's program run through the same branch(): the
    variant equals run_program(start=expert, start_frame=k) bit for bit."""
    from simfail.core.builder import make_ik

    runner, source = expert_source("pick_place")
    pert = source.task.perturbations()["missed_grasp"]
    edit = pert.make_edit(source, 0.9, np.random.default_rng(3))
    trace, _ = branch(runner, source, edit)
    applied = pert.apply(source.task, source.layout, source.program, 0.9, np.random.default_rng(3))
    ref = run_program(runner, make_ik(), applied.program, source.n_frames,
                      start=RolloutResult(source.trace, source.states), start_frame=edit.onset)
    for f, (x, y) in enumerate(zip(trace.qpos, ref.trace.qpos)):
        assert np.array_equal(x, y), f"frame {f}"
    assert list(trace.phase) == list(ref.trace.phase)


# ------------------------------------------------------------------------------ sources


def test_replaying_the_experts_actions_reproduces_it_bit_for_bit():
    runner, source = expert_source("pick_place")
    demo = SourceEpisode.from_actions(runner, source.actions, {"episode": 3})
    assert demo.origin == {"kind": "demo", "scene_seed": source.layout.seed, "episode": 3}
    assert np.array_equal(demo.actions, source.actions)
    for f, (x, y) in enumerate(zip(source.trace.qpos, demo.trace.qpos)):
        assert np.array_equal(x, y), f"frame {f}"
    assert set(demo.phases) == {"demo"}


def test_a_rollout_source_is_rebuilt_from_its_trace_when_it_kept_no_states():
    runner, source = expert_source("pick_place")
    cmds = source.actions.astype(np.float32).astype(np.float64)  # what a float32 trace holds exactly
    runner.reset_state()
    runner.start(HOME_ACTION, "policy")
    kept = [runner.snapshot()]
    for a in cmds:
        runner.step(a, "policy")
        kept.append(runner.snapshot())
    trace = runner.trace
    rebuilt = SourceEpisode.from_rollout(runner, trace, origin={"policy": "test"})
    given = SourceEpisode.from_rollout(runner, trace, states=kept, origin={"policy": "test"})
    assert rebuilt.origin["kind"] == "rollout" and rebuilt.origin["policy"] == "test"
    assert np.array_equal(rebuilt.actions, given.actions) and np.array_equal(given.actions, cmds)
    for a, b in zip(rebuilt.states, given.states):
        assert np.array_equal(a.sim_state, b.sim_state)
    edit = failure_edit(rebuilt, "gripper_release")
    out, _ = branch(runner, rebuilt, edit)
    assert_prefix_equal(rebuilt, out, edit.onset, "rollout source")


def test_a_rollout_whose_trace_does_not_reproduce_is_one_clear_error():
    runner, source = expert_source("pick_place")
    # the runner applies commands at the float32 precision the trace stores, so the trace's own
    # column reproduces it; a trace whose recorded command of step 10 is not the one that ran
    # diverges: the constructor says where instead of branching from garbage
    SourceEpisode.from_rollout(runner, source.trace)
    trace = source.trace.truncate(len(source.trace))
    trace.action[11] = trace.action[11] + np.float32(0.05)
    with pytest.raises(ConfigError, match="diverges from the recorded qpos at frame 11") as exc:
        SourceEpisode.from_rollout(runner, trace)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize("bad", [np.zeros((10, 7)), np.zeros(8), np.full((5, 8), np.nan)])
def test_demo_actions_of_the_wrong_shape_or_nan_are_refused(bad):
    runner, _ = expert_source("pick_place")
    with pytest.raises(ConfigError) as exc:
        SourceEpisode.from_actions(runner, bad)
    assert "\n" not in str(exc.value)


# ------------------------------------------------------------------------------ onsets


def test_onsets_resolve_phases_fractions_frames_and_random():
    _, source = expert_source("pick_place")
    a, b = source.phases["carry"]
    rng = np.random.default_rng(0)
    assert resolve_onset(source, "carry", rng) == a
    assert resolve_onset(source, "carry@1.0", rng) == b
    assert resolve_onset(source, "carry@0.5", rng) == a + round(0.5 * (b - a))
    assert resolve_onset(source, "carry#1@0.5", rng) == a + round(0.5 * (b - a))
    assert resolve_onset(source, "lift..carry@1", rng) == b
    assert resolve_onset(source, 0.5, rng) == 40 and resolve_onset(source, "0.5", rng) == 40
    assert resolve_onset(source, "frame:12", rng) == 12
    r1 = resolve_onset(source, "random", np.random.default_rng(5))
    assert r1 == resolve_onset(source, "random", np.random.default_rng(5)) and 1 <= r1 <= source.n_frames - 2


# ------------------------------------------------------------------------------ what each operator does


def test_gripper_release_in_the_carry_drops_the_object():
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, "gripper_release", onset="carry@0.3")
    trace, _ = branch(runner, source, edit)
    assert edit.onset == resolve_onset(source, "carry@0.3", np.random.default_rng(0))
    assert all(float(a[7]) == 0.0 for a in trace.action[edit.onset + 1:])
    ok, events = source.task.detect(trace, source.layout)
    drops = [e for e in events if e.type == "drop"]
    assert drops and not ok and all(e.onset_frame > edit.onset for e in drops)


def test_push_moves_the_object_through_an_external_force_and_clears_it():
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, "push", object="object", direction=90.0, onset=0.1)
    trace, states = branch(runner, source, edit)
    k = edit.onset
    body = source.scene.model.body("object").id
    # the robot replays the source's commands: only the world was disturbed
    assert all(np.array_equal(a, b) for a, b in zip(trace.action, source.trace.action))
    y_src, y_var = source.trace.pos("object")[k + 3, 1], trace.pos("object")[k + 3, 1]
    assert y_var - y_src > 0.05, "pushed along +y by the force"
    assert not np.any(runner.core.data.xfrc_applied[body]), "the force is cleared after its window"
    ok, events = source.task.detect(trace, source.layout)
    assert not ok and events and all(e.onset_frame > k for e in events)
    assert edit.params["parameters"]["object"] == "object" and edit.params["object_mass_kg"] > 0


@pytest.mark.parametrize(("direction", "bystander"), [(60.0, "obstacle"), (210.0, "distractor1")])
def test_a_pushed_object_hitting_a_bystander_is_not_a_robot_collision(direction, bystander):
    """docs/counterfactuals.md's push (pick_place, the cube, before the grasp): the cube flies
    off, is never held, and hits a bystander. Main's detector counted the airborne cube as
    "lifted", hence carried, and labelled "the robot hits the ..."; the robot never touches it."""
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, "push", object="object", direction=direction, onset=0.1)
    trace, _ = branch(runner, source, edit)
    assert trace.impulse("object", bystander).sum() > 0.05, "the pushed cube hits the bystander"
    assert trace.impulse("robot", bystander).sum() == 0.0, "the robot never touches it"
    assert not (trace.touch("object")[:, 0] & trace.touch("object")[:, 1]).any(), "never held"
    ok, events = source.task.detect(trace, source.layout)
    assert not ok and "never_grasped" in {e.type for e in events}
    assert not [e for e in events if e.type == "collision"], [e.rationale for e in events]


def test_action_offset_toward_the_obstacle_collides_and_rejoins_the_source():
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, "action_offset", toward="obstacle")
    trace, _ = branch(runner, source, edit)
    ok, events = source.task.detect(trace, source.layout)
    assert {"collision", "topple"} & {e.type for e in events}
    after = [np.asarray(a, np.float32) for a in source.actions[edit.end + 1:]]
    assert all(np.array_equal(a, b) for a, b in zip(trace.action[edit.end + 2:], after)), "rejoins the source"


def test_jitter_is_labelled_shaky_motion():
    runner, source = expert_source("pick_place")
    trace, _ = branch(runner, source, failure_edit(source, "jitter"))
    assert "shaky_motion" in {e.type for e in source.task.detect(trace, source.layout)[1]}


def test_freeze_speedup_delay_and_truncate_commands():
    runner, source = expert_source("pick_place")
    a = source.actions
    f = get_operator("freeze").make_edit(source, 0.5, onset="frame:20", duration=1.0)
    cmds = [f.action(s, source, runner.core) for s in range(20, 40)]
    assert all(np.array_equal(c, source.command_before(20)) for c in cmds[:10])
    assert all(np.array_equal(c, a[s]) for c, s in zip(cmds[10:], range(30, 40))), "resumes on schedule"
    s = get_operator("speedup").make_edit(source, 0.5, onset="frame:20", factor=2.0)
    assert all(np.array_equal(s.action(20 + i, source, None), a[20 + 2 * i + 1]) for i in range(20))
    assert np.array_equal(s.action(79, source, None), a[-1]), "held at the source's end"
    d = get_operator("delay").make_edit(source, 0.5, onset="frame:20", steps=3)
    assert all(np.array_equal(d.action(f, source, None), a[f - 3]) for f in range(23, 79))
    assert all(np.array_equal(d.action(f, source, None), source.command_before(20)) for f in range(20, 23))
    t = get_operator("truncate").make_edit(source, 0.9)
    trace, _ = branch(runner, source, t)
    held = trace.action[t.onset + 1:]
    assert all(np.array_equal(x, held[0]) for x in held) and t.end == source.n_frames - 2
    assert not source.task.detect(trace, source.layout)[0]


def test_an_edit_records_its_operator_parameters_and_onset():
    _, source = expert_source("pick_place")
    edit = get_operator("jitter").make_edit(source, 0.5, np.random.default_rng(1), frequency=2.0)
    p = edit.params
    assert p["operator"] == "jitter" and p["magnitude"] == 0.5
    assert p["parameters"]["frequency"] == 2.0 and p["parameters"]["sigma"] == pytest.approx(0.006)
    assert p["onset_frame"] == edit.onset and p["onset_time_s"] == pytest.approx(edit.onset / FPS)
    json.dumps(p)


# ------------------------------------------------------------------------------ closed loop


class HoldDriver:
    """Holds the command in force when it takes over (a stand-in policy)."""

    def __init__(self):
        self.started_at = None
        self.held = None

    def start(self, core, frame):
        self.started_at = frame
        self.held = core.get_state()[-8:].copy()

    def act(self, core, frame):
        return self.held


def test_closed_loop_hands_control_to_the_driver_after_the_operators_window():
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, "gripper_release")
    driver = HoldDriver()
    trace, _ = branch(runner, source, edit, continuation="closed_loop", driver=driver)
    assert driver.started_at == edit.end + 1
    assert all(np.array_equal(a, trace.action[edit.end + 2]) for a in trace.action[edit.end + 2:])
    assert trace.phase[-1] == "policy"
    assert_prefix_equal(source, trace, edit.onset, "closed loop")


def test_a_driver_returning_a_bad_command_is_one_policy_error():
    from simfail.policy.base import PolicyError

    class Bad(HoldDriver):
        def act(self, core, frame):
            return np.full(8, np.nan)

    runner, source = expert_source("pick_place")
    with pytest.raises(PolicyError, match="NaN"):
        branch(runner, source, failure_edit(source, "gripper_release"), continuation="closed_loop", driver=Bad())


# ------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("name, magnitude, params, message", [
    ("push", 0.5, {"object": "teapot"}, "unknown push object 'teapot'; known push objects: "),
    ("action_offset", 0.5, {"toward": "teapot"}, "known action_offset objects: "),
    ("gripper_release", 0.5, {"onset": "frame:500"}, "past the episode's last step"),
    ("freeze", 0.5, {"onset": 1.5}, "fraction of the episode must be in [0, 1]"),
    ("jitter", 0.5, {"onset": "flying@0.2"}, "unknown jitter phase 'flying'"),
    ("jitter", 1.5, {}, "magnitude must be a number in [0, 1]"),
    ("jitter", True, {}, "magnitude must be a number in [0, 1]"),
    ("jitter", 0.5, {"sigma": "big"}, "parameter sigma must be a number"),
    ("delay", 0.5, {"steps": 2.5}, "parameter steps must be a whole number"),
    ("speedup", 0.5, {"factor": 100.0}, "parameter factor must be in [0.25, 10.0]"),
    ("speedup", 0.5, {"speed": 2.0}, "unknown speedup parameter 'speed'"),
])
def test_bad_operator_input_is_one_config_error_line(name, magnitude, params, message):
    _, source = expert_source("pick_place")
    with pytest.raises(ConfigError) as exc:
        get_operator(name).make_edit(source, magnitude, **params)
    text = str(exc.value)
    assert message in text and "\n" not in text, text
    if "objects:" in message:
        assert "object" in text and "obstacle" in text, "lists the known objects and roles"


def test_branch_refuses_an_onset_past_the_end_and_a_closed_loop_without_driver():
    runner, source = expert_source("pick_place")
    edit = failure_edit(source, "gripper_release")
    with pytest.raises(ConfigError, match="closed_loop needs a driver"):
        branch(runner, source, edit, continuation="closed_loop")
    with pytest.raises(ConfigError, match="unknown continuation"):
        branch(runner, source, edit, continuation="sideways")
    edit.onset = source.n_frames - 1
    with pytest.raises(ConfigError, match="outside the episode"):
        branch(runner, source, edit)


def test_an_unknown_failure_name_lists_the_generic_operators_too():
    import contextlib
    import io

    from simfail.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["rates", "failures=[teleport]", "groups=1", "progress=false"]) == 2
    line = err.getvalue().strip()
    assert "\n" not in line and "gripper_release" in line and "drop" in line and "generic" in line


# ------------------------------------------------------------------------------ generate


def test_generate_with_generic_operators_passes_check(tmp_path):
    import pyarrow.parquet as pq

    from simfail.cli import main

    out = tmp_path / "ds"
    assert main(generate_argv(out, "groups=1", "failures=[gripper_release,push,drop]")) == 0
    assert main(["check", str(out)]) == 0
    meta = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    variants = [m["simfail.variant"] for m in meta]
    assert variants == ["expert", "gripper_release", "push", "drop"], variants
    perts = {m["simfail.variant"]: json.loads(m["simfail.perturbation"]) for m in meta}
    for name in ("gripper_release", "push"):
        p = perts[name]
        assert p["operator"] == name and p["continuation"] == "open_loop"
        assert p["source"]["kind"] == "expert" and p["source"]["group"] == 0
        assert 0 <= p["onset_frame"] < 80 and p["parameters"]
    assert perts["drop"]["operator"] == "gripper_release" and perts["drop"]["name"] == "drop"
