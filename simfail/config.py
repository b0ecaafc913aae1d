"""Typed configuration of ``simfail generate`` (Hydra YAML in ``configs/`` maps onto these).

Units: image sizes in pixels, ``fps`` in frames per second, magnitudes in [0, 1].
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from dataclasses import MISSING, dataclass, field
from typing import Any, ClassVar, Dict, Optional

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError, UnknownNameError
from simfail.render.backends import BACKEND_NAMES
from simfail.render.presets import PRESET_NAMES
from simfail.scale.executor import EXECUTORS, RayConfig
from simfail.scale.gpu import parse_gpu
from simfail.schema import check_ranges


def _f(default: Any = MISSING, help: str = "", example: str = "", factory: Any = None, **meta: Any) -> Any:
    """A schema field: default (or ``factory``), one-line ``help``, a ``key=value`` example and
    optional ``range``/``choices`` (see :mod:`simfail.schema`)."""
    md = {"help": help, "example": example, **meta}
    if factory is not None:
        return field(default_factory=factory, metadata=md)
    return field(default=default, metadata=md)


@dataclass
class RenderConfig:
    width: int = _f(256, "image width in pixels (even)", "render.width=128", range=(64, 1024))
    height: int = _f(256, "image height in pixels (even)", "render.height=128", range=(64, 1024))
    fps: int = _f(10, "frames per second of the episodes and videos", "render.fps=20", range=(1, 60))
    views: list[str] = _f(factory=lambda: list(VIEWS), help="camera views (the dataset always holds all three)",
                          example="render.views=[left,right,wrist]", choices=list(VIEWS))
    #: Multiplies the decimated robot meshes' triangle budgets (2.0 = finer meshes).
    mesh_scale: float = _f(1.0, "multiplies the robot meshes' triangle budgets (2.0 = finer meshes)",
                           "render.mesh_scale=2.0", range=(0.25, 8))
    #: Renderer (:mod:`simfail.render.backends`): ``egl`` (OpenGL through EGL: MultiViewRenderer,
    #: one state per call) or ``warp`` (MuJoCo Warp ray tracing, many recorded states per call;
    #: optional extra simfail[warp]). See docs/rendering.md.
    backend: str = _f("egl", "renderer: egl (OpenGL through EGL, one state per call) or warp (MuJoCo Warp "
                      "batch ray tracing, pip install 'simfail[warp]')", "render.backend=warp",
                      choices=list(BACKEND_NAMES))
    #: Look of the frames (:mod:`simfail.render.presets`); physics is the same for every preset.
    preset: str = _f("fast", "look of the frames: fast (flat primitives on black) or lab (shadows, textured "
                     "table and floor, walls); physics unchanged", "render.preset=lab",
                     choices=list(PRESET_NAMES))
    #: EGL device per worker: auto (round robin over the visible GPUs, none on a CPU machine)
    #: or a device index; see simfail/scale/gpu.py and docs/scale.md.
    gpu: str = _f("auto", "EGL device per worker: auto (round robin over the visible GPUs; none on a CPU machine) "
                  "or a GPU index >= 0", "render.gpu=0")


def check_json_path(path: Optional[str]) -> None:
    """A ``json=PATH`` result file: ``None`` (none asked for) or a path in a writable folder."""
    if path is None:
        return
    if not path:
        raise ConfigError("json= needs a file path")
    if os.path.isdir(path):
        raise ConfigError(f"json: {path} is a folder, not a file")
    folder = os.path.dirname(os.path.abspath(path))
    try:  # a real write, not os.access: root passes access() on folders nothing can be created in (/proc)
        fd, probe = tempfile.mkstemp(prefix=".simfail-write-probe-", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise ConfigError(f"json: cannot write to {folder} ({exc.strerror or exc})") from exc


@dataclass
class FailuresConfig:
    #: Failure operator names, or ["all"] for every operator of the task.
    names: list[str] = _f(factory=lambda: ["all"], help="failure operators (see simfail list), or [all]",
                          example="failures=[drop,collision]")
    #: One variant per operator at a magnitude drawn from its failure range.
    failure_variants: bool = _f(True, "one variant per operator at a magnitude drawn from its failure range",
                                "failures.failure_variants=false")
    #: Also add one near-miss variant per operator (magnitude from its near-miss range).
    near_misses: bool = _f(False, "also one near-miss variant per operator (magnitude from its near-miss range)",
                           "failures.near_misses=true")
    #: Extra variants per operator at these magnitudes (a severity sweep).
    sweep: list[float] = _f(factory=list, help="extra variants per operator at these magnitudes (a severity sweep)",
                            example="failures.sweep=[0.25,0.5,1.0]", range=(0.0, 1.0))
    #: Clean alternatives of the expert (perturbations/nuisance.py): one variant each, written
    #: with kind clean_alternative only when the physics says success without events.
    alternatives: list[str] = _f(factory=list, help="clean alternatives of the expert, one variant each (slower, faster, "
                                 "pause, detour, regrasp; docs/benchmark.md)", example="failures.alternatives=[slower,pause]")
    #: Retime failure and near-miss variants so their last active move ends no later than the
    #: expert's (perturbations/nuisance.py match_duration; docs/benchmark.md).
    match_duration: bool = _f(False, "retime failure variants to end their moves no later than the expert "
                              "(docs/benchmark.md)", "failures.match_duration=true")


@dataclass
class DatasetConfig:
    crf: int = _f(23, "x264 constant rate factor of the videos (lower: better quality, bigger files)",
                  "dataset.crf=18", range=(0, 51))
    preset: str = _f("veryfast", "x264 speed preset", "dataset.preset=medium",
                     choices=["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower",
                              "veryslow"])
    chunks_size: int = _f(1000, "files per chunk folder (LeRobot v3.0 chunks_size)", "dataset.chunks_size=500",
                          range=(1, None))
    #: Copy the expert's rendered prefix into each variant instead of re-simulating it
    #: (bit-identical by construction; see tests/test_determinism.py).
    reuse_prefix: bool = _f(True, "copy the expert's rendered prefix into each variant (bit-identical) instead of "
                            "re-simulating it", "dataset.reuse_prefix=false")
    #: Niceness (0-19) of the ffmpeg encoders. 19: encoding runs on the CPU time that physics
    #: and rendering leave idle instead of preempting llvmpipe's rasterizer threads, which
    #: stalls whole frames on a 2-core machine (see docs/performance.md). 0: same priority.
    encoder_nice: int = _f(19, "niceness of the ffmpeg encoders (19: encode on idle CPU time; 0: same priority)",
                           "dataset.encoder_nice=0", range=(0, 19))


@dataclass
class GenerateConfig:
    task: str = _f("pick_place", "task category, or all (one dataset with every category; see simfail list)",
                   "task=pour")
    groups: int = _f(2, "counterfactual groups (one initial state each: expert + variants), per task",
                     "groups=10", range=(1, None))
    seed: int = _f(0, "base seed; group g draws its scene seed from (seed, g)", "seed=3", range=(0, None))
    out: str = _f("simfail_out/pick_place", "output folder of the dataset", "out=/tmp/ds")
    resume: bool = _f(False, "continue an interrupted run in out (same settings)", "resume=true")
    overwrite: bool = _f(False, "replace the simfail dataset in out", "overwrite=true")
    progress: bool = _f(True, "progress bar", "progress=false")
    render: RenderConfig = _f(factory=RenderConfig, help="image size, frame rate, views (render=default)")
    failures: FailuresConfig = _f(factory=FailuresConfig, help="which failure variants (failures=all | sweep | [names])")
    dataset: DatasetConfig = _f(factory=DatasetConfig, help="video encoding and layout (dataset=default)")
    #: Where the groups run: local (this process, the default) or ray (docs/scale.md).
    executor: str = _f("local", "where the groups run: local (this process) or ray (shards on a Ray cluster, "
                       "merged into out; docs/scale.md)", "executor=ray", choices=list(EXECUTORS))
    ray: RayConfig = _f(factory=RayConfig, help="Ray cluster, workers and retries (executor=ray only)")
    #: After a generic operator's window: replay the expert's actions or hand control to a policy.
    continuation: str = _f("open_loop", "after a generic operator's last step: open_loop (the expert's own actions "
                           "go on) or closed_loop (policy= takes over from the perturbed state; docs/recovery.md)",
                           "continuation=closed_loop", choices=["open_loop", "closed_loop"])
    policy: str = _f("expert", "continuation=closed_loop: the policy that takes over (a registered name or "
                     "package.module:factory)", "policy=noisy_expert")

    def validate(self) -> None:
        if self.continuation not in ("open_loop", "closed_loop"):
            raise UnknownNameError("continuation", self.continuation, ["open_loop", "closed_loop"])
        if self.continuation == "closed_loop":
            from simfail.policy.registry import resolve_factory

            resolve_factory(self.policy)  # an unknown name lists the known ones, before any work
        if self.executor not in EXECUTORS:  # before the generic check: "unknown executor 'spark'"
            raise UnknownNameError("executor", self.executor, list(EXECUTORS))
        check_ranges(self)
        self.ray.validate()
        self.render.gpu = str(self.render.gpu).strip()
        parse_gpu(self.render.gpu)
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true exclude each other")
        r = self.render
        for name, v in (("render.width", r.width), ("render.height", r.height)):
            if v % 2:
                raise ConfigError(f"{name} must be an even number of pixels in [64, 1024], got {v}")
        if sorted(r.views) != sorted(VIEWS):
            raise ConfigError(f"render.views must be {list(VIEWS)} (the dataset always holds three views), got {r.views}")
        from simfail.generate import validate_failures  # unknown task / failure names (imports the tasks)

        validate_failures(self)


#: ``simfail bench mode=...`` -> the ``run(cfg: BenchConfig) -> int`` that measures it.
BENCH_MODES: dict[str, str] = {
    "generate": "simfail.dataset_commands:run_generate_bench",
    "rollout": "simfail.policy.bench:run",
}


@dataclass
class BenchConfig(GenerateConfig):
    """``simfail bench``: the generate settings (one task) plus the bench's own. The bench
    writes into temporary folders only: ``out``, ``resume`` and ``overwrite`` are refused."""

    #: Ctrl-C has nothing to resume (:func:`simfail.cli._interrupted_message`)
    resumable: ClassVar[bool] = False

    repeats: int = _f(1, "measure this many times (the table lists each repeat's ratio)", "repeats=3", range=(1, None))
    json: Optional[str] = _f(None, "also save the full result as JSON to this file (atomic)", "json=bench.json")
    mode: str = _f("generate", "what to measure: generate (against the slowest resource alone) or rollout (recording a "
                   "policy against generating the same episodes; docs/rollouts.md)", "mode=rollout",
                   choices=list(BENCH_MODES))
    policy: str = _f("expert", "mode=rollout: the policy (a registered name or package.module:factory); "
                     "policy.KEY=VALUE passes one argument", "policy=noisy_expert")
    policy_kwargs: Dict[str, Any] = _f(factory=dict, help="mode=rollout: the policy's arguments (policy.KEY=VALUE)",
                                       example="policy.level=2")
    visibility: bool = _f(True, "mode=generate: run the camera visibility pass of the failure events (false: measure "
                          "the pipeline without it; its own line in the table, docs/visibility.md)", "visibility=false")

    def validate(self) -> None:
        super().validate()
        if self.task == "all":
            raise ConfigError("bench measures one task at a time: pass task=<name> (see simfail list)")
        default_out = next(f.default for f in dataclasses.fields(GenerateConfig) if f.name == "out")
        for key, value, unset in (("out", self.out, default_out), ("resume", self.resume, False),
                                  ("overwrite", self.overwrite, False)):
            if value != unset:
                shown = str(value).lower() if isinstance(value, bool) else value
                raise ConfigError(f"bench writes into temporary folders and keeps no dataset: {key}={shown} does not "
                                  "apply (json=FILE saves the result)")
        if self.executor != "local":
            raise ConfigError(f"bench measures the pipeline in this process: executor=local, got executor={self.executor} "
                              "(a Ray run's per-worker rates are in generate's summary; docs/scale.md)")
        if self.mode == "rollout":
            if self.repeats != 1:
                raise ConfigError("bench mode=rollout runs once (repeats=1)")
            from simfail.policy.registry import load_policy

            load_policy(self.policy, **self.policy_kwargs)  # a bad policy is an error before any work
            if not self.visibility:
                raise ConfigError("visibility=false applies to bench mode=generate only")
        elif self.policy != "expert" or self.policy_kwargs:
            raise ConfigError("policy= and policy.KEY= apply to bench mode=rollout only")
        check_json_path(self.json)

    def generate_config(self) -> GenerateConfig:
        names = {f.name for f in dataclasses.fields(GenerateConfig)}
        return GenerateConfig(**{k: v for k, v in vars(self).items() if k in names})


@dataclass
class CheckConfig:
    """``simfail check DIR``."""

    data: Optional[str] = _f(None, "the dataset folder to verify", "data=DIR", positional=True, required=True)
    benchmark: Optional[str] = _f(None, "verify DIR as a copy of this published benchmark (its files against "
                                  "benchmarks/<id>.sha256; --benchmark ID works too)", "benchmark=v1-128")


@dataclass
class ListConfig:
    """``simfail list`` has no settings."""


def from_dict(d: dict[str, Any]) -> GenerateConfig:
    """Build a validated :class:`GenerateConfig` from a plain dict (e.g. a resolved Hydra config)."""
    known = {"task", "groups", "seed", "out", "resume", "overwrite", "progress", "render", "failures", "dataset",
             "executor", "ray"}
    unknown = set(d) - known
    if unknown:
        raise ConfigError(f"unknown config keys: {', '.join(sorted(unknown))}; known: {', '.join(sorted(known))}")

    def sub(cls, key):
        vals = dict(d.get(key) or {})
        fields = set(cls.__dataclass_fields__)
        bad = set(vals) - fields
        if bad:
            raise ConfigError(f"unknown keys in {key}: {', '.join(sorted(bad))}; known: {', '.join(sorted(fields))}")
        return cls(**vals)

    try:
        cfg = GenerateConfig(
            task=str(d.get("task", "pick_place")),
            groups=int(d.get("groups", 2)),
            seed=int(d.get("seed", 0)),
            out=str(d.get("out", "simfail_out/pick_place")),
            resume=bool(d.get("resume", False)),
            overwrite=bool(d.get("overwrite", False)),
            progress=bool(d.get("progress", True)),
            render=sub(RenderConfig, "render"),
            failures=sub(FailuresConfig, "failures"),
            dataset=sub(DatasetConfig, "dataset"),
            executor=str(d.get("executor", "local")),
            ray=sub(RayConfig, "ray"),
        )
        cfg.render.gpu = str(cfg.render.gpu)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"bad config value: {exc}") from exc
    if isinstance(cfg.failures.names, str):
        cfg.failures.names = [cfg.failures.names]
    cfg.failures.names = [str(n) for n in cfg.failures.names]
    cfg.validate()
    return cfg


def parse_groups(value: Any, what: str) -> list[int] | None:
    """Group selection: ``None`` (all), an int, a list of ints, or a range ``"a:b"`` (end excluded)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{what} must be a list of group ids or a range 'a:b', got {value!r}")
    if isinstance(value, int):
        return [value]
    if isinstance(value, str):
        a, sep, b = value.partition(":")
        try:
            if sep:
                return list(range(int(a), int(b)))
            return [int(x) for x in value.replace(",", " ").split()]
        except ValueError:
            raise ConfigError(f"{what} must be a list of group ids or a range 'a:b', got {value!r}") from None
    if isinstance(value, (list, tuple)):
        out = []
        for x in value:
            if isinstance(x, bool) or not isinstance(x, int):
                raise ConfigError(f"{what} must hold integer group ids, got {x!r}")
            out.append(int(x))
        return out
    raise ConfigError(f"{what} must be a list of group ids or a range 'a:b', got {value!r}")
