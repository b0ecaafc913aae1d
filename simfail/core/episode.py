"""In-memory records that flow from the simulator to the dataset writer.

These dataclasses are the contract between the physics side of simfail (rollouts, detectors,
labels) and the storage side (the LeRobot v3.0 writer). Nothing here touches MuJoCo.

Conventions
-----------
* Frames are indexed from 0 at the episode's first rendered observation; frame ``t`` is at
  time ``t / fps`` seconds.
* Images are ``uint8`` arrays of shape ``(T, H, W, 3)`` in RGB order.
* Distances are metres, angles radians (degrees only where a field name says ``_deg``),
  impulses newton-seconds, forces newtons.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

#: The three camera views of a simfail episode, in the order they are written.
VIEWS: tuple[str, ...] = ("left", "right", "wrist")

#: Failure categories. ``safety`` violations zero the dense reward from their visible frame on;
#: ``task`` failures stop the task from succeeding; ``quality`` failures lower the score of an
#: otherwise successful episode.
FAILURE_CATEGORIES: tuple[str, ...] = ("safety", "task", "quality")


@dataclass(frozen=True)
class FailureEvent:
    """One failure the physics produced, as the detectors saw it.

    Attributes:
        type: Failure type, e.g. ``"drop"``, ``"obstacle_topple"``, ``"missed_grasp"``.
        category: One of :data:`FAILURE_CATEGORIES`.
        onset_frame: Frame where the cause began (perturbation onset when one was applied,
            otherwise the first frame the detector saw the cause).
        irreversible_frame: First frame after which the outcome can no longer be undone by
            the rest of the program (e.g. the object left the fingers).
        visible_frame: First frame where the failure is visible in the cameras (e.g. the cup
            has tilted past the visibility threshold, the object is on the table).
        severity: In ``[0, 1]``; 1 is a full failure, small values are near misses.
        objects: Names of the scene objects involved.
        rationale: One sentence written from the measured event data.
        measurements: The numbers behind the event (metres, radians, N*s ...).
        visible_frames: ``{view: frame or None}``: the first frame each camera view shows the
            failure (None: that view never does), from segmentation renders
            (:mod:`simfail.labels.visibility`); ``visible_frame`` is the earliest of them.
            ``None`` when not computed (an unrendered rollout, a dataset written before it).
        visible_in: The views that show the failure; ``()`` when no view does (then
            ``visible_frame`` stays the physics frame); ``None`` when not computed.
    """

    type: str
    category: str
    onset_frame: int
    irreversible_frame: int
    visible_frame: int
    severity: float
    objects: tuple[str, ...]
    rationale: str
    measurements: dict[str, float] = field(default_factory=dict)
    visible_frames: dict[str, int | None] | None = None
    visible_in: tuple[str, ...] | None = None

    @property
    def seen(self) -> bool | None:
        """Whether some camera view shows the event (None: visibility was not computed)."""
        return None if self.visible_in is None else bool(self.visible_in)

    def __post_init__(self) -> None:
        if self.category not in FAILURE_CATEGORIES:
            raise ValueError(f"unknown failure category {self.category!r}")
        if not 0.0 <= self.severity <= 1.0:
            raise ValueError(f"severity must be in [0, 1], got {self.severity}")
        if not (0 <= self.onset_frame <= min(self.irreversible_frame, self.visible_frame)):
            raise ValueError(
                "frames must satisfy 0 <= onset <= irreversible and onset <= visible, got "
                f"onset={self.onset_frame} irreversible={self.irreversible_frame} "
                f"visible={self.visible_frame}"
            )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["objects"] = list(self.objects)
        d["measurements"] = {k: float(v) for k, v in self.measurements.items()}
        if self.visible_in is not None:
            d["visible_in"] = list(self.visible_in)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FailureEvent:
        d = dict(d)
        d["objects"] = tuple(d.get("objects", ()))
        if d.get("visible_in") is not None:  # absent (None) in datasets written before it
            d["visible_in"] = tuple(d["visible_in"])
        if d.get("visible_frames") is not None:
            d["visible_frames"] = {k: (None if v is None else int(v)) for k, v in d["visible_frames"].items()}
        return cls(**d)


def failures_to_json(events: list[FailureEvent]) -> str:
    """Serialise events to the JSON string stored in ``simfail.failures``."""
    return json.dumps([e.to_dict() for e in events], sort_keys=True)


def failures_from_json(text: str) -> list[FailureEvent]:
    return [FailureEvent.from_dict(d) for d in json.loads(text)]


@dataclass
class EpisodeRecord:
    """One rendered, labelled episode.

    Attributes:
        group_id: Counterfactual group (one initial state) the episode belongs to.
        variant: ``"expert"`` or the name of the perturbation that was applied.
        instruction: The natural-language task given to the robot (same for the whole group).
        task: Task category name (``"pick_place"`` ...).
        seed: Seed of the group's initial state.
        fps: Frames per second of ``frames`` and ``columns``.
        frames: ``{view: uint8 (T, H, W, 3)}`` for every view in :data:`VIEWS`.
        columns: Per-frame arrays with leading dimension ``T``. Always present:
            ``observation.state`` (T, 9) float32: 7 arm joint angles [rad], 2 finger joint
            positions [m]; ``action`` (T, 8) float32: 7 arm joint targets [rad] and the
            gripper command in [0, 1] (1 = closed); ``progress`` (T,) float32 in [0, 1];
            ``reward`` (T,) float32 in [0, 1]; ``failure`` (T,) bool; ``sim.qpos`` (T, nq)
            float64 and ``sim.qvel`` (T, nv) float64, the full simulator state.
        success: Whether the task was achieved at the end of the episode.
        score: Episode score in [0, 100].
        failures: Failure events the detectors confirmed.
        perturbation: Parameters of the applied perturbation (empty for the expert).
        rank: 1-based rank of the episode's score within its group (1 = best; ties share).
        policy: The policy that acted (policy rollouts; ``None`` for generated episodes),
            written as ``simfail.policy`` by a writer created with ``policy_column=True``.
    """

    group_id: int
    variant: str
    instruction: str
    task: str
    seed: int
    fps: int
    frames: dict[str, np.ndarray]
    columns: dict[str, np.ndarray]
    success: bool
    score: float
    failures: list[FailureEvent]
    perturbation: dict[str, Any] = field(default_factory=dict)
    rank: int = 0
    policy: str | None = None

    @property
    def length(self) -> int:
        return int(next(iter(self.columns.values())).shape[0])

    def validate(self) -> None:
        """Raise ``ValueError`` if arrays disagree on length or dtype."""
        n = self.length
        for key, arr in self.columns.items():
            if arr.shape[0] != n:
                raise ValueError(f"column {key!r} has {arr.shape[0]} rows, expected {n}")
        for view, frames in self.frames.items():
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise ValueError(f"view {view!r} must be uint8 (T,H,W,3), got {frames.dtype} {frames.shape}")
            if frames.shape[0] != n:
                raise ValueError(f"view {view!r} has {frames.shape[0]} frames, expected {n}")
        if not 0.0 <= self.score <= 100.0:
            raise ValueError(f"score must be in [0, 100], got {self.score}")


@dataclass(frozen=True)
class Preference:
    """A strict ground-truth preference inside one counterfactual group.

    ``episode_a``/``episode_b`` are dataset-wide episode indices; ``preferred`` is the
    index of the better one (the higher score).
    """

    group_id: int
    episode_a: int
    episode_b: int
    preferred: int
    score_a: float
    score_b: float


def strict_preferences(group_id: int, episode_indices: list[int], scores: list[float]) -> list[Preference]:
    """All pairs ``(i, j), i < j`` of a group whose scores differ, as in the paper's P_c."""
    out: list[Preference] = []
    for a in range(len(scores)):
        for b in range(a + 1, len(scores)):
            if scores[a] == scores[b]:
                continue
            preferred = episode_indices[a] if scores[a] > scores[b] else episode_indices[b]
            out.append(
                Preference(group_id, episode_indices[a], episode_indices[b], preferred, float(scores[a]), float(scores[b]))
            )
    return out


def competition_ranks(scores: list[float]) -> list[int]:
    """1-based standard competition ranks (higher score ranks first, ties share a rank)."""
    return [1 + sum(1 for other in scores if other > s) for s in scores]
