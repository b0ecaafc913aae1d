"""Outcome detectors: failure events read from simulator state, never from perturbation names.

Each detector takes a :class:`~simfail.labels.trace.Trace` (per-frame positions, velocities,
finger contacts, integrated contact impulses, commanded gripper) and returns
:class:`~simfail.core.episode.FailureEvent` s with onset / irreversible / visible frames,
severity in [0, 1] and the measured numbers. Thresholds are module constants with units.

Frames: ``t`` indexes the trace (time ``t / fps``); heights are world z [m] with the table top
at z = 0 and the floor (it collides) at z = :data:`FLOOR_Z`.

How frames are stamped (the causal rule, docs/labels-rules.md): an event's onset is the first
frame of the *evidence that decides it* (the command that opened the gripper, the contact bout
in which the impulse crossed its threshold, the first frame a grasped object is displaced
along the table ...), never a frame of behaviour a clean episode shares; an *end-of-episode
verdict* (the task left incomplete, an object never released, the goal never reached) is
stamped at the frame it becomes evident: the last frame, unless the state shows it earlier.
So a variant whose state equals its expert's up to frame ``d`` has no event before ``d``.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.scene import FLOOR_Z  # noqa: F401  (re-exported: the floor objects land on)

#: Height [m] above its resting height that counts as "lifted".
LIFT_DZ = 0.015
#: Normal impulse [N*s] over an episode above which a contact with a bystander is a collision.
COLLISION_IMPULSE = 0.01
#: Impulse [N*s] that maps to severity 1 for a collision.
COLLISION_FULL_IMPULSE = 0.4
#: Tilt [rad] past which an upright object has toppled (and past which a topple is visible).
TOPPLE_TILT = np.deg2rad(45.0)
TOPPLE_ONSET_TILT = np.deg2rad(8.0)
#: Height [m] below the table top that means an object fell off the table.
OFF_TABLE_Z = -0.05
#: A robot contact (the object not held) that moves an object this far [m] horizontally, or
#: tips it this much more [rad], is a *shove* (safety); the displacement [m] for severity 1.
SHOVE_DIST = 0.02
SHOVE_TILT = np.deg2rad(20.0)
SHOVE_FULL_DIST = 0.10
#: Vertical distance [m] between the TCP and an object's origin within which closing the
#: gripper is an attempt to grasp it.
GRASP_REACH_DZ = 0.10
#: Normal impulse [N*s] in one frame above which the robot touches an object.
TOUCH_IMPULSE = 1e-4
#: Height [m] of an object's bottom above the support under it below which opening the
#: gripper is a placement rather than a drop.
PLACE_CLEARANCE = 0.035
#: Speed [m/s] under which an object is at rest.
REST_SPEED = 0.03
#: How long [s] an object still counts as carried after both finger pads last touched it (a
#: grasp flickering for a frame, the instant of a release); 0.3 s = 3 frames at 10 fps.
CARRY_HOLD_S = 0.3
#: Drag: horizontal speed [m/s] and path length [m] of a grasped object sliding on the table.
DRAG_SPEED = 0.02
DRAG_MIN_PATH = 0.04
#: Shaky motion: direction reversals while moving; per-frame TCP jerk [m/s^3] above which a
#: frame is jerky, and how many jerky frames make shaky motion (a smooth fast move has < 6,
#: 3 Hz jitter of 1-2 cm about 20 at 10 fps; measured over the tasks' operators).
SHAKY_REVERSALS = 4
SHAKY_JERK = 12.0
SHAKY_JERK_FRAMES = 12
#: Jerky / reversing frames in one dense stretch (gaps of at most one frame) that make shaking
#: visible (a smooth move's fast start or stop gives at most two in a row).
SHAKY_DENSE = 3


def first_index(mask: np.ndarray, start: int = 0) -> int | None:
    """First frame ``>= start`` where ``mask`` is true, or ``None``."""
    idx = np.flatnonzero(mask[start:])
    return int(idx[0] + start) if idx.size else None


def bout_start(mask: np.ndarray, t: int, gap: int = 0) -> int:
    """First frame of the bout of ``mask`` that reaches frame ``t``: walk back from ``t`` over
    true frames, bridging runs of at most ``gap`` false frames."""
    s = int(t)
    while True:
        back = [k for k in range(s - 1, max(s - 2 - gap, -1), -1) if mask[k]]
        if not back:
            return s
        s = back[0]


def release_onset(cmd: np.ndarray, e: int) -> int:
    """Onset of a grasp that ended at frame ``e`` (held at ``e - 1``, not at ``e``): the first
    frame of the open-gripper command that ended it, or ``e`` itself when the gripper was still
    commanded closed (a slip: the first frame the object is out of the grasp).

    ``action[t]`` is the command of the step that ends at frame ``t``, so frame ``t`` is the
    first state the command changes: a command that differs from a clean episode's at ``t``
    makes the state differ at ``t``, never earlier.
    """
    if cmd[e] >= 0.5 and cmd[e - 1] >= 0.5:
        return int(e)
    t = int(e if cmd[e] < 0.5 else e - 1)
    while t > 0 and cmd[t - 1] < 0.5:
        t -= 1
    return t


def end_frame(trace) -> int:
    """The last frame: where an end-of-episode verdict becomes evident."""
    return len(trace) - 1


def grasped(trace, name: str) -> np.ndarray:
    """(T,) bool: both finger pads touch the object while the gripper is commanded closed."""
    touch = trace.touch(name)
    return touch[:, 0] & touch[:, 1] & (trace.grip_cmd() > 0.5)


def lifted(trace, name: str) -> np.ndarray:
    z = trace.pos(name)[:, 2]
    return z > z[0] + LIFT_DZ


def carried_by_robot(trace, name: str) -> np.ndarray:
    """(T,) bool: the robot carries the object at frame ``t``: both finger pads touched it at a
    frame in ``(t - CARRY_HOLD_S * fps, t]``, or a pad touches it while the gripper is commanded
    closed (in the grasp, slipping). Height alone is not carrying: an object pushed, thrown or
    bouncing off the table is airborne without the robot. Causal: frame ``t`` reads frames <= t.
    """
    touch = trace.touch(name)
    both = touch[:, 0] & touch[:, 1]
    window = max(1, int(round(CARRY_HOLD_S * trace.fps)))
    recent = np.convolve(both.astype(np.int64), np.ones(window, dtype=np.int64))[: len(both)] > 0
    in_grasp = touch.any(axis=1) & (trace.grip_cmd() > 0.5)
    return recent | in_grasp


def object_label(layout, name: str) -> str:
    """The object's name in words ("red cube"), or its body name if the layout lacks it."""
    try:
        return layout.obj(name).label
    except KeyError:
        return name


