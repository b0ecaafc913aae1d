"""Iterate a :class:`~simfail.dataset.reader.SimfailDataset` as ``(EpisodeInput, ground_truth)``
pairs for the harness (:func:`simfail.stress.harness.run_model`).

Only what the model asked for is decoded: the camera views in ``requirements.views`` (none at
all for privileged models without views), the goal image when ``wants_goal_image``, the
in-context examples when ``wants_examples``. Per-frame labels (reward, progress, timestamps)
come from the parquet data files, which are cheap to read.

Ground truth of an episode (the keys :mod:`simfail.stress.harness` reads, plus a few more):

============== ==============================================================================
key            value
============== ==============================================================================
context        the counterfactual group id (``simfail.group_id``)
group_id       same
task           the task category (``simfail.task`` column, e.g. ``"pick_place"``)
instruction    the episode's task string (``tasks[0]``)
score          ``simfail.score`` in ``[0, 100]``
success        ``simfail.success``
variant        ``"expert"`` or the perturbation name
failures       :class:`~simfail.core.episode.FailureEvent` list
reward         ``(T,)`` ground-truth dense reward in ``[0, 1]``
progress       ``(T,)`` ground-truth task progress in ``[0, 1]``
episode_index  dataset episode index
length         ``T``
============== ==============================================================================

Goal images and examples never come from the episode's own group:

* goal image: the last frame (in the first view the model asked for, else the dataset's first
  view) of a successful expert episode of the same task category from another group; one with
  the same instruction is preferred. Which one is drawn with ``numpy.random.default_rng((seed,
  group_id))``, so every episode of a group gets the same goal and reruns get the same inputs.
* examples (:class:`~simfail.stress.protocol.Example`): ``n_references`` successful expert
  episodes of the same task from other groups, ``example_frames`` frames spread over the
  episode with their ground-truth rewards (GVL's reference module), and
  ``n_failure_examples`` episodes with a failure event from other groups: frames from the
  first failure's onset to the end, no rewards, ``is_failure=True`` and a description made of
  the failure type, category and the event's rationale.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.dataset.reader import SimfailDataset
from simfail.errors import ConfigError, UnknownNameError

from .preprocess import resize_frames, subsample_indices
from .protocol import EpisodeInput, Example, ModelRequirements

__all__ = ["DatasetEpisodes", "episode_id"]


def episode_id(ep_index: int) -> str:
    """Stable identifier of a dataset episode (seeds per-episode randomness in models)."""
    return f"ep{int(ep_index):06d}"


class DatasetEpisodes:
    """The episodes of a simfail dataset, shaped for one model's :class:`ModelRequirements`.

    Args:
        dataset: A :class:`SimfailDataset` or the path of one.
        requirements: What the model needs (views, goal image, examples, privileged labels).
        episodes: Dataset episode indices to iterate (default: all, in order).
        seed: Seeds the choice of goal images and examples.
        n_references, n_failure_examples, example_frames: see the module docstring.
        cache_size: Decoded goal/example episodes kept in memory (they are shared by groups).

    Raises:
        UnknownNameError: the model asks for a view the dataset does not have.
    """

    def __init__(
        self,
        dataset: SimfailDataset | str | Path,
        requirements: ModelRequirements,
        *,
        episodes: Sequence[int] | None = None,
        seed: int = 0,
        n_references: int = 1,
        n_failure_examples: int = 1,
        example_frames: int = 8,
        cache_size: int = 16,
    ) -> None:
        self.dataset = dataset if isinstance(dataset, SimfailDataset) else SimfailDataset(dataset)
        self.requirements = requirements
        ds = self.dataset
        for view in requirements.views:
            if view not in ds.views:
                raise UnknownNameError("view of this dataset", view, ds.views)
        n = ds.num_episodes
        self.indices = list(range(n)) if episodes is None else [int(e) for e in episodes]
        for e in self.indices:
            if not 0 <= e < n:
                raise ConfigError(f"episode {e} out of range (dataset has {n} episodes)")
        if example_frames < 2:
            raise ConfigError(f"example_frames must be >= 2, got {example_frames}")
        if n_references < 0 or n_failure_examples < 0:
            raise ConfigError("numbers of examples must be >= 0")
        self.seed = int(seed)
        self.n_references = int(n_references)
        self.n_failure_examples = int(n_failure_examples)
        self.example_frames = int(example_frames)
        self._cache_size = int(cache_size)
        self._rows = ds.episodes
        self._failures: dict[int, list[FailureEvent]] = {}
        self._decoded: OrderedDict[tuple[int, str], np.ndarray] = OrderedDict()
        self._columns: dict[int, dict[str, np.ndarray]] = {}
        self.n_decoded = 0  # episode-view decodes done so far (tests and timing)
        self.missing_goal: list[int] = []
        self._pool_cache: dict[tuple[str, str], list[tuple[int, int, str]]] | None = None
        self._cand_cache: dict[tuple[int, str], list[int]] = {}
        view0 = requirements.views[0] if requirements.views else (ds.views[0] if ds.views else None)
        self.aux_view = view0
        self._real = getattr(ds, "source", "sim") == "real"

    # ------------------------------------------------------------------ basics

    def __len__(self) -> int:
        return len(self.indices)

    def row(self, ep: int) -> dict[str, Any]:
        return self._rows[ep]

    def group_of(self, ep: int) -> int:
        return int(self._rows[ep]["simfail.group_id"])

    def category_of(self, ep: int) -> str:
        return str(self._rows[ep].get("simfail.task") or "")

    def instruction_of(self, ep: int) -> str:
        tasks = self._rows[ep].get("tasks") or []
        return str(tasks[0]) if tasks else ""

    def failures(self, ep: int) -> list[FailureEvent]:
        if ep not in self._failures:
            self._failures[ep] = self.dataset.failures(ep)
        return self._failures[ep]

    def columns(self, ep: int) -> dict[str, np.ndarray]:
        """``reward``, ``progress`` and ``timestamp`` of one episode (float64 ``(T,)``)."""
        cols = self._columns.get(ep)
        if cols is None:
            raw = self.dataset.episode_columns(ep)
            cols = {k: np.asarray(raw[k], dtype=np.float64).reshape(-1) for k in ("reward", "progress", "timestamp") if k in raw}
            if len(self._columns) > 64:
                self._columns.pop(next(iter(self._columns)))
            self._columns[ep] = cols
        return cols

    def frames(self, ep: int, view: str, *, keep: bool = False) -> np.ndarray:
        """Decoded frames of one view; ``keep`` caches them (goal and example sources)."""
        key = (ep, view)
        if key in self._decoded:
            self._decoded.move_to_end(key)
            return self._decoded[key]
        arr = self.dataset.episode_frames(ep, view)
        self.n_decoded += 1
        if keep:
            self._decoded[key] = arr
            while len(self._decoded) > self._cache_size:
                self._decoded.popitem(last=False)
        return arr

    # ------------------------------------------------------------------ ground truth

    def ground_truth(self, ep: int) -> dict[str, Any]:
        r = self._rows[ep]
        cols = self.columns(ep)
        return {
            "context": self.group_of(ep),
            "group_id": self.group_of(ep),
            "task": self.category_of(ep),
            "instruction": self.instruction_of(ep),
            "score": float(r["simfail.score"]),
            "success": bool(r["simfail.success"]),
            "variant": str(r.get("simfail.variant") or ""),
            # human rationales of a real dataset are text, not measured failures: kept out of the
            # failure metrics (timing, per-type accuracy), still shown as example descriptions
            "failures": [f for f in self.failures(ep) if f.type != "human_rationale"],
            "reward": cols.get("reward"),
            "progress": cols.get("progress"),
            "episode_index": int(ep),
            "length": int(r["length"]),
        }

    # ------------------------------------------------------------------ goal image and examples

    def _pool(self) -> dict[tuple[str, str], list[tuple[int, int, str]]]:
        """``(category, "expert"|"failure") -> [(episode, group, instruction)]``, built once."""
        if self._pool_cache is None:
            pool: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
            for e, r in enumerate(self._rows):
                if r.get("simfail.variant") == "expert" or self._real:
                    # a real release has no scripted expert: its successful rollouts are the references
                    kind = "expert" if bool(r["simfail.success"]) else ("failure" if self._real and self.failures(e) else None)
                else:
                    kind = "failure" if self.failures(e) else None
                if kind is not None:
                    pool.setdefault((self.category_of(e), kind), []).append((e, self.group_of(e), self.instruction_of(e)))
            self._pool_cache = pool
        return self._pool_cache

    def _candidates(self, ep: int, want: str) -> list[int]:
        """Episodes of other groups usable as goal/reference (``want="expert"``) or failure
        example (``want="failure"``) of ``ep``: those with the same instruction when there are
        any, else all of the same task category. Cached per group."""
        gid = self.group_of(ep)
        key = (gid, want)
        if key not in self._cand_cache:
            instr = self.instruction_of(ep)
            same, other = [], []
            for e, g, text in self._pool().get((self.category_of(ep), want), []):
                if g != gid:
                    (same if text == instr else other).append(e)
            self._cand_cache[key] = same or other
        return self._cand_cache[key]

    def _rng(self, ep: int, salt: int) -> np.random.Generator:
        return np.random.default_rng((self.seed, self.group_of(ep), salt))

    def goal_source(self, ep: int) -> int | None:
        """Episode whose last frame is ``ep``'s goal image (``None`` when there is none)."""
        cands = self._candidates(ep, "expert")
        if not cands:
            return None
        return cands[int(self._rng(ep, 0).integers(len(cands)))]

    def goal_image(self, ep: int) -> np.ndarray | None:
        src = self.goal_source(ep)
        if src is None or self.aux_view is None:
            if ep not in self.missing_goal:
                self.missing_goal.append(ep)
            return None
        return self.frames(src, self.aux_view, keep=True)[-1].copy()

    def example_sources(self, ep: int) -> tuple[list[int], list[int]]:
        """``(reference episodes, failure episodes)`` of ``ep``'s examples."""
        refs = self._candidates(ep, "expert")
        fails = self._candidates(ep, "failure")
        rng = self._rng(ep, 1)
        pick = lambda c, k: sorted(int(x) for x in rng.choice(c, size=min(k, len(c)), replace=False)) if c and k else []  # noqa: E731
        return pick(refs, self.n_references), pick(fails, self.n_failure_examples)

    def _example_frames(self, ep: int, start: int = 0) -> tuple[np.ndarray, np.ndarray]:
        frames = self.frames(ep, self.aux_view, keep=True)  # type: ignore[arg-type]
        start = min(max(int(start), 0), len(frames) - 1)
        idx = start + subsample_indices(len(frames) - start, self.example_frames)
        out = frames[idx]
        if self.requirements.frame_size is not None:
            out = resize_frames(out, self.requirements.frame_size)
        return out, idx

    def examples(self, ep: int) -> list[Example]:
        if self.aux_view is None:
            return []
        refs, fails = self.example_sources(ep)
        out: list[Example] = []
        for e in refs:
            frames, idx = self._example_frames(e)
            reward = self.columns(e).get("reward")
            out.append(Example(frames=frames, rewards=None if reward is None else reward[idx], description=None))
        for e in fails:
            first = min(self.failures(e), key=lambda f: f.visible_frame)
            frames, _ = self._example_frames(e, first.onset_frame)
            text = f"{first.type} ({first.category} failure): {first.rationale}"
            out.append(Example(frames=frames, rewards=None, description=text, is_failure=True))
        return out

    # ------------------------------------------------------------------ inputs

    def episode_input(self, ep: int) -> EpisodeInput:
        req = self.requirements
        cols = self.columns(ep)
        frames = {view: self.frames(ep, view) for view in req.views}
        privileged = None
        if req.privileged:
            privileged = {k: cols[k] for k in ("reward", "progress") if k in cols}
            privileged["score"] = np.array(float(self._rows[ep]["simfail.score"]))
        times = cols.get("timestamp")
        if times is None:
            times = np.arange(int(self._rows[ep]["length"])) / float(self.dataset.fps)
        return EpisodeInput(
            frames=frames,
            fps=float(self.dataset.fps),
            instruction=self.instruction_of(ep),
            goal_image=self.goal_image(ep) if req.wants_goal_image else None,
            examples=self.examples(ep) if req.wants_examples else None,
            privileged=privileged,
            episode_id=episode_id(ep),
            frame_times=times,
        )

    def item(self, ep: int) -> tuple[EpisodeInput, dict[str, Any]]:
        return self.episode_input(ep), self.ground_truth(ep)

    def iter_items(self, indices: Sequence[int] | None = None) -> Iterator[tuple[EpisodeInput, dict[str, Any]]]:
        """Lazily yield ``(EpisodeInput, ground_truth)`` for ``indices`` (default: all)."""
        for ep in self.indices if indices is None else indices:
            yield self.item(int(ep))

    def __iter__(self) -> Iterator[tuple[EpisodeInput, dict[str, Any]]]:
        return self.iter_items()
