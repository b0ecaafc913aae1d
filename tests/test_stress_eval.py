"""``simfail evaluate`` / ``simfail compare`` on a tiny written dataset: dataset adapter, score
cache, report folder, error accounting."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.cli import main
from simfail.dataset.reader import SimfailDataset
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group
from simfail.dataset.writer import DatasetWriter
from simfail.errors import ConfigError, RewardModelError, UnknownNameError
from simfail.stress import ModelRequirements, OracleModel, register_model
from simfail.stress.commands import cmd_compare, cmd_evaluate, evaluate_settings
from simfail.stress.dataset_adapter import DatasetEpisodes

CALLS = {"count": 0, "goal_groups": []}


@register_model("test_counting")
class CountingModel:
    """Linear ramp scaled by the episode's first pixel value; counts its calls."""

    name = "test_counting"

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = float(scale)
        self.requirements = ModelRequirements(views=("left",), max_frames=6, value_range=(0.0, 1.0))

    def predict(self, ep):
        CALLS["count"] += 1
        n = ep.frames["left"].shape[0]
        return self.scale * np.linspace(0.0, 1.0, n)


@register_model("test_broken")
class BrokenModel:
    """NaN on odd episodes, wrong shape on episodes divisible by 4, fine otherwise."""

    name = "test_broken"
    requirements = ModelRequirements(views=(), value_range=(0.0, 1.0))

    def predict(self, ep):
        i = int(ep.episode_id[2:])
        n = ep.length
        if i % 2:
            return np.full(n, np.nan)
        if i % 4 == 0:
            return np.zeros(n + 1)
        return np.linspace(0.0, 1.0, n)


