"""``simfail train-policy``: behaviour cloning of a simfail dataset's successful episodes.

``simfail train-policy data=DIR out=DIR [model=mlp|cnn] [demos=N] [steps=N] [seed=N] ...``
trains a :class:`~simfail.policy.bc_model.BCNet` to predict, from the observation at frame
``t``, the chunk of the next ``chunk`` actions of the demonstration (arm joint targets as
deltas from the current joint angles, gripper command as is), with an MSE loss on actions
normalised by the training data's statistics. Training is deterministic on the CPU: the same
data, settings and seed give the same ``policy.pt`` bytes (torch's deterministic algorithms are
on, a fixed thread count, and batch ``k`` is drawn from a generator seeded with ``(seed, k)``
alone, so a resumed run continues exactly where it stopped).

Writes to ``out`` (every file atomically, through :func:`simfail.learn.checkpoint.atomic_write_bytes`):

* ``policy.pt``: the policy checkpoint (:mod:`simfail.policy.bc`), written when training ends;
* ``train_state.pt``: weights, optimizer state and step every ``checkpoint_every`` steps while
  training runs (``resume=true`` continues from it; removed when ``policy.pt`` is written);
* ``config.json`` and ``train_log.json`` for people.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, List

import numpy as np

from simfail.errors import ConfigError, OutputDirError, UnknownNameError

__all__ = ["TrainPolicyConfig", "train_policy", "run", "POLICY_FILE", "STATE_FILE", "FORMAT", "VERSION"]

FORMAT = "simfail-bc"
STATE_FORMAT = "simfail-bc-train-state"
VERSION = 1
POLICY_FILE = "policy.pt"
STATE_FILE = "train_state.pt"
#: Settings that may differ between an interrupted run and its ``resume=true`` continuation.
_RUN_ONLY = ("out", "resume", "overwrite", "progress", "checkpoint_every")
#: What the network predicts for the arm: the TCP pose the demonstration's joint targets command
#: (``tcp``: position + quaternion, turned into joint targets by the same IK the expert uses), the
#: joint targets themselves (``absolute``) or their differences from the current angles (``delta``).
ACTION_MODES = ("tcp", "absolute", "delta")
#: Largest training length accepted (steps).
MAX_STEPS = 10_000_000


def _f(default: Any, help: str, example: str, **meta: Any) -> Any:
    md = {"help": help, "example": example, **meta}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda: list(default), metadata=md)
    return field(default=default, metadata=md)


@dataclass
class TrainPolicyConfig:
    """``simfail train-policy``: behaviour cloning on a simfail dataset's successful episodes
    (the typed schema behind ``key=value``; see :mod:`simfail.schema`)."""

    data: str = _f("", "simfail dataset folder to imitate (its successful episodes)", "data=simfail_out/pick_place",
                   required=True)
    out: str = _f("", "output folder: policy.pt, train_state.pt, config.json, train_log.json", "out=policies/bc_pick",
                  required=True)
    model: str = _f("mlp", "network: mlp (state, object poses) or cnn (camera images + robot state)", "model=cnn",
                    choices=("mlp", "cnn"))
    task: str = _f("", "task to imitate when the dataset holds several (default: its only task)", "task=stack")
    demos: int = _f(0, "number of successful episodes to train on, in dataset order (0: all)", "demos=50",
                    range=(0, 10**7))
    views: List[str] = _f(("left", "wrist"), "camera views the cnn reads (channels stacked)", "views=[left,wrist]")
    actions: str = _f("tcp", "arm output: tcp (commanded TCP pose, then IK), absolute (joint targets) or "
                      "delta (joint targets minus current angles)", "actions=absolute", choices=ACTION_MODES)
    chunk: int = _f(8, "actions predicted per observation (action chunk, frames)", "chunk=8", range=(1, 100))
    steps: int = _f(3000, "optimizer steps", "steps=3000", range=(1, MAX_STEPS))
    batch_size: int = _f(256, "samples (frames) per step", "batch_size=128", range=(1, 65536))
    lr: float = _f(1e-3, "peak learning rate of AdamW (cosine decay to 0)", "lr=0.0003", range=(1e-12, 1.0))
    weight_decay: float = _f(1e-4, "AdamW weight decay", "weight_decay=0.0", range=(0.0, 1.0))
    hidden: int = _f(256, "width of the hidden layers", "hidden=512", range=(1, 8192))
    layers: int = _f(3, "hidden layers of the action head", "layers=2", range=(1, 16))
    width: int = _f(32, "channels of the cnn's first convolution", "width=16", range=(1, 512))
    augment: int = _f(4, "cnn: random image shift of up to this many pixels during training [px] (0: off)",
                      "augment=0", range=(0, 31))
    seed: int = _f(0, "seeds the weights and the batches (same seed, same weights)", "seed=1", range=(0, 2**63 - 1))
    threads: int = _f(1, "torch CPU threads (the weights depend on it)", "threads=2", range=(1, 256))
    checkpoint_every: int = _f(500, "steps between train_state.pt saves (for resume=true)", "checkpoint_every=100",
                               range=(1, MAX_STEPS))
    resume: bool = _f(False, "continue an interrupted run in out from train_state.pt", "resume=true")
    overwrite: bool = _f(False, "replace a policy already in out", "overwrite=true")
    progress: bool = _f(True, "show a progress bar", "progress=false")

    def validate(self) -> None:
        """Every range and name (also when built directly, not through the command line)."""
        from .bc_model import MODEL_KINDS

        for key in ("data", "out"):
            if not getattr(self, key):
                raise ConfigError(f"{key}= is required (simfail train-policy data=DIR out=DIR)")
        if self.model not in MODEL_KINDS:
            raise UnknownNameError("policy model", self.model, MODEL_KINDS)
        for f in fields(self):
            rng = f.metadata.get("range")
            v = getattr(self, f.name)
            if rng is None or f.type in (float, "float"):
                continue
            lo, hi = rng
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise ConfigError(f"{f.name} must be an integer in [{lo}, {hi}], got {v!r}")
        for key in ("lr", "weight_decay"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{key} must be a number, got {v!r}")
            setattr(self, key, float(v))
        if not (math.isfinite(self.lr) and 0 < self.lr <= 1):
            raise ConfigError(f"lr must be a number in (0, 1], got {self.lr!r}")
        if not (math.isfinite(self.weight_decay) and 0 <= self.weight_decay <= 1):
            raise ConfigError(f"weight_decay must be a number in [0, 1], got {self.weight_decay!r}")
        if self.actions not in ACTION_MODES:
            raise UnknownNameError("action mode", self.actions, ACTION_MODES)
        if isinstance(self.views, str):
            self.views = [self.views]
        self.views = [str(v) for v in self.views]
        if self.model == "cnn" and not self.views:
            raise ConfigError("the cnn policy needs at least one view: views=[left,wrist]")
        if len(set(self.views)) != len(self.views):
            raise ConfigError(f"views repeats a view: {list(self.views)}")

    def shown(self) -> dict[str, Any]:
        return self.to_dict()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["views"] = list(self.views)
        return d


# ---------------------------------------------------------------------------- training set

@dataclass
class TrainingSet:
    """Flattened samples: one per demonstration frame."""

    low_dim: np.ndarray  # (N, D) float32, raw
    target: np.ndarray  # (N, chunk, 8) float32, raw (arm deltas, gripper)
    images: np.ndarray | None  # (N, 3V, H, W) uint8
    n_objects: int
    image_size: tuple[int, int] | None


def build_training_set(demo_set, kind: str, chunk: int, views: tuple[str, ...], actions: str = "absolute") -> TrainingSet:
    from .bc_data import observation_features

    lows, targets, images = [], [], []
    fps = demo_set.fps
    for d in demo_set.demos:
        T = len(d)
        idx = np.minimum(np.arange(T)[:, None] + np.arange(chunk)[None, :], T - 1)  # (T, chunk)
        act = d.action[idx]  # (T, chunk, 8)
        tgt = act.copy()
        if actions == "delta":
            tgt[..., :7] = act[..., :7] - d.state[:, None, :7]
        elif actions == "tcp":
            tgt[..., :7] = d.action_tcp[idx]
        targets.append(tgt.astype(np.float32))
        if kind == "mlp":
            lows.append(np.stack([observation_features(d.observation(t), t / fps) for t in range(T)]))
        else:
            times = (np.arange(T, dtype=np.float32) / fps)[:, None]
            lows.append(np.concatenate([d.state.astype(np.float32), times], axis=1))
            img = np.concatenate([d.frames[v] for v in views], axis=-1)  # (T, H, W, 3V)
            images.append(np.ascontiguousarray(img.transpose(0, 3, 1, 2)))
    return TrainingSet(
        low_dim=np.concatenate(lows).astype(np.float32),
        target=np.concatenate(targets).astype(np.float32),
        images=np.concatenate(images) if images else None,
        n_objects=demo_set.n_objects,
        image_size=demo_set.image_size,
    )


def normalisation(ts: TrainingSet) -> dict[str, np.ndarray]:
    """Mean and std (floored at 1e-3 for constant inputs) of inputs and targets."""
    def stats(a: np.ndarray, axis) -> tuple[np.ndarray, np.ndarray]:
        a64 = a.astype(np.float64)
        return a64.mean(axis=axis).astype(np.float32), np.maximum(a64.std(axis=axis), 1e-3).astype(np.float32)

    x_mean, x_std = stats(ts.low_dim, 0)
    y_mean, y_std = stats(ts.target, 0)
    return {"x_mean": x_mean, "x_std": x_std, "y_mean": y_mean, "y_std": y_std}


def gripper_levels(ts: TrainingSet) -> list[float] | None:
    """The demonstrations' gripper commands when they take at most two values (the scripted
    expert opens or closes: 0 or 1), else None. The policy snaps its gripper output to them: a
    regressed 0.95 would close the fingers with less force and drop the object."""
    levels = np.unique(ts.target[..., 7])
    return [float(v) for v in levels] if levels.size <= 2 else None


def shift_images(images: np.ndarray, pad: int, rng: np.random.Generator) -> np.ndarray:
    """Random translation by up to ``pad`` pixels (edge padding, then crop), per sample."""
    if pad <= 0:
        return images
    b, c, h, w = images.shape
    padded = np.pad(images, ((0, 0), (0, 0), (pad, pad), (pad, pad)), mode="edge")
    dy = rng.integers(0, 2 * pad + 1, b)
    dx = rng.integers(0, 2 * pad + 1, b)
    return np.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(b)])


# ---------------------------------------------------------------------------- files

def _save(path: Path, payload: dict[str, Any]) -> None:
    from simfail.learn import require_torch
    from simfail.learn.checkpoint import atomic_write_bytes

    torch = require_torch()
    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write_bytes(path, buf.getvalue())


def _settings_key(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in _RUN_ONLY}


def _check_out(cfg: TrainPolicyConfig) -> dict[str, Any] | None:
    """Check ``out`` before anything is read; returns the train state to resume from, if any."""
    out = Path(cfg.out)
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"out={out} exists and is not a folder")
    if out.exists():
        import os

        if not os.access(out, os.W_OK):
            raise OutputDirError(f"out={out} is not writable")
    policy, state = out / POLICY_FILE, out / STATE_FILE
    if cfg.overwrite:
        return None
    if cfg.resume:
        if state.is_file():
            obj = _load_state(state)
            if _settings_key(obj["settings"]) != _settings_key(cfg.to_dict()):
                diff = sorted(k for k in _settings_key(cfg.to_dict()) if obj["settings"].get(k) != cfg.to_dict()[k])
                raise ConfigError(f"resume=true but the settings differ from the interrupted run's in {diff}; "
                                  "pass the same settings (or overwrite=true)")
            return obj
        if policy.is_file():
            raise OutputDirError(f"{policy} is already trained; pass overwrite=true to train it again")
        return None
    if policy.is_file():
        raise OutputDirError(f"{policy} exists; pass overwrite=true to replace it")
    if state.is_file():
        raise OutputDirError(f"{state} holds an interrupted run; pass resume=true to continue it or overwrite=true")
    return None


def _load_state(path: Path) -> dict[str, Any]:
    from simfail.learn import require_torch

    torch = require_torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not isinstance(obj, dict) or obj.get("format") != STATE_FORMAT or obj.get("version") != VERSION:
        raise ConfigError(f"{path} is not a simfail bc training state (version {VERSION})")
    return obj


# ---------------------------------------------------------------------------- run

def train_policy(cfg: TrainPolicyConfig) -> dict[str, Any]:
    """Train (or resume) and write the checkpoint; returns the summary."""
    import time

    from simfail.learn import require_torch
    from simfail.learn.checkpoint import atomic_write_bytes

    from .bc_data import load_demos
    from .bc_model import BCNet, ModelConfig, low_dim_size

    torch = require_torch()
    cfg.validate()
    resume_from = _check_out(cfg)
    views = tuple(cfg.views) if cfg.model == "cnn" else ()
    demo_set = load_demos(cfg.data, task=cfg.task or None, demos=cfg.demos, views=views, progress=cfg.progress)
    ts = build_training_set(demo_set, cfg.model, cfg.chunk, views, cfg.actions)
    norm = normalisation(ts)
    x = (ts.low_dim - norm["x_mean"]) / norm["x_std"]
    y = (ts.target - norm["y_mean"]) / norm["y_std"]
    mcfg = ModelConfig(kind=cfg.model, in_dim=low_dim_size(cfg.model, ts.n_objects), chunk=cfg.chunk, hidden=cfg.hidden,
                       layers=cfg.layers, channels=3 * len(views) or 3, width=cfg.width)
    assert x.shape[1] == mcfg.in_dim, (x.shape, mcfg.in_dim)
    out = Path(cfg.out)

    prev_threads = torch.get_num_threads()
    prev_det = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(cfg.threads)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    try:
        torch.manual_seed(cfg.seed)
        net = BCNet(mcfg)
        opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        log: list[dict[str, Any]] = []
        start = 0
        window = 0.0  # loss summed since the last log row (every 100 steps)
        if resume_from is not None:
            net.load_state_dict(resume_from["state_dict"])
            opt.load_state_dict(resume_from["optimizer"])
            start = int(resume_from["step"])
            log = list(resume_from["log"])
            window = float(resume_from["window"])
        xt, yt = torch.from_numpy(x), torch.from_numpy(y)
        n = x.shape[0]
        bar = None
        if cfg.progress:
            from tqdm import tqdm

            bar = tqdm(total=cfg.steps, initial=start, desc=f"train-policy {cfg.model} ({demo_set.task})", unit="step")
        net.train()
        for step in range(start, cfg.steps):
            rng = np.random.default_rng([cfg.seed, step])
            idx = rng.integers(0, n, cfg.batch_size)
            imgs = None
            if ts.images is not None:
                imgs = torch.from_numpy(shift_images(ts.images[idx], cfg.augment, rng))
            lr = cfg.lr * 0.5 * (1.0 + math.cos(math.pi * step / cfg.steps))
            for g in opt.param_groups:
                g["lr"] = lr
            pred = net(xt[idx], imgs)
            loss = ((pred - yt[idx]) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            opt.step()
            window += float(loss.detach())
            done = step + 1
            if done % 100 == 0 or done == cfg.steps:
                k = done % 100 or 100
                log.append({"step": done, "loss": window / k, "lr": lr})
                window = 0.0
                if bar is not None:
                    bar.set_postfix(loss=f"{log[-1]['loss']:.4f}")
            if bar is not None:
                bar.update(1)
            if done % cfg.checkpoint_every == 0 and done < cfg.steps:
                _save(out / STATE_FILE, {
                    "format": STATE_FORMAT, "version": VERSION, "settings": cfg.to_dict(), "step": done,
                    "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
                    "optimizer": opt.state_dict(), "log": log, "window": window,
                })
        if bar is not None:
            bar.close()
        net.eval()
    finally:
        torch.use_deterministic_algorithms(prev_det)
        torch.set_num_threads(prev_threads)

    summary = {
        "task": demo_set.task,
        "model": cfg.model,
        "data": str(Path(cfg.data).resolve()),
        "demos": len(demo_set.demos),
        "demo_episodes": [d.episode for d in demo_set.demos],
        "failed_episodes_skipped": demo_set.skipped_failed,
        "frames": demo_set.n_frames,
        "first_loss": log[0]["loss"] if log else None,
        "final_loss": log[-1]["loss"] if log else None,
    }
    payload = {
        "format": FORMAT, "version": VERSION,
        "task": demo_set.task, "fps": demo_set.fps, "n_objects": ts.n_objects,
        "model": mcfg.to_dict(), "views": list(views), "actions": cfg.actions,
        "image_size": list(ts.image_size) if views else None,
        "norm": {k: torch.from_numpy(v) for k, v in norm.items()},
        "gripper_levels": gripper_levels(ts),
        "train": {"settings": _settings_key(cfg.to_dict()), "summary": summary},
        "state_dict": {k: v.detach().clone() for k, v in net.state_dict().items()},
    }
    _save(out / POLICY_FILE, payload)  # no timings inside: same seed, same bytes
    readable = {k: v for k, v in payload.items() if k not in ("state_dict", "norm")}
    atomic_write_bytes(out / "config.json", (json.dumps(readable, indent=2) + "\n").encode())
    atomic_write_bytes(out / "train_log.json", (json.dumps(log, indent=1) + "\n").encode())
    (out / STATE_FILE).unlink(missing_ok=True)
    summary["resumed_from_step"] = int(resume_from["step"]) if resume_from is not None else None
    summary["train_seconds"] = round(time.perf_counter() - t0, 2)
    summary["checkpoint"] = str(out / POLICY_FILE)
    return summary


def summary_table(s: dict[str, Any]) -> str:
    from simfail.stress.report import format_table

    rows = [
        ["task", s["task"]],
        ["model", s["model"]],
        ["demonstrations (successful episodes)", str(s["demos"])],
        ["failed episodes left out", str(s["failed_episodes_skipped"])],
        ["frames", str(s["frames"])],
        ["loss first -> last 100 steps", f"{s['first_loss']:.5f} -> {s['final_loss']:.5f}" if s["first_loss"] is not None else "-"],
        ["resumed from step", str(s["resumed_from_step"]) if s["resumed_from_step"] is not None else "-"],
        ["training time", f"{s['train_seconds']:.1f} s"],
    ]
    return format_table(["setting", "value"], rows) + f"\ncheckpoint: {s['checkpoint']}"


def run(cfg: TrainPolicyConfig) -> int:
    """The command's work: train, print the summary table; exit status 0."""
    print(summary_table(train_policy(cfg)))
    return 0
