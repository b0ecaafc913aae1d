"""Join simfail datasets (or the shards of one Ray run) into ONE LeRobot v3.0 dataset.

One implementation serves both ``simfail merge DIR1 DIR2 ... out=DIR`` and the driver of a
sharded ``simfail generate executor=ray`` run: every committed group of every source is
adopted, in order, by a :class:`~simfail.dataset.writer.DatasetWriter` on the output with the
writer's own atomic group commit (:meth:`DatasetWriter.adopt_group`). What that gives:

* **Indices.** Episode indices, global frame indices (``index``), ``dataset_from/to_index``,
  task indices (the tasks table is the union of the sources' instructions, numbered in order of
  first appearance) and chunk/file locations are rewritten; ``simfail merge`` also renumbers
  group ids (source ``i``'s ids are shifted past every earlier source's largest id; the shift is
  recorded in ``meta/simfail.json`` ``merged_from``).
* **Videos.** simfail's layout puts every group in its own file index (the ``k``-th group in
  ``chunk-{k // chunks_size}/file-{k % chunks_size}``), the same rule for a direct write and
  for a merge, so a group's mp4 files move as they are (hard link or copy, no re-encoding) and
  every episode's ``from_timestamp`` / ``to_timestamp`` inside its file stays valid. Frame
  counts are re-verified after the merge from each mp4's sample table against the episodes'
  lengths, and each data file's row count too.
* **Statistics.** ``meta/stats.json`` is recomputed by ``finalize`` from the per-episode
  statistics, exactly as for a direct write: counts add, means are count-weighted, standard
  deviations are pooled (``E[x^2] - mean^2`` per episode recombined), min/max are global.
  Quantiles (q01..q99) are count-weighted means of the episodes' quantiles: an approximation
  (as in LeRobot's ``aggregate_stats``), but the SAME one whether the episodes were written in
  one run or merged, so a merged dataset's stats equal those of a single run byte for byte.
* **Preferences** are rebuilt from the groups' scores; ``meta/info.json`` totals and splits by
  ``finalize``.

Sources must agree on fps, views, image size, state/action names, robot type and format
version; otherwise one :class:`MergeError` names the first difference. ``sim.qpos`` /
``sim.qvel`` widths may differ (datasets of different tasks): the merged dataset holds the
widest and narrower ones are zero-padded, statistics included, as ``task=all`` does. Nothing is written before every source is checked.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import pyarrow as pa
import pyarrow.parquet as pq

from simfail.dataset import layout as L
from simfail.dataset.mp4 import sample_count
from simfail.errors import ConfigError, DatasetFormatError, OutputDirError, SimfailError

__all__ = ["MergeConfig", "MergeError", "MergeItem", "SourceDataset", "merge", "merge_items", "open_source", "run"]

#: Settings that must be equal for datasets to be merged (a difference is named in the error).
COMPATIBLE_KEYS = ("codebase_version", "fps", "views", "image_size", "state_names", "action_names", "robot_type")
#: Widths that may differ: the merged dataset holds the widest, narrower ones are zero-padded
#: (each task's own width stays in ``meta/simfail.json`` ``tasks``), as ``task=all`` does.
PADDED_KEYS = ("nq", "nv")


class MergeError(SimfailError):
    """Datasets cannot be merged (different settings, damaged source, unusable output)."""


@dataclass
class SourceGroup:
    """One committed group of a source dataset (its ``k``-th file index)."""

    k: int
    group_id: int
    episodes: pa.Table


@dataclass
class SourceDataset:
    """A simfail dataset read only for merging (committed groups; the source is never modified)."""

    root: Path
    config: dict[str, Any]
    groups: list[SourceGroup]
    meta: dict[str, Any]

    @property
    def chunks_size(self) -> int:
        return int(self.config["chunks_size"])

    def data_path(self, g: SourceGroup) -> Path:
        c, f = L.group_location(g.k, self.chunks_size)
        return self.root / L.data_path(c, f)

    def video_paths(self, g: SourceGroup) -> dict[str, Path]:
        c, f = L.group_location(g.k, self.chunks_size)
        return {L.video_key(v): self.root / L.video_path(L.video_key(v), c, f) for v in self.config["views"]}


@dataclass
class MergeItem:
    """Adopt ``group`` of ``source`` into the output as group id ``new_group_id``."""

    source: SourceDataset
    group: SourceGroup
    new_group_id: int


def _read_config(root: Path) -> dict[str, Any]:
    marker = root / L.MARKER_NAME
    if marker.is_file():
        try:
            cfg = json.loads(marker.read_text())
            if isinstance(cfg, dict) and all(k in cfg for k in COMPATIBLE_KEYS + PADDED_KEYS + ("chunks_size",)):
                return cfg
        except (OSError, ValueError):
            pass
    info_path = root / L.INFO_PATH
    try:
        info = json.loads(info_path.read_text())
        feats = info["features"]
        views = [k.removeprefix("observation.images.") for k in feats if k.startswith("observation.images.")]
        return {
            "codebase_version": info["codebase_version"], "fps": int(info["fps"]),
            "image_size": list(feats[L.video_key(views[0])]["shape"][:2]), "views": views,
            "state_names": feats["observation.state"]["names"], "action_names": feats["action"]["names"],
            "nq": int(feats["sim.qpos"]["shape"][0]), "nv": int(feats["sim.qvel"]["shape"][0]),
            "robot_type": info["robot_type"], "chunks_size": int(info["chunks_size"]),
        }
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise MergeError(f"{root} is not a simfail dataset (no readable {L.MARKER_NAME} or {L.INFO_PATH}: {exc})") from exc


def open_source(root: str | Path) -> SourceDataset:
    """Read a dataset's settings and committed groups (an unfinished run's committed groups too)."""
    root = Path(root)
    if not root.is_dir():
        raise MergeError(f"{root} is not a directory")
    cfg = _read_config(root)
    groups: list[SourceGroup] = []
    files = L.list_chunk_files(root / "meta" / "episodes", "parquet")
    ks = [c * int(cfg["chunks_size"]) + f for c, f, _ in files]
    if ks != list(range(len(ks))):
        raise MergeError(f"{root} is damaged: its groups' episodes files are not numbered 0..{len(ks) - 1}")
    for k, (_, _, path) in zip(ks, files):
        try:
            table = pq.read_table(path)
        except (OSError, pa.ArrowException) as exc:
            raise MergeError(f"cannot read {path}: {exc}") from exc
        gids = set(table.column("simfail.group_id").to_pylist())
        if len(gids) != 1:
            raise MergeError(f"{path}: episodes of several groups {sorted(gids)} in one file")
        groups.append(SourceGroup(k, int(gids.pop()), table))
    meta_path = root / L.SIMFAIL_META_PATH
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    except (OSError, ValueError) as exc:
        raise MergeError(f"cannot read {meta_path}: {exc}") from exc
    return SourceDataset(root, cfg, groups, meta)


def check_compatible(sources: list[SourceDataset]) -> None:
    """Raise one :class:`MergeError` naming the first setting in which a source differs."""
    if not sources:
        raise MergeError("nothing to merge: no source datasets")
    first = sources[0]
    for src in sources[1:]:
        for key in COMPATIBLE_KEYS:
            a, b = first.config.get(key), src.config.get(key)
            if a != b:
                raise MergeError(f"cannot merge {src.root} into {first.root}'s dataset: {key} differs "
                                 f"({key}={a!r} in {first.root}, {key}={b!r} in {src.root})")


def renumbered_items(sources: list[SourceDataset]) -> list[MergeItem]:
    """Every group of every source in order; source ``i``'s group ids shifted past every
    earlier source's largest id (so ids stay unique and each source's order is kept)."""
    items, offset = [], 0
    for src in sources:
        for g in src.groups:
            items.append(MergeItem(src, g, offset + g.group_id))
        if src.groups:
            offset += max(g.group_id for g in src.groups) + 1
    return items


@dataclass
class MergeStats:
    groups: int = 0
    episodes: int = 0
    frames: int = 0
    skipped: int = 0
    seconds: float = 0.0
    verify_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)


def merge_items(writer, items: list[MergeItem], *, link: bool = False, verify: bool = True,
                on_group: Callable[[MergeItem], None] | None = None) -> MergeStats:
    """Adopt ``items`` into ``writer`` in order (items whose new id is already committed there
    are skipped: a resumed merge continues), then re-verify frame counts of what was adopted.

    Raises:
        MergeError: a source group's files are missing or its frame counts disagree.
    """
    stats = MergeStats()
    t0 = time.perf_counter()
    done = set(writer.completed_groups())
    adopted: list[tuple[int, int]] = []  # (k in output, expected frames)
    for it in items:
        if it.new_group_id in done:
            stats.skipped += 1
            continue
        src, g = it.source, it.group
        data_path, videos = src.data_path(g), src.video_paths(g)
        missing = [str(p) for p in [data_path, *videos.values()] if not p.is_file()]
        if missing:
            raise MergeError(f"{src.root}: committed group {g.group_id} lacks files {missing}")
        try:
            data = pq.read_table(data_path)
        except (OSError, pa.ArrowException) as exc:
            raise MergeError(f"cannot read {data_path}: {exc}") from exc
        try:
            writer.adopt_group(it.new_group_id, data, g.episodes, videos, link=link)
        except (ValueError, DatasetFormatError) as exc:
            raise MergeError(f"{src.root} group {g.group_id}: {exc}") from exc
        frames = int(sum(g.episodes.column("length").to_pylist()))
        adopted.append((writer.num_groups - 1, frames))
        stats.groups += 1
        stats.episodes += g.episodes.num_rows
        stats.frames += frames
        if on_group is not None:
            on_group(it)
    stats.seconds = time.perf_counter() - t0
    if verify:
        t1 = time.perf_counter()
        stats.problems = verify_frame_counts(writer.root, adopted, writer.chunks_size, writer.video_keys)
        stats.verify_seconds = time.perf_counter() - t1
        if stats.problems:
            raise MergeError("frame counts disagree after the merge: " + "; ".join(stats.problems[:5]))
    return stats


def verify_frame_counts(root: Path, groups: list[tuple[int, int]], chunks_size: int,
                        video_keys: list[str]) -> list[str]:
    """Problems (empty when none): for each ``(k, frames)``, the data file's rows and every
    view's mp4 sample count must equal ``frames`` (no decoding: parquet footers, mp4 tables)."""
    problems = []
    for k, frames in groups:
        c, f = L.group_location(k, chunks_size)
        rows = pq.ParquetFile(root / L.data_path(c, f)).metadata.num_rows
        if rows != frames:
            problems.append(f"{L.data_path(c, f)} has {rows} rows, its episodes {frames} frames")
        for key in video_keys:
            n = sample_count(root / L.video_path(key, c, f))
            if n != frames:
                problems.append(f"{L.video_path(key, c, f)} has {n} frames, its episodes {frames}")
    return problems


