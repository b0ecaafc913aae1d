"""``simfail bench``: episodes/hour and the time split, measured against an honest bound.

One benchmark run does two things on the same machine (in this process, and for the per-core
measurements in one helper process per core):

1. **Pipeline.** Generate ``groups`` counterfactual groups into a temporary directory exactly as
   ``simfail generate`` does (:func:`~simfail.generate.generate_group` with deferred frames,
   then :meth:`~simfail.dataset.writer.DatasetWriter.write_group` and ``finalize`` after every
   group on the writer thread), timing each stage: physics + IK and labels on the main thread,
   rendering on the render thread (overlapped with the physics), encode + write on the writer
   thread (overlapped with the next group), and how long the main thread waited.
2. **Each required resource alone, at full machine use**, on the same work (rebuilt scenes,
   the episodes' own states; nothing else running in the process):

   * *bare render*: the FASTEST of three ways to draw exactly the view-frames the pipeline
     rendered (with the run's ``render.backend`` and ``render.preset``), with the scene
     *moving* (``qpos`` per frame from ``sim.qpos``; a static scene renders several times
     faster on a CPU and would flatter the bound). In this process: the pipeline's own
     renderer (``egl``: :class:`MultiViewRenderer`, all views of a frame in one pass;
     ``warp``: the warp batch renderer) and the stock
     ``mujoco.Renderer`` (one render + readback per view), both into per-episode frame
     arrays. With ``egl``, also the pipeline's renderer in one process per core with one
     llvmpipe thread each, all at once (:mod:`simfail.bench_cores`), its frames compared
     with the pipeline renderer's by SHA-256 every group (a difference stops the bench: a
     bound must draw the same images). The order of the three
     rotates from group to group. One llvmpipe process keeps only about 1.4 of 2 cores busy
     (its rasterizer threads wait for each other every frame), so without the per-core way
     the "bound" would not be the machine's full render rate and would flatter the pipeline
     by about 1.4x.
   * *bare physics*: ``mj_step`` for as many physics steps as the pipeline simulated (frames
     simulated x substeps; with ``reuse_prefix`` a variant only after its onset frame; a
     rejected expert seed costs one expert rollout), the faster of one thread and the steps
     split over one process per core.
   * *encoder alone*: the written view-frames (prefix copies included) through the same x264
     settings, the views encoded concurrently as the writer does (one single-threaded x264
     per view), nothing else running; on a machine with more cores than views the group's
     episodes are split into parts encoded at once (:func:`encoder_parts`), so the encoder
     alone fills the machine there too (the stock loop keeps one set of per-view encoders).

   The **bound** is the slowest of these: a pipeline that needs all three can never finish
   before its slowest resource would alone. ``ratio = pipeline seconds / bound seconds``
   (``overhead = ratio - 1``) is what the pipeline loses to running them together. Where
   the resources share the same cores (a CPU machine) the **CPU-time floor** (the least CPU
   seconds measured for each, added, over the cores) is the tighter limit and is reported
   beside it.

The **stock loop** (physics, then ``mujoco.Renderer`` once per view, then the encoder, one after
the other: the loop a user would write to get the same videos) is measured too and reported as
what it is, a comparison, not a bound (the old "raw ceiling" summed physics and rendering
although the pipeline overlaps them, so the pipeline could beat it). With ``repeats > 1`` every
metric is the median over repeats.
"""

from __future__ import annotations

import math
import os
import platform
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import mujoco
import numpy as np

from simfail.bench_cores import BenchCoreError, CorePool, CoreWork, split_rows
from simfail.config import GenerateConfig
from simfail.core.builder import build_scene, make_core
from simfail.core.episode import VIEWS
from simfail.core.rollout import frame_count
from simfail.core.task import get_task
from simfail.errors import ConfigError
from simfail.labels.visibility import SEG_SIZE
from simfail.render.frame_pool import FramePool

#: Targets the headline lines are checked against (ratio: pipeline over the bound).
TARGET_RATIO = 1.15
TARGET_EPISODES_PER_HOUR = 2000.0


def fastest_way(seconds: dict[str, float], default: str) -> str:
    """The key of the least positive time in ``seconds`` (0: not measured), else ``default``."""
    measured = {k: v for k, v in seconds.items() if v > 0}
    return min(measured, key=measured.get) if measured else default


def least_cpu(ways: tuple[tuple[float, float], ...], default: float) -> float:
    """The least CPU seconds among ``(wall s, CPU s)`` ways that were measured, else ``default``."""
    cpus = [c for t, c in ways if t > 0 and c > 0]
    return min(cpus) if cpus else default


@dataclass
class BenchConfig:
    """What to benchmark: the generation config (``out`` is ignored) and how often to repeat."""

    generate: GenerateConfig
    repeats: int = 1
    #: run the camera visibility pass (``visibility=false`` measures the pipeline without it)
    visibility: bool = True


@dataclass
class EpisodeWork:
    """What the pipeline computed for one episode (frame counts, not times)."""

    group_id: int
    variant: str
    length: int
    onset_frame: int | None
    #: frames the pipeline stepped the physics for (frame 0 is the reset state)
    simulated_frames: int
    #: frames the pipeline rendered (the rest were copied from the expert)
    rendered_frames: int


