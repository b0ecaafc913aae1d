"""``simfail replay demos=DIR``: replay demonstrations, verify them, branch counterfactuals.

Two passes over the selected demos of a demo dataset (:mod:`simfail.replay.demos`):

1. *verify* (physics only, nothing written): every demo is read, replayed on the
   :class:`~simfail.core.runner.SceneRunner` of its (task, scene seed) and checked against its
   ``sim.qpos`` where it has one (:func:`~simfail.replay.verify.replay_demo`); every requested
   operator's onset is checked against the demo's length. Any bad input stops here with one
   ``simfail: error:`` line and leaves ``out`` as it was.
2. *write* (with ``out=``): demo episode ``i`` becomes group ``i``: the replayed demo is the
   group's reference episode (variant ``demo``, labelled by the physics like any episode: a demo
   that fails is a failure, never called an expert) and every operator of ``failures=`` gives
   variants branched from its saved state at the onset (prefix shared bit for bit), written by
   the same :class:`~simfail.dataset.writer.DatasetWriter` as ``generate`` (atomic groups,
   ``resume=true``).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

import numpy as np

from simfail.core.rollout import RolloutResult
from simfail.core.runner import SceneRunner
from simfail.core.scene import StageConfig
from simfail.errors import ConfigError, SimulationUnstableError
from simfail.replay.demos import DemoEpisode, DemoSet, load_demos
from simfail.replay.verify import ReplayDivergenceError, Replayed, replay_demo
from simfail.report import write_summary_json

#: Variant name of a group's reference episode: the replayed demo itself.
REFERENCE_VARIANT = "demo"
CONTINUATIONS = ("open_loop",)
ON_DIVERGENCE = ("raise", "skip")


def _f(default: Any, help: str, example: str, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    if callable(default):
        return field(default_factory=default, metadata=md)
    return field(default=default, metadata=md)


@dataclass
class ReplayConfig:
    """Settings of ``simfail replay`` (``render.width=`` / ``render.height=`` / ``dataset.crf=``
    are accepted as spellings of ``width=`` / ``height=`` / ``crf=``, see :func:`split_args`)."""

    demos: str = _f("", "the demo dataset: a LeRobot v3 folder with 8-wide actions, simfail.task and simfail.seed "
                    "per episode (docs/replay.md)", "demos=data/demos", required=True)
    episodes: List[int] = _f(list, "demo episode indices to replay (default: every episode)", "episodes=[0,3]")
    failures: List[str] = _f(list, "generic operators that branch variants from every demo (simfail list); "
                             "OPERATOR.KEY=VALUE sets one of its parameters (push.object=red_cube)",
                             "failures=[gripper_release,push]")
    operator_params: Dict[str, Any] = _f(dict, "operator parameters: OPERATOR.KEY=VALUE (VALUE read as YAML)",
                                         "gripper_release.onset=0.5")
    continuation: str = _f("open_loop", "after the onset: open_loop replays the rest of the demo's actions",
                           "continuation=open_loop", choices=list(CONTINUATIONS))
    near_misses: bool = _f(True, "also a near-miss variant per operator (magnitude in its near-miss range)",
                           "near_misses=false")
    seed: int = _f(0, "seed of the variants' magnitudes and onsets (mixed with the scene seed)", "seed=3",
                   range=(0, None))
    on_divergence: str = _f("raise", "a demo that leaves its sim.qpos: raise (one error, nothing written) or skip "
                            "(leave it out, count it in the summary and the meta)", "on_divergence=skip",
                            choices=list(ON_DIVERGENCE))
    tolerance: float = _f(0.0, "largest |qpos - demo sim.qpos| accepted at any frame (rad / m); 0: bit for bit",
                          "tolerance=1e-6", range=(0, None))
    out: Optional[str] = _f(None, "output dataset folder (none: verify and label only, nothing written)",
                            "out=data/replayed")
    width: int = _f(256, "image width of the videos in pixels, even (also render.width=)", "render.width=128",
                    range=(64, 1024))
    height: int = _f(256, "image height of the videos in pixels, even (also render.height=)", "render.height=128",
                     range=(64, 1024))
    crf: int = _f(23, "x264 constant rate factor of the videos (also dataset.crf=)", "dataset.crf=18", range=(0, 51))
    resume: bool = _f(False, "continue the dataset in out (same settings)", "resume=true")
    overwrite: bool = _f(False, "replace the simfail dataset in out", "overwrite=true")
    progress: bool = _f(True, "progress bar", "progress=false")
    json: Optional[str] = _f(None, "also save the summary as JSON to this file (atomic)", "json=summary.json")

    def validate(self) -> None:
        from simfail.config import check_json_path
        from simfail.schema import check_ranges

        check_ranges(self)
        if not self.demos:
            raise ConfigError("demos= is required (e.g. demos=data/demos)")
        if self.width % 2 or self.height % 2:
            raise ConfigError(f"render.width and render.height must be even, got {self.width}x{self.height}")
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true exclude each other")
        if self.on_divergence not in ON_DIVERGENCE:
            from simfail.errors import UnknownNameError

            raise UnknownNameError("on_divergence mode", self.on_divergence, ON_DIVERGENCE)
        if self.continuation not in CONTINUATIONS:
            from simfail.errors import UnknownNameError

            raise UnknownNameError("continuation", self.continuation, CONTINUATIONS)
        if not isinstance(self.tolerance, (int, float)) or not np.isfinite(self.tolerance) or self.tolerance < 0:
            raise ConfigError(f"tolerance must be a number >= 0, got {self.tolerance!r}")
        if any(isinstance(e, bool) or not isinstance(e, int) or e < 0 for e in self.episodes):
            raise ConfigError(f"episodes must be episode indices >= 0, got {self.episodes!r}")
        dup = sorted({e for e in self.episodes if self.episodes.count(e) > 1})
        if dup:
            raise ConfigError(f"episodes lists {dup} more than once")
        from simfail.replay.branching import check_operators

        if not isinstance(self.failures, list):
            raise ConfigError(f"failures must be a list, e.g. failures=[gripper_release,push], got {self.failures!r}")
        check_operators(list(self.failures), dict(self.operator_params))
        check_json_path(self.json)


# ------------------------------------------------------------------------------ one group


@dataclass
class DemoCheck:
    """What pass 1 learnt about one demo."""

    demo: DemoEpisode
    length: int
    max_abs_diff: float | None
    success: bool
    failures: list[str]


def make_runners(demos: DemoSet, cfg: ReplayConfig) -> dict[str, SceneRunner]:
    """One runner per task of the demos, at the demo dataset's frame rate."""
    from simfail.core.task import get_task

    return {t: SceneRunner(get_task(t), demos.fps, StageConfig(width=cfg.width, height=cfg.height))
            for t in demos.tasks}