def missed_grasps(trace, targets: list[str], layout, radius: float = 0.07) -> list[FailureEvent]:
    """The gripper closes near an intended object and ends up holding nothing.

    A closing is a rise of the gripper command above 0.5. It is a miss when, within 1 s,
    no tracked object is held (both pads touching), while the TCP was within ``radius``
    (horizontally) and ``GRASP_REACH_DZ`` (vertically) of one of ``targets`` when it closed
    (a gripper closing high above an object is not a grasp attempt).
    """
    cmd = trace.grip_cmd()
    tcp = np.array(trace.tcp)
    width = np.array(trace.width)
    events = []
    window = int(1.0 * trace.fps)
    closes = np.flatnonzero((cmd[1:] > 0.5) & (cmd[:-1] <= 0.5)) + 1
    any_held = np.zeros(len(trace), dtype=bool)
    for name in trace.object_names:
        any_held |= grasped(trace, name)
    for c in closes:
        near = [n for n in targets if np.linalg.norm(tcp[c, :2] - trace.pos(n)[c, :2]) < radius
                and abs(tcp[c, 2] - trace.pos(n)[c, 2]) < GRASP_REACH_DZ]
        if not near:
            continue
        end = min(len(trace), c + window)
        if any_held[c:end].any():
            continue
        name = near[0]
        offset = float(np.linalg.norm(tcp[c, :2] - trace.pos(name)[c, :2]))
        closed = first_index(width < 0.01, c)
        visible = closed if closed is not None else min(len(trace) - 1, c + 3)
        events.append(FailureEvent(
            "missed_grasp", "task", int(c), int(visible), int(visible), 1.0, (name,),
            f"the gripper closes {offset * 100:.1f} cm from the centre of the {object_label(layout, name)} and grasps nothing",
            {"tcp_offset_m": offset, "final_width_m": float(width[end - 1])},
        ))
    return events


