"""``simfail benchmark run`` / ``compare`` on a tiny written dataset; the score cache keyed by
weights and dataset content; the LeRobot reward-model adapter with a tiny model class that
implements LeRobot's ``from_pretrained`` / ``compute_reward(batch)`` interface."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from simfail.cli import main
from simfail.dataset.synthetic import ACTION_NAMES, STATE_NAMES, synthetic_group
from simfail.dataset.writer import DatasetWriter
from simfail.errors import ConfigError, RewardModelError
from simfail.stress.protocol import ModelRequirements


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_run") / "ds"
    w = DatasetWriter(root, fps=10, image_size=(64, 64), state_names=STATE_NAMES, action_names=ACTION_NAMES, nq=20, nv=18)
    for g in range(4):
        w.write_group(g, synthetic_group(g, scores=(100.0, 10.0 + g, 60.0), lengths=(8, 8, 8)))
    w.finalize({})
    (root / "benchmark.json").write_text(json.dumps({"splits": {"train": [0, 1], "test": {"groups": [2, 3],
                                                     "held_out_operators": ["perturb_2"]}}}))
    return root


def _run(data, out, *extra):
    return main(["benchmark", "run", f"data={data}", f"out={out}", "bootstrap=50", "progress=false", *extra])


def test_run_writes_leaderboard_results_and_figure(data, tmp_path, capsys):
    out = tmp_path / "run"
    assert _run(data, out, "model=progress_only", "model.mode=progress") == 0
    text = capsys.readouterr().out
    for word in ("== all ==", "== pick_place ==", "clean_vs_failure", "hard", "held-out operators", "random seed=0",
                 "constant", "A(ties=1/2)"):
        assert word in text, word
    res = json.loads((out / "results.json").read_text())
    assert res["dataset"]["groups"] == {".": [2, 3]} and res["dataset"]["content_hash"].startswith("sha256:")
    assert res["dataset"]["held_out_operators"] == ["perturb_2"]
    models = res["models"]
    assert set(models) == {"progress_only mode=progress", "random seed=0", "constant"}
    ident = models["progress_only mode=progress"]["identity"]
    assert ident["name"] == "progress_only" and ident["args"] == {"mode": "progress"}
    assert models["random seed=0"]["identity"]["weights_hash"].startswith("sha256:")  # declared identity
    const = models["constant"]["by_category"]["all"]
    assert const["tie_rate"] == 1.0 and const["A"] == 0.0 and const["A_ties_half"] == 0.5
    assert models["constant"]["n_episodes"] == 6  # test split only: 2 groups x 3
    assert (out / "figure3.png").stat().st_size > 1000
    assert (out / "leaderboard.txt").read_text().startswith("dataset ")


def test_split_errors_and_whole_dataset_without_metadata(data, tmp_path, capsys):
    assert _run(data, tmp_path / "r", "model=oracle", "split=nope") == 2
    assert "split='nope' is not in" in capsys.readouterr().err
    bare = tmp_path / "bare"
    shutil.copytree(data, bare)
    (bare / "benchmark.json").unlink()
    assert _run(bare, tmp_path / "r2", "model=oracle", "figure=false", "baselines=[random]") == 2
    assert "leaves out constant" in capsys.readouterr().err
    assert _run(bare, tmp_path / "r2", "model=oracle", "figure=false") == 0
    res = json.loads((tmp_path / "r2" / "results.json").read_text())
    assert res["dataset"]["groups"] == {".": [0, 1, 2, 3]} and "no benchmark metadata" in res["dataset"]["groups_note"]
    assert res["models"]["oracle"]["by_category"]["all"]["A"] > 0.9


def test_compare_side_by_side_and_refuses_other_data(data, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(data, a, "model=oracle", "figure=false") == 0
    assert _run(data, b, "model=progress_only", "figure=false") == 0
    capsys.readouterr()
    assert main(["benchmark", "compare", str(a), str(b), f"out={tmp_path / 'cmp'}"]) == 0
    text = capsys.readouterr().out
    assert "oracle" in text and "progress_only" in text and text.count("random seed=0") >= 2
    merged = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert list(merged["models"]) == ["oracle", "random seed=0", "constant", "progress_only"]
    res = json.loads((b / "results.json").read_text())
    res["dataset"]["content_hash"] = "sha256:" + "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(res))
    assert main(["benchmark", "compare", str(a), str(tmp_path / "other.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: cannot compare:") and "different data" in err[0]


def test_label_names_the_model_in_tables_and_compare(data, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(data, a, "model=progress_only", "model.mode=progress", "label=seed0", "figure=false") == 0
    assert _run(data, b, "model=progress_only", "model.mode=time", "label=seed1", "figure=false") == 0
    res = json.loads((a / "results.json").read_text())
    assert res["model"] == "seed0" and set(res["models"]) == {"seed0", "random seed=0", "constant"}
    assert res["models"]["seed0"]["identity"]["args"] == {"mode": "progress"}  # the label renames, not re-identifies
    capsys.readouterr()
    assert main(["benchmark", "compare", str(a), str(b)]) == 0
    rows = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("seed")]
    assert "seed0" in rows and "seed1" in rows


# ----------------------------------------------------------------------------- cache key


class TinyCheckpointModel:
    """A python model whose weights are a JSON file: reward = scale * frame index / T."""

    name = "tiny_ckpt"

    def __init__(self, checkpoint: str) -> None:
        self.scale = float(json.loads(open(checkpoint).read())["scale"])
        self.requirements = ModelRequirements(views=(), value_range=None)

    def predict(self, ep):
        return self.scale * np.arange(ep.length) / ep.length


def _score(data, out, ckpt):
    from simfail.stress.commands import score_evaluate
    from simfail.stress.settings import EvaluateConfig
    import dataclasses

    cfg = dataclasses.asdict(EvaluateConfig())
    cfg.update(model="test_benchmark_run:TinyCheckpointModel", model_kwargs={"checkpoint": str(ckpt)}, data=str(data),
               out=str(out), progress=False)
    drun, info, _ = score_evaluate(cfg)
    return drun, info


def test_cache_is_keyed_by_weights_not_path(data, tmp_path):
    ckpt = tmp_path / "model.json"
    ckpt.write_text(json.dumps({"scale": 1.0}))
    first, info = _score(data, tmp_path / "rep", ckpt)
    assert first.n_computed == 12 and info["model"]["identity"]["weights"]["checkpoint"].startswith("sha256:")
    same, _ = _score(data, tmp_path / "rep", ckpt)
    assert same.n_computed == 0 and same.n_cached == 12  # same weights: a hit
    ckpt.write_text(json.dumps({"scale": 2.0}))  # retrained in place, same path
    retrained, _ = _score(data, tmp_path / "rep", ckpt)
    assert retrained.n_computed == 12 and retrained.model_key != first.model_key
    assert retrained.run.outcomes[0].value == pytest.approx(2 * first.run.outcomes[0].value)


def test_dataset_content_hash_sees_pixels(data, tmp_path):
    from simfail.stress.identity import dataset_content_hash

    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    assert dataset_content_hash(copy) == dataset_content_hash(data)
    (copy / "benchmark_runs").mkdir()  # results written next to the data are not content
    (copy / "benchmark_runs" / "x.json").write_text("{}")
    assert dataset_content_hash(copy) == dataset_content_hash(data)
    video = sorted((copy / "videos").rglob("*.mp4"))[0]
    raw = bytearray(video.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    video.write_bytes(bytes(raw))
    assert dataset_content_hash(copy) != dataset_content_hash(data)


# ----------------------------------------------------------------------------- LeRobot adapter


class TinyLeRobotReward:
    """LeRobot's reward-model interface in miniature: ``from_pretrained(path)`` reads the weights
    (``model.json``: a gain) from a local folder; ``compute_reward(batch)`` returns one reward per
    batch element, the mean of the ``left`` image times the gain."""

    def __init__(self, gain: float) -> None:
        self.gain = gain
        self.batches: list[dict] = []

    @classmethod
    def from_pretrained(cls, path):
        return cls(float(json.loads((__import__("pathlib").Path(path) / "model.json").read_text())["gain"]))

    def eval(self):
        return self

    def to(self, device):
        return self

    def compute_reward(self, batch):
        import torch

        self.batches.append(batch)
        img = batch["observation.images.left"]
        assert img.dtype == torch.float32 and img.shape[1] == 3 and float(img.max()) <= 1.0
        assert len(batch["task"]) == img.shape[0]
        return img.mean(dim=(1, 2, 3)) * self.gain


class WrongShapeReward(TinyLeRobotReward):
    def compute_reward(self, batch):
        import torch

        return torch.zeros(2, 2)


def _lerobot_folder(tmp_path, gain=0.5):
    folder = tmp_path / "lerobot_model"
    folder.mkdir(exist_ok=True)
    (folder / "model.json").write_text(json.dumps({"gain": gain}))
    (folder / "config.json").write_text(json.dumps({"type": "tiny"}))
    return folder


def test_lerobot_adapter_scores_through_compute_reward(data, tmp_path):
    pytest.importorskip("torch")
    from simfail.stress.protocol import load_model

    folder = _lerobot_folder(tmp_path)
    model = load_model("lerobot_reward", path=str(folder), cls="test_benchmark_run:TinyLeRobotReward", chunk=5)
    out = tmp_path / "rep"
    assert main(["evaluate", "model=lerobot_reward", f"model.path={folder}", "model.cls=test_benchmark_run:TinyLeRobotReward",
                 f"data={data}", f"out={out}", "bootstrap=0", "curves=0", "video=none", "progress=false"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["summary"]["n_errors"] == 0 and m["summary"]["preference"]["n_pairs"] == 12
    assert m["model"]["identity"]["weights"]["path"].startswith("sha256:")
    # direct call: one reward per frame, chunked
    from simfail.stress.dataset_adapter import DatasetEpisodes
    from simfail.dataset.reader import SimfailDataset
    from simfail.stress.harness import predict_episode

    ep, _ = next(iter(DatasetEpisodes(SimfailDataset(data), model.requirements).iter_items([0])))
    values, n = predict_episode(model, ep)
    assert values.shape == (8,) and n == 8
    assert np.allclose(values, ep.frames["left"].astype(np.float32).mean(axis=(1, 2, 3)) / 255.0 * 0.5, atol=1e-6)
    assert [b["observation.images.left"].shape[0] for b in model.model.batches] == [5, 3]


def test_lerobot_adapter_refuses_remote_and_bad_output(data, tmp_path, capsys):
    pytest.importorskip("torch")
    from simfail.stress.protocol import load_model

    for path, words in (("https://huggingface.co/org/model", "is a URL"), ("lerobot/sarm-base", "hub id"),
                        (str(tmp_path / "missing"), "does not exist")):
        with pytest.raises(ConfigError, match=words):
            load_model("lerobot_reward", path=path, cls="test_benchmark_run:TinyLeRobotReward")
    assert main(["evaluate", "model=lerobot_reward", "model.path=org/name", f"data={data}", "progress=false"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hub id" in err[0]
    folder = _lerobot_folder(tmp_path)
    with pytest.raises(ConfigError, match="lerobot is not installed|model.cls"):
        load_model("lerobot_reward", path=str(folder))
    bad = load_model("lerobot_reward", path=str(folder), cls="test_benchmark_run:WrongShapeReward")
    from simfail.stress.dataset_adapter import DatasetEpisodes
    from simfail.dataset.reader import SimfailDataset

    ep, _ = next(iter(DatasetEpisodes(SimfailDataset(data), bad.requirements).iter_items([0])))
    with pytest.raises(RewardModelError, match="shape"):
        bad.predict(ep)


def test_built_benchmark_layout_pools_datasets_and_reads_roles(tmp_path, capsys):
    """A split of a built benchmark is one dataset per category (benchmark.json lists them):
    they are scored and pooled with their groups kept apart, and benchmark.json's roles decide
    the delayed subset."""
    from simfail.dataset.synthetic import synthetic_episode

    root = tmp_path / "bench"
    for cat in ("pick_place", "push_pull"):
        w = DatasetWriter(root / "test" / cat, fps=10, image_size=(64, 64), state_names=STATE_NAMES,
                          action_names=ACTION_NAMES, nq=20, nv=18)
        for g in range(2):
            eps = synthetic_group(g, scores=(100.0, 20.0), lengths=(8, 8))
            alt = synthetic_episode(g, "alt:pause", length=8, seed=1000 + g, variant_seed=9, score=100.0, task=cat,
                                    perturbation={"name": "pause", "kind": "clean_alternative"}, rank=1)
            for e in eps:
                e.task = cat
            w.write_group(g, [*eps, alt])
        w.finalize({})
    episodes = [{"episode_index": 1, "roles": ["failure", "unsuccessful", "delayed"]}]
    (root / "benchmark.json").write_text(json.dumps({
        "splits": {"test": {"datasets": ["test/pick_place", "test/push_pull"]}},
        "held_out_operators": {"push_pull": ["perturb_1"]},
        "datasets": {"test/pick_place": {"episodes": episodes}, "test/push_pull": {"episodes": []}}}))
    out = tmp_path / "run"
    assert main(["benchmark", "run", "model=oracle", f"data={root}", f"out={out}", "bootstrap=20", "progress=false",
                 "figure=false"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["categories"] == ["pick_place", "push_pull"]
    assert set(res["dataset"]["content_hashes"]) == {"test/pick_place", "test/push_pull"}
    oracle = res["models"]["oracle"]
    assert oracle["by_category"]["all"]["n_groups"] == 4  # group 0 of each dataset is its own context
    assert oracle["by_category"]["pick_place"]["n_groups"] == 2
    assert oracle["subsets"]["delayed"]["n_pairs"] == 2  # only the episode benchmark.json marks delayed
    # nuisance candidates: the clean alternative vs the failure, per group; the privileged progress
    # model orders all four rightly, so the progress-balanced subset keeps none of them
    assert res["balanced_subsets"]["nuisance"] == {"candidates": 4, "wrong_or_tied": 0, "right": 4, "kept": 0,
                                                   "reference": "progress_only mode=progress"}
    assert oracle["subsets"]["nuisance"]["n_pairs"] == 0 and oracle["subsets"]["nuisance"]["n_candidates"] == 4
    assert res["dataset"]["held_out_operators"] == ["perturb_1"]
    assert "held-out operators" in capsys.readouterr().out
    assert main(["benchmark", "run", "model=oracle", f"data={root}", "split=val", f"out={out}", "progress=false"]) == 2
    assert "split='val' is not in" in capsys.readouterr().err


class PairwiseModel:
    name = "tiny_pairwise"

    def __init__(self) -> None:
        self.requirements = ModelRequirements(views=(), output="pairwise")

    def predict(self, ep):
        raise AssertionError("never called")

    def compare(self, a, b):
        return 0.5


class FlakyModel:
    """Fails on the episodes of group 3 (a RewardModelError), a ramp elsewhere."""

    name = "tiny_flaky"

    def __init__(self) -> None:
        self.requirements = ModelRequirements(views=(), value_range=(0.0, 1.0))

    def predict(self, ep):
        if ep.episode_id in ("ep000009", "ep000010", "ep000011"):
            raise RewardModelError(f"cannot score {ep.episode_id}")
        return np.linspace(0.0, 1.0, ep.length)


def test_pairwise_refused_before_anything_is_written_and_errors_counted(data, tmp_path, capsys):
    out = tmp_path / "pw"
    assert _run(data, out, "model=test_benchmark_run:PairwiseModel") == 2
    assert "is pairwise" in capsys.readouterr().err and not out.exists()
    out = tmp_path / "flaky"
    assert _run(data, out, "model=test_benchmark_run:FlakyModel", "figure=false") == 0
    text = capsys.readouterr().out
    assert "model errors (episodes left out of the pairs): test_benchmark_run:FlakyModel: 3" in text
    res = json.loads((out / "results.json").read_text())
    row = res["models"]["test_benchmark_run:FlakyModel"]["by_category"]["all"]
    assert row["n_errors"] == 3 and row["n_missing"] == 3 and row["n_pairs"] == 3  # group 2 alone keeps its pairs


def test_compare_refuses_other_metric_settings(data, tmp_path, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert _run(data, a, "model=oracle", "figure=false") == 0
    assert _run(data, b, "model=oracle", "figure=false", "returns=last") == 0
    capsys.readouterr()
    assert main(["benchmark", "compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "returns=last" in err[0]


def test_dataset_regenerated_in_place_is_scored_afresh(data, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    ckpt = tmp_path / "model.json"
    ckpt.write_text(json.dumps({"scale": 1.0}))
    first, _ = _score(copy, tmp_path / "rep", ckpt)
    assert first.n_computed == 12
    video = sorted((copy / "videos").rglob("*.mp4"))[0]
    raw = bytearray(video.read_bytes())
    raw[len(raw) // 2] ^= 0xFF  # other pixels, same labels, same path
    video.write_bytes(bytes(raw))
    again, info = _score(copy, tmp_path / "rep", ckpt)
    assert again.n_computed == 12 and "belonged to another dataset" in capsys.readouterr().err


TRAIN_TINY = ["epochs=1", "batches_per_epoch=2", "batch_size=4", "clip_frames=8", "frame_size=16", "net.feat_dim=16",
              "net.width=8", "net.hidden=16", "text.dim=16", "progress=false"]


@pytest.mark.slow  # ~22 s (two trainings); the python-model cache test covers the rule in the default suite
def test_rewind_checkpoint_retrained_in_place_misses_the_cache(data, tmp_path):
    """The real checkpoint path: ``simfail train-reward`` writes a tiny rewind model, the
    benchmark scores it, the same weights hit the cache, a retrain to the same folder misses."""
    pytest.importorskip("torch")
    ckpt, out = tmp_path / "model", tmp_path / "run"

    def run_counts():
        assert _run(data, out, "model=rewind", f"model.checkpoint={ckpt}", "figure=false") == 0
        m = json.loads((out / "results.json").read_text())["models"][f"rewind checkpoint={ckpt}"]
        return m["n_computed"], m["identity"]["weights_hash"]

    assert main(["train-reward", f"data={data}", f"out={ckpt}", "seed=0", *TRAIN_TINY]) == 0
    computed, first = run_counts()
    assert computed == 6
    assert run_counts() == (0, first)  # same weights: every score from the cache
    shutil.rmtree(ckpt)
    assert main(["train-reward", f"data={data}", f"out={ckpt}", "seed=1", *TRAIN_TINY]) == 0
    computed, second = run_counts()
    assert computed == 6 and second != first
