"""The one page frame of every simfail HTML page (``simfail view`` and ``simfail evaluate``'s
report): a header, the package's own CSS and JavaScript inlined (no CDN, nothing downloaded),
and an optional JSON payload embedded in a ``<script type="application/json">`` element that
the scripts read."""

from __future__ import annotations

import html
from importlib import resources
from typing import Any

from simfail.dataset import layout as L

__all__ = ["DATA_ELEMENT_ID", "SCRIPTS", "asset_text", "embed_json", "render_page"]

DATA_ELEMENT_ID = "simfail-data"
#: Script assets in load order: shared components first, then each page kind's entry point
#: (each entry point only acts on the elements of its own page).
SCRIPTS: tuple[str, ...] = ("components.js", "viewer.js", "report.js")


def asset_text(name: str) -> str:
    """Text of one file of ``simfail/viewer/assets``."""
    return resources.files("simfail.viewer").joinpath("assets", name).read_text(encoding="utf-8")


def embed_json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element (``<`` escaped, so ``</script>`` cannot occur)."""
    text = L.dumps_json(data, indent=None, sort_keys=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(title: str, body: str, *, data: Any = None, subtitle: str = "") -> str:
    """A complete standalone HTML document.

    Args:
        title: Shown in the header and the browser tab (escaped here).
        body: HTML of the page's content (trusted: built by simfail with escaped values).
        data: Embedded as JSON for the page's scripts; ``None`` embeds nothing.
        subtitle: A short line under the title (escaped here).
    """
    payload = "" if data is None else (
        f'<script type="application/json" id="{DATA_ELEMENT_ID}">{embed_json(data)}</script>\n'
    )
    scripts = "\n".join(asset_text(name) for name in SCRIPTS)
    sub = f'<span class="sub">{html.escape(subtitle)}</span>' if subtitle else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
{asset_text("simfail.css")}
</style></head>
<body>
<header class="topbar"><span class="brand">simfail</span><h1>{html.escape(title)}</h1>{sub}</header>
<main>
{body}
</main>
{payload}<script>
{scripts}
</script>
</body></html>
"""
