"""Generic counterfactual operators: task-independent edits of any source episode.

Each :class:`GenericOperator` turns a :class:`~simfail.counterfactual.source.SourceEpisode`, a
*magnitude* ``m`` in [0, 1] and its parameters into an :class:`~simfail.counterfactual.edit.Edit`
(:meth:`GenericOperator.make_edit`). The magnitude sets every parameter the caller leaves out
(``failure_range`` magnitudes should produce the failure, ``near_miss_range`` ones mostly not);
explicit parameters win. The physics decides what happened and the detectors label it.

Units and frames: times are seconds and become whole steps at the source's frame rate
(``round(t * fps)``); positions are world frame metres (z up, robot base at the origin);
forces newtons, impulses newton-seconds; commands are seven arm joint targets [rad] and the
gripper close command in [0, 1]. TCP-space edits (``action_offset``, ``jitter``) take the
forward kinematics of the source's joint targets, displace the TCP position (orientation
kept) and solve the arm's IK (:class:`~simfail.core.robot.PandaIK`) warm-started from the
previous step's solution.

Onsets (``onset=``): a phase name of the source (``carry``: its first frame), ``carry@0.4``
(fraction 0.4 of the way through the phase), ``carry#2@0.5`` (the second run of the phase),
``rotate..lower@0.3`` (a span from the first frame of one phase to the last of another), a
number in [0, 1] (a fraction of the episode), an int frame index (``frame:42``), or ``random``
(drawn per variant from the variant's generator). Left out, each operator picks its own from
the magnitude (documented per operator). The onset frame ``k`` is the last frame the variant
shares with its source.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from simfail.counterfactual.edit import CommandEdit, Edit, ForceEdit
from simfail.counterfactual.source import SourceEpisode
from simfail.errors import ConfigError, UnknownNameError
from simfail.registry import NamedRegistry

#: The registry of generic operators (``simfail list`` shows them).
OPERATORS = NamedRegistry("generic operator", ("simfail.counterfactual.operators",))
#: ``intended`` of operators whose failure is whatever the physics makes of it: any event.
ANY_EVENT: tuple[str, ...] = ()


# ------------------------------------------------------------------------------ parameters


@dataclass(frozen=True)
class Param:
    """One parameter of an operator: name, type, range or choices, and a help line (units)."""

    name: str
    kind: type
    help: str
    lo: float | None = None
    hi: float | None = None
    choices: tuple[str, ...] | None = None
    #: also accept a string (an object name, ``random``) for a numeric parameter
    or_str: bool = False

    def check(self, op: str, value: Any) -> Any:
        where = f"{op}: parameter {self.name}"
        if value is None:
            return None
        if self.or_str and isinstance(value, str) or self.kind is object:
            return value  # onsets are checked against the source by resolve_onset
        if self.kind is float:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{where} must be a number, got {value!r}")
            value = float(value)
            if not math.isfinite(value):
                raise ConfigError(f"{where} must be finite, got {value}")
        elif self.kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{where} must be a whole number, got {value!r}")
        elif self.kind is str:
            if not isinstance(value, str):
                raise ConfigError(f"{where} must be a string, got {value!r}")
            if self.choices is not None and value not in self.choices:
                raise UnknownNameError(f"{op} {self.name}", value, self.choices)
            return value
        elif self.kind is list:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{where} must be a list of names, got {value!r}")
            return list(value)
        if self.lo is not None and value < self.lo or self.hi is not None and value > self.hi:
            lo = "-inf" if self.lo is None else self.lo
            hi = "inf" if self.hi is None else self.hi
            raise ConfigError(f"{where} must be in [{lo}, {hi}], got {value}")
        return value


ONSET = Param("onset", object, "when the operator starts: phase, phase@frac, phase#n@frac, a..b@frac, a fraction "
              "of the episode in [0, 1], frame:N or random", or_str=True)


@dataclass
class Context:
    """What an operator's builder gets: the source, magnitude, generator and checked params
    (``None`` for those left out)."""

    op: str
    source: SourceEpisode
    m: float
    rng: np.random.Generator
    p: dict[str, Any]

    def onset(self, default: Callable[[], int | str | float]) -> int:
        spec = self.p.get("onset")
        return resolve_onset(self.source, default() if spec is None else spec, self.rng, self.op)

    def steps(self, seconds: float) -> int:
        return max(1, int(round(seconds * self.source.fps)))

    @property
    def last_step(self) -> int:
        return self.source.n_frames - 2


# ------------------------------------------------------------------------------ onsets

_ONSET = re.compile(r"^(?P<a>[A-Za-z_][\w]*)(?:#(?P<run>-?\d+))?(?:\.\.(?P<b>[A-Za-z_][\w]*))?(?:@(?P<frac>[0-9.]+))?$")


def resolve_onset(source: SourceEpisode, spec: Any, rng: np.random.Generator, op: str = "operator") -> int:
    """The onset frame ``k`` of ``spec`` on ``source`` (see the module docstring); raises
    :class:`ConfigError` for an unknown phase or an onset past the episode's last step."""
    last = source.n_frames - 2
    where = f"{op}: onset {spec!r}"
    if isinstance(spec, bool):
        raise ConfigError(f"{where} must be a phase, a fraction in [0, 1], frame:N or random")
    if isinstance(spec, int):
        k = spec
    elif isinstance(spec, float):
        if not 0.0 <= spec <= 1.0:
            raise ConfigError(f"{where}: a fraction of the episode must be in [0, 1]")
        k = int(math.floor(spec * (source.n_frames - 1) + 1e-9))
    elif isinstance(spec, str):
        s = spec.strip()
        if s == "random":
            return int(rng.integers(1, last + 1))
        if s.startswith("frame:"):
            try:
                k = int(s[6:])
            except ValueError:
                raise ConfigError(f"{where}: frame:N needs a whole number") from None
        else:
            try:
                return resolve_onset(source, float(s), rng, op)
            except ValueError:
                pass
            mt = _ONSET.match(s)
            if not mt:
                raise ConfigError(f"{where}: use phase, phase@frac, phase#n@frac, a..b@frac, a fraction, "
                                  "frame:N or random")
            a, b = _phase_span(source, mt.group("a"), mt.group("run"), mt.group("b"), where, op)
            frac = float(mt.group("frac")) if mt.group("frac") else 0.0
            if not 0.0 <= frac <= 1.0:
                raise ConfigError(f"{where}: the fraction within the phase must be in [0, 1]")
            k = a + int(round(frac * (b - a)))
    else:
        raise ConfigError(f"{where} must be a phase, a fraction in [0, 1], frame:N or random")
    if not 0 <= k <= last:
        raise ConfigError(f"{where}: frame {k} lies past the episode's last step (frames 0..{last} of a "
                          f"{source.n_frames}-frame source can start a variant)")
    return k


