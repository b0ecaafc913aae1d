"""``simfail view DIR [key=value ...]``: browse a dataset in a web browser.

* ``simfail view DIR`` serves the viewer on http://127.0.0.1:8765/ until Ctrl-C
  (``port=N``, ``host=ADDR``; ``port=0`` picks a free port);
* ``simfail view DIR out=HTML_DIR`` writes a standalone folder instead (:mod:`.export`);
* ``simfail view DIR figure=PNG`` draws the counterfactual figure (:mod:`.figure`).

``out=`` and ``figure=`` may be combined; with either, nothing is served.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any

from simfail.config import parse_groups
from simfail.errors import ConfigError, UnknownNameError

from .export import VIDEO_MODES

__all__ = ["ViewConfig", "parse_view_args", "run"]


@dataclass
class ViewConfig:
    """Settings of ``simfail view`` (registered in :mod:`simfail.commands`)."""

    data: str | None = field(default=None, metadata={"help": "the dataset folder (also the first positional argument)",
                                            "example": "simfail view simfail_out/pick_place", "positional": True,
                                            "required": True})
    out: str | None = field(default=None, metadata={"help": "write a standalone viewer folder here instead of serving",
                                                    "example": "out=viewer_html"})
    videos: str = field(default="copy", metadata={"help": "how out= gets the mp4 files: copy (hard link when possible) or symlink",
                                                  "example": "videos=symlink", "choices": VIDEO_MODES})
    port: int = field(default=8765, metadata={"help": "TCP port to serve on (0: any free port)", "example": "port=8000",
                                              "range": (0, 65535)})
    host: str = field(default="127.0.0.1", metadata={"help": "address to serve on (localhost by default)",
                                                     "example": "host=0.0.0.0"})
    groups: Any = field(default=None, metadata={"help": "groups shown: a list of ids or a range a:b (end excluded); all by default",
                                                "example": "groups=0:10"})
    figure: str | None = field(default=None, metadata={"help": "draw the counterfactual figure into this PNG file",
                                                       "example": "figure=docs/images/counterfactual.png"})
    group: int | None = field(default=None, metadata={"help": "figure: the group drawn (default: the first with a failure variant)",
                                                      "example": "group=0", "range": (0, None)})
    variant: str | None = field(default=None, metadata={"help": "figure: the failure variant drawn (default: the group's lowest score)",
                                                        "example": "variant=drop"})
    view: str | None = field(default=None, metadata={"help": "figure: the camera view drawn (default: the first view)",
                                                     "example": "view=left"})
    frames: int = field(default=4, metadata={"help": "figure: frames per episode", "example": "frames=5",
                                             "range": (2, 12)})
    dpi: int = field(default=110, metadata={"help": "figure: resolution in dots per inch", "example": "dpi=150",
                                            "range": (50, 400)})

    def validate(self) -> None:
        """Raises ConfigError on a missing dataset or an out-of-range value (ranges and choices
        are also checked by the schema before this runs)."""
        if not self.data:
            raise ConfigError("usage: simfail view DIR [out=HTML_DIR] [port=N] [figure=PNG]")
        if self.videos not in VIDEO_MODES:
            raise UnknownNameError("videos mode", self.videos, VIDEO_MODES)
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if not 2 <= self.frames <= 12:
            raise ConfigError(f"frames must be between 2 and 12, got {self.frames}")
        if not 50 <= self.dpi <= 400:
            raise ConfigError(f"dpi must be between 50 and 400, got {self.dpi}")
        self.groups = parse_groups(self.groups, "groups")
        for name in ("out", "figure"):
            if getattr(self, name) == "":
                raise ConfigError(f"{name}= needs a path")


def parse_view_args(args: list[str]) -> ViewConfig:
    """``ViewConfig`` from ``DIR key=value ...`` through the command registry's schema (checked;
    one clear error on a typo)."""
    from simfail.commands import build_config

    return build_config("view", list(args))


def run(cfg: ViewConfig) -> int:
    """Serve, export or draw as ``cfg`` says; returns the exit code."""
    from simfail.dataset.reader import SimfailDataset

    ds = SimfailDataset(cfg.data)
    if cfg.out is None and cfg.figure is None:
        return _serve(ds, cfg)
    if cfg.out is not None:
        from .export import export_site

        res = export_site(ds, cfg.out, groups=cfg.groups, videos=cfg.videos)
        print(f"wrote {res['out']}/index.html ({res['episodes']} episodes, {res['videos']} video files, "
              f"videos={cfg.videos}); open it in a browser")
    if cfg.figure is not None:
        from .figure import write_figure

        path, choice = write_figure(ds, cfg.figure, group=cfg.group, variant=cfg.variant, view=cfg.view,
                                    frames=cfg.frames, dpi=cfg.dpi)
        print(f"wrote {path} (group {choice.group}: expert episode {choice.expert} vs episode {choice.variant})")
    return 0


def _serve(ds, cfg: ViewConfig) -> int:
    from .server import make_server
    from .site import viewer_page

    page, payload = viewer_page(ds, cfg.groups)
    server = make_server(ds.root, page, cfg.host, cfg.port)
    host, port = server.server_address[:2]
    print(f"serving {ds.root} ({len(payload['episodes'])} episodes) at http://{host}:{port}/  (Ctrl-C to stop)",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
