"""Honest numbers of the benchmark: ties as disagreement vs half, the tie rate, the random
baseline near 0.5, the constant model all ties, and the subsets read from the metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.benchmark.pairs import BALANCED, SUBSETS, episode_meta, hard_pairs, operator_pairs, subset_pairs
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
        return _names(subset_pairs(metas, {**SUBSETS, **BALANCED}[name]), metas)

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


# ----------------------------------------------------------------------------- progress-balanced nuisance


def _synthetic_groups(n_groups=6, seed=0):
    """Groups of an expert, two clean alternatives and flawed episodes with random scores and
    random privileged progress returns (some ties): ``(metas, progress returns)``."""
    rng = np.random.default_rng(seed)
    rows, progress = [], []
    for g in range(n_groups):
        rows.append(_row(len(rows), g, "expert", 100.0))
        progress.append(5.0)
        for a in ("alt:pause", "alt:slower"):
            rows.append(_row(len(rows), g, a, 100.0, kind="clean_alternative", name=a[4:]))
            progress.append(float(rng.choice([4.0, 5.0, 6.0])))
        for k in range(5):
            bad = bool(rng.random() < 0.5)
            rows.append(_row(len(rows), g, f"op{k}", float(rng.integers(0, 95)), success=not bad,
                             events=[(3, 4)]))
            progress.append(float(rng.choice([2.0, 4.0, 5.0, 5.5, 7.0])))
    return [episode_meta(r, fps=10) for r in rows], np.array(progress)


def _accuracy(metas, values, pairs):
    from simfail.benchmark.pairs import group_members
    from simfail.stress import metrics as M

    pos = {m.index: k for k, m in enumerate(metas)}
    ctx = {g: ([m.score for m in ms], [values[pos[m.index]] for m in ms], pairs.get(g, []))
           for g, ms in group_members(metas).items() if pairs.get(g)}
    return M.preference_accuracy_on_pairs(ctx)


def test_nuisance_is_balanced_for_the_privileged_progress_model():
    from simfail.benchmark.pairs import balanced_pairs

    metas, progress = _synthetic_groups()
    b = balanced_pairs(metas, BALANCED["nuisance"], progress)
    cand = subset_pairs(metas, BALANCED["nuisance"])
    hard = hard_pairs(metas, progress)
    n_wrong = sum(len(set(cand[g]) & set(hard[g])) for g in cand)
    n_cand = sum(1 for g, ps in cand.items() for x, z in ps
                 if [m for m in metas if m.group == g][x].score != [m for m in metas if m.group == g][z].score)
    assert b.candidates == n_cand and b.wrong_or_tied == n_wrong and b.right == n_cand - n_wrong
    assert 0 < b.wrong_or_tied < b.right  # the usual case: every wrong pair kept, as many right ones
    assert b.kept == 2 * b.wrong_or_tied
    kept = {(g, p) for g, ps in b.pairs.items() for p in ps}
    assert {(g, p) for g, ps in hard.items() for p in ps if p in cand[g]} <= kept
    # the privileged progress model: exactly 0.5 with ties as disagreements, 0.5 + T/4R with ties as half
    pa = _accuracy(metas, progress, b.pairs)
    assert pa.n_pairs == b.kept and pa.accuracy == pytest.approx(0.5)
    ties = pa.tie_rate * pa.n_pairs
    assert ties > 0 and pa.accuracy_ties_half == pytest.approx(0.5 + ties / (2 * b.kept))  # = 0.5 + T / 4W
    # a model that sees the failure (the score itself) is perfect on it
    assert _accuracy(metas, np.array([m.score for m in metas]), b.pairs).accuracy == 1.0
    # deterministic, and the same variant pairs whatever order the episodes come in
    assert b == balanced_pairs(metas, BALANCED["nuisance"], progress)
    again = balanced_pairs(list(reversed(metas)), BALANCED["nuisance"], progress[::-1])
    assert _variant_pairs(list(reversed(metas)), again) == _variant_pairs(metas, b)


def _variant_pairs(metas, b):
    out = set()
    for g, ps in b.pairs.items():
        ms = [m for m in metas if m.group == g]
        out |= {(g, frozenset((ms[x].variant, ms[z].variant))) for x, z in ps}
    return out


def test_balanced_subset_keeps_the_smaller_side_whole():
    from simfail.benchmark.pairs import balanced_pairs, pair_key

    metas, _ = _synthetic_groups(n_groups=3, seed=1)
    # progress that orders most candidates wrongly: the right ones are the smaller side
    inverted = np.array([100.0 - m.score for m in metas])
    inverted[[k for k, m in enumerate(metas) if m.variant == "op0"]] = -1000.0  # op0: ranked last (right)
    b = balanced_pairs(metas, BALANCED["nuisance"], inverted)
    assert 0 < b.right < b.wrong_or_tied and b.kept == 2 * b.right
    assert _accuracy(metas, inverted, b.pairs).accuracy == pytest.approx(0.5)
    a, c = metas[1], metas[3]
    assert pair_key(0, a, c) == pair_key(0, a, c) and len(pair_key(0, a, c)) == 64
    # a NaN return (a model error) takes the pair out of the candidates
    nan = inverted.copy()
    nan[3] = np.nan
    assert balanced_pairs(metas, BALANCED["nuisance"], nan).candidates < b.candidates
