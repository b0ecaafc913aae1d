"""Detectors of the tool-use (wiping) task, read from simulator state only.

The tool is an eraser (body ``tool``: a flat head with a handle, origin at the head's centre),
the marks are small tiles (``mark0``...) on a fixed ``board``; wiping pushes them over the
board's edge into a ``tray``. A mark *is on the board* while its centre lies over the board's
top face (in x-y) and no lower than the board top. Frames index the trace (time ``t / fps``);
positions are world frame [m], table top at z = 0.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels import detectors as det
from simfail.labels.detectors import first_index, object_label

#: Share of the marks that must leave the board for the wiping to count as done.
SUCCESS_SHARE = 0.85
#: Height [m] of the eraser head's bottom above the surface under it, above which a grasp
#: that ends is a drop (the tool falls), and above which a commanded release is rough.
DROP_GAP = 0.04
ROUGH_GAP = 0.012
#: Fall [m] of the tool relative to the TCP within ``CONFIRM_S`` that confirms it left the hand.
FALL_CONFIRM = 0.02
CONFIRM_S = 1.0
#: A tool lying on a surface is upright below this tilt [rad].
UPRIGHT_TILT = np.deg2rad(20.0)
#: Height [m] of the tool's bottom above the table below which it stands on the table.
ON_TABLE_GAP = 0.01
#: Contact impulse [N*s] between the robot and the marks (tool not held) that is a shortcut,
#: and the mark displacement [m] that shows the marks were pushed.
SHORTCUT_IMPULSE = 0.003
SHORTCUT_MOVE = 0.02
#: Head centre may lie this far [m] outside the board's outline and still be "over the board".
OVER_BOARD_MARGIN = 0.02
#: Head centre this close [m] to the board's outline rests (partly) on the board: the head's
#: half width across its long axis.
HEAD_ON_BOARD_MARGIN = 0.016


def board_geometry(layout) -> tuple[np.ndarray, np.ndarray, float]:
    """Board centre x-y [m], half extents x-y [m] and top height [m]."""
    b = layout.obj("board")
    return np.array(b.pos[:2], float), np.array(b.size[:2], float), float(b.pos[2] + b.size[2])


def over_board(xy: np.ndarray, layout, margin: float = 0.0) -> np.ndarray:
    """(T,) bool: points ``xy`` (T, 2) [m] lie over the board's outline grown by ``margin``."""
    c, h, _ = board_geometry(layout)
    return np.all(np.abs(xy - c) <= h + margin, axis=-1)


def marks_on_board(trace, layout, marks: list[str]) -> np.ndarray:
    """(T, N) bool: each mark's centre is over the board and not below its top surface."""
    _, _, top = board_geometry(layout)
    out = []
    for m in marks:
        p = trace.pos(m)
        out.append(over_board(p[:, :2], layout) & (p[:, 2] > top))
    return np.stack(out, axis=1)


def cleared_share(trace, layout, marks: list[str]) -> np.ndarray:
    """(T,) share of the marks that are off the board."""
    return 1.0 - marks_on_board(trace, layout, marks).mean(axis=1)


def head_gap(trace, layout) -> np.ndarray:
    """(T,) height [m] of the eraser head's bottom above the surface under its centre."""
    p = trace.pos("tool")
    half = layout.obj("tool").size[2]
    _, _, top = board_geometry(layout)
    support = np.where(over_board(p[:, :2], layout, HEAD_ON_BOARD_MARGIN), top, 0.0)
    return p[:, 2] - half - support


def tool_lifted(trace) -> np.ndarray:
    """(T,) bool: the tool is held and its origin is above its starting height."""
    return det.grasped(trace, "tool") & det.lifted(trace, "tool")


def grasp_ends(trace) -> np.ndarray:
    """Frames at which a grasp of the tool ends (held at ``e - 1``, not at ``e``)."""
    held = det.grasped(trace, "tool")
    return np.flatnonzero(held[:-1] & ~held[1:]) + 1


