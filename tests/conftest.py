"""Shared, expensive fixtures of the simfail core tests.

Everything that runs the physics or renders is session-scoped and built once: a few
physics-only groups, one rendered 64x64 group (with the prefix reused and re-simulated), a
one-group dataset written through the command line, and the expert's outcome on a fixed list
of scene seeds.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from simfail.config import DatasetConfig, GenerateConfig, RenderConfig

#: Groups whose physics-only results the tests share (seed 0).
PHYSICS_GROUPS = (0, 1, 2)
#: Render size of every rendering test.
SMALL = 64
#: Frames of a pick/place episode: 8 s at 10 fps, frame 0 included.
EPISODE_FRAMES = 81


def small_config(**changes) -> GenerateConfig:
    """The default generate config at 64x64 pixels, with ``changes`` applied."""
    cfg = GenerateConfig(render=RenderConfig(width=SMALL, height=SMALL), progress=False)
    return dataclasses.replace(cfg, **changes)


def replay_config(base: GenerateConfig) -> GenerateConfig:
    """``base`` with ``dataset.reuse_prefix=false`` (every variant re-simulated from t=0)."""
    return dataclasses.replace(base, dataset=DatasetConfig(reuse_prefix=False))


def generate_argv(out: Path | str, *extra: str) -> list[str]:
    return ["generate", f"out={out}", f"render.width={SMALL}", f"render.height={SMALL}", "progress=false", *extra]


@pytest.fixture(scope="session")
def task():
    from simfail.core.task import get_task

    return get_task("pick_place")


@pytest.fixture(scope="session")
def physics_groups(task):
    """``{group_id: GroupResult}`` of groups 0..2 (seed 0), physics and labels only."""
    from simfail.generate import generate_group

    cfg = small_config()
    return {g: generate_group(task, cfg, g, render=False) for g in PHYSICS_GROUPS}


@pytest.fixture(scope="session")
def physics_group_replayed(task):
    """Group 1 with ``reuse_prefix=false``, physics only."""
    from simfail.generate import generate_group

    return generate_group(task, replay_config(small_config()), 1, render=False)


@pytest.fixture(scope="session")
def rendered_group(task):
    """Group 0 rendered at 64x64 with the expert's prefix reused (the default)."""
    from simfail.generate import generate_group

    return generate_group(task, small_config(), 0, render=True)


@pytest.fixture(scope="session")
def rendered_group_replayed(task):
    """Group 0 rendered at 64x64, every variant simulated and rendered from frame 0."""
    from simfail.generate import generate_group

    return generate_group(task, replay_config(small_config()), 0, render=True)


@pytest.fixture(scope="session")
def cli_dataset(tmp_path_factory):
    """A one-group 64x64 dataset written by ``simfail generate`` (never modified by tests)."""
    from simfail.cli import main

    out = tmp_path_factory.mktemp("cli_dataset") / "ds"
    rc = main(generate_argv(out, "groups=1"))
    assert rc == 0
    return out


@dataclass
class ExpertOutcome:
    group: int
    seed: int
    success: bool
    events: list


def run_expert(task, seed: int):
    """Run the expert alone on a scene seed; return ``(trace, layout, success, events)``."""
    from simfail.core.builder import build_scene, make_core, make_ik
    from simfail.core.rollout import frame_count, run_program
    from simfail.core.scene import StageConfig

    scene = build_scene(task, seed, StageConfig(width=SMALL, height=SMALL))
    core, ik = make_core(scene, 10), make_ik()
    res = run_program(core, ik, task.expert_program(scene.layout), frame_count(task.duration, 10),
                      keep_snapshots=False)
    ok, events = task.detect(res.trace, scene.layout)
    return res.trace, scene.layout, ok, events


def expert_outcomes(task, n: int) -> list[ExpertOutcome]:
    """The expert on the first-attempt scene seeds of groups ``0..n-1`` (base seed 0)."""
    from simfail.generate import scene_seed

    out = []
    for g in range(n):
        seed = scene_seed(0, g, 0)
        _, _, ok, events = run_expert(task, seed)
        out.append(ExpertOutcome(g, seed, bool(ok), list(events)))
    return out


@pytest.fixture(scope="session")
def expert_30(task) -> list[ExpertOutcome]:
    return expert_outcomes(task, 30)


@pytest.fixture(scope="session")
def viewer_dataset(tmp_path_factory) -> Path:
    """Two pick_place groups (expert, drop, collision) at 64x64, written by ``simfail generate``
    (the viewer's tests read it; nobody writes to it)."""
    from simfail.cli import main

    out = tmp_path_factory.mktemp("viewer") / "ds"
    assert main(generate_argv(out, "task=pick_place", "groups=2", "seed=0", "failures=[drop,collision]")) == 0
    return out


def episode_by_variant(result) -> dict:
    return {e.variant: e for e in result.episodes}


def assert_arrays_equal(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.shape == b.shape, f"{what}: shapes {a.shape} != {b.shape}"
    assert a.dtype == b.dtype, f"{what}: dtypes {a.dtype} != {b.dtype}"
    if not np.array_equal(a, b):
        bad = np.flatnonzero(np.any((a != b).reshape(len(a), -1), axis=1))
        raise AssertionError(f"{what}: differs at frames {bad[:10].tolist()} (of {len(a)})")


def assert_group_shares_expert_prefix(group) -> None:
    """Every variant of a generated group equals its expert's ``sim.qpos`` exactly up to its
    onset frame, and differs somewhere after it."""
    expert = group.episodes[0].columns["sim.qpos"]
    for ep in group.episodes[1:]:
        k = ep.perturbation["onset_frame"]
        np.testing.assert_array_equal(ep.columns["sim.qpos"][: k + 1], expert[: k + 1], err_msg=ep.variant)
        assert not np.array_equal(ep.columns["sim.qpos"], expert), ep.variant
