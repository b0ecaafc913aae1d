"""The ``simfail`` command line: user errors, ``list``, ``--cfg``, and resuming a run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import generate_argv

from simfail.cli import main
from simfail.dataset.reader import SimfailDataset


def snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def run_error(capsys, argv: list[str]) -> str:
    """Run ``main(argv)``; assert exit code 2 and one ``simfail: error:`` line; return it."""
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (argv, out, err)
    lines = err.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {lines!r}"
    assert lines[0].startswith("simfail: error: "), lines[0]
    assert "Traceback" not in out + err
    return lines[0]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory (nothing may appear in it, nor under ``out``)."""
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return cwd


@pytest.mark.parametrize(
    "extra, needle",
    [
        (["task=nope"], "nope"),
        (["failures=[drop,nope]"], "nope"),
        (["failures=nope"], "nope"),
        (["render.width=7"], "render.width"),
        (["render.height=1025"], "render.height"),
        (["render.width=65"], "render.width"),
        (["groups=0"], "groups"),
        (["groups=-3"], "groups"),
        (["resume=true", "overwrite=true"], "resume"),
        (["render=nope"], "nope"),
        (["bogus_key=1"], "bogus_key"),
        (["groups=abc"], "abc"),
        (["render.fps=0"], "fps"),
        (["dataset.crf=99"], "crf"),
        (["dataset.encoder_nice=20"], "encoder_nice"),
        (["failures.sweep=[0.5,2.0]"], "sweep"),
    ],
)
def test_bad_inputs_exit_2_with_one_line_and_write_nothing(capsys, workdir, tmp_path, extra, needle):
    out = tmp_path / "out"
    line = run_error(capsys, generate_argv(out, "groups=1", *extra))
    assert needle in line
    assert not out.exists(), f"{extra}: {out} was created"
    assert list(workdir.iterdir()) == [], f"{extra}: wrote {list(workdir.iterdir())} into the working directory"


def test_unknown_failure_lists_the_known_ones(capsys, workdir, tmp_path):
    line = run_error(capsys, generate_argv(tmp_path / "out", "failures=[drop,nope]"))
    for name in ("drop", "collision", "missed_grasp", "shaky"):
        assert name in line


def test_non_empty_out_dir_is_left_untouched(capsys, workdir, tmp_path):
    out = tmp_path / "busy"
    (out / "sub").mkdir(parents=True)
    (out / "notes.txt").write_text("mine\n")
    (out / "sub" / "data.bin").write_bytes(b"\x00\x01")
    before = snapshot(out)
    line = run_error(capsys, generate_argv(out, "groups=1"))
    assert "not empty" in line
    assert snapshot(out) == before
    assert sorted(p.name for p in out.rglob("*")) == ["data.bin", "notes.txt", "sub"]


def test_overwrite_refuses_a_foreign_directory(capsys, workdir, tmp_path):
    out = tmp_path / "foreign"
    out.mkdir()
    (out / "precious.txt").write_text("do not delete")
    before = snapshot(out)
    run_error(capsys, generate_argv(out, "groups=1", "overwrite=true"))
    run_error(capsys, generate_argv(out, "groups=1", "resume=true"))
    assert snapshot(out) == before


def test_resume_with_different_settings_is_refused(capsys, workdir, tmp_path, cli_dataset):
    out = tmp_path / "copy"
    shutil.copytree(cli_dataset, out)
    before = snapshot(out)
    argv = ["generate", f"out={out}", "render.width=96", "render.height=64", "progress=false", "groups=2",
            "resume=true"]
    line = run_error(capsys, argv)
    assert "resume" in line
    assert snapshot(out) == before


def test_unknown_command(capsys):
    capsys.readouterr()
    assert main(["frobnicate"]) == 2
    out, err = capsys.readouterr()
    assert len(err.splitlines()) == 1 and err.startswith("simfail: error:")


def test_check_usage_error(capsys):
    run_error(capsys, ["check"])
    run_error(capsys, ["check", "/nonexistent/simfail/dataset"])


def test_help(capsys):
    assert main([]) == 0
    assert "generate" in capsys.readouterr().out
    assert main(["--help"]) == 0


