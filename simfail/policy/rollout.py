"""``simfail rollout``: run policies in simfail's scenes and label their closed-loop episodes.

For each of ``seeds`` initial states (group ``g`` gets the scene seed ``generate`` gives group
``g``: the first attempt whose scripted expert succeeds cleanly), every policy of the run is
rolled out ``samples`` times (policy seeds ``0..samples-1`` mixed with the scene seed); all of
them, plus the scripted expert's reference episode with ``include_expert=true``, form one group.
Each episode is recorded by the same :class:`~simfail.core.runner.SceneRunner`, labelled by the
same detectors and scoring as a generated one, ranked within its group, drawn by the same render
worker and written by the same :class:`~simfail.dataset.writer.DatasetWriter` (atomic groups,
``resume=true``), with the policy in the ``simfail.policy`` column.

Variants are named ``LABEL#k`` (``k`` = sample); the reference episode is ``expert`` (policy
``scripted_expert``).
"""

from __future__ import annotations

import json
import time
import zlib
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from simfail.core.episode import VIEWS, EpisodeRecord
from simfail.core.observation import Observer
from simfail.core.rollout import RolloutResult, frame_count
from simfail.core.runner import HOME_ACTION, SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.task import Task, get_task, task_names
from simfail.errors import ConfigError, SimulationUnstableError, UnknownNameError
from simfail.labels.trace import Trace
from simfail.policy.base import EpisodeContext, PolicyError, PolicyNeeds, check_actions, policy_needs
from simfail.policy.registry import load_policy
from simfail.report import write_summary_json
from simfail.counterfactual.closed_loop import POLICY_PHASE  # the phase label of policy steps
from simfail.counterfactual.replay import CONTINUATIONS
from simfail.scale.executor import EXECUTORS, RayConfig

#: ``simfail.policy`` of the scripted expert's reference episode.
REFERENCE_POLICY = "scripted_expert"
ON_POLICY_ERROR = ("raise", "skip")


def _f(default: Any, help: str, example: str, **meta: Any) -> Any:
    """A schema field (see :mod:`simfail.schema`): default (a callable: a factory), one-line
    ``help``, a ``key=value`` example, optional ``range``/``choices``."""
    md = {"help": help, "example": example, **meta}
    if callable(default):
        return field(default_factory=default, metadata=md)
    return field(default=default, metadata=md)


