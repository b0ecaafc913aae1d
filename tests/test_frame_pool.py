"""Frame arrays reused across groups (:class:`simfail.render.frame_pool.FramePool`): the same
pixels as fresh arrays even when the reused memory holds garbage, bounded free memory, and a
group that fails to write gives nothing back."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.core.episode import VIEWS
from simfail.render.frame_pool import FramePool
from simfail.render.worker import RenderWorker

from conftest import SMALL, small_config


def test_given_back_arrays_are_reused_by_shape():
    pool = FramePool()
    a = pool.take((2, 4, 4, 3))
    assert a.dtype == np.uint8 and a.shape == (2, 4, 4, 3)
    assert pool.give(a) and pool.free_bytes == a.nbytes
    assert pool.take((3, 4, 4, 3)) is not a  # another shape: a new array
    assert pool.take((2, 4, 4, 3)) is a and pool.free_bytes == 0
    assert (pool.reused, pool.allocated) == (1, 2)


def test_only_issued_arrays_come_back_once():
    pool = FramePool()
    a = pool.take((1, 2, 2, 3))
    assert not pool.give(np.empty((1, 2, 2, 3), np.uint8))  # not from this pool
    assert pool.give(a)
    assert not pool.give(a)  # given twice: kept once
    assert pool.free_bytes == a.nbytes
    assert pool.take((1, 2, 2, 3)) is a
    assert pool.take((1, 2, 2, 3)) is not a


def test_free_memory_is_bounded():
    pool = FramePool(max_bytes=2 * 300)
    taken = [pool.take((1, 10, 10, 3)) for _ in range(3)]  # 300 bytes each
    kept = [pool.give(a) for a in taken]
    assert kept == [True, True, False] and pool.free_bytes == 600
    pool.clear()
    assert pool.free_bytes == 0 and pool.take((1, 10, 10, 3)) is not taken[0]


def test_reused_garbage_memory_gives_the_same_frames(task, physics_groups):
    """Frames drawn into reused arrays full of garbage (the copied prefix and the drawn frames)
    equal frames drawn into fresh arrays, byte for byte."""
    from simfail.core.builder import build_scene
    from simfail.generate import _stage

    res = physics_groups[0]
    model = build_scene(task, res.seed, _stage(small_config())).model
    expert, variant = res.episodes[0], res.episodes[1]
    first = int(variant.perturbation["onset_frame"]) + 1
    q_e, q_v = expert.columns["sim.qpos"], variant.columns["sim.qpos"]
    with RenderWorker(model, VIEWS, SMALL, SMALL) as worker:
        f_e = worker.submit(q_e)
        fresh_e, fresh_v = f_e.result(), worker.submit(q_v, prefix=f_e, first=first).result()

    pool = FramePool()
    shape = (len(q_e), SMALL, SMALL, 3)
    assert len(q_v) == len(q_e)
    garbage = [pool.take(shape) for _ in range(2 * len(VIEWS))]
    for i, g in enumerate(garbage):
        g.fill(37 + i)
        pool.give(g)
    with RenderWorker(model, VIEWS, SMALL, SMALL, frame_pool=pool) as worker:
        f_e = worker.submit(q_e)
        got_e, got_v = f_e.result(), worker.submit(q_v, prefix=f_e, first=first).result()
    assert pool.reused == 2 * len(VIEWS) and pool.free_bytes == 0
    assert {id(a) for a in garbage} == {id(f[v]) for f in (got_e, got_v) for v in VIEWS}
    for v in VIEWS:
        assert np.array_equal(got_e[v], fresh_e[v]), v
        assert np.array_equal(got_v[v], fresh_v[v]), v


def _sink_for(res, writer):
    from simfail.generate import GroupSink

    nq, nv = res.episodes[0].columns["sim.qpos"].shape[1], res.episodes[0].columns["sim.qvel"].shape[1]
    return GroupSink(writer, nq, nv)


def test_a_written_group_gives_its_frames_to_the_next_group(task, rendered_group):
    """The sink returns a group's frame arrays once it is written; the next group drawn with
    the sink's pool draws into them, and both groups' frames equal a group drawn into fresh
    arrays."""
    from simfail.generate import generate_group

    written: list[dict[str, np.ndarray]] = []

    class RecordingWriter:
        def finalize(self, meta):
            pass

        def write_group(self, group_id, episodes, *, frames_ready=None, ready=None):
            for j in range(len(episodes)):
                frames_ready(j)
            ready()
            written.extend({v: a.copy() for v, a in ep.frames.items()} for ep in episodes)

    cfg = small_config()
    with _sink_for(rendered_group, RecordingWriter()) as sink:
        pool = sink.frame_pool
        res = generate_group(task, cfg, 0, defer_frames=True, frame_pool=pool)
        sink.submit_result(res, {})
        sink.wait()
        n_arrays = len(res.episodes) * len(VIEWS)
        assert all(ep.frames == {} for ep in res.episodes)
        assert pool.free_bytes > 0 and pool.allocated == n_arrays
        again = generate_group(task, cfg, 0, defer_frames=True, frame_pool=pool)
        sink.submit_result(again, {})
        sink.wait()
        assert pool.reused == n_arrays and pool.allocated == n_arrays
    assert pool.free_bytes == 0  # closed: the memory is let go
    fresh = rendered_group.episodes
    assert len(written) == 2 * len(fresh)
    for k, ep in enumerate(fresh * 2):  # both writes equal the fresh arrays' frames
        for v in VIEWS:
            assert np.array_equal(written[k][v], ep.frames[v]), (k, v)


def test_a_group_that_fails_mid_write_gives_nothing_back(task):
    """A write that fails after its first episode returns none of the group's arrays to the
    pool (the drawing is stopped; the arrays are freed, not reused while possibly read)."""
    from simfail.generate import generate_group

    class FailingWriter:
        def finalize(self, meta):
            pass

        def write_group(self, group_id, episodes, *, frames_ready=None, ready=None):
            frames_ready(0)
            raise OSError("disk full")

    pool = FramePool()
    failing = generate_group(task, small_config(), 0, defer_frames=True, frame_pool=pool)
    sink = _sink_for(failing, FailingWriter())
    sink.frame_pool = pool
    sink.submit_result(failing, {})
    with pytest.raises(OSError, match="disk full"):
        sink.wait()
    assert failing.frames_ready  # the worker was stopped
    assert sink.frame_pool.free_bytes == 0 and sink.frame_pool.reused == 0
    assert 0 < pool.allocated <= len(failing.episodes) * len(VIEWS)  # the rest never drawn
    sink.close()
