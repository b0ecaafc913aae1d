"""Generate counterfactual groups: an expert episode and its perturbed variants per seed.

For group ``g`` the scene seed is drawn from ``(seed, g, attempt)``; a seed whose expert does
not succeed cleanly (any failure event, or no success) is never written as an expert: the
group moves to the next attempt and the rejected seed is recorded in ``meta/simfail.json``.
"""

from __future__ import annotations

import json
import platform
import time
import zlib
from concurrent.futures import Future, ThreadPoolExecutor
from collections import Counter
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable

import mujoco
import numpy as np

import simfail
from simfail.config import GenerateConfig
from simfail.core.builder import BuiltScene, make_ik
from simfail.core.episode import VIEWS, EpisodeRecord, competition_ranks
from simfail.core.rollout import RolloutResult, frame_count, run_program
from simfail.core.runner import SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.task import Task, get_task, task_names
from simfail.counterfactual.replay import branch
from simfail.counterfactual.source import SourceEpisode
from simfail.errors import ExpertFailedError, SimulationUnstableError, UnknownNameError
from simfail.labels.scoring import dense_reward, episode_score, failure_mask
from simfail.labels.visibility import SEG_SIZE, apply_visibility, visibility_queries
from simfail.perturbations.nuisance import CLEAN, NotApplicable, alternative_kind, command_timing, retime_edit
from simfail.render.presets import render_model
from simfail.render.frame_pool import FramePool
from simfail.render.worker import RenderWorker

STATE_NAMES = [f"joint{i}" for i in range(1, 8)] + ["finger_joint1", "finger_joint2"]
ACTION_NAMES = [f"joint{i}_target" for i in range(1, 8)] + ["gripper_close"]
#: Attempts per group before giving up on finding a seed whose expert succeeds.
MAX_ATTEMPTS = 20


@dataclass
class VariantSpec:
    name: str
    perturbation: str
    magnitude: float
    kind: str  # "failure" | "near_miss" | "sweep"


@dataclass
class GroupTiming:
    """Seconds spent on a group. ``physics`` (+ IK) and ``labels`` run on the calling thread;
    ``render`` is the render worker's own time, overlapped with the physics; ``render_wait`` is
    how long the thread that collected the frames waited for the worker to finish;
    ``visibility`` is the worker's segmentation pass that sets the events' visible frames."""

    physics: float = 0.0
    render: float = 0.0
    labels: float = 0.0
    visibility: float = 0.0
    render_wait: float = 0.0
    frames_rendered: int = 0
    frames_written: int = 0
    frames_segmented: int = 0


@dataclass
class GroupResult:
    group_id: int
    seed: int
    rejected_seeds: list[int]
    episodes: list[EpisodeRecord]
    timing: GroupTiming = field(default_factory=GroupTiming)
    #: variants left out because their physics diverged: ``{"variant", "error"}``
    unstable_variants: list[dict[str, str]] = field(default_factory=list)
    #: frames still being drawn: the worker and, per episode, the future of its frames
    _render: RenderWorker | None = field(default=None, repr=False)
    _frames: list[Future] = field(default_factory=list, repr=False)
    #: per episode, the future of its events' per-view visible frames (None: no events)
    _visibility: list[Future | None] = field(default_factory=list, repr=False)

    @property
    def frames_ready(self) -> bool:
        return self._render is None

    def wait_frames(self) -> None:
        """Block until every episode's frames are drawn and attached (``episode.frames``),
        then free the render worker. A no-op once done; re-raises a rendering error."""
        worker = self._render
        if worker is None:
            return
        t0 = time.perf_counter()
        ok = False
        try:
            for ep, fut in zip(self.episodes, self._frames):
                ep.frames = fut.result()
            for ep, fut in zip(self.episodes, self._visibility):
                if fut is not None:
                    apply_visibility(ep, fut.result())
            ok = True
        finally:
            worker.close(cancel=not ok)
            self._render, self._frames, self._visibility = None, [], []
            self.timing.render += worker.render_s
            self.timing.visibility += worker.visibility_s
            self.timing.frames_segmented += worker.seg_frames
            self.timing.render_wait += time.perf_counter() - t0

    def wait_episode_frames(self, j: int) -> None:
        """Block until episode ``j``'s frames are drawn and attach them (``episode.frames``),
        while later episodes may still be drawing (the dataset writer encodes episode by
        episode; several encoder threads may call this for the same ``j``). A no-op once
        :meth:`wait_frames` has run; re-raises a rendering error."""
        futures = self._frames
        if self._render is None or j >= len(futures):
            return
        self.episodes[j].frames = futures[j].result()

    def cancel_frames(self) -> None:
        """Drop the frames still being drawn and free the render worker (on an error path)."""
        worker = self._render
        if worker is not None:
            self._render, self._frames, self._visibility = None, [], []
            worker.close(cancel=True)


