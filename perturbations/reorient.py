"""Reorient failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to
its onset. Positions are world frame [m]; turn angles are radians about the layout's
``rot_axis`` (world z in the yaw instance, a horizontal axis in the upright one), signed like
its ``delta``; ``m`` is the magnitude in [0, 1]. The expert's phases are approach, descend,
grasp, lift, rotate, lower, release, retreat, hold (``scenes/reorient.py``); after a turn the
task's :meth:`finish` sets the object down with its lowest point just above the table.

``collision`` is a generic operator of :mod:`simfail.counterfactual.operators`
bound to this task's phases and objects (:func:`~simfail.counterfactual.operators.bound`): it
edits the expert's commands at replay time, not its program (docs/counterfactuals.md).
"""

from __future__ import annotations

import numpy as np

from simfail.core.program import Segment
from simfail.counterfactual.operators import bound
from simfail.perturbations.base import Applied, Perturbation
from simfail.scenes.reorient import RELEASE_GAP, quat_axes

#: Largest |TCP yaw| [rad] a yaw-instance variant commands: joint 7 spans +-2.90 rad and the
#: arm's base rotation adds up to ~0.25 rad between yaw and joint 7.
MAX_YAW = 2.55
#: Time [s] an operator starts re-planning from when it must change the whole program.
EARLY_ONSET = 0.3
#: Drop: height [m] the open hand withdraws to above the turning point.
WITHDRAW_DZ = 0.08
#: Toss (roll_off): extra height [m] of the set-down point, sweep time [s], and delay [s] from
#: the sweep's start to the open command (the fingers need ~0.1 s to let go, so the object
#: leaves them near the sweep's peak speed).
TOSS_GAP = 0.008
TOSS_TIME = 0.5
TOSS_OPEN = 0.1


def _copy(s: Segment, **changes) -> Segment:
    out = Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter)
    for k, v in changes.items():
        setattr(out, k, v)
    return out


def _rotate(expert) -> tuple[int, float, Segment]:
    """Index, start time [s] and segment of the expert's turn."""
    i = expert.index_of("rotate")
    return i, expert.start_of(i), expert.segments[i]


def _turn_to(task, layout, rot: Segment, angle: float, t_on: float, grasp_yaw: float | None = None) -> list[Segment]:
    """Turn to ``angle`` from the grasp, then the task's set-down from there to the episode's end."""
    turn = _copy(rot, quat=task.turn_quat(layout, angle, grasp_yaw), duration=task.turn_duration(angle))
    return [turn] + task.finish(layout, angle, t_on + turn.duration, grasp_yaw)


def incomplete_rotation(task, layout, expert, m, rng) -> Applied:
    """Stop turning ``3 + 57 deg`` x m short of the goal (at most the whole turn), then set down."""
    _, t_on, rot = _rotate(expert)
    delta = layout.params["delta"]
    short = min(np.deg2rad(3.0 + 57.0 * m), abs(delta))
    angle = delta - np.sign(delta) * short
    return Applied(expert.branch(t_on, _turn_to(task, layout, rot, angle, t_on)), t_on,
                   {"short_of_goal_deg": float(np.rad2deg(short))})


def drop(task, layout, expert, m, rng) -> Applied:
    """Open the gripper at fraction ``1 - 0.95 m`` of the turn-and-lower (0 = turn start; the
    turn takes the first 57-69 % of it, so magnitudes from 0.55 on open while turning; small
    magnitudes open late in the lowering, a near miss).

    Opened during the turn, the open hand finishes the turn and withdraws straight up (it does
    not lower onto the fallen object); opened during the lowering, it carries on as planned.
    """
    times = expert.phase_times()
    a, b = times["rotate"][0], times["lower"][1]
    frac = 1.0 - 0.95 * m
    t_on = a + frac * (b - a)
    params = {"release_fraction_of_turn_and_lower": frac}
    if t_on >= times["lower"][0]:
        return Applied(expert.branch(t_on, grip=0.0), t_on, params)
    _, _, rot = _rotate(expert)
    up = np.array(rot.pos, float) + [0.0, 0.0, WITHDRAW_DZ]
    segs = [_copy(rot, duration=times["rotate"][1] - t_on, grip=0.0),
            _copy(rot, phase="retreat", pos=up, duration=0.7, grip=0.0),
            _copy(rot, phase="hold", pos=up, grip=0.0)]
    segs[-1].duration = max(task.duration - t_on - segs[0].duration - segs[1].duration, 0.1)
    return Applied(expert.branch(t_on, segs), t_on, params)


