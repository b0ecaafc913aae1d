"""Suite-wide invariants every registered task must keep (in the spirit of dm_control's
suite tests): a fixed state size across seeds, a clean and deterministic expert, operators
with sane ranges, progress in [0, 1], and instructions that name the scene's objects."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import SMALL, run_expert

from simfail.core.builder import build_scene
from simfail.core.scene import StageConfig
from simfail.core.task import get_task, task_names
from simfail.generate import scene_seed

TASKS = task_names()


@pytest.mark.parametrize("name", TASKS)
def test_state_size_is_the_same_for_every_seed(name):
    task = get_task(name)
    stage = StageConfig(width=SMALL, height=SMALL)
    models = [build_scene(task, scene_seed(7, g, 0), stage).model for g in range(3)]
    assert len({(m.nq, m.nv, m.nbody) for m in models}) == 1


@pytest.mark.parametrize("name", TASKS)
def test_expert_is_clean_and_deterministic(name):
    task = get_task(name)
    seed = scene_seed(11, 0, 0)
    trace, layout, ok, events = run_expert(task, seed)
    trace2, _, ok2, events2 = run_expert(task, seed)
    np.testing.assert_array_equal(np.array(trace.qpos), np.array(trace2.qpos))
    assert (ok, [e.to_dict() for e in events]) == (ok2, [e.to_dict() for e in events2])
    assert ok and events == [], [e.rationale for e in events]
    progress = task.progress(trace, layout)
    assert progress.shape == (len(trace),)
    assert np.all((progress >= 0.0) & (progress <= 1.0))
    assert progress[0] < 0.1 and progress[-1] > 0.95


@pytest.mark.parametrize("name", TASKS)
def test_operators_have_valid_ranges_and_intended_events(name):
    task = get_task(name)
    perts = task.perturbations()
    assert len(perts) >= 5
    for pname, p in perts.items():
        assert p.name == pname and p.intended and p.description
        for lo, hi in (p.failure_range, p.near_miss_range):
            assert 0.0 <= lo <= hi <= 1.0, (pname, lo, hi)


@pytest.mark.parametrize("name", TASKS)
def test_instructions_name_objects_of_the_scene(name):
    task = get_task(name)
    stage = StageConfig(width=SMALL, height=SMALL)
    for g in range(3):
        layout = build_scene(task, scene_seed(3, g, 0), stage).layout
        text = layout.instruction.lower()
        assert text and any(o.color in text for o in layout.objects), text
