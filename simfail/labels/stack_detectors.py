"""Detectors of the stack task: which block rests on which, and how towers fail.

All quantities come from the recorded simulator state (block poses, velocities, finger
contacts, contact impulses). Blocks are cubes; a block's half size is read from the layout.
Positions are world frame [m] (table top at z = 0); ``t`` indexes trace frames.

Relations:

* ``resting(a, b)`` (per frame): ``a`` sits on ``b``: the height difference of their centres is
  within ``Z_TOL`` of ``h_a + h_b``, ``a``'s centre lies over ``b``'s top face (offset in ``b``'s
  face frame below ``h_b`` on both axes, i.e. its centre of mass is over the support) and
  ``a`` is tilted less than ``UPRIGHT_TILT``.
* ``touching_top(a, b)``: as ``resting`` but with the footprints merely overlapping (offset
  below ``h_a + h_b``); used to find where a block was released.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.labels.detectors import LIFT_DZ, PLACE_CLEARANCE, REST_SPEED, first_index, object_label, grasped, lifted

#: Tolerance [m] on the centre-height difference of a block resting on another.
Z_TOL = 0.008
#: Tilt [rad] under which a block counts as upright.
UPRIGHT_TILT = np.deg2rad(12.0)
#: Tilt [rad] at which a falling block is plainly visible.
VISIBLE_TILT = np.deg2rad(20.0)
#: Horizontal misalignment [m] of a block on its support above which a stack is untidy (quality).
MISALIGN_TOL = 0.006
#: Frames a block must stay at rest on its support to count as having stood there.
STAND_FRAMES = 5
#: Seconds after a grasp ends within which a dropped block must fall ``FALL_DZ`` [m].
FALL_WINDOW_S = 1.0
FALL_DZ = 0.02
#: Impulse [N*s] between the robot (or a carried block) and a tower block that counts as a hit.
HIT_IMPULSE = 2e-3


def half(layout, name: str) -> float:
    """Half size [m] of a cube."""
    return float(layout.obj(name).size[2])


def yaw(trace, name: str) -> np.ndarray:
    """(T,) yaw [rad] of a body about world z."""
    q = trace.quat(name)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return np.arctan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def face_offset(trace, a: str, b: str) -> np.ndarray:
    """(T, 2) horizontal offset [m] of ``a``'s centre from ``b``'s, in ``b``'s face frame."""
    d = trace.pos(a)[:, :2] - trace.pos(b)[:, :2]
    c, s = np.cos(yaw(trace, b)), np.sin(yaw(trace, b))
    return np.stack([c * d[:, 0] + s * d[:, 1], -s * d[:, 0] + c * d[:, 1]], axis=1)


def _height_ok(trace, a: str, b: str, layout) -> np.ndarray:
    dz = trace.pos(a)[:, 2] - trace.pos(b)[:, 2]
    return np.abs(dz - half(layout, a) - half(layout, b)) < Z_TOL


def resting(trace, a: str, b: str, layout) -> np.ndarray:
    """(T,) bool: ``a`` sits on ``b`` with its centre of mass over ``b``'s top face."""
    over = np.abs(face_offset(trace, a, b)).max(axis=1) < half(layout, b)
    return over & _height_ok(trace, a, b, layout) & (trace.tilt(a) < UPRIGHT_TILT)


def touching_top(trace, a: str, b: str, layout) -> np.ndarray:
    """(T,) bool: ``a``'s bottom is at ``b``'s top and their footprints overlap."""
    over = np.abs(face_offset(trace, a, b)).max(axis=1) < half(layout, a) + half(layout, b)
    return over & _height_ok(trace, a, b, layout)


def on_table(trace, a: str, layout) -> np.ndarray:
    """(T,) bool: ``a`` stands upright on the table."""
    return (np.abs(trace.pos(a)[:, 2] - half(layout, a)) < Z_TOL) & (trace.tilt(a) < UPRIGHT_TILT)