def scene_seed(base_seed: int, group: int, attempt: int) -> int:
    """Deterministic 31-bit scene seed of a group attempt."""
    ss = np.random.SeedSequence([int(base_seed), int(group), int(attempt), 0x51F]).generate_state(1)[0]
    return int(ss & 0x7FFFFFFF)


#: ``failures=[generic]``: every generic operator (``simfail.counterfactual.operators``).
GENERIC_ALIAS = "generic"


def available_operators(task: Task) -> dict[str, Any]:
    """Every failure operator a task's groups can use, by name: the task's own (program edits
    and task-bound generic ones, ``perturbations/<task>.py``), then the generic operators of
    :mod:`simfail.counterfactual.operators` (a task name wins over a generic one)."""
    from simfail.counterfactual.operators import OPERATORS

    ops = dict(task.perturbations())
    for name in OPERATORS.names():
        ops.setdefault(name, OPERATORS.get(name))
    return ops


def failure_names(task: Task, names: list[str]) -> list[str]:
    """The operator names a ``failures=`` list selects for a task: ``all`` is the task's own
    operators, ``generic`` every generic operator, anything else a name."""
    from simfail.counterfactual.operators import OPERATORS

    if names in (["all"], ["*"]):
        return list(task.perturbations())
    out: list[str] = []
    for n in names:
        for m in (OPERATORS.names() if n == GENERIC_ALIAS else [n]):
            if m not in out:
                out.append(m)
    return out


def variant_plan(task: Task, cfg: GenerateConfig, seed: int) -> list[VariantSpec]:
    """Which variants a group gets, with their magnitudes (a function of the seed)."""
    perts = available_operators(task)
    names = failure_names(task, list(cfg.failures.names))
    for n in names:
        if n not in perts:
            raise UnknownNameError("failure", n, [*perts, GENERIC_ALIAS])
    plan: list[VariantSpec] = []
    for n in names:
        p = perts[n]
        rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(n.encode()), 1]))
        if cfg.failures.failure_variants:
            plan.append(VariantSpec(n, n, float(rng.uniform(*p.failure_range)), "failure"))
        if cfg.failures.near_misses:
            plan.append(VariantSpec(f"{n}:near_miss", n, float(rng.uniform(*p.near_miss_range)), "near_miss"))
        for m in cfg.failures.sweep:
            plan.append(VariantSpec(f"{n}@{float(m):.2f}", n, float(m), "sweep"))
    plan += alternative_plan(cfg, seed)
    return plan


def alternative_plan(cfg: GenerateConfig, seed: int) -> list[VariantSpec]:
    """One ``alt:NAME`` variant per clean alternative of ``failures.alternatives``
    (:data:`simfail.perturbations.nuisance.ALTERNATIVES`), magnitude drawn from the seed."""
    from simfail.perturbations.nuisance import ALTERNATIVES, CLEAN

    plan = []
    for n in cfg.failures.alternatives:
        if n not in ALTERNATIVES:
            raise UnknownNameError("clean alternative", n, list(ALTERNATIVES))
        rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(n.encode()), 3]))
        plan.append(VariantSpec(f"alt:{n}", n, float(rng.uniform(0.0, 1.0)), CLEAN))
    return plan


def variant_operator(task: Task, spec: VariantSpec):
    """The perturbation a variant applies: the task's failure operator or a clean alternative."""
    from simfail.perturbations.nuisance import ALTERNATIVES, CLEAN

    return ALTERNATIVES[spec.perturbation] if spec.kind == CLEAN else available_operators(task)[spec.perturbation]


def _stage(cfg: GenerateConfig) -> StageConfig:
    return StageConfig(width=cfg.render.width, height=cfg.render.height)