# --------------------------------------------------------------------------------------------
# simfail merge DIR1 DIR2 ... out=DIR


@dataclass
class MergeConfig:
    """``simfail merge``: join separately generated datasets into one."""

    dirs: list[str] = field(default_factory=list, metadata={
        "help": "source dataset directories, in order (the bare arguments; at least one)",
        "example": "simfail merge DIR1 DIR2 out=DIR", "positional": True})
    out: str = field(default="", metadata={"help": "output directory (new or empty)", "example": "out=merged",
                                           "required": True})
    overwrite: bool = field(default=False, metadata={
        "help": "replace a simfail dataset already in out", "example": "overwrite=true"})
    link: bool = field(default=False, metadata={
        "help": "hard-link video files instead of copying (sources must then stay unmodified)",
        "example": "link=true"})
    progress: bool = field(default=True, metadata={"help": "show a progress bar", "example": "progress=false"})

    def validate(self) -> None:
        if len(self.dirs) < 1:
            raise ConfigError("simfail merge needs at least one source dataset: simfail merge DIR1 DIR2 ... out=DIR")
        if not self.out:
            raise ConfigError("simfail merge needs out=DIR")
        outp = Path(self.out).resolve()
        for i in self.dirs:
            if Path(i).resolve() == outp:
                raise ConfigError(f"out={self.out} is also a source; choose another output directory")
        if len({str(Path(i).resolve()) for i in self.dirs}) != len(self.dirs):
            raise ConfigError("a source dataset is listed twice")


