"""SimCore.step reduces contacts once per frame: bit-identical to reducing every substep."""

from __future__ import annotations

import mujoco
import numpy as np

from simfail.core.sim import SimCore


def _reference_step(core: SimCore, action: np.ndarray):
    """The per-substep reduction SimCore.step replaced (kept verbatim as the reference)."""
    m, d = core.model, core.data
    action = np.asarray(action, float)
    c0 = core._action_to_ctrl(core._last_action)
    c1 = core._action_to_ctrl(action)
    n_ent = len(core.entity_names)
    n2 = n_ent * n_ent
    nsub = core.substeps
    pairs, forces = [], []
    ctrls = c0 + (c1 - c0) * (np.arange(1, nsub + 1) / nsub)[:, None]
    for k in range(1, nsub + 1):
        d.ctrl[:] = ctrls[k - 1]
        mujoco.mj_step(m, d)
        ncon = d.ncon
        if ncon:
            con = d.contact
            adr = con.efc_address[:ncon]
            geoms = con.geom[:ncon]
            fn = np.abs(d.efc_force[adr])
            fn[adr < 0] = 0.0
            pairs.append((k - 1) * n2 + core.geom_entity[geoms[:, 0]] * n_ent + core.geom_entity[geoms[:, 1]])
            forces.append(fn)
    if pairs:
        per_sub = np.bincount(np.concatenate(pairs), weights=np.concatenate(forces), minlength=nsub * n2)
        per_sub = per_sub.reshape(nsub, n2)
        impulse, peak = per_sub.sum(axis=0) * m.opt.timestep, per_sub.max(axis=0)
    else:
        impulse, peak = np.zeros(n2), np.zeros(n2)
    impulse, peak = impulse.reshape(n_ent, n_ent), peak.reshape(n_ent, n_ent)
    core._last_action = action.copy()
    mujoco.mj_forward(m, d)
    return impulse + impulse.T, peak + peak.T


def test_contact_impulses_equal_per_substep_reduction(task, physics_groups):
    from simfail.core.builder import build_scene, make_core
    from simfail.generate import _stage

    from conftest import small_config

    res = physics_groups[0]
    collision = next(e for e in res.episodes if e.variant == "collision")  # grasp, carry, hit the cup
    scene = build_scene(task, res.seed, _stage(small_config()))
    core = make_core(scene, small_config().render.fps)
    q, v, act = collision.columns["sim.qpos"], collision.columns["sim.qvel"], collision.columns["action"]
    core.reset(q[0], act[0])
    touched = 0
    for f in range(len(q) - 1):
        state = core.get_state()
        ours = core.step(act[f])
        after = core.get_state()
        core.set_state(state)
        ref = _reference_step(core, act[f])
        assert np.array_equal(ours.impulse, ref[0]) and np.array_equal(ours.peak_force, ref[1]), f
        assert np.array_equal(after, core.get_state()), f
        touched += int(ours.impulse[1:, 1:].any())
    assert touched > 10  # robot / object contacts were really exercised
