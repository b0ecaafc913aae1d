"""Tool use: pick up an eraser, wipe the marks off a board into a tray, put the eraser back.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x): a fixed
*board* (a low slab, top at ``BOARD_TOP``) carries ``N_MARKS`` small thin tiles (the *marks*,
each its own free body, light and slippery on the board). A fixed shallow *tray* lies against
the board's side edge, its walls lower than the board top, so marks pushed over that edge fall
into it. The *tool* is an eraser: a wide flat head (long axis along its body x) with an upright
handle on top; it stands on the table on the other side of the board. A *cup* (the bystander,
tall enough to topple when hit) stands just beyond the board's far edge and a *distractor*
cube just beyond the tray's. ``side`` (+1 / -1, world y) decides which side the tool is on;
colours, sizes, poses and the mark pattern are drawn from the seed. The number of bodies is the
same for every seed.

Expert: approach above the handle, descend, close, lift, carry above the board's near edge
(head long axis turned along world x), lower until the head is ``WIPE_CLEARANCE`` above the
board, wipe across the board toward the tray in one stroke that ends past the board's edge,
lift, carry the tool back to where it stood, lower (head 4 mm above the table), let the arm
settle, release, retreat, hold. Every keyframe is relative to the sampled poses.

Labels: the eight marks are tracked entities (not left to ``joint_qpos``) so that contacts
between the fingers and each mark are measured; success needs the eraser lifted and used,
``tool_use_detectors.SUCCESS_SHARE`` of the marks off the board, and the eraser back upright
on the table.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, fmt, rgba, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import detectors as det
from simfail.labels import tool_use_detectors as tdet
from simfail.labels.trace import Trace

TEMPLATES = (
    "wipe the {marks} off the {board} with the {tool}",
    "use the {tool} to clean the {marks} off the {board}",
    "pick up the {tool}, wipe the {board} clean, and put the {tool} back",
    "erase the {marks} on the {board} using the {tool}",
)

#: Number of marks on the board (fixed so every seed has the same sim.qpos width).
N_MARKS = 8
#: Mark half side [m] (a square tile) and the range of its half thickness [m], drawn per mark.
MARK_HALF_XY = 0.009
MARK_HALF_Z = (0.0025, 0.0035)
#: Mark mass [kg].
MARK_MASS = 0.004
#: Board half extents [m] (x along the wipe's head, y along the stroke, z thickness).
BOARD_HALF = (0.065, 0.075, 0.015)
#: Height [m] of the board's top surface.
BOARD_TOP = 2 * BOARD_HALF[2]
#: Tray inner half extents in x, y [m], wall thickness, wall height and base thickness [m].
TRAY_HALF = (0.065, 0.045)
TRAY_WALL = 0.004
TRAY_WALL_H = 0.018
TRAY_BASE = 0.004
#: Eraser head half extents [m] (x: long axis, y: stroke direction, z) and handle half extents.
HEAD_HALF = (0.065, 0.016, 0.010)
HANDLE_HALF = (0.011, 0.011, 0.030)
#: Height [m] of the TCP above the tool's body origin (the head centre) when grasped.
GRASP_DZ = HEAD_HALF[2] + 0.040
#: Gap [m] between the head's bottom and the board top during the stroke.
WIPE_CLEARANCE = 0.002
#: How far [m] the head's centre travels past the board's tray-side edge at the stroke's end.
STROKE_OVERSHOOT = 0.028
#: TCP height [m] while carrying the tool (its head clears the cup by > 5 cm).
CARRY_Z = 0.24
#: TCP height above the handle's grasp point before descending [m].
APPROACH_DZ = 0.12
#: Smallest distance [m] between two marks' centres, and the marks' margin from the board's
#: edges in x and y [m] (the head must land on bare board at the stroke's start).
MARK_SPACING = 0.022
MARK_MARGIN = (0.022, 0.050)
#: Friction of the marks and the board (low: the marks slide), of the head and of the handle.
MARK_FRICTION = (0.25, 0.005, 0.0001)
BOARD_FRICTION = (0.3, 0.005, 0.0001)
HEAD_FRICTION = (0.4, 0.005, 0.0001)
HANDLE_FRICTION = (1.5, 0.02, 0.001)


def _mark_positions(rng: np.random.Generator, center: np.ndarray) -> list[np.ndarray]:
    """``N_MARKS`` x-y points [m] on the board, ``MARK_SPACING`` apart, inside the margins."""
    hx = BOARD_HALF[0] - MARK_MARGIN[0]
    hy = BOARD_HALF[1] - MARK_MARGIN[1]
    for _ in range(200):
        pts: list[np.ndarray] = []
        for _ in range(400):
            p = center + np.array([rng.uniform(-hx, hx), rng.uniform(-hy, hy)])
            if all(np.linalg.norm(p - q) >= MARK_SPACING for q in pts):
                pts.append(p)
                if len(pts) == N_MARKS:
                    return pts
    raise RuntimeError("could not place the marks")  # pragma: no cover


def tool_xml(o: ObjectSpec, handle_color: str) -> str:
    """MJCF of the eraser: body origin at the head's centre, handle standing on the head."""
    quat = f"{np.cos(o.yaw / 2):.6f} 0 0 {np.sin(o.yaw / 2):.6f}"
    hz = HEAD_HALF[2] + HANDLE_HALF[2]
    return (
        f'    <body name="{o.name}" pos="{fmt(o.pos)}" quat="{quat}"><freejoint name="{o.name}_free"/>'
        f'<geom name="{o.name}_head" type="box" size="{fmt(HEAD_HALF)}" rgba="{rgba(o.color)}" mass="{o.mass * 0.6:.4f}" '
        f'friction="{fmt(HEAD_FRICTION)}" condim="4"/>'
        f'<geom name="{o.name}_handle" type="box" size="{fmt(HANDLE_HALF)}" pos="0 0 {hz:.4f}" rgba="{rgba(handle_color)}" '
        f'mass="{o.mass * 0.4:.4f}" friction="{fmt(HANDLE_FRICTION)}" condim="4"/></body>'
    )


