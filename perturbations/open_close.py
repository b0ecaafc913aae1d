"""Open/Close failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program at an onset time with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to
its onset. Positions are world frame [m]; joint values [m] (drawer) or [rad] (door);
``m`` is the magnitude in [0, 1]. Each works for all four instructions (open / close the drawer
/ door): paths are written in joint space and mapped to the handle by the task's geometry.

``shaky`` is a generic operator of :mod:`simfail.counterfactual.operators`
bound to this task's phases and objects (:func:`~simfail.counterfactual.operators.bound`): it
edits the expert's commands at replay time, not its program (docs/counterfactuals.md).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from simfail.core.program import Segment
from simfail.counterfactual.operators import bound, shaky_sigma
from simfail.perturbations.base import Applied, Perturbation

#: Seconds of the fast stroke of ``slam`` at magnitude 0 and 1.
SLAM_T = (1.2, 0.4)
#: Overshoot past the end stop [share of the range] that ``slam`` aims for at magnitude 1.
SLAM_OVERSHOOT = 0.25
#: ``fling``: stroke duration [s] at magnitude 0 and 1, and where in it the fingers open.
FLING_T = (1.4, 0.4)
FLING_RELEASE_U = 0.65
#: ``fling``: how far [share of the range] past the open stop the TCP keeps going at magnitude
#: 1 (it stays ahead of the coasting drawer / door); scaled by the magnitude.
FLING_LEAD = 0.3
#: ``fling`` when closing: how far [m] the TCP lifts once it lets go.
FLING_LIFT = 0.10
#: ``bump``: how far [m] into the fixture the first descent aims at magnitude 0 and 1 (the
#: front plate starts 3 cm in from the grasp point).
BUMP_DX = (0.015, 0.045)
#: ``bump``: height [m] above the grasp point the misplaced descent stops at (the fingertips,
#: ~1 cm under the TCP, end 0.6 cm into the plate top and 1.6 cm into a fixture's top).
BUMP_DZ = 0.020
#: Frequency [Hz] of the ``shaky`` oscillation (slow enough to show at 10 frames/s).
SHAKY_HZ = 2.0
#: TCP lift [m] of ``handle_slip`` at magnitude 0 and 1 (the pads lose the 4 cm tab past ~3 cm).
SLIP_DZ = (0.012, 0.072)


def _copy(s: Segment) -> Segment:
    return Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter)


def _q0(layout) -> float:
    return layout.params["start_fraction"] * layout.params["joint_range"]


def _finish(task, segs: list[Segment], t_on: float, lift: float = 0.10) -> list[Segment]:
    """Append release (where the last segment ended), retreat upward and a hold to the end."""
    end = segs[-1]
    top = np.array(end.pos, float) + [0, 0, lift]
    segs += [Segment("release", np.array(end.pos, float), end.yaw, 0.4, 0.0),
             Segment("retreat", top, end.yaw, 0.6, 0.0)]
    used = t_on + sum(s.duration for s in segs)
    segs.append(Segment("hold", top, end.yaw, max(task.duration - used, 0.1), 0.0))
    return segs


def incomplete(task, layout, expert, m, rng) -> Applied:
    """Stop the stroke early: the handle is moved only ``1 - 0.7 m`` of the expert's way."""
    i = expert.index_of("move")
    t_on = expert.start_of(i)
    q0, q1 = _q0(layout), task.joint_target(layout)
    share = 1.0 - 0.7 * m
    q_end = q0 + share * (q1 - q0)
    segs = task.joint_path(layout, q0, q_end, sum(s.duration for s in expert.segments if s.phase == "move"))
    return Applied(expert.branch(t_on, _finish(task, segs, t_on)), t_on,
                   {"share_of_stroke": share, "commanded_fraction": q_end / layout.params["joint_range"]})


