"""Clean alternatives of the expert and the matched-duration rule: task-independent program
transforms over :class:`~simfail.core.program.Program`.

A **clean alternative** is another way of doing the task well: the same expert program with a
nuisance change only (slower, faster, a pause, a detour on the approach, a re-grasp that
succeeds). Each is registered in :data:`ALTERNATIVES` as a
:class:`~simfail.perturbations.base.Perturbation` (``fn(task, layout, expert, m, rng) ->
Applied``, ``m`` in [0, 1] sets how large the nuisance is) and written with ``kind:
"clean_alternative"`` in the episode's ``simfail.perturbation`` -- but only when the physics
agrees: an alternative that ends with any failure event or without success is written with
``kind: "alternative_not_clean"`` (see :func:`alternative_kind`). A clean success scores 100,
the expert's score, so an alternative never differs from its expert in score; its dense reward
differs (its progress rises on another schedule).

The **matched-duration rule** (:func:`match_duration`) retimes a failure variant's own
segments after its onset so that its last *active* segment (every phase but the final
``hold`` padding) ends no later than the expert's: a failure cannot be ranked below a clean
episode merely because it takes longer.

Every transform branches the expert at a *segment boundary* (where the minimum-jerk law is
at rest), so the variant equals the expert up to its onset and starts its own moves from rest.
Times are seconds from the episode start; positions world frame [m].
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from simfail.core.program import Program, Segment
from simfail.perturbations.base import Applied, Perturbation

if TYPE_CHECKING:
    from simfail.core.task import Layout, Task

#: Phase name of the padding at the end of a program (not an active move).
HOLD = "hold"
#: Shortest final hold [s] a transformed program keeps.
MIN_HOLD = 0.1
#: A failure is never sped up more than this (time scale >= MAX_SPEEDUP): beyond it the
#: variant is left as it is and written with ``duration_matched: false``.
MAX_SPEEDUP = 0.4
#: ``simfail.perturbation`` kind of an alternative the physics confirmed clean / did not.
CLEAN = "clean_alternative"
NOT_CLEAN = "alternative_not_clean"


class NotApplicable(Exception):
    """This alternative has nothing to act on in this expert program (e.g. no grasp to redo)."""


def _copy(s: Segment, **changes: Any) -> Segment:
    seg = Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip,
                  None if s.quat is None else np.array(s.quat, float), s.jitter)
    return replace(seg, **changes) if changes else seg


def _active_count(segs: list[Segment]) -> int:
    """Segments before the trailing hold padding."""
    n = len(segs)
    while n and segs[n - 1].phase == HOLD:
        n -= 1
    return n


def active_end(program: Program) -> float:
    """Time [s] at which the program's last active (non-``hold``) move ends.

    A branched program without own segments (a gripper override) follows its base's path."""
    if program.base is not None and not program.segments:
        return active_end(program.base)
    own = program.segments
    t0 = program.t_branch if program.base is not None else 0.0
    return t0 + float(sum(s.duration for s in own[:_active_count(own)]))


def _fit(segs: list[Segment], t_on: float, duration: float) -> tuple[list[Segment], float]:
    """The segments from ``t_on`` with a final hold padding the program to ``duration``;
    the active ones are compressed (all by one factor) if they would not leave ``MIN_HOLD``.
    Returns (segments, compression factor, 1.0 when none was needed)."""
    n = _active_count(segs)
    active = [_copy(s) for s in segs[:n]]
    last = active[-1]
    room = duration - t_on - MIN_HOLD
    used = float(sum(s.duration for s in active))
    scale = 1.0
    if used > room:
        scale = room / used
        for s in active:
            s.duration *= scale
        used = room
    hold = Segment(HOLD, np.array(last.pos, float), last.yaw, duration - t_on - used, last.grip, last.quat)
    return active + [hold], scale


def _boundaries(expert: Program) -> list[int]:
    """Indices ``i`` of the active segments (the expert may branch at ``start_of(i)``)."""
    return list(range(_active_count(expert.segments)))


# ----------------------------------------------------------------------------- alternatives


def _retimed(task: Task, expert: Program, i: int, factor: float) -> tuple[Program, float, dict[str, float]]:
    t_on = expert.start_of(i)
    segs = [_copy(s, duration=s.duration * factor) if s.phase != HOLD else _copy(s) for s in expert.segments[i:]]
    segs, squeeze = _fit(segs, t_on, task.duration)
    return expert.branch(t_on, segs), t_on, {"time_scale": round(factor * squeeze, 4), "from_phase": expert.segments[i].phase}


