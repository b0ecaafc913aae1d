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
seed) -> frames``, optionally ``edit_batch(requests) -> list[frames]`` (see
:mod:`simfail.realism.batching`) and ``describe() -> dict``, built with no arguments).

Batching: the episodes of a group are edited ``batch_size`` at a time (one
:func:`~simfail.realism.batching.edit_requests` call each). Every episode of a group uses the
group's noise seed (:func:`group_seed`, a function of ``seed`` and the group id only), so the
edit of an episode does not depend on ``batch_size``.

Writing and resuming use the dataset writer's own mechanisms
(:class:`~simfail.dataset.writer.DatasetWriter`): every group is committed atomically (staged
files moved into place, its episodes file last), the ``meta/`` files are replaced atomically,
and ``resume=true`` reopens the writer in ``resume`` mode, which removes any half-written group
and skips the committed ones. The realism record in ``meta/simfail.json`` is written *before*
each group's commit (naming the group's new episode indices) and again after it, so whatever
point a run stops at, the record covers every committed group; a resumed run keeps the record
entries of the committed groups (and of groups whose every episode was rejected, listed in
``realism.empty_groups``) and redoes the rest.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from simfail.core.episode import VIEWS, EpisodeRecord, competition_ranks
from simfail.dataset import layout as L
from simfail.errors import ConfigError, OutputDirError, SimfailError, UnknownNameError
from simfail.realism.batching import EditRequest, check_batch_size, edit_requests
from simfail.realism.conditioning import CONTROLS, SceneConditioner, control_frames
from simfail.realism.fidelity import FidelityConfig, check_episode
from simfail.realism.pipeline import check_device_name
from simfail.realism.prompts import DEFAULT_NEGATIVE, scene_prompt

__all__ = ["IdentityEditor", "make_editor", "edit_views", "edit_episodes", "group_seed", "run_realism", "VIEW_MODES",
           "RESUME_KEYS"]

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
        batch_size=check_batch_size(cfg.get("batch_size", 1)),
    )
    settings.validate()  # before the (slow) load
    pipe = load_pipeline(model, device=str(cfg["device"]), dtype=str(cfg["dtype"]))
    return VaceEditor(pipe, settings, prompt_embeds=cfg.get("prompt_embeds"))


def group_seed(seed: int, group_id: int) -> int:
    """Noise seed shared by every episode and view of a group (variants of one initial state
    get the same noise, so they keep the same look)."""
    return int(np.random.SeedSequence([int(seed), int(group_id), 0x3EA1]).generate_state(1)[0] & 0x7FFFFFFF)


def edit_episodes(editor, episodes: list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]], *, mode: str,
                  prompt: str, negative_prompt: str, seed: int) -> list[dict[str, np.ndarray]]:
    """Edit the views of several episodes (``[(frames, control), ...]``, each ``{view: uint8
    (T, H, W, 3)}``) in one :func:`~simfail.realism.batching.edit_requests` call: ``tile``
    makes one video per episode with the views side by side (one denoising run sees all
    views), ``separate`` one video per view; every video gets ``seed``."""
    if mode not in VIEW_MODES:
        raise UnknownNameError("view mode", mode, VIEW_MODES)
    requests: list[EditRequest] = []
    for frames, control in episodes:
        views = list(frames)
        if mode == "tile":
            requests.append(EditRequest(np.concatenate([frames[v] for v in views], axis=2),
                                        np.concatenate([control[v] for v in views], axis=2), prompt, negative_prompt, seed))
        else:
            requests.extend(EditRequest(frames[v], control[v], prompt, negative_prompt, seed) for v in views)
    outs = iter(edit_requests(editor, requests))
    edited: list[dict[str, np.ndarray]] = []
    for frames, _ in episodes:
        views = list(frames)
        if mode == "tile":
            out = np.asarray(next(outs))
            w = frames[views[0]].shape[2]
            edited.append({v: np.ascontiguousarray(out[:, :, k * w:(k + 1) * w]) for k, v in enumerate(views)})
        else:
            edited.append({v: np.asarray(next(outs)) for v in views})
    return edited


