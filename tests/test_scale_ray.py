"""``simfail generate executor=ray`` on a local Ray cluster (``ray.init(num_cpus=2)``).

One cluster for the module. The default test kills a worker with SIGKILL in the middle of a
group and still gets, after Ray's retry, the bytes of a local run (labels, parquet, videos,
stats): no group lost, none duplicated. The driver-kill test kills the driver process (a
``simfail generate`` on the same cluster) once a shard is committed, and resumes. The EGL device variable reaches the worker processes.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from simfail.dataset import layout as L  # noqa: E402

ARGS = ["task=pick_place", "render.width=64", "render.height=64", "progress=false", "failures=[drop]",
        "groups=3", "seed=0"]


def _cfg(*extra: str):
    from simfail.commands import build_config

    return build_config("generate", ARGS + list(extra))


@pytest.fixture(scope="module")
def cluster():
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    from simfail.generate import run

    out = tmp_path_factory.mktemp("ray_ref") / "local"
    run(_cfg(f"out={out}"))
    return out


def _same_dataset(a: Path, b: Path) -> None:
    files_a = sorted(p.relative_to(a).as_posix() for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b).as_posix() for p in b.rglob("*") if p.is_file())
    assert files_a == files_b
    for rel in files_a:
        if rel != L.SIMFAIL_META_PATH:
            assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    ma, mb = (json.loads((p / L.SIMFAIL_META_PATH).read_text()) for p in (a, b))
    ca, cb = ma.pop("config"), mb.pop("config")
    assert ma == mb
    assert {k: v for k, v in ca.items() if k not in ("out", "executor", "ray", "resume")} == \
        {k: v for k, v in cb.items() if k not in ("out", "executor", "ray", "resume")}


def _work_item_pids() -> list[int]:
    """Processes running a Ray work item (Ray titles them ``ray::run_work_item``)."""
    pids = []
    for path in glob.glob("/proc/[0-9]*/cmdline"):
        try:
            title = open(path, "rb").read().split(b"\0")[0]
        except OSError:
            continue
        if title.startswith(b"ray::run_work_item"):
            pids.append(int(path.split("/")[2]))
    return pids


def _committed(out: Path) -> list[str]:
    return glob.glob(str(out / ".shards/shard-*/meta/episodes/chunk-*/file-*.parquet"))


def test_worker_killed_mid_group_gives_the_bytes_of_a_local_run(cluster, local_run, tmp_path):
    from simfail.scale.executor import RayExecutor
    from simfail.scale.sharded import run_sharded

    out = tmp_path / "ray"
    # one shard of three groups: when its first group is committed, its worker is in the second
    cfg = _cfg(f"out={out}", "executor=ray", "ray.workers=2", "ray.groups_per_task=3")
    killed: list[int] = []

    def kill_after_first_commit():
        deadline = time.time() + 120
        while time.time() < deadline and not _committed(out):
            time.sleep(0.02)
        for pid in _work_item_pids():
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    killer = threading.Thread(target=kill_after_first_commit)
    killer.start()
    summary = run_sharded(cfg, RayExecutor(cfg.ray))
    killer.join()
    assert len(killed) == 1, "one worker was running when the first group was committed"
    assert summary["groups"] == 2  # Ray's retry resumed the shard: the committed group was kept
    assert sum(w["episodes"] for w in summary["workers"].values()) == summary["episodes"]
    assert all(w["episodes_per_hour"] > 0 for w in summary["workers"].values())
    _same_dataset(local_run, out)
    from simfail.dataset.reader import SimfailDataset

    ds = SimfailDataset(out)
    assert ds.check() == []
    assert sorted(json.loads((out / L.SIMFAIL_META_PATH).read_text())["groups"]) == ["0", "1", "2"]


def test_killed_driver_resumes_from_the_committed_shards(cluster, local_run, tmp_path):
    from simfail.scale.executor import RayExecutor
    from simfail.scale.sharded import run_sharded

    out = tmp_path / "driver"
    extra = [f"out={out}", "executor=ray", "ray.workers=2", "ray.groups_per_task=1"]
    argv = [sys.executable, "-P", "-m", "simfail.cli", "generate", *ARGS, *extra, f"ray.address={cluster}"]
    driver = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        while time.time() < deadline and not _committed(out) and driver.poll() is None:
            time.sleep(0.02)
    finally:
        driver.kill()
        driver.wait()
    attached = len(_committed(out))
    assert 1 <= attached < 3
    cfg = _cfg(*extra, "resume=true")
    summary = run_sharded(cfg, RayExecutor(cfg.ray))
    assert summary["groups"] == 3 - attached
    _same_dataset(local_run, out)


def test_egl_device_reaches_every_worker(cluster):
    from simfail.scale.executor import RayConfig, RayExecutor
    from simfail.scale.gpu import EGL_DEVICE_VAR, egl_device_env, worker_egl_device

    before = os.environ.get(EGL_DEVICE_VAR)
    ex = RayExecutor(RayConfig(workers=2))
    env = lambda i: egl_device_env("egl", "auto", i, visible=2)  # noqa: E731 (two GPUs, round robin)
    got = dict(ex.map(worker_egl_device, [0, 1, 2], env=env))
    assert got == {0: "0", 1: "1", 2: "0"}
    assert os.environ.get(EGL_DEVICE_VAR) == before  # set in the workers, not in the driver