@dataclass
class RolloutConfig:
    """Settings of ``simfail rollout`` (``key=value`` on the command line; ``policy.KEY=VALUE``
    and ``render.width=`` / ``render.height=`` / ``render.fps=`` / ``dataset.crf=`` are taken
    out by :func:`split_policy_args`)."""

    policy: str = _f("expert", "the policy: a registered name (expert, noisy_expert, lerobot ...) or "
                     "package.module:factory; policy.KEY=VALUE passes one argument (VALUE read as YAML)",
                     "policy=noisy_expert")
    policies: List[str] = _f(list, "several policies in the same groups, each NAME or LABEL=NAME (overrides policy)",
                             "policies=[expert,noisy=noisy_expert]")
    policy_kwargs: Dict[str, Any] = _f(dict, "policy arguments: policy.KEY=VALUE (every policy) or "
                                       "policy.LABEL.KEY=VALUE (one of policies)", "policy.level=2")
    task: str = _f("pick_place", "task category (see simfail list)", "task=stack")
    seeds: int = _f(2, "initial states (groups): the scenes generate uses for groups 0..N-1", "seeds=50",
                    range=(1, None))
    samples: int = _f(2, "rollouts per policy per initial state (policy seeds 0..N-1)", "samples=4", range=(1, None))
    seed: int = _f(0, "base seed of the scene seeds (generate's seed=)", "seed=3", range=(0, None))
    out: str = _f("simfail_rollouts", "output dataset folder", "out=data/rollouts")
    include_expert: bool = _f(False, "add the scripted expert's clean episode to every group", "include_expert=true")
    perturb: List[str] = _f(list, "generic operators branched from every rollout, each NAME or NAME@MAGNITUDE "
                            "(magnitude in [0, 1]; default: the middle of its failure range; docs/recovery.md)",
                            "perturb=[gripper_release,action_offset@0.3]")
    continuation: str = _f("open_loop", "after a perturbation: open_loop (the rollout's own actions go on) or "
                           "closed_loop (the policy takes over from the perturbed state)", "continuation=closed_loop",
                           choices=list(CONTINUATIONS))
    on_policy_error: str = _f("raise", "raise: stop with one error; skip: leave the episode out and count it",
                              "on_policy_error=skip", choices=list(ON_POLICY_ERROR))
    width: int = _f(256, "image width of the videos in pixels, even (also render.width=)", "render.width=128",
                    range=(64, 1024))
    height: int = _f(256, "image height of the videos in pixels, even (also render.height=)", "render.height=128",
                     range=(64, 1024))
    fps: int = _f(10, "frames per second (also render.fps=)", "render.fps=20", range=(1, 60))
    crf: int = _f(23, "x264 constant rate factor of the videos (also dataset.crf=)", "dataset.crf=18", range=(0, 51))
    render: bool = _f(True, "draw and write the videos (false: labels and summary only, no dataset)", "render=false")
    resume: bool = _f(False, "continue the dataset in out (same settings)", "resume=true")
    overwrite: bool = _f(False, "replace the simfail dataset in out", "overwrite=true")
    progress: bool = _f(True, "progress bar", "progress=false")
    json: Optional[str] = _f(None, "also save the summary as JSON to this file (atomic)", "json=summary.json")
    executor: str = _f("local", "where the groups run: local (this process) or ray (shards on a Ray cluster, "
                       "merged into out; docs/scale.md)", "executor=ray", choices=list(EXECUTORS))
    ray: RayConfig = _f(RayConfig, "Ray cluster, workers and retries (executor=ray only)", "ray.workers=4")

    def validate(self) -> None:
        from simfail.policy.registry import resolve_factory
        from simfail.schema import check_ranges

        if self.executor not in EXECUTORS:
            raise UnknownNameError("executor", self.executor, list(EXECUTORS))
        self.ray.validate()
        check_ranges(self)
        if self.task not in task_names():
            raise UnknownNameError("task", self.task, task_names())
        for key in ("seeds", "samples", "width", "height", "fps"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ConfigError(f"{key} must be a whole number >= 1, got {v!r}")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"render.width and render.height must be even, got {self.width}x{self.height}")
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a whole number >= 0, got {self.seed!r}")
        if not 0 <= self.crf <= 51:
            raise ConfigError(f"dataset.crf must be in [0, 51], got {self.crf}")
        if self.on_policy_error not in ON_POLICY_ERROR:
            raise UnknownNameError("on_policy_error mode", self.on_policy_error, ON_POLICY_ERROR)
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true exclude each other")
        if not isinstance(self.policies, list):
            raise ConfigError(f"policies must be a list, e.g. policies=[expert,noisy_expert], got {self.policies!r}")
        specs = policy_specs(self)
        labels = [s.label for s in specs]
        dup = sorted({x for x in labels if labels.count(x) > 1})
        if dup:
            raise ConfigError(f"policy labels must be unique, {dup} repeats: name them, "
                              "e.g. policies=[low=noisy_expert,high=noisy_expert]")
        from simfail.config import check_json_path

        check_json_path(self.json)
        if REFERENCE_POLICY in labels:
            raise ConfigError(f"the policy label {REFERENCE_POLICY!r} is reserved for include_expert=true")
        for s in specs:  # unknown names / unimportable modules: one error before any work
            resolve_factory(s.spec)
        if self.continuation not in CONTINUATIONS:
            raise UnknownNameError("continuation", self.continuation, CONTINUATIONS)
        if not isinstance(self.perturb, list):
            raise ConfigError(f"perturb must be a list, e.g. perturb=[gripper_release], got {self.perturb!r}")
        perturb_specs(self)


@dataclass
class PolicySpec:
    label: str
    spec: str
    kwargs: dict[str, Any]


def policy_specs(cfg: RolloutConfig) -> list[PolicySpec]:
    """The run's policies with their labels and keyword arguments."""
    entries = list(cfg.policies) if cfg.policies else [cfg.policy]
    out = []
    for e in entries:
        e = str(e)
        label, sep, spec = e.partition("=")
        if not sep:
            label, spec = e.rsplit(":", 1)[-1], e
        if not label or not spec:
            raise ConfigError(f"bad policy entry {e!r}: use NAME, module:factory or LABEL=NAME")
        out.append(PolicySpec(label, spec, {}))
    labels = {s.label for s in out}
    for key, value in cfg.policy_kwargs.items():
        head, dot, rest = key.partition(".")
        if dot and head in labels:
            next(s for s in out if s.label == head).kwargs[rest] = value
        else:
            for s in out:
                s.kwargs[key] = value
    return out


