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
