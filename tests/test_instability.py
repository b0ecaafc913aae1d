"""Diverged physics never becomes a label: MuJoCo resets the state after a NaN, so a rollout
that diverged is rejected (expert) or left out and recorded (variant)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import small_config

from simfail.core.builder import build_scene, make_core
from simfail.core.robot import HOME_QPOS
from simfail.core.scene import StageConfig
from simfail.errors import SimulationUnstableError


def test_core_raises_when_the_physics_diverges(task):
    scene = build_scene(task, 3, StageConfig(width=64, height=64))
    core = make_core(scene, 10)
    action = np.concatenate([HOME_QPOS, [0.0]])
    core.step(action)  # a normal step is fine
    core.data.qvel[:] = 1e200
    with pytest.raises(SimulationUnstableError, match="diverged"):
        core.step(action)


def test_generate_leaves_out_a_diverged_variant_and_records_it(task, monkeypatch):
    import simfail.generate as gen

    real = gen.branch
    calls = {"n": 0}

    def flaky(runner, source, edit, n_frames, **kw):
        calls["n"] += 1
        if calls["n"] == 1:  # the first variant branched from the expert
            raise SimulationUnstableError("the physics diverged near t = 1.000 s")
        return real(runner, source, edit, n_frames, **kw)

    monkeypatch.setattr(gen, "branch", flaky)
    cfg = small_config()
    cfg.failures.names = ["drop", "shaky"]
    res = gen.generate_group(task, cfg, 0, render=False)
    assert [e.variant for e in res.episodes] == ["expert", "shaky"]
    assert res.unstable_variants == [{"variant": "drop", "error": "the physics diverged near t = 1.000 s"}]


def test_generate_rejects_a_seed_whose_expert_diverges(task, monkeypatch):
    import simfail.generate as gen

    real = gen.run_program
    calls = {"n": 0}

    def flaky(core, ik, program, n_frames, **kw):
        calls["n"] += 1
        if calls["n"] == 1:
            raise SimulationUnstableError("the physics diverged near t = 2.000 s")
        return real(core, ik, program, n_frames, **kw)

    monkeypatch.setattr(gen, "run_program", flaky)
    cfg = small_config()
    cfg.failures.names = ["drop"]
    res = gen.generate_group(task, cfg, 0, render=False)
    assert res.rejected_seeds == [gen.scene_seed(cfg.seed, 0, 0)]
    assert res.seed == gen.scene_seed(cfg.seed, 0, 1)
    assert [e.variant for e in res.episodes] == ["expert", "drop"]
