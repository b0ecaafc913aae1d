"""Detectors on hand-built traces (each physical situation scripted frame by frame), and on the
expert's real trace."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.core.builder import layout_rng
from simfail.core.episode import FailureEvent
from simfail.core.program import min_jerk
from simfail.labels import detectors as det
from simfail.labels.trace import Trace

FPS = 10
OBJECTS = ["object", "target", "obstacle", "distractor0", "distractor1"]


class Scripted:
    """Builds a real :class:`Trace` from per-frame arrays (defaults: everything at rest)."""

    def __init__(self, layout, n: int = 60, fps: int = FPS):
        self.n, self.fps, self.layout = n, fps, layout
        k = len(OBJECTS)
        self.pos = np.zeros((n, k, 3))
        for i, name in enumerate(OBJECTS):
            self.pos[:, i] = layout.obj(name).pos
        self.quat = np.tile([1.0, 0.0, 0.0, 0.0], (n, k, 1))
        self.vel = np.zeros((n, k, 3))
        self.touch = np.zeros((n, k, 2), dtype=bool)
        self.impulse = np.zeros((n, k + 2, k + 2))
        self.tcp = np.tile([0.40, 0.0, 0.35], (n, 1))
        self.width = np.full(n, 0.08)
        self.grip = np.zeros(n)

    def i(self, name: str) -> int:
        return OBJECTS.index(name)

    def set_impulse(self, a: str, b: str, frames, value: float) -> None:
        ents = ["world", "robot", *OBJECTS]
        i, j = ents.index(a), ents.index(b)
        self.impulse[frames, i, j] = value
        self.impulse[frames, j, i] = value

    def grasp(self, name: str, frames) -> None:
        self.touch[frames, self.i(name)] = True
        self.grip[frames] = 1.0

    def velocities_from_positions(self) -> None:
        self.vel = np.gradient(self.pos, axis=0) * self.fps

    def trace(self) -> Trace:
        t = Trace(self.fps, ["world", "robot", *OBJECTS], list(OBJECTS))
        for f in range(self.n):
            t.qpos.append(np.zeros(3))
            t.qvel.append(np.zeros(3))
            t.action.append(np.array([0, 0, 0, 0, 0, 0, 0, self.grip[f]], np.float32))
            t.robot_state.append(np.zeros(9, np.float32))
            t.tcp.append(self.tcp[f].copy())
            t.width.append(float(self.width[f]))
            t.obj_pos.append(self.pos[f].copy())
            t.obj_quat.append(self.quat[f].copy())
            t.obj_vel.append(self.vel[f].copy())
            t.finger_touch.append(self.touch[f].copy())
            t.contact_impulse.append(self.impulse[f].copy())
            t.contact_peak.append(self.impulse[f].copy() * self.fps)
            t.phase.append("")
        return t


@pytest.fixture(scope="module")
def layout(task):
    return task.sample_layout(layout_rng(1234), 1234)


def quat_about(axis: str, angle: np.ndarray) -> np.ndarray:
    """(T, 4) wxyz quaternions of rotations by ``angle`` about a world axis."""
    angle = np.asarray(angle, float)
    q = np.zeros((len(angle), 4))
    q[:, 0] = np.cos(angle / 2)
    q[:, {"x": 1, "y": 2, "z": 3}[axis]] = np.sin(angle / 2)
    return q


# --------------------------------------------------------------------------- trace views


def test_trace_tilt_reads_the_angle_from_vertical(layout):
    s = Scripted(layout, n=10)
    angle = np.linspace(0, np.pi / 2, 10)
    s.quat[:, s.i("obstacle")] = quat_about("y", angle)
    s.quat[:, s.i("object")] = quat_about("z", angle * 3)  # pure yaw: never tilted
    tr = s.trace()
    np.testing.assert_allclose(tr.tilt("obstacle"), angle, atol=1e-7)
    np.testing.assert_allclose(tr.tilt("object"), 0.0, atol=1e-7)
    assert len(tr) == 10 and tr.pos("target").shape == (10, 3)
    assert tr.truncate(4).tilt("obstacle").shape == (4,)


# --------------------------------------------------------------------------- topples


def test_topples_past_45_degrees(layout):
    s = Scripted(layout, n=50)
    tilt = np.zeros(50)
    tilt[10:30] = np.linspace(0, np.pi / 2, 20)
    tilt[30:] = np.pi / 2
    s.quat[:, s.i("obstacle")] = quat_about("x", tilt)
    events = det.topples(s.trace(), ["obstacle"], layout)
    assert len(events) == 1
    ev = events[0]
    vis = int(np.flatnonzero(tilt > np.deg2rad(45))[0])
    onset = int(np.flatnonzero(tilt < np.deg2rad(8))[np.flatnonzero(tilt < np.deg2rad(8)) < vis][-1] + 1)
    assert (ev.type, ev.category, ev.severity) == ("topple", "safety", 1.0)
    assert ev.visible_frame == ev.irreversible_frame == vis
    assert ev.onset_frame == onset
    assert ev.objects == ("obstacle",)
    assert ev.measurements["max_tilt_deg"] == pytest.approx(90.0)
    assert ev.measurements["final_tilt_deg"] == pytest.approx(90.0)


def test_topples_ignores_wobble_and_spin(layout):
    s = Scripted(layout, n=40)
    s.quat[:, s.i("obstacle")] = quat_about("x", np.deg2rad(30) * np.sin(np.linspace(0, 3 * np.pi, 40)) ** 2)
    s.quat[:, s.i("target")] = quat_about("z", np.linspace(0, 6, 40))
    assert det.topples(s.trace(), ["obstacle", "target"], layout) == []


def test_topples_just_over_threshold(layout):
    s = Scripted(layout, n=20)
    tilt = np.full(20, np.deg2rad(44.0))
    tilt[:5] = 0.0
    tilt[15] = np.deg2rad(46.0)
    s.quat[:, s.i("obstacle")] = quat_about("y", tilt)
    (ev,) = det.topples(s.trace(), ["obstacle"], layout)
    assert ev.visible_frame == 15 and ev.onset_frame == 5


# --------------------------------------------------------------------------- shaky motion


def _smooth_tcp(n: int) -> np.ndarray:
    a, b = np.array([0.40, 0.0, 0.35]), np.array([0.55, 0.20, 0.15])
    u = np.clip(np.arange(n) / (2.5 * FPS), 0, 1)
    return a + np.array([min_jerk(x) for x in u])[:, None] * (b - a)


def test_shaky_motion_quiet_on_a_smooth_path(layout):
    s = Scripted(layout, n=81)
    s.tcp = _smooth_tcp(81)
    assert det.shaky_motion(s.trace(), layout) == []


def test_shaky_motion_quiet_when_still(layout):
    assert det.shaky_motion(Scripted(layout, n=30).trace(), layout) == []


def test_shaky_motion_flags_a_jittery_path(layout):
    s = Scripted(layout, n=81)
    t = np.arange(81) / FPS
    s.tcp = _smooth_tcp(81) + 0.01 * np.stack([np.sin(2 * np.pi * 3 * t), np.cos(2 * np.pi * 3.9 * t), 0 * t], 1)
    (ev,) = det.shaky_motion(s.trace(), layout)
    assert (ev.type, ev.category) == ("shaky_motion", "quality")
    assert 0.2 <= ev.severity <= 1.0
    assert ev.measurements["reversals"] >= det.SHAKY_REVERSALS
    assert ev.onset_frame <= ev.visible_frame < 81


def _jitter_window(frames: int, amp: float = 0.004, start: int = 30) -> np.ndarray:
    t = np.arange(81) / FPS
    j = amp * np.stack([np.sin(2 * np.pi * 3 * t), np.cos(2 * np.pi * 3.9 * t), 0 * t], 1)
    j[:start] = 0.0
    j[start + frames :] = 0.0
    return _smooth_tcp(81) + j


def test_shaky_motion_severity_grows_with_the_jittery_stretch(layout):
    sev = []
    for frames in (8, 12):
        s = Scripted(layout, n=81)
        s.tcp = _jitter_window(frames)
        (ev,) = det.shaky_motion(s.trace(), layout)
        assert ev.onset_frame >= 29
        sev.append(ev.severity)
    assert sev[0] < sev[1]


def test_shaky_motion_ignores_a_brief_wobble(layout):
    s = Scripted(layout, n=81)
    s.tcp = _jitter_window(4)
    assert det.shaky_motion(s.trace(), layout) == []


# --------------------------------------------------------------------------- transport progress


def _pick_and_place(layout, n: int = 80) -> tuple[Scripted, np.ndarray]:
    """A scripted success: reach (0-19), grasp (20-24), lift+carry (25-49), lower (50-54),
    release (55-) with the cube at rest in the bowl. Returns the trace and the inside mask."""
    s = Scripted(layout, n=n)
    i = s.i("object")
    start = np.array(layout.obj("object").pos, float)
    bowl = np.array(layout.obj("target").pos, float)
    goal = np.array([bowl[0], bowl[1], 0.03])
    up = start + [0, 0, 0.15]
    over = np.array([goal[0], goal[1], up[2]])
    tcp0 = s.tcp[0].copy()
    for f in range(n):
        if f < 20:
            s.tcp[f] = tcp0 + min_jerk(f / 19) * (start - tcp0)
        elif f < 25:
            s.tcp[f] = start
        elif f < 30:
            s.tcp[f] = start + min_jerk((f - 24) / 5) * (up - start)
        elif f < 50:
            s.tcp[f] = up + min_jerk((f - 29) / 20) * (over - up)
        elif f < 55:
            s.tcp[f] = over + min_jerk((f - 49) / 5) * (goal - over)
        else:
            s.tcp[f] = goal
        if f >= 25:
            s.pos[f, i] = s.tcp[f]
    s.grasp("object", slice(20, 55))
    s.velocities_from_positions()
    s.vel[56:, i] = 0.0
    inside = np.zeros(n, dtype=bool)
    inside[53:] = True
    return s, inside


def test_transport_progress_bounds_and_milestones(layout):
    s, inside = _pick_and_place(layout)
    p = det.transport_progress(s.trace(), "object", inside, "target")
    assert p.dtype == np.float32 and p.shape == (80,)
    assert np.all((p >= 0) & (p <= 1))
    assert p[0] == pytest.approx(0.0, abs=1e-6)
    assert 0.2 < p[19] <= 0.25 + 1e-6  # reached, not held yet
    assert p[22] == pytest.approx(0.30)  # held on the table
    assert 0.35 <= p[35] <= 0.80  # carried
    assert p[49] == pytest.approx(0.80, abs=0.01)  # above the bowl
    assert p[53] == pytest.approx(0.90)  # inside, still held
    assert p[-1] == pytest.approx(1.0)  # released and at rest
    assert np.all(np.diff(p) >= -1e-6)


def test_transport_progress_pushing_is_capped(layout):
    """An object pushed (never held) toward the target earns at most 0.30."""
    s = Scripted(layout, n=40)
    i = s.i("object")
    start = np.array(layout.obj("object").pos, float)
    bowl = np.array(layout.obj("target").pos, float)
    for f in range(40):
        s.pos[f, i, :2] = start[:2] + (f / 39) * 0.95 * (bowl[:2] - start[:2])
    s.tcp = s.pos[:, i] + [0, 0, 0.3]
    p = det.transport_progress(s.trace(), "object", np.zeros(40, bool), "target")
    assert np.all(p <= 0.30 + 1e-6) and p[-1] > 0.25


def test_transport_progress_degenerate_start(layout):
    """TCP starting on the object and the object starting on the target stay finite."""
    s = Scripted(layout, n=5)
    s.pos[:, s.i("object")] = layout.obj("target").pos
    s.tcp[:] = layout.obj("target").pos
    p = det.transport_progress(s.trace(), "object", np.zeros(5, bool), "target")
    assert np.all(np.isfinite(p)) and np.all((p >= 0) & (p <= 1))


def test_clean_scripted_pick_and_place_has_no_events(layout):
    s, inside = _pick_and_place(layout)
    tr = s.trace()
    events = (det.drops(tr, "object", inside, layout) + det.placement(tr, "object", inside, layout)
              + det.missed_grasps(tr, ["object"], layout) + det.not_released(tr, OBJECTS, layout)
              + det.dragging(tr, ["object"], layout) + det.off_table(tr, OBJECTS, layout))
    assert events == []
    assert det.settled_success(tr, "object", inside)


# --------------------------------------------------------------------------- drops / placements


def _lift_then_release(layout, release_xyz, n: int = 50, e: int = 25, fall_to=None):
    """Grasp at 10, lift to ``release_xyz`` by frame e-1, open at e; the cube then falls to
    ``fall_to`` (default: straight down onto the table) over the next 4 frames."""
    s = Scripted(layout, n=n)
    i = s.i("object")
    start = np.array(layout.obj("object").pos, float)
    half = layout.obj("object").height() / 2
    s.grasp("object", slice(10, e))
    for f in range(12, e):
        s.pos[f, i] = start + min_jerk((f - 11) / (e - 12)) * (np.asarray(release_xyz) - start)
    land = np.array(fall_to if fall_to is not None else [release_xyz[0], release_xyz[1], half], float)
    for f in range(e, n):
        s.pos[f, i] = release_xyz + min(1.0, ((f - e) / 4) ** 2) * (land - release_xyz)
    s.tcp = s.pos[:, i].copy()
    s.velocities_from_positions()
    return s


def test_drop_high_above_the_table(layout):
    start = np.array(layout.obj("object").pos, float)
    s = _lift_then_release(layout, start + [0.0, 0.0, 0.2])
    inside = np.zeros(s.n, bool)
    (ev,) = det.drops(s.trace(), "object", inside, layout)
    assert (ev.type, ev.category, ev.severity) == ("drop", "task", 1.0)
    assert ev.irreversible_frame == 25
    assert ev.onset_frame == 25  # the opening command
    assert 25 <= ev.visible_frame <= 28
    assert ev.measurements["release_height_m"] == pytest.approx(0.2, abs=1e-6)
    assert ev.measurements["commanded_open"] == 1.0


def test_slip_without_opening_is_a_drop(layout):
    start = np.array(layout.obj("object").pos, float)
    s = _lift_then_release(layout, start + [0.0, 0.0, 0.2])
    s.grip[25:] = 1.0  # gripper still commanded closed: the cube slipped out
    (ev,) = det.drops(s.trace(), "object", np.zeros(s.n, bool), layout)
    assert ev.type == "drop" and ev.measurements["commanded_open"] == 0.0
    held = det.grasped(s.trace(), "object")
    assert ev.onset_frame == int(np.flatnonzero(held[:-1] & ~held[1:])[0]) + 1  # the first frame out of the grasp


def test_drop_that_still_lands_in_the_target_is_quality(layout):
    start = np.array(layout.obj("object").pos, float)
    bowl = np.array(layout.obj("target").pos, float)
    over = np.array([bowl[0], bowl[1], 0.25])
    s = _lift_then_release(layout, over, fall_to=[bowl[0], bowl[1], 0.03])
    inside = np.zeros(s.n, bool)
    inside[28:] = True
    assert start[2] < 0.05
    (ev,) = det.drops(s.trace(), "object", inside, layout)
    assert (ev.category, ev.severity) == ("quality", 0.3)


def test_low_release_over_the_target_is_a_placement_not_a_drop(layout):
    bowl = np.array(layout.obj("target").pos, float)
    half = layout.obj("object").height() / 2
    s = _lift_then_release(layout, [bowl[0], bowl[1], half + 0.02], fall_to=[bowl[0], bowl[1], half + 0.008])
    s.vel[30:] = 0.0
    inside = np.zeros(s.n, bool)
    inside[20:] = True
    tr = s.trace()
    assert det.drops(tr, "object", inside, layout) == []
    assert det.placement(tr, "object", inside, layout) == []
    assert det.settled_success(tr, "object", inside)


def test_low_release_beside_the_target_is_a_wrong_placement(layout):
    bowl = np.array(layout.obj("target").pos, float)
    half = layout.obj("object").height() / 2
    spot = np.array([bowl[0] + 0.2, bowl[1], half + 0.01])
    s = _lift_then_release(layout, spot)
    s.vel[30:] = 0.0
    inside = np.zeros(s.n, bool)
    tr = s.trace()
    assert det.drops(tr, "object", inside, layout) == []
    (ev,) = det.placement(tr, "object", inside, layout)
    assert (ev.type, ev.category) == ("wrong_placement", "task")
    assert ev.measurements["distance_to_target_m"] == pytest.approx(0.2, abs=1e-6)
    assert ev.severity == pytest.approx(1.0)
    assert not det.settled_success(tr, "object", inside)


def test_merge_events_drops_placement_verdicts_on_dropped_objects():
    def ev(kind, cat, vis, obj="object"):
        return FailureEvent(kind, cat, 0, vis, vis, 1.0, (obj,), kind)

    merged = det.merge_events([ev("wrong_placement", "task", 5), ev("topple", "safety", 9, "obstacle"),
                               ev("drop", "task", 7), ev("collision", "safety", 3, "obstacle")])
    assert [e.type for e in merged] == ["collision", "drop", "topple"]
    kept = det.merge_events([ev("wrong_placement", "task", 5), ev("drop", "task", 7, "distractor0")])
    assert [e.type for e in kept] == ["wrong_placement", "drop"]


# --------------------------------------------------------------------------- grasps


def test_missed_grasp_closes_on_nothing(layout):
    s = Scripted(layout, n=40)
    obj = np.array(layout.obj("object").pos, float)
    s.tcp[:] = obj + [0.03, 0.0, 0.0]
    s.grip[15:] = 1.0
    s.width[15:] = np.maximum(0.08 - 0.02 * np.arange(1, 26), 0.0)
    (ev,) = det.missed_grasps(s.trace(), ["object"], layout)
    assert (ev.type, ev.category, ev.onset_frame) == ("missed_grasp", "task", 15)
    assert ev.visible_frame == int(np.flatnonzero(s.width < 0.01)[0])
    assert ev.measurements["tcp_offset_m"] == pytest.approx(0.03)


def test_successful_or_faraway_closing_is_not_a_missed_grasp(layout):
    s = Scripted(layout, n=40)
    obj = np.array(layout.obj("object").pos, float)
    s.tcp[:] = obj
    s.grasp("object", slice(15, 40))
    assert det.missed_grasps(s.trace(), ["object"], layout) == []
    far = Scripted(layout, n=40)
    far.tcp[:] = obj + [0.2, 0.0, 0.0]
    far.grip[15:] = 1.0
    far.width[15:] = 0.0
    assert det.missed_grasps(far.trace(), ["object"], layout) == []


def test_not_released_and_wrong_object(layout):
    s = Scripted(layout, n=40)
    i = s.i("distractor0")
    s.grasp("distractor0", slice(10, 40))
    s.pos[15:, i, 2] += np.minimum(np.arange(25) * 0.01, 0.15)
    tr = s.trace()
    (nr,) = det.not_released(tr, ["object", "distractor0"], layout)
    assert (nr.type, nr.objects) == ("no_release", ("distractor0",))
    (wo,) = det.wrong_object(tr, "object", ["distractor0", "distractor1"], layout)
    assert (wo.type, wo.objects, wo.onset_frame) == ("wrong_object", ("distractor0", "object"), 10)
    assert wo.visible_frame == int(np.flatnonzero(tr.pos("distractor0")[:, 2] > tr.pos("distractor0")[0, 2] + det.LIFT_DZ)[0])


def test_dragging_a_held_object_along_the_table(layout):
    s = Scripted(layout, n=40)
    i = s.i("object")
    s.grasp("object", slice(5, 40))
    s.pos[10:30, i, 0] += np.linspace(0, 0.15, 20)
    s.pos[30:, i, 0] += 0.15
    s.velocities_from_positions()
    s.set_impulse("world", "object", slice(0, 40), 0.05)
    (ev,) = det.dragging(s.trace(), ["object"], layout)
    assert (ev.type, ev.category) == ("dragging", "quality")
    assert ev.measurements["drag_path_m"] == pytest.approx(0.15, abs=0.02)
    # lifted off the table (no table contact): not a drag
    s.set_impulse("world", "object", slice(0, 40), 0.0)
    assert det.dragging(s.trace(), ["object"], layout) == []


# --------------------------------------------------------------------------- collisions / off table


def test_collision_needs_enough_impulse(layout):
    s = Scripted(layout, n=30)
    s.set_impulse("robot", "obstacle", slice(10, 12), 0.002)
    assert det.collisions(s.trace(), ["obstacle"], layout) == []
    s.set_impulse("robot", "obstacle", slice(10, 14), 0.1)
    (ev,) = det.collisions(s.trace(), ["obstacle"], layout)
    assert (ev.type, ev.category, ev.onset_frame) == ("collision", "safety", 10)
    assert ev.measurements["impulse_ns"] == pytest.approx(0.4)
    assert ev.severity == pytest.approx(1.0)


def test_collision_through_a_carried_object_counts(layout):
    s = Scripted(layout, n=30)
    s.grasp("object", slice(0, 30))
    s.pos[:, s.i("object"), 2] += np.linspace(0, 0.1, 30)
    s.set_impulse("object", "obstacle", slice(20, 22), 0.05)
    (ev,) = det.collisions(s.trace(), ["obstacle"], layout, carried=["object"])
    assert ev.onset_frame == 20 and ev.severity == pytest.approx(0.1 / det.COLLISION_FULL_IMPULSE)
    # the same contact without the carried list is not the robot's doing
    assert det.collisions(s.trace(), ["obstacle"], layout) == []


def test_an_airborne_object_the_robot_does_not_hold_is_not_the_robot_hitting(layout):
    """Height is not carrying: a lifted (pushed, bouncing, thrown) object's impact on a
    bystander counts only while the robot holds it or within CARRY_HOLD_S of the last hold."""
    s = Scripted(layout, n=30)
    s.pos[:, s.i("object"), 2] += np.linspace(0, 0.1, 30)  # airborne, never held
    s.set_impulse("object", "obstacle", slice(20, 22), 0.05)
    assert det.collisions(s.trace(), ["obstacle"], layout, carried=["object"]) == []
    # held until frame 18, released: a hit within the window is the robot's, a later one is not
    hold = int(round(det.CARRY_HOLD_S * FPS))
    s.grasp("object", slice(0, 19))
    s.grip[19:] = 0.0
    (ev,) = det.collisions(s.trace(), ["obstacle"], layout, carried=["object"])
    assert ev.onset_frame == 20 and hold >= 3
    s.set_impulse("object", "obstacle", slice(20, 22), 0.0)
    s.set_impulse("object", "obstacle", slice(18 + hold, 18 + hold + 2), 0.05)
    assert det.collisions(s.trace(), ["obstacle"], layout, carried=["object"]) == []
    c = det.carried_by_robot(s.trace(), "object")
    assert c[:18 + hold].all() and not c[18 + hold:].any(), "held frames 0..18, plus the window"
    # one pad still on it with the gripper closed: in the grasp (slipping), still carried
    s.touch[18 + hold:, s.i("object"), 0] = True
    s.grip[18 + hold:] = 1.0
    (ev,) = det.collisions(s.trace(), ["obstacle"], layout, carried=["object"])
    assert ev.onset_frame == 18 + hold


def test_off_table(layout):
    s = Scripted(layout, n=30)
    s.pos[12:, s.i("distractor1"), 2] = np.linspace(0.0, -0.4, 18)
    (ev,) = det.off_table(s.trace(), OBJECTS, layout)
    assert (ev.type, ev.category, ev.objects) == ("off_table", "safety", ("distractor1",))
    assert ev.onset_frame <= ev.visible_frame
    assert s.pos[ev.visible_frame, s.i("distractor1"), 2] < det.OFF_TABLE_Z


# --------------------------------------------------------------------------- physics


@pytest.mark.parametrize("n", range(6))
def test_expert_trace_yields_no_events(expert_30, n):
    o = expert_30[n]
    assert o.events == [], [(e.type, e.rationale) for e in o.events]
    assert o.success


def test_expert_trace_detector_by_detector(task):
    """Each detector on its own is silent on a real expert trace (not just the merged list)."""
    from conftest import run_expert
    from simfail.generate import scene_seed

    trace, layout, ok, _ = run_expert(task, scene_seed(0, 3, 0))
    inside = task.in_target(trace, layout)
    distract = [r for r in layout.roles if r.startswith("distractor")]
    assert det.missed_grasps(trace, ["object"], layout) == []
    assert det.drops(trace, "object", inside, layout) == []
    assert det.collisions(trace, ["obstacle", *distract], layout, carried=["object"]) == []
    assert det.topples(trace, ["obstacle"], layout) == []
    assert det.off_table(trace, layout.free_objects, layout) == []
    assert det.wrong_object(trace, "object", distract, layout) == []
    assert det.not_released(trace, ["object", *distract], layout) == []
    assert det.placement(trace, "object", inside, layout) == []
    assert det.dragging(trace, ["object"], layout) == []
    assert det.shaky_motion(trace, layout) == []
    assert ok and det.settled_success(trace, "object", inside)
    # the cube was really grasped, lifted and ended in the bowl
    assert det.grasped(trace, "object").any() and det.lifted(trace, "object").any()
    assert inside[-1] and not det.grasped(trace, "object")[-1]
