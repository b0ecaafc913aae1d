"""``simfail import-real``: a RoboArena-layout dump and a LeRobot v3 release (both built here,
mp4s written with PyAV, no simulator state) imported through their mappings; the written
dataset passes ``simfail check``; every bad input is one ``simfail: error:`` line and leaves
nothing behind."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml

from real_helpers import FPS, SIZE, lerobot_mapping, lerobot_release, roboarena_dump, write_mp4, frames
from simfail.cli import main
from simfail.core.episode import failures_from_json
from simfail.dataset.reader import SimfailDataset
from simfail.dataset.video import decode_frames
from simfail.dataset.real import shipped_mapping
from simfail.dataset.real.probe import probe_video


@pytest.fixture(scope="module")
def dump(tmp_path_factory):
    return roboarena_dump(tmp_path_factory.mktemp("ra") / "dump")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    root = tmp_path_factory.mktemp("lr")
    return lerobot_release(root / "release"), lerobot_mapping(root / "map.yaml")


@pytest.fixture(scope="module")
def ra(dump, tmp_path_factory):
    out = tmp_path_factory.mktemp("ra_out") / "real"
    assert main(["import-real", str(dump), "format=roboarena", f"out={out}"]) == 0
    return out


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: "), err
    return err[0]


def test_roboarena_dump_imports_as_a_checked_real_dataset(dump, ra):
    ds = SimfailDataset(ra)
    assert ds.check() == [] and ds.source == "real"
    assert ds.views == ["left", "right"]  # one rollout has no wrist video: the view is left out everywhere
    assert ds.simfail_meta["import"]["dropped_views"] == {"wrist": 1}
    assert ds.fps == FPS and ds.info["features"]["observation.images.left"]["shape"][:2] == list(SIZE)
    assert "sim.qpos" not in ds.info["features"] and "observation.state" not in ds.info["features"]
    rows = ds.episodes
    assert {g: [rows[e]["simfail.source_episode"] for e in eps] for g, eps in ds.groups().items()} == {
        0: ["s0/p1", "s0/p2"], 1: ["s1/p3", "s1/p4"], 2: ["s2/p5", "s2/p6"], 3: ["s3/p7", "s3/p8"]}
    assert [r["simfail.score"] for r in rows] == [100.0, 25.0, 50.0, 50.0, 0.0, 75.0, 90.0, 20.0]
    assert [r["simfail.success"] for r in rows] == [True, False, False, False, False, False, False, False]
    assert [r["simfail.rank"] for r in rows] == [1, 2, 1, 1, 2, 1, 1, 2]
    assert [r["simfail.variant"] for r in rows][:2] == ["pi0", "octo"]
    assert [r["simfail.task"] for r in rows[::2]] == ["pick_place", "pour", "open_close", "push_pull"]
    assert {r["simfail.context"] for r in rows} == {"s0", "s1", "s2", "s3"}
    # human verdicts: the tie is kept (preferred -1) but is not a strict preference
    v = ds.verdicts
    assert [(x["episode_a"], x["episode_b"], x["preferred"], x["tie"]) for x in v] == [
        (0, 1, 0, False), (2, 3, -1, True), (4, 5, 5, False), (6, 7, 6, False)]
    assert [(p.episode_a, p.episode_b, p.preferred) for p in ds.preferences] == [(0, 1, 0), (4, 5, 5), (6, 7, 6)]
    assert ds.simfail_meta["total_preferences"] == 3 and ds.simfail_meta["total_ties"] == 1
    # rationales: an event on the verdict's loser, on both rollouts of a tie, none without feedback
    ev = {e: failures_from_json(r["simfail.failures"]) for e, r in enumerate(rows)}
    assert [e for e, x in ev.items() if x] == [1, 2, 3, 4]
    assert ev[1][0].rationale == "octo dropped the cube next to the bowl" and ev[1][0].type == "human_rationale"
    assert ev[2][0].rationale == ev[3][0].rationale == "both spilled about half of the nuts"
    assert ev[4][0].visible_frame == rows[4]["length"] - 1 and ev[4][0].severity == 0.0


def test_videos_are_linked_not_reencoded_and_lengths_follow_the_shortest_view(dump, ra):
    ds = SimfailDataset(ra)
    for e in range(ds.num_episodes):
        src_key = ds.episode(e)["simfail.source_episode"]
        sess, pid = src_key.split("/")
        pdir = next((dump / "evaluation_sessions" / sess).glob(f"{pid}_*"))
        for view in ds.views:
            path, start, end = ds.video_file(e, view)
            src = next(pdir.glob(f"*_{view}.mp4"))
            assert os.stat(path).st_ino == os.stat(src).st_ino  # a hard link of the release's own file
            assert start == 0.0 and end == pytest.approx(ds.episode(e)["length"] / FPS)
        # the right view of every rollout has one frame more: the episode has the left view's length
        assert ds.episode(e)["length"] == probe_video(next(pdir.glob("*_left.mp4"))).n_frames
        got = ds.episode_frames(e, "right")
        src_frames = decode_frames(next(pdir.glob("*_right.mp4")))
        assert np.array_equal(got, src_frames[: len(got)]) and len(src_frames) == len(got) + 1
    assert set(ds.simfail_meta["import"]["trimmed_frames"]) == {ds.episode(e)["simfail.source_episode"] for e in range(8)}


def test_copy_mode_copies_bytes(dump, tmp_path):
    out = tmp_path / "copied"
    assert main(["import-real", str(dump), "format=roboarena", f"out={out}", "videos=copy", "verify=false"]) == 0
    ds = SimfailDataset(out)
    path, _, _ = ds.video_file(0, "left")
    src = next((dump / "evaluation_sessions/s0").glob("p1_*/*_left.mp4"))
    assert os.stat(path).st_ino != os.stat(src).st_ino and path.read_bytes() == src.read_bytes()
    assert ds.check() == []


def test_lerobot_release_imports_through_a_mapping(release, tmp_path):
    root, mapping = release
    out = tmp_path / "lr"
    assert main(["import-real", str(root), f"map={mapping}", f"out={out}"]) == 0
    ds = SimfailDataset(out)
    assert ds.check() == [] and ds.source == "real" and ds.views == ["left", "right", "wrist"]
    assert ds.groups() == {0: [0, 1, 2], 1: [3, 4], 2: [5, 6]}
    assert [r["simfail.score"] for r in ds.episodes] == pytest.approx([100, 40, 0, 60, 60, 100, 30])
    assert [r["simfail.success"] for r in ds.episodes] == [True, False, False, False, False, True, False]
    assert [r["simfail.task"] for r in ds.episodes] == ["pick_place"] * 3 + ["stack"] * 2 + ["tool_use"] * 2
    # the release's concatenated files are kept as they are: one file per view, its timestamps
    files = {ds.video_file(e, "left")[0] for e in range(ds.num_episodes)}
    assert len(files) == 1
    src = root / "videos/observation.images.exterior_1_left/chunk-000/file-000.mp4"
    assert os.stat(next(iter(files))).st_ino == os.stat(src).st_ino
    assert ds.video_file(3, "wrist")[1] == pytest.approx((10 + 12 + 9) / FPS)
    assert [(v["preferred"], v["tie"]) for v in ds.verdicts] == [(0, False), (1, False), (-1, True), (5, False)]
    assert len(ds.preferences) == 3
    assert failures_from_json(ds.episode(2)["simfail.failures"])[0].rationale == "octo never grasped"
    assert [len(failures_from_json(ds.episode(e)["simfail.failures"])) for e in range(7)] == [0, 1, 1, 1, 1, 0, 0]


def test_shipped_mappings_load():
    m = shipped_mapping("roboarena")
    assert m.format == "roboarena" and m.score_scale == (0.0, 1.0) and m.success_at == 1.0
    assert shipped_mapping("roboarena_lerobot").preferences.file == "meta/human_preferences.parquet"


def test_check_finds_a_tampered_verdict(ra, tmp_path):
    copy = tmp_path / "t"
    shutil.copytree(ra, copy)
    path = copy / "meta/preferences.parquet"
    t = pq.read_table(path).to_pydict()
    t["preferred"][0] = 7
    import pyarrow as pa

    pq.write_table(pa.table(t), path)
    problems = SimfailDataset(copy).check(videos=False)
    assert any("preferred=7" in p for p in problems)


# ---------------------------------------------------------------- bad input


def _write_vfr(path, arr, pts, fps=10):
    """An mp4 whose frames sit at ``pts / (10 * fps)`` s (a dropped frame leaves a gap)."""
    import av
    from fractions import Fraction

    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = arr.shape[2], arr.shape[1], "yuv420p"
        s.time_base = Fraction(1, 10 * fps)
        s.options = {"bf": "0"}
        for f, t in zip(arr, pts):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts, vf.time_base = 10 * t, Fraction(1, 10 * fps)
            for pkt in s.encode(vf):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _nothing_written(out):
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(f".{out.name}.")]


def _edit_meta(dump, session, **changes):
    path = dump / "evaluation_sessions" / session / "metadata.yaml"
    d = yaml.safe_load(path.read_text())
    for k, v in changes.items():
        if k == "score":
            pid, val = v
            d["policies"][pid]["partial_success"] = val
        else:
            d[k] = v
    path.write_text(yaml.safe_dump(d))


@pytest.mark.parametrize("case, expect", [
    ("score_out_of_scale", "outside the declared scale [0, 1]"),
    ("unknown_preference", "names an unknown episode"),
    ("no_video_folder", "episode without video"),
    ("no_left_video", "episode without video: no left view"),
    ("other_fps", "different frame rates"),
    ("corrupt_video", "cannot read video"),
    ("variable_frame_rate", "off a constant 10 fps clock"),
])
def test_bad_roboarena_dumps_give_one_error_and_write_nothing(case, expect, tmp_path, capsys):
    dump = roboarena_dump(tmp_path / "dump", sessions=[
        ("s0", "pick the cube", [("p1", "pi0", 1.0, 6), ("p2", "dp", 0.5, 6)], "p1", "dp was slow")])
    pdir = dump / "evaluation_sessions/s0/p2_dp"
    if case == "score_out_of_scale":
        _edit_meta(dump, "s0", score=("p2", 1.5))
    elif case == "unknown_preference":
        _edit_meta(dump, "s0", preference="p9")
    elif case == "no_video_folder":
        shutil.rmtree(pdir)
    elif case == "no_left_video":
        next(pdir.glob("*_left.mp4")).unlink()
    elif case == "other_fps":
        path = next(pdir.glob("*_left.mp4"))
        write_mp4(path, frames(6, 1), fps=15)
    elif case == "corrupt_video":
        next(pdir.glob("*_left.mp4")).write_bytes(b"not an mp4 at all" * 10)
    elif case == "variable_frame_rate":
        _write_vfr(next(pdir.glob("*_left.mp4")), frames(6, 1), pts=[0, 1, 2, 4, 5, 6])
    out = tmp_path / "out"
    line = _error(capsys, ["import-real", str(dump), "format=roboarena", f"out={out}"])
    assert expect in line
    _nothing_written(out)


@pytest.mark.parametrize("change, expect", [
    ({"score": "progress_score"}, "names score column 'progress_score'"),
    ({"context": "evaluation_id"}, "names context column 'evaluation_id'"),
    ({"views": {"left": "observation.images.top", "right": "observation.images.exterior_2_left"}},
     "names view left = 'observation.images.top'"),
    ({"score_scale": [0, 0.5]}, "outside the declared scale [0, 0.5]"),
    ({"preferences": {"file": "meta/human_preferences.parquet", "verdict": "winner"}}, "names preference column 'winner'"),
    ({"views": {"top": "observation.images.exterior_1_left"}}, "unknown view in mapping"),
    ({"colour": 1}, "unknown key of mapping"),
])
def test_bad_mappings_give_one_error_and_write_nothing(release, change, expect, tmp_path, capsys):
    root, _ = release
    mapping = lerobot_mapping(tmp_path / "m.yaml", **change)
    out = tmp_path / "out"
    line = _error(capsys, ["import-real", str(root), f"map={mapping}", f"out={out}"])
    assert expect in line
    _nothing_written(out)


def test_lerobot_missing_video_files(release, tmp_path, capsys):
    root, mapping = release
    copy = tmp_path / "release"
    shutil.copytree(root, copy)
    (copy / "videos/observation.images.wrist_left/chunk-000/file-000.mp4").unlink()
    out = tmp_path / "out"
    assert main(["import-real", str(copy), f"map={mapping}", f"out={out}"]) == 0  # wrist is optional: left out
    capsys.readouterr()
    ds = SimfailDataset(out)
    assert ds.views == ["left", "right"] and ds.simfail_meta["import"]["dropped_views"] == {"wrist": 7}
    (copy / "videos/observation.images.exterior_1_left/chunk-000/file-000.mp4").unlink()
    line = _error(capsys, ["import-real", str(copy), f"map={mapping}", f"out={tmp_path / 'out2'}"])
    assert "episode 0: episode without video" in line
    _nothing_written(tmp_path / "out2")


def test_a_preference_naming_an_unknown_episode_is_refused(release, tmp_path, capsys):
    root, mapping = release
    copy = tmp_path / "release"
    shutil.copytree(root, copy)
    t = pq.read_table(copy / "meta/human_preferences.parquet").to_pydict()
    t["episode_b"][1] = 42
    import pyarrow as pa

    pq.write_table(pa.table(t), copy / "meta/human_preferences.parquet")
    out = tmp_path / "out"
    line = _error(capsys, ["import-real", str(copy), f"map={mapping}", f"out={out}"])
    assert "preference names an unknown episode episode_b=42" in line
    _nothing_written(out)


def test_bad_command_lines(dump, ra, tmp_path, capsys):
    assert "exactly one of format=roboarena" in _error(capsys, ["import-real", str(dump), f"out={tmp_path / 'o'}"])
    assert "unknown import format 'robo'" in _error(capsys, ["import-real", str(dump), "format=robo", f"out={tmp_path / 'o'}"])
    assert "unknown import-real setting 'outt'" in _error(capsys, ["import-real", str(dump), "format=roboarena", "outt=x"])
    assert "unknown videos mode 'move'" in _error(capsys, ["import-real", str(dump), "format=roboarena", f"out={tmp_path / 'o'}", "videos=move"])
    assert "is not empty" in _error(capsys, ["import-real", str(dump), "format=roboarena", f"out={ra}"])
    assert "no such mapping file" in _error(capsys, ["import-real", str(dump), f"map={tmp_path / 'none.yaml'}", f"out={tmp_path / 'o'}"])
    assert "replacing out would delete it" in _error(capsys, ["import-real", str(dump), "format=roboarena", f"out={dump.parent}",
                                                              "overwrite=true"])
    assert "is inside the source" in _error(capsys, ["import-real", str(dump), "format=roboarena", f"out={dump / 'x'}"])
    assert not (tmp_path / "o").exists() and (dump / "evaluation_sessions").is_dir()
    assert SimfailDataset(ra).check(videos=False) == []  # the refused overwrite left it intact


def _tree(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_import_is_deterministic(dump, ra, tmp_path):
    again = tmp_path / "again"
    assert main(["import-real", str(dump), "format=roboarena", f"out={again}"]) == 0
    first, second = _tree(ra), _tree(again)
    assert first.keys() == second.keys()
    assert [k for k in first if first[k] != second[k]] == []


def test_per_episode_rationale_column_without_a_verdicts_table(release, tmp_path):
    root, _ = release
    mapping = lerobot_mapping(tmp_path / "m.yaml", rationale="policy_name", preferences=None, success=None, success_at=0.6)
    out = tmp_path / "out"
    assert main(["import-real", str(root), f"map={mapping}", f"out={out}"]) == 0
    ds = SimfailDataset(out)
    assert ds.check(videos=False) == [] and ds.verdicts == [] and ds.preferences == []
    assert [failures_from_json(r["simfail.failures"])[0].rationale for r in ds.episodes] == [r["simfail.variant"] for r in ds.episodes]
    assert [r["simfail.success"] for r in ds.episodes] == [True, False, False, True, True, True, False]  # score >= 0.6