@dataclass
class PerturbSpec:
    """A generic operator branched from every rollout, at ``magnitude``."""

    name: str
    magnitude: float


def perturb_specs(cfg: RolloutConfig) -> list[PerturbSpec]:
    """``perturb=`` entries (``NAME`` or ``NAME@MAGNITUDE``) as checked specs; an unknown
    operator lists the known ones."""
    from simfail.counterfactual.operators import OPERATORS

    out: list[PerturbSpec] = []
    for e in cfg.perturb:
        name, sep, mag = str(e).partition("@")
        name = name.strip()
        if name not in OPERATORS.names():
            raise UnknownNameError("generic operator", name, OPERATORS.names())
        op = OPERATORS.get(name)
        if sep:
            try:
                m = float(mag)
            except ValueError:
                raise ConfigError(f"perturb entry {e!r}: the magnitude must be a number in [0, 1]") from None
            if not 0.0 <= m <= 1.0:
                raise ConfigError(f"perturb entry {e!r}: the magnitude must be in [0, 1], got {m}")
        else:
            m = round(sum(op.failure_range) / 2.0, 4)
        if any(p.name == name and p.magnitude == m for p in out):
            raise ConfigError(f"perturb entry {e!r} repeats")
        out.append(PerturbSpec(name, m))
    return out


@dataclass
class LoadedPolicy:
    spec: PolicySpec
    policy: Any
    needs: PolicyNeeds
    observer: Observer


def load_policies(cfg: RolloutConfig, task: Task, object_names: list[str]) -> list[LoadedPolicy]:
    return [load_one(s, object_names, cfg.width, cfg.height) for s in policy_specs(cfg)]


def load_one(s: PolicySpec, object_names: list[str], width: int, height: int) -> LoadedPolicy:
    """Build one policy and its observer (images at its ``needs.image_size`` or
    ``width`` x ``height``)."""
    pol = load_policy(s.spec, **s.kwargs)
    needs = policy_needs(pol)
    unknown = [v for v in needs.views if v not in VIEWS]
    if unknown:
        raise ConfigError(f"policy {s.label!r} asks for unknown view(s) {unknown}; views: {list(VIEWS)}")
    h, w = needs.image_size or (height, width)
    obs = Observer(object_names, needs.views, w, h, pixels=bool(needs.views))
    return LoadedPolicy(s, pol, needs, obs)


def policy_seed(scene_seed: int, label: str, sample: int) -> int:
    """Seed of sample ``k`` of a policy on a scene (31 bits)."""
    ss = np.random.SeedSequence([int(scene_seed), zlib.crc32(label.encode()), int(sample), 0x9011C])
    return int(ss.generate_state(1)[0] & 0x7FFFFFFF)


def action_box(runner: SceneRunner) -> tuple[np.ndarray, np.ndarray]:
    """``(8,)`` lower / upper bounds of an action: the arm actuators' ctrlrange, gripper [0, 1]."""
    core = runner.core
    rng = core.model.actuator_ctrlrange[core.robot.arm_ctrl]
    return np.concatenate([rng[:, 0], [0.0]]), np.concatenate([rng[:, 1], [1.0]])


@dataclass
class EpisodeRun:
    trace: Trace
    policy_s: float
    act_calls: int
    #: per-frame simulator states (``keep_states=True``): what a counterfactual branches from
    states: Optional[List[np.ndarray]] = None


def run_policy(runner: SceneRunner, lp: LoadedPolicy, ctx: EpisodeContext, pseed: int,
               episode_key: Any, keep_states: bool = False) -> EpisodeRun:
    """One closed-loop episode of ``lp`` from the runner's loaded scene at rest.

    The policy observes frame ``t`` and its action drives the step to frame ``t + 1`` (step
    ``t``), through the :class:`~simfail.counterfactual.closed_loop.PolicyDriver` that a
    closed-loop continuation uses too. Raises :class:`PolicyError` naming the policy, the scene
    seed, the policy seed and the step for a policy that raises or returns a bad action.
    """
    from simfail.counterfactual.closed_loop import PolicyDriver

    runner.reset_state()
    runner.start(HOME_ACTION, POLICY_PHASE)
    driver = PolicyDriver(lp, ctx, pseed, episode_key)
    driver.start(runner.core, 0)
    states = [runner.core.get_state()] if keep_states else None
    for f in range(ctx.n_frames - 1):
        action = driver.act(runner.core, f)
        runner.step(action, driver.phase)
        if states is not None:
            states.append(runner.core.get_state())
    return EpisodeRun(runner.trace, driver.policy_s, driver.act_calls, states)