def _phase_span(source: SourceEpisode, a: str, run: str | None, b: str | None, where: str,
                op: str) -> tuple[int, int]:
    known = sorted(source.phases)
    for name in (a, b):
        if name is not None and name not in source.phases:
            raise UnknownNameError(f"{op} phase", name, known)
    if run is not None:
        runs = source.phase_runs(a)
        i = int(run)
        if not (1 <= i <= len(runs) or -len(runs) <= i <= -1):
            raise ConfigError(f"{where}: phase {a!r} has {len(runs)} run(s)")
        first, last = runs[i - 1 if i > 0 else i]
    else:
        first, last = source.phases[a]
    if b is not None:
        last = source.phases[b][1]
    return first, max(first, last)


def closed_gripper_span(source: SourceEpisode) -> tuple[int, int] | None:
    """First and last step of the longest stretch where the source commands the gripper
    closed (command > 0.5; failing that, any command > 0: a partly closed push grip): where a
    release can drop what it holds. ``None`` when the gripper is never commanded shut at all."""
    closed = source.actions[:, 7] > 0.5
    if not closed.any():
        closed = source.actions[:, 7] > 0.0
    best, start = None, None
    for f, c in enumerate([*closed, False]):
        if c and start is None:
            start = f
        elif not c and start is not None:
            if best is None or f - start > best[1] - best[0]:
                best = (start, f)
            start = None
    return best