def edit_views(editor, frames: dict[str, np.ndarray], control: dict[str, np.ndarray], *, mode: str, prompt: str,
               negative_prompt: str, seed: int) -> dict[str, np.ndarray]:
    """Edit the views of one episode (see :func:`edit_episodes`)."""
    return edit_episodes(editor, [(frames, control)], mode=mode, prompt=prompt, negative_prompt=negative_prompt,
                         seed=seed)[0]


def _check_out(data: Path, out: Path, overwrite: bool, resume: bool) -> None:
    if overwrite and resume:
        raise ConfigError("pass either resume=true (continue the run in out) or overwrite=true (replace it), not both")
    if out.resolve() == data.resolve():
        raise ConfigError("out= must differ from data= (the realism pass writes a new dataset)")
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"output path {out} exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not (overwrite or resume):
        raise OutputDirError(f"output directory {out} is not empty; pass resume=true to continue an interrupted realism "
                             "run in it, overwrite=true to replace it, or choose another folder")


#: Settings of the realism record that must match for ``resume=true`` (``batch_size``, the
#: device, ``max_groups`` and ``progress`` may change between the runs; they do not change
#: what an episode's edit is).
RESUME_KEYS = ("source", "model", "editor", "strength", "seed", "control", "views", "prompt_template",
               "prompt_override", "negative_prompt", "fidelity", "crf")
_NOT_COMPARED_EDITOR_KEYS = ("device", "batch_size")


def _prior_record(out: Path) -> dict[str, Any] | None:
    """The realism record of an interrupted run in ``out`` (None when ``out`` holds nothing yet).

    Raises:
        OutputDirError: ``out`` holds a dataset that is not a ``simfail realism`` output.
    """
    meta_path = out / L.SIMFAIL_META_PATH
    if not meta_path.is_file():
        committed = L.list_chunk_files(out / "meta" / "episodes", "parquet") if out.is_dir() else []
        if committed:
            raise OutputDirError(f"cannot resume in {out}: it holds committed groups but no {L.SIMFAIL_META_PATH}, so it "
                                 "was not written by simfail realism; pass overwrite=true or choose another folder")
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        raise OutputDirError(f"cannot resume in {out}: {meta_path} is unreadable ({exc})") from exc
    record = meta.get("realism") if isinstance(meta, dict) else None
    if not isinstance(record, dict) or not isinstance(record.get("episodes"), list):
        raise OutputDirError(f"cannot resume in {out}: it is not the output of simfail realism ({L.SIMFAIL_META_PATH} has no "
                             "realism record); pass overwrite=true or choose another folder")
    return record


def _resume_differences(prior: dict[str, Any], record: dict[str, Any]) -> list[str]:
    def norm(key: str, value: Any) -> Any:
        if key == "editor" and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in _NOT_COMPARED_EDITOR_KEYS}
        return json.loads(json.dumps(value))  # tuples -> lists, as stored

    return [f"{k}={prior.get(k)!r} (this run: {record.get(k)!r})" for k in RESUME_KEYS
            if norm(k, prior.get(k)) != norm(k, record.get(k))]


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def source_crf(cfg: dict[str, Any], meta: dict[str, Any]) -> int:
    """x264 quality of the edited videos: ``crf=``, else the source dataset's."""
    return int(cfg["crf"]) if cfg.get("crf") is not None else int(((meta.get("config") or {}).get("dataset") or {}).get("crf", 23))


