"""Detectors of the open/close task: how an articulation (drawer slide, door hinge) moved.

Everything is read from the recorded joint state (``trace.joint_qpos`` / ``joint_qvel`` of the
layout's joint), finger contacts with the articulated body, contact impulses and the poses of
the bystanders. Joint values are metres (slide) or radians (hinge); speeds are reported as the
*handle's* linear speed [m/s] (the hinge rate times the handle's distance from the axis) so
drawers and doors share thresholds. A joint's *fraction* is its value over its range (0 =
closed, 1 = fully open).

Frames: ``t`` indexes the trace (time ``t / fps``); heights are world z [m], table top z = 0.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels.detectors import end_frame, first_index, object_label

#: Fraction of the range an "open" task must reach, and that a "close" task must get under.
OPEN_GOAL = 0.85
CLOSED_GOAL = 0.05
#: Handle speed [m/s] under which the articulation is at rest.
REST_SPEED = 0.01
#: Band [fraction of the range] next to an end stop that counts as "at the stop".
STOP_BAND = 0.012
#: Distance [fraction of the range] from a stop within which turning back counts as a bounce.
STOP_NEAR = 0.05
#: Handle speed [m/s] into an end stop above which the joint *slams* (safety) ...
SLAM_SPEED = 0.25
#: ... and above which (but below SLAM_SPEED) it stops hard (a quality problem).
HARD_STOP_SPEED = 0.10
#: Frames [1] the handle must stay out of both fingers, commanded closed, to count as lost.
SLIP_FRAMES = 3
#: A bystander on a fixture's top is *knocked* when it moves this far [m] horizontally, tilts
#: past this angle [rad], or drops this far [m] below where it stood (fell off the top).
KNOCK_SHIFT = 0.02
KNOCK_TILT = np.deg2rad(20.0)
FALL_DZ = 0.03
#: Robot-to-fixture-shell normal impulse [N*s] over an episode that counts as a bump, and the
#: impulse that maps to severity 1.
BUMP_IMPULSE = 0.02
BUMP_FULL_IMPULSE = 0.5
#: Share of the range the *other* articulation may move before it counts as the wrong one.
WRONG_MOVE = 0.10

#: Moving body and handle body of each articulation, and the bodies a robot must not hit.
BODIES = {"drawer": "drawer", "door": "door"}
HANDLES = {"drawer": "drawer_handle", "door": "door_handle"}
FIXTURE_BODIES = ("cabinet", "drawer", "box", "door")


def body_name(layout) -> str:
    """Name of the moving body (``drawer`` or ``door``) of the layout's articulation."""
    return BODIES[layout.params["articulation"]]


def handle_name(layout) -> str:
    """Name of the handle body (a tracked entity) of the layout's articulation."""
    return HANDLES[layout.params["articulation"]]


def lever(layout) -> float:
    """Metres of handle travel per joint unit: 1 for the slide, the handle's radius for the hinge."""
    if layout.params["articulation"] == "drawer":
        return 1.0
    x, y, _ = layout.params["handle_local"]
    return float(np.hypot(x, y))


def fraction(trace, layout) -> np.ndarray:
    """(T,) joint value over its range (0 closed, 1 fully open)."""
    p = layout.params
    return trace.joint_qpos(p["joint"])[:, 0] / p["joint_range"]


def handle_speed(trace, layout) -> np.ndarray:
    """(T,) unsigned handle speed [m/s] along the joint's path."""
    return np.abs(trace.joint_qvel(layout.params["joint"])[:, 0]) * lever(layout)


def in_goal(frac: np.ndarray, action: str) -> np.ndarray:
    return frac >= OPEN_GOAL if action == "open" else frac <= CLOSED_GOAL


def travel(trace, layout) -> np.ndarray:
    """(T,) share in [0, 1] of the way from the start to the goal threshold covered so far."""
    p = layout.params
    frac = fraction(trace, layout)
    s0 = p["start_fraction"]
    if p["action"] == "open":
        return np.clip((frac - s0) / (OPEN_GOAL - s0), 0.0, 1.0)
    return np.clip((s0 - frac) / (s0 - CLOSED_GOAL), 0.0, 1.0)


def holding(trace, layout) -> np.ndarray:
    """(T,) bool: both finger pads touch the articulated body (its handle) while commanded closed."""
    touch = trace.touch(handle_name(layout))
    return touch[:, 0] & touch[:, 1] & (trace.grip_cmd() > 0.5)