def _record(task: Task, scene: BuiltScene, res: RolloutResult, group_id: int, variant: str,
            params: dict[str, Any], fps: int) -> EpisodeRecord:
    trace = res.trace
    success, events = task.detect(trace, scene.layout)
    progress = task.progress(trace, scene.layout)
    reward = dense_reward(progress, events)
    n = len(trace)
    actions = np.array(trace.action, dtype=np.float32)
    # LeRobot convention: action[t] is the command issued after observing frame t
    action_col = np.concatenate([actions[1:], actions[-1:]], axis=0)
    return EpisodeRecord(
        group_id=group_id,
        variant=variant,
        instruction=scene.layout.instruction,
        task=task.name,
        seed=scene.layout.seed,
        fps=fps,
        frames={},  # drawn by the render worker, attached by GroupResult.wait_frames
        columns={
            "observation.state": np.array(trace.robot_state, dtype=np.float32),
            "action": action_col,
            "progress": progress.astype(np.float32),
            "reward": reward,
            "failure": failure_mask(n, events),
            "sim.qpos": np.array(trace.qpos, dtype=np.float64),
            "sim.qvel": np.array(trace.qvel, dtype=np.float64),
        },
        success=success,
        score=episode_score(success, progress, events),
        failures=events,
        perturbation=params,
    )


def continuation_driver(cfg: GenerateConfig, runner: SceneRunner, n_frames: int, scene_seed: int, group_id: int,
                        variant: str):
    """``continuation=closed_loop``: a driver of ``cfg.policy`` that takes over a variant after
    its operator's last step (docs/recovery.md); ``None`` for ``open_loop``."""
    if cfg.continuation != "closed_loop":
        return None
    from simfail.counterfactual.closed_loop import continuation_policy, policy_driver
    from simfail.policy.rollout import policy_seed

    loaded = continuation_policy(cfg.policy, runner, cfg.render.width, cfg.render.height)
    return policy_driver(loaded, runner, n_frames, policy_seed(scene_seed, cfg.policy, 0), (group_id, variant))


