"""Self-describing checkpoints of the rewind reward model.

A model folder holds ``model.pt`` (``torch.save`` of plain data only: strings, numbers,
lists, dicts and tensors, so ``torch.load(weights_only=True)`` reads it), plus
``config.json`` and ``train_log.json`` for people. ``model.pt`` holds::

    {"format": "simfail-rewind", "version": 1,
     "net": NetConfig fields, "text": {"kind": "hashed", "dim", "ngrams"},
     "input": {"view", "frame_size": [h, w], "max_frames"},
     "train": the training settings and summary, "state_dict": {name: tensor}}

Every file is written to a temporary name in the same folder and renamed (atomic).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from simfail.errors import ConfigError

from . import require_torch

__all__ = ["FORMAT", "VERSION", "CHECKPOINT_NAME", "save_checkpoint", "load_checkpoint", "build_from_checkpoint",
           "atomic_write_bytes", "checkpoint_path"]

FORMAT = "simfail-rewind"
VERSION = 1
CHECKPOINT_NAME = "model.pt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def checkpoint_path(path: str | Path) -> Path:
    """``model.pt`` inside a model folder, or the file itself."""
    p = Path(str(path))
    return p / CHECKPOINT_NAME if p.is_dir() or p.suffix != ".pt" else p


def save_checkpoint(out_dir: str | Path, net: Any, meta: dict[str, Any], log: list[dict[str, Any]]) -> Path:
    """Write ``model.pt``, ``config.json`` and ``train_log.json`` to ``out_dir``; returns ``model.pt``."""
    import io

    torch = require_torch()
    out = Path(out_dir)
    payload = {"format": FORMAT, "version": VERSION, **meta,
               "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    path = out / CHECKPOINT_NAME
    atomic_write_bytes(path, buf.getvalue())
    atomic_write_bytes(out / "config.json", (json.dumps({"format": FORMAT, "version": VERSION, **meta}, indent=2) + "\n").encode())
    atomic_write_bytes(out / "train_log.json", (json.dumps(log, indent=1) + "\n").encode())
    return path


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (folder or ``model.pt``)."""
    torch = require_torch()
    if path in (None, ""):
        raise ConfigError("a rewind checkpoint is required: model.checkpoint=MODEL_DIR (written by simfail train-reward)")
    p = checkpoint_path(path)
    if not p.is_file():
        raise ConfigError(f"rewind checkpoint {p} does not exist (train one with simfail train-reward data=DIR out={Path(str(path))})")
    try:
        obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt or foreign files
        raise ConfigError(f"cannot read the rewind checkpoint {p}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise ConfigError(f"{p} is not a simfail rewind checkpoint (format {obj.get('format') if isinstance(obj, dict) else type(obj).__name__!r})")
    if obj.get("version") != VERSION:
        raise ConfigError(f"{p}: checkpoint version {obj.get('version')!r}, this simfail reads version {VERSION}")
    for key in ("net", "text", "input", "state_dict"):
        if key not in obj:
            raise ConfigError(f"{p}: checkpoint lacks {key!r}")
    return obj


def build_from_checkpoint(obj: dict[str, Any]):
    """``(net, text_embedder)`` from a loaded checkpoint."""
    from .model import NetConfig, RewindNet
    from .text import HashedText

    try:
        net = RewindNet(NetConfig(**obj["net"]))
        net.load_state_dict(obj["state_dict"])
    except (TypeError, RuntimeError) as exc:
        raise ConfigError(f"checkpoint does not match the rewind network: {str(exc).splitlines()[0]}") from exc
    net.eval()
    text = obj["text"]
    if text.get("kind") != "hashed":
        raise ConfigError(f"unknown text embedding kind {text.get('kind')!r} in the checkpoint")
    return net, HashedText(int(text["dim"]), int(text["ngrams"]))
