"""The causal rule of the labels, over every operator of every task.

Wherever a variant's state still equals its expert's (``sim.qpos`` and ``sim.qvel`` bit for
bit), its ``reward`` and ``failure`` columns equal the expert's, and no event's onset, visible
or irreversible frame precedes the frame where the two states first differ. End-of-episode
verdicts land where they become evident, so they obey the same rule. A variant that does not
succeed carries a task event (its ``failure`` flag is set by the end).

The default run checks one group per task (every operator at a failure magnitude); the slow
one adds near misses and more groups. See docs/labels-rules.md.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from simfail.config import FailuresConfig
from simfail.core.task import get_task, task_names
from simfail.generate import generate_group

from conftest import small_config

OPERATORS = [(t, op) for t in task_names() for op in get_task(t).perturbations()]


@lru_cache(maxsize=None)
def _group(task: str, group: int, near_misses: bool):
    cfg = dataclasses.replace(small_config(task=task, seed=0),
                              failures=FailuresConfig(near_misses=near_misses))
    return generate_group(get_task(task), cfg, group, render=False)


def divergence(expert, variant) -> int:
    """First frame where the variant's simulator state differs from the expert's."""
    a, b = expert.columns, variant.columns
    n = min(len(a["sim.qpos"]), len(b["sim.qpos"]))
    same = np.all(a["sim.qpos"][:n] == b["sim.qpos"][:n], axis=1) & np.all(a["sim.qvel"][:n] == b["sim.qvel"][:n], axis=1)
    return int(np.argmin(same)) if not same.all() else n


def causal_problems(expert, variant) -> list[str]:
    """Every way ``variant``'s labels break the causal rule against ``expert``."""
    d = divergence(expert, variant)
    out = []
    if d >= variant.length:
        out.append(f"{variant.variant}: never diverges from the expert")
    for col in ("reward", "failure", "progress"):
        a, b = variant.columns[col][:d], expert.columns[col][:d]
        if not np.array_equal(a, b):
            out.append(f"{variant.variant}: {col} differs at frame {int(np.flatnonzero(a != b)[0])} "
                       f"while the state equals the expert's until frame {d}")
    for e in variant.failures:
        for what in ("onset_frame", "visible_frame", "irreversible_frame"):
            if getattr(e, what) < d:
                out.append(f"{variant.variant}: {e.type} {what} {getattr(e, what)} precedes the divergence at frame {d}")
    if not variant.success and not any(e.category == "task" for e in variant.failures):
        out.append(f"{variant.variant}: fails with no task event ({[e.type for e in variant.failures]})")
    if not variant.success and not variant.columns["failure"][-1]:
        out.append(f"{variant.variant}: fails but its failure flag is false at the last frame")
    return out


def _check(group, operator: str | None = None) -> list[str]:
    expert = group.episodes[0]
    assert expert.variant == "expert" and expert.success and not expert.failures
    problems = []
    for ep in group.episodes[1:]:
        if operator is None or ep.perturbation["name"] == operator:
            problems += causal_problems(expert, ep)
    return problems


@pytest.mark.parametrize("task,operator", OPERATORS, ids=[f"{t}-{op}" for t, op in OPERATORS])
def test_labels_are_causal_for_every_operator(task, operator):
    group = _group(task, 0, False)
    assert any(ep.perturbation.get("name") == operator for ep in group.episodes[1:]), operator
    problems = _check(group, operator)
    assert not problems, "\n".join(problems)


def test_divergence_is_found_where_the_states_first_differ():
    group = _group("pick_place", 0, False)
    expert = group.episodes[0]
    assert divergence(expert, expert) == expert.length
    for ep in group.episodes[1:]:
        d = divergence(expert, ep)
        k = ep.perturbation["onset_frame"]
        assert k < d < ep.length, (ep.variant, k, d)  # shares frames 0..k (tests/test_determinism.py)
        assert not np.array_equal(ep.columns["sim.qpos"][d], expert.columns["sim.qpos"][d]) or \
            not np.array_equal(ep.columns["sim.qvel"][d], expert.columns["sim.qvel"][d])


def test_the_check_catches_an_event_stamped_before_the_divergence():
    """The rule is not vacuous: an event moved to frame 0 and a reward changed early fail it."""
    group = _group("open_close", 0, False)
    expert = group.episodes[0]
    ep = next(e for e in group.episodes[1:] if e.failures)
    assert not causal_problems(expert, ep)
    bad = dataclasses.replace(ep, failures=[dataclasses.replace(ep.failures[0], onset_frame=0, visible_frame=0,
                                                                irreversible_frame=0)])
    assert any("precedes the divergence" in p for p in causal_problems(expert, bad))
    cols = dict(ep.columns)
    cols["reward"] = cols["reward"].copy()
    cols["reward"][0] = 1.0 - cols["reward"][0]
    assert any("reward differs at frame 0" in p for p in causal_problems(expert, dataclasses.replace(ep, columns=cols)))


@pytest.mark.slow
@pytest.mark.parametrize("task", task_names())
@pytest.mark.parametrize("group", [1, 2, 3])
def test_labels_are_causal_with_near_misses_on_more_groups(task, group):
    problems = _check(_group(task, group, True))
    assert not problems, "\n".join(problems)


def test_camera_visible_frames_never_precede_the_divergence():
    """With the camera visibility pass (rendered group), every view's visible frame of every
    event still lands at or after the frame where the variant's state leaves the expert's, and
    the camera-placed reward and failure columns obey the causal rule."""
    cfg = small_config(task="pick_place", seed=0)
    group = generate_group(get_task("pick_place"), cfg, 0, render=True, visibility=True)
    expert = group.episodes[0]
    events = [e for ep in group.episodes[1:] for e in ep.failures]
    assert events and all(e.visible_frames is not None for e in events), "visibility was computed"
    problems = []
    for ep in group.episodes[1:]:
        problems += causal_problems(expert, ep)
        d = divergence(expert, ep)
        for e in ep.failures:
            for view, f in e.visible_frames.items():
                if f is not None and f < d:
                    problems.append(f"{ep.variant}: {e.type} seen in {view} at frame {f} before the divergence at {d}")
    assert not problems, "\n".join(problems)
