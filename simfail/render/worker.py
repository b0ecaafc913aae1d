"""Render rollouts on a worker thread, overlapped with the physics of the next rollout.

Rendering needs only a rollout's recorded ``qpos`` (kinematics), never the live simulation, so
a counterfactual group's episodes can be drawn while the main thread simulates the next
variant. MuJoCo releases the GIL inside ``mj_step`` and the OpenGL calls, so on the 2-core CPU
machine the physics thread and llvmpipe's rasterizer threads fill each other's idle time.

The worker owns its :class:`~simfail.render.renderer.MultiViewRenderer` (an OpenGL context is
bound to one thread) and its own ``MjData``, so the frames depend only on the ``qpos`` rows
they are drawn from: the same rollout gives the same frames whether it is rendered here or
inline (``tests/test_render_worker.py``).

**A group's frames as worlds.** With a batch renderer (``render.backend=warp``: one with
``render_states_into`` and a ``batch`` of worlds per call) the worker does not draw episode by
episode: every submitted episode's new rows join one queue of ``(episode, frame)`` rows, and a
call is made whenever ``batch`` rows are queued, so one call holds frames of several episodes
of the group (the expert's tail and the next variants' heads). The rows left when a frame
future is first waited for (:meth:`flush`, called by that future's ``result``) are drawn in
one last, partial call. A world's image depends only on its own ``qpos``, so the frames equal
episode-by-episode rendering bit for bit (``tests/test_warp_renderer.py``).
"""

from __future__ import annotations

import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import mujoco
import numpy as np

from simfail.render.backends import make_renderer
from simfail.render.frame_pool import FramePool
from simfail.render.renderer import MultiViewRenderer
from simfail.render.segmentation import SegmentationRenderer

__all__ = ["RenderWorker", "render_states"]

Frames = dict[str, np.ndarray]


class _BatchedFrames(Future):
    """The frames of an episode queued for batched rendering: waiting for them first flushes
    the worker's queue (so a partial last call is made only when somebody needs the frames)."""

    def __init__(self, worker: RenderWorker):
        super().__init__()
        self._worker = worker

    def result(self, timeout: float | None = None) -> Frames:
        if not self.done():
            self._worker.flush()
        return super().result(timeout)


@dataclass
class _QueuedEpisode:
    """An episode waiting in the batch queue: its states, output arrays and prefix source."""

    qpos: np.ndarray
    out: Frames
    future: _BatchedFrames
    first: int
    prefix: Future | None
    left: int  # rows still to draw


def render_states(renderer: MultiViewRenderer, model: mujoco.MjModel, data: mujoco.MjData,
                  qpos: np.ndarray, out: Frames, first: int = 0) -> None:
    """Draw row ``f`` of ``qpos`` ``(T, nq)`` into frame ``f`` of every ``out[view]``
    (``uint8 (T, H, W, 3)``) for ``f >= first``. ``data`` is posed by kinematics only.

    A batch renderer (one with ``render_states_into``, e.g. the warp backend) draws all the
    rows in as few calls as its batch allows instead."""
    views = renderer.views
    if hasattr(renderer, "render_states_into"):
        if first < len(qpos):
            renderer.render_states_into(qpos[first:], {v: out[v][first:] for v in views})
        return
    for f in range(first, len(qpos)):
        data.qpos[:] = qpos[f]
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        renderer.render_into(data, {v: out[v][f] for v in views})


