"""``simfail merge`` and the sharded generate driver (local executor; Ray: test_scale_ray.py).

The shard merge and ``simfail merge`` are one implementation (simfail/dataset/merge.py); these
tests prove it on tiny datasets: merged indices, tasks, stats and frame counts; a merge of one
source and a sharded run give the bytes of a direct run; a killed driver's committed shards
are re-attached on resume; incompatible sources get one clear error.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from simfail.cli import main
from simfail.dataset import layout as L
from simfail.dataset.merge import MergeConfig, MergeError, merge as merge_run
from simfail.dataset.mp4 import sample_count
from simfail.dataset.reader import SimfailDataset
from simfail.dataset.video import frame_times
from simfail.errors import ConfigError

ARGS = ["task=pick_place", "render.width=64", "render.height=64", "progress=false", "failures=[drop]"]


def _cfg(*extra: str):
    from simfail.commands import build_config

    return build_config("generate", ARGS + list(extra))


def _generate(out: Path, *extra: str) -> Path:
    from simfail.generate import run

    run(_cfg(f"out={out}", *extra))
    return out


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    """A: seed 0, 2 groups; B: seed 7, 1 group (generated separately, as on two machines)."""
    root = tmp_path_factory.mktemp("merge_src")
    return _generate(root / "a", "groups=2", "seed=0"), _generate(root / "b", "groups=1", "seed=7")


def _same_files(a: Path, b: Path, *, skip=("meta/simfail.json",)) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel not in skip:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel


def _meta_without_config(path: Path) -> dict:
    meta = json.loads((path / L.SIMFAIL_META_PATH).read_text())
    meta.pop("config")
    return meta


def test_merge_two_datasets_renumbers_and_checks(datasets, tmp_path):
    a, b = datasets
    out = tmp_path / "merged"
    s = merge_run(MergeConfig(dirs=[str(a), str(b)], out=str(out), progress=False))
    da, db, dm = SimfailDataset(a), SimfailDataset(b), SimfailDataset(out)
    assert dm.check() == []
    assert s["episodes"] == da.num_episodes + db.num_episodes == dm.num_episodes
    rows = pq.read_table(out / "meta/episodes/chunk-000/file-002.parquet").to_pydict()
    # B's group 0 follows A's groups 0, 1 as group 2; its episodes and frames continue A's
    assert set(rows["simfail.group_id"]) == {2}
    assert rows["episode_index"][0] == da.num_episodes
    assert rows["dataset_from_index"][0] == da.num_frames
    data = pq.read_table(out / L.data_path(0, 2)).to_pydict()
    src = pq.read_table(b / L.data_path(0, 0)).to_pydict()
    assert data["index"] == list(range(da.num_frames, da.num_frames + db.num_frames))
    assert data["observation.state"] == src["observation.state"] and data["frame_index"] == src["frame_index"]
    # the video moved as is (no re-encoding), its frame count re-verified
    for key in dm.video_keys:
        assert (out / L.video_path(key, 0, 2)).read_bytes() == (b / L.video_path(key, 0, 0)).read_bytes()
    meta = json.loads((out / L.SIMFAIL_META_PATH).read_text())
    assert [m["group_id_offset"] for m in meta["merged_from"]] == [0, 2]
    assert meta["groups"]["2"]["seed"] == json.loads((b / L.SIMFAIL_META_PATH).read_text())["groups"]["0"]["seed"]
    # stats: exact counts, means and extrema of the union of the frames
    stats = json.loads((out / L.STATS_PATH).read_text())
    state = np.concatenate([np.asarray(pq.read_table(p).column("observation.state").to_pylist())
                            for p in sorted((out / "data").rglob("*.parquet"))])
    assert stats["observation.state"]["count"] == [len(state)]
    np.testing.assert_allclose(stats["observation.state"]["mean"], state.mean(0), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(stats["observation.state"]["std"], state.std(0), rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(stats["observation.state"]["max"], state.max(0))
    np.testing.assert_array_equal(stats["observation.state"]["min"], state.min(0))
    # quantiles: the count-weighted mean of the episodes' own (documented approximation, as in
    # LeRobot), within the extrema and ordered
    episodes = [pq.read_table(p).to_pydict() for p in sorted((out / "meta" / "episodes").rglob("*.parquet"))]
    counts = np.concatenate([np.asarray(e["stats/observation.state/count"], float).reshape(-1) for e in episodes])
    assert counts.sum() == len(state)
    for q in L.QUANTILES:
        per = np.concatenate([np.asarray(e[f"stats/observation.state/{q}"], float) for e in episodes])
        np.testing.assert_allclose(stats["observation.state"][q], (counts[:, None] * per).sum(0) / counts.sum(),
                                   rtol=1e-6, atol=1e-7)
        assert (np.asarray(stats["observation.state"][q]) >= state.min(0) - 1e-6).all()
        assert (np.asarray(stats["observation.state"][q]) <= state.max(0) + 1e-6).all()
    qs = np.array([stats["observation.state"][q] for q in L.QUANTILES])
    assert (np.diff(qs, axis=0) >= -1e-6).all()  # q01 <= q10 <= q50 <= q90 <= q99


def test_merge_of_one_dataset_is_byte_identical(datasets, tmp_path):
    a, _ = datasets
    out = tmp_path / "copy"
    merge_run(MergeConfig(dirs=[str(a)], out=str(out), progress=False))
    _same_files(a, out)


def test_mp4_sample_count_is_the_decoded_frame_count(datasets):
    a, _ = datasets
    path = a / L.video_path(L.video_key("left"), 0, 0)
    assert sample_count(path) == len(frame_times(path)) == SimfailDataset(a).num_frames // 2


@pytest.mark.parametrize("key, value", [("fps", 20), ("image_size", [96, 96]), ("robot_type", "ur5"),
                                        ("state_names", ["q"] * 9), ("views", ["left", "right"]),
                                        ("action_names", ["a"] * 8), ("codebase_version", "v2.1")])
def test_merge_refuses_incompatible_datasets_naming_the_difference(datasets, tmp_path, key, value):
    a, b = datasets
    other = tmp_path / "other"
    shutil.copytree(b, other)
    marker = json.loads((other / L.MARKER_NAME).read_text())
    assert key in marker and marker[key] != value  # a real difference in a setting the marker holds
    marker[key] = value
    (other / L.MARKER_NAME).write_text(json.dumps(marker))
    with pytest.raises(MergeError, match=f"{key} differs"):
        merge_run(MergeConfig(dirs=[str(a), str(other)], out=str(tmp_path / "m"), progress=False))
    assert not (tmp_path / "m").exists()


def test_merge_of_different_tasks_pads_the_narrower_sim_state(datasets, tmp_path):
    """push_pull's sim state is narrower than pick_place's: it is zero-padded, stats included."""
    from simfail.generate import run

    a, _ = datasets
    pp = tmp_path / "push_pull"
    run(_cfg(f"out={pp}", "task=push_pull", "groups=1", "failures=[overshoot]"))
    out = tmp_path / "two_tasks"
    merge_run(MergeConfig(dirs=[str(a), str(pp)], out=str(out), progress=False))
    dm = SimfailDataset(out)
    assert dm.check() == []
    nq_a = json.loads((a / L.MARKER_NAME).read_text())["nq"]
    nq_p = json.loads((pp / L.MARKER_NAME).read_text())["nq"]
    assert nq_p < nq_a
    qpos = np.asarray(pq.read_table(out / L.data_path(0, 2)).column("sim.qpos").to_pylist())
    src = np.asarray(pq.read_table(pp / L.data_path(0, 0)).column("sim.qpos").to_pylist())
    assert qpos.shape[1] == nq_a and np.array_equal(qpos[:, :nq_p], src) and not qpos[:, nq_p:].any()
    stats = pq.read_table(out / L.episodes_path(0, 2)).column("stats/sim.qpos/max").to_pylist()
    assert all(len(row) == nq_a and not any(row[nq_p:]) for row in stats)
    meta = json.loads((out / L.SIMFAIL_META_PATH).read_text())
    assert meta["nq"] == nq_a and {"pick_place", "push_pull"} <= set(meta["tasks"]) and meta["task"] == "merged"


def test_merge_command_line_and_its_errors(datasets, tmp_path, capsys):
    a, b = datasets
    out = tmp_path / "cli"
    assert main(["merge", str(a), str(b), f"out={out}", "progress=false"]) == 0
    assert SimfailDataset(out).num_episodes == 6
    assert main(["merge", str(a), str(b), f"out={out}", "progress=false"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["merge", str(a), f"out={a}"]) == 2
    assert main(["merge", str(a), str(tmp_path / "nothing"), f"out={tmp_path / 'x'}"]) == 2
    assert main(["merge", str(a), f"out={tmp_path / 'y'}", "link=maybe"]) == 2  # a typed schema: bool
    assert main(["merge", str(a), f"out={tmp_path / 'z'}", "lnk=true"]) == 2  # nearest-key hint
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 4 and all(line.startswith("simfail: error:") for line in err)
    assert "link" in err[2] and "did you mean 'link'?" in err[3]
    assert not any((tmp_path / n).exists() for n in ("x", "y", "z"))
    with pytest.raises(ConfigError):
        MergeConfig(dirs=[], out="o").validate()


class _DriverKilled(Exception):
    pass


class _DyingExecutor:
    """The local executor, but the driver dies after the first shard is committed."""

    name = "local"
    workers = 1

    def map(self, fn, items, *, on_progress=None, env=None):
        from simfail.scale.executor import LocalExecutor

        for i, result in LocalExecutor().map(fn, items, on_progress=on_progress, env=env):
            yield i, result
            raise _DriverKilled


def test_sharded_run_with_a_killed_driver_resumes_to_the_bytes_of_a_local_run(datasets, tmp_path):
    from simfail.scale.executor import LocalExecutor
    from simfail.scale.sharded import run_sharded

    a, _ = datasets
    out = tmp_path / "killed"
    with pytest.raises(_DriverKilled):
        run_sharded(_cfg(f"out={out}", "groups=2", "seed=0", "ray.groups_per_task=1"), _DyingExecutor())
    assert len(list((out / ".shards").glob("shard-*/meta/episodes/chunk-000/*.parquet"))) == 1
    s = run_sharded(_cfg(f"out={out}", "groups=2", "seed=0", "ray.groups_per_task=1", "resume=true"),
                    LocalExecutor())
    assert s["groups"] == 1  # only the group no shard had committed was generated again
    assert not (out / ".shards").exists()
    _same_files(a, out)
    assert _meta_without_config(a) == _meta_without_config(out)


def test_generate_command_prints_one_row_per_worker_after_a_sharded_run(tmp_path, monkeypatch, capsys):
    """The registry's generate run function prints the per-worker table of a sharded run (here
    the local executor stands in for Ray: same driver, same summary)."""
    import simfail.generate as gen
    from simfail.commands import invoke
    from simfail.scale.executor import LocalExecutor
    from simfail.scale.sharded import run_sharded

    monkeypatch.setattr(gen, "run", lambda cfg: run_sharded(cfg, LocalExecutor()))
    out = tmp_path / "sharded"
    assert invoke("generate", ARGS + [f"out={out}", "groups=1", "ray.groups_per_task=1"]) == 0
    printed = capsys.readouterr().out
    assert "executor: local   merge:" in printed and "worker (host:pid)" in printed
    import os
    import socket

    row = next(line for line in printed.splitlines() if f"{socket.gethostname()}:{os.getpid()}" in line)
    cells = [c for c in row.replace("|", " ").split() if c]
    assert cells[1:4] == ["1", "1", "2"], row  # one shard, one group, expert + drop
    assert SimfailDataset(out).num_episodes == 2


def test_a_sharded_run_shows_one_progress_bar_for_all_workers(tmp_path, capsys):
    """The driver's bar counts every shard's groups; the shards draw no bars of their own."""
    import re

    from simfail.scale.executor import LocalExecutor
    from simfail.scale.sharded import run_sharded

    args = [a for a in ARGS if a != "progress=false"] + ["progress=true"]
    from simfail.commands import build_config

    cfg = build_config("generate", args + [f"out={tmp_path / 'bar'}", "groups=2", "ray.groups_per_task=1"])
    run_sharded(cfg, LocalExecutor())
    err = capsys.readouterr().err
    bars = [s.strip() for s in re.split(r"[\r\n]", err) if re.search(r"\d+/\d+", s) and "|" in s]
    assert bars, err
    assert all(b.startswith("simfail pick_place [local x1]") for b in bars), bars
    assert any(re.search(r"\b2/2\b", b) and "episodes=4" in b for b in bars), bars
