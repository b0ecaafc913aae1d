"""Programs: the minimum-jerk law, keyframes, and Program.branch (identical to the base up to
the onset, changed afterwards) - including every pick/place perturbation on the rollout's own
command schedule."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.core.builder import layout_rng
from simfail.core.program import Program, Segment, min_jerk, slerp_wxyz
from simfail.core.robot import topdown_quat
from simfail.core.rollout import frame_count, onset_frame

FPS = 10


@pytest.fixture(scope="module")
def layouts(task):
    return [task.sample_layout(layout_rng(s), s) for s in (0, 1, 7, 99)]


@pytest.fixture(scope="module")
def expert(task, layouts):
    return task.expert_program(layouts[0])


def grid(duration: float, step: float = 0.013) -> np.ndarray:
    return np.arange(0.0, duration + 0.5, step)


# --------------------------------------------------------------------------- min_jerk


def test_min_jerk_endpoints_and_shape():
    assert min_jerk(0.0) == 0.0
    assert min_jerk(1.0) == 1.0
    assert min_jerk(0.5) == pytest.approx(0.5)
    u = np.linspace(0, 1, 1001)
    w = np.array([min_jerk(x) for x in u])
    assert np.all(np.diff(w) >= 0)
    # zero velocity and acceleration at both ends
    h = 1e-4
    for x in (0.0, 1.0 - 2 * h):
        v = (min_jerk(x + h) - min_jerk(x)) / h
        assert abs(v) < 1e-3
    for x in (h, 1.0 - h):
        a = (min_jerk(x + h) - 2 * min_jerk(x) + min_jerk(x - h)) / h**2
        assert abs(a) < 1e-2
    # symmetric: w(1-u) = 1 - w(u)
    np.testing.assert_allclose(w[::-1], 1 - w, atol=1e-12)
    # peak velocity 15/8 at the middle
    assert (min_jerk(0.5 + h) - min_jerk(0.5 - h)) / (2 * h) == pytest.approx(1.875, rel=1e-6)


def test_slerp_endpoints():
    q0, q1 = topdown_quat(0.0), topdown_quat(0.6)
    np.testing.assert_array_equal(slerp_wxyz(q0, q1, 0.0), q0)
    np.testing.assert_array_equal(slerp_wxyz(q0, q1, 1.0), q1)
    mid = slerp_wxyz(q0, q1, 0.5)
    assert np.linalg.norm(mid) == pytest.approx(1.0)
    assert abs(np.dot(mid, topdown_quat(0.3))) == pytest.approx(1.0, abs=1e-9)


def test_slerp_matches_scipy_on_random_rotations():
    from scipy.spatial.transform import Rotation, Slerp

    rng = np.random.default_rng(0)
    for _ in range(200):
        r = Rotation.random(2, random_state=rng)
        w = float(rng.uniform())
        x0, y0, z0, w0 = r[0].as_quat()
        x1, y1, z1, w1 = r[1].as_quat()
        ours = slerp_wxyz(np.array([w0, x0, y0, z0]), np.array([w1, x1, y1, z1]), w)
        x, y, z, ww = Slerp([0.0, 1.0], r)([w]).as_quat()[0]
        # same rotation (q and -q are equal rotations)
        assert abs(np.dot(ours, [ww, x, y, z])) == pytest.approx(1.0, abs=1e-9)


def test_topdown_quat_points_the_tool_down_with_the_given_yaw():
    from scipy.spatial.transform import Rotation

    for yaw in (-2.5, -0.4, 0.0, 0.7, 3.0):
        w, x, y, z = topdown_quat(yaw)
        ref = Rotation.from_euler("z", yaw) * Rotation.from_euler("x", np.pi)
        assert abs(np.dot([x, y, z, w], ref.as_quat())) == pytest.approx(1.0, abs=1e-12)


# --------------------------------------------------------------------------- plain programs


def simple_program() -> Program:
    p = Program(start_pos=np.array([0.4, 0.0, 0.3]), start_quat=topdown_quat(0.0))
    p.segments = [
        Segment("a", np.array([0.5, 0.1, 0.2]), 0.0, 1.0, 0.0),
        Segment("b", np.array([0.5, 0.1, 0.05]), 0.2, 0.5, 1.0),
        Segment("c", np.array([0.3, -0.1, 0.25]), 0.2, 1.5, 1.0),
    ]
    return p


def test_program_hits_its_keyframes():
    p = simple_program()
    assert p.duration == pytest.approx(3.0)
    np.testing.assert_array_equal(p.pose_at(0.0)[0], p.start_pos)
    np.testing.assert_array_equal(p.pose_at(0.0)[1], p.start_quat)
    t = 0.0
    for s in p.segments:
        t += s.duration
        pos, quat = p.pose_at(t)
        np.testing.assert_allclose(pos, s.pos, atol=1e-12)
        assert abs(np.dot(quat, s.orientation())) == pytest.approx(1.0, abs=1e-12)
    # clamped after the end
    np.testing.assert_allclose(p.pose_at(10.0)[0], p.segments[-1].pos)
    assert p.phase_times() == {"a": (0.0, 1.0), "b": (1.0, 1.5), "c": (1.5, 3.0)}
    assert p.index_of("b") == 1 and p.start_of(2) == pytest.approx(1.5)
    with pytest.raises(KeyError):
        p.index_of("nope")


def test_program_grip_and_phase():
    p = simple_program()
    assert [p.grip_at(t) for t in (0.0, 0.99, 1.0, 1.2, 2.9, 5.0)] == [0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    assert [p.phase_at(t) for t in (0.0, 0.99, 1.0, 1.6, 5.0)] == ["a", "a", "b", "c", "c"]


def test_program_path_is_continuous():
    p = simple_program()
    ts = np.linspace(0, 3.0, 3001)
    pos = np.array([p.pose_at(t)[0] for t in ts])
    step = np.linalg.norm(np.diff(pos, axis=0), axis=1)
    assert step.max() < 2e-3  # no jumps at segment boundaries


def test_jitter_fades_out_at_keyframes():
    p = simple_program()
    p.segments[0].jitter = (0.01, 3.0)
    smooth = simple_program()
    np.testing.assert_allclose(p.pose_at(1.0)[0], p.segments[0].pos, atol=1e-12)
    np.testing.assert_allclose(p.pose_at(0.0)[0], p.start_pos, atol=1e-12)
    dev = max(np.linalg.norm(p.pose_at(t)[0] - smooth.pose_at(t)[0]) for t in np.linspace(0, 1, 101))
    assert 0.005 < dev < 0.02


# --------------------------------------------------------------------------- branch


def _assert_same_before(base: Program, branched: Program, t_on: float):
    for t in grid(t_on, 0.0071):
        if t > t_on:
            break
        pb, qb = base.pose_at(t)
        pn, qn = branched.pose_at(t)
        np.testing.assert_array_equal(pn, pb, err_msg=f"pose at t={t}")
        np.testing.assert_array_equal(qn, qb, err_msg=f"quat at t={t}")
        if t < t_on:
            assert branched.grip_at(t) == base.grip_at(t), t
        assert branched.phase_at(t) == base.phase_at(t), t
    np.testing.assert_array_equal(branched.pose_at(t_on)[0], base.pose_at(t_on)[0])


def test_branch_with_segments(expert):
    t_on = 3.1
    new = [Segment("detour", np.array([0.45, 0.0, 0.40]), 0.0, 1.0, 1.0),
           Segment("rest", np.array([0.40, 0.0, 0.30]), 0.0, 2.0, 0.0)]
    b = expert.branch(t_on, new)
    _assert_same_before(expert, b, t_on)
    assert b.duration == pytest.approx(t_on + 3.0)
    # continuous at the branch point: starts from the base's pose at t_on
    np.testing.assert_allclose(b.pose_at(t_on + 1e-6)[0], expert.pose_at(t_on)[0], atol=1e-6)
    # and different afterwards
    assert not np.allclose(b.pose_at(t_on + 0.5)[0], expert.pose_at(t_on + 0.5)[0])
    np.testing.assert_allclose(b.pose_at(t_on + 1.0)[0], new[0].pos, atol=1e-12)
    assert b.phase_at(t_on + 0.5) == "detour" and b.phase_at(t_on + 1.5) == "rest"
    assert b.grip_at(t_on + 0.5) == 1.0 and b.grip_at(t_on + 1.5) == 0.0
    np.testing.assert_allclose(b.pose_at(100.0)[0], new[-1].pos)


def test_branch_with_grip_override(expert):
    t_on = expert.phase_times()["carry"][0] + 0.4
    b = expert.branch(t_on, grip=0.0)
    _assert_same_before(expert, b, t_on)
    assert b.duration == expert.duration
    for t in grid(expert.duration, 0.05):
        np.testing.assert_array_equal(b.pose_at(t)[0], expert.pose_at(t)[0])
        assert b.phase_at(t) == expert.phase_at(t)
        if t >= t_on:
            assert b.grip_at(t) == 0.0
    assert expert.grip_at(t_on + 0.1) == 1.0


def test_branch_of_a_branch(expert):
    b1 = expert.branch(2.0, [Segment("x", np.array([0.5, 0.1, 0.3]), 0.0, 2.0, 1.0)])
    b2 = b1.branch(3.0, grip=0.0)
    _assert_same_before(expert, b2, 2.0)
    _assert_same_before(b1, b2, 3.0)
    assert b2.grip_at(3.5) == 0.0 and b1.grip_at(3.5) == 1.0


def test_branch_without_changes_is_the_base(expert):
    b = expert.branch(1.7)
    for t in grid(expert.duration, 0.05):
        np.testing.assert_array_equal(b.pose_at(t)[0], expert.pose_at(t)[0])
        assert b.grip_at(t) == expert.grip_at(t) and b.phase_at(t) == expert.phase_at(t)
    assert b.duration == expert.duration


# --------------------------------------------------------------------------- every perturbation


def _commands(program: Program, n: int):
    """What run_program asks of a program at frames 1..n-1: pose at f/fps, grip at (f-1)/fps."""
    out = []
    for f in range(1, n):
        pos, quat = program.pose_at(f / FPS)
        out.append((pos, quat, program.grip_at((f - 1) / FPS)))
    return out


def test_expert_fills_the_episode(task, layouts):
    for layout in layouts:
        p = task.expert_program(layout)
        assert p.duration == pytest.approx(task.duration)
        assert [s.phase for s in p.segments][:3] == ["approach", "descend", "grasp"]


def program_perturbations(task):
    """The task's operators that edit the expert's program (the task-bound generic ones, such
    as drop, edit actions instead: tests/test_counterfactual.py covers them)."""
    from simfail.perturbations.base import Perturbation

    return {n: p for n, p in task.perturbations().items() if isinstance(p, Perturbation)}


@pytest.mark.parametrize("magnitude_kind", ["failure", "near_miss"])
def test_every_perturbation_matches_the_expert_up_to_its_onset_frame(task, layouts, magnitude_kind):
    n = frame_count(task.duration, FPS)
    for layout in layouts:
        expert = task.expert_program(layout)
        base = _commands(expert, n)
        for name, pert in program_perturbations(task).items():
            lo, hi = getattr(pert, f"{magnitude_kind}_range")
            for m in (lo, hi):
                applied = pert.apply(task, layout, expert, m, np.random.default_rng(5))
                k = onset_frame(applied.onset_time, FPS)
                assert 0 <= k < n - 1, name
                mine = _commands(applied.program, n)
                assert applied.program.grip_at(0.0) == expert.grip_at(0.0)
                for f in range(1, k + 1):  # the steps that end at frames 1..k
                    (pa, qa, ga), (pb, qb, gb) = mine[f - 1], base[f - 1]
                    assert np.array_equal(pa, pb) and np.array_equal(qa, qb) and ga == gb, (layout.seed, name, m, f)
                changed = any(
                    not (np.array_equal(pa, pb) and np.array_equal(qa, qb) and ga == gb)
                    for (pa, qa, ga), (pb, qb, gb) in zip(mine[k:], base[k:])
                )
                assert changed, (layout.seed, name, m)


def test_perturbed_programs_fill_the_episode(task, layouts):
    """Every perturbed program lasts the episode (its final hold ends at task.duration)."""
    short = {}
    for layout in layouts:
        expert = task.expert_program(layout)
        for name, pert in program_perturbations(task).items():
            for m in (*pert.failure_range, *pert.near_miss_range):
                d = pert.apply(task, layout, expert, m, np.random.default_rng(5)).program.duration
                if abs(d - task.duration) > 0.05:
                    short[name] = round(d, 3)
    assert not short, f"program durations != {task.duration} s: {short}"


def test_perturbation_magnitude_is_validated(task, layouts, expert):
    from simfail.errors import ConfigError

    pert = task.perturbations()["missed_grasp"]
    with pytest.raises(ConfigError):
        pert.apply(task, layouts[0], expert, 1.5, np.random.default_rng(0))
    with pytest.raises(ConfigError):
        pert.apply(task, layouts[0], expert, -0.1, np.random.default_rng(0))


def test_onset_frame():
    assert onset_frame(0.0, 10) == 0
    assert onset_frame(3.4, 10) == 34
    assert onset_frame(3.39999999999, 10) == 34  # float noise on a frame time
    assert onset_frame(3.45, 10) == 34
    assert onset_frame(-1.0, 10) == 0
    assert frame_count(8.0, 10) == 81