@register_model("test_goal")
class GoalModel:
    """Wants a goal image and examples; records what it got."""

    name = "test_goal"

    def __init__(self) -> None:
        self.requirements = ModelRequirements(views=("wrist",), wants_goal_image=True, wants_examples=True, output="episode")

    def predict(self, ep):
        assert ep.goal_image is not None and ep.goal_image.shape == (64, 64, 3)
        assert ep.examples and ep.examples[0].rewards is not None and ep.examples[-1].is_failure
        CALLS["goal_groups"].append(ep.episode_id)
        return np.float64(ep.goal_image.mean() / 255.0)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stress_eval") / "ds"
    w = DatasetWriter(root, fps=10, image_size=(64, 64), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    w.write_group(0, synthetic_group(0, lengths=(8, 8, 8)))
    w.write_group(1, synthetic_group(1, scores=(100.0, 10.0, 50.0), lengths=(8, 8, 8)))
    w.write_group(2, synthetic_group(2, scores=(100.0, 100.0), lengths=(8, 8)))  # tied: no strict pair
    w.finalize({})
    return root


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def test_adapter_ground_truth_and_lazy_decoding(data):
    ds = SimfailDataset(data)
    ad = DatasetEpisodes(ds, OracleModel().requirements)
    items = list(ad)
    assert len(items) == 8 and ad.n_decoded == 0  # privileged, no views: nothing decoded
    ep, gt = items[4]
    assert ep.frames == {} and ep.length == 8 and ep.instruction == "put the red cube in the bowl"
    assert ep.privileged is not None and set(ep.privileged) == {"reward", "progress", "score"}
    assert gt["context"] == 1 and gt["task"] == "pick_place" and gt["score"] == 10.0 and not gt["success"]
    assert gt["variant"] == "perturb_1" and gt["failures"][0].type == "drop" and gt["reward"].shape == (8,)

    goal = DatasetEpisodes(ds, GoalModel().requirements, seed=3)
    for e in range(len(ds)):
        src = goal.goal_source(e)
        assert src is not None and goal.group_of(src) != goal.group_of(e)
        assert ds.episode(src)["simfail.variant"] == "expert" and ds.episode(src)["simfail.success"]
        refs, fails = goal.example_sources(e)
        assert all(goal.group_of(x) != goal.group_of(e) for x in refs + fails)
    inp = goal.episode_input(0)
    assert set(inp.frames) == {"wrist"} and inp.goal_image.shape == (64, 64, 3)
    assert [x.is_failure for x in inp.examples] == [False, True] and inp.examples[0].frames.shape[0] == 8


def test_oracle_report(data, tmp_path):
    out = tmp_path / "oracle"
    assert cmd_evaluate(["model=oracle", f"data={data}", f"out={out}", "bootstrap=100", "curves=3", "progress=false"]) == 0
    m = _metrics(out)
    pref = m["summary"]["preference"]
    assert pref["accuracy"] == 1.0 and pref["n_pairs"] == 6
    assert {k: v["D"] for k, v in pref["per_context"].items()} == {"0": 0.0, "1": 0.0}  # group 2 has no strict pair
    assert pref["n_skipped_contexts"] == 1 and pref["ci"] == [1.0, 1.0]
    assert set(m["by_return"]) == {"sum", "last", "mean"}
    assert m["summary"]["preference_by_failure_type"]["drop"]["accuracy"] == 1.0
    assert m["summary"]["dense_agreement"]["mean_mse"] == pytest.approx(0.0)
    assert m["errors"]["n"] == 0 and m["summary"]["privileged"]
    for name in ("index.html", "accuracy_by_category.png", "accuracy_by_failure.png", "summary.txt"):
        assert (out / name).is_file()
    assert len(list((out / "curves").glob("*.png"))) == 3
    page = (out / "index.html").read_text()
    assert "#t=" in page and ".mp4" in page


def test_score_oracle_is_the_ranking_itself(data, tmp_path):
    out = tmp_path / "oracle_score"
    assert cmd_evaluate(["model=oracle", "model.key=score", f"data={data}", f"out={out}", "bootstrap=0",
                         "curves=0", "progress=false"]) == 0
    m = _metrics(out)
    assert m["summary"]["preference"]["accuracy"] == 1.0 and m["errors"]["n"] == 0
    with pytest.raises(UnknownNameError, match="oracle key"):
        OracleModel(key="returns")


def test_group_filter_scores_only_the_chosen_groups(data, tmp_path):
    out = tmp_path / "g1"
    assert cmd_evaluate(["model=oracle", f"data={data}", f"out={out}", "groups=[1]", "bootstrap=0", "curves=0",
                         "progress=false"]) == 0
    pref = _metrics(out)["summary"]["preference"]
    assert set(pref["per_context"]) == {"1"} and pref["n_pairs"] == 3
    with pytest.raises(ConfigError, match="not in"):
        cmd_evaluate(["model=oracle", f"data={data}", f"out={tmp_path / 'g9'}", "groups=7:9"])


def test_progress_only_default_out_and_kwargs(data, capsys):
    assert cmd_evaluate(["model=progress_only", "model.mode=progress", f"data={data}", "curves=2", "video=gif", "bootstrap=0"]) == 0
    out = data / "reports" / "progress_only-mode=progress"
    m = _metrics(out)
    assert m["model"]["kwargs"] == {"mode": "progress"} and m["summary"]["preference"]["accuracy"] is not None
    assert len(list((out / "media").glob("*.gif"))) == 2
    printed = capsys.readouterr().out
    assert "accuracy A" in printed and str(out) in printed
    cfg = evaluate_settings(["model=progress_only", 'model_kwargs={"mode": "time"}', f"data={data}"])
    assert cfg["model_kwargs"] == {"mode": "time"}


def test_cache_skips_scored_episodes(data, tmp_path):
    out = tmp_path / "counting"
    args = ["model=test_counting", f"data={data}", f"out={out}", "bootstrap=0", "curves=0", "batch_size=3", "progress=false"]
    CALLS["count"] = 0
    cmd_evaluate(args)
    assert CALLS["count"] == 8
    first = _metrics(out)
    assert first["run"]["n_computed"] == 8 and first["episodes"][0]["n_model_frames"] == 6
    cmd_evaluate(args + ["returns=last"])  # the cache does not depend on the return definition
    assert CALLS["count"] == 8
    second = _metrics(out)
    assert second["run"]["n_computed"] == 0 and second["run"]["n_cached"] == 8
    assert second["episodes"] == first["episodes"] and second["return_mode"] == "last"
    # other arguments are another cache entry
    cmd_evaluate(args + ["model.scale=0.5"])
    assert CALLS["count"] == 16 and len(list((out / "cache").glob("*.jsonl"))) == 2
    # an interrupted cache (last record lost, the one before cut short) recomputes only those two
    cache = next(p for p in (out / "cache").glob("*.jsonl") if json.loads(p.read_text().splitlines()[0])["kwargs"] == {})
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:-2]) + "\n" + lines[-2][:20])
    cmd_evaluate(args)
    assert CALLS["count"] == 18


