"""Typed settings of ``simfail evaluate`` and ``simfail compare`` (the schema behind
``configs/evaluate.yaml``, the help text and the checks; see :mod:`simfail.schema`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from simfail.errors import ConfigError

__all__ = ["EvaluateConfig", "ExamplesConfig", "CompareConfig"]


def _f(default: Any = None, help: str = "", example: str = "", factory: Any = None, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    return field(default_factory=factory, metadata=md) if factory is not None else field(default=default, metadata=md)


@dataclass
class ExamplesConfig:
    references: int = _f(1, "successful expert episodes of other groups, with their rewards", "examples.references=2",
                         range=(0, None))
    failures: int = _f(1, "failure episodes of other groups, with a description", "examples.failures=2", range=(0, None))
    frames: int = _f(8, "frames per example", "examples.frames=16", range=(2, None))


@dataclass
class EvaluateConfig:
    """``simfail evaluate``: score a reward model on a dataset and write a report folder."""

    model: str = _f("oracle", "a registered model (oracle, progress_only, gvl, rewind ...) or package.module:Class; "
                    "model.KEY=VALUE passes one constructor argument (VALUE read as YAML)", "model=progress_only")
    model_kwargs: Dict[str, Any] = _f(factory=dict, help="all constructor arguments at once, a JSON object "
                                      "(model.KEY entries are merged over it)",
                                      example="model_kwargs='{\"mode\": \"progress\"}'")
    data: Optional[str] = _f(None, "the simfail dataset folder", "data=DIR", required=True)
    out: Optional[str] = _f(None, "report folder (default DATA/reports/<model>[-<kwargs>])", "out=REPORT")
    returns: str = _f("sum", "episode return from a dense reward", "returns=last")
    bootstrap: int = _f(1000, "bootstrap replicates of the accuracy intervals (0: none)", "bootstrap=200",
                        range=(0, None))
    confidence: float = _f(0.95, "confidence of the intervals, in (0, 1)", "confidence=0.9", range=(0.0, 1.0))
    seed: int = _f(0, "seed of the bootstrap, the goal/example choice and the sample of curves", "seed=1",
                   range=(0, None))
    tie_tol: float = _f(0.0, "model returns closer than this count as a tie (a disagreement)", "tie_tol=0.01",
                        range=(0.0, None))
    timing_threshold: float = _f(0.1, "failure detected when the reward falls this share of its range",
                                 "timing_threshold=0.2", range=(0.0, 1.0))
    min_severity: float = _f(0.0, "failure events below this severity are ignored by the timing metric",
                             "min_severity=0.3", range=(0.0, 1.0))
    batch_size: int = _f(8, "episodes per predict_batch call / per cache flush", "batch_size=16", range=(1, None))
    groups: Any = _f(None, "only these groups: a list [0,3,7] or a range \"0:10\" (null: all)", "groups=[0,3,7]")
    max_groups: Optional[int] = _f(None, "score only the first N (selected) groups", "max_groups=5", range=(1, None))
    examples: ExamplesConfig = _f(factory=ExamplesConfig, help="in-context examples, for models that ask for them")
    cache: bool = _f(True, "reuse and extend <out>/cache/<model_key>.jsonl", "cache=false")
    retry_errors: bool = _f(False, "recompute cached errors (request errors of endpoints are always retried)",
                            "retry_errors=true")
    curves: int = _f(12, "episodes (whole groups) with a reward-curve plot in the report", "curves=3", range=(0, None))
    video: str = _f("reference", "videos in the report: dataset mp4 with #t=from,to, gif, or none", "video=gif")
    progress: bool = _f(True, "progress bar while scoring", "progress=false")

    def validate(self) -> None:
        if not self.model:
            raise ConfigError("model= is required (a registered name or package.module:Class)")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence!r}")
        from simfail.config import parse_groups
        from simfail.errors import UnknownNameError
        from simfail.stress import metrics as M
        from simfail.stress.report import VIDEO_MODES

        if self.returns not in M.RETURN_MODES:
            raise UnknownNameError("return mode", str(self.returns), M.RETURN_MODES)
        if self.video not in VIDEO_MODES:
            raise UnknownNameError("video mode", str(self.video), VIDEO_MODES)
        parse_groups(self.groups, "groups")

    def shown(self) -> dict[str, Any]:
        """The settings as ``--cfg`` prints them (credential-like model arguments masked)."""
        import dataclasses

        from simfail.stress.commands import public_kwargs

        d = dataclasses.asdict(self)
        d["model_kwargs"] = public_kwargs(d["model_kwargs"])
        return d


@dataclass
class CompareConfig:
    """``simfail compare REPORT1 REPORT2 ... [out=DIR]``."""

    reports: List[str] = _f(factory=list, help="evaluate report folders (or their metrics.json), two or more",
                            example="simfail compare REPORT1 REPORT2", positional=True, required=True)
    out: Optional[str] = _f(None, "folder of compare.txt/.json/.html/.png (default: compare/ next to the first report)",
                            "out=DIR")
