"""Batched denoising (``batch_size``) with a tiny random-weight Wan-VACE pipeline built here (no
downloads): the editor's loop reproduces ``WanVACEPipeline.__call__``, batching changes how many
pipeline runs there are but not what comes out (up to float rounding), in the editor and in the
whole command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simfail.core.episode import VIEWS

from test_realism_command import LABELS, generate_small, save_tiny_model

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

#: Largest difference [grey levels] and largest share of differing uint8 values that batching
#: may cause on CPU float32 (batched matrix products round differently; measured: at most 1
#: level in a handful of values, see the README).
MAX_LEVELS, MAX_SHARE = 2, 0.005


@pytest.fixture(scope="module")
def small_ds(tmp_path_factory):
    return generate_small(tmp_path_factory.mktemp("realism_batch_src") / "ds")


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    return save_tiny_model(tmp_path_factory.mktemp("tiny_wan_batch"))


def _video(seed: int, t: int = 9, h: int = 32, w: int = 48) -> np.ndarray:
    return (np.random.default_rng(seed).random((t, h, w, 3)) * 255).astype(np.uint8)


def _pipeline_call(pipe, editor, frames, control, seed):
    """What ``WanVACEPipeline.__call__`` makes of one chunk, SDEdit-started the editor's way:
    the same start latents, the schedule trimmed to sigma <= strength (float frames)."""
    from PIL import Image

    st = editor.settings
    n, h, w = frames.shape[:3]
    start, sigma0 = editor._start_index()
    vae = pipe.vae
    z = vae.config.z_dim
    x = pipe.video_processor.preprocess_video([Image.fromarray(f) for f in frames], h, w)
    mean = torch.tensor(vae.config.latents_mean).view(1, z, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, z, 1, 1, 1)
    with torch.inference_mode():
        x0 = (vae.encode(x).latent_dist.mode().float() - mean) / std
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float32)
    latents = (1.0 - sigma0) * x0 + sigma0 * noise
    sched = pipe.scheduler
    original = type(sched).set_timesteps

    def trimmed(*args, **kwargs):
        original(sched, *args, **kwargs)
        sched.timesteps, sched.sigmas = sched.timesteps[start:], sched.sigmas[start:]
        sched._step_index = sched._begin_index = None

    pe, ne = editor._prompt("", "")
    sched.set_timesteps = trimmed
    try:
        with torch.inference_mode():
            out = pipe(video=[Image.fromarray(f) for f in control], mask=None, conditioning_scale=st.conditioning_scale,
                       height=h, width=w, num_frames=n, num_inference_steps=st.steps, guidance_scale=st.guidance_scale,
                       latents=latents, prompt_embeds=pe, negative_prompt_embeds=ne, output_type="np")
    finally:
        del sched.set_timesteps
    return np.asarray(out.frames[0], dtype=np.float32)


@pytest.mark.parametrize("variant", ["wan2.1", "wan2.2-two-experts"])
@pytest.mark.parametrize("guidance", [1.0, 3.0])
def test_denoising_loop_reproduces_the_pipeline_call(tiny_model, tmp_path, variant, guidance):
    """At batch size 1 the editor's own loop is ``WanVACEPipeline.__call__`` bit for bit (with
    and without classifier-free guidance; with a second transformer below ``boundary_ratio``)."""
    from diffusers import WanVACEPipeline

    from simfail.realism.batching import EditRequest
    from simfail.realism.pipeline import VaceEditor, VaceSettings, _Clip, load_pipeline

    model, embeds = tiny_model
    pipe = load_pipeline(model, device="cpu", dtype="float32")
    calls = {"transformer": 0, "transformer_2": 0}
    if variant == "wan2.2-two-experts":
        second = load_pipeline(model, device="cpu", dtype="float32").transformer
        with torch.no_grad():  # a different expert, so using the wrong one would show
            for p in second.parameters():
                p.mul_(0.5)
        pipe = WanVACEPipeline(tokenizer=None, text_encoder=None, vae=pipe.vae, scheduler=pipe.scheduler,
                               transformer=pipe.transformer, transformer_2=second, boundary_ratio=0.9)
        pipe.set_progress_bar_config(disable=True)
    hooks = [getattr(pipe, name).register_forward_hook(lambda *a, name=name: calls.__setitem__(name, calls[name] + 1))
             for name in calls if getattr(pipe, name, None) is not None]
    try:
        editor = VaceEditor(pipe, VaceSettings(steps=6, strength=1.0, guidance_scale=guidance), prompt_embeds=embeds)
        frames, control = _video(0), _video(1)
        ours = editor._denoise([_Clip(0, 0, 9, frames, control)], [EditRequest(frames, control, "", "", 5)])[0]
        ours_calls = dict(calls)
        reference = _pipeline_call(pipe, editor, frames, control, 5)
    finally:
        for h in hooks:
            h.remove()
    assert ours.shape == reference.shape == (9, 32, 48, 3)
    np.testing.assert_array_equal(ours, reference)
    per_step = 2 if guidance > 1 else 1
    if variant == "wan2.2-two-experts":
        assert ours_calls["transformer"] > 0 and ours_calls["transformer_2"] > 0
        assert ours_calls["transformer"] + ours_calls["transformer_2"] == 6 * per_step
    else:
        assert ours_calls["transformer"] == 6 * per_step


def test_batch_size_denoises_chunks_together_with_the_same_result(tiny_model):
    from simfail.realism.batching import EditRequest
    from simfail.realism.pipeline import VaceEditor, VaceSettings, _Clip, load_pipeline

    model, embeds = tiny_model
    pipe = load_pipeline(model, device="cpu", dtype="float32")
    batches = []
    hook = pipe.transformer.register_forward_hook(lambda mod, args, kwargs, out: batches.append(kwargs["hidden_states"].shape[0]),
                                                  with_kwargs=True)
    # three 9-frame videos, chunks of 5 overlapping by 2: 3 chunks each, 9 chunks of one shape
    requests = [EditRequest(_video(k), _video(10 + k), "", "", seed) for k, seed in enumerate((5, 5, 6))]
    outs = {}
    try:
        for bs in (1, 2, 4):
            batches.clear()
            editor = VaceEditor(pipe, VaceSettings(steps=4, strength=0.8, guidance_scale=2.0, chunk_frames=5, overlap=2,
                                                   batch_size=bs), prompt_embeds=embeds)
            outs[bs] = editor.edit_batch(requests)
            assert editor.chunks == 9 and editor.calls == -(-9 // bs)
            steps = len(batches) // (2 * editor.calls)  # 2 transformer calls (guidance) per step and run
            assert sorted(batches[::2 * steps]) == sorted([bs] * (9 // bs) + ([9 % bs] if 9 % bs else []))
    finally:
        hook.remove()
    for bs in (2, 4):
        for a, b in zip(outs[1], outs[bs]):
            assert a.shape == b.shape == (9, 32, 48, 3) and a.dtype == b.dtype == np.uint8
            diff = np.abs(a.astype(int) - b)
            assert diff.max() <= MAX_LEVELS and (diff > 0).mean() <= MAX_SHARE, (bs, diff.max(), (diff > 0).mean())
    # one request alone equals its result among others; the noise is the request's own seed
    editor = VaceEditor(pipe, VaceSettings(steps=4, strength=0.8, guidance_scale=2.0, chunk_frames=5, overlap=2),
                        prompt_embeds=embeds)
    alone = editor.edit(requests[1].frames, requests[1].control, prompt="", negative_prompt="", seed=5)
    np.testing.assert_array_equal(alone, outs[1][1])
    clip = _Clip(0, 0, 5, requests[0].frames[:5], requests[0].control[:5])
    seeded = [editor._denoise([clip], [EditRequest(clip.src, clip.ctl, "", "", seed)])[0] for seed in (5, 5, 6)]
    np.testing.assert_array_equal(seeded[0], seeded[1])
    assert np.abs(seeded[0] - seeded[2]).max() > 1e-4


def _run(data, out, model, embeds, *extra):
    from simfail.cli import main

    return main(["realism", f"data={data}", f"out={out}", f"model={model}", f"prompt_embeds={embeds}", "steps=2",
                 "strength=0.7", "guidance_scale=1.5", "resolution=[32,96]", "chunk_frames=9", "overlap=2", "seed=3",
                 "progress=false", "fidelity.enabled=false", *extra])


def test_batch_size_command_gives_the_same_dataset(small_ds, tiny_model, tmp_path):
    """batch_size=2 edits two episodes per call and denoises chunks two at a time; the written
    dataset equals the batch_size=1 one: labels, meta, scores (float rounding aside), frames."""
    from simfail.cli import main
    from simfail.dataset.reader import SimfailDataset

    model, embeds = tiny_model
    out1, out2 = tmp_path / "bs1", tmp_path / "bs2"
    assert _run(small_ds, out1, model, embeds, "batch_size=1") == 0
    assert _run(small_ds, out2, model, embeds, "batch_size=2") == 0
    assert main(["check", str(out2)]) == 0
    m1, m2 = (json.loads((o / "meta/simfail.json").read_text()) for o in (out1, out2))
    r1, r2 = m1.pop("realism"), m2.pop("realism")
    assert m1 == m2
    t1, t2 = r1.pop("timing"), r2.pop("timing")
    assert t1["chunks_denoised"] == t2["chunks_denoised"] == 9  # 17 frames in chunks of 9: 3 per episode
    assert t1["denoise_calls"] == 9 and t2["denoise_calls"] == 5  # episodes [0, 1] -> 3 runs, [2] -> 2 runs
    assert (r1.pop("batch_size"), r2.pop("batch_size")) == (1, 2)
    assert (r1["editor"].pop("batch_size"), r2["editor"].pop("batch_size")) == (1, 2)
    e1, e2 = r1.pop("episodes"), r2.pop("episodes")
    assert r1 == r2
    assert [(e["source_episode"], e["episode"]) for e in e1] == [(e["source_episode"], e["episode"]) for e in e2]
    for a, b in zip(e1, e2):
        for key in ("edge", "object", "temporal"):
            assert (a[key] is None) == (b[key] is None) and abs((a[key] or 0) - (b[key] or 0)) < 0.02, key
    d1, d2, src = SimfailDataset(out1), SimfailDataset(out2), SimfailDataset(small_ds)
    for ep in range(src.num_episodes):
        c1, c2 = d1.episode_columns(ep), d2.episode_columns(ep)
        for k in LABELS:
            assert np.array_equal(c1[k], c2[k])
        for v in VIEWS:
            f1, f2 = d1.episode_frames(ep, v), d2.episode_frames(ep, v)
            assert f1.shape == f2.shape == (17, 64, 64, 3)
            assert np.abs(f1.astype(int) - f2).mean() < 0.5  # H.264 of nearly identical frames
