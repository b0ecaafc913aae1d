"""The dataset-to-dataset realism pass: read a simfail dataset, edit every episode's three
camera views, check fidelity, and write a new dataset of the same format.

Labels are carried over unchanged: every per-frame column (``observation.state``, ``action``,
``progress``, ``reward``, ``failure``, ``sim.qpos``, ``sim.qvel``) and every episode field
(variant, success, score, failures, seed, task, perturbation). Episodes whose edit fails the
fidelity check (:mod:`simfail.realism.fidelity`) are reported and left out; the rest of their
group is written, with the group's ranks recomputed among the episodes kept (the dataset
writer rebuilds preferences from the scores), so ``simfail check`` passes on the output.

Editors (``model=``): a local diffusers folder (Wan2.1-VACE, :mod:`simfail.realism.pipeline`),
``identity`` (copies the frames: a dry run of the whole data path and of the fidelity check),
or ``package.module:Class`` (a class with ``edit(frames, control, *, prompt, negative_prompt,
seed) -> frames`` and an optional ``describe() -> dict``, built with no arguments).
"""

from __future__ import annotations

import importlib
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from simfail.core.episode import VIEWS, EpisodeRecord, competition_ranks
from simfail.errors import ConfigError, OutputDirError, SimfailError, UnknownNameError
from simfail.realism.conditioning import CONTROLS, SceneConditioner, control_frames
from simfail.realism.fidelity import FidelityConfig, check_episode
from simfail.realism.pipeline import check_device_name
from simfail.realism.prompts import DEFAULT_NEGATIVE, scene_prompt

__all__ = ["IdentityEditor", "make_editor", "edit_views", "group_seed", "run_realism", "VIEW_MODES"]

VIEW_MODES = ("tile", "separate")
RECORD_COLUMNS = ("observation.state", "action", "progress", "reward", "failure", "sim.qpos", "sim.qvel")


class IdentityEditor:
    """Returns the frames unchanged (``model=identity``)."""

    name = "identity"

    def edit(self, frames: np.ndarray, control: np.ndarray, *, prompt: str, negative_prompt: str, seed: int) -> np.ndarray:
        return np.array(frames, copy=True)

    def describe(self) -> dict[str, Any]:
        return {"pipeline": "identity"}


def make_editor(cfg: dict[str, Any]):
    """The editor named by ``cfg['model']`` (see the module docstring)."""
    model = cfg.get("model")
    if model in (None, ""):
        raise ConfigError("model= is required: a local diffusers folder (Wan2.1-VACE), identity, or package.module:Class")
    model = str(model)
    if model == "identity":
        return IdentityEditor()
    if ":" in model and not Path(model).exists() and "/" not in model.split(":", 1)[0]:
        mod_name, _, cls_name = model.partition(":")
        try:
            cls = getattr(importlib.import_module(mod_name), cls_name)
        except (ImportError, AttributeError) as exc:
            raise UnknownNameError("realism model", model, ["identity", "PATH (diffusers folder)", "package.module:Class"]) from exc
        editor = cls()
        if not callable(getattr(editor, "edit", None)):
            raise ConfigError(f"{model} has no edit(frames, control, *, prompt, negative_prompt, seed) method")
        return editor
    from simfail.realism.pipeline import VaceEditor, VaceSettings, load_pipeline

    res = cfg.get("resolution")
    settings = VaceSettings(
        strength=float(cfg["strength"]), steps=int(cfg["steps"]), guidance_scale=float(cfg["guidance_scale"]),
        conditioning_scale=float(cfg["conditioning_scale"]),
        chunk_frames=cfg["chunk_frames"] if cfg["chunk_frames"] == "auto" else int(cfg["chunk_frames"]),
        overlap=int(cfg["overlap"]), resolution=tuple(res) if res else None,
        max_sequence_length=int(cfg["max_sequence_length"]), vae_tiling=bool(cfg.get("vae_tiling", False)),
    )
    settings.validate()  # before the (slow) load
    pipe = load_pipeline(model, device=str(cfg["device"]), dtype=str(cfg["dtype"]))
    return VaceEditor(pipe, settings, prompt_embeds=cfg.get("prompt_embeds"))


def group_seed(seed: int, group_id: int) -> int:
    """Noise seed shared by every episode and view of a group (variants of one initial state
    get the same noise, so they keep the same look)."""
    return int(np.random.SeedSequence([int(seed), int(group_id), 0x3EA1]).generate_state(1)[0] & 0x7FFFFFFF)


