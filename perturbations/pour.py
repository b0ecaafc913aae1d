"""Pour failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to
its onset. Positions are world frame [m], tilts are the cup's tilt about world y [rad]
(0 = upright, see :func:`simfail.scenes.pour.tilt_quat`); ``m`` is the magnitude in [0, 1].

``clip_bystander`` is a generic operator of :mod:`simfail.counterfactual.operators`
bound to this task's phases and objects (:func:`~simfail.counterfactual.operators.bound`): it
edits the expert's commands at replay time, not its program (docs/counterfactuals.md).
"""

from __future__ import annotations

import numpy as np

from simfail.core.program import Segment
from simfail.counterfactual.operators import bound
from simfail.perturbations.base import Applied, Perturbation
from simfail.scenes.pour import CARRY_Z, LIP_DZ, POUR_TILT, tilt_quat


def _copy(s: Segment) -> Segment:
    return Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter)


def _finish(task, expert, t_on: float, segs: list[Segment]) -> list[Segment]:
    """``segs`` plus a hold at their last keyframe until the episode ends."""
    used = t_on + sum(s.duration for s in segs)
    end = segs[-1]
    segs.append(Segment("hold", np.array(end.pos, float), 0.0, max(task.duration - used, 0.1), end.grip, quat=end.quat))
    return segs


def _pour_from(task, layout, expert, **pour_kw) -> tuple[float, list[Segment]]:
    """Branch at the carry: pour with ``pour_kw`` (see ``Pour.pour_segments``), then return."""
    t_on = expert.start_of(expert.index_of("carry"))
    segs = task.pour_segments(layout, **pour_kw) + task.return_segments(layout)
    return t_on, _finish(task, expert, t_on, segs)


def _spill_direction(layout) -> np.ndarray:
    """Unit x-y vector from the target's centre away from the other bowl."""
    t = np.array(layout.obj("target").pos[:2])
    o = np.array(layout.obj("other").pos[:2])
    return np.array([0.0, np.sign(t[1] - o[1]) or 1.0])


def spill(task, layout, expert, m, rng) -> Applied:
    """Pour with the lip off the bowl's centre by ``(0.5 + 0.7 m)`` bowl radii, away from the
    other bowl: part of the stream lands beside the bowl."""
    r = layout.obj("target").size[0]
    shift = _spill_direction(layout) * r * (0.5 + 0.7 * m)
    t_on, segs = _pour_from(task, layout, expert, shift=shift)
    return Applied(expert.branch(t_on, segs), t_on, {"lip_offset_m": float(np.linalg.norm(shift)),
                                                     "lip_offset_radii": 0.5 + 0.7 * m})


def early_pour(task, layout, expert, m, rng) -> Applied:
    """Tip the cup fully while still carrying it: the tilt is complete ``0.01 + 0.29 m`` m
    (horizontally) before the pour position, then the tilted cup goes on to the bowl."""
    i = expert.index_of("carry")
    t_on = expert.start_of(i)
    start = np.array(expert.segments[i - 1].pos, float)
    goal = task.pour_pose(layout, "target", POUR_TILT)
    lead = 0.01 + 0.29 * m
    d = goal[:2] - start[:2]
    frac = float(np.clip(1.0 - lead / max(np.linalg.norm(d), 1e-3), 0.0, 1.0))
    early = np.array([*(start[:2] + frac * d), goal[2] + 0.03])
    segs = [
        Segment("carry", np.array([early[0], early[1], CARRY_Z]), 0.0, 1.2, 1.0, quat=tilt_quat(0.0)),
        Segment("tilt", early, 0.0, 0.9, 1.0, quat=tilt_quat(POUR_TILT)),
        Segment("carry", goal, 0.0, 1.0, 1.0, quat=tilt_quat(POUR_TILT)),
        Segment("drain", goal, 0.0, 0.5, 1.0, quat=tilt_quat(POUR_TILT)),
        Segment("untilt", np.array([goal[0], goal[1], CARRY_Z]), 0.0, 1.0, 1.0, quat=tilt_quat(0.0)),
        *task.return_segments(layout),
    ]
    return Applied(expert.branch(t_on, _finish(task, expert, t_on, segs)), t_on,
                   {"tilt_lead_distance_m": lead})


