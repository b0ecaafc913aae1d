"""Small synthetic :class:`~simfail.core.episode.EpisodeRecord` groups for tests and smoke runs.

Frames show a coloured square moving over a gradient (different per view and variant), so
consecutive frames differ and decoding errors are visible; columns are seeded random values.
Nothing here touches MuJoCo.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import VIEWS, EpisodeRecord, FailureEvent, competition_ranks

__all__ = ["STATE_NAMES", "ACTION_NAMES", "synthetic_episode", "synthetic_group"]

STATE_NAMES = [f"joint{i}" for i in range(1, 8)] + ["finger_left", "finger_right"]
ACTION_NAMES = [f"joint{i}_target" for i in range(1, 8)] + ["gripper"]


def _frames(length: int, size: tuple[int, int], view_i: int, variant_seed: int) -> np.ndarray:
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.zeros((h, w, 3), dtype=np.uint8)
    base[..., 0] = (xx * 200 // max(w - 1, 1)).astype(np.uint8)
    base[..., 1] = (yy * 200 // max(h - 1, 1)).astype(np.uint8)
    base[..., 2] = 40 + 60 * view_i
    out = np.repeat(base[None], length, axis=0)
    side = max(4, min(h, w) // 4)
    color = np.array([(250, 60, 60), (60, 250, 60), (250, 250, 40)][view_i % 3], dtype=np.uint8)
    for t in range(length):
        x = (2 * t + 5 * variant_seed + 3 * view_i) % max(w - side, 1)
        y = (t + 3 * variant_seed) % max(h - side, 1)
        out[t, y : y + side, x : x + side] = color
    return out


def synthetic_episode(
    group_id: int,
    variant: str = "expert",
    *,
    length: int = 12,
    size: tuple[int, int] = (64, 64),
    nq: int = 20,
    nv: int = 18,
    fps: int = 10,
    seed: int = 0,
    variant_seed: int = 0,
    score: float = 100.0,
    success: bool = True,
    instruction: str = "put the red cube in the bowl",
    task: str = "pick_place",
    failures: list[FailureEvent] | None = None,
    perturbation: dict | None = None,
    rank: int = 1,
) -> EpisodeRecord:
    """One synthetic episode; ``variant_seed`` changes its frames and column values."""
    rng = np.random.default_rng([int(group_id), int(variant_seed), int(seed)])
    progress = np.linspace(0.0, 1.0 if success else 0.6, length, dtype=np.float32)
    fail = np.zeros(length, dtype=bool)
    for ev in failures or []:
        fail[min(ev.visible_frame, length - 1) :] = True
    columns = {
        "observation.state": rng.normal(size=(length, 9)).astype(np.float32),
        "action": rng.normal(size=(length, 8)).astype(np.float32),
        "progress": progress,
        "reward": (progress * (~fail)).astype(np.float32),
        "failure": fail,
        "sim.qpos": rng.normal(size=(length, nq)),
        "sim.qvel": rng.normal(size=(length, nv)),
    }
    frames = {view: _frames(length, size, i, variant_seed) for i, view in enumerate(VIEWS)}
    return EpisodeRecord(
        group_id=group_id, variant=variant, instruction=instruction, task=task, seed=seed, fps=fps,
        frames=frames, columns=columns, success=success, score=float(score), failures=list(failures or []),
        perturbation=dict(perturbation or {}), rank=rank,
    )


def synthetic_group(
    group_id: int,
    *,
    scores: tuple[float, ...] = (100.0, 40.0, 75.0),
    lengths: tuple[int, ...] | None = None,
    instruction: str = "put the red cube in the bowl",
    **kwargs,
) -> list[EpisodeRecord]:
    """An expert plus ``len(scores) - 1`` variants (the first score is the expert's)."""
    lengths = lengths or tuple(12 for _ in scores)
    ranks = competition_ranks(list(scores))
    out = []
    for j, (score, length) in enumerate(zip(scores, lengths)):
        variant = "expert" if j == 0 else f"perturb_{j}"
        failures = []
        if score < 100.0:
            failures = [
                FailureEvent(
                    type="drop", category="task", onset_frame=2, irreversible_frame=3, visible_frame=4,
                    severity=1.0 - score / 100.0, objects=("cube",), rationale="the cube left the fingers",
                    measurements={"drop_height_m": 0.12},
                )
            ]
        out.append(
            synthetic_episode(
                group_id, variant, length=length, seed=1000 + group_id, variant_seed=j, score=score,
                success=score >= 50.0, instruction=instruction, failures=failures,
                perturbation={} if j == 0 else {"name": variant, "magnitude": 0.1 * j}, rank=ranks[j], **kwargs,
            )
        )
    return out