# ------------------------------------------------------------------------------ groups


def _import_generate():
    from simfail import generate as gen

    return gen


@dataclass
class RolloutTiming:
    policy: float = 0.0
    act_calls: int = 0


def rollout_group(task: Task, cfg: RolloutConfig, policies: list[LoadedPolicy], group_id: int,
                  runner: SceneRunner, *, render: bool = True, defer_frames: bool = False,
                  visibility: bool = True):
    """Roll out every policy ``cfg.samples`` times on group ``group_id``'s initial state, label
    and rank the episodes; returns a :class:`simfail.generate.GroupResult` (frames drawn on a
    render worker as for ``generate``) with ``policy_errors`` and ``policy_time`` attributes.

    With ``render`` and ``visibility`` the events' ``visible_frames`` / ``visible_in`` come from
    the cameras, on the same render worker and through the same hook as ``generate``
    (:func:`simfail.generate.visibility_hook`, docs/visibility.md)."""
    gen = _import_generate()
    from simfail.labels.visibility import SEG_SIZE
    from simfail.render.worker import RenderWorker

    fps = cfg.fps
    n_frames = frame_count(task.duration, fps)
    timing = gen.GroupTiming()
    start = gen.expert_start(task, cfg.seed, group_id, runner, n_frames, timing)
    scene, seed = start.scene, start.seed
    low, high = action_box(runner)
    unstable: list[dict[str, str]] = []
    errors: list[dict[str, str]] = []
    skipped: list[dict[str, str]] = []  # perturbations that do not apply to a rollout
    ptime = RolloutTiming()
    worker = (RenderWorker(scene.model, VIEWS, cfg.width, cfg.height, seg_size=SEG_SIZE if visibility else 0)
              if render else None)
    see, seen = gen.visibility_hook(worker if visibility else None, scene.model, runner)
    frames: list[Future] = []
    episodes: list[EpisodeRecord] = []
    try:
        if cfg.include_expert:
            if worker is not None:
                frames.append(worker.submit(start.result.trace.qpos))
            t0 = time.perf_counter()
            ep = gen._record(task, scene, start.result, group_id, "expert", {}, fps)
            timing.labels += time.perf_counter() - t0
            ep.policy = REFERENCE_POLICY
            episodes.append(ep)
            see(ep, start.result)
        for lp in policies:
            for k in range(cfg.samples):
                pseed = policy_seed(seed, lp.spec.label, k)
                ctx = EpisodeContext(task.name, scene.layout.instruction, fps, n_frames, seed, low, high,
                                     layout=scene.layout, task_obj=task)
                variant = f"{lp.spec.label}#{k}"
                t0 = time.perf_counter()
                try:
                    run = run_policy(runner, lp, ctx, pseed, episode_key=(group_id, variant),
                                     keep_states=bool(cfg.perturb))
                except (PolicyError, SimulationUnstableError) as exc:
                    timing.physics += time.perf_counter() - t0
                    note_failed_run(exc, cfg, variant, lp.spec.label, errors, unstable)
                    continue
                timing.physics += time.perf_counter() - t0 - run.policy_s
                ptime.policy += run.policy_s
                ptime.act_calls += run.act_calls
                source_frames = worker.submit(run.trace.qpos) if worker is not None else None
                if source_frames is not None:
                    frames.append(source_frames)
                t0 = time.perf_counter()
                params = {"name": "policy", "kind": "rollout", "policy": lp.spec.label, "spec": lp.spec.spec,
                          "kwargs": _jsonable(lp.spec.kwargs), "policy_seed": pseed, "sample": k}
                ep = gen._record(task, scene, RolloutResult(run.trace), group_id, variant, params, fps)
                ep.policy = lp.spec.label
                episodes.append(ep)
                see(ep, RolloutResult(run.trace))
                timing.labels += time.perf_counter() - t0
                for v in branch_variants(cfg, runner, lp, ctx, pseed, run, variant, group_id, params, ptime,
                                         timing, errors, unstable, skipped):
                    if worker is not None:
                        frames.append(worker.submit(v.trace.qpos, prefix=source_frames, first=v.onset + 1))
                    t0 = time.perf_counter()
                    ep = gen._record(task, scene, RolloutResult(v.trace), group_id, v.name, v.params, fps)
                    ep.policy = lp.spec.label
                    episodes.append(ep)
                    see(ep, RolloutResult(v.trace))
                    timing.labels += time.perf_counter() - t0
    except BaseException:
        if worker is not None:
            worker.close(cancel=True)
        raise
    return gen.finish_group(group_id, seed, start.rejected, episodes, timing, unstable, worker, frames, seen,
                            defer_frames, policy_errors=errors, policy_time=ptime,
                            perturbations_skipped=skipped)


