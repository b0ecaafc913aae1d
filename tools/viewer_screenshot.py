"""Screenshot of ``simfail view`` for docs/images/viewer.png, taken with headless Chromium.

    python tools/viewer_screenshot.py DATASET_DIR docs/images/viewer.png [--episode N] [--frame K] [--group G]

Serves the dataset's viewer on a free localhost port, opens the episode (or, with ``--group``,
the group side by side), seeks to frame K, waits until every view has presented that frame,
and saves a full-page PNG. Needs Chromium (``/usr/bin/chromium`` or ``$SIMFAIL_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import os
import threading

from playwright.sync_api import sync_playwright

from simfail.dataset.reader import SimfailDataset
from simfail.viewer.server import make_server
from simfail.viewer.site import viewer_page

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("png")
    ap.add_argument("--episode", type=int, default=1)
    ap.add_argument("--group", type=int, default=None)
    ap.add_argument("--frame", type=int, default=50)
    ap.add_argument("--width", type=int, default=1400)
    args = ap.parse_args()
    ds = SimfailDataset(args.data)
    page_html, _ = viewer_page(ds)
    srv = make_server(ds.root, page_html, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    where = f"#group={args.group}" if args.group is not None else f"#episode={args.episode}"
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=os.environ.get("SIMFAIL_CHROMIUM", "/usr/bin/chromium"),
                                         args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(f"http://127.0.0.1:{srv.server_address[1]}/{where}")
            page.wait_for_function("window.simfailViewer && simfailViewer.player()")
            page.evaluate(f"simfailViewer.player().seekFrame({args.frame})")
            page.wait_for_function(
                "(k) => { const s = simfailViewer.state(); return s.tracks.every(t => t.readyState >= 2 && "
                "t.presented !== null && Math.abs(t.presented - t.from - k / s.fps) < 1e-3); }",
                arg=args.frame, timeout=20000)
            page.screenshot(path=args.png, full_page=True)
            browser.close()
    finally:
        srv.shutdown()
        srv.server_close()
    print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