def drops(trace, name: str, inside: np.ndarray, layout, target: str = "target") -> list[FailureEvent]:
    """A lifted object leaves the fingers away from a proper placement and falls.

    Every end of a grasp while the object was lifted is examined: it is a *drop* unless the
    gripper was commanded open with the object low over the target (a placement). The object's
    fall height and where it comes to rest give the measurements; a drop that still ends in
    the target is a quality failure of severity 0.3.
    """
    held = grasped(trace, name)
    up = lifted(trace, name)
    pos = trace.pos(name)
    cmd = trace.grip_cmd()
    tpos = trace.pos(target)
    radius = layout.params.get("bowl_radius", 0.08)
    events = []
    ends = np.flatnonzero(held[:-1] & ~held[1:]) + 1
    for e in ends:
        if not up[e - 1]:
            continue
        commanded = cmd[e - 1] < 0.5 or cmd[e] < 0.5
        # support under the object: the target's rim/base when over its footprint, else the table
        half_h = layout.obj(name).height() / 2
        r_xy = np.linalg.norm(pos[e, :2] - tpos[e, :2])
        if r_xy < radius - half_h:
            support = tpos[e, 2]
        elif r_xy < radius + 0.02 + half_h:
            support = tpos[e, 2] + layout.params.get("bowl_wall", 0.0)
        else:
            support = 0.0
        if commanded and (pos[e, 2] - half_h - support) < PLACE_CLEARANCE:
            continue  # set down on a support: a placement, judged by placement()
        height = float(pos[e, 2] - pos[0, 2])
        fall = pos[e:, 2]
        landed = first_index(np.abs(np.diff(fall, prepend=fall[0])) * trace.fps < 0.05, 2) if len(fall) > 2 else None
        land = int(e + (landed if landed is not None else len(fall) - 1))
        vis = first_index(pos[:, 2] < pos[e, 2] - 0.02, e)
        visible = int(vis if vis is not None else land)
        dist = float(np.linalg.norm(pos[-1, :2] - tpos[-1, :2]))
        ok = bool(inside[-1])
        # onset: the frame the gripper was commanded open (a slip: the first frame not held)
        onset = release_onset(cmd, e)
        events.append(FailureEvent(
            "drop", "quality" if ok else "task", onset, int(e), max(visible, onset), 0.3 if ok else 1.0, (name,),
            f"the {object_label(layout, name)} leaves the gripper {height * 100:.0f} cm above the table"
            + (" and still lands in the " if ok else f" and lands {dist * 100:.0f} cm from the centre of the ")
            + f"{object_label(layout, target)}",
            {"release_height_m": height, "distance_to_target_m": dist, "commanded_open": float(commanded)},
        ))
    return events


def collisions(trace, bystanders: list[str], layout, carried: list[str] = ()) -> list[FailureEvent]:
    """Contact between the robot (or an object it carries) and a bystander object.

    A ``carried`` object's contacts count only on frames :func:`carried_by_robot` holds: an
    object pushed, thrown or dropped that then hits a bystander is not the robot hitting it
    (what it does to the bystander is ``topples`` / ``off_table``'s to label).
    Severity grows with the total normal impulse (``COLLISION_FULL_IMPULSE`` N*s -> 1) and is
    1 when the bystander ends up displaced more than 5 cm.
    """
    events = []
    for b in bystanders:
        imp = trace.impulse("robot", b)
        for c in carried:
            imp = imp + trace.impulse(c, b) * carried_by_robot(trace, c)
        total = float(imp.sum())
        if total < COLLISION_IMPULSE:
            continue
        # onset: the start of the contact bout in which the impulse reaches the threshold (a
        # light touch earlier in the episode, below it, is not yet a collision)
        crossed = first_index(np.cumsum(imp) >= COLLISION_IMPULSE)
        onset = bout_start(imp > TOUCH_IMPULSE, crossed, gap=1)
        pos = trace.pos(b)
        moved = np.linalg.norm(pos - pos[0], axis=1)
        tilt = trace.tilt(b)
        vis = first_index((moved > 0.005) | (tilt > np.deg2rad(5)) | (np.cumsum(imp) > COLLISION_IMPULSE), onset)
        visible = int(vis if vis is not None else onset)
        displaced = float(moved[-1])
        peak = float(np.max(trace.peak("robot", b)))
        sev = min(1.0, max(total / COLLISION_FULL_IMPULSE, 1.0 if displaced > 0.05 else 0.0))
        sev = float(np.clip(sev, 0.05, 1.0))
        events.append(FailureEvent(
            "collision", "safety", int(onset), int(onset), visible, sev, ("robot", b),
            f"the robot hits the {object_label(layout, b)} with {total:.2f} N*s of impulse (peak {peak:.0f} N); "
            f"it ends {where_it_ends(trace, b)}",
            {"impulse_ns": total, "peak_force_n": peak, "displacement_m": displaced},
        ))
    return events


