"""Typed settings of ``simfail realism`` (the schema behind ``configs/realism.yaml``) and
``simfail calibrate`` (see :mod:`simfail.schema`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Optional

from simfail.errors import ConfigError
from simfail.realism.fidelity import FidelityConfig
from simfail.realism.prompts import DEFAULT_NEGATIVE, DEFAULT_TEMPLATE
from simfail.scale.executor import RayConfig

__all__ = ["RealismConfig", "CalibrateConfig"]


def _f(default: Any = None, help: str = "", example: str = "", factory: Any = None, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    return field(default_factory=factory, metadata=md) if factory is not None else field(default=default, metadata=md)


@dataclass
class RealismConfig:
    """``simfail realism``: edit a dataset's videos toward photorealism."""

    data: Optional[str] = _f(None, "simfail dataset to edit", "data=DIR", required=True)
    out: Optional[str] = _f(None, "new, empty folder for the edited dataset", "out=DIR2", required=True)
    overwrite: bool = _f(False, "replace a simfail dataset already in out", "overwrite=true")
    resume: bool = _f(False, "continue an interrupted realism run in out (same settings; committed groups are kept)",
                      "resume=true")
    model: Optional[str] = _f(None, "local diffusers folder (WanVACEPipeline), identity, or package.module:Class",
                              "model=/models/Wan2.1-VACE-1.3B-diffusers")
    device: str = _f("cpu", "cpu | cuda | cuda:N", "device=cuda")
    dtype: str = _f("auto", "auto (bfloat16 on cuda, float32 on cpu) | float32 | bfloat16 | float16", "dtype=float32",
                    choices=["auto", "float32", "bfloat16", "float16"])
    seed: int = _f(0, "noise seed; every episode and view of a group shares the group's seed", "seed=1", range=(0, None))
    strength: float = _f(0.6, "noise level the edit starts from (SDEdit from the sim render); 1 = structure only",
                         "strength=0.5", range=(0.0, 1.0))
    steps: int = _f(30, "denoising steps of the full schedule (only the last ~strength share run)", "steps=20",
                    range=(1, None))
    guidance_scale: float = _f(5.0, "classifier-free guidance (1 = off, halves the cost)", "guidance_scale=1.0",
                               range=(0.0, None))
    conditioning_scale: float = _f(1.0, "weight of the VACE control (structure) branch", "conditioning_scale=0.8",
                                   range=(0.0, None))
    control: str = _f("depth", "control video from the simulator: depth | edges | seg", "control=edges")
    views: str = _f("tile", "tile: the three views side by side in one video; separate: one video each, same seed",
                    "views=separate")
    chunk_frames: Any = _f(81, "frames per chunk (4n+1), or auto (from free GPU memory)", "chunk_frames=33")
    batch_size: int = _f(1, "episodes per edit call, and chunks of one shape denoised together (1..64)",
                         "batch_size=4", range=(1, 64))
    overlap: int = _f(8, "frames shared by consecutive chunks (cross-faded)", "overlap=4", range=(0, None))
    resolution: Any = _f(None, "[H, W] processing size of one video (multiples of 16); null: the dataset's size "
                         "rounded", "resolution=[256,256]")
    vae_tiling: bool = _f(False, "decode/encode the VAE in tiles (less GPU memory at high resolution)",
                          "vae_tiling=true")
    max_sequence_length: int = _f(512, "text encoder tokens", "max_sequence_length=256", range=(1, None))
    prompt: Optional[str] = _f(None, "one prompt for every scene (replaces prompt_template)", "prompt='a robot arm'")
    prompt_template: str = _f(DEFAULT_TEMPLATE, "prompt per scene; {objects} and {instruction} are filled in",
                              "prompt_template='photo of {objects}'")
    negative_prompt: str = _f(DEFAULT_NEGATIVE, "what the edit should avoid", "negative_prompt='cartoon, blurry'")
    prompt_embeds: Optional[str] = _f(None, "safetensors file with prompt_embeds [, negative_prompt_embeds] "
                                      "(pipelines without a text encoder)", "prompt_embeds=embeds.safetensors")
    crf: Optional[int] = _f(None, "x264 quality of the written videos; null: the source dataset's", "crf=18",
                            range=(0, 51))
    max_groups: Optional[int] = _f(None, "edit only the first N groups (quick looks)", "max_groups=1", range=(1, None))
    progress: bool = _f(True, "progress bar", "progress=false")
    fidelity: FidelityConfig = _f(factory=FidelityConfig, help="the failure-visibility check of every edited episode "
                                  "(thresholds calibrated with simfail calibrate)")
    executor: str = _f("local", "where the groups run: local (this process) or ray (shards on a Ray cluster, "
                       "merged into out; docs/scale.md)", "executor=ray", choices=["local", "ray"])
    ray: RayConfig = _f(factory=RayConfig, help="Ray cluster, workers and retries (executor=ray only)")

    def validate(self) -> None:
        self.ray.validate()


@dataclass
class CalibrateConfig:
    """``simfail calibrate DIR [DIR2 ...]``: measure the fidelity scores of synthetic edits."""

    data: Any = _f(None, "simfail dataset(s) to calibrate on: DIR or [DIR1,DIR2] (pooled)", "data=DIR",
                   positional=True, required=True)
    out: Optional[str] = _f(None, "JSON report (scores of every episode and edit, the summary)", "out=report.json")
    max_groups: Optional[int] = _f(None, "use only the first N groups of each dataset", "max_groups=2", range=(1, None))
    max_episodes: Optional[int] = _f(None, "use only the first N episodes of those groups per dataset",
                                     "max_episodes=6", range=(1, None))
    seed: int = _f(0, "seed of the random parts of the edits (noise, texture, shuffles)", "seed=1", range=(0, None))
    fidelity: FidelityConfig = _f(factory=FidelityConfig, help="the fidelity settings scored with (shipped "
                                  "thresholds: configs/realism.yaml)")

    def validate(self) -> None:
        self.data = data_list(self.data)
        self.fidelity.validate()

    def calibration_config(self) -> Any:
        from simfail.realism.calibrate import CalibrationConfig

        data = self.data[0] if len(self.data) == 1 else list(self.data)
        return CalibrationConfig(data=data, out=self.out, max_groups=self.max_groups, max_episodes=self.max_episodes,
                                 seed=self.seed, fidelity=dataclasses.replace(self.fidelity))


def data_list(value: Any) -> list[str]:
    """``DIR``, ``[DIR1,DIR2]`` (a list, or that text) -> a list of folders."""
    if isinstance(value, str):
        v = value.strip()
        value = [p.strip() for p in v[1:-1].split(",") if p.strip()] if v.startswith("[") and v.endswith("]") else [v]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(d, str) and d for d in value):
        raise ConfigError(f"data must be a dataset folder or a list of them, got {value!r}")
    return [str(d) for d in value]
