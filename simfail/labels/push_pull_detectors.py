"""Push/Pull detectors: where the pushed object came to rest relative to the goal region.

Frames: ``t`` indexes the trace (time ``t / fps``). Positions are world frame [m], table top at
z = 0. The goal is a flat marker fixed on the table (a square aligned with world x/y or a disc)
of half size / radius ``layout.params["goal_half"]``; the *push direction* is the unit vector
from the object's initial centre to the goal's centre (both read from state, never from the
program). Every event is built from measured positions, contacts and velocities.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels import detectors as det
from simfail.labels.detectors import REST_SPEED, first_index, object_label

#: Robot-object normal impulse [N*s] in one frame that counts as the robot touching it.
TOUCH_IMPULSE = 1e-4
#: Tilt [rad] above which the pushed object is no longer upright at the end.
UPRIGHT_TILT = np.deg2rad(20.0)
#: Inside the goal but further than this fraction of its half size from the centre: imprecise.
IMPRECISE_FRACTION = 0.5
#: Distance [m] outside the goal that maps to severity 1 for a missed goal.
MISS_FULL = 0.10
#: Wrong object: a distractor the robot touched that moved at least ``WRONG_MOVE`` [m] and got
#: at least ``WRONG_CLOSER`` [m] closer to the goal, while the named object moved less than
#: ``TARGET_STILL`` [m].
WRONG_MOVE = 0.05
WRONG_CLOSER = 0.04
TARGET_STILL = 0.03


def distractors(layout) -> list[str]:
    """Names of the distractor blocks, sorted."""
    return sorted(r for r in layout.roles if r.startswith("distractor"))


def goal_center(layout) -> np.ndarray:
    """(2,) goal centre in the world x-y plane [m]."""
    return np.array(layout.obj("goal").pos[:2], float)


def inside_goal(xy: np.ndarray, layout) -> np.ndarray:
    """(T,) bool: points ``xy`` (T, 2) lie inside the goal region (square or disc)."""
    rel = np.atleast_2d(xy) - goal_center(layout)
    h = layout.params["goal_half"]
    if layout.params["goal_round"]:
        return np.linalg.norm(rel, axis=1) <= h
    return np.max(np.abs(rel), axis=1) <= h


def outside_distance(xy: np.ndarray, layout) -> np.ndarray:
    """(T,) distance [m] from points ``xy`` to the goal region (0 inside)."""
    rel = np.atleast_2d(xy) - goal_center(layout)
    h = layout.params["goal_half"]
    if layout.params["goal_round"]:
        return np.maximum(np.linalg.norm(rel, axis=1) - h, 0.0)
    return np.linalg.norm(np.maximum(np.abs(rel) - h, 0.0), axis=1)


def push_axes(trace, layout) -> tuple[np.ndarray, np.ndarray]:
    """(unit push direction, unit lateral direction) in the x-y plane, from the object's initial
    centre to the goal centre."""
    u = goal_center(layout) - trace.pos("object")[0, :2]
    u = u / max(np.linalg.norm(u), 1e-9)
    return u, np.array([-u[1], u[0]])


def touched(trace, name: str) -> np.ndarray:
    """(T,) bool: the robot pushes on ``name`` during the step ending at each frame."""
    return trace.impulse("robot", name) > TOUCH_IMPULSE


def fell(trace, name: str) -> bool:
    """``name`` dropped below ``det.OFF_TABLE_Z`` at some frame (it left the table)."""
    return bool(trace.pos(name)[:, 2].min() < det.OFF_TABLE_Z)


def goal_outcome(trace, layout) -> list[FailureEvent]:
    """Where the object came to rest if not in the goal: ``overshoot`` (beyond it along the push),
    ``undershoot`` (short of it) or ``missed_goal`` (beside it); ``imprecise_placement``
    (quality) when it is inside but far from the centre. Objects that fell off the table or
    toppled are left to those detectors.
    """
    name = "object"
    if fell(trace, name) or trace.tilt(name).max() > det.TOPPLE_TILT:
        return []
    pos = trace.pos(name)[:, :2]
    u, lat = push_axes(trace, layout)
    rel = pos - goal_center(layout)
    along, side = rel @ u, rel @ lat
    h = float(layout.params["goal_half"])
    inside = inside_goal(pos, layout)
    touch = touched(trace, name)
    last = first_index(touch[::-1])
    last_touch = len(touch) - 1 - last if last is not None else 0
    speed = np.linalg.norm(trace.vel(name)[:, :2], axis=1)
    rest = first_index(speed < REST_SPEED, last_touch + 1)
    rest = int(rest if rest is not None else len(speed) - 1)
    slide = float(np.sum(speed[last_touch + 1:]) / trace.fps)
    label, gl = object_label(layout, name), object_label(layout, "goal")
    if inside[-1]:
        off = float(np.linalg.norm(rel[-1]))
        if off <= IMPRECISE_FRACTION * h:
            return []
        sev = float(np.clip((off - IMPRECISE_FRACTION * h) / ((1 - IMPRECISE_FRACTION) * h), 0.1, 1.0))
        return [FailureEvent(
            "imprecise_placement", "quality", int(last_touch), int(last_touch), rest, sev, (name, "goal"),
            f"the {label} stops inside the {gl} but {off * 100:.1f} cm from its centre "
            f"(the {gl} is {h * 200:.0f} cm across)",
            {"offset_from_center_m": off, "goal_half_m": h},
        )]
    miss = float(outside_distance(pos[-1:], layout)[0])
    sev = float(np.clip(miss / MISS_FULL, 0.2, 1.0))
    meas = {"distance_outside_goal_m": miss, "along_push_m": float(along[-1]), "lateral_m": float(side[-1]),
            "slide_after_contact_m": slide, "speed_at_last_contact_mps": float(speed[last_touch])}
    if along[-1] > 0 and along[-1] >= abs(side[-1]):
        cross = first_index(along > h)
        cross = int(cross if cross is not None else rest)
        onset = min(cross, last_touch)
        how = (f"after the gripper lets go at {speed[last_touch]:.2f} m/s it slides {slide * 100:.0f} cm on"
               if cross > last_touch else "the gripper pushes it past the goal")
        return [FailureEvent(
            "overshoot", "task", onset, max(cross, onset), max(cross, onset), sev, (name, "goal"),
            f"the {label} ends {miss * 100:.1f} cm beyond the {gl} along the push: {how}",
            {**meas, "overshoot_m": miss},
        )]
    short = along[-1] < 0 and -along[-1] >= abs(side[-1])
    kind, where = ("undershoot", "short of") if short else ("missed_goal", "beside")
    # an end-of-episode verdict: evident at the last frame (an object at rest outside the goal
    # can still be pushed in); its onset is the robot's last push, or the last frame if the
    # robot never pushed it
    end = det.end_frame(trace)
    onset = int(last_touch) if touch.any() else end
    how = "" if touch.any() else " (the robot never pushes it)"
    return [FailureEvent(
        kind, "task", onset, end, end, sev, (name, "goal"),
        f"the {label} comes to rest {miss * 100:.1f} cm {where} the {gl}{how}",
        meas,
    )]


def wrong_object(trace, layout) -> list[FailureEvent]:
    """The robot pushes a distractor toward the goal while the named object stays put."""
    events = []
    g = goal_center(layout)
    moved_target = float(np.linalg.norm(trace.pos("object")[-1, :2] - trace.pos("object")[0, :2]))
    if moved_target >= TARGET_STILL:
        return []
    for name in distractors(layout):
        touch = touched(trace, name)
        pos = trace.pos(name)[:, :2]
        moved = np.linalg.norm(pos - pos[0], axis=1)
        closer = float(np.linalg.norm(pos[0] - g) - np.linalg.norm(pos[-1] - g))
        if not touch.any() or moved[-1] < WRONG_MOVE or closer < WRONG_CLOSER:
            continue
        onset = first_index(touch)
        vis = first_index(moved > 0.02, onset)
        vis = int(vis if vis is not None else onset)
        ended_in = bool(inside_goal(pos[-1:], layout)[0])
        events.append(FailureEvent(
            "wrong_object", "task", int(onset), vis, vis, 1.0, (name, "object"),
            f"the robot pushes the {object_label(layout, name)} {moved[-1] * 100:.0f} cm, "
            f"{closer * 100:.0f} cm closer to the "
            f"{object_label(layout, 'goal')}{' and into it' if ended_in else ''}, while the {object_label(layout, 'object')} "
            f"moves {moved_target * 100:.1f} cm",
            {"distractor_moved_m": float(moved[-1]), "closer_to_goal_m": closer, "target_moved_m": moved_target,
             "ended_in_goal": float(ended_in)},
        ))
    return events


def detect(trace, layout) -> tuple[bool, list[FailureEvent]]:
    """(success, events) of a push/pull episode. Success: the object's centre rests inside the
    goal, upright, not touched by the robot in the last frame, and no failure event at all."""
    events: list[FailureEvent] = []
    wrong = wrong_object(trace, layout)
    pushed = {e.objects[0] for e in wrong}
    events += wrong
    free = layout.free_objects
    off = det.off_table(trace, free, layout)
    events += off
    gone = {e.objects[0] for e in off}
    events += det.topples(trace, [n for n in free if n not in gone], layout)
    events += det.collisions(trace, [n for n in ["bottle", *distractors(layout)] if n not in pushed], layout)
    if not wrong:  # pushing a distractor instead already explains where the object is
        events += goal_outcome(trace, layout)
    events += det.shaky_motion(trace, layout)
    # the pushed object's motion is the task (judged by goal_outcome, topples, off_table)
    events += det.robot_disturbances(trace, layout, events, free, exclude=("object", *pushed))
    pos = trace.pos("object")
    speed = float(np.linalg.norm(trace.vel("object")[-1]))
    ok = bool(inside_goal(pos[-1:, :2], layout)[0] and speed < 2 * REST_SPEED
              and trace.tilt("object")[-1] < UPRIGHT_TILT and not touched(trace, "object")[-1] and pos[-1, 2] > -0.005)
    ok = ok and not any(e.category == "task" for e in events)
    events += det.failure_verdict(
        trace, layout, ok, events, lambda: push_progress(trace, layout), obj="object", engaged=touched(trace, "object"),
        at_goal=inside_goal(pos[:, :2], layout), missed=f"never gets onto the {object_label(layout, 'goal')}",
        finish="it does not end there upright, at rest and let go", verb="touches")
    return ok, det.merge_events(events)


def push_progress(trace, layout) -> np.ndarray:
    """Progress in [0, 1] per frame, from privileged state.

    * reaching: up to 0.2 as the TCP closes in on the object (3-D distance);
    * pushing: 0.2 -> 0.9 as the object's centre closes in on the goal's centre;
    * inside the goal: at least 0.9; 1.0 once it rests there, upright and untouched.
    Off the table the progress is 0.
    """
    pos = trace.pos("object")
    g = goal_center(layout)
    tcp = np.array(trace.tcp)
    d = np.linalg.norm(pos[:, :2] - g, axis=1)
    close = 1.0 - np.clip(d / max(d[0], 1e-3), 0.0, 1.0)
    r = np.linalg.norm(tcp - pos, axis=1)
    reach = 1.0 - np.clip(r / max(r[0], 1e-3), 0.0, 1.0)
    inside = inside_goal(pos[:, :2], layout)
    speed = np.linalg.norm(trace.vel("object"), axis=1)
    still = inside & (speed < REST_SPEED) & (trace.tilt("object") < UPRIGHT_TILT) & ~touched(trace, "object")
    p = np.maximum(0.2 * reach, np.where(close > 0.02, 0.2 + 0.7 * close, 0.0))
    p = np.where(inside, np.maximum(p, 0.9), p)
    p = np.where(still, 1.0, p)
    p = np.where(pos[:, 2] < det.OFF_TABLE_Z, 0.0, p)
    return p.astype(np.float32)
