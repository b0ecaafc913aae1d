"""Loading and running the video diffusion pipeline of the realism pass (Wan2.1-VACE).

The model is a local diffusers folder (``model_index.json`` with ``WanVACEPipeline``), loaded
with ``local_files_only=True``: nothing is downloaded. :class:`VaceEditor` edits one video
(``T`` frames, the three views tiled side by side or one view) with

* the **control video** (depth, edges or segmentation rendered from the simulator) as VACE's
  context video with an all-white mask (regenerate every pixel, follow the structure), and
* the **original rendering** as the starting point (SDEdit): its latents are noised to
  ``sigma = strength`` and only the remaining denoising steps run, so colours and layout of
  the simulation carry over; ``strength=1`` generates from pure noise (structure only).

Long episodes run in chunks of ``chunk_frames`` (``4n+1``, the VAE's temporal stride) that
overlap by ``overlap`` frames and are cross-faded; every chunk starts from the same seed.
torch / diffusers are imported lazily (the ``realism`` extra).
"""

from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError, SimfailError, UnknownNameError
from simfail.realism.imageops import resize_frames

__all__ = ["RealismModelError", "VaceSettings", "VaceEditor", "load_pipeline", "check_device_name", "resolve_device", "resolve_dtype",
           "chunk_plan", "SUPPORTED_PIPELINES"]

#: diffusers pipeline classes this module can drive.
SUPPORTED_PIPELINES = ("WanVACEPipeline",)
DTYPES = ("auto", "float32", "bfloat16", "float16")
#: Rough activation cost of the Wan VAE / DiT per processed pixel and frame [bytes] (used by
#: ``chunk_frames=auto`` on CUDA; a heuristic, not calibrated in this repository).
BYTES_PER_PIXEL_FRAME = 260


class RealismModelError(SimfailError):
    """The realism model is missing, incomplete, of an unsupported kind, or cannot run."""


# ---------------------------------------------------------------------------------- devices


def check_device_name(device: str) -> str:
    """``device`` normalised if it is ``cpu``, ``cuda`` or ``cuda:N`` (no torch import)."""
    d = str(device).strip().lower()
    if not re.fullmatch(r"cpu|cuda(:\d+)?", d):
        raise UnknownNameError("device", str(device), ["cpu", "cuda", "cuda:N"])
    return d


