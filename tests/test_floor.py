"""The floor: objects that leave the table land on it, and rationales measure real distances."""

from __future__ import annotations

import dataclasses

import numpy as np

from simfail.config import FailuresConfig
from simfail.core.builder import build_scene, make_core
from simfail.core.robot import HOME_QPOS
from simfail.core.scene import FLOOR_Z, StageConfig
from simfail.core.task import get_task
from simfail.generate import generate_group
from simfail.labels import detectors as det

from conftest import small_config


def test_the_floor_and_the_table_base_collide():
    scene = build_scene(get_task("pick_place"), 0, StageConfig(width=64, height=64))
    m = scene.model
    for name in ("floor", "table_leg"):
        g = m.geom(name)
        assert g.contype[0] and g.conaffinity[0], name
    assert m.geom("floor").pos[2] == FLOOR_Z


def test_a_dropped_object_comes_to_rest_on_the_floor():
    """Put the cube beside the table, 20 cm up, and let it fall for 3 s."""
    scene = build_scene(get_task("pick_place"), 0, StageConfig(width=64, height=64))
    core = make_core(scene, 10)
    qpos = scene.qpos0.copy()
    adr = scene.model.jnt_qposadr[scene.model.joint("object_free").id]
    qpos[adr:adr + 3] = [1.2, 0.0, 0.2]  # past the table's far edge (x = 0.94)
    home = np.concatenate([HOME_QPOS, [0.0]])
    core.reset(qpos, home)
    for _ in range(30):
        core.step(home)
    z = core.body_pos("object")[2]
    half = scene.layout.obj("object").size[2]
    assert abs(z - (FLOOR_Z + half)) < 0.005  # resting on the floor, not below it
    assert np.linalg.norm(core.data.qvel[core.free_dof["object"]:core.free_dof["object"] + 3]) < 0.05


def test_an_object_pushed_off_the_edge_lands_on_the_floor_and_the_rationale_says_so():
    cfg = dataclasses.replace(small_config(task="push_pull", seed=0), failures=FailuresConfig(names=["off_edge"]))
    group = generate_group(get_task("push_pull"), cfg, 0, render=False)
    ep = group.episodes[1]
    (off,) = [e for e in ep.failures if e.type == "off_table"]
    name = off.objects[0]
    qpos = ep.columns["sim.qpos"]
    assert off.measurements["min_z_m"] > FLOOR_Z - 0.02  # never below the floor
    assert off.measurements["final_distance_m"] < 2.0  # metres, not the tens of metres of a free fall
    assert "lands on the floor" in off.rationale and "on the floor," in off.rationale
    assert qpos.shape[0] == ep.length and name in ("object",) + tuple(ep.failures[0].objects)
    # labelled failure: a task event too (the object never reached the goal)
    assert any(e.category == "task" for e in ep.failures)
    assert det.FLOOR_Z == FLOOR_Z
