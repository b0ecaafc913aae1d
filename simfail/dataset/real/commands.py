"""``simfail import-real SRC (format=roboarena | map=MAP.yaml) out=DIR [videos=link|copy]``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from simfail.errors import ConfigError, UnknownNameError

from .importer import VIDEO_MODES, import_release
from .mapping import RealMapping, load_mapping, shipped_mapping

__all__ = ["ImportRealConfig", "parse_import_args", "run"]

#: ``format=`` values and the shipped mapping each one uses.
FORMAT_MAPPINGS: dict[str, str] = {"roboarena": "roboarena", "lerobot_roboarena": "roboarena_lerobot"}


@dataclass
class ImportRealConfig:
    """Settings of ``simfail import-real`` (registered in :mod:`simfail.commands`)."""

    src: Optional[str] = field(default=None, metadata={
        "help": "the release's root folder (a RoboArena dump or a LeRobot v3 dataset); also the positional argument",
        "example": "simfail import-real data/roboarena_dump", "positional": True, "required": True})
    format: Optional[str] = field(default=None, metadata={
        "help": "a ready mapping: " + " | ".join(FORMAT_MAPPINGS) + " (roboarena: a RoboArena dump; lerobot_roboarena: "
                "a RoboArena-style LeRobot release)", "example": "format=roboarena"})
    map: Optional[str] = field(default=None, metadata={"help": "a mapping YAML file (instead of format=)",
                                                       "example": "map=my_release.yaml"})
    out: Optional[str] = field(default=None, metadata={"help": "the simfail dataset folder to write",
                                                       "example": "out=data/real", "required": True})
    videos: str = field(default="link", metadata={"help": "link (hard links, copy across file systems) | copy the mp4 files",
                                                  "example": "videos=copy"})
    overwrite: bool = field(default=False, metadata={"help": "replace a non-empty out folder", "example": "overwrite=true"})
    verify: bool = field(default=True, metadata={"help": "run simfail check (decodes every video) before moving into place",
                                                 "example": "verify=false"})
    chunks_size: int = field(default=1000, metadata={"help": "files per chunk folder", "example": "chunks_size=1000",
                                                     "range": (1, None)})

    def validate(self) -> None:
        """Checks the settings themselves; whether the folders exist is checked by :func:`run`
        (so a command shown in the docs validates anywhere)."""
        if not self.src:
            raise ConfigError("the release folder is required: simfail import-real SRC format=roboarena out=DIR")
        if not self.out:
            raise ConfigError("out=DIR is required (the simfail dataset to write)")
        if (self.format is None) == (self.map is None):
            raise ConfigError("give exactly one of format=roboarena (a ready mapping) or map=MAP.yaml")
        if self.format is not None and self.format not in FORMAT_MAPPINGS:
            raise UnknownNameError("import format", self.format, list(FORMAT_MAPPINGS))
        if self.videos not in VIDEO_MODES:
            raise UnknownNameError("videos mode", self.videos, VIDEO_MODES)
        if isinstance(self.chunks_size, bool) or not isinstance(self.chunks_size, int) or self.chunks_size < 1:
            raise ConfigError(f"chunks_size must be an integer >= 1, got {self.chunks_size!r}")

    def mapping(self) -> RealMapping:
        if self.format is not None:
            return shipped_mapping(FORMAT_MAPPINGS[self.format])
        assert self.map is not None
        return load_mapping(self.map)


def parse_import_args(args: list[str]) -> ImportRealConfig:
    """``SRC key=value ...`` (or ``src=SRC``) as a checked :class:`ImportRealConfig`, through the
    command registry's schema."""
    from simfail.commands import build_config

    return build_config("import-real", list(args))


def run(cfg: ImportRealConfig) -> int:
    """Read, check and write; prints a summary table."""
    from simfail.stress.report import format_table

    from .sources import read_release

    cfg.validate()
    if not Path(str(cfg.src)).is_dir():
        raise ConfigError(f"src={cfg.src} is not a folder")
    mapping = cfg.mapping()
    rel = read_release(cfg.src, mapping)
    summary = import_release(rel, mapping, cfg.src, cfg.out, videos=cfg.videos, overwrite=cfg.overwrite,
                             chunks_size=cfg.chunks_size, verify=cfg.verify)
    cats: dict[str, int] = {}
    for g in summary["groups"]:
        cats[g["task"]] = cats.get(g["task"], 0) + 1
    rows = [
        ["contexts (groups)", str(summary["total_groups"])],
        ["episodes", str(summary["total_episodes"])],
        ["frames", f"{summary['total_frames']} at {rel.fps} fps"],
        ["views", ", ".join(f"{v} {rel.sizes[v][1]}x{rel.sizes[v][0]}" for v in rel.views)],
        ["views left out (missing in some episodes)", ", ".join(f"{v} ({n} ep.)" for v, n in rel.dropped_views.items()) or "-"],
        ["strict A/B preferences", str(summary["total_preferences"])],
        ["ties (kept, not strict pairs)", str(summary["total_ties"])],
        ["categories (contexts)", ", ".join(f"{k} {v}" for k, v in sorted(cats.items()))],
        ["videos", f"{cfg.videos} ({rel.layout.replace('_', ' ')} files, not re-encoded)"],
    ]
    print(format_table(["import", "value"], rows))
    print(f"dataset: {cfg.out}  (simfail check {cfg.out})")
    return 0
