"""Tool-use (wiping) failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program at an onset time with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to
its onset. Positions are world frame [m]; ``m`` is the magnitude in [0, 1]. Heights of the
eraser are given for its head's bottom; the TCP sits ``GRASP_DZ + HEAD_HALF[2]`` above it.

``drop``, ``collision``, ``shaky`` are generic operators of
:mod:`simfail.counterfactual.operators` bound to this task's phases and objects
(:func:`~simfail.counterfactual.operators.bound`): they edit the expert's commands at replay
time, not its program (docs/counterfactuals.md).
"""

from __future__ import annotations

import numpy as np

from simfail.core.program import Segment
from simfail.counterfactual.operators import bound, shaky_sigma
from simfail.perturbations.base import Applied, Perturbation
from simfail.scenes.tool_use import BOARD_HALF, BOARD_TOP, CARRY_Z, GRASP_DZ, HEAD_HALF

#: Height [m] of the TCP above the eraser head's bottom while the eraser is held.
TCP_ABOVE_HEAD_BOTTOM = GRASP_DZ + HEAD_HALF[2]


def _copy(s: Segment) -> Segment:
    return Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter)


def _tail(expert, phase_from: str) -> list[Segment]:
    """Copies of the expert's segments from the first ``phase_from`` segment on."""
    return [_copy(s) for s in expert.segments[expert.index_of(phase_from):]]


def _fit_hold(segs: list[Segment], t_on: float, duration: float) -> list[Segment]:
    """Stretch or shrink the last segment (a hold) so the program ends at ``duration`` [s]."""
    used = t_on + sum(s.duration for s in segs[:-1])
    segs[-1].duration = max(duration - used, 0.1)
    return segs


def short_stroke(task, layout, expert, m, rng) -> Applied:
    """End the wiping stroke early: it covers ``1 - 0.6 m`` of the expert's length, so the
    pushed marks stop short of the board's edge."""
    i = expert.index_of("wipe")
    t_on = expert.start_of(i)
    frac = 1.0 - 0.6 * m
    _, end = task.stroke(layout, length=frac)
    segs = _tail(expert, "wipe")
    segs[0].pos = end
    segs[1].pos = np.array([end[0], end[1], CARRY_Z])
    return Applied(expert.branch(t_on, segs), t_on, {"stroke_fraction": frac})


def offset_stroke(task, layout, expert, m, rng) -> Applied:
    """Wipe off to one side: the stroke runs ``0.015 + 0.06 m`` m nearer the robot than the
    board's centre line (along the head's long axis), so the marks near the board's far edge
    are never touched."""
    i = expert.index_of("carry")
    t_on = expert.start_of(i)
    dx = -(0.015 + 0.06 * m)
    shift = np.array([dx, 0.0, 0.0])
    segs = _tail(expert, "carry")
    for s in segs[:4]:  # carry, lower, wipe, raise
        s.pos = s.pos + shift
    return Applied(expert.branch(t_on, segs), t_on, {"stroke_offset_m": float(dx)})


def high_wipe(task, layout, expert, m, rng) -> Applied:
    """Hold the eraser too high: lower it only to ``0.003 + 0.012 m`` m above the normal
    stroke height (the marks are 5-7 mm thick; thinner ones slip under first), and wipe at
    that height."""
    i = expert.index_of("lower")
    t_on = expert.start_of(i)
    dz = 0.003 + 0.012 * m
    start, end = task.stroke(layout, height=dz)
    segs = _tail(expert, "lower")
    segs[0].pos = start
    segs[1].pos = end
    return Applied(expert.branch(t_on, segs), t_on, {"extra_height_m": dz})


def shortcut(task, layout, expert, m, rng) -> Applied:
    """Never pick up the eraser: close the gripper, go to the board and push the marks toward
    the tray with the closed fingertips (two strokes, 4 cm apart). ``m`` lowers
    the fingertips from 4 mm to 1 mm above the board."""
    t_on = 0.3
    start, end = task.stroke(layout)
    b = layout.obj("board")
    tip_gap = 0.004 - 0.003 * m
    z = BOARD_TOP + tip_gap + 0.010  # the pads reach ~1 cm below the TCP
    yaw = 0.0  # fingers' narrow side leads; the wide hand stays clear of the cup
    segs: list[Segment] = []
    for k, dx in enumerate((-0.02, 0.02)):
        x = b.pos[0] + dx
        s0, s1 = np.array([x, start[1], z]), np.array([x, end[1], z])
        segs += [
            Segment("approach", np.array([x, start[1], CARRY_Z - 0.08]), yaw, 1.4 if k == 0 else 0.9, 1.0),
            Segment("lower", s0, yaw, 0.6, 1.0),
            Segment("wipe", s1, yaw, 1.6, 1.0),
            Segment("raise", np.array([x, end[1], CARRY_Z - 0.08]), yaw, 0.5, 1.0),
        ]
    segs.append(Segment("hold", np.array(segs[-1].pos, float), yaw, 1.0, 0.0))
    return Applied(expert.branch(t_on, _fit_hold(segs, t_on, task.duration)), t_on, {"fingertip_gap_m": tip_gap})