def test_list_prints_every_operator(capsys, task):
    capsys.readouterr()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "pick_place" in out
    for name, p in task.perturbations().items():
        line = next((ln for ln in out.splitlines() if ln.strip().startswith(name + " ")), None)
        assert line is not None, f"{name} missing from `simfail list`:\n{out}"
        assert p.description in line
        for kind in p.intended:
            assert kind in line


def test_cfg_prints_the_composed_config_as_json(capsys, workdir, tmp_path):
    capsys.readouterr()
    out = tmp_path / "never"
    rc = main(["generate", "--cfg", "groups=5", "seed=3", "render.width=128", "failures=[drop,collision]",
               f"out={out}"])
    text, err = capsys.readouterr()
    assert rc == 0 and err == ""
    cfg = json.loads(text)
    assert cfg["groups"] == 5 and cfg["seed"] == 3 and cfg["task"] == "pick_place"
    assert cfg["render"]["width"] == 128 and cfg["render"]["height"] == 256
    assert cfg["failures"]["names"] == ["drop", "collision"]
    assert cfg["out"] == str(out)
    assert cfg["dataset"]["reuse_prefix"] is True
    assert not out.exists() and list(workdir.iterdir()) == []


def test_cfg_with_bad_input_is_an_error(capsys, workdir):
    run_error(capsys, ["generate", "--cfg", "groups=0"])
    run_error(capsys, ["generate", "--cfg", "task=nope"])
    run_error(capsys, ["generate", "--cfg", "render.width=7"])


