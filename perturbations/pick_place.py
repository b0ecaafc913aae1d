"""Pick/Place failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program at an onset time with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to
its onset. Positions are world frame [m]; ``m`` is the magnitude in [0, 1].

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

CARRY_Z = 0.24


def _tail(expert, phases_from: str):
    """Copies of the expert's segments from the first ``phases_from`` segment on."""
    i = expert.index_of(phases_from)
    return [Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter) for s in expert.segments[i:]]


def _place_segments(target_xyz, yaw, lower_z, hold_to: float, t_now: float):
    """carry -> lower -> release -> retreat -> hold, ending at ``hold_to`` seconds."""
    x, y = float(target_xyz[0]), float(target_xyz[1])
    segs = [
        Segment("carry", np.array([x, y, CARRY_Z]), yaw, 1.4, 1.0),
        Segment("lower", np.array([x, y, lower_z]), yaw, 0.7, 1.0),
        Segment("release", np.array([x, y, lower_z]), yaw, 0.4, 0.0),
        Segment("retreat", np.array([x, y, CARRY_Z]), yaw, 0.7, 0.0),
    ]
    used = t_now + sum(s.duration for s in segs)
    segs.append(Segment("hold", np.array([x, y, CARRY_Z]), yaw, max(hold_to - used, 0.1), 0.0))
    return segs


def missed_grasp(task, layout, expert, m, rng) -> Applied:
    """Descend beside the cube: the TCP is offset by ``0.05 m`` x m across the finger gap."""
    t_on = expert.start_of(expert.index_of("descend"))
    d = expert.segments[expert.index_of("descend")]
    offset = 0.05 * m
    yaw = d.yaw
    # hand x axis (perpendicular to the closing direction) in the world for a top-down grasp
    axis = np.array([np.cos(yaw), np.sin(yaw), 0.0]) * (1.0 if rng.random() < 0.5 else -1.0)
    segs = _tail(expert, "descend")
    for s in segs[:2]:
        s.pos = s.pos + axis * offset
    return Applied(expert.branch(t_on, segs), t_on, {"offset_m": offset})


def wrong_placement(task, layout, expert, m, rng) -> Applied:
    """Set the cube down on the table ``0.14 + 0.10 m`` x m away from the bowl centre."""
    i = expert.index_of("carry")
    t_on = expert.start_of(i)
    bowl = np.array(layout.obj("target").pos)
    dist = 0.14 + 0.10 * m
    best = None
    for k in range(16):  # choose a free spot on the table
        ang = rng.uniform(0, 2 * np.pi)
        xy = bowl[:2] + dist * np.array([np.cos(ang), np.sin(ang)])
        if not (0.32 <= xy[0] <= 0.70 and -0.32 <= xy[1] <= 0.32):
            continue
        clear = min(np.linalg.norm(xy - np.array(o.pos[:2])) for o in layout.objects if o.name != "object")
        if best is None or clear > best[0]:
            best = (clear, xy)
    xy = best[1] if best else bowl[:2] + np.array([0.0, -np.sign(bowl[1]) * dist])
    half = layout.params["cube_half"]
    segs = _place_segments((*xy, 0), expert.segments[i].yaw, half + 0.008, task.duration, t_on)
    return Applied(expert.branch(t_on, segs), t_on, {"distance_from_target_m": float(np.linalg.norm(xy - bowl[:2]))})


def unstable_placement(task, layout, expert, m, rng) -> Applied:
    """Release the cube on the bowl's rim, its centre ``m`` x half a cube outside the wall."""
    i = expert.index_of("carry")
    t_on = expert.start_of(i)
    bowl = np.array(layout.obj("target").pos)
    r = layout.params["bowl_radius"] + 0.004
    half = layout.params["cube_half"]
    out = np.array([0.0, np.sign(bowl[1]) or 1.0])  # toward the table edge, away from the robot's side
    xy = bowl[:2] + out * (r + half * (0.2 + 0.8 * m))
    z = layout.params["bowl_wall"] + 0.006 + half + 0.012
    segs = _place_segments((*xy, 0), expert.segments[i].yaw, z, task.duration, t_on)
    return Applied(expert.branch(t_on, segs), t_on, {"rim_offset_m": float(half * (0.2 + 0.8 * m))})