def handle_world(trace, layout) -> np.ndarray:
    """(T, 3) world position [m] of the handle's grasp point (the handle body's origin)."""
    return trace.pos(handle_name(layout))


def reached_goal_at_rest(trace, layout) -> bool:
    """Success: the joint ends in the goal region, at rest, out of the gripper."""
    frac = fraction(trace, layout)
    touch = trace.touch(handle_name(layout))[-1].any()
    return bool(in_goal(frac, layout.params["action"])[-1] and handle_speed(trace, layout)[-1] < REST_SPEED
                and not touch)


def progress(trace, layout) -> np.ndarray:
    """Progress in [0, 1] per frame, from privileged state.

    * reaching: 0 -> 0.25 as the TCP closes in on the handle;
    * moving: 0.25 + 0.65 x the share of the way to the goal threshold covered (``travel``);
    * 1.0 once the joint is in the goal region, at rest and released.
    """
    tcp = np.array(trace.tcp)
    handle = handle_world(trace, layout)
    d0 = max(float(np.linalg.norm(tcp[0] - handle[0])), 1e-3)
    reach = 1.0 - np.clip(np.linalg.norm(tcp - handle, axis=1) / d0, 0.0, 1.0)
    tr = travel(trace, layout)
    p = np.where(tr > 0.02, 0.25 + 0.65 * tr, 0.25 * reach)
    done = in_goal(fraction(trace, layout), layout.params["action"]) & (handle_speed(trace, layout) < REST_SPEED)
    done &= ~trace.touch(handle_name(layout)).any(axis=1)
    p = np.where(done, 1.0, p)
    return p.astype(np.float32)


# ---------------------------------------------------------------------------- events
def stop_impacts(trace, layout) -> list[tuple[int, float, str]]:
    """Arrivals at an end stop: (frame, handle speed [m/s] at impact, ``open`` | ``closed``).

    An arrival is a frame where the joint enters the ``STOP_BAND`` next to a stop, or where it
    has turned back since the previous frame although it was then moving toward the stop and
    within ``STOP_NEAR`` of it or close enough to reach it within one frame at its speed (a
    bounce between two frames: damping and friction slow a joint, only a stop reverses it).
    The impact speed is the handle's speed toward the stop in the previous frame (or over the
    last frame, for an entry into the band).
    """
    p = layout.params
    frac = fraction(trace, layout)
    units = p["joint_range"] * lever(layout)  # metres of handle travel per unit of fraction
    qv = trace.joint_qvel(p["joint"])[:, 0] * lever(layout)
    mean = np.abs(np.diff(frac, prepend=frac[0])) * units * trace.fps
    out = []
    for stop, sign in (("open", 1.0), ("closed", -1.0)):
        gap = (1.0 - frac) if sign > 0 else frac  # distance to the stop [fraction]
        band = gap <= STOP_BAND
        toward = sign * qv
        for t in range(1, len(frac)):
            reach = gap[t - 1] <= max(STOP_NEAR, toward[t - 1] / trace.fps / units)
            bounced = toward[t - 1] > 0 and toward[t] < 0 and reach
            if band[t] and not band[t - 1]:
                out.append((t, float(max(toward[t - 1], mean[t], 0.0)), stop))
            elif bounced:
                out.append((t, float(toward[t - 1]), stop))
    return sorted(out)


def _noun(layout) -> str:
    return layout.params["articulation"]


def slams(trace, layout) -> list[FailureEvent]:
    """The joint hits an end stop fast: ``slam`` (safety) above ``SLAM_SPEED``, ``hard_stop``
    (quality) above ``HARD_STOP_SPEED``. One event per episode, for the hardest impact."""
    impacts = [i for i in stop_impacts(trace, layout) if i[1] >= HARD_STOP_SPEED]
    if not impacts:
        return []
    t, v, stop = max(impacts, key=lambda i: i[1])
    speed = handle_speed(trace, layout)
    onset = t - 1
    while onset > 0 and speed[onset - 1] >= HARD_STOP_SPEED:
        onset -= 1
    what = f"the {_noun(layout)} hits its {stop} stop with the handle moving at {v:.2f} m/s"
    meas = {"impact_speed_mps": v, "peak_speed_mps": float(speed.max())}
    if v >= SLAM_SPEED:
        sev = float(np.clip(0.5 + 0.5 * (v - SLAM_SPEED) / SLAM_SPEED, 0.5, 1.0))
        return [FailureEvent("slam", "safety", int(onset), t, t, sev, (body_name(layout),),
                             what + f" (slam: over {SLAM_SPEED:.2f} m/s)", meas)]
    sev = float(np.clip(v / SLAM_SPEED, 0.2, 1.0))
    return [FailureEvent("hard_stop", "quality", int(onset), t, t, sev, (body_name(layout),),
                         what + f" (harder than the {HARD_STOP_SPEED:.2f} m/s a gentle stop allows)", meas)]


