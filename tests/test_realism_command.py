"""The realism pass end to end on a tiny generated dataset, with a tiny random-weight Wan-VACE
pipeline built here (no downloads, no hub: prompt embeddings replace the text encoder)."""

from __future__ import annotations

import textwrap

import numpy as np
import pyarrow.parquet as pq
import pytest

from simfail.core.episode import VIEWS

from editor_helpers import SHUFFLE_TILES

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

#: Per-frame label columns that must come through the edit unchanged.
LABELS = ("observation.state", "action", "progress", "reward", "failure", "sim.qpos", "sim.qvel")


def build_tiny_wan_vace(path):
    """A random-weight WanVACEPipeline (no tokenizer/text encoder) saved to ``path``."""
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanVACEPipeline, WanVACETransformer3DModel

    torch.manual_seed(0)
    vae = AutoencoderKLWan(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                           temperal_downsample=[False, True, True])
    transformer = WanVACETransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16, out_channels=16,
        text_dim=32, freq_dim=256, ffn_dim=32, num_layers=3, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        rope_max_seq_len=32, vace_layers=[0, 2], vace_in_channels=96)
    pipe = WanVACEPipeline(tokenizer=None, text_encoder=None, transformer=transformer, vae=vae,
                           scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0))
    pipe.save_pretrained(path)
    return path


def generate_small(out, groups: int = 1, failures: str = "[drop,collision]"):
    """``simfail generate`` at 64x64 and 2 fps (17 frames per episode) into ``out``."""
    from simfail.cli import main

    rc = main(["generate", f"out={out}", "render.width=64", "render.height=64", "render.fps=2", f"groups={groups}",
               f"failures={failures}", "progress=false"])
    assert rc == 0
    return out


def save_tiny_model(root):
    """The tiny random-weight pipeline and prompt embeddings (16 tokens of width 32) under ``root``."""
    from safetensors.torch import save_file

    build_tiny_wan_vace(root / "model")
    g = torch.Generator().manual_seed(0)
    save_file({"prompt_embeds": torch.randn(1, 16, 32, generator=g)}, str(root / "embeds.safetensors"))
    return root / "model", root / "embeds.safetensors"


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    """One group at 64x64 and 2 fps (17 frames per episode): expert, drop, collision."""
    return generate_small(tmp_path_factory.mktemp("realism_src") / "ds")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_wan"))


