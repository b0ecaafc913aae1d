"""Franka Panda meshes: located in an installed package, decimated once, cached on disk.

The full Panda visual meshes (~134k triangles) render at ~12 frames/s on a 2-core CPU with
Mesa llvmpipe; decimated ~15-20x they render several times faster with no visible loss at
256x256. Decimation (trimesh quadric decimation backed by ``fast-simplification``) runs once
per (source file, target) and the result is cached under ``$SIMFAIL_CACHE`` (default
``~/.cache/simfail/meshes``), keyed by the source file's content hash, so later runs only read
small binary STL files. Nothing is downloaded: the source meshes ship inside the
``gymnasium-robotics`` wheel.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from simfail.errors import SimfailError

#: Package that ships the source meshes, and the folder inside it.
MESH_PACKAGE = "gymnasium_robotics"
MESH_SUBDIR = ("envs", "assets", "kitchen_franka", "franka_assets", "meshes")

#: Visual meshes used by the robot model, with the triangle budget each is decimated to.
VISUAL_FACE_BUDGET: dict[str, int] = {
    "link0": 900,
    "link1": 700,
    "link2": 700,
    "link3": 800,
    "link4": 800,
    "link5": 900,
    "link6": 900,
    "link7": 600,
    "hand": 600,
    "finger": 200,
}

#: Collision meshes (already coarse: a few hundred triangles each) used as they are.
COLLISION_MESHES: tuple[str, ...] = (
    "link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand",
)

CACHE_VERSION = "1"


class MeshSourceError(SimfailError):
    """The package that ships the robot meshes is missing or incomplete."""


@dataclass(frozen=True)
class MeshSet:
    """Bytes of every robot mesh, keyed by the file name the MJCF refers to."""

    files: dict[str, bytes]


def source_mesh_dir() -> Path:
    """Folder of the Panda meshes inside the installed ``gymnasium-robotics`` package.

    Found with ``importlib`` without importing the package (its import prints warnings and
    pulls extra modules).
    """
    spec = importlib.util.find_spec(MESH_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise MeshSourceError(
            f"the robot meshes come from the '{MESH_PACKAGE}' package, which is not installed; "
            "run `pip install gymnasium-robotics`"
        )
    root = Path(next(iter(spec.submodule_search_locations)))
    mesh_dir = root.joinpath(*MESH_SUBDIR)
    if not (mesh_dir / "visual" / "link0.stl").is_file():
        raise MeshSourceError(f"Franka meshes not found under {mesh_dir}")
    return mesh_dir


def cache_dir() -> Path:
    base = os.environ.get("SIMFAIL_CACHE") or os.path.join(Path.home(), ".cache", "simfail")
    return Path(base) / "meshes"


def _decimated_stl(src: Path, faces: int) -> bytes:
    import trimesh

    mesh = trimesh.load(src, force="mesh")
    if len(mesh.faces) > faces:
        mesh = mesh.simplify_quadric_decimation(face_count=faces)
    return mesh.export(file_type="stl")


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def load_panda_meshes(scale: float = 1.0) -> MeshSet:
    """Return decimated visual meshes and coarse collision meshes of the Panda.

    Args:
        scale: Multiplies every face budget (e.g. 2.0 for sharper renders at high resolution).

    Keys are ``"vis_<name>.stl"`` and ``"col_<name>.stl"`` (MuJoCo keys in-memory assets by base name).
    """
    src = source_mesh_dir()
    files: dict[str, bytes] = {}
    for name, budget in VISUAL_FACE_BUDGET.items():
        path = src / "visual" / f"{name}.stl"
        if name == "finger":  # the package's visual finger is the collision finger
            path = src / "collision" / "finger.stl"
        raw = path.read_bytes()
        target = max(50, int(budget * scale))
        key = hashlib.sha256(raw + f"|{target}|{CACHE_VERSION}".encode()).hexdigest()[:16]
        cached = cache_dir() / f"{name}-{key}.stl"
        if cached.is_file():
            data = cached.read_bytes()
        else:
            data = _decimated_stl(path, target)
            try:
                _atomic_write(cached, data)
            except OSError:
                pass  # an unwritable cache only costs time, never correctness
        files[f"vis_{name}.stl"] = data
    for name in COLLISION_MESHES:
        files[f"col_{name}.stl"] = (src / "collision" / f"{name}.stl").read_bytes()
    return MeshSet(files=files)