def resolve_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``; raises for anything else or an absent GPU."""
    d = check_device_name(device)
    if d.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RealismModelError(f"device={device} was asked for but torch sees no CUDA GPU (torch {torch.__version__})")
        idx = int(d.split(":")[1]) if ":" in d else 0
        if idx >= torch.cuda.device_count():
            raise RealismModelError(f"device={device}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return d


def resolve_dtype(dtype: str, device: str):
    """torch dtype of ``auto`` (bfloat16 on CUDA, float32 on CPU), ``float32``, ``bfloat16``, ``float16``."""
    import torch

    name = str(dtype).strip().lower()
    if name not in DTYPES:
        raise UnknownNameError("dtype", str(dtype), DTYPES)
    if name == "auto":
        name = "bfloat16" if device.startswith("cuda") else "float32"
    if name == "float16" and device == "cpu":
        raise ConfigError("dtype=float16 is not supported on device=cpu; use float32 or bfloat16")
    return getattr(torch, name)


# ---------------------------------------------------------------------------------- loading


def _model_index(path: Path) -> dict[str, Any]:
    if not path.exists():
        raise RealismModelError(
            f"model path {path} does not exist. The realism pass loads models from a local folder only (no "
            "downloads); fetch one once, e.g. `huggingface-cli download Wan-AI/Wan2.1-VACE-1.3B-diffusers "
            f"--local-dir {path}`, or pass model=identity for a dry run"
        )
    index = path / "model_index.json"
    if not index.is_file():
        raise RealismModelError(
            f"{path} is not a diffusers pipeline folder: it has no model_index.json (expected one of "
            f"{', '.join(SUPPORTED_PIPELINES)} saved with save_pretrained)"
        )
    try:
        data = json.loads(index.read_text())
    except (OSError, ValueError) as exc:
        raise RealismModelError(f"cannot read {index}: {exc}") from exc
    cls = data.get("_class_name")
    if cls not in SUPPORTED_PIPELINES:
        raise RealismModelError(
            f"{path} holds a {cls!r} pipeline; the realism pass supports {', '.join(SUPPORTED_PIPELINES)}"
        )
    return data


def _load_model_weights(cls, folder: Path, dtype):
    """A diffusers model from ``folder`` without accelerate: config + safetensors/bin state dict."""
    import torch

    config = cls.load_config(folder, local_files_only=True)
    model = cls.from_config(config)
    files = sorted(folder.glob("*.safetensors"))
    state: dict[str, Any] = {}
    if files:
        from safetensors.torch import load_file

        for f in files:
            state.update(load_file(str(f)))
    else:
        bins = sorted(folder.glob("*.bin"))
        if not bins:
            raise RealismModelError(f"{folder} has a config but no weights (*.safetensors or *.bin)")
        for f in bins:
            state.update(torch.load(f, map_location="cpu", weights_only=True))
    missing, _ = model.load_state_dict(state, strict=False, assign=True)
    if missing:
        raise RealismModelError(f"{folder}: weights lack {len(missing)} tensors (e.g. {missing[:3]})")
    if dtype != torch.float32:
        model = model.to(dtype)
    for name in getattr(cls, "_keep_in_fp32_modules", None) or []:
        for mod_name, mod in model.named_modules():
            if name in mod_name:
                mod.to(torch.float32)
    return model.eval()


def _load_components(path: Path, index: dict[str, Any], dtype):
    import diffusers

    comps: dict[str, Any] = {}
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or len(spec) != 2:
            continue
        lib, cls_name = spec
        if lib is None or cls_name is None:
            comps[name] = None
            continue
        folder = path / name
        if not folder.is_dir():
            raise RealismModelError(f"{path}: component folder {name}/ is missing")
        if lib == "diffusers":
            cls = getattr(diffusers, cls_name)
            if issubclass(cls, diffusers.ModelMixin):
                comps[name] = _load_model_weights(cls, folder, dtype)
            else:  # schedulers and other config-only objects
                comps[name] = cls.from_pretrained(folder, local_files_only=True)
        elif lib == "transformers":
            import transformers

            cls = getattr(transformers, cls_name)
            kw = {"local_files_only": True}
            if hasattr(cls, "main_input_name"):  # a model, not a tokenizer
                kw["dtype"] = dtype
            comps[name] = cls.from_pretrained(folder, **kw)
        else:
            raise RealismModelError(f"{path}: component {name} comes from unsupported library {lib!r}")
    pipe_cls = getattr(diffusers, index["_class_name"])
    init = {k: v for k, v in comps.items()}
    for key, value in index.items():  # config values such as boundary_ratio
        if not key.startswith("_") and not isinstance(value, list):
            init[key] = value
    return pipe_cls(**init)


def load_pipeline(path: str | Path, *, device: str = "cpu", dtype: str = "auto"):
    """Load a local Wan-VACE diffusers pipeline onto ``device``; never downloads.

    Raises:
        RealismModelError: the folder is missing, not a supported pipeline, or incomplete.
        UnknownNameError / ConfigError: bad device or dtype.
    """
    try:
        import diffusers
        import torch  # noqa: F401
    except ImportError as exc:
        raise RealismModelError(
            f"the realism pass needs torch and diffusers ({exc}); install them with pip install 'simfail[realism]'"
        ) from exc
    dev = resolve_device(device)
    tdtype = resolve_dtype(dtype, dev)
    root = Path(path).expanduser()
    index = _model_index(root)
    try:
        if importlib.util.find_spec("accelerate") is not None:
            # the standard loader (low_cpu_mem_usage: weights go straight to their dtype)
            pipe = getattr(diffusers, index["_class_name"]).from_pretrained(
                root, local_files_only=True, torch_dtype=tdtype)
        else:  # diffusers' loader needs accelerate for this model class; load the parts ourselves
            pipe = _load_components(root, index, tdtype)
    except RealismModelError:
        raise
    except (OSError, ValueError, KeyError, AttributeError, TypeError, RuntimeError) as exc:
        raise RealismModelError(f"cannot load the pipeline in {root} (local files only): {exc}") from exc
    pipe = pipe.to(dev)
    pipe.set_progress_bar_config(disable=True)
    return pipe


# ---------------------------------------------------------------------------------- running


@dataclass
class VaceSettings:
    """How :class:`VaceEditor` runs the pipeline (see ``configs/realism.yaml``)."""

    strength: float = 0.6
    steps: int = 30
    guidance_scale: float = 5.0
    conditioning_scale: float = 1.0
    chunk_frames: int | str = 81
    overlap: int = 8
    resolution: tuple[int, int] | None = None
    max_sequence_length: int = 512
    vae_tiling: bool = False

    def validate(self) -> None:
        if not 0.0 < float(self.strength) <= 1.0:
            raise ConfigError(f"strength must be in (0, 1], got {self.strength}")
        if int(self.steps) < 1:
            raise ConfigError(f"steps must be >= 1, got {self.steps}")
        if self.chunk_frames != "auto":
            c = int(self.chunk_frames)
            if c < 5 or (c - 1) % 4:
                raise ConfigError(f"chunk_frames must be 'auto' or 4n+1 >= 5 (the VAE's temporal stride), got {c}")
            if not 0 <= int(self.overlap) < c - 1:
                raise ConfigError(f"overlap must be in [0, chunk_frames-1), got {self.overlap}")
        if self.resolution is not None:
            h, w = self.resolution
            if h % 16 or w % 16 or h < 16 or w < 16:
                raise ConfigError(f"resolution must be [H, W] multiples of 16, got {list(self.resolution)}")


def chunk_plan(n: int, chunk: int, overlap: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``0..n`` with chunks of ``chunk`` frames overlapping by
    at least ``overlap``; the last chunk is aligned to the end."""
    if n <= chunk:
        return [(0, n)]
    step = max(1, chunk - overlap)
    starts = list(range(0, n - chunk, step)) + [n - chunk]
    return [(s, s + chunk) for s in sorted(set(starts))]


