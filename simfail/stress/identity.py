"""What a score depends on, as hashes: the dataset's content and the model's weights.

The score cache (:mod:`simfail.stress.runner`) and benchmark results
(:mod:`simfail.benchmark.run`) name a dataset by :func:`dataset_content_hash` and a model by
:func:`model_identity`, never by a path: a dataset regenerated in place with other pixels, or a
checkpoint retrained in place, gets a new hash, so stale scores are never reused.

* Dataset: SHA-256 over every file under ``data/``, ``meta/`` and ``videos/`` (the parquet
  labels, the metadata and the mp4 pixels), in sorted relative-path order, each as
  ``path NUL size NUL bytes``. Other files in the folder (reports, caches, benchmark results
  written next to the data) are not part of it.
* Model: its spec, its keyword arguments, its declared ``identity()`` (python models without
  weight files: e.g. a seed) and, for every keyword argument that names an existing local file
  or folder (a checkpoint), the SHA-256 of that file's bytes or of every file in that folder
  (same rule as the dataset). A retrained checkpoint at the same path has other bytes, so
  another identity.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["CONTENT_DIRS", "dataset_content_hash", "files_hash", "model_identity", "weights_hashes"]

#: The folders of a simfail (LeRobot v3) dataset whose bytes make its content.
CONTENT_DIRS: tuple[str, ...] = ("data", "meta", "videos")

_CHUNK = 1 << 20
_MEMO: dict[tuple[str, tuple[tuple[str, int, int], ...]], str] = {}


def _listing(root: Path, subdirs: tuple[str, ...] | None) -> list[tuple[str, Path]]:
    if root.is_file():
        return [(root.name, root)]
    tops = [root / d for d in subdirs] if subdirs is not None else [root]
    out = []
    for top in tops:
        if not top.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for f in filenames:
                p = Path(dirpath) / f
                if p.is_file():
                    out.append((p.relative_to(root).as_posix(), p))
    return sorted(out)


def files_hash(root: str | Path, subdirs: tuple[str, ...] | None = None) -> str:
    """SHA-256 (hex) of a file's bytes, or of every file under a folder (only under
    ``subdirs`` when given) as ``relpath NUL size NUL bytes`` in sorted order. Memoised in
    the process by (path, size, mtime) of every file, so repeated calls are cheap."""

    root = Path(root)
    files = _listing(root, subdirs)
    stamp = tuple((rel, p.stat().st_size, p.stat().st_mtime_ns) for rel, p in files)
    key = (str(root.resolve()), stamp)
    if key in _MEMO:
        return _MEMO[key]
    h = hashlib.sha256()
    for (rel, p), (_, size, _) in zip(files, stamp):
        h.update(rel.encode() + b"\0" + str(size).encode() + b"\0")
        with open(p, "rb") as fh:
            while block := fh.read(_CHUNK):
                h.update(block)
    digest = h.hexdigest()
    _MEMO[key] = digest
    return digest


def dataset_content_hash(root: str | Path) -> str:
    """``sha256:<hex>`` of a dataset's ``data/``, ``meta/`` and ``videos/`` files (labels,
    metadata and pixels)."""
    return "sha256:" + files_hash(root, CONTENT_DIRS)


def _looks_like_path(value: Any) -> bool:
    return isinstance(value, (str, os.PathLike)) and str(value) not in ("", ".") and Path(str(value)).expanduser().exists()


def weights_hashes(kwargs: Mapping[str, Any]) -> dict[str, str]:
    """``{argument: "sha256:<hex>"}`` for every keyword argument naming an existing local file
    or folder (checkpoint weights)."""
    return {k: "sha256:" + files_hash(Path(str(v)).expanduser()) for k, v in sorted(kwargs.items()) if _looks_like_path(v)}


def model_identity(spec: str, model: Any, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The model's identity: ``spec``, ``name``, ``args`` (as given), ``declared`` (the model's
    ``identity()`` when it has one, else ``None``) and ``weights`` (:func:`weights_hashes`), and
    ``weights_hash``: one SHA-256 over the declared identity and the weight hashes (``None``
    when the model has neither: it is identified by its spec and arguments alone)."""

    declared = model.identity() if callable(getattr(model, "identity", None)) else None
    weights = weights_hashes(kwargs)
    combined = None
    if declared is not None or weights:
        import json

        blob = json.dumps({"declared": declared, "weights": weights}, sort_keys=True, default=repr)
        combined = "sha256:" + hashlib.sha256(blob.encode()).hexdigest()
    return {
        "spec": spec,
        "name": getattr(model, "name", spec),
        "args": dict(kwargs),
        "declared": declared,
        "weights": weights,
        "weights_hash": combined,
    }