def merged_meta(sources: list[SourceDataset], items: list[MergeItem]) -> dict[str, Any]:
    """``meta/simfail.json`` of a merged dataset: the groups' entries under their new ids, the
    union of the tasks' joint tables, and where every group came from."""
    offsets: dict[str, int] = {}
    for it in items:
        offsets.setdefault(str(it.source.root), it.new_group_id - it.group.group_id)
    groups: dict[str, Any] = {}
    tasks: dict[str, Any] = {}
    for src in sources:
        tasks.update(src.meta.get("tasks", {}))
    for it in items:
        entry = it.source.meta.get("groups", {}).get(str(it.group.group_id))
        if entry is not None:
            groups[str(it.new_group_id)] = {**entry, "source": str(it.source.root), "source_group_id": it.group.group_id}
    task_names = sorted({str(s.meta.get("task")) for s in sources if s.meta.get("task")})
    first = sources[0]
    joints = first.meta.get("joints", []) if all(s.meta.get("joints") == first.meta.get("joints") for s in sources) else []
    return {
        "task": task_names[0] if len(task_names) == 1 else "merged",
        "groups": dict(sorted(groups.items(), key=lambda kv: int(kv[0]))),
        "tasks": tasks,
        "joints": joints,
        "nq": max(int(s.config["nq"]) for s in sources),
        "nv": max(int(s.config["nv"]) for s in sources),
        "labels": first.meta.get("labels", {}),
        "versions": first.meta.get("versions", {}),
        "merged_from": [
            {"path": str(s.root), "groups": len(s.groups), "group_id_offset": offsets.get(str(s.root), 0),
             "config": s.meta.get("config"), "versions": s.meta.get("versions")}
            for s in sources
        ],
    }


