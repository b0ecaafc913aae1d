"""``simfail view DIR``: serve the viewer page and the dataset's video files on localhost.

``GET /`` (or ``/index.html``) returns the page (built once at start); ``GET /videos/...``
returns the dataset's mp4 files with HTTP Range support (``206 Partial Content``), which browsers
need to seek in an mp4. Nothing else of the dataset folder is served.
"""

from __future__ import annotations

import errno
import re
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

from simfail.errors import ConfigError

__all__ = ["make_server", "parse_range"]

_RANGE_RE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(first, last)`` byte positions (inclusive) of a single-range ``Range`` header.

    Returns None for no header (or a form this server does not handle: it then sends the whole
    file with 200); raises ValueError for an unsatisfiable range (answered with 416).
    """
    if not header:
        return None
    m = _RANGE_RE.match(header.strip())
    if not m or (not m.group(1) and not m.group(2)):
        return None
    if not m.group(1):  # suffix: the last N bytes
        n = int(m.group(2))
        if n == 0:
            raise ValueError("empty suffix range")
        return max(size - n, 0), size - 1
    first = int(m.group(1))
    last = int(m.group(2)) if m.group(2) else size - 1
    if first >= size or last < first:
        raise ValueError(f"range {header} outside a file of {size} bytes")
    return first, min(last, size - 1)


class _Handler(BaseHTTPRequestHandler):
    server_version = "simfail-view"
    page: bytes = b""
    root: Path = Path(".")
    quiet: bool = True

    def log_message(self, fmt: str, *args) -> None:  # noqa: D401 - http.server hook
        if not self.quiet:
            super().log_message(fmt, *args)

    def do_HEAD(self) -> None:
        self._respond(body=False)

    def do_GET(self) -> None:
        self._respond(body=True)

    def _respond(self, body: bool) -> None:
        path = unquote(urlsplit(self.path).path)
        if path in ("/", "/index.html"):
            self.send_response(HTTPStatus.OK)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(self.page)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if body:
                self.wfile.write(self.page)
            return
        file = self._video_file(path)
        if file is None:
            self.send_error(HTTPStatus.NOT_FOUND, "not a file of this viewer")
            return
        size = file.stat().st_size
        try:
            rng = parse_range(self.headers.get("Range"), size)
        except ValueError:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        first, last = rng if rng is not None else (0, size - 1)
        self.send_response(HTTPStatus.PARTIAL_CONTENT if rng is not None else HTTPStatus.OK)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(last - first + 1))
        if rng is not None:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if not body:
            return
        try:
            with file.open("rb") as f:
                f.seek(first)
                left = last - first + 1
                while left > 0:
                    chunk = f.read(min(_CHUNK, left))
                    if not chunk:
                        break
                    self.wfile.write(chunk)
                    left -= len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the browser cancelled the request (it does so when it seeks)

    def _video_file(self, path: str) -> Path | None:
        if not path.startswith("/videos/") or not path.endswith(".mp4"):
            return None
        base = (self.root / "videos").resolve()
        file = (self.root / path.lstrip("/")).resolve()
        if base not in file.parents or not file.is_file():
            return None
        return file


def make_server(root: str | Path, page: str, host: str = "127.0.0.1", port: int = 8765,
                quiet: bool = True) -> ThreadingHTTPServer:
    """An HTTP server (not yet serving) for ``page`` and ``root``'s ``videos/``; ``port=0``
    picks a free port (read it from ``server.server_address``).

    Raises:
        ConfigError: the address cannot be bound (port in use, bad host).
    """
    handler = type("ViewerHandler", (_Handler,), {"page": page.encode("utf-8"), "root": Path(root), "quiet": quiet})
    try:
        server = ThreadingHTTPServer((host, int(port)), handler)
    except OSError as exc:
        why = "is in use (pick another with port=N, or port=0 for any free one)" if exc.errno == errno.EADDRINUSE \
            else f"cannot be used: {exc.strerror or exc}"
        raise ConfigError(f"address {host}:{port} {why}") from exc
    server.daemon_threads = True
    return server


