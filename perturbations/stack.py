"""Stack failure operators (see ``perturbations/base.py`` for the interface).

Every operator branches the expert program with
:meth:`~simfail.core.program.Program.branch`, so a variant is identical to the expert up to
its onset. Positions are world frame [m]; ``m`` is the magnitude in [0, 1]. "Top block" is the
last block the expert places; its *support* is the block under it.

``drop``, ``hit_bystander`` are generic operators of
:mod:`simfail.counterfactual.operators` bound to this task's phases and objects
(:func:`~simfail.counterfactual.operators.bound`): they edit the expert's commands at replay
time, not its program (docs/counterfactuals.md).
"""

from __future__ import annotations

import itertools

import numpy as np

from simfail.core.program import Segment
from simfail.counterfactual.operators import bound
from simfail.perturbations.base import Applied, Perturbation
from simfail.scenes.stack import CARRY_Z

#: Finger pad reach [m] below the TCP (pads span -0.009 .. +0.011 m about it).
PAD_BELOW_TCP = 0.009
#: Horizontal distance [m] from the tower's axis at which the knocking sweep starts and ends.
SWEEP_REACH = 0.09
#: Half length [m] of the hand along the finger gap (it reaches this far past the TCP).
HAND_HALF_LENGTH = 0.06


def _copy(s: Segment) -> Segment:
    return Segment(s.phase, np.array(s.pos, float), s.yaw, s.duration, s.grip, s.quat, s.jitter)


def _last_index(expert, phase: str) -> int:
    return max(i for i, s in enumerate(expert.segments) if s.phase == phase)


def _clear_direction(layout, origin: np.ndarray, dirs: list[np.ndarray], reach: float,
                     back: float = 0.0) -> np.ndarray:
    """Of the unit vectors ``dirs``, the one along which the segment ``origin - back * d ->
    origin + reach * d`` [m] stays farthest from every object not in the tower (ending inside
    the workspace)."""
    tower = set(layout.roles[r] for r in layout.roles if r.startswith("level"))
    others = [np.array(o.pos[:2]) for o in layout.objects if o.name not in tower]

    def score(d):
        path = [origin + u * d for u in np.linspace(-back, reach, 12)]
        end = path[-1]
        inside = 0.36 <= end[0] <= 0.66 and abs(end[1]) <= 0.28
        return (inside, min(np.linalg.norm(p - q) for p in path for q in others))

    return max(dirs, key=score)


def _face_axes(yaw: float) -> list[np.ndarray]:
    """The four horizontal face normals of a cube turned ``yaw`` [rad] about z."""
    return [np.array([np.cos(yaw + k * np.pi / 2), np.sin(yaw + k * np.pi / 2)]) for k in range(4)]


def _offset_top(task, layout, expert, fraction: float, key: str) -> Applied:
    """The expert with the top block released ``fraction`` x the support's half size off
    centre, along a face normal of the support pointing away from the bystanders (every
    placed block is turned parallel to the base, so the base's yaw gives the faces)."""
    tower = task.tower(layout)
    s, base = layout.obj(tower[-2]), layout.obj(tower[0])
    i = _last_index(expert, "carry")
    t_on = expert.start_of(i)
    # hand x axis of the placing yaw: perpendicular to the finger gap, so the fingers are
    # not in the way of a block that tips
    yaw = expert.segments[i].yaw
    axes = [a for a in _face_axes(base.yaw) if abs(a @ np.array([np.cos(yaw), np.sin(yaw)])) > 0.7]
    d = _clear_direction(layout, np.array(base.pos[:2]), axes, 0.08)
    offset = fraction * s.size[2] * d
    other = task.expert_program(layout, last_offset=offset)
    segs = [_copy(x) for x in other.segments[i:]]
    return Applied(expert.branch(t_on, segs), t_on, {key: float(np.linalg.norm(offset)),
                                                     "tipping_margin_m": float(s.size[2])})


def topple_place(task, layout, expert, m, rng) -> Applied:
    """Release the top block ``0.85 + 0.7`` x m support half sizes off centre: past the
    support's edge (fraction > 1) it tips and falls after the gripper has let go."""
    return _offset_top(task, layout, expert, 0.85 + 0.7 * m, "release_offset_m")