def edit_views(editor, frames: dict[str, np.ndarray], control: dict[str, np.ndarray], *, mode: str, prompt: str,
               negative_prompt: str, seed: int) -> dict[str, np.ndarray]:
    """Edit the views of one episode: ``tile`` puts them side by side in one video (one
    denoising run sees all views), ``separate`` edits each with the same seed."""
    views = list(frames)
    if mode == "tile":
        w = frames[views[0]].shape[2]
        out = editor.edit(np.concatenate([frames[v] for v in views], axis=2),
                          np.concatenate([control[v] for v in views], axis=2),
                          prompt=prompt, negative_prompt=negative_prompt, seed=seed)
        out = np.asarray(out)
        return {v: np.ascontiguousarray(out[:, :, k * w:(k + 1) * w]) for k, v in enumerate(views)}
    if mode == "separate":
        return {v: np.asarray(editor.edit(frames[v], control[v], prompt=prompt, negative_prompt=negative_prompt, seed=seed))
                for v in views}
    raise UnknownNameError("view mode", mode, VIEW_MODES)


def _check_out(data: Path, out: Path, overwrite: bool) -> None:
    if out.resolve() == data.resolve():
        raise ConfigError("out= must differ from data= (the realism pass writes a new dataset)")
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputDirError(f"output directory {out} is not empty; choose another one or pass overwrite=true")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def run_realism(cfg: dict[str, Any], *, log=print) -> dict[str, Any]:
    """Run the pass described by the composed ``configs/realism.yaml`` settings; returns a summary.

    Raises:
        SimfailError: bad settings, unreadable input, unusable output folder, missing model.
    """
    from tqdm import tqdm

    from simfail.dataset.reader import SimfailDataset
    from simfail.dataset.writer import DatasetWriter

    if not cfg.get("data"):
        raise ConfigError("data= is required (the simfail dataset to edit)")
    if not cfg.get("out"):
        raise ConfigError("out= is required (a new, empty folder for the edited dataset)")
    data, out = Path(str(cfg["data"])).expanduser(), Path(str(cfg["out"])).expanduser()
    if str(cfg.get("control")) not in CONTROLS:
        raise UnknownNameError("control", str(cfg.get("control")), CONTROLS)
    if str(cfg.get("views")) not in VIEW_MODES:
        raise UnknownNameError("view mode", str(cfg.get("views")), VIEW_MODES)
    check_device_name(str(cfg.get("device", "cpu")))
    fcfg = FidelityConfig(**(cfg.get("fidelity") or {}))
    fcfg.validate()
    src = SimfailDataset(data)
    _check_out(data, out, bool(cfg.get("overwrite")))
    editor = make_editor(cfg)

    info = src.info
    feats = info["features"]
    key0 = src.video_keys[0]
    h, w = (int(v) for v in feats[key0]["shape"][:2])
    views = tuple(src.views)
    if tuple(sorted(views)) != tuple(sorted(VIEWS)):
        raise SimfailError(f"{data} has views {list(views)}; the realism pass expects {list(VIEWS)}")
    views = VIEWS
    meta = src.simfail_meta
    writer = DatasetWriter(
        out, fps=src.fps, image_size=(h, w), state_names=list(feats["observation.state"]["names"]),
        action_names=list(feats["action"]["names"]), nq=int(feats["sim.qpos"]["shape"][0]),
        nv=int(feats["sim.qvel"]["shape"][0]), robot_type=str(info.get("robot_type", "franka_panda")),
        mode="overwrite" if cfg.get("overwrite") else "new", chunks_size=int(info.get("chunks_size", 1000)),
        crf=int(cfg["crf"]) if cfg.get("crf") is not None else int(((meta.get("config") or {}).get("dataset") or {}).get("crf", 23)),
    )
    groups = src.groups()
    gids = list(groups)
    if cfg.get("max_groups"):
        gids = gids[: int(cfg["max_groups"])]
    desc = editor.describe() if hasattr(editor, "describe") else {"pipeline": type(editor).__name__}
    record: dict[str, Any] = {
        "source": str(data.resolve()), "model": str(cfg["model"]), "editor": desc,
        "strength": float(cfg["strength"]), "seed": int(cfg["seed"]), "control": str(cfg["control"]),
        "views": str(cfg["views"]), "prompt_template": cfg.get("prompt_template"), "prompt_override": cfg.get("prompt"),
        "negative_prompt": cfg.get("negative_prompt") or DEFAULT_NEGATIVE,
        "fidelity": {k: getattr(fcfg, k) for k in ("enabled", "edge_min", "object_min", "window", "tolerance", "min_pixels")},
        "prompts": {}, "episodes": [], "rejected": [],
    }
    kept_groups: dict[str, Any] = {}
    n_frames = 0
    t_edit = t_cond = t_fid = 0.0
    t_start = time.perf_counter()
    total_eps = sum(len(groups[g]) for g in gids)
    bar = tqdm(total=total_eps, desc="simfail realism", unit="episode", disable=not cfg.get("progress", True))
    try:
        for gid in gids:
            with SceneConditioner(meta, gid, h, w, views) as cond_r:
                prompt = scene_prompt(cond_r.layout, cfg.get("prompt_template"), cfg.get("prompt"))
                record["prompts"][str(gid)] = prompt
                seed = group_seed(int(cfg["seed"]), gid)
                kept: list[EpisodeRecord] = []
                sources: list[int] = []
                for ep in groups[gid]:
                    row = src.episode(ep)
                    cols = src.episode_columns(ep)
                    frames = {v: src.episode_frames(ep, v) for v in views}
                    t0 = time.perf_counter()
                    cond = cond_r.render(cols["sim.qpos"])
                    control = {v: control_frames(cond[v], str(cfg["control"])) for v in views}
                    t1 = time.perf_counter()
                    edited = edit_views(editor, frames, control, mode=str(cfg["views"]), prompt=prompt,
                                        negative_prompt=str(cfg.get("negative_prompt") or DEFAULT_NEGATIVE), seed=seed)
                    t2 = time.perf_counter()
                    for v in views:
                        e = np.asarray(edited[v])
                        if e.shape != frames[v].shape or e.dtype != np.uint8:
                            raise SimfailError(f"the editor returned {e.dtype} {e.shape} for view {v} of episode {ep}, "
                                               f"expected uint8 {frames[v].shape}")
                    failures = src.failures(ep)
                    fid = check_episode(frames, edited, cond, failures, cond_r.labels_of, fcfg)
                    t3 = time.perf_counter()
                    t_cond += t1 - t0
                    t_edit += t2 - t1
                    t_fid += t3 - t2
                    n_frames += int(row["length"]) * len(views)
                    passed = fid.passed or not fcfg.enabled
                    entry = {"source_episode": ep, "group": gid, "variant": row["simfail.variant"], **fid.to_dict(),
                             "written": passed}
                    record["episodes"].append(entry)
                    bar.update(1)
                    if not passed:
                        record["rejected"].append({"source_episode": ep, "group": gid, "variant": row["simfail.variant"],
                                                   "reasons": fid.reasons})
                        log(f"realism: episode {ep} (group {gid}, {row['simfail.variant']}) left out: {'; '.join(fid.reasons)}")
                        continue
                    kept.append(EpisodeRecord(
                        group_id=gid, variant=str(row["simfail.variant"]), instruction=str(row["tasks"][0]),
                        task=str(row["simfail.task"]), seed=int(row["simfail.seed"]), fps=src.fps, frames=edited,
                        columns={c: cols[c] for c in RECORD_COLUMNS}, success=bool(row["simfail.success"]),
                        score=float(row["simfail.score"]), failures=failures,
                        perturbation=json.loads(row["simfail.perturbation"] or "{}"), rank=int(row["simfail.rank"]),
                    ))
                    sources.append(ep)
            if not kept:
                log(f"realism: group {gid}: every episode failed the fidelity check; the group is left out")
                continue
            if len(kept) < len(groups[gid]):  # ranks are relative to the group: recompute among those kept
                for rec, rank in zip(kept, competition_ranks([r.score for r in kept])):
                    rec.rank = rank
            new_idx = writer.write_group(gid, kept)
            for e in record["episodes"]:
                if e["group"] == gid and e["written"]:
                    e["episode"] = new_idx[sources.index(e["source_episode"])]
            if str(gid) in (meta.get("groups") or {}):
                kept_groups[str(gid)] = meta["groups"][str(gid)]
            record["timing"] = _timing(n_frames, t_edit, t_cond, t_fid, time.perf_counter() - t_start)
            writer.finalize({**meta, "groups": kept_groups, "realism": record})
    finally:
        bar.close()
    record["timing"] = _timing(n_frames, t_edit, t_cond, t_fid, time.perf_counter() - t_start)
    writer.finalize({**meta, "groups": kept_groups, "realism": record})
    return {
        "out": str(writer.root), "episodes_in": total_eps, "episodes_written": writer.num_episodes,
        "groups_written": writer.num_groups, "rejected": record["rejected"], "timing": record["timing"],
        "episodes": record["episodes"],
    }


def _timing(frames: int, t_edit: float, t_cond: float, t_fid: float, total: float) -> dict[str, Any]:
    out = {"frames": frames, "seconds_total": round(total, 3), "seconds_edit": round(t_edit, 3),
           "seconds_conditioning": round(t_cond, 3), "seconds_fidelity": round(t_fid, 3),
           "frames_per_s_edit": round(frames / t_edit, 3) if t_edit > 0 else None,
           "frames_per_s_total": round(frames / total, 3) if total > 0 else None,
           "peak_rss_mb": round(_peak_rss_mb(), 1)}
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    except ImportError:
        pass
    return out