def carry_onset(source: SourceEpisode, frac: float, op: str) -> str | int:
    """``carry#1@frac`` (the first carry) where the source has a carry phase, else the same
    fraction of its longest closed-gripper stretch."""
    if "carry" in source.phases:
        return f"carry#1@{frac:.4f}"
    span = closed_gripper_span(source)
    if span is None:
        raise ConfigError(f"{op}: the source never closes the gripper and has no carry phase; give onset=")
    return span[0] + int(round(frac * (span[1] - span[0])))


# ------------------------------------------------------------------------------ objects


def object_names(source: SourceEpisode) -> list[str]:
    """Tracked objects of the source's scene (its simulation entities)."""
    return list(source.trace.object_names)


def resolve_object(source: SourceEpisode, name: str, op: str) -> str:
    """A tracked object's body name from its name or its layout role; :class:`UnknownNameError`
    listing the known ones otherwise."""
    known = object_names(source)
    if name in known:
        return name
    body = source.layout.roles.get(name)
    if body in known:
        return body
    roles = [r for r, b in source.layout.roles.items() if b in known and r not in known]
    raise UnknownNameError(f"{op} object", name, known + roles)


def manipulated_object(source: SourceEpisode, core_free: Callable[[str], bool] | None = None) -> str:
    """The free object the source's fingers touch most (both pads): what it manipulates; the
    first tracked object when it grasps none."""
    names = object_names(source)
    touch = np.array(source.trace.finger_touch)  # (T, n_objects, 2)
    counts = touch.all(axis=2).sum(axis=0) if touch.size else np.zeros(len(names))
    order = np.argsort(-counts, kind="stable")
    free = set(source.layout.free_objects)
    for i in order:
        if names[i] in free and counts[i] > 0:
            return names[i]
    return next((n for n in names if n in free), names[0])


# ------------------------------------------------------------------------------ TCP edits

_IK = threading.local()


def _ik():
    """A robot-only IK solver of this thread (posture target: the home pose, as the expert's)."""
    ik = getattr(_IK, "ik", None)
    if ik is None:
        from simfail.core.builder import make_ik

        ik = _IK.ik = make_ik()
    return ik


