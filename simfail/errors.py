"""Typed exceptions. Every error a user can cause derives from :class:`SimfailError`, so the
command line can print one clear message (no traceback) and exit non-zero."""

from __future__ import annotations


class SimfailError(Exception):
    """Base class of every error simfail raises on purpose."""


class ConfigError(SimfailError, ValueError):
    """A configuration value is unknown or out of range."""


def _plural(kind: str) -> str:
    """``policy`` -> ``policies``, ``task`` -> ``tasks`` (the last word of ``kind``)."""
    if kind.endswith("y") and not kind.endswith(("ay", "ey", "oy", "uy")):
        return kind[:-1] + "ies"
    return kind + ("es" if kind.endswith(("s", "x", "ch", "sh")) else "s")


class UnknownNameError(ConfigError, KeyError):
    """A task, failure, view or model name is not registered."""

    def __init__(self, kind: str, name: str, known: list[str] | tuple[str, ...]):
        import difflib

        self.kind, self.name, self.known = kind, name, sorted(known)
        near = difflib.get_close_matches(str(name), [str(k) for k in self.known], n=1, cutoff=0.6)
        self.suggestion = near[0] if near else None
        hint = f" (did you mean {self.suggestion!r}?)" if self.suggestion else ""
        super().__init__(f"unknown {kind} {name!r}{hint}; known {_plural(kind)}: {', '.join(self.known)}")

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return self.args[0]


class OutputDirError(SimfailError):
    """The output directory is not empty (without resume/overwrite) or cannot be written."""


class DatasetFormatError(SimfailError):
    """A dataset on disk does not follow the simfail / LeRobot v3.0 layout."""


class RenderBackendError(SimfailError):
    """No OpenGL backend could create a rendering context."""


class ExpertFailedError(SimfailError):
    """The scripted expert did not succeed on a seed (the seed is skipped, never written)."""


class SimulationUnstableError(SimfailError):
    """The physics diverged (MuJoCo's bad-acceleration warning fired and it reset the state).

    A rollout that diverged has no trustworthy labels: the generator rejects the seed when the
    expert diverges and leaves a diverged variant out of its group (recorded in the meta)."""


class RewardModelError(SimfailError):
    """A reward model returned an output of the wrong shape, NaN, or out of range values."""


def read_json(path, error: type[SimfailError] = ConfigError, what: str = ""):
    """The JSON value held in ``path``. A file that cannot be read or parsed raises ``error``
    with one line, ``cannot read <what>PATH: REASON`` (``what`` ends with a space when given)."""
    import json
    from pathlib import Path

    p = Path(path)
    try:
        return json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot read {what}{p}: {exc}") from exc
