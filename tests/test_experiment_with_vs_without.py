"""``simfail experiment with_vs_without``: equal-budget arms, the pooled paired interval, and a
tiny end-to-end run that is deterministic and resumes from what it already finished."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simfail.errors import ConfigError, OutputDirError, UnknownNameError
from simfail.stress.experiments.budget import (
    Arm, Catalog, EpisodeRef, check_equal_budget, leave_out, scripted_vs_closed_arms, with_vs_without_arms,
)
from simfail.stress.experiments.pooled import pool_seeds, pooled_margin


def _refs(ds: str, cat: str, n: int, expert: bool, start: int = 0) -> list[EpisodeRef]:
    return [EpisodeRef(ds, start + i, expert, cat, "expert" if expert else f"op{i}") for i in range(n)]


def _catalog() -> Catalog:
    cat = Catalog()
    for c, g, f, closed in (("pick_place", 2, 9, 3), ("pour", 2, 5, 8)):
        cat.experts[c] = _refs(f"train/{c}", c, g, True)
        cat.failures[c] = _refs(f"train/{c}", c, f, False, start=100)
        cat.extra_experts[c] = _refs(f"experts/{c}", c, 20, True)
        cat.closed_failures[c] = _refs(f"closed_train/{c}", c, closed, False)
    return cat


# ----------------------------------------------------------------------------- equal budget


def test_expert_only_gets_more_expert_scenes_to_match_with_failures():
    cat = _catalog()
    wo, wf = with_vs_without_arms(cat, ["pick_place", "pour"])
    assert check_equal_budget(wo, wf) == {"pick_place": 11, "pour": 7}
    assert all(e.expert for e in wo.episodes)
    assert wo.by_category() == {"pick_place": {"experts": 11, "failures": 0}, "pour": {"experts": 7, "failures": 0}}
    assert wf.by_category() == {"pick_place": {"experts": 2, "failures": 9}, "pour": {"experts": 2, "failures": 5}}
    # the training scenes' experts are in both arms; expert_only adds the first F_c extra scenes
    assert set(cat.experts["pick_place"]) <= set(wo.episodes) & set(wf.episodes)
    assert [e for e in wo.episodes if e.dataset == "experts/pick_place"] == cat.extra_experts["pick_place"][:9]
    # leave-one-category-out keeps the budget equal
    assert check_equal_budget(leave_out(wo, "pour"), leave_out(wf, "pour")) == {"pick_place": 11}


def test_scripted_and_closed_loop_arms_match_per_category_and_subsample_deterministically():
    cat = _catalog()
    sc, cl = scripted_vs_closed_arms(cat, ["pick_place", "pour"], seed=0)
    assert check_equal_budget(sc, cl) == {"pick_place": 2 + 3, "pour": 2 + 5}
    assert sc.by_category()["pick_place"] == {"experts": 2, "failures": 3}  # 9 scripted subsampled to the 3 closed
    assert cl.by_category()["pour"] == {"experts": 2, "failures": 5}  # 8 closed subsampled to the 5 scripted
    again = scripted_vs_closed_arms(cat, ["pick_place", "pour"], seed=0)
    assert again[0].episodes == sc.episodes and again[1].episodes == cl.episodes
    other = scripted_vs_closed_arms(cat, ["pick_place", "pour"], seed=1)
    assert other[0].episodes != sc.episodes or other[1].episodes != cl.episodes


def test_unequal_or_short_budgets_are_refused():
    cat = _catalog()
    cat.extra_experts["pour"] = cat.extra_experts["pour"][:3]
    with pytest.raises(ConfigError, match="needs 5 extra expert scenes"):
        with_vs_without_arms(cat, ["pour"])
    a = Arm("a", _refs("x", "pour", 3, True))
    with pytest.raises(ConfigError, match="unequal budget"):
        check_equal_budget(a, Arm("b", _refs("y", "pour", 4, True)))
    with pytest.raises(ConfigError, match="twice"):
        check_equal_budget(Arm("a", a.episodes + a.episodes[:1]), Arm("b", _refs("y", "pour", 4, True)))


# ----------------------------------------------------------------------------- the pooled interval


def test_pooled_paired_interval_matches_the_hand_computation():
    # per seed, group -> (n_pairs, n_disagree)
    a = [{"g1": (4, 2), "g2": (2, 0)}, {"g1": (4, 1), "g2": (2, 1)}]
    b = [{"g1": (4, 0), "g2": (2, 1)}, {"g1": (4, 2), "g2": (2, 0)}]
    assert pool_seeds(a) == {"g1": (8, 3), "g2": (4, 1)}
    m = pooled_margin(a, b, n_boot=20000, confidence=0.95, seed=3)
    # pooled: A_a = 1 - 4/12, A_b = 1 - 3/12
    assert m["accuracy_a"] == pytest.approx(2 / 3) and m["accuracy_b"] == pytest.approx(0.75)
    assert m["difference"] == pytest.approx(1 / 12)
    # resampling two groups: {g1,g1} -> (6-4)/16 = 1/8 (p 1/4), {g2,g2} -> 0 (p 1/4), mixed -> 1/12 (p 1/2);
    # the 2.5% and 97.5% quantiles fall inside the two extreme atoms
    assert m["ci"] == [pytest.approx(0.0), pytest.approx(0.125)]
    assert m["share_le_0"] == pytest.approx(0.25, abs=0.02)
    assert [p["difference"] for p in m["per_seed"]] == [pytest.approx(1 / 6), pytest.approx(0.0)]
    assert m["n_contexts"] == 2 and m["n_pairs"] == 12 and m["n_pairs_per_seed"] == 6 and m["n_seeds"] == 2


def test_pooling_refuses_seeds_scored_on_other_pairs():
    with pytest.raises(ConfigError, match="pairs"):
        pool_seeds([{"g1": (4, 1)}, {"g1": (5, 1)}])
    with pytest.raises(ConfigError, match="other groups"):
        pool_seeds([{"g1": (4, 1)}, {"g2": (4, 1)}])
    with pytest.raises(ConfigError, match="same groups"):
        pooled_margin([{"g1": (4, 1)}], [{"g1": (3, 1)}], n_boot=10, confidence=0.9, seed=0)


def test_group_counts_count_ties_as_disagreements_and_select_operator_pairs():
    from simfail.stress.experiments.with_vs_without import group_counts

    rows = [{"group": 0, "variant": "expert", "score": 100.0, "value": 5.0},
            {"group": 0, "variant": "drop", "score": 10.0, "value": 6.0},  # ordered wrongly
            {"group": 0, "variant": "collision", "score": 0.0, "value": 1.0},
            {"group": 1, "variant": "expert", "score": 100.0, "value": 2.0},
            {"group": 1, "variant": "drop", "score": 0.0, "value": 2.0}]  # a tie: a disagreement
    assert group_counts(rows, "t") == {"t/0": (3, 1), "t/1": (1, 1)}
    assert group_counts(rows, "t", ["drop"]) == {"t/0": (1, 1), "t/1": (1, 1)}
    assert group_counts(rows, "t", ["collision"]) == {"t/0": (1, 0)}
    assert group_counts(rows, "t", ties=True) == {"t/0": (3, 1, 0), "t/1": (1, 1, 1)}


# ----------------------------------------------------------------------------- settings


def _cfg(**kw):
    from simfail.commands import build_config

    return build_config("experiment", ["with_vs_without", *(f"{k}={v}" for k, v in kw.items())])


def test_bad_settings_are_one_clear_error(tmp_path):
    with pytest.raises(UnknownNameError):
        _cfg(out=tmp_path, categories="[pick_place,nope]")
    with pytest.raises(ConfigError, match="loco"):
        _cfg(out=tmp_path, categories="[pick_place,pour]", loco="[stack]")
    with pytest.raises(ConfigError, match="holdout_operators"):
        _cfg(out=tmp_path, categories="[pick_place]", loco="[]", operators="[drop]", holdout_operators="[collision]")
    with pytest.raises(ConfigError, match="test_seed"):
        _cfg(out=tmp_path, train_seed=5, test_seed=6)
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        _cfg(out=tmp_path, closed_loop_args="[level]")


# ----------------------------------------------------------------------------- a tiny run

TINY = {"categories": "[pick_place]", "operators": "[drop,collision]", "holdout_operators": "[drop]", "loco": "[]",
        "train_groups": "1", "test_groups": "1", "closed_loop_samples": "1", "seeds": "[0,1]", "epochs": "1",
        "batches_per_epoch": "3", "batch_size": "4", "clip_frames": "4", "frame_size": "8", "net_width": "4",
        "net_hidden": "8", "net_feat_dim": "8", "text_dim": "8", "bootstrap": "200", "progress": "false"}


def _run(out: Path, **kw):
    from simfail.stress.experiments import run_experiment

    return run_experiment("with_vs_without", _cfg(out=out, **{**TINY, **kw}))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    pytest.importorskip("torch")
    out = tmp_path_factory.mktemp("wvw") / "a"
    return out, _run(out)


def _numbers(result: dict) -> list:
    return [{k: c.get(k) for k in ("name", "study", "accuracy_a", "accuracy_b", "difference", "ci", "per_seed", "n_pairs")}
            for c in result["comparisons"]]


def test_tiny_run_writes_the_table_json_and_plot_with_equal_budgets(tiny):
    out, res = tiny
    assert (out / "results.json").is_file() and (out / "margins.png").stat().st_size > 1000
    assert "| held-out scenes | expert_only | with_failures |" in (out / "results.txt").read_text()
    # the budget: every pair of arms, same distinct episodes per category and the same optimizer steps
    models = res["models"]
    for s in (0, 1):
        assert models[f"expert_only_s{s}"]["n_episodes"] == models[f"with_failures_s{s}"]["n_episodes"]
        assert models[f"scripted_s{s}"]["n_episodes"] == models[f"closed_loop_s{s}"]["n_episodes"]
        assert models[f"expert_only_s{s}"]["n_failures"] == 0 and models[f"with_failures_s{s}"]["n_failures"] > 0
    assert {m["optimizer_steps"] for m in models.values()} == {3} and {m["clips"] for m in models.values()} == {12}
    assert res["arms"]["expert_only_s0"]["by_category"] == {
        "pick_place": {"experts": res["budgets"]["main"]["distinct_episodes_per_category"]["pick_place"], "failures": 0}}
    # the held-out operator is never trained on; the extra expert scenes are not test scenes
    trained = json.loads(next((out / "models").glob("*/spec.json")).read_text())["spec"]["episodes"]
    assert all(v != "drop" for *_, v in trained)
    names = [c["name"] for c in res["comparisons"]]
    assert "held-out operators (drop)" in names and "closed-loop rollouts, held-out scenes" in names
    for c in res["comparisons"]:
        assert "error" not in c, c
        assert c["n_seeds"] == 2 and c["ci"][0] - 1e-9 <= c["difference"] <= c["ci"][1] + 1e-9


def test_same_seed_same_numbers(tiny, tmp_path):
    out, res = tiny
    b = tmp_path / "b"
    b.mkdir()
    shutil.copytree(out / "data", b / "data")  # same data; every model and evaluation is redone
    shutil.copy(out / "experiment.json", b / "experiment.json")
    res_b = _run(b)
    assert res_b["work"] == res["work"]  # trained afresh (models reused only where two arms share one spec)
    assert _numbers(res_b) == _numbers(res)
    for key in {m["hash"] for m in res["models"].values()}:
        assert (b / "models" / key / "model.pt").read_bytes() == (out / "models" / key / "model.pt").read_bytes()


def test_rerun_reuses_finished_pieces_and_redoes_only_the_missing(tiny, tmp_path):
    out, res = tiny
    c = tmp_path / "c"
    shutil.copytree(out, c)
    again = _run(c)
    assert again["work"]["trained"] == 0 and again["work"]["evaluated"] == 0
    assert _numbers(again) == _numbers(res)
    # a killed run: one model never finished (no spec.json), one evaluation missing
    key = res["models"]["with_failures_s1"]["hash"]
    (c / "models" / key / "spec.json").unlink()
    other = res["models"]["expert_only_s0"]["hash"]
    evals = sorted((c / "evals" / other).glob("*.json"))
    evals[0].unlink()
    resumed = _run(c)
    assert resumed["work"]["trained"] == 1  # jobs sharing the model (scripted = with_failures here) reuse it
    assert resumed["work"]["models"] == len(res["models"]) - 1
    # the retrained model has the same weights (deterministic), so only the deleted evaluation is redone
    assert resumed["work"]["evaluated"] == 1
    assert _numbers(resumed) == _numbers(res)
    # a dataset killed while being written: the partial folder is dropped and the dataset rebuilt
    shutil.rmtree(c / "data" / "closed_test" / "pick_place")
    (c / "data" / ".partial" / "closed_test" / "pick_place" / "junk").mkdir(parents=True)
    rebuilt = _run(c)
    assert (c / "data" / "closed_test" / "pick_place" / "meta" / "info.json").is_file()
    assert not (c / "data" / ".partial" / "closed_test" / "pick_place" / "junk").exists()
    assert rebuilt["work"]["trained"] == 0
    assert _numbers(resumed) == _numbers(res)


def test_out_holding_another_run_is_refused(tiny, tmp_path):
    out, _ = tiny
    d = tmp_path / "d"
    d.mkdir()
    shutil.copy(out / "experiment.json", d / "experiment.json")
    with pytest.raises(OutputDirError, match="other data settings .*train_groups"):
        _run(d, train_groups="2")
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "x.txt").write_text("x")
    with pytest.raises(OutputDirError, match="other files"):
        _run(tmp_path / "e")


@pytest.mark.slow
def test_a_built_benchmark_replaces_the_generated_train_and_test_scenes(tmp_path):
    """``data=`` a tiny ``simfail benchmark build``: its train/test datasets are used in place,
    its held-out operators are never trained on, extra experts and rollouts use its scenes."""
    pytest.importorskip("torch")
    from simfail.cli import main

    bench = tmp_path / "bench"
    assert main(["benchmark", "build", "version=tiny", f"out={bench}", "progress=false"]) == 0
    out = tmp_path / "wvw"
    tiny = {k: v for k, v in TINY.items() if k not in ("operators", "holdout_operators")}
    from simfail.stress.experiments import run_experiment

    res = run_experiment("with_vs_without", _cfg(out=out, **{**tiny, "data": str(bench), "seeds": "[0]"}))
    meta = json.loads((bench / "benchmark.json").read_text())
    assert res["data"]["train/pick_place"] == str(bench / "train" / "pick_place")
    assert res["data"]["test/pick_place"] == str(bench / "test" / "pick_place")
    assert set(meta["held_out_operators"]["pick_place"]) <= set(res["held_out_operators"])
    assert res["benchmark"]["seeds"] == {"train": meta["splits"]["train"]["seed"], "test": meta["splits"]["test"]["seed"]}
    trained = {v for m in (out / "models").glob("*/spec.json") for *_, v in json.loads(m.read_text())["spec"]["episodes"]}
    assert not trained & set(res["held_out_operators"])
    assert res["models"]["expert_only_s0"]["n_episodes"] == res["models"]["with_failures_s0"]["n_episodes"]
    with pytest.raises(ConfigError, match="brings its own"):
        _cfg(out=tmp_path / "x", data=str(bench), operators="[drop]", holdout_operators="[drop]")
