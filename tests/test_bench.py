"""Tests of simfail.bench (structure and consistency only: no timing thresholds)."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from simfail.bench import BenchConfig, BenchResult, BenchRun, bench_table, run_bench
from simfail.config import from_dict
from simfail.core.episode import VIEWS


@pytest.fixture(scope="module")
def result() -> BenchResult:
    cfg = from_dict({"groups": 1, "render": {"width": 64, "height": 64}, "failures": {"names": ["drop"]},
                     "progress": False})
    return run_bench(BenchConfig(generate=cfg, repeats=1))


def test_counts_are_consistent(result: BenchResult) -> None:
    assert len(result.runs) == 1
    run = result.runs[0]
    assert run.groups == 1
    assert run.episodes == 2  # expert + drop
    work = run.episode_work
    assert [w.variant for w in work] == ["expert", "drop"]
    expert, drop = work
    n = result.settings["frames_per_episode"]
    assert expert.length == drop.length == n
    assert expert.onset_frame is None and expert.rendered_frames == n and expert.simulated_frames == n - 1
    # with reuse_prefix the variant is simulated and rendered only after its onset frame
    assert result.settings["reuse_prefix"] is True
    assert 0 <= drop.onset_frame < n - 1
    assert drop.rendered_frames == drop.simulated_frames == n - 1 - drop.onset_frame

    new_frames = sum(w.rendered_frames for w in work)
    assert run.frames_rendered == new_frames * len(VIEWS)
    assert run.ceiling_frames_rendered == run.frames_rendered
    assert run.frames_encoded == run.frames_written  # the encoder alone gets every written frame
    assert run.frames_written == sum(w.length for w in work) * len(VIEWS)
    assert run.substeps >= 1
    simulated = sum(w.simulated_frames for w in work) + run.rejected_seeds * (n - 1)
    assert run.physics_steps == simulated * run.substeps > 0


def test_times_and_ratios(result: BenchResult) -> None:
    run = result.runs[0]
    assert run.ceiling_physics > 0 and run.bound_render > 0 and run.bound_encode > 0 and run.stock_render > 0
    assert run.physics > 0 and run.render > 0 and run.write > 0
    # the main thread's critical path adds up; rendering ran on the render thread beside the
    # physics, encoding + writing on the writer thread beside the next group
    stages = run.physics + run.labels + run.wait + run.finalize + run.other
    assert stages == pytest.approx(run.total, rel=1e-6, abs=1e-6)
    assert run.wait >= 0.0 and run.write > 0.0 and run.frames_wait >= 0.0
    # the writer waited for the last frames before encoding them: never longer than it all took
    assert run.frames_wait <= run.total
    s = result.summary
    for key in ("ratio", "render_ratio", "physics_ratio", "episodes_per_hour", "written_view_frames_per_s",
                "rendered_view_frames_per_s", "bare_rendered_view_frames_per_s", "encoded_view_frames_per_s",
                "speedup_vs_stock"):
        assert math.isfinite(s[key]) and s[key] > 0, key
    assert s["overhead"] == pytest.approx(s["ratio"] - 1.0)
    assert s["ratio"] == pytest.approx(run.total / run.bound)


def test_bound_is_the_slowest_resource_alone_not_a_sum() -> None:
    """The definition (no timings): bound = max(bare render, bare physics, encoder alone); the
    stock serial loop (physics + per-view mujoco.Renderer + the encoder) is reported, never divided by."""
    run = BenchRun(total=12.0, ceiling_physics=4.0, bound_render=10.0, bound_encode=3.0, stock_encode=3.0,
                   stock_render=11.0, episodes=6)
    assert run.bound == 10.0 and run.bound_resource == "render"
    m = run.metrics()
    assert m["bound_s"] == 10.0 and m["ratio"] == pytest.approx(1.2)
    assert m["stock_serial_s"] == 18.0 and m["speedup_vs_stock"] == pytest.approx(18.0 / 12.0)
    # a pipeline can never beat its bound by overlapping resources: the sum is not the bound
    assert run.bound < run.ceiling_physics + run.bound_render
    encode_bound = BenchRun(total=9.0, ceiling_physics=2.0, bound_render=5.0, bound_encode=8.0)
    assert encode_bound.bound_resource == "encode" and encode_bound.metrics()["ratio"] == pytest.approx(9.0 / 8.0)
    physics_bound = BenchRun(total=9.0, ceiling_physics=7.0, bound_render=5.0, bound_encode=1.0)
    assert physics_bound.bound_resource == "physics"


def test_render_bound_is_the_fastest_renderer_alone() -> None:
    """The render part of the bound is the faster of the pipeline's renderer and the stock
    per-view mujoco.Renderer on the same view-frames (fake timing records, no timing)."""
    slow_ours = BenchRun(total=30.0, ceiling_physics=5.0, bound_render=22.7, stock_render=17.5, bound_encode=6.0,
                         cpu_render=29.0, cpu_stock_render=20.0, cpu_physics=5.0, cpu_encode=10.0, cpus=2)
    assert slow_ours.fastest_renderer == "stock" and slow_ours.render_alone == 17.5
    assert slow_ours.bound == 17.5 and slow_ours.bound_resource == "render"
    m = slow_ours.metrics()
    assert m["bare_render_s"] == 17.5 and m["pipeline_renderer_alone_s"] == 22.7 and m["stock_render_s"] == 17.5
    assert m["ratio"] == pytest.approx(30.0 / 17.5)  # not 30 / 22.7: a slow renderer cannot flatter
    assert m["cpu_render_s"] == 20.0 and m["cpu_floor_s"] == pytest.approx((20.0 + 5.0 + 10.0) / 2)
    assert slow_ours.to_dict()["bound_renderer"] == "stock"
    fast_ours = BenchRun(total=30.0, ceiling_physics=5.0, bound_render=20.0, stock_render=21.0, bound_encode=6.0,
                         cpu_render=25.0, cpu_stock_render=20.0)
    assert fast_ours.fastest_renderer == "pipeline" and fast_ours.bound == 20.0 and fast_ours.cpu_render_alone == 25.0
    # a renderer that was not measured (0 s) is never the fastest
    unmeasured = BenchRun(total=9.0, bound_render=5.0, stock_render=0.0)
    assert unmeasured.fastest_renderer == "pipeline" and unmeasured.bound == 5.0


def test_render_and_physics_one_process_per_core_join_the_bound() -> None:
    """One llvmpipe process leaves cores idle: rendering the same view-frames in one process
    per core (one rasterizer thread each) is a candidate of the render bound, and splitting
    the steps over the cores one of the physics bound (fake timing records, no timing)."""
    run = BenchRun(total=30.0, physics=10.7, ceiling_physics=5.4, bound_render=19.9, stock_render=21.3, bound_encode=6.5,
                   render_per_core=14.1, physics_per_core=2.8, cpu_render=27.6, cpu_stock_render=28.0,
                   cpu_render_per_core=27.6, cpu_physics=5.2, cpu_physics_per_core=5.4, cpu_encode=11.2,
                   cpus=2, core_processes=2)
    assert run.fastest_renderer == "per_core" and run.render_alone == 14.1
    assert run.bound == 14.1 and run.bound_resource == "render"
    assert run.physics_alone == 2.8 and run.cpu_physics_alone == 5.4
    m = run.metrics()
    assert m["ratio"] == pytest.approx(30.0 / 14.1)  # not 30 / 19.9: the per-core rate is the machine's
    # the floor takes the least CPU seconds measured for each resource, whichever way
    assert m["cpu_render_min_s"] == 27.6 and m["cpu_physics_min_s"] == 5.2
    assert m["cpu_floor_s"] == pytest.approx((27.6 + 5.2 + 11.2) / 2)
    # the physics+IK stage is still compared with one mj_step thread (it runs on one thread)
    assert m["bare_physics_s"] == 5.4 and m["physics_ratio"] == pytest.approx(10.7 / 5.4)
    # not measured (one core): the one-process ways stay
    one_core = BenchRun(total=30.0, ceiling_physics=5.4, bound_render=19.9, stock_render=21.3, bound_encode=6.5)
    assert one_core.fastest_renderer == "pipeline" and one_core.physics_alone == 5.4
    # a slower per-core physics (process overhead on tiny work) is not chosen
    assert BenchRun(ceiling_physics=0.3, physics_per_core=0.4).physics_alone == 0.3


def test_table_marks_the_renderer_the_bound_uses(result: BenchResult) -> None:
    run = result.runs[0]
    assert run.bound_render > 0 and run.stock_render > 0 and run.cpu_stock_render > 0
    lines = bench_table(result).splitlines()
    rows = {"pipeline": next(ln for ln in lines if ln.startswith("bare render: MultiViewRenderer, 1 process")),
            "stock": next(ln for ln in lines if ln.startswith("bare render: stock"))}
    if run.core_processes:
        rows["per_core"] = next(ln for ln in lines if ln.startswith(
            f"bare render: MultiViewRenderer, {run.core_processes} processes"))
    assert ["<- " in ln for ln in rows.values()].count(True) == 1
    assert "<- " in rows[run.fastest_renderer]


def test_per_core_measurements_do_the_pipelines_work(result: BenchResult) -> None:
    """With more than one usable core the bench measured the render and the physics in one
    process per core; the processes drew every view-frame and made every mj_step call of the
    pipeline (the bench checks the counts and raises otherwise)."""
    run = result.runs[0]
    if run.cpus < 2:
        pytest.skip("one usable core: no per-core measurement")
    assert run.core_processes == run.cpus
    assert run.render_per_core > 0 and run.cpu_render_per_core > 0
    # every share's frames were compared with the pipeline renderer's, byte for byte
    assert run.per_core_shares == run.core_processes
    assert f"{run.per_core_shares} of {run.per_core_shares} shares byte-identical" in bench_table(result)
    assert run.physics_per_core > 0 and run.cpu_physics_per_core > 0


def test_visibility_pass_is_measured_on_its_own_line(result: BenchResult) -> None:
    run = result.runs[0]
    # the drop variant has an event: view-frames from its onset on were segmented
    assert run.visibility > 0 and run.frames_segmented > 0
    assert result.summary["visibility_s"] == pytest.approx(run.visibility)
    assert result.settings["visibility"] is True
    line = next(ln for ln in bench_table(result).splitlines() if ln.startswith("visibility (thread)"))
    assert f"{run.frames_segmented} view-frames segmented at 64x64" in line


def test_machine_and_json(result: BenchResult) -> None:
    m = result.machine
    assert m["cpu_count"] >= 1 and m["mujoco"] and m["MUJOCO_GL"]
    d = json.loads(json.dumps(result.to_dict()))
    assert d["counts"]["episodes"] == 2
    assert set(d["targets"]) == {"ratio", "episodes_per_hour"}
    assert d["runs"][0]["metrics"]["ratio"] > 0


def test_table_has_headlines(result: BenchResult) -> None:
    table = bench_table(result)
    for stage in ("physics + IK", "rendering (thread)", "labels", "waiting for writer", "encode + write", "total"):
        assert stage in table
    assert "episodes/hour:" in table and "target >= 2000" in table
    assert "frames/s:" in table
    assert "ratio vs bound (slowest resource alone:" in table and "target <= 1.15" in table
    assert "rendering vs bare render (fastest renderer):" in table
    assert "<- bound" in table and "stock serial loop" in table and "encoder alone" in table
    assert "MUJOCO_GL=" in table


def test_table_lists_each_repeats_ratio(result: BenchResult) -> None:
    two = BenchResult(settings=result.settings, machine=result.machine, runs=[result.runs[0], result.runs[0]])
    r = result.runs[0].metrics()["ratio"]
    assert f"ratio per repeat: {r:.2f}, {r:.2f}" in bench_table(two)
    assert "ratio per repeat" not in bench_table(result)


def test_encoder_alone_fills_a_many_core_machine() -> None:
    """One x264 process per view and part: every core gets a process, and fewer than one set
    of views is left over."""
    from simfail.bench import encoder_parts

    for cores in range(1, 65):
        processes = encoder_parts(cores) * len(VIEWS)
        assert processes >= cores and (processes - len(VIEWS) < cores or encoder_parts(cores) == 1)


def test_encoder_alone_in_parts_encodes_every_frame(tmp_path) -> None:
    import av

    from simfail.bench import _encode_alone

    cfg = from_dict({"render": {"width": 64, "height": 64}})
    rng = np.random.default_rng(0)
    episodes = [{v: rng.integers(0, 255, (n, 64, 64, 3), dtype=np.uint8) for v in VIEWS} for n in (3, 4, 5)]
    assert _encode_alone(cfg, episodes, str(tmp_path), parts=2) > 0
    files = sorted(p.name for p in tmp_path.iterdir())
    assert files == sorted(f"{v}-{k}.mp4" for v in VIEWS for k in (0, 1))
    for v in VIEWS:
        frames = 0
        for k in (0, 1):
            with av.open(str(tmp_path / f"{v}-{k}.mp4")) as c:
                frames += sum(1 for _ in c.decode(video=0))
        assert frames == 3 + 4 + 5


def test_stock_loop_encodes_as_a_user_would() -> None:
    """On a many-core machine the encoder alone runs in parts (the bound); the stock serial
    loop keeps one set of per-view encoders."""
    many = BenchRun(total=10.0, ceiling_physics=2.0, stock_render=5.0, bound_render=4.0, bound_encode=1.0,
                    stock_encode=3.0)
    assert many.stock_serial == 2.0 + 5.0 + 3.0 and many.bound == 4.0


def test_bound_renders_the_runs_preset_and_backend(monkeypatch) -> None:
    """The resources alone draw the model the pipeline draws (``render.preset``) with its
    backend, not the fast look with OpenGL whatever the run: the in-process renderers get the
    lab model, the per-core processes get the preset (tests/test_bench_cores.py checks that
    they draw it)."""
    import mujoco

    import simfail.bench as bench
    from simfail.core.builder import build_scene
    from simfail.core.scene import StageConfig
    from simfail.core.task import get_task
    from simfail.render.frame_pool import FramePool
    from simfail.render.presets import ROOM_BODY

    seen = []
    for name, make in list(bench._RENDERERS.items()):
        def wrapped(model, w, h, backend="egl", _make=make, _name=name):
            has_room = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, ROOM_BODY) >= 0
            seen.append((_name, has_room, backend))
            return _make(model, w, h, backend)
        monkeypatch.setitem(bench._RENDERERS, name, wrapped)

    class RecordingCores:  # stands in for the per-core processes: records what they are given
        n = 2

        def __init__(self):
            self.shares = []

        def run(self, kind, shares):
            self.shares += shares
            done = sum(len(s.render_qpos) * len(s.views) if kind == "render" else len(s.ctrl) * s.substeps
                       for s in shares)
            return 1.0, 1.0, done

        def digests(self, kind, processes):  # drew nothing: every share differs from ours
            return ["not drawn"] * processes

    cfg = from_dict({"render": {"width": 64, "height": 64, "preset": "lab"}, "progress": False})
    scene = build_scene(get_task("pick_place"), 3, StageConfig(width=64, height=64))
    q = np.tile(scene.qpos0, (3, 1))
    q[:, 0] += np.array([0.0, 0.1, 0.2])
    work = bench._CeilingWork(seed=3, qpos0=q[:2], qvel0=np.zeros((2, scene.model.nv)),
                              actions=np.zeros((2, 8)), render_qpos=q, episodes=[(3, 0)])
    cores = RecordingCores()
    a = bench._alone(get_task("pick_place"), cfg, work, FramePool(), cores)
    assert sorted(n for n, _, _ in seen) == ["pipeline", "stock"]
    assert all(has_room and backend == "egl" for _, has_room, backend in seen)  # the lab room is drawn
    assert {s.preset for s in cores.shares} == {"lab"}
    assert a.render > 0 and a.stock_render > 0 and a.encode > 0 and a.view_frames == 3 * len(VIEWS)
    assert a.per_core_shares == 2 and a.per_core_shares_differing == 2  # the comparison ran and is told


def test_warp_backend_skips_the_per_core_render_and_draws_with_warp(monkeypatch) -> None:
    """With ``render.backend=warp`` the in-process pipeline renderer is the warp batch renderer
    and no per-core (llvmpipe) render way is measured; the per-core physics still is."""
    pytest.importorskip("mujoco_warp")
    import simfail.bench as bench
    from simfail.core.builder import build_scene
    from simfail.core.scene import StageConfig
    from simfail.core.task import get_task
    from simfail.render.frame_pool import FramePool

    made = []
    make = bench._RENDERERS["pipeline"]

    def wrapped(model, w, h, backend="egl"):
        r = make(model, w, h, backend)
        made.append((backend, type(r).__name__))
        return r
    monkeypatch.setitem(bench._RENDERERS, "pipeline", wrapped)

    class RecordingCores:
        n = 2

        def __init__(self):
            self.kinds = []

        def run(self, kind, shares):
            self.kinds.append(kind)
            return 1.0, 1.0, sum(len(s.ctrl) * s.substeps for s in shares)

    cfg = from_dict({"render": {"width": 64, "height": 64, "backend": "warp"}, "progress": False})
    scene = build_scene(get_task("pick_place"), 3, StageConfig(width=64, height=64))
    q = np.tile(scene.qpos0, (2, 1))
    work = bench._CeilingWork(seed=3, qpos0=q[:1], qvel0=np.zeros((1, scene.model.nv)), actions=np.zeros((1, 8)),
                              render_qpos=q, episodes=[(2, 0)])
    cores = RecordingCores()
    a = bench._alone(get_task("pick_place"), cfg, work, FramePool(), cores)
    assert made == [("warp", "WarpBatchRenderer")]
    assert cores.kinds == ["physics"] and a.render_per_core == 0 and a.per_core_shares == 0
    assert a.render > 0 and a.encoder_parts == 1


def test_per_core_frames_that_differ_stop_the_bench() -> None:
    """A per-core way that drew other images than the pipeline's renderer cannot bound it:
    the group's measurements are refused with one error, not added to the run."""
    import simfail.bench as bench
    from simfail.bench_cores import BenchCoreError

    run = BenchRun()
    same = bench._Alone(render=1.0, render_per_core=0.5, per_core_shares=2, per_core_shares_differing=0)
    bench._add_alone(run, same, 0, 2, lambda msg: None)
    assert run.per_core_shares == 2 and run.render_per_core == 0.5
    other = bench._Alone(render=1.0, render_per_core=0.4, per_core_shares=2, per_core_shares_differing=1)
    with pytest.raises(BenchCoreError, match="1 of 2 per-core render shares of group 2 drew other images") as err:
        bench._add_alone(run, other, 1, 2, lambda msg: None)
    assert "\n" not in str(err.value)
    assert run.render_per_core == 0.5  # nothing of the refused group was added


