"""``simfail benchmark build version=v1 out=DIR [size=128]``: regenerate a frozen benchmark.

Layout of ``DIR`` (one simfail/LeRobot v3.0 dataset per split and category, all written by
``simfail generate``'s own :func:`simfail.generate.run`)::

    DIR/benchmark.json              what the benchmark holds (see :func:`describe`)
    DIR/<split>/<category>/         a dataset: meta/, data/, videos/  (split: train, val, test)
    DIR/closed_loop/<split>/<category>/   the recipe's closed-loop policy rollouts on that
                                    split's scenes (``simfail rollout include_expert=true``)

Every dataset is generated with its output path given *relative to DIR* (the build runs
inside DIR), so ``meta/simfail.json`` records ``<split>/<category>`` and the bytes do not
depend on where DIR is: two builds of one recipe on the same software versions are
byte-identical, and ``benchmarks/<id>.sha256`` (:mod:`simfail.benchmark.hashes`) pins them.
``resume=true`` builds into an existing folder: a finished dataset (every group, this recipe's
settings) is left untouched, an interrupted one resumes group by group, a missing one is made
(:func:`dataset_state`); the run-only settings are recorded as their defaults
(:data:`RUN_ONLY_SETTINGS`), so the bytes equal a fresh build's.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from simfail.commands import Command
from simfail.errors import ConfigError, OutputDirError, SimfailError

__all__ = ["BuildConfig", "run", "build", "describe", "episode_roles", "COMMAND"]

BENCHMARK_JSON = "benchmark.json"
#: Format version of benchmark.json.
FORMAT = 1


def _f(default: Any = None, help: str = "", example: str = "", **meta: Any) -> Any:
    return field(default=default, metadata={"help": help, "example": example, **meta})


@dataclass
class BuildConfig:
    """``simfail benchmark build``."""

    version: str = _f("v1", "benchmark recipe: configs/benchmark/<version>.yaml (v1, tiny)", "version=v1")
    out: Optional[str] = _f(None, "folder to build into (new or empty; resume=true continues one)", "out=DIR",
                            required=True)
    size: Optional[int] = _f(None, "image size in pixels a side (null: the recipe's own; 128: the CPU variant "
                                   "v1-128 with its own hashes)", "size=128", range=(64, 1024))
    resume: bool = _f(False, "build into an existing out: finished datasets are kept as they are (same bytes), "
                            "interrupted ones resumed, missing ones made", "resume=true")
    progress: bool = _f(True, "progress bars", "progress=false")
    write_hashes: bool = _f(False, "write the hashes of this build to benchmarks/<id>.sha256 (maintainers: "
                                   "publishing a benchmark)", "write_hashes=true")

    def validate(self) -> None:
        from simfail.benchmark.spec import load_spec

        if not self.out:
            raise ConfigError("benchmark build needs out=DIR")
        if self.size is not None and self.size % 2:
            raise ConfigError(f"size must be even, got {self.size}")
        load_spec(self.version)  # an unknown version or a bad recipe is one error, before any work


@contextlib.contextmanager
def _inside(folder: Path):
    """Run with ``folder`` as the working directory (so generate records relative out paths)."""
    old = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(old)


def generate_config(spec, split: str, category: str, size: int, *, resume: bool, progress: bool):
    """The ``simfail generate`` settings of one dataset of the benchmark (out relative to DIR)."""
    from simfail.config import DatasetConfig, FailuresConfig, GenerateConfig, RenderConfig

    s = spec.split(split)
    return GenerateConfig(
        task=category, groups=s.groups, seed=s.seed, out=f"{split}/{category}", resume=resume, progress=progress,
        render=RenderConfig(width=size, height=size, fps=spec.fps),
        failures=FailuresConfig(names=spec.operators_of(split, category), failure_variants=True,
                                near_misses=spec.near_misses, sweep=[], alternatives=list(spec.alternatives),
                                match_duration=spec.match_duration),
        dataset=DatasetConfig(crf=spec.crf),
    )


def rollout_config(spec, split: str, category: str, size: int, *, resume: bool, progress: bool):
    """The ``simfail rollout`` settings of one closed-loop dataset (out relative to DIR): the
    recipe's policy on the split's scenes (``seed`` and ``seeds`` = the split's base seed and
    groups, so group ``g`` is the scene of the generated dataset's group ``g``), ``samples``
    rollouts each, plus the scripted expert (``include_expert=true``)."""
    from simfail.benchmark.spec import closed_loop_rel
    from simfail.policy.rollout import RolloutConfig

    s, cl = spec.split(split), spec.closed_loop
    return RolloutConfig(policy=cl.policy, policy_kwargs=cl.kwargs_of(category), task=category, seeds=s.groups,
                         samples=cl.samples, seed=s.seed, out=closed_loop_rel(split, category), include_expert=True,
                         width=size, height=size, fps=spec.fps, crf=spec.crf, resume=resume, progress=progress)


@dataclass(frozen=True)
class DatasetJob:
    """One dataset of a benchmark: ``kind`` ``generated`` (``simfail generate``) or
    ``closed_loop`` (``simfail rollout``), at ``rel`` (relative to DIR), ``groups`` groups."""

    rel: str
    kind: str
    split: str
    category: str
    groups: int

    def config(self, spec, size: int, *, resume: bool, progress: bool):
        make = generate_config if self.kind == GENERATED else rollout_config
        return make(spec, self.split, self.category, size, resume=resume, progress=progress)

    def make(self, config, log) -> None:
        if self.kind == GENERATED:
            from simfail.generate import run as generate

            generate(config, log=log)
        else:
            from simfail.policy.rollout import run as rollout

            rollout(config)


GENERATED, CLOSED_LOOP = "generated", "closed_loop"

#: Settings that change how a build runs, never what it writes: recorded as their defaults in
#: every dataset's ``meta/simfail.json`` so that a resumed build, or one with progress bars,
#: gives the same bytes as a fresh one.
RUN_ONLY_SETTINGS: dict[str, Any] = {"resume": False, "progress": False}


def dataset_jobs(spec) -> list[DatasetJob]:
    """Every dataset of the recipe in build order: per split, the generated datasets of each
    category, then (for the splits ``closed_loop.splits`` names) the closed-loop ones."""
    from simfail.benchmark.spec import closed_loop_rel

    jobs = []
    for s in spec.splits:
        jobs += [DatasetJob(f"{s.name}/{c}", GENERATED, s.name, c, s.groups) for c in spec.categories]
        if spec.closed_loop is not None and s.name in spec.closed_loop.splits:
            jobs += [DatasetJob(closed_loop_rel(s.name, c), CLOSED_LOOP, s.name, c, s.groups) for c in spec.categories]
    return jobs


def _recorded_config(config) -> dict[str, Any]:
    from simfail.generate import config_dict

    return {**config_dict(config), **RUN_ONLY_SETTINGS}


def dataset_state(root: Path, job: DatasetJob, config) -> str:
    """``absent`` (no folder or an empty one), ``done`` (every group committed and finalized
    with this recipe's settings: left untouched) or ``partial`` (to resume). A finished dataset
    written with other settings is an error: the folder holds another benchmark."""
    from simfail.dataset import layout as L

    folder = root / job.rel
    if not folder.is_dir() or not any(folder.iterdir()):
        return "absent"
    meta_path = folder / L.SIMFAIL_META_PATH
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return "partial"
    if (folder / L.STAGING_NAME).exists() or int(meta.get("total_groups", -1)) != job.groups:
        return "partial"
    want, have = _recorded_config(config), meta.get("config") or {}
    diffs = sorted(k for k in set(want) | set(have) if want.get(k) != have.get(k))
    if diffs:
        raise OutputDirError(f"{job.rel} in out= was built with other settings ({', '.join(diffs[:5])} differ from "
                             "this recipe's); build into a new folder")
    return "done"


def normalize_recorded_config(folder: Path) -> None:
    """Record :data:`RUN_ONLY_SETTINGS` in ``meta/simfail.json``'s ``config`` (rewritten in the
    writer's own JSON form, atomically, only when it differs)."""
    from simfail.dataset import layout as L
    from simfail.learn.checkpoint import atomic_write_bytes

    path = folder / L.SIMFAIL_META_PATH
    meta = json.loads(path.read_text())
    cfg = meta.get("config") or {}
    if all(cfg.get(k) == v for k, v in RUN_ONLY_SETTINGS.items()):
        return
    meta["config"] = {**cfg, **RUN_ONLY_SETTINGS}
    atomic_write_bytes(path, (L.dumps_json(meta, indent=2) + "\n").encode())


def episode_roles(ep: dict[str, Any], events: list, fps: int, held_out: set[str], delayed_lag_s: float) -> list[str]:
    """The benchmark roles of one episode (docs/benchmark.md, "Subsets"), from its physics
    labels and its ``simfail.perturbation``:

    ``expert``; ``clean_alternative`` / ``alternative_not_clean`` (an alternative the physics
    did / did not confirm clean); ``failure`` / ``near_miss`` (the operator's intent);
    ``bad_but_successful`` (success with failure events); ``unsuccessful`` (no success);
    ``no_event`` (success without events: a near miss that stayed clean); ``delayed`` (the first
    failure becomes visible at least ``delayed_lag_s`` after the perturbation's onset);
    ``held_out_operator`` (its operator is held out of training).
    """
    from simfail.perturbations.nuisance import CLEAN, NOT_CLEAN

    if ep["simfail.variant"] == "expert":
        return ["expert"]
    p = json.loads(ep["simfail.perturbation"] or "{}")
    kind = p.get("kind", "failure")
    roles = [kind]
    success = bool(ep["simfail.success"])
    if success and events:
        roles.append("bad_but_successful")
    elif not success:
        roles.append("unsuccessful")
    elif kind not in (CLEAN, NOT_CLEAN):
        roles.append("no_event")
    if events and kind not in (CLEAN,):
        first = min(events, key=lambda e: e.visible_frame)
        if first.visible_frame - int(p.get("onset_frame", first.onset_frame)) >= delayed_lag_s * fps:
            roles.append("delayed")
    if kind not in (CLEAN, NOT_CLEAN) and p.get("name") in held_out:
        roles.append("held_out_operator")
    return roles


def describe(root: Path, spec, size: int) -> dict[str, Any]:
    """``benchmark.json``: the recipe, and per dataset its scene seeds and every episode's
    group, variant, operator, roles and ``duration_matched`` flag; subset counts per split."""
    from simfail.dataset.reader import SimfailDataset

    datasets: dict[str, Any] = {}
    counts: dict[str, Counter] = {}
    jobs = dataset_jobs(spec)
    for job in jobs:
        ds = SimfailDataset(root / job.rel)
        meta = ds.simfail_meta
        held = set(spec.held_out_operators.get(job.category, ()))
        eps = []
        for i, ep in enumerate(ds.episodes):
            p = json.loads(ep["simfail.perturbation"] or "{}")
            roles = episode_roles(ep, ds.failures(i), spec.fps, held, spec.delayed_lag_s)
            counts.setdefault(job.split, Counter()).update(roles)
            row = {"episode_index": i, "group_id": int(ep["simfail.group_id"]), "variant": ep["simfail.variant"],
                   "operator": p.get("name"), "roles": roles}
            if job.kind == CLOSED_LOOP:
                row["policy"] = ep.get("simfail.policy")
            if "duration_matched" in p:
                row["duration_matched"] = bool(p["duration_matched"])
            eps.append(row)
        entry = {
            "split": job.split, "category": job.category, "kind": job.kind,
            "scene_seeds": [int(g["seed"]) for _, g in sorted(meta["groups"].items(), key=lambda kv: int(kv[0]))],
            "operators": spec.operators_of(job.split, job.category) if job.kind == GENERATED else [],
            "episodes": eps,
        }
        if job.kind == CLOSED_LOOP:
            entry["policy"] = {"name": spec.closed_loop.policy, "kwargs": spec.closed_loop.kwargs_of(job.category),
                               "samples": spec.closed_loop.samples, "include_expert": True}
        datasets[job.rel] = entry
    return {
        "format": FORMAT,
        "id": spec.bench_id(size),
        "version": spec.version,
        "size": size,
        "fps": spec.fps,
        "categories": list(spec.categories),
        "splits": {s.name: {"seed": s.seed, "groups_per_category": s.groups,
                            "datasets": [j.rel for j in jobs if j.split == s.name]} for s in spec.splits},
        "closed_loop": spec.closed_loop.describe() if spec.closed_loop is not None else None,
        "held_out_operators": {c: list(v) for c, v in spec.held_out_operators.items() if v},
        "held_out_scenes": "every scene seed of the test split (disjoint from train and val, checked at build)",
        "alternatives": list(spec.alternatives),
        "match_duration": spec.match_duration,
        "delayed_lag_s": spec.delayed_lag_s,
        "subset_counts": {k: dict(sorted(v.items())) for k, v in counts.items()},
        "datasets": datasets,
    }


def check_disjoint_scenes(desc: dict[str, Any]) -> None:
    """Raise when a scene seed appears in two splits (for any category)."""
    owner: dict[tuple[str, int], str] = {}
    for d in desc["datasets"].values():
        for seed in d["scene_seeds"]:
            key = (d["category"], seed)
            if key in owner and owner[key] != d["split"]:
                raise SimfailError(f"scene seed {seed} of {d['category']} is in both {owner[key]} and {d['split']}")
            owner[key] = d["split"]


def check_closed_loop_scenes(desc: dict[str, Any]) -> None:
    """Raise unless every closed-loop dataset's groups are the scenes of the generated dataset
    of its split and category (group ``g`` on the same scene seed)."""
    for rel, d in desc["datasets"].items():
        if d.get("kind") != CLOSED_LOOP:
            continue
        gen = desc["datasets"].get(f"{d['split']}/{d['category']}")
        if gen is None or gen["scene_seeds"] != d["scene_seeds"]:
            raise SimfailError(f"the rollouts of {rel} are not on the scenes of {d['split']}/{d['category']} "
                               f"({d['scene_seeds']} vs {gen['scene_seeds'] if gen else 'missing'})")


def build(cfg: BuildConfig, log=print) -> dict[str, Any]:
    """Build the benchmark of ``cfg`` into ``cfg.out``; returns ``benchmark.json``'s content
    plus ``seconds`` and ``bytes``."""
    from simfail.benchmark.hashes import build_environment, format_manifest, tree_hashes
    from simfail.benchmark.spec import hash_file_path, load_spec
    from simfail.generate import run as generate
    from simfail.learn.checkpoint import atomic_write_bytes

    spec = load_spec(cfg.version)
    size = spec.size if cfg.size is None else int(cfg.size)
    root = Path(cfg.out).absolute()
    if root.exists() and not root.is_dir():
        raise OutputDirError(f"out={cfg.out} is a file, not a folder")
    if root.exists() and any(root.iterdir()) and not cfg.resume:
        raise OutputDirError(f"out={cfg.out} is not empty; choose a new folder or continue a build with resume=true")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create out={cfg.out}: {exc.strerror or exc}") from exc
    if not os.access(root, os.W_OK):
        raise OutputDirError(f"cannot write to out={cfg.out}")
    t0 = time.perf_counter()
    made: list[str] = []
    with _inside(root):
        for job in dataset_jobs(spec):
            state = dataset_state(root, job, job.config(spec, size, resume=False, progress=False))
            if state == "done":
                if cfg.progress:
                    log(f"benchmark {spec.bench_id(size)}: {job.rel} is complete, kept as it is")
                continue
            if cfg.progress:
                log(f"benchmark {spec.bench_id(size)}: {job.rel} ({job.groups} groups{', resumed' if state == 'partial' else ''})")
            job.make(job.config(spec, size, resume=state == "partial", progress=cfg.progress), log)
            normalize_recorded_config(root / job.rel)
            made.append(job.rel)
    desc = describe(root, spec, size)
    check_disjoint_scenes(desc)
    check_closed_loop_scenes(desc)
    atomic_write_bytes(root / BENCHMARK_JSON, (json.dumps(desc, indent=1, sort_keys=True) + "\n").encode())
    hashes = tree_hashes(root)
    if cfg.write_hashes:
        atomic_write_bytes(hash_file_path(desc["id"]), format_manifest(hashes, build_environment()).encode())
    seconds = time.perf_counter() - t0
    size_bytes = sum((root / rel).stat().st_size for rel in hashes)
    return {**desc, "seconds": seconds, "bytes": size_bytes, "files": len(hashes), "made": made}


def summary_table(result: dict[str, Any]) -> str:
    """Episodes per split and subset, and the build's time and size."""
    from simfail.stress.report import format_table

    roles = sorted({r for c in result["subset_counts"].values() for r in c})
    rows = [[s, *[str(result["subset_counts"].get(s, {}).get(r, 0)) for r in roles]] for s in result["splits"]]
    table = format_table(["split", *roles], rows)
    return (f"{table}\nbenchmark {result['id']}: {result['files']} files, {result['bytes'] / 1e6:.1f} MB, "
            f"built in {result['seconds']:.0f} s")


def run(cfg: BuildConfig) -> int:
    from simfail.benchmark.hashes import parse_manifest, verify
    from simfail.benchmark.spec import hash_file_path

    result = build(cfg)
    print(summary_table(result))
    path = hash_file_path(result["id"])
    if cfg.write_hashes:
        print(f"hashes written: {path}")
    elif path.is_file():
        problems = verify(Path(cfg.out), parse_manifest(path.read_text(), str(path)))
        print(f"matches the published hashes ({path.name})" if not problems else
              f"differs from the published hashes ({path.name}) in {len(problems)} file(s), e.g. {problems[0]}")
    else:
        print(f"no published hashes for {result['id']} ({path.name} not in the repository)")
    return 0


COMMAND = Command("benchmark build", "regenerate a frozen benchmark from its recipe (configs/benchmark/<version>.yaml)",
                  BuildConfig, run, example="simfail benchmark build version=v1 out=DIR size=128",
                  config_name="benchmark_build")