def high_pour(task, layout, expert, m, rng) -> Applied:
    """Pour from high above the bowl: the lip ``0.08 + 0.17 m`` m higher than the expert's."""
    dz = 0.08 + 0.17 * m
    t_on, segs = _pour_from(task, layout, expert, lip_dz=LIP_DZ + dz)
    return Applied(expert.branch(t_on, segs), t_on, {"extra_pour_height_m": dz})


def overtilt_drop(task, layout, expert, m, rng) -> Applied:
    """Keep rotating past the pour angle (to ``150 + 40 m`` degrees of tilt) while the grip
    relaxes to ``0.55 - 0.45 m`` of its closing command (fingers drift open)."""
    i = expert.index_of("drain")
    t_on = expert.start_of(i)
    drain = expert.segments[i]
    tilt = np.deg2rad(150.0 + 40.0 * m)
    grip = 0.55 - 0.45 * m
    segs = [Segment("overtilt", np.array(drain.pos, float) + [0.0, 0.0, 0.02], 0.0, 0.6, grip, quat=tilt_quat(tilt)),
            Segment("overtilt", np.array(drain.pos, float) + [0.0, 0.0, 0.02], 0.0, 0.6, grip, quat=tilt_quat(tilt))]
    segs += [_copy(s) for s in expert.segments[i + 1:-1]]
    for s in segs[2:]:
        s.grip = min(s.grip, grip)
    return Applied(expert.branch(t_on, _finish(task, expert, t_on, segs)), t_on,
                   {"overtilt_deg": float(np.rad2deg(tilt)), "grip_command": grip})


def wrong_container(task, layout, expert, m, rng) -> Applied:
    """Pour into the other bowl instead of the named one."""
    t_on, segs = _pour_from(task, layout, expert, container="other")
    return Applied(expert.branch(t_on, segs), t_on, {"poured_into": "other"})


def tilted_setdown(task, layout, expert, m, rng) -> Applied:
    """Set the emptied cup down still tilted ``20 + 40 m`` degrees and let go: past its tipping
    angle (about 40 degrees empty) it falls over once the fingers have opened (a delayed failure)."""
    i = expert.index_of("lower")
    t_on = expert.start_of(i)
    theta = np.deg2rad(20.0 + 40.0 * m)
    segs = task.return_segments(layout, theta)[1:]
    return Applied(expert.branch(t_on, _finish(task, expert, t_on, segs)), t_on,
                   {"setdown_tilt_deg": float(np.rad2deg(theta))})


POUR_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("spill", ("spill",), "pour with the lip off the bowl's centre", spill,
                     failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.2)),
        Perturbation("early_pour", ("premature_pour",), "tip the cup before it is over the bowl", early_pour,
                     failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.05)),
        Perturbation("high_pour", ("high_pour",), "pour from far above the bowl", high_pour,
                     failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("overtilt_drop", ("cup_drop",), "over-tilt the cup while the grip relaxes", overtilt_drop,
                     failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("wrong_container", ("wrong_container",), "pour into the other bowl", wrong_container,
                     failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        Perturbation("tilted_setdown", ("cup_topple",), "set the cup down tilted so it falls over after release",
                     tilted_setdown, failure_range=(0.6, 1.0), near_miss_range=(0.0, 0.2)),
        bound("clip_bystander", "action_offset", ("collision", "topple"), "swerve the cup toward the bottle, then pour",
              lambda layout, m: {"onset": "carry", "toward": "bystander", "reach": m, "duration": 1.6},
              failure_range=(0.75, 1.0), near_miss_range=(0.0, 0.15)),
    )
}