def _left_hand(trace, e: int) -> bool:
    """The tool drops ``FALL_CONFIRM`` relative to the TCP within ``CONFIRM_S`` of frame ``e``."""
    tcp = np.array(trace.tcp)[:, 2]
    z = trace.pos("tool")[:, 2]
    rel = tcp - z
    end = min(len(z), e + int(CONFIRM_S * trace.fps) + 1)
    return bool(np.any(rel[e:end] > rel[e - 1] + FALL_CONFIRM))


def tool_drops(trace, layout) -> list[FailureEvent]:
    """The eraser leaves the fingers with its head more than ``DROP_GAP`` above the surface
    under it and falls (commanded open too early, or slipping out)."""
    gap = head_gap(trace, layout)
    cmd = trace.grip_cmd()
    z = trace.pos("tool")[:, 2]
    events = []
    for e in grasp_ends(trace):
        if gap[e - 1] <= DROP_GAP or not _left_hand(trace, e):
            continue
        commanded = bool(cmd[e - 1] < 0.5 or cmd[e] < 0.5)
        onset = det.release_onset(cmd, e)
        vis = first_index(z < z[e] - 0.02, e)
        visible = int(vis if vis is not None else e)
        where = "board" if over_board(trace.pos("tool")[-1:, :2], layout)[0] else "table"
        events.append(FailureEvent(
            "tool_drop", "task", onset, int(e), max(visible, onset), 1.0, ("tool",),
            f"the {object_label(layout, 'tool')} leaves the gripper with its head {gap[e - 1] * 100:.0f} cm above the "
            f"surface below and falls onto the {where}"
            + (" after the gripper opens" if commanded else " while the gripper is closed"),
            {"release_gap_m": float(gap[e - 1]), "commanded_open": float(commanded)},
        ))
    return events


def rough_put_down(trace, layout) -> list[FailureEvent]:
    """The gripper opens with the eraser's head ``ROUGH_GAP``..``DROP_GAP`` above the surface:
    the tool is let fall instead of set down (a quality problem; severity grows with the gap)."""
    gap = head_gap(trace, layout)
    cmd = trace.grip_cmd()
    events = []
    for e in grasp_ends(trace):
        g = float(gap[e - 1])
        if not (ROUGH_GAP < g <= DROP_GAP) or not (cmd[e - 1] < 0.5 or cmd[e] < 0.5):
            continue
        sev = float(np.clip(g / DROP_GAP, 0.3, 1.0))
        events.append(FailureEvent(
            "rough_put_down", "quality", det.release_onset(cmd, e), int(e), int(e), sev, ("tool",),
            f"the gripper opens with the {object_label(layout, 'tool')}'s head {g * 100:.1f} cm above the surface, "
            "letting it fall instead of setting it down",
            {"release_gap_m": g},
        ))
    return events


def tool_not_returned(trace, layout) -> list[FailureEvent]:
    """After its last release the eraser does not stand upright on the table: it lies on the
    board, in the tray, or tipped over. (A tool still held at the end is ``no_release``.)"""
    ends = grasp_ends(trace)
    held = det.grasped(trace, "tool")
    if not ends.size or held[-1]:
        return det.not_released(trace, ["tool"], layout)
    e = int(ends[-1])
    p = trace.pos("tool")
    tilt = trace.tilt("tool")
    bottom = p[-1, 2] - layout.obj("tool").size[2]
    on_table = bottom < ON_TABLE_GAP and not over_board(p[-1:, :2], layout)[0]
    upright = tilt[-1] < UPRIGHT_TILT
    if on_table and upright:
        return []
    if not upright:
        state = f"tipped over ({np.rad2deg(tilt[-1]):.0f} degrees)"
    elif over_board(p[-1:, :2], layout)[0]:
        state = f"lying on the {object_label(layout, 'board')}"
    else:
        state = f"resting {bottom * 100:.1f} cm above the table"
    vis = first_index(tilt > UPRIGHT_TILT, e) if not upright else e
    return [FailureEvent(
        "tool_not_put_down", "task", e, e, int(vis if vis is not None else e), 1.0, ("tool",),
        f"the {object_label(layout, 'tool')} is not put back on the table: it ends {state}",
        {"final_tilt_deg": float(np.rad2deg(tilt[-1])), "final_bottom_height_m": float(bottom)},
    )]


