"""Stress tests for embodied reward models on simfail episodes.

* :mod:`.protocol` - the plugin interface (:class:`RewardModel`, :class:`ModelRequirements`,
  :class:`EpisodeInput`), the model registry and output validation.
* :mod:`.preprocess` - frame subsampling, resizing and interpolation back to full length.
* :mod:`.metrics` - preference accuracy, VOC, Kendall tau, false positives, failure timing.
* :mod:`.harness` - runs a model over ``(EpisodeInput, ground_truth)`` pairs and scores it.
* :mod:`.gvl` - GVL over an OpenAI-compatible chat-completions endpoint.
* :mod:`.distill` - preference-guided self-distillation of dense negative examples.
* :mod:`.baselines` - ``oracle`` and ``progress_only`` reference models.
* :mod:`.dataset_adapter` - a simfail dataset as ``(EpisodeInput, ground_truth)`` pairs.
* :mod:`.runner` - scoring a dataset with a per-episode score cache; ``metrics.json``.
* :mod:`.report` - the report folder (charts, curves, ``index.html``) and comparisons.
* :mod:`.commands` - ``simfail evaluate`` and ``simfail compare``.
"""

from .baselines import OracleModel, ProgressOnlyModel
from .dataset_adapter import DatasetEpisodes
from .distill import DistillResult, self_distill
from .gvl import GVLParseError, GVLRequestError, GVLRewardModel, build_gvl_prompt, parse_gvl_answer
from .harness import EpisodeOutcome, RunResult, evaluate, predict_episode, run_model, stress_test
from .preprocess import interpolate_to_length, prepare_input, resize_frames, subsample_indices
from .runner import DatasetRun, ScoreCache, collect_metrics, score_dataset
from .protocol import (
    OUTPUT_KINDS,
    EpisodeInput,
    Example,
    ModelRequirements,
    RewardModel,
    available_models,
    load_model,
    register_model,
    validate_output,
)

__all__ = [
    "OUTPUT_KINDS",
    "DatasetEpisodes",
    "DatasetRun",
    "DistillResult",
    "EpisodeInput",
    "EpisodeOutcome",
    "Example",
    "GVLParseError",
    "GVLRequestError",
    "GVLRewardModel",
    "ModelRequirements",
    "OracleModel",
    "ProgressOnlyModel",
    "RewardModel",
    "RunResult",
    "ScoreCache",
    "available_models",
    "build_gvl_prompt",
    "collect_metrics",
    "evaluate",
    "interpolate_to_length",
    "load_model",
    "parse_gvl_answer",
    "predict_episode",
    "prepare_input",
    "register_model",
    "resize_frames",
    "run_model",
    "score_dataset",
    "self_distill",
    "stress_test",
    "subsample_indices",
    "validate_output",
]