def close_sink_and_observers(sink: Any, policies: list[LoadedPolicy]) -> None:
    """The ``finally`` of a rollout loop: close the dataset's group sink (``None`` when nothing
    is written) and every loaded policy's observer."""
    if sink is not None:
        sink.close()
    for lp in policies:
        lp.observer.close()


def note_failed_run(exc: PolicyError | SimulationUnstableError, cfg: RolloutConfig, variant: str, policy: str,
                    errors: list[dict[str, str]], unstable: list[dict[str, str]]) -> None:
    """Record a rollout (or a branched continuation) named ``variant`` that ended in ``exc``: a
    :class:`PolicyError` is re-raised when ``on_policy_error=raise``, else listed in ``errors``;
    a :class:`SimulationUnstableError` is listed in ``unstable``. Call it from the ``except``."""
    if isinstance(exc, PolicyError):
        if cfg.on_policy_error == "raise":
            raise exc
        errors.append({"variant": variant, "policy": policy, "error": str(exc)})
    else:
        unstable.append({"variant": variant, "error": str(exc)})


@dataclass
class BranchedVariant:
    name: str
    trace: Trace
    onset: int
    params: dict[str, Any]


def branch_variants(cfg: RolloutConfig, runner: SceneRunner, lp: LoadedPolicy, ctx: EpisodeContext, pseed: int,
                    run: EpisodeRun, variant: str, group_id: int, params: dict[str, Any], ptime: RolloutTiming,
                    timing: Any, errors: list[dict[str, str]], unstable: list[dict[str, str]],
                    skipped: list[dict[str, str]]) -> list[BranchedVariant]:
    """The ``perturb=`` variants of one rollout: each generic operator's edit branched from the
    rollout (its :class:`~simfail.counterfactual.source.SourceEpisode`: the variant's frames up
    to the onset are the rollout's, bit for bit), continued ``open_loop`` (the rollout's own
    commands) or ``closed_loop`` (the same policy, same seed, takes over after the operator's
    last step through a :class:`~simfail.counterfactual.closed_loop.PolicyDriver`). Variants
    are named ``VARIANT+OPERATOR@MAGNITUDE``; a policy error in a continuation is handled as in
    a rollout (``on_policy_error``). An operator that does not apply to this rollout (a release
    when the policy never closed the gripper) is left out and listed in ``skipped``."""
    from simfail.counterfactual.closed_loop import PolicyDriver
    from simfail.counterfactual.operators import OPERATORS
    from simfail.counterfactual.replay import branch
    from simfail.counterfactual.source import SourceEpisode

    specs = perturb_specs(cfg)
    if not specs:
        return []
    source = SourceEpisode.from_rollout(runner, run.trace, run.states,
                                        {"group": group_id, "variant": variant, "policy": lp.spec.label,
                                         "policy_seed": pseed})
    out: list[BranchedVariant] = []
    for sp in specs:
        name = f"{variant}+{sp.name}@{sp.magnitude:g}"
        rng = np.random.default_rng(np.random.SeedSequence([int(ctx.scene_seed), zlib.crc32(name.encode()), 3]))
        try:
            edit = OPERATORS.get(sp.name).make_edit(source, sp.magnitude, rng)
        except ConfigError as exc:  # e.g. a release in a rollout that never closes the gripper
            skipped.append({"variant": name, "reason": str(exc)})
            continue
        driver = PolicyDriver(lp, ctx, pseed, (group_id, name)) if cfg.continuation == "closed_loop" else None
        t0 = time.perf_counter()
        try:
            trace, _ = branch(runner, source, edit, source.n_frames, continuation=cfg.continuation, driver=driver)
        except (PolicyError, SimulationUnstableError) as exc:
            timing.physics += time.perf_counter() - t0
            note_failed_run(exc, cfg, name, lp.spec.label, errors, unstable)
            continue
        spent = driver.policy_s if driver is not None else 0.0
        timing.physics += time.perf_counter() - t0 - spent
        ptime.policy += spent
        ptime.act_calls += driver.act_calls if driver is not None else 0
        vparams = {**params, "kind": "perturbation", "name": sp.name, **edit.params,
                   "continuation": cfg.continuation, "source": source.describe()}
        out.append(BranchedVariant(name, trace.truncate(len(trace)), int(edit.onset), vparams))
    return out