def wiping_result(trace, layout, marks: list[str]) -> list[FailureEvent]:
    """Marks left on the board at the end.

    Fewer than ``SUCCESS_SHARE`` removed is ``incomplete_wiping`` (task, severity = share
    left); any mark left with the share reached is ``marks_missed`` (quality). Both are
    end-of-episode verdicts, stamped at the last frame (where they become evident: marks left
    on the board can still be wiped while the episode runs); ``wiping_stopped_s`` measures
    when the wiping stopped (the last change of the count, or the eraser's last frame over the
    board, whichever is later).
    """
    on = marks_on_board(trace, layout, marks)
    count = on.sum(axis=1)
    left = int(count[-1])
    if left == 0:
        return []
    n = len(marks)
    changes = np.flatnonzero(np.diff(count)) + 1
    over = np.flatnonzero(over_board(trace.pos("tool")[:, :2], layout, OVER_BOARD_MARGIN) & det.grasped(trace, "tool"))
    stop = max(int(changes[-1]) if changes.size else 0, int(over[-1]) if over.size else 0)
    stop = stop if stop > 0 else len(count) - 1
    end = det.end_frame(trace)
    removed = 1.0 - left / n
    names = tuple(m for m, o in zip(marks, on[-1]) if o)
    lbl = object_label(layout, "board")
    if removed < SUCCESS_SHARE:
        return [FailureEvent(
            "incomplete_wiping", "task", end, end, end, float(np.clip(left / n, 0.2, 1.0)), ("board", *names),
            f"{left} of {n} marks are still on the {lbl} when the episode ends ({removed:.0%} removed)",
            {"marks_left": float(left), "share_removed": removed, "wiping_stopped_s": stop / trace.fps},
        )]
    return [FailureEvent(
        "marks_missed", "quality", end, end, end, float(left / n), ("board", *names),
        f"{left} of {n} marks stay on the {lbl}: the board is mostly but not fully wiped ({removed:.0%} removed)",
        {"marks_left": float(left), "share_removed": removed, "wiping_stopped_s": stop / trace.fps},
    )]


def gripper_wiping(trace, layout, marks: list[str]) -> list[FailureEvent]:
    """A shortcut: the robot pushes the marks with its own fingers/hand (not through a held
    eraser). Robot-mark contact impulse while the tool is not held must exceed
    ``SHORTCUT_IMPULSE`` and the touched marks must move ``SHORTCUT_MOVE``."""
    held = det.grasped(trace, "tool")
    imp = np.zeros(len(trace))
    moved = []
    for m in marks:
        im = trace.impulse("robot", m) * ~held
        imp += im
        if im.sum() > 1e-4:
            p = trace.pos(m)
            moved.append(float(np.linalg.norm(p[-1, :2] - p[0, :2])))
    total = float(imp.sum())
    if total < SHORTCUT_IMPULSE or not moved or max(moved) < SHORTCUT_MOVE:
        return []
    onset = int(first_index(imp > 1e-4))
    vis = first_index(np.cumsum(imp) > SHORTCUT_IMPULSE)
    used = bool(tool_lifted(trace).any())
    return [FailureEvent(
        "gripper_wiping", "task", onset, onset, int(vis if vis is not None else onset), 1.0 if not used else 0.6,
        ("robot", *[m for m in marks if (trace.impulse("robot", m) * ~held).sum() > 1e-4]),
        f"the robot pushes {len(moved)} marks with its fingers ({total:.3f} N*s of contact, up to "
        f"{max(moved) * 100:.0f} cm) instead of wiping with the {object_label(layout, 'tool')}"
        + (", which it never picks up" if not used else ""),
        {"finger_mark_impulse_ns": total, "marks_touched": float(len(moved)), "max_mark_move_m": max(moved),
         "tool_lifted": float(used)},
    )]


