"""``simfail view`` without a browser: the page's JSON, the export folder, the server's Range
requests, the command's settings and the counterfactual figure. (The page in a real browser:
tests/test_viewer_browser.py.)"""

from __future__ import annotations

import json
import os
import re
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest

from simfail.cli import main
from simfail.dataset.reader import SimfailDataset
from simfail.errors import ConfigError, OutputDirError, UnknownNameError
from simfail.viewer.commands import parse_view_args
from simfail.viewer.data import dataset_payload
from simfail.viewer.export import EXPORT_MARKER, export_site
from simfail.viewer.figure import choose_pair, key_frames, write_figure
from simfail.viewer.page import DATA_ELEMENT_ID, render_page
from simfail.viewer.server import make_server, parse_range


@pytest.fixture(scope="module")
def ds(viewer_dataset):
    return SimfailDataset(viewer_dataset)


def _embedded(page: str) -> dict:
    m = re.search(rf'<script type="application/json" id="{DATA_ELEMENT_ID}">(.*?)</script>', page, re.S)
    assert m, "no embedded JSON"
    return json.loads(m.group(1))


def test_payload_matches_the_dataset(ds):
    p = dataset_payload(ds)
    assert p["fps"] == ds.fps and p["views"] == ["left", "right", "wrist"]
    assert [g["episodes"] for g in p["groups"]] == list(ds.groups().values())
    assert len(p["episodes"]) == ds.num_episodes
    for e in p["episodes"]:
        row, cols = ds.episode(e["index"]), ds.episode_columns(e["index"])
        assert e["length"] == row["length"] == len(e["progress"]) == len(e["reward"]) == len(e["failure"])
        np.testing.assert_allclose(e["reward"], cols["reward"].reshape(-1), atol=1e-4)
        assert [ev["type"] for ev in e["events"]] == [f.type for f in ds.failures(e["index"])]
        for view in ds.views:
            path, t0, t1 = ds.video_file(e["index"], view)
            assert (ds.root / e["videos"][view]["src"]).samefile(path)
            assert (e["videos"][view]["from"], e["videos"][view]["to"]) == pytest.approx((t0, t1))
    # the second group lives in the second video file of each view, after the first group's episodes
    second = [e for e in p["episodes"] if e["group"] == 1][0]
    assert second["videos"]["left"]["src"].endswith("file-001.mp4")
    assert dataset_payload(ds, groups=[1])["groups"] == [p["groups"][1]]
    with pytest.raises(ConfigError, match="not in"):
        dataset_payload(ds, groups=[7])


def test_page_frame_is_self_contained_and_escapes_the_payload():
    page = render_page("a <b> title", "<p>body</p>", data={"text": "</script><script>alert(1)</script>"})
    assert "a &lt;b&gt; title" in page
    assert page.count("</script>") == 2  # the payload's own and the scripts' (the data cannot close it)
    assert _embedded(page) == {"text": "</script><script>alert(1)</script>"}
    assert not re.search(r'(src|href)="(https?:)?//', page), "the page must not load anything from the network"
    assert "var SimfailUI" in page and "viewer-app" in page and ".report-episode" in page


def test_export_folder(ds, tmp_path):
    out = tmp_path / "site"
    res = export_site(ds, out)
    assert res["episodes"] == 6 and res["videos"] == 6
    page = (out / "index.html").read_text()
    data = _embedded(page)
    assert len(data["episodes"]) == 6
    for e in data["episodes"]:
        for view, v in e["videos"].items():
            copied = out / v["src"]
            assert copied.is_file() and not copied.is_symlink()
            assert copied.read_bytes() == ds.video_file(e["index"], view)[0].read_bytes()
    assert not re.search(r'(src|href)="(https?:)?//', page)
    # an earlier export is replaced; a symlinked export points back into the dataset
    res = export_site(ds, out, groups=[0], videos="symlink")
    assert res["episodes"] == 3 and (out / EXPORT_MARKER).is_file()
    link = out / "videos/observation.images.left/chunk-000/file-000.mp4"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    assert link.resolve() == (ds.root / "videos/observation.images.left/chunk-000/file-000.mp4").resolve()
    assert not (out / "videos/observation.images.left/chunk-000/file-001.mp4").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no partial folder left behind"


def test_export_refuses_unusable_folders(ds, tmp_path):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="not empty"):
        export_site(ds, busy)
    assert (busy / "notes.txt").read_text() == "mine" and len(list(busy.iterdir())) == 1
    with pytest.raises(OutputDirError, match="outside the dataset"):
        export_site(ds, ds.root / "site")
    afile = tmp_path / "f.html"
    afile.write_text("x")
    with pytest.raises(OutputDirError, match="is a file"):
        export_site(ds, afile)


@pytest.fixture(scope="module")
def server(ds):
    srv = make_server(ds.root, "<html>page</html>", port=0)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()