def generate_group(task: Task, cfg: GenerateConfig, group_id: int, *, render: bool = True,
                   runner: SceneRunner | None = None, defer_frames: bool = False,
                   visibility: bool = True, frame_pool: FramePool | None = None) -> GroupResult:
    """Build, roll out, render and label one counterfactual group.

    ``runner`` is the :class:`~simfail.core.runner.SceneRunner` that builds, steps and records
    the group's scene (the same runner policy rollouts and the Gymnasium env use); pass one to
    reuse it across groups, or get a fresh one.

    Episodes are drawn on a :class:`~simfail.render.worker.RenderWorker` thread while the
    physics of the next variant runs. With ``defer_frames=True`` the group returns as soon as
    its physics and labels are done and the frames arrive later: call
    :meth:`GroupResult.wait_frames` (the dataset writer's thread does) before reading
    ``episode.frames``; the main thread can meanwhile start the next group.

    With ``render`` and ``visibility`` the events' visible frames come from the cameras
    (:mod:`simfail.labels.visibility`, on the render worker); otherwise they stay the
    detectors' physics frames and ``visible_frames`` / ``visible_in`` are None.

    Raises:
        ExpertFailedError: no seed in ``MAX_ATTEMPTS`` attempts gave a clean expert success.
    """
    fps = cfg.render.fps
    n_frames = frame_count(task.duration, fps)
    timing = GroupTiming()
    unstable: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []  # variants with nothing to act on in this expert program
    if runner is None:
        runner = make_group_runner(task, cfg)
    start = expert_start(task, cfg.seed, group_id, runner, n_frames, timing)
    seed, scene, ik, expert, base, rejected = (start.seed, start.scene, start.ik, start.program, start.result,
                                               start.rejected)

    worker = None
    if render:  # the preset only changes the model the renderer draws; physics ran on scene.model
        worker = RenderWorker(render_model(scene.model, scene.xml, cfg.render.preset), VIEWS,
                              cfg.render.width, cfg.render.height, backend=cfg.render.backend,
                              seg_size=SEG_SIZE if visibility else 0, frame_pool=frame_pool)
    frames: list[Future] = []
    see, seen = visibility_hook(worker if visibility else None, scene.model, runner)

    try:
        if worker is not None:
            # the expert is drawn from its saved states (the physics already ran once)
            expert_frames = worker.submit(base.trace.qpos)
            frames.append(expert_frames)
        episodes = [_record(task, scene, base, group_id, "expert", {}, fps)]
        see(episodes[0], base)
        source = SourceEpisode.from_expert(task, scene, base, {"group": group_id}, program=expert)
        for spec in variant_plan(task, cfg, seed):
            # every variant, task-specific or generic, is an edit branched from the expert source
            rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(spec.name.encode()), 2]))
            try:
                edit = variant_operator(task, spec).make_edit(source, spec.magnitude, rng, ik=ik)
            except NotApplicable as exc:  # e.g. a re-grasp in a task without a grasp
                skipped.append({"variant": spec.name, "reason": str(exc)})
                continue
            match = cfg.failures.match_duration and spec.kind != CLEAN
            timing_fields = retime_edit(edit, expert, task.duration) if match else {}
            k = edit.onset
            t0 = time.perf_counter()
            try:
                driver = continuation_driver(cfg, runner, n_frames, seed, group_id, spec.name)
                trace, states = branch(runner, source, edit, n_frames, continuation=cfg.continuation, driver=driver,
                                       from_start=not cfg.dataset.reuse_prefix)
                res = RolloutResult(trace, states)
                first_new = k + 1 if cfg.dataset.reuse_prefix else 0
            except SimulationUnstableError as exc:
                # no trustworthy labels: leave the variant out and say so in the meta
                unstable.append({"variant": spec.name, "error": str(exc)})
                timing.physics += time.perf_counter() - t0
                continue
            timing.physics += time.perf_counter() - t0
            if worker is not None:
                frames.append(worker.submit(res.trace.qpos, prefix=expert_frames, first=first_new))
            t0 = time.perf_counter()
            params = {"name": spec.perturbation, "kind": spec.kind, "magnitude": round(spec.magnitude, 4),
                      **edit.params, "continuation": cfg.continuation, "source": source.describe(),
                      **(command_timing(res.trace, base.trace, timing_fields) if match else {})}
            episodes.append(_record(task, scene, res, group_id, spec.name, params, fps))
            if spec.kind == CLEAN:  # the physics decides whether an alternative is clean
                episodes[-1].perturbation["kind"] = alternative_kind(episodes[-1].success, len(episodes[-1].failures))
            see(episodes[-1], res)
            timing.labels += time.perf_counter() - t0
    except BaseException:
        if worker is not None:
            worker.close(cancel=True)
        raise
    return finish_group(group_id, seed, rejected, episodes, timing, unstable, worker, frames, seen, defer_frames,
                        skipped_variants=skipped)


def finish_group(group_id: int, seed: int, rejected: list[int], episodes: list[EpisodeRecord],
                 timing: GroupTiming, unstable: list[dict[str, str]], worker: RenderWorker | None,
                 frames: list[Future], seen: list[Future | None], defer_frames: bool,
                 **extra: Any) -> GroupResult:
    """The :class:`GroupResult` of a group's episodes: ranks them by score (competition
    ranking), counts the frames written (episode frames x views), sets ``extra`` attributes,
    and hands over the render worker's frame futures (waited for unless ``defer_frames``)."""
    for ep, rank in zip(episodes, competition_ranks([e.score for e in episodes])):
        ep.rank = rank
    timing.frames_written = sum(e.length for e in episodes) * len(VIEWS)
    result = GroupResult(group_id, seed, rejected, episodes, timing, unstable)
    for name, value in extra.items():
        setattr(result, name, value)
    if worker is not None:
        assert len(frames) == len(episodes), "one frame future per written episode"
        timing.frames_rendered = worker.frames_rendered
        result._render, result._frames, result._visibility = worker, frames, seen
        if not defer_frames:
            result.wait_frames()
    return result


def visibility_hook(worker: RenderWorker | None, model: mujoco.MjModel, runner: SceneRunner):
    """``(see, seen)``: ``see(episode, result)`` queues the camera visibility of the episode's
    events on ``worker`` (one future per episode, None when it has no events) and appends it to
    ``seen``, which becomes :attr:`GroupResult._visibility`. ``worker=None`` (no rendering, or
    visibility off) makes ``see`` a no-op and leaves ``seen`` empty. ``generate`` and
    ``rollout`` both label visibility through this hook."""
    seen: list[Future | None] = []

    def see(ep: EpisodeRecord, res: RolloutResult) -> None:
        if worker is not None:
            queries = visibility_queries(model, runner.core.robot.body_ids, ep.failures, res.trace)
            seen.append(worker.submit_visibility(res.trace.qpos, queries) if queries else None)

    return see, seen


