"""LeRobot's own ``LeRobotDataset`` opens a merged simfail dataset and iterates every frame.

lerobot is not a dependency of simfail (it needs Python >= 3.12 and pulls torch with CUDA,
about 5 GB): the test runs it in another interpreter named by ``SIMFAIL_LEROBOT_PYTHON`` (a
virtual environment with ``pip install 'lerobot[dataset]'``; docs/scale.md) and is skipped
otherwise. The child process opens the merged dataset with ``LeRobotDataset(repo_id, root=...)``
(local files only: a ``root`` that holds the dataset is read, nothing is downloaded), reads every
item, and reports what it saw; the test compares that with simfail's own reader: episode count,
frame count, fps, per-item ``episode_index`` / ``index`` / ``task_index``, and decoded frames.
"""

from __future__ import annotations

import json
import os
import subprocess
import textwrap

import numpy as np
import pytest

from simfail.cli import main
from simfail.dataset.reader import SimfailDataset

LEROBOT_PYTHON = os.environ.get("SIMFAIL_LEROBOT_PYTHON", "")

pytestmark = pytest.mark.skipif(
    not LEROBOT_PYTHON,
    reason="set SIMFAIL_LEROBOT_PYTHON to a Python >= 3.12 with lerobot[dataset] installed (docs/scale.md)")

CHILD = textwrap.dedent('''
    import json, sys
    import numpy as np
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    root, probe = sys.argv[1], json.loads(sys.argv[2])
    ds = LeRobotDataset(repo_id="simfail/merged", root=root)
    items = [ds[i] for i in range(len(ds))]
    out = {
        "num_episodes": ds.num_episodes, "num_frames": ds.num_frames, "fps": ds.fps, "len": len(ds),
        "episode_index": [int(x["episode_index"]) for x in items],
        "index": [int(x["index"]) for x in items],
        "task_index": [int(x["task_index"]) for x in items],
        "tasks": sorted({x["task"] for x in items}),
        "frames": {},
    }
    for key, idx in probe.items():  # frames as uint8 HWC, for comparison with simfail's reader
        img = items[idx][key].numpy()
        out["frames"][key] = np.rint(img.transpose(1, 2, 0) * 255).astype(int).tolist()
    print(json.dumps(out))
''')


def test_lerobot_opens_and_iterates_a_merged_dataset(tmp_path):
    for seed in (0, 1):
        assert main(["generate", "task=pick_place", "groups=1", f"seed={seed}", "render.width=64",
                     "render.height=64", "render.fps=5", "failures=[drop]", "progress=false",
                     f"out={tmp_path / f'd{seed}'}"]) == 0
    merged = tmp_path / "merged"
    assert main(["merge", str(tmp_path / "d0"), str(tmp_path / "d1"), f"out={merged}", "progress=false"]) == 0
    ds = SimfailDataset(merged)
    n = ds.num_frames
    last_ep = ds.num_episodes - 1
    probe_frame = int(ds.episode(last_ep)["dataset_from_index"]) + 3  # a frame of the second source
    probe = {"observation.images.left": probe_frame, "observation.images.wrist": probe_frame}
    proc = subprocess.run([LEROBOT_PYTHON, "-c", CHILD, str(merged), json.dumps(probe)], capture_output=True,
                          text=True, timeout=600, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["num_episodes"] == ds.num_episodes == 4 and got["num_frames"] == got["len"] == n
    assert got["fps"] == 5
    expected_ep = np.concatenate([np.full(int(ds.episode(e)["length"]), e) for e in range(ds.num_episodes)])
    assert got["episode_index"] == expected_ep.tolist()
    assert got["index"] == list(range(n))
    assert len(got["tasks"]) == len(set(got["task_index"])) >= 1
    ep = last_ep
    offset = probe_frame - int(ds.episode(ep)["dataset_from_index"])
    for key, frame in got["frames"].items():
        mine = ds.episode_frames(ep, key.removeprefix("observation.images."))[offset]
        diff = np.abs(np.asarray(frame) - mine.astype(int))
        assert diff.max() <= 1, f"{key}: LeRobot decodes a different frame (max difference {diff.max()})"
