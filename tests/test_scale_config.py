"""Executor and GPU settings: checked once, one clear error; the EGL device rule; shard cuts."""

from __future__ import annotations

import pytest

from simfail.cli import main
from simfail.errors import ConfigError
from simfail.scale.gpu import EGL_DEVICE_VAR, egl_device_env, parse_gpu, visible_gpu_count
from simfail.scale.driver import auto_groups_per_task, shard_groups


@pytest.mark.parametrize("arg, needle", [
    ("executor=spark", "unknown executor value 'spark'; known executor values: local, ray"),
    ("executor=rya", "(did you mean 'ray'?)"),
    ("ray.address=nowhere", "ray.address must be"),
    ("ray.address=locl", "(did you mean 'local'?)"),
    ("ray.workers=0", "ray.workers must be >= 1, got 0"),
    ("ray.workers=-1", "ray.workers must be >= 1"),
    ("ray.workers=two", "is not a whole number (int) (e.g. ray.workers=8)"),
    ("ray.wrkers=2", "(did you mean 'ray.workers'?)"),
    ("ray.cpus_per_worker=0", "ray.cpus_per_worker must be > 0"),
    ("ray.max_retries=-2", "ray.max_retries must be >= 0"),
    ("render.gpu=first", "render.gpu must be auto or a GPU index"),
    ("render.gpu=-2", "render.gpu must be auto or a GPU index >= 0, got '-2' (e.g. render.gpu=0"),
    ("render.gpu=aut", "(did you mean 'auto'?)"),
    ("render.backend=vulkan", "unknown render.backend value 'vulkan'"),
])
def test_bad_scale_settings_are_one_error_and_write_nothing(arg, needle, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["generate", f"out={out}", "progress=false", arg]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error:") and needle in err[0]
    assert not out.exists()


def test_generate_help_lists_the_scale_settings(capsys):
    assert main(["generate", "executor=ray", "ray.workers=2", "--help"]) == 0
    out = capsys.readouterr().out
    for key in ("executor  (str; default local; one of local, ray; e.g. executor=ray)",
                "ray.workers  (int | null; default null; >= 1; e.g. ray.workers=8)",
                "ray.address", "ray.cpus_per_worker", "ray.gpus_per_worker", "ray.groups_per_task",
                "ray.max_retries", "render.backend  (str; default egl; one of egl", "render.gpu  (str; default auto"):
        assert key in out, key


def test_bench_refuses_the_ray_executor(capsys):
    assert main(["bench", "executor=ray", "progress=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bench measures the pipeline in this process" in err[0]


def test_egl_device_rule(monkeypatch):
    assert egl_device_env("egl", "auto", 5, visible=4) == {EGL_DEVICE_VAR: "1"}  # round robin
    assert egl_device_env("egl", "auto", 3, visible=0) == {}  # no GPU: llvmpipe chooses
    assert egl_device_env("egl", "2", 7, visible=8) == {EGL_DEVICE_VAR: "2"}  # an index, every worker
    assert egl_device_env("egl", "auto", 7, reserved=True) == {EGL_DEVICE_VAR: "0"}  # Ray's own GPU
    assert egl_device_env("osmesa", "auto", 1, visible=2) == {}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    assert visible_gpu_count() == 2
    assert egl_device_env("egl", "auto", 3) == {EGL_DEVICE_VAR: "1"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert visible_gpu_count() == 0
    assert parse_gpu("auto") is None and parse_gpu(" 1 ") == 1
    with pytest.raises(ConfigError):
        parse_gpu("-1")


def test_local_run_sets_the_chosen_egl_device(monkeypatch, tmp_path):
    """``render.gpu=N`` reaches the environment before the first GL context of a local run."""
    import os

    import simfail.generate as gen

    seen = {}

    def stop(*args, **kwargs):
        seen["device"] = os.environ.get(EGL_DEVICE_VAR)
        raise KeyboardInterrupt

    monkeypatch.delenv(EGL_DEVICE_VAR, raising=False)
    monkeypatch.setattr(gen, "make_group_runner", stop)
    from simfail.commands import build_config

    with pytest.raises(KeyboardInterrupt):
        gen.run(build_config("generate", [f"out={tmp_path / 'o'}", "progress=false", "render.gpu=0"]))
    assert seen["device"] == "0"
    os.environ.pop(EGL_DEVICE_VAR, None)  # the run set it in this process: undo it for later tests


def test_shards_are_consecutive_groups():
    todo = [("pick_place", g) for g in range(7)]
    assert shard_groups(todo, 3) == [todo[0:3], todo[3:6], todo[6:7]]
    assert auto_groups_per_task(100, 2) == 13 and auto_groups_per_task(3, 8) == 1