@dataclass
class ExpertStart:
    """The accepted scene of a group and its clean expert rollout (physics only)."""

    seed: int
    scene: BuiltScene
    ik: Any
    program: Any
    result: RolloutResult
    rejected: list[int]


def expert_start(task: Task, base_seed: int, group_id: int, runner: SceneRunner, n_frames: int,
                 timing: GroupTiming) -> ExpertStart:
    """The group's scene seed: the first attempt whose scripted expert succeeds cleanly.

    For group ``g`` the seed of attempt ``a`` is :func:`scene_seed` ``(base_seed, g, a)``; a seed
    whose expert diverges, fails or raises any event is rejected. ``generate`` and ``rollout``
    both start their groups here, so they use the same initial states. The runner is left
    holding the accepted scene.

    Raises:
        ExpertFailedError: no seed in ``MAX_ATTEMPTS`` attempts gave a clean expert success.
    """
    rejected: list[int] = []
    # scene -> runner -> trace -> labels -> writer: the runner builds the seed's scene and
    # steps and records it frame by frame for every episode of the group
    for attempt in range(MAX_ATTEMPTS):
        seed = scene_seed(base_seed, group_id, attempt)
        scene, ik = runner.load(seed), make_ik()
        t0 = time.perf_counter()
        expert = task.expert_program(scene.layout)
        try:
            base = run_program(runner, ik, expert, n_frames)  # physics only: check the expert first
        except SimulationUnstableError:
            timing.physics += time.perf_counter() - t0
            rejected.append(seed)
            continue
        timing.physics += time.perf_counter() - t0
        t0 = time.perf_counter()
        ok, events = task.detect(base.trace, scene.layout)
        timing.labels += time.perf_counter() - t0
        if ok and not events:
            return ExpertStart(seed, scene, ik, expert, base, rejected)
        rejected.append(seed)
    raise ExpertFailedError(f"group {group_id}: the expert failed on {MAX_ATTEMPTS} seeds in a row: {rejected}")


def make_group_runner(task: Task, cfg: GenerateConfig) -> SceneRunner:
    """The scene runner of a generation run, at the run's frame rate and image size."""
    return SceneRunner(task, cfg.render.fps, _stage(cfg))


def joint_table(model: mujoco.MjModel) -> list[dict[str, Any]]:
    """Name, type, body and qpos/qvel addresses of every joint (for outside scripts)."""
    types = {0: "free", 1: "ball", 2: "slide", 3: "hinge"}
    rows = []
    for j in range(model.njnt):
        rows.append({
            "name": model.joint(j).name,
            "type": types[int(model.jnt_type[j])],
            "body": model.body(int(model.jnt_bodyid[j])).name,
            "qposadr": int(model.jnt_qposadr[j]),
            "dofadr": int(model.jnt_dofadr[j]),
        })
    return rows


def versions() -> dict[str, str]:
    import pyarrow

    return {"simfail": simfail.__version__, "mujoco": mujoco.__version__, "numpy": np.__version__,
            "pyarrow": pyarrow.__version__, "python": platform.python_version()}


def summarize(results: list[GroupResult]) -> dict[str, Any]:
    eps = [e for r in results for e in r.episodes]
    by_type = Counter(ev.type for e in eps for ev in e.failures)
    realized: dict[str, list[int]] = {}
    for e in eps:
        if e.variant == "expert":
            continue
        name = e.perturbation.get("name", e.variant)
        realized.setdefault(name, [0, 0])
        realized[name][1] += 1
    # failure events by how many camera views show them ("unknown": visibility not computed)
    views = Counter("unknown" if ev.visible_in is None else str(len(ev.visible_in)) for e in eps for ev in e.failures)
    return {"episodes": len(eps), "groups": len(results), "success": sum(e.success for e in eps),
            "failures_by_type": dict(sorted(by_type.items())), "variants": realized,
            "events_by_views": {k: views.get(k, 0) for k in ("0", "1", "2", "3", "unknown")}}


