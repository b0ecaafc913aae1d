"""``simfail view DIR out=HTML_DIR``: the viewer as a standalone folder.

The folder holds ``index.html`` (the page, its CSS/JS and the dataset's metadata as embedded
JSON) and the dataset's video files at the same relative paths as in the dataset
(``videos/<key>/chunk-XXX/file-YYY.mp4``), so it opens from disk (``file://``) or any static web
server, with no network. How the videos get there (``videos=``):

* ``copy`` (default): each mp4 is hard-linked when HTML_DIR is on the dataset's filesystem (no
  extra space) and copied otherwise; the folder stands alone and may be moved or archived.
* ``symlink``: relative symbolic links to the dataset's files; nothing is duplicated, but the
  folder only works next to its dataset.

The folder is built beside HTML_DIR and moved into place at the end, so an interrupted export
leaves no partial folder; an earlier export at HTML_DIR (marked by ``.simfail-view``) is
replaced, any other non-empty HTML_DIR is refused.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simfail.dataset.reader import SimfailDataset
from simfail.errors import OutputDirError

from .site import viewer_page

__all__ = ["EXPORT_MARKER", "VIDEO_MODES", "export_site", "place_file"]

EXPORT_MARKER = ".simfail-view"
VIDEO_MODES: tuple[str, ...] = ("copy", "symlink")


def place_file(src: Path, dst: Path, mode: str) -> None:
    """Put ``src`` at ``dst``: a hard link or copy (``copy``) or a relative symlink (``symlink``)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if mode == "symlink":
        os.symlink(os.path.relpath(src.resolve(), dst.parent.resolve()), dst)
        return
    try:
        os.link(src, dst)
    except OSError as exc:
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copy2(src, dst)


def _check_target(out: Path, ds_root: Path) -> None:
    if out.exists() and not out.is_dir():
        raise OutputDirError(f"out={out} is a file; give a folder for the exported page")
    if out.is_dir() and any(out.iterdir()) and not (out / EXPORT_MARKER).is_file():
        raise OutputDirError(f"out={out} is not empty and holds no earlier simfail view export; "
                             "choose an empty or new folder")
    out_r, ds_r = out.resolve(), ds_root.resolve()
    if out_r == ds_r or ds_r in out_r.parents or out_r in ds_r.parents:
        raise OutputDirError(f"out={out} must be outside the dataset folder {ds_root} (and not contain it)")


def export_site(ds: SimfailDataset, out: str | Path, *, groups: Iterable[int] | None = None,
                videos: str = "copy") -> dict[str, Any]:
    """Write the standalone viewer folder; returns ``{"out", "episodes", "videos"}`` counts.

    Raises:
        OutputDirError: ``out`` is a file, a non-empty folder that is not an earlier export,
            inside the dataset, or cannot be written.
    """
    out = Path(out)
    _check_target(out, ds.root)
    page, payload = viewer_page(ds, groups)
    sources = sorted({v["src"] for e in payload["episodes"] for v in e["videos"].values()})
    parent = out.parent if str(out.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputDirError(f"cannot create {parent}: {exc.strerror or exc}") from exc
    tmp = parent / f".{out.name}.partial-{os.getpid()}"
    old = parent / f".{out.name}.old-{os.getpid()}"
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for rel in sources:
            src = ds.root / rel
            if not src.is_file():
                raise OutputDirError(f"video file {src} is missing from the dataset")
            place_file(src, tmp / rel, videos)
        (tmp / "index.html").write_text(page, encoding="utf-8")
        (tmp / EXPORT_MARKER).write_text(f"simfail view export of {Path(ds.root).resolve()}\n")
        if out.exists():
            out.rename(old)
        tmp.rename(out)
    except OSError as exc:
        raise OutputDirError(f"cannot write the viewer to {out}: {exc.strerror or exc}") from exc
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return {"out": str(out), "episodes": len(payload["episodes"]), "videos": len(sources)}
