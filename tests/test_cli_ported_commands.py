"""The commands ported into the registry at merge time (view, import-real, experiment): help
generated from their schemas, variants of ``experiment``, and bad values as one error line."""

from __future__ import annotations

import pytest

from simfail.cli import main
from simfail.commands import build_config


def _error(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: "), err
    return err[0]


def test_experiment_help_lists_experiments_and_one_experiments_keys(capsys):
    assert main(["experiment", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: simfail experiment NAME" in out and "real_plus_sim" in out
    assert main(["experiment", "real_plus_sim", "--help"]) == 0
    out = capsys.readouterr().out
    assert "usage: simfail experiment real_plus_sim" in out
    for key in ("real  (", "sim  (", "holdout  (float; default 0.5", "net_width  (int"):
        assert key in out, key
    assert main(["help", "experiment", "real_plus_sim"]) == 0 and "holdout" in capsys.readouterr().out


@pytest.mark.parametrize("name,key", [("view", "data  (str | null; positional"), ("import-real", "src  (str | null; positional"),
                                      ("evaluate", "split  ("), ("train-reward", "real_holdout  (")])
def test_ported_help_comes_from_the_schema(capsys, name, key):
    assert main([name, "--help"]) == 0
    assert key in capsys.readouterr().out


def test_ported_settings_validate_through_the_schema():
    ev = build_config("evaluate", ["data=[A,B]", "split=DIR"])
    assert ev.data == ["A", "B"] and ev.split == "DIR"
    tr = build_config("train-reward", ["data=[A,B]", "weights=[1,2]", "real_holdout=0.3", "out=M"])
    assert tr.weights == [1.0, 2.0] and tr.real_holdout == 0.3
    ex = build_config("experiment", ["real_plus_sim", "real=R", "sim=S", "out=O", "epochs=3"])
    assert type(ex).__name__ == "RealPlusSimConfig" and ex.epochs == 3
    im = build_config("import-real", ["SRC", "format=roboarena", "out=O"])
    assert im.src == "SRC" and im.format == "roboarena"
    vw = build_config("view", ["DIR", "groups=0:3", "out=site"])
    assert vw.data == "DIR" and vw.groups == [0, 1, 2]


@pytest.mark.parametrize("argv,msg", [
    (["view", "DIR", "port=70000"], "port must be in [0, 65535]"),
    (["view", "DIR", "frames=x"], "frames: Value 'x'"),
    (["view", "DIR", "videos=hardlink"], "unknown videos value 'hardlink'"),
    (["import-real", "SRC", "format=robo", "out=O"], "unknown import format 'robo'"),
    (["import-real", "SRC", "format=roboarena", "out=O", "chunks_size=0"], "chunks_size must be >= 1"),
    (["import-real", "SRC", "format=roboarena", "out=O", "verify=maybe"], "verify: Value 'maybe'"),
    (["experiment"], "usage: simfail experiment NAME"),
    (["experiment", "real_plus"], "unknown experiment 'real_plus' (did you mean 'real_plus_sim'?)"),
    (["experiment", "real_plus_sim", "real=R", "sim=S", "out=O", "holdout=abc"], "holdout: Value 'abc'"),
    (["experiment", "real_plus_sim", "real=R", "sim=S", "out=O", "epochs=0"], "epochs must be >= 1"),
    (["train-reward", "data=[A,B]", "weights=[1]", "out=M"], "weights must be one number >= 0 per dataset (2)"),
    (["train-reward", "data=[A,B]", "weights=[a,b]", "out=M"], "weights[0]: Value 'a'"),
    (["train-reward", "data=[A,B]", "real_holdout=1.5", "out=M"], "real_holdout must be a share in [0, 1)"),
])
def test_bad_values_are_one_error_line(capsys, tmp_path, monkeypatch, argv, msg):
    monkeypatch.chdir(tmp_path)
    assert msg in _error(capsys, argv)
    assert not any(tmp_path.iterdir())  # nothing written
