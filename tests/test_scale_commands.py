"""``simfail rollout executor=ray`` and ``simfail realism executor=ray`` on a local Ray cluster:
the same executor interface and shard driver as ``generate``, one dataset equal to a local
run's (parquet and video bytes; ``meta/simfail.json`` differs only by the executor settings and
the timing), empty groups skipped as a local run skips them."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

from simfail.cli import main  # noqa: E402
from simfail.dataset import layout as L  # noqa: E402
from simfail.dataset.reader import SimfailDataset  # noqa: E402

from editor_helpers import SHUFFLE_TILES  # noqa: E402

#: An editor that rejects group 1 (every episode scrambled: the fidelity check refuses it) and
#: copies every other group; seeded per group like every realism editor, so the result does not
#: depend on which worker edits which group.
GROUP1_SCRAMBLER = SHUFFLE_TILES + textwrap.dedent('''
    from simfail.realism.edit import group_seed


    class ScrambleGroupOne:
        def edit(self, frames, control, *, prompt, negative_prompt, seed):
            if seed != group_seed(0, 1):
                return frames.copy()
            return shuffle_tiles(frames)
''')


@pytest.fixture(scope="module")
def editor_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("editors")
    (d / "scale_scrambler.py").write_text(GROUP1_SCRAMBLER)
    return d


@pytest.fixture(scope="module")
def cluster(editor_dir):
    """A local Ray instance whose workers can import the test editor (``PYTHONPATH``)."""
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([str(editor_dir)] + ([old] if old else []))
    try:
        ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _same_bytes_but_meta(a: Path, b: Path) -> tuple[dict, dict]:
    fa, fb = _files(a), _files(b)
    assert sorted(fa) == sorted(fb)
    for rel in fa:
        if rel != L.SIMFAIL_META_PATH:
            assert fa[rel] == fb[rel], rel
    return tuple(json.loads((p / L.SIMFAIL_META_PATH).read_text()) for p in (a, b))


ROLLOUT = ["rollout", "policies=[expert,noisy=noisy_expert]", "task=pick_place", "seeds=3", "samples=1",
           "include_expert=true", "render.width=64", "render.height=64", "render.fps=5", "progress=false"]


def test_rollout_on_ray_equals_the_local_run(cluster, tmp_path, capsys):
    local, sharded = tmp_path / "local", tmp_path / "ray"
    assert main([*ROLLOUT, f"out={local}", "json=" + str(tmp_path / "local.json")]) == 0
    capsys.readouterr()
    assert main([*ROLLOUT, f"out={sharded}", "json=" + str(tmp_path / "ray.json"), "executor=ray",
                 "ray.workers=2", "ray.groups_per_task=2"]) == 0
    printed = capsys.readouterr().out
    assert "executor: ray" in printed and "worker (host:pid)" in printed
    ma, mb = _same_bytes_but_meta(local, sharded)
    ca, cb = ma.pop("config"), mb.pop("config")
    assert ma == mb  # groups, seeds, rollout record
    assert cb["executor"] == "ray" and {k: v for k, v in ca.items() if k not in ("out", "executor", "ray", "json")} == \
        {k: v for k, v in cb.items() if k not in ("out", "executor", "ray", "json")}
    assert not (sharded / ".shards").exists()
    sa, sb = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("local", "ray"))
    assert sa["policies"] == sb["policies"] and sa["episodes"] == sb["episodes"] == 9
    assert sum(w["episodes"] for w in sb["workers"].values()) == 9
    assert SimfailDataset(sharded).check() == []


def test_rollout_on_ray_without_rendering_gives_the_local_summary(cluster, tmp_path):
    a, b = tmp_path / "local.json", tmp_path / "ray.json"
    assert main([*ROLLOUT, f"out={tmp_path / 'none'}", "render=false", f"json={a}"]) == 0
    assert main([*ROLLOUT, f"out={tmp_path / 'none'}", "render=false", f"json={b}", "executor=ray", "ray.workers=2",
                 "ray.groups_per_task=1"]) == 0
    sa, sb = (json.loads(p.read_text()) for p in (a, b))
    assert sa["out"] is None and sb["out"] is None and not (tmp_path / "none").exists()
    assert sa["policies"] == sb["policies"] and sa["groups"] == sb["groups"] == 3


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    out = tmp_path_factory.mktemp("realism_src") / "ds"
    assert main(["generate", f"out={out}", "render.width=64", "render.height=64", "render.fps=2", "groups=3",
                 "failures=[drop]", "progress=false"]) == 0
    return out


def test_realism_on_ray_equals_the_local_run_and_skips_the_rejected_group(cluster, source, editor_dir, tmp_path,
                                                                          monkeypatch, capsys):
    monkeypatch.syspath_prepend(str(editor_dir))
    base = ["realism", f"data={source}", "model=scale_scrambler:ScrambleGroupOne", "progress=false"]
    local, sharded = tmp_path / "local", tmp_path / "ray"
    assert main([*base, f"out={local}"]) == 0
    capsys.readouterr()
    assert main([*base, f"out={sharded}", "executor=ray", "ray.workers=2", "ray.groups_per_task=1"]) == 0
    printed = capsys.readouterr().out
    assert "executor: ray" in printed and "left out" not in printed.split("executor: ray")[1]
    ma, mb = _same_bytes_but_meta(local, sharded)
    ra, rb = ma.pop("realism"), mb.pop("realism")
    assert ma == mb  # the source's meta and the groups kept
    assert sorted(ma["groups"]) == ["0", "2"]
    ta, tb = ra.pop("timing"), rb.pop("timing")
    assert ra == rb  # prompts, fidelity entries with the output's episode indices, rejections, empty groups
    assert ra["empty_groups"] == [1] and [e.get("episode") for e in ra["episodes"]] == [0, 1, None, None, 2, 3]
    assert ta["frames"] == tb["frames"] and tb["shards"] == 3
    assert SimfailDataset(sharded).check() == []
    assert not (sharded / ".shards").exists()
