"""``simfail train-reward key=value ...``: train the rewind reward model on a simfail dataset.

Settings are composed with Hydra from ``configs/train_reward.yaml`` (every key and its
default is listed there); ``--cfg`` prints them and exits. Writes ``OUT/model.pt`` (atomic),
``OUT/config.json`` and ``OUT/train_log.json`` (loss per epoch) and prints a summary. Score
the model with ``simfail evaluate model=rewind model.checkpoint=OUT data=DIR``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from simfail.config import parse_groups
from simfail.errors import ConfigError, OutputDirError, UnknownNameError

__all__ = ["cmd_train_reward", "normalize_train_settings", "train_settings", "train_main", "run_train", "parse_groups"]


def normalize_train_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """Check and normalize the free-form settings (regime, group selections, frame size) of a
    composed ``train-reward`` configuration, in place; returns it."""
    from .data import EXPERT_TARGETS, REGIMES

    if cfg.get("regime") not in REGIMES:
        raise UnknownNameError("training regime", str(cfg.get("regime")), REGIMES)
    if cfg.get("expert_target") not in EXPERT_TARGETS:
        raise UnknownNameError("expert target", str(cfg.get("expert_target")), EXPERT_TARGETS)
    cfg["groups"] = parse_groups(cfg.get("groups"), "groups")
    cfg["holdout_groups"] = parse_groups(cfg.get("holdout_groups"), "holdout_groups") or []
    hf = cfg.get("holdout_failures") or []
    if isinstance(hf, str):
        hf = [x for x in hf.replace(",", " ").split() if x]
    if not isinstance(hf, list) or not all(isinstance(x, str) for x in hf):
        raise ConfigError(f"holdout_failures must be a list of variant names, got {cfg.get('holdout_failures')!r}")
    cfg["holdout_failures"] = hf
    fs = cfg.get("frame_size")
    if isinstance(fs, int) and not isinstance(fs, bool):
        fs = [fs, fs]
    if not (isinstance(fs, list) and len(fs) == 2 and all(isinstance(x, int) and not isinstance(x, bool) and x >= 8 for x in fs)):
        raise ConfigError(f"frame_size must be an integer >= 8 or [h, w], got {cfg.get('frame_size')!r}")
    cfg["frame_size"] = fs
    for key in ("data", "out"):
        if cfg.get(key) in (None, ""):
            raise ConfigError(f"{key}= is required (simfail train-reward data=DIR out=MODEL_DIR)")
    return cfg


def train_settings(args: list[str]) -> dict[str, Any]:
    """Composed and checked settings of ``simfail train-reward``, as a dict."""
    import dataclasses

    from simfail.commands import build_config

    return normalize_train_settings(dataclasses.asdict(build_config("train-reward", args)))


def run_train(cfg: dict[str, Any]) -> dict[str, Any]:
    """Train from composed settings; returns the summary (also stored in the checkpoint)."""
    from simfail.dataset.reader import SimfailDataset

    from . import require_torch
    from .checkpoint import CHECKPOINT_NAME, save_checkpoint
    from .data import load_pool, select_episodes
    from .model import NetConfig, RewindNet
    from .text import HashedText
    from .train import TrainConfig, train

    torch = require_torch()
    out = Path(str(cfg["out"]))
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"out={out} exists and is not a folder")
    if (out / CHECKPOINT_NAME).exists() and not cfg.get("overwrite"):
        raise OutputDirError(f"{out / CHECKPOINT_NAME} exists; pass overwrite=true to replace it")
    tcfg = TrainConfig(
        epochs=cfg["epochs"], batches_per_epoch=cfg["batches_per_epoch"], batch_size=cfg["batch_size"], lr=cfg["lr"],
        weight_decay=cfg["weight_decay"], clip_frames=cfg["clip_frames"], rewind_frac=cfg["rewind_frac"],
        seed=cfg["seed"], threads=cfg["threads"],
    )
    tcfg.check()
    text = HashedText(**cfg["text"])
    try:
        ncfg = NetConfig(text_dim=text.dim, **cfg["net"])
    except TypeError as exc:
        raise ConfigError(f"bad net settings {cfg['net']}: {exc}") from exc
    ds = SimfailDataset(cfg["data"])
    sel = select_episodes(ds, cfg["regime"], groups=cfg["groups"], holdout_groups=cfg["holdout_groups"],
                          holdout_failures=cfg["holdout_failures"])
    pool = load_pool(ds, sel, view=cfg["view"], frame_size=tuple(cfg["frame_size"]), text=text,
                     expert_target_mode=cfg["expert_target"])
    torch.manual_seed(tcfg.seed)
    net = RewindNet(ncfg)
    res = train(net, pool, tcfg, progress=bool(cfg.get("progress", True)))
    summary = {
        "regime": cfg["regime"],
        "data": str(Path(str(cfg["data"])).resolve()),
        "n_groups": len(sel.groups),
        "groups": sel.groups,
        "holdout_groups": cfg["holdout_groups"],
        "holdout_failures": cfg["holdout_failures"],
        "n_experts": len(sel.experts),
        "n_failures": len(sel.failures),
        "held_out_failure_episodes": sel.skipped_failures,
        "expert_target": cfg["expert_target"],
        "first_loss": res.log[0]["loss"],
        "final_loss": res.log[-1]["loss"],
    }
    meta = {
        "net": ncfg.to_dict(),
        "text": {"kind": "hashed", **text.config()},
        "input": {"view": cfg["view"], "frame_size": list(cfg["frame_size"]), "max_frames": tcfg.clip_frames},
        "train": {"settings": tcfg.to_dict(), "summary": summary},
    }
    path = save_checkpoint(out, net, meta, res.log)  # no timings inside: same seed, same bytes
    summary["train_seconds"] = round(res.seconds, 2)
    summary["checkpoint"] = str(path)
    return summary


def train_main(cfg: Any) -> int:
    """``run`` of ``simfail train-reward``: train, print a summary table."""
    import dataclasses

    from simfail.stress.report import format_table

    s = run_train(normalize_train_settings(dataclasses.asdict(cfg)))
    rows = [
        ["regime", s["regime"]],
        ["training groups", str(s["n_groups"])],
        ["expert episodes", str(s["n_experts"])],
        ["failure episodes", str(s["n_failures"])],
        ["held-out groups", str(len(s["holdout_groups"]))],
        ["held-out failure variants", ", ".join(f"{k} ({v} ep.)" for k, v in s["held_out_failure_episodes"].items())
         or ("- (no failure episode is trained on)" if s["regime"] == "expert_only" else ", ".join(s["holdout_failures"]) or "-")],
        ["loss first -> last epoch", f"{s['first_loss']:.5f} -> {s['final_loss']:.5f}"],
        ["training time", f"{s['train_seconds']:.1f} s"],
    ]
    print(format_table(["setting", "value"], rows))
    print(f"checkpoint: {s['checkpoint']}  (score it: simfail evaluate model=rewind model.checkpoint={Path(s['checkpoint']).parent} data=DIR)")
    return 0


def cmd_train_reward(args: list[str]) -> int:
    """``simfail train-reward key=value ...`` (raises SimfailError on bad input)."""
    from simfail.commands import invoke

    return invoke("train-reward", args)
