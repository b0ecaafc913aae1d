"""The command registry and typed configs: help for every command, type/range/key errors as one
line (with the nearest key), a full disk mid-run, Gymnasium ids on ``import simfail``, and a
command plugged in with one entry."""

from __future__ import annotations

import dataclasses
import errno
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import generate_argv

from simfail import commands as C
from simfail.cli import main
from simfail.dataset.reader import SimfailDataset

ALL_COMMANDS = ("generate", "bench", "rates", "check", "list", "evaluate", "compare", "train-reward", "realism",
                "paired", "calibrate")


def run_error(capsys, argv: list[str]) -> str:
    capsys.readouterr()
    rc = main(argv)
    out, err = capsys.readouterr()
    assert rc == 2, (argv, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("simfail: error: "), lines
    assert "Traceback" not in out + err
    return lines[0]


def test_every_command_is_registered():
    assert set(ALL_COMMANDS) <= set(C.COMMANDS)


def test_top_level_help_lists_every_command(capsys):
    for flag in ([], ["--help"], ["-h"], ["help"]):
        assert main(flag) == 0
        out = capsys.readouterr().out
        for name in C.COMMANDS:
            assert f"  {name} " in out, (flag, name)


@pytest.mark.parametrize("name", ALL_COMMANDS)
def test_command_help_lists_every_key_with_type_default_and_example(capsys, name):
    from simfail.schema import _sub_schema, schema_keys

    for flag in ("--help", "-h"):
        assert main([name, flag]) == 0
        out, err = capsys.readouterr()
        assert err == "" and out.startswith(f"usage: simfail {name}")
        for key, (f, tp) in schema_keys(C.get_command(name).schema).items():
            line = next((ln for ln in out.splitlines() if ln.startswith(f"  {key} ") or ln.startswith(f"  {key}.*")),
                        None)
            assert line is not None, f"{name}: {key} missing from the help:\n{out}"
            if _sub_schema(tp) is None:
                assert "e.g. " in line and "(" in line, line  # type; default; range; example
                if f.metadata.get("range"):
                    assert ">=" in line or "in [" in line, line
    assert main(["help", name]) == 0
    assert capsys.readouterr().out.startswith(f"usage: simfail {name}")


def test_help_shows_the_composed_defaults_and_the_config_groups(capsys):
    assert main(["generate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "render.width  (int; default 256; in [64, 1024]; e.g. render.width=128)" in out
    assert "task: all, open_close, pick_place, pour" in out and "failures: all, sweep" in out
    assert main(["realism", "--help"]) == 0
    out = capsys.readouterr().out
    assert "fidelity.edge_min  (float; default 0.57" in out  # configs/realism.yaml's value


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["generate", "render.fps=abc"], ["render.fps", "abc", "int", "e.g. render.fps="]),
        (["generate", "seed=1.5"], ["seed", "1.5", "int"]),
        (["generate", "progress=maybe"], ["progress", "bool"]),
        (["generate", "render.mesh_scale=big"], ["render.mesh_scale", "float"]),
        (["generate", "grups=3"], ["'grups'", "did you mean 'groups'?"]),
        (["generate", "render.widht=64"], ["'render.widht'", "did you mean 'render.width'?"]),
        (["generate", "rendr.width=64"], ["'rendr'", "did you mean 'render'?"]),
        (["generate", "task=pourr"], ["did you mean 'pour'?"]),
        (["generate", "failures=[drp]"], ["did you mean 'drop'?"]),
        (["generate", "seed=-1"], ["seed must be >= 0"]),
        (["generate", "dataset.preset=turbo"], ["dataset.preset", "turbo"]),
        (["bench", "repeats=1.5"], ["repeats", "int"]),
        (["rates", "groups=0"], ["groups must be >= 1"]),
        (["evaluate", "data=x", "bootstrp=3"], ["did you mean 'bootstrap'?"]),
        (["evaluate", "data=x", "batch_size=0"], ["batch_size must be >= 1"]),
        (["evaluate", "data=x", "confidence=abc"], ["confidence", "float"]),
        (["train-reward", "data=x", "out=y", "epoch=3"], ["did you mean 'epochs'?"]),
        (["train-reward", "data=x", "out=y", "lr=fast"], ["lr", "float"]),
        (["realism", "data=x", "out=y", "strenght=0.5"], ["did you mean 'strength'?"]),
        (["realism", "data=x", "out=y", "strength=2"], ["strength must be in [0.0, 1.0]"]),
        (["realism", "data=x", "out=y", "fidelity.edge_mn=0.5"], ["did you mean 'fidelity.edge_min'?"]),
        (["paired", "a", "b", "n_boot=0"], ["n_boot must be >= 1"]),
        (["paired", "a"], ["two reports"]),
        (["calibrate", "x", "max_groups=0"], ["max_groups must be >= 1"]),
        (["calibrate", "x", "sed=1"], ["did you mean 'seed'?"]),
        (["calibrate"], ["data= is required"]),
        (["check"], ["data= is required"]),
        (["check", "a", "b"], ["one data argument"]),
        (["list", "x"], ["expected key=value"]),
        (["frobnicate"], ["unknown command 'frobnicate'"]),
        (["genrate"], ["did you mean 'generate'?"]),
    ],
)
def test_bad_values_are_one_line_before_any_work(capsys, tmp_path, monkeypatch, argv, needles):
    monkeypatch.chdir(tmp_path)
    line = run_error(capsys, argv)
    for n in needles:
        assert n in line, (n, line)
    assert list(tmp_path.iterdir()) == []