def slam(task, layout, expert, m, rng) -> Applied:
    """Drive the handle into the goal's end stop fast: a stroke of ``1.2 - 0.8 m`` s aimed
    ``0.25 m`` of the range past the stop, then ease back to the expert's end point and let go."""
    i = expert.index_of("move")
    t_on = expert.start_of(i)
    p = layout.params
    rng_q = p["joint_range"]
    stop = rng_q if p["action"] == "open" else 0.0
    direction = 1.0 if p["action"] == "open" else -1.0
    q_over = stop + direction * SLAM_OVERSHOOT * m * rng_q
    dur = SLAM_T[0] + (SLAM_T[1] - SLAM_T[0]) * m
    segs = task.joint_path(layout, _q0(layout), q_over, dur)
    segs += task.joint_path(layout, q_over, task.joint_target(layout), 0.5, phase="settle")
    return Applied(expert.branch(t_on, _finish(task, segs, t_on)), t_on,
                   {"stroke_s": dur, "overshoot_fraction": SLAM_OVERSHOOT * m})


def fling(task, layout, expert, m, rng) -> Applied:
    """Fling the articulation toward its stop and let go mid-stroke (delayed failure: it slams
    into the stop on its own and bounces back out of the goal after the robot is done).

    The stroke toward the stop lasts ``1.4 - 1.0 m`` s and the fingers open
    ``FLING_RELEASE_U`` of the way through it while the TCP keeps following the stroke (a
    pinch grip would brake the handle if the hand stopped first). When opening, the stroke runs
    on past the stop (``FLING_LEAD`` x m of the range), so the hand stays ahead of the handle coming toward the robot; when
    closing, it ends at the stop and the hand lifts ``FLING_LIFT`` at once, out of the bounce.
    """
    i = expert.index_of("move")
    t_on = expert.start_of(i)
    p = layout.params
    opening = p["action"] == "open"
    q_end = p["joint_range"] * (1.0 + FLING_LEAD * m) if opening else 0.0
    dur = FLING_T[0] + (FLING_T[1] - FLING_T[0]) * m
    segs = task.joint_path(layout, _q0(layout), q_end, dur)
    if opening:
        segs = _finish(task, segs, t_on)
    else:
        up = np.array(segs[-1].pos, float) + [0.0, 0.0, FLING_LIFT]
        segs += [Segment("retreat", up, segs[-1].yaw, 0.3, 0.0),
                 Segment("hold", up, segs[-1].yaw, max(task.duration - t_on - dur - 0.3, 0.1), 0.0)]
    t_rel = t_on + FLING_RELEASE_U * dur
    return Applied(expert.branch(t_on, segs).branch(t_rel, grip=0.0), t_on, {"stroke_s": dur, "release_time_s": t_rel})


def handle_slip(task, layout, expert, m, rng) -> Applied:
    """The grasp drifts upward along the handle during the stroke: the TCP rises
    ``0.012 + 0.06 m`` m over the stroke, so the closed pads slide off the top of the tab."""
    i = expert.index_of("move")
    t_on = expert.start_of(i) + 0.1
    dz = SLIP_DZ[0] + (SLIP_DZ[1] - SLIP_DZ[0]) * m
    segs = [_copy(s) for s in expert.segments[i:] if s.phase == "move"]
    segs[0].duration -= 0.1
    for s in segs:
        s.pos = s.pos + [0.0, 0.0, dz]
    return Applied(expert.branch(t_on, _finish(task, segs, t_on)), t_on, {"tcp_rise_m": dz})


def knock(task, layout, expert, m, rng) -> Applied:
    """On the way to the handle, come down behind the bystander on the fixture's top and sweep
    toward the front edge with the fingertips ``(1.05 - 0.95 m)`` x its height above the top
    (one finger in line with its centre), then go on to the handle as the expert does."""
    t_on = 0.3
    name = layout.roles["bystander"]
    obj = layout.obj(name)
    h = obj.height()
    top = obj.pos[2] - h / 2
    front = layout.params["cabinet_front" if name == "cup" else "box_front"]
    y = obj.pos[1] - 0.04  # the fingers are 4 cm either side of the TCP (yaw 0)
    z = top + 0.01 + h * (1.05 - 0.95 * m)  # TCP is ~1 cm above the fingertips
    behind = np.array([obj.pos[0] + 0.06, y, z])
    d = expert.segments[expert.index_of("descend")]
    above = np.array(expert.segments[0].pos, float)
    segs = [
        Segment("approach", behind + [0, 0, 0.10], 0.0, 1.1, 0.0),
        Segment("approach", behind, 0.0, 0.7, 0.0),
        Segment("sweep", np.array([front - 0.01, y, z]), 0.0, 0.8, 0.0),
        Segment("approach", above, d.yaw, 0.8, 0.0),
    ]
    tail = [_copy(s) for s in expert.segments[expert.index_of("descend"):]]
    extra = t_on + sum(s.duration for s in segs) - expert.start_of(1)
    tail[-1].duration = max(0.1, tail[-1].duration - extra)
    return Applied(expert.branch(t_on, segs + tail), t_on,
                   {"fingertip_height_over_object": 1.05 - 0.95 * m, "bystander": name})


