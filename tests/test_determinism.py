"""Determinism of generation: repeat runs, the shared prefix of a counterfactual, and
branching from the expert's snapshot against a full replay from the initial state."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import EPISODE_FRAMES, assert_arrays_equal, generate_argv

from simfail.core.episode import VIEWS
from simfail.dataset.reader import SimfailDataset

LABEL_COLUMNS = ("progress", "reward", "failure")
STATE_COLUMNS = ("sim.qpos", "sim.qvel", "observation.state")
ALL_COLUMNS = ("observation.state", "action", "progress", "reward", "failure", "sim.qpos", "sim.qvel")


# --------------------------------------------------------------------------- (a) same seed twice


@pytest.fixture(scope="module")
def second_cli_dataset(tmp_path_factory):
    from simfail.cli import main

    out = tmp_path_factory.mktemp("cli_dataset_again") / "ds"
    assert main(generate_argv(out, "groups=1")) == 0
    return out


def _relative_files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_same_config_and_seed_give_identical_files(cli_dataset, second_cli_dataset):
    a, b = cli_dataset, second_cli_dataset
    assert _relative_files(a) == _relative_files(b)
    for rel in _relative_files(a):
        if rel == "meta/simfail.json":
            continue  # records the output path, compared below without it
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), f"{rel} differs between two identical runs"
    meta_a = json.loads((a / "meta/simfail.json").read_text())
    meta_b = json.loads((b / "meta/simfail.json").read_text())
    meta_a["config"].pop("out")
    meta_b["config"].pop("out")
    assert meta_a == meta_b


def test_same_config_and_seed_give_identical_labels(cli_dataset, second_cli_dataset):
    a = pq.read_table(cli_dataset / "meta/episodes/chunk-000/file-000.parquet")
    b = pq.read_table(second_cli_dataset / "meta/episodes/chunk-000/file-000.parquet")
    for col in ("simfail.score", "simfail.failures", "simfail.success", "simfail.rank", "simfail.variant",
                "simfail.perturbation", "simfail.seed"):
        assert a.column(col).to_pylist() == b.column(col).to_pylist(), col
    da, db = SimfailDataset(cli_dataset), SimfailDataset(second_cli_dataset)
    for ep in range(da.num_episodes):
        ca, cb = da.episode_columns(ep), db.episode_columns(ep)
        for col in (*LABEL_COLUMNS, "sim.qpos", "sim.qvel", "action"):
            assert ca[col].tobytes() == cb[col].tobytes(), f"episode {ep} column {col}"


def test_same_config_and_seed_give_identical_decoded_frames(cli_dataset, second_cli_dataset):
    da, db = SimfailDataset(cli_dataset), SimfailDataset(second_cli_dataset)
    for ep in range(da.num_episodes):
        for view in VIEWS:
            fa, fb = da.episode_frames(ep, view), db.episode_frames(ep, view)
            assert fa.shape == (EPISODE_FRAMES, 64, 64, 3)
            assert np.array_equal(fa, fb), f"episode {ep} view {view}"


def test_cli_dataset_matches_in_memory_generation(cli_dataset, rendered_group):
    """The writer stores exactly what generate_group computed (same seed, same physics, and
    the same camera visibility: both rendered)."""
    ds = SimfailDataset(cli_dataset)
    episodes = rendered_group.episodes
    assert ds.num_episodes == len(episodes)
    for ep, rec in enumerate(episodes):
        row = ds.episode(ep)
        assert row["simfail.variant"] == rec.variant
        assert row["simfail.score"] == pytest.approx(rec.score, abs=0)
        cols = ds.episode_columns(ep)
        for col in ALL_COLUMNS:
            assert_arrays_equal(np.asarray(cols[col]).astype(rec.columns[col].dtype), rec.columns[col],
                                f"episode {ep} {col}")
        assert ds.failures(ep) == rec.failures, f"episode {ep} events (visible_frames read back)"


def test_render_settings_do_not_change_physics(rendered_group, physics_groups):
    """Rendering (on/off) must not perturb the physics or the physics labels. Only the visible
    frames (and so the reward and failure flags) come from the cameras when rendering."""
    from dataclasses import replace

    from simfail.labels.scoring import dense_reward, failure_mask

    ra, pa_ = rendered_group.episodes, physics_groups[0].episodes
    assert [e.variant for e in ra] == [e.variant for e in pa_]
    for a, b in zip(ra, pa_):
        for col in ("observation.state", "action", "progress", "sim.qpos", "sim.qvel"):
            assert_arrays_equal(a.columns[col], b.columns[col], f"{a.variant} {col}")
        assert a.score == b.score

        def physics(events):
            return sorted((e.type, e.onset_frame, e.irreversible_frame, e.severity, e.objects) for e in events)

        assert physics(a.failures) == physics(b.failures), a.variant
        assert all(e.visible_in is not None for e in a.failures) and all(e.visible_in is None for e in b.failures)
        assert_arrays_equal(a.columns["reward"], dense_reward(a.columns["progress"], a.failures), a.variant)
        assert_arrays_equal(a.columns["failure"], failure_mask(a.length, a.failures), a.variant)
        unseen = [replace(e, visible_frames=None, visible_in=None) for e in a.failures if not e.visible_in]
        assert all(e in b.failures for e in unseen), "an event no view sees keeps its physics frame"


def test_different_base_seeds_give_different_scenes():
    from simfail.generate import scene_seed

    seeds = {scene_seed(s, g, a) for s in range(3) for g in range(5) for a in range(3)}
    assert len(seeds) == 45
    assert all(0 <= s < 2**31 for s in seeds)
    assert scene_seed(0, 1, 0) == scene_seed(0, 1, 0)


# --------------------------------------------------------------------------- (b) prefix identity


def _variants(result):
    return [e for e in result.episodes if e.variant != "expert"]


@pytest.mark.parametrize("group", [0, 1, 2])
def test_variant_state_prefix_equals_expert(physics_groups, group):
    res = physics_groups[group]
    expert = res.episodes[0]
    assert expert.variant == "expert"
    for ep in _variants(res):
        k = ep.perturbation["onset_frame"]
        assert 0 <= k < EPISODE_FRAMES - 1
        for col in STATE_COLUMNS:
            assert_arrays_equal(ep.columns[col][: k + 1], expert.columns[col][: k + 1], f"{ep.variant} {col} prefix")
        # action[t] is the command issued after frame t: shared up to frame k - 1
        assert_arrays_equal(ep.columns["action"][:k], expert.columns["action"][:k], f"{ep.variant} action prefix")
        # ... and the variant really is a different episode afterwards
        assert not np.array_equal(ep.columns["sim.qpos"], expert.columns["sim.qpos"]), ep.variant


def test_variant_frame_prefix_equals_expert(rendered_group):
    expert = rendered_group.episodes[0]
    for ep in _variants(rendered_group):
        k = ep.perturbation["onset_frame"]
        assert_arrays_equal(ep.columns["sim.qpos"][: k + 1], expert.columns["sim.qpos"][: k + 1], ep.variant)
        differs_later = False
        for view in VIEWS:
            assert ep.frames[view].shape == (EPISODE_FRAMES, 64, 64, 3)
            assert_arrays_equal(ep.frames[view][: k + 1], expert.frames[view][: k + 1], f"{ep.variant} {view} frames")
            differs_later |= not np.array_equal(ep.frames[view][k + 1 :], expert.frames[view][k + 1 :])
        assert differs_later, f"{ep.variant}: rendered frames never differ from the expert's"


@pytest.mark.parametrize("group", [0, 1, 2])
def test_variant_label_prefix_equals_expert(physics_groups, group):
    """Frames 0..onset are the expert's frames, so they must carry the expert's labels.

    A failure cannot be visible (failure flag, reward drop) in frames that are bit-identical
    to a successful expert's.
    """
    res = physics_groups[group]
    expert = res.episodes[0]
    problems = []
    for ep in _variants(res):
        k = ep.perturbation["onset_frame"]
        for col in LABEL_COLUMNS:
            a, b = ep.columns[col][: k + 1], expert.columns[col][: k + 1]
            if not np.array_equal(a, b):
                first = int(np.flatnonzero(a != b)[0])
                problems.append(f"{ep.variant}: {col} differs from the expert's at frame {first} <= onset {k}")
        for ev in ep.failures:
            if ev.visible_frame <= k:
                problems.append(f"{ep.variant}: {ev.type} visible at frame {ev.visible_frame} <= onset {k}")
    assert not problems, "\n".join(problems)


# --------------------------------------------------------------------------- (c) branching == replay


def _assert_same_group(a, b, *, frames: bool):
    assert a.seed == b.seed and a.rejected_seeds == b.rejected_seeds
    assert [e.variant for e in a.episodes] == [e.variant for e in b.episodes]
    for ea, eb in zip(a.episodes, b.episodes):
        for col in ALL_COLUMNS:
            assert_arrays_equal(ea.columns[col], eb.columns[col], f"{ea.variant} {col} (reuse vs replay)")
        assert ea.failures == eb.failures, ea.variant
        assert (ea.success, ea.score, ea.rank) == (eb.success, eb.score, eb.rank), ea.variant
        assert ea.perturbation == eb.perturbation
        if frames:
            assert set(ea.frames) == set(VIEWS) == set(eb.frames)
            for view in VIEWS:
                assert_arrays_equal(ea.frames[view], eb.frames[view], f"{ea.variant} {view} frames (reuse vs replay)")


def test_branching_equals_full_replay_physics(physics_groups, physics_group_replayed):
    _assert_same_group(physics_groups[1], physics_group_replayed, frames=False)


def test_branching_equals_full_replay_rendered(rendered_group, rendered_group_replayed):
    _assert_same_group(rendered_group, rendered_group_replayed, frames=True)
    # the replayed variants really were rendered from frame 0, not copied
    assert rendered_group_replayed.timing.frames_rendered == len(rendered_group_replayed.episodes) * EPISODE_FRAMES * 3