def test_cfg_of_a_plugged_in_command_and_positional_arguments(capsys, tmp_path):
    """A new command is one registry entry: a dataclass with documented fields, validate(), run()."""
    from simfail.errors import ConfigError

    seen = {}

    @dataclass
    class MergeConfig:
        inputs: list[str] = field(default_factory=list, metadata={"help": "datasets", "example": "simfail merge A B",
                                                                  "positional": True, "required": True})
        out: str = field(default="merged", metadata={"help": "output folder", "example": "out=DIR"})
        level: int = field(default=3, metadata={"help": "a level", "example": "level=2", "range": (0, 9)})

        def validate(self):
            if self.out in self.inputs:
                raise ConfigError("out must not be one of the inputs")

    def run(cfg):
        seen["cfg"] = cfg
        return 0

    C.register(C.Command("merge-test", "merge datasets", MergeConfig, run, example="simfail merge-test A B out=C"))
    try:
        assert main(["merge-test", "a", "b", "out=c", "level=2"]) == 0
        assert seen["cfg"] == MergeConfig(inputs=["a", "b"], out="c", level=2)
        assert main(["merge-test", "a", "--cfg"]) == 0
        assert json.loads(capsys.readouterr().out) == {"inputs": ["a"], "out": "merged", "level": 3}
        assert "level=10" and "level must be in [0, 9]" in run_error(capsys, ["merge-test", "a", "level=10"])
        assert "did you mean 'level'?" in run_error(capsys, ["merge-test", "a", "levle=1"])
        assert "out must not be one of the inputs" in run_error(capsys, ["merge-test", "a", "out=a"])
        assert main(["merge-test", "--help"]) == 0
        out = capsys.readouterr().out
        assert "usage: simfail merge-test INPUTS ..." in out and "level  (int; default 3; in [0, 9]; e.g. level=2)" in out
    finally:
        C.COMMANDS.pop("merge-test")


def test_config_modules_do_not_import_cli():
    """The helpers live in simfail.schema; the command modules no longer import simfail.cli."""
    root = Path(__file__).resolve().parents[1] / "simfail"
    for rel in ("stress/commands.py", "learn/commands.py", "realism/commands.py", "realism/calibrate.py",
                "commands.py", "schema.py", "config.py"):
        text = (root / rel).read_text()
        assert "from simfail.cli import" not in text.replace("from simfail.cli import main as cli_main", ""), rel


