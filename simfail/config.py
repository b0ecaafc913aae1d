"""Typed configuration of ``simfail generate`` (Hydra YAML in ``configs/`` maps onto these).

Units: image sizes in pixels, ``fps`` in frames per second, magnitudes in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError, UnknownNameError
from simfail.scale.executor import RayConfig


@dataclass
class RenderConfig:
    width: int = 256
    height: int = 256
    fps: int = 10
    views: list[str] = field(default_factory=lambda: list(VIEWS))
    #: Multiplies the decimated robot meshes' triangle budgets (2.0 = finer meshes).
    mesh_scale: float = 1.0
    #: OpenGL backend: egl (Mesa llvmpipe on a CPU machine, the vendor driver on a GPU one).
    backend: str = "egl"
    #: EGL device per worker: auto (round robin over the visible GPUs, none on a CPU machine)
    #: or a device index; see simfail/scale/gpu.py and docs/scale.md.
    gpu: str = "auto"


@dataclass
class FailuresConfig:
    #: Failure operator names, or ["all"] for every operator of the task.
    names: list[str] = field(default_factory=lambda: ["all"])
    #: One variant per operator at a magnitude drawn from its failure range.
    failure_variants: bool = True
    #: Also add one near-miss variant per operator (magnitude from its near-miss range).
    near_misses: bool = False
    #: Extra variants per operator at these magnitudes (a severity sweep).
    sweep: list[float] = field(default_factory=list)


@dataclass
class DatasetConfig:
    crf: int = 23
    preset: str = "veryfast"
    chunks_size: int = 1000
    #: Copy the expert's rendered prefix into each variant instead of re-simulating it
    #: (bit-identical by construction; see tests/test_determinism.py).
    reuse_prefix: bool = True
    #: Niceness (0-19) of the ffmpeg encoders. 19: encoding runs on the CPU time that physics
    #: and rendering leave idle instead of preempting llvmpipe's rasterizer threads, which
    #: stalls whole frames on a 2-core machine (see README, "Measured"). 0: same priority.
    encoder_nice: int = 19


@dataclass
class GenerateConfig:
    task: str = "pick_place"
    groups: int = 2
    seed: int = 0
    out: str = "simfail_out/pick_place"
    resume: bool = False
    overwrite: bool = False
    progress: bool = True
    render: RenderConfig = field(default_factory=RenderConfig)
    failures: FailuresConfig = field(default_factory=FailuresConfig)
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    #: Where the groups run: local (this process, the default) or ray (docs/scale.md).
    executor: str = "local"
    ray: RayConfig = field(default_factory=RayConfig)

    def validate(self) -> None:
        if self.groups < 1:
            raise ConfigError(f"groups must be >= 1, got {self.groups}")
        if self.resume and self.overwrite:
            raise ConfigError("resume=true and overwrite=true exclude each other")
        r = self.render
        for name, v in (("render.width", r.width), ("render.height", r.height)):
            if not 64 <= v <= 1024 or v % 2:
                raise ConfigError(f"{name} must be an even number of pixels in [64, 1024], got {v}")
        if not 1 <= r.fps <= 60:
            raise ConfigError(f"render.fps must be in [1, 60], got {r.fps}")
        if sorted(r.views) != sorted(VIEWS):
            raise ConfigError(f"render.views must be {list(VIEWS)} (the dataset always holds three views), got {r.views}")
        if not 0.25 <= r.mesh_scale <= 8:
            raise ConfigError(f"render.mesh_scale must be in [0.25, 8], got {r.mesh_scale}")
        for m in self.failures.sweep:
            if not 0.0 <= float(m) <= 1.0:
                raise ConfigError(f"failures.sweep magnitudes must be in [0, 1], got {m}")
        if not 0 <= self.dataset.crf <= 51:
            raise ConfigError(f"dataset.crf must be in [0, 51], got {self.dataset.crf}")
        from simfail.scale.executor import EXECUTORS
        from simfail.scale.gpu import GL_BACKENDS, parse_gpu

        if r.backend not in GL_BACKENDS:
            raise UnknownNameError("render backend", r.backend, list(GL_BACKENDS))
        parse_gpu(r.gpu)
        if self.executor not in EXECUTORS:
            raise UnknownNameError("executor", self.executor, list(EXECUTORS))
        self.ray.validate()
        if not 0 <= self.dataset.encoder_nice <= 19:
            raise ConfigError(f"dataset.encoder_nice must be in [0, 19], got {self.dataset.encoder_nice}")


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