def output_writer(src, out: Path, mode: str, crf: int):
    """The :class:`~simfail.dataset.writer.DatasetWriter` of the edited dataset (or a shard of it)
    at ``out``: the source's fps, image size, state layout, robot and chunk size."""
    from simfail.dataset.writer import DatasetWriter

    info = src.info
    feats = info["features"]
    h, w = (int(v) for v in feats[src.video_keys[0]]["shape"][:2])
    return DatasetWriter(
        out, fps=src.fps, image_size=(h, w), state_names=list(feats["observation.state"]["names"]),
        action_names=list(feats["action"]["names"]), nq=int(feats["sim.qpos"]["shape"][0]),
        nv=int(feats["sim.qvel"]["shape"][0]), robot_type=str(info.get("robot_type", "franka_panda")),
        mode=mode, chunks_size=int(info.get("chunks_size", 1000)), crf=crf,
    )


def run_realism(cfg: dict[str, Any], *, log=print, report=None) -> dict[str, Any]:
    """Run the pass described by the composed ``configs/realism.yaml`` settings; returns a summary.
    ``report(groups=1, episodes=n)`` (optional) is called as each group is done; ``executor=ray``
    shards the groups (:mod:`simfail.scale.realism`).

    Raises:
        SimfailError: bad settings, unreadable input, unusable output folder (not empty without
            resume/overwrite, or a resume whose settings differ), missing model.
    """
    from tqdm import tqdm

    from simfail.dataset.reader import SimfailDataset

    if cfg.get("executor", "local") != "local":
        from simfail.scale.realism import run_sharded_realism

        return run_sharded_realism(cfg, log=log)
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
    batch_size = check_batch_size(cfg.get("batch_size", 1))
    fcfg = FidelityConfig(**(cfg.get("fidelity") or {}))
    fcfg.validate()
    resume, overwrite = bool(cfg.get("resume")), bool(cfg.get("overwrite"))
    src = SimfailDataset(data)
    _check_out(data, out, overwrite, resume)
    prior = _prior_record(out) if resume else None
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
    crf = source_crf(cfg, meta)
    desc = editor.describe() if hasattr(editor, "describe") else {"pipeline": type(editor).__name__}
    negative = str(cfg.get("negative_prompt") or DEFAULT_NEGATIVE)
    record: dict[str, Any] = {
        "source": str(data.resolve()), "model": str(cfg["model"]), "editor": desc,
        "strength": float(cfg["strength"]), "seed": int(cfg["seed"]), "control": str(cfg["control"]),
        "views": str(cfg["views"]), "prompt_template": cfg.get("prompt_template"), "prompt_override": cfg.get("prompt"),
        "negative_prompt": negative, "fidelity": dataclasses.asdict(fcfg), "crf": crf, "batch_size": batch_size,
        "prompts": {}, "episodes": [], "rejected": [], "empty_groups": [],
    }
    if prior is not None:
        diffs = _resume_differences(prior, record)
        if diffs:
            raise OutputDirError(f"cannot resume in {out}: the interrupted run used different settings: " + "; ".join(diffs)
                                 + ". Use the same settings, overwrite=true, or another output folder")
    writer = output_writer(src, out, "resume" if resume else "overwrite" if overwrite else "new", crf)
    groups = src.groups()
    committed = list(writer.completed_groups())
    unknown = [g for g in committed if g not in groups]
    if unknown:
        raise OutputDirError(f"cannot resume in {out}: it holds groups {unknown[:10]} that {data} does not have")
    prior_timing: dict[str, Any] = {}
    kept_groups: dict[str, Any] = {}
    if prior is not None:  # keep what the interrupted run finished: committed groups and all-rejected ones
        done = set(committed) | {int(g) for g in prior.get("empty_groups") or []}
        record["episodes"] = [e for e in prior["episodes"] if int(e["group"]) in done]
        record["rejected"] = [r for r in prior.get("rejected") or [] if int(r["group"]) in done]
        record["prompts"] = {k: v for k, v in (prior.get("prompts") or {}).items() if int(k) in done}
        record["empty_groups"] = [int(g) for g in prior.get("empty_groups") or []]
        prior_timing = dict(prior.get("timing") or {})
    else:
        done = set(committed)
    for g in committed:
        if str(g) in (meta.get("groups") or {}):
            kept_groups[str(g)] = meta["groups"][str(g)]
    gids = list(groups)
    if cfg.get("max_groups"):
        gids = gids[: int(cfg["max_groups"])]
    if cfg.get("only_groups") is not None:  # one shard of a sharded run
        gids = [g for g in gids if g in set(cfg["only_groups"])]
    todo = [g for g in gids if g not in done]
    if done:
        log(f"realism: resuming in {out}: {len(done)} group(s) already done, {len(todo)} to edit")
    n_frames = 0
    t_edit = t_cond = t_fid = 0.0
    t_start = time.perf_counter()

    def timing() -> dict[str, Any]:
        out = _timing(n_frames, t_edit, t_cond, t_fid, time.perf_counter() - t_start, prior_timing)
        for key, attr in (("denoise_calls", "calls"), ("chunks_denoised", "chunks")):  # batched denoising runs
            if isinstance(getattr(editor, attr, None), int):
                out[key] = int(getattr(editor, attr)) + int(prior_timing.get(key) or 0)
        return out

    def full_meta() -> dict[str, Any]:
        return {**meta, "groups": dict(sorted(kept_groups.items(), key=lambda kv: int(kv[0]))), "realism": record}

    total_eps = sum(len(groups[g]) for g in todo)
    bar = tqdm(total=total_eps, desc="simfail realism", unit="episode", disable=not cfg.get("progress", True))
    try:
        for gid in todo:
            with SceneConditioner(meta, gid, h, w, views) as cond_r:
                prompt = scene_prompt(cond_r.layout, cfg.get("prompt_template"), cfg.get("prompt"))
                record["prompts"][str(gid)] = prompt
                seed = group_seed(int(cfg["seed"]), gid)
                kept: list[EpisodeRecord] = []
                entries: list[dict[str, Any]] = []
                eps = groups[gid]
                for b in range(0, len(eps), batch_size):
                    batch = eps[b:b + batch_size]
                    loaded = []
                    t0 = time.perf_counter()
                    for ep in batch:
                        cols = src.episode_columns(ep)
                        frames = {v: src.episode_frames(ep, v) for v in views}
                        cond = cond_r.render(cols["sim.qpos"])
                        control = {v: control_frames(cond[v], str(cfg["control"])) for v in views}
                        loaded.append((ep, cols, frames, cond, control))
                    t1 = time.perf_counter()
                    edited_all = edit_episodes(editor, [(x[2], x[4]) for x in loaded], mode=str(cfg["views"]),
                                               prompt=prompt, negative_prompt=negative, seed=seed)
                    t2 = time.perf_counter()
                    t_cond += t1 - t0
                    t_edit += t2 - t1
                    for (ep, cols, frames, cond, _), edited in zip(loaded, edited_all):
                        t3 = time.perf_counter()
                        row = src.episode(ep)
                        for v in views:
                            e = np.asarray(edited[v])
                            if e.shape != frames[v].shape or e.dtype != np.uint8:
                                raise SimfailError(f"the editor returned {e.dtype} {e.shape} for view {v} of episode {ep}, "
                                                   f"expected uint8 {frames[v].shape}")
                        failures = src.failures(ep)
                        fid = check_episode(frames, edited, cond, failures, cond_r.labels_of, fcfg)
                        t_fid += time.perf_counter() - t3
                        n_frames += int(row["length"]) * len(views)
                        passed = fid.passed or not fcfg.enabled
                        entries.append({"source_episode": ep, "group": gid, "variant": row["simfail.variant"],
                                        **fid.to_dict(), "written": passed})
                        bar.update(1)
                        if not passed:
                            record["rejected"].append({"source_episode": ep, "group": gid,
                                                       "variant": row["simfail.variant"], "reasons": fid.reasons})
                            log(f"realism: episode {ep} (group {gid}, {row['simfail.variant']}) left out: "
                                f"{'; '.join(fid.reasons)}")
                            continue
                        kept.append(EpisodeRecord(
                            group_id=gid, variant=str(row["simfail.variant"]), instruction=str(row["tasks"][0]),
                            task=str(row["simfail.task"]), seed=int(row["simfail.seed"]), fps=src.fps, frames=edited,
                            columns={c: cols[c] for c in RECORD_COLUMNS}, success=bool(row["simfail.success"]),
                            score=float(row["simfail.score"]), failures=failures,
                            perturbation=json.loads(row["simfail.perturbation"] or "{}"), rank=int(row["simfail.rank"]),
                        ))
            record["episodes"].extend(entries)
            if not kept:
                log(f"realism: group {gid}: every episode failed the fidelity check; the group is left out")
                record["empty_groups"].append(gid)
                record["timing"] = timing()
                writer.finalize(full_meta())  # atomic: from here on the group counts as done
                if report is not None:
                    report(groups=1, episodes=0)
                continue
            if len(kept) < len(eps):  # ranks are relative to the group: recompute among those kept
                for rec, rank in zip(kept, competition_ranks([r.score for r in kept])):
                    rec.rank = rank
            first = writer.num_episodes
            expected = list(range(first, first + len(kept)))
            for e in (e for e in entries if e["written"]):
                e["episode"] = expected.pop(0)
            if str(gid) in (meta.get("groups") or {}):
                kept_groups[str(gid)] = meta["groups"][str(gid)]
            # the record names the group before its commit: a run stopped between the commit and
            # the finalize below still has it (a resume drops entries of uncommitted groups)
            record["timing"] = timing()
            writer.finalize(full_meta())
            new_idx = writer.write_group(gid, kept)
            if new_idx != list(range(first, first + len(kept))):
                raise SimfailError(f"group {gid} was written as episodes {new_idx}, expected {first}..{first + len(kept) - 1}")
            record["timing"] = timing()
            writer.finalize(full_meta())
            if report is not None:
                report(groups=1, episodes=len(kept))
    finally:
        bar.close()
    record["timing"] = timing()
    writer.finalize(full_meta())
    return {
        "out": str(writer.root), "episodes_in": sum(len(groups[g]) for g in gids), "episodes_written": writer.num_episodes,
        "groups_written": writer.num_groups, "groups_resumed": len(done), "rejected": record["rejected"],
        "timing": record["timing"], "episodes": record["episodes"],
    }


