"""Push/Pull failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program at an onset time with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to its
onset. Positions are world frame [m], yaws [rad] about world z; ``m`` is the magnitude in [0, 1].

``bottle_collision``, ``shaky`` are generic operators of
:mod:`simfail.counterfactual.operators` bound to this task's phases and objects
(:func:`~simfail.counterfactual.operators.bound`): they edit the expert's commands at replay
time, not its program (docs/counterfactuals.md).
"""

from __future__ import annotations

import numpy as np

from simfail.core.program import Segment
from simfail.counterfactual.operators import bound, shaky_sigma
from simfail.perturbations.base import Applied, Perturbation
from simfail.scenes.push_pull import (BACKOFF, LIFT_S, PUSH_S, PUSH_Z, START_GAP, TRAVEL_Z, contact_offset,
                                      push_grip)

#: Overshoot: how far [m] past the goal's centre the object's centre is pushed at m = 1.
OVERSHOOT_MAX = 0.12
#: Too-fast push: push duration [s] at m = 0 and m = 1 (the expert takes ``PUSH_S``).
FAST_PUSH_S = (1.2, 0.25)
#: Off the edge: the object's centre is pushed to ``EDGE_RANGE[0] + EDGE_RANGE[1] * m`` [m]
#: beyond the table's side edge (negative: still on the table).
EDGE_RANGE = (-0.03, 0.10)
#: TCP height [m] of the hop to the object's side (the fingertips clear its top by 2 cm).
HOP_Z = 0.08
#: The graze past the bottle: start / end distance [m] before / after it along the push
#: direction, and how far [m] the hand's underside lies above the TCP and clears the bottle's top.
SWEEP_LEAD = 0.10
SWEEP_TAIL = 0.06
HAND_BELOW_TCP = 0.0375
HAND_CLEARANCE = 0.008
#: Graze: pad overlap [m] with the bottle at m = 0 and 1, and the sweep's duration [s].
GRAZE_OVERLAP = (0.001, 0.004)
GRAZE_S = 1.4
#: Half width [m] of the pads across the sweep (the fingers point along it).
PAD_SIDE = 0.0095
#: Shaky execution: jitter amplitude [m] at m = 0 and m = 1 and its frequency [Hz].
JITTER = (0.006, 0.020)
JITTER_HZ = 3.0


def _seg(phase: str, pos, yaw: float, duration: float, grip: float) -> Segment:
    return Segment(phase, np.asarray(pos, float), yaw, float(duration), grip)


def _hold_until(segs: list[Segment], t_on: float, duration: float) -> list[Segment]:
    """Append a hold at the last keyframe so the program lasts ``duration`` seconds."""
    used = t_on + sum(s.duration for s in segs)
    last = segs[-1]
    segs.append(_seg("hold", last.pos, last.yaw, max(duration - used, 0.1), last.grip))
    return segs


def _push_from(expert, task, end_xy, push_s: float) -> tuple[float, list[Segment]]:
    """(onset, segments) of the expert's push re-aimed to end with the TCP at ``end_xy``."""
    i = expert.index_of("push")
    t_on = expert.start_of(i)
    yaw = expert.segments[i].yaw
    start = np.array(expert.segments[i - 1].pos, float)
    end = np.array([end_xy[0], end_xy[1], PUSH_Z])
    u = (end[:2] - start[:2]) / np.linalg.norm(end[:2] - start[:2])
    back = end - np.array([*u, 0.0]) * BACKOFF
    grip = expert.segments[i].grip
    segs = [_seg("push", end, yaw, push_s, grip), _seg("backoff", back, yaw, 0.4, grip),
            _seg("lift", [back[0], back[1], TRAVEL_Z], yaw, LIFT_S, grip)]
    return t_on, _hold_until(segs, t_on, task.duration)


def overshoot(task, layout, expert, m, rng) -> Applied:
    """Keep pushing past the goal: the object's centre is driven ``OVERSHOOT_MAX`` x m beyond
    the goal's centre along the push (the push keeps the expert's speed)."""
    _, end, u, _ = task.push_line(layout)
    extra = OVERSHOOT_MAX * m
    dist = float(np.linalg.norm(end[:2] - np.array(expert.segments[expert.index_of("descend")].pos[:2])))
    t_on, segs = _push_from(expert, task, end[:2] + u * extra, PUSH_S * (dist + extra) / dist)
    return Applied(expert.branch(t_on, segs), t_on, {"extra_push_m": extra})


def too_fast(task, layout, expert, m, rng) -> Applied:
    """Push to the same end point much faster: the gripper stops at the goal but the object,
    launched at speed, leaves the fingers and slides on past it (a delayed failure)."""
    _, end, _, _ = task.push_line(layout)
    push_s = FAST_PUSH_S[0] + (FAST_PUSH_S[1] - FAST_PUSH_S[0]) * m
    t_on, segs = _push_from(expert, task, end[:2], push_s)
    return Applied(expert.branch(t_on, segs), t_on, {"push_duration_s": push_s})