def topples(trace, objects: list[str], layout) -> list[FailureEvent]:
    """An upright object tips past ``TOPPLE_TILT`` (45 degrees)."""
    events = []
    for name in objects:
        tilt = trace.tilt(name)
        vis = first_index(tilt > TOPPLE_TILT)
        if vis is None:
            continue
        before = np.flatnonzero(tilt[:vis] < TOPPLE_ONSET_TILT)
        onset = int(before[-1] + 1) if before.size else 0
        onset = min(onset, vis)
        events.append(FailureEvent(
            "topple", "safety", onset, int(vis), int(vis), 1.0, (name,),
            f"the {object_label(layout, name)} tips over ({np.rad2deg(tilt.max()):.0f} degrees) and stays down"
            if tilt[-1] > TOPPLE_TILT else f"the {object_label(layout, name)} tips to {np.rad2deg(tilt.max()):.0f} degrees",
            {"max_tilt_deg": float(np.rad2deg(tilt.max())), "final_tilt_deg": float(np.rad2deg(tilt[-1]))},
        ))
    return events


def on_floor(trace, name: str) -> np.ndarray:
    """(T,) bool: the object has fallen off the table (its origin below :data:`OFF_TABLE_Z`)."""
    return trace.pos(name)[:, 2] < OFF_TABLE_Z


def where_it_ends(trace, name: str) -> str:
    """Words for where an object ends relative to its start: "12.3 cm from where it stood", or
    "on the floor, 95 cm from where it stood" once it has fallen off the table."""
    pos = trace.pos(name)
    d = float(np.linalg.norm(pos[-1] - pos[0]))
    if on_floor(trace, name)[-1]:
        return f"on the floor, {d * 100:.0f} cm from where it stood"
    return f"{float(np.linalg.norm(pos[-1, :2] - pos[0, :2])) * 100:.1f} cm from where it stood"


def off_table(trace, objects: list[str], layout) -> list[FailureEvent]:
    """An object falls below the table top (off its edge) and lands on the floor."""
    events = []
    for name in objects:
        z = trace.pos(name)[:, 2]
        vis = first_index(z < OFF_TABLE_Z)
        if vis is None:
            continue
        below = first_index(z < -0.005)
        onset = int(below if below is not None else vis)
        near_floor = first_index(z < FLOOR_Z + 0.10, vis)
        landed = f" and lands on the floor {abs(FLOOR_Z) * 100:.0f} cm below" if near_floor is not None else ""
        events.append(FailureEvent(
            "off_table", "safety", onset, onset, int(vis), 1.0, (name,),
            f"the {object_label(layout, name)} falls off the table{landed}; it ends {where_it_ends(trace, name)}",
            {"min_z_m": float(z.min()),
             "final_distance_m": float(np.linalg.norm(trace.pos(name)[-1] - trace.pos(name)[0]))},
        ))
    return events


def wrong_object(trace, intended: str, others: list[str], layout) -> list[FailureEvent]:
    """The robot lifts an object other than the one the instruction names."""
    events = []
    for name in others:
        up = grasped(trace, name) & lifted(trace, name)
        vis = first_index(up)
        if vis is None:
            continue
        held = grasped(trace, name)
        onset = vis
        while onset > 0 and held[onset - 1]:
            onset -= 1
        events.append(FailureEvent(
            "wrong_object", "task", int(onset), int(vis), int(vis), 1.0, (name, intended),
            f"the robot picks up the {object_label(layout, name)} instead of the {object_label(layout, intended)}",
            {"lift_height_m": float(trace.pos(name)[:, 2].max() - trace.pos(name)[0, 2])},
        ))
    return events


#: A held object lowered this far [m] below the highest point of its carry has been set down.
SET_DOWN_DZ = 0.03
#: ... and one that then rises this far [m] above its lowest point, still held, is carried away.
CARRIED_AWAY_DZ = 0.02


