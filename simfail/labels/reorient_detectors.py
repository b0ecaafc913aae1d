"""Reorient detectors: orientation outcome, drops while rotating, rolling off after release.

The task object is a cylinder lying on its side whose body frame has its x axis along the
cylinder's axis (see ``scenes/reorient.py``). Its *orientation* is that axis as a line (the
cylinder looks the same end to end). The goal is a line ``goal_dir`` (unit, world frame) and
the expert turns the axis by ``delta`` radians about ``rot_axis`` (unit, world frame).

Frames: ``t`` indexes the trace (time ``t / fps``); world z up [m], table top at z = 0.
Angles are radians inside, degrees in rationales and ``*_deg`` measurements.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels import detectors as det

#: Final orientation error [rad] above which the reorientation failed.
ORIENT_TOL = np.deg2rad(10.0)
#: Final orientation error [rad] above which a successful reorientation is imprecise (quality).
PRECISE_TOL = np.deg2rad(5.0)
#: Residual error [rad] that maps to severity 1 for an incomplete rotation.
FULL_RESIDUAL = np.deg2rad(45.0)
#: Rotation past the goal [rad] while held, later corrected, that counts as an overshoot.
OVERSHOOT_TOL = np.deg2rad(5.0)
#: Overshoot [rad] that maps to severity 1.
FULL_OVERSHOOT = np.deg2rad(40.0)
#: Angular speed [rad/s] of the held object under which its rotation has stopped.
ROT_STOP_SPEED = np.deg2rad(4.0)
#: Height [m] of the object's bottom above the table below which opening the gripper is a
#: placement rather than a drop.
PLACE_CLEARANCE = 0.035
#: Horizontal travel [m] after release beyond which the object rolled off, and at which the
#: roll becomes visible in the cameras.
ROLL_DIST = 0.04
ROLL_VISIBLE = 0.015
#: Roll distance [m] that maps to severity 1.
FULL_ROLL = 0.15
#: Horizontal distance [m] from the goal centre within which the object counts as on its goal.
GOAL_RADIUS = 0.04
#: Speed [m/s] under which the object is at rest.
REST_SPEED = 0.03


def axis(trace, name: str) -> np.ndarray:
    """(T, 3) unit direction of the body x axis (the cylinder's axis), world frame."""
    q = trace.quat(name)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], axis=1)


def orientation_error(trace, layout, name: str = "object") -> np.ndarray:
    """(T,) angle [rad, 0..pi/2] between the object's axis line and the goal line."""
    g = np.asarray(layout.params["goal_dir"], float)
    return np.arccos(np.clip(np.abs(axis(trace, name) @ g), 0.0, 1.0))


def rotation_travel(trace, layout, name: str = "object") -> np.ndarray:
    """(T,) signed angle [rad] the axis has turned about ``rot_axis`` since frame 0, counted
    positive toward the goal (so the goal sits at ``|delta|``), unwrapped over time."""
    u = np.asarray(layout.params["rot_axis"], float)
    a = axis(trace, name)
    a0 = a[0]
    ang = np.unwrap(np.arctan2(np.cross(a0, a) @ u, a @ a0))
    return ang * np.sign(layout.params["delta"])


def grasp_ends(trace, name: str) -> np.ndarray:
    """Frames where a grasp of ``name`` ends (held at ``e - 1``, not at ``e``)."""
    held = det.grasped(trace, name)
    return np.flatnonzero(held[:-1] & ~held[1:]) + 1


def _bottom(trace, layout, name: str) -> np.ndarray:
    """(T,) height [m] of the cylinder's lowest point (rim or side, from its axis' tilt)."""
    r, hl = layout.obj(name).size
    s = np.clip(np.abs(axis(trace, name)[:, 2]), 0.0, 1.0)
    return trace.pos(name)[:, 2] - (hl * s + r * np.sqrt(1.0 - s * s))


