"""Harness over (EpisodeInput, ground truth) pairs, baselines, and self-distillation."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.core.episode import FailureEvent
from simfail.errors import ConfigError, RewardModelError
from simfail.stress import (
    EpisodeInput,
    ModelRequirements,
    OracleModel,
    ProgressOnlyModel,
    evaluate,
    run_model,
    self_distill,
    stress_test,
)

T = 20


def _drop(visible: int = 10) -> FailureEvent:
    return FailureEvent("drop", "task", visible - 2, visible - 1, visible, 1.0, ("cube",), "the cube fell")


def _topple(visible: int = 12) -> FailureEvent:
    return FailureEvent("obstacle_topple", "safety", visible - 3, visible, visible, 0.8, ("bowl",), "the bowl toppled")


def _episode(eid: str, ctx: int, variant: str, score: float, reward, progress, failures=(), success=True):
    frames = np.full((T, 4, 4, 3), int(score), np.uint8)  # pixel value = score, for the pairwise fake
    ep = EpisodeInput(frames={"left": frames}, fps=10.0, instruction="put the cube on the plate", episode_id=eid)
    gt = {
        "context": ctx,
        "task": "pick_place",
        "score": score,
        "success": success,
        "variant": variant,
        "failures": [f.to_dict() for f in failures] if ctx % 2 else list(failures),  # both forms accepted
        "reward": np.asarray(reward, float),
        "progress": np.asarray(progress, float),
    }
    return ep, gt


def dataset():
    ramp = np.linspace(0, 1, T)
    dropped = np.where(np.arange(T) < 10, ramp, 0.0)
    bumped = np.where(np.arange(T) < 12, ramp, 0.0)
    items = []
    for ctx in range(2):
        items += [
            _episode(f"{ctx}-expert", ctx, "expert", 100.0, ramp, ramp),
            _episode(f"{ctx}-nudge", ctx, "nudge", 80.0, 0.8 * ramp, 0.8 * ramp),  # near miss, no failure
            _episode(f"{ctx}-drop", ctx, "drop", 20.0, dropped, ramp, [_drop()], success=False),
            _episode(f"{ctx}-push", ctx, "push", 40.0, bumped, ramp, [_topple()], success=True),
        ]
    return items


def test_oracle_is_perfect():
    rep = stress_test(OracleModel(), dataset(), n_boot=200)
    assert rep["n_errors"] == 0 and rep["privileged"]
    assert rep["preference"]["accuracy"] == 1.0 and rep["preference"]["n_pairs"] == 12
    assert rep["preference_by_task"]["pick_place"]["accuracy"] == 1.0
    assert set(rep["preference_by_failure_type"]) == {"drop", "obstacle_topple"}
    assert rep["preference_by_failure_type"]["drop"]["n_pairs"] == 4  # (expert, drop), (nudge, drop) x 2
    assert rep["kendall"]["mean"] == pytest.approx(1.0)
    assert rep["voc"]["mean"] == pytest.approx(1.0) and rep["voc"]["n"] == 2
    assert rep["false_positive"]["rate"] == 0.0 and rep["false_positive"]["n_failure"] == 4
    ft = rep["failure_timing"]
    assert ft["n"] == 4 and ft["detection_rate"] == 1.0 and ft["mean_lag"] == 0.0
    assert rep["dense_agreement"]["mean_mse"] == pytest.approx(0.0)
    json.dumps(rep)  # serialisable


def test_progress_only_time_ramp_cannot_rank():
    rep = stress_test(ProgressOnlyModel("time"), dataset(), n_boot=0)
    assert rep["preference"]["accuracy"] == 0.0  # equal lengths: every pair is a tie
    assert rep["voc"]["mean"] == pytest.approx(1.0)
    assert rep["false_positive"]["rate"] == 1.0
    assert rep["failure_timing"]["detection_rate"] == 0.0 and rep["failure_timing"]["mean_lag"] is None
    assert not rep["privileged"]


def test_progress_only_progress_ignores_failures():
    rep = stress_test(ProgressOnlyModel("progress"), dataset(), n_boot=0)
    # only expert > nudge is right; failures tie with the expert (and each other) and beat the
    # near miss: 1 right pair out of 6 per context
    assert rep["preference"]["accuracy"] == pytest.approx(1 / 6)
    assert rep["preference_by_failure_type"]["drop"]["accuracy"] == 0.0


class Flaky:
    """Dense model that sees at most 5 frames and breaks on drop episodes."""

    name = "flaky"

    def __init__(self) -> None:
        self.requirements = ModelRequirements(views=("left",), max_frames=5, frame_size=(2, 2))
        self.seen = []

    def predict(self, ep):
        self.seen.append(ep.frames["left"].shape)
        if ep.episode_id.endswith("drop"):
            return np.full(ep.length, np.nan)
        return ep.frames["left"][:, 0, 0, 0] / 100.0 * np.linspace(0, 1, ep.length)


def test_model_errors_are_counted_not_scored():
    m = Flaky()
    run = run_model(m, dataset())
    assert set(m.seen) == {(5, 2, 2, 3)}
    assert all(o.n_model_frames == 5 for o in run.outcomes if o.error is None)
    errs = [o for o in run.outcomes if o.error]
    assert [o.episode_id for o in errs] == ["0-drop", "1-drop"]
    assert all(o.error_type == "RewardModelError" and "non-finite" in o.error for o in errs)
    rep = evaluate(run, n_boot=0)
    assert rep["n_errors"] == 2
    assert rep["preference"]["n_missing"] == 6 and rep["preference"]["n_pairs"] == 6
    assert rep["preference"]["accuracy"] == 1.0


class Batched(Flaky):
    name = "batched"

    def __init__(self) -> None:
        super().__init__()
        self.batches = []

    def predict_batch(self, eps):
        self.batches.append(len(eps))
        return [np.full(e.length, e.frames["left"][0, 0, 0, 0] / 100.0) for e in eps]


def test_predict_batch_is_used():
    m = Batched()
    run = run_model(m, dataset(), batch_size=3)
    assert m.batches == [3, 3, 2] and not m.seen
    assert [o.value for o in run.outcomes[:4]] == pytest.approx([20.0, 16.0, 4.0, 8.0])


class BatchedWithErrors(Batched):
    def predict_batch(self, eps):
        out = super().predict_batch(eps)
        return [RewardModelError("boom") if e.episode_id.endswith("drop") else o for e, o in zip(eps, out)]


def test_predict_batch_item_errors_are_counted():
    m = BatchedWithErrors()
    run = run_model(m, dataset(), batch_size=4)
    assert m.batches == [4, 4] and not m.seen  # no fallback to predict()
    assert [o.episode_id for o in run.outcomes if o.error] == ["0-drop", "1-drop"]
    recs = run.records()
    assert recs[2]["error"] == "boom" and recs[2]["value"] is None and recs[0]["value"] == pytest.approx(20.0)
    json.dumps(recs)


class EpisodeLevel:
    name = "episode_level"
    requirements = ModelRequirements(views=("left",), output="episode", value_range=(0.0, 100.0))

    def predict(self, ep):
        return np.array([float(ep.frames["left"][-1, 0, 0, 0])])


def test_episode_level_model():
    rep = stress_test(EpisodeLevel(), dataset(), n_boot=0)
    assert rep["preference"]["accuracy"] == 1.0
    assert rep["voc"] is None and rep["failure_timing"] is None


class Pairwise:
    name = "pairwise"
    requirements = ModelRequirements(views=("left",), output="pairwise", max_frames=2)

    def predict(self, ep):
        raise AssertionError("not used")

    def compare(self, a, b):
        if a.episode_id == "1-push" or b.episode_id == "1-push":
            return 2.0  # out of [0, 1]: counted as an error
        return 1.0 if a.frames["left"].mean() > b.frames["left"].mean() else 0.0


def test_pairwise_model():
    run = run_model(Pairwise(), dataset())
    assert len(run.pairs) == 12
    rep = evaluate(run, n_boot=0)
    assert rep["n_errors"] == 3
    assert rep["preference"]["n_pairs"] == 9 and rep["preference"]["n_missing"] == 3
    assert rep["preference"]["accuracy"] == 1.0


# --------------------------------------------------------------------------- self-distillation


class FakeStochastic:
    """Draw i gives episode "a" a return of A[i] and episode "b" B[i] (flat traces)."""

    name = "fake_stochastic"

    def __init__(self, a_sums, b_sums, n=5):
        self.requirements = ModelRequirements(views=("left",), stochastic=True, value_range=(0.0, 10.0))
        self.sums = {"a": list(a_sums), "b": list(b_sums)}
        self.calls = {"a": 0, "b": 0}
        self.n = n

    def predict(self, ep):
        raise AssertionError("distillation must call sample()")

    def sample(self, ep, rng):
        side = ep.episode_id
        s = self.sums[side][self.calls[side]]
        self.calls[side] += 1
        assert isinstance(rng, np.random.Generator)
        return np.full(ep.length, s / ep.length)


def _pair(n=5):
    frames = np.zeros((n, 2, 2, 3), np.uint8)
    return (
        EpisodeInput({"left": frames}, 10.0, "t", episode_id="a"),
        EpisodeInput({"left": frames}, 10.0, "t", episode_id="b"),
    )


def test_distill_keeps_an_agreeing_draw():
    a, b = _pair()
    res = self_distill(FakeStochastic([1, 5, 2, 8], [3, 2, 4, 1]), a, b, "a", k=4)
    assert res.n_agreed == 2 and res.n_samples == 4 and res.n_errors == 0
    assert res.chosen == 3  # largest margin among draws 1 (5>2) and 3 (8>1)
    assert res.less_preferred == "b"
    assert res.trace.sum() == pytest.approx(1.0) and res.preferred_trace.sum() == pytest.approx(8.0)
    assert res.agreement_rate == 0.5
    ex = res.to_example(np.zeros((5, 2, 2, 3), np.uint8), "drops the cube")
    assert ex.is_failure and np.allclose(ex.rewards, 0.02)  # 0.2 on a 0-10 scale

    a, b = _pair()
    res = self_distill(FakeStochastic([1, 5, 2, 8], [3, 2, 4, 1]), a, b, "a", k=4, select="first")
    assert res.chosen == 1 and res.trace.sum() == pytest.approx(2.0)

    a, b = _pair()
    res = self_distill(FakeStochastic([1, 5, 2, 8], [3, 2, 4, 1]), a, b, "b", k=4)
    assert res.n_agreed == 2 and res.chosen == 0  # margins 2 and 2: the earliest
    assert res.less_preferred == "a" and res.trace.sum() == pytest.approx(1.0)


def test_distill_no_agreement_and_errors():
    a, b = _pair()
    res = self_distill(FakeStochastic([1, 2, 3], [1, 5, 100]), a, b, "a", k=3)  # tie, wrong, out of range
    assert res.n_agreed == 0 and res.trace is None and res.chosen is None
    assert res.n_errors == 1 and "outside the declared range" in res.errors[0]
    with pytest.raises(ConfigError):
        res.to_example(np.zeros((5, 2, 2, 3), np.uint8))
    with pytest.raises(ConfigError, match="sample"):
        self_distill(OracleModel(), a, b, "a")
