"""Training on several datasets at once: simfail's failures mixed with real rollouts.

* Sources: each ``data=`` folder is one source, ``sim`` or ``real``
  (:attr:`SimfailDataset.source`), with a sampling weight: a source's share of the training
  clips is ``weight / sum(weights)`` (a clip's episode is drawn uniformly within its source);
  without ``weights`` every episode is equally likely, whatever its source.
* Held-out real contexts: a seeded share ``real_holdout`` of each real source's contexts
  (groups) is held out and never enters the pool (:func:`split_groups`); the split is saved as
  ``split.json`` beside ``model.pt`` so ``simfail evaluate split=MODEL_DIR`` scores exactly
  those contexts.
* Targets: simfail episodes as in :mod:`simfail.learn.data` (experts: ``expert_target``;
  failures: their dense ``reward``). A real release has no per-frame labels, only the human
  score ``y`` in [0, 100]: a real episode's per-frame target is ``(t / (T - 1)) * y / 100``,
  a progress ramp that ends at the human score (ReWiND's time target for a success). Real
  successes are the "experts" rewound clips are cut from; with ``regime=expert_only`` only
  they are trained on, with ``with_failures`` every real episode.
* Frames of every source are resized to the model's ``frame_size`` by the pool loader
  (:func:`simfail.stress.preprocess.resize_frames`) and clips are index-sampled, so datasets
  whose image size or fps differ from simfail's are resampled, never rewritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from simfail.errors import ConfigError

from .data import EpisodeData, Pool, expert_target, select_episodes
from .text import HashedText

__all__ = ["Source", "split_groups", "real_target", "build_mixed_pool"]


@dataclass
class Source:
    path: str
    name: str
    kind: str
    weight: float | None
    train_groups: list[int] = field(default_factory=list)
    heldout_groups: list[int] = field(default_factory=list)
    n_experts: int = 0
    n_failures: int = 0
    categories: dict[str, int] = field(default_factory=dict)  # trained episodes per task category

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "name": self.name, "kind": self.kind, "weight": self.weight,
                "train_groups": self.train_groups, "heldout_groups": self.heldout_groups,
                "n_experts": self.n_experts, "n_failures": self.n_failures, "categories": dict(sorted(self.categories.items()))}

    def count(self, category: str) -> None:
        self.categories[category] = self.categories.get(category, 0) + 1


def split_groups(groups: list[int], frac: float, seed: int, salt: str) -> tuple[list[int], list[int]]:
    """``(train, held_out)`` group ids: ``round(frac * G)`` groups held out (at least one when
    ``frac > 0``, at most ``G - 1``), drawn with ``numpy.random.default_rng`` seeded by ``seed``
    and the source name ``salt``, so the split is the same on every run and machine."""
    gs = sorted(int(g) for g in groups)
    if frac <= 0 or len(gs) < 2:
        return gs, []
    n = min(max(1, int(round(frac * len(gs)))), len(gs) - 1)
    rng = np.random.default_rng([int(seed), *salt.encode()])
    held = sorted(int(g) for g in rng.choice(gs, size=n, replace=False))
    return [g for g in gs if g not in held], held


def real_target(length: int, score: float) -> np.ndarray:
    """Per-frame target of a real episode: ``(t / (T - 1)) * score / 100`` (float32 ``(T,)``)."""
    n = int(length)
    ramp = np.zeros(1) if n == 1 else np.arange(n) / (n - 1)
    return (ramp * float(score) / 100.0).astype(np.float32)


def build_mixed_pool(cfg: dict[str, Any], text: HashedText) -> tuple[Pool, list[Source]]:
    """The training pool of ``cfg["data"]`` (a list of folders) and each source's split."""
    from simfail.dataset.reader import SimfailDataset
    from simfail.stress.multi import source_names
    from simfail.stress.preprocess import resize_frames

    paths = [str(p) for p in cfg["data"]]
    weights = cfg.get("weights")
    if weights is not None:
        if not (isinstance(weights, list) and len(weights) == len(paths)
                and all(isinstance(w, (int, float)) and not isinstance(w, bool) and w >= 0 for w in weights) and sum(weights) > 0):
            raise ConfigError(f"weights must be one number >= 0 per dataset ({len(paths)}), not all 0, got {weights!r}")
    frac = cfg.get("real_holdout", 0.0)
    if isinstance(frac, bool) or not isinstance(frac, (int, float)) or not 0.0 <= frac < 1.0:
        raise ConfigError(f"real_holdout must be a share in [0, 1), got {frac!r}")
    several = len(paths) > 1
    if several and (cfg.get("groups") is not None or cfg.get("holdout_groups")):
        raise ConfigError("groups= and holdout_groups= select groups of one dataset; with several datasets "
                          "real contexts are held out by real_holdout=")
    seed = int(cfg["split_seed"] if cfg.get("split_seed") is not None else cfg["seed"])
    datasets = [SimfailDataset(p) for p in paths]
    sources: list[Source] = []
    episodes: list[EpisodeData] = []
    view, size = cfg["view"], tuple(cfg["frame_size"])
    for k, (name, path, ds) in enumerate(zip(source_names(paths), paths, datasets)):
        if view not in ds.views:
            raise ConfigError(f"view {view!r} is not in {path} (views: {', '.join(ds.views)})")
        w = None if weights is None else float(weights[k])
        src = Source(str(Path(path).resolve()), name, ds.source, w)
        sources.append(src)
        if w == 0.0:
            src.heldout_groups = sorted(ds.groups())  # weight 0: nothing of it is trained on
            continue
        if ds.source == "real":
            train_g, held = split_groups(list(ds.groups()), float(frac), seed, name)
            if cfg.get("groups") is not None:
                train_g = [g for g in train_g if g in set(cfg["groups"])]
            held = sorted(set(held) | set(cfg.get("holdout_groups") or []))
            train_g = [g for g in train_g if g not in held]
            src.train_groups, src.heldout_groups = train_g, held
            groups = ds.groups()
            for g in train_g:
                for e in groups[g]:
                    row = ds.episode(e)
                    ok = bool(row["simfail.success"])
                    if cfg["regime"] == "expert_only" and not ok:
                        continue
                    frames = resize_frames(ds.episode_frames(e, view), size)
                    episodes.append(EpisodeData(e, frames, real_target(int(row["length"]), float(row["simfail.score"])),
                                                text.embed(row["tasks"][0]), ok, name))
                    src.n_experts += int(ok)
                    src.n_failures += int(not ok)
                    src.count(str(row.get("simfail.task") or ""))
        else:
            sel = select_episodes(ds, cfg["regime"], groups=cfg.get("groups"), holdout_groups=cfg.get("holdout_groups") or [],
                                  holdout_failures=cfg.get("holdout_failures") or [])
            src.train_groups = sorted(sel.groups)
            src.heldout_groups = sorted(set(ds.groups()) - set(sel.groups))
            for e in sel.experts + sel.failures:
                is_expert = e in sel.experts
                cols = ds.episode_columns(e)
                tgt = expert_target(cols, cfg["expert_target"]) if is_expert else np.asarray(cols["reward"], np.float32)
                frames = resize_frames(ds.episode_frames(e, view), size)
                episodes.append(EpisodeData(e, frames, np.clip(tgt, 0.0, 1.0), text.embed(ds.episode(e)["tasks"][0]), is_expert, name))
                src.count(str(ds.episode(e).get("simfail.task") or ""))
            src.n_experts, src.n_failures = len(sel.experts), len(sel.failures)
    # held-out contexts never trained on (the guarantee split.json documents)
    for src, ds in zip(sources, datasets):
        held_eps = {e for g in src.heldout_groups for e in ds.groups()[g]}
        leaked = [d.index for d in episodes if d.source == src.name and d.index in held_eps]
        if leaked:  # pragma: no cover - a bug, never a user error
            raise AssertionError(f"held-out episodes {leaked[:5]} of {src.name} entered the training pool")
    if not episodes:
        raise ConfigError("empty training set: no episode of any dataset is trained on (weights, real_holdout, regime)")
    if not any(d.expert for d in episodes) and float(cfg["rewind_frac"]) > 0:
        raise ConfigError("empty training set: no successful episode to cut rewound clips from (set rewind_frac=0)")
    probs = expert_probs = None
    if weights is not None:
        probs = _probs(episodes, sources)
        experts = [d for d in episodes if d.expert]
        expert_probs = _probs(experts, sources) if experts else None
    return Pool(episodes, probs, expert_probs), sources


def _probs(items: list[EpisodeData], sources: list[Source]) -> np.ndarray:
    """Each item's chance: its source's weight share (over sources present in ``items``),
    split evenly over that source's items."""
    count: dict[str, int] = {}
    for d in items:
        count[d.source] = count.get(d.source, 0) + 1
    w = {s.name: float(s.weight or 0.0) for s in sources if s.name in count}
    total = sum(w.values())
    if total <= 0:
        raise ConfigError("the weights give every trained source a share of 0")
    p = np.array([w[d.source] / total / count[d.source] for d in items], dtype=np.float64)
    return p / p.sum()