def at_rest(trace, a: str) -> np.ndarray:
    return np.linalg.norm(trace.vel(a), axis=1) < REST_SPEED


def horizontal_offset(trace, a: str, b: str) -> np.ndarray:
    """(T,) distance [m] between the centres of ``a`` and ``b`` in the x-y plane."""
    return np.linalg.norm(trace.pos(a)[:, :2] - trace.pos(b)[:, :2], axis=1)


def grasp_ends(trace, name: str) -> np.ndarray:
    """Frames at which ``name`` stops being held by both fingers."""
    held = grasped(trace, name)
    return np.flatnonzero(held[:-1] & ~held[1:]) + 1


def open_command(trace, e: int) -> int:
    """First frame of the open-gripper command that ended a grasp at frame ``e`` (``e`` itself
    when the gripper was still commanded closed: a slip)."""
    cmd = trace.grip_cmd()
    t = e
    while t > 0 and cmd[t] < 0.5 and cmd[t - 1] < 0.5:
        t -= 1
    return int(t)


def let_go(trace, name: str, e: int) -> int:
    """First frame at or after ``e`` where no finger touches ``name``."""
    touch = trace.touch(name).any(axis=1)
    f = first_index(~touch, e)
    return int(f if f is not None else len(touch) - 1)


def robot_hits(trace, names: list[str], carried: list[str]) -> np.ndarray:
    """(T,) impulse [N*s] from the robot, or a held block, on any of ``names``."""
    imp = np.zeros(len(trace))
    for n in names:
        imp = imp + trace.impulse("robot", n)
        for c in carried:
            if c != n:
                imp = imp + trace.impulse(c, n) * grasped(trace, c)
    return imp


def final_supports(trace, blocks: list[str], layout) -> dict[str, str]:
    """Block -> the block it rests on at the last frame (``table`` when on the table)."""
    out = {}
    for a in blocks:
        if on_table(trace, a, layout)[-1]:
            out[a] = "table"
            continue
        for b in blocks:
            if b != a and touching_top(trace, a, b, layout)[-1] and trace.tilt(a)[-1] < UPRIGHT_TILT:
                out[a] = b
                break
    return out


def final_towers(trace, blocks: list[str], layout) -> list[list[str]]:
    """Towers at the last frame, each bottom to top (single blocks on the table included)."""
    sup = final_supports(trace, blocks, layout)
    towers = []
    for a in blocks:
        if sup.get(a) != "table":
            continue
        chain = [a]
        while True:
            nxt = [b for b, s in sup.items() if s == chain[-1]]
            if not nxt:
                break
            chain.append(nxt[0])
        towers.append(chain)
    return towers


def _release_support(trace, name: str, e: int, blocks: list[str], layout) -> str | None:
    """The block ``name`` was set on when its grasp ended at frame ``e`` (touching that
    block's top at ``e`` or the frame before; a block dropped from higher up has none)."""
    for b in blocks:
        if b != name and touching_top(trace, name, b, layout)[max(e - 1, 0):e + 1].any():
            return b
    return None


def _stood(trace, a: str, b: str, layout, start: int) -> int | None:
    """First frame from ``start`` on after which ``a`` rested on ``b``, not held, for
    ``STAND_FRAMES`` frames in a row (None if it never did)."""
    ok = resting(trace, a, b, layout) & at_rest(trace, a) & ~grasped(trace, a)
    run = 0
    for t in range(start, len(ok)):
        run = run + 1 if ok[t] else 0
        if run >= STAND_FRAMES:
            return t - STAND_FRAMES + 1
    return None


def _broke(trace, a: str, b: str, layout, start: int) -> int | None:
    """First frame from ``start`` on after which ``a`` never again touches ``b``'s top."""
    on = touching_top(trace, a, b, layout) & (trace.tilt(a) < UPRIGHT_TILT)
    if on[-1]:
        return None
    last = np.flatnonzero(on[start:])
    return int(start + last[-1] + 1) if last.size else int(start)