def _commanded_start(trace, e: int) -> int:
    """The frame the gripper was commanded open for the grasp end at ``e`` (``e`` for a slip);
    see :func:`simfail.labels.detectors.release_onset`."""
    return det.release_onset(trace.grip_cmd(), e)


def is_drop(trace, layout, e: int, name: str = "object") -> bool:
    """The grasp end at frame ``e`` left the object high in the air (not a set-down)."""
    return bool(_bottom(trace, layout, name)[e - 1] > PLACE_CLEARANCE)


def final_release(trace, layout, name: str = "object") -> int | None:
    """Frame of the last grasp end that was a set-down (not a drop), or None."""
    ends = [int(e) for e in grasp_ends(trace, name) if not is_drop(trace, layout, int(e), name)]
    return ends[-1] if ends else None


def drops(trace, layout, name: str = "object") -> list[FailureEvent]:
    """The object leaves the fingers with its bottom more than ``PLACE_CLEARANCE`` above the table.

    A drop after which the object still comes to rest on its goal within ``ORIENT_TOL`` (it
    fell into place) is a quality failure of severity 0.3, otherwise a task failure.
    """
    events = []
    pos = trace.pos(name)
    travel = rotation_travel(trace, layout, name)
    for e in grasp_ends(trace, name):
        e = int(e)
        if not is_drop(trace, layout, e, name):
            continue
        height = float(_bottom(trace, layout, name)[e - 1])
        vis = det.first_index(pos[:, 2] < pos[e - 1, 2] - 0.02, e)
        free = det.first_index(~trace.touch(name).any(axis=1), e)  # the last pad lets go
        done = float(np.rad2deg(travel[free if free is not None else e - 1]))
        total = float(np.rad2deg(abs(layout.params["delta"])))
        ok = _placed(trace, layout, name)
        events.append(FailureEvent(
            "drop", "quality" if ok else "task", _commanded_start(trace, e), e, int(vis if vis is not None else e),
            0.3 if ok else 1.0, (name,),
            f"the {det.object_label(layout, name)} leaves the gripper {height * 100:.0f} cm above the table after turning "
            f"{done:.0f} of {total:.0f} degrees" + (" and still falls into place" if ok else ""),
            {"release_height_m": height, "turned_deg": done, "goal_turn_deg": total},
        ))
    return events


def orientation_outcome(trace, layout, name: str = "object") -> list[FailureEvent]:
    """How far from the goal orientation the object ends.

    * ``incomplete_rotation`` (task): final error above ``ORIENT_TOL`` with the object turned
      less than the goal turn; ``over_rotation`` (task) when it was turned past the goal.
    * ``orientation_lost`` (task, delayed): let go within ``ORIENT_TOL`` but ending outside it
      (a standing can tips over, a rolling one twists); onset at the release.
    * ``imprecise_orientation`` (quality): final error between ``PRECISE_TOL`` and ``ORIENT_TOL``.

    Onset: the frame the held object stopped turning (its last frame turning faster than
    ``ROT_STOP_SPEED``); irreversible and visible: the set-down release (or the last frame).
    """
    err = orientation_error(trace, layout, name)
    final = float(err[-1])
    if final <= PRECISE_TOL:
        return []
    rel = final_release(trace, layout, name)
    end = rel if rel is not None else len(err) - 1
    travel = rotation_travel(trace, layout, name)
    held = det.grasped(trace, name)
    rate = np.abs(np.diff(travel, prepend=travel[0])) * trace.fps
    turning = np.flatnonzero(held[:end] & (rate[:end] > ROT_STOP_SPEED))
    onset = int(turning[-1] + 1) if turning.size else int(end)
    goal = float(abs(layout.params["delta"]))
    turned = float(travel[end])
    deg = float(np.rad2deg(final))
    m = {"residual_deg": deg, "turned_deg": float(np.rad2deg(turned)), "goal_turn_deg": float(np.rad2deg(goal))}
    label = det.object_label(layout, name)
    if final <= ORIENT_TOL:
        sev = float(np.clip((final - PRECISE_TOL) / (ORIENT_TOL - PRECISE_TOL), 0.1, 1.0)) * 0.5
        return [FailureEvent(
            "imprecise_orientation", "quality", onset, end, end, sev, (name,),
            f"the {label} ends {deg:.1f} degrees off the goal orientation, inside the {np.rad2deg(ORIENT_TOL):.0f} degree "
            "tolerance but not square", m)]
    sev = float(np.clip(final / FULL_RESIDUAL, 0.3, 1.0))
    if rel is not None and err[rel] <= ORIENT_TOL:
        lost = det.first_index(err > ORIENT_TOL, rel)
        return [FailureEvent(
            "orientation_lost", "task", rel, rel, int(lost), sev, (name,),
            f"the {label} is let go {np.rad2deg(err[rel]):.0f} degrees off the goal orientation but is knocked "
            f"out of it after release and ends {deg:.0f} degrees off", m)]
    kind = "over_rotation" if turned > goal else "incomplete_rotation"
    return [FailureEvent(
        kind, "task", onset, end, end, sev, (name,),
        f"the {label} is turned {np.rad2deg(turned):.0f} degrees for a {np.rad2deg(goal):.0f} degree goal turn "
        f"and ends {deg:.0f} degrees off the goal orientation", m)]


