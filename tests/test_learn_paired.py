"""Paired bootstrap of the difference in preference accuracy of two reports (no torch needed)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.errors import ConfigError
from simfail.learn.paired import compare_reports, counts_from_metrics, main, paired_bootstrap_difference


def _metrics(counts: dict[str, tuple[int, int]], by_type: dict | None = None) -> dict:
    pc = {k: {"n_pairs": n, "n_disagree": d, "D": d / n} for k, (n, d) in counts.items()}
    bt = {t: {"per_context": {k: {"n_pairs": n, "n_disagree": d} for k, (n, d) in c.items()}} for t, c in (by_type or {}).items()}
    return {"summary": {"preference": {"per_context": pc}, "preference_by_failure_type": bt}}


def test_identical_models_give_a_zero_interval():
    a = {str(c): (10, c % 4) for c in range(12)}
    r = paired_bootstrap_difference(a, dict(a), n_boot=500)
    assert r["difference"] == 0.0 and r["ci"] == [0.0, 0.0] and r["share_le_0"] == 1.0 and r["n_pairs"] == 120


def test_difference_point_estimate_and_interval():
    a = {str(c): (10, 5) for c in range(20)}  # A = 0.5
    b = {str(c): (10, 2 + c % 2) for c in range(20)}  # A = 0.75
    r = paired_bootstrap_difference(a, b, n_boot=2000, seed=3)
    assert r["accuracy_a"] == pytest.approx(0.5) and r["accuracy_b"] == pytest.approx(0.75)
    assert r["difference"] == pytest.approx(0.25)
    lo, hi = r["ci"]
    assert 0.2 < lo <= 0.25 <= hi < 0.3 and r["share_le_0"] == 0.0
    assert paired_bootstrap_difference(a, b, n_boot=2000, seed=3) == r  # seeded
    # the pairing: a shared per-context effect does not widen the interval of the difference
    a2 = {str(c): (10, (c % 5) * 2) for c in range(20)}
    b2 = {k: (n, max(d - 1, 0)) for k, (n, d) in a2.items()}
    r2 = paired_bootstrap_difference(a2, b2, n_boot=2000)
    assert r2["ci"][1] - r2["ci"][0] < 0.06


def test_mismatched_inputs_are_config_errors():
    with pytest.raises(ConfigError, match="share no context"):
        paired_bootstrap_difference({"0": (3, 1)}, {"1": (3, 1)})
    with pytest.raises(ConfigError, match="different pair counts"):
        paired_bootstrap_difference({"0": (3, 1)}, {"0": (2, 1)})
    with pytest.raises(ConfigError, match="confidence"):
        paired_bootstrap_difference({"0": (3, 1)}, {"0": (3, 1)}, confidence=1.5)


def test_reports_from_disk_and_the_command(tmp_path, capsys):
    ra, rb = tmp_path / "a", tmp_path / "b"
    ra.mkdir()
    rb.mkdir()
    ca = {str(c): (6, 3) for c in range(8)}
    cb = {str(c): (6, 1) for c in range(8)}
    (ra / "metrics.json").write_text(json.dumps(_metrics(ca, {"drop": {"0": (2, 1)}})))
    (rb / "metrics.json").write_text(json.dumps(_metrics(cb, {"drop": {"0": (2, 0)}})))
    assert counts_from_metrics(ra) == ca
    assert counts_from_metrics(ra / "metrics.json", "drop") == {"0": (2, 1)}
    with pytest.raises(ConfigError, match="not in the report"):
        counts_from_metrics(ra, "topple")
    with pytest.raises(ConfigError, match="does not exist"):
        counts_from_metrics(tmp_path / "missing")
    r = compare_reports(ra, rb, n_boot=200)
    assert r["difference"] == pytest.approx(2 / 6) and np.allclose(r["ci"], [2 / 6, 2 / 6])
    assert main([str(ra), str(rb), "n_boot=100", "failure_type=drop"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["difference"] == pytest.approx(0.5) and out["failure_type"] == "drop"