def bump(task, layout, expert, m, rng) -> Applied:
    """Come down on the fixture instead of beside the handle, then back off and grasp properly
    (succeeds, but with a safety contact): hover ``0.015 + 0.05 m`` m too far into the fixture
    (past the handle's tip, onto the front plate and the top behind it), descend straight
    down to ``BUMP_DZ`` above the grasp height, lift, shift back over the handle and descend as the expert does."""
    i = expert.index_of("descend")
    t_on = expert.start_of(i)
    d = expert.segments[i]
    grasp = np.array(d.pos, float)
    inward = np.array([np.cos(d.yaw), np.sin(d.yaw), 0.0])  # the handle's push direction
    dx = BUMP_DX[0] + (BUMP_DX[1] - BUMP_DX[0]) * m
    above = np.array(expert.segments[i - 1].pos, float)
    segs = [Segment("hover", above + dx * inward, d.yaw, 0.3, 0.0),
            Segment("descend", grasp + dx * inward + [0.0, 0.0, BUMP_DZ], d.yaw, d.duration, 0.0),
            Segment("recover", above + dx * inward, d.yaw, 0.5, 0.0),
            Segment("recover", above, d.yaw, 0.3, 0.0),
            _copy(d)]
    tail = [_copy(s) for s in expert.segments[i + 1:]]
    tail[-1].duration = max(0.1, tail[-1].duration - 1.1 - d.duration)
    return Applied(expert.branch(t_on, segs + tail), t_on, {"descent_offset_m": dx})


def wrong_articulation(task, layout, expert, m, rng) -> Applied:
    """Go for the other articulation's handle and open it (the drawer instead of the door, or
    the other way round), exactly as the expert would open that one."""
    from simfail.scenes.open_close import FIXTURES, JOINTS, handle_local

    t_on = 0.3
    other = "door" if layout.params["articulation"] == "drawer" else "drawer"
    params = dict(layout.params, articulation=other, action="open", start_fraction=0.0, joint=JOINTS[other],
                  joint_range=layout.params[f"{other}_range"])
    params["handle_local"] = handle_local(params, other)
    wrong = dataclasses.replace(layout, params=params, roles=dict(layout.roles, fixture=FIXTURES[other]))
    segs = [_copy(s) for s in task.expert_program(wrong).segments]
    segs[0].duration -= t_on
    return Applied(expert.branch(t_on, segs), t_on, {"opened": other})


OPEN_CLOSE_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("incomplete", ("incomplete",), "stop the stroke before the goal", incomplete,
                     failure_range=(0.3, 1.0), near_miss_range=(0.0, 0.04)),
        Perturbation("slam", ("slam",), "drive the drawer / door into its end stop fast", slam,
                     failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.15)),
        Perturbation("fling", ("rebound",), "let go mid-stroke; it slams the stop and bounces back", fling,
                     failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("handle_slip", ("handle_slip",), "the grasp drifts up and off the handle mid-stroke",
                     handle_slip, failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.15)),
        Perturbation("knock", ("object_knocked",), "sweep the object off the fixture's top on the way", knock,
                     failure_range=(0.4, 1.0), near_miss_range=(0.0, 0.04)),
        Perturbation("bump", ("fixture_bump",), "come down on the fixture, back off, then grasp the handle", bump,
                     failure_range=(0.4, 1.0), near_miss_range=(0.0, 0.05)),
        Perturbation("wrong_articulation", ("wrong_articulation",), "open the other articulation instead",
                     wrong_articulation, failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        bound("shaky", "jitter", ("shaky_motion",), "jittery execution that still succeeds",
              lambda layout, m: {"onset": "approach", "sigma": shaky_sigma(0.006 + 0.014 * m), "frequency": SHAKY_HZ,
                                 "phases": ["approach", "retreat", "hold"]},
              failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.2)),
    )
}