def group_entry(cfg: RolloutConfig, runner: SceneRunner, res) -> dict[str, Any]:
    """The group's entry in ``meta/simfail.json`` ``groups``."""
    entry = {"task": cfg.task, "seed": res.seed, "rejected_expert_seeds": res.rejected_seeds,
             "instruction": runner.scene.layout.instruction, "episodes": len(res.episodes)}
    if res.unstable_variants:
        entry["unstable_variants"] = res.unstable_variants
    if res.policy_errors:
        entry["policy_errors"] = res.policy_errors
    if getattr(res, "perturbations_skipped", None):
        entry["perturbations_skipped"] = res.perturbations_skipped
    return entry


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(d, default=str))


# ------------------------------------------------------------------------------ the command


def _meta(cfg: RolloutConfig, model, seeds: dict[int, dict[str, Any]]) -> dict[str, Any]:
    gen = _import_generate()
    meta = gen._meta(cfg, {cfg.task: model}, seeds)
    meta["rollout"] = {
        "policies": [{"label": s.label, "spec": s.spec, "kwargs": _jsonable(s.kwargs)} for s in policy_specs(cfg)],
        "samples": cfg.samples,
        "include_expert": cfg.include_expert,
        "reference_policy": REFERENCE_POLICY if cfg.include_expert else None,
        "policy_errors_skipped": sum(len(v.get("policy_errors", [])) for v in seeds.values()),
    }
    return meta


def dataset_writer(cfg: RolloutConfig, model, root: str | Path, mode: str):
    """The :class:`~simfail.dataset.writer.DatasetWriter` of a rollout dataset (or shard) at ``root``."""
    from simfail.dataset.writer import DatasetWriter

    gen = _import_generate()
    return DatasetWriter(
        root, fps=cfg.fps, image_size=(cfg.height, cfg.width), state_names=gen.STATE_NAMES,
        action_names=gen.ACTION_NAMES, nq=model.nq, nv=model.nv, mode=mode, crf=cfg.crf, encoder_nice=19,
        policy_column=True,
    )


def run(cfg: RolloutConfig) -> dict[str, Any]:
    """Roll out ``cfg``'s policies into ``cfg.out``; return the summary (see :func:`summary_table`)."""
    from tqdm import tqdm

    from simfail.dataset.writer import DatasetWriter

    gen = _import_generate()
    cfg.validate()
    if cfg.executor != "local":  # groups sharded over workers, merged into one dataset
        from simfail.scale.rollout import run_sharded_rollout

        return run_sharded_rollout(cfg)
    task = get_task(cfg.task)
    runner = SceneRunner(task, cfg.fps, StageConfig(width=cfg.width, height=cfg.height))
    model = runner.prototype_model
    policies = load_policies(cfg, task, list(runner.prototype.layout.tracked))  # before touching the disk
    mode = "resume" if cfg.resume else "overwrite" if cfg.overwrite else "new"

    def open_writer() -> DatasetWriter:
        return dataset_writer(cfg, model, cfg.out, mode)

    # A new or overwritten dataset is opened only when its first group is ready, so a policy
    # that fails on the first group leaves the output folder as it was (an existing dataset is
    # not deleted); a non-empty folder without resume/overwrite is refused before any physics.
    writer = None
    out = Path(cfg.out)
    if cfg.render and (mode == "resume" or (mode == "new" and out.exists() and (not out.is_dir() or any(out.iterdir())))):
        writer = open_writer()
    done = set(writer.completed_groups()) if writer else set()
    seeds: dict[int, dict[str, Any]] = {}
    if writer is not None:
        meta_path = writer.root / "meta" / "simfail.json"
        if meta_path.exists():
            seeds = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items()}
    todo = [g for g in range(cfg.seeds) if g not in done]
    results = []
    t_start = time.perf_counter()
    bar = tqdm(todo, desc=f"simfail rollout {cfg.task}", unit="group", disable=not cfg.progress)
    sink = None
    try:
        for g in bar:
            res = rollout_group(task, cfg, policies, g, runner, render=cfg.render, defer_frames=True)
            seeds[g] = group_entry(cfg, runner, res)
            results.append(res)
            bar.set_postfix(episodes=sum(len(r.episodes) for r in results))
            if not cfg.render:
                continue
            if writer is None:
                try:
                    writer = open_writer()
                except BaseException:
                    res.cancel_frames()
                    raise
            if sink is None:
                sink = gen.GroupSink(writer, model.nq, model.nv)
            if res.episodes:
                sink.submit_result(res, _meta(cfg, model, dict(seeds)))
            else:  # every episode was skipped: nothing to write, the meta says why
                res.cancel_frames()
        if sink is not None:
            sink.wait()
    finally:
        close_sink_and_observers(sink, policies)
    if writer is not None:
        writer.finalize(_meta(cfg, model, seeds))
    summary = summarize(results)
    summary.update({"seconds": time.perf_counter() - t_start, "skipped_groups": sorted(done),
                    "out": str(writer.root) if writer else None, "task": cfg.task, "seed": cfg.seed,
                    "samples": cfg.samples,
                    "policy_specs": {s.label: {"spec": s.spec, "kwargs": _jsonable(s.kwargs)} for s in policy_specs(cfg)}})
    return summary