def _fk(ik, arm_q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    q = ik.configuration.q.copy()
    q[ik._arm] = arm_q
    ik.configuration.update(q)
    return ik.tcp_pose()


def source_tcp(source: SourceEpisode, steps: range) -> np.ndarray:
    """(len(steps), 3): TCP position [m] of the source's joint targets of each step (FK)."""
    ik = _ik()
    return np.array([_fk(ik, source.actions[min(f, len(source.actions) - 1), :7])[0] for f in steps])


def displaced_commands(source: SourceEpisode, k: int, deltas: np.ndarray) -> np.ndarray:
    """Commands of steps ``k, k + 1, ...``: the source's, with the TCP of step ``k + i``
    displaced by ``deltas[i]`` [m] (world frame) through FK -> displacement -> IK, warm-started
    from the previous step; a zero displacement keeps the source's command exactly."""
    ik = _ik()
    out = np.empty((len(deltas), 8))
    warm = None
    for i, d in enumerate(deltas):
        a = source.actions[min(k + i, len(source.actions) - 1)].copy()
        if not np.any(d):
            out[i], warm = a, None
            continue
        pos, quat = _fk(ik, a[:7])
        q = ik.configuration.q.copy()
        if warm is not None:
            q[ik._arm] = warm
            ik.configuration.update(q)
        warm = ik.solve(pos + d, quat)
        out[i] = np.concatenate([warm, a[7:]])
    return out


def window_envelope(n: int, ramp: float = 0.4) -> np.ndarray:
    """(n,) weights in [0, 1]: a minimum-jerk rise over the first ``ramp`` of the window, a
    plateau, and a fall over the last ``ramp`` (0 at both ends: the edit joins the source)."""
    u = (np.arange(n) + 1) / (n + 1)
    up = np.clip(u / ramp, 0, 1)
    down = np.clip((1 - u) / ramp, 0, 1)
    w = np.minimum(up, down)
    return w * w * w * (10 - 15 * w + 6 * w * w)


# ------------------------------------------------------------------------------ operators


@dataclass(frozen=True)
class GenericOperator:
    """A task-independent counterfactual operator.

    Attributes:
        name: Registry name (``failures=[gripper_release]``).
        description: One line for ``simfail list``.
        intended: Event types that confirm the intended effect (empty: any failure event).
        params: Its parameters (``onset`` first).
        build: ``build(ctx) -> Edit`` (see :class:`Context`).
        failure_range: Magnitudes that should produce the failure.
        near_miss_range: Magnitudes that should (mostly) not, or only mildly.
    """

    name: str
    description: str
    intended: tuple[str, ...]
    params: tuple[Param, ...]
    build: Callable[[Context], Edit]
    failure_range: tuple[float, float] = (0.7, 1.0)
    near_miss_range: tuple[float, float] = (0.0, 0.2)

    def realized(self, events) -> bool:
        """Whether ``events`` (failure events of a variant) show the intended effect."""
        return any(not self.intended or e.type in self.intended for e in events)

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        known = {p.name: p for p in self.params}
        out = {}
        for key, value in params.items():
            if key not in known:
                raise UnknownNameError(f"{self.name} parameter", key, list(known))
            out[key] = known[key].check(self.name, value)
        return out

    def make_edit(self, source: SourceEpisode, magnitude: float, rng: np.random.Generator | None = None,
                  ik: Any = None, **params: Any) -> Edit:
        """The edit of this operator at ``magnitude`` on ``source``; raises :class:`ConfigError`
        (one line) for a bad magnitude, an unknown or ill-typed parameter, an unknown object
        or phase, or an onset past the episode's end. The edit's ``params`` hold the operator,
        the magnitude, every resolved parameter, the onset frame and time and the end step. ``ik`` is ignored (the TCP-space operators
        use this thread's own solver, so a group's expert IK is never disturbed)."""
        if isinstance(magnitude, bool) or not isinstance(magnitude, (int, float)) or not 0.0 <= magnitude <= 1.0:
            raise ConfigError(f"{self.name}: magnitude must be a number in [0, 1], got {magnitude!r}")
        p = self.check_params(params)
        ctx = Context(self.name, source, float(magnitude), rng if rng is not None else np.random.default_rng(0), p)
        edit = self.build(ctx)
        edit.end = int(min(edit.end, ctx.last_step))
        resolved = {k: v for k, v in ctx.p.items() if v is not None}
        edit.params = {"operator": self.name, "magnitude": round(float(magnitude), 4),
                       "parameters": _jsonable(resolved), "onset_frame": int(edit.onset),
                       "onset_time_s": round(edit.onset / source.fps, 4), "end_step": int(edit.end),
                       **_jsonable(edit.params)}
        return edit

    def summary(self) -> str:
        return " ".join(p.name for p in self.params)


def _jsonable(d: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in d.items():
        if isinstance(v, np.ndarray):
            v = [round(float(x), 6) for x in v]
        elif isinstance(v, (np.floating, float)):
            v = round(float(v), 6)
        elif isinstance(v, np.integer):
            v = int(v)
        out[k] = v
    return out


def register(op: GenericOperator) -> GenericOperator:
    OPERATORS.register(op.name)(op)
    return op


def get_operator(name: str) -> GenericOperator:
    return OPERATORS.get(name)


def operator_names() -> list[str]:
    return OPERATORS.names()


# ---- gripper_release


def _gripper_release(c: Context) -> Edit:
    """Open the gripper to ``level`` (0 = fully open) from the onset on; the arm keeps the
    source's path. Default onset: ``carry#1@(0.9 - 0.8 m)`` (larger m: earlier in the first carry),
    else the same fraction of the longest closed-gripper stretch. ``duration`` [s] (default
    0.5) is the operator's window: a closed-loop policy takes over after it."""
    level = c.p["level"] = 0.0 if c.p.get("level") is None else c.p["level"]
    k = c.onset(lambda: carry_onset(c.source, 0.9 - 0.8 * c.m, c.op))
    dur = c.p["duration"] = 0.5 if c.p.get("duration") is None else c.p["duration"]
    cmds = c.source.actions[k:].copy()
    cmds[:, 7] = np.minimum(cmds[:, 7], level)
    return CommandEdit(k, k + c.steps(dur) - 1, {}, commands=cmds)


register(GenericOperator(
    "gripper_release", "open the gripper (to level) at the onset; the arm goes on as the source did",
    ("drop", "tool_drop", "cup_drop"),
    (ONSET, Param("level", float, "gripper command after the release, 0 (open) .. 1", 0.0, 1.0),
     Param("duration", float, "operator window [s] before a closed-loop policy takes over", 0.1, 10.0)),
    _gripper_release, failure_range=(0.3, 1.0), near_miss_range=(0.0, 0.03)))


# ---- action_offset


def _action_offset(c: Context) -> Edit:
    """Displace the TCP during a window of ``duration`` s (default 1.6) from the onset (default:
    the carry's start, else 40 % of the episode), rising and falling smoothly. ``toward`` an
    object: at the window's peak the TCP has moved ``reach`` (default m) of the way to the
    object's centre (its position at the onset); ``toward=random``: ``distance`` (default
    0.12 m x m) in a horizontal direction drawn from the variant's generator."""
    src = c.source
    toward = c.p["toward"] = c.p.get("toward") or "random"
    k = c.onset(lambda: "carry" if "carry" in src.phases else 0.4)
    dur = c.p["duration"] = 1.6 if c.p.get("duration") is None else c.p["duration"]
    n = min(c.steps(dur), c.last_step - k + 1)
    env = window_envelope(n)
    steps = range(k, k + n)
    if toward == "random":
        dist = c.p["distance"] = 0.12 * c.m if c.p.get("distance") is None else c.p["distance"]
        ang = float(c.rng.uniform(0.0, 2.0 * np.pi))
        c.p["direction_deg"] = round(math.degrees(ang), 3)
        deltas = env[:, None] * dist * np.array([math.cos(ang), math.sin(ang), 0.0])[None, :]
    else:
        name = c.p["toward"] = resolve_object(src, toward, c.op)
        reach = c.p["reach"] = c.m if c.p.get("reach") is None else c.p["reach"]
        goal = src.trace.pos(name)[k]
        deltas = env[:, None] * reach * (goal[None, :] - source_tcp(src, steps))
    cmds = np.concatenate([displaced_commands(src, k, deltas), src.actions[k + n:]])
    return CommandEdit(k, k + n - 1, {}, commands=cmds)


register(GenericOperator(
    "action_offset", "displace the TCP toward an object (or a random way) for a window, then rejoin the source",
    ("collision", "topple", "shove", "object_knocked", "tower_knocked"),
    (ONSET, Param("toward", str, "an object name or role, or random"),
     Param("reach", float, "fraction of the way to the object at the window's peak", 0.0, 1.5),
     Param("distance", float, "peak displacement [m] for toward=random", 0.0, 0.5),
     Param("duration", float, "window [s]", 0.1, 10.0)),
    _action_offset, failure_range=(0.75, 1.0), near_miss_range=(0.1, 0.3)))


# ---- freeze


def _freeze(c: Context) -> Edit:
    """Hold the command in force at the onset (the arm stops at its target) for ``duration`` s
    (default 0.3 + 2.7 s x m), then resume the source's commands where the source is by then
    (the missed ones are skipped: the arm jumps to catch up). Default onset: 30 % of the episode."""
    src = c.source
    k = c.onset(lambda: 0.3)
    dur = c.p["duration"] = 0.3 + 2.7 * c.m if c.p.get("duration") is None else c.p["duration"]
    d = min(c.steps(dur), c.last_step - k + 1)
    held = np.repeat(src.command_before(k)[None, :], d, axis=0)
    return CommandEdit(k, k + d - 1, {}, commands=np.concatenate([held, src.actions[k + d:]]))


register(GenericOperator(
    "freeze", "the arm stops for a while, then jumps back onto the source's schedule", ANY_EVENT,
    (ONSET, Param("duration", float, "pause [s]", 0.1, 30.0)), _freeze,
    failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.1)))


# ---- speedup


def warped_commands(source: SourceEpisode, k: int, factor: float) -> np.ndarray:
    """Commands of steps ``k..`` when the source's remaining commands run ``factor`` times as
    fast: step ``k + i`` takes the source's command at (fractional) step ``k + (i + 1) factor - 1``,
    interpolated linearly (the gripper too) and held at the source's last command."""
    a = source.actions
    last = len(a) - 1
    out = []
    for i in range(last - k + 1):
        tau = min(k + (i + 1) * factor - 1.0, float(last))
        lo = int(math.floor(tau))
        w = tau - lo
        hi = min(lo + 1, last)
        out.append(a[lo] if w == 0.0 else (1.0 - w) * a[lo] + w * a[hi])
    return np.array(out)


def _speedup(c: Context) -> Edit:
    """Run the rest of the source ``factor`` times as fast (default 1 + 3 x m), holding its
    last command once it is used up. Default onset: 20 % of the episode."""
    k = c.onset(lambda: 0.2)
    factor = c.p["factor"] = 1.0 + 3.0 * c.m if c.p.get("factor") is None else c.p["factor"]
    cmds = warped_commands(c.source, k, factor)
    # the operator acts until the warped schedule has used up the source's commands
    used = int(math.ceil((len(c.source.actions) - k) / factor))
    return CommandEdit(k, k + max(used, 1) - 1, {}, commands=cmds)


register(GenericOperator(
    "speedup", "time-warp the rest of the source: the same motion, factor times as fast", ANY_EVENT,
    (ONSET, Param("factor", float, "speed-up factor (1 = the source's own pace)", 0.25, 10.0)), _speedup,
    failure_range=(0.7, 1.0), near_miss_range=(0.0, 0.1)))


# ---- jitter


def _jitter(c: Context) -> Edit:
    """Add a smooth lateral TCP oscillation: per axis ``sigma`` RMS [m] (default 0.012 m
    x m; z at 0.3 of it) at ``frequency`` Hz (default 3; the y and z axes at 1.3 and 0.7 times
    it, phases drawn from the generator). It fades in and out over 0.3 s at the edges of every
    stretch it acts on: from the onset (default 2 % of the episode) for ``duration`` s (default:
    to the end), restricted to the frames of ``phases`` when given (e.g. the moves in free
    space, [approach, carry, retreat], so that grasps and placements stay precise)."""
    src = c.source
    k = c.onset(lambda: 0.02)
    sigma = c.p["sigma"] = 0.012 * c.m if c.p.get("sigma") is None else c.p["sigma"]
    freq = c.p["frequency"] = 3.0 if c.p.get("frequency") is None else c.p["frequency"]
    n = c.last_step - k + 1 if c.p.get("duration") is None else min(c.steps(c.p["duration"]), c.last_step - k + 1)
    mask = np.ones(n, bool)
    if c.p.get("phases"):
        for ph in c.p["phases"]:
            if ph not in src.phases:
                raise UnknownNameError(f"{c.op} phase", ph, sorted(src.phases))
        labels = src.trace.phase
        mask = np.array([labels[min(f + 1, src.n_frames - 1)] in c.p["phases"] for f in range(k, k + n)])
    fade = max(1, c.steps(0.3))
    env = _run_envelope(mask, fade)
    t = (np.arange(n) + 1) / src.fps
    ph = c.rng.uniform(0.0, 2.0 * np.pi, 3)
    wave = np.sqrt(2.0) * np.stack([np.sin(2 * np.pi * freq * t + ph[0]),
                                    np.sin(2 * np.pi * 1.3 * freq * t + ph[1]),
                                    0.3 * np.sin(2 * np.pi * 0.7 * freq * t + ph[2])], axis=1)
    deltas = sigma * env[:, None] * wave
    last_active = k + int(np.flatnonzero(env)[-1]) if env.any() else k
    cmds = np.concatenate([displaced_commands(src, k, deltas), src.actions[k + n:]])
    return CommandEdit(k, last_active, {}, commands=cmds)


def _run_envelope(mask: np.ndarray, fade: int) -> np.ndarray:
    """1 inside each run of ``mask``, fading linearly (smoothstep) to 0 over ``fade`` steps at
    both ends of every run; 0 outside."""
    env = np.zeros(len(mask))
    f = 0
    while f < len(mask):
        if not mask[f]:
            f += 1
            continue
        g = f
        while g < len(mask) and mask[g]:
            g += 1
        i = np.arange(g - f)
        w = np.minimum(np.minimum((i + 1) / fade, (g - f - i) / fade), 1.0)
        env[f:g] = w * w * (3 - 2 * w)
        f = g
    return env


register(GenericOperator(
    "jitter", "shaky execution: a smooth lateral TCP oscillation on top of the source's path", ("shaky_motion",),
    (ONSET, Param("sigma", float, "RMS displacement per axis [m]", 0.0, 0.1),
     Param("frequency", float, "oscillation frequency [Hz]", 0.1, 10.0),
     Param("duration", float, "window [s] (default: to the end)", 0.1, 60.0),
     Param("phases", list, "only during these phases of the source")),
    _jitter, failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.2)))


