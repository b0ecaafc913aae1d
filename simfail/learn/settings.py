"""Typed settings of ``simfail train-reward`` (the schema behind ``configs/train_reward.yaml``)
and ``simfail paired`` (see :mod:`simfail.schema`)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, List, Optional

from simfail.errors import ConfigError

__all__ = ["TrainRewardConfig", "NetSettings", "TextSettings", "PairedConfig"]


def _f(default: Any = None, help: str = "", example: str = "", factory: Any = None, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    return field(default_factory=factory, metadata=md) if factory is not None else field(default=default, metadata=md)


@dataclass
class NetSettings:
    feat_dim: int = _f(64, "per-frame feature size", "net.feat_dim=32", range=(1, None))
    width: int = _f(16, "channels of the first convolution", "net.width=8", range=(1, None))
    hidden: int = _f(64, "hidden size of the head", "net.hidden=32", range=(1, None))
    temporal: bool = _f(True, "causal GRU over time (false: per-frame only)", "net.temporal=false")


@dataclass
class TextSettings:
    dim: int = _f(64, "hashed bag-of-n-grams instruction embedding size", "text.dim=32", range=(1, None))
    ngrams: int = _f(2, "longest word n-gram hashed", "text.ngrams=1", range=(1, None))


@dataclass
class TrainRewardConfig:
    """``simfail train-reward``: train the rewind reward model on a simfail dataset."""

    data: Optional[str] = _f(None, "simfail dataset folder", "data=DIR", required=True)
    out: Optional[str] = _f(None, "model folder: model.pt, config.json, train_log.json", "out=MODEL_DIR", required=True)
    regime: str = _f("expert_only", "expert_only (ReWiND: experts + rewound negatives) | with_failures (+ failure "
                     "variants with their dense reward)", "regime=with_failures")
    groups: Any = _f(None, "group ids to train on: null (all), a list [10,11] or a range \"10:40\" (end excluded)",
                     "groups=10:40")
    holdout_groups: Any = _f(factory=list, help="group ids never trained on (same forms as groups)",
                             example="holdout_groups=[0,1,2]")
    holdout_failures: Any = _f(factory=list, help="variant (perturbation) names left out of training",
                               example="holdout_failures=[drop,unstable_placement]")
    expert_target: str = _f("progress", "per-frame target of expert frames: progress | reward | time (t/(T-1))",
                            "expert_target=time")
    view: str = _f("left", "camera view the model reads", "view=wrist")
    frame_size: Any = _f(32, "frames are resized to frame_size x frame_size pixels (or [h, w])", "frame_size=48")
    clip_frames: int = _f(32, "frames per training clip; also the frames the model asks the harness for",
                          "clip_frames=16", range=(2, None))
    rewind_frac: float = _f(0.3, "share of training clips that are rewound expert clips", "rewind_frac=0.5",
                            range=(0.0, 1.0))
    epochs: int = _f(30, "training epochs", "epochs=40", range=(1, None))
    batches_per_epoch: int = _f(16, "batches per epoch (clips sampled with replacement)", "batches_per_epoch=8",
                                range=(1, None))
    batch_size: int = _f(16, "clips per batch", "batch_size=8", range=(1, None))
    lr: float = _f(0.001, "Adam learning rate", "lr=0.0003", range=(0.0, None))
    weight_decay: float = _f(0.0001, "weight decay", "weight_decay=0", range=(0.0, None))
    seed: int = _f(0, "seeds weights and clip sampling (same seed -> same weights on CPU)", "seed=1", range=(0, None))
    threads: int = _f(1, "torch CPU threads", "threads=2", range=(1, None))
    net: NetSettings = _f(factory=NetSettings, help="network size")
    text: TextSettings = _f(factory=TextSettings, help="instruction embedding")
    overwrite: bool = _f(False, "replace an existing model.pt in out", "overwrite=true")
    progress: bool = _f(True, "print the loss per epoch", "progress=false")

    def validate(self) -> None:
        from simfail.learn.commands import normalize_train_settings

        normalize_train_settings(dataclasses.asdict(self))


@dataclass
class PairedConfig:
    """``simfail paired REPORT_A REPORT_B``: paired bootstrap of the accuracy difference B - A."""

    reports: List[str] = _f(factory=list, help="two simfail evaluate report folders (or their metrics.json): A then B",
                            example="simfail paired REPORT_A REPORT_B", positional=True, required=True)
    n_boot: int = _f(10000, "bootstrap replicates", "n_boot=2000", range=(1, None))
    seed: int = _f(0, "seed of the bootstrap draws", "seed=1", range=(0, None))
    confidence: float = _f(0.95, "confidence of the percentile interval, in (0, 1)", "confidence=0.9", range=(0.0, 1.0))
    failure_type: Optional[str] = _f(None, "compare on one failure type's preference pairs only", "failure_type=drop")

    def validate(self) -> None:
        if len(self.reports) != 2:
            raise ConfigError(f"paired compares two reports (REPORT_A REPORT_B), got {len(self.reports)}")
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"confidence must be in (0, 1), got {self.confidence}")