def _new_tally() -> dict[str, Any]:
    return {"episodes": 0, "success": 0, "scores": [], "failures": Counter(), "failures_of_failed": Counter(),
            "failed_no_event": 0, "errors_skipped": 0, "unstable": 0}


def summarize(results) -> dict[str, Any]:
    """Per policy: episodes, successes, score distribution, failure types (episodes carrying each
    event type: ``failures`` over all episodes, ``failures_of_failed`` over the failed ones),
    failed episodes without any event (``failed_no_event``, a detector gap), skipped errors."""
    per: dict[str, dict[str, Any]] = {}
    for r in results:
        for e in r.episodes:
            key = summary_key(e)
            p = per.setdefault(key, _new_tally())
            if e.perturbation.get("kind") == "perturbation":
                from simfail.counterfactual.operators import OPERATORS

                p["realized"] = p.get("realized", 0) + int(OPERATORS.get(e.perturbation["name"]).realized(e.failures))
                p["recovered"] = p.get("recovered", 0) + int(any(ev.type == "recovered" for ev in e.failures))
                p["continuation"] = e.perturbation.get("continuation")
            p["episodes"] += 1
            p["success"] += int(e.success)
            p["scores"].append(float(e.score))
            p["failures"].update({ev.type for ev in e.failures})
            if not e.success:
                p["failures_of_failed"].update({ev.type for ev in e.failures})
                p["failed_no_event"] += int(not e.failures)
        for err in getattr(r, "policy_errors", []):
            p = per.setdefault(err["policy"], _new_tally())
            p["errors_skipped"] += 1
        for u in r.unstable_variants:
            label = u["variant"].rsplit("#", 1)[0]
            if label in per:
                per[label]["unstable"] += 1
    out = {}
    for label, p in per.items():
        s = np.asarray(p["scores"]) if p["scores"] else np.zeros(0)
        out[label] = {
            "episodes": p["episodes"], "success": p["success"],
            "success_rate": p["success"] / p["episodes"] if p["episodes"] else 0.0,
            "score_mean": float(s.mean()) if s.size else float("nan"),
            "score_p10_p50_p90": [float(v) for v in np.percentile(s, [10, 50, 90])] if s.size else [],
            "failures": dict(p["failures"].most_common()),
            "failures_of_failed": dict(p["failures_of_failed"].most_common()),
            "failed_no_event": p["failed_no_event"],
            "errors_skipped": p["errors_skipped"], "unstable": p["unstable"],
        }
        if "realized" in p:  # perturbed variants: realization and recovery (docs/recovery.md)
            n = max(p["episodes"], 1)
            out[label].update({"continuation": p["continuation"], "realized": p["realized"],
                               "realization_rate": p["realized"] / n, "recovered": p["recovered"],
                               "recovery_rate": p["recovered"] / n})
    policy_s = sum(getattr(r, "policy_time", RolloutTiming()).policy for r in results)
    return {"groups": len(results), "episodes": sum(len(r.episodes) for r in results), "policies": out,
            "perturbations_skipped": sum(len(getattr(r, "perturbations_skipped", [])) for r in results),
            "time": {"physics": sum(r.timing.physics for r in results),
                     "labels": sum(r.timing.labels for r in results),
                     "render": sum(r.timing.render for r in results), "policy": policy_s}}


