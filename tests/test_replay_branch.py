"""Counterfactual variants branched from replayed demos (``simfail replay failures=[...]``): the
prefix up to the onset is the demo's bit for bit, realization is counted, bad operator input is
one error line and writes nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.cli import main
from simfail.dataset.reader import SimfailDataset

from test_replay import SMALL, generated, one_error, run_cli  # noqa: F401  (generated: a fixture)


@pytest.fixture(scope="module")
def branched(generated, tmp_path_factory):  # noqa: F811
    """Demo 0 (the generated expert's episode) with gripper_release and push variants (failure
    and near miss)."""
    out = tmp_path_factory.mktemp("replay_branch") / "out"
    assert main(["replay", f"demos={generated}", "episodes=[0]", "failures=[gripper_release,push]",
                 f"out={out}", f"json={out.parent / 'summary.json'}", *SMALL]) == 0
    return out


def test_variants_share_the_demo_prefix_bit_for_bit(branched):
    ds = SimfailDataset(branched)
    assert main(["check", str(branched)]) == 0
    groups = ds.groups()
    assert sorted(groups) == [0]
    seen = set()
    for gid, eps in groups.items():
        ref = eps[0]
        assert ds.episode(ref)["simfail.variant"] == "demo"
        rc = ds.episode_columns(ref)
        variants = [ds.episode(i)["simfail.variant"] for i in eps[1:]]
        assert variants == ["gripper_release", "gripper_release:near_miss", "push", "push:near_miss"]
        for i in eps[1:]:
            pert = json.loads(ds.episode(i)["simfail.perturbation"])
            k = pert["onset_frame"]
            assert 0 <= k < len(rc["sim.qpos"]) - 1
            assert pert["source"] == {"dataset": pert["source"]["dataset"], "episode": gid, "kind": "demo",
                                      "scene_seed": ds.episode(ref)["simfail.seed"]}
            assert pert["continuation"] == "open_loop"
            vc = ds.episode_columns(i)
            for col in ("sim.qpos", "sim.qvel", "observation.state", "progress"):
                assert np.array_equal(vc[col][: k + 1], rc[col][: k + 1]), (gid, pert["name"], col)
            assert np.array_equal(vc["action"][:k], rc["action"][:k])  # action[k] is the variant's step k
            if not np.array_equal(vc["sim.qpos"], rc["sim.qpos"]):
                seen.add(pert["name"])
    assert seen == {"gripper_release", "push"}  # both operators changed something after their onsets


def test_realization_is_counted_per_operator(branched):
    """The summary's realization: failure variants whose events add an intended type the demo lacks."""
    from simfail.counterfactual.operators import get_operator

    s = json.loads((branched.parent / "summary.json").read_text())
    assert s["demos"] == 1 and s["groups"] == 1 and s["variants"] == 4 and s["divergences"] == 0
    ds = SimfailDataset(branched)
    expected: dict[str, dict[str, int]] = {}
    for eps in ds.groups().values():
        had = {e.type for e in ds.failures(eps[0])}
        for i in eps[1:]:
            pert = json.loads(ds.episode(i)["simfail.perturbation"])
            if pert["kind"] != "failure":
                continue
            new = [e for e in ds.failures(i) if e.type not in had]
            r = expected.setdefault(pert["name"], {"realized": 0, "variants": 0})
            r["variants"] += 1
            r["realized"] += int(get_operator(pert["name"]).realized(new))
    assert s["realized"] == expected
    assert sum(r["variants"] for r in expected.values()) == 2


# ------------------------------------------------------------------ bad operator input


@pytest.mark.parametrize("args, expected", [
    (["failures=[gripper_release]", "gripper_release.onset=frame:500"], "lies past the episode's last step"),
    (["failures=[gripper_release]", "gripper_release.onset=1.5"], "must be in [0, 1]"),
    (["failures=[push]", "push.object=blue_whale"], "unknown push object 'blue_whale'"),
    (["failures=[teleport]"], "unknown generic operator 'teleport'"),
    (["failures=[push]", "push.wobble=3"], "'wobble'"),
    (["failures=[push]", "gripper_release.onset=0.5"], "which failures= does not list"),
    (["continuation=sideways"], "continuation"),
])
def test_bad_operator_input_is_one_error_and_writes_nothing(generated, tmp_path, capsys, args, expected):  # noqa: F811
    out = tmp_path / "out"
    rc, _, err = run_cli([f"demos={generated}", "episodes=[0]", *args, f"out={out}", *SMALL], capsys)
    line = one_error(err)
    assert rc == 2 and expected in line, line
    assert not out.exists()
