"""Stack: scene, expert, every failure operator, determinism and the tower detectors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from conftest import assert_group_shares_expert_prefix, expert_outcomes, run_expert, small_config

from simfail.config import FailuresConfig
from simfail.labels import stack_detectors as sdet

#: Frames of a stack episode: 14 s at 10 fps, frame 0 included.
STACK_FRAMES = 141
#: Operator -> event type that must show up in its failure variant.
MUST_HAPPEN = {
    "topple_place": "stack_topple",
    "knock_tower": "tower_knocked",
    "wrong_order": "wrong_order",
    "offset_place": "misaligned_stack",
    "drop": "drop",
    "hit_bystander": "collision",
}
#: Scene seeds used by the detector checks: a three-level and a two-level tower.
SEED_3, SEED_2 = 1133550092, 887770521


@pytest.fixture(scope="module")
def stack_task():
    from simfail.core.task import get_task

    return get_task("stack")


def _group(task, group: int, near_misses: bool = False):
    from simfail.generate import generate_group

    cfg = dataclasses.replace(small_config(task="stack"), failures=FailuresConfig(near_misses=near_misses))
    return generate_group(task, cfg, group, render=False)


@pytest.fixture(scope="module")
def group0(stack_task):
    return _group(stack_task, 0, near_misses=True)


@pytest.fixture(scope="module")
def expert_runs(stack_task):
    return {seed: run_expert(stack_task, seed) for seed in (SEED_3, SEED_2)}


def _by_variant(result) -> dict:
    return {e.variant: e for e in result.episodes}


# --------------------------------------------------------------------------- scene


def test_every_seed_has_the_same_bodies_and_a_matching_instruction(stack_task):
    from simfail.core.builder import build_scene
    from simfail.core.scene import StageConfig

    nq, levels = set(), set()
    for seed in range(12):
        scene = build_scene(stack_task, seed, StageConfig(width=64, height=64))
        layout = scene.layout
        nq.add(scene.model.nq)
        tower = stack_task.tower(layout)
        levels.add(len(tower))
        for name in tower:
            assert layout.obj(name).color in layout.instruction
        for o in layout.objects:
            assert 0.35 <= o.pos[0] <= 0.66 and abs(o.pos[1]) < 0.3, (seed, o.name, o.pos)
        xy = [np.array(o.pos[:2]) for o in layout.objects]
        assert min(np.linalg.norm(a - b) for i, a in enumerate(xy) for b in xy[i + 1:]) > 0.11
    assert len(nq) == 1
    assert levels == {2, 3}


# --------------------------------------------------------------------------- end to end


def test_expert_is_a_clean_success(group0):
    ep = group0.episodes[0]
    assert ep.variant == "expert" and ep.success and ep.failures == [] and ep.score == 100.0
    assert ep.length == STACK_FRAMES
    p = ep.columns["progress"].astype(float)
    assert p[0] == pytest.approx(0.0, abs=1e-6) and p[-1] == pytest.approx(1.0)
    assert np.all(np.diff(p) > -0.05)


@pytest.mark.parametrize("op", sorted(MUST_HAPPEN))
def test_each_failure_happens_in_the_physics(group0, op):
    ep = _by_variant(group0)[op]
    types = [e.type for e in ep.failures]
    assert MUST_HAPPEN[op] in types, (op, types)
    assert ep.score < 100.0


def test_failures_end_the_task_and_bad_but_successful_still_succeeds(group0):
    eps = _by_variant(group0)
    for op in ("topple_place", "knock_tower", "wrong_order", "drop"):
        assert not eps[op].success, op
    ok = eps["offset_place"]
    assert ok.success and {e.category for e in ok.failures} == {"quality"} and 0 < ok.score < 100


def test_topple_is_delayed_past_the_release(group0):
    ep = _by_variant(group0)["topple_place"]
    ev = next(e for e in ep.failures if e.type == "stack_topple")
    assert ev.visible_frame > ev.onset_frame
    assert ev.measurements["release_offset_m"] > ev.measurements["tipping_margin_m"]
    held = ep.columns["action"][:, 7]  # the gripper was commanded open before the fall shows
    assert held[ev.onset_frame] < 0.5


def test_near_misses_score_between_failure_and_expert(group0):
    eps = _by_variant(group0)
    for op in ("topple_place", "offset_place"):
        assert eps[op].score <= eps[f"{op}:near_miss"].score < 100.0, op
    for op in ("knock_tower", "drop"):
        assert eps[f"{op}:near_miss"].success, op


def test_events_are_well_formed(group0):
    for ep in group0.episodes:
        for ev in ep.failures:
            assert 0 <= ev.onset_frame <= ev.visible_frame < ep.length, (ep.variant, ev)
            assert ev.onset_frame <= ev.irreversible_frame < ep.length, (ep.variant, ev)
            assert 0.0 <= ev.severity <= 1.0 and ev.rationale and "{" not in ev.rationale
            assert all(np.isfinite(v) for v in ev.measurements.values())


# --------------------------------------------------------------------------- determinism


def test_same_seed_twice_is_identical(stack_task, group0):
    again = _group(stack_task, 0, near_misses=True)
    assert [e.variant for e in again.episodes] == [e.variant for e in group0.episodes]
    for a, b in zip(group0.episodes, again.episodes):
        np.testing.assert_array_equal(a.columns["sim.qpos"], b.columns["sim.qpos"])
        assert a.failures == b.failures and a.score == b.score and a.success == b.success


def test_variants_equal_the_expert_up_to_their_onset(group0):
    assert_group_shares_expert_prefix(group0)


# --------------------------------------------------------------------------- detectors


def _edited(trace, name: str, first: int, shift: np.ndarray | None = None, pos: np.ndarray | None = None):
    """A copy of ``trace`` with object ``name`` moved (by ``shift`` or to ``pos``) from frame ``first`` on."""
    out = trace.truncate(len(trace))
    k = out.object_names.index(name)
    for f in range(first, len(out)):
        p = out.obj_pos[f].copy()
        p[k] = p[k] + shift if shift is not None else pos
        out.obj_pos[f] = p
    return out


@pytest.mark.parametrize("seed", [SEED_3, SEED_2])
def test_clean_expert_trace_has_a_built_tower_and_no_events(stack_task, expert_runs, seed):
    trace, layout, ok, events = expert_runs[seed]
    tower = stack_task.tower(layout)
    assert ok and events == []
    assert sdet.final_towers(trace, tower, layout) == [tower]
    for k in range(1, len(tower)):
        assert sdet.resting(trace, tower[k], tower[k - 1], layout)[-1]
        assert sdet.horizontal_offset(trace, tower[k], tower[k - 1])[-1] < sdet.MISALIGN_TOL


def test_an_off_centre_top_block_is_a_quality_event(stack_task, expert_runs):
    trace, layout, _, _ = expert_runs[SEED_2]
    top = stack_task.tower(layout)[-1]
    shifted = _edited(trace, top, len(trace) - 5, shift=np.array([0.012, 0.0, 0.0]))
    ok, events = stack_task.detect(shifted, layout)
    ev = [e for e in events if e.type == "misaligned_stack"]
    assert ok and len(ev) == 1 and ev[0].category == "quality"
    assert ev[0].measurements["offset_m"] == pytest.approx(0.012, abs=0.002)


def test_a_swapped_tower_is_wrong_order(stack_task, expert_runs):
    trace, layout, _, _ = expert_runs[SEED_2]
    base, top = stack_task.tower(layout)
    n = len(trace)
    p_base, p_top = trace.pos(base)[-1].copy(), trace.pos(top)[-1].copy()
    swapped = _edited(_edited(trace, base, n - 3, pos=p_top), top, n - 3, pos=p_base)
    assert sdet.final_towers(swapped, [base, top], layout) == [[top, base]]
    ok, events = stack_task.detect(swapped, layout)
    assert not ok and "wrong_order" in [e.type for e in events]


def test_a_block_knocked_to_the_table_breaks_the_tower(stack_task, expert_runs):
    trace, layout, _, _ = expert_runs[SEED_3]
    top = stack_task.tower(layout)[-1]
    on_table = np.array([0.60, -0.25, layout.obj(top).size[2]])
    fallen = _edited(trace, top, len(trace) - 3, pos=on_table)
    assert not sdet.tower_built(fallen, stack_task.tower(layout), layout)


# --------------------------------------------------------------------------- expert rate


def test_expert_success_20_seeds(stack_task):
    outcomes = expert_outcomes(stack_task, 20)
    bad = [(o.group, o.seed, [e.type for e in o.events]) for o in outcomes if not (o.success and not o.events)]
    assert len(bad) <= 1, bad


@pytest.mark.slow
def test_expert_success_100_seeds(stack_task):
    outcomes = expert_outcomes(stack_task, 100)
    bad = [(o.group, o.seed, [e.type for e in o.events]) for o in outcomes if not (o.success and not o.events)]
    assert len(bad) <= 5, bad


@pytest.mark.slow
def test_failures_are_realized_over_8_groups(stack_task):
    counts: dict[str, list[int]] = {}
    for g in range(8):
        for ep in _group(stack_task, g).episodes[1:]:
            name = ep.perturbation["name"]
            hit = any(e.type in stack_task.perturbations()[name].intended for e in ep.failures)
            counts.setdefault(name, [0, 0])
            counts[name][0] += int(hit)
            counts[name][1] += 1
    low = {n: c for n, c in counts.items() if c[0] < 0.8 * c[1]}
    assert not low, low