@dataclass
class BenchRun:
    """Raw measurements of one repeat. Times in seconds, frame counts in view-frames."""

    groups: int = 0
    episodes: int = 0
    rejected_seeds: int = 0
    # pipeline stages
    physics: float = 0.0
    #: the render threads' own time, overlapped with the physics: not part of ``total``
    render: float = 0.0
    labels: float = 0.0
    #: the visibility pass (segmentation + masks) on the render threads: not part of ``total``
    visibility: float = 0.0
    #: time the writer thread waited for a group's last frames (part of ``write``'s wall span)
    frames_wait: float = 0.0
    #: encode + write (+ per-group meta) of groups, on the writer thread, overlapped with the
    #: next group; not part of ``total`` except through ``wait``
    write: float = 0.0
    #: the final meta write, on the main thread
    finalize: float = 0.0
    #: time the main thread waited for the writer thread (the part of writing not overlapped)
    wait: float = 0.0
    other: float = 0.0
    total: float = 0.0
    frames_rendered: int = 0
    frames_written: int = 0
    #: view-frames the visibility pass segmented (at its reduced size)
    frames_segmented: int = 0
    # each resource alone (the bound) and the stock serial loop
    substeps: int = 0
    physics_steps: int = 0
    #: bare mj_step loop for the pipeline's physics steps
    ceiling_physics: float = 0.0
    #: bare render loop with the pipeline's renderer for the view-frames it rendered
    bound_render: float = 0.0
    #: x264 alone on the written view-frames (in parts on a many-core machine: ``encoder_parts``)
    bound_encode: float = 0.0
    #: x264 alone as the stock loop runs it, one set of per-view processes (0: not measured,
    #: then ``bound_encode``, which is the same where ``encoder_parts`` is 1)
    stock_encode: float = 0.0
    #: mujoco.Renderer, one update + render per view and frame, into the same episode frame
    #: arrays (the stock loop's rendering; also a candidate for the render bound)
    stock_render: float = 0.0
    #: CPU seconds each resource used alone (render and physics: this process; encode: ffmpeg)
    cpu_render: float = 0.0
    cpu_stock_render: float = 0.0
    cpu_physics: float = 0.0
    cpu_encode: float = 0.0
    #: CPU seconds the pipeline used (this process's threads and its ffmpeg encoders)
    cpu_pipeline: float = 0.0
    #: the same view-frames drawn by one process per core, one rasterizer thread each, all at
    #: once (:mod:`simfail.bench_cores`; 0: not measured, e.g. on one core)
    render_per_core: float = 0.0
    cpu_render_per_core: float = 0.0
    #: the same physics steps split over one process per core
    physics_per_core: float = 0.0
    cpu_physics_per_core: float = 0.0
    #: processes of the per-core measurements (0: none)
    core_processes: int = 0
    #: per-core render shares compared with the pipeline's renderer, byte for byte (all equal:
    #: a difference stops the bench, see :func:`_add_alone`)
    per_core_shares: int = 0
    #: episode parts the encoder alone encoded at once, the most in any group (x264 processes:
    #: parts x views)
    encoder_parts: int = 1
    #: CPUs the process may use (for the CPU-time floor)
    cpus: int = 1
    ceiling_frames_rendered: int = 0
    frames_encoded: int = 0
    episode_work: list[EpisodeWork] = field(default_factory=list)

    def renderers_alone(self) -> dict[str, float]:
        """Seconds each measured way of rendering took alone for the pipeline's view-frames (0:
        not measured): the pipeline's renderer in this process, the stock per-view
        ``mujoco.Renderer`` in this process, and the pipeline's renderer in one process per core."""
        return {"pipeline": self.bound_render, "stock": self.stock_render, "per_core": self.render_per_core}

    @property
    def fastest_renderer(self) -> str:
        """The renderer the bound uses: the fastest one measured alone, so that a slow renderer
        in the pipeline cannot make the bound (and the ratio) look better."""
        return fastest_way(self.renderers_alone(), "pipeline")

    @property
    def render_alone(self) -> float:
        """The bare render loop of the bound: the fastest renderer's seconds alone."""
        return self.renderers_alone()[self.fastest_renderer]

    @property
    def cpu_render_alone(self) -> float:
        """CPU seconds of the bound's renderer alone."""
        return {"pipeline": self.cpu_render, "stock": self.cpu_stock_render,
                "per_core": self.cpu_render_per_core}[self.fastest_renderer]

    @property
    def physics_way(self) -> str:
        """The bound's physics: ``one`` thread or ``per_core`` (the faster one measured)."""
        return fastest_way({"one": self.ceiling_physics, "per_core": self.physics_per_core}, "one")

    @property
    def physics_alone(self) -> float:
        """The bare physics of the bound: the faster of one thread and one process per core."""
        return self.physics_per_core if self.physics_way == "per_core" else self.ceiling_physics

    @property
    def cpu_physics_alone(self) -> float:
        """CPU seconds of the bound's physics."""
        return self.cpu_physics_per_core if self.physics_way == "per_core" else self.cpu_physics

    def resources(self) -> dict[str, float]:
        """Seconds each required resource took alone, at full machine use (render and physics:
        the fastest way measured for this work)."""
        return {"render": self.render_alone, "physics": self.physics_alone, "encode": self.bound_encode}

    @property
    def bound(self) -> float:
        """The pipeline's lower bound: the slowest required resource alone."""
        return max(self.resources().values())

    @property
    def bound_resource(self) -> str:
        r = self.resources()
        return max(r, key=r.get)

    @property
    def cpu_render_min(self) -> float:
        """The least CPU seconds any measured way of rendering took for these view-frames."""
        return least_cpu(((self.bound_render, self.cpu_render), (self.stock_render, self.cpu_stock_render),
                          (self.render_per_core, self.cpu_render_per_core)), self.cpu_render)

    @property
    def cpu_physics_min(self) -> float:
        """The least CPU seconds any measured way of stepping the physics took."""
        return least_cpu(((self.ceiling_physics, self.cpu_physics),
                          (self.physics_per_core, self.cpu_physics_per_core)), self.cpu_physics)

    @property
    def cpu_floor(self) -> float:
        """Seconds the three resources' CPU time needs on ``cpus`` cores if they share them
        perfectly: the least CPU seconds measured for each (any way), added, over the cores
        (informational: on a machine where they compete for the same cores this, not
        :attr:`bound`, is what overlapping them cannot beat)."""
        return (self.cpu_render_min + self.cpu_physics_min + self.cpu_encode) / max(1, self.cpus)

    @property
    def stock_serial(self) -> float:
        """The loop a user would write to make the same videos, one step after the other (not
        a bound): bare physics, then ``mujoco.Renderer`` per view, then the encoder, each
        measured alone. Before 2026-12-06 it left the encoder out, so a pipeline that also
        encodes was compared with a loop that wrote no video."""
        return self.ceiling_physics + self.stock_render + self.stock_encode

    def metrics(self) -> dict[str, float]:
        """Derived rates and ratios of this repeat."""

        def div(a: float, b: float) -> float:
            return a / b if b > 0 else math.nan

        ratio = div(self.total, self.bound)
        return {
            "total_s": self.total,
            "physics_s": self.physics,
            "render_s": self.render,
            "labels_s": self.labels,
            "visibility_s": self.visibility,
            "write_s": self.write,
            "frames_wait_s": self.frames_wait,
            "wait_s": self.wait,
            "finalize_s": self.finalize,
            "other_s": self.other,
            "bare_physics_s": self.ceiling_physics,
            "physics_alone_s": self.physics_alone,
            "physics_per_core_s": self.physics_per_core,
            "cpu_physics_per_core_s": self.cpu_physics_per_core,
            "render_per_core_s": self.render_per_core,
            "cpu_render_per_core_s": self.cpu_render_per_core,
            "bare_render_s": self.render_alone,
            "pipeline_renderer_alone_s": self.bound_render,
            "encode_alone_s": self.bound_encode,
            "bound_s": self.bound,
            "cpu_render_s": self.cpu_render_alone,
            "cpu_pipeline_renderer_s": self.cpu_render,
            "cpu_stock_render_s": self.cpu_stock_render,
            "cpu_physics_s": self.cpu_physics,
            "cpu_physics_alone_s": self.cpu_physics_alone,
            "cpu_encode_s": self.cpu_encode,
            "cpu_render_min_s": self.cpu_render_min,
            "cpu_physics_min_s": self.cpu_physics_min,
            "stock_encode_s": self.stock_encode,
            "cpu_floor_s": self.cpu_floor,
            "ratio_vs_cpu_floor": div(self.total, self.cpu_floor),
            "cpu_pipeline_s": self.cpu_pipeline,
            "pipeline_cores_busy": div(self.cpu_pipeline, self.total),
            "stock_render_s": self.stock_render,
            "stock_serial_s": self.stock_serial,
            "episodes_per_hour": div(self.episodes * 3600.0, self.total),
            "written_view_frames_per_s": div(self.frames_written, self.total),
            "rendered_view_frames_per_s": div(self.frames_rendered, self.render),
            "bare_rendered_view_frames_per_s": div(self.ceiling_frames_rendered, self.render_alone),
            "pipeline_renderer_view_frames_per_s": div(self.ceiling_frames_rendered, self.bound_render),
            "stock_rendered_view_frames_per_s": div(self.ceiling_frames_rendered, self.stock_render),
            "per_core_rendered_view_frames_per_s": div(self.ceiling_frames_rendered, self.render_per_core),
            "encoded_view_frames_per_s": div(self.frames_encoded, self.bound_encode),
            "physics_steps_per_s": div(self.physics_steps, self.physics),
            "bare_physics_steps_per_s": div(self.physics_steps, self.ceiling_physics),
            "ratio": ratio,
            "overhead": ratio - 1.0,
            "speedup_vs_stock": div(self.stock_serial, self.total),
            "physics_ratio": div(self.physics, self.ceiling_physics),
            "render_ratio": div(self.render, self.render_alone),
            "render_ratio_own_renderer": div(self.render, self.bound_render),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["bound"] = self.bound
        d["bound_resource"] = self.bound_resource
        d["bound_renderer"] = self.fastest_renderer
        d["stock_serial"] = self.stock_serial
        d["metrics"] = self.metrics()
        return d


@dataclass
class BenchResult:
    """All repeats, their medians, the settings and the machine they ran on."""

    settings: dict[str, Any]
    machine: dict[str, Any]
    runs: list[BenchRun]

    @property
    def summary(self) -> dict[str, float]:
        """Median over the repeats of every metric of :meth:`BenchRun.metrics`."""
        per_run = [r.metrics() for r in self.runs]
        return {k: float(statistics.median(m[k] for m in per_run)) for k in per_run[0]}

    @property
    def counts(self) -> dict[str, int]:
        """Work counts (identical across repeats: generation is deterministic)."""
        r = self.runs[0]
        return {k: getattr(r, k) for k in ("groups", "episodes", "rejected_seeds", "frames_rendered",
                                            "frames_written", "frames_segmented", "substeps", "physics_steps",
                                            "ceiling_frames_rendered", "frames_encoded")}

    def targets(self) -> dict[str, dict[str, Any]]:
        s = self.summary
        return {
            "ratio": {"value": s["ratio"], "target": f"<= {TARGET_RATIO}", "met": bool(s["ratio"] <= TARGET_RATIO)},
            "episodes_per_hour": {"value": s["episodes_per_hour"], "target": f">= {TARGET_EPISODES_PER_HOUR:g}",
                                  "met": bool(s["episodes_per_hour"] >= TARGET_EPISODES_PER_HOUR)},
        }

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:  # JSON has no NaN
            if isinstance(v, float) and not math.isfinite(v):
                return None
            if isinstance(v, dict):
                return {k: clean(x) for k, x in v.items()}
            if isinstance(v, list):
                return [clean(x) for x in v]
            return v

        return clean({
            "settings": self.settings,
            "machine": self.machine,
            "repeats": len(self.runs),
            "counts": self.counts,
            "summary": self.summary,
            "targets": self.targets(),
            "runs": [r.to_dict() for r in self.runs],
        })


# --------------------------------------------------------------------------------------------
# machine facts


def _gl_renderer_string() -> str | None:
    """The OpenGL renderer (e.g. ``llvmpipe`` = CPU) behind MuJoCo's context, if it can be read."""
    try:
        model = mujoco.MjModel.from_xml_string("<mujoco><worldbody/></mujoco>")
        r = mujoco.Renderer(model, height=8, width=8)
    except Exception:  # no GL backend: the pipeline will report that itself
        return None
    try:
        from OpenGL import GL

        r._gl_context.make_current()
        s = GL.glGetString(GL.GL_RENDERER)
        return s.decode() if isinstance(s, bytes) else (str(s) if s else None)
    except Exception:
        return None
    finally:
        r.close()


def machine_facts() -> dict[str, Any]:
    from simfail.generate import versions

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    return {
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        #: 1-minute load average when the bench started: above the CPU count, other processes
        #: competed for the cores and every time here is inflated (compare CPU seconds instead)
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "processor": platform.processor() or platform.machine(),
        "platform": platform.platform(),
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "(unset)"),
        "gl_renderer": _gl_renderer_string(),
        "mujoco": mujoco.__version__,
        "versions": versions(),
    }


