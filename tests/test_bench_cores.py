"""Tests of simfail.bench_cores: the bench's per-core processes do exactly the work handed to
them, with the same result as this process."""

from __future__ import annotations

import hashlib

import mujoco
import numpy as np
import pytest

from simfail.bench_cores import BenchCoreError, CorePool, CoreWork, split_rows
from simfail.core.builder import build_scene
from simfail.core.episode import VIEWS
from simfail.core.scene import StageConfig
from simfail.core.task import get_task
from simfail.render.renderer import MultiViewRenderer

SIZE = 32
SUBSTEPS = 3


@pytest.mark.parametrize("n,parts", [(0, 2), (1, 2), (7, 3), (557, 2), (10, 16)])
def test_split_rows_covers_every_row_once_in_balanced_slices(n: int, parts: int) -> None:
    slices = split_rows(n, parts)
    assert len(slices) == parts
    rows = [i for sl in slices for i in range(n)[sl]]
    assert rows == list(range(n))
    sizes = [len(range(n)[sl]) for sl in slices]
    assert max(sizes) - min(sizes) <= 1


@pytest.fixture(scope="module")
def scene():
    return build_scene(get_task("pick_place"), 5, StageConfig(width=SIZE, height=SIZE))


def _states(scene, n: int) -> np.ndarray:
    """``n`` states with the arm's first joint sweeping (the scene moves from row to row)."""
    rows = np.tile(scene.qpos0, (n, 1))
    rows[:, 0] += np.linspace(0.0, 0.3, n)
    return rows


def _work(scene, render_qpos=None, qpos0=None, task: str = "pick_place") -> CoreWork:
    m = scene.model
    qpos0 = np.empty((0, m.nq)) if qpos0 is None else qpos0
    ctrl = np.zeros((len(qpos0), m.nu))
    ctrl[:, 0] = 0.5  # a control that moves the arm
    return CoreWork(task=task, seed=5, width=SIZE, height=SIZE, views=tuple(VIEWS), substeps=SUBSTEPS,
                    render_qpos=np.empty((0, m.nq)) if render_qpos is None else render_qpos,
                    qpos0=qpos0, qvel0=np.zeros((len(qpos0), m.nv)), ctrl=ctrl)


def _render_here(scene, rows: np.ndarray, model=None) -> str:
    """SHA-256 of ``rows`` drawn in this process (default llvmpipe threads), view by view, of
    ``model`` (the scene's own by default)."""
    m = scene.model if model is None else model
    d = mujoco.MjData(m)
    frames = {v: np.zeros((len(rows), SIZE, SIZE, 3), np.uint8) for v in VIEWS}
    r = MultiViewRenderer(m, VIEWS, SIZE, SIZE)
    try:
        for i, q in enumerate(rows):
            d.qpos[:] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_camlight(m, d)
            r.render_into(d, {v: frames[v][i] for v in VIEWS})
    finally:
        r.close()
    h = hashlib.sha256()
    for v in VIEWS:
        h.update(frames[v].tobytes())
    return h.hexdigest()


def _step_here(scene, work: CoreWork) -> str:
    m = scene.model
    d = mujoco.MjData(m)
    for q, v, c in zip(work.qpos0, work.qvel0, work.ctrl):
        d.qpos[:], d.qvel[:], d.ctrl[:] = q, v, c
        for _ in range(SUBSTEPS):
            mujoco.mj_step(m, d)
    return hashlib.sha256(d.qpos.tobytes() + d.qvel.tobytes()).hexdigest()


def test_core_processes_draw_the_frames_and_step_the_states_this_process_does(scene) -> None:
    rows = _states(scene, 9)
    shares = [rows[sl] for sl in split_rows(len(rows), 2)]
    with CorePool(2) as pool:
        assert pool.n == 2
        wall, cpu, drawn = pool.run("render", [_work(scene, render_qpos=s) for s in shares])
        assert drawn == 9 * len(VIEWS) and wall > 0 and cpu > 0
        # the very frames of this process's renderer, share by share (one rasterizer thread
        # there, llvmpipe's default here)
        assert pool.digests("render", 2) == [_render_here(scene, s) for s in shares]
        assert len(set(pool.digests("render", 2))) == 2  # the scene moved: the shares differ

        works = [_work(scene, qpos0=s) for s in (rows[:4], rows[4:6])]
        wall, cpu, stepped = pool.run("physics", works)
        assert stepped == (4 + 2) * SUBSTEPS and wall > 0 and cpu > 0
        assert pool.digests("physics", 2) == [_step_here(scene, w) for w in works]
        assert _step_here(scene, works[0]) != hashlib.sha256(
            rows[3].tobytes() + np.zeros(scene.model.nv).tobytes()).hexdigest()  # the state moved

        # fewer shares than processes: only those run
        _, _, drawn = pool.run("render", [_work(scene, render_qpos=rows[:2])])
        assert drawn == 2 * len(VIEWS)


