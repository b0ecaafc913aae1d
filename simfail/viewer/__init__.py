"""``simfail view``: a browser page for a simfail dataset, and the page frame every simfail HTML
page shares (the ``evaluate`` report included).

Modules, one job each:

* :mod:`.page` - the shared page frame: one HTML skeleton with the package's own CSS and JS
  inlined (no CDN, nothing fetched), an embedded JSON payload;
* :mod:`.data` - the dataset's metadata as the JSON the page reads (groups, episodes, events,
  per-frame progress/reward, where each view's segment lies in its concatenated v3 mp4);
* :mod:`.export` - ``out=HTML_DIR``: a standalone folder (page + the dataset's video files);
* :mod:`.server` - the served mode (``http.server`` with HTTP Range requests, so browsers seek);
* :mod:`.figure` - the counterfactual figure (frames of an expert and a failure variant with
  their reward curves), drawn with matplotlib;
* :mod:`.commands` - ``simfail view``'s typed configuration and ``run``.
"""

from __future__ import annotations

from .page import render_page

__all__ = ["render_page"]
