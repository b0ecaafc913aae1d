"""Metric definitions of simfail.stress.metrics against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simfail.stress import metrics as M
from simfail.stress.metrics import ScoredEpisode


# --------------------------------------------------------------------------- returns


def test_episode_return_modes():
    r = [0.0, 0.5, 1.0, 0.5]
    assert M.episode_return(r, "sum") == 2.0
    assert M.episode_return(r, "last") == 0.5
    assert M.episode_return(r, "mean") == 0.5
    with pytest.raises(ValueError):
        M.episode_return(r, "median")


# --------------------------------------------------------------------------- preference accuracy


def test_ties_in_y_are_excluded():
    res = M.preference_accuracy([([10, 10, 50], [1, 2, 3])])
    assert res.contexts[0].n_pairs == 2  # (0,1) tied in y: out of P_c
    assert res.n_disagree == 0
    assert res.accuracy == 1.0


def test_ties_in_model_return_are_disagreements():
    res = M.preference_accuracy([([10, 50], [3, 3])])
    assert res.n_pairs == 1 and res.n_disagree == 1
    assert res.accuracy == 0.0
    # a tolerance turns near-equal returns into ties too
    res = M.preference_accuracy([([10, 50], [3.0, 3.0 + 1e-9])], tie_tol=1e-6)
    assert res.accuracy == 0.0
    res = M.preference_accuracy([([10, 50], [3.0, 3.0 + 1e-9])])
    assert res.accuracy == 1.0


def test_single_pair_group_disagreeing():
    res = M.preference_accuracy({"g": ([0, 100], [5, 1])})
    assert res.contexts["g"].n_pairs == 1
    assert res.contexts["g"].disagreement == 1.0
    assert res.accuracy == 0.0


def test_group_without_strict_pair_is_skipped():
    res = M.preference_accuracy({"flat": ([20, 20, 20], [1, 2, 3]), "one": ([50], [1]), "ok": ([0, 100], [0, 1])})
    assert res.skipped == ["flat", "one"]
    assert list(res.contexts) == ["ok"]
    assert res.accuracy == 1.0


def test_no_pairs_at_all_gives_none():
    res = M.preference_accuracy([([1, 1], [0, 1])], n_boot=100)
    assert res.accuracy is None and res.ci is None and res.n_pairs == 0


def test_weighting_by_pair_count():
    # context 0: 1 pair, disagrees (D=1); context 1: 3 pairs, all agree (D=0)
    res = M.preference_accuracy([([0, 100], [1, 0]), ([0, 50, 100], [0, 1, 2])])
    assert [c.n_pairs for c in res.contexts.values()] == [1, 3]
    assert [c.disagreement for c in res.contexts.values()] == [1.0, 0.0]
    assert res.accuracy == pytest.approx(0.75)  # 1 - (1*1 + 3*0) / 4, not the unweighted 0.5


def test_mixed_context_by_hand():
    # pairs: (0,1) +1 vs -1 dis; (0,2) ok; (0,3) ok; (1,2) y tie: out; (1,3) ok; (2,3) model tie: dis
    res = M.preference_accuracy([([100, 60, 60, 0], [4, 5, 1, 1])])
    c = res.contexts[0]
    assert (c.n_pairs, c.n_disagree) == (5, 2)
    assert c.disagreement == pytest.approx(0.4)
    assert res.accuracy == pytest.approx(0.6)


def test_missing_model_values_are_counted_not_scored():
    res = M.preference_accuracy([([0, 50, 100], [1, np.nan, 3])])
    assert res.n_pairs == 1 and res.n_missing == 2
    assert res.accuracy == 1.0


def test_bootstrap_ci_is_seeded_and_brackets():
    rng = np.random.default_rng(0)
    ctxs = [(rng.integers(0, 5, 6) * 25, rng.normal(size=6)) for _ in range(12)]
    a = M.preference_accuracy(ctxs, n_boot=500, seed=7)
    b = M.preference_accuracy(ctxs, n_boot=500, seed=7)
    c = M.preference_accuracy(ctxs, n_boot=500, seed=8)
    assert a.ci == b.ci and a.seed == 7 and a.n_boot == 500
    assert a.ci != c.ci
    lo, hi = a.ci
    assert 0.0 <= lo <= a.accuracy <= hi <= 1.0
    single = M.preference_accuracy([([0, 50, 100], [0, 2, 1])], n_boot=50)
    assert single.ci == pytest.approx((single.accuracy, single.accuracy))


def test_pairwise_accuracy():
    y = [100, 50, 50, 0]
    p = np.full((4, 4), np.nan)
    p[0, 1], p[0, 2], p[0, 3] = 0.9, 0.2, 0.5  # agree, disagree, tie (=disagree)
    p[1, 3] = 0.7  # agree; (1,2) tied in y, (2,3) not asked -> missing
    res = M.pairwise_preference_accuracy([(y, p)])
    assert (res.n_pairs, res.n_disagree, res.n_missing) == (4, 2, 1)
    assert res.accuracy == 0.5


def _ep(ctx, cat, score, value, variant="x", failures=(), success=True, safety=False):
    return ScoredEpisode(ctx, cat, score, value, variant, tuple(failures), success, safety)


def test_accuracy_per_category():
    eps = [
        _ep(1, "pick", 100, 3), _ep(1, "pick", 0, 1),
        _ep(2, "pour", 100, 1), _ep(2, "pour", 0, 3), _ep(2, "pour", 50, 2),
    ]
    res = M.preference_accuracy_by_category(eps)
    assert res["pick"].accuracy == 1.0 and res["pick"].n_pairs == 1
    assert res["pour"].accuracy == 0.0 and res["pour"].n_pairs == 3


def test_accuracy_per_failure_type_uses_only_clean_vs_failure_pairs():
    eps = [
        _ep("g", "pick", 100, 10, "expert"),
        _ep("g", "pick", 90, 9, "nudge"),  # clean: no failure event
        _ep("g", "pick", 20, 12, "drop", ["drop"], success=False),
        _ep("g", "pick", 50, 5, "push", ["obstacle_topple"], safety=True),
    ]
    res = M.preference_accuracy_by_failure_type(eps)
    assert set(res) == {"drop", "obstacle_topple"}
    # drop: (expert, drop) and (clean, drop), both ranked the wrong way
    assert res["drop"].n_pairs == 2 and res["drop"].accuracy == 0.0
    # topple: both right; the drop-vs-topple pair is never used
    assert res["obstacle_topple"].n_pairs == 2 and res["obstacle_topple"].accuracy == 1.0


# --------------------------------------------------------------------------- VOC


def test_voc_increasing_decreasing_constant():
    assert M.voc(np.linspace(0, 1, 10)) == M.VOCResult(1.0, False)
    assert M.voc(np.linspace(1, 0, 10)).value == pytest.approx(-1.0)
    assert M.voc([0.3] * 5) == M.VOCResult(0.0, True)
    assert M.voc([0.3]) == M.VOCResult(0.0, True)
    # ranks [1,3,2,4]: 1 - 6*2 / (4*15) = 0.8
    assert M.voc([0, 2, 1, 3]).value == pytest.approx(0.8)


def test_mean_voc_counts_constant():
    s = M.mean_voc([np.arange(5.0), np.zeros(5), np.arange(5.0)[::-1]])
    assert s.mean == pytest.approx(0.0) and s.n == 3 and s.n_constant == 1
    assert M.mean_voc([]).mean is None


# --------------------------------------------------------------------------- Kendall


def test_kendall_tau_cases():
    assert M.kendall_tau([1, 2, 3], [10, 20, 30]) == pytest.approx(1.0)
    assert M.kendall_tau([3, 2, 1], [10, 20, 30]) == pytest.approx(-1.0)
    assert M.kendall_tau([1, 3, 2], [1, 2, 3]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant
    assert M.kendall_tau([1, 2], [5, 5]) is None
    assert M.kendall_tau([2, 2, 2], [1, 2, 3]) == 0.0
    assert M.kendall_tau([1, np.nan, 2], [1, 2, 3]) == pytest.approx(1.0)
    s = M.mean_kendall_tau({"a": ([1, 2, 3], [1, 2, 3]), "b": ([1, 3, 2], [1, 2, 3]), "c": ([1, 2], [0, 0])})
    assert s.mean == pytest.approx((1 + 1 / 3) / 2) and s.n_groups == 2 and s.n_skipped == 1


# --------------------------------------------------------------------------- false positives


def test_false_positive_rate_by_hand():
    eps = [
        _ep(1, "pick", 100, 10, "expert"), _ep(2, "pick", 100, 12, "expert"), _ep(3, "pick", 100, 14, "expert"),
        _ep(1, "pick", 10, 13, "drop", ["drop"], success=False),  # >= 12: false positive
        _ep(2, "pick", 10, 11, "drop", ["drop"], success=False),  # below: caught
        _ep(3, "pick", 60, 12, "push", ["obstacle_topple"], success=True, safety=True),  # == median: FP
        _ep(3, "pick", 90, 20, "nudge", ["slow"], success=True),  # successful, no safety: not a failure episode
        _ep(9, "pour", 0, 99, "spill", ["spill"], success=False),  # no expert in category: skipped
    ]
    res = M.false_positive_rate(eps)
    assert res.thresholds == {"pick": 12.0}
    assert (res.n_failure, res.n_false_positive, res.n_skipped) == (3, 2, 1)
    assert res.rate == pytest.approx(2 / 3)


# --------------------------------------------------------------------------- failure timing


TRACE = [0.0, 0.2, 0.4, 0.6, 0.6, 0.55, 0.45, 0.3, 0.3]


def test_failure_timing_lag_and_depth():
    t = M.failure_timing(TRACE, 4, value_range=(0.0, 1.0), threshold=0.1)
    assert t.baseline == pytest.approx(0.6)
    assert t.detected_frame == 6 and t.lag == 2  # first frame <= 0.5 at or after frame 4
    assert t.depth == pytest.approx(0.3)
    # same trace in percent with the declared range (0, 100): same answer
    t100 = M.failure_timing(np.array(TRACE) * 100, 4, value_range=(0.0, 100.0), threshold=0.1)
    assert t100.lag == 2 and t100.depth == pytest.approx(0.3)
    # a larger threshold needs a deeper drop
    assert M.failure_timing(TRACE, 4, threshold=0.25).lag == 3


def test_failure_timing_miss_and_early_drop():
    miss = M.failure_timing(np.linspace(0, 1, 10), 3)
    assert miss.lag is None and not miss.detected and miss.depth == 0.0
    early = M.failure_timing([0.0, 0.8, 0.2, 0.2, 0.2], 3)  # already low at the visible frame
    assert early.lag == 0 and early.depth == pytest.approx(0.6)
    summary = M.summarize_timing([miss, early, M.failure_timing(TRACE, 4)])
    assert summary["n"] == 3 and summary["n_detected"] == 2
    assert summary["detection_rate"] == pytest.approx(2 / 3)
    assert summary["mean_lag"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        M.failure_timing(TRACE, 9)


def test_dense_agreement_rescales_by_declared_range():
    gt = np.linspace(0, 1, 11)
    da = M.dense_agreement(gt * 100, gt, (0.0, 100.0))
    assert da.pearson == pytest.approx(1.0) and da.mse == pytest.approx(0.0)
    da = M.dense_agreement(np.full(11, 50.0), gt, (0.0, 100.0))
    assert da.pearson is None
    assert da.mse == pytest.approx(float(np.mean((0.5 - gt) ** 2)))
    assert math.isclose(M.dense_agreement(1 - gt, gt).pearson, -1.0)