# --------------------------------------------------------------------------------------------
# ceiling work


@dataclass
class _CeilingWork:
    """Per group: the states the ceiling replays (frame payloads already released)."""

    seed: int
    #: physics: per simulated frame the state before it and the control toward it
    qpos0: np.ndarray
    qvel0: np.ndarray
    actions: np.ndarray
    #: rendering: qpos of every frame the pipeline rendered
    render_qpos: np.ndarray
    #: per episode (expert first): ``(length, first rendered frame)``; frames before it are
    #: the expert's, copied (the encoder gets every written frame)
    episodes: list[tuple[int, int]] = field(default_factory=list)
    #: position of the group in the run (which renderer is measured first alternates with it)
    index: int = 0


def _episode_work(res, cfg: GenerateConfig, index: int = 0) -> tuple[list[EpisodeWork], _CeilingWork]:
    """Frame counts of a group's episodes and the states the ceiling replays for them."""
    reuse = cfg.dataset.reuse_prefix
    works: list[EpisodeWork] = []
    p_q, p_v, p_a, r_q = [], [], [], []
    expert = None
    for ep in res.episodes:
        n = ep.length
        qpos, qvel, act = ep.columns["sim.qpos"], ep.columns["sim.qvel"], ep.columns["action"]
        if ep.variant == "expert":
            expert = ep
            onset = None
            first_sim, first_render = 1, 0
        else:
            onset = int(ep.perturbation["onset_frame"])
            first_sim, first_render = (onset + 1, onset + 1) if reuse else (1, 0)
        first_sim = min(first_sim, n)
        first_render = min(first_render, n)
        # transition f-1 -> f starts from row f-1 and is driven by action[f-1]
        # (action[t] is the command issued after observing frame t)
        p_q.append(qpos[first_sim - 1 : n - 1])
        p_v.append(qvel[first_sim - 1 : n - 1])
        p_a.append(act[first_sim - 1 : n - 1])
        r_q.append(qpos[first_render:n])
        works.append(EpisodeWork(res.group_id, ep.variant, n, onset, n - first_sim, n - first_render))
    if expert is not None:
        # every rejected seed cost the pipeline one expert rollout (physics + detection, no render)
        n = expert.length
        for _ in res.rejected_seeds:
            p_q.append(expert.columns["sim.qpos"][: n - 1])
            p_v.append(expert.columns["sim.qvel"][: n - 1])
            p_a.append(expert.columns["action"][: n - 1])
    cw = _CeilingWork(
        seed=res.seed,
        qpos0=np.ascontiguousarray(np.concatenate(p_q), dtype=np.float64),
        qvel0=np.ascontiguousarray(np.concatenate(p_v), dtype=np.float64),
        actions=np.ascontiguousarray(np.concatenate(p_a), dtype=np.float64),
        render_qpos=np.ascontiguousarray(np.concatenate(r_q), dtype=np.float64),
        episodes=[(w.length, w.length - w.rendered_frames) for w in works],
        index=index,
    )
    return works, cw


