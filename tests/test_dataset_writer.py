"""Tests of simfail.dataset.writer.DatasetWriter (layout, round trip, atomicity, modes)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simfail.core.episode import VIEWS, strict_preferences
from simfail.dataset import writer as writer_mod
from simfail.dataset.reader import SimfailDataset
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_episode, synthetic_group
from simfail.dataset.writer import DatasetWriter
from simfail.errors import OutputDirError

EXTRA = {"versions": {"simfail": "0.1.0"}, "config": {"task": "pick_place"}, "seeds": [5, 2]}


def make_writer(root: Path, mode: str = "new", **kw) -> DatasetWriter:
    opts = dict(fps=10, image_size=(64, 64), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    opts.update(kw)
    return DatasetWriter(root, mode=mode, **opts)


def make_groups():
    return [
        synthetic_group(5),
        synthetic_group(2, scores=(100.0, 100.0, 20.0), lengths=(12, 9, 15), instruction="stack the blocks"),
    ]


def write_all(root: Path, groups=None, **kw) -> DatasetWriter:
    w = make_writer(root, **kw)
    for g in groups or make_groups():
        w.write_group(g[0].group_id, g)
    w.finalize(EXTRA)
    return w


def file_bytes(root: Path, patterns=("*.parquet", "*.json")) -> dict[str, bytes]:
    out = {}
    for pattern in patterns:
        for path in root.rglob(pattern):
            out[path.relative_to(root).as_posix()] = path.read_bytes()
    return out


def all_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    root = tmp_path_factory.mktemp("ds") / "dataset"
    groups = make_groups()
    write_all(root, groups)
    return root, groups


# ----------------------------------------------------------------------------- layout


def test_layout_and_info(written):
    root, _ = written
    assert all_files(root) == sorted(
        [".simfail"]
        + [f"data/chunk-000/file-00{i}.parquet" for i in range(2)]
        + [f"meta/episodes/chunk-000/file-00{i}.parquet" for i in range(2)]
        + [f"videos/observation.images.{v}/chunk-000/file-00{i}.mp4" for v in VIEWS for i in range(2)]
        + [f"meta/{n}" for n in ("info.json", "stats.json", "tasks.parquet", "preferences.parquet", "simfail.json")]
    )
    assert not (root / ".staging").exists()
    info = json.loads((root / "meta/info.json").read_text())
    for key in ("codebase_version", "robot_type", "fps", "features", "total_episodes", "total_frames",
                "total_tasks", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb", "splits",
                "data_path", "video_path"):
        assert key in info
    assert info["codebase_version"] == "v3.0"
    assert info["robot_type"] == "franka_panda"
    assert info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (6, 72, 2)
    assert info["splits"] == {"train": "0:6"}
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    feats = info["features"]
    assert feats["observation.state"] == {"dtype": "float32", "shape": [9], "names": STATE_NAMES}
    assert feats["action"]["names"] == ACTION_NAMES and feats["action"]["shape"] == [8]
    assert feats["sim.qpos"]["shape"] == [20] and feats["sim.qvel"]["shape"] == [18]
    for view in VIEWS:
        f = feats[f"observation.images.{view}"]
        assert f["dtype"] == "video" and f["shape"] == [64, 64, 3]
        assert f["names"] == ["height", "width", "channels"]
        vi = f["info"]
        assert (vi["video.fps"], vi["video.codec"], vi["video.pix_fmt"]) == (10, "h264", "yuv420p")
        assert vi["video.is_depth_map"] is False and vi["has_audio"] is False
    for name in ("timestamp", "frame_index", "episode_index", "index", "task_index", "next.done"):
        assert name in feats
    meta = json.loads((root / "meta/simfail.json").read_text())
    assert meta["versions"] == EXTRA["versions"] and meta["seeds"] == [5, 2]
    assert (meta["total_groups"], meta["total_episodes"], meta["total_frames"]) == (2, 6, 72)


def test_data_parquet_schema(written):
    root, _ = written
    path = root / "data/chunk-000/file-000.parquet"
    schema = pq.read_schema(path)
    assert schema.field("observation.state").type == pa.list_(pa.float32(), 9)
    assert schema.field("action").type == pa.list_(pa.float32(), 8)
    assert schema.field("sim.qpos").type == pa.list_(pa.float64(), 20)
    assert schema.field("sim.qvel").type == pa.list_(pa.float64(), 18)
    for name, t in [("progress", pa.float32()), ("reward", pa.float32()), ("failure", pa.bool_()),
                    ("timestamp", pa.float32()), ("frame_index", pa.int64()), ("episode_index", pa.int64()),
                    ("index", pa.int64()), ("task_index", pa.int64()), ("next.done", pa.bool_())]:
        assert schema.field(name).type == t, name
    hf = json.loads(schema.metadata[b"huggingface"])
    assert hf["info"]["features"]["action"] == {"feature": {"dtype": "float32", "_type": "Value"}, "length": 8,
                                                "_type": "Sequence"}
    assert hf["info"]["features"]["reward"] == {"dtype": "float32", "_type": "Value"}
    md = pq.read_metadata(path)
    assert md.row_group(0).column(0).compression in ("ZSTD", "SNAPPY")


def test_episodes_parquet(written):
    root, groups = written
    t0 = pq.read_table(root / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    t1 = pq.read_table(root / "meta/episodes/chunk-000/file-001.parquet").to_pylist()
    rows = t0 + t1
    assert [r["episode_index"] for r in rows] == list(range(6))
    assert [r["simfail.group_id"] for r in rows] == [5, 5, 5, 2, 2, 2]
    assert [r["length"] for r in rows] == [12, 12, 12, 12, 9, 15]
    assert [r["dataset_from_index"] for r in rows] == [0, 12, 24, 36, 48, 57]
    assert [r["dataset_to_index"] for r in rows] == [12, 24, 36, 48, 57, 72]
    assert [r["data/file_index"] for r in rows] == [0, 0, 0, 1, 1, 1]
    assert [r["meta/episodes/file_index"] for r in rows] == [0, 0, 0, 1, 1, 1]
    key = "videos/observation.images.left"
    assert [r[f"{key}/from_timestamp"] for r in rows] == pytest.approx([0, 1.2, 2.4, 0, 1.2, 2.1])
    assert [r[f"{key}/to_timestamp"] for r in rows] == pytest.approx([1.2, 2.4, 3.6, 1.2, 2.1, 3.6])
    recs = groups[0] + groups[1]
    for r, rec in zip(rows, recs):
        assert r["tasks"] == [rec.instruction]
        assert r["simfail.variant"] == rec.variant and r["simfail.score"] == rec.score
        assert r["simfail.rank"] == rec.rank and r["simfail.success"] == rec.success
        assert r["simfail.seed"] == rec.seed and r["simfail.task"] == rec.task
        assert json.loads(r["simfail.perturbation"]) == rec.perturbation
        assert len(json.loads(r["simfail.failures"])) == len(rec.failures)
        # per-episode stats
        a = rec.columns["action"].astype(np.float64)
        np.testing.assert_allclose(r["stats/action/mean"], a.mean(0))
        np.testing.assert_allclose(r["stats/action/std"], a.std(0))
        np.testing.assert_allclose(r["stats/action/q50"], np.quantile(a, 0.5, axis=0))
        assert r["stats/action/count"] == [rec.length]
        assert len(r["stats/progress/mean"]) == 1 and len(r["stats/sim.qpos/max"]) == 20
        img = np.asarray(r["stats/observation.images.wrist/mean"])
        assert img.shape == (3, 1, 1) and ((0 <= img) & (img <= 1)).all()
        frames = rec.frames["wrist"].astype(np.float64) / 255
        np.testing.assert_allclose(img.ravel(), frames.mean(axis=(0, 1, 2)), atol=1e-9)
        np.testing.assert_allclose(
            np.asarray(r["stats/observation.images.wrist/q90"]).ravel(),
            np.quantile(frames.reshape(-1, 3), 0.9, axis=0), atol=1e-9,
        )


def test_stats_json_aggregates(written):
    root, groups = written
    stats = json.loads((root / "meta/stats.json").read_text())
    recs = groups[0] + groups[1]
    state = np.concatenate([r.columns["observation.state"] for r in recs]).astype(np.float64)
    s = stats["observation.state"]
    np.testing.assert_allclose(s["mean"], state.mean(0), atol=1e-9)
    np.testing.assert_allclose(s["std"], state.std(0), atol=1e-9)
    np.testing.assert_allclose(s["min"], state.min(0))
    np.testing.assert_allclose(s["max"], state.max(0))
    assert s["count"] == [72]
    assert stats["index"]["min"] == [0] and stats["index"]["max"] == [71]
    img = np.asarray(stats["observation.images.left"]["mean"])
    assert img.shape == (3, 1, 1)
    for key in ("q01", "q10", "q50", "q90", "q99"):
        assert key in s


def test_tasks_parquet_readable_by_pandas(written):
    pd = pytest.importorskip("pandas")
    root, _ = written
    df = pd.read_parquet(root / "meta/tasks.parquet")
    assert list(df.index) == ["put the red cube in the bowl", "stack the blocks"]
    assert list(df.columns) == ["task_index"]
    assert df.loc["stack the blocks", "task_index"] == 1


def test_preferences_match_hand_computed_pairs(written):
    root, _ = written
    prefs = pq.read_table(root / "meta/preferences.parquet").to_pylist()
    rows = [(p["group_id"], p["episode_a"], p["episode_b"], p["preferred"], p["score_a"], p["score_b"]) for p in prefs]
    assert rows == [
        # group 5: scores 100, 40, 75
        (5, 0, 1, 0, 100.0, 40.0),
        (5, 0, 2, 0, 100.0, 75.0),
        (5, 1, 2, 2, 40.0, 75.0),
        # group 2: scores 100, 100, 20 (the tie gives no pair)
        (2, 3, 5, 3, 100.0, 20.0),
        (2, 4, 5, 4, 100.0, 20.0),
    ]
    assert [tuple(vars(p).values()) for p in strict_preferences(2, [3, 4, 5], [100.0, 100.0, 20.0])] == rows[3:]


# ----------------------------------------------------------------------------- round trip


def test_round_trip(written):
    root, groups = written
    ds = SimfailDataset(root)
    assert ds.check() == []
    assert ds.groups() == {5: [0, 1, 2], 2: [3, 4, 5]}
    recs = groups[0] + groups[1]
    start = 0
    for ep, rec in enumerate(recs):
        cols = ds.episode_columns(ep)
        n = rec.length
        for name in ("observation.state", "action", "progress", "reward", "failure", "sim.qpos", "sim.qvel"):
            np.testing.assert_array_equal(cols[name], rec.columns[name], err_msg=name)
        np.testing.assert_array_equal(cols["frame_index"], np.arange(n))
        np.testing.assert_array_equal(cols["index"], np.arange(start, start + n))
        np.testing.assert_allclose(cols["timestamp"], np.arange(n) / 10, atol=1e-6)
        assert cols["timestamp"].dtype == np.float32
        assert (cols["episode_index"] == ep).all()
        assert cols["next.done"].tolist() == [False] * (n - 1) + [True]
        assert (cols["task_index"] == ds.tasks[rec.instruction]).all()
        for view in VIEWS:
            frames = ds.episode_frames(ep, view)
            assert frames.shape == rec.frames[view].shape
            assert np.abs(frames.astype(int) - rec.frames[view]).mean() < 4.0
        assert ds.failures(ep) == rec.failures
        start += n


def test_finalize_is_idempotent(written, tmp_path):
    root, _ = written
    before = file_bytes(root)
    w = make_writer(root, mode="resume")
    w.finalize(EXTRA)
    w.finalize(EXTRA)
    assert file_bytes(root) == before


def test_determinism(tmp_path):
    write_all(tmp_path / "a")
    write_all(tmp_path / "b")
    a, b = file_bytes(tmp_path / "a", ("*.parquet", "*.json", "*.mp4")), file_bytes(tmp_path / "b", ("*.parquet", "*.json", "*.mp4"))
    assert a.keys() == b.keys() and len(a) == 15
    for key in a:
        assert a[key] == b[key], key


def test_chunking(tmp_path):
    root = tmp_path / "ds"
    w = write_all(root, chunks_size=1)
    assert w.completed_groups() == [5, 2]
    assert (root / "data/chunk-001/file-000.parquet").is_file()
    assert (root / "videos/observation.images.wrist/chunk-001/file-000.mp4").is_file()
    assert (root / "meta/episodes/chunk-001/file-000.parquet").is_file()
    assert SimfailDataset(root).check() == []


# ----------------------------------------------------------------------------- resume / atomicity


def test_resume_continues_indices_and_tasks(tmp_path, reference_bytes):
    groups = make_groups()
    root = tmp_path / "ds"
    w = make_writer(root)
    w.write_group(5, groups[0])
    w.finalize(EXTRA)
    w2 = make_writer(root, mode="resume")
    assert w2.completed_groups() == [5]
    assert w2.write_group(2, groups[1]) == [3, 4, 5]
    w2.finalize(EXTRA)
    assert file_bytes(root) == reference_bytes


class _Crash(Exception):
    pass


def _crash_on_replace(monkeypatch, after: int):
    """Make the ``after``+1-th os.replace call raise (the first ``after`` calls go through)."""
    real = os.replace
    calls = {"n": 0}

    def fake(src, dst, *a, **k):
        calls["n"] += 1
        if calls["n"] > after:
            raise _Crash(f"simulated crash before moving {dst}")
        return real(src, dst, *a, **k)

    monkeypatch.setattr(os, "replace", fake)
    return calls


@pytest.fixture(scope="module")
def reference_bytes(written):
    return file_bytes(written[0])


@pytest.mark.parametrize("hard", [False, True], ids=["cleanup", "hard-crash"])
@pytest.mark.parametrize("after", [0, 2, 4])
def test_crash_midway_then_resume(tmp_path, monkeypatch, reference_bytes, hard, after):
    groups = make_groups()

    root = tmp_path / "ds"
    w = make_writer(root)
    w.write_group(5, groups[0])
    w.finalize(EXTRA)
    committed = all_files(root)
    if hard:  # a killed process cleans nothing up
        monkeypatch.setattr(DatasetWriter, "_discard", lambda self, paths: None)
        monkeypatch.setattr(writer_mod.shutil, "rmtree", lambda *a, **k: None)
    _crash_on_replace(monkeypatch, after)
    with pytest.raises(_Crash):
        w.write_group(2, groups[1])
    monkeypatch.undo()
    if hard:
        assert len(all_files(root)) > len(committed)  # orphans/staging are there
    assert w.completed_groups() == [5]

    w2 = make_writer(root, mode="resume")
    assert w2.completed_groups() == [5]
    assert all_files(root) == committed  # the partial group is gone
    assert w2.write_group(2, groups[1]) == [3, 4, 5]
    w2.finalize(EXTRA)
    assert file_bytes(root) == reference_bytes
    assert SimfailDataset(root).check(videos=after == 4) == []


def test_resume_removes_staging_leftovers(tmp_path):
    root = tmp_path / "ds"
    write_all(root, make_groups()[:1])
    (root / ".staging/group-000001").mkdir(parents=True)
    (root / ".staging/group-000001/data.parquet").write_bytes(b"junk")
    (root / "data/chunk-000/file-001.parquet").write_bytes(b"orphan")
    w = make_writer(root, mode="resume")
    assert not (root / ".staging").exists()
    assert not (root / "data/chunk-000/file-001.parquet").exists()
    assert w.completed_groups() == [5]


def test_resume_with_other_settings_refused(tmp_path):
    root = tmp_path / "ds"
    write_all(root, make_groups()[:1])
    with pytest.raises(OutputDirError, match="fps"):
        make_writer(root, mode="resume", fps=20)


def test_resume_on_missing_dir_starts_fresh(tmp_path):
    w = make_writer(tmp_path / "nothing-yet", mode="resume")
    assert w.completed_groups() == []


def test_same_group_twice_refused(tmp_path):
    root = tmp_path / "ds"
    w = write_all(root, make_groups()[:1])
    with pytest.raises(ValueError, match="already"):
        w.write_group(5, make_groups()[0])


# ----------------------------------------------------------------------------- modes / errors


def test_new_mode_on_non_empty_dir(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    (root / "something.txt").write_text("keep me")
    with pytest.raises(OutputDirError, match="resume=true.*overwrite=true"):
        make_writer(root)
    assert all_files(root) == ["something.txt"]


def test_new_mode_on_empty_dir_is_fine(tmp_path):
    root = tmp_path / "ds"
    root.mkdir()
    make_writer(root)
    assert (root / ".simfail").is_file()


def test_overwrite(tmp_path):
    root = tmp_path / "ds"
    write_all(root)
    w = write_all(root, make_groups()[1:], mode="overwrite")
    assert w.completed_groups() == [2]
    assert SimfailDataset(root).num_episodes == 3

    other = tmp_path / "unrelated"
    other.mkdir()
    (other / "thesis.tex").write_text("precious")
    with pytest.raises(OutputDirError, match="refusing"):
        make_writer(other, mode="overwrite")
    assert (other / "thesis.tex").read_text() == "precious"


def test_unwritable_dir(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    os.chmod(root, 0o500)
    try:
        try:
            (root / "probe").write_text("x")
            (root / "probe").unlink()
            pytest.skip("chmod does not prevent writes here (running as root?)")
        except PermissionError:
            pass
        with pytest.raises(OutputDirError, match="not writable"):
            make_writer(root)
        with pytest.raises(OutputDirError):
            make_writer(root / "sub")
    finally:
        os.chmod(root, 0o700)


def test_uncreatable_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    with pytest.raises(OutputDirError, match="cannot create"):
        make_writer(blocker / "ds")
    with pytest.raises(OutputDirError, match="not a directory"):
        make_writer(blocker)


def test_failed_write_probe_is_reported(tmp_path, monkeypatch):
    """Works as root too: the probe file cannot be created."""
    real_open = open

    def fake_open(path, *a, **k):
        if ".simfail-write-probe" in str(path):
            raise PermissionError(13, "Permission denied")
        return real_open(path, *a, **k)

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(OutputDirError, match="not writable"):
        make_writer(tmp_path / "ds")


def test_bad_record_writes_nothing(tmp_path):
    root = tmp_path / "ds"
    w = make_writer(root)
    before = all_files(root)
    group = make_groups()[0]
    bad = group[1]
    bad.frames["left"] = bad.frames["left"][:-1]  # one frame short
    with pytest.raises(ValueError, match="frames"):
        w.write_group(5, group)
    assert all_files(root) == before
    assert not (root / ".staging").exists()
    assert w.completed_groups() == []
    # the writer is still usable
    assert w.write_group(5, make_groups()[0]) == [0, 1, 2]


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda r: r.frames.pop("wrist"), "views"),
        (lambda r: r.frames.update(left=np.zeros((12, 32, 32, 3), np.uint8)), "32x32"),
        (lambda r: r.columns.update({"sim.qpos": np.zeros((12, 19))}), "sim.qpos"),
        (lambda r: r.columns.update({"action": np.zeros((12, 7), np.float32)}), "action"),
        (lambda r: r.columns.update({"extra": np.zeros(12)}), "unexpected"),
        (lambda r: r.columns["reward"].__setitem__(3, np.nan), "NaN"),
        (lambda r: setattr(r, "fps", 20), "fps"),
        (lambda r: setattr(r, "group_id", 99), "group_id"),
    ],
)
def test_validation_errors(tmp_path, mutate, match):
    root = tmp_path / "ds"
    w = make_writer(root)
    before = all_files(root)
    rec = synthetic_episode(5)
    mutate(rec)
    with pytest.raises(ValueError, match=match):
        w.write_group(5, [rec])
    assert all_files(root) == before


def test_empty_dataset_finalizes(tmp_path):
    root = tmp_path / "ds"
    w = make_writer(root)
    w.finalize({})
    ds = SimfailDataset(root)
    assert ds.num_episodes == 0 and ds.check() == []


def _deferred(groups):
    """The groups with their frames held back, and per group the ``frames_ready`` /
    ``ready`` callbacks that attach them (recording the order they were asked for)."""
    out = []
    for g in groups:
        held = [rec.frames for rec in g]
        for rec in g:
            rec.frames = {}
        asked: list = []

        def frames_ready(j, g=g, held=held, asked=asked):
            asked.append(j)
            g[j].frames = held[j]

        def ready(asked=asked):
            asked.append("ready")

        out.append((g, frames_ready, ready, asked))
    return out


def test_frames_attached_episode_by_episode_give_the_same_bytes(tmp_path):
    """Encoding each episode as its frames arrive (``frames_ready``) writes exactly the files
    written when every frame is there up front; ``ready`` comes after every episode."""
    write_all(tmp_path / "a")
    w = make_writer(tmp_path / "b")
    for g, frames_ready, ready, asked in _deferred(make_groups()):
        w.write_group(g[0].group_id, g, frames_ready=frames_ready, ready=ready)
        assert asked[-1] == "ready" and sorted(set(asked[:-1])) == list(range(len(g)))
        assert asked.count("ready") == 1
    w.finalize(EXTRA)
    pats = ("*.parquet", "*.json", "*.mp4")
    a, b = file_bytes(tmp_path / "a", pats), file_bytes(tmp_path / "b", pats)
    assert a.keys() == b.keys() and len(a) == 15
    for key in a:
        assert a[key] == b[key], key


@pytest.mark.parametrize("mutate, match", [
    (lambda f: f.update(left=f["left"][:-1]), "frames, expected"),
    (lambda f: f.update(left=np.zeros((len(f["left"]), 32, 32, 3), np.uint8)), "32x32"),
    (lambda f: f.pop("wrist"), "views"),
])
def test_bad_frames_arriving_late_write_nothing(tmp_path, mutate, match):
    root = tmp_path / "ds"
    w = make_writer(root)
    before = all_files(root)
    group = make_groups()[0]
    mutate(group[1].frames)  # held back with the rest: it arrives after episode 0 is encoded
    (g, frames_ready, ready, _), = _deferred([group])
    with pytest.raises(ValueError, match=match):
        w.write_group(5, g, frames_ready=frames_ready, ready=ready)
    assert all_files(root) == before and not (root / ".staging").exists()
    assert w.completed_groups() == []


def test_a_render_error_while_encoding_writes_nothing(tmp_path):
    root = tmp_path / "ds"
    w = make_writer(root)
    before = all_files(root)
    (g, frames_ready, ready, _), = _deferred([make_groups()[0]])

    def failing(j):
        if j == 2:
            raise RuntimeError("the renderer died")
        frames_ready(j)

    with pytest.raises(RuntimeError, match="renderer died"):
        w.write_group(5, g, frames_ready=failing, ready=ready)
    assert all_files(root) == before and not (root / ".staging").exists()
    assert w.write_group(5, make_groups()[0]) == [0, 1, 2]  # still usable
