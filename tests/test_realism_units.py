"""Unit tests of the realism pass that need no dataset and no model weights."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from simfail.errors import ConfigError, SimfailError
from simfail.realism.fidelity import edge_agreement
from simfail.realism.imageops import dilate, edge_map, grad_mag, resize_frames
from simfail.realism.prompts import object_phrases, scene_prompt


def _layout():
    objs = [SimpleNamespace(name="object", color="red", noun="cube"),
            SimpleNamespace(name="target", color="blue", noun="bowl"),
            SimpleNamespace(name="distractor0", color="orange", noun="cylinder")]
    return SimpleNamespace(objects=objs, instruction="place the red cube into the blue bowl", task="pick_place",
                           roles={"object": "object", "target": "target"})


def test_prompt_names_robot_table_and_objects():
    p = scene_prompt(_layout())
    assert p.startswith("photo of a Franka Panda robot arm on a wooden table")
    for phrase in ("a red cube", "a blue bowl", "an orange cylinder", "place the red cube into the blue bowl"):
        assert phrase in p
    assert object_phrases(_layout()) == ["a red cube", "a blue bowl", "an orange cylinder"]


def test_prompt_template_and_override():
    assert scene_prompt(_layout(), "{task}: {objects}") == "pick place: a red cube, a blue bowl, an orange cylinder"
    assert scene_prompt(_layout(), "{objects}", override="my prompt") == "my prompt"
    with pytest.raises(ConfigError):
        scene_prompt(_layout(), "{colour}")


def test_chunk_plan_covers_and_blend_is_exact_on_constant():
    from simfail.realism.pipeline import _blend, chunk_plan

    assert chunk_plan(17, 81, 8) == [(0, 17)]
    plan = chunk_plan(100, 33, 8)
    assert plan[0][0] == 0 and plan[-1][1] == 100
    assert all(e - s == 33 for s, e in plan)
    assert all(b[0] < a[1] for a, b in zip(plan, plan[1:]))  # consecutive chunks overlap
    chunks = [(s, e, np.full((e - s, 4, 4, 3), 0.25)) for s, e in plan]
    np.testing.assert_allclose(_blend(chunks, 100), 0.25)
    # a ramp blended across an overlap stays between its two sources
    a = (0, 9, np.zeros((9, 1, 1, 3)))
    b = (5, 14, np.ones((9, 1, 1, 3)))
    out = _blend([a, b], 14)[:, 0, 0, 0]
    assert out[0] == 0 and out[-1] == 1 and np.all(np.diff(out) >= 0)


def test_image_ops():
    img = np.zeros((1, 16, 16), np.float32)
    img[:, :, 8:] = 1.0
    g = grad_mag(img)
    assert g[0, :, 7:9].min() > 0 and g[0, :, :6].max() == 0
    e = edge_map(img)
    assert e[0, :, 7:9].all() and not e[0, :, :6].any()
    assert dilate(np.eye(5, dtype=bool), 1).sum() == 19  # a 3-wide band around the diagonal
    frames = (np.random.default_rng(0).random((2, 10, 12, 3)) * 255).astype(np.uint8)
    assert resize_frames(frames, 16, 32).shape == (2, 16, 32, 3)
    assert resize_frames(frames, 10, 12) is frames


def test_edge_agreement_identity_and_noise():
    rng = np.random.default_rng(0)
    frames = np.zeros((3, 32, 32, 3), np.uint8)
    frames[:, 8:20, 10:24] = 200
    assert edge_agreement(frames, frames) == 1.0
    noise = (rng.random(frames.shape) * 255).astype(np.uint8)
    assert edge_agreement(frames, noise) < 0.3


@pytest.mark.parametrize("device", ["tpu", "gpu0", "cuda:x"])
def test_unknown_device_is_a_simfail_error(device):
    from simfail.realism.pipeline import resolve_device

    with pytest.raises(SimfailError, match="unknown device"):
        resolve_device(device)


def test_dtype_checks():
    import torch

    from simfail.realism.pipeline import resolve_dtype

    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("auto", "cuda") == torch.bfloat16
    with pytest.raises(SimfailError):
        resolve_dtype("float8", "cpu")
    with pytest.raises(SimfailError):
        resolve_dtype("float16", "cpu")


def test_model_folder_errors(tmp_path):
    from simfail.realism.pipeline import RealismModelError, load_pipeline

    with pytest.raises(RealismModelError, match="does not exist.*no downloads"):
        load_pipeline(tmp_path / "nope")
    with pytest.raises(RealismModelError, match="no model_index.json"):
        load_pipeline(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(RealismModelError, match="supports WanVACEPipeline"):
        load_pipeline(tmp_path)
    (tmp_path / "model_index.json").write_text(json.dumps(
        {"_class_name": "WanVACEPipeline", "transformer": ["diffusers", "WanVACETransformer3DModel"]}))
    with pytest.raises(RealismModelError, match="transformer/ is missing"):
        load_pipeline(tmp_path)


def test_settings_validation():
    from simfail.realism.pipeline import VaceSettings

    VaceSettings().validate()
    for bad in (dict(strength=0.0), dict(steps=0), dict(chunk_frames=10), dict(chunk_frames=9, overlap=8),
                dict(resolution=(60, 64))):
        with pytest.raises(ConfigError):
            VaceSettings(**bad).validate()


def test_settings_compose_and_unknown_key():
    from simfail.realism.commands import realism_settings

    cfg = realism_settings(["data=a", "out=b", "model=identity", "fidelity.edge_min=0.2", "strength=0.3"])
    assert cfg["fidelity"]["edge_min"] == 0.2 and cfg["strength"] == 0.3 and cfg["views"] == "tile"
    with pytest.raises(SimfailError, match="unknown realism setting"):
        realism_settings(["colour=red"])
    with pytest.raises(ConfigError):
        realism_settings(["data"])


def test_edit_views_tile_and_separate():
    from simfail.realism.edit import edit_views

    class Recorder:
        def __init__(self):
            self.calls = []

        def edit(self, frames, control, *, prompt, negative_prompt, seed):
            self.calls.append((frames.shape, control.shape, seed))
            return 255 - frames

    frames = {v: np.full((5, 8, 6, 3), k * 10, np.uint8) for k, v in enumerate(("left", "right", "wrist"))}
    rec = Recorder()
    out = edit_views(rec, frames, frames, mode="tile", prompt="p", negative_prompt="n", seed=4)
    assert rec.calls == [((5, 8, 18, 3), (5, 8, 18, 3), 4)]  # one video, views side by side
    for v in frames:
        np.testing.assert_array_equal(out[v], 255 - frames[v])
    rec = Recorder()
    out = edit_views(rec, frames, frames, mode="separate", prompt="p", negative_prompt="n", seed=4)
    assert [c[2] for c in rec.calls] == [4, 4, 4] and out["wrist"].shape == (5, 8, 6, 3)  # shared seed
    with pytest.raises(SimfailError):
        edit_views(rec, frames, frames, mode="mosaic", prompt="p", negative_prompt="n", seed=4)


def test_group_seed_is_shared_and_deterministic():
    from simfail.realism.edit import group_seed

    assert group_seed(0, 3) == group_seed(0, 3) != group_seed(0, 4)
    assert group_seed(1, 3) != group_seed(0, 3)


# ------------------------------------------------------------------------------ batching


@pytest.mark.parametrize("bad", [0, -1, 65, 1.5, True, "2", None])
def test_batch_size_out_of_range_is_a_config_error(bad):
    from simfail.realism.batching import MAX_BATCH_SIZE, check_batch_size
    from simfail.realism.pipeline import VaceSettings

    with pytest.raises(ConfigError, match=rf"batch_size must be an integer in \[1, {MAX_BATCH_SIZE}\]"):
        check_batch_size(bad)
    with pytest.raises(ConfigError, match="batch_size"):
        VaceSettings(batch_size=bad).validate()
    assert check_batch_size(3) == 3 and check_batch_size(np.int64(2)) == 2 and check_batch_size(4.0) == 4


def test_plan_batches_groups_equal_shapes_in_order():
    from simfail.realism.batching import plan_batches

    keys = [(9, 32, 96), (5, 32, 96), (9, 32, 96), (9, 32, 96), (5, 32, 96)]
    assert plan_batches(keys, 1) == [[0], [2], [3], [1], [4]]
    assert plan_batches(keys, 2) == [[0, 2], [3], [1, 4]]
    assert plan_batches(keys, 8) == [[0, 2, 3], [1, 4]]
    assert sorted(i for b in plan_batches(keys, 2) for i in b) == list(range(5))


def test_edit_requests_prefers_edit_batch_and_keeps_order():
    from simfail.realism.batching import EditRequest, edit_requests

    class Single:
        def __init__(self):
            self.seeds = []

        def edit(self, frames, control, *, prompt, negative_prompt, seed):
            self.seeds.append(seed)
            return frames + 1

    class Batched(Single):
        def __init__(self):
            super().__init__()
            self.sizes = []

        def edit_batch(self, requests):
            self.sizes.append(len(requests))
            return [r.frames + r.seed for r in requests]

    reqs = [EditRequest(np.full((2, 4, 4, 3), k, np.uint8), np.zeros((2, 4, 4, 3), np.uint8), "p", "n", 10 + k)
            for k in range(3)]
    single = Single()
    assert [int(o[0, 0, 0, 0]) for o in edit_requests(single, reqs)] == [1, 2, 3] and single.seeds == [10, 11, 12]
    batched = Batched()
    assert [int(o[0, 0, 0, 0]) for o in edit_requests(batched, reqs)] == [10, 12, 14]
    assert batched.sizes == [3] and batched.seeds == []

    class Short(Batched):
        def edit_batch(self, requests):
            return [requests[0].frames]

    with pytest.raises(SimfailError, match="returned 1 videos for 3 requests"):
        edit_requests(Short(), reqs)


def test_edit_episodes_batches_episodes_in_one_call():
    from simfail.realism.edit import edit_episodes

    class Batched:
        def __init__(self):
            self.shapes = []

        def edit_batch(self, requests):
            self.shapes.append([r.frames.shape for r in requests])
            return [255 - r.frames for r in requests]

    eps = [({v: np.full((5, 8, 6, 3), 10 * k + j, np.uint8) for j, v in enumerate(("left", "right", "wrist"))},) * 2
           for k in range(2)]
    ed = Batched()
    out = edit_episodes(ed, eps, mode="tile", prompt="p", negative_prompt="n", seed=1)
    assert ed.shapes == [[(5, 8, 18, 3), (5, 8, 18, 3)]]  # both episodes in one call, views tiled
    for (frames, _), o in zip(eps, out):
        for v in frames:
            np.testing.assert_array_equal(o[v], 255 - frames[v])
    ed = Batched()
    out = edit_episodes(ed, eps, mode="separate", prompt="p", negative_prompt="n", seed=1)
    assert ed.shapes == [[(5, 8, 6, 3)] * 6] and out[1]["wrist"][0, 0, 0, 0] == 255 - 12


# ------------------------------------------------------------------------------ temporal check


def _moving_squares(t: int = 24, size: int = 48) -> dict[str, np.ndarray]:
    """Three views of squares moving 2 px per frame in different directions over a checkerboard."""
    yy, xx = np.mgrid[:size, :size]
    board = (((yy // 6) + (xx // 6)) % 2 * 40 + 60).astype(np.uint8)
    views = {}
    for k, (vy, vx) in enumerate(((0, 2), (2, 0), (1, -2))):
        frames = np.repeat(board[None, :, :, None], 3, axis=-1).repeat(t, axis=0)
        for i in range(t):
            y0, x0 = 8 + vy * i % 24, 8 + (vx * i) % 24
            frames[i, y0:y0 + 12, x0:x0 + 12] = (200, 120 + 30 * k, 40)
        views[("left", "right", "wrist")[k]] = frames
    return views


def _temporal(orig, edited):
    from simfail.realism.fidelity import temporal_agreement

    return temporal_agreement(list(orig.values()), [edited[v] for v in orig])


def test_temporal_accepts_identity_and_appearance_edits():
    v = _moving_squares()
    rng = np.random.default_rng(0)
    f = lambda x: x.astype(np.float32) / 255  # noqa: E731
    u8 = lambda x: (np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    edits = {
        "identity": v,
        "colour": {k: u8(f(x) * np.array([1.15, 0.95, 0.8]) + 0.03) for k, x in v.items()},
        "gamma": {k: u8(f(x) ** 1.6) for k, x in v.items()},
        "noise": {k: u8(f(x) + rng.normal(0, 6 / 255, x.shape)) for k, x in v.items()},
        "flicker": {k: u8(f(x) + 0.05 * np.sin(np.arange(len(x)))[:, None, None, None]) for k, x in v.items()},
    }
    for name, e in edits.items():
        r = _temporal(v, e)
        assert r.score > 0.9 and r.lag == 0, (name, r)
    assert _temporal(v, v).score == pytest.approx(1.0)
    for k in (1, 2):  # delays within max_shift are tolerated and measured
        idx = np.clip(np.arange(24) - k, 0, 23)
        r = _temporal(v, {n: x[idx] for n, x in v.items()})
        assert r.score > 0.9 and r.lag == -k


@pytest.mark.parametrize("edit", ["reverse", "shuffle", "freeze", "hold", "delay3", "advance4", "stutter"])
def test_temporal_rejects_reordered_frames(edit):
    v = _moving_squares()
    t = 24
    ar = np.arange(t)
    idx = {"reverse": ar[::-1], "shuffle": np.random.default_rng(1).permutation(t), "freeze": np.minimum(ar, 10),
           "hold": np.where((ar >= 8) & (ar < 18), 8, ar), "delay3": np.clip(ar - 3, 0, t - 1),
           "advance4": np.clip(ar + 4, 0, t - 1), "stutter": ar // 2 * 2}[edit]
    r = _temporal(v, {n: x[idx] for n, x in v.items()})
    assert r.score < 0.5, (edit, r)


def test_temporal_is_none_without_motion():
    still = {v: np.full((6, 16, 16, 3), 90, np.uint8) for v in ("left", "right", "wrist")}
    assert _temporal(still, still) is None
    assert _temporal({k: x[:1] for k, x in still.items()}, {k: x[:1] for k, x in still.items()}) is None


def test_fidelity_config_validation():
    from simfail.realism.fidelity import FidelityConfig

    FidelityConfig().validate()
    for bad, msg in ((dict(temporal_min=1.5), "temporal_min"), (dict(temporal_window=1), "temporal_window"),
                     (dict(max_shift=-1), "max_shift"), (dict(motion_min=2.0), "motion_min"),
                     (dict(temporal_size=2), "temporal_size")):
        with pytest.raises(ConfigError, match=msg):
            FidelityConfig(**bad).validate()


def test_suggest_threshold():
    from simfail.realism.calibrate import suggest_threshold

    t = suggest_threshold([0.9, 0.8, 0.95], [0.2, 0.4])
    assert t["separates"] and t["threshold"] == pytest.approx(0.6) and t["errors"] == 0
    t = suggest_threshold([0.9, 0.5, 0.95], [0.2, 0.6])  # overlap: the fewest errors
    assert not t["separates"] and t["errors"] == 1 and 0.2 < t["threshold"] <= 0.9
    assert suggest_threshold([], [0.1])["threshold"] is None
