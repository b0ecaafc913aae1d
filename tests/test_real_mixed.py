"""Real and simfail data together: ``evaluate data=[SIM,REAL]`` (per source, per category,
the real part alone), ``train-reward`` mixing sources with weights and never training on the
held-out real contexts, ``evaluate split=``, and ``simfail experiment real_plus_sim``."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from real_helpers import lerobot_mapping, lerobot_release, roboarena_dump  # noqa: E402
from simfail.cli import main  # noqa: E402
from simfail.dataset.reader import SimfailDataset  # noqa: E402
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group  # noqa: E402
from simfail.dataset.writer import DatasetWriter  # noqa: E402
from simfail.learn.commands import run_train, train_settings  # noqa: E402
from simfail.learn.mix import build_mixed_pool, split_groups  # noqa: E402
from simfail.learn.text import HashedText  # noqa: E402
from simfail.stress.commands import evaluate_settings  # noqa: E402
from simfail.stress.metrics import preference_accuracy  # noqa: E402
from simfail.stress.multi import run_evaluate_multi  # noqa: E402

TINY = ["frame_size=16", "clip_frames=8", "batch_size=4", "batches_per_epoch=3", "epochs=2", "net.feat_dim=16",
        "net.width=8", "net.hidden=16", "text.dim=16", "progress=false"]
EVAL = ["bootstrap=50", "curves=0", "video=none", "progress=false"]

#: six sessions, each with one successful rollout (real-only training always has successes)
SIX = [(f"s{k}", instr, [(f"a{k}", "pi0", 1.0, 10), (f"b{k}", "dp", s, 10 + k % 2)], "tie" if k == 4 else f"a{k}", f"dp {why}")
       for k, (instr, s, why) in enumerate([
           ("put the cube in the bowl", 0.2, "missed the bowl"), ("open the drawer", 0.5, "half opened it"),
           ("pour the beans into the pot", 0.0, "spilled"), ("stack the cups", 0.4, "knocked one"),
           ("push the box to the wall", 1.0, "was as good"), ("wipe the whiteboard", 0.3, "left marks")])]


def _hash(root) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            h.update(p.relative_to(root).as_posix().encode() + p.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    base = tmp_path_factory.mktemp("mixed")
    sim = base / "sim"
    w = DatasetWriter(sim, fps=10, image_size=(32, 32), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    for g in range(3):
        w.write_group(g, synthetic_group(g, scores=(100.0, 10.0, 60.0), size=(32, 32)))
    w.finalize({})
    ra, lr = base / "ra", base / "lr"
    assert main(["import-real", str(roboarena_dump(base / "dump")), "format=roboarena", f"out={ra}"]) == 0
    assert main(["import-real", str(lerobot_release(base / "release")), f"map={lerobot_mapping(base / 'map.yaml')}", f"out={lr}"]) == 0
    six = base / "six"
    assert main(["import-real", str(roboarena_dump(base / "dump6", sessions=SIX, wrist_missing=None)), "format=roboarena",
                 f"out={six}"]) == 0
    return {"sim": sim, "ra": ra, "lr": lr, "six": six, "base": base}


def test_evaluate_several_datasets_reports_the_real_part_alone(data, tmp_path):
    cfg = evaluate_settings(["model=oracle", "model.key=score", f"data=[{data['sim']},{data['ra']},{data['lr']}]",
                             f"out={tmp_path / 'rep'}", *EVAL])
    res, out = run_evaluate_multi(cfg)
    assert json.loads((out / "metrics.json").read_text())["A"] == res["A"]
    assert set(res["sources"]) == {"sim", "ra", "lr"} and (out / "ra" / "metrics.json").is_file()
    assert [res["sources"][k]["kind"] for k in ("sim", "ra", "lr")] == ["sim", "real", "real"]
    # the score oracle orders every strict pair: A = 1 on each part; pair counts add up
    assert res["A"]["real"]["accuracy"] == res["A"]["sim"]["accuracy"] == res["A"]["all"]["accuracy"] == 1.0
    assert res["A"]["real"]["n_pairs"] == 3 + 4 and res["A"]["sim"]["n_pairs"] == 9 and res["A"]["all"]["n_pairs"] == 16
    assert res["A"]["real"]["n_contexts"] == 3 + 2  # the tied pour session has no strict pair
    assert set(res["A_by_source_kind_and_category"]) >= {"real:pick_place", "real:tool_use", "real:open_close", "sim:pick_place"}
    assert res["sources"]["ra"]["human_verdicts"] == {"accuracy": 1.0, "n_pairs": 3, "n_agree": 3, "n_ties_left_out": 1, "n_missing": 0}
    assert res["sources"]["ra"]["image_size"] == [48, 64] and res["sources"]["sim"]["image_size"] == [32, 32]


def test_pooled_accuracy_matches_the_per_episode_returns(data, tmp_path):
    """progress_only (time) returns grow with length only: equal-length real rollouts tie,
    which counts as a disagreement; the pooled A is recomputed from the per-source reports."""
    cfg = evaluate_settings(["model=progress_only", f"data=[{data['sim']},{data['ra']}]", f"out={tmp_path / 'rep'}", *EVAL])
    res, out = run_evaluate_multi(cfg)
    ctx = {}
    for name in ("sim", "ra"):
        m = json.loads((out / name / "metrics.json").read_text())
        for row in m["episodes"]:
            y, v = ctx.setdefault((name, row["group_id"]), ([], []))
            y.append(row["score"])
            v.append(row["returns"]["sum"])
    assert preference_accuracy(ctx).accuracy == pytest.approx(res["A"]["all"]["accuracy"])
    real = {k: v for k, v in ctx.items() if k[0] == "ra"}
    assert preference_accuracy(real).accuracy == pytest.approx(res["A"]["real"]["accuracy"])
    assert res["sources"]["ra"]["human_verdicts"]["accuracy"] == 0.0  # the three strict verdicts compare equal lengths


def test_train_reward_mixes_sources_and_never_trains_on_held_out_real_contexts(data, tmp_path):
    args = [f"data=[{data['sim']},{data['ra']},{data['lr']}]", "weights=[1,2,1]", "real_holdout=0.5", "regime=with_failures",
            "rewind_frac=0.3", *TINY]
    s = run_train(train_settings([*args, f"out={tmp_path / 'm'}"]))
    split = json.loads((tmp_path / "m" / "split.json").read_text())
    by = {x["name"]: x for x in split["sources"]}
    assert by["sim"]["heldout_groups"] == [] and by["sim"]["train_groups"] == [0, 1, 2]
    for name in ("ra", "lr"):
        ds = SimfailDataset(data[name])
        held, train = by[name]["heldout_groups"], by[name]["train_groups"]
        assert held and train and sorted(held + train) == sorted(ds.groups())
        assert (train, held) == split_groups(list(ds.groups()), 0.5, 0, name)
    assert [x["name"] for x in s["sources"]] == ["sim", "ra", "lr"]
    # the pool itself: no held-out real episode, clip shares follow the weights
    cfg = train_settings([*args, f"out={tmp_path / 'x'}"])
    pool, sources = build_mixed_pool({**cfg, "data": cfg["data"]}, HashedText(16, 2))
    for src in sources:
        ds = SimfailDataset(src.path)
        held_eps = {e for g in src.heldout_groups for e in ds.groups()[g]}
        assert not [d for d in pool.episodes if d.source == src.name and d.index in held_eps]
    share = {n: pool.probs[[d.source == n for d in pool.episodes]].sum() for n in ("sim", "ra", "lr")}
    assert share == pytest.approx({"sim": 0.25, "ra": 0.5, "lr": 0.25})
    # frames of every source are resampled to the model's size; the datasets are not rewritten
    assert {d.frames.shape[1:] for d in pool.episodes} == {(16, 16, 3)}
    real_ep = next(d for d in pool.episodes if d.source == "ra")
    row = SimfailDataset(data["ra"]).episode(real_ep.index)
    assert real_ep.target[-1] == pytest.approx(row["simfail.score"] / 100) and real_ep.target[0] == 0.0
    # same settings, same split and weights
    run_train(train_settings([*args, f"out={tmp_path / 'm2'}"]))
    assert (tmp_path / "m2" / "split.json").read_text() == (tmp_path / "m" / "split.json").read_text()
    assert (tmp_path / "m2" / "model.pt").read_bytes() == (tmp_path / "m" / "model.pt").read_bytes()


def test_evaluate_with_split_scores_only_held_out_contexts_and_leaves_data_untouched(data, tmp_path, capsys):
    before = {k: _hash(data[k]) for k in ("sim", "ra")}
    m = tmp_path / "m"
    assert main(["train-reward", f"data=[{data['sim']},{data['ra']}]", "real_holdout=0.5", f"out={m}", *TINY]) == 0
    assert "source ra [real]" in capsys.readouterr().out
    assert main(["evaluate", "model=rewind", f"model.checkpoint={m}", f"data=[{data['sim']},{data['ra']}]", f"split={m}",
                 f"out={tmp_path / 'rep'}", *EVAL]) == 0
    printed = capsys.readouterr().out
    assert "A, real part alone (paper fig. 3)" in printed and "A, synthetic part" in printed
    res = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    held = json.loads((m / "split.json").read_text())["sources"][1]["heldout_groups"]
    assert res["sources"]["ra"]["groups"] == held and res["sources"]["sim"]["trained_on"] is True
    rows = json.loads((tmp_path / "rep" / "ra" / "metrics.json").read_text())["episodes"]
    assert sorted({r["group_id"] for r in rows}) == held
    assert {k: _hash(data[k]) for k in ("sim", "ra")} == before


def test_experiment_real_plus_sim_end_to_end(data, tmp_path, capsys):
    out = tmp_path / "exp"
    argv = ["experiment", "real_plus_sim", f"real={data['six']}", f"sim={data['sim']}", f"out={out}", "holdout=0.5",
            "epochs=2", "batches_per_epoch=3", "batch_size=4", "clip_frames=8", "frame_size=16", "net_width=8",
            "net_hidden=16", "net_feat_dim=16", "text_dim=16", "bootstrap=200"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "A_real_plus_sim - A_real_only" in printed and "paired cluster-bootstrap" in printed
    r = json.loads((out / "results.json").read_text())
    assert (out / "results.txt").read_text().strip() in printed
    held = r["real_heldout_groups"]
    assert len(held) == 3 and sorted(held + r["real_train_groups"]) == list(range(6))
    a, b = r["arms"]["real_only"], r["arms"]["real_plus_sim"]
    for arm in ("real_only", "real_plus_sim"):
        split = json.loads((out / "models" / arm / "split.json").read_text())
        assert split["sources"][0]["heldout_groups"] == held
        rows = json.loads((out / "reports" / arm / "metrics.json").read_text())["episodes"]
        assert sorted({x["group_id"] for x in rows}) == held  # scored on the held-out real contexts only
    assert b["n_training_episodes"] == a["n_training_episodes"] + 9  # + the simfail episodes
    assert a["n_pairs"] == b["n_pairs"] == r["paired"]["n_pairs"] > 0
    assert r["paired"]["difference"] == pytest.approx(b["accuracy"] - a["accuracy"])
    lo, hi = r["paired"]["ci"]
    assert -1.0 <= lo <= hi <= 1.0
    # rerun: same numbers (seeded split, training and bootstrap)
    assert main([*argv, "overwrite=true"]) == 0
    capsys.readouterr()
    assert json.loads((out / "results.json").read_text())["paired"] == r["paired"]


def _error(capsys, argv) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: "), err
    return err[0]


def test_bad_mixed_inputs(data, tmp_path, capsys):
    both = f"data=[{data['sim']},{data['ra']}]"
    assert "weights must be one number" in _error(capsys, ["train-reward", both, "weights=[1]", f"out={tmp_path / 'm'}", *TINY])
    assert "real_holdout must be a share" in _error(capsys, ["train-reward", both, "real_holdout=1.5", f"out={tmp_path / 'm'}", *TINY])
    assert "holdout_groups= select groups of one dataset" in _error(
        capsys, ["train-reward", both, "holdout_groups=[0]", f"out={tmp_path / 'm'}", *TINY])
    assert "no split.json" in _error(capsys, ["evaluate", "model=oracle", both, f"split={tmp_path}", *EVAL])
    assert "use split=" in _error(capsys, ["evaluate", "model=oracle", both, "groups=[0]", *EVAL])
    assert "unknown experiment 'real_plus'" in _error(capsys, ["experiment", "real_plus"])
    assert "unknown experiment real_plus_sim setting 'epoch'" in _error(
        capsys, ["experiment", "real_plus_sim", f"real={data['ra']}", f"sim={data['sim']}", "out=x", "epoch=2"])
    assert "sim= is required" in _error(capsys, ["experiment", "real_plus_sim", f"real={data['ra']}", "out=x"])
    assert "holdout must be in (0, 1)" in _error(
        capsys, ["experiment", "real_plus_sim", f"real={data['ra']}", f"sim={data['sim']}", "out=x", "holdout=1.5"])
    assert "is not an imported real dataset" in _error(
        capsys, ["experiment", "real_plus_sim", f"real={data['sim']}", f"sim={data['sim']}", f"out={tmp_path / 'e'}"])
    assert not (tmp_path / "m").exists()


def test_real_successes_serve_as_goal_images_and_rationales_as_failure_examples(tmp_path):
    """A real release has no scripted expert: goal images and reference examples come from
    successful rollouts of other sessions of the same category, failure examples carry the
    evaluator's rationale; the rationale events stay out of the ground-truth failures."""
    from simfail.stress.dataset_adapter import DatasetEpisodes
    from simfail.stress.protocol import ModelRequirements

    sessions = [("s0", "pick up the cube", [("a", "pi0", 1.0, 6), ("b", "dp", 0.3, 6)], "A", "dp knocked the cup over"),
                ("s1", "pick up the ball", [("c", "pi0", 1.0, 7), ("d", "dp", 0.0, 7)], "A", "dp never closed the gripper")]
    out = tmp_path / "real"
    assert main(["import-real", str(roboarena_dump(tmp_path / "dump", sessions=sessions, wrist_missing=None)),
                 "format=roboarena", f"out={out}", "verify=false"]) == 0
    ds = SimfailDataset(out)
    ad = DatasetEpisodes(ds, ModelRequirements(views=("left",), wants_goal_image=True, wants_examples=True))
    assert ad.goal_source(0) == 2 and ad.goal_source(3) == 0  # the other session's success
    assert np.array_equal(ad.goal_image(0), ds.episode_frames(2, "left")[-1])
    refs, fails = ad.example_sources(0)
    assert refs == [2] and fails == [3]
    ex = ad.examples(0)
    assert ex[1].is_failure and "dp never closed the gripper" in ex[1].description
    gt = ad.ground_truth(1)
    assert gt["failures"] == [] and gt["score"] == 30.0 and gt["context"] == 0 and gt["task"] == "pick_place"