class RenderWorker:
    """One background thread that renders the rollouts of one scene, in submission order.

    Args:
        model: The compiled scene (read only; shared with the simulation core).
        views, width, height: As for :class:`MultiViewRenderer`.
        seg_size: Side [px] of the geom-id segmentation views behind :meth:`submit_visibility`
            (a second, small renderer on the same thread; 0: none).
        backend: ``render.backend`` name (:mod:`simfail.render.backends`); ``egl`` by default.
        frame_pool: Where the episodes' frame arrays come from (reused across groups; the
            consumer gives them back once written); None: fresh arrays.

    Raises:
        RenderBackendError: no OpenGL context could be created (raised here, not later).
    """

    def __init__(self, model: mujoco.MjModel, views: tuple[str, ...], width: int, height: int,
                 backend: str = "egl", seg_size: int = 0, frame_pool: FramePool | None = None):
        self.model = model
        self._frame_pool = frame_pool
        self.views = tuple(views)
        self.width, self.height = int(width), int(height)
        #: seconds the worker spent rendering (its own thread's wall time)
        self.render_s = 0.0
        #: view-frames drawn (prefix frames copied from another episode are not counted)
        self.frames_rendered = 0
        #: seconds of the visibility pass (segmentation + masks) and the view-frames it segmented
        self.visibility_s = 0.0
        self.seg_frames = 0
        self._data = mujoco.MjData(model)
        self._pending: list[Future] = []
        #: batch renderers: episodes queued (in submission order) and their rows not yet drawn,
        #: both touched only on the worker thread
        self._episodes: deque[_QueuedEpisode] = deque()
        self._rows: deque[tuple[_QueuedEpisode, int]] = deque()
        #: calls made to a batch renderer and the rows they drew (``rows / (calls * batch)``:
        #: how full the worlds were)
        self.batch_calls = 0
        self.batch_rows = 0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simfail-render")
        self._renderer = self._seg = None
        try:
            self._renderer = self._pool.submit(make_renderer, backend, model, self.views, width, height).result()
            if seg_size:
                self._seg = self._pool.submit(SegmentationRenderer, model, self.views, seg_size, seg_size).result()
        except BaseException:
            self._close_renderers()
            self._pool.shutdown(wait=True)
            raise

    def submit(self, qpos: np.ndarray, *, prefix: Future | None = None, first: int = 0) -> Future:
        """Queue the frames of a rollout whose states are ``qpos`` ``(T, nq)``.

        Frames ``0 .. first-1`` are copied from ``prefix`` (the future of an earlier submission,
        e.g. the expert a variant branched from; the queue is first in, first out, so it is done
        by then); the rest are drawn. Returns a future of ``{view: uint8 (T, H, W, 3)}``.
        """
        if first and prefix is None:
            raise ValueError("a prefix to copy frames from is needed when first > 0")
        states = np.array(qpos, dtype=np.float64, copy=True)  # the caller may reuse its trace
        self.frames_rendered += (len(states) - first) * len(self.views)
        if self._batched:
            frames = _BatchedFrames(self)
            self._pending.append(frames)
            self._pending.append(self._pool.submit(self._enqueue, states, prefix, int(first), frames))
            return frames
        fut = self._pool.submit(self._render, states, prefix, int(first))
        self._pending.append(fut)
        return fut

    @property
    def _batched(self) -> bool:
        return hasattr(self._renderer, "render_states_into") and hasattr(self._renderer, "batch")

    def flush(self) -> None:
        """Draw the rows still queued for a batch renderer (one partial call) and wait for it.
        A no-op for one-state renderers and when nothing is queued."""
        if self._batched and self._pool is not None:
            self._pool.submit(self._draw_queued, True).result()

    def _enqueue(self, qpos: np.ndarray, prefix: Future | None, first: int, frames: _BatchedFrames) -> None:
        n = len(qpos)
        out = self._episode_arrays(n)
        ep = _QueuedEpisode(qpos, out, frames, first, prefix, n - first)
        self._episodes.append(ep)
        self._rows.extend((ep, f) for f in range(first, n))
        self._draw_queued(False)

    def _episode_arrays(self, n: int) -> Frames:
        """``{view: uint8 (n, H, W, 3)}`` to draw an episode into (from the frame pool if any)."""
        if self._frame_pool is not None:
            return self._frame_pool.take_frames(self.views, n, self.height, self.width)
        return {v: np.empty((n, self.height, self.width, 3), dtype=np.uint8) for v in self.views}

    def _draw_queued(self, partial: bool) -> None:
        """Draw queued rows ``batch`` at a time (with ``partial``, also the last, shorter call)
        and complete the episodes whose rows are all drawn, in submission order."""
        batch = int(self._renderer.batch)
        try:
            while len(self._rows) >= batch or (partial and self._rows):
                t0 = time.perf_counter()
                take = [self._rows.popleft() for _ in range(min(batch, len(self._rows)))]
                qpos = np.stack([ep.qpos[f] for ep, f in take])
                drawn = {v: np.empty((len(take), self.height, self.width, 3), dtype=np.uint8) for v in self.views}
                self._renderer.render_states_into(qpos, drawn)
                for i, (ep, f) in enumerate(take):
                    for v in self.views:
                        ep.out[v][f] = drawn[v][i]
                    ep.left -= 1
                self.batch_calls += 1
                self.batch_rows += len(take)
                self.render_s += time.perf_counter() - t0
                self._complete_done()
            self._complete_done()
        except BaseException as exc:  # every waiting episode gets the error, none hangs
            while self._episodes:
                fut = self._episodes.popleft().future
                if not fut.done():
                    fut.set_exception(exc)
            self._rows.clear()
            raise

    def _complete_done(self) -> None:
        while self._episodes and self._episodes[0].left == 0:
            ep = self._episodes.popleft()
            if ep.future.done():  # cancelled (an error path): nobody waits for it
                continue
            if ep.first:  # the prefix was submitted earlier: it is complete by now (no flush here)
                src = Future.result(ep.prefix, timeout=0)
                for v in self.views:
                    ep.out[v][:ep.first] = src[v][:ep.first]
            ep.future.set_result(ep.out)

    def _render(self, qpos: np.ndarray, prefix: Future | None, first: int) -> Frames:
        t0 = time.perf_counter()
        n = len(qpos)
        out = self._episode_arrays(n)
        if first:
            src = prefix.result()
            for v in self.views:
                out[v][:first] = src[v][:first]
        render_states(self._renderer, self.model, self._data, qpos, out, first)
        self.render_s += time.perf_counter() - t0
        return out

    def submit_visibility(self, qpos: np.ndarray, queries: list) -> Future:
        """Queue the visibility pass of a rollout whose states are ``qpos`` ``(T, nq)``: answer
        each :class:`~simfail.labels.visibility.VisibilityQuery` from geom-id segmentation of the
        frames it needs (:func:`simfail.labels.visibility.resolve`). Returns a future of
        ``[{view: frame or None}]``, one per query. Needs ``seg_size > 0``."""
        if self._seg is None:
            raise ValueError("this worker has no segmentation renderer (seg_size=0)")
        states = np.array(qpos, dtype=np.float64, copy=True)
        fut = self._pool.submit(self._visibility, states, list(queries))
        self._pending.append(fut)
        return fut

    def _visibility(self, qpos: np.ndarray, queries: list) -> list:
        from simfail.labels.visibility import resolve

        t0 = time.perf_counter()
        seg, d, m = self._seg, self._data, self.model

        def segment(state: np.ndarray, views: tuple[str, ...]) -> dict[str, np.ndarray]:
            d.qpos[:] = state
            mujoco.mj_kinematics(m, d)
            mujoco.mj_camlight(m, d)
            self.seg_frames += len(views)
            return seg.render_ids(d, views)

        scratch = mujoco.MjData(m)

        def pose(state: np.ndarray, body: int) -> tuple[np.ndarray, np.ndarray]:
            scratch.qpos[:] = state
            mujoco.mj_kinematics(m, scratch)
            return scratch.xpos[body].copy(), scratch.xquat[body].copy()

        out = resolve(queries, qpos, m.ngeom, self.views, segment, pose)
        self.visibility_s += time.perf_counter() - t0
        return out

    def _close_renderers(self) -> None:
        for r in (self._seg, self._renderer):
            if r is not None:
                self._pool.submit(r.close).result()

    def close(self, *, cancel: bool = False) -> None:
        """Finish (or with ``cancel=True`` drop) the queued work and free the GL context."""
        if self._pool is None:
            return
        if cancel:
            for fut in self._pending:
                fut.cancel()
        try:
            if not cancel:
                self.flush()
            self._close_renderers()
        finally:
            self._pool.shutdown(wait=True)
            self._pool = None
            self._pending = []

    def __enter__(self) -> RenderWorker:
        return self

    def __exit__(self, exc_type, *exc) -> None:
        self.close(cancel=exc_type is not None)