def roll_off(task, layout, expert, m, rng) -> Applied:
    """Set the object down with a sideways toss: lower it to ``TOSS_GAP`` above the table, then
    sweep the hand ``0.02 + 0.18 m`` x m along the finger axis (across the object's axis) in
    ``TOSS_TIME`` and open ``TOSS_OPEN`` into the sweep, so the object leaves the fingers moving
    and rolls on after the robot has let go (a standing can lands sliding, tips over sideways
    and rolls)."""
    _, t_on, rot = _rotate(expert)
    angle = layout.params["delta"]
    dist = 0.02 + 0.18 * m
    place = task.set_down(layout, angle, gap=RELEASE_GAP + TOSS_GAP)
    tail = _turn_to(task, layout, rot, angle, t_on)
    side = quat_axes(task.turn_quat(layout, angle))[:, 1]  # the fingers close along hand y
    side[2] = 0.0
    side *= (1.0 if rng.random() < 0.5 else -1.0) / np.linalg.norm(side)
    turn, low, rel = tail[0], tail[1], tail[2]
    segs = [turn, _copy(low, pos=place), _copy(rel, pos=place + side * dist, duration=TOSS_TIME, grip=1.0)]
    segs += [_copy(s, pos=np.array(s.pos, float) + side * dist) for s in tail[3:]]
    segs[-1].duration = max(task.duration - t_on - sum(s.duration for s in segs[:-1]), 0.1)
    moved = expert.branch(t_on, segs)
    t_open = t_on + turn.duration + low.duration + TOSS_OPEN
    speed = 1.875 * dist / TOSS_TIME  # peak speed of a minimum-jerk move [m/s]
    return Applied(moved.branch(t_open, grip=0.0), t_on, {"sweep_m": dist, "peak_hand_speed_mps": speed})


def overshoot(task, layout, expert, m, rng) -> Applied:
    """Turn ``6 + 34 deg`` x m past the goal, pause, turn back to the goal and finish normally.

    In the yaw instance, when the overshoot would push the wrist past ``MAX_YAW`` the whole
    program is re-planned from ``EARLY_ONSET`` with the other (equivalent, mod pi) grasp yaw.
    """
    i, t_rot, rot = _rotate(expert)
    delta = layout.params["delta"]
    over = np.deg2rad(6.0 + 34.0 * m) * np.sign(delta)
    y0 = task.grasp_yaw(layout)
    shift = 0.0
    if layout.params["mode"] == "yaw" and abs(y0 + delta + over) > MAX_YAW:
        shift = -np.pi * np.sign(y0 + delta)
    yaw = y0 + shift
    past = _copy(rot, quat=task.turn_quat(layout, delta + over, yaw), duration=task.turn_duration(delta + over))
    pause = _copy(past, duration=0.25)
    back = _copy(rot, quat=task.turn_quat(layout, delta, yaw), duration=task.turn_duration(over))
    t_end = t_rot + past.duration + pause.duration + back.duration
    tail = [past, pause, back] + task.finish(layout, delta, t_end, yaw)
    if shift == 0.0:
        t_on, segs = t_rot, tail
    else:
        t_on = EARLY_ONSET
        segs = [_copy(s, yaw=s.yaw + shift) for s in expert.segments[:i]] + tail
        segs[0].duration -= t_on
    return Applied(expert.branch(t_on, segs), t_on,
                   {"overshoot_deg": float(np.rad2deg(abs(over))), "regrasp_yaw_shift_rad": float(shift)})


REORIENT_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("incomplete_rotation", ("incomplete_rotation",), "stop turning short of the goal orientation",
                     incomplete_rotation, failure_range=(0.45, 1.0), near_miss_range=(0.04, 0.1)),
        # task-specific, not the generic gripper_release: released during the turn, the open
        # hand here withdraws straight up; the generic release lowers the empty hand onto the
        # fallen object along the expert's path, which often sets it right (task success of
        # failure variants 9/20 generic vs 3/20 this one, docs/counterfactuals.md)
        Perturbation("drop", ("drop",), "open the gripper while the object is lifted and turning", drop,
                     failure_range=(0.55, 1.0), near_miss_range=(0.1, 0.15)),
        Perturbation("roll_off", ("rolled_off",), "toss the object down sideways so it rolls away after release",
                     roll_off, failure_range=(0.4, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("overshoot", ("overshoot",), "turn past the goal and correct back (succeeds, lower quality)",
                     overshoot, failure_range=(0.3, 1.0), near_miss_range=(0.0, 0.1)),
        bound("collision", "action_offset", ("collision", "topple"), "swerve the lifted object toward the cup while turning",
              lambda layout, m: {"onset": "rotate", "toward": "bystander", "reach": m, "duration": 2.0},
              failure_range=(0.75, 1.0), near_miss_range=(0.1, 0.2)),
    )
}
