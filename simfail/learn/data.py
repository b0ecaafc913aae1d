"""Training clips for the rewind reward model.

:func:`select_episodes` picks the training episodes of a dataset for a regime:

* ``expert_only``: expert episodes only (ReWiND): forward clips with their progress targets,
  plus "rewound" negatives.
* ``with_failures``: the experts as above, plus every failure variant with its dense
  ``reward`` column as the per-frame target.

:func:`load_pool` decodes and resizes the chosen episodes once; :func:`sample_batch` draws
clips from it:

* forward clip: ``K`` frame indices spread over ``[0, e]`` (``e`` the last frame, or with
  probability ``1/2`` a random end in the second two thirds of the episode), interior points
  jittered by up to half a spacing, first and last index kept; targets are the episode's
  per-frame targets at those indices.
* rewound clip (ReWiND's video rewinding): ``i + 1`` distinct frames in time order from frame
  0 to a random end (``i`` drawn in ``[K/2, K-2]``), followed by the same frames played
  backwards for ``K - 1 - i`` steps: the video runs forward then reverses, and the targets
  (the frames' own progress labels) go back down with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from simfail.errors import ConfigError, UnknownNameError

from .text import HashedText

__all__ = [
    "REGIMES", "EXPERT_TARGETS", "Selection", "EpisodeData", "Pool",
    "select_episodes", "load_pool", "forward_indices", "rewound_indices", "sample_batch",
]

REGIMES: tuple[str, ...] = ("expert_only", "with_failures")
EXPERT_TARGETS: tuple[str, ...] = ("progress", "reward", "time")


@dataclass
class Selection:
    experts: list[int]
    failures: list[int]
    groups: list[int]
    skipped_failures: dict[str, int] = field(default_factory=dict)  # held-out variant -> episodes left out

    @property
    def episodes(self) -> list[int]:
        return sorted(self.experts + self.failures)


def select_episodes(
    ds: Any,
    regime: str,
    *,
    groups: list[int] | None = None,
    holdout_groups: list[int] | None = None,
    holdout_failures: list[str] | None = None,
) -> Selection:
    """Training episodes of ``ds`` (a :class:`~simfail.dataset.reader.SimfailDataset`).

    ``groups``: group ids to train on (``None``: all); ``holdout_groups``: group ids never
    trained on; ``holdout_failures``: variant (perturbation) names whose episodes are left
    out. Raises :class:`ConfigError` for an unknown regime, group or variant name, and when
    nothing is left to train on.
    """

    if regime not in REGIMES:
        raise UnknownNameError("training regime", str(regime), REGIMES)
    all_groups = ds.groups()
    for what, ids in (("groups", groups), ("holdout_groups", holdout_groups)):
        unknown = sorted(set(ids or []) - set(all_groups))
        if unknown:
            raise ConfigError(f"{what}: group ids {unknown} are not in the dataset (it has {len(all_groups)} groups: "
                              f"{min(all_groups, default=None)}..{max(all_groups, default=None)})")
    keep = [g for g in all_groups if (groups is None or g in set(groups)) and g not in set(holdout_groups or [])]
    variants = {str(ds.episode(e)["simfail.variant"]) for eps in all_groups.values() for e in eps}
    held = list(holdout_failures or [])
    unknown_v = sorted(set(held) - variants)
    if unknown_v:
        raise ConfigError(f"holdout_failures: {unknown_v} are not variants of this dataset; "
                          f"its failure variants are {sorted(variants - {'expert'})}")
    if "expert" in held:
        raise ConfigError("holdout_failures cannot hold out the expert episodes")
    experts, failures, skipped = [], [], {}
    for g in keep:
        for e in all_groups[g]:
            row = ds.episode(e)
            v = str(row["simfail.variant"])
            if v == "expert":
                if bool(row["simfail.success"]):
                    experts.append(e)
            elif regime == "with_failures":
                if v in held:
                    skipped[v] = skipped.get(v, 0) + 1
                else:
                    failures.append(e)
    if not experts:
        raise ConfigError(
            f"empty training set: no successful expert episode in the {len(keep)} training group(s) "
            f"(dataset {getattr(ds, 'root', '?')}, groups={groups}, holdout_groups={holdout_groups})"
        )
    return Selection(experts, failures, keep, skipped)


@dataclass
class EpisodeData:
    index: int
    frames: np.ndarray  # uint8 (T, h, w, 3)
    target: np.ndarray  # float32 (T,) in [0, 1]
    text: np.ndarray  # float32 (D,)
    expert: bool
    source: str = ""  # dataset name when several are mixed (simfail.learn.mix)


@dataclass
class Pool:
    """Training episodes. ``probs`` (optional, summing to 1): the chance of each episode being
    drawn for a forward clip, ``expert_probs`` the same over :attr:`experts` for rewound
    clips; ``None`` draws uniformly (one dataset)."""

    episodes: list[EpisodeData]
    probs: np.ndarray | None = None
    expert_probs: np.ndarray | None = None

    @property
    def experts(self) -> list[EpisodeData]:
        return [e for e in self.episodes if e.expert]


def expert_target(columns: dict[str, np.ndarray], mode: str) -> np.ndarray:
    if mode not in EXPERT_TARGETS:
        raise UnknownNameError("expert target", str(mode), EXPERT_TARGETS)
    n = len(columns["reward"])
    if mode == "time":
        return np.zeros(1, np.float32) if n == 1 else (np.arange(n) / (n - 1)).astype(np.float32)
    return np.asarray(columns[mode], dtype=np.float32)


def load_pool(ds: Any, sel: Selection, *, view: str, frame_size: tuple[int, int], text: HashedText,
              expert_target_mode: str = "progress") -> Pool:
    """Decode, resize and label the selected episodes (experts first, then failures)."""
    from simfail.stress.preprocess import resize_frames

    if view not in ds.views:
        raise UnknownNameError("view", str(view), ds.views)
    out = []
    for e in sel.experts + sel.failures:
        is_expert = e in sel.experts
        cols = ds.episode_columns(e)
        tgt = expert_target(cols, expert_target_mode) if is_expert else np.asarray(cols["reward"], np.float32)
        frames = resize_frames(ds.episode_frames(e, view), tuple(frame_size))
        instr = ds.episode(e)["tasks"][0]
        out.append(EpisodeData(e, frames, np.clip(tgt, 0.0, 1.0), text.embed(instr), is_expert))
    return Pool(out)


def _spread(end: int, k: int, rng: np.random.Generator, jitter: bool) -> np.ndarray:
    base = np.linspace(0.0, float(end), k)
    if jitter and k > 2:
        step = end / (k - 1)
        base[1:-1] += rng.uniform(-0.5, 0.5, size=k - 2) * step
    return np.clip(np.floor(base + 0.5).astype(np.int64), 0, end)


def forward_indices(n: int, k: int, rng: np.random.Generator, *, jitter: bool = True, crop: bool = True) -> np.ndarray:
    """``k`` non-decreasing frame indices of an ``n``-frame episode (see the module docstring)."""
    end = n - 1
    if crop and n > 3 and rng.random() < 0.5:
        end = int(rng.integers(max(1, n // 3), n))
    return np.sort(_spread(end, k, rng, jitter))


def rewound_indices(n: int, k: int, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Indices of a rewound clip and the position of its turning point ``i``: indices
    ``0..i`` go forward, ``i+1..k-1`` retrace them backwards (``idx[i+j] = idx[i-j]``)."""
    if k < 3:
        raise ConfigError(f"clip_frames must be >= 3 for rewound clips, got {k}")
    i = int(rng.integers(k // 2, k - 1))  # in [k/2, k-2]
    if n > i:  # distinct, increasing frames 0 = f_0 < ... < f_i = end: the rewound part strictly goes back
        end = int(rng.integers(max(i, n // 3), n))
        fwd = np.concatenate([[0], np.sort(rng.choice(np.arange(1, end), size=i - 1, replace=False)), [end]]).astype(np.int64)
    else:  # too few frames: repeat some
        fwd = np.sort(_spread(n - 1, i + 1, rng, True))
    back = fwd[::-1][1 : k - i]
    return np.concatenate([fwd, back]), i


def sample_batch(pool: Pool, rng: np.random.Generator, batch_size: int, k: int, rewind_frac: float
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(frames uint8 (B,K,h,w,3), text (B,D), targets (B,K), is_rewound (B,))``."""
    experts = pool.experts
    frames, texts, targets, rew = [], [], [], []
    def draw(items: list[EpisodeData], p: np.ndarray | None) -> EpisodeData:
        return items[int(rng.integers(len(items)))] if p is None else items[int(rng.choice(len(items), p=p))]

    for _ in range(batch_size):
        if experts and rng.random() < rewind_frac:
            ep = draw(experts, pool.expert_probs)
            idx, _ = rewound_indices(len(ep.target), k, rng)
            rew.append(True)
        else:
            ep = draw(pool.episodes, pool.probs)
            idx = forward_indices(len(ep.target), k, rng)
            rew.append(False)
        frames.append(ep.frames[idx])
        texts.append(ep.text)
        targets.append(ep.target[idx])
    return np.stack(frames), np.stack(texts), np.stack(targets).astype(np.float32), np.asarray(rew)