@dataclass
class _Alone:
    """One group's resources measured alone (seconds) and the work they did."""

    physics: float = 0.0
    render: float = 0.0
    encode: float = 0.0
    stock_render: float = 0.0
    #: the encoder as the stock loop runs it (one set of per-view processes)
    stock_encode: float = 0.0
    #: episode parts the encoder alone ran at once (at most the group's episodes)
    encoder_parts: int = 1
    #: shares the per-core processes drew, and how many of them differ byte for byte from the
    #: pipeline's renderer in this process on the same rows
    per_core_shares: int = 0
    per_core_shares_differing: int = 0
    #: the render and the physics split over one process per core (0: not measured)
    render_per_core: float = 0.0
    physics_per_core: float = 0.0
    cpu_render_per_core: float = 0.0
    cpu_physics_per_core: float = 0.0
    #: CPU seconds (all threads of this process; the encoders' child processes) of each
    cpu_physics: float = 0.0
    cpu_render: float = 0.0
    cpu_stock_render: float = 0.0
    cpu_encode: float = 0.0
    steps: int = 0
    view_frames: int = 0
    encoded: int = 0
    substeps: int = 0


def _children_cpu() -> float:
    """CPU seconds of this process's waited-for child processes (the ffmpeg encoders)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def encoder_parts(cpus: int) -> int:
    """Episode parts the encoder alone runs at once: one single-threaded x264 process per view
    and part, enough parts for every core to have one (rounded up; at least one), so that on
    a many-core machine the encoder alone fills the machine too."""
    return max(1, -(-cpus // len(VIEWS)))


def _encode_alone(cfg: GenerateConfig, episodes: list[dict[str, np.ndarray]], tmp: str, parts: int = 1) -> float:
    """Seconds to encode ``episodes`` (per view ``uint8 (T, H, W, 3)``) as the writer does: one
    x264 process per view (one thread each), all views at once, episodes appended one after
    the other; with ``parts > 1`` the episodes are split into that many contiguous parts,
    encoded at the same time (``parts x views`` processes)."""
    from concurrent.futures import ThreadPoolExecutor

    from simfail.dataset.video import VideoEncoder
    from simfail.dataset.writer import ENCODER_THREADS

    h, w = cfg.render.height, cfg.render.width
    chunks = [episodes[sl] for sl in split_rows(len(episodes), parts) if sl.stop > sl.start]

    def encode(k: int, view: str) -> None:
        with VideoEncoder(os.path.join(tmp, f"{view}-{k}.mp4"), fps=cfg.render.fps, height=h, width=w,
                          crf=cfg.dataset.crf, preset=cfg.dataset.preset, threads=ENCODER_THREADS) as enc:
            for ep in chunks[k]:
                enc.append(ep[view])

    t0 = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(VIEWS) * len(chunks)) as pool:
        for fut in [pool.submit(encode, k, v) for k in range(len(chunks)) for v in VIEWS]:
            fut.result()
    return time.perf_counter() - t0


class _StockRenderer:
    """The stock way to draw the views: one ``mujoco.Renderer``, ``update_scene`` + ``render``
    per view, each read back on its own (the same ``render_into`` interface as the pipeline's)."""

    def __init__(self, model: mujoco.MjModel, width: int, height: int):
        self.views = tuple(VIEWS)
        self._r = mujoco.Renderer(model, height=height, width=width)

    def render_into(self, data: mujoco.MjData, out: dict[str, np.ndarray]) -> None:
        for v, frame in out.items():
            self._r.update_scene(data, camera=v)
            self._r.render(out=frame)

    def close(self) -> None:
        self._r.close()


def _pipeline_renderer(model: mujoco.MjModel, width: int, height: int, backend: str = "egl"):
    """The pipeline's renderer: ``render.backend``'s (``egl``: :class:`MultiViewRenderer`)."""
    from simfail.render.backends import make_renderer

    return make_renderer(backend, model, VIEWS, width, height)


def _stock_renderer(model: mujoco.MjModel, width: int, height: int, backend: str = "egl"):
    """The stock per-view ``mujoco.Renderer`` (OpenGL whatever the pipeline's backend)."""
    return _StockRenderer(model, width, height)


#: how the table names the pipeline's renderer measured alone in this process, per backend
_IN_PROCESS_RENDERER: dict[str, str] = {"egl": "MultiViewRenderer", "warp": "warp batch renderer"}

#: the renderers measured alone in this process for the render bound (the fastest way is the
#: bound; the third way, one process per core, is :mod:`simfail.bench_cores`)
_RENDERERS: dict[str, Callable[..., Any]] = {
    "pipeline": _pipeline_renderer,
    "stock": _stock_renderer,
}


def _render_alone(renderer, model, data, work: _CeilingWork, h: int, w: int, pool: FramePool
                  ) -> tuple[list[dict[str, np.ndarray]], float, float]:
    """Draw a group's rendered view-frames with ``renderer`` into per-episode arrays from
    ``pool`` (reused across groups, as the pipeline's are; the expert's prefix copied, untimed,
    as the pipeline does), posing ``data`` (of the render model ``model``) by kinematics as the
    pipeline's render worker does (:func:`~simfail.render.worker.render_states`: a batch
    renderer draws the rows in batches); returns the episodes' frames, the wall seconds and
    the CPU seconds (every thread of this process) of the drawing."""
    from simfail.render.worker import render_states

    episodes: list[dict[str, np.ndarray]] = []
    wall = cpu = 0.0
    row = 0
    for n, first in work.episodes:
        frames = pool.take_frames(VIEWS, n, h, w)
        if first:
            for v in VIEWS:
                frames[v][:first] = episodes[0][v][:first]
        qpos = np.zeros((n, model.nq))
        qpos[first:] = work.render_qpos[row:row + n - first]
        row += n - first
        t0, c0 = time.perf_counter(), time.process_time()
        render_states(renderer, model, data, qpos, frames, first)
        wall += time.perf_counter() - t0
        cpu += time.process_time() - c0
        episodes.append(frames)
    return episodes, wall, cpu


def _frames_digest(episodes: list[dict[str, np.ndarray]], work: _CeilingWork, rows: slice) -> str:
    """SHA-256 of the render rows ``rows`` of a group as drawn into ``episodes`` (per episode
    ``{view: (T, H, W, 3)}``), view by view and row by row: the order in which a per-core
    process hashes its share (:meth:`simfail.bench_cores.CorePool.digests`)."""
    import hashlib

    where = [(e, f) for e, (n, first) in enumerate(work.episodes) for f in range(first, n)][rows]
    h = hashlib.sha256()
    for v in VIEWS:
        for e, f in where:
            h.update(np.ascontiguousarray(episodes[e][v][f]).tobytes())
    return h.hexdigest()


def _alone(task, cfg: GenerateConfig, work: _CeilingWork, pool: FramePool, cores: CorePool | None = None) -> _Alone:
    """Each resource of one group's work alone: bare physics, bare render (the pipeline's
    renderer, at the run's ``render.backend`` and ``render.preset``), the encoder on the
    written frames, and the stock per-view ``mujoco.Renderer``; the frame arrays come from
    ``pool`` and go back into it. With ``cores``, the physics and (``egl`` backend) the render
    are also measured split over its processes, all at once."""
    from simfail.generate import _stage
    from simfail.render.presets import render_model

    out = _Alone()
    scene = build_scene(task, work.seed, _stage(cfg))
    model = scene.model
    core = make_core(scene, cfg.render.fps)
    out.substeps = core.substeps
    # controls of every action, through the core's own action -> ctrl mapping (untimed)
    ctrl = np.empty((len(work.actions), model.nu))
    for i, a in enumerate(work.actions):
        core.reset(scene.qpos0, a)
        ctrl[i] = core.data.ctrl
    data = mujoco.MjData(model)
    mujoco.mj_resetData(model, data)
    mujoco.mj_forward(model, data)
    h, w = cfg.render.height, cfg.render.width

    def shares(kind: str) -> list[CoreWork]:
        rows = len(work.render_qpos) if kind == "render" else len(ctrl)
        return [CoreWork(
            task=cfg.task, seed=work.seed, width=w, height=h, views=tuple(VIEWS), substeps=out.substeps,
            preset=cfg.render.preset,
            render_qpos=work.render_qpos[sl] if kind == "render" else np.empty((0, model.nq)),
            qpos0=work.qpos0[sl] if kind == "physics" else np.empty((0, model.nq)),
            qvel0=work.qvel0[sl] if kind == "physics" else np.empty((0, model.nv)),
            ctrl=ctrl[sl] if kind == "physics" else np.empty((0, model.nu)),
        ) for sl in split_rows(rows, cores.n)]

    out.steps = len(work.qpos0) * out.substeps
    out.view_frames = len(work.render_qpos) * len(VIEWS)

    def physics_here() -> None:
        """The same number of mj_step calls, from the episodes' own states, on one thread."""
        step = mujoco.mj_step
        t0, c0 = time.perf_counter(), time.process_time()
        for q, v, c in zip(work.qpos0, work.qvel0, ctrl):
            data.qpos[:] = q
            data.qvel[:] = v
            data.ctrl[:] = c
            for _ in range(out.substeps):
                step(model, data)
        out.physics = time.perf_counter() - t0
        out.cpu_physics = time.process_time() - c0

    def physics_per_core() -> None:
        out.physics_per_core, out.cpu_physics_per_core, stepped = cores.run("physics", shares("physics"))
        if stepped != out.steps:  # the same work, or no bound
            raise BenchCoreError(f"bench: the per-core processes made {stepped} mj_step calls, not the "
                                 f"pipeline's {out.steps}")

    # physics both ways (the order alternates from group to group, like the renderers')
    physics_ways = [physics_here] + ([physics_per_core] if cores is not None else [])
    for way in (physics_ways if work.index % 2 == 0 else physics_ways[::-1]):
        way()

    # each way of rendering alone on the same view-frames (in this process: into per-episode
    # frame arrays as the pipeline fills them); the order rotates from group to group so that
    # none always runs first (warm caches, a changing machine load)
    rmodel = render_model(model, scene.xml, cfg.render.preset)
    rdata = mujoco.MjData(rmodel)
    mujoco.mj_forward(rmodel, rdata)
    ways = ["pipeline", "stock"] + (["per_core"] if cores is not None and cfg.render.backend == "egl" else [])
    k = work.index % len(ways)
    episodes: list[dict[str, np.ndarray]] = []
    for name in ways[k:] + ways[:k]:
        if name == "per_core":
            out.render_per_core, out.cpu_render_per_core, drawn = cores.run("render", shares("render"))
            if drawn != out.view_frames:
                raise BenchCoreError(f"bench: the per-core processes drew {drawn} view-frames, not the "
                                     f"pipeline's {out.view_frames}")
            continue
        renderer = _RENDERERS[name](rmodel, w, h, cfg.render.backend)
        try:
            frames, wall, cpu = _render_alone(renderer, rmodel, rdata, work, h, w, pool)
        finally:
            renderer.close()
        if name == "pipeline":
            out.render, out.cpu_render, episodes = wall, cpu, frames
        else:
            out.stock_render, out.cpu_stock_render = wall, cpu
            for f in frames:
                pool.give_frames(f)
        del frames
    if "per_core" in ways:  # did the processes draw the very frames of the pipeline's renderer?
        theirs = cores.digests("render", cores.n)  # one share per process
        ours = [_frames_digest(episodes, work, sl) for sl in split_rows(len(work.render_qpos), cores.n)]
        out.per_core_shares = len(ours)
        out.per_core_shares_differing = sum(a != b for a, b in zip(theirs, ours))

    # the encoder alone on every written frame (in parts on a many-core machine); the stock
    # loop's encoder is one set of per-view processes, measured apart when that differs
    parts = encoder_parts(cores.n if cores is not None else 1)
    out.encoder_parts = max(1, min(parts, len(work.episodes)))
    with tempfile.TemporaryDirectory(prefix="simfail_bench_enc_") as tmp:
        c0 = _children_cpu()
        out.encode = _encode_alone(cfg, episodes, tmp, parts)
        out.cpu_encode = _children_cpu() - c0
        out.stock_encode = _encode_alone(cfg, episodes, tmp, 1) if parts > 1 else out.encode
    out.encoded = sum(n for n, _ in work.episodes) * len(VIEWS)
    for f in episodes:
        pool.give_frames(f)
    del episodes
    return out


# --------------------------------------------------------------------------------------------
# one repeat


def _bench_once(cfg: GenerateConfig, root: str, log: Callable[[str], None], visibility: bool = True) -> BenchRun:
    from simfail.dataset.writer import DatasetWriter
    from simfail.generate import (
        ACTION_NAMES, STATE_NAMES, GroupSink, _meta, generate_group, make_group_runner, variant_plan,
    )

    run = BenchRun()
    try:
        run.cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        run.cpus = os.cpu_count() or 1
    task = get_task(cfg.task)
    seeds: dict[int, dict[str, Any]] = {}
    works: list[_CeilingWork] = []

    t0, c0 = time.perf_counter(), time.process_time() + _children_cpu()
    variant_plan(task, cfg, 0)
    runner = make_group_runner(task, cfg)
    model = runner.prototype_model
    writer = DatasetWriter(
        root, fps=cfg.render.fps, image_size=(cfg.render.height, cfg.render.width),
        state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=model.nq, nv=model.nv,
        mode="new", chunks_size=cfg.dataset.chunks_size, crf=cfg.dataset.crf, preset=cfg.dataset.preset,
        encoder_nice=cfg.dataset.encoder_nice,
    )
    untimed = 0.0
    results = []
    with GroupSink(writer, model.nq, model.nv) as sink:
        for g in range(cfg.groups):
            t_g = time.perf_counter()
            res = generate_group(task, cfg, g, runner=runner, defer_frames=True, visibility=visibility,
                                 frame_pool=sink.frame_pool)
            results.append(res)
            run.groups += 1
            run.episodes += len(res.episodes)
            run.rejected_seeds += len(res.rejected_seeds)
            # untimed: keep the states the ceiling needs
            t_u = time.perf_counter()
            ep_work, cw = _episode_work(res, cfg, g)
            run.episode_work += ep_work
            works.append(cw)
            untimed += time.perf_counter() - t_u
            seeds[g] = {"task": cfg.task, "seed": res.seed, "rejected_expert_seeds": res.rejected_seeds,
                        "instruction": res.episodes[0].instruction}
            sink.submit_result(res, _meta(cfg, {cfg.task: model}, dict(seeds)))
            del res
            log(f"bench: group {g + 1}/{cfg.groups} generated ({len(ep_work)} episodes, {time.perf_counter() - t_g:.1f} s)")
    t1 = time.perf_counter()
    writer.finalize(_meta(cfg, {cfg.task: model}, seeds))
    run.total = time.perf_counter() - t0 - untimed
    run.cpu_pipeline = time.process_time() + _children_cpu() - c0  # the untimed part is negligible CPU
    # encode + write run on the sink's thread, overlapped with the next group's physics and
    # rendering; only the time the main thread waited for them is on the critical path
    run.write = sink.write_s + sink.finalize_s
    run.finalize = time.perf_counter() - t1
    run.wait = sink.wait_s
    for res in results:  # render times are final once the writer has collected every group's frames
        tm = res.timing
        run.physics += tm.physics
        run.render += tm.render
        run.labels += tm.labels
        run.visibility += tm.visibility
        run.frames_segmented += tm.frames_segmented
        run.frames_wait += tm.render_wait
        run.frames_rendered += tm.frames_rendered
        run.frames_written += tm.frames_written
    del results
    # the main thread's critical path: rendering and encoding run on other threads
    run.other = max(0.0, run.total - (run.physics + run.labels + run.wait + run.finalize))

    pool = FramePool()  # the bare loops reuse their frame arrays across groups, as the pipeline does
    # one process per core, started once (untimed): the render and the physics at full machine use
    cores = CorePool(run.cpus) if run.cpus > 1 else None
    try:
        for i, cw in enumerate(works):
            _add_alone(run, _alone(task, cfg, cw, pool, cores), i, len(works), log)
    finally:
        if cores is not None:
            cores.close()
    run.core_processes = cores.n if cores is not None else 0
    return run


def _add_alone(run: BenchRun, a: _Alone, i: int, groups: int, log: Callable[[str], None]) -> None:
    """Add one group's resources-alone measurements to ``run`` (none of them when its per-core
    frames differ from the pipeline renderer's: then the bench stops)."""
    if a.per_core_shares_differing:  # a bound must be the same images drawn faster, or none
        raise BenchCoreError(f"bench: {a.per_core_shares_differing} of {a.per_core_shares} per-core render shares "
                             f"of group {i + 1} drew other images than the pipeline's renderer, so they cannot "
                             f"bound it")
    run.ceiling_physics += a.physics
    run.bound_render += a.render
    run.bound_encode += a.encode
    run.stock_encode += a.stock_encode
    run.stock_render += a.stock_render
    run.physics_steps += a.steps
    run.ceiling_frames_rendered += a.view_frames
    run.frames_encoded += a.encoded
    run.cpu_render += a.cpu_render
    run.cpu_stock_render += a.cpu_stock_render
    run.cpu_physics += a.cpu_physics
    run.cpu_encode += a.cpu_encode
    run.substeps = a.substeps
    run.render_per_core += a.render_per_core
    run.encoder_parts = max(run.encoder_parts, a.encoder_parts)
    run.per_core_shares += a.per_core_shares
    run.cpu_render_per_core += a.cpu_render_per_core
    run.physics_per_core += a.physics_per_core
    run.cpu_physics_per_core += a.cpu_physics_per_core
    per_core = (f"; per core: render {a.render_per_core:.1f} s, physics {a.physics_per_core:.1f} s"
                if a.render_per_core else "")
    log(f"bench: group {i + 1}/{groups} resources alone (render {a.render:.1f} s, physics "
        f"{a.physics:.1f} s, encode {a.encode:.1f} s; stock render {a.stock_render:.1f} s{per_core})")


def run_bench(cfg: BenchConfig, *, log: Callable[[str], None] | None = None) -> BenchResult:
    """Benchmark ``cfg.generate`` (into temporary directories) ``cfg.repeats`` times."""
    from simfail.scale.gpu import apply_egl_device

    gen = cfg.generate
    if cfg.repeats < 1:
        raise ConfigError(f"repeats must be >= 1, got {cfg.repeats}")
    apply_egl_device(gen.render.backend, gen.render.gpu)  # before the first GL context, as generate
    if log is None:
        def log(msg: str) -> None:
            if gen.progress:
                print(msg, file=sys.stderr, flush=True)
    task = get_task(gen.task)
    settings = {
        "task": gen.task,
        "groups": gen.groups,
        "seed": gen.seed,
        "width": gen.render.width,
        "height": gen.render.height,
        "fps": gen.render.fps,
        "frames_per_episode": frame_count(task.duration, gen.render.fps),
        "views": list(VIEWS),
        "failures": list(gen.failures.names),
        "near_misses": gen.failures.near_misses,
        "sweep": list(gen.failures.sweep),
        "reuse_prefix": gen.dataset.reuse_prefix,
        "crf": gen.dataset.crf,
        "preset": gen.dataset.preset,
        "encoder_nice": gen.dataset.encoder_nice,
        "repeats": cfg.repeats,
        "visibility": cfg.visibility,
        "render_backend": gen.render.backend,
        "render_preset": gen.render.preset,
    }
    machine = machine_facts()
    runs = []
    for k in range(cfg.repeats):
        if cfg.repeats > 1:
            log(f"bench: repeat {k + 1}/{cfg.repeats}")
        with tempfile.TemporaryDirectory(prefix="simfail_bench_") as tmp:
            runs.append(_bench_once(gen, os.path.join(tmp, "dataset"), log, cfg.visibility))
    return BenchResult(settings=settings, machine=machine, runs=runs)


# --------------------------------------------------------------------------------------------
# report


def _fmt_s(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.2f}"


def _fmt_x(v: float | None) -> str:
    return "-" if v is None or not math.isfinite(v) else f"{v:.2f}x"


def bench_table(result: BenchResult) -> str:
    """A text table of the time split, each resource alone and the bound, then the headlines."""
    s, c, st, m = result.summary, result.counts, result.settings, result.machine
    total = s["total_s"]
    rows = [  # the main thread's critical path (the rows add up to the total)
        ("physics + IK", s["physics_s"], s["bare_physics_s"]),
        ("labels", s["labels_s"], None),
        ("waiting for writer", s["wait_s"], None),
        ("finalize (meta)", s["finalize_s"], None),
        ("other (scenes, plan)", s["other_s"], None),
    ]
    rep = f"median of {len(result.runs)} repeats" if len(result.runs) > 1 else "1 run"
    lines = [
        f"simfail bench: {st['task']}, {c['groups']} groups, {c['episodes']} episodes "
        f"({c['rejected_seeds']} rejected expert seeds), {len(st['views'])} views "
        f"{st['width']}x{st['height']} @ {st['fps']} fps ({st.get('render_backend', 'egl')}, "
        f"preset {st.get('render_preset', 'fast')}), {st['frames_per_episode']} frames/episode, "
        f"reuse_prefix={st['reuse_prefix']}, x264 {st['preset']} crf {st['crf']} at nice {st.get('encoder_nice', 0)} ({rep})",
        f"machine: {m['cpus_usable']}/{m['cpu_count']} CPUs, MUJOCO_GL={m['MUJOCO_GL']}"
        f"{' (' + m['gl_renderer'] + ')' if m.get('gl_renderer') else ''}, mujoco {m['mujoco']}"
        + (f"; load average {m['load_average_1min']:.1f} at start"
           + (" (BUSY MACHINE: other processes competed for the cores, wall times are inflated)"
              if m["load_average_1min"] > m["cpus_usable"] else "")
           if m.get("load_average_1min") is not None else ""),
        f"work: {c['physics_steps']} physics steps ({c['substeps']} per frame), "
        f"{c['frames_rendered']} view-frames rendered, {c['frames_written']} written",
        "",
        f"{'pipeline stage':<22}{'seconds':>10}{'share':>8}{'alone s':>12}{'ratio':>9}",
        "-" * 61,
    ]
    for name, sec, alone in rows:
        share = f"{100 * sec / total:.1f}%" if total > 0 else "-"
        ratio = sec / alone if alone else None
        lines.append(f"{name:<22}{_fmt_s(sec):>10}{share:>8}{_fmt_s(alone):>12}{_fmt_x(ratio):>9}")
    lines.append("-" * 61)
    lines.append(f"{'total':<22}{_fmt_s(total):>10}{'100.0%':>8}{_fmt_s(s['bound_s']):>12}{_fmt_x(s['ratio']):>9}")
    lines.append(f"{'rendering (thread)':<22}{_fmt_s(s['render_s']):>10}{'':>8}{_fmt_s(s['bare_render_s']):>12}"
                 f"{_fmt_x(s['render_ratio']):>9}")
    lines.append(f"{'visibility (thread)':<22}{_fmt_s(s['visibility_s']):>10}{'':>8}{'':>12}{'':>9}"
                 f"  {c['frames_segmented']} view-frames segmented at {SEG_SIZE}x{SEG_SIZE}"
                 + ("" if st.get("visibility", True) else " (visibility=false: pass off)"))
    lines.append(f"rendering runs on its own thread beside the physics; encode + write: {_fmt_s(s['write_s'])} s "
                 f"on the writer thread beside the next group (each episode encoded as soon as its frames are "
                 f"drawn; then {_fmt_s(s['frames_wait_s'])} s collecting the group's labels); only 'waiting for "
                 f"writer' is on the critical path")
    procs = result.runs[0].core_processes
    per_core_render = s["render_per_core_s"] > 0  # measured (not with render.backend=warp)
    in_process = _IN_PROCESS_RENDERER.get(st.get("render_backend", "egl"), "the pipeline's renderer")
    lines += ["", f"{'each resource alone, full machine':<52}{'seconds':>8}{'CPU s':>9}", "-" * 69]
    bound_name = max((("render", s["bare_render_s"]), ("physics", s["physics_alone_s"]),
                      ("encode", s["encode_alone_s"])), key=lambda kv: kv[1])[0]
    # the render (physics) part of the bound is the fastest way measured; all are listed
    renders = {"pipeline": s["pipeline_renderer_alone_s"], "stock": s["stock_render_s"],
               "per_core": s["render_per_core_s"]}
    fastest = fastest_way(renders, "pipeline")
    per_core_physics = fastest_way({"one": s["bare_physics_s"], "per_core": s["physics_per_core_s"]},
                                   "one") == "per_core"
    rows_alone = [
        ("pipeline", f"bare render: {in_process}, 1 process", s["pipeline_renderer_alone_s"],
         s["cpu_pipeline_renderer_s"]),
        ("stock", "bare render: stock mujoco.Renderer/view, 1 process", s["stock_render_s"], s["cpu_stock_render_s"]),
        ("per_core", f"bare render: MultiViewRenderer, {procs} processes", s["render_per_core_s"],
         s["cpu_render_per_core_s"]),
        ("physics_one", "bare physics (mj_step), 1 thread", s["bare_physics_s"], s["cpu_physics_s"]),
        ("physics_per_core", f"bare physics (mj_step), {procs} procs", s["physics_per_core_s"],
         s["cpu_physics_per_core_s"]),
        ("encode", f"encoder alone ({result.runs[0].encoder_parts * len(st['views'])} x264 processes at once)",
         s["encode_alone_s"], s["cpu_encode_s"]),
    ]
    for key, label, sec, cpu in rows_alone:
        if key in renders:
            if key == "per_core" and not per_core_render:
                continue
            mark = ("  <- bound" if bound_name == "render" else "  <- render") if key == fastest else ""
        elif key.startswith("physics"):
            if key == "physics_per_core" and not procs:
                continue
            chosen = (key == "physics_per_core") == per_core_physics
            mark = ("  <- bound" if bound_name == "physics" else "  <- physics") if chosen else ""
        else:
            mark = "  <- bound" if key == bound_name else ""
        lines.append(f"{label:<52}{_fmt_s(sec):>8}{_fmt_s(cpu):>9}{mark}")
    lines.append("-" * 69)
    lines.append(f"CPU-time floor (each resource's least CPU seconds, added, / {result.runs[0].cpus} cores, informational): "
                 f"{_fmt_s(s['cpu_floor_s'])} s; pipeline {_fmt_x(s['ratio_vs_cpu_floor'])} of it")
    lines.append(f"pipeline CPU: {_fmt_s(s['cpu_pipeline_s'])} CPU s (its threads and encoders) in "
                 f"{_fmt_s(total)} s: {s['pipeline_cores_busy']:.2f} of {result.runs[0].cpus} cores busy")
    lines.append("render and physics: the fastest way measured alone (same view-frames, scene moving, into "
                 "per-episode frame arrays; same physics steps); one process per core (one llvmpipe thread "
                 "each on a CPU) uses the cores that one llvmpipe process leaves idle")
    run0 = result.runs[0]
    if run0.per_core_shares:
        lines.append(f"per-core frames: {run0.per_core_shares} of {run0.per_core_shares} shares byte-identical "
                     f"to the pipeline renderer's in this process (checked every group; a difference stops the bench)")
    lines.append(f"stock serial loop (physics, then mujoco.Renderer per view, then the encoder; not a bound): "
                 f"{_fmt_s(s['stock_serial_s'])} s; pipeline / stock loop = {_fmt_x(1.0 / s['speedup_vs_stock'] if s['speedup_vs_stock'] else None)}")
    lines.append("")
    t = result.targets()

    def met(k: str) -> str:
        return "met" if t[k]["met"] else "NOT met"

    lines += [
        f"episodes/hour: {s['episodes_per_hour']:.0f} (target {t['episodes_per_hour']['target']}: "
        f"{met('episodes_per_hour')})",
        f"frames/s: {s['written_view_frames_per_s']:.1f} written view-frames/s; rendered "
        f"{s['rendered_view_frames_per_s']:.1f} view-frames/s in the pipeline vs "
        f"{s['pipeline_renderer_view_frames_per_s']:.1f} alone (stock mujoco.Renderer: "
        f"{s['stock_rendered_view_frames_per_s']:.1f}"
        + (f"; one process per core: {s['per_core_rendered_view_frames_per_s']:.1f}" if per_core_render else "")
        + f"); encoder alone {s['encoded_view_frames_per_s']:.0f}",
        f"ratio vs bound (slowest resource alone: {bound_name}): {s['ratio']:.2f} "
        f"(overhead {100 * s['overhead']:+.0f}%; target {t['ratio']['target']}: {met('ratio')})",
        f"rendering vs bare render (fastest renderer): {s['render_ratio']:.2f} (vs its own renderer alone: "
        f"{s['render_ratio_own_renderer']:.2f}); physics+IK vs bare mj_step: "
        f"{s['physics_ratio']:.2f}",
    ]
    if len(result.runs) > 1:
        per = ", ".join(f"{r.metrics()['ratio']:.2f}" for r in result.runs)
        lines.append(f"ratio per repeat: {per}")
    return "\n".join(lines)
