"""Content hashes of a built benchmark: a ``sha256sum``-compatible manifest and its check.

The manifest lists ``<sha256>  <path>`` for every file under the benchmark folder (data,
videos, meta, ``benchmark.json``), paths relative to the folder with ``/`` separators, sorted;
``sha256sum -c`` run inside the folder accepts it too. :func:`verify` compares a folder with a
manifest and returns one line per tampered, missing or extra file.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from simfail.errors import ConfigError

_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def tree_files(root: Path) -> list[str]:
    """Every regular file under ``root`` (hidden ones included: a stray temporary file is an
    extra file), relative, sorted."""
    root = Path(root)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() or p.is_symlink())


def tree_hashes(root: Path) -> dict[str, str]:
    root = Path(root)
    return {rel: file_sha256(root / rel) for rel in tree_files(root)}


#: Header line of a manifest naming the software and CPU the hashes were published with.
ENV_PREFIX = "# built with: "


#: CPU features that change the bytes of a build: Mesa llvmpipe compiles its rasterizer for
#: the host's vector units (``/proc/cpuinfo`` flags; a virtual machine names its CPU only
#: "AMD EPYC", so the model name alone does not tell two hosts apart)
CPU_FEATURES = ("sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512dq", "avx512cd", "avx512bw",
                "avx512vl", "avx512ifma", "avx512vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bf16",
                "avx512_bitalg", "avx512_vpopcntdq", "avx_vnni")


def _cpuinfo() -> dict[str, str]:
    """The first processor's ``/proc/cpuinfo`` entries (``{}`` where there is none)."""
    info: dict[str, str] = {}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return info
    for line in text.splitlines():
        if not line.strip():
            if info:
                break
            continue
        key, _, value = line.partition(":")
        info.setdefault(key.strip(), value.strip())
    return info


def build_environment() -> dict[str, str]:
    """What the bytes of a build depend on besides the recipe: the Python, MuJoCo, NumPy,
    PyArrow and PyAV (FFmpeg) versions, the machine architecture, the CPU model and its
    family/model numbers and vector features (:data:`CPU_FEATURES`; the software OpenGL
    renderer compiles its code for them, so two virtual "AMD EPYC" hosts can draw different
    bytes)."""
    import platform

    import av
    import mujoco
    import numpy
    import pyarrow

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    return {"python": platform.python_version(), "mujoco": mujoco.__version__, "numpy": numpy.__version__,
            "pyarrow": pyarrow.__version__, "av": av.__version__, "machine": platform.machine(),
            "cpu": info.get("model name") or platform.processor() or platform.machine(),
            "cpu_family_model": f"{info.get('cpu family', '?')}/{info.get('model', '?')}",
            "cpu_features": ",".join(f for f in CPU_FEATURES if f in flags) or "none"}


def format_manifest(hashes: dict[str, str], environment: dict[str, str] | None = None) -> str:
    """The manifest text; ``environment`` (:func:`build_environment`) becomes its header line."""
    head = ENV_PREFIX + "; ".join(f"{k}={v}" for k, v in environment.items()) + "\n" if environment else ""
    return head + "".join(f"{h}  {rel}\n" for rel, h in sorted(hashes.items()))


def manifest_environment(text: str) -> dict[str, str]:
    """The environment named in a manifest's header line (``{}`` when it has none)."""
    for line in text.splitlines():
        if line.startswith(ENV_PREFIX):
            return dict(kv.partition("=")[::2] for kv in line[len(ENV_PREFIX):].split("; ") if "=" in kv)
    return {}


def environment_differences(published: dict[str, str]) -> list[str]:
    """``key: published -> here`` for every entry of this machine's :func:`build_environment`
    that ``published`` does not match; an entry the manifest does not record counts as a
    difference (``not recorded``): nothing then vouches that the bytes can match here."""
    here = build_environment()
    return [f"{k}: {published.get(k, 'not recorded')} -> {v}" for k, v in here.items() if published.get(k) != v]


def parse_manifest(text: str, source: str = "manifest") -> dict[str, str]:
    out: dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        digest, sep, rel = line.partition("  ")
        if not sep or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest) or not rel:
            raise ConfigError(f"{source} line {n} is not '<sha256>  <path>': {line[:80]!r}")
        out[rel] = digest
    return out


def verify(root: Path, expected: dict[str, str]) -> list[str]:
    """Lines naming every file of ``root`` that differs from ``expected``: ``tampered: PATH``
    (content differs), ``missing: PATH``, ``extra: PATH`` (not in the manifest)."""
    root = Path(root)
    present = set(tree_files(root))
    problems = []
    for rel in sorted(set(expected) | present):
        if rel not in present:
            problems.append(f"missing: {rel}")
        elif rel not in expected:
            problems.append(f"extra: {rel} (not in the published hashes)")
        elif file_sha256(root / rel) != expected[rel]:
            problems.append(f"tampered: {rel} (sha256 differs from the published hash)")
    return problems