def _get(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_server_answers_range_requests(ds, server):
    rel = "videos/observation.images.wrist/chunk-000/file-001.mp4"
    whole = (ds.root / rel).read_bytes()
    status, headers, body = _get(f"{server}/")
    assert status == 200 and body == b"<html>page</html>"
    status, headers, body = _get(f"{server}/{rel}")
    assert status == 200 and body == whole and headers["Accept-Ranges"] == "bytes"
    status, headers, body = _get(f"{server}/{rel}", {"Range": "bytes=100-199"})
    assert status == 206 and body == whole[100:200] and headers["Content-Range"] == f"bytes 100-199/{len(whole)}"
    status, _, body = _get(f"{server}/{rel}", {"Range": "bytes=-50"})
    assert status == 206 and body == whole[-50:]
    status, _, body = _get(f"{server}/{rel}", {"Range": f"bytes={len(whole) - 10}-"})
    assert status == 206 and body == whole[-10:]
    status, headers, _ = _get(f"{server}/{rel}", {"Range": f"bytes={len(whole)}-"})
    assert status == 416 and headers["Content-Range"] == f"bytes */{len(whole)}"
    for path in ("/meta/info.json", "/videos/../meta/info.json", "/videos/%2e%2e/meta/info.json", "/data/chunk-000/file-000.parquet"):
        assert _get(server + path)[0] == 404, path


def test_parse_range():
    assert parse_range(None, 10) is None and parse_range("items=1-2", 10) is None
    assert parse_range("bytes=2-", 10) == (2, 9) and parse_range("bytes=2-100", 10) == (2, 9)
    assert parse_range("bytes=-3", 10) == (7, 9)
    for bad in ("bytes=10-", "bytes=5-2", "bytes=-0"):
        with pytest.raises(ValueError):
            parse_range(bad, 10)


def test_port_in_use_is_one_clear_error(ds):
    srv = make_server(ds.root, "", port=0)
    try:
        with pytest.raises(ConfigError, match="in use"):
            make_server(ds.root, "", port=srv.server_address[1])
    finally:
        srv.server_close()


def test_view_settings(viewer_dataset, tmp_path, capsys):
    cfg = parse_view_args([str(viewer_dataset), "port=0", "groups=0:2", "videos=symlink", "group=null"])
    assert cfg.port == 0 and cfg.groups == [0, 1] and cfg.videos == "symlink" and cfg.group is None
    assert parse_view_args([str(viewer_dataset), "groups=1:3"]).groups == [1, 2]
    assert parse_view_args([str(viewer_dataset), "groups=[1, 4]"]).groups == [1, 4]
    assert parse_view_args([str(viewer_dataset), "groups=1"]).groups == [1]
    with pytest.raises(UnknownNameError, match="view setting 'prot'"):
        parse_view_args([str(viewer_dataset), "prot=1"])
    with pytest.raises(ConfigError, match="whole number"):
        parse_view_args([str(viewer_dataset), "port=abc"])
    with pytest.raises(ConfigError, match=r"port must be in \[0, 65535\], got 70000"):
        parse_view_args([str(viewer_dataset), "port=70000"])
    with pytest.raises(UnknownNameError, match="unknown videos value 'hardlink'"):
        parse_view_args([str(viewer_dataset), "videos=hardlink"])
    with pytest.raises(ConfigError, match="data= is required"):
        parse_view_args([])
    # through the command line: one error line, exit code 2, nothing written
    assert main(["view", str(tmp_path / "nowhere"), f"out={tmp_path / 'site'}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("simfail: error:") and "not a simfail dataset" in err
    assert not (tmp_path / "site").exists()
    assert main(["view", str(viewer_dataset), f"out={tmp_path / 'site'}"]) == 0
    assert (tmp_path / "site" / "index.html").is_file() and "wrote" in capsys.readouterr().out


def test_key_frames():
    ev = [{"onset_frame": 40, "visible_frame": 42, "irreversible_frame": 41}]
    assert key_frames(81, ev, 4) == [0, 42, 52, 80]
    assert key_frames(81, ev, 5) == [0, 40, 42, 52, 80]
    assert key_frames(81, ev, 2) == [42, 80]
    six = key_frames(81, ev, 6)
    assert len(set(six)) == 6 and {0, 40, 42, 52, 80} <= set(six)
    assert key_frames(81, [], 3) == [0, 40, 80]
    assert key_frames(3, ev, 6) == [0, 1, 2]


def test_figure(ds, tmp_path):
    choice = choose_pair(ds)
    rows = [ds.episode(e) for e in ds.groups()[choice.group]]
    failing = [r for r in rows if r["simfail.variant"] != "expert" and ds.failures(r["episode_index"])]
    assert ds.episode(choice.expert)["simfail.variant"] == "expert"
    assert ds.episode(choice.variant)["simfail.score"] == min(r["simfail.score"] for r in failing)
    drop = choose_pair(ds, group=1, variant="drop")
    assert (drop.group, ds.episode(drop.variant)["simfail.variant"]) == (1, "drop")
    with pytest.raises(UnknownNameError, match="variant"):
        choose_pair(ds, variant="flood")
    with pytest.raises(ConfigError, match="group 9"):
        choose_pair(ds, group=9)
    path, got = write_figure(ds, tmp_path / "fig" / "cf.png", group=1, variant="drop", view="wrist", frames=3, dpi=60)
    assert got == drop and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import imageio.v3 as iio

    img = iio.imread(path)
    assert img.shape[0] > 200 and img.shape[1] > 300 and img[..., :3].std() > 20  # drawn, not blank
    with pytest.raises(UnknownNameError, match="view"):
        write_figure(ds, tmp_path / "x.png", view="top")
    assert main(["view", str(ds.root), f"figure={tmp_path / 'cli.png'}", "frames=2", "dpi=50"]) == 0
    assert (tmp_path / "cli.png").is_file()


def test_serve_command_until_ctrl_c(viewer_dataset):
    """``simfail view DIR port=0`` prints its address, serves the page and the videos, and
    stops cleanly (exit code 0) on Ctrl-C (SIGINT)."""
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "simfail.cli", "view", str(viewer_dataset), "port=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert "(Ctrl-C to stop)" in line, line + proc.stderr.read()
        url = line.split(" at ")[1].split()[0]
        status, _, body = _get(url)
        assert status == 200 and b'id="viewer-app"' in body
        assert _get(url + "videos/observation.images.left/chunk-000/file-000.mp4", {"Range": "bytes=0-9"})[0] == 206
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
