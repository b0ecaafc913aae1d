"""Executors: where a command's independent work items (shards) run.

An executor maps a picklable function over work items and yields each item's result as it
completes. Two are registered:

* ``local`` (the default): every item runs in this process, one after the other.
* ``ray``: every item is a Ray task (``ray.remote`` with ``num_cpus`` / ``num_gpus`` per worker
  and ``max_retries``), submitted with at most ``ray.workers`` in flight and collected with
  ``ray.wait``. Ray, not simfail, schedules, places and retries: a task whose worker process
  dies (``kill -9``, a lost node) is re-executed by Ray up to ``max_retries`` times; an
  exception raised by the work itself is not retried (``retry_exceptions=False``) and reaches
  the caller as that exception.

A work function has the signature ``fn(item, report) -> result``. ``report(**counts)`` adds to
the run's counters (e.g. ``report(groups=1, episodes=7)`` after a group is committed); the
driver shows them in ONE progress bar for the whole cluster (for Ray through a small counter
actor that every task reports to). Work functions must make their item idempotent: a retried
item starts again from the beginning, so it must skip what it already committed (the
generate shards do: they resume their shard directory).

How a command plugs in (``generate`` does this in :mod:`simfail.scale.sharded`)::

    executor = make_executor(cfg.executor, cfg.ray)
    with executor:
        for item, result in executor.map(work_fn, items, on_progress=bar_update):
            ...
"""

from __future__ import annotations

import difflib
import os
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

from simfail.envvars import environ
from simfail.errors import ConfigError, SimfailError, UnknownNameError

__all__ = ["Executor", "LocalExecutor", "RayConfig", "RayExecutor", "EXECUTORS", "make_executor", "worker_identity"]

Report = Callable[..., None]


class ExecutorError(SimfailError):
    """The executor could not start or lost work beyond its retries."""


@dataclass
class RayConfig:
    """``ray.*`` settings of ``executor=ray`` (ranges in ``metadata["range"]`` are checked by
    :func:`simfail.schema.check_ranges`; :meth:`validate` checks the address form)."""

    address: str = field(default="local", metadata={
        "help": "local: start a Ray instance on this machine; auto: join the running cluster "
                "(ray start); HOST:PORT or ray://HOST:PORT: that cluster",
        "example": "ray.address=auto"})
    workers: Optional[int] = field(default=None, metadata={
        "help": "tasks in flight at once (null: as many as the cluster's CPUs allow at cpus_per_worker each)",
        "example": "ray.workers=8", "range": (1, None)})
    cpus_per_worker: float = field(default=1.0, metadata={
        "help": "CPUs Ray reserves per task, > 0 (llvmpipe renders with every core it sees)",
        "example": "ray.cpus_per_worker=2"})
    gpus_per_worker: float = field(default=0.0, metadata={
        "help": "GPUs Ray reserves per task (fractions share a GPU)", "example": "ray.gpus_per_worker=0.25",
        "range": (0.0, None)})
    groups_per_task: int = field(default=0, metadata={
        "help": "groups per Ray task (0: about 4 tasks per worker); a killed worker loses at most its "
                "current group", "example": "ray.groups_per_task=10", "range": (0, None)})
    max_retries: int = field(default=3, metadata={
        "help": "times Ray re-runs a task whose worker died", "example": "ray.max_retries=5", "range": (0, None)})

    def validate(self) -> None:
        from simfail.schema import check_ranges

        check_ranges(self, "ray.")
        if not self.cpus_per_worker > 0:
            raise ConfigError(f"ray.cpus_per_worker must be > 0, got {self.cpus_per_worker} (e.g. ray.cpus_per_worker=2)")
        a = self.address
        if not a:
            raise ConfigError("ray.address must be local, auto, HOST:PORT or ray://HOST:PORT, got '' "
                              "(e.g. ray.address=auto)")
        if a not in ("local", "auto") and not a.startswith("ray://"):
            host, sep, port = a.rpartition(":")
            if not sep or not host or not port.isdigit():
                near = difflib.get_close_matches(a, ["local", "auto"], n=1, cutoff=0.6)
                hint = f" (did you mean {near[0]!r}?)" if near else " (e.g. ray.address=auto)"
                raise ConfigError(f"ray.address must be local, auto, HOST:PORT or ray://HOST:PORT, got {a!r}{hint}")


def worker_identity() -> str:
    """``host:pid`` of the process running a work item (the key of per-worker rates)."""
    import socket

    return f"{socket.gethostname()}:{os.getpid()}"


class Executor(ABC):
    """Runs ``fn(item, report)`` for every item; see the module docstring."""

    name: str = ""

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many items run at once."""

    @abstractmethod
    def map(self, fn: Callable[[Any, Report], Any], items: Sequence[Any], *,
            on_progress: Callable[[dict[str, int]], None] | None = None,
            env: Callable[[int], dict[str, str]] | None = None) -> Iterator[tuple[int, Any]]:
        """Yield ``(item position, result)`` as items complete (any order). ``on_progress``
        gets counter increments; ``env(position)`` gives environment variables the item's
        process must have before it starts (e.g. ``MUJOCO_EGL_DEVICE_ID``)."""

    def close(self) -> None:
        """Release what the executor started."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class LocalExecutor(Executor):
    """Every item in this process, in order (today's behaviour of every command)."""

    name = "local"

    def __init__(self, cfg: RayConfig | None = None):
        pass

    @property
    def workers(self) -> int:
        return 1

    def map(self, fn, items, *, on_progress=None, env=None):
        report = (lambda **c: on_progress(dict(c))) if on_progress else (lambda **c: None)
        for i, item in enumerate(items):
            with environ(dict(env(i)) if env else {}):
                yield i, fn(item, report)