def _fall_visible(trace, a: str, start: int) -> int:
    """First frame from ``start`` with ``a`` tilted past ``VISIBLE_TILT`` or 1.5 cm lower."""
    z = trace.pos(a)[:, 2]
    vis = first_index((trace.tilt(a) > VISIBLE_TILT) | (z < z[start] - 0.015), start)
    return int(vis if vis is not None else len(z) - 1)


def _releases(trace, blocks: list[str], layout):
    """Yield ``(block, support, grasp end frame, let-go frame)`` for every release of a block
    onto another block's top."""
    for a in blocks:
        for e in grasp_ends(trace, a):
            s = _release_support(trace, a, int(e), blocks, layout)
            if s is not None:
                yield a, s, int(e), let_go(trace, a, int(e))


def _chain_below(trace, b: str, blocks: list[str], layout, t: int) -> list[str]:
    """``b`` and every block under it at frame ``t``."""
    out = [b]
    while True:
        under = [c for c in blocks if c not in out and touching_top(trace, out[-1], c, layout)[t]]
        if not under:
            return out
        out.append(under[0])


def stack_topples(trace, blocks: list[str], layout) -> list[FailureEvent]:
    """A block released onto another falls off it later without the robot touching it.

    The block never comes to rest on its support (its centre of mass was released beyond the
    support's edge); onset = the gripper's open command, irreversible = the frame it loses the
    support's top for good, visible = tilted past 20 degrees or 1.5 cm lower.
    """
    events = []
    for a, b, e, free in _releases(trace, blocks, layout):
        if _stood(trace, a, b, layout, e) is not None:
            continue
        broke = _broke(trace, a, b, layout, e)
        if broke is None:
            continue
        if robot_hits(trace, [a, b], [])[free + 1:broke + 1].sum() > HIT_IMPULSE:
            continue  # pushed off: tower_knocks()
        off = np.abs(face_offset(trace, a, b)[e]).max()
        margin = half(layout, b)
        onset = open_command(trace, e)
        events.append(FailureEvent(
            "stack_topple", "task", onset, max(broke, e), max(_fall_visible(trace, a, e), e), 1.0, (a, b),
            f"the {object_label(layout, a)} is released {off * 100:.1f} cm off the centre of the {object_label(layout, b)}, "
            f"past its {margin * 100:.1f} cm edge, and falls off {(broke - e) / trace.fps:.1f} s later",
            {"release_offset_m": float(off), "tipping_margin_m": margin,
             "final_tilt_deg": float(np.rad2deg(trace.tilt(a)[-1])), "delay_s": float((broke - e) / trace.fps)},
        ))
    return events


def tower_knocks(trace, blocks: list[str], layout) -> list[FailureEvent]:
    """A block standing on another is knocked off by the robot or a carried block.

    The block had been let go on its support; it ends off it after the robot (or a block in
    the gripper) hit it or a block under it. Onset = the first hit, irreversible = the frame
    it loses its support for good, visible = tilted past 20 degrees or 1.5 cm lower.
    """
    events = []
    for a, b, e, free in _releases(trace, blocks, layout):
        broke = _broke(trace, a, b, layout, e)
        if broke is None:
            continue
        chain = _chain_below(trace, b, blocks, layout, free)
        hits = robot_hits(trace, [a, *chain], [c for c in blocks if c not in chain and c != a])
        hits[: free + 1] = 0.0
        hits[broke + 2:] = 0.0
        if hits.sum() <= HIT_IMPULSE:
            continue
        onset = first_index(hits > 1e-4)
        vis = max(_fall_visible(trace, a, onset), onset)
        moved = float(np.linalg.norm(trace.pos(a)[-1, :2] - trace.pos(b)[-1, :2]))
        events.append(FailureEvent(
            "tower_knocked", "task", int(onset), max(broke, int(onset)), vis, 1.0, (a, b, "robot"),
            f"the robot hits the tower with {hits.sum():.2f} N*s and knocks the {object_label(layout, a)} off the "
            f"{object_label(layout, b)}; it ends {moved * 100:.0f} cm from it",
            {"impulse_ns": float(hits.sum()), "final_distance_m": moved},
        ))
    return events


