"""Edit requests and how they are batched.

An :class:`EditRequest` is one video to edit: ``T`` uint8 frames (one view, or the three views
tiled side by side), its control video, the prompts and the noise seed. The realism pass hands
an editor a list of them (the videos of up to ``batch_size`` episodes of one group):

* an editor with ``edit_batch(requests) -> list[frames]`` gets the whole list (the Wan-VACE
  editor splits every video into chunks and denoises up to ``batch_size`` chunks of the same
  shape together, see :mod:`simfail.realism.pipeline`);
* an editor with only ``edit(frames, control, *, prompt, negative_prompt, seed)`` is called
  once per request, in order.

Either way the outputs come back in request order, and the noise of a request depends on its
own seed only, never on which other requests share its batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Hashable, Sequence

import numpy as np

from simfail.errors import ConfigError, SimfailError

__all__ = ["EditRequest", "MAX_BATCH_SIZE", "check_batch_size", "plan_batches", "edit_requests"]

#: Largest accepted ``batch_size`` (videos or chunks per pipeline call): far above what fits a
#: GPU at useful resolutions; a larger number is almost certainly a typo.
MAX_BATCH_SIZE = 64


@dataclass
class EditRequest:
    """One video to edit.

    Attributes:
        frames: uint8 ``(T, H, W, 3)`` original frames.
        control: uint8 ``(T, H, W, 3)`` control video (depth / edges / segmentation).
        prompt, negative_prompt: Text prompts.
        seed: Noise seed (the group's seed; see :func:`simfail.realism.edit.group_seed`).
    """

    frames: np.ndarray
    control: np.ndarray
    prompt: str
    negative_prompt: str
    seed: int


def check_batch_size(value: Any) -> int:
    """``value`` as an int in ``[1, MAX_BATCH_SIZE]``.

    Raises:
        ConfigError: not an integer (booleans and fractions included) or out of range.
    """
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise ConfigError(f"batch_size must be an integer in [1, {MAX_BATCH_SIZE}], got {value!r}")
    value = int(value)
    if not 1 <= value <= MAX_BATCH_SIZE:
        raise ConfigError(f"batch_size must be an integer in [1, {MAX_BATCH_SIZE}], got {value}")
    return value


def plan_batches(keys: Sequence[Hashable], batch_size: int) -> list[list[int]]:
    """Indices of ``keys`` in batches: items with equal keys (e.g. the same video shape) go
    together, in order of first appearance, at most ``batch_size`` per batch.

    >>> plan_batches(["a", "b", "a", "a"], 2)
    [[0, 2], [3], [1]]
    """
    size = check_batch_size(batch_size)
    by_key: dict[Hashable, list[int]] = {}
    for i, k in enumerate(keys):
        by_key.setdefault(k, []).append(i)
    out: list[list[int]] = []
    for idx in by_key.values():
        out.extend(idx[s:s + size] for s in range(0, len(idx), size))
    return out


def edit_requests(editor, requests: Sequence[EditRequest]) -> list[np.ndarray]:
    """Edited frames of every request, in request order (see the module docstring).

    Raises:
        SimfailError: ``edit_batch`` returned a different number of videos.
    """
    requests = list(requests)
    if not requests:
        return []
    batch = getattr(editor, "edit_batch", None)
    if callable(batch):
        outs = list(batch(requests))
        if len(outs) != len(requests):
            raise SimfailError(f"{type(editor).__name__}.edit_batch returned {len(outs)} videos for {len(requests)} requests")
        return [np.asarray(o) for o in outs]
    return [np.asarray(editor.edit(r.frames, r.control, prompt=r.prompt, negative_prompt=r.negative_prompt, seed=r.seed))
            for r in requests]