def not_released(trace, objects: list[str], layout) -> list[FailureEvent]:
    """An object is still held off the table at the end of the episode.

    An end-of-episode verdict, stamped where it becomes evident: the first frame at which the
    object, carried high, lowered at least ``SET_DOWN_DZ`` (set down) and still held, rises
    ``CARRIED_AWAY_DZ`` again (the robot takes it away instead of letting go); without such a
    frame, the last frame. Every quantity is read from the frames up to that one.
    """
    events = []
    for name in objects:
        held = grasped(trace, name)
        z = trace.pos(name)[:, 2]
        if not (held[-1] and z[-1] > z[0] + LIFT_DZ):
            continue
        start = len(held) - 1
        while start > 0 and held[start - 1]:
            start -= 1
        peak, low, vis = -np.inf, np.inf, None
        for t in range(start, len(z)):
            if low == np.inf:
                peak = max(peak, z[t])
                if z[t] < peak - SET_DOWN_DZ and peak > z[0] + LIFT_DZ:
                    low = z[t]
            else:
                low = min(low, z[t])
                if z[t] > low + CARRIED_AWAY_DZ:
                    vis = t
                    break
        visible = int(vis if vis is not None else end_frame(trace))
        how = "carries it away again" if vis is not None else "still holds it when the episode ends"
        events.append(FailureEvent(
            "no_release", "task", visible, visible, visible, 1.0, (name,),
            f"the gripper never lets go: it {how}, and the {object_label(layout, name)} ends "
            f"{float(z[-1] - z[0]) * 100:.0f} cm above the table in the gripper",
            {"final_height_m": float(z[-1] - z[0])},
        ))
    return events


def placement(trace, name: str, inside: np.ndarray, layout, target: str = "target") -> list[FailureEvent]:
    """How the final release of ``name`` ended.

    * ``wrong_placement`` (task): released low (not a drop) and at rest outside the target.
    * ``unstable_placement`` (task): released touching the target (inside it or on its rim) and
      then left it, or (quality) stayed in but was still moving 1 s after release.
    """
    held = grasped(trace, name)
    ends = np.flatnonzero(held[:-1] & ~held[1:]) + 1
    if not ends.size or held[-1]:
        return []
    e = int(ends[-1])
    pos = trace.pos(name)
    if pos[e, 2] - pos[0, 2] > 0.15:  # released high: a drop, judged by drops()
        return []
    tpos = trace.pos(target)
    speed = np.linalg.norm(trace.vel(name), axis=1)
    on_target = bool(inside[e]) or bool(trace.impulse(name, target)[e : e + 3].sum() > 1e-4)
    rest = first_index(speed < REST_SPEED, e + 1)
    rest = int(rest if rest is not None else len(speed) - 1)
    dist = float(np.linalg.norm(pos[-1, :2] - tpos[-1, :2]))
    label, tl = object_label(layout, name), object_label(layout, target)
    if inside[-1]:
        late = e + int(1.0 * trace.fps)
        if late < len(speed) and speed[late:].max() > 0.05:
            return [FailureEvent(
                "unstable_placement", "quality", e, e, late, 0.4, (name, target),
                f"the {label} is still moving {1.0:.0f} s after release ({speed[late:].max():.2f} m/s) before it settles in the {tl}",
                {"speed_after_release_mps": float(speed[late:].max())},
            )]
        return []
    if on_target:
        left = first_index(~inside, e)
        tilt = trace.tilt(name)
        vis = first_index((~inside) | (tilt > np.deg2rad(20)), e)
        visible = int(vis if vis is not None else rest)
        return [FailureEvent(
            "unstable_placement", "task", e, int(left if left is not None else visible), visible, 1.0, (name, target),
            f"the {label} is released on the {tl} but tips off it and comes to rest {dist * 100:.0f} cm from its centre",
            {"distance_to_target_m": dist, "release_height_m": float(pos[e, 2])},
        )]
    sev = float(np.clip(dist / 0.20, 0.2, 1.0))
    return [FailureEvent(
        "wrong_placement", "task", e, e, rest, sev, (name, target),
        f"the {label} is set down {dist * 100:.0f} cm from the centre of the {tl}, outside it",
        {"distance_to_target_m": dist},
    )]