def verify_demo(runner: SceneRunner, demo: DemoEpisode, cfg: ReplayConfig, where: str) -> DemoCheck:
    """Pass 1 for one demo: replay, check against ``sim.qpos``, label, check the onsets."""
    from simfail.replay.branching import plan_variants

    rep = replay_demo(runner, demo, tolerance=float(cfg.tolerance), keep_states=bool(cfg.failures), where=where)
    success, events = runner.task.detect(rep.trace, runner.scene.layout)
    plan_variants(runner, rep, cfg, {})  # raises for an onset past the end, an unknown object ...
    return DemoCheck(demo, demo.length, rep.max_abs_diff, bool(success), sorted({e.type for e in events}))


def reference_params(demo: DemoEpisode, root: Path, rep: Replayed, success: bool) -> dict[str, Any]:
    """``simfail.perturbation`` of a group's reference episode: where the demo came from."""
    return {"name": REFERENCE_VARIANT, "kind": "reference",
            "source": {"kind": "demo", "dataset": str(root), "episode": demo.index, "scene_seed": demo.scene_seed},
            "expert": False, "demo_success": bool(success),
            "max_abs_qpos_diff": rep.max_abs_diff}


def replay_group(runner: SceneRunner, demo: DemoEpisode, cfg: ReplayConfig, root: Path, *, render: bool,
                 defer_frames: bool = True):
    """Pass 2 for one demo: the group (reference + branched variants) as a
    :class:`simfail.generate.GroupResult` whose frames are drawn on a render worker."""
    from simfail import generate as gen
    from simfail.core.episode import VIEWS
    from simfail.labels.visibility import SEG_SIZE
    from simfail.render.worker import RenderWorker
    from simfail.replay.branching import branch_variant, plan_variants, realized

    task, fps, group_id = runner.task, runner.fps, demo.index
    timing = gen.GroupTiming()
    t0 = time.perf_counter()
    rep = replay_demo(runner, demo, tolerance=float(cfg.tolerance), keep_states=bool(cfg.failures),
                      where=f" of {root}")
    timing.physics += time.perf_counter() - t0
    scene = runner.scene
    worker = (RenderWorker(scene.model, VIEWS, cfg.width, cfg.height, seg_size=SEG_SIZE) if render else None)
    see, seen = gen.visibility_hook(worker, scene.model, runner)
    frames: list[Future] = []
    unstable: list[dict[str, str]] = []
    realizations: dict[str, list[int]] = {}
    try:
        ref_frames = worker.submit(rep.trace.qpos) if worker is not None else None
        if ref_frames is not None:
            frames.append(ref_frames)
        t0 = time.perf_counter()
        ref_res = RolloutResult(rep.trace)
        success, ref_events = task.detect(rep.trace, scene.layout)
        ref = gen._record(task, scene, ref_res, group_id, REFERENCE_VARIANT,
                          reference_params(demo, root, rep, success), fps)
        timing.labels += time.perf_counter() - t0
        episodes = [ref]
        see(ref, ref_res)
        source, plan = plan_variants(runner, rep, cfg, {"dataset": str(root)})
        for spec in plan:
            t0 = time.perf_counter()
            try:
                res, params = branch_variant(runner, source, spec, cfg.continuation)
            except SimulationUnstableError as exc:
                timing.physics += time.perf_counter() - t0
                unstable.append({"variant": spec.name, "error": str(exc)})
                continue
            timing.physics += time.perf_counter() - t0
            if worker is not None:
                frames.append(worker.submit(res.trace.qpos, prefix=ref_frames, first=spec.onset_frame + 1))
            t0 = time.perf_counter()
            ep = gen._record(task, scene, res, group_id, spec.name, params, fps)
            timing.labels += time.perf_counter() - t0
            episodes.append(ep)
            see(ep, res)
            if spec.kind == "failure":
                counts = realizations.setdefault(spec.operator, [0, 0])
                counts[0] += int(realized(spec.operator, ep.failures, ref_events))
                counts[1] += 1
    except BaseException:
        if worker is not None:
            worker.close(cancel=True)
        raise
    return gen.finish_group(group_id, demo.scene_seed, [], episodes, timing, unstable, worker, frames, seen,
                            defer_frames, replayed=rep, realized=realizations)