# ---- delay


def _delay(c: Context) -> Edit:
    """Actuation latency: from the onset (default 20 % of the episode) every command arrives
    ``steps`` steps late (default 1 + round(29 m): up to 3 s at 10 fps); until the first delayed command arrives, the
    command in force at the onset is held. With ``duration`` [s] the latency ends after that
    window and the source's own schedule resumes."""
    src = c.source
    k = c.onset(lambda: 0.2)
    d = c.p["steps"] = 1 + int(round(29 * c.m)) if c.p.get("steps") is None else c.p["steps"]
    n = c.last_step - k + 1 if c.p.get("duration") is None else min(c.steps(c.p["duration"]), c.last_step - k + 1)
    held = src.command_before(k)
    cmds = np.array([src.actions[f - d] if f - d >= k else held for f in range(k, k + n)])
    return CommandEdit(k, k + n - 1, {}, commands=np.concatenate([cmds, src.actions[k + n:]]))


register(GenericOperator(
    "delay", "actuation latency: every command arrives steps steps late", ANY_EVENT,
    (ONSET, Param("steps", int, "latency [steps of 1/fps s]", 1, 100),
     Param("duration", float, "window [s] (default: to the end)", 0.1, 60.0)), _delay,
    failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.1)))


# ---- truncate


