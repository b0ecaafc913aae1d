"""Pour: the scene, the nut detectors, the expert, and every failure operator in the physics."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from conftest import assert_group_shares_expert_prefix, SMALL, run_expert, small_config

from simfail.core.builder import build_scene, make_core
from simfail.core.robot import topdown_quat
from simfail.core.scene import StageConfig
from simfail.core.task import get_task
from simfail.generate import generate_group, scene_seed
from simfail.labels import pour_detectors as pdet
from simfail.labels.trace import Trace
from simfail.scenes import pour as pour_scene


@pytest.fixture(scope="module")
def task():
    return get_task("pour")


@pytest.fixture(scope="module")
def group(task):
    """Group 0 (seed 0), physics and labels only: the expert and one variant per operator."""
    return generate_group(task, small_config(), 0, render=False)


def _first_frame_trace(task, seed: int):
    scene = build_scene(task, seed, StageConfig(width=SMALL, height=SMALL))
    core = make_core(scene, 10)
    trace = Trace(10, list(core.entity_names), list(core.entity_names[2:]), joint_index=core.joint_index)
    trace.record(core, np.zeros(8), None, "start")
    return scene, trace


# --------------------------------------------------------------------------- scene


def test_layouts_have_one_width_and_leave_the_nuts_untracked(task):
    widths = set()
    for g in range(6):
        scene = build_scene(task, scene_seed(0, g, 0), StageConfig(width=SMALL, height=SMALL))
        widths.add((scene.model.nq, scene.model.nv))
        lay = scene.layout
        assert lay.tracked == ["cup", "target", "other", "bystander", "distractor"]
        assert not any(n.startswith("nut") for n in lay.tracked)
        assert lay.obj("target").label in lay.instruction
        for o in lay.objects:
            assert 0.34 <= o.pos[0] <= 0.68 and abs(o.pos[1]) <= 0.3, (o.name, o.pos)
    assert len(widths) == 1
    nq, nv = widths.pop()
    # robot 9, five free objects, three slide joints per nut
    assert nq == 9 + 7 * 5 + 3 * pour_scene.N_NUTS
    assert nv == 9 + 6 * 5 + 3 * pour_scene.N_NUTS


def test_nut_joints_read_world_coordinates(task):
    """Each nut's slide joint values are its centre's world coordinates (``ref`` = start)."""
    import mujoco

    scene = build_scene(task, scene_seed(0, 2, 0), StageConfig(width=SMALL, height=SMALL))
    m = scene.model
    d = mujoco.MjData(m)
    d.qpos[:] = scene.qpos0
    d.qpos[m.jnt_qposadr[m.joint(pour_scene.nut_joint(0, "z")).id]] += 0.05
    mujoco.mj_kinematics(m, d)
    for k in range(pour_scene.N_NUTS):
        q = [d.qpos[m.jnt_qposadr[m.joint(pour_scene.nut_joint(k, a)).id]] for a in pour_scene.NUT_AXES]
        np.testing.assert_allclose(d.body(f"nut{k}").xpos, q, atol=1e-12)


def test_vessels_and_nuts_draw_one_mesh_each_over_hidden_collision_geoms(task):
    """Every collision geom of the cup, the bowls and the nuts is in the undrawn group; each
    vessel is drawn as one closed mesh that spans its collision geoms, each nut as one mesh."""
    import mujoco

    scene = build_scene(task, scene_seed(0, 0, 0), StageConfig(width=SMALL, height=SMALL))
    m, lay = scene.model, scene.layout
    opt = mujoco.MjvOption()
    d = mujoco.MjData(m)
    d.qpos[:] = scene.qpos0
    mujoco.mj_forward(m, d)
    for name in ("cup", "target", "other", *(f"nut{k}" for k in range(pour_scene.N_NUTS))):
        body = m.body(name).id
        geoms = [g for g in range(m.ngeom) if m.geom_bodyid[g] == body]
        colliding = [g for g in geoms if m.geom_contype[g] or m.geom_conaffinity[g]]
        drawn = [g for g in geoms if opt.geomgroup[m.geom_group[g]]]
        assert colliding and all(m.geom_group[g] == pour_scene.COLLISION_GROUP for g in colliding), name
        assert not opt.geomgroup[pour_scene.COLLISION_GROUP]
        (vis,) = drawn
        assert m.geom_type[vis] == mujoco.mjtGeom.mjGEOM_MESH and m.geom_contype[vis] == 0 and m.geom_conaffinity[vis] == 0
        np.testing.assert_allclose(m.geom_rgba[vis], m.geom_rgba[colliding[0]])
        # the mesh spans the object's collision shape (world-frame extents, 1 mm tolerance)
        mid = m.geom_dataid[vis]
        verts = m.mesh_vert[m.mesh_vertadr[mid]:m.mesh_vertadr[mid] + m.mesh_vertnum[mid]]
        pts = d.geom_xpos[vis] + verts @ d.geom_xmat[vis].reshape(3, 3).T - d.body(name).xpos
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        if name.startswith("nut"):
            r = lay.params["nut_radius"]
            np.testing.assert_allclose(hi - lo, 2 * r, atol=2e-4)
        else:
            size = lay.obj(name).size
            w = size[0] if name == "cup" else size[0] + size[2]
            height = size[1] if name == "cup" else pour_scene.BOWL_BASE + size[1]
            assert lo[2] == pytest.approx(0.0, abs=1e-3) and hi[2] == pytest.approx(height, abs=1e-3)
            # flat faces at the collision walls' outer faces (a square cup: exactly +-w)
            sides = 4 if name == "cup" else pour_scene.BOWL_SLABS
            assert 2 * w - 1e-3 <= hi[0] - lo[0] <= 2 * w / np.cos(np.pi / sides) + 1e-3


def test_vessel_mesh_is_a_closed_outward_solid():
    """The visual meshes are closed, consistently wound solids of the right volume."""
    for sides, inner, outer, floor, top in ((4, 0.024, 0.028, 0.006, 0.1), (12, 0.07, 0.078, 0.012, 0.057)):
        v, f = pour_scene.vessel_mesh(sides, inner, outer, floor, top)
        edges = {}
        for tri in f:
            for a, b in zip(tri, np.roll(tri, -1)):
                edges[(a, b)] = edges.get((a, b), 0) + 1
        # closed and consistently wound: every directed edge once, and its reverse once
        assert all(n == 1 for n in edges.values()) and all((b, a) in edges for a, b in edges)
        vol = np.einsum("ij,ij->i", v[f[:, 0]], np.cross(v[f[:, 1]], v[f[:, 2]])).sum() / 6
        area_outer, area_inner = (sides * a * a * np.tan(np.pi / sides) for a in (outer, inner))  # from the apothem
        assert vol == pytest.approx(area_outer * top - area_inner * (top - floor), rel=1e-9)  # > 0: faces point out
    v, f = pour_scene.icosphere()
    assert len(v) == 42 and len(f) == 80
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0)


def test_nuts_start_settled_inside_the_cup(task):
    scene, trace = _first_frame_trace(task, scene_seed(0, 3, 0))
    nuts = pdet.nut_states(trace, scene.layout, pour_scene.N_NUTS)
    assert nuts.in_cup[0].all()
    assert not nuts.in_target[0].any() and not nuts.in_other[0].any()
    speeds = [abs(trace.joint_qvel(pour_scene.nut_joint(k, a))[0, 0]) for k in range(pour_scene.N_NUTS)
              for a in pour_scene.NUT_AXES]
    assert max(speeds) == 0.0  # reset puts the scene at rest in the settled configuration
    assert task.progress(trace, scene.layout)[0] == pytest.approx(0.0, abs=1e-6)
    ok, events = task.detect(trace, scene.layout)
    # judged as an episode that ends at frame 0, it failed: only the end-of-episode verdict
    assert not ok and [(e.type, e.onset_frame, e.visible_frame) for e in events] == [("never_grasped", 0, 0)]


def test_tilt_quat_and_lip_geometry():
    np.testing.assert_allclose(pour_scene.tilt_quat(pour_scene.GRASP_PITCH), topdown_quat(0.0), atol=1e-12)
    # upright: the lip is at the rim, W in front of and H - GRASP_Z above the TCP
    np.testing.assert_allclose(pour_scene.lip_offset(0.0, 0.03, 0.1), [0.03, 0.0, 0.1 - pour_scene.GRASP_Z])
    # mouth facing +x: the lip is below the TCP by W and in front by H - GRASP_Z
    np.testing.assert_allclose(pour_scene.lip_offset(np.pi / 2, 0.03, 0.1), [0.1 - pour_scene.GRASP_Z, 0.0, -0.03],
                               atol=1e-12)


# --------------------------------------------------------------------------- detector units


def _stub(target_xy=(0.45, 0.2), n_frames=3):
    """A minimal trace and layout for the nut detectors (bowls at rest)."""
    pos = {"target": np.tile([*target_xy, 0.0], (n_frames, 1)), "other": np.tile([0.45, -0.2, 0.0], (n_frames, 1))}
    trace = type("StubTrace", (), {"pos": staticmethod(lambda name: pos[name]), "__len__": lambda self: n_frames})()
    layout = SimpleNamespace(obj=lambda name: SimpleNamespace(label=f"{name} bowl", size=(0.07, 0.045, 0.008)))
    return trace, layout


def _nuts(final_xyz: np.ndarray, n_frames=3) -> pdet.NutStates:
    n = len(final_xyz)
    pos = np.repeat(final_xyz[None], n_frames, axis=0)
    in_cup = np.zeros((n_frames, n), bool)
    in_cup[0] = True
    return pdet.NutStates(pos, in_cup, np.zeros((n_frames, n), bool), np.zeros((n_frames, n), bool),
                          np.ones(n, int))


def test_spill_counts_the_nuts_outside_the_containers():
    trace, layout = _stub()
    xyz = np.array([[0.45, 0.2, 0.02]] * 26 + [[0.60, 0.2, 0.006]] * 4)
    nuts = _nuts(xyz)
    nuts.in_target[1:, :26] = True
    (ev,) = pdet.spills(trace, layout, nuts)
    assert ev.type == "spill" and ev.category == "task"
    assert ev.measurements["spilled_count"] == 4 and ev.measurements["in_target_count"] == 26
    assert ev.severity == pytest.approx(4 / 30 / pdet.SPILL_FULL_SHARE)
    nuts.in_target[1:, 26:28] = True  # two left outside: a quality problem
    (ev,) = pdet.spills(trace, layout, nuts)
    assert ev.category == "quality" and ev.measurements["spilled_count"] == 2
    nuts.in_target[1:, 28] = True  # one stray nut is within the tolerance
    assert pdet.spills(trace, layout, nuts) == []


def test_spill_thresholds_in_whole_nuts_of_this_scene():
    """With ``N_NUTS`` nuts: one stray nut is tolerated, two are a quality spill, three fail
    the task (the thresholds the scene's 24 smaller nuts had before they became 20)."""
    trace, layout = _stub()
    n = pour_scene.N_NUTS
    for spilled, expected in ((1, None), (2, "quality"), (3, "task")):
        xyz = np.array([[0.45, 0.2, 0.02]] * (n - spilled) + [[0.60, 0.2, 0.006]] * spilled)
        nuts = _nuts(xyz)
        nuts.in_target[1:, : n - spilled] = True
        events = pdet.spills(trace, layout, nuts)
        assert [e.category for e in events] == ([expected] if expected else []), spilled
        assert (nuts.spilled[-1].mean() <= pdet.SPILL_TASK_SHARE) == (spilled < 3)
        assert (nuts.in_target[-1].mean() >= pdet.GOAL_SHARE) == (spilled <= 3)


def test_quat_mats_matches_mujoco():
    import mujoco

    rng = np.random.default_rng(0)
    q = rng.normal(size=(5, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    for k in range(5):
        m = np.zeros(9)
        mujoco.mju_quat2Mat(m, q[k])
        np.testing.assert_allclose(pdet.quat_mats(q)[k], m.reshape(3, 3), atol=1e-12)


# --------------------------------------------------------------------------- physics (one group: the end-to-end test)


@pytest.mark.slow
def test_expert_is_a_clean_success_and_deterministic(task):
    seed = scene_seed(0, 1, 0)
    trace, layout, ok, events = run_expert(task, seed)
    assert ok and events == []
    p = task.progress(trace, layout)
    assert p[0] == pytest.approx(0.0, abs=1e-6) and p[-1] == pytest.approx(1.0)
    assert np.all(np.diff(p.astype(float)) > -0.05)
    nuts = pdet.nut_states(trace, layout, pour_scene.N_NUTS)
    assert nuts.in_target[-1].mean() >= pdet.GOAL_SHARE
    trace2, _, ok2, events2 = run_expert(task, seed)
    np.testing.assert_array_equal(np.array(trace.qpos), np.array(trace2.qpos))
    assert ok2 == ok and events2 == events


def test_every_operator_happens_in_the_physics(task, group):
    expert = group.episodes[0]
    assert expert.variant == "expert" and expert.success and expert.failures == [] and expert.score == 100.0
    perts = task.perturbations()
    for ep in group.episodes[1:]:
        name = ep.perturbation["name"]
        types = {e.type for e in ep.failures}
        assert types & set(perts[name].intended), f"{name}: intended {perts[name].intended}, saw {sorted(types)}"
        assert ep.score < expert.score, (name, ep.score)
    spill_ep = next(ep for ep in group.episodes if ep.variant == "spill")
    (ev,) = [e for e in spill_ep.failures if e.type == "spill"]
    assert ev.measurements["spilled_count"] >= 1


def test_variants_equal_the_expert_up_to_their_onset(group):
    assert_group_shares_expert_prefix(group)


def test_group_is_deterministic(task, group):
    again = generate_group(task, small_config(), 0, render=False)
    for a, b in zip(group.episodes, again.episodes):
        np.testing.assert_array_equal(a.columns["sim.qpos"], b.columns["sim.qpos"], err_msg=a.variant)
        assert [e.to_dict() for e in a.failures] == [e.to_dict() for e in b.failures]
        assert a.score == b.score