def tray_xml(o: ObjectSpec) -> str:
    """MJCF of the fixed tray: a base plate and four low walls (inner half extents ``TRAY_HALF``)."""
    hx, hy = TRAY_HALF
    t, h = TRAY_WALL, TRAY_WALL_H
    col = rgba(o.color)
    walls = [
        ("base", (hx + t, hy + t, TRAY_BASE / 2), (0.0, 0.0, TRAY_BASE / 2)),
        ("wx0", (t / 2, hy + t, h / 2), (-hx - t / 2, 0.0, h / 2)),
        ("wx1", (t / 2, hy + t, h / 2), (hx + t / 2, 0.0, h / 2)),
        ("wy0", (hx, t / 2, h / 2), (0.0, -hy - t / 2, h / 2)),
        ("wy1", (hx, t / 2, h / 2), (0.0, hy + t / 2, h / 2)),
    ]
    geoms = "".join(
        f'<geom name="{o.name}_{n}" type="box" size="{fmt(s)}" pos="{fmt(p)}" rgba="{col}" friction="0.6 0.01 0.001"/>'
        for n, s, p in walls
    )
    return f'    <body name="{o.name}" pos="{fmt(o.pos)}">{geoms}</body>'


@register_task
class ToolUse(Task):
    name = "tool_use"
    duration = 11.0
    description = "pick up an eraser, wipe the marks off a board into a tray and put the eraser back"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        side = 1.0 if rng.random() < 0.5 else -1.0
        board_xy = np.array([rng.uniform(0.46, 0.50), side * rng.uniform(0.0, 0.03)])
        tray_xy = board_xy + np.array([0.0, -side * (BOARD_HALF[1] + TRAY_HALF[1] + TRAY_WALL)])
        tool_xy = np.array([rng.uniform(0.42, 0.48), board_xy[1] + side * rng.uniform(0.17, 0.20)])
        cup_xy = np.array([board_xy[0] + BOARD_HALF[0] + rng.uniform(0.050, 0.065),
                           board_xy[1] + side * rng.uniform(0.0, 0.06)])
        dist_xy = np.array([board_xy[0] + BOARD_HALF[0] + rng.uniform(0.050, 0.070), tray_xy[1] + rng.uniform(-0.03, 0.03)])
        tool_mass = float(rng.uniform(0.06, 0.08))
        cup_r, cup_hh = float(rng.uniform(0.026, 0.030)), float(rng.uniform(0.050, 0.058))
        dh = float(rng.uniform(0.018, 0.022))
        objects = [
            ObjectSpec("tool", "box", HEAD_HALF, (*tool_xy, HEAD_HALF[2]), colors[0],
                       yaw=float(rng.uniform(-0.25, 0.25)), mass=tool_mass, noun="eraser"),
            ObjectSpec("board", "box", BOARD_HALF, (*board_xy, BOARD_HALF[2]), colors[1], noun="board", free=False,
                       friction=BOARD_FRICTION),
            ObjectSpec("tray", "box", (*TRAY_HALF, TRAY_WALL_H / 2), (*tray_xy, 0.0), colors[2], noun="tray",
                       free=False),
            ObjectSpec("cup", "cylinder", (cup_r, cup_hh), (*cup_xy, cup_hh), colors[3], mass=0.12, noun="cup",
                       friction=(0.6, 0.01, 0.001)),
            ObjectSpec("distractor", "box", (dh, dh, dh), (*dist_xy, dh), colors[4],
                       yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)), mass=0.08, noun="cube",
                       friction=(1.0, 0.01, 0.001)),
        ]
        mark_color = colors[5]
        for k, xy in enumerate(_mark_positions(rng, board_xy)):
            hz = float(rng.uniform(*MARK_HALF_Z))
            objects.append(ObjectSpec(f"mark{k}", "box", (MARK_HALF_XY, MARK_HALF_XY, hz), (*xy, BOARD_TOP + hz), mark_color,
                                      yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)), mass=MARK_MASS, noun="mark",
                                      friction=MARK_FRICTION))
        roles = {"tool": "tool", "board": "board", "tray": "tray", "bystander": "cup", "distractor": "distractor"}
        instruction = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(
            marks=f"{mark_color} marks", board=objects[1].label, tool=objects[0].label)
        params = {"side": side, "handle_color": colors[6]}
        tracked = ["tool", "board", "tray", "cup", "distractor", *self.marks()]
        return Layout(self.name, seed, objects, roles, instruction, params, tracked_names=tracked)

    @staticmethod
    def marks() -> list[str]:
        return [f"mark{k}" for k in range(N_MARKS)]

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        parts = []
        for o in layout.objects:
            if o.name == "tool":
                parts.append(tool_xml(o, layout.params["handle_color"]))
            elif o.name == "tray":
                parts.append(tray_xml(o))
            else:
                parts.append(o.to_xml())
        return stage_xml(stage, "\n".join(parts), model_name=f"tool_use_{layout.seed}")

    # ------------------------------------------------------------------ expert
    @staticmethod
    def grasp_point(layout: Layout) -> np.ndarray:
        """TCP position [m] that grasps the handle of the tool where it stands."""
        o = layout.obj("tool")
        return np.array([o.pos[0], o.pos[1], o.pos[2] + GRASP_DZ])

    @staticmethod
    def stroke(layout: Layout, height: float = 0.0, length: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
        """TCP start and end [m] of the wiping stroke across the board toward the tray.

        ``height`` [m] raises the head above ``WIPE_CLEARANCE``; ``length`` scales the stroke.
        """
        b = layout.obj("board")
        s = layout.params["side"]
        z = BOARD_TOP + WIPE_CLEARANCE + HEAD_HALF[2] + GRASP_DZ + height
        y0 = b.pos[1] + s * (BOARD_HALF[1] - HEAD_HALF[1] - 0.004)
        y1 = b.pos[1] - s * (BOARD_HALF[1] + STROKE_OVERSHOOT)
        start = np.array([b.pos[0], y0, z])
        end = np.array([b.pos[0], y0 + length * (y1 - y0), z])
        return start, end

    def expert_program(self, layout: Layout) -> Program:
        grasp = self.grasp_point(layout)
        yaw = float(layout.obj("tool").yaw)
        start, end = self.stroke(layout)
        put = grasp + np.array([0.0, 0.0, 0.004])
        p = Program(start_pos=np.array([0.40, 0.0, 0.35]), start_quat=topdown_quat(0.0))
        p.segments = [
            Segment("approach", grasp + [0, 0, APPROACH_DZ], yaw, 1.2, 0.0),
            Segment("descend", grasp, yaw, 0.7, 0.0),
            Segment("grasp", grasp, yaw, 0.5, 1.0),
            Segment("lift", np.array([grasp[0], grasp[1], CARRY_Z]), yaw, 0.6, 1.0),
            Segment("carry", np.array([start[0], start[1], CARRY_Z]), 0.0, 1.1, 1.0),
            Segment("lower", start, 0.0, 0.7, 1.0),
            Segment("wipe", end, 0.0, 1.6, 1.0),
            Segment("raise", np.array([end[0], end[1], CARRY_Z]), 0.0, 0.6, 1.0),
            Segment("return", np.array([put[0], put[1], CARRY_Z]), yaw, 1.2, 1.0),
            Segment("put_down", put, yaw, 0.7, 1.0),
            Segment("settle", put, yaw, 0.3, 1.0),
            Segment("release", put, yaw, 0.4, 0.0),
            Segment("retreat", np.array([put[0], put[1], CARRY_Z]), yaw, 0.6, 0.0),
        ]
        p.segments.append(Segment("hold", np.array([put[0], put[1], CARRY_Z]), yaw, max(self.duration - p.duration, 0.1), 0.0))
        return p

    # ------------------------------------------------------------------ labels
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return tdet.wipe_progress(trace, layout, self.marks())

    def progress_at(self, view: Trace, layout: Layout, state: dict) -> float:
        """Online progress: wiping counts once the tool *has been* lifted, a running OR over the
        episode that ``state["used"]`` carries (the rest is frame-local)."""
        used = np.maximum.accumulate(tdet.tool_lifted(view))
        used[-1] = used[-1] or state.get("used", False)
        state["used"] = bool(used[-1])
        return float(tdet.wipe_progress(view, layout, self.marks(), used=used)[-1])

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        marks = self.marks()
        events: list[FailureEvent] = []
        events += det.missed_grasps(trace, ["tool"], layout)
        events += tdet.tool_drops(trace, layout)
        events += tdet.rough_put_down(trace, layout)
        events += tdet.tool_not_returned(trace, layout)
        events += tdet.wiping_result(trace, layout, marks)
        events += tdet.gripper_wiping(trace, layout, marks)
        events += det.collisions(trace, ["cup", "distractor"], layout, carried=["tool"])
        events += det.topples(trace, ["cup"], layout)
        events += det.off_table(trace, ["tool", "cup", "distractor", *marks], layout)
        events += det.shaky_motion(trace, layout)
        events += det.robot_disturbances(trace, layout, events, ["tool", "cup", "distractor"])
        events = tdet.merge_tool_events(events)
        success = tdet.wiped_success(trace, layout, marks, events)
        events += det.failure_verdict(
            trace, layout, success, events, lambda: self.progress(trace, layout), obj="tool",
            engaged=det.grasped(trace, "tool"),
            at_goal=tdet.cleared_share(trace, layout, marks) >= tdet.SUCCESS_SHARE,
            missed="never wipes the board clear",
            finish="the eraser does not end upright on the table, released")
        return success, tdet.merge_tool_events(events)

    def perturbations(self):
        from simfail.perturbations.tool_use import TOOL_USE_PERTURBATIONS

        return dict(TOOL_USE_PERTURBATIONS)