def test_core_processes_draw_the_runs_preset(scene) -> None:
    """With ``preset="lab"`` the processes draw the lab model (room, lights, textures), the
    frames of this process's renderer on that model, not the fast look."""
    from simfail.render.presets import render_model

    rows = _states(scene, 2)
    lab = render_model(scene.model, scene.xml, "lab")
    work = _work(scene, render_qpos=rows)
    work.preset = "lab"
    with CorePool(1) as pool:
        _, _, drawn = pool.run("render", [work])
        assert drawn == 2 * len(VIEWS)
        (digest,) = pool.digests("render", 1)
    assert digest == _render_here(scene, rows, lab) != _render_here(scene, rows)


def test_core_pool_refusals_and_errors(scene) -> None:
    rows = _states(scene, 3)
    with pytest.raises(ValueError, match="physics rows differ"):
        CoreWork(task="pick_place", seed=5, width=SIZE, height=SIZE, views=tuple(VIEWS), substeps=1,
                 render_qpos=rows, qpos0=rows, qvel0=np.zeros((2, scene.model.nv)), ctrl=np.zeros((3, scene.model.nu)))
    with pytest.raises(ValueError, match="2-D"):
        CoreWork(task="pick_place", seed=5, width=SIZE, height=SIZE, views=tuple(VIEWS), substeps=1,
                 render_qpos=rows[0], qpos0=rows, qvel0=rows, ctrl=rows)
    with CorePool(2) as pool:
        with pytest.raises(ValueError, match="render or physics"):
            pool.run("encode", [])
        with pytest.raises(ValueError, match="3 shares for 2 processes"):
            pool.run("render", [_work(scene, render_qpos=rows)] * 3)
        # an error in a process comes back as one line naming it (the traceback kept apart)
        with pytest.raises(BenchCoreError, match="a bench process .one per core. failed: .*no_such_task") as err:
            pool.run("render", [_work(scene, render_qpos=rows[:1]),
                                _work(scene, render_qpos=rows[:1], task="no_such_task")])
        assert "Traceback" in err.value.details and "\n" not in str(err.value)
        # every reply was read: the next run gets its own replies
        _, _, drawn = pool.run("render", [_work(scene, render_qpos=rows[:1]), _work(scene, render_qpos=rows[1:])])
        assert drawn == 3 * len(VIEWS)


def test_a_core_process_that_dies_is_one_clear_error(scene) -> None:
    with CorePool(1) as pool:
        pool._procs[0].kill()
        pool._procs[0].join()
        with pytest.raises(BenchCoreError, match="exited without replying"):
            pool.run("physics", [_work(scene, qpos0=_states(scene, 1))])


def test_a_stalled_core_process_is_one_clear_error(scene, monkeypatch) -> None:
    """A process that does not answer the measured step in time is named as stalled on that
    step (the load before it answered in time), and the pool refuses any further step (the
    late reply would be read as the next step's answer); closing it does not wait it out."""
    import time

    import simfail.bench_cores as bc

    with CorePool(1) as pool:
        pool.run("physics", [_work(scene, qpos0=_states(scene, 1))])  # started and answering
        monkeypatch.setattr(bc, "REPLY_TIMEOUT_S", 1.0)
        # about 200,000 mj_step calls: seconds of work, far beyond the 1 s allowed
        with pytest.raises(BenchCoreError, match="did not reply to 'physics' within 1 s .stalled."):
            pool.run("physics", [_work(scene, qpos0=_states(scene, 70_000))])
        with pytest.raises(BenchCoreError, match="unusable: a bench process stalled on 'physics'"):
            pool.run("physics", [_work(scene, qpos0=_states(scene, 1))])
        with pytest.raises(BenchCoreError, match="unusable"):
            pool.digests("physics", 1)
        proc = pool._procs[0]
        t0 = time.monotonic()
    assert not proc.is_alive() and proc.exitcode is not None  # stopped and joined: no zombie
    assert time.monotonic() - t0 < 5.0  # killed at once, not waited for


def test_one_deadline_for_all_the_replies(scene, monkeypatch) -> None:
    """The stall limit is one deadline for a step's replies, not one per process: two stalled
    processes are found in about the limit, not twice it."""
    import time

    import simfail.bench_cores as bc

    with CorePool(2) as pool:
        pool.run("physics", [_work(scene, qpos0=_states(scene, 1))] * 2)
        monkeypatch.setattr(bc, "REPLY_TIMEOUT_S", 1.0)
        t0 = time.monotonic()
        with pytest.raises(BenchCoreError, match="stalled"):
            pool.run("physics", [_work(scene, qpos0=_states(scene, 70_000))] * 2)
        waited = time.monotonic() - t0
    assert 1.0 <= waited < 1.9


def test_core_processes_ignore_ctrl_c_from_their_start(scene) -> None:
    """Ctrl-C (SIGINT to the whole process group) is the bench's to handle: a process that
    gets it while it is still starting (importing) neither dies nor prints a traceback, and
    this process's own handler is back in place once the processes are started."""
    import os
    import signal
    import time

    before = signal.getsignal(signal.SIGINT)
    with CorePool(1) as pool:
        assert signal.getsignal(signal.SIGINT) is before
        os.kill(pool._procs[0].pid, signal.SIGINT)  # at once: the process is still importing
        time.sleep(0.2)
        os.kill(pool._procs[0].pid, signal.SIGINT)
        _, _, made = pool.run("physics", [_work(scene, qpos0=_states(scene, 2))])
        assert made == 2 * SUBSTEPS and pool._procs[0].is_alive()