# ------------------------------------------------------------------------------ the command


@dataclass
class _MetaConfig:
    """What :func:`simfail.generate._meta` reads of a config: the task and the settings."""

    task: str
    replay: ReplayConfig


def _meta(cfg: ReplayConfig, demos: DemoSet, runners: dict[str, SceneRunner],
          groups: dict[int, dict[str, Any]], divergent: list[dict[str, Any]]) -> dict[str, Any]:
    from simfail import generate as gen

    models = {t: r.prototype_model for t, r in runners.items()}
    task = demos.tasks[0] if len(demos.tasks) == 1 else "all"
    meta = gen._meta(_MetaConfig(task, cfg), models, groups)  # generate's meta: versions, joints, label rules
    meta["replay"] = {
        "demos": str(demos.root), "fps": demos.fps, "continuation": cfg.continuation, "failures": list(cfg.failures),
        "tolerance": float(cfg.tolerance), "left_out_diverged": divergent,
        "reference": f"variant {REFERENCE_VARIANT!r}: the replayed demo, labelled by the physics; it is not an "
                     "expert episode (a demo that fails is labelled a failure); group id = demo episode index",
    }
    return meta


def _group_entry(res, demo: DemoEpisode, runner: SceneRunner) -> dict[str, Any]:
    ref = res.episodes[0]
    entry = {"task": demo.task, "seed": demo.scene_seed, "rejected_expert_seeds": [],
             "instruction": runner.scene.layout.instruction, "demo_episode": demo.index,
             "reference": REFERENCE_VARIANT, "reference_is_expert": False, "reference_success": bool(ref.success),
             "reference_failures": sorted({e.type for e in ref.failures}),
             "max_abs_qpos_diff": res.replayed.max_abs_diff, "episodes": len(res.episodes)}
    if res.unstable_variants:
        entry["unstable_variants"] = res.unstable_variants
    return entry


#: Settings a resumed run must share with the run that started the dataset.
RESUME_KEYS = ("failures", "operator_params", "continuation", "near_misses", "seed", "tolerance")