def config_dict(cfg: GenerateConfig) -> dict[str, Any]:
    return json.loads(json.dumps(asdict(cfg)))


class GroupSink:
    """Writes groups on a background thread, so that encoding and writing group ``g`` (ffmpeg
    subprocesses, parquet) overlap the physics and rendering of group ``g + 1``. At most one
    group waits, so memory stays bounded. Used by ``generate`` and by ``bench`` alike.

    A group generated with ``defer_frames=True`` goes in through :meth:`submit_result`: the
    writer thread, not the main thread, waits for its last frames to be drawn.

    Args:
        writer: The dataset writer.
        nq, nv: Widths the ``sim.qpos`` / ``sim.qvel`` columns are zero-padded to.
    """

    def __init__(self, writer, nq: int, nv: int):
        self.writer = writer
        self.nq, self.nv = nq, nv
        #: seconds spent writing groups (background) and finalizing meta, and waiting on the
        #: main thread for the writer (waits for frames are in each group's ``render_wait``)
        self.write_s = 0.0
        self.finalize_s = 0.0
        self.wait_s = 0.0
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="simfail-writer")
        self._pending = None
        #: frame arrays of written episodes, reused by the next groups' render workers
        #: (pass it to :func:`generate_group`); a group that fails to write gives none back
        self.frame_pool = FramePool()

    def _write(self, group_id: int, episodes: list[EpisodeRecord], meta: dict[str, Any],
               ready: Callable[[], None] | None, frames_ready: Callable[[int], None] | None = None,
               cancel: Callable[[], None] | None = None) -> None:
        if ready is not None and frames_ready is None:
            ready()
        t0 = time.perf_counter()
        # the group's entry (task, scene seed) reaches meta/simfail.json before its files are
        # committed: a crash between the two must not leave a committed group that resume
        # keeps but nothing can rebuild (an entry without files is redone and overwritten)
        self.writer.finalize(meta)
        t1 = time.perf_counter()
        _pad_sim_columns(episodes, self.nq, self.nv)
        if frames_ready is None:
            self.writer.write_group(group_id, episodes)
        else:  # each episode is encoded as soon as its frames are drawn
            try:
                self.writer.write_group(group_id, episodes, frames_ready=frames_ready, ready=ready)
            except BaseException:
                if cancel is not None:  # ready() may not have run: stop the frames still drawing
                    cancel()
                raise
        for ep in episodes:  # the frames are on disk now: the next groups draw into them
            self.frame_pool.give_frames(ep.frames)
            ep.frames = {}
        t2 = time.perf_counter()
        self.writer.finalize(meta)
        self.write_s += t2 - t1
        self.finalize_s += (t1 - t0) + (time.perf_counter() - t2)

    def wait(self) -> None:
        """Block until the group being written is on disk (re-raising its error)."""
        if self._pending is not None:
            t0 = time.perf_counter()
            try:
                self._pending.result()
            finally:
                self._pending = None
                self.wait_s += time.perf_counter() - t0

    def submit(self, group_id: int, episodes: list[EpisodeRecord], meta: dict[str, Any], *,
               ready: Callable[[], None] | None = None,
               frames_ready: Callable[[int], None] | None = None,
               cancel: Callable[[], None] | None = None) -> None:
        """Write a group once the previous one is written; ``ready`` (called on the writer
        thread) blocks until the episodes' frames are drawn. With ``frames_ready`` (blocks
        until episode ``j``'s frames are drawn) the writer encodes each episode as soon as its
        frames exist and calls ``ready`` once they are encoded, before building the tables;
        ``cancel`` stops the drawing if that write fails first."""
        self.wait()
        self._pending = self._pool.submit(self._write, group_id, episodes, meta, ready, frames_ready, cancel)

    def submit_result(self, result: GroupResult, meta: dict[str, Any]) -> None:
        """Write a generated group, its frames collected on the writer thread; if the sink
        does not take it (the previous group's write failed), its render worker is stopped."""
        try:
            self.submit(result.group_id, result.episodes, meta, ready=result.wait_frames,
                        frames_ready=None if result.frames_ready else result.wait_episode_frames,
                        cancel=result.cancel_frames)
        except BaseException:
            result.cancel_frames()
            raise

    def close(self) -> None:
        try:
            self.wait()
        finally:
            self._pool.shutdown(wait=True)
            self.frame_pool.clear()

    def __enter__(self) -> GroupSink:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: ``task=all``: one dataset spanning every registered task category.
