"""``simfail benchmark build`` and ``simfail check --benchmark`` on the tiny recipe
(configs/benchmark/tiny.yaml), and the program transforms behind the clean alternatives and
the matched-duration rule (perturbations/nuisance.py)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from simfail.cli import main

TINY = "tiny"


@pytest.fixture(scope="module")
def tiny_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "tiny"
    assert main(["benchmark", "build", f"version={TINY}", f"out={out}", "progress=false"]) == 0
    return out


def _datasets(root, kind="generated"):
    """``benchmark.json`` and the datasets of one kind (``generated``: ``<split>/<category>``;
    ``closed_loop``: ``closed_loop/<split>/<category>``)."""
    from simfail.dataset.reader import SimfailDataset

    desc = json.loads((root / "benchmark.json").read_text())
    return desc, {rel: SimfailDataset(root / rel) for rel, d in desc["datasets"].items() if d["kind"] == kind}


def _perturbation(ep):
    return json.loads(ep["simfail.perturbation"] or "{}")


# ----------------------------------------------------------------------------- build and hashes


def _published_environment_differs(bench_id):
    from simfail.benchmark.hashes import environment_differences, manifest_environment
    from simfail.benchmark.spec import hash_file_path

    return environment_differences(manifest_environment(hash_file_path(bench_id).read_text()))


def test_tiny_build_matches_the_published_hashes(tiny_build, capsys):
    """A fresh build equals, bit for bit, the build whose hashes are in benchmarks/tiny.sha256
    (on the software and CPU named in its header; elsewhere bytes may legitimately differ)."""
    differs = _published_environment_differs(TINY)
    if differs:
        pytest.skip(f"tiny.sha256 was published with other software or another CPU: {'; '.join(differs)}")
    assert main(["check", "--benchmark", TINY, str(tiny_build)]) == 0
    assert "ok: " in capsys.readouterr().out


def test_manifest_names_its_environment_and_check_notes_a_difference(tiny_build, tmp_path, capsys, monkeypatch):
    from simfail.benchmark import check as check_mod
    from simfail.benchmark.hashes import (build_environment, format_manifest, manifest_environment,
                                          parse_manifest, tree_hashes)

    env = build_environment()
    assert {"python", "mujoco", "numpy", "pyarrow", "av", "machine", "cpu", "cpu_family_model", "cpu_features"} <= set(env)
    text = format_manifest(tree_hashes(tiny_build), {**env, "mujoco": "0.0.0"})
    assert manifest_environment(text)["mujoco"] == "0.0.0" and parse_manifest(text) == tree_hashes(tiny_build)
    fake = tmp_path / "tiny.sha256"
    fake.write_text(text)
    monkeypatch.setattr("simfail.benchmark.spec.hash_file_path", lambda bench_id: fake)
    lines: list[str] = []
    assert check_mod.check_benchmark(TINY, tiny_build, out=lines.append) == 0
    assert lines[0].startswith("note: tiny.sha256 was published with other software") and "mujoco: 0.0.0 ->" in lines[0]
    assert lines[-1].startswith("ok: ")
    # a manifest that does not record the CPU's vector features cannot vouch for this CPU
    older = {k: v for k, v in env.items() if k != "cpu_features"}
    fake.write_text(format_manifest(tree_hashes(tiny_build), older))
    lines.clear()
    assert check_mod.check_benchmark(TINY, tiny_build, out=lines.append) == 0
    assert f"cpu_features: not recorded -> {env['cpu_features']}" in lines[0]
    fake.write_text(format_manifest(tree_hashes(tiny_build), env))  # this machine's: no note
    lines.clear()
    assert check_mod.check_benchmark(TINY, tiny_build, out=lines.append) == 0
    assert lines == [f"ok: {len(tree_hashes(tiny_build))} files match tiny.sha256"]


@pytest.mark.slow
def test_two_tiny_builds_are_byte_identical(tiny_build, tmp_path):
    from simfail.benchmark.hashes import tree_hashes

    again = tmp_path / "elsewhere" / "again"  # another path: the bytes must not depend on it
    assert main(["benchmark", "build", f"version={TINY}", f"out={again}", "progress=false"]) == 0
    assert tree_hashes(again) == tree_hashes(tiny_build)


def test_a_tampered_missing_or_extra_file_is_named(tiny_build, tmp_path, capsys):
    if _published_environment_differs(TINY):
        pytest.skip("tiny.sha256 was published with other software or another CPU")
    copy = tmp_path / "copy"
    shutil.copytree(tiny_build, copy)
    data = copy / "test/pick_place/data/chunk-000/file-000.parquet"
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    data.write_bytes(bytes(raw))
    (copy / "val/push_pull/meta/stats.json").unlink()
    (copy / "train/notes.txt").write_text("not part of the benchmark")
    capsys.readouterr()
    assert main(["check", "--benchmark", TINY, str(copy)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert "problem: tampered: test/pick_place/data/chunk-000/file-000.parquet (sha256 differs from the published hash)" in lines
    assert "problem: missing: val/push_pull/meta/stats.json" in lines
    assert "problem: extra: train/notes.txt (not in the published hashes)" in lines
    assert lines[-1] == "3 problem(s) against tiny.sha256"


def test_check_benchmark_errors_are_one_line(tiny_build, tmp_path, capsys):
    assert main(["check", "--benchmark", "v0", str(tiny_build)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: unknown published benchmark 'v0'")
    assert main(["check", str(tiny_build), "--benchmark"]) == 2
    assert "--benchmark needs a benchmark id" in capsys.readouterr().err


def test_closed_loop_rollouts_on_the_test_scenes(tiny_build):
    """The recipe's closed_loop: one rollout dataset per test category, listed in the test
    split, on the scenes of the generated test datasets (group g on group g's scene seed), each
    group the expert plus ``samples`` rollouts of the recipe's policy, with some that fail."""
    from simfail.benchmark.spec import load_spec

    spec = load_spec(TINY)
    cl = spec.closed_loop
    desc, sets = _datasets(tiny_build, "closed_loop")
    assert desc["closed_loop"]["policy"] == cl.policy == "noisy_expert" and desc["closed_loop"]["splits"] == ["test"]
    assert sorted(sets) == [f"closed_loop/test/{c}" for c in sorted(spec.categories)]
    assert all(rel in desc["splits"]["test"]["datasets"] for rel in sets)
    assert not any("closed_loop" in r for s in ("train", "val") for r in desc["splits"][s]["datasets"])
    flawed = 0
    for rel, ds in sets.items():
        d = desc["datasets"][rel]
        cat = rel.split("/")[-1]
        assert d["kind"] == "closed_loop" and d["split"] == "test" and d["category"] == cat
        assert d["scene_seeds"] == desc["datasets"][f"test/{cat}"]["scene_seeds"]
        assert d["policy"] == {"name": "noisy_expert", "kwargs": cl.kwargs_of(cat), "samples": cl.samples,
                               "include_expert": True}
        for g, eps in ds.groups().items():
            variants = sorted(ds.episodes[i]["simfail.variant"] for i in eps)
            assert variants == ["expert"] + [f"noisy_expert#{k}" for k in range(cl.samples)]
        for e, ep in zip(d["episodes"], ds.episodes):
            if ep["simfail.variant"] == "expert":
                assert e["roles"] == ["expert"] and e["policy"] == "scripted_expert"
            else:
                assert "rollout" in e["roles"] and e["policy"] == "noisy_expert"
                assert _perturbation(ep)["kind"] == "rollout"
                flawed += int(not ep["simfail.success"] or bool(json.loads(ep["simfail.failures"])))
    assert flawed >= 1, "the tiny closed-loop rollouts should hold a failure"


def test_run_scores_the_rollouts_and_balances_nuisance(tiny_build, tmp_path):
    """benchmark run on the tiny test split: the closed-loop groups are scored (closed_loop has
    pairs, and the pooled tables count their groups); the privileged progress model is at 0.5
    on nuisance and 0 on hard by construction; the time model ties every pair."""
    out = tmp_path / "run"
    assert main(["benchmark", "run", "model=progress_only", "model.mode=progress", f"data={tiny_build}", "split=test",
                 f"out={out}", "bootstrap=0", "progress=false", "figure=false"]) == 0
    res = json.loads((out / "results.json").read_text())
    desc = json.loads((tiny_build / "benchmark.json").read_text())
    assert set(res["dataset"]["content_hashes"]) == set(desc["splits"]["test"]["datasets"])
    prog = res["models"]["progress_only mode=progress"]
    assert prog["by_category"]["all"]["n_groups"] == 4  # 2 generated groups + 2 closed-loop groups
    assert prog["subsets"]["closed_loop"]["n_pairs"] > 0 and prog["subsets"]["closed_loop"]["n_groups"] == 2
    assert "policy:noisy_expert" in res["operators"]
    nu = prog["subsets"]["nuisance"]
    bal = res["balanced_subsets"]["nuisance"]
    assert nu["n_pairs"] == bal["kept"] > 0 and nu["n_candidates"] == bal["candidates"] >= bal["kept"]
    assert nu["A"] == pytest.approx(0.5) and prog["subsets"]["hard"]["A"] == 0.0
    assert "nuisance: " in (out / "leaderboard.txt").read_text()


@pytest.mark.slow
def test_time_model_ties_every_pair_of_the_tiny_test_split(tiny_build, tmp_path):
    """Durations are matched (rollouts included): returns summed over time tie every pair."""
    assert main(["benchmark", "run", "model=progress_only", "model.mode=time", f"data={tiny_build}", "split=test",
                 f"out={tmp_path / 'time'}", "bootstrap=0", "progress=false", "figure=false"]) == 0
    timed = json.loads((tmp_path / "time" / "results.json").read_text())["models"]["progress_only mode=time"]
    for name in ("closed_loop", "nuisance", "hard", "all"):
        assert timed["subsets"][name]["tie_rate"] == 1.0 and timed["subsets"][name]["A_ties_half"] == 0.5, name


def test_build_resumes_and_keeps_finished_datasets_as_they_are(tiny_build, tmp_path, capsys):
    """A build on an existing folder (resume=true) leaves every finished dataset untouched
    (same bytes, not rewritten), makes only what is missing (here: the closed-loop datasets of
    an older build, and an interrupted dataset), and ends byte-identical to a fresh build,
    progress bars or not. A finished dataset of another recipe is refused."""
    from simfail.benchmark.hashes import tree_hashes

    old = tmp_path / "old"
    shutil.copytree(tiny_build, old)
    shutil.rmtree(old / "closed_loop")
    (old / "benchmark.json").unlink()
    (old / "val/push_pull/.staging").mkdir()  # an interrupted write: this dataset is resumed
    kept = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in old.rglob("*")
            if p.is_file() and not p.is_relative_to(old / "val/push_pull")}
    assert main(["benchmark", "build", f"version={TINY}", f"out={old}", "resume=true", "progress=true"]) == 0
    out = capsys.readouterr()
    assert "train/pick_place is complete, kept as it is" in out.out + out.err
    assert all(p.read_bytes() == b and p.stat().st_mtime_ns == t for p, (b, t) in kept.items())
    assert tree_hashes(old) == tree_hashes(tiny_build)
    meta = old / "train/pick_place/meta/simfail.json"
    d = json.loads(meta.read_text())
    d["config"]["seed"] += 1
    meta.write_text(json.dumps(d))
    assert main(["benchmark", "build", f"version={TINY}", f"out={old}", "resume=true", "progress=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "train/pick_place in out= was built with other settings (seed" in err[0]


def test_build_refuses_bad_input_before_writing(tmp_path, capsys):
    assert main(["benchmark", "build", "version=v9", f"out={tmp_path / 'x'}"]) == 2
    assert "unknown benchmark version 'v9'" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "f").write_text("x")
    assert main(["benchmark", "build", f"version={TINY}", f"out={tmp_path / 'full'}", "progress=false"]) == 2
    assert "is not empty" in capsys.readouterr().err
    assert main(["benchmark"]) == 2
    assert "build" in capsys.readouterr().err


def test_benchmark_json_describes_the_splits(tiny_build):
    from simfail.benchmark.spec import load_spec

    spec = load_spec(TINY)
    desc, sets = _datasets(tiny_build)
    assert desc["id"] == TINY and desc["version"] == TINY and desc["size"] == spec.size
    assert set(desc["splits"]) == {"train", "val", "test"}
    assert sorted(desc["datasets"]) == sorted([f"{s}/{c}" for s in ("train", "val", "test") for c in spec.categories]
                                              + [f"closed_loop/test/{c}" for c in spec.categories])
    for rel, ds in sets.items():
        eps = desc["datasets"][rel]["episodes"]
        assert [e["variant"] for e in eps] == [ep["simfail.variant"] for ep in ds.episodes]
        assert ds.info["features"]["observation.images.left"]["shape"][:2] == [spec.size, spec.size]
    seeds = {}
    for d in desc["datasets"].values():
        for s in d["scene_seeds"]:
            seeds.setdefault((d["category"], s), set()).add(d["split"])
    assert all(len(v) == 1 for v in seeds.values()), "a scene seed in two splits"


def test_held_out_operators_only_in_the_test_split(tiny_build):
    from simfail.benchmark.spec import load_spec

    spec = load_spec(TINY)
    desc, sets = _datasets(tiny_build)
    for rel, ds in sets.items():
        split, cat = rel.split("/")
        held = set(spec.held_out_operators[cat])
        used = {_perturbation(ep).get("name") for ep in ds.episodes if ep["simfail.variant"] != "expert"}
        if split == "test":
            assert held <= used, f"{rel} lacks its held-out operators {held - used}"
        else:
            assert not held & used, f"held-out operators {held & used} in {rel}"
            assert not any("held_out_operator" in e["roles"] for e in desc["datasets"][rel]["episodes"])


# ----------------------------------------------------------------------------- subsets on the data


def test_clean_alternatives_are_clean(tiny_build):
    """Every episode written as a clean alternative succeeded without any failure event and
    scores like its expert; every alternative that did not is labelled as such."""
    _, sets = _datasets(tiny_build)
    clean = 0
    for rel, ds in sets.items():
        for i, ep in enumerate(ds.episodes):
            p = _perturbation(ep)
            if not ep["simfail.variant"].startswith("alt:"):
                continue
            is_clean = bool(ep["simfail.success"]) and not ds.failures(i)
            assert p["kind"] == ("clean_alternative" if is_clean else "alternative_not_clean"), (rel, ep["simfail.variant"])
            if is_clean:
                clean += 1
                assert ep["simfail.score"] == 100.0
    assert clean >= 6, "the tiny build should hold clean alternatives in every dataset"


def _last_move(actions: np.ndarray) -> int:
    """Last frame whose commanded joint targets or gripper differ from the final command."""
    moving = np.flatnonzero(np.abs(actions - actions[-1]).max(axis=1) > 1e-6)
    return int(moving[-1]) if len(moving) else 0


def test_matched_duration_holds_for_every_matched_variant(tiny_build):
    """On the written actions: a variant marked duration_matched stops commanding motion no
    later than its expert does."""
    _, sets = _datasets(tiny_build)
    checked = 0
    for rel, ds in sets.items():
        expert_end = {}
        for i, ep in enumerate(ds.episodes):
            if ep["simfail.variant"] == "expert":
                expert_end[ep["simfail.group_id"]] = _last_move(ds.episode_columns(i)["action"])
        for i, ep in enumerate(ds.episodes):
            p = _perturbation(ep)
            if p.get("duration_matched"):
                end = _last_move(ds.episode_columns(i)["action"])
                assert end <= expert_end[ep["simfail.group_id"]] + 1, (rel, ep["simfail.variant"], end)
                assert p["active_end_s"] <= p["expert_active_end_s"] + 1e-6
                checked += 1
    assert checked >= 6


# ----------------------------------------------------------------------------- the transforms


@pytest.fixture(scope="module")
def programs():
    from simfail.core.task import get_task

    out = {}
    for name in ("pick_place", "push_pull", "pour"):
        task = get_task(name)
        layout = task.sample_layout(np.random.default_rng(3), 3)
        out[name] = (task, layout, task.expert_program(layout))
    return out


@pytest.mark.parametrize("alt", ["slower", "faster", "pause", "detour", "regrasp"])
@pytest.mark.parametrize("task_name", ["pick_place", "push_pull", "pour"])
def test_alternatives_share_the_prefix_and_keep_the_episode_length(programs, alt, task_name):
    from simfail.perturbations.nuisance import ALTERNATIVES, NotApplicable

    task, layout, expert = programs[task_name]
    for m in (0.0, 1.0):
        try:
            a = ALTERNATIVES[alt].apply(task, layout, expert, m, np.random.default_rng(0))
        except NotApplicable:
            assert alt == "regrasp" and task_name == "push_pull"
            return
        assert a.program.duration == pytest.approx(task.duration)
        for t in np.linspace(0.0, a.onset_time, 7):
            p0, q0 = expert.pose_at(t)
            p1, q1 = a.program.pose_at(t)
            assert np.allclose(p0, p1) and np.allclose(q0, q1) and expert.grip_at(t) == a.program.grip_at(t)
        end = a.program.pose_at(task.duration)[0]
        assert np.allclose(end, expert.pose_at(task.duration)[0], atol=1e-9), "the alternative ends where the expert does"


def test_match_duration_retimes_a_long_variant(programs):
    from simfail.perturbations.nuisance import active_end, match_duration

    task, layout, expert = programs["pick_place"]
    a = task.perturbations()["shortcut"].apply(task, layout, expert, 0.8, np.random.default_rng(0))
    assert active_end(a.program) > active_end(expert)
    b, info = match_duration(a, expert, task.duration)
    assert info["duration_matched"] and info["time_scale"] < 1.0
    assert active_end(b.program) <= active_end(expert) + 1e-9
    assert b.program.duration == pytest.approx(task.duration)
    for t in np.linspace(0.0, a.onset_time, 5):
        assert np.allclose(b.program.pose_at(t)[0], expert.pose_at(t)[0])
    early = task.perturbations()["wrong_placement"].apply(task, layout, expert, 0.0, np.random.default_rng(0))
    if active_end(early.program) <= active_end(expert):
        same, info = match_duration(early, expert, task.duration)
        assert same is early and info["duration_matched"] and info["time_scale"] == 1.0


def test_generic_edits_are_timed_from_their_commands():
    """A generic operator's variant is not retimed; its active end is measured from the commands
    it issued: a release in the carry keeps the expert's timeline, a long freeze does not."""
    from simfail.perturbations.nuisance import command_end, command_timing

    fps = 10
    expert = np.zeros((81, 8))
    expert[:50, 0] = np.linspace(0.0, 1.0, 50)
    expert[50:, 0] = 1.0

    class T:
        pass

    ex, same, late = T(), T(), T()
    ex.fps = same.fps = late.fps = fps
    ex.action, same.action = expert, expert.copy()
    same.action[30:, 7] = 0.0  # the gripper command changes, not the timing
    late.action = np.concatenate([expert[:20], np.repeat(expert[20:21], 15, 0), expert[20:66]])
    assert command_end(expert, fps) == pytest.approx(4.9)  # frame 49 reaches the final command
    assert command_timing(same, ex, {})["duration_matched"]
    info = command_timing(late, ex, {})
    assert not info["duration_matched"] and info["active_end_s"] > info["expert_active_end_s"]
    assert command_timing(late, ex, {"duration_matched": True}) == {"duration_matched": True}


def test_recipe_errors():
    from simfail.benchmark.spec import load_spec, parse_spec
    from simfail.errors import ConfigError

    import yaml
    from importlib import resources

    d = yaml.safe_load(resources.files("simfail.configs").joinpath("benchmark", "tiny.yaml").read_text())
    parse_spec(d)
    for change, msg in [({"held_out_operators": {"pick_place": ["drop", "shaky", "unstable_placement"]}}, "every operator"),
                        ({"alternatives": ["sideways"]}, "unknown clean alternative"),
                        ({"splits": {"train": {"seed": 1, "groups": 1}, "val": {"seed": 1, "groups": 1},
                                     "test": {"seed": 2, "groups": 1}}}, "must differ"),
                        ({"operators": {"pick_place": ["spill"], "push_pull": ["graze"]}}, "unknown pick_place failure")]:
        with pytest.raises(ConfigError, match=msg):
            parse_spec({**d, **change})
    assert load_spec("v1").bench_id(128) == "v1-128" and load_spec("v1").bench_id() == "v1"


def test_closed_loop_recipe_errors():
    from simfail.benchmark.spec import parse_spec
    from simfail.errors import ConfigError

    import yaml
    from importlib import resources

    d = yaml.safe_load(resources.files("simfail.configs").joinpath("benchmark", "tiny.yaml").read_text())
    good = d["closed_loop"]
    assert parse_spec(d).closed_loop.kwargs_of("push_pull") == {"level": 1}
    per = parse_spec({**d, "closed_loop": {**good, "category_kwargs": {"push_pull": {"level": 0.5}}}}).closed_loop
    assert per.kwargs_of("push_pull") == {"level": 0.5} and per.kwargs_of("pick_place") == {"level": 1}
    assert parse_spec({k: v for k, v in d.items() if k != "closed_loop"}).closed_loop is None
    for change, msg in [({"policy": "noisy_expurt"}, "unknown closed_loop policy 'noisy_expurt'"),
                        ({"samples": 0}, "samples must be a whole number >= 1"),
                        ({"samples": "four"}, "samples must be a whole number >= 1"),
                        ({"splits": ["holdout"]}, "unknown closed_loop split 'holdout'"),
                        ({"splits": []}, "names no split"),
                        ({"kwargs": {"level": -1}}, "refuses the arguments"),
                        ({"kwargs": {"colour": "red"}}, "bad arguments"),
                        ({"kwargs": [1]}, "must be a mapping"),
                        ({"category_kwargs": {"stack": {"level": 1}}}, "not one of the categories"),
                        ({"seeds": 3}, "unknown keys closed_loop")]:
        with pytest.raises(ConfigError, match=msg):
            parse_spec({**d, "closed_loop": {**good, **change}})
    with pytest.raises(ConfigError, match="closed_loop needs 'policy'"):
        parse_spec({**d, "closed_loop": {"samples": 2, "splits": ["test"]}})