def test_model_errors_are_counted(data, tmp_path):
    out = tmp_path / "broken"
    cmd_evaluate(["model=test_broken", f"data={data}", f"out={out}", "bootstrap=50", "curves=8", "progress=false"])
    m = _metrics(out)
    bad = [e for e in range(8) if e % 2 or e % 4 == 0]
    assert m["errors"]["n"] == len(bad) == m["errors"]["n_episodes_with_error"]
    assert m["errors"]["by_type"] == {"RewardModelError": len(bad)}
    for row in m["episodes"]:
        if row["episode_index"] in bad:
            assert row["error_type"] == "RewardModelError" and row["returns"] == {"sum": None, "last": None, "mean": None}
        else:
            assert row["error"] is None and row["returns"]["sum"] is not None
    assert m["summary"]["preference"]["n_missing"] > 0
    text = (out / "metrics.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"metrics.json holds {c}"))  # no NaN/Infinity numbers
    assert "non-finite" in text and "must have shape" in text


def test_goal_model_runs(data, tmp_path):
    CALLS["goal_groups"].clear()
    cmd_evaluate(["model=test_goal", f"data={data}", f"out={tmp_path / 'goal'}", "bootstrap=0", "curves=0", "progress=false"])
    m = _metrics(tmp_path / "goal")
    assert len(CALLS["goal_groups"]) == 8 and m["errors"]["n"] == 0 and m["summary"]["voc"] is None


def test_compare(data, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    cmd_evaluate(["model=oracle", f"data={data}", f"out={a}", "bootstrap=0", "curves=0", "progress=false"])
    cmd_evaluate(["model=progress_only", f"data={data}", f"out={b}", "bootstrap=0", "curves=0", "progress=false"])
    capsys.readouterr()
    assert cmd_compare([str(a), str(b / "metrics.json"), f"out={tmp_path / 'cmp'}"]) == 0
    for name in ("compare.txt", "compare.html", "compare.png", "compare_by_failure.png", "compare.json"):
        assert (tmp_path / "cmp" / name).is_file()
    text = capsys.readouterr().out
    assert "oracle" in text and "progress_only" in text and "A task:pick_place" in text
    with pytest.raises(ConfigError):
        cmd_compare([str(tmp_path / "nothing")])


def test_user_errors(data, tmp_path, capsys):
    with pytest.raises(UnknownNameError):
        cmd_evaluate(["model=no_such_model", f"data={data}", f"out={tmp_path / 'x'}"])
    with pytest.raises(UnknownNameError):
        cmd_evaluate(["model=oracle", f"data={data}", "bootstrp=3"])
    with pytest.raises(UnknownNameError):
        cmd_evaluate(["model=oracle", f"data={data}", "returns=median"])
    with pytest.raises(ConfigError):
        cmd_evaluate(["model=oracle"])  # no data
    with pytest.raises(ConfigError):
        cmd_evaluate(["model=progress_only", "model.bogus=1", f"data={data}", f"out={tmp_path / 'y'}"])
    with pytest.raises(ConfigError):
        cmd_evaluate(["model=oracle", f"data={data}", f"out={data}"])
    capsys.readouterr()
    assert main(["evaluate", "model=no_such_model", f"data={data}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: unknown model 'no_such_model'")
    assert not (tmp_path / "x").exists()


def test_broken_model_raises_only_reward_model_errors():
    # sanity: the broken model's bad outputs are RewardModelErrors under validation
    from simfail.stress import validate_output

    with pytest.raises(RewardModelError):
        validate_output(np.full(3, np.nan), kind="dense", n_frames=3)


@register_model("test_pairwise")
class PairwiseModel:
    """Prefers the episode with the larger ground-truth reward sum (privileged)."""

    name = "test_pairwise"
    requirements = ModelRequirements(views=(), privileged=True, output="pairwise")

    def predict(self, ep):  # pragma: no cover - pairwise models are asked compare()
        raise AssertionError

    def compare(self, a, b):
        CALLS["count"] += 1
        return 1.0 if a.privileged["reward"].sum() > b.privileged["reward"].sum() else 0.0


def test_pairwise_model_and_cache(data, tmp_path):
    out = tmp_path / "pairwise"
    args = ["model=test_pairwise", f"data={data}", f"out={out}", "bootstrap=0", "curves=2", "progress=false"]
    CALLS["count"] = 0
    cmd_evaluate(args)
    m = _metrics(out)
    assert CALLS["count"] == 6 and m["summary"]["preference"]["accuracy"] == 1.0 and m["by_return"] is None
    cmd_evaluate(args)
    assert CALLS["count"] == 6 and _metrics(out)["run"]["n_computed"] == 0


@register_model("test_flaky")
class FlakyModel:
    """Raises a request error while CALLS["down"]; takes a credential argument."""

    name = "test_flaky"
    requirements = ModelRequirements(views=(), output="episode")

    def __init__(self, api_key: str | None = None) -> None:
        self.api_key = api_key

    def predict(self, ep):
        from simfail.stress import GVLRequestError

        CALLS["count"] += 1
        if CALLS.get("down"):
            raise GVLRequestError("endpoint down")
        return 0.5


def test_request_errors_retried_and_secrets_hidden(data, tmp_path):
    out = tmp_path / "flaky"
    args = ["model=test_flaky", "model.api_key=sk-very-secret", f"data={data}", f"out={out}", "bootstrap=0", "curves=1", "progress=false"]
    CALLS["count"], CALLS["down"] = 0, True
    cmd_evaluate(args)
    assert _metrics(out)["errors"]["by_type"] == {"GVLRequestError": 8}
    CALLS["down"] = False
    cmd_evaluate(args)
    assert CALLS["count"] == 16 and _metrics(out)["errors"]["n"] == 0
    cmd_evaluate(args)
    assert CALLS["count"] == 16
    for f in [*out.rglob("*.json"), *out.rglob("*.jsonl"), *out.rglob("*.html"), *out.rglob("*.txt")]:
        assert "sk-very-secret" not in f.read_text(), f
    assert _metrics(out)["model"]["kwargs"] == {"api_key": "***"}
