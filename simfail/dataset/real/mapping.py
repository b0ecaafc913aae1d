"""The declared mapping from a real release's fields to simfail's episode columns.

A mapping is a small YAML file (see ``docs/real_data.md`` and the shipped
``simfail/dataset/real/mappings/*.yaml``). Every key is checked: an unknown key, a wrong type, a view
that is not one of simfail's (``left``, ``right``, ``wrist``) or an empty scale is one
:class:`~simfail.errors.ConfigError`. Whether the named columns, files and views exist in the
data is checked by the readers (:mod:`simfail.dataset.real.sources`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError, UnknownNameError

__all__ = ["FORMATS", "RealMapping", "PreferenceFile", "load_mapping", "shipped_mapping", "mapping_from_dict"]

#: Source layouts a mapping can describe.
FORMATS: tuple[str, ...] = ("roboarena", "lerobot")

#: Category keywords of the shipped mappings: an instruction is assigned the first category
#: (in this order) one of whose words it contains as a whole word; else ``other``. The order
#: puts the most specific categories first ("pour the nuts ... onto the plate" is pour).
DEFAULT_KEYWORDS: dict[str, list[str]] = {
    "tool_use": ["wipe", "erase", "eraser", "sweep", "brush", "marker", "spatula", "scoop", "hammer"],
    "pour": ["pour", "pouring"],
    "stack": ["stack", "stacking", "on top of"],
    "reorient": ["reorient", "rotate", "turn over", "flip", "upright", "stand up"],
    "open_close": ["open", "close", "drawer", "door", "lid", "cabinet"],
    "push_pull": ["push", "pull", "slide", "drag"],
    "pick_place": ["pick", "place", "put", "move", "grab", "take", "lift"],
}


@dataclass(frozen=True)
class PreferenceFile:
    """Where a LeRobot release keeps its A/B verdicts: a parquet/CSV/JSONL table ``file``
    (relative to the dataset root) with the two episode indices, the verdict (``"a"``, ``"b"``,
    a tie value, or the winning episode's index) and an optional rationale column."""

    file: str
    episode_a: str = "episode_a"
    episode_b: str = "episode_b"
    verdict: str = "preference"
    rationale: str | None = "feedback"


@dataclass(frozen=True)
class RealMapping:
    """Which source field is which simfail column (units: scores on ``score_scale``, mapped
    linearly to simfail's 0-100).

    Attributes:
        format: ``roboarena`` (a dump of session folders) or ``lerobot`` (a LeRobot v3 dataset).
        views: simfail view -> a glob of the policy folder's mp4 files (``roboarena``) or a video
            feature key (``lerobot``).
        required_views: views every episode must have; a view outside it that some episode
            lacks is left out of the whole import (a LeRobot dataset has one set of views).
        score: field of the per-episode human score; ``score_scale`` its ``[low, high]``.
        success: field of a binary success, or ``None``: success is ``score >= success_at``.
        instruction: field of the language instruction (``lerobot``: ``None`` = the episode's task).
        context: ``lerobot``: episode column grouping rollouts into contexts (``roboarena``: the
            session folder is the context).
        policy: field naming the policy of a rollout (stored as ``simfail.variant``).
        preference, rationale: ``roboarena``: session keys of the A/B verdict and its rationale.
        tie: verdict values meaning a tie (compared case-insensitively).
        preferences: ``lerobot``: the verdicts' table (``None``: the release has none).
        category: ``{"column": name}``, ``{"value": name}`` or ``{"keywords": {...}}``.
        sessions, metadata, policies: ``roboarena`` layout names.
    """

    format: str
    views: dict[str, str]
    required_views: tuple[str, ...]
    score: str
    score_scale: tuple[float, float]
    success: str | None = None
    success_at: float | None = None
    instruction: str | None = None
    context: str | None = None
    policy: str | None = None
    preference: str | None = None
    rationale: str | None = None
    tie: tuple[str, ...] = ("tie",)
    preferences: PreferenceFile | None = None
    category: dict[str, Any] = field(default_factory=lambda: {"keywords": DEFAULT_KEYWORDS})
    sessions: str = "evaluation_sessions"
    metadata: str = "metadata.yaml"
    policies: str = "policies"

    def to_score(self, value: float) -> float:
        """A source score on ``score_scale`` as simfail's 0-100."""
        lo, hi = self.score_scale
        return 100.0 * (float(value) - lo) / (hi - lo)

    def in_scale(self, value: float) -> bool:
        lo, hi = self.score_scale
        return lo - 1e-9 <= float(value) <= hi + 1e-9

    def is_tie(self, verdict: Any) -> bool:
        return str(verdict).strip().lower() in {t.lower() for t in self.tie}

    def category_of(self, instruction: str, row: dict[str, Any] | None = None) -> str:
        """The task category of a rollout (``row``: its source fields, for ``column``)."""
        import re

        if "value" in self.category:
            return str(self.category["value"])
        if "column" in self.category:
            return str((row or {}).get(self.category["column"]) or "other")
        text = f" {instruction.lower()} "
        for cat, words in self.category["keywords"].items():
            if any(re.search(rf"\b{re.escape(w.lower())}\b", text) for w in words):
                return str(cat)
        return "other"

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        d = asdict(self)
        d["score_scale"] = list(self.score_scale)
        d["required_views"] = list(self.required_views)
        d["tie"] = list(self.tie)
        return d


_KEYS = {
    "format", "views", "required_views", "score", "score_scale", "success", "success_at", "instruction", "context",
    "policy", "preference", "rationale", "tie", "preferences", "category", "sessions", "metadata", "policies",
}


def _str(d: dict[str, Any], key: str, where: str, *, required: bool = False) -> str | None:
    v = d.get(key)
    if v is None:
        if required:
            raise ConfigError(f"{where}: {key} is required")
        return None
    if not isinstance(v, str) or not v.strip():
        raise ConfigError(f"{where}: {key} must be a non-empty string, got {v!r}")
    return v


def mapping_from_dict(d: Any, where: str = "mapping") -> RealMapping:
    """Check a parsed mapping; every problem is one :class:`ConfigError` naming the key."""
    if not isinstance(d, dict):
        raise ConfigError(f"{where} must be a YAML mapping (key: value lines), got {type(d).__name__}")
    unknown = sorted(set(d) - _KEYS)
    if unknown:
        raise UnknownNameError(f"key of {where}", unknown[0], sorted(_KEYS))
    fmt = d.get("format")
    if fmt not in FORMATS:
        raise UnknownNameError(f"format in {where}", str(fmt), FORMATS)
    views = d.get("views")
    if not isinstance(views, dict) or not views:
        raise ConfigError(f"{where}: views must map simfail views ({', '.join(VIEWS)}) to source names")
    for v, src in views.items():
        if v not in VIEWS:
            raise UnknownNameError(f"view in {where}", str(v), VIEWS)
        if not isinstance(src, str) or not src:
            raise ConfigError(f"{where}: views.{v} must be a non-empty string, got {src!r}")
    req = d.get("required_views", list(views))
    if not isinstance(req, list) or not req or any(r not in views for r in req):
        raise ConfigError(f"{where}: required_views must be a non-empty list of the mapped views {list(views)}, got {req!r}")
    scale = d.get("score_scale")
    if not (isinstance(scale, list) and len(scale) == 2 and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in scale)
            and scale[0] < scale[1]):
        raise ConfigError(f"{where}: score_scale must be [low, high] with low < high, got {scale!r}")
    success_at = d.get("success_at")
    if success_at is not None and (isinstance(success_at, bool) or not isinstance(success_at, (int, float))):
        raise ConfigError(f"{where}: success_at must be a number on the score scale, got {success_at!r}")
    success = _str(d, "success", where)
    if success is None and success_at is None:
        raise ConfigError(f"{where}: give success (a field) or success_at (a score threshold)")
    tie = d.get("tie", ["tie"])
    if isinstance(tie, str):
        tie = [tie]
    if not isinstance(tie, list) or not all(isinstance(t, str) for t in tie):
        raise ConfigError(f"{where}: tie must be a list of verdict values meaning a tie, got {tie!r}")
    prefs = d.get("preferences")
    pref_file = None
    if prefs is not None:
        if fmt != "lerobot":
            raise ConfigError(f"{where}: preferences (a verdicts table) is for format lerobot; roboarena uses preference/rationale")
        if not isinstance(prefs, dict):
            raise ConfigError(f"{where}: preferences must be a mapping with file, episode_a, episode_b, verdict, rationale")
        bad = sorted(set(prefs) - {"file", "episode_a", "episode_b", "verdict", "rationale"})
        if bad:
            raise UnknownNameError(f"key of {where} preferences", bad[0], ["file", "episode_a", "episode_b", "verdict", "rationale"])
        pref_file = PreferenceFile(
            file=_str(prefs, "file", f"{where} preferences", required=True) or "",
            episode_a=_str(prefs, "episode_a", where) or "episode_a",
            episode_b=_str(prefs, "episode_b", where) or "episode_b",
            verdict=_str(prefs, "verdict", where) or "preference",
            rationale=_str(prefs, "rationale", where),
        )
    cat = d.get("category", {"keywords": DEFAULT_KEYWORDS})
    if not (isinstance(cat, dict) and len(cat) == 1 and next(iter(cat)) in ("column", "value", "keywords")):
        raise ConfigError(f"{where}: category must be one of {{column: NAME}}, {{value: NAME}}, {{keywords: {{category: [words]}}}}")
    if "keywords" in cat and not (isinstance(cat["keywords"], dict)
                                  and all(isinstance(w, list) and all(isinstance(x, str) for x in w) for w in cat["keywords"].values())):
        raise ConfigError(f"{where}: category.keywords must map category names to lists of words")
    if fmt == "lerobot" and _str(d, "context", where) is None:
        raise ConfigError(f"{where}: context (the episode column grouping rollouts into contexts) is required for format lerobot")
    return RealMapping(
        format=str(fmt),
        views={str(k): str(v) for k, v in views.items()},
        required_views=tuple(req),
        score=_str(d, "score", where, required=True) or "",
        score_scale=(float(scale[0]), float(scale[1])),
        success=success,
        success_at=None if success_at is None else float(success_at),
        instruction=_str(d, "instruction", where),
        context=_str(d, "context", where),
        policy=_str(d, "policy", where),
        preference=_str(d, "preference", where),
        rationale=_str(d, "rationale", where),
        tie=tuple(tie),
        preferences=pref_file,
        category=dict(cat),
        sessions=_str(d, "sessions", where) or "evaluation_sessions",
        metadata=_str(d, "metadata", where) or "metadata.yaml",
        policies=_str(d, "policies", where) or "policies",
    )


def load_mapping(path: str | Path) -> RealMapping:
    """Read and check a mapping YAML file."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"map={p}: no such mapping file")
    try:
        d = yaml.safe_load(p.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"cannot read the mapping {p}: {str(exc).splitlines()[0]}") from exc
    return mapping_from_dict(d, where=f"mapping {p.name}")


def shipped_mapping(name: str) -> RealMapping:
    """A mapping shipped in ``simfail/dataset/real/mappings/<name>.yaml`` (``roboarena``, ``roboarena_lerobot``)."""
    import yaml

    folder = resources.files("simfail.dataset.real").joinpath("mappings")
    names = sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".yaml"))
    if name not in names:
        raise UnknownNameError("shipped mapping", name, names)
    d = yaml.safe_load(folder.joinpath(f"{name}.yaml").read_text())
    return mapping_from_dict(d, where=f"shipped mapping {name}")
