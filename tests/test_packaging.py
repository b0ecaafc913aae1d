"""The wheel carries the top-level scenes/, perturbations/, configs/ and assets/ as simfail
subpackages. The build runs on a copy of the source tree so nothing (build/, *.egg-info) is
written into the repository."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "simfail", "configs", "scenes", "perturbations", "assets", "benchmarks")
REQUIRED = (
    "simfail/configs/generate.yaml",
    "simfail/configs/task/pick_place.yaml",
    "simfail/configs/failures/all.yaml",
    "simfail/configs/render/default.yaml",
    "simfail/configs/dataset/default.yaml",
    "simfail/scenes/robots/panda.xml",
    "simfail/scenes/pick_place.py",
    "simfail/perturbations/pick_place.py",
    "simfail/configs/benchmark/v1.yaml",
    "simfail/benchmarks/v1-128.sha256",
    "simfail/benchmarks/tiny.sha256",
    "simfail/perturbations/base.py",
    "simfail/cli.py",
    "simfail/core/task.py",
    "simfail/viewer/assets/components.js",
    "simfail/viewer/assets/simfail.css",
)
OFFLINE_HINTS = ("No matching distribution", "Could not find a version", "Failed to establish", "network",
                 "Temporary failure in name resolution", "ProxyError")


def _can_build_without_isolation() -> bool:
    """The local setuptools meets the declared build requirement and can make wheels."""
    try:
        import setuptools
    except ImportError:
        return False
    major = int(setuptools.__version__.split(".")[0])
    if major < 69:
        return False
    try:
        import setuptools.command.bdist_wheel  # noqa: F401  (setuptools >= 70.1)

        return True
    except ImportError:
        try:
            import wheel  # noqa: F401

            return True
        except ImportError:
            return False


def _pip_wheel(src: Path, dest: Path, isolated: bool) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dest), "."]
    if not isolated:
        cmd.insert(4, "--no-build-isolation")
    return subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=540)


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        p = ROOT / name
        if p.is_dir():
            shutil.copytree(p, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif p.is_file():
            shutil.copy2(p, src / name)
    dest = tmp_path_factory.mktemp("wheel")
    if _can_build_without_isolation():
        proc = _pip_wheel(src, dest, isolated=False)
    else:
        proc = _pip_wheel(src, dest, isolated=True)
        if proc.returncode and any(h in proc.stdout + proc.stderr for h in OFFLINE_HINTS):
            pytest.skip("the local setuptools cannot build wheels and the build requirements cannot be downloaded")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    wheels = list(dest.glob("simfail-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.slow
def test_wheel_contains_scenes_perturbations_and_configs(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = [n for n in REQUIRED if n not in names]
    assert not missing, f"missing from {wheel.name}: {missing}"
    # every source module of the package is in the wheel
    for pkg_dir, prefix in (("simfail", "simfail"), ("scenes", "simfail/scenes"),
                            ("perturbations", "simfail/perturbations"), ("configs", "simfail/configs")):
        for p in (ROOT / pkg_dir).rglob("*"):
            if p.is_file() and p.suffix in (".py", ".yaml", ".xml") and "__pycache__" not in p.parts:
                rel = f"{prefix}/{p.relative_to(ROOT / pkg_dir).as_posix()}"
                assert rel in names, f"{rel} missing from the wheel"
    assert not any(n.startswith(("scenes/", "perturbations/", "configs/", "tests/")) for n in names)


@pytest.mark.slow
def test_wheel_declares_the_console_script(wheel):
    z = zipfile.ZipFile(wheel)
    ep = next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
    text = z.read(ep).decode()
    assert "[console_scripts]" in text and "simfail = simfail.cli:main" in text


def test_every_simfail_package_is_declared_for_the_wheel():
    """A package missing from ``[tool.setuptools] packages`` works in an editable install and
    breaks ``pip install .`` (README command 1): every folder of ``simfail/`` with an
    ``__init__.py`` must be listed (fast; the wheel itself is built by the slow tests)."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    declared = set(tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(root).parts) for p in (root / "simfail").rglob("__init__.py")}
    assert found - declared == set(), f"not in pyproject.toml packages: {sorted(found - declared)}"