def check_out(cfg: ReplayConfig) -> None:
    """Refuse an unusable ``out`` before any physics (the writer opens it after the verify
    pass): a file, a non-empty folder without ``resume``/``overwrite``, or a resumed dataset made
    from other demos or with other variant settings."""
    from simfail.errors import OutputDirError

    if cfg.out is None:
        return
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a directory")
    if not cfg.resume and not cfg.overwrite and out.is_dir() and any(out.iterdir()):
        raise OutputDirError(f"output directory {out} is not empty; pass resume=true to continue the dataset in it "
                             "or overwrite=true to replace it")
    meta_path = out / "meta" / "simfail.json"
    if cfg.resume and meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError):
            return  # the writer reports an unreadable dataset
        old, new = meta.get("config", {}).get("replay"), gen_config(cfg)
        if not isinstance(old, dict):
            raise OutputDirError(f"cannot resume in {out}: it was not written by simfail replay")
        if Path(str(meta.get("replay", {}).get("demos", ""))).resolve() != Path(cfg.demos).resolve():
            raise ConfigError(f"cannot resume in {out}: it replays {meta['replay'].get('demos')}, not {cfg.demos}")
        diff = [k for k in RESUME_KEYS if old.get(k) != new.get(k)]
        if diff:
            raise ConfigError(f"cannot resume in {out} with other settings: {', '.join(f'{k} was {old.get(k)!r}, now {new.get(k)!r}' for k in diff)}")


def gen_config(cfg: ReplayConfig) -> dict[str, Any]:
    from simfail import generate as gen

    return gen.config_dict(cfg)


def run(cfg: ReplayConfig, *, log=print) -> dict[str, Any]:
    """Verify every selected demo, then (with ``out=``) write one group per demo; the summary."""
    from tqdm import tqdm

    from simfail import generate as gen
    from simfail.dataset.writer import DatasetWriter

    cfg.validate()
    t_start = time.perf_counter()
    check_out(cfg)
    demos = load_demos(cfg.demos, cfg.episodes or None)
    runners = make_runners(demos, cfg)
    where = f" of {demos.root}"
    checks: list[DemoCheck] = []
    divergent: list[dict[str, Any]] = []
    for demo in tqdm(demos.episodes, desc="simfail replay: verify", unit="demo", disable=not cfg.progress):
        try:
            checks.append(verify_demo(runners[demo.task], demo, cfg, where))
        except ReplayDivergenceError as exc:
            if cfg.on_divergence == "raise":
                raise
            divergent.append({"episode": demo.index, "error": str(exc)})
    kept = {c.demo.index for c in checks}
    summary: dict[str, Any] = {"demos": len(demos.episodes), "verified": sum(c.max_abs_diff is not None for c in checks)
                               + len(divergent), "divergences": len(divergent), "divergent": divergent,
                               "max_abs_qpos_diff": max((c.max_abs_diff for c in checks if c.max_abs_diff is not None),
                                                        default=None),
                               "demo_success": sum(c.success for c in checks),
                               "demo_failures": dict(Counter(t for c in checks for t in c.failures)),
                               "groups": 0, "variants": 0, "realized": {}, "skipped_groups": [], "out": None}
    if cfg.out is None:
        summary["seconds"] = time.perf_counter() - t_start
        return summary
    models = {t: r.prototype_model for t, r in runners.items()}
    nq, nv = max(m.nq for m in models.values()), max(m.nv for m in models.values())
    mode = "resume" if cfg.resume else "overwrite" if cfg.overwrite else "new"
    writer = DatasetWriter(cfg.out, fps=demos.fps, image_size=(cfg.height, cfg.width), state_names=gen.STATE_NAMES,
                           action_names=gen.ACTION_NAMES, nq=nq, nv=nv, mode=mode, crf=cfg.crf, encoder_nice=19)
    done = set(writer.completed_groups())
    groups: dict[int, dict[str, Any]] = {}
    meta_path = writer.root / "meta" / "simfail.json"
    if meta_path.exists():
        groups = {int(k): v for k, v in json.loads(meta_path.read_text()).get("groups", {}).items()}
    todo = [d for d in demos.episodes if d.index not in done and d.index in kept]
    realized: dict[str, list[int]] = {}
    n_groups = n_variants = 0
    bar = tqdm(todo, desc="simfail replay: write", unit="group", disable=not cfg.progress)
    with gen.GroupSink(writer, nq, nv) as sink:
        for demo in bar:
            runner = runners[demo.task]
            res = replay_group(runner, demo, cfg, demos.root, render=True, defer_frames=True)
            groups[demo.index] = _group_entry(res, demo, runner)
            sink.submit_result(res, _meta(cfg, demos, runners, dict(groups), divergent))
            n_groups += 1
            n_variants += len(res.episodes) - 1
            for op, (k, n) in res.realized.items():
                acc = realized.setdefault(op, [0, 0])
                acc[0] += k
                acc[1] += n
            bar.set_postfix(variants=n_variants)
    writer.finalize(_meta(cfg, demos, runners, groups, divergent))
    summary.update({"groups": n_groups, "variants": n_variants,
                    "realized": {op: {"realized": k, "variants": n} for op, (k, n) in sorted(realized.items())},
                    "skipped_groups": sorted(done & {d.index for d in demos.episodes}), "out": str(writer.root),
                    "seconds": time.perf_counter() - t_start})
    return summary


