"""Loading and running the video diffusion pipeline of the realism pass (Wan2.1-VACE).

The model is a local diffusers folder (``model_index.json`` with ``WanVACEPipeline``), loaded
with ``local_files_only=True``: nothing is downloaded. :class:`VaceEditor` edits videos
(``T`` frames, the three views tiled side by side or one view) with

* the **control video** (depth, edges or segmentation rendered from the simulator) as VACE's
  context video with an all-white mask (regenerate every pixel, follow the structure), and
* the **original rendering** as the starting point (SDEdit): its latents are noised to
  ``sigma = strength`` and only the remaining denoising steps run, so colours and layout of
  the simulation carry over; ``strength=1`` generates from pure noise (structure only).

Long episodes run in chunks of ``chunk_frames`` (``4n+1``, the VAE's temporal stride) that
overlap by ``overlap`` frames and are cross-faded; every chunk starts from the same seed.

**Batching.** ``WanVACEPipeline.__call__`` (diffusers 0.42) generates one video per call: it
rejects prompt lists and ``num_videos_per_prompt != 1``, and its ``prepare_video_latents`` /
``prepare_masks`` raise for a batch of more than one video. :class:`VaceEditor` therefore runs
the pipeline's own parts itself: per chunk, the pipeline's ``preprocess_conditions``,
``prepare_video_latents`` and ``prepare_masks`` (batch of one, as diffusers supports) build
VACE's context latents and the VAE encodes the SDEdit start; then up to ``batch_size`` chunks
of the same shape are stacked and **denoised together** (one transformer call per step and
guidance branch for the whole batch, the scheduler stepping the stacked latents); the VAE
decodes them one at a time again (the VAE holds the memory peak; batching it would multiply
that). The loop is the pipeline's loop (Wan 2.2's two-transformer ``boundary_ratio`` switch
included); a test checks it reproduces ``WanVACEPipeline.__call__`` bit for bit at batch size 1.
Each chunk's noise comes from its own generator seeded with its request's seed, so a chunk's
result does not depend on what else is in its batch, up to floating-point rounding of the
batched matrix products (on CPU float32: differences of ~1e-6 in the latents, at most a few
grey levels in the uint8 output; see docs/realism.md).

torch / diffusers are imported lazily (the ``realism`` extra).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError, SimfailError, UnknownNameError
from simfail.realism.batching import EditRequest, check_batch_size, plan_batches
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

        importlib.import_module("torch")
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
    """How :class:`VaceEditor` runs the pipeline (see ``configs/realism.yaml``).

    Attributes:
        strength: Noise level (sigma) the edit starts from, in ``(0, 1]``.
        steps: Denoising steps of the full schedule (only those at sigma <= strength run).
        guidance_scale: Classifier-free guidance (1 = off).
        conditioning_scale: Weight of VACE's control branch.
        chunk_frames: Frames per chunk (``4n+1 >= 5``) or ``"auto"`` (from free GPU memory).
        overlap: Frames shared by consecutive chunks.
        resolution: ``(H, W)`` processing size in pixels (multiples of 16); None: the input's
            size rounded to multiples of 16.
        max_sequence_length: Text tokens of the prompt encoder.
        vae_tiling: Encode / decode the VAE in tiles.
        batch_size: Chunks of the same shape denoised together, ``1..MAX_BATCH_SIZE``.
    """

    strength: float = 0.6
    steps: int = 30
    guidance_scale: float = 5.0
    conditioning_scale: float = 1.0
    chunk_frames: int | str = 81
    overlap: int = 8
    resolution: tuple[int, int] | None = None
    max_sequence_length: int = 512
    vae_tiling: bool = False
    batch_size: int = 1

    def validate(self) -> None:
        """Raises ConfigError (one message) for the first value out of range."""
        check_batch_size(self.batch_size)
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


@dataclass
class _Clip:
    """One chunk of one request, resized to the processing size and padded to ``4k+1`` frames."""

    request: int
    start: int
    stop: int
    src: np.ndarray
    ctl: np.ndarray


class VaceEditor:
    """Edits uint8 videos with a loaded ``WanVACEPipeline`` (see the module docstring).

    Args:
        pipe: The pipeline (:func:`load_pipeline`).
        settings: Strength, steps, chunking, batch size ...
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
        #: pipeline calls (batched denoising runs) so far, and chunks denoised in them
        self.calls = 0
        self.chunks = 0

    # -------------------------------------------------------------- helpers

    @property
    def device(self):
        return self.pipe._execution_device

    def describe(self) -> dict[str, Any]:
        s = self.settings
        return {"pipeline": type(self.pipe).__name__, "strength": float(s.strength), "steps": int(s.steps),
                "guidance_scale": float(s.guidance_scale), "conditioning_scale": float(s.conditioning_scale),
                "chunk_frames": s.chunk_frames, "overlap": int(s.overlap), "batch_size": int(s.batch_size),
                "resolution": None if s.resolution is None else [int(v) for v in s.resolution],
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
            pe = pe.to(tdtype)
            ne = None if ne is None else ne.to(tdtype)
        self._prompt_cache[key] = (pe, ne if cfg else None)
        return self._prompt_cache[key]

    def _proc_size(self, h: int, w: int) -> tuple[int, int]:
        if self.settings.resolution is not None:
            return tuple(int(v) for v in self.settings.resolution)  # type: ignore[return-value]
        return max(16, int(round(h / 16)) * 16), max(16, int(round(w / 16)) * 16)

    def _chunk_frames(self, ph: int, pw: int) -> int:
        """Frames per chunk: the setting, or with ``auto`` on CUDA as many as 70% of the free
        GPU memory holds for ``batch_size`` chunks at ``BYTES_PER_PIXEL_FRAME`` (81 elsewhere)."""
        c = self.settings.chunk_frames
        if c != "auto":
            return int(c)
        dev = str(self.device)
        if not dev.startswith("cuda"):
            return 81
        import torch

        free, _ = torch.cuda.mem_get_info(torch.device(dev))
        frames = int(0.7 * free / (BYTES_PER_PIXEL_FRAME * ph * pw * int(self.settings.batch_size)))
        frames = max(5, min(81, frames))
        return (frames - 1) // 4 * 4 + 1

    def _padded(self, n: int) -> int:
        """Frames a chunk of ``n`` is padded to: the next ``4k+1`` (the VAE's temporal stride)."""
        tstride = int(self.pipe.vae_scale_factor_temporal)
        return ((n - 1 + tstride - 1) // tstride) * tstride + 1

    def _start_index(self) -> tuple[int, float]:
        """Index into the scheduler's schedule of the first step at ``sigma <= strength``, and its sigma."""
        st = self.settings
        sched = self.pipe.scheduler
        sched.set_timesteps(int(st.steps), device=self.device)
        sigmas = sched.sigmas.detach().cpu().numpy()
        start = int(min(int((sigmas[:-1] > float(st.strength) + 1e-6).sum()), int(st.steps) - 1))
        return start, float(sigmas[start])

    # -------------------------------------------------------------- editing

    def edit(self, frames: np.ndarray, control: np.ndarray, *, prompt: str, negative_prompt: str, seed: int) -> np.ndarray:
        """Edited uint8 ``(T, H, W, 3)`` of ``frames`` following ``control`` (same shape)."""
        return self.edit_batch([EditRequest(np.asarray(frames), np.asarray(control), prompt, negative_prompt, int(seed))])[0]

    def edit_batch(self, requests: list[EditRequest]) -> list[np.ndarray]:
        """Edited uint8 frames of every request (same shapes, same order).

        Every request is resized to the processing size and split into chunks; chunks of the
        same shape (padded frames, height, width) are denoised ``batch_size`` at a time; each
        request's chunks are cross-faded back together and resized to the request's size.
        """
        clips: list[_Clip] = []
        sizes: list[tuple[int, int, int]] = []
        for i, r in enumerate(requests):
            frames = np.asarray(r.frames)
            n, h, w = frames.shape[:3]
            if np.asarray(r.control).shape != frames.shape:
                raise SimfailError(f"control video {np.asarray(r.control).shape} does not match the frames {frames.shape}")
            sizes.append((n, h, w))
            ph, pw = self._proc_size(h, w)
            src = resize_frames(frames, ph, pw)
            ctl = resize_frames(np.asarray(r.control), ph, pw)
            for s, e in chunk_plan(n, self._chunk_frames(ph, pw), int(self.settings.overlap)):
                length = self._padded(e - s)
                pad = length - (e - s)  # pad by holding the last frame
                clips.append(_Clip(i, s, e,
                                   np.concatenate([src[s:e]] + [src[e - 1:e]] * pad) if pad else src[s:e],
                                   np.concatenate([ctl[s:e]] + [ctl[e - 1:e]] * pad) if pad else ctl[s:e]))
        results: dict[int, np.ndarray] = {}
        for idx in plan_batches([c.src.shape for c in clips], int(self.settings.batch_size)):
            outs = self._denoise([clips[j] for j in idx], requests)
            results.update(zip(idx, outs))
        edited = []
        for i, (n, h, w) in enumerate(sizes):
            parts = [(c.start, c.stop, results[j]) for j, c in enumerate(clips) if c.request == i]
            video = _blend(parts, n)
            out = (np.clip(video, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            edited.append(resize_frames(out, h, w))
        return edited

    def _denoise(self, clips: list[_Clip], requests: list[EditRequest]) -> list[np.ndarray]:
        """Float ``(L, H, W, 3)`` frames in ``[0, 1]`` of chunks of one shape, denoised together."""
        import torch
        from PIL import Image

        pipe, st = self.pipe, self.settings
        dev = self.device
        length, ph, pw = clips[0].src.shape[:3]
        vae = pipe.vae
        tdtype = pipe.transformer.dtype
        start, sigma0 = self._start_index()
        sched = pipe.scheduler
        timesteps = sched.timesteps[start:]
        if hasattr(sched, "set_begin_index"):  # step from index `start` of the schedule (SDEdit)
            sched.set_begin_index(start * int(getattr(sched, "order", 1)))
        cfg = float(st.guidance_scale) > 1.0
        z = vae.config.z_dim
        latents, conds, pes, nes = [], [], [], []
        with torch.inference_mode():
            mean = torch.tensor(vae.config.latents_mean, device=dev).view(1, z, 1, 1, 1)
            std = torch.tensor(vae.config.latents_std, device=dev).view(1, z, 1, 1, 1)
            for c in clips:
                req = requests[c.request]
                # SDEdit start: the sim rendering's latents noised to sigma0 (this chunk's own generator)
                x = pipe.video_processor.preprocess_video([Image.fromarray(f) for f in c.src], ph, pw)
                x0 = (vae.encode(x.to(dev, vae.dtype)).latent_dist.mode().float() - mean) / std
                gen = torch.Generator(device="cpu").manual_seed(int(req.seed))
                noise = torch.randn(x0.shape, generator=gen, dtype=torch.float32).to(dev)
                latents.append((1.0 - sigma0) * x0 + sigma0 * noise)
                # VACE context: the control video with an all-white mask, as the pipeline builds it
                video, mask, refs = pipe.preprocess_conditions(
                    [Image.fromarray(f) for f in c.ctl], None, None, 1, ph, pw, length, torch.float32, dev)
                context = pipe.prepare_video_latents(video, mask, refs, None, dev)
                conds.append(torch.cat([context, pipe.prepare_masks(mask, refs, None)], dim=1).to(tdtype))
                pe, ne = self._prompt(req.prompt, req.negative_prompt)
                pes.append(pe)
                nes.append(ne)
            lat = torch.cat(latents).to(dev, torch.float32)
            cond = torch.cat(conds)
            pe = torch.cat(pes)
            ne = torch.cat(nes) if cfg else None
            layers = pipe.transformer.config.vace_layers
            scale = torch.tensor([float(st.conditioning_scale)] * len(layers)).to(device=dev, dtype=tdtype)
            boundary = pipe.config.get("boundary_ratio") if hasattr(pipe, "config") else None
            boundary_t = None if boundary is None else float(boundary) * sched.config.num_train_timesteps
            for t in timesteps:
                second = boundary_t is not None and float(t) < boundary_t and getattr(pipe, "transformer_2", None) is not None
                model = pipe.transformer_2 if second else pipe.transformer
                inp = lat.to(tdtype)
                ts = t.expand(lat.shape[0])
                with _cache_context(model, "cond"):
                    pred = model(hidden_states=inp, timestep=ts, encoder_hidden_states=pe, control_hidden_states=cond,
                                 control_hidden_states_scale=scale, return_dict=False)[0]
                if cfg:
                    with _cache_context(model, "uncond"):
                        unc = model(hidden_states=inp, timestep=ts, encoder_hidden_states=ne, control_hidden_states=cond,
                                    control_hidden_states_scale=scale, return_dict=False)[0]
                    pred = unc + float(st.guidance_scale) * (pred - unc)
                lat = sched.step(pred, t, lat, return_dict=False)[0]
            outs = []
            for i, c in enumerate(clips):  # decode one chunk at a time
                li = lat[i:i + 1].to(vae.dtype)
                lmean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1).to(li.device, li.dtype)
                inv_std = 1.0 / torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1).to(li.device, li.dtype)
                video = vae.decode(li / inv_std + lmean, return_dict=False)[0]
                frames = np.asarray(pipe.video_processor.postprocess_video(video, output_type="np")[0], dtype=np.float32)
                n = c.stop - c.start
                if frames.shape[0] < n:
                    raise RealismModelError(f"the pipeline returned {frames.shape[0]} frames for a chunk of {n}")
                outs.append(frames[:n])
        self.calls += 1
        self.chunks += len(clips)
        return outs


def _cache_context(model, name: str):
    """``model.cache_context(name)`` where diffusers has it (cache hooks), else nothing."""
    ctx = getattr(model, "cache_context", None)
    return ctx(name) if callable(ctx) else contextlib.nullcontext()
