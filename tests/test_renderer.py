"""The tiled multi-view renderer: same images as ``mujoco.Renderer``, deterministic, clean errors."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from simfail.core.episode import VIEWS
from simfail.errors import RenderBackendError
from simfail.render.renderer import MultiViewRenderer

from conftest import SMALL


@pytest.fixture(scope="module")
def posed(task, physics_groups):
    """The group-0 scene and every 8th state of its expert and first variant."""
    from simfail.core.builder import build_scene
    from simfail.generate import _stage
    from conftest import small_config

    res = physics_groups[0]
    scene = build_scene(task, res.seed, _stage(small_config()))
    qpos = np.concatenate([e.columns["sim.qpos"] for e in res.episodes[:2]])[::8]
    return scene.model, qpos


def _pose(model, data, q):
    data.qpos[:] = q
    mujoco.mj_kinematics(model, data)
    mujoco.mj_camlight(model, data)


def test_tiles_match_mujoco_renderer(posed):
    """One framebuffer, three viewports, one readback: the images of mujoco.Renderer, up to
    rare single edge pixels (sub-pixel snapping at the shifted viewport)."""
    model, qpos = posed
    data = mujoco.MjData(model)
    off = (model.vis.global_.offwidth, model.vis.global_.offheight)
    stock = mujoco.Renderer(model, height=SMALL, width=SMALL)
    tiled = MultiViewRenderer(model, VIEWS, SMALL, SMALL)
    # the larger framebuffer is asked for while creating the context only
    assert (model.vis.global_.offwidth, model.vis.global_.offheight) == off
    try:
        diffs = []
        for q in qpos:
            _pose(model, data, q)
            ours = tiled.render(data)
            for v in VIEWS:
                stock.update_scene(data, camera=v)
                ref = stock.render()
                assert ours[v].shape == ref.shape == (SMALL, SMALL, 3) and ours[v].dtype == np.uint8
                diffs.append(np.abs(ours[v].astype(int) - ref.astype(int)))
    finally:
        tiled.close()
        stock.close()
    d = np.stack(diffs)
    assert (d.max(axis=-1) > 0).mean() < 1e-3  # under 0.1% of pixels differ at all
    assert d.mean() < 0.05
    # and the views are not mixed up: each tile differs from the other views' images
    assert not np.array_equal(ours["left"], ours["right"]) and not np.array_equal(ours["left"], ours["wrist"])


def test_rendering_is_deterministic_and_writes_into_given_arrays(posed):
    model, qpos = posed
    data = mujoco.MjData(model)
    with MultiViewRenderer(model, VIEWS, SMALL, SMALL) as r:
        out = {v: np.zeros((2, SMALL, SMALL, 3), np.uint8) for v in VIEWS}
        for i in range(2):
            _pose(model, data, qpos[-1])
            r.render_into(data, {v: out[v][i] for v in VIEWS})
    for v in VIEWS:
        assert out[v][0].any() and np.array_equal(out[v][0], out[v][1])


def test_bad_camera_and_use_after_close(posed):
    model, _ = posed
    with pytest.raises(RenderBackendError, match="no camera named 'top'"):
        MultiViewRenderer(model, ("left", "top"), SMALL, SMALL)
    r = MultiViewRenderer(model, VIEWS, SMALL, SMALL)
    r.close()
    r.close()  # idempotent
    with pytest.raises(RenderBackendError, match="after close"):
        r.render(mujoco.MjData(model))


def test_no_gl_backend_is_one_clear_error(posed, monkeypatch):
    model, _ = posed
    import simfail.render.renderer as R

    monkeypatch.setattr(R, "_gl_context_class", lambda: None)
    with pytest.raises(RenderBackendError, match="could not create an OpenGL context with MUJOCO_GL="):
        MultiViewRenderer(model, VIEWS, SMALL, SMALL)