def handle_slips(trace, layout) -> list[FailureEvent]:
    """The gripper loses the handle while still commanded closed, before the goal is reached.

    A loss is the last frame a pad touches the handle after it was held (both pads on it),
    followed by ``SLIP_FRAMES`` frames with no pad on it while the gripper command stays closed.
    """
    held = holding(trace, layout)
    touch = trace.touch(handle_name(layout)).any(axis=1)
    cmd = trace.grip_cmd() > 0.5
    frac = fraction(trace, layout)
    goal = in_goal(frac, layout.params["action"])
    tr = travel(trace, layout)
    width = np.array(trace.width)
    for e in np.flatnonzero(touch[:-1] & ~touch[1:]) + 1:
        window = slice(e - 1, e + SLIP_FRAMES)
        if e + SLIP_FRAMES > len(touch) or touch[e : e + SLIP_FRAMES].any() or not cmd[window].all():
            continue
        if goal[e] or not held[:e].any():
            continue
        final_ok = bool(goal[-1])
        # onset: the first frame no pad touches the handle (the state before it is a grasp)
        return [FailureEvent(
            "handle_slip", "quality" if final_ok else "task", int(e), int(e), int(e + 1),
            0.3 if final_ok else float(np.clip(1.0 - tr[-1], 0.3, 1.0)), (body_name(layout),),
            f"the fingers slide off the {_noun(layout)} handle at {frac[e] * 100:.0f}% of its range while still "
            f"closed (they close to {width[e + SLIP_FRAMES - 1] * 100:.1f} cm); it ends {frac[-1] * 100:.0f}% open",
            {"fraction_at_loss": float(frac[e]), "final_fraction": float(frac[-1]), "travel_done": float(tr[-1]),
             "width_after_loss_m": float(width[e + SLIP_FRAMES - 1])},
        )]
    return []


def rebounds(trace, layout, impacts: list[FailureEvent]) -> list[FailureEvent]:
    """Delayed failure: the joint reaches the goal, hits the stop there, and bounces back out of
    the goal region on its own (no finger on the handle), ending short."""
    p = layout.params
    frac = fraction(trace, layout)
    goal = in_goal(frac, p["action"])
    goal_stop = "open" if p["action"] == "open" else "closed"
    hits = [i for i in stop_impacts(trace, layout) if i[2] == goal_stop and i[1] >= HARD_STOP_SPEED]
    if not hits or goal[-1]:
        return []
    t = hits[0][0]
    left = first_index(~goal, t)
    touch = trace.touch(handle_name(layout)).any(axis=1)
    if left is None or touch[t:].any():
        return []
    return [FailureEvent(
        "rebound", "task", t, left, left, float(np.clip(1.0 - travel(trace, layout)[-1], 0.3, 1.0)),
        (body_name(layout),),
        f"the {_noun(layout)} hits its {goal_stop} stop at {hits[0][1]:.2f} m/s, bounces back and comes to rest "
        f"{frac[-1] * 100:.0f}% open",
        {"impact_speed_mps": hits[0][1], "final_fraction": float(frac[-1])},
    )]


def incomplete(trace, layout) -> list[FailureEvent]:
    """The joint ends outside the goal region (short of open, or not shut).

    An end-of-episode verdict: stamped at the last frame, where it becomes evident (a joint at
    rest short of the goal can still be finished while the episode runs).
    """
    p = layout.params
    frac = fraction(trace, layout)
    if in_goal(frac, p["action"])[-1]:
        return []
    tr = travel(trace, layout)
    end = end_frame(trace)
    goal = f"at least {OPEN_GOAL * 100:.0f}% open" if p["action"] == "open" else f"under {CLOSED_GOAL * 100:.0f}% open"
    return [FailureEvent(
        "incomplete", "task", end, end, end, float(np.clip(1.0 - tr[-1], 0.2, 1.0)), (body_name(layout),),
        f"the {_noun(layout)} ends {frac[-1] * 100:.0f}% open ({tr[-1] * 100:.0f}% of the way), not {goal}",
        {"final_fraction": float(frac[-1]), "travel_done": float(tr[-1])},
    )]