def overshoot(trace, layout, name: str = "object") -> list[FailureEvent]:
    """While held, the object is turned more than ``OVERSHOOT_TOL`` past the goal and then turned
    back to within ``ORIENT_TOL`` (an overshoot-and-correct: quality)."""
    err = orientation_error(trace, layout, name)
    if err[-1] > ORIENT_TOL:
        return []
    travel = rotation_travel(trace, layout, name)
    held = det.grasped(trace, name)
    past = np.where(held, travel - abs(layout.params["delta"]), -np.inf)
    peak = int(np.argmax(past))
    over = float(past[peak])
    if over <= OVERSHOOT_TOL:
        return []
    onset = det.first_index(past > np.deg2rad(2.0))
    vis = det.first_index(past > OVERSHOOT_TOL)
    sev = float(np.clip(over / FULL_OVERSHOOT, 0.2, 1.0))
    return [FailureEvent(
        "overshoot", "quality", int(onset), int(peak), int(vis), sev, (name,),
        f"the {det.object_label(layout, name)} is turned {np.rad2deg(over):.0f} degrees past the goal before being turned back",
        {"overshoot_deg": float(np.rad2deg(over))})]


def rolls_off(trace, layout, name: str = "object") -> list[FailureEvent]:
    """After the set-down release the object rolls away: it travels more than ``ROLL_DIST``
    horizontally, or more than ``ROLL_VISIBLE`` and comes to rest off its goal (farther than
    ``GOAL_RADIUS`` from the goal centre).

    A delayed failure: onset and irreversible frame are the release, visible is the first
    frame the object has moved ``ROLL_VISIBLE`` from where it was let go.
    """
    e = final_release(trace, layout, name)
    if e is None:
        return []
    pos = trace.pos(name)
    moved = np.linalg.norm(pos[:, :2] - pos[e, :2], axis=1)
    moved[:e] = 0.0
    dist = float(moved.max())
    off_goal = float(np.linalg.norm(pos[-1, :2] - np.asarray(layout.params["goal_xy"], float)))
    if not (dist > ROLL_DIST or (dist > ROLL_VISIBLE and off_goal > GOAL_RADIUS)):
        return []
    vis = det.first_index(moved > ROLL_VISIBLE, e)
    speed = float(np.linalg.norm(trace.vel(name)[e:, :2], axis=1).max())
    return [FailureEvent(
        "rolled_off", "task", int(e), int(e), int(vis), float(np.clip(dist / FULL_ROLL, 0.3, 1.0)), (name,),
        f"after release the {det.object_label(layout, name)} rolls {dist * 100:.0f} cm (up to {speed:.2f} m/s) and ends "
        f"{off_goal * 100:.0f} cm from the goal",
        {"roll_distance_m": dist, "distance_to_goal_m": off_goal, "max_speed_mps": speed})]


