"""The temporal part of the fidelity check on a generated episode, and the threshold calibration
(``python -m simfail.realism.calibrate``) on a tiny generated dataset."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from simfail.core.episode import VIEWS

from test_realism_command import generate_small


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    return generate_small(tmp_path_factory.mktemp("realism_cal_src") / "ds")


@pytest.fixture(scope="module")
def collision(small_ds):
    """Frames, conditioning and failures of the collision episode (events in frames 5..14)."""
    from simfail.dataset.reader import SimfailDataset
    from simfail.realism.conditioning import SceneConditioner

    ds = SimfailDataset(small_ds)
    ep = 2
    frames = {v: ds.episode_frames(ep, v) for v in VIEWS}
    with SceneConditioner(ds.simfail_meta, 0, 64, 64) as sc:
        cond = sc.render(ds.episode_columns(ep)["sim.qpos"])
        labels_of = sc.labels_of
        yield frames, cond, ds.failures(ep), labels_of


def _reindexed(frames, idx):
    return {v: np.ascontiguousarray(f[idx]) for v, f in frames.items()}


@pytest.mark.parametrize("edit", ["reverse", "shuffle", "freeze", "hold", "stutter", "delay_3", "advance_3"])
def test_fidelity_rejects_frames_out_of_order(collision, edit):
    from simfail.realism.fidelity import check_episode

    frames, cond, failures, labels_of = collision
    t = 17
    ar = np.arange(t)
    vis = min(f.visible_frame for f in failures)
    idx = {"reverse": ar[::-1], "shuffle": np.random.default_rng(0).permutation(t), "freeze": np.minimum(ar, vis - 2),
           "hold": np.where((ar >= vis - 2) & (ar < vis + 4), vis - 2, ar), "stutter": ar // 2 * 2,
           "delay_3": np.clip(ar - 3, 0, t - 1), "advance_3": np.clip(ar + 3, 0, t - 1)}[edit]
    res = check_episode(frames, _reindexed(frames, idx), cond, failures, labels_of)
    assert not res.passed
    assert res.temporal is not None and res.temporal < 0.5
    assert any(r.startswith("temporal agreement") for r in res.reasons), res.reasons


@pytest.mark.parametrize("edit", ["identity", "colour", "gamma", "blur", "noise", "jpeg", "delay_1", "delay_2"])
def test_fidelity_accepts_appearance_edits_and_small_delays(collision, edit):
    from simfail.realism.calibrate import appearance_edits
    from simfail.realism.fidelity import check_episode

    frames, cond, failures, labels_of = collision
    if edit == "identity":
        edited = frames
    elif edit.startswith("delay_"):
        edited = _reindexed(frames, np.clip(np.arange(17) - int(edit[-1]), 0, 16))
    else:
        edited = appearance_edits(frames, np.random.default_rng(0))[edit]
    res = check_episode(frames, edited, cond, failures, labels_of)
    assert res.passed, res.reasons
    assert res.temporal > 0.9
    assert res.temporal_lag == (-int(edit[-1]) if edit.startswith("delay_") else 0)
    assert res.to_dict()["temporal"] == round(res.temporal, 4)


def test_fidelity_defaults_are_the_shipped_config():
    from simfail.cli import config_keys
    from simfail.realism.fidelity import FidelityConfig

    assert config_keys("realism")["fidelity"] == dataclasses.asdict(FidelityConfig())


def test_calibration_accepts_appearance_and_rejects_destroying_edits(small_ds, tmp_path):
    from simfail.realism.calibrate import APPEARANCE, _parse, calibrate, calibration_table

    cfg = _parse([f"data={small_ds}", f"out={tmp_path / 'cal' / 'report.json'}"])
    report = calibrate(cfg, log=lambda m: None)
    edits = report["edits"]
    assert set(APPEARANCE) <= set(edits)
    assert {"delay_2", "inpaint", "move", "reverse", "shuffle", "freeze", "hold", "stutter", "delay_3", "advance_3",
            "scramble"} <= set(edits)
    for name, e in edits.items():
        if e["kind"] == "destroying":
            assert e["accepted_shipped"] == 0 and e["accepted_suggested"] == 0, (name, e)
        else:
            assert e["accepted_shipped"] == e["n"] == 3 and e["accepted_suggested"] == 3, (name, e)
    assert edits["inpaint"]["n"] == edits["move"]["n"] == 1  # the episode with failure objects (collision)
    assert edits["inpaint"]["object"]["max"] < report["thresholds"]["object"]["threshold"]
    for score, t in report["thresholds"].items():
        assert t["separates"] and t["accept_min"] > t["threshold"] > t["reject_max"], (score, t)
    assert report["shipped"] == {"edge": cfg.fidelity.edge_min, "object": cfg.fidelity.object_min,
                                 "temporal": cfg.fidelity.temporal_min}
    saved = json.loads((tmp_path / "cal" / "report.json").read_text())
    assert saved["thresholds"] == report["thresholds"] and len(saved["rows"]) == len(report["rows"])
    table = calibration_table(report)
    assert "temporal_min" in table and "scramble" in table and "separates" in table


def test_calibration_command_line(small_ds, tmp_path, capsys):
    from simfail.realism.calibrate import main

    assert main([f"data={small_ds}", "max_episodes=1", "fidelity.max_shift=1", f"out={tmp_path / 'r.json'}"]) == 0
    out = capsys.readouterr().out
    assert "delay_1" in out and "delay_2" in out and "edge_min" in out  # max_shift=1: a 2-frame delay is destroying
    assert json.loads((tmp_path / "r.json").read_text())["episodes"] == 1
    # several datasets pooled; an episode's edits are seeded by the episode alone, so the same
    # dataset twice scores the same twice
    assert main([f"data=[{small_ds},{small_ds}]", "max_episodes=2", f"out={tmp_path / 'p.json'}"]) == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["episodes"] == 4 and len(report["datasets"]) == 2
    rows = [{k: v for k, v in r.items() if k != "dataset"} for r in report["rows"]]
    assert rows[: len(rows) // 2] == rows[len(rows) // 2:]
    capsys.readouterr()
    for args, msg in (([f"data={small_ds}", "colour=red"], "unknown calibrate setting 'colour'"),
                      ([f"data={small_ds}", "fidelity.nope=1"], "unknown calibrate setting 'fidelity.nope'"),
                      ([f"data={small_ds}", "max_groups=0"], "max_groups must be >= 1"),
                      ([f"data={small_ds}", "seed=x"], "seed: Value 'x' of type 'str' is not a whole number (int)"),
                      (["max_groups=1"], "data= is required"),
                      ([f"data={tmp_path / 'missing'}"], "")):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("simfail: error: ") and msg in err[0], err