def merge_tool_events(events: list[FailureEvent]) -> list[FailureEvent]:
    """Drop a put-down verdict on a tool that was dropped (the drop explains it); sort."""
    if any(e.type == "tool_drop" for e in events):
        events = [e for e in events if e.type not in ("tool_not_put_down", "rough_put_down")]
    return sorted(events, key=lambda e: (e.visible_frame, e.type))


def wiped_success(trace, layout, marks: list[str], events: list[FailureEvent]) -> bool:
    """Success: the eraser was lifted and used, ``SUCCESS_SHARE`` of the marks are off the board,
    the eraser stands upright on the table out of the gripper, and no task failure happened
    (a setback the robot repaired, the eraser taken again after a drop, does not count:
    docs/recovery.md)."""
    from simfail.labels.recovery import repaired_setbacks

    repaired = {id(e) for e, _ in repaired_setbacks(trace, events)}
    if any(e.category == "task" and id(e) not in repaired for e in events):
        return False
    share = float(cleared_share(trace, layout, marks)[-1])
    return bool(tool_lifted(trace).any() and share >= SUCCESS_SHARE and not det.grasped(trace, "tool")[-1]
                and put_down(trace, layout)[-1])


def put_down(trace, layout) -> np.ndarray:
    """(T,) bool: the eraser stands upright on the table (not on the board), out of the
    gripper and at rest."""
    p = trace.pos("tool")
    bottom = p[:, 2] - layout.obj("tool").size[2]
    speed = np.linalg.norm(trace.vel("tool"), axis=1)
    return ((bottom < ON_TABLE_GAP) & ~over_board(p[:, :2], layout) & (trace.tilt("tool") < UPRIGHT_TILT)
            & ~det.grasped(trace, "tool") & (speed < det.REST_SPEED))


def wipe_progress(trace, layout, marks: list[str], used: np.ndarray | None = None) -> np.ndarray:
    """Progress in [0, 1] from privileged state.

    * reaching: 0 -> 0.15 as the TCP closes in on the handle;
    * tool held: 0.20; once it has been lifted: 0.25 + 0.55 x share of marks off the board;
    * tool used and put down upright on the table, released, at rest: 0.25 + 0.75 x share;
    * tool never lifted: at most 0.30 x share of marks off the board (moved some other way).

    ``used`` (T,) bool: whether the tool has been lifted by each frame; default the running OR
    of :func:`tool_lifted` over ``trace``. The online progress passes it for a two-frame view
    (frames 0 and t) with the OR carried over the frames in between.
    """
    tool = trace.pos("tool")
    handle = tool + np.array([0.0, 0.0, layout.obj("tool").size[2] + 0.04])
    tcp = np.array(trace.tcp)
    d = np.linalg.norm(tcp - handle, axis=1)
    reach = 1.0 - np.clip(d / max(d[0], 1e-3), 0.0, 1.0)
    held = det.grasped(trace, "tool")
    if used is None:
        used = np.maximum.accumulate(tool_lifted(trace))
    share = cleared_share(trace, layout, marks)
    p = 0.15 * reach
    p = np.where(held, np.maximum(p, 0.20), p)
    p = np.where(used, np.maximum(p, 0.25 + 0.55 * share), np.maximum(p, 0.30 * share))
    p = np.where(used & put_down(trace, layout), 0.25 + 0.75 * share, p)
    return np.clip(p, 0.0, 1.0).astype(np.float32)