def _blend(chunks: list[tuple[int, int, np.ndarray]], n: int) -> np.ndarray:
    """Cross-fade overlapping chunk outputs (float ``(L, H, W, 3)``) into ``(n, H, W, 3)``."""
    h, w = chunks[0][2].shape[1:3]
    acc = np.zeros((n, h, w, 3), np.float64)
    wsum = np.zeros((n, 1, 1, 1), np.float64)
    for k, (s, e, out) in enumerate(chunks):
        length = e - s
        weight = np.ones(length)
        if k > 0:  # ramp in over the overlap with the previous chunk
            prev_end = chunks[k - 1][1]
            ov = max(0, prev_end - s)
            if ov:
                weight[:ov] = (np.arange(ov) + 1) / (ov + 1)
        if k + 1 < len(chunks):
            nxt = chunks[k + 1][0]
            ov = max(0, e - nxt)
            if ov:
                weight[length - ov:] = np.minimum(weight[length - ov:], 1 - (np.arange(ov) + 1) / (ov + 1))
        acc[s:e] += out * weight[:, None, None, None]
        wsum[s:e, 0, 0, 0] += weight
    return acc / np.maximum(wsum, 1e-8)


class VaceEditor:
    """Edits uint8 videos with a loaded ``WanVACEPipeline`` (see the module docstring).

    Args:
        pipe: The pipeline (:func:`load_pipeline`).
        settings: Strength, steps, chunking ...
        prompt_embeds: Optional path of a safetensors file with ``prompt_embeds`` (and
            optionally ``negative_prompt_embeds``) used instead of the text encoder; required
            when the pipeline has no tokenizer / text encoder.
    """

    name = "wan-vace"

    def __init__(self, pipe, settings: VaceSettings, prompt_embeds: str | None = None) -> None:
        settings.validate()
        self.pipe = pipe
        self.settings = settings
        self._embeds: dict[str, Any] | None = None
        if prompt_embeds:
            from safetensors.torch import load_file

            p = Path(prompt_embeds).expanduser()
            if not p.is_file():
                raise RealismModelError(f"prompt_embeds file {p} does not exist")
            try:
                self._embeds = load_file(str(p))
            except Exception as exc:  # safetensors raises its own error types
                raise RealismModelError(f"cannot read prompt_embeds file {p}: {exc}") from exc
            if "prompt_embeds" not in self._embeds:
                raise RealismModelError(f"{p} has no 'prompt_embeds' tensor (keys: {sorted(self._embeds)})")
        elif getattr(pipe, "text_encoder", None) is None or getattr(pipe, "tokenizer", None) is None:
            raise RealismModelError(
                "the pipeline has no tokenizer/text encoder; pass prompt_embeds=FILE.safetensors with precomputed "
                "prompt embeddings"
            )
        self._prompt_cache: dict[tuple[str, str], tuple[Any, Any]] = {}
        if settings.vae_tiling and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()

    # -------------------------------------------------------------- helpers

    @property
    def device(self):
        return self.pipe._execution_device

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"pipeline": type(self.pipe).__name__, "strength": float(s.strength), "steps": int(s.steps),
                "guidance_scale": float(s.guidance_scale), "conditioning_scale": float(s.conditioning_scale),
                "chunk_frames": s.chunk_frames, "overlap": int(s.overlap),
                "dtype": str(self.pipe.transformer.dtype).removeprefix("torch."), "device": str(self.device),
                "prompt_embeds_file": self._embeds is not None}

    def _prompt(self, prompt: str, negative: str):
        import torch

        key = (prompt, negative)
        if key in self._prompt_cache:
            return self._prompt_cache[key]
        cfg = self.settings.guidance_scale > 1.0
        tdtype = self.pipe.transformer.dtype
        if self._embeds is not None:
            pe = self._embeds["prompt_embeds"].to(self.device, tdtype)
            if pe.ndim == 2:
                pe = pe[None]
            ne = self._embeds.get("negative_prompt_embeds")
            ne = torch.zeros_like(pe) if ne is None else ne.to(self.device, tdtype).reshape(pe.shape)
        else:
            with torch.inference_mode():
                pe, ne = self.pipe.encode_prompt(prompt=prompt, negative_prompt=negative, do_classifier_free_guidance=cfg,
                                                 max_sequence_length=self.settings.max_sequence_length, device=self.device)
        self._prompt_cache[key] = (pe, ne if cfg else None)
        return self._prompt_cache[key]

    def _proc_size(self, h: int, w: int) -> tuple[int, int]:
        if self.settings.resolution is not None:
            return tuple(int(v) for v in self.settings.resolution)  # type: ignore[return-value]
        return max(16, int(round(h / 16)) * 16), max(16, int(round(w / 16)) * 16)

    def _chunk_frames(self, ph: int, pw: int) -> int:
        c = self.settings.chunk_frames
        if c != "auto":
            return int(c)
        dev = str(self.device)
        if not dev.startswith("cuda"):
            return 81
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(dev))
        frames = int(0.7 * free / (BYTES_PER_PIXEL_FRAME * ph * pw))
        frames = max(5, min(81, frames))
        return (frames - 1) // 4 * 4 + 1

    # -------------------------------------------------------------- editing

    def edit(self, frames: np.ndarray, control: np.ndarray, *, prompt: str, negative_prompt: str, seed: int) -> np.ndarray:
        """Edited uint8 ``(T, H, W, 3)`` of ``frames`` following ``control`` (same shape)."""
        frames = np.asarray(frames)
        n, h, w = frames.shape[:3]
        ph, pw = self._proc_size(h, w)
        src = resize_frames(frames, ph, pw)
        ctl = resize_frames(np.asarray(control), ph, pw)
        chunk = self._chunk_frames(ph, pw)
        outs = []
        for s, e in chunk_plan(n, chunk, int(self.settings.overlap)):
            outs.append((s, e, self._run_chunk(src[s:e], ctl[s:e], prompt, negative_prompt, seed)))
        video = _blend(outs, n)
        out = (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        return resize_frames(out, h, w)

    def _run_chunk(self, src: np.ndarray, ctl: np.ndarray, prompt: str, negative: str, seed: int) -> np.ndarray:
        import torch
        from PIL import Image

        pipe, st = self.pipe, self.settings
        n, ph, pw = src.shape[:3]
        tstride = int(pipe.vae_scale_factor_temporal)
        length = ((n - 1 + tstride - 1) // tstride) * tstride + 1  # next 4k+1 >= n
        if length > n:  # pad by holding the last frame
            src = np.concatenate([src, np.repeat(src[-1:], length - n, axis=0)])
            ctl = np.concatenate([ctl, np.repeat(ctl[-1:], length - n, axis=0)])
        pe, ne = self._prompt(prompt, negative)
        dev = self.device
        sched = pipe.scheduler
        sched.set_timesteps(int(st.steps), device=dev)
        sigmas = sched.sigmas.detach().cpu().numpy()
        start = int(min(int((sigmas[:-1] > float(st.strength) + 1e-6).sum()), int(st.steps) - 1))
        sigma0 = float(sigmas[start])
        gen = torch.Generator(device="cpu").manual_seed(int(seed))
        vae = pipe.vae
        with torch.inference_mode():
            x = pipe.video_processor.preprocess_video([Image.fromarray(f) for f in src], ph, pw)
            x = x.to(dev, vae.dtype)
            lat = vae.encode(x).latent_dist.mode().float()
            z = vae.config.z_dim
            mean = torch.tensor(vae.config.latents_mean, device=lat.device).view(1, z, 1, 1, 1)
            std = torch.tensor(vae.config.latents_std, device=lat.device).view(1, z, 1, 1, 1)
            x0 = (lat - mean) / std
            noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(dev)
            latents = (1.0 - sigma0) * x0 + sigma0 * noise

        original = type(sched).set_timesteps

        def trimmed(*args, **kwargs):
            original(sched, *args, **kwargs)
            sched.timesteps = sched.timesteps[start:]
            sched.sigmas = sched.sigmas[start:]
            sched._step_index = None
            sched._begin_index = None

        sched.set_timesteps = trimmed
        try:
            with torch.inference_mode():
                result = pipe(
                    video=[Image.fromarray(f) for f in ctl], mask=None, conditioning_scale=float(st.conditioning_scale),
                    height=ph, width=pw, num_frames=length, num_inference_steps=int(st.steps),
                    guidance_scale=float(st.guidance_scale), generator=torch.Generator(device="cpu").manual_seed(int(seed)),
                    latents=latents, prompt_embeds=pe, negative_prompt_embeds=ne, output_type="np",
                )
        finally:
            del sched.set_timesteps
        out = np.asarray(result.frames[0], dtype=np.float32)
        if out.shape[0] < n:
            raise RealismModelError(f"the pipeline returned {out.shape[0]} frames for a chunk of {n}")
        return out[:n]