def _truncate(c: Context) -> Edit:
    """The arm stops being commanded at the onset (default ``(0.85 - 0.7 m)`` of the episode):
    physically the joint position servos and the gripper keep the last command they received,
    so the arm settles at that target and holds it (what a robot whose controller stops
    streaming targets does); nothing after the onset is executed."""
    k = c.onset(lambda: 0.85 - 0.7 * c.m)
    held = c.source.command_before(k)
    return CommandEdit(k, c.last_step, {}, commands=held[None, :])


register(GenericOperator(
    "truncate", "the arm stops being commanded: servos hold the last target to the end", ANY_EVENT,
    (ONSET,), _truncate, failure_range=(0.3, 1.0), near_miss_range=(0.0, 0.05)))


# ---- push


def _push(c: Context) -> Edit:
    """An external force on an object's body (not the robot): a bumped table, a slipping item.
    ``impulse`` [N s] (default the object's mass x (1 + 3 m) m/s) is spread evenly over
    ``duration`` s (default 0.1), horizontal, toward ``direction`` degrees (world frame, 0 =
    +x; default drawn from the generator), applied at the body's centre of mass through
    ``data.xfrc_applied`` and cleared after the window. The robot replays the source. Default
    object: the one the source's fingers hold most; default onset: 10 % of the episode."""
    src = c.source
    name = c.p["object"] = resolve_object(src, c.p["object"], c.op) if c.p.get("object") is not None else manipulated_object(src)
    model = src.scene.model
    body = model.body(name).id
    if name not in src.layout.free_objects:
        raise ConfigError(f"{c.op}: {name!r} is fixed to the world; push a free object: {src.layout.free_objects}")
    mass = float(model.body_subtreemass[body])
    k = c.onset(lambda: 0.1)
    imp = c.p["impulse"] = mass * (1.0 + 3.0 * c.m) if c.p.get("impulse") is None else c.p["impulse"]
    dur = c.p["duration"] = 0.1 if c.p.get("duration") is None else c.p["duration"]
    deg = c.p.get("direction")
    if deg is None:
        deg = c.p["direction"] = round(float(c.rng.uniform(0.0, 360.0)), 3)
    n = min(c.steps(dur), c.last_step - k + 1)
    seconds = n / src.fps
    ang = math.radians(deg)
    force = (imp / seconds) * np.array([math.cos(ang), math.sin(ang), 0.0])
    return ForceEdit(k, min(k + n, c.last_step), {"force_n": force, "object_mass_kg": mass}, commands=src.actions[k:],
                     body_id=body, force=force, force_first=k, force_last=k + n - 1)


