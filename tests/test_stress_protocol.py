"""Plugin interface: registry, output validation, input preparation."""

from __future__ import annotations

import numpy as np
import pytest

from simfail.errors import ConfigError, RewardModelError, UnknownNameError
from simfail.stress import (
    EpisodeInput,
    ModelRequirements,
    OracleModel,
    ProgressOnlyModel,
    RewardModel,
    available_models,
    interpolate_to_length,
    load_model,
    predict_episode,
    prepare_input,
    register_model,
    resize_frames,
    subsample_indices,
    validate_output,
)


class TinyModel:
    """A dense model defined in the test module, loaded as "module:Class"."""

    name = "tiny"

    def __init__(self, level: float = 0.5) -> None:
        self.level = level
        self.requirements = ModelRequirements(views=("left",), max_frames=4)

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        return np.full(ep.length, self.level)


class NotAModel:
    pass


def make_ep(t: int = 10, h: int = 8, w: int = 8, views=("left", "right", "wrist"), eid: str = "e0") -> EpisodeInput:
    frames = {v: np.tile(np.arange(t, dtype=np.uint8)[:, None, None, None] * 10, (1, h, w, 3)) for v in views}
    return EpisodeInput(
        frames=frames,
        fps=10.0,
        instruction="put the cube on the plate",
        goal_image=np.zeros((h, w, 3), np.uint8),
        privileged={"reward": np.linspace(0, 1, t), "progress": np.linspace(0, 1, t)},
        episode_id=eid,
    )


# --------------------------------------------------------------------------- registry


def test_load_builtin_models_by_name():
    assert {"oracle", "progress_only", "gvl"} <= set(available_models())
    assert isinstance(load_model("oracle"), OracleModel)
    m = load_model("progress_only", mode="progress")
    assert isinstance(m, ProgressOnlyModel) and m.requirements.privileged
    assert not load_model("progress_only").requirements.privileged
    assert isinstance(load_model("gvl", k=5), RewardModel)


def test_load_model_by_module_and_class():
    m = load_model(f"{__name__}:TinyModel", level=0.25)
    assert isinstance(m, TinyModel) and m.level == 0.25
    assert isinstance(m, RewardModel)


def test_unknown_names():
    with pytest.raises(UnknownNameError, match="unknown model 'no_such_model'"):
        load_model("no_such_model")
    with pytest.raises(UnknownNameError):
        load_model("simfail_no_such_module_xyz:Model")
    with pytest.raises(UnknownNameError):
        load_model(f"{__name__}:NoSuchClass")
    with pytest.raises(ConfigError, match="RewardModel protocol"):
        load_model(f"{__name__}:NotAModel")
    with pytest.raises(UnknownNameError):
        ProgressOnlyModel(mode="velocity")


def test_register_model_rejects_a_second_owner():
    @register_model("test_stress_tmp_model")
    class A(TinyModel):
        pass

    assert isinstance(load_model("test_stress_tmp_model"), A)
    with pytest.raises(ConfigError, match="already registered"):

        @register_model("test_stress_tmp_model")
        class B(TinyModel):
            pass


def test_requirements_validation():
    with pytest.raises(UnknownNameError):
        ModelRequirements(views=("top",))
    with pytest.raises(ConfigError):
        ModelRequirements(max_frames=1)
    with pytest.raises(UnknownNameError):
        ModelRequirements(output="ranking")  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        ModelRequirements(value_range=(1.0, 0.0))


# --------------------------------------------------------------------------- output validation


def test_validate_output_accepts_good_outputs():
    out = validate_output([0.0, 0.5, 1.0], kind="dense", n_frames=3)
    assert out.dtype == np.float64 and out.shape == (3,)
    assert validate_output(np.array([0.3]), kind="episode").shape == ()
    assert validate_output(7.0, kind="episode", value_range=None) == 7.0


@pytest.mark.parametrize(
    "output, kwargs, match",
    [
        (np.zeros(4), dict(kind="dense", n_frames=3), "shape"),
        (np.zeros((3, 1)), dict(kind="dense", n_frames=3), "shape"),
        (np.zeros(2), dict(kind="episode"), "scalar"),
        ([0.1, np.nan, 0.2], dict(kind="dense", n_frames=3), "non-finite"),
        ([0.1, np.inf, 0.2], dict(kind="dense", n_frames=3, value_range=None), "non-finite"),
        ([0.1, 1.5, 0.2], dict(kind="dense", n_frames=3), "outside the declared range"),
        ([-0.1, 0.5, 0.2], dict(kind="dense", n_frames=3), "outside the declared range"),
        (["a", "b", "c"], dict(kind="dense", n_frames=3), "not numeric"),
        (1.2, dict(kind="pairwise"), "outside"),
    ],
)
def test_validate_output_rejects(output, kwargs, match):
    with pytest.raises(RewardModelError, match=match):
        validate_output(output, model_name="m", episode_id="ep7", **kwargs)