def test_check_command_on_a_good_dataset(capsys, cli_dataset):
    capsys.readouterr()
    assert main(["check", str(cli_dataset)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")
    assert main(["check", f"data={cli_dataset}"]) == 0  # the key=value form other commands use
    assert capsys.readouterr().out.strip().endswith("ok")


# --------------------------------------------------------------------------- resume


@pytest.fixture(scope="module")
def resumed(cli_dataset, tmp_path_factory):
    """The one-group CLI dataset copied and resumed to two groups."""
    out = tmp_path_factory.mktemp("resumed") / "ds"
    shutil.copytree(cli_dataset, out)
    before = snapshot(out)
    assert main(generate_argv(out, "groups=2", "resume=true")) == 0
    return out, before


def test_resume_adds_the_missing_group_only(resumed):
    out, _ = resumed
    ds = SimfailDataset(out)
    assert ds.check() == []
    groups = ds.groups()
    assert sorted(groups) == [0, 1]
    assert len(groups[0]) == len(groups[1]) == 10
    rows = [(ds.episode(ep)["simfail.group_id"], ds.episode(ep)["simfail.variant"]) for ep in range(ds.num_episodes)]
    assert len(rows) == len(set(rows)) == 20, "duplicate episodes after resume"
    meta = json.loads((out / "meta/simfail.json").read_text())
    assert sorted(meta["groups"]) == ["0", "1"]
    assert meta["groups"]["0"]["seed"] != meta["groups"]["1"]["seed"]


def test_resume_keeps_the_first_groups_files(resumed):
    out, before = resumed
    after = snapshot(out)
    group0 = [rel for rel in before if rel.endswith("file-000.parquet") or rel.endswith("file-000.mp4")]
    assert len(group0) == 5  # data, episodes, three videos
    for rel in group0:
        assert after[rel] == before[rel], f"{rel} changed on resume"
    assert any(rel.endswith("file-001.parquet") for rel in after)


def test_resume_again_is_a_no_op(resumed, capsys):
    out, _ = resumed
    before = snapshot(out)
    capsys.readouterr()
    assert main(generate_argv(out, "groups=2", "resume=true")) == 0
    after = snapshot(out)
    data = [rel for rel in before if rel.startswith(("data/", "videos/", "meta/episodes/"))]
    assert all(after[rel] == before[rel] for rel in data)
    assert set(after) == set(before)
    assert SimfailDataset(out).num_episodes == 20


def test_resumed_group_equals_a_fresh_run(resumed, physics_groups):
    """Group 1 written by a resumed run has the labels a fresh two-group run gives it."""
    from simfail.labels.scoring import dense_reward

    out, _ = resumed
    ds = SimfailDataset(out)
    ep1 = ds.groups()[1]
    prefs = pq.read_table(out / "meta/preferences.parquet").to_pylist()
    assert {(p["episode_a"], p["episode_b"]) for p in prefs if p["group_id"] == 1} <= {
        (a, b) for a in ep1 for b in ep1 if a < b
    }
    fresh = physics_groups[1]
    for ep, rec in zip(ep1, fresh.episodes):
        row = ds.episode(ep)
        assert row["simfail.variant"] == rec.variant
        assert row["simfail.score"] == rec.score
        assert row["simfail.seed"] == fresh.seed
        cols = ds.episode_columns(ep)
        # the fresh run is physics-only: its events keep the physics visible frames, the written
        # ones carry the cameras' (so the reward is checked against the events read back)
        events = ds.failures(ep)
        assert sorted((e.type, e.onset_frame, e.severity) for e in events) == sorted(
            (e.type, e.onset_frame, e.severity) for e in rec.failures)
        assert all(e.visible_in is not None for e in events)
        assert cols["progress"].tobytes() == rec.columns["progress"].tobytes()
        assert cols["reward"].tobytes() == dense_reward(cols["progress"], events).tobytes()
        assert cols["sim.qpos"].tobytes() == rec.columns["sim.qpos"].tobytes()


def test_cfg_rejects_unknown_failure_name(capsys):
    """``--cfg`` validates failure names like a real run does."""
    from simfail.cli import main

    assert main(["generate", "--cfg", "failures=[drop,nope]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error:") and "nope" in err[0]


def test_crash_right_after_a_commit_keeps_the_groups_meta_entry(capsys, workdir, tmp_path, monkeypatch):
    """Killed after group 1's files are committed but before the meta is rewritten: the group's
    entry (task, scene seed) is already in meta/simfail.json, so resume keeps a complete dataset."""
    from simfail.dataset.writer import DatasetWriter

    original = DatasetWriter.write_group

    def write_then_die(self, group_id, episodes, **kw):
        out = original(self, group_id, episodes, **kw)
        if group_id == 1:
            raise KeyboardInterrupt  # group 1 is on disk; the meta rewrite after it never runs
        return out

    monkeypatch.setattr(DatasetWriter, "write_group", write_then_die)
    out = tmp_path / "ds"
    assert main(generate_argv(out, "groups=2")) == 130  # interrupted
    monkeypatch.setattr(DatasetWriter, "write_group", original)
    meta = json.loads((out / "meta/simfail.json").read_text())
    assert sorted(meta["groups"]) == ["0", "1"]

    assert main(generate_argv(out, "groups=2", "resume=true")) == 0
    ds = SimfailDataset(out)
    assert ds.check() == [] and sorted(ds.groups()) == [0, 1]
    meta = json.loads((out / "meta/simfail.json").read_text())
    for g, eps in ds.groups().items():
        assert meta["groups"][str(g)]["seed"] == ds.episode(eps[0])["simfail.seed"]


@pytest.mark.parametrize(
    "extra, needle",
    [(["repeats=abc"], "repeats"), (["repeats=0"], "repeats"), (["json="], "json"),
     (["json=/nonexistent-dir/b.json"], "nonexistent-dir"), (["task=all"], "one task"),
     (["visibility=maybe"], "visibility")],
)
def test_bench_bad_input_is_one_error(capsys, workdir, extra, needle):
    line = run_error(capsys, ["bench", "groups=1", "progress=false", *extra])
    assert needle in line
    assert not any(workdir.iterdir())


def test_bench_writes_its_result_as_json(capsys, workdir):
    rc = main(["bench", "groups=1", "progress=false", "render.width=64", "render.height=64",
               "failures=[drop]", "json=bench.json"])
    out, _ = capsys.readouterr()
    assert rc == 0 and "ratio vs bound" in out
    d = json.loads((workdir / "bench.json").read_text())
    assert d["counts"]["episodes"] == 2 and d["runs"][0]["metrics"]["ratio"] > 0
    assert d["settings"]["width"] == 64
    assert sorted(p.name for p in workdir.iterdir()) == ["bench.json"]  # no temporary left