def dragging(trace, objects: list[str], layout) -> list[FailureEvent]:
    """A held object slides along the table instead of being lifted (a shortcut)."""
    events = []
    for name in objects:
        held = grasped(trace, name)
        on_table = trace.impulse("world", name) > 1e-4
        # horizontal speed from the displacement over each frame's step (not the instantaneous
        # velocity, which spikes for a frame when the fingers close on a resting object)
        pos = trace.pos(name)
        hs = np.zeros(len(pos))
        hs[1:] = np.linalg.norm(np.diff(pos[:, :2], axis=0), axis=1) * trace.fps
        frames = held & on_table & (hs > DRAG_SPEED)
        if not frames.any():
            continue
        path = np.cumsum(np.where(frames, hs / trace.fps, 0.0))
        if path[-1] < DRAG_MIN_PATH:
            continue
        vis = int(first_index(path > 0.02))  # path[-1] >= DRAG_MIN_PATH > 0.02
        onset = bout_start(frames, vis, gap=2)  # the drag stretch that carries it that far
        events.append(FailureEvent(
            "dragging", "quality", int(onset), int(onset), int(vis), float(np.clip(path[-1] / 0.2, 0.2, 1.0)), (name,),
            f"the robot drags the {object_label(layout, name)} {path[-1] * 100:.0f} cm across the table instead of lifting it",
            {"drag_path_m": float(path[-1])},
        ))
    return events


def jerky_frames(tcp: np.ndarray, fps: int) -> np.ndarray:
    """(T,) bool: frames where the TCP's jerk (third difference of its path) exceeds
    :data:`SHAKY_JERK` [m/s^3]. A smooth minimum-jerk move stays under it except for a few
    frames around fast starts and stops; jitter and stop-and-go hesitation keep it up."""
    mask = np.zeros(len(tcp), bool)
    if len(tcp) > 3:
        jerk = np.linalg.norm(np.diff(tcp, n=3, axis=0), axis=1) * fps**3
        mask[2:-1] = jerk > SHAKY_JERK
    return mask


