"""``simfail replay``: demo datasets replayed on the scene runner, verified against their
``sim.qpos``, written as groups (demo = reference), resumed; every bad input is one error line
and writes nothing. Branching from a replayed demo: tests/test_replay_branch.py."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simfail.cli import main
from simfail.core.runner import HOME_ACTION, SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.task import get_task
from simfail.dataset.reader import SimfailDataset
from simfail.replay.demos import load_demos
from simfail.replay.recorder import DemoRecorder
from simfail.replay.verify import ReplayDivergenceError, replay_demo

SMALL = ["render.width=64", "render.height=64", "progress=false"]


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    """A generated dataset: one group (expert, drop, no_release) at 64x64, 5 fps."""
    out = tmp_path_factory.mktemp("replay_gen") / "gen"
    assert main(["generate", f"out={out}", "groups=1", "render.fps=5", "failures=[drop,no_release]", *SMALL]) == 0
    return out


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    rc = main(["replay", *args])
    out, err = capsys.readouterr()
    return rc, out, err


def one_error(err: str) -> str:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("simfail: error: "), err
    return lines[0]


def copy_demo(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("videos"))
    return dst


def rewrite_parquet(path: Path, fn) -> None:
    pq.write_table(fn(pq.read_table(path)), path)


def data_file(root: Path) -> Path:
    return next((root / "data").glob("chunk-*/file-*.parquet"))


def episodes_file(root: Path) -> Path:
    return next((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))


# ------------------------------------------------------------------ bit for bit


def test_replaying_a_generated_dataset_reproduces_its_qpos_bit_for_bit(generated):
    ds = SimfailDataset(generated)
    demos = load_demos(generated)
    variants = [ds.episode(i)["simfail.variant"] for i in range(len(ds))]
    assert variants == ["expert", "drop", "no_release"]  # expert and perturbed episodes
    runner = SceneRunner(get_task("pick_place"), demos.fps, StageConfig(64, 64))
    for demo in demos.episodes:
        cols = ds.episode_columns(demo.index)
        rep = replay_demo(runner, demo, tolerance=0.0)
        assert rep.max_abs_diff == 0.0
        nq, nv = runner.core.model.nq, runner.core.model.nv
        assert np.array_equal(np.array(rep.trace.qpos), cols["sim.qpos"][:, :nq])
        assert np.array_equal(np.array(rep.trace.qvel), cols["sim.qvel"][:, :nv])
        # the replay labels the episode as the generator did
        success, events = runner.task.detect(rep.trace, runner.scene.layout)
        assert bool(success) == bool(ds.episode(demo.index)["simfail.success"])
        assert sorted(e.type for e in events) == sorted(e.type for e in ds.failures(demo.index))
        assert len(rep.states) == demo.length


def test_a_tampered_action_is_one_divergence_error_naming_episode_and_frame(generated, tmp_path, capsys):
    demos = copy_demo(generated, tmp_path / "tampered")

    def tamper(t: pa.Table) -> pa.Table:
        rows = t.to_pylist()
        for r in rows:
            if r["episode_index"] == 1 and r["frame_index"] == 12:
                r["action"] = [v + (0.05 if i == 1 else 0.0) for i, v in enumerate(r["action"])]
        return pa.Table.from_pylist(rows, schema=t.schema)

    rewrite_parquet(data_file(demos), tamper)
    rc, _, err = run_cli([f"demos={demos}", f"out={tmp_path / 'out'}", *SMALL], capsys)
    line = one_error(err)
    assert rc == 2
    # action[12] drives frame 12 -> 13: the first frame that can differ is 13
    assert "demo episode 1" in line and "at frame 13" in line and "max abs difference" in line, line
    assert not (tmp_path / "out").exists()
    # a tolerance above the difference lets it through (verification only, nothing written)
    demo = load_demos(demos, [1]).episodes[0]
    runner = SceneRunner(get_task("pick_place"), 5, StageConfig(64, 64))
    with pytest.raises(ReplayDivergenceError, match="at frame 13"):
        replay_demo(runner, demo, tolerance=1e-9)
    rep = replay_demo(runner, demo, tolerance=10.0)
    assert 0.0 < rep.max_abs_diff <= 10.0


def test_a_wrong_scene_seed_diverges_at_frame_0(generated, tmp_path, capsys):
    demos = copy_demo(generated, tmp_path / "seed")
    rewrite_parquet(episodes_file(demos), lambda t: t.set_column(
        t.column_names.index("simfail.seed"), "simfail.seed", pa.array([1, 1, 1], pa.int64())))
    rc, _, err = run_cli([f"demos={demos}", *SMALL], capsys)
    line = one_error(err)
    assert "demo episode 0" in line and "at frame 0" in line and "scene seed" in line, line


# ------------------------------------------------------------------ written groups, resume


def test_demos_become_groups_with_the_demo_as_reference_not_an_expert(generated, tmp_path, capsys):
    out = tmp_path / "out"
    rc, text, _ = run_cli([f"demos={generated}", f"out={out}", *SMALL], capsys)
    assert rc == 0
    assert "demos replayed: 3" in text and "divergences: 0" in text and "max |qpos diff|: 0" in text
    assert main(["check", str(out)]) == 0
    ds = SimfailDataset(out)
    rows = [ds.episode(i) for i in range(len(ds))]
    assert [r["simfail.variant"] for r in rows] == ["demo"] * 3
    assert [r["simfail.group_id"] for r in rows] == [0, 1, 2]  # group id = demo episode index
    src = SimfailDataset(generated)
    for i, r in enumerate(rows):
        assert r["simfail.success"] == src.episode(i)["simfail.success"]
        assert np.array_equal(ds.episode_columns(i)["sim.qpos"], src.episode_columns(i)["sim.qpos"])
        assert np.array_equal(ds.episode_columns(i)["action"], src.episode_columns(i)["action"])
        pert = json.loads(r["simfail.perturbation"])
        assert pert["expert"] is False and pert["source"]["episode"] == i
    meta = ds.simfail_meta
    for i in range(3):  # each demo is labelled by the physics, as its source episode was
        assert meta["groups"][str(i)]["reference_success"] == src.episode(i)["simfail.success"]
        assert meta["groups"][str(i)]["reference_failures"] == sorted({e.type for e in src.failures(i)})
    assert meta["groups"]["2"]["reference_success"] is False            # the no_release demo fails ...
    assert meta["groups"]["2"]["reference_failures"] == ["no_release"]  # ... and is labelled so
    assert all(g["reference_is_expert"] is False for g in meta["groups"].values())
    assert "not an expert" in meta["replay"]["reference"]


def test_resume_adds_only_the_missing_groups(generated, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_cli([f"demos={generated}", "episodes=[1]", f"out={out}", *SMALL], capsys)[0] == 0
    first = {p: p.read_bytes() for p in (out / "data").rglob("*.parquet")}
    rc, text, _ = run_cli([f"demos={generated}", f"out={out}", "resume=true", *SMALL], capsys)
    assert rc == 0 and "groups written: 2 (already there: 1)" in text, text
    ds = SimfailDataset(out)
    assert sorted(ds.groups()) == [0, 1, 2] and main(["check", str(out)]) == 0
    assert len(first) == 1 and all(p.read_bytes() == b for p, b in first.items())  # group 1 untouched
    rc, text, _ = run_cli([f"demos={generated}", f"out={out}", "resume=true", *SMALL], capsys)
    assert rc == 0 and "groups written: 0 (already there: 3)" in text


# ------------------------------------------------------------------ the recorder (env, teleop)


def test_an_env_recorded_demo_replays_bit_for_bit(tmp_path, capsys):
    from simfail.env import make_env

    env = make_env("pick_place", fps=5, width=64, height=64)
    rng = np.random.default_rng(0)
    with DemoRecorder(tmp_path / "demos", fps=env.fps) as rec:
        for scene_seed in (3, 11):
            env.reset(options={"scene_seed": scene_seed})
            for t in range(12):  # a "teleoperator": wiggle around home, close the gripper halfway
                cmd = HOME_ACTION + np.concatenate([rng.normal(0, 0.05, 7), [min(1.0, t / 6)]])
                env.step(cmd.astype(np.float32))
            rec.add_env_episode(env)
    env.close()
    demos = load_demos(tmp_path / "demos")
    assert [(d.index, d.task, d.scene_seed, d.length) for d in demos.episodes] == [(0, "pick_place", 3, 13),
                                                                                  (1, "pick_place", 11, 13)]
    rc, text, _ = run_cli([f"demos={tmp_path / 'demos'}", f"out={tmp_path / 'out'}", *SMALL], capsys)
    assert rc == 0 and "checked against sim.qpos: 2" in text and "max |qpos diff|: 0" in text, text
    assert main(["check", str(tmp_path / "out")]) == 0


def test_a_bare_action_demo_without_qpos_replays_unverified(tmp_path, capsys):
    actions = np.tile(HOME_ACTION.astype(np.float32), (6, 1))
    with DemoRecorder(tmp_path / "demos", fps=5) as rec:
        rec.add("stack", 5, actions)
    rc, text, _ = run_cli([f"demos={tmp_path / 'demos'}", *SMALL], capsys)
    assert rc == 0 and "demos replayed: 1   checked against sim.qpos: 0" in text, text


# ------------------------------------------------------------------ bad input: one error, nothing written


@pytest.fixture()
def small_demo(tmp_path) -> Path:
    actions = np.tile(HOME_ACTION.astype(np.float32), (6, 1))
    with DemoRecorder(tmp_path / "demos", fps=5) as rec:
        rec.add("pick_place", 3, actions)
        rec.add("pick_place", 4, actions)
    return tmp_path / "demos"


def _seven_wide(root: Path) -> None:
    info = json.loads((root / "meta/info.json").read_text())
    info["features"]["action"]["shape"] = [7]
    (root / "meta/info.json").write_text(json.dumps(info))
    rewrite_parquet(data_file(root), lambda t: t.set_column(
        t.column_names.index("action"), "action",
        pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(7 * t.num_rows, np.float32)), 7)))


def _seven_wide_data_only(root: Path) -> None:
    rewrite_parquet(data_file(root), lambda t: t.set_column(
        t.column_names.index("action"), "action",
        pa.FixedSizeListArray.from_arrays(pa.array(np.zeros(7 * t.num_rows, np.float32)), 7)))


def _unknown_task(root: Path) -> None:
    rewrite_parquet(episodes_file(root), lambda t: t.set_column(
        t.column_names.index("simfail.task"), "simfail.task", pa.array(["pick_place", "pick_n_place"])))


def _no_seed_column(root: Path) -> None:
    rewrite_parquet(episodes_file(root), lambda t: t.drop_columns(["simfail.seed"]))


def _null_seed(root: Path) -> None:
    rewrite_parquet(episodes_file(root), lambda t: t.set_column(
        t.column_names.index("simfail.seed"), "simfail.seed", pa.array([3, None], pa.int64())))


def _no_info(root: Path) -> None:
    (root / "meta/info.json").unlink()


def _nan_action(root: Path) -> None:
    def f(t: pa.Table) -> pa.Table:
        a = t.column("action").combine_chunks().flatten().to_numpy().copy()
        a[8 * 3 + 2] = np.nan
        return t.set_column(t.column_names.index("action"), "action", pa.FixedSizeListArray.from_arrays(pa.array(a), 8))
    rewrite_parquet(data_file(root), f)


BAD_DEMOS = {
    "wrong action width": (_seven_wide, "action feature is [7] wide"),
    "wrong action width in the data": (_seven_wide_data_only, "actions are 7 wide"),
    "unknown task": (_unknown_task, "unknown task (demo episode 1"),
    "missing scene seed column": (_no_seed_column, "lacks the scene seed column 'simfail.seed'"),
    "missing scene seed value": (_null_seed, "episode 1 has no scene seed"),
    "not a dataset (no info.json)": (_no_info, "is not a LeRobot dataset"),
    "non-finite action": (_nan_action, "the action at frame 3 is not finite"),
}


@pytest.mark.parametrize("case", list(BAD_DEMOS))
def test_a_bad_demo_dataset_is_one_error_and_writes_nothing(case, small_demo, tmp_path, capsys):
    edit, expected = BAD_DEMOS[case]
    edit(small_demo)
    out = tmp_path / "out"
    rc, _, err = run_cli([f"demos={small_demo}", f"out={out}", *SMALL], capsys)
    line = one_error(err)
    assert rc == 2 and expected in line, line
    assert not out.exists()


def test_a_path_that_is_not_a_dataset_is_one_error(tmp_path, capsys):
    (tmp_path / "file.txt").write_text("x")
    for demos, expected in ((tmp_path / "missing", "no such folder"), (tmp_path / "file.txt", "not a folder"),
                            (tmp_path, "is not a LeRobot dataset")):
        rc, _, err = run_cli([f"demos={demos}", f"out={tmp_path / 'out'}", *SMALL], capsys)
        assert rc == 2 and expected in one_error(err)
        assert not (tmp_path / "out").exists()


def test_an_episode_the_dataset_lacks_is_one_error(small_demo, tmp_path, capsys):
    rc, _, err = run_cli([f"demos={small_demo}", "episodes=[5]", f"out={tmp_path / 'out'}", *SMALL], capsys)
    assert rc == 2 and "has no episode 5" in one_error(err)
    assert not (tmp_path / "out").exists()


def test_the_recorder_refuses_bad_episodes(tmp_path):
    from simfail.errors import ConfigError, OutputDirError, UnknownNameError

    rec = DemoRecorder(tmp_path / "d", fps=5)
    with pytest.raises(UnknownNameError):
        rec.add("pick_n_place", 0, np.zeros((4, 8)))
    with pytest.raises(ConfigError, match="must be"):
        rec.add("pick_place", 0, np.zeros((4, 7)))
    with pytest.raises(ConfigError, match="NaN"):
        rec.add("pick_place", 0, np.full((4, 8), np.nan))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(OutputDirError, match="not an empty folder"):
        DemoRecorder(tmp_path / "full", fps=5)
    with pytest.raises(OutputDirError, match="refusing to overwrite"):
        DemoRecorder(tmp_path / "full", fps=5, overwrite=True)  # not a dataset: never deleted
    with pytest.raises(ConfigError, match="no episodes"):
        rec.close()
    assert not (tmp_path / "d").exists()


def test_an_unusable_out_is_refused_before_any_replay(small_demo, tmp_path, capsys):
    full = tmp_path / "full"
    full.mkdir()
    (full / "notes.txt").write_text("mine")
    rc, _, err = run_cli([f"demos={small_demo}", f"out={full}", *SMALL], capsys)
    assert rc == 2 and "is not empty" in one_error(err)
    assert [p.name for p in full.iterdir()] == ["notes.txt"]
    out = tmp_path / "out"
    assert run_cli([f"demos={small_demo}", "episodes=[0]", f"out={out}", *SMALL], capsys)[0] == 0
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    rc, _, err = run_cli([f"demos={small_demo}", f"out={out}", "resume=true", "seed=4", *SMALL], capsys)
    assert rc == 2 and "with other settings: seed was 0, now 4" in one_error(err)
    rc, _, err = run_cli([f"demos={tmp_path}", f"out={out}", "resume=true", *SMALL], capsys)
    assert rc == 2 and "cannot resume" in one_error(err)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


@pytest.mark.slow
def test_a_policy_rollout_dataset_replays_bit_for_bit(tmp_path, capsys):
    """simfail rollout datasets are demo datasets too (policy commands, not IK targets)."""
    roll = tmp_path / "roll"
    assert main(["rollout", "policy=noisy_expert", "task=stack", "seeds=1", "samples=2", "render.fps=5",
                 f"out={roll}", *SMALL]) == 0
    rc, text, _ = run_cli([f"demos={roll}", *SMALL], capsys)
    assert rc == 0 and "checked against sim.qpos: 2   divergences: 0   max |qpos diff|: 0" in text, text


@pytest.mark.slow
def test_demos_of_several_tasks_replay_into_one_dataset(tmp_path, capsys):
    """Episodes of two tasks (qpos of different widths, zero-padded by the recorder) in one demo
    dataset: each replays on its own task's runner, bit for bit, into one checked dataset."""
    from simfail.config import GenerateConfig
    from simfail.generate import generate_group

    cfg = GenerateConfig()
    cfg.render.width = cfg.render.height = 64
    cfg.render.fps = 5
    cfg.failures.names = ["drop"]
    with DemoRecorder(tmp_path / "demos", fps=5) as rec:
        for task in ("pick_place", "stack"):
            ep = generate_group(get_task(task), cfg, 0, render=False).episodes[0]
            rec.add(task, ep.seed, ep.columns["action"], ep.columns["sim.qpos"], ep.instruction)
    demos = load_demos(tmp_path / "demos")
    assert [d.task for d in demos.episodes] == ["pick_place", "stack"]
    widths = {d.task: d.qpos.shape[1] for d in demos.episodes}
    assert widths["pick_place"] == widths["stack"]  # padded to the widest
    out = tmp_path / "out"
    rc, text, _ = run_cli([f"demos={tmp_path / 'demos'}", f"out={out}", *SMALL], capsys)
    assert rc == 0 and "checked against sim.qpos: 2   divergences: 0   max |qpos diff|: 0" in text, text
    assert main(["check", str(out)]) == 0
    ds = SimfailDataset(out)
    assert [ds.episode(i)["simfail.task"] for i in range(2)] == ["pick_place", "stack"]
    assert ds.simfail_meta["task"] == "all" and set(ds.simfail_meta["tasks"]) == {"pick_place", "stack"}