ALL_TASKS = "all"


def run_tasks(cfg: GenerateConfig) -> list[str]:
    """The task categories a run covers, in group order."""
    return task_names() if cfg.task == ALL_TASKS else [cfg.task]


def task_config(cfg: GenerateConfig, task: Task) -> GenerateConfig:
    """``cfg`` for one task of a run: with ``task=all`` a list of failure names keeps the ones
    this task offers (a name no task offers is an error, see :func:`validate_failures`)."""
    if cfg.task != ALL_TASKS or cfg.failures.names in (["all"], ["*"]):
        return cfg
    ops = available_operators(task)
    names = [n for n in failure_names(task, list(cfg.failures.names)) if n in ops]
    return replace(cfg, task=task.name, failures=replace(cfg.failures, names=names))


def validate_failures(cfg: GenerateConfig) -> None:
    """Raise UnknownNameError for a failure name that none of the run's tasks offers."""
    tasks = [get_task(t) for t in run_tasks(cfg)]
    alternative_plan(cfg, 0)  # unknown clean-alternative names
    if len(tasks) == 1:
        variant_plan(tasks[0], cfg, 0)
        return
    offered = sorted({n for t in tasks for n in available_operators(t)} | {GENERIC_ALIAS})
    for n in cfg.failures.names:
        if n not in ("all", "*") and n not in offered:
            raise UnknownNameError("failure", n, offered)


def group_plan(cfg: GenerateConfig) -> list[tuple[str, int]]:
    """(task, group id) of every group of a run; with ``task=all`` task ``k`` (in
    :func:`run_tasks` order) owns the group ids ``k * groups .. (k + 1) * groups - 1``."""
    return [(t, k * cfg.groups + g) for k, t in enumerate(run_tasks(cfg)) for g in range(cfg.groups)]


def _pad_sim_columns(episodes: list[EpisodeRecord], nq: int, nv: int) -> None:
    """Zero-pad ``sim.qpos`` / ``sim.qvel`` to the dataset's widths (``task=all`` datasets hold
    the widest task's width; each task's own width is in ``meta/simfail.json`` ``tasks``)."""
    for ep in episodes:
        for key, width in (("sim.qpos", nq), ("sim.qvel", nv)):
            a = ep.columns[key]
            if a.shape[1] < width:
                ep.columns[key] = np.pad(a, ((0, 0), (0, width - a.shape[1])))


def run(cfg: GenerateConfig, *, log=print) -> dict[str, Any]:
    """Generate ``cfg.groups`` groups (per task with ``task=all``) into ``cfg.out``, resuming if
    asked; return a summary."""
    from tqdm import tqdm

    from simfail.dataset.writer import DatasetWriter
    from simfail.scale.gpu import apply_egl_device

    if cfg.executor != "local":  # groups sharded over workers, merged into one dataset
        from simfail.scale.executor import make_executor
        from simfail.scale.sharded import run_sharded

        validate_failures(cfg)
        with make_executor(cfg.executor, cfg.ray) as executor:
            return run_sharded(cfg, executor, log=log)
    # the EGL device must be chosen before the first GL context of this process
    apply_egl_device(cfg.render.backend, cfg.render.gpu)
    validate_failures(cfg)  # before touching the disk
    names = run_tasks(cfg)
    tasks = {t: get_task(t) for t in names}
    # one runner per task, built before the writer so its prototype gives the state size
    runners = {t: make_group_runner(tasks[t], task_config(cfg, tasks[t])) for t in names}
    probes = {t: runners[t].prototype_model for t in names}
    nq = max(m.nq for m in probes.values())
    nv = max(m.nv for m in probes.values())
    mode = "resume" if cfg.resume else "overwrite" if cfg.overwrite else "new"
    writer = DatasetWriter(
        cfg.out, fps=cfg.render.fps, image_size=(cfg.render.height, cfg.render.width),
        state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=nq, nv=nv,
        mode=mode, chunks_size=cfg.dataset.chunks_size, crf=cfg.dataset.crf, preset=cfg.dataset.preset,
        encoder_nice=cfg.dataset.encoder_nice,
    )
    done = set(writer.completed_groups())
    todo = [(t, g) for t, g in group_plan(cfg) if g not in done]
    results: list[GroupResult] = []
    seeds: dict[int, dict[str, Any]] = {}
    meta_path = writer.root / "meta" / "simfail.json"
    if meta_path.exists():
        seeds = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items()}
    t_start = time.perf_counter()
    timing = GroupTiming()
    bar = tqdm(todo, desc=f"simfail {cfg.task}", unit="group", disable=not cfg.progress)
    with GroupSink(writer, nq, nv) as sink:
        for name, g in bar:
            task = tasks[name]
            res = write_group(sink, cfg, probes, seeds, task, name, g, runners[name])
            results.append(res)
            bar.set_postfix(task=name, episodes=sum(len(r.episodes) for r in results))
    t_write = [sink.write_s + sink.finalize_s]
    for res in results:  # render times are final once the sink has written every group
        for k in ("physics", "render", "labels", "visibility", "frames_rendered", "frames_written", "frames_segmented"):
            setattr(timing, k, getattr(timing, k) + getattr(res.timing, k))
    writer.finalize(_meta(cfg, probes, seeds))
    summary = summarize(results)
    summary.update({"skipped_groups": sorted(done), "seconds": time.perf_counter() - t_start,
                    "time": {"physics": timing.physics, "render": timing.render, "labels": timing.labels,
                             "visibility": timing.visibility,
                             "write_encode": t_write[0]},
                    "out": str(writer.root)})
    return summary


