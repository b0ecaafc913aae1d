"""``task=all``: one dataset spanning several task categories with different ``sim.qpos`` widths.

The run machinery is tested here with two Pick/Place variants whose scenes differ in size (a
third distractor cube adds a free joint), so it does not depend on which categories exist.
Every real category is covered end to end by its own test module.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from conftest import small_config

from simfail.core import task as task_registry
from simfail.core.scene import ObjectSpec
from simfail.dataset.reader import SimfailDataset
from simfail.errors import UnknownNameError
from simfail.scenes.pick_place import PickPlace


class PickPlaceCrowded(PickPlace):
    """Pick/Place with one more distractor cube (nq + 7, nv + 6)."""

    name = "pick_place_crowded"

    def sample_layout(self, rng, seed):
        layout = PickPlace.sample_layout(self, rng, seed)
        layout.objects.append(ObjectSpec("distractor9", "box", (0.02, 0.02, 0.02), (0.66, -0.28, 0.02), "pink",
                                         mass=0.08, noun="cube"))
        layout.roles["distractor9"] = "distractor9"
        return layout


@pytest.fixture
def two_tasks(monkeypatch):
    import simfail.generate as gen

    monkeypatch.setitem(task_registry.TASKS, PickPlaceCrowded.name, PickPlaceCrowded)
    monkeypatch.setattr(gen, "task_names", lambda: ["pick_place", PickPlaceCrowded.name])


def test_task_all_writes_every_category_with_padded_sim_state(two_tasks, tmp_path):
    from simfail.generate import group_plan, run

    cfg = small_config(task="all", groups=1, out=str(tmp_path / "ds"))
    cfg = dataclasses.replace(cfg, failures=dataclasses.replace(cfg.failures, names=["drop"]))
    assert group_plan(cfg) == [("pick_place", 0), (PickPlaceCrowded.name, 1)]
    run(cfg, log=lambda *a: None)
    ds = SimfailDataset(tmp_path / "ds")
    assert ds.check() == []
    meta = json.loads((tmp_path / "ds/meta/simfail.json").read_text())
    widths = {t: v["nq"] for t, v in meta["tasks"].items()}
    assert widths["pick_place_crowded"] == widths["pick_place"] + 7 == meta["nq"]
    assert {g: v["task"] for g, v in meta["groups"].items()} == {"0": "pick_place", "1": "pick_place_crowded"}
    by_task = {}
    for ep in range(ds.num_episodes):
        by_task.setdefault(ds.episode(ep)["simfail.task"], []).append(ep)
    assert sorted(by_task) == ["pick_place", "pick_place_crowded"]
    for name, eps in by_task.items():
        for ep in eps:
            qpos = ds.episode_columns(ep)["sim.qpos"]
            assert qpos.shape[1] == meta["nq"]
            # a task's own columns hold its state; the padding beyond them is zeros
            assert np.all(qpos[:, widths[name]:] == 0.0)
            assert np.any(qpos[:, widths[name] - 7 : widths[name]] != 0.0)
    assert [ds.episode(ep)["simfail.variant"] for ep in by_task["pick_place"]] == ["expert", "drop"]


def test_task_all_failure_names_must_exist_in_some_task(two_tasks, tmp_path):
    from simfail.generate import run

    cfg = small_config(task="all", groups=1, out=str(tmp_path / "ds"))
    cfg = dataclasses.replace(cfg, failures=dataclasses.replace(cfg.failures, names=["drop", "teleport"]))
    with pytest.raises(UnknownNameError, match="teleport"):
        run(cfg)
    assert not (tmp_path / "ds").exists()