def off_edge(task, layout, expert, m, rng) -> Applied:
    """Push the object sideways toward the nearer side edge of the table instead of toward the
    goal, ending with its centre ``EDGE_RANGE[0] + EDGE_RANGE[1] * m`` beyond the edge."""
    i = expert.index_of("push")
    t_on = expert.start_of(i)
    o = layout.obj("object")
    e = float(layout.params["side"])
    off = contact_offset(o)
    beyond = EDGE_RANGE[0] + EDGE_RANGE[1] * m
    y_end = e * (layout.params["table_half_y"] + beyond) - e * off
    x = o.pos[0]
    start = np.array([x, o.pos[1] - e * (off + START_GAP), PUSH_Z])
    here = np.array(expert.segments[i - 1].pos, float)
    yaw, grip = np.pi / 2, push_grip(o)
    segs = [
        _seg("lift", [here[0], here[1], HOP_Z], expert.segments[i].yaw, 0.3, grip),
        _seg("approach", [start[0], start[1], HOP_Z], yaw, 0.7, grip),
        _seg("descend", start, yaw, 0.4, grip),
        _seg("push", [x, y_end, PUSH_Z], yaw, 1.6, grip),
        _seg("backoff", [x, y_end - e * BACKOFF, PUSH_Z], yaw, 0.3, grip),
        _seg("lift", [x, y_end - e * BACKOFF, TRAVEL_Z], yaw, LIFT_S, grip),
    ]
    return Applied(expert.branch(t_on, _hold_until(segs, t_on, task.duration)), t_on,
                   {"beyond_edge_m": beyond, "push_direction_y": e})


def _bottle_sweep(task, layout, expert, overlap: float, sweep_s: float) -> tuple[float, list[Segment]]:
    """After the push, pass the hand by the bottle parallel to the push, the pads just below its
    top (the hand's underside clears it) and overlapping its rim by ``overlap`` [m] (<= 0: a
    miss), in ``sweep_s`` seconds. Returns (onset, segments)."""
    i = expert.index_of("lift")
    t_on = expert.start_of(i)
    b = layout.obj("bottle")
    u = np.array([layout.params["direction"], 0.0])
    n = np.array([0.0, np.sign(layout.obj("object").pos[1] - b.pos[1]) or 1.0])  # toward the path
    lateral = b.size[0] + PAD_SIDE - overlap
    z = 2 * b.size[1] - HAND_BELOW_TCP + HAND_CLEARANCE
    bxy = np.array(b.pos[:2])
    a = bxy - u * SWEEP_LEAD + n * lateral
    c = bxy + u * SWEEP_TAIL + n * lateral
    here = np.array(expert.segments[i - 1].pos, float)
    yaw, grip = np.pi / 2, expert.segments[i].grip  # fingers along the sweep: the hand's narrow side leads
    segs = [
        _seg("lift", [here[0], here[1], TRAVEL_Z], expert.segments[i].yaw, 0.6, grip),
        _seg("approach", [a[0], a[1], TRAVEL_Z], yaw, 0.8, grip),
        _seg("descend", [a[0], a[1], z], yaw, 0.6, grip),
        _seg("sweep", [c[0], c[1], z], yaw, sweep_s, grip),
        _seg("lift", [c[0], c[1], TRAVEL_Z], yaw, 0.6, grip),
    ]
    return t_on, _hold_until(segs, t_on, task.duration)


def graze(task, layout, expert, m, rng) -> Applied:
    """Brush past the bottle after the push, slowly, the pads overlapping its rim by
    ``GRAZE_OVERLAP`` (by m): it rocks but stays up, and the task still succeeds."""
    overlap = GRAZE_OVERLAP[0] + (GRAZE_OVERLAP[1] - GRAZE_OVERLAP[0]) * m
    t_on, segs = _bottle_sweep(task, layout, expert, overlap, GRAZE_S)
    return Applied(expert.branch(t_on, segs), t_on, {"overlap_m": overlap})


def wrong_object(task, layout, expert, m, rng) -> Applied:
    """Push the distractor block behind the object instead, along the push direction, until it
    is level with the goal (beside it)."""
    t_on = 0.3
    d0 = np.array(layout.obj("distractor0").pos[:2])
    u = np.array([layout.params["direction"], 0.0])
    g = np.array(layout.obj("goal").pos[:2])
    start, end, u, yaw = task.push_line(layout, "distractor0", goal_xy=d0 + u * float((g - d0) @ u))
    segs = task.push_segments(start, end, u, yaw, push_grip(layout.obj("distractor0")))
    segs[0].duration -= t_on
    return Applied(expert.branch(t_on, _hold_until(segs, t_on, task.duration)), t_on, {"pushed": "distractor0"})


PUSH_PULL_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("overshoot", ("overshoot",), "keep pushing past the goal region", overshoot,
                     failure_range=(0.6, 1.0), near_miss_range=(0.15, 0.3)),
        Perturbation("too_fast", ("overshoot",), "push so fast the object slides on past the goal after the stop",
                     too_fast, failure_range=(0.85, 1.0), near_miss_range=(0.6, 0.7)),
        Perturbation("off_edge", ("off_table",), "push the object sideways off the table's edge", off_edge,
                     failure_range=(0.45, 1.0), near_miss_range=(0.0, 0.1)),
        bound("bottle_collision", "action_offset", ("topple",), "swerve the hand toward the bottle after the push",
              lambda layout, m: {"onset": "backoff", "toward": "bottle", "reach": m, "duration": 1.6},
              failure_range=(0.7, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("graze", ("collision",), "brush past the bottle without toppling it", graze,
                     failure_range=(0.0, 1.0), near_miss_range=(0.0, 0.3)),
        Perturbation("wrong_object", ("wrong_object",), "push the distractor block toward the goal instead",
                     wrong_object, failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        bound("shaky", "jitter", ("shaky_motion",), "jittery execution that still succeeds",
              lambda layout, m: {"onset": "approach", "sigma": shaky_sigma(JITTER[0] + (JITTER[1] - JITTER[0]) * m),
                                 "frequency": JITTER_HZ, "phases": ["approach", "lift"]},
              failure_range=(0.6, 1.0), near_miss_range=(0.47, 0.53)),
    )
}
