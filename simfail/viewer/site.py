"""The viewer page of a dataset: the payload of :mod:`.data` in the shared page frame."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from simfail.dataset.reader import SimfailDataset

from .data import dataset_payload
from .page import render_page

__all__ = ["viewer_page"]


def viewer_page(ds: SimfailDataset, groups: Iterable[int] | None = None) -> tuple[str, dict[str, Any]]:
    """``(HTML, payload)`` of the viewer for the chosen groups (all by default)."""
    payload = dataset_payload(ds, groups)
    n_groups, n_eps = len(payload["groups"]), len(payload["episodes"])
    subtitle = f"{n_eps} episodes in {n_groups} groups · {payload['fps']} fps · views {', '.join(payload['views'])}"
    body = '<div id="viewer-app"></div>\n<noscript>The viewer needs JavaScript.</noscript>'
    return render_page(f"dataset {Path(payload['root']).name}", body, data=payload, subtitle=subtitle), payload
