"""The viewer in a real browser: Debian's headless Chromium driven by Playwright.

Checked on a dataset written by ``simfail generate`` (2 pick_place groups, 64x64): selecting an
episode seeks each view into its segment of the concatenated v3 mp4 (currentTime within the
episode's from/to timestamps, the three views in sync, the decoded picture equal to the frame
the reader decodes), playback stops at the episode's end, the curves have one point per frame
with the event markers, the filters narrow the list, a group plays side by side, and the
evaluate report uses the same components.

Chromium absent: skipped outside CI, a failure in CI (``CI=true``), where .ci/run installs it.
``SIMFAIL_CHROMIUM=PATH`` runs them with another Chromium build.
"""

from __future__ import annotations

import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from simfail.dataset.reader import SimfailDataset
from simfail.viewer.export import export_site
from simfail.viewer.page import render_page
from simfail.viewer.server import make_server
from simfail.viewer.site import viewer_page

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _chromium() -> str | None:
    """The browser: $SIMFAIL_CHROMIUM when set (another Chromium build), else Debian's."""
    wanted = os.environ.get("SIMFAIL_CHROMIUM")
    cands = [wanted] if wanted else ["/usr/bin/chromium", shutil.which("chromium")]
    return next((c for c in cands if c and Path(c).is_file()), None)


