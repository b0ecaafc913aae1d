"""Tests of simfail.dataset.reader.SimfailDataset (opening errors and check())."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simfail.core.episode import Preference
from simfail.dataset.reader import SimfailDataset
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group
from simfail.dataset.video import encode_video
from simfail.dataset.writer import DatasetWriter
from simfail.errors import DatasetFormatError


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    root = tmp_path_factory.mktemp("reader") / "dataset"
    w = DatasetWriter(root, fps=10, image_size=(64, 64), state_names=STATE_NAMES, action_names=ACTION_NAMES,
                      nq=20, nv=18)
    w.write_group(0, synthetic_group(0))
    w.write_group(1, synthetic_group(1, scores=(90.0, 10.0), lengths=(10, 14)))
    w.finalize({"seeds": [0, 1]})
    return root


@pytest.fixture
def dataset_copy(pristine, tmp_path):
    root = tmp_path / "copy"
    shutil.copytree(pristine, root)
    return root


def test_properties(pristine):
    ds = SimfailDataset(pristine)
    assert len(ds) == 5 and ds.num_frames == 12 * 3 + 24
    assert ds.views == ["left", "right", "wrist"]
    assert ds.episodes[3]["simfail.group_id"] == 1 and ds.episodes[3]["length"] == 10
    assert "stats/action/mean" not in ds.episodes[0]
    assert "stats/action/mean" in ds.episodes_table.column_names
    assert ds.tasks == {"put the red cube in the bowl": 0}
    assert ds.simfail_meta["seeds"] == [0, 1] and ds.simfail_meta["total_episodes"] == 5
    assert Preference(1, 3, 4, 3, 90.0, 10.0) in ds.preferences
    assert set(ds.stats) >= {"action", "observation.images.left"}
    with pytest.raises(KeyError):
        ds.episode_frames(0, "top")
    with pytest.raises(IndexError):
        ds.episode_columns(5)
    assert ds.episode_frames(4, "observation.images.right").shape == (14, 64, 64, 3)


def test_missing_info(dataset_copy):
    (dataset_copy / "meta/info.json").unlink()
    with pytest.raises(DatasetFormatError, match="info.json"):
        SimfailDataset(dataset_copy)


def test_inconsistent_info(dataset_copy):
    path = dataset_copy / "meta/info.json"
    info = json.loads(path.read_text())
    info["total_episodes"] = 7
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="total_episodes"):
        SimfailDataset(dataset_copy)
    info["total_episodes"] = 5
    info["codebase_version"] = "v2.1"
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetFormatError, match="codebase_version"):
        SimfailDataset(dataset_copy)


def test_check_detects_missing_video(dataset_copy):
    (dataset_copy / "videos/observation.images.wrist/chunk-000/file-001.mp4").unlink()
    problems = SimfailDataset(dataset_copy).check()
    assert any("missing" in p for p in problems)
    assert SimfailDataset(dataset_copy).check(videos=False) == []


def test_check_detects_short_video(dataset_copy):
    path = dataset_copy / "videos/observation.images.left/chunk-000/file-000.mp4"
    encode_video(path, np.zeros((30, 64, 64, 3), np.uint8), fps=10)  # 30 frames instead of 36
    problems = SimfailDataset(dataset_copy).check()
    assert any("decoded frames" in p for p in problems), problems


def test_check_detects_bad_preferences(dataset_copy):
    path = dataset_copy / "meta/preferences.parquet"
    t = pq.read_table(path)
    preferred = t.column("preferred").to_pylist()
    preferred[0] = t.column("episode_b")[0].as_py()
    t = t.set_column(t.schema.get_field_index("preferred"), "preferred", pa.array(preferred, pa.int64()))
    pq.write_table(t, path)
    problems = SimfailDataset(dataset_copy).check(videos=False)
    assert any("preference" in p for p in problems)


def test_check_detects_bad_data(dataset_copy):
    path = dataset_copy / "data/chunk-000/file-001.parquet"
    t = pq.read_table(path)
    t = t.slice(0, t.num_rows - 1)  # drop the last frame
    pq.write_table(t, path)
    problems = SimfailDataset(dataset_copy).check(videos=False)
    assert any("frames in the data file" in p for p in problems), problems
