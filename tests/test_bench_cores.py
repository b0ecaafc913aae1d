"""Tests of simfail.bench_cores: the bench's per-core processes do exactly the work handed to them."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.bench_cores import BenchCoreError, CorePool, CoreWork, split_rows
from simfail.core.builder import build_scene
from simfail.core.episode import VIEWS
from simfail.core.scene import StageConfig
from simfail.core.task import get_task


@pytest.mark.parametrize("n,parts", [(0, 2), (1, 2), (7, 3), (557, 2), (10, 16)])
def test_split_rows_covers_every_row_once_in_balanced_slices(n: int, parts: int) -> None:
    slices = split_rows(n, parts)
    assert len(slices) == parts
    rows = [i for sl in slices for i in range(n)[sl]]
    assert rows == list(range(n))
    sizes = [len(range(n)[sl]) for sl in slices]
    assert max(sizes) - min(sizes) <= 1


def _work(seed: int, rows: np.ndarray, steps: int, nq: int, nv: int, nu: int, task: str = "pick_place") -> CoreWork:
    q = np.tile(rows[:1], (steps, 1)) if steps else np.empty((0, nq))
    return CoreWork(task=task, seed=seed, width=32, height=32, views=tuple(VIEWS), substeps=3,
                    render_qpos=rows, qpos0=q, qvel0=np.zeros((steps, nv)), ctrl=np.zeros((steps, nu)))


def test_core_pool_renders_and_steps_every_share_and_reports_errors() -> None:
    scene = build_scene(get_task("pick_place"), 5, StageConfig(width=32, height=32))
    m = scene.model
    rows = np.tile(scene.qpos0, (9, 1))
    rows[:, 0] += np.linspace(0.0, 0.2, 9)  # the arm moves
    shares = [rows[sl] for sl in split_rows(len(rows), 2)]
    with CorePool(2) as pool:
        assert pool.n == 2
        wall, cpu, drawn = pool.run("render", [_work(5, s, 0, m.nq, m.nv, m.nu) for s in shares])
        assert drawn == 9 * len(VIEWS) and wall > 0 and cpu > 0
        wall, cpu, stepped = pool.run("physics", [_work(5, s[:0], k, m.nq, m.nv, m.nu) for s, k in zip(shares, (4, 2))])
        assert stepped == (4 + 2) * 3 and wall > 0
        # fewer shares than processes: only those run
        _, _, drawn = pool.run("render", [_work(5, rows[:2], 0, m.nq, m.nv, m.nu)])
        assert drawn == 2 * len(VIEWS)
        with pytest.raises(ValueError, match="render or physics"):
            pool.run("encode", [])
        # an error in a process comes back as one exception naming it; the pool still closes
        with pytest.raises(BenchCoreError, match="a bench process .one per core. failed: .*no_such_task") as err:
            pool.run("render", [_work(5, rows[:1], 0, m.nq, m.nv, m.nu),
                                _work(5, rows[:1], 0, m.nq, m.nv, m.nu, task="no_such_task")])
        assert "Traceback" in err.value.details and "\n" not in str(err.value)
        # every reply was read: the next run gets its own replies
        _, _, drawn = pool.run("render", [_work(5, s, 0, m.nq, m.nv, m.nu) for s in shares])
        assert drawn == 9 * len(VIEWS)


def test_a_core_process_that_dies_is_one_clear_error() -> None:
    with CorePool(1) as pool:
        pool._procs[0].kill()
        pool._procs[0].join()
        with pytest.raises(BenchCoreError, match="exited without replying"):
            pool.run("physics", [_work(5, np.empty((0, 1)), 0, 1, 1, 1)])
