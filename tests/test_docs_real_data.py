"""Every ``simfail ...`` command of docs/real_data.md runs, in the order shown, on tiny data
built here (a RoboArena-layout dump, a LeRobot v3 release with its mapping, a synthetic
simfail dataset); training settings are shrunk to a few steps."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

pytest.importorskip("torch")

from real_helpers import lerobot_mapping, lerobot_release, roboarena_dump  # noqa: E402
from simfail.cli import main  # noqa: E402
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group  # noqa: E402
from simfail.dataset.writer import DatasetWriter  # noqa: E402

DOC = Path(__file__).resolve().parents[1] / "docs" / "real_data.md"
#: settings that make training and scoring take seconds (replacing the docs' values)
TINY = {
    "train-reward": {"epochs": "2", "batches_per_epoch": "2", "batch_size": "4", "clip_frames": "8", "frame_size": "16",
                     "net.feat_dim": "16", "net.width": "8", "net.hidden": "16", "text.dim": "16", "progress": "false"},
    "evaluate": {"bootstrap": "50", "curves": "0", "video": "none", "progress": "false"},
    "experiment": {"epochs": "2", "batches_per_epoch": "2", "batch_size": "4", "clip_frames": "8", "frame_size": "16",
                   "net_feat_dim": "16", "net_width": "8", "net_hidden": "16", "text_dim": "16", "bootstrap": "100"},
}
SESSIONS = [(f"s{k}", instr, [(f"a{k}", "pi0", 1.0, 8), (f"b{k}", "dp", s, 8 + k % 2)], "tie" if k == 2 else "A", "dp slipped")
            for k, (instr, s) in enumerate([("put the cube in the bowl", 0.2), ("open the drawer", 0.5),
                                            ("pour the beans", 0.0), ("stack the cups", 0.4)])]


def doc_commands() -> list[str]:
    blocks = re.findall(r"```bash\n(.*?)```", DOC.read_text(), flags=re.S)
    return [line.split("  #")[0].strip() for b in blocks for line in b.splitlines() if line.strip().startswith("simfail ")]


def tiny(argv: list[str]) -> list[str]:
    over = TINY.get(argv[0], {})
    kept = [a for a in argv if a.partition("=")[0] not in over]
    return kept + [f"{k}={v}" for k, v in over.items()]


def test_every_command_of_the_real_data_docs_runs(tmp_path, monkeypatch, capsys):
    cmds = doc_commands()
    assert len(cmds) >= 6 and {c.split()[1] for c in cmds} >= {"import-real", "check", "evaluate", "train-reward", "experiment"}
    monkeypatch.chdir(tmp_path)
    roboarena_dump(Path("data/roboarena_dump"), sessions=SESSIONS, wrist_missing=None)
    lerobot_release(Path("data/release"))
    lerobot_mapping(Path("my_release.yaml"))
    w = DatasetWriter("data/sim", fps=10, image_size=(32, 32), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    for g in range(2):
        w.write_group(g, synthetic_group(g, scores=(100.0, 10.0, 60.0), size=(32, 32)))
    w.finalize({})
    for cmd in cmds:
        argv = tiny(shlex.split(cmd)[1:])
        rc = main(argv)
        err = capsys.readouterr().err
        assert rc == 0, f"{cmd!r} failed: {err}"
    assert Path("exp/real_plus_sim/results.json").is_file() and Path("reports/mixed/metrics.json").is_file()
