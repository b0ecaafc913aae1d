"""Which GPU a worker's EGL renderer uses (``render.backend=egl``, ``render.gpu=auto|N``).

MuJoCo picks its EGL device from ``MUJOCO_EGL_DEVICE_ID`` once, when the process creates its
first EGL display (``mujoco.egl`` is imported with the first GL context), so the variable must
be in the worker's environment before any rendering: the executors set it before the work
item starts, in a fresh process for Ray tasks (``max_calls=1``).

* ``render.gpu=N``: every worker renders on visible device ``N``.
* ``render.gpu=auto``: with Ray reserving GPUs (``ray.gpus_per_worker > 0``, the way to use
  it on a cluster) Ray sets each task's ``CUDA_VISIBLE_DEVICES`` to its own GPU and the worker
  uses device 0 of what it sees (MuJoCo orders EGL devices by ``CUDA_VISIBLE_DEVICES`` when
  the driver exposes the mapping). Without that, work item ``i`` gets device ``i mod G``, G
  being the GPUs the driver's machine sees: a round robin over items, not running workers.
  With no GPU visible (a CPU machine, or a driver on a machine without one) nothing is set
  and EGL renders through its default device (Mesa llvmpipe on a CPU machine).
"""

from __future__ import annotations

import glob
import os

from simfail.errors import ConfigError

__all__ = ["EGL_DEVICE_VAR", "apply_egl_device", "egl_device_env", "parse_gpu", "visible_gpu_count",
           "worker_egl_device"]

EGL_DEVICE_VAR = "MUJOCO_EGL_DEVICE_ID"
#: ``render.backend`` values drawn through EGL (the warp backend still segments through EGL).
GL_BACKENDS = ("egl",)


def _bad_gpu(value: object) -> ConfigError:
    import difflib

    hint = " (did you mean 'auto'?)" if difflib.get_close_matches(str(value).strip().lower(), ["auto"], n=1) else \
        " (e.g. render.gpu=0 or render.gpu=auto)"
    return ConfigError(f"render.gpu must be auto or a GPU index >= 0, got {value!r}{hint}")


def parse_gpu(value: str | int) -> int | None:
    """``"auto"`` -> ``None``, a device index -> that index (``ConfigError`` otherwise)."""
    if isinstance(value, bool):
        raise _bad_gpu(value)
    if str(value).strip().lower() == "auto":
        return None
    try:
        idx = int(str(value).strip())
    except ValueError:
        raise _bad_gpu(value) from None
    if idx < 0:
        raise _bad_gpu(value)
    return idx


def visible_gpu_count() -> int:
    """GPUs this process may use: ``CUDA_VISIBLE_DEVICES`` if set, else NVIDIA device files."""
    cvd = os.environ.get("CUDA_VISIBLE_DEVICES")
    if cvd is not None:
        ids = [x for x in cvd.split(",") if x.strip() and x.strip() != "NoDevFiles" and not x.strip().startswith("-")]
        return len(ids)
    return len(glob.glob("/dev/nvidia[0-9]*"))


def egl_device_env(backend: str, gpu: str | int, worker: int, *, visible: int | None = None,
                   reserved: bool = False) -> dict[str, str]:
    """Environment variables worker number ``worker`` needs to render on its GPU.

    Args:
        backend, gpu: ``render.backend`` and ``render.gpu``.
        worker: The worker's (or work item's) number, for the round robin.
        visible: GPUs visible to the worker (default: counted here).
        reserved: Ray reserved GPUs for the worker (it sees only its own).
    """
    if backend != "egl":
        return {}
    idx = parse_gpu(gpu)
    if idx is not None:
        return {EGL_DEVICE_VAR: str(idx)}
    if reserved:
        return {EGL_DEVICE_VAR: "0"}
    n = visible_gpu_count() if visible is None else int(visible)
    if n <= 0:
        return {}
    return {EGL_DEVICE_VAR: str(int(worker) % n)}


def apply_egl_device(backend: str, gpu: str | int) -> None:
    """Choose this process's EGL device for ``render.backend``/``render.gpu`` (as worker 0),
    before its first GL context: ``render.gpu=N`` sets it, ``auto`` only where the user has
    not exported one (a device the user chose wins)."""
    for key, value in egl_device_env(backend, gpu, 0).items():
        if parse_gpu(gpu) is None:
            os.environ.setdefault(key, value)
        else:
            os.environ[key] = value


def worker_egl_device(item, report) -> str | None:
    """A work item that returns the worker's ``MUJOCO_EGL_DEVICE_ID`` (checks a cluster's
    GPU assignment: ``executor.map(worker_egl_device, range(n), env=...)``)."""
    return os.environ.get(EGL_DEVICE_VAR)
