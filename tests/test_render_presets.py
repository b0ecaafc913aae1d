"""render.preset and render.backend: the lab look changes the frames and never the physics;
both keys are validated; ``simfail generate`` accepts them end to end."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from simfail.cli import main
from simfail.config import from_dict
from simfail.core.builder import build_scene
from simfail.core.episode import VIEWS
from simfail.core.scene import StageConfig
from simfail.core.task import get_task
from simfail.errors import ConfigError
from simfail.render.presets import ROOM_BODY, preset_names, render_model
from simfail.render.renderer import MultiViewRenderer

from conftest import SMALL, generate_argv


@pytest.fixture(scope="module")
def scene():
    return build_scene(get_task("pick_place"), 0, StageConfig(SMALL, SMALL))


def test_fast_is_the_scene_itself_and_lab_keeps_the_state_layout(scene):
    assert render_model(scene.model, scene.xml, "fast") is scene.model
    lab = render_model(scene.model, scene.xml, "lab")
    m = scene.model
    assert (lab.nq, lab.nv, lab.nu, lab.nmocap) == (m.nq, m.nv, m.nu, m.nmocap)
    # the scene's geoms keep their ids and collision geometry; the room collides with nothing
    for g in range(m.ngeom):
        assert lab.geom(g).name == m.geom(g).name
        for attr in ("size", "pos", "quat", "friction", "contype", "conaffinity", "type", "bodyid"):
            assert np.array_equal(getattr(lab.geom(g), attr), getattr(m.geom(g), attr)), (m.geom(g).name, attr)
    room = mujoco.mj_name2id(lab, mujoco.mjtObj.mjOBJ_BODY, ROOM_BODY)
    new = np.flatnonzero(lab.geom_bodyid == room)
    assert len(new) == lab.ngeom - m.ngeom > 0
    assert not lab.geom_contype[new].any() and not lab.geom_conaffinity[new].any()
    assert lab.vis.quality.shadowsize > 0 and lab.light_castshadow.any()


def test_lab_model_steps_bit_identically(scene):
    """Even if the physics ran on the lab model it would give the same states, bit for bit
    (it does not: generate simulates scene.model and only renders the preset's model)."""
    lab = render_model(scene.model, scene.xml, "lab")
    rng = np.random.default_rng(3)
    ctrl = rng.uniform(scene.model.actuator_ctrlrange[:, 0], scene.model.actuator_ctrlrange[:, 1],
                       (300, scene.model.nu))
    states = []
    for model in (scene.model, lab):
        d = mujoco.MjData(model)
        d.qpos[:] = scene.qpos0
        for u in ctrl:
            d.ctrl[:] = u
            mujoco.mj_step(model, d)
        states.append((d.qpos.copy(), d.qvel.copy(), d.ncon))
    assert np.array_equal(states[0][0], states[1][0]) and np.array_equal(states[0][1], states[1][1])
    assert states[0][2] == states[1][2]


def test_lab_frames_have_walls_and_shadows(scene):
    frames = {}
    for preset in ("fast", "lab"):
        model = render_model(scene.model, scene.xml, preset)
        d = mujoco.MjData(model)
        d.qpos[:] = scene.qpos0
        mujoco.mj_kinematics(model, d)
        mujoco.mj_camlight(model, d)
        with MultiViewRenderer(model, VIEWS, SMALL, SMALL) as r:
            frames[preset] = r.render(d)
    for v in ("left", "right"):
        black = {p: (frames[p][v].max(axis=-1) < 10).mean() for p in frames}
        assert black["fast"] > 0.15 and black["lab"] < 0.02, black  # the void is gone
    assert not np.array_equal(frames["fast"]["wrist"], frames["lab"]["wrist"])


def test_lab_hides_nothing_of_the_scene(scene):
    """Where the fast look shows a scene geom, the lab look shows the same geom: the room
    only replaces the background and the far part of the floor plane (its larger extent must
    not move the near plane, which once clipped the hand out of the wrist view)."""
    from simfail.render.compare import egl_reference

    q = scene.qpos0[None]
    _, fast = egl_reference(scene.model, VIEWS, q, SMALL, SMALL)
    _, lab = egl_reference(render_model(scene.model, scene.xml, "lab"), VIEWS, q, SMALL, SMALL)
    for v in VIEWS:
        floor = mujoco.mj_name2id(scene.model, mujoco.mjtObj.mjOBJ_GEOM, "floor")
        shown = (fast[v][..., 0] >= 0) & (fast[v][..., 0] != floor)
        assert shown.any()
        same = (lab[v][..., 0] == fast[v][..., 0])[shown].mean()
        assert same > 0.999, (v, same)


@pytest.mark.parametrize("key,value", [("backend", "vulkan"), ("preset", "pretty"), ("backend", 3)])
def test_render_backend_and_preset_are_validated(key, value):
    with pytest.raises(ConfigError, match=f"unknown render.{key} value .*known render.{key} values: "):
        from_dict({"render": {key: value}})


@pytest.mark.parametrize("extra,needle", [("render.backend=vulkan", "render.backend"), ("render.preset=pretty", "render.preset"),
                                          ("render.backend=gl", "did you mean 'egl'")])
def test_bad_backend_or_preset_on_the_command_line(capsys, tmp_path, extra, needle):
    out = tmp_path / "out"
    capsys.readouterr()
    assert main(generate_argv(out, "groups=1", extra)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error:") and needle in err[0]
    assert not out.exists()


def test_known_names():
    assert preset_names() == ["fast", "lab"]
    cfg = from_dict({"render": {"backend": "warp", "preset": "lab"}})
    assert (cfg.render.backend, cfg.render.preset) == ("warp", "lab")
    assert (from_dict({}).render.backend, from_dict({}).render.preset) == ("egl", "fast")


def test_schema_choices_are_the_registries_and_help_lists_them(capsys):
    """The typed RenderConfig offers exactly the registered backends and presets (egl first:
    the default, as the scale branch's GL_BACKENDS names it), and ``generate --help`` says so."""
    import dataclasses

    from simfail.config import RenderConfig
    from simfail.render.backends import BACKENDS

    fields = {f.name: f for f in dataclasses.fields(RenderConfig)}
    assert fields["backend"].metadata["choices"] == list(BACKENDS) == ["egl", "warp"]
    assert fields["preset"].metadata["choices"] == preset_names()
    assert RenderConfig().backend == "egl" and RenderConfig().preset == "fast"
    assert main(["generate", "--help"]) == 0
    out = capsys.readouterr().out
    assert "render.backend" in out and "one of egl, warp" in out and "one of fast, lab" in out


def test_render_preview_writes_one_row_per_preset(tmp_path, capsys):
    import imageio.v3 as iio

    out = tmp_path / "new" / "p.png"
    assert main(["render-preview", f"out={out}", "size=32", "presets=[fast,lab]"]) == 0
    img = iio.imread(out)
    assert img.shape == (2 * 32, len(VIEWS) * 32, 3)
    assert not np.array_equal(img[:32], img[32:])  # the lab row looks different
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.png"]  # no temporary file left


@pytest.mark.parametrize("argv,needle", [
    (["render-speed", "runs=[egl:pretty]"], "runs: 'egl:pretty'"),
    (["render-speed", "runs=[vulkan:fast]"], "runs: 'vulkan:fast'"),
    (["render-speed", "runs=[]"], "at least one"),
    (["render-speed", "size=63"], "even"),
    (["render-speed", "task=poor"], "did you mean 'pour'"),
    (["render-preview", "presets=[lob]"], "did you mean 'lab'"),
    (["render-preview", "backend=gl"], "did you mean 'egl'"),
    (["render-preview", "out=x.jpg"], ".png"),
])
def test_render_tools_refuse_bad_settings_in_one_line(capsys, argv, needle):
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error:") and needle in err[0], err


def test_render_speed_times_each_pair(capsys):
    from simfail.render.speed import measure

    rows = measure("pick_place", 32, 3, [("egl", "fast"), ("egl", "lab")])
    assert [(r["backend"], r["preset"]) for r in rows] == [("egl", "fast"), ("egl", "lab")]
    assert all(r["view_frames"] == 3 * len(VIEWS) and r["seconds"] > 0 for r in rows)
    assert main(["render-speed", "size=32", "frames=3", "runs=[egl:fast]"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split()[:2] == ["backend", "preset"] and lines[1].split()[:3] == ["egl", "fast", "32"]


@pytest.mark.slow
def test_generate_with_warp_and_lab_passes_check(tmp_path, cli_dataset):
    """A one-group dataset rendered by Warp with the lab look passes ``simfail check``; its
    labels and states equal those of the default (egl, fast) dataset of the same seed."""
    pytest.importorskip("mujoco_warp")
    from simfail.dataset.reader import SimfailDataset

    out = tmp_path / "warp_lab"
    assert main(generate_argv(out, "groups=1", "render.backend=warp", "render.preset=lab")) == 0
    assert main(["check", str(out)]) == 0
    a, b = SimfailDataset(out), SimfailDataset(cli_dataset)
    assert len(a.episodes) == len(b.episodes) > 1
    for i in range(len(a.episodes)):
        ca, cb = a.episode_columns(i), b.episode_columns(i)
        for k in ("sim.qpos", "failure", "reward", "progress"):
            assert np.array_equal(ca[k], cb[k]), k
        fa, fb = a.episode_frames(i, a.video_keys[0]), b.episode_frames(i, b.video_keys[0])
        assert fa.shape == fb.shape and not np.array_equal(fa, fb)  # other look, same frames count
