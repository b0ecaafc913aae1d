"""Tests of simfail.envvars.environ: set for a block, then the old values (or none) again."""

from __future__ import annotations

import os

import pytest

from simfail.envvars import environ


def test_environ_sets_and_restores_even_when_the_block_raises(monkeypatch) -> None:
    monkeypatch.setenv("SIMFAIL_T_SET", "old")
    monkeypatch.delenv("SIMFAIL_T_UNSET", raising=False)
    with pytest.raises(KeyError):
        with environ({"SIMFAIL_T_SET": "new", "SIMFAIL_T_UNSET": "1"}):
            assert os.environ["SIMFAIL_T_SET"] == "new" and os.environ["SIMFAIL_T_UNSET"] == "1"
            raise KeyError("boom")
    assert os.environ["SIMFAIL_T_SET"] == "old"
    assert "SIMFAIL_T_UNSET" not in os.environ
    with environ({}):
        assert os.environ["SIMFAIL_T_SET"] == "old"
