"""``simfail check --benchmark ID DIR``: verify a copy of a built benchmark against the
published hashes ``benchmarks/<ID>.sha256`` (one line per tampered, missing or extra file)."""

from __future__ import annotations

import json
from pathlib import Path

from simfail.errors import ConfigError, UnknownNameError

__all__ = ["split_args", "check_benchmark"]


def split_args(args: list[str]) -> tuple[list[str], dict[str, str]]:
    """Take ``--benchmark ID`` (or ``--benchmark=ID``) out of ``simfail check``'s arguments."""
    rest, updates = [], {}
    it = iter(range(len(args)))
    for i in it:
        a = args[i]
        if a == "--benchmark":
            if i + 1 >= len(args) or "=" in args[i + 1] or args[i + 1].startswith("-"):
                raise ConfigError("--benchmark needs a benchmark id, e.g. simfail check --benchmark v1-128 DIR")
            updates["benchmark"] = args[i + 1]
            next(it)
        elif a.startswith("--benchmark="):
            updates["benchmark"] = a.partition("=")[2]
        else:
            rest.append(a)
    return rest, updates


def check_benchmark(bench_id: str, root: str | Path, *, out=print) -> int:
    """Print one line per file of ``root`` that differs from ``benchmarks/<bench_id>.sha256``
    and a summary line; 0 when the copy matches bit for bit, 1 otherwise."""
    from simfail.benchmark.hashes import environment_differences, manifest_environment, parse_manifest, verify
    from simfail.benchmark.spec import hash_file_path, published_ids

    known = published_ids()
    if bench_id not in known:
        raise UnknownNameError("published benchmark", bench_id, known)
    root = Path(root)
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    meta = root / "benchmark.json"
    if meta.is_file():
        try:
            held = json.loads(meta.read_text()).get("id")
        except (ValueError, UnicodeDecodeError):
            held = None
        if held and held != bench_id:
            print(f"note: {meta} names benchmark {held!r}, checked against {bench_id!r}")
    path = hash_file_path(bench_id)
    text = path.read_text()
    differs = environment_differences(manifest_environment(text))
    if differs:
        out(f"note: {path.name} was published with other software or another CPU ({'; '.join(differs)}); "
            "a build made here may differ in bytes from it")
    problems = verify(root, parse_manifest(text, str(path)))
    for p in problems:
        out(f"problem: {p}")
    n = len(parse_manifest(text))
    out(f"ok: {n} files match {path.name}" if not problems else f"{len(problems)} problem(s) against {path.name}")
    return 0 if not problems else 1