def _scramble(frames: np.ndarray, seed: int = 0, block: int = 8) -> np.ndarray:
    """Shuffle ``block``-pixel tiles inside every frame (structure destroyed, colours kept)."""
    t, h, w, c = frames.shape
    tiles = frames.reshape(t, h // block, block, w // block, block, c).transpose(0, 1, 3, 2, 4, 5)
    tiles = tiles.reshape(t, -1, block, block, c)
    tiles = tiles[:, np.random.default_rng(seed).permutation(tiles.shape[1])]
    tiles = tiles.reshape(t, h // block, w // block, block, block, c).transpose(0, 1, 3, 2, 4, 5)
    return np.ascontiguousarray(tiles.reshape(t, h, w, c))


def _labels(ds, ep):
    cols = ds.episode_columns(ep)
    return {k: cols[k] for k in LABELS}


def _assert_labels_equal(src, s_ep, out, o_ep):
    a, b = _labels(src, s_ep), _labels(out, o_ep)
    for k in LABELS:
        assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), f"label column {k} changed"
    ra, rb = src.episode(s_ep), out.episode(o_ep)
    for k in ("simfail.variant", "simfail.success", "simfail.score", "simfail.failures", "simfail.seed",
              "simfail.task", "simfail.perturbation", "tasks", "length"):
        assert ra[k] == rb[k], k


# ------------------------------------------------------------------------------ pipeline


@pytest.mark.parametrize("scheduler", ["flow_euler", "unipc"])
def test_strength_runs_only_the_tail_of_the_schedule(tiny_model, scheduler):
    """SDEdit: the edit starts at sigma <= strength, so only those steps run; same seed, same output."""
    from diffusers import FlowMatchEulerDiscreteScheduler, UniPCMultistepScheduler

    from simfail.realism.pipeline import VaceEditor, VaceSettings, load_pipeline

    model, embeds = tiny_model
    pipe = load_pipeline(model, device="cpu", dtype="float32")
    pipe.scheduler = (FlowMatchEulerDiscreteScheduler(shift=7.0) if scheduler == "flow_euler" else
                      UniPCMultistepScheduler(prediction_type="flow_prediction", use_flow_sigmas=True, flow_shift=3.0))
    pipe.scheduler.set_timesteps(10)
    sigmas = pipe.scheduler.sigmas.numpy()[:-1]
    calls = []
    hook = pipe.transformer.register_forward_hook(lambda *a: calls.append(1))
    frames = (np.random.default_rng(0).random((5, 32, 32, 3)) * 255).astype(np.uint8)
    outs = {}
    try:
        for strength in (1.0, 0.5, 0.5):
            calls.clear()
            editor = VaceEditor(pipe, VaceSettings(steps=10, strength=strength, guidance_scale=1.0), prompt_embeds=embeds)
            outs.setdefault(strength, []).append(editor.edit(frames, frames, prompt="", negative_prompt="", seed=1))
            assert len(calls) == int((sigmas <= strength + 1e-6).sum())
    finally:
        hook.remove()
    assert outs[1.0][0].shape == frames.shape and outs[1.0][0].dtype == np.uint8
    # a clip longer than chunk_frames runs in overlapping chunks and keeps its frame count
    long = (np.random.default_rng(1).random((9, 32, 32, 3)) * 255).astype(np.uint8)
    editor = VaceEditor(pipe, VaceSettings(steps=4, strength=0.5, guidance_scale=1.0, chunk_frames=5, overlap=2),
                        prompt_embeds=embeds)
    assert editor.edit(long, long, prompt="", negative_prompt="", seed=1).shape == long.shape
    np.testing.assert_array_equal(outs[0.5][0], outs[0.5][1])
    assert type(pipe.scheduler).set_timesteps is pipe.scheduler.set_timesteps.__func__  # the patch is undone


# ------------------------------------------------------------------------------ conditioning


def test_conditioning_matches_the_stored_video(small_ds):
    from simfail.dataset.reader import SimfailDataset
    from simfail.realism.conditioning import SceneConditioner, control_frames

    ds = SimfailDataset(small_ds)
    ep = 2  # the collision variant
    with SceneConditioner(ds.simfail_meta, 0, 64, 64) as sc:
        cond, rgb = sc.render(ds.episode_columns(ep)["sim.qpos"], rgb=True)
        for v in VIEWS:
            c = cond[v]
            assert c.depth.shape == c.seg.shape == c.edges.shape == (17, 64, 64)
            assert np.isfinite(c.depth).all() and c.depth.min() > 0
            assert {0, 1} <= set(np.unique(c.seg).tolist())  # background and robot are seen
            # the rebuilt scene, posed from sim.qpos, redraws the stored video (up to compression)
            assert np.abs(rgb[v].astype(int) - ds.episode_frames(ep, v)).mean() < 10
            for kind in ("depth", "edges", "seg"):
                assert control_frames(c, kind).shape == (17, 64, 64, 3)
        assert sc.labels_of(("robot",)) == {1}
        assert sc.labels_of(("object",)) == {sc.labels.index(sc.layout.roles["object"])}


def test_fidelity_accepts_identity_and_rejects_scrambled(small_ds):
    from simfail.dataset.reader import SimfailDataset
    from simfail.realism.conditioning import SceneConditioner
    from simfail.realism.fidelity import check_episode

    ds = SimfailDataset(small_ds)
    ep = 2
    failures = ds.failures(ep)
    assert failures
    frames = {v: ds.episode_frames(ep, v) for v in VIEWS}
    with SceneConditioner(ds.simfail_meta, 0, 64, 64) as sc:
        cond = sc.render(ds.episode_columns(ep)["sim.qpos"])
        same = check_episode(frames, {v: f.copy() for v, f in frames.items()}, cond, failures, sc.labels_of)
        scrambled = check_episode(frames, {v: _scramble(f) for v, f in frames.items()}, cond, failures, sc.labels_of)
    assert same.passed and same.edge == pytest.approx(1.0) and same.object == pytest.approx(1.0)
    assert not scrambled.passed
    assert scrambled.edge < 0.45 and scrambled.object < 0.45
    assert len(scrambled.events) == len(failures)


# ------------------------------------------------------------------------------ whole command


def test_identity_command_copies_everything(small_ds, tmp_path, capsys):
    from simfail.cli import main
    from simfail.dataset.reader import SimfailDataset

    out = tmp_path / "real"
    assert main(["realism", f"data={small_ds}", f"out={out}", "model=identity", "progress=false"]) == 0
    assert main(["check", str(out)]) == 0
    src, dst = SimfailDataset(small_ds), SimfailDataset(out)
    assert dst.num_episodes == src.num_episodes and dst.num_frames == src.num_frames
    for ep in range(src.num_episodes):
        _assert_labels_equal(src, ep, dst, ep)
    assert pq.read_table(out / "meta/preferences.parquet").equals(pq.read_table(small_ds / "meta/preferences.parquet"))
    # the per-frame parquet files are identical column for column (labels, indices, timestamps)
    a = pq.read_table(small_ds / "data/chunk-000/file-000.parquet")
    b = pq.read_table(out / "data/chunk-000/file-000.parquet")
    assert a.column_names == b.column_names
    for name in a.column_names:
        assert a.column(name).equals(b.column(name)), name
    meta = dst.simfail_meta["realism"]
    assert meta["model"] == "identity" and meta["seed"] == 0 and meta["strength"] == 0.6
    assert "Franka" in meta["prompts"]["0"]
    assert all(e["passed"] and e["edge"] == 1.0 for e in meta["episodes"])
    assert not meta["rejected"]


SCRAMBLER = SHUFFLE_TILES + textwrap.dedent('''

    class EveryOtherScrambled:
        """Identity on calls 1, 3, ...; tile-shuffled frames on calls 2, 4, ..."""
        calls = 0

        def edit(self, frames, control, *, prompt, negative_prompt, seed):
            type(self).calls += 1
            if type(self).calls % 2:
                return frames.copy()
            return shuffle_tiles(frames)
''')


def test_scrambled_episode_is_left_out_and_dataset_stays_valid(small_ds, tmp_path, monkeypatch, capsys):
    from simfail.cli import main
    from simfail.dataset.reader import SimfailDataset

    (tmp_path / "realism_scrambler.py").write_text(SCRAMBLER)
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "real"
    rc = main(["realism", f"data={small_ds}", f"out={out}", "model=realism_scrambler:EveryOtherScrambled",
               "progress=false"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "left out" in printed and "edge agreement" in printed
    assert main(["check", str(out)]) == 0
    src, dst = SimfailDataset(small_ds), SimfailDataset(out)
    assert dst.num_episodes == src.num_episodes - 1  # episode 1 (the second call) was scrambled
    _assert_labels_equal(src, 0, dst, 0)
    _assert_labels_equal(src, 2, dst, 1)
    meta = dst.simfail_meta["realism"]
    assert [r["source_episode"] for r in meta["rejected"]] == [1]
    assert [e.get("episode") for e in meta["episodes"]] == [0, None, 1]
    assert set(dst.groups()) == {0}
    scores = [dst.episode(e)["simfail.score"] for e in range(2)]
    ranks = [dst.episode(e)["simfail.rank"] for e in range(2)]
    assert ranks == [1 + sum(o > s for o in scores) for s in scores]


def test_everything_rejected_gives_an_empty_valid_dataset(small_ds, tmp_path, monkeypatch, capsys):
    from simfail.cli import main
    from simfail.dataset.reader import SimfailDataset

    (tmp_path / "realism_scrambler2.py").write_text(SCRAMBLER + "\n\nclass AllScrambled(EveryOtherScrambled):\n"
                                                    "    def edit(self, frames, control, **kw):\n"
                                                    "        type(self).calls = 1\n"
                                                    "        return super().edit(frames, control, **kw)\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    out = tmp_path / "real"
    assert main(["realism", f"data={small_ds}", f"out={out}", "model=realism_scrambler2:AllScrambled",
                 "progress=false"]) == 0
    assert "every episode failed the fidelity check" in capsys.readouterr().out
    assert SimfailDataset(out).num_episodes == 0
    assert len(SimfailDataset(out).simfail_meta["realism"]["rejected"]) == 3
    assert main(["check", str(out)]) == 0


def test_tiny_wan_vace_command(small_ds, tiny_model, tmp_path):
    """The full command with a random-weight Wan-VACE pipeline: shapes, frame counts, labels
    unchanged, the edit recorded. Random weights destroy structure, so the fidelity check is
    switched off here (its scores are still recorded, and they are low)."""
    from simfail.cli import main
    from simfail.dataset.reader import SimfailDataset

    model, embeds = tiny_model
    out = tmp_path / "real"
    args = ["realism", f"data={small_ds}", f"out={out}", f"model={model}", f"prompt_embeds={embeds}", "steps=2",
            "strength=0.7", "guidance_scale=1.5", "resolution=[32,96]", "seed=3", "progress=false",
            "fidelity.enabled=false"]
    assert main(args) == 0
    assert main(["check", str(out)]) == 0
    src, dst = SimfailDataset(small_ds), SimfailDataset(out)
    assert dst.num_episodes == src.num_episodes
    changed = False
    for ep in range(src.num_episodes):
        _assert_labels_equal(src, ep, dst, ep)
        for v in VIEWS:
            a, b = src.episode_frames(ep, v), dst.episode_frames(ep, v)
            assert b.shape == a.shape == (17, 64, 64, 3)
            changed |= bool(np.abs(a.astype(int) - b).mean() > 5)
    assert changed
    meta = dst.simfail_meta["realism"]
    assert meta["model"] == str(model) and meta["strength"] == 0.7 and meta["seed"] == 3
    assert meta["editor"]["pipeline"] == "WanVACEPipeline" and meta["editor"]["prompt_embeds_file"]
    assert meta["timing"]["frames"] == 3 * 17 * 3 and meta["timing"]["frames_per_s_edit"] > 0
    assert all(e["written"] and e["edge"] < 0.45 for e in meta["episodes"])  # would have been rejected


# ------------------------------------------------------------------------------ errors


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("simfail: error: "), err
    return err[0]


def test_missing_model_path_is_one_clear_error(small_ds, tmp_path, capsys):
    from simfail.cli import main

    out = tmp_path / "real"
    assert main(["realism", f"data={small_ds}", f"out={out}", f"model={tmp_path / 'no_model'}"]) == 2
    assert "does not exist" in _one_error_line(capsys)
    assert not out.exists()


def test_non_empty_out_dir_is_one_clear_error(small_ds, tmp_path, capsys):
    from simfail.cli import main

    out = tmp_path / "real"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    assert main(["realism", f"data={small_ds}", f"out={out}", "model=identity"]) == 2
    line = _one_error_line(capsys)
    assert "not empty" in line and "resume=true" in line and "overwrite=true" in line
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "x"
    # resume=true on a folder that is not a simfail dataset: one error, nothing written either
    assert main(["realism", f"data={small_ds}", f"out={out}", "model=identity", "resume=true"]) == 2
    assert "does not look like a simfail dataset" in _one_error_line(capsys)
    assert [p.name for p in out.iterdir()] == ["keep.txt"]


def test_bad_batch_size_is_one_clear_error(small_ds, tmp_path, capsys):
    from simfail.cli import main

    for bad in ("0", "65", "1.5", "two"):
        out = tmp_path / f"r{bad}"
        assert main(["realism", f"data={small_ds}", f"out={out}", "model=identity", f"batch_size={bad}"]) == 2
        line = _one_error_line(capsys)  # out of range, or not a whole number (checked by the typed schema)
        assert "batch_size must be in [1, 64]" in line or ("batch_size" in line and "whole number (int)" in line), line
        assert not out.exists()


def test_unknown_device_is_one_clear_error(small_ds, tmp_path, capsys):
    from simfail.cli import main

    assert main(["realism", f"data={small_ds}", f"out={tmp_path / 'r'}", "model=identity", "device=tpu"]) == 2
    assert "unknown device 'tpu'" in _one_error_line(capsys)


def test_model_without_text_encoder_needs_embeddings(small_ds, tiny_model, tmp_path, capsys):
    from simfail.cli import main

    model, _ = tiny_model
    assert main(["realism", f"data={small_ds}", f"out={tmp_path / 'r'}", f"model={model}"]) == 2
    assert "prompt_embeds" in _one_error_line(capsys)
    assert not (tmp_path / "r").exists()