def not_settled(trace, layout) -> list[FailureEvent]:
    """The joint is in the goal region at the end but still moving."""
    v = handle_speed(trace, layout)
    if not in_goal(fraction(trace, layout), layout.params["action"])[-1] or v[-1] < REST_SPEED:
        return []
    t = len(v) - 1
    return [FailureEvent("not_settled", "task", t, t, t, 0.3, (body_name(layout),),
                         f"the {_noun(layout)} is still moving at {v[-1]:.3f} m/s when the episode ends",
                         {"final_speed_mps": float(v[-1])})]


def wrong_articulation(trace, layout) -> list[FailureEvent]:
    """The articulation the instruction does not name is moved."""
    p = layout.params
    other = "door" if p["articulation"] == "drawer" else "drawer"
    rng = p[f"{other}_range"]
    q = trace.joint_qpos("door_hinge" if other == "door" else "drawer_slide")[:, 0] / rng
    moved = np.abs(q - q[0])
    vis = first_index(moved > WRONG_MOVE)
    if vis is None:
        return []
    onset = first_index(moved > 0.01) or vis
    return [FailureEvent("wrong_articulation", "task", onset, vis, vis, 1.0, (other, p["articulation"]),
                         f"the robot moves the {other} ({moved.max() * 100:.0f}% of its range) instead of the "
                         f"{p['articulation']}", {"other_max_fraction": float(moved.max())})]


def articulation_events(trace, layout) -> list[FailureEvent]:
    """Slam / hard stop, handle slip, rebound, incomplete and not-settled events.

    ``incomplete`` is left out when a slip or a rebound already explains the short ending.
    """
    impacts = slams(trace, layout)
    slip = handle_slips(trace, layout)
    bounce = rebounds(trace, layout, impacts)
    out = impacts + slip + bounce + wrong_articulation(trace, layout) + not_settled(trace, layout)
    if not any(e.category == "task" for e in slip + bounce):
        out += incomplete(trace, layout)
    return out


def knocked_off(trace, names: list[str], layout) -> list[FailureEvent]:
    """A bystander standing on a fixture's top is pushed, tipped, or falls off it."""
    events = []
    for name in names:
        pos = trace.pos(name)
        shift = np.linalg.norm(pos[:, :2] - pos[0, :2], axis=1)
        tilt = trace.tilt(name)
        drop = pos[0, 2] - pos[:, 2]
        bad = (shift > KNOCK_SHIFT) | (tilt > KNOCK_TILT) | (drop > FALL_DZ)
        vis = first_index(bad)
        if vis is None:
            continue
        onset = first_index((shift > 0.002) | (tilt > np.deg2rad(3.0))) or vis
        fell = bool(drop[-1] > FALL_DZ)
        sev = 1.0 if fell or tilt[-1] > np.deg2rad(45.0) else float(np.clip(shift[-1] / 0.06, 0.3, 1.0))
        how = "falls off the top" if fell else (f"tips to {np.rad2deg(tilt.max()):.0f} degrees" if tilt.max() > KNOCK_TILT
                                                 else f"is pushed {shift.max() * 100:.1f} cm across the top")
        events.append(FailureEvent(
            "object_knocked", "safety", int(min(onset, vis)), int(vis), int(vis), sev, (name,),
            f"the {object_label(layout, name)} standing on the fixture {how}; it ends {pos[-1, 2] * 100:.0f} cm high, "
            f"{shift[-1] * 100:.1f} cm from where it stood",
            {"max_shift_m": float(shift.max()), "max_tilt_deg": float(np.rad2deg(tilt.max())),
             "final_drop_m": float(drop[-1])},
        ))
    return events


def fixture_bumps(trace, layout) -> list[FailureEvent]:
    """The robot hits a fixture: the cabinet or box shell, or the drawer or door (not a handle)."""
    events = []
    for name in FIXTURE_BODIES:
        imp = trace.impulse("robot", name)
        total = float(imp.sum())
        if total < BUMP_IMPULSE:
            continue
        onset = first_index(imp > 1e-4)
        peak = float(trace.peak("robot", name).max())
        events.append(FailureEvent(
            "fixture_bump", "safety", int(onset), int(onset), int(onset),
            float(np.clip(total / BUMP_FULL_IMPULSE, 0.1, 1.0)), ("robot", name),
            f"the robot strikes the {object_label(layout, name)} with {total:.2f} N*s of impulse (peak {peak:.0f} N)",
            {"impulse_ns": total, "peak_force_n": peak},
        ))
    return events