@pytest.fixture(scope="module")
def browser():
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("chromium is not installed (CI must install it: apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def ds(viewer_dataset):
    return SimfailDataset(viewer_dataset)


@pytest.fixture(scope="module")
def served(ds):
    page, _ = viewer_page(ds)
    srv = make_server(ds.root, page, port=0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()
    srv.server_close()


@pytest.fixture
def page(browser):
    pg = browser.new_page(viewport={"width": 1300, "height": 900})
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    pg.close()
    assert not errors, f"JavaScript errors: {errors}"


def _state(pg):
    return pg.evaluate("simfailViewer.state()")


def _wait_ready(pg, presented=None):
    """All tracks have data for their current position (and, given ``presented``, a frame
    presented at that media time, reported by requestVideoFrameCallback)."""
    cond = "simfailViewer.state().tracks.every(t => t.readyState >= 2 && !t.error)"
    if presented is not None:
        cond = ("simfailViewer.state().tracks.every(t => t.readyState >= 2 && t.presented !== null"
                f" && Math.abs(t.presented - (t.from + {presented})) < 1e-3)")
    pg.wait_for_function(cond, timeout=15000)


def _canvas_frame(pg, i):
    """RGB pixels (H, W, 3) of track i's current picture, drawn into a canvas."""
    flat = pg.evaluate("""(i) => { const v = simfailViewer.player().tracks[i].video;
        const c = document.createElement('canvas'); c.width = v.videoWidth; c.height = v.videoHeight;
        const g = c.getContext('2d'); g.drawImage(v, 0, 0);
        return [c.width, c.height, Array.from(g.getImageData(0, 0, c.width, c.height).data)]; }""", i)
    w, h, data = flat
    return np.asarray(data, dtype=np.uint8).reshape(h, w, 4)[..., :3]


def test_selecting_an_episode_shows_its_segment(page, served, ds):
    page.goto(served)
    ep = 4  # group 1: the second file of each view, the second episode in it
    page.click(f'.ep[data-episode="{ep}"]')
    page.wait_for_selector(f'#episode[data-episode="{ep}"]')
    k = 30
    page.evaluate(f"simfailViewer.player().seekFrame({k})")
    _wait_ready(page, presented=k / ds.fps)
    st = _state(page)
    assert st["selection"] == {"kind": "episode", "id": ep} and st["frame"] == k
    assert [t["src"].split("/observation.images.")[1].split("#")[0] for t in st["tracks"]] == \
        [f"{v}/chunk-000/file-001.mp4" for v in ds.views]
    for view, t in zip(ds.views, st["tracks"]):
        _, t0, t1 = ds.video_file(ep, view)
        assert t0 > 0 and (t["from"], t["to"]) == pytest.approx((t0, t1))
        assert t0 <= t["currentTime"] < t1
        assert t["currentTime"] == pytest.approx(t0 + (k + 0.5) / ds.fps, abs=1e-3)
    # the picture on screen is frame k of this episode in every view (compared with the reader)
    for i, view in enumerate(ds.views):
        shown = _canvas_frame(page, i).astype(float)
        frames = ds.episode_frames(ep, view).astype(float)
        err = np.abs(shown - frames[k]).mean()
        assert err < 3, f"{view}: mean abs difference {err:.1f} to the reader's frame {k}"
        nearest = min(range(len(frames)), key=lambda j: np.abs(shown - frames[j]).mean())
        assert nearest == k, f"{view}: the picture shown is frame {nearest}, not {k}"


def test_playback_stays_in_sync_and_stops_at_the_episode_end(page, served, ds):
    page.goto(served + "#episode=1")
    page.wait_for_selector('#episode[data-episode="1"]')
    length = ds.episode(1)["length"]
    page.evaluate(f"simfailViewer.player().seekFrame({length - 8})")
    _wait_ready(page)
    page.evaluate("simfailViewer.player().play()")
    page.wait_for_function("simfailViewer.state().tracks.every(t => !t.paused)", timeout=10000)
    mid = _state(page)
    locals_ = [t["currentTime"] - t["from"] for t in mid["tracks"]]
    assert max(locals_) - min(locals_) <= 1.0 / ds.fps, f"views out of sync: {locals_}"
    page.wait_for_function("!simfailViewer.state().playing", timeout=15000)
    page.wait_for_timeout(300)  # nothing may run on past the end afterwards
    end = _state(page)
    assert end["frame"] == length - 1
    for t in end["tracks"]:
        assert t["paused"] and t["to"] - 1.0 / ds.fps <= t["currentTime"] < t["to"]
        assert t["presented"] == pytest.approx(t["to"] - 1.0 / ds.fps, abs=1e-3), "the last frame shown"
        assert t["presentedCount"] >= 5, "frames were decoded and presented while playing"
    assert page.text_content(".controls .clock").startswith(f"frame {length - 1} / {length - 1}")


def test_curves_have_one_point_per_frame_and_the_event_markers(page, served, ds):
    page.goto(served + "#episode=2")  # collision: two events (collision, topple)
    page.wait_for_selector('#episode[data-episode="2"]')
    length = ds.episode(2)["length"]
    events = ds.failures(2)
    assert len(events) >= 1
    for series in ("progress", "reward"):
        n = page.evaluate(f"document.querySelector('#episode svg.curves polyline[data-series={series}]').points.numberOfItems")
        assert n == length, series
    for kind, attr in (("onset", "onset_frame"), ("visible", "visible_frame"), ("irreversible", "irreversible_frame")):
        frames = page.evaluate(f"[...document.querySelectorAll('#episode svg.curves line.marker[data-kind={kind}]')]"
                               ".map(l => Number(l.dataset.frame))")
        assert frames == [getattr(e, attr) for e in events], kind
    texts = page.locator("#episode .events li .rationale").all_text_contents()
    assert texts == [e.rationale for e in events]
    # the cursor follows the clock: a seek by clicking the slider's value and by the keyboard
    page.evaluate("simfailViewer.player().seekFrame(33)")
    assert page.get_attribute("#episode svg.curves line.cursor", "data-frame") == "33"
    page.keyboard.press("ArrowRight")
    assert page.get_attribute("#episode svg.curves line.cursor", "data-frame") == "34"
    assert page.input_value(".controls .frame-slider") == "34"


def test_filters(page, served, ds):
    page.goto(served)
    shown = lambda: sorted(int(x) for x in page.eval_on_selector_all(".ep", "els => els.map(e => e.dataset.episode)"))  # noqa: E731
    rows = ds.episodes
    assert shown() == list(range(6))
    page.select_option("#f-event", "drop")
    assert shown() == [r["episode_index"] for r in rows if "drop" in {f.type for f in ds.failures(r["episode_index"])}]
    page.select_option("#f-event", "(none)")
    assert shown() == [r["episode_index"] for r in rows if not ds.failures(r["episode_index"])]
    page.select_option("#f-event", "")
    page.select_option("#f-success", "false")
    assert shown() == [r["episode_index"] for r in rows if not r["simfail.success"]]
    page.select_option("#f-success", "")
    page.fill("#f-score-min", "50")
    assert shown() == [r["episode_index"] for r in rows if r["simfail.score"] >= 50]
    page.fill("#f-score-max", "99")
    assert shown() == [r["episode_index"] for r in rows if 50 <= r["simfail.score"] <= 99]
    page.fill("#f-score-min", "")
    page.fill("#f-score-max", "")
    page.select_option("#f-variant", "collision")
    assert shown() == [r["episode_index"] for r in rows if r["simfail.variant"] == "collision"]
    assert page.eval_on_selector_all(".group", "els => els.length") == 2
    assert page.text_content("#count") == "2 of 6 episodes in 2 groups"
    page.select_option("#f-task", "pick_place")
    assert len(shown()) == 2
    assert page.locator("#f-policy").count() == 0  # no simfail.policy column in this dataset


def test_group_side_by_side(page, served, ds):
    page.goto(served)
    page.click('.group[data-group="1"] .compare-btn')
    page.wait_for_selector('#group-compare[data-group="1"]')
    cols = page.eval_on_selector_all("#group-compare .column", "els => els.map(e => Number(e.dataset.episode))")
    assert sorted(cols) == ds.groups()[1] and ds.episode(cols[0])["simfail.variant"] == "expert"
    assert page.eval_on_selector_all("#group-compare svg.curves", "els => els.length") == len(cols)
    page.evaluate("simfailViewer.player().seekFrame(50)")
    _wait_ready(page, presented=50 / ds.fps)
    st = _state(page)
    for ep, t in zip(cols, st["tracks"]):
        _, t0, t1 = ds.video_file(ep, "left")
        assert (t["from"], t["to"]) == pytest.approx((t0, t1))
        assert t["currentTime"] == pytest.approx(t0 + 5.05, abs=1e-3)
    page.select_option("#compare-view", "wrist")
    page.wait_for_selector("#group-compare video[src*='observation.images.wrist']")


def test_exported_folder_plays_from_disk(page, ds, tmp_path):
    out = tmp_path / "site"
    export_site(ds, out, groups=[1])
    page.goto((out / "index.html").as_uri() + "#episode=5")
    page.wait_for_selector('#episode[data-episode="5"]')
    page.evaluate("simfailViewer.player().seekFrame(10)")
    _wait_ready(page, presented=1.0)
    assert page.eval_on_selector_all(".ep", "els => els.length") == 3
    for t in _state(page)["tracks"]:
        assert t["src"].startswith(out.as_uri()) and t["videoWidth"] == 64


def test_evaluate_report_uses_the_viewer_components(page, ds, tmp_path):
    from simfail.cli import main

    out = tmp_path / "report"
    assert main(["evaluate", "model=oracle", f"data={ds.root}", f"out={out}", "curves=3", "bootstrap=0", "progress=false"]) == 0
    page.goto((out / "index.html").as_uri())
    page.wait_for_selector(".report-episode svg.curves")
    rows = page.locator(".report-episode")
    assert rows.count() == 3
    assert page.locator("header.topbar").count() == 1  # the viewer's page frame
    lengths = page.eval_on_selector_all(
        ".report-episode svg.curves", "els => els.map(s => [...s.querySelectorAll('polyline')].map(p => p.points.numberOfItems))")
    assert all(len(set(n)) == 1 and len(n) == 3 for n in lengths), lengths  # progress, truth, model
    page.wait_for_function("simfailReport.players.every(p => p.state().tracks[0].readyState >= 2)", timeout=15000)
    page.evaluate("simfailReport.players[1].seekFrame(20)")
    assert page.get_attribute(".report-episode:nth-child(3) line.cursor", "data-frame") == "20"
    assert page.locator(".report-episode a.png").count() == 3


def test_event_list_shows_per_view_visibility(page):
    """Events that carry per-view visibility (``visible_frames``, ``visible_in``) list it."""
    page.set_content(render_page("events", "<div id='slot'></div>"))
    text = page.evaluate("""() => SimfailUI.eventList([
        {type: "drop", category: "task", severity: 1, onset_frame: 40, visible_frame: 42, irreversible_frame: 41,
         visible_frames: {left: 42, right: null, wrist: 45}, visible_in: ["left", "wrist"], rationale: "r1"},
        {type: "slip", category: "quality", severity: 0.3, onset_frame: 10, visible_frame: 10, irreversible_frame: 12,
         visible_frames: {left: null, right: null, wrist: null}, visible_in: [], rationale: "r2"}]).innerText""")
    assert "per view: left 42, right never, wrist 45" in text and "r1" in text
    assert "no camera sees it" in text.split("slip")[1]


def test_policy_filter_when_the_dataset_names_policies(page, ds, tmp_path):
    """A dataset of policy rollouts (a ``simfail.policy`` episode column) gets a policy filter."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    root = tmp_path / "ds"
    shutil.copytree(ds.root, root)
    policies = {}
    for path in sorted((root / "meta/episodes").glob("chunk-*/file-*.parquet")):
        table = pq.read_table(path)
        names = [f"policy_{i % 2}" for i in table.column("episode_index").to_pylist()]
        policies.update(zip(table.column("episode_index").to_pylist(), names))
        pq.write_table(table.append_column("simfail.policy", pa.array(names)), path)
    export_site(SimfailDataset(root), tmp_path / "site")
    page.goto((tmp_path / "site" / "index.html").as_uri())
    page.select_option("#f-policy", "policy_1")
    shown = page.eval_on_selector_all(".ep", "els => els.map(e => Number(e.dataset.episode))")
    assert shown == sorted(e for e, p in policies.items() if p == "policy_1") and shown
    assert "(policy_1)" in page.text_content(f'.ep[data-episode="{shown[0]}"]')
