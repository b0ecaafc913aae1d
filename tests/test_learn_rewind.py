"""The rewind learned reward baseline: text embedding, clips (rewound negatives), training,
checkpoints, the ``rewind`` stress model, ``simfail train-reward`` and its errors.

Everything runs on a tiny synthetic dataset (no MuJoCo, no rendering) with a tiny network.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from simfail.cli import main  # noqa: E402
from simfail.dataset.reader import SimfailDataset  # noqa: E402
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group  # noqa: E402
from simfail.dataset.writer import DatasetWriter  # noqa: E402
from simfail.errors import ConfigError, OutputDirError, SimfailError, UnknownNameError  # noqa: E402
from simfail.learn.analysis import report_returns, variant_accuracy  # noqa: E402
from simfail.learn.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from simfail.learn.commands import parse_groups, run_train, train_settings  # noqa: E402
from simfail.learn.data import (  # noqa: E402
    EpisodeData, Pool, forward_indices, load_pool, rewound_indices, sample_batch, select_episodes,
)
from simfail.learn.model import NetConfig, RewindNet  # noqa: E402
from simfail.learn.text import HashedText  # noqa: E402
from simfail.learn.train import TrainConfig, predict_frames, train  # noqa: E402
from simfail.stress import EpisodeInput, available_models, load_model  # noqa: E402
from simfail.stress.commands import cmd_evaluate  # noqa: E402
from simfail.stress.metrics import preference_accuracy  # noqa: E402

TINY_NET = {"feat_dim": 16, "width": 8, "hidden": 16, "temporal": True}
TINY_ARGS = [
    "frame_size=16", "clip_frames=8", "batch_size=4", "batches_per_epoch=3", "epochs=2", "net.feat_dim=16",
    "net.width=8", "net.hidden=16", "text.dim=16", "progress=false",
]
INSTR = ("put the red cube in the bowl", "place the blue ball on the plate", "move the green can to the cup")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Four groups of three episodes (expert + two failures), 12 frames at 32x32."""
    root = tmp_path_factory.mktemp("learn") / "ds"
    w = DatasetWriter(root, fps=10, image_size=(32, 32), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    for g in range(4):
        w.write_group(g, synthetic_group(g, scores=(100.0, 10.0, 60.0), size=(32, 32), instruction=INSTR[g % 3]))
    w.finalize({})
    return root


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("model") / "m"
    s = run_train(train_settings([f"data={data}", f"out={out}", "regime=with_failures", "holdout_groups=[3]", *TINY_ARGS]))
    return out, s


def _pool(ds, regime="with_failures", **kw):
    sel = select_episodes(ds, regime, **kw)
    return load_pool(ds, sel, view="left", frame_size=(16, 16), text=HashedText(16, 2))


# ------------------------------------------------------------------ text and clips


def test_hashed_text_is_stable_and_normalised():
    t = HashedText(32, 2)
    a, b = t.embed("Put the RED cube in the bowl!"), t.embed("put the red cube in the bowl")
    assert a.shape == (32,) and a.dtype == np.float32 and np.array_equal(a, b)
    assert np.linalg.norm(a) == pytest.approx(1.0, abs=1e-6)
    assert not np.array_equal(a, t.embed("put the blue cube in the bowl"))
    assert np.array_equal(t.embed(""), np.zeros(32, np.float32))
    with pytest.raises(ConfigError):
        HashedText(0)


def test_rewound_clips_go_forward_then_back_with_decreasing_targets():
    rng = np.random.default_rng(0)
    target = np.linspace(0.0, 1.0, 40, dtype=np.float32)  # strictly increasing progress
    for _ in range(50):
        idx, i = rewound_indices(40, 12, rng)
        assert len(idx) == 12 and 6 <= i <= 10
        tg = target[idx]
        assert np.all(np.diff(tg[: i + 1]) >= 0)  # forward part
        assert np.all(np.diff(tg[i:]) < 0)  # rewound part: progress targets go back down
        assert np.array_equal(idx[i + 1 :], idx[:i][::-1][: 12 - 1 - i])  # the same frames, played backwards
    fwd = forward_indices(40, 12, rng, crop=False)
    assert fwd[0] == 0 and fwd[-1] == 39 and np.all(np.diff(fwd) >= 0)


def test_sample_batch_marks_rewound_clips():
    ep = EpisodeData(0, np.zeros((20, 8, 8, 3), np.uint8), np.linspace(0, 1, 20, dtype=np.float32), np.ones(4, np.float32), True)
    frames, text, tgt, rew = sample_batch(Pool([ep]), np.random.default_rng(1), 16, 6, 0.5)
    assert frames.shape == (16, 6, 8, 8, 3) and text.shape == (16, 4) and tgt.shape == (16, 6)
    assert 0 < rew.sum() < 16
    assert np.all(tgt[rew][:, -1] < tgt[rew].max(axis=1))  # rewound clips end below their peak
    assert np.all(np.diff(tgt[~rew], axis=1) >= 0)


def test_selection_by_regime_groups_and_held_out_failures(data):
    ds = SimfailDataset(data)
    e = select_episodes(ds, "expert_only")
    assert len(e.experts) == 4 and e.failures == []
    f = select_episodes(ds, "with_failures", holdout_groups=[0], holdout_failures=["perturb_1"])
    assert f.groups == [1, 2, 3] and len(f.experts) == 3 and len(f.failures) == 3
    assert f.skipped_failures == {"perturb_1": 3}
    assert all(ds.episode(x)["simfail.variant"] == "perturb_2" for x in f.failures)
    assert select_episodes(ds, "expert_only", groups=[1, 2]).groups == [1, 2]
    assert parse_groups("1:3", "groups") == [1, 2] and parse_groups([4, 5], "g") == [4, 5] and parse_groups(None, "g") is None


# ------------------------------------------------------------------ training


def test_training_reduces_loss_on_a_tiny_set(data):
    ds = SimfailDataset(data)
    pool = _pool(ds)
    torch.manual_seed(0)
    net = RewindNet(NetConfig(text_dim=16, **TINY_NET))
    frames, text, tgt, _ = sample_batch(pool, np.random.default_rng(123), 12, 8, 0.3)

    def mse() -> float:
        with torch.no_grad():
            return float(((net(torch.from_numpy(frames), torch.from_numpy(text)) - torch.from_numpy(tgt)) ** 2).mean())

    before = mse()
    res = train(net, pool, TrainConfig(epochs=15, batches_per_epoch=4, batch_size=8, clip_frames=8, lr=3e-3, seed=0))
    assert len(res.log) == 15 and all(np.isfinite(r["loss"]) for r in res.log)
    assert res.log[-1]["loss"] < 0.6 * res.log[0]["loss"]
    assert mse() < 0.6 * before


def test_same_seed_same_weights_and_checkpoint_bytes(data, tmp_path):
    outs = []
    for name in ("a", "b", "c"):
        seed = 7 if name != "c" else 8
        run_train(train_settings([f"data={data}", f"out={tmp_path / name}", f"seed={seed}", *TINY_ARGS]))
        outs.append(load_checkpoint(tmp_path / name))
    a, b, c = outs
    assert a["state_dict"].keys() == b["state_dict"].keys()
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert (tmp_path / "a" / "model.pt").read_bytes() == (tmp_path / "b" / "model.pt").read_bytes()
    assert not all(torch.equal(a["state_dict"][k], c["state_dict"][k]) for k in a["state_dict"])


def test_checkpoint_round_trip_gives_identical_predictions(data, tmp_path):
    ds = SimfailDataset(data)
    pool = _pool(ds, "expert_only")
    torch.manual_seed(0)
    net = RewindNet(NetConfig(text_dim=16, **TINY_NET))
    train(net, pool, TrainConfig(epochs=1, batches_per_epoch=2, batch_size=4, clip_frames=8))
    meta = {"net": net.cfg.to_dict(), "text": {"kind": "hashed", "dim": 16, "ngrams": 2},
            "input": {"view": "left", "frame_size": [16, 16], "max_frames": 8}, "train": {}}
    path = save_checkpoint(tmp_path / "ck", net, meta, [{"epoch": 1, "loss": 0.1}])
    assert path.name == "model.pt" and not list((tmp_path / "ck").glob("*.tmp"))
    assert json.loads((tmp_path / "ck" / "train_log.json").read_text())[0]["loss"] == 0.1
    net2, text2 = build_from_checkpoint(load_checkpoint(tmp_path / "ck"))
    ep = pool.episodes[0]
    assert np.array_equal(predict_frames(net, ep.frames, ep.text), predict_frames(net2, ep.frames, text2.embed(
        ds.episode(ep.index)["tasks"][0])))


# ------------------------------------------------------------------ the stress model and the commands


def test_rewind_is_registered_and_returns_dense_values_in_range(trained, data):
    out, summary = trained
    assert "rewind" in available_models()
    assert summary["n_groups"] == 3 and summary["n_failures"] == 6 and summary["holdout_groups"] == [3]
    model = load_model("rewind", checkpoint=str(out))
    req = model.requirements
    assert req.views == ("left",) and req.max_frames == 8 and req.frame_size == (16, 16) and req.output == "dense"
    for t in (1, 5, 8):
        frames = np.random.default_rng(t).integers(0, 256, size=(t, 16, 16, 3), dtype=np.uint8)
        y = model.predict(EpisodeInput(frames={"left": frames}, fps=10.0, instruction=INSTR[0], episode_id="x"))
        assert y.shape == (t,) and y.dtype == np.float64 and np.all((y >= 0) & (y <= 1))
    log = json.loads((out / "train_log.json").read_text())
    assert [r["epoch"] for r in log] == [1, 2] and all("loss" in r for r in log)
    assert json.loads((out / "config.json").read_text())["train"]["summary"]["regime"] == "with_failures"


def test_train_reward_and_evaluate_commands(trained, data, tmp_path, capsys):
    out, _ = trained
    assert main(["train-reward", f"data={data}", f"out={tmp_path / 'm'}", "regime=expert_only", *TINY_ARGS]) == 0
    printed = capsys.readouterr().out
    assert "expert_only" in printed and "checkpoint:" in printed and (tmp_path / "m" / "model.pt").is_file()
    rep = tmp_path / "rep"
    assert cmd_evaluate(["model=rewind", f"model.checkpoint={out}", f"data={data}", f"out={rep}", "bootstrap=50",
                         "curves=0", "video=none", "progress=false"]) == 0
    m = json.loads((rep / "metrics.json").read_text())
    assert m["errors"]["n"] == 0 and m["summary"]["preference"]["n_pairs"] == 12
    assert 0.0 <= m["summary"]["preference"]["accuracy"] <= 1.0
    per = variant_accuracy(rep, data)
    assert set(per) == {"perturb_1", "perturb_2"} and all(v["n_pairs"] == 4 for v in per.values())
    # the returns read back from the cache reproduce the report's overall accuracy
    ds = SimfailDataset(data)
    values = report_returns(rep)
    ctx = {g: ([ds.episode(e)["simfail.score"] for e in eps], [values[e] for e in eps]) for g, eps in ds.groups().items()}
    assert preference_accuracy(ctx).accuracy == pytest.approx(m["summary"]["preference"]["accuracy"])


def _error_line(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: ")
    return err[0]


def test_bad_inputs_give_one_clear_error(data, tmp_path, capsys):
    with pytest.raises(ConfigError, match="does not exist"):
        load_model("rewind", checkpoint=str(tmp_path / "nope"))
    with pytest.raises(ConfigError, match="checkpoint is required"):
        load_model("rewind")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="cannot read"):
        load_model("rewind", checkpoint=str(tmp_path / "bad"))
    with pytest.raises(UnknownNameError, match="training regime"):
        train_settings([f"data={data}", "out=x", "regime=bogus"])
    with pytest.raises(ConfigError, match="empty training set"):
        run_train(train_settings([f"data={data}", f"out={tmp_path / 'e'}", "holdout_groups=0:4", *TINY_ARGS]))
    with pytest.raises(ConfigError, match="not variants"):
        run_train(train_settings([f"data={data}", f"out={tmp_path / 'e'}", "regime=with_failures",
                                  "holdout_failures=[dropp]", *TINY_ARGS]))
    with pytest.raises(ConfigError, match="not in the dataset"):
        run_train(train_settings([f"data={data}", f"out={tmp_path / 'e'}", "holdout_groups=[9]", *TINY_ARGS]))
    with pytest.raises(UnknownNameError, match="train-reward setting"):
        train_settings([f"data={data}", "out=x", "epoch=3"])
    with pytest.raises(ConfigError, match="out= is required"):
        train_settings([f"data={data}"])
    with pytest.raises(SimfailError, match="is not a simfail dataset"):
        run_train(train_settings([f"data={tmp_path}", f"out={tmp_path / 'e'}", *TINY_ARGS]))
    assert not (tmp_path / "e").exists()  # nothing written on errors
    line = _error_line(capsys, ["train-reward", f"data={data}", f"out={tmp_path / 'x'}", "regime=expertonly"])
    assert "unknown training regime 'expertonly'" in line and "expert_only" in line
    line = _error_line(capsys, ["evaluate", "model=rewind", f"model.checkpoint={tmp_path / 'nope'}", f"data={data}"])
    assert "does not exist" in line
    run_train(train_settings([f"data={data}", f"out={tmp_path / 'o'}", *TINY_ARGS]))
    with pytest.raises(OutputDirError, match="overwrite=true"):
        run_train(train_settings([f"data={data}", f"out={tmp_path / 'o'}", *TINY_ARGS]))