class _RayReport:
    """Picklable ``report(**counts)`` that adds to the driver's counter actor."""

    def __init__(self, actor):
        self.actor = actor

    def __call__(self, **counts: int) -> None:
        self.actor.add.remote(counts)


def _counter_actor_class():
    import ray

    @ray.remote(num_cpus=0)
    class ProgressCounter:
        """Counters every task adds to; the driver drains the increments for its bar."""

        def __init__(self):
            self.pending: Counter = Counter()

        def add(self, counts: dict[str, int]) -> None:
            self.pending.update(counts)

        def drain(self) -> dict[str, int]:
            out, self.pending = dict(self.pending), Counter()
            return out

    return ProgressCounter


def run_work_item(fn, item, report, env: dict[str, str]):
    """Set ``env`` in the task's process (a fresh one: see ``max_calls``) before ``fn`` runs."""
    os.environ.update(env)
    return fn(item, report)


class RayExecutor(Executor):
    """Items as Ray tasks on a local Ray instance or a running cluster (see :class:`RayConfig`)."""

    name = "ray"

    def __init__(self, cfg: RayConfig):
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("executor=ray needs Ray: pip install 'simfail[ray]'") from exc
        cfg.validate()
        self.cfg = cfg
        self._ray = ray
        self._started = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": True,
                                      "configure_logging": False}
            try:
                if cfg.address == "local":
                    if cfg.workers:
                        kwargs["num_cpus"] = max(1, int(round(cfg.workers * cfg.cpus_per_worker)))
                    ray.init(**kwargs)
                else:
                    ray.init(address=cfg.address, **kwargs)
            except Exception as exc:  # ConnectionError, RuntimeError, ValueError from Ray
                raise ExecutorError(f"cannot start or reach Ray at ray.address={cfg.address}: {exc}") from exc
            self._started = True

    @property
    def workers(self) -> int:
        if self.cfg.workers:
            return self.cfg.workers
        cpus = float(self._ray.cluster_resources().get("CPU", 1.0))
        return max(1, int(cpus // self.cfg.cpus_per_worker))

    def map(self, fn, items, *, on_progress=None, env=None):
        ray = self._ray
        counter = _counter_actor_class().remote()
        report = _RayReport(counter)
        opts: dict[str, Any] = {"num_cpus": self.cfg.cpus_per_worker, "max_retries": self.cfg.max_retries,
                                "retry_exceptions": False}
        if self.cfg.gpus_per_worker:
            opts["num_gpus"] = self.cfg.gpus_per_worker
        remote = ray.remote(run_work_item)
        # a task that selects its GL device gets a fresh worker process (max_calls=1): MuJoCo
        # reads MUJOCO_EGL_DEVICE_ID once, when the process makes its first EGL display
        remote_fresh = ray.remote(max_calls=1)(run_work_item)
        window = self.workers
        pending: dict[Any, int] = {}
        todo = list(enumerate(items))
        next_i = 0

        def drain() -> None:
            if on_progress is not None:
                inc = ray.get(counter.drain.remote())
                if inc:
                    on_progress(inc)

        try:
            while next_i < len(todo) or pending:
                while next_i < len(todo) and len(pending) < window:
                    i, item = todo[next_i]
                    task_env = dict(env(i)) if env else {}
                    ref = (remote_fresh if task_env else remote).options(**opts).remote(fn, item, report, task_env)
                    pending[ref] = i
                    next_i += 1
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.5)
                drain()
                for ref in ready:
                    i = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError as exc:
                        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
                        raise cause from None
                    except ray.exceptions.WorkerCrashedError as exc:
                        raise ExecutorError(f"work item {i} lost its worker more than ray.max_retries="
                                            f"{self.cfg.max_retries} times: {exc}") from exc
                    except ray.exceptions.RayError as exc:  # node lost, out of memory, cancelled ...
                        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                        raise ExecutorError(f"work item {i} failed in Ray: {first}") from exc
                    drain()
                    yield i, result
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)
            ray.kill(counter)

    def close(self) -> None:
        if self._started and self._ray.is_initialized():
            self._ray.shutdown()
            self._started = False


#: ``executor=<name>`` -> executor class.
EXECUTORS: dict[str, type[Executor]] = {"local": LocalExecutor, "ray": RayExecutor}


def make_executor(name: str, cfg: RayConfig | None = None) -> Executor:
    """The executor registered as ``name``, started."""
    if name not in EXECUTORS:
        raise UnknownNameError("executor", name, list(EXECUTORS))
    return EXECUTORS[name](cfg or RayConfig())