def misplaced(trace, layout, name: str = "object") -> list[FailureEvent]:
    """The object is set down (and stays) farther than ``GOAL_RADIUS`` from the goal centre."""
    e = final_release(trace, layout, name)
    if e is None:
        return []
    pos = trace.pos(name)
    goal = np.asarray(layout.params["goal_xy"], float)
    at_release = float(np.linalg.norm(pos[e, :2] - goal))
    final = float(np.linalg.norm(pos[-1, :2] - goal))
    if final <= GOAL_RADIUS or at_release <= GOAL_RADIUS:
        return []
    return [FailureEvent(
        "misplaced", "task", int(e), int(e), int(e), float(np.clip(final / FULL_ROLL, 0.3, 1.0)), (name,),
        f"the {det.object_label(layout, name)} is set down {at_release * 100:.0f} cm from the goal centre and rests "
        f"{final * 100:.0f} cm from it", {"distance_to_goal_m": final, "release_distance_m": at_release})]


def _placed(trace, layout, name: str = "object") -> bool:
    """Final state: on the table, at rest, on the goal and within ``ORIENT_TOL`` of it."""
    pos = trace.pos(name)
    on_table = _bottom(trace, layout, name)[-1] < 0.01
    rest = float(np.linalg.norm(trace.vel(name)[-1])) < REST_SPEED
    on_goal = float(np.linalg.norm(pos[-1, :2] - np.asarray(layout.params["goal_xy"], float))) < GOAL_RADIUS
    return bool(on_table and rest and on_goal and orientation_error(trace, layout, name)[-1] <= ORIENT_TOL)


def settled(trace, layout, name: str = "object") -> bool:
    """Success state: released, and on the goal at rest within ``ORIENT_TOL`` (see ``_placed``)."""
    return bool(not det.grasped(trace, name)[-1] and _placed(trace, layout, name))


def reorient_progress(trace, layout, name: str = "object") -> np.ndarray:
    """Progress in [0, 1] per frame from privileged state.

    * reaching: 0 -> 0.25 as the TCP closes in on the object;
    * held: 0.30 -> 0.85 as the orientation error shrinks;
    * not held: 0.30 x the share of the initial error removed, at most (a knocked object);
    * released on the table within ``ORIENT_TOL``, on the goal: 0.9, and 1.0 once at rest.
    """
    err = orientation_error(trace, layout, name)
    turned = 1.0 - np.clip(err / max(float(err[0]), 1e-3), 0.0, 1.0)
    pos = trace.pos(name)
    tcp = np.array(trace.tcp)
    r0 = max(float(np.linalg.norm(tcp[0] - pos[0])), 1e-3)
    reach = 1.0 - np.clip(np.linalg.norm(tcp - pos, axis=1) / r0, 0.0, 1.0)
    held = det.grasped(trace, name)
    on_goal = np.linalg.norm(pos[:, :2] - np.asarray(layout.params["goal_xy"], float), axis=1) < GOAL_RADIUS
    down = _bottom(trace, layout, name) < 0.01
    speed = np.linalg.norm(trace.vel(name), axis=1)
    ok = ~held & down & on_goal & (err <= ORIENT_TOL)
    p = np.maximum(0.25 * reach, 0.30 * turned * ~held)
    p = np.where(held, np.maximum(p, 0.30 + 0.55 * turned), p)
    p = np.where(ok, 0.90, p)
    p = np.where(ok & (speed < REST_SPEED), 1.0, p)
    return p.astype(np.float32)