def offset_place(task, layout, expert, m, rng) -> Applied:
    """Release the top block ``0.3 + 0.5`` x m support half sizes off centre: the tower
    stands (its centre of mass stays over the support) but is misaligned."""
    return _offset_top(task, layout, expert, 0.3 + 0.5 * m, "release_offset_m")


def knock_tower(task, layout, expert, m, rng) -> Applied:
    """After the last retreat, come back and sweep the closed hand across the tower with the
    finger pads' bottom ``0.015 - 0.045 m`` x m above the tower's top (negative: into the top
    block). The sweep runs along the finger gap (the hand's narrow side faces the bystanders)
    and away from them; the gripper closes beside the tower, ``SWEEP_REACH`` from its axis."""
    tower = task.tower(layout)
    i = _last_index(expert, "hold")
    t_on = expert.start_of(i)
    base = np.array(layout.obj(tower[0]).pos[:2])
    top_z = sum(2 * layout.obj(n).size[2] for n in tower)
    clearance = 0.015 - 0.045 * m
    z = top_z + PAD_BELOW_TCP + clearance
    dirs = [np.array([np.cos(a), np.sin(a)]) for a in np.linspace(0, 2 * np.pi, 16, endpoint=False)]
    d = _clear_direction(layout, base, dirs, SWEEP_REACH + HAND_HALF_LENGTH, SWEEP_REACH + HAND_HALF_LENGTH)
    # finger gap (hand y axis, world (-sin yaw, cos yaw)) along the sweep; yaw folded to (-pi/2, pi/2]
    yaw = float(np.arctan2(d[1], d[0]) % np.pi - np.pi / 2)
    start, end = base - SWEEP_REACH * d, base + SWEEP_REACH * d
    segs = [
        Segment("reposition", np.array([*start, CARRY_Z]), yaw, 0.7, 0.0),
        Segment("descend", np.array([*start, z]), yaw, 0.5, 1.0),
        Segment("sweep", np.array([*end, z]), yaw, 0.6, 1.0),
        Segment("retreat", np.array([*end, CARRY_Z]), yaw, 0.5, 1.0),
    ]
    used = t_on + sum(s.duration for s in segs)
    segs.append(Segment("hold", np.array([*end, CARRY_Z]), yaw, max(task.duration - used, 0.1), 1.0))
    return Applied(expert.branch(t_on, segs), t_on, {"pad_clearance_over_tower_m": clearance})


def wrong_order(task, layout, expert, m, rng) -> Applied:
    """Stack the requested blocks in another order (a random non-requested permutation)."""
    tower = task.tower(layout)
    perms = [list(p) for p in itertools.permutations(tower) if list(p) != tower]
    order = perms[int(rng.integers(len(perms)))]
    t_on = 0.3
    other = task.expert_program(layout, order=order)
    segs = [_copy(s) for s in other.segments]
    segs[0].duration -= t_on
    return Applied(expert.branch(t_on, segs), t_on, {"order": ",".join(order)})


STACK_PERTURBATIONS: dict[str, Perturbation] = {
    p.name: p
    for p in (
        Perturbation("topple_place", ("stack_topple",), "release the top block past its support's edge; it falls later",
                     topple_place, failure_range=(0.4, 1.0), near_miss_range=(0.0, 0.1)),
        Perturbation("offset_place", ("misaligned_stack",), "set the top block down off-centre; the tower stands",
                     offset_place, failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.2)),
        Perturbation("knock_tower", ("tower_knocked",), "sweep the hand across the finished tower", knock_tower,
                     failure_range=(0.6, 1.0), near_miss_range=(0.1, 0.3)),
        Perturbation("wrong_order", ("wrong_order",), "stack the requested blocks in another order", wrong_order,
                     failure_range=(0.0, 1.0), near_miss_range=(0.0, 1.0)),
        bound("drop", "gripper_release", ("drop",), "open the gripper while carrying the top block",
              lambda layout, m: {"onset": f"carry#-1@{0.9 - 0.8 * m:.4f}"},
              failure_range=(0.5, 1.0), near_miss_range=(0.0, 0.03)),
        bound("hit_bystander", "action_offset", ("collision", "topple"), "swerve toward the cup while carrying the first block",
              lambda layout, m: {"onset": "carry#1", "toward": "bystander", "reach": m, "duration": 1.6},
              failure_range=(0.75, 1.0), near_miss_range=(0.2, 0.35)),
    )
}