def summary_table(s: dict[str, Any]) -> str:
    """The run's summary: demos replayed and verified, then realization by operator."""
    from simfail.report import table

    worst = s["max_abs_qpos_diff"]
    head = [f"dataset: {s['out']}" if s.get("out") else "dataset: (no out=: verified only, nothing written)",
            f"demos replayed: {s['demos']}   checked against sim.qpos: {s['verified']}   divergences: "
            f"{s['divergences']}   max |qpos diff|: {'-' if worst is None else f'{worst:.3g}'}   "
            f"demos that succeed: {s['demo_success']}/{s['demos']}",
            f"groups written: {s['groups']} (already there: {len(s['skipped_groups'])})   variants: {s['variants']}   "
            f"time: {s.get('seconds', 0.0):.1f} s"]
    if s["demo_failures"]:
        head.append("demo failures (demos): " + ", ".join(f"{k} {v}" for k, v in sorted(s["demo_failures"].items())))
    if s.get("divergent"):
        head.append("left out (diverged): " + "; ".join(d["error"] for d in s["divergent"]))
    rows = [[op, str(r["variants"]), str(r["realized"]), f"{100 * r['realized'] / r['variants']:.0f}%"]
            for op, r in s["realized"].items()]
    if not rows:
        return "\n".join(head)
    return "\n".join(head) + "\n\n" + table(rows, ["operator", "failure variants", "realized",
                                                     "realization (a new intended event)"])


#: ``key=`` spellings shared with ``simfail generate`` -> the replay setting they set.
ALIASES = {"render.width": "width", "render.height": "height", "dataset.crf": "crf"}


def split_args(args: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Rename generate's spellings (``render.width=`` -> ``width=``, see :data:`ALIASES`) and take
    ``OPERATOR.KEY=VALUE`` (VALUE read as YAML) out into ``{"operator_params": {OPERATOR: {KEY:
    VALUE}}}``; ``failures=`` is read as YAML too (``failures=[push]`` or ``failures=push``)."""
    from simfail.stress.commands import _yaml_name_list, _yaml_value

    out: list[str] = []
    params: dict[str, dict[str, Any]] = {}
    updates: dict[str, Any] = {}
    for a in args:
        key, sep, value = a.partition("=")
        key = key.strip()
        head, dot, rest = key.partition(".")
        if sep and key in ALIASES:
            out.append(f"{ALIASES[key]}={value}")
        elif sep and key == "failures":  # operator names, not generate's failures config group
            updates["failures"] = _yaml_name_list(value, key, "operator names, e.g. failures=[gripper_release,push]")
        elif sep and dot and head not in ("render", "dataset", "operator_params") and head.isidentifier():
            if not rest.isidentifier():
                raise ConfigError(f"bad operator parameter {a!r}: use OPERATOR.KEY=VALUE, e.g. push.object=red_cube")
            params.setdefault(head, {})[rest] = _yaml_value(value, key)
        else:
            out.append(a)
    if params:
        updates["operator_params"] = params
    return out, updates


def replay_main(cfg: ReplayConfig) -> int:
    """``simfail replay``: run, print the summary table, save ``json=`` (atomic)."""
    summary = run(cfg)
    print(summary_table(summary))
    if cfg.json:
        write_summary_json(cfg.json, summary)
    return 0
