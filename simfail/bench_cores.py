"""The bench's resources alone on every core: one process per core, one thread each.

One process that renders with Mesa llvmpipe does not fill a CPU machine: its rasterizer
threads wait for each other at every frame (on the shared 2-core machine one process keeps 1.4
cores busy). A render bound measured that way is not "the resource alone at full machine use",
and a pipeline could look close to it while the machine could render the same frames about
1.4x faster (two processes with one rasterizer thread each; ``docs/scale.md``). The same holds
for the physics: ``mj_step`` is single-threaded, so a group's steps split over ``n`` processes
finish up to ``n`` times sooner.

:class:`CorePool` starts ``n`` processes (``spawn``; ``LP_NUM_THREADS=1`` so that llvmpipe
rasterizes on the calling thread only). For each group the bench hands every process a
contiguous share of the group's rows; each process builds the scene and its renderer first
(untimed), then all start together and the measured wall time runs until the last one is done.
The CPU seconds are the sum of the processes' own CPU time for the timed part.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from simfail.envvars import environ
from simfail.errors import SimfailError

__all__ = ["BenchCoreError", "CorePool", "CoreWork", "split_rows"]


class BenchCoreError(SimfailError):
    """A per-core measurement process failed, or did other work than it was given; the
    message is one line (the process's last traceback line), ``details`` the whole traceback."""

    def __init__(self, message: str, details: str = ""):
        super().__init__(message)
        self.details = details


#: environment of the processes: llvmpipe draws on the calling thread only
CORE_ENV = {"LP_NUM_THREADS": "1"}
#: seconds the bench waits for a process's reply before calling it stalled (a share is a few
#: seconds of work on a CPU; a hung GL driver must not hang ``simfail bench``)
REPLY_TIMEOUT_S = 1800.0


@dataclass
class CoreWork:
    """One process's share of a group: the scene it needs and the rows it replays.

    ``render_qpos`` ``(R, nq)``: states to draw (all views of each, ``width x height`` px, the
    scene at ``render.preset`` ``preset``); ``qpos0``/``qvel0``/``ctrl`` ``(S, .)``: states to
    step ``substeps`` times each from, and the controls held during those steps.

    Raises:
        ValueError: the physics rows differ in number, or a row width is not 2-D.
    """

    task: str
    seed: int
    width: int
    height: int
    views: tuple[str, ...]
    substeps: int
    render_qpos: np.ndarray
    qpos0: np.ndarray
    qvel0: np.ndarray
    ctrl: np.ndarray
    preset: str = "fast"

    def __post_init__(self) -> None:
        for name in ("render_qpos", "qpos0", "qvel0", "ctrl"):
            if np.ndim(getattr(self, name)) != 2:
                shape = np.shape(getattr(self, name))
                raise ValueError(f"CoreWork.{name} must be 2-D (rows, width), got shape {shape}")
        if not len(self.qpos0) == len(self.qvel0) == len(self.ctrl):
            raise ValueError(f"CoreWork physics rows differ: qpos0 {len(self.qpos0)}, qvel0 {len(self.qvel0)}, "
                             f"ctrl {len(self.ctrl)}")


def split_rows(n: int, parts: int) -> list[slice]:
    """``parts`` contiguous slices covering ``range(n)`` whose lengths differ by at most one."""
    parts = max(1, parts)
    bounds = [round(k * n / parts) for k in range(parts + 1)]
    return [slice(bounds[k], bounds[k + 1]) for k in range(parts)]


class _Prepared:
    """A process's scene, renderer and frame arrays for one :class:`CoreWork`; the scene (and
    its renderer) is kept while the next work is for the same scene."""

    def __init__(self, work: CoreWork, cache: dict[str, Any]):
        import mujoco

        from simfail.core.builder import build_scene
        from simfail.core.scene import StageConfig
        from simfail.core.task import get_task
        from simfail.render.presets import render_model
        from simfail.render.renderer import MultiViewRenderer

        key = (work.task, work.seed, work.width, work.height, work.preset, tuple(work.views))
        if cache.get("key") != key:
            old = cache.get("renderer")
            cache.clear()  # before anything can fail: a half-replaced scene is never reused
            if old is not None:
                old.close()
            scene = build_scene(get_task(work.task), work.seed, StageConfig(width=work.width, height=work.height))
            rmodel = render_model(scene.model, scene.xml, work.preset)
            cache.update(key=key, model=scene.model, data=mujoco.MjData(scene.model), rmodel=rmodel,
                         rdata=mujoco.MjData(rmodel), renderer=None)
        self.model, self.data = cache["model"], cache["data"]
        self.rmodel, self.rdata = cache["rmodel"], cache["rdata"]
        self.work = work
        self.renderer = None
        if len(work.render_qpos):
            if cache["renderer"] is None:
                cache["renderer"] = MultiViewRenderer(self.rmodel, work.views, work.width, work.height)
            self.renderer = cache["renderer"]
            # frame arrays written once beforehand (no page faults in the timed loop), reused
            n = len(work.render_qpos)
            buf = cache.get("frames")
            if buf is None or len(next(iter(buf.values()))) < n:
                buf = {v: np.ones((n, work.height, work.width, 3), np.uint8) for v in work.views}
                cache["frames"] = buf
            self.frames = buf

    def render(self) -> int:
        """Draw every row's views (posed by kinematics, as the pipeline's render worker does);
        returns the view-frames drawn."""
        import mujoco

        m, d, r = self.rmodel, self.rdata, self.renderer
        if r is None:
            return 0
        views = self.work.views
        drawn = 0
        for i, q in enumerate(self.work.render_qpos):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_camlight(m, d)
            r.render_into(d, {v: self.frames[v][i] for v in views})
            drawn += len(views)
        return drawn

    def physics(self) -> int:
        """Step from every row ``substeps`` times; returns the ``mj_step`` calls made."""
        import mujoco

        m, d, w = self.model, self.data, self.work
        step = mujoco.mj_step
        made = 0
        for q, v, c in zip(w.qpos0, w.qvel0, w.ctrl):
            d.qpos[:] = q
            d.qvel[:] = v
            d.ctrl[:] = c
            for _ in range(w.substeps):
                step(m, d)
                made += 1
        return made

    def digest(self, kind: str) -> str:
        """SHA-256 of what the last ``kind`` run left: the drawn frames (view by view, row by
        row) or the physics state after the last row's steps (``qpos``, ``qvel``)."""
        import hashlib

        h = hashlib.sha256()
        if kind == "render":
            n = len(self.work.render_qpos)
            for v in self.work.views:
                if n:
                    h.update(np.ascontiguousarray(self.frames[v][:n]).tobytes())
        else:
            h.update(np.ascontiguousarray(self.data.qpos).tobytes())
            h.update(np.ascontiguousarray(self.data.qvel).tobytes())
        return h.hexdigest()


def _serve(conn) -> None:
    """A core process (its environment, :data:`CORE_ENV`, set by :class:`CorePool` before the
    spawn): ``("load", CoreWork)`` -> ``"ready"``; ``("render"|"physics",)`` ->
    ``("done", cpu_s, work)`` (view-frames drawn or ``mj_step`` calls); ``("digest", kind)``
    -> ``("digest", hex)`` (:meth:`_Prepared.digest`); ``("stop",)`` ends it. An exception is
    sent back as ``("error", text)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the bench's to handle: it stops us
    cache: dict[str, Any] = {}
    prepared: _Prepared | None = None
    try:
        while True:
            msg = conn.recv()
            try:
                if msg[0] == "stop":
                    break
                if msg[0] == "load":
                    prepared = _Prepared(msg[1], cache)
                    conn.send(("ready",))
                elif msg[0] == "digest":
                    conn.send(("digest", prepared.digest(msg[1])))
                else:
                    c0 = time.process_time()
                    done = getattr(prepared, msg[0])()
                    conn.send(("done", time.process_time() - c0, done))
            except Exception:  # noqa: BLE001 - reported to the bench, which raises it
                conn.send(("error", traceback.format_exc()))
    finally:
        if cache.get("renderer") is not None:
            cache["renderer"].close()
        conn.close()


@contextmanager
def _sigint_ignored():
    """SIGINT ignored in this process while the block runs (the main thread only: elsewhere
    Python cannot change signal handlers, and the block runs unchanged; likewise where the
    handler was not installed from Python and so could not be put back)."""
    old = signal.getsignal(signal.SIGINT)
    if old is None:  # a handler Python did not install: left alone (it could not be restored)
        yield
        return
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


class CorePool:
    """``n`` measurement processes, one per core (see the module docstring).

    Use as a context manager; :meth:`run` gives one resource's wall and CPU seconds."""

    def __init__(self, n: int):
        import multiprocessing as mp

        self.n = max(1, int(n))
        ctx = mp.get_context("spawn")
        env = dict(CORE_ENV)
        if "MUJOCO_GL" in os.environ:
            env["MUJOCO_GL"] = os.environ["MUJOCO_GL"]
        self._conns, self._procs = [], []
        self._broken = ""
        try:
            # spawn copies the environment when the process starts; an ignored SIGINT is kept
            # across the exec, so a Ctrl-C while the processes import does not reach them either
            with environ(env), _sigint_ignored():
                for _ in range(self.n):
                    parent, child = ctx.Pipe()
                    self._conns.append(parent)
                    p = ctx.Process(target=_serve, args=(child,), daemon=True, name="simfail-bench-core")
                    p.start()
                    child.close()
                    self._procs.append(p)
        except OSError as exc:  # out of processes, file handles or memory
            self.close()
            raise BenchCoreError(f"cannot start {self.n} bench processes (one per core): {exc}") from exc
        except BaseException:
            self.close()
            raise

    @staticmethod
    def _send(conn, msg: tuple) -> None:
        try:
            conn.send(msg)
        except (BrokenPipeError, OSError) as exc:  # the process died (killed, out of memory)
            raise BenchCoreError(f"a bench process (one per core) exited without replying "
                                 f"({type(exc).__name__})") from exc

    def _replies(self, conns, step: str) -> list[tuple]:
        """Every process's reply to ``step`` (all read, so none is left in a pipe), or the first
        error. One deadline (:data:`REPLY_TIMEOUT_S`) for them all: a process that has not
        replied by then is stalled, and the pool is unusable afterwards (its late reply would
        be read as the answer to the next step)."""
        from multiprocessing.connection import wait

        got: dict[int, tuple] = {}
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        waiting = list(conns)
        while waiting:
            ready = wait(waiting, timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            for c in ready:
                try:
                    got[id(c)] = c.recv()
                except (EOFError, OSError) as exc:  # the process died (killed, out of memory)
                    got[id(c)] = ("error", f"the process exited without replying ({type(exc).__name__})")
                waiting.remove(c)
        if waiting:
            self._broken = f"a bench process stalled on {step!r}"
        replies = [got.get(id(c), ("error", f"the process did not reply to {step!r} within "
                                            f"{REPLY_TIMEOUT_S:g} s (stalled)")) for c in conns]
        for msg in replies:
            if msg[0] == "error":
                last = msg[1].strip().splitlines()[-1] if msg[1].strip() else "unknown error"
                raise BenchCoreError(f"a bench process (one per core) failed: {last}", msg[1])
        return replies

    def run(self, kind: str, shares: list[CoreWork]) -> tuple[float, float, int]:
        """Load ``shares`` (one per process, ``len(shares) <= n``) untimed, then run ``kind``
        (``"render"`` or ``"physics"``) in all at once; returns (wall s, CPU s summed, work
        done summed: view-frames drawn or ``mj_step`` calls)."""
        if kind not in ("render", "physics"):
            raise ValueError(f"kind must be render or physics, got {kind!r}")
        if len(shares) > self.n:
            raise ValueError(f"{len(shares)} shares for {self.n} processes")
        self._usable()
        conns = self._conns[: len(shares)]
        for c, share in zip(conns, shares):
            self._send(c, ("load", share))
        self._replies(conns, "load")
        t0 = time.perf_counter()
        for c in conns:
            self._send(c, (kind,))
        replies = self._replies(conns, kind)
        return time.perf_counter() - t0, sum(r[1] for r in replies), sum(r[2] for r in replies)

    def digests(self, kind: str, processes: int) -> list[str]:
        """What the first ``processes`` processes' last ``kind`` run left, as SHA-256 hex
        (frames drawn, or the physics state); for tests comparing them with this process."""
        self._usable()
        conns = self._conns[:processes]
        for c in conns:
            self._send(c, ("digest", kind))
        return [r[1] for r in self._replies(conns, "digest")]

    def _usable(self) -> None:
        if self._broken:
            raise BenchCoreError(f"the bench's per-core processes are unusable: {self._broken}")

    def close(self) -> None:
        """Stop the processes: each is asked to stop, all get 10 s together to exit (none
        after a stall: a stalled process is still busy), then the rest are killed; every one
        is joined (no zombie is left)."""
        for c in self._conns:
            try:
                c.send(("stop",))
            except (BrokenPipeError, OSError):
                pass
        deadline = time.monotonic() + (0.0 if self._broken else 10.0)
        for p in self._procs:
            p.join(timeout=max(0.0, deadline - time.monotonic()))
        for p in self._procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5.0)
        for c in self._conns:
            c.close()
        self._conns, self._procs = [], []

    def __enter__(self) -> CorePool:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