def summary_text(s: dict[str, Any]) -> str:
    per_k = s["seconds"] / s["episodes"] * 1000 if s["episodes"] else 0.0
    return (f"merged {len(s['sources'])} datasets into {s['out']}: {s['groups']} groups, {s['episodes']} episodes, "
            f"{s['frames']} frames in {s['seconds']:.2f} s ({per_k:.1f} s per 1,000 episodes) + "
            f"{s['verify_seconds']:.2f} s re-verifying frame counts")


def run(cfg: MergeConfig) -> int:
    """``simfail merge``: merge, print the summary line, return the exit code."""
    print(summary_text(merge(cfg)))
    return 0


def merge(cfg: MergeConfig) -> dict[str, Any]:
    """Merge ``cfg.dirs`` into ``cfg.out``; returns a summary. Every source is read and
    checked before the output is touched; if the merge fails, the output it created is removed."""
    from tqdm import tqdm

    from simfail.dataset.writer import DatasetWriter

    cfg.validate()
    sources = [open_source(p) for p in cfg.dirs]
    check_compatible(sources)
    items = renumbered_items(sources)
    first = sources[0].config
    out = Path(cfg.out)
    existed = out.exists()
    if existed and out.is_dir() and any(out.iterdir()) and not cfg.overwrite:
        raise MergeError(f"output directory {out} is not empty; pass overwrite=true to replace the simfail "
                         "dataset in it, or choose another directory")
    try:
        writer = DatasetWriter(
            out, fps=int(first["fps"]), image_size=tuple(first["image_size"]),
            state_names=first["state_names"], action_names=first["action_names"],
            nq=max(int(s.config["nq"]) for s in sources), nv=max(int(s.config["nv"]) for s in sources),
            robot_type=first["robot_type"],
            mode="overwrite" if cfg.overwrite else "new", chunks_size=int(first["chunks_size"]),
        )
    except OutputDirError as exc:
        raise MergeError(str(exc)) from exc
    bar = tqdm(total=len(items), desc="simfail merge", unit="group", disable=not cfg.progress)
    try:
        stats = merge_items(writer, items, link=cfg.link, on_group=lambda _: bar.update(1))
        writer.finalize(merged_meta(sources, items))
    except BaseException:
        bar.close()
        shutil.rmtree(out, ignore_errors=True)  # created (or emptied) by this merge: no partial output
        if existed and not cfg.overwrite:
            out.mkdir(exist_ok=True)
        raise
    bar.close()
    return {"out": str(out), "sources": [str(s.root) for s in sources], "groups": stats.groups,
            "episodes": stats.episodes, "frames": stats.frames, "seconds": stats.seconds,
            "verify_seconds": stats.verify_seconds}