def rough_put_down(task, layout, expert, m, rng) -> Applied:
    """Let the eraser go too high when putting it back: open with its head
    ``0.006 + 0.028 m`` m above the table (the expert: 4 mm)."""
    i = expert.index_of("put_down")
    t_on = expert.start_of(i)
    gap = 0.006 + 0.028 * m
    segs = _tail(expert, "put_down")
    for s in segs[:3]:  # put_down, settle, release
        s.pos = np.array([s.pos[0], s.pos[1], task.grasp_point(layout)[2] + gap])
    return Applied(expert.branch(t_on, segs), t_on, {"release_gap_m": gap})


def edge_put_down(task, layout, expert, m, rng) -> Applied:
    """Put the eraser back by the board's near edge instead of where it stood, released at the
    board's height: the head's centre ends ``0.04 - 0.038 m`` m outside the edge. From about
    m = 0.8 the head overlaps the board with its centre of mass just outside it, so after the
    release it tips off the edge and comes to rest tilted (a failure that shows only after the
    robot's action); small m sets it on the table beside the board with a short fall."""
    i = expert.index_of("return")
    t_on = expert.start_of(i)
    b = layout.obj("board")
    s = layout.params["side"]
    off = 0.04 - 0.038 * m
    y = b.pos[1] + s * (BOARD_HALF[1] + off)
    z = BOARD_TOP + 0.004 + TCP_ABOVE_HEAD_BOTTOM
    put = np.array([b.pos[0], y, z])
    segs = [
        Segment("return", np.array([put[0], put[1], CARRY_Z]), 0.0, 1.0, 1.0),
        Segment("put_down", put, 0.0, 0.7, 1.0),
        Segment("settle", put, 0.0, 0.3, 1.0),
        Segment("release", put, 0.0, 0.4, 0.0),
        Segment("retreat", np.array([put[0], put[1], CARRY_Z]), 0.0, 0.6, 0.0),
        Segment("hold", np.array([put[0], put[1], CARRY_Z]), 0.0, 1.0, 0.0),
    ]
    return Applied(expert.branch(t_on, _fit_hold(segs, t_on, task.duration)), t_on, {"overhang_m": off})


TOOL_USE_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        bound("drop", "gripper_release", ("tool_drop",), "loosen the grip while carrying the eraser: it falls",
              lambda layout, m: {"onset": "carry@0.5", "level": 1.0 - m},
              failure_range=(0.6, 1.0), near_miss_range=(0.05, 0.2)),
        Perturbation("short_stroke", ("incomplete_wiping",), "stop the wiping stroke short of the board's edge",
                     short_stroke, failure_range=(0.75, 1.0), near_miss_range=(0.3, 0.5)),
        Perturbation("offset_stroke", ("incomplete_wiping",), "wipe beside the marks, missing those along one edge",
                     offset_stroke, failure_range=(0.7, 1.0), near_miss_range=(0.0, 0.2)),
        Perturbation("high_wipe", ("incomplete_wiping",), "hold the eraser too high above the board while wiping",
                     high_wipe, failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.15)),
        bound("collision", "action_offset", ("collision", "topple"), "swerve toward the cup while carrying the eraser",
              lambda layout, m: {"onset": "carry", "toward": "bystander", "reach": m, "duration": 1.6},
              failure_range=(0.75, 1.0), near_miss_range=(0.1, 0.2)),
        Perturbation("shortcut", ("gripper_wiping",), "push the marks with the fingers instead of the eraser",
                     shortcut, failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        Perturbation("rough_put_down", ("rough_put_down",), "let the eraser fall the last centimetres when putting it back",
                     rough_put_down, failure_range=(0.4, 1.0), near_miss_range=(0.2, 0.35)),
        Perturbation("edge_put_down", ("tool_not_put_down",), "put the eraser on the board's edge: it tips off after release",
                     edge_put_down, failure_range=(0.8, 1.0), near_miss_range=(0.0, 0.3)),
        bound("shaky", "jitter", ("shaky_motion",), "jittery execution that still succeeds",
              lambda layout, m: {"onset": "approach", "sigma": shaky_sigma(0.006 + 0.014 * m), "frequency": 3.0,
                                 "phases": ["approach", "carry", "return", "retreat"]},
              failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.2)),
    )
}
