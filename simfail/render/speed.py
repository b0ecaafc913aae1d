"""Render speed of a backend and preset on the same recorded frames (view-frames per second).

``python -m simfail.render.speed task=pick_place size=256 frames=81 runs=gl:fast,gl:lab,warp:fast``
simulates group 0's expert (physics only), then renders its recorded ``sim.qpos`` rows with each
``backend:preset`` pair on one thread, after one warm-up call (which for ``warp`` includes
compiling its kernels), and prints one line per pair. Used for the numbers in
docs/rendering.md; the pipeline's own speed is measured by ``simfail bench``.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from simfail.core.episode import VIEWS


def measure(task_name: str, size: int, frames: int, runs: list[tuple[str, str]]) -> list[dict]:
    import mujoco

    from simfail.config import GenerateConfig, RenderConfig
    from simfail.core.builder import build_scene
    from simfail.core.task import get_task
    from simfail.generate import _stage, generate_group
    from simfail.render.backends import make_renderer
    from simfail.render.presets import render_model
    from simfail.render.worker import render_states

    task = get_task(task_name)
    cfg = GenerateConfig(task=task_name, render=RenderConfig(width=size, height=size), progress=False)
    res = generate_group(task, cfg, 0, render=False)
    qpos = res.episodes[0].columns["sim.qpos"][:frames]
    scene = build_scene(task, res.seed, _stage(cfg))
    rows = []
    for backend, preset in runs:
        model = render_model(scene.model, scene.xml, preset)
        data = mujoco.MjData(model)
        out = {v: np.empty((len(qpos), size, size, 3), np.uint8) for v in VIEWS}
        renderer = make_renderer(backend, model, VIEWS, size, size)
        try:
            render_states(renderer, model, data, qpos[:2], out)  # warm-up (warp: kernel compile)
            t0 = time.perf_counter()
            render_states(renderer, model, data, qpos, out)
            dt = time.perf_counter() - t0
        finally:
            renderer.close()
        rows.append({"backend": backend, "preset": preset, "size": size, "view_frames": len(qpos) * len(VIEWS),
                     "seconds": dt, "view_frames_per_s": len(qpos) * len(VIEWS) / dt})
    return rows


def main(argv: list[str]) -> int:
    opts = {"task": "pick_place", "size": "256", "frames": "81", "runs": "gl:fast,gl:lab"}
    for a in argv:
        k, _, v = a.partition("=")
        if k not in opts:
            print(f"simfail: error: unknown option {k!r}; known: {', '.join(opts)}", file=sys.stderr)
            return 2
        opts[k] = v
    runs = [tuple(r.split(":", 1)) for r in opts["runs"].split(",")]
    rows = measure(opts["task"], int(opts["size"]), int(opts["frames"]), runs)
    print(f"{'backend':8} {'preset':6} {'size':>5} {'view-frames':>11} {'s':>7} {'view-frames/s':>13}")
    for r in rows:
        print(f"{r['backend']:8} {r['preset']:6} {r['size']:5d} {r['view_frames']:11d} {r['seconds']:7.2f} "
              f"{r['view_frames_per_s']:13.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