def _timing(frames: int, t_edit: float, t_cond: float, t_fid: float, total: float,
            prior: dict[str, Any] | None = None) -> dict[str, Any]:
    """Frames edited (view-frames) and seconds, added to those of the interrupted runs a
    resumed run continues (``prior``); ``sessions`` counts the runs, ``peak_rss_mb`` [MB] is
    the largest of them."""
    prior = prior or {}
    frames += int(prior.get("frames") or 0)
    total += float(prior.get("seconds_total") or 0.0)
    t_edit += float(prior.get("seconds_edit") or 0.0)
    t_cond += float(prior.get("seconds_conditioning") or 0.0)
    t_fid += float(prior.get("seconds_fidelity") or 0.0)
    out = {"frames": frames, "seconds_total": round(total, 3), "seconds_edit": round(t_edit, 3),
           "seconds_conditioning": round(t_cond, 3), "seconds_fidelity": round(t_fid, 3),
           "frames_per_s_edit": round(frames / t_edit, 3) if t_edit > 0 else None,
           "frames_per_s_total": round(frames / total, 3) if total > 0 else None,
           "peak_rss_mb": round(max(_peak_rss_mb(), float(prior.get("peak_rss_mb") or 0.0)), 1),
           "sessions": int(prior.get("sessions") or 0) + 1}
    try:
        import torch

        if torch.cuda.is_available() and torch.cuda.is_initialized():
            out["peak_cuda_mb"] = round(max(torch.cuda.max_memory_allocated() / 2**20,
                                            float(prior.get("peak_cuda_mb") or 0.0)), 1)
    except ImportError:
        pass
    return out
