"""The reward-model plugin interface of the stress test.

A reward model is any object with a ``name``, a :class:`ModelRequirements` and a
``predict(ep: EpisodeInput)`` method (see :class:`RewardModel`). The harness
(:mod:`simfail.stress.harness`) reads the requirements, prepares each episode accordingly
(:func:`simfail.stress.preprocess.prepare_input`), calls the model, checks its output with
:func:`validate_output` and maps it back to the episode's full length.

Models are found by name through a small registry (:func:`register_model`,
:func:`load_model`); third-party models can be loaded without registering as
``"package.module:ClassName"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from simfail.core.episode import VIEWS
from simfail.errors import ConfigError, RewardModelError, UnknownNameError
from simfail.registry import NamedRegistry

#: What a model's output means. ``dense``: one value per frame it was given, shape ``(T,)``.
#: ``episode``: one value for the whole episode, shape ``()`` or ``(1,)``. ``pairwise``: the
#: model implements ``compare(a, b)`` returning P(a preferred over b) in ``[0, 1]``.
OUTPUT_KINDS: tuple[str, ...] = ("dense", "episode", "pairwise")

OutputKind = Literal["dense", "episode", "pairwise"]


@dataclass(frozen=True)
class ModelRequirements:
    """What a reward model needs from an episode, and what it returns.

    Attributes:
        views: Camera views the model receives, a subset of ``("left", "right", "wrist")``
            (may be empty for models that only read privileged labels).
        max_frames: Upper bound on the number of frames the model receives. When an episode
            is longer, the harness keeps ``max_frames`` frames spread uniformly in time,
            always including the first and the last frame (indices
            ``floor(linspace(0, T-1, max_frames) + 0.5)``). A dense output on those frames is
            mapped back to all ``T`` frames by linear interpolation in frame index (see
            :func:`simfail.stress.preprocess.interpolate_to_length`). Must be >= 2;
            ``None`` means all frames.
        frame_size: ``(height, width)`` the frames are resized to (area averaging when
            shrinking, bilinear when enlarging), or ``None`` to keep the rendered size.
        wants_goal_image: The model receives ``EpisodeInput.goal_image`` (else it is ``None``).
        wants_examples: The model receives ``EpisodeInput.examples`` (else ``None``).
        output: One of :data:`OUTPUT_KINDS`.
        privileged: Only for oracle-style baselines: the model receives the ground-truth
            labels in ``EpisodeInput.privileged``. Reports mark such models as privileged.
        stochastic: Repeated calls on the same input may differ; the model should then
            implement ``sample(ep, rng)``.
        value_range: Declared ``(low, high)`` range of the model's values; outputs outside it
            are rejected by :func:`validate_output`. ``None`` means unbounded (values must
            still be finite). Metrics that compare with the ground-truth reward rescale the
            model's values to ``[0, 1]`` with this range.
    """

    views: tuple[str, ...] = ("left",)
    max_frames: int | None = None
    frame_size: tuple[int, int] | None = None
    wants_goal_image: bool = False
    wants_examples: bool = False
    output: OutputKind = "dense"
    privileged: bool = False
    stochastic: bool = False
    value_range: tuple[float, float] | None = (0.0, 1.0)

    def __post_init__(self) -> None:
        views = tuple(self.views)
        object.__setattr__(self, "views", views)
        for v in views:
            if v not in VIEWS:
                raise UnknownNameError("view", v, VIEWS)
        if len(set(views)) != len(views):
            raise ConfigError(f"duplicate views in {views}")
        if self.max_frames is not None and (int(self.max_frames) != self.max_frames or self.max_frames < 2):
            raise ConfigError(f"max_frames must be an integer >= 2 or None, got {self.max_frames!r}")
        if self.frame_size is not None:
            fs = tuple(int(x) for x in self.frame_size)
            if len(fs) != 2 or min(fs) < 1:
                raise ConfigError(f"frame_size must be (height, width) with positive sizes, got {self.frame_size!r}")
            object.__setattr__(self, "frame_size", fs)
        if self.output not in OUTPUT_KINDS:
            raise UnknownNameError("output kind", str(self.output), OUTPUT_KINDS)
        if self.value_range is not None:
            lo, hi = (float(x) for x in self.value_range)
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ConfigError(f"value_range must be finite (low, high) with low < high, got {self.value_range!r}")
            object.__setattr__(self, "value_range", (lo, hi))


@dataclass
class Example:
    """An in-context example handed to models that set ``wants_examples``.

    Attributes:
        frames: ``uint8 (K, H, W, 3)`` frames of the example behaviour, in time order.
        rewards: Optional dense reward per frame, shape ``(K,)``, in ``[0, 1]`` (the dataset's
            reward convention; GVL shows them as percentages). With rewards the example is a
            reference behaviour (GVL module A).
        description: Optional text describing the (failure) behaviour (GVL module B).
        is_failure: The example shows a failure (GVL module C shows failure frames).
    """

    frames: np.ndarray
    rewards: np.ndarray | None = None
    description: str | None = None
    is_failure: bool = False


@dataclass
class EpisodeInput:
    """One episode as a reward model sees it.

    Attributes:
        frames: ``{view: uint8 (T, H, W, 3)}`` RGB frames, only the views the model asked for.
        fps: Frames per second of ``frames`` after any subsampling (the harness lowers it
            when it keeps fewer frames; ``frame_times`` holds the exact times).
        instruction: The natural-language task.
        goal_image: ``uint8 (H, W, 3)`` goal image, or ``None``.
        examples: In-context examples (:class:`Example`), or ``None``.
        privileged: Ground-truth per-frame labels (``{"reward": (T,), "progress": (T,)}``)
            for privileged baselines only, else ``None``.
        episode_id: Identifier, stable across runs (used to seed per-episode randomness).
        frame_times: Optional times in seconds of each frame, shape ``(T,)``.
    """

    frames: dict[str, np.ndarray]
    fps: float
    instruction: str
    goal_image: np.ndarray | None = None
    examples: list[Any] | None = None
    privileged: dict[str, np.ndarray] | None = None
    episode_id: str = ""
    frame_times: np.ndarray | None = field(default=None, repr=False)

    @property
    def length(self) -> int:
        """Number of frames ``T`` (from the frames, else from the privileged labels)."""
        for arr in self.frames.values():
            return int(arr.shape[0])
        if self.privileged:
            for arr in self.privileged.values():
                if np.ndim(arr) >= 1:  # per-frame labels; the episode score is 0-d
                    return int(np.asarray(arr).shape[0])
        if self.frame_times is not None:
            return int(len(self.frame_times))
        raise RewardModelError(f"episode {self.episode_id!r} has no frames and no labels: length unknown")


@runtime_checkable
class RewardModel(Protocol):
    """A reward model the harness can call.

    Required: ``name``, ``requirements`` and ``predict``. ``predict`` returns, for
    ``requirements.output == "dense"``, a float array of shape ``(T,)`` where ``T`` is the
    number of frames it was given; for ``"episode"``, shape ``()`` or ``(1,)``. Values must be
    finite and inside ``requirements.value_range``.

    Optional methods (checked with ``hasattr``; see :class:`BatchRewardModel`,
    :class:`PairwiseRewardModel`, :class:`StochasticRewardModel`):

    * ``predict_batch(eps: list[EpisodeInput]) -> list[np.ndarray]``: same as ``predict``
      on each element; the harness uses it when present.
    * ``compare(a: EpisodeInput, b: EpisodeInput) -> float``: for ``output == "pairwise"``,
      the probability that ``a`` is preferred over ``b``, in ``[0, 1]``.
    * ``sample(ep, rng: numpy.random.Generator) -> np.ndarray``: one draw of a stochastic
      model (same shape rules as ``predict``); used by :mod:`simfail.stress.distill`.
    """

    name: str
    requirements: ModelRequirements

    def predict(self, ep: EpisodeInput) -> np.ndarray: ...


@runtime_checkable
class BatchRewardModel(Protocol):
    def predict_batch(self, eps: list[EpisodeInput]) -> list[np.ndarray]: ...


@runtime_checkable
class PairwiseRewardModel(Protocol):
    def compare(self, a: EpisodeInput, b: EpisodeInput) -> float: ...


@runtime_checkable
class StochasticRewardModel(Protocol):
    def sample(self, ep: EpisodeInput, rng: np.random.Generator) -> np.ndarray: ...


# --------------------------------------------------------------------------- registry

def _model_import_error(spec: str, mod_name: str, exc: ImportError) -> Exception | None:
    """A missing model module is an unknown name; an import failing inside it is re-raised."""
    if isinstance(exc, ModuleNotFoundError) and exc.name is not None and mod_name.startswith(exc.name):
        err = UnknownNameError("model module", mod_name, [])
        err.args = (f"unknown model module {mod_name!r}: it cannot be imported (model=package.module:ClassName)",)
        return err
    return None


#: The reward models by name; importing the built-in modules registers the built-in models.
MODELS = NamedRegistry(
    "model",
    ("simfail.stress.baselines", "simfail.stress.gvl", "simfail.stress.rewind_model", "simfail.stress.lerobot_adapter"),
    import_error=_model_import_error,
)


def register_model(name: str) -> Callable[[Any], Any]:
    """Class (or factory) decorator registering a reward model under ``name``.

    Registering a different object under a name already taken raises :class:`ConfigError`;
    re-registering the same qualified name (a module reload) replaces the entry.
    """
    return MODELS.register(name)


def available_models() -> list[str]:
    """Sorted names of the registered models (built-ins included)."""
    return MODELS.names()


def load_model(spec: str, **kwargs: Any) -> RewardModel:
    """Instantiate a reward model from a registered name or ``"package.module:ClassName"``.

    ``kwargs`` go to the constructor. Raises :class:`UnknownNameError` for an unknown name,
    module or attribute, and :class:`ConfigError` when the object built does not implement
    :class:`RewardModel`.
    """

    factory = MODELS.resolve(spec)
    model = factory(**kwargs)
    if not isinstance(model, RewardModel):
        raise ConfigError(f"{spec!r} does not implement the RewardModel protocol (name, requirements, predict)")
    if not isinstance(model.requirements, ModelRequirements):
        raise ConfigError(f"{spec!r}: requirements must be a ModelRequirements, got {type(model.requirements).__name__}")
    return model


# --------------------------------------------------------------------------- output checks


def validate_output(
    output: Any,
    *,
    kind: str,
    n_frames: int | None = None,
    value_range: tuple[float, float] | None = (0.0, 1.0),
    model_name: str = "?",
    episode_id: str = "?",
) -> np.ndarray:
    """Check a model's output and return it as a float64 array.

    * ``kind="dense"``: shape must be exactly ``(n_frames,)``.
    * ``kind="episode"``: shape ``()`` or ``(1,)``; returned with shape ``()``.
    * ``kind="pairwise"``: a scalar probability; ``value_range`` is forced to ``(0, 1)``.

    Every value must be finite and, when ``value_range`` is given, inside it (inclusive,
    with a relative tolerance of 1e-9 of the range width for rounding). Anything else raises
    :class:`RewardModelError` naming the model, the episode and the problem. Nothing is ever
    clipped or replaced.
    """

    where = f"reward model {model_name!r} on episode {episode_id!r}"
    try:
        arr = np.asarray(output, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RewardModelError(f"{where}: output is not numeric ({type(output).__name__}): {exc}") from None
    if kind == "dense":
        if n_frames is None:
            raise ValueError("n_frames is required for dense outputs")
        if arr.shape != (n_frames,):
            raise RewardModelError(f"{where}: dense output must have shape ({n_frames},), got {arr.shape}")
    elif kind in ("episode", "pairwise"):
        if arr.shape not in ((), (1,)):
            raise RewardModelError(f"{where}: {kind} output must be a scalar (shape () or (1,)), got shape {arr.shape}")
        arr = arr.reshape(())
        if kind == "pairwise":
            value_range = (0.0, 1.0)
    else:
        raise UnknownNameError("output kind", kind, OUTPUT_KINDS)
    bad = ~np.isfinite(arr)
    if bad.any():
        idx = np.flatnonzero(bad.reshape(-1))
        raise RewardModelError(
            f"{where}: output has {idx.size} non-finite value(s) (NaN/inf), first at index {int(idx[0])}"
        )
    if value_range is not None and arr.size:
        lo, hi = value_range
        tol = 1e-9 * (hi - lo)
        flat = arr.reshape(-1)
        out = (flat < lo - tol) | (flat > hi + tol)
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise RewardModelError(
                f"{where}: {int(out.sum())} value(s) outside the declared range [{lo}, {hi}], "
                f"e.g. {flat[i]!r} at index {i}"
            )
    return arr

