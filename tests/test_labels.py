"""Dense reward, episode score, failure mask, preferences and ranks."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.core.episode import FailureEvent, Preference, competition_ranks, strict_preferences
from simfail.labels.scoring import dense_reward, episode_score, failure_mask


def event(category: str, visible: int, severity: float = 1.0, kind: str = "x", onset: int = 0) -> FailureEvent:
    return FailureEvent(kind, category, onset, visible, visible, severity, ("object",), "scripted")


RAMP = np.linspace(0.0, 1.0, 21).astype(np.float32)


# --------------------------------------------------------------------------- dense_reward


def test_reward_without_events_is_progress():
    r = dense_reward(RAMP, [])
    assert r.dtype == np.float32 and r.shape == RAMP.shape
    np.testing.assert_array_equal(r, RAMP)


def test_safety_event_zeroes_reward_from_its_visible_frame():
    r = dense_reward(RAMP, [event("safety", 8, severity=0.1)])
    np.testing.assert_array_equal(r[:8], RAMP[:8])
    assert np.all(r[8:] == 0.0)


@pytest.mark.parametrize("category, weight", [("task", 0.5), ("quality", 0.3)])
@pytest.mark.parametrize("severity", [1.0, 0.4])
def test_task_and_quality_events_scale_reward(category, weight, severity):
    r = dense_reward(RAMP, [event(category, 10, severity)])
    np.testing.assert_array_equal(r[:10], RAMP[:10])
    np.testing.assert_allclose(r[10:], RAMP[10:] * (1 - weight * severity), rtol=1e-6)


def test_penalties_multiply_and_apply_from_each_visible_frame():
    events = [event("task", 5, 1.0), event("quality", 12, 0.5), event("quality", 15, 1.0)]
    r = dense_reward(np.ones(20, np.float32), events)
    np.testing.assert_allclose(r[:5], 1.0)
    np.testing.assert_allclose(r[5:12], 0.5)
    np.testing.assert_allclose(r[12:15], 0.5 * 0.85)
    np.testing.assert_allclose(r[15:], 0.5 * 0.85 * 0.7, rtol=1e-6)
    # event order does not matter
    np.testing.assert_array_equal(dense_reward(np.ones(20, np.float32), events[::-1]), r)


def test_safety_dominates_and_reward_drops_exactly_at_the_visible_frame():
    r = dense_reward(np.ones(10, np.float32), [event("quality", 2, 1.0), event("safety", 6, 0.05)])
    np.testing.assert_allclose(r, [1, 1, 0.7, 0.7, 0.7, 0.7, 0, 0, 0, 0], rtol=1e-6)
    drop = int(np.flatnonzero(np.diff(r) < 0)[0]) + 1
    assert drop == 2


def test_reward_event_past_the_end_and_at_frame_zero():
    p = np.full(6, 0.5, np.float32)
    np.testing.assert_array_equal(dense_reward(p, [event("safety", 6)]), p)  # never visible
    np.testing.assert_array_equal(dense_reward(p, [event("safety", 0)]), np.zeros(6, np.float32))


def test_reward_is_clipped_to_unit_interval():
    r = dense_reward(np.array([-0.5, 0.2, 1.5], np.float32), [])
    np.testing.assert_array_equal(r, np.array([0.0, 0.2, 1.0], np.float32))


# --------------------------------------------------------------------------- episode_score


@pytest.mark.parametrize(
    "success, final, events, expected",
    [
        (True, 1.0, [], 100.0),
        (True, 1.0, [event("quality", 3, 1.0)], 75.0),
        (True, 1.0, [event("quality", 3, 0.4)], 90.0),
        (True, 1.0, [event("safety", 3, 1.0)], 50.0),
        (True, 1.0, [event("safety", 3, 1.0), event("safety", 4, 1.0)], 0.0),
        (True, 1.0, [event("task", 3, 1.0)], 100.0),  # task failures live in the base only
        (False, 0.5, [], 30.0),
        (False, 0.5, [event("task", 3, 1.0)], 30.0),
        (False, 0.5, [event("quality", 3, 1.0)], 5.0),
        (False, 0.5, [event("safety", 3, 1.0)], 0.0),  # clipped at 0
        (False, 0.0, [], 0.0),
        (False, 1.0, [], 60.0),
        (False, 1 / 3, [], 20.0),  # rounded to 0.1
        (True, 0.2, [event("quality", 3, 0.333)], 91.7),
    ],
)
def test_episode_score(success, final, events, expected):
    progress = np.linspace(0, final, 11).astype(np.float32) if final else np.zeros(11, np.float32)
    progress[-1] = final
    assert episode_score(success, progress, events) == pytest.approx(expected, abs=1e-9)


def test_score_is_rounded_to_a_tenth_and_in_range():
    rng = np.random.default_rng(0)
    for _ in range(200):
        prog = rng.random(5).astype(np.float32)
        evs = [event(str(rng.choice(["safety", "task", "quality"])), 1, float(rng.random())) for _ in range(rng.integers(0, 4))]
        s = episode_score(bool(rng.random() < 0.5), prog, evs)
        assert 0.0 <= s <= 100.0
        assert round(s, 1) == s
        assert isinstance(s, float)


def test_success_always_outscores_failure_without_penalties():
    assert episode_score(True, np.array([1.0]), []) > episode_score(False, np.array([1.0]), [])


# --------------------------------------------------------------------------- failure_mask


def test_failure_mask():
    assert failure_mask(5, []).tolist() == [False] * 5
    m = failure_mask(10, [event("quality", 7), event("task", 3), event("safety", 9)])
    assert m.dtype == bool
    assert m.tolist() == [False] * 3 + [True] * 7
    assert failure_mask(4, [event("task", 0)]).all()
    assert not failure_mask(4, [event("task", 4)]).any()


def test_failure_mask_matches_reward_drop():
    events = [event("quality", 6, 0.5), event("task", 9)]
    m = failure_mask(12, events)
    r = dense_reward(np.ones(12, np.float32), events)
    assert int(np.flatnonzero(m)[0]) == int(np.flatnonzero(r < 1)[0]) == 6


# --------------------------------------------------------------------------- FailureEvent


def test_failure_event_validation_and_round_trip():
    with pytest.raises(ValueError):
        FailureEvent("x", "bogus", 0, 0, 0, 1.0, (), "")
    with pytest.raises(ValueError):
        FailureEvent("x", "task", 0, 0, 0, 1.5, (), "")
    with pytest.raises(ValueError):
        FailureEvent("x", "task", 5, 3, 6, 1.0, (), "")  # onset after irreversible
    with pytest.raises(ValueError):
        FailureEvent("x", "task", 5, 6, 3, 1.0, (), "")  # onset after visible
    ev = FailureEvent("drop", "task", 2, 3, 4, 0.5, ("object", "target"), "why", {"h": 0.1})
    assert FailureEvent.from_dict(ev.to_dict()) == ev


# --------------------------------------------------------------------------- preferences / ranks


def test_strict_preferences_skip_ties_and_prefer_higher_scores():
    prefs = strict_preferences(7, [10, 11, 12, 13], [100.0, 40.0, 100.0, 0.0])
    assert prefs == [
        Preference(7, 10, 11, 10, 100.0, 40.0),
        Preference(7, 10, 13, 10, 100.0, 0.0),
        Preference(7, 11, 12, 12, 40.0, 100.0),
        Preference(7, 11, 13, 11, 40.0, 0.0),
        Preference(7, 12, 13, 12, 100.0, 0.0),
    ]
    assert all(p.episode_a < p.episode_b for p in prefs)


def test_strict_preferences_edge_cases():
    assert strict_preferences(0, [], []) == []
    assert strict_preferences(0, [3], [50.0]) == []
    assert strict_preferences(0, [3, 4, 5], [20.0, 20.0, 20.0]) == []
    n = 6
    scores = [float(s) for s in range(n)]
    assert len(strict_preferences(0, list(range(n)), scores)) == n * (n - 1) // 2


def test_competition_ranks_with_ties():
    assert competition_ranks([100.0, 50.0, 100.0, 20.0, 50.0]) == [1, 3, 1, 5, 3]
    assert competition_ranks([5.0, 5.0, 5.0]) == [1, 1, 1]
    assert competition_ranks([0.0, 10.0, 20.0]) == [3, 2, 1]
    assert competition_ranks([]) == []
    assert competition_ranks([42.0]) == [1]


def test_ranks_and_preferences_agree():
    scores = [100.0, 83.5, 0.0, 83.5, 48.0, 0.0]
    ranks = competition_ranks(scores)
    for p in strict_preferences(0, list(range(len(scores))), scores):
        loser = p.episode_b if p.preferred == p.episode_a else p.episode_a
        assert ranks[p.preferred] < ranks[loser]