def summary_key(e: EpisodeRecord) -> str:
    """Summary row of an episode: its policy, and for a perturbed variant its operator at its
    magnitude (``expert+gripper_release@0.65``)."""
    label = e.policy or "?"
    pert = e.perturbation
    if pert.get("kind") == "perturbation":
        return f"{label}+{pert['name']}@{float(pert.get('magnitude', 0.0)):g}"
    return label


def summary_table(s: dict[str, Any]) -> str:
    from simfail.report import table

    rows = []
    for label, p in s["policies"].items():
        q = p["score_p10_p50_p90"]
        top = ", ".join(f"{k} {v}" for k, v in list(p["failures"].items())[:4]) or "-"
        rows.append([label, str(p["episodes"]), f"{100 * p['success_rate']:.0f}%",
                     f"{p['score_mean']:.1f}" if p["episodes"] else "-",
                     " / ".join(f"{v:.0f}" for v in q) if q else "-", str(p["errors_skipped"]),
                     f"{100 * p['realization_rate']:.0f}%" if "realized" in p else "-",
                     f"{100 * p['recovery_rate']:.0f}%" if "recovered" in p else "-", top])
    t = s["time"]
    head = [f"dataset: {s['out']}" if s.get("out") else "dataset: (render=false: nothing written)",
            f"groups: {s['groups']} (already there: {len(s.get('skipped_groups', []))})   episodes: {s['episodes']}   "
            f"time: {s.get('seconds', 0.0):.1f} s (physics {t['physics']:.1f} s, policy {t['policy']:.1f} s, "
            f"labels {t['labels']:.1f} s, rendering {t['render']:.1f} s on its own thread)"
            + (f"   perturbations that did not apply (left out): {s['perturbations_skipped']}"
               if s.get("perturbations_skipped") else ""), ""]
    return "\n".join(head) + table(rows, ["policy", "episodes", "success", "mean score", "score p10/p50/p90",
                                          "errors skipped", "realized", "recovered",
                                          "most frequent failures (episodes)"])


# ------------------------------------------------------------------------------ command line


#: ``key=`` spellings shared with ``simfail generate`` -> the rollout setting they set.
ALIASES = {"render.width": "width", "render.height": "height", "render.fps": "fps", "dataset.crf": "crf"}


def split_policy_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Take ``policy.KEY=VALUE`` / ``policy.LABEL.KEY=VALUE`` (VALUE read as YAML) out of the
    arguments into ``{"policy_kwargs": {...}}``, rename generate's spellings (``render.width=``
    -> ``width=``, see :data:`ALIASES`) and take ``render=true|false`` (a switch here, not
    generate's render preset) and ``policies=[...]`` (read as YAML). The registry merges the updates over the composed settings."""
    from simfail.stress.commands import _yaml_name_list, _yaml_value

    rest: list[str] = []
    updates: dict[str, Any] = {}
    kwargs: dict[str, Any] = {}
    for a in args:
        key, sep, value = a.partition("=")
        key = key.strip()
        if sep and key.startswith("policy."):
            name = key[len("policy."):]
            if not name or not all(part.isidentifier() for part in name.split(".")):
                raise ConfigError(f"bad policy argument name {name!r} in {a!r}")
            kwargs[name] = _yaml_value(value, key)
        elif sep and key in ALIASES:
            rest.append(f"{ALIASES[key]}={value}")
        elif sep and key == "render":
            updates["render"] = value.strip()
        elif sep and key == "policies":  # LABEL=NAME entries are not Hydra list syntax: read as YAML
            updates["policies"] = _yaml_name_list(value, key,
                                                  "NAME or LABEL=NAME, e.g. policies=[expert,noisy=noisy_expert]")
        else:
            rest.append(a)
    if kwargs:
        updates["policy_kwargs"] = kwargs
    return rest, updates


def rollout_main(cfg: RolloutConfig) -> int:
    """``simfail rollout``: run, print the per-policy summary table, save ``json=`` (atomic)."""
    summary = run(cfg)
    print(summary_table(summary))
    if summary.get("executor"):  # a sharded run: per-worker episodes/hour and the merge cost
        from simfail.scale.sharded import worker_table

        print(worker_table(summary))
    if cfg.json:
        write_summary_json(cfg.json, summary)
    return 0