def wrong_order(trace, tower: list[str], blocks: list[str], layout) -> list[FailureEvent]:
    """The requested blocks end up stacked, but not in the requested order.

    Read from the final towers: a tower of two or more blocks, all of them requested, that is
    not a bottom part of the requested order. Onset = the first grasp of the block that sits
    on the wrong block, irreversible = its release there, visible = the frame it stands.
    """
    for chain in final_towers(trace, blocks, layout):
        if len(chain) < 2 or not set(chain) <= set(tower) or chain == tower[: len(chain)]:
            continue
        k = next(i for i in range(1, len(chain)) if chain[: i + 1] != tower[: i + 1])
        a, b = chain[k], chain[k - 1]
        held = np.flatnonzero(grasped(trace, a))
        onset = int(held[0]) if held.size else 0
        ends = [int(e) for e in grasp_ends(trace, a) if e >= onset]
        irr = ends[-1] if ends else onset
        stood = _stood(trace, a, b, layout, irr)
        names = ", ".join(object_label(layout, n) for n in chain)
        want = ", ".join(object_label(layout, n) for n in tower)
        return [FailureEvent(
            "wrong_order", "task", onset, irr, int(stood if stood is not None else irr), 1.0, tuple(chain),
            f"the tower is stacked bottom to top as {names} instead of {want}",
            {"levels_built": float(len(chain)), "first_wrong_level": float(k)},
        )]
    return []


def misaligned(trace, tower: list[str], layout) -> list[FailureEvent]:
    """A tower block stands on its support, but off-centre by more than ``MISALIGN_TOL``.

    Quality: the tower stands (centre of mass over the support) but is untidy and less
    stable; severity = offset / the support's half size.
    """
    events = []
    for k in range(1, len(tower)):
        a, b = tower[k], tower[k - 1]
        if not (resting(trace, a, b, layout)[-1] and at_rest(trace, a)[-1]):
            continue
        off = float(horizontal_offset(trace, a, b)[-1])
        if off < MISALIGN_TOL:
            continue
        ends = grasp_ends(trace, a)
        e = int(ends[-1]) if ends.size else len(trace) - 1
        margin = half(layout, b)
        events.append(FailureEvent(
            "misaligned_stack", "quality", open_command(trace, e), e, e, float(np.clip(off / margin, 0.1, 1.0)), (a, b),
            f"the {object_label(layout, a)} stands {off * 100:.1f} cm off the centre of the {object_label(layout, b)} "
            f"(its edge is {margin * 100:.1f} cm from the centre)",
            {"offset_m": off, "tipping_margin_m": margin},
        ))
    return events