def no_release(task, layout, expert, m, rng) -> Applied:
    """Keep the gripper closed from the release on (the cube is carried back up)."""
    t_on = expert.phase_times()["release"][0]
    return Applied(expert.branch(t_on, grip=1.0), t_on, {})


def wrong_object(task, layout, expert, m, rng) -> Applied:
    """Head for a distractor instead of the named cube and put it in the bowl."""
    names = sorted(r for r in layout.roles if r.startswith("distractor"))
    role = names[int(rng.integers(len(names)))]
    t_on = 0.3
    other = task.expert_program(layout, role=role)
    segs = [Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter) for s in other.segments]
    segs[0].duration -= t_on
    return Applied(expert.branch(t_on, segs), t_on, {"picked": role})


def shortcut_drag(task, layout, expert, m, rng) -> Applied:
    """Drag the cube along the table to the bowl's wall instead of lifting it, then hop it in."""
    i = expert.index_of("lift")
    t_on = expert.start_of(i)
    grasp = np.array(expert.segments[i - 1].pos, float)
    yaw = expert.segments[i].yaw
    bowl = np.array(layout.obj("target").pos)
    r = layout.params["bowl_radius"] + 0.008
    half = layout.params["cube_half"]
    direction = (bowl[:2] - grasp[:2]) / np.linalg.norm(bowl[:2] - grasp[:2])
    stop = bowl[:2] - direction * (r + half + 0.02 + 0.02 * (1 - m))
    drag_z = grasp[2] + 0.002
    segs = [
        Segment("drag", np.array([*stop, drag_z]), yaw, 1.6, 1.0),
        Segment("lift", np.array([*stop, CARRY_Z - 0.06]), yaw, 0.6, 1.0),
    ]
    segs += _place_segments(bowl, yaw, 0.006 + half + 0.015, task.duration, t_on + 2.2)[0:]
    segs[2].duration = 0.8  # short carry from the wall to above the bowl
    segs[-1].duration = max(0.1, task.duration - t_on - sum(s.duration for s in segs[:-1]))
    return Applied(expert.branch(t_on, segs), t_on, {"drag_distance_m": float(np.linalg.norm(stop - grasp[:2]))})


PICK_PLACE_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("missed_grasp", ("missed_grasp",), "descend beside the object and close on nothing", missed_grasp,
                     failure_range=(0.75, 1.0), near_miss_range=(0.05, 0.2)),
        bound("drop", "gripper_release", ("drop",), "open the gripper during the carry",
              lambda layout, m: {"onset": f"carry@{0.9 - 0.8 * m:.4f}"}, failure_range=(0.3, 1.0),
              near_miss_range=(0.0, 0.03)),
        bound("collision", "action_offset", ("collision", "topple"), "swerve toward the cup during the carry",
              lambda layout, m: {"onset": "carry", "toward": "obstacle", "reach": m, "duration": 1.6},
              failure_range=(0.75, 1.0), near_miss_range=(0.3, 0.45)),
        Perturbation("wrong_placement", ("wrong_placement",), "set the object down beside the target", wrong_placement,
                     failure_range=(0.2, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("unstable_placement", ("unstable_placement",), "release the object on the target's rim",
                     unstable_placement, failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.2)),
        Perturbation("no_release", ("no_release",), "never open the gripper at the target", no_release,
                     failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        Perturbation("wrong_object", ("wrong_object",), "pick a distractor instead of the named object", wrong_object,
                     failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        Perturbation("shortcut", ("dragging",), "drag the object along the table instead of lifting it", shortcut_drag,
                     failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        bound("shaky", "jitter", ("shaky_motion",), "jittery execution that still succeeds",
              lambda layout, m: {"onset": "approach", "sigma": shaky_sigma(0.006 + 0.014 * m), "frequency": 3.0,
                                 "phases": ["approach", "carry", "retreat"]},
              failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.2)),
    )
}
