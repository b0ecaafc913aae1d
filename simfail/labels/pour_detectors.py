"""Detectors of the pour task: where the nuts went, how they left the cup, and the cup itself.

The nuts are not tracked entities; their positions come from their slide joints
(:func:`nut_positions`: ``trace.joint_qpos("nut<k>_x")`` ..., world frame [m]). The cup, the
two bowls, the bottle and the cube are tracked bodies (poses from ``trace.pos`` /
``trace.quat``). Table top at z = 0; ``t`` indexes trace frames (time ``t / fps`` s).

Regions of a nut, per frame:

* *in the cup*: inside the cup's inner box, in the cup's own frame (so a tilted cup still
  holds its nuts);
* *in a bowl*: within the bowl's inner radius of its axis (horizontally) and between its base
  and ``RIM_MARGIN`` above its rim;
* *spilled*: anywhere else (table, floor, robot, on a rim ...).

The *exit* of a nut is the first frame it is no longer in the cup; where that happens (over
which bowl, how high above its rim, while the cup was still travelling) tells how it was poured.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels.detectors import end_frame, first_index, object_label, grasped, lifted, release_onset

#: Share of the nuts that must end in the target bowl for a success.
GOAL_SHARE = 0.85
#: Fewest spilled nuts that make a spill event: one stray nut bouncing off a rim is within the
#: tolerance of a pour (it still counts against the success shares).
SPILL_MIN_COUNT = 2
#: Share of spilled nuts above which a spill is a task failure (below it: quality).
SPILL_TASK_SHARE = 0.10
#: Spilled share [0..1] that maps to severity 1.
SPILL_FULL_SHARE = 0.4
#: Share of the nuts in the other bowl that makes the pour a wrong-container failure.
WRONG_SHARE = 0.5
#: Height [m] above the rim up to which a nut still counts as inside a bowl (heaped nuts).
RIM_MARGIN = 0.03
#: Margin [m] around the cup's inner box that still counts as inside the cup.
CUP_MARGIN = 0.003
#: Premature pour: share of the nuts that left the cup away from the target while the cup was
#: still on its way, i.e. the TCP later got more than ``EARLY_APPROACH`` [m] closer to the target.
EARLY_SHARE = 0.10
EARLY_APPROACH = 0.05
#: Median exit height [m] above the receiving bowl's rim beyond which the pour is too high,
#: and the excess height [m] that maps to severity 1.
HIGH_POUR_DZ = 0.10
HIGH_POUR_FULL = 0.20
#: Tilt [rad] under which the cup counts as upright (success), and past which it has toppled.
UPRIGHT_TILT = np.deg2rad(15.0)
TOPPLE_TILT = np.deg2rad(45.0)
#: Tilt [rad] at release above which a set-down that stays standing is unsteady (quality).
WOBBLE_TILT = np.deg2rad(10.0)
#: Height [m] of the cup's lowest corner above the table beyond which leaving the fingers is
#: a drop (the expert sets it down with a 4 mm gap).
DROP_CLEARANCE = 0.03
#: A dropped cup's grasp point moves this far [m] from the TCP within this many seconds.
DROP_SEPARATION = 0.03
DROP_WINDOW_S = 1.0
#: Distance [m] between the TCP and the cup's grasp point under which a lifted cup is carried.
CARRY_SEPARATION = 0.02
#: Cup tilt [rad] beyond any pour: a cup tipped further than this while held is over-tilted.
OVERTILT = np.deg2rad(150.0)
#: Tilt [rad] below which the cup is not pouring (used to find when a pour began).
POURING_TILT = np.deg2rad(30.0)
#: Speed [m/s] under which the cup is at rest.
REST_SPEED = 0.06


def quat_mats(q: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotation matrices of (T, 4) unit quaternions (w, x, y, z)."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


@dataclass
class NutStates:
    """Per-frame regions of every nut.

    Attributes:
        pos: (T, N, 3) world positions [m].
        in_cup, in_target, in_other: (T, N) bool.
        exit: (N,) first frame each nut is out of the cup (``len(trace)`` if it never left).
    """

    pos: np.ndarray
    in_cup: np.ndarray
    in_target: np.ndarray
    in_other: np.ndarray
    exit: np.ndarray

    @property
    def n(self) -> int:
        return self.pos.shape[1]

    @property
    def spilled(self) -> np.ndarray:
        """(T, N) bool: in no container."""
        return ~(self.in_cup | self.in_target | self.in_other)


def in_bowl(trace, layout, bowl: str, pos: np.ndarray) -> np.ndarray:
    """(T, N) bool: nut positions ``pos`` (T, N, 3) are inside ``bowl`` (see module doc)."""
    b = trace.pos(bowl)[:, None, :]
    r = np.linalg.norm(pos[..., :2] - b[..., :2], axis=-1)
    dz = pos[..., 2] - b[..., 2]
    radius = layout.obj(bowl).size[0]
    return (r < radius) & (dz > 0.0) & (dz < layout.obj(bowl).size[1] + RIM_MARGIN)


def cup_local(trace, pos: np.ndarray) -> np.ndarray:
    """(T, N, 3) positions [m] in the cup's frame (origin: centre of its base's underside)."""
    rot = quat_mats(trace.quat("cup"))
    rel = pos - trace.pos("cup")[:, None, :]
    return np.einsum("tji,tnj->tni", rot, rel)


def nut_positions(trace, n_nuts: int) -> np.ndarray:
    """(T, N, 3) world positions [m] of the nuts ``nut0 .. nut<n-1>``, read from their slide
    joints ``nut<k>_x``, ``nut<k>_y``, ``nut<k>_z`` (each joint's value is a world coordinate)."""
    from simfail.scenes.pour import NUT_AXES, nut_joint

    return np.stack([np.concatenate([trace.joint_qpos(nut_joint(k, a)) for a in NUT_AXES], axis=1)
                     for k in range(n_nuts)], axis=1)


def nut_states(trace, layout, n_nuts: int) -> NutStates:
    """Regions of the ``n_nuts`` nuts ``nut0 .. nut<n-1>`` at every frame."""
    from simfail.scenes.pour import CUP_BASE, CUP_WALL

    pos = nut_positions(trace, n_nuts)
    w, h = layout.obj("cup").size
    loc = cup_local(trace, pos)
    inner = w - CUP_WALL + CUP_MARGIN
    in_cup = (np.abs(loc[..., 0]) < inner) & (np.abs(loc[..., 1]) < inner) & (loc[..., 2] > CUP_BASE - CUP_MARGIN) \
        & (loc[..., 2] < h + CUP_MARGIN)
    out = ~in_cup
    exit = np.where(out.any(axis=0), out.argmax(axis=0), len(trace))
    return NutStates(pos, in_cup, in_bowl(trace, layout, "target", pos), in_bowl(trace, layout, "other", pos), exit)


def cup_lowest_z(trace, layout) -> np.ndarray:
    """(T,) height [m] of the cup's lowest corner."""
    w, h = layout.obj("cup").size
    corners = np.array([[sx * w, sy * w, z] for sx in (-1, 1) for sy in (-1, 1) for z in (0.0, h)])
    rot = quat_mats(trace.quat("cup"))
    world_z = np.einsum("tj,cj->tc", rot[:, 2, :], corners) + trace.pos("cup")[:, 2:3]
    return world_z.min(axis=1)


def _grasp_ends(trace) -> np.ndarray:
    held = grasped(trace, "cup")
    return np.flatnonzero(held[:-1] & ~held[1:]) + 1


def _rim_z(layout, bowl: str) -> float:
    from simfail.scenes.pour import BOWL_BASE

    return BOWL_BASE + layout.obj(bowl).size[1]


# ---------------------------------------------------------------------------- events


def spills(trace, layout, nuts: NutStates) -> list[FailureEvent]:
    """Nuts that end outside every container (at least ``SPILL_MIN_COUNT``): a count, their
    share and where they lie. Category ``task`` above ``SPILL_TASK_SHARE`` of the nuts, else
    ``quality``; severity is the spilled share over ``SPILL_FULL_SHARE``, at least 0.1.
    """
    final = nuts.spilled[-1]
    count = int(final.sum())
    if count < SPILL_MIN_COUNT:
        return []
    share = count / nuts.n
    idx = np.flatnonzero(final)
    onset = int(min(nuts.exit[idx].min(), len(trace) - 1))
    low = nuts.pos[:, idx, 2] < _rim_z(layout, "target")
    after = np.arange(len(trace))[:, None] >= nuts.exit[idx][None, :]
    vis = first_index((low & after & nuts.spilled[:, idx]).any(axis=1), onset)
    visible = int(vis if vis is not None else len(trace) - 1)
    tpos = trace.pos("target")[-1]
    dist = np.linalg.norm(nuts.pos[-1, idx, :2] - tpos[:2], axis=1)
    cat = "task" if share > SPILL_TASK_SHARE else "quality"
    sev = float(np.clip(share / SPILL_FULL_SHARE, 0.1, 1.0))
    return [FailureEvent(
        "spill", cat, onset, visible, visible, sev, ("target",),
        f"{count} of {nuts.n} nuts ({share:.0%}) end outside the containers, a median "
        f"{np.median(dist) * 100:.0f} cm from the centre of the {object_label(layout, 'target')}",
        {"spilled_count": float(count), "spilled_share": share, "median_distance_m": float(np.median(dist)),
         "in_target_count": float(nuts.in_target[-1].sum())},
    )]


def pour_placement(trace, layout, nuts: NutStates) -> list[FailureEvent]:
    """How the nuts left the cup.

    * ``premature_pour`` (task): at least ``EARLY_SHARE`` of the nuts left the cup away from
      the target (over the table or the other bowl) while the cup was still on its way: the
      TCP later came, with the cup still tipped, more than ``EARLY_APPROACH`` closer
      (horizontally) to the target than it was at their exit.
    * ``high_pour`` (quality): the nuts left the cup a median more than ``HIGH_POUR_DZ`` above
      the rim of the bowl they fell toward (from so high they scatter).
    """
    left = np.flatnonzero(nuts.exit < len(trace))
    if not left.size:
        return []
    up = lifted(trace, "cup")
    left = left[up[nuts.exit[left]]]  # poured from a lifted cup (not tipped over on the table)
    if not left.size:
        return []
    events = []
    ex = nuts.exit[left]
    xy = nuts.pos[ex, left, :2]
    z = nuts.pos[ex, left, 2]
    over = {}
    for bowl in ("target", "other"):
        c = trace.pos(bowl)[ex, :2]
        over[bowl] = np.linalg.norm(xy - c, axis=1) < layout.obj(bowl).size[0] + 0.01
    tcp = np.array(trace.tcp)
    d_target = np.linalg.norm(tcp[:, :2] - trace.pos("target")[:, :2], axis=1)
    # closest the TCP gets to the target from frame t on while the cup is still tipped
    tipped = np.where(trace.tilt("cup") > POURING_TILT, d_target, np.inf)
    later_min = np.minimum.accumulate(tipped[::-1])[::-1]
    early = ~over["target"] & (d_target[ex] - later_min[ex] > EARLY_APPROACH)
    if early.sum() >= EARLY_SHARE * nuts.n:
        first = int(ex[early].min())
        tilt = trace.tilt("cup")
        before = np.flatnonzero(tilt[:first] < POURING_TILT)
        onset = int(before[-1]) if before.size else first
        d = float(np.median(d_target[ex[early]]))
        share = float(early.sum() / nuts.n)
        events.append(FailureEvent(
            "premature_pour", "task", onset, first, first, float(np.clip(share / 0.5, 0.2, 1.0)), ("cup", "target"),
            f"the cup tips {int(early.sum())} nuts out on its way, with the gripper {d * 100:.0f} cm from the "
            f"centre of the {object_label(layout, 'target')}",
            {"early_count": float(early.sum()), "early_share": share, "distance_to_target_m": d,
             "approach_after_m": float(np.median(d_target[ex[early]] - later_min[ex[early]]))},
        ))
    dz = np.where(over["other"] & ~over["target"], z - _rim_z(layout, "other"), z - _rim_z(layout, "target"))
    height = float(np.median(dz))
    if height > HIGH_POUR_DZ:
        first = int(ex.min())
        tilt = trace.tilt("cup")
        before = np.flatnonzero(tilt[:first] < POURING_TILT)
        onset = int(before[-1]) if before.size else first
        sev = float(np.clip(0.3 + 0.7 * (height - HIGH_POUR_DZ) / HIGH_POUR_FULL, 0.3, 1.0))
        events.append(FailureEvent(
            "high_pour", "quality", onset, first, first, sev, ("cup",),
            f"the nuts leave the cup a median {height * 100:.0f} cm above the bowl's rim "
            f"({int(nuts.spilled[-1].sum())} of {nuts.n} end outside the bowls)",
            {"median_exit_height_m": height, "max_exit_height_m": float(dz.max()),
             "spilled_count": float(nuts.spilled[-1].sum())},
        ))
    return events


def wrong_container(trace, layout, nuts: NutStates) -> list[FailureEvent]:
    """Most nuts (``WRONG_SHARE``) end in the other bowl."""
    final = nuts.in_other[-1]
    if final.sum() < WRONG_SHARE * nuts.n:
        return []
    idx = np.flatnonzero(final)
    first = int(nuts.exit[idx].min())
    tilt = trace.tilt("cup")
    before = np.flatnonzero(tilt[:first] < POURING_TILT)
    onset = int(before[-1]) if before.size else first
    vis = first_index(nuts.in_other[:, idx].any(axis=1), first)
    visible = int(vis if vis is not None else first)
    return [FailureEvent(
        "wrong_container", "task", onset, first, visible, 1.0, ("other", "target"),
        f"{int(final.sum())} of {nuts.n} nuts are poured into the {object_label(layout, 'other')} "
        f"instead of the {object_label(layout, 'target')}",
        {"in_other_count": float(final.sum()), "in_target_count": float(nuts.in_target[-1].sum())},
    )]


def incomplete_pour(trace, layout, nuts: NutStates) -> list[FailureEvent]:
    """The cup was lifted and has been let go with more than ``1 - GOAL_SHARE`` of the nuts
    still in it (judged at the last frame, once the fingers have released the cup)."""
    left = int(nuts.in_cup[-1].sum())
    ends = _grasp_ends(trace)
    if left <= (1 - GOAL_SHARE) * nuts.n or not ends.size or grasped(trace, "cup")[-1] \
            or not lifted(trace, "cup").any():
        return []
    t = int(ends[-1])
    return [FailureEvent(
        "incomplete_pour", "task", t, t, t, float(left / nuts.n), ("cup",),
        f"the {object_label(layout, 'cup')} is let go with {left} of {nuts.n} nuts still in it",
        {"left_in_cup_count": float(left)},
    )]


def grasp_separation(trace) -> np.ndarray:
    """(T,) distance [m] between the TCP and the cup's grasp point (its axis at ``GRASP_Z``)."""
    from simfail.scenes.pour import GRASP_Z

    rot = quat_mats(trace.quat("cup"))
    point = trace.pos("cup") + rot[:, :, 2] * GRASP_Z
    return np.linalg.norm(point - np.array(trace.tcp), axis=1)


def cup_drops(trace, layout) -> list[FailureEvent]:
    """The cup leaves the fingers with its lowest corner more than ``DROP_CLEARANCE`` above
    the table (not a set-down) and falls away from the hand (its grasp point ends up more than
    ``DROP_SEPARATION`` farther from the TCP within ``DROP_WINDOW_S``; a pad losing touch for a
    moment is not a drop). The largest tilt while it was held is measured (over-tilt)."""
    events = []
    held = grasped(trace, "cup")
    low = cup_lowest_z(trace, layout)
    tilt = trace.tilt("cup")
    cmd = trace.grip_cmd()
    sep = grasp_separation(trace)
    window = int(DROP_WINDOW_S * trace.fps)
    for e in _grasp_ends(trace):
        if low[e - 1] < DROP_CLEARANCE or sep[e:e + window].max() < sep[e - 1] + DROP_SEPARATION:
            continue
        start = e - 1
        while start > 0 and held[start - 1]:
            start -= 1
        max_tilt = float(tilt[start:e + 1].max())
        commanded = bool(cmd[e - 1] < 0.5 or cmd[e] < 0.5)
        over = np.flatnonzero(tilt[start:e] > OVERTILT)
        if over.size:
            onset = start + int(over[0])
        else:  # the open command that ended the grasp, or (a slip) the first frame not held
            onset = max(start, release_onset(cmd, e))
        fell = first_index(trace.pos("cup")[:, 2] < trace.pos("cup")[e, 2] - 0.02, e)
        visible = int(fell if fell is not None else e)
        events.append(FailureEvent(
            "cup_drop", "task", int(onset), int(e), max(visible, int(onset)), 1.0, ("cup",),
            f"the {object_label(layout, 'cup')} leaves the fingers {low[e - 1] * 100:.0f} cm above the table, "
            f"tilted {np.rad2deg(tilt[e - 1]):.0f} degrees (at most {np.rad2deg(max_tilt):.0f} while held)",
            {"release_height_m": float(low[e - 1]), "max_tilt_deg": float(np.rad2deg(max_tilt)),
             "commanded_open": float(commanded)},
        ))
    return events


def cup_topples(trace, layout) -> list[FailureEvent]:
    """How the cup stood after its final set-down (released low).

    * ``cup_topple`` (task): it tips past ``TOPPLE_TILT`` after the fingers let go, a delayed
      failure that happens once the robot's action is over;
    * ``unsteady_setdown`` (quality): it was let go tilted more than ``WOBBLE_TILT`` and rocked
      back upright; severity = release tilt / ``TOPPLE_TILT``.
    """
    ends = _grasp_ends(trace)
    if not ends.size or grasped(trace, "cup")[-1]:
        return []
    e = int(ends[-1])
    low = cup_lowest_z(trace, layout)
    if low[e - 1] >= DROP_CLEARANCE:
        return []  # a drop, judged by cup_drops
    tilt = trace.tilt("cup")
    vis = first_index(tilt > TOPPLE_TILT, e)
    if vis is None:
        if tilt[e - 1] <= WOBBLE_TILT:
            return []
        rest = first_index(tilt < UPRIGHT_TILT, e)
        visible = int(rest if rest is not None else len(trace) - 1)
        return [FailureEvent(
            "unsteady_setdown", "quality", e, visible, visible, float(np.clip(tilt[e - 1] / TOPPLE_TILT, 0.1, 1.0)),
            ("cup",), f"the {object_label(layout, 'cup')} is let go tilted {np.rad2deg(tilt[e - 1]):.0f} degrees and rocks "
            f"back upright", {"release_tilt_deg": float(np.rad2deg(tilt[e - 1]))},
        )]
    return [FailureEvent(
        "cup_topple", "task", e, int(vis), int(vis), 1.0, ("cup",),
        f"the {object_label(layout, 'cup')} is let go tilted {np.rad2deg(tilt[e - 1]):.0f} degrees and tips over "
        f"{(vis - e) / trace.fps:.1f} s later (ends at {np.rad2deg(tilt[-1]):.0f} degrees)",
        {"release_tilt_deg": float(np.rad2deg(tilt[e - 1])), "final_tilt_deg": float(np.rad2deg(tilt[-1])),
         "delay_s": float((vis - e) / trace.fps)},
    )]


# ---------------------------------------------------------------------------- outcome


def cup_set_down(trace, layout) -> np.ndarray:
    """(T,) bool: the cup stands upright on the table, out of the fingers, at rest."""
    speed = np.linalg.norm(trace.vel("cup"), axis=1)
    return (~grasped(trace, "cup")) & (trace.tilt("cup") < UPRIGHT_TILT) & (cup_lowest_z(trace, layout) < 0.01) \
        & (speed < REST_SPEED)


def pour_success(trace, layout, nuts: NutStates) -> bool:
    """At least ``GOAL_SHARE`` of the nuts in the target, at most ``SPILL_TASK_SHARE`` spilled,
    the cup upright on the table, released and at rest."""
    share_in = nuts.in_target[-1].mean()
    share_out = nuts.spilled[-1].mean()
    return bool(share_in >= GOAL_SHARE and share_out <= SPILL_TASK_SHARE and cup_set_down(trace, layout)[-1])


def pour_progress(trace, layout, n_nuts: int) -> np.ndarray:
    """Progress in [0, 1] from privileged state.

    * reaching: 0 -> 0.2 as the TCP nears the grasp point on the cup;
    * cup held: 0.25; carried (lifted, and held or its grasp point within ``CARRY_SEPARATION``
      of the TCP, so a pad losing touch for a frame does not count):
      0.3 -> 0.5 as the TCP carrying it nears the target (horizontally);
    * nuts in the target: 0.5 + 0.35 x their share;
    * 1.0 once at least ``GOAL_SHARE`` are in and the cup stands released and at rest.
    """
    from simfail.scenes.pour import GRASP_Z

    nuts = nut_states(trace, layout, n_nuts)
    cup = trace.pos("cup")
    tpos = trace.pos("target")
    tcp = np.array(trace.tcp)
    grasp_pt = cup + np.array([0.0, 0.0, GRASP_Z])
    r0 = max(np.linalg.norm(tcp[0] - grasp_pt[0]), 1e-3)
    reach = 1.0 - np.clip(np.linalg.norm(tcp - grasp_pt, axis=1) / r0, 0.0, 1.0)
    d0 = max(np.linalg.norm(cup[0, :2] - tpos[0, :2]), 1e-3)
    # the carried cup's place is the TCP's (its body origin swings back as it tilts)
    close = 1.0 - np.clip(np.linalg.norm(tcp[:, :2] - tpos[:, :2], axis=1) / d0, 0.0, 1.0)
    held = grasped(trace, "cup")
    carried = lifted(trace, "cup") & (held | (grasp_separation(trace) < CARRY_SEPARATION))
    share = nuts.in_target.mean(axis=1)
    p = 0.2 * reach
    p = np.where(held, np.maximum(p, 0.25), p)
    p = np.where(carried, np.maximum(p, 0.3 + 0.2 * close), p)
    p = np.where(share > 0, np.maximum(p, 0.5 + 0.35 * share), p)
    p = np.where((share >= GOAL_SHARE) & cup_set_down(trace, layout), 1.0, p)
    return p.astype(np.float32)