def test_a_real_dataset_at_another_fps_and_size_is_resampled_by_the_model(data, tmp_path, capsys):
    """Real rollouts at 15 fps and 48x64 next to simfail's 10 fps and 32x32: training and
    scoring resize and subsample them; the files stay as they are."""
    real = tmp_path / "real15"
    dump = roboarena_dump(tmp_path / "dump15", sessions=SIX[:3], wrist_missing=None, fps=15)
    assert main(["import-real", str(dump), "format=roboarena", f"out={real}"]) == 0
    before = _hash(real)
    m = tmp_path / "m"
    assert main(["train-reward", f"data=[{data['sim']},{real}]", "real_holdout=0.34", f"out={m}", *TINY]) == 0
    assert main(["evaluate", "model=rewind", f"model.checkpoint={m}", f"data=[{data['sim']},{real}]", f"split={m}",
                 f"out={tmp_path / 'rep'}", *EVAL]) == 0
    capsys.readouterr()
    res = json.loads((tmp_path / "rep" / "metrics.json").read_text())
    assert [res["sources"][k]["fps"] for k in ("sim", "real15")] == [10, 15]
    sub = json.loads((tmp_path / "rep" / "real15" / "metrics.json").read_text())
    assert sub["errors"]["n"] == 0 and all(r["n_model_frames"] <= 8 for r in sub["episodes"])
    assert _hash(real) == before and SimfailDataset(real).fps == 15