def test_table_shows_only_the_render_ways_measured(result: BenchResult) -> None:
    """With ``render.backend=warp`` the per-core processes measure the physics only: the table
    has no per-core render row nor rate, and names the in-process renderer after the backend."""
    from dataclasses import replace

    run = result.runs[0]
    if not run.core_processes:
        pytest.skip("one usable core: no per-core measurement")
    warp = BenchResult(settings={**result.settings, "render_backend": "warp"}, machine=result.machine,
                       runs=[replace(run, render_per_core=0.0, cpu_render_per_core=0.0, per_core_shares=0)])
    table = bench_table(warp)
    assert "bare render: warp batch renderer, 1 process" in table
    assert f"bare render: MultiViewRenderer, {run.core_processes} processes" not in table
    assert "one process per core:" not in table and "nan" not in table
    assert f"bare physics (mj_step), {run.core_processes} procs" in table  # still measured
    egl = bench_table(result)
    assert "bare render: MultiViewRenderer, 1 process" in egl and "one process per core:" in egl
    assert "(egl, preset fast)" in egl and "(warp, preset fast)" in table


def test_a_failing_core_process_is_one_error_line_and_leaves_no_process(monkeypatch, capsys) -> None:
    """A per-core process that fails (here: handed a task it does not know, so it raises while
    loading its share) ends ``simfail bench`` with one ``simfail: error:`` line, and every
    per-core process is stopped."""
    import multiprocessing
    import os
    from dataclasses import replace

    from simfail.bench_cores import CorePool
    from simfail.cli import main

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("one usable core: no per-core processes")
    real = CorePool.run

    def broken_share(self, kind, shares):
        return real(self, kind, [replace(s, task="no_such_task") for s in shares])

    monkeypatch.setattr(CorePool, "run", broken_share)
    rc = main(["bench", "groups=1", "render.width=64", "render.height=64", "failures=[drop]", "progress=false"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1
    assert err[0].startswith("simfail: error: a bench process (one per core) failed: ") and "no_such_task" in err[0]
    assert not [p for p in multiprocessing.active_children() if p.name == "simfail-bench-core"]


def test_ctrl_c_in_the_bench_says_interrupted_without_a_resume_hint(monkeypatch, capsys) -> None:
    """The bench keeps nothing (temporary folders), so Ctrl-C does not tell the user to
    resume; generate's Ctrl-C does."""
    import simfail.dataset_commands as dc
    from simfail.cli import _interrupted_message, main

    def interrupted(cfg):
        raise KeyboardInterrupt

    monkeypatch.setattr(dc, "run_generate_bench", interrupted)
    assert main(["bench", "groups=1"]) == 130
    assert capsys.readouterr().err.strip() == "simfail: interrupted"
    assert _interrupted_message("generate", []) == "simfail: interrupted; rerun with resume=true to continue"
    assert _interrupted_message("benchmark", ["build"]).endswith("resume=true to continue")


@pytest.mark.parametrize("arg", ["out=/tmp/elsewhere", "resume=true", "overwrite=true"])
def test_bench_refuses_settings_of_a_kept_dataset(arg, capsys) -> None:
    from simfail.cli import main

    assert main(["bench", arg]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"bench writes into temporary folders and keeps no dataset: {arg} does not apply" in err[0]


@pytest.mark.parametrize("path", ["/proc/bench.json", "/no/such/folder/bench.json", "/tmp"])
def test_bench_refuses_a_json_path_it_cannot_write_before_measuring(path, capsys) -> None:
    """Checked by a real write before any work (root passes ``os.access`` on /proc)."""
    from simfail.cli import main

    assert main(["bench", f"json={path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: json: ")
