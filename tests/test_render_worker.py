"""Rendering on a worker thread: the same frames as drawing inline, errors reach the caller,
and a group's frames can be collected later (``defer_frames``)."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from simfail.core.episode import VIEWS
from simfail.render.renderer import MultiViewRenderer
from simfail.render.worker import RenderWorker, render_states

from conftest import SMALL, small_config


@pytest.fixture(scope="module")
def scene_and_group(task, physics_groups):
    from simfail.core.builder import build_scene
    from simfail.generate import _stage

    res = physics_groups[0]
    return build_scene(task, res.seed, _stage(small_config())), res


def test_worker_frames_equal_inline_frames(scene_and_group):
    scene, res = scene_and_group
    model = scene.model
    expert, variant = res.episodes[0], res.episodes[1]
    onset = int(variant.perturbation["onset_frame"])
    q_e, q_v = expert.columns["sim.qpos"], variant.columns["sim.qpos"]
    with RenderWorker(model, VIEWS, SMALL, SMALL) as worker:
        f_e = worker.submit(q_e)
        f_v = worker.submit(q_v, prefix=f_e, first=onset + 1)
        got_e, got_v = f_e.result(), f_v.result()
        assert worker.frames_rendered == (len(q_e) + len(q_v) - onset - 1) * len(VIEWS)
        assert worker.render_s > 0
    # inline, on this thread, with a renderer and data of its own
    inline = {}
    with MultiViewRenderer(model, VIEWS, SMALL, SMALL) as r:
        for name, q in (("expert", q_e), ("variant", q_v)):
            out = {v: np.empty((len(q), SMALL, SMALL, 3), np.uint8) for v in VIEWS}
            render_states(r, model, mujoco.MjData(model), q, out)
            inline[name] = out
    for v in VIEWS:
        assert np.array_equal(got_e[v], inline["expert"][v])
        # the copied prefix and the drawn suffix both equal drawing every frame
        assert np.array_equal(got_v[v], inline["variant"][v])
        assert np.array_equal(got_v[v][: onset + 1], got_e[v][: onset + 1])


def test_worker_errors_reach_the_caller(scene_and_group):
    scene, res = scene_and_group
    q = res.episodes[0].columns["sim.qpos"]
    with RenderWorker(scene.model, VIEWS, SMALL, SMALL) as worker:
        with pytest.raises(ValueError, match="prefix"):
            worker.submit(q, first=3)
        bad = worker.submit(q[:, :-1])  # a state of the wrong width
        with pytest.raises(ValueError):
            bad.result()
        ok = worker.submit(q[:2])  # the worker keeps working after a failed job
        assert ok.result()["wrist"].shape == (2, SMALL, SMALL, 3)


def test_deferred_frames_equal_immediate_frames(task, rendered_group):
    from simfail.generate import generate_group

    deferred = generate_group(task, small_config(), 0, defer_frames=True)
    assert not deferred.frames_ready
    assert all(ep.frames == {} for ep in deferred.episodes)  # nothing attached yet
    deferred.wait_frames()
    deferred.wait_frames()  # a no-op once done
    assert deferred.frames_ready
    assert deferred.timing.render > 0 and deferred.timing.frames_rendered == rendered_group.timing.frames_rendered
    assert [e.variant for e in deferred.episodes] == [e.variant for e in rendered_group.episodes]
    for a, b in zip(deferred.episodes, rendered_group.episodes):
        for v in VIEWS:
            assert np.array_equal(a.frames[v], b.frames[v]), (a.variant, v)


def test_cancelled_frames_free_the_worker(task):
    from simfail.generate import generate_group

    res = generate_group(task, small_config(), 0, defer_frames=True)
    res.cancel_frames()
    assert res.frames_ready
    res.wait_frames()  # nothing left to wait for


def test_episode_frames_arrive_one_by_one_and_equal_the_group_wait(task, rendered_group):
    """``wait_episode_frames(j)`` attaches episode j's frames (what the writer's encoders wait
    for, episode by episode); the group's ``wait_frames`` afterwards changes nothing."""
    from simfail.generate import generate_group

    res = generate_group(task, small_config(), 0, defer_frames=True)
    res.wait_episode_frames(1)
    assert set(res.episodes[1].frames) == set(VIEWS)
    res.wait_episode_frames(1)  # asked again (another view's encoder): the same arrays
    second = res.episodes[1].frames
    for j in range(len(res.episodes)):
        res.wait_episode_frames(j)
    res.wait_frames()
    res.wait_episode_frames(0)  # a no-op once the group is collected
    assert res.frames_ready and res.episodes[1].frames["left"] is not None
    for v in VIEWS:
        assert np.array_equal(res.episodes[1].frames[v], second[v])
    for a, b in zip(res.episodes, rendered_group.episodes):
        for v in VIEWS:
            assert np.array_equal(a.frames[v], b.frames[v]), (a.variant, v)


def test_a_write_that_fails_mid_group_stops_the_drawing(task):
    """The writer encodes episode by episode; when it fails before collecting the group (here
    after the first episode), the group's render worker is stopped, not left running."""
    from simfail.generate import GroupSink, generate_group

    class FailingWriter:
        def finalize(self, meta):
            pass

        def write_group(self, group_id, episodes, *, frames_ready=None, ready=None):
            frames_ready(0)
            assert set(episodes[0].frames) == set(VIEWS)
            raise OSError("disk full")

    res = generate_group(task, small_config(), 0, defer_frames=True)
    nq, nv = res.episodes[0].columns["sim.qpos"].shape[1], res.episodes[0].columns["sim.qvel"].shape[1]
    sink = GroupSink(FailingWriter(), nq, nv)
    sink.submit_result(res, {})
    with pytest.raises(OSError, match="disk full"):
        sink.wait()
    assert res.frames_ready  # the worker was closed
    sink.close()