def slower(task: Task, layout: Layout, expert: Program, m: float, rng: np.random.Generator) -> Applied:
    """From a random early segment boundary on, every move takes ``1.15 + 0.45 m`` times as
    long (capped by the time left before the episode ends: the applied scale is recorded)."""
    i = int(rng.integers(0, max(1, _active_count(expert.segments) // 2)))
    program, t_on, params = _retimed(task, expert, i, 1.15 + 0.45 * m)
    return Applied(program, t_on, params)


def faster(task: Task, layout: Layout, expert: Program, m: float, rng: np.random.Generator) -> Applied:
    """From a random early segment boundary on, every move takes ``0.9 - 0.2 m`` times as long."""
    i = int(rng.integers(0, max(1, _active_count(expert.segments) // 2)))
    program, t_on, params = _retimed(task, expert, i, 0.9 - 0.2 * m)
    return Applied(program, t_on, params)


def pause(task: Task, layout: Layout, expert: Program, m: float, rng: np.random.Generator) -> Applied:
    """Stop for ``0.4 + 0.8 m`` s at a random boundary between two active moves (the gripper
    keeps its command); the later moves are compressed only if the episode runs out."""
    n = _active_count(expert.segments)
    if n < 2:
        raise NotApplicable("pause: the expert has fewer than two moves")
    i = int(rng.integers(1, n))
    t_on = expert.start_of(i)
    prev = expert.segments[i - 1]
    wait = 0.4 + 0.8 * m
    stop = _copy(prev, phase="pause", duration=wait, jitter=None)
    segs, squeeze = _fit([stop] + [_copy(s) for s in expert.segments[i:]], t_on, task.duration)
    return Applied(expert.branch(t_on, segs), t_on,
                   {"pause_s": round(segs[0].duration, 4), "after_phase": prev.phase, "compressed": round(squeeze, 4)})


def detour(task: Task, layout: Layout, expert: Program, m: float, rng: np.random.Generator) -> Applied:
    """Reach the first keyframe through a via point: ``0.04 + 0.06 m`` m to a random side of
    the straight path and ``0.03 + 0.04 m`` m above its midpoint (the approach takes 1.3x)."""
    first = expert.segments[0]
    start = np.asarray(expert.start_pos, float)
    goal = np.asarray(first.pos, float)
    d = goal[:2] - start[:2]
    side = np.array([-d[1], d[0]]) / (np.linalg.norm(d) + 1e-9) * (1.0 if rng.random() < 0.5 else -1.0)
    lateral, up = 0.04 + 0.06 * m, 0.03 + 0.04 * m
    via = 0.5 * (start + goal) + np.array([*(side * lateral), up])
    half = 0.65 * first.duration
    segs = [_copy(first, pos=via, duration=half, phase="detour"), _copy(first, duration=half)]
    segs, squeeze = _fit(segs + [_copy(s) for s in expert.segments[1:]], 0.0, task.duration)
    return Applied(expert.branch(0.0, segs), 0.0,
                   {"lateral_m": round(lateral, 4), "raise_m": round(up, 4), "compressed": round(squeeze, 4)})


def regrasp(task: Task, layout: Layout, expert: Program, m: float, rng: np.random.Generator) -> Applied:
    """After the grasp closes: open, lift ``0.015 + 0.02 m`` m, descend again and close again
    (1.1 s plus the grasp's own time); later moves are compressed only if the episode runs out."""
    k = next((j for j, s in enumerate(expert.segments) if s.phase == "grasp" and s.grip > 0.5
              and j > 0 and expert.segments[j - 1].grip < 0.5), None)
    if k is None:
        raise NotApplicable("regrasp: the expert never closes the gripper from open")
    g = expert.segments[k]
    t_on = expert.start_of(k + 1)
    lift = 0.015 + 0.02 * m
    up = np.array(g.pos, float) + np.array([0.0, 0.0, lift])
    redo = [_copy(g, phase="regrasp_open", duration=0.3, grip=0.0),
            _copy(g, phase="regrasp_lift", pos=up, duration=0.4, grip=0.0),
            _copy(g, phase="regrasp_descend", duration=0.4, grip=0.0),
            _copy(g)]
    segs, squeeze = _fit(redo + [_copy(s) for s in expert.segments[k + 1:]], t_on, task.duration)
    return Applied(expert.branch(t_on, segs), t_on, {"lift_m": round(lift, 4), "compressed": round(squeeze, 4)})


#: Clean alternatives by name (the ``failures.alternatives`` names of ``simfail generate``).
ALTERNATIVES: dict[str, Perturbation] = {
    p.name: p for p in (
        Perturbation("slower", (), "the expert's moves from an early boundary on, 1.15-1.6x slower", slower,
                     (0.0, 1.0), (0.0, 1.0)),
        Perturbation("faster", (), "the expert's moves from an early boundary on, 0.7-0.9x the time", faster,
                     (0.0, 1.0), (0.0, 1.0)),
        Perturbation("pause", (), "a 0.4-1.2 s stop between two moves", pause, (0.0, 1.0), (0.0, 1.0)),
        Perturbation("detour", (), "another approach path: a via point 4-10 cm aside, 3-7 cm up", detour,
                     (0.0, 1.0), (0.0, 1.0)),
        Perturbation("regrasp", (), "open, lift 1.5-3.5 cm, redescend and close again after the grasp", regrasp,
                     (0.0, 1.0), (0.0, 1.0)),
    )
}


def alternative_kind(success: bool, n_events: int) -> str:
    """``clean_alternative`` when the physics says success without any failure event, else
    ``alternative_not_clean`` (the episode keeps its physics labels either way)."""
    return CLEAN if success and n_events == 0 else NOT_CLEAN


# ----------------------------------------------------------------------------- matched duration


def match_duration(applied: Applied, expert: Program, duration: float) -> tuple[Applied, dict[str, Any]]:
    """Retime a variant so its last active move ends no later than the expert's.

    The variant's own segments (after its onset) are scaled by one factor ``(T_e - t_on) /
    (T_v - t_on)`` (``T``: :func:`active_end`), then padded with a hold to ``duration``. A
    variant that already ends in time is unchanged. Returns the (possibly new) applied
    perturbation and the fields for ``simfail.perturbation``: ``duration_matched`` (the rule
    holds), ``time_scale`` (1.0: unchanged), ``active_end_s`` and ``expert_active_end_s``.
    ``duration_matched`` is false (and the variant unchanged) when matching would need a scale
    below :data:`MAX_SPEEDUP` or the onset lies after the expert's last move.
    """
    prog = applied.program
    t_e, t_v = active_end(expert), active_end(prog)
    info = {"expert_active_end_s": round(t_e, 4)}
    if t_v <= t_e + 1e-9:
        return applied, {**info, "duration_matched": True, "time_scale": 1.0, "active_end_s": round(t_v, 4)}
    t_on = prog.t_branch
    scale = (t_e - t_on) / (t_v - t_on) if t_e > t_on else 0.0
    if prog.base is None or not prog.segments or scale < MAX_SPEEDUP:
        return applied, {**info, "duration_matched": False, "time_scale": 1.0, "active_end_s": round(t_v, 4)}
    n = _active_count(prog.segments)
    segs = [_copy(s, duration=s.duration * scale) for s in prog.segments[:n]]
    segs, _ = _fit(segs, t_on, duration)
    new = prog.base.branch(t_on, segs, grip=prog.grip_override)
    matched = Applied(new, applied.onset_time, applied.params)
    return matched, {**info, "duration_matched": active_end(new) <= t_e + 1e-6, "time_scale": round(scale, 4),
                     "active_end_s": round(active_end(new), 4)}


def retime_edit(edit: Any, expert: Program, duration: float) -> dict[str, Any]:
    """Apply the matched-duration rule to a variant's edit before it runs.

    A keyframe-program edit (:class:`~simfail.counterfactual.edit.ProgramEdit`) is retimed in
    place by :func:`match_duration` and its fields are returned. Any other edit (a generic
    operator acting on the source's commands) keeps the expert's timeline or not by its
    nature; nothing is changed and ``{}`` is returned: :func:`command_timing` then measures,
    from the commands actually issued, whether it ends in time.
    """
    program = getattr(edit, "program", None)
    if program is None:
        return {}
    applied, fields = match_duration(Applied(program, program.t_branch, {}), expert, duration)
    edit.program = applied.program
    return fields


def command_end(actions: Any, fps: int, tol: float = 1e-6) -> float:
    """Time [s] of the last frame whose command still differs from the episode's final
    command by more than ``tol`` (the end of the last active move, from commands alone)."""
    a = np.asarray(actions, float)
    moving = np.flatnonzero(np.abs(a - a[-1]).max(axis=1) > tol)
    return float(moving[-1] + 1) / fps if moving.size else 0.0


def command_timing(trace: Any, expert_trace: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The matched-duration fields of a variant that was not retimed as a program: its active
    end measured from its commands against the expert's (``duration_matched`` holds when it
    ends no later, within one frame). Fields from :func:`retime_edit` are returned as they are."""
    if fields:
        return fields
    fps = trace.fps
    t_v, t_e = command_end(trace.action, fps), command_end(expert_trace.action, fps)
    return {"duration_matched": t_v <= t_e + 1.0 / fps, "time_scale": 1.0, "active_end_s": round(t_v, 4),
            "expert_active_end_s": round(t_e, 4)}