def test_error_message_names_model_and_episode():
    with pytest.raises(RewardModelError, match=r"'m'.*'ep7'"):
        validate_output([np.nan], kind="dense", n_frames=1, model_name="m", episode_id="ep7")


# --------------------------------------------------------------------------- preparation


def test_subsample_keeps_first_and_last_uniformly():
    idx = subsample_indices(100, 15)
    assert len(idx) == 15 and idx[0] == 0 and idx[-1] == 99
    assert np.all(np.diff(idx) >= 6) and np.all(np.diff(idx) <= 8)
    for t in range(2, 40):
        for m in range(2, t + 1):
            i = subsample_indices(t, m)
            assert len(i) == m and i[0] == 0 and i[-1] == t - 1 and np.all(np.diff(i) > 0)
    assert list(subsample_indices(5, 15)) == [0, 1, 2, 3, 4]
    assert list(subsample_indices(5, None)) == [0, 1, 2, 3, 4]


def test_interpolate_back_to_full_length():
    idx = subsample_indices(11, 3)  # [0, 5, 10]
    full = interpolate_to_length(np.array([0.0, 1.0, 0.0]), idx, 11)
    assert full.shape == (11,)
    assert full[5] == 1.0 and full[0] == 0.0 and full[10] == 0.0 and full[2] == pytest.approx(0.4)


def test_resize_area_and_bilinear():
    img = np.zeros((1, 4, 4, 3), np.uint8)
    img[0, :2, :2] = 200  # top-left quadrant
    small = resize_frames(img, (2, 2))
    assert small.shape == (1, 2, 2, 3)
    assert small[0, 0, 0, 0] == 200 and small[0, 1, 1, 0] == 0
    assert resize_frames(img, (1, 1))[0, 0, 0, 0] == 50  # area mean
    big = resize_frames(np.full((3, 5, 3), 77, np.uint8), (9, 11))
    assert big.shape == (9, 11, 3) and np.all(big == 77)


def test_prepare_input_follows_requirements():
    ep = make_ep(t=10, h=8, w=8)
    req = ModelRequirements(views=("wrist",), max_frames=4, frame_size=(4, 6))
    out, idx = prepare_input(ep, req)
    assert list(out.frames) == ["wrist"]
    assert out.frames["wrist"].shape == (4, 4, 6, 3)
    assert list(idx) == [0, 3, 6, 9]
    assert np.all(out.frames["wrist"][:, 0, 0, 0] == np.array([0, 30, 60, 90]))
    assert out.goal_image is None and out.examples is None and out.privileged is None
    assert out.fps == pytest.approx(10.0 / 3.0)
    assert np.allclose(out.frame_times, [0.0, 0.3, 0.6, 0.9])
    # the oracle gets labels but no pixels
    out, _ = prepare_input(ep, OracleModel().requirements)
    assert out.frames == {} and out.privileged is not None and out.length == 10


def test_predict_episode_interpolates_and_validates():
    class Ramp(TinyModel):
        def predict(self, ep):
            return np.linspace(0, 1, ep.length)

    trace, seen = predict_episode(Ramp(), make_ep(t=10))
    assert seen == 4 and trace.shape == (10,)
    assert np.allclose(trace, np.linspace(0, 1, 10))

    class Bad(TinyModel):
        def predict(self, ep):
            return np.full(ep.length + 1, 0.5)

    with pytest.raises(RewardModelError, match=r"shape \(4,\)"):
        predict_episode(Bad(), make_ep(t=10))


def test_baselines():
    ep = make_ep(t=5)
    assert np.allclose(predict_episode(OracleModel(), ep)[0], np.linspace(0, 1, 5))
    assert np.allclose(predict_episode(ProgressOnlyModel("time"), ep)[0], [0, 0.25, 0.5, 0.75, 1.0])
    ep.privileged = {"reward": np.linspace(0, 1, 5)}
    with pytest.raises(RewardModelError, match="progress"):
        predict_episode(ProgressOnlyModel("progress"), ep)