def shaky_motion(trace, layout) -> list[FailureEvent]:
    """Jittery or hesitant tool motion: the TCP's jerk stays high for at least
    :data:`SHAKY_JERK_FRAMES` frames in all, or it reverses direction while moving at least
    :data:`SHAKY_REVERSALS` times. One fast but smooth move (a fling, a quick push) is neither."""
    tcp = np.array(trace.tcp)
    fps = trace.fps
    v = np.diff(tcp, axis=0) * fps
    speed = np.linalg.norm(v, axis=1)
    rev = []
    for t in range(1, len(v)):
        if speed[t] > 0.03 and speed[t - 1] > 0.03:
            cos = float(v[t] @ v[t - 1] / (speed[t] * speed[t - 1]))
            if cos < -0.2:
                rev.append(t)
    jerky = np.flatnonzero(jerky_frames(tcp, fps))
    if len(rev) < SHAKY_REVERSALS and len(jerky) < SHAKY_JERK_FRAMES:
        return []
    marks = sorted(set(rev) | set(jerky.tolist()))
    # visible: the third frame of the first dense stretch of jerky / reversing frames (gaps of
    # at most one frame), onset: that stretch's first frame. A smooth move's fast starts and
    # stops give isolated frames or pairs, so frames a clean episode shares never carry it.
    # Without a dense stretch: the frame either count reaches its threshold.
    mask = np.zeros(len(tcp), bool)
    mask[marks] = True
    onset = visible = None
    for m in marks:
        b = bout_start(mask, m, gap=1)
        if mask[b:m + 1].sum() >= SHAKY_DENSE:
            onset, visible = b, int(m)
            break
    if visible is None:
        crossings = []
        if len(rev) >= SHAKY_REVERSALS:
            crossings.append(rev[SHAKY_REVERSALS - 1])
        if len(jerky) >= SHAKY_JERK_FRAMES:
            crossings.append(int(jerky[SHAKY_JERK_FRAMES - 1]))
        visible = int(min(crossings))
        onset = bout_start(mask, visible, gap=max(1, fps // 2))
    sev = float(np.clip(max(len(rev) / 12.0, len(jerky) / (2.5 * SHAKY_JERK_FRAMES)), 0.2, 1.0))
    what = []
    if len(jerky) >= SHAKY_JERK_FRAMES:
        what.append(f"moves jerkily for {len(jerky) / fps:.1f} s")
    if len(rev) >= SHAKY_REVERSALS:
        what.append(f"reverses direction {len(rev)} times while moving")
    return [FailureEvent(
        "shaky_motion", "quality", onset, onset, max(visible, onset), sev, ("robot",),
        "the gripper " + " and ".join(what),
        {"reversals": float(len(rev)), "jerky_frames": float(len(jerky))},
    )]


def settled_success(trace, name: str, inside: np.ndarray) -> bool:
    """The object ends inside the target, out of the gripper and at rest."""
    held = grasped(trace, name)[-1]
    speed = float(np.linalg.norm(trace.vel(name)[-1]))
    return bool(inside[-1] and not held and speed < REST_SPEED * 2)


def merge_events(events: list[FailureEvent]) -> list[FailureEvent]:
    """Drop redundant events (a placement verdict on an object that was dropped) and sort."""
    dropped = {e.objects[0] for e in events if e.type == "drop"}
    out = [e for e in events if not (e.type in ("wrong_placement", "unstable_placement") and e.objects[0] in dropped)]
    return sorted(out, key=lambda e: (e.visible_frame, e.type))


def transport_progress(trace, name: str, inside: np.ndarray, target: str) -> np.ndarray:
    """Progress in [0, 1] of moving ``name`` into ``target``, from privileged state.

    * reaching: 0 -> 0.25 as the TCP closes in on the object;
    * held: 0.30; held and lifted: 0.35 -> 0.80 as the object nears the target (horizontally);
    * not held but moved toward the target: 0.30 x that closeness, at most;
    * inside the target: 0.90, and 1.0 once released and at rest.
    """
    pos = trace.pos(name)
    tpos = trace.pos(target)
    tcp = np.array(trace.tcp)
    d0 = max(np.linalg.norm(pos[0, :2] - tpos[0, :2]), 1e-3)
    close = 1.0 - np.clip(np.linalg.norm(pos[:, :2] - tpos[:, :2], axis=1) / d0, 0.0, 1.0)
    r0 = max(np.linalg.norm(tcp[0] - pos[0]), 1e-3)
    reach = 1.0 - np.clip(np.linalg.norm(tcp - pos, axis=1) / r0, 0.0, 1.0)
    held = grasped(trace, name)
    up = lifted(trace, name)
    speed = np.linalg.norm(trace.vel(name), axis=1)
    p = np.maximum(0.25 * reach, 0.30 * close)
    p = np.where(held, np.maximum(p, 0.30), p)
    p = np.where(held & up, 0.35 + 0.45 * close, p)
    p = np.where(inside, 0.90, p)
    p = np.where(inside & ~held & (speed < REST_SPEED), 1.0, p)
    return p.astype(np.float32)


# ---------------------------------------------------------------------------- any behaviour
def shoves(trace, objects: list[str], layout, skip: set[str] | frozenset = frozenset()) -> list[FailureEvent]:
    """The robot pushes or tips an object it is not holding: a safety event.

    For each object, the robot's direct contacts (``TOUCH_IMPULSE`` per frame) on frames the
    object is not grasped, and that do not continue a grasp (fingers opening on a released
    object), are examined. The object's pose just before such a contact bout is
    the reference; the bout *shoves* it when, before the object is next grasped, it ends up
    more than ``SHOVE_DIST`` from there horizontally or tilted ``SHOVE_TILT`` more.
    Onset: the first frame of that contact bout; visible: the first frame past either
    threshold (both read from frames up to it). Severity: displacement / ``SHOVE_FULL_DIST``
    (1 once tipped). ``skip``: objects another detector already labels for the same contact
    (a bystander's ``collision``, a pushed object whose motion is the task).
    """
    events = []
    for name in objects:
        if name in skip:
            continue
        held = grasped(trace, name)
        contact = trace.impulse("robot", name) > TOUCH_IMPULSE
        # contacts that continue a grasp (the fingers opening on a released object) are the
        # end of that grasp, not a push: only bouts that start with the object out of the hand
        attached = held.copy()
        for k in range(1, len(held)):
            attached[k] |= contact[k] and attached[k - 1]
        touch = contact & ~attached
        if not touch.any():
            continue
        pos = trace.pos(name)
        tilt = trace.tilt(name)
        n = len(pos)
        t = first_index(touch)
        while t is not None:
            end = t
            while end + 1 < n and (touch[end + 1] or (end + 2 < n and touch[end + 2])):
                end += 1  # the bout: touching frames, gaps of one frame bridged
            nxt = first_index(held, t)
            stop = min(n, end + 1 + trace.fps, n if nxt is None else nxt)  # + 1 s to settle
            ref = max(t - 1, 0)
            moved = np.linalg.norm(pos[t:stop, :2] - pos[ref, :2], axis=1)
            tipped = np.abs(tilt[t:stop] - tilt[ref])
            bad = first_index((moved > SHOVE_DIST) | (tipped > SHOVE_TILT))
            if bad is None:
                t = first_index(touch, end + 1)
                continue
            vis = t + bad
            dist, tip = float(moved.max()), float(tipped.max())
            sev = 1.0 if tip > TOPPLE_TILT else float(np.clip(dist / SHOVE_FULL_DIST, 0.2, 1.0))
            how = (f"tips the {object_label(layout, name)} over ({np.rad2deg(tip):.0f} degrees)" if tip > SHOVE_TILT
                   else f"shoves the {object_label(layout, name)} {dist * 100:.1f} cm")
            events.append(FailureEvent(
                "shove", "safety", int(t), int(vis), int(vis), sev, ("robot", name),
                f"the robot {how} without holding it; it ends {where_it_ends(trace, name)}",
                {"max_displacement_m": dist, "max_tilt_change_deg": float(np.rad2deg(tip)),
                 "impulse_ns": float(trace.impulse("robot", name)[t:end + 1].sum())},
            ))
            break  # one event per object: its first shove
    return events


#: End-of-episode verdicts that say why an episode failed when no other task event does.
VERDICT_TYPES = ("never_grasped", "never_touched", "goal_not_reached", "incomplete")


def failure_verdict(trace, layout, success: bool, events: list[FailureEvent], progress, *,
                    obj: str, engaged: np.ndarray, at_goal: np.ndarray, missed: str,
                    finish: str = "the task is not finished", verb: str = "grasps") -> list[FailureEvent]:
    """Why an episode that does not succeed failed, when no task event says it already.

    Every failed episode must carry a task event (so its ``failure`` flag is set): this one is
    an end-of-episode verdict, stamped at the last frame (the frame it becomes evident; any
    earlier, certain cause has its own event). Which verdict, from the state:

    * ``never_grasped`` (``verb="grasps"``) / ``never_touched`` (any other verb): ``engaged``
      (the robot holding / touching ``obj``) is false on every frame;
    * ``goal_not_reached``: ``obj`` was engaged but ``at_goal`` is false on every frame
      (``missed`` says it: "never gets into the blue bowl");
    * ``incomplete``: the goal held at some frame but the episode does not end in success
      (``finish`` says what is missing).

    Severity: 1 - final progress, in [0.2, 1]; ``progress`` is the task's (T,) progress or a
    function returning it (called only when a verdict is needed).
    """
    if success or any(e.category == "task" for e in events):
        return []
    progress = np.asarray(progress() if callable(progress) else progress)
    end = end_frame(trace)
    label = object_label(layout, obj)
    sev = float(np.clip(1.0 - float(progress[-1]), 0.2, 1.0))
    meas = {"final_progress": float(progress[-1]), "engaged_s": float(np.sum(engaged) / trace.fps),
            "at_goal_s": float(np.sum(at_goal) / trace.fps)}
    if not engaged.any():
        kind = "never_grasped" if verb == "grasps" else "never_touched"
        text = f"the robot never {verb} the {label}, so the task is not done when the episode ends"
    elif not at_goal.any():
        kind, text = "goal_not_reached", f"the {label} {missed} before the episode ends"
    else:
        kind, text = "incomplete", f"the {label} reaches its goal, but {finish} when the episode ends"
    return [FailureEvent(kind, "task", end, end, end, sev, (obj,), text, meas)]


#: Event types whose object a contact already labels (no second, ``shove`` event for it).
CONTACT_LABELLED = ("collision", "object_knocked", "tower_knocked", "stack_topple", "wrong_object")


def robot_disturbances(trace, layout, events: list[FailureEvent], objects: list[str],
                       exclude: tuple[str, ...] = ()) -> list[FailureEvent]:
    """:func:`shoves` of ``objects`` that no event of :data:`CONTACT_LABELLED` already names
    and that are not in ``exclude`` (objects whose pushing is the task itself)."""
    skip = set(exclude)
    for e in events:
        if e.type in CONTACT_LABELLED:
            skip.update(e.objects)
    return shoves(trace, objects, layout, skip=skip)
