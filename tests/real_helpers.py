"""Small "real-like" releases built inside the tests: mp4 files written with PyAV from
synthetic frames, a RoboArena-layout dump and a LeRobot v3 dataset with human labels (scores,
A/B verdicts with a tie, rationales), no simulator state."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

SIZE = (48, 64)  # (h, w): not simfail's size, so models resample
FPS = 10


def frames(n: int, seed: int, size: tuple[int, int] = SIZE, good: bool = True) -> np.ndarray:
    """A bright square crossing a gradient; ``good`` rollouts move it further, faster."""
    h, w = size
    yy, xx = np.mgrid[0:h, 0:w]
    out = np.zeros((n, h, w, 3), dtype=np.uint8)
    out[..., 0] = (xx * 180 // max(w - 1, 1))[None]
    out[..., 1] = (yy * 180 // max(h - 1, 1))[None]
    out[..., 2] = 30 + 40 * (seed % 4)
    side = max(4, min(h, w) // 5)
    for t in range(n):
        x = int((t / max(n - 1, 1)) * (w - side) * (1.0 if good else 0.4))
        y = (3 * seed) % max(h - side, 1)
        out[t, y:y + side, x:x + side] = (250, 250, 60) if good else (240, 60, 60)
    return out


def write_mp4(path: Path, arr: np.ndarray, fps: int = FPS) -> None:
    import av
    from fractions import Fraction

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = arr.shape[2], arr.shape[1], "yuv420p"
        s.time_base = Fraction(1, fps)
        s.options = {"g": "4", "bf": "0"}
        for i, f in enumerate(arr):
            vf = av.VideoFrame.from_ndarray(f, format="rgb24")
            vf.pts = i
            vf.time_base = Fraction(1, fps)
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)


#: (session, instruction, [(policy_id, policy_name, partial_success, n_frames)], preference, feedback)
SESSIONS = [
    ("s0", "pick up the red cube and place it in the bowl",
     [("p1", "pi0", 1.0, 12), ("p2", "octo", 0.25, 12)], "p1", "octo dropped the cube next to the bowl"),
    ("s1", "pour the nuts from the cup onto the plate",
     [("p3", "pi0", 0.5, 11), ("p4", "dp", 0.5, 13)], "tie", "both spilled about half of the nuts"),
    ("s2", "open the top drawer",
     [("p5", "dp", 0.0, 12), ("p6", "octo", 0.75, 12)], "B", "the first one hit the cabinet and never opened it"),
    ("s3", "push the block onto the green mark",
     [("p7", "pi0", 0.9, 10), ("p8", "dp", 0.2, 10)], "A", None),
]


def roboarena_dump(root: Path, *, wrist_missing: str | None = "s3/p8", sessions=SESSIONS, fps: int = FPS) -> Path:
    """``root/evaluation_sessions/<s>/metadata.yaml`` + ``<id>_<name>/<name>_{left,right,wrist}.mp4``."""
    base = root / "evaluation_sessions"
    for k, (sess, instr, pols, pref, feedback) in enumerate(sessions):
        meta = {"language_instruction": instr,
                "policies": {pid: {"policy_name": name, "partial_success": ps} for pid, name, ps, _ in pols},
                "preference": pref}
        if feedback:
            meta["feedback"] = feedback
        sdir = base / sess
        sdir.mkdir(parents=True, exist_ok=True)
        (sdir / "metadata.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
        for j, (pid, name, ps, n) in enumerate(pols):
            pdir = sdir / f"{pid}_{name}"
            for v, view in enumerate(("left", "right", "wrist")):
                if view == "wrist" and wrist_missing == f"{sess}/{pid}":
                    continue
                extra = 1 if view == "right" else 0  # views of one rollout may differ by a frame
                write_mp4(pdir / f"2025_{name}_{view}.mp4", frames(n + extra, 7 * k + 2 * j + v, good=ps >= 0.5), fps=fps)
    return root


def lerobot_release(root: Path) -> Path:
    """A LeRobot v3 dataset: per-episode labels as columns, one mp4 per view holding every
    episode back to back, verdicts in ``meta/human_preferences.parquet`` (one tie)."""
    eps = [  # session, policy, partial success, success, task, frames
        ("a", "pi0", 1.0, True, "put the spoon in the cup", 10),
        ("a", "dp", 0.4, False, "put the spoon in the cup", 12),
        ("a", "octo", 0.0, False, "put the spoon in the cup", 9),
        ("b", "pi0", 0.6, False, "stack the blue block on the red block", 11),
        ("b", "dp", 0.6, False, "stack the blue block on the red block", 10),
        ("c", "octo", 1.0, True, "wipe the table with the sponge", 10),
        ("c", "pi0", 0.3, False, "wipe the table with the sponge", 10),
    ]
    keys = {"left": "observation.images.exterior_1_left", "right": "observation.images.exterior_2_left",
            "wrist": "observation.images.wrist_left"}
    tasks = sorted({e[4] for e in eps})
    rows: dict[str, list] = {c: [] for c in ("episode_index", "tasks", "length", "dataset_from_index", "dataset_to_index",
                                              "session_id", "policy_name", "partial_success", "binary_success")}
    t0 = 0.0
    start = 0
    for i, (sess, pol, ps, ok, task, n) in enumerate(eps):
        for c, v in (("episode_index", i), ("tasks", [task]), ("length", n), ("dataset_from_index", start),
                     ("dataset_to_index", start + n), ("session_id", sess), ("policy_name", pol),
                     ("partial_success", ps), ("binary_success", ok)):
            rows[c].append(v)
        for key in keys.values():
            for c, v in (("chunk_index", 0), ("file_index", 0), ("from_timestamp", t0), ("to_timestamp", t0 + n / FPS)):
                rows.setdefault(f"videos/{key}/{c}", []).append(v)
        start += n
        t0 += n / FPS
    for v, key in enumerate(keys):
        arr = np.concatenate([frames(e[5], 5 * i + v, good=e[2] >= 0.5) for i, e in enumerate(eps)])
        write_mp4(root / f"videos/{keys[key]}/chunk-000/file-000.mp4", arr)
    (root / "meta/episodes/chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), root / "meta/episodes/chunk-000/file-000.parquet")
    pq.write_table(pa.table({"task_index": list(range(len(tasks))), "task": tasks}), root / "meta/tasks.parquet")
    feats = {key: {"dtype": "video", "shape": [SIZE[0], SIZE[1], 3], "names": ["height", "width", "channels"]}
             for key in keys.values()}
    feats["observation.state"] = {"dtype": "float32", "shape": [8], "names": None}
    info = {"codebase_version": "v3.0", "fps": FPS, "features": feats, "total_episodes": len(eps),
            "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"}
    (root / "meta/info.json").write_text(json.dumps(info))
    prefs = {"episode_a": [0, 1, 3, 5], "episode_b": [1, 2, 4, 6], "preference": ["a", "a", "tie", "5"],
             "feedback": ["dp only half inserted the spoon", "octo never grasped", "both toppled the tower", None]}
    pq.write_table(pa.table(prefs), root / "meta/human_preferences.parquet")
    return root


def lerobot_mapping(path: Path, **changes) -> Path:
    """The shipped ``roboarena_lerobot`` mapping with ``changes`` applied, written to ``path``."""
    from importlib import resources

    d = yaml.safe_load(resources.files("simfail.dataset.real").joinpath("mappings/roboarena_lerobot.yaml").read_text())
    d.update(changes)
    path.write_text(yaml.safe_dump(d))
    return path