def block_drops(trace, blocks: list[str], tower: list[str], layout) -> list[FailureEvent]:
    """A lifted block leaves the fingers away from a support and falls.

    A grasp end is a drop when the block was lifted and then falls ``FALL_DZ`` within
    ``FALL_WINDOW_S``, unless the gripper was commanded open with the block's bottom less than
    ``PLACE_CLEARANCE`` above the support under it (the table or another block's top). A drop
    after which the block still ends resting on the block the ``tower`` order puts under it is
    a quality failure of severity 0.3; otherwise a task failure.
    """
    cmd = trace.grip_cmd()
    window = int(FALL_WINDOW_S * trace.fps)
    events = []
    for a in blocks:
        pos = trace.pos(a)
        up = lifted(trace, a)
        ha = half(layout, a)
        for e in grasp_ends(trace, a):
            e = int(e)
            if not up[e - 1]:
                continue
            seg = pos[e: e + window, 2]
            if seg.min() > pos[e, 2] - FALL_DZ:
                continue
            support = max([0.0] + [float(trace.pos(b)[e, 2] + half(layout, b)) for b in blocks if b != a
                                   and np.abs(face_offset(trace, a, b)[e]).max() < ha + half(layout, b)
                                   and trace.pos(b)[e, 2] < pos[e, 2]])
            clearance = float(pos[e, 2] - ha - support)
            commanded = cmd[e - 1] < 0.5 or cmd[e] < 0.5
            if commanded and clearance < PLACE_CLEARANCE:
                continue
            onset = open_command(trace, e)
            vis = first_index(pos[:, 2] < pos[e, 2] - FALL_DZ, e)
            k = tower.index(a) if a in tower else 0
            landed = k > 0 and bool(resting(trace, a, tower[k - 1], layout)[-1])
            events.append(FailureEvent(
                "drop", "quality" if landed else "task", int(onset), e, int(vis if vis is not None else e),
                0.3 if landed else 1.0, (a,),
                f"the {object_label(layout, a)} leaves the gripper {clearance * 100:.0f} cm above the surface under it and falls"
                + (f", still landing on the {object_label(layout, tower[k - 1])}" if landed else ""),
                {"clearance_m": clearance, "commanded_open": float(commanded)},
            ))
    return events


def tower_built(trace, tower: list[str], layout) -> bool:
    """Success: at the last frame the base stands on the table, every requested block rests on
    the one below it (centre of mass over the support, upright), and none is held or moving."""
    ok = bool(on_table(trace, tower[0], layout)[-1])
    for k in range(1, len(tower)):
        ok &= bool(resting(trace, tower[k], tower[k - 1], layout)[-1])
    for n in tower:
        ok &= bool(at_rest(trace, n)[-1]) and not bool(grasped(trace, n)[-1])
    return ok


def stack_progress(trace, tower: list[str], layout) -> np.ndarray:
    """Per-frame progress in [0, 1]: the mean over the tower's placements of their stage.

    Stage of placing ``tower[k]`` on ``tower[k-1]``: 0.2 x reach (TCP closing in on the block,
    counted once the level below is done); 0.3 when held; 0.3 -> 0.8 held and lifted as it
    nears the support horizontally; 0.9 on the support's top; 1.0 resting there, let go and
    at rest.
    """
    tcp = np.array(trace.tcp)
    n = len(trace)
    stages = []
    done_below = np.ones(n, dtype=bool)
    for k in range(1, len(tower)):
        a, b = tower[k], tower[k - 1]
        pa, pb = trace.pos(a), trace.pos(b)
        d0 = max(float(np.linalg.norm(pa[0, :2] - pb[0, :2])), 1e-3)
        close = 1.0 - np.clip(np.linalg.norm(pa[:, :2] - pb[:, :2], axis=1) / d0, 0.0, 1.0)
        r0 = max(float(np.linalg.norm(tcp[0] - pa[0])), 1e-3)
        reach = 1.0 - np.clip(np.linalg.norm(tcp - pa, axis=1) / r0, 0.0, 1.0)
        held = grasped(trace, a)
        up = pa[:, 2] > pa[0, 2] + LIFT_DZ
        s = np.where(done_below, 0.2 * reach, 0.0)
        s = np.where(held, np.maximum(s, 0.3), s)
        s = np.where(held & up, 0.3 + 0.5 * close, s)
        top = touching_top(trace, a, b, layout) & (trace.tilt(a) < UPRIGHT_TILT)
        s = np.where(top, 0.9, s)
        settled = resting(trace, a, b, layout) & ~held & at_rest(trace, a)
        s = np.where(settled, 1.0, s)
        stages.append(s)
        done_below = settled
    return np.clip(np.mean(stages, axis=0), 0.0, 1.0).astype(np.float32)