def write_group(sink: GroupSink, cfg: GenerateConfig, models: dict[str, mujoco.MjModel],
                seeds: dict[int, dict[str, Any]], task: Task, task_name: str, group_id: int,
                runner: SceneRunner) -> GroupResult:
    """Generate group ``group_id`` of ``task`` on ``runner`` and hand it to ``sink`` for writing.

    Records the group's seed entry (task, seed, rejected expert seeds, instruction, unstable
    variants if any) in ``seeds`` (updated in place) and submits the result with a meta
    snapshot holding the seeds so far; frames are deferred to the sink."""
    res = generate_group(task, task_config(cfg, task), group_id, runner=runner, defer_frames=True,
                         frame_pool=sink.frame_pool)
    seeds[group_id] = {"task": task_name, "seed": res.seed, "rejected_expert_seeds": res.rejected_seeds,
                       "instruction": res.episodes[0].instruction}
    if res.unstable_variants:
        seeds[group_id]["unstable_variants"] = res.unstable_variants
    if getattr(res, "skipped_variants", None):
        seeds[group_id]["skipped_variants"] = res.skipped_variants
    sink.submit_result(res, _meta(cfg, models, dict(seeds)))
    return res


def _meta(cfg: GenerateConfig, models: dict[str, mujoco.MjModel], seeds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """``meta/simfail.json``. ``joints``/``nq``/``nv`` describe the dataset's ``sim.qpos`` /
    ``sim.qvel`` columns for a single-task run; ``tasks`` gives every task's own joint table and
    widths (with ``task=all`` the columns are zero-padded to the widest task)."""
    first = next(iter(models.values()))
    return {
        "versions": versions(),
        "config": config_dict(cfg),
        "task": cfg.task,
        "groups": {str(k): v for k, v in sorted(seeds.items())},
        "tasks": {t: {"nq": int(m.nq), "nv": int(m.nv), "joints": joint_table(m)} for t, m in models.items()},
        "joints": joint_table(first) if len(models) == 1 else [],
        "nq": max(int(m.nq) for m in models.values()),
        "nv": max(int(m.nv) for m in models.values()),
        "labels": {
            "reward": "progress * prod(1 - W[cat]*severity) over task/quality events from their visible "
                      "frame (W: task 0.5, quality 0.3); 0 from the visible frame of any safety event",
            "score": "100 (success) or 60*final progress, minus 50*severity per safety event and "
                     "25*severity per quality event, clipped to [0, 100]",
            "failure": "true from the visible frame of the first failure event",
            "visible_frame": "earliest frame a camera view shows the event (visible_frames per view, from 64x64 "
                             "geom segmentation, docs/visibility.md); the physics frame where no view does (visible_in: [])",
            "action": "action[t] is the command issued after observing frame t: 7 joint targets [rad], gripper close in [0,1]",
        },
    }
