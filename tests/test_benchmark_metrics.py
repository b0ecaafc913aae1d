"""Honest numbers of the benchmark: ties as disagreement vs half, the tie rate, the random
baseline near 0.5, the constant model all ties, and the subsets read from the metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.benchmark.pairs import SUBSETS, episode_meta, hard_pairs, operator_pairs, subset_pairs
from simfail.stress import metrics as M
from simfail.stress.baselines import ConstantModel, RandomModel
from simfail.stress.harness import evaluate, run_model
from simfail.stress.protocol import EpisodeInput


def test_ties_count_as_disagreement_and_as_half():
    # scores 3 > 2 > 1; the model ties the first two and orders the rest right
    pa = M.preference_accuracy([([3.0, 2.0, 1.0], [5.0, 5.0, 1.0])])
    assert pa.n_pairs == 3 and pa.n_tie == 1 and pa.n_disagree == 1
    assert pa.accuracy == pytest.approx(2 / 3)
    assert pa.accuracy_ties_half == pytest.approx(2.5 / 3)
    assert pa.tie_rate == pytest.approx(1 / 3)
    d = pa.to_dict()
    assert d["accuracy_ties_half"] == pytest.approx(2.5 / 3) and d["n_tie"] == 1
    # a reversed pair is a disagreement in both
    pb = M.preference_accuracy([([2.0, 1.0], [0.0, 1.0])])
    assert pb.accuracy == 0.0 and pb.accuracy_ties_half == 0.0 and pb.tie_rate == 0.0


def test_ties_half_interval_uses_the_same_cluster_draws():
    ctx = {g: ([3.0, 2.0, 1.0], [1.0, 1.0, 0.0] if g % 2 else [3.0, 2.0, 1.0]) for g in range(10)}
    pa = M.preference_accuracy(ctx, n_boot=200, seed=3)
    assert pa.ci is not None and pa.ci_ties_half is not None
    assert pa.ci[0] <= pa.accuracy <= pa.ci[1]
    assert pa.ci_ties_half[0] <= pa.accuracy_ties_half <= pa.ci_ties_half[1]
    assert pa.ci_ties_half[0] >= pa.ci[0]  # half points can only raise A


def test_pairs_restriction_keeps_only_strict_chosen_pairs():
    pa = M.preference_accuracy_on_pairs({0: ([3.0, 2.0, 2.0], [0.0, 1.0, 1.0], [(0, 1), (1, 2)])})
    assert pa.n_pairs == 1 and pa.n_disagree == 1  # (1, 2) is tied in the ground truth


def _synthetic_items(n_groups: int, per_group: int, rng: np.random.Generator):
    for g in range(n_groups):
        for k in range(per_group):
            n = int(rng.integers(8, 20))
            ep = EpisodeInput(frames={}, fps=10.0, instruction="x", episode_id=f"g{g}e{k}")
            yield ep, {"context": g, "task": "pick_place", "score": float(rng.uniform(0, 100)), "variant": f"v{k}",
                       "success": True, "failures": []}, n


def _with_length(items):
    for ep, gt, n in items:
        ep.frame_times = np.arange(n) / 10.0
        yield ep, gt


def test_random_baseline_is_near_chance_and_deterministic():
    items = list(_synthetic_items(60, 6, np.random.default_rng(0)))
    run = run_model(RandomModel(seed=0), _with_length(items))
    rep = evaluate(run, n_boot=200)
    a = rep["preference"]["accuracy"]
    assert rep["preference"]["n_pairs"] == 60 * 15
    assert abs(a - 0.5) < 0.06, a
    assert rep["preference"]["tie_rate"] == 0.0
    lo, hi = rep["preference"]["ci"]
    assert lo < 0.5 < hi
    again = run_model(RandomModel(seed=0), _with_length(items[::-1]))  # order does not matter
    by_id = {o.episode_id: o.value for o in run.outcomes}
    assert all(by_id[o.episode_id] == o.value for o in again.outcomes)
    other = run_model(RandomModel(seed=1), _with_length(items))
    assert [o.value for o in other.outcomes] != [o.value for o in run.outcomes]


def test_constant_model_ties_every_pair():
    items = list(_synthetic_items(5, 4, np.random.default_rng(1)))
    rep = evaluate(run_model(ConstantModel(), _with_length(items)), n_boot=50)
    p = rep["preference"]
    assert p["tie_rate"] == 1.0 and p["accuracy"] == 0.0 and p["accuracy_ties_half"] == 0.5
    assert p["ci"] == [0.0, 0.0] and p["ci_ties_half"] == [0.5, 0.5]


def test_baseline_arguments_are_checked():
    from simfail.errors import ConfigError

    with pytest.raises(ConfigError):
        RandomModel(seed=-1)
    with pytest.raises(ConfigError):
        ConstantModel(value=2.0)


# ----------------------------------------------------------------------------- subsets


def _row(i, group, variant, score, *, success=True, kind=None, events=(), name=None, **pert):
    p = {} if variant == "expert" else {"name": name or variant, "kind": kind or "failure", **pert}
    return {"episode_index": i, "simfail.group_id": group, "simfail.task": "pick_place", "simfail.variant": variant,
            "simfail.success": success, "simfail.score": score, "simfail.perturbation": json.dumps(p),
            "simfail.failures": json.dumps([{"onset_frame": a, "visible_frame": b} for a, b in events])}


ROWS = [
    _row(0, 0, "expert", 100.0),
    _row(1, 0, "alt:pause", 100.0, kind="clean_alternative", name="pause"),
    _row(2, 0, "drop", 5.0, success=False, events=[(10, 12)]),
    _row(3, 0, "shaky", 80.0, events=[(5, 6)]),
    _row(4, 0, "unstable_placement", 9.0, success=False, events=[(20, 40)]),  # visible 2 s after onset at 10 fps
    _row(5, 0, "drop:near_miss", 92.0, kind="near_miss", name="drop", events=[(10, 11)]),
    _row(6, 0, "bc#0", 30.0, success=False, kind="rollout", name="policy", policy="bc", events=[(3, 4)]),
    _row(7, 0, "alt:detour", 100.0, kind="alternative_not_clean", name="detour", events=[(3, 4)]),
    _row(8, 1, "expert", 100.0),
    _row(9, 1, "drop", 7.0, success=False, events=[(10, 12)]),
]


def _names(pairs, metas):
    members = [m for m in metas if m.group == 0]
    return {(members[x].variant, members[z].variant) for x, z in pairs[0]}


def test_subsets_follow_labels_and_metadata():
    metas = [episode_meta(r, fps=10) for r in ROWS]
    m = {x.variant: x for x in metas if x.group == 0}
    assert m["expert"].reference and m["alt:pause"].reference and m["alt:pause"].clean_alternative
    assert not m["alt:detour"].reference  # an alternative the physics did not confirm clean
    assert m["unstable_placement"].delayed and not m["drop"].delayed
    assert m["bc#0"].operator == "policy:bc" and m["drop:near_miss"].operator == "drop"
    assert m["shaky"].bad_but_successful

    def pairs(name):
        return _names(subset_pairs(metas, SUBSETS[name]), metas)

    refs = {"expert", "alt:pause"}
    cvf = pairs("clean_vs_failure")
    assert cvf == {(a, b) for a in refs for b in ("drop", "unstable_placement", "bc#0")}
    assert pairs("bad_but_successful") == {(a, "shaky") for a in refs} | {(a, "drop:near_miss") for a in refs} | \
        {(a, "alt:detour") for a in refs}
    assert pairs("delayed") == {(a, "unstable_placement") for a in refs}
    assert all("drop:near_miss" in p for p in pairs("near_miss")) and len(pairs("near_miss")) == 7
    nuis = pairs("nuisance")
    assert nuis and all("alt:pause" in p for p in nuis) and ("expert", "alt:pause") not in nuis
    assert all("bc#0" in p for p in pairs("closed_loop")) and len(pairs("closed_loop")) == 7
    assert len(subset_pairs(metas, SUBSETS["all"])[1]) == 1
    assert _names(operator_pairs(metas, "drop"), metas) == {(a, "drop") for a in refs} | \
        {(a, "drop:near_miss") for a in refs}


def test_hard_pairs_are_the_progress_models_wrong_orderings():
    metas = [episode_meta(r, fps=10) for r in ROWS[:3]]
    # the progress model ranks the drop (score 5) above the clean alternative and ties it with the expert
    hard = hard_pairs(metas, np.array([3.0, 1.0, 3.0]))
    assert _names(hard, metas) == {("expert", "drop"), ("alt:pause", "drop")}