register(GenericOperator(
    "push", "the world pushes an object (an external force on its body, not the robot)", ANY_EVENT,
    (ONSET, Param("object", str, "object name or role (default: the one the source holds)"),
     Param("impulse", float, "impulse [N s]", 0.0, 50.0),
     Param("duration", float, "time the force acts [s]", 0.01, 2.0),
     Param("direction", float, "horizontal direction [deg], world frame, 0 = +x", -360.0, 360.0)),
    _push, failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.1)))


# ------------------------------------------------------------------------------ task bindings


@dataclass(frozen=True)
class BoundOperator:
    """A task's failure operator implemented by a generic one, parameterised by the task's
    geometry: ``bind(layout, m)`` gives the generic operator's parameters (onset phase,
    object ...) for magnitude ``m``. Registered in a task's perturbations under the task's
    name (``drop``, ``shaky``, ``collision``) with the task's intended events and ranges."""

    name: str
    operator: str
    intended: tuple[str, ...]
    description: str
    bind: Callable[[Any, float], dict[str, Any]]
    failure_range: tuple[float, float] = (0.7, 1.0)
    near_miss_range: tuple[float, float] = (0.05, 0.3)

    def realized(self, events) -> bool:
        return any(e.type in self.intended for e in events)

    def make_edit(self, source: SourceEpisode, magnitude: float, rng: np.random.Generator | None = None,
                  ik: Any = None) -> Edit:
        op = get_operator(self.operator)
        return op.make_edit(source, magnitude, rng, **self.bind(source.layout, float(magnitude)))


def shaky_sigma(amplitude: float) -> float:
    """The ``jitter`` sigma [m] with the energy of the keyframe programs' old ``shaky``
    oscillation of ``amplitude`` [m]: a sine under a sin(pi u) envelope per segment has an RMS
    of half its amplitude."""
    return 0.5 * float(amplitude)


def bound(name: str, operator: str, intended: tuple[str, ...], description: str,
          bind: Callable[[Any, float], dict[str, Any]], **ranges: Any) -> BoundOperator:
    return BoundOperator(name, operator, intended, description, bind, **ranges)
