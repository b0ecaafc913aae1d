"""A side-by-side picture of the render presets (rows) and views (columns) of one scene.

``python -m simfail.render.preview out=docs/images/lab_preset.png size=256`` draws group 0's
pick/place scene at its initial state with the ``gl`` backend, one row per preset.
"""

from __future__ import annotations

import sys

import numpy as np

from simfail.core.episode import VIEWS


def preview(task_name: str, size: int, presets: list[str], backend: str = "gl") -> np.ndarray:
    """``uint8 (len(presets) * size, len(VIEWS) * size, 3)``: row ``i`` is preset ``presets[i]``."""
    import mujoco

    from simfail.core.builder import build_scene
    from simfail.core.scene import StageConfig
    from simfail.core.task import get_task
    from simfail.render.backends import make_renderer
    from simfail.render.presets import render_model

    scene = build_scene(get_task(task_name), 0, StageConfig(size, size))
    rows = []
    for preset in presets:
        model = render_model(scene.model, scene.xml, preset)
        data = mujoco.MjData(model)
        data.qpos[:] = scene.qpos0
        mujoco.mj_kinematics(model, data)
        mujoco.mj_camlight(model, data)
        r = make_renderer(backend, model, VIEWS, size, size)
        try:
            im = r.render(data)
        finally:
            r.close()
        rows.append(np.concatenate([im[v] for v in VIEWS], axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str]) -> int:
    import imageio.v3 as iio

    opts = {"task": "pick_place", "size": "256", "presets": "fast,lab", "backend": "gl", "out": "lab_preset.png"}
    for a in argv:
        k, _, v = a.partition("=")
        if k not in opts:
            print(f"simfail: error: unknown option {k!r}; known: {', '.join(opts)}", file=sys.stderr)
            return 2
        opts[k] = v
    img = preview(opts["task"], int(opts["size"]), opts["presets"].split(","), opts["backend"])
    iio.imwrite(opts["out"], img)
    print(f"wrote {opts['out']} ({img.shape[1]}x{img.shape[0]})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