def test_import_simfail_registers_the_env_ids_without_mujoco():
    code = (
        "import sys, time\n"
        "t = time.perf_counter()\n"
        "import simfail\n"
        "dt = time.perf_counter() - t\n"
        "import gymnasium as gym\n"
        "gym.register_envs(simfail)\n"
        "ids = sorted(k for k in gym.registry if k.startswith('simfail/'))\n"
        "heavy = [m for m in ('mujoco', 'simfail.env', 'simfail.core.task', 'simfail.scenes.pick_place') if m in sys.modules]\n"
        "env = gym.make('simfail/PickPlace-v0', width=64, height=64)\n"
        "obs, info = env.reset(seed=0)\n"
        "print(ids, heavy, sorted(obs), type(env.unwrapped).__name__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    from simfail.core.task import task_names
    from simfail.env import env_id

    expected = sorted(env_id(t) for t in task_names())
    assert out.stdout.strip() == f"{expected} [] ['objects', 'state', 'tcp_pos'] SimfailEnv"
    assert "simfail/PickPlace-v0" in expected and len(expected) == 7


def test_one_task_registry():
    from simfail import task_registry
    from simfail.core import task as core_task

    assert core_task.register_task is task_registry.register_task and core_task.TASKS is task_registry.TASKS
    assert not hasattr(core_task, "TASK_MODULES")
    assert type(core_task.get_task("pick_place")).__name__ == "PickPlace"
    assert task_registry.TASKS["pick_place"] is type(core_task.get_task("pick_place"))


def test_full_disk_mid_run_is_one_line_and_the_committed_groups_stay_usable(capsys, tmp_path, monkeypatch):
    """ENOSPC while group 1 is written: one line (what happened, what is safe, resume=true);
    group 0 stays committed, simfail check passes, and resume completes the dataset."""
    from simfail.dataset import writer as W

    original = W._write_file
    calls = {"n": 0}

    def write_until_full(path, data):
        if "group-000001" in str(path) or calls.get("full"):
            calls["full"] = True
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return original(path, data)

    monkeypatch.setattr(W, "_write_file", write_until_full)
    out = tmp_path / "ds"
    line = run_error(capsys, generate_argv(out, "groups=2", "failures=[drop]"))
    assert "out of disk space" in line and "intact" in line and "resume=true" in line and "free" in line
    monkeypatch.setattr(W, "_write_file", original)
    assert main(["check", str(out)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")
    assert sorted(SimfailDataset(out).groups()) == [0]
    assert main(generate_argv(out, "groups=2", "failures=[drop]", "resume=true")) == 0
    ds = SimfailDataset(out)
    assert ds.check() == [] and sorted(ds.groups()) == [0, 1]


def test_old_module_entry_points_are_aliases(tmp_path, capsys):
    from simfail.learn import paired
    from simfail.realism import calibrate

    capsys.readouterr()
    assert paired.main([str(tmp_path / "a")]) == 2
    assert "two reports" in capsys.readouterr().err
    assert calibrate.main(["colour=red", "data=x"]) == 2
    assert "unknown calibrate setting 'colour'" in capsys.readouterr().err


def test_dataclass_defaults_match_the_packaged_yaml():
    """The YAML primary configs and the schemas agree (so the help's defaults are the real ones)."""
    from simfail.schema import compose

    for name in ("generate", "bench", "evaluate", "train-reward", "realism"):
        cmd = C.get_command(name)
        composed = compose(cmd.yaml_name, [], schema=cmd.schema)
        defaults = dataclasses.asdict(cmd.schema())
        for key, value in composed.items():
            if key in ("out", "task"):
                continue
            assert defaults[key] == value, (name, key, defaults[key], value)


def test_a_command_that_parses_its_own_arguments_plugs_in_while_it_is_ported(capsys):
    seen = []

    def cmd_legacy(args):
        """simfail legacy-test key=value ...: a command not yet ported to a typed config."""
        seen.append(list(args))
        return 0

    C.register(C.Command("legacy-test", "an old-style command", None, cmd_legacy))
    try:
        assert main(["legacy-test", "a=1", "b"]) == 0 and seen == [["a=1", "b"]]
        assert main(["legacy-test", "--help"]) == 0
        assert "not yet ported" in capsys.readouterr().out
    finally:
        C.COMMANDS.pop("legacy-test")


def test_ffmpeg_out_of_space_is_the_same_one_line(capsys, monkeypatch, tmp_path):
    """ffmpeg reports a full disk in its own words (a VideoCodecError): the same one line."""
    from simfail import dataset_commands
    from simfail.dataset.video import VideoCodecError

    def full(cfg):
        raise VideoCodecError("ffmpeg exited with status 1 while encoding x.mp4: ... No space left on device")

    monkeypatch.setattr(dataset_commands, "run_generate", full)
    line = run_error(capsys, ["generate", f"out={tmp_path / 'ds'}", "groups=1"])
    assert "out of disk space" in line and "resume=true" in line and "intact" in line
