"""Open/Close: open or close a cabinet drawer or a box's hinged door.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x): two fixed
articulated fixtures stand side by side at the far edge of the workspace, their fronts facing
the robot (-x):

* a low *cabinet* with one *drawer* (slide joint ``drawer_slide``, axis -x, 0 = closed,
  ``drawer_range`` = fully out; damped, with a little dry friction and a springy end stop);
* a *box* with a front *door* (hinge joint ``door_hinge`` about a vertical axis at the box's
  outer edge, 0 = closed, ``door_range`` rad = swung 90 degrees toward the robot).

Each front carries a *handle*: a flat vertical tab sticking ``HANDLE_HALF[0] * 2`` out of the
front, gripped top-down from its two sides (a pinch grasp, held by friction). A *cup* stands on
the cabinet's top and a *bottle* on the box's top (bystanders that fall off when knocked); a
*distractor* cube stands on the table between the fixtures. Per seed: which side each fixture
is on, their sizes and positions, the drawer travel, colours, the bystanders and the
distractor, and the instruction: one of open / close the drawer / door. A "close" task starts
with that articulation open (``start_fraction`` of its range).

Expert: approach above the handle, descend, close, move the handle along the joint's path
(straight for the drawer; four chords of the arc for the door, the tool yaw turning with the
door) to ``OPEN_TARGET`` or ``CLOSE_TARGET`` of the range, release, retreat upward, hold.
"""

from __future__ import annotations

import mujoco
import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, fmt, rgba, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import detectors as det
from simfail.labels import open_close_detectors as ocd
from simfail.labels.trace import Trace

TEMPLATES = {
    ("drawer", "open"): ("open the drawer of the {fixture}", "pull the {fixture}'s drawer open",
                         "open the {fixture} drawer all the way"),
    ("drawer", "close"): ("close the drawer of the {fixture}", "push the {fixture}'s drawer shut",
                          "slide the {fixture} drawer closed"),
    ("door", "open"): ("open the door of the {fixture}", "swing the {fixture}'s door open",
                       "open the {fixture} door all the way"),
    ("door", "close"): ("close the door of the {fixture}", "swing the {fixture}'s door shut",
                        "shut the {fixture} door"),
}

#: Joint names of the two articulations.
JOINTS = {"drawer": "drawer_slide", "door": "door_hinge"}
#: Fixture (fixed body) that carries each articulation.
FIXTURES = {"drawer": "cabinet", "door": "box"}
#: Bystander standing on each fixture's top.
ON_TOP = {"cabinet": "cup", "box": "bottle"}
#: Handle tab half extents [m]: out of the front (along the joint's push direction), across
#: (the pinch direction), and vertical.
HANDLE_HALF = (0.025, 0.012, 0.020)
#: Height [m] of the fixture's top above the handle's centre (the hand clears the top).
HANDLE_TOP_GAP = 0.026
#: Distance [m] from the front face to the grasp point along the handle's protrusion.
GRASP_OUT = 0.030
#: Front plate thickness [m] of the drawer and the door.
PLATE = 0.012
#: Door hinge range [rad] (90 degrees).
DOOR_RANGE = np.pi / 2
#: Expert targets as fractions of the joint range.
OPEN_TARGET = 0.94
CLOSE_TARGET = 0.02
#: TCP height [m] above the grasp point before descending and after retreating.
APPROACH_DZ = 0.10
#: Durations [s] of the expert's phases.
T_APPROACH, T_DESCEND, T_GRASP, T_MOVE, T_RELEASE, T_RETREAT = 1.4, 0.8, 0.5, 2.0, 0.4, 0.6
#: Chords the door's arc is split into.
DOOR_CHORDS = 4
#: Drawer dynamics: slide damping [N*s/m], dry friction [N], end-stop solref (time constant
#: [s], damping ratio < 1 for a bouncing stop); door: damping [N*m*s/rad], friction [N*m].
DRAWER_DAMPING, DRAWER_FRICTIONLOSS = 0.6, 0.2
DOOR_DAMPING, DOOR_FRICTIONLOSS = 0.003, 0.002
STOP_SOLREF = "0.01 0.15"
#: Colour of the drawer and door fronts (a neutral cream, not a palette colour).
FRONT_RGBA = "0.88 0.85 0.78 1"


@register_task
class OpenClose(Task):
    name = "open_close"
    duration = 9.0
    description = "open or close a cabinet drawer or a box door without knocking things off the top"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        side = 1.0 if rng.random() < 0.5 else -1.0  # cabinet on +y (1) or -y (-1)
        cab_half = (0.12, float(rng.uniform(0.085, 0.095)), float(rng.uniform(0.048, 0.052)))
        cab_front = float(rng.uniform(0.57, 0.60))
        cab_xy = (cab_front + cab_half[0], side * float(rng.uniform(0.14, 0.16)))
        box_half = (0.08, float(rng.uniform(0.075, 0.082)), float(rng.uniform(0.056, 0.060)))
        box_front = float(rng.uniform(0.57, 0.60))
        box_xy = (box_front + box_half[0], -side * float(rng.uniform(0.15, 0.165)))
        drawer_range = float(rng.uniform(0.13, 0.15))
        articulation = "drawer" if rng.random() < 0.5 else "door"
        action = "open" if rng.random() < 0.5 else "close"
        start_fraction = float(rng.uniform(0.80, 0.90)) if action == "close" else 0.0
        cup_r, cup_hh = float(rng.uniform(0.022, 0.026)), float(rng.uniform(0.040, 0.048))
        bot_h = float(rng.uniform(0.020, 0.024))
        bot_hh = float(rng.uniform(0.045, 0.052))
        cup_xy = (cab_front + float(rng.uniform(0.08, 0.11)), cab_xy[1] + float(rng.uniform(-0.04, 0.04)))
        bot_xy = (box_front + float(rng.uniform(0.07, 0.09)), box_xy[1] + float(rng.uniform(-0.03, 0.03)))
        dh = float(rng.uniform(0.018, 0.022))
        dist_xy = (float(rng.uniform(0.36, 0.42)), float(rng.uniform(-0.03, 0.03)))
        objects = [
            ObjectSpec("cabinet", "box", cab_half, (*cab_xy, cab_half[2]), colors[0], noun="cabinet", free=False),
            ObjectSpec("box", "box", box_half, (*box_xy, box_half[2]), colors[1], noun="box", free=False),
            ObjectSpec("cup", "cylinder", (cup_r, cup_hh), (*cup_xy, 2 * cab_half[2] + cup_hh), colors[2],
                       mass=0.10, noun="cup", friction=(0.6, 0.01, 0.001)),
            ObjectSpec("bottle", "box", (bot_h, bot_h, bot_hh), (*bot_xy, 2 * box_half[2] + bot_hh), colors[3],
                       yaw=float(rng.uniform(-0.4, 0.4)), mass=0.10, noun="bottle", friction=(0.6, 0.01, 0.001)),
            ObjectSpec("distractor", "box", (dh, dh, dh), (*dist_xy, dh), colors[4],
                       yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)), mass=0.08, noun="cube",
                       friction=(1.0, 0.01, 0.001)),
        ]
        roles = {"cabinet": "cabinet", "box": "box", "cup": "cup", "bottle": "bottle", "distractor": "distractor",
                 "fixture": FIXTURES[articulation], "bystander": ON_TOP[FIXTURES[articulation]]}
        fixture = objects[0] if articulation == "drawer" else objects[1]
        choices = TEMPLATES[(articulation, action)]
        instruction = choices[int(rng.integers(len(choices)))].format(fixture=fixture.label)
        params = {
            "articulation": articulation, "action": action, "joint": JOINTS[articulation],
            "side": side, "start_fraction": start_fraction,
            "joint_range": drawer_range if articulation == "drawer" else DOOR_RANGE,
            "drawer_range": drawer_range, "door_range": DOOR_RANGE,
            "cabinet_front": cab_front, "box_front": box_front,
            "door_sign": side,  # door axis is +z * door_sign: its free edge is toward the centre
            "door_width": 2 * box_half[1] - 0.004,
            "handle_z_drawer": 2 * cab_half[2] - HANDLE_TOP_GAP, "handle_z_door": 2 * box_half[2] - HANDLE_TOP_GAP,
        }
        params["handle_local"] = handle_local(params, articulation)
        tracked = ["cabinet", "drawer", "drawer_handle", "box", "door", "door_handle", "cup", "bottle", "distractor"]
        return Layout(self.name, seed, objects, roles, instruction, params, tracked_names=tracked)

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        body = "\n".join([cabinet_xml(layout), box_xml(layout),
                          *(o.to_xml() for o in layout.objects if o.free)])
        xml = stage_xml(stage, body, model_name=f"open_close_{layout.seed}")
        contact = ('  <contact>\n    <exclude body1="cabinet" body2="drawer"/>\n'
                   '    <exclude body1="box" body2="door"/>\n  </contact>\n</mujoco>')
        return xml[: xml.rindex("</mujoco>")] + contact

    def initial_qpos(self, model: mujoco.MjModel, layout: Layout) -> np.ndarray:
        """Home pose; the articulation of a "close" task starts ``start_fraction`` open."""
        qpos = super().initial_qpos(model, layout)
        p = layout.params
        adr = int(model.jnt_qposadr[model.joint(p["joint"]).id])
        qpos[adr] = p["start_fraction"] * p["joint_range"]
        return qpos

    # ------------------------------------------------------------------ geometry
    @staticmethod
    def grasp_pose(layout: Layout, q: float) -> tuple[np.ndarray, float]:
        """World TCP position [m] and yaw [rad] that grasp the handle with the joint at ``q``
        ([m] for the drawer, [rad] for the door)."""
        p = layout.params
        local = np.array(p["handle_local"])
        if p["articulation"] == "drawer":
            origin = drawer_origin(layout)
            return origin + local - [q, 0.0, 0.0], 0.0
        a = p["door_sign"] * q
        rot = np.array([[np.cos(a), -np.sin(a), 0.0], [np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
        return np.array([*door_hinge(layout), 0.0]) + rot @ local, float(a)

    @staticmethod
    def joint_target(layout: Layout, goal: str | None = None) -> float:
        """Joint value the expert moves to for ``goal`` (the layout's action by default)."""
        p = layout.params
        frac = OPEN_TARGET if (goal or p["action"]) == "open" else CLOSE_TARGET
        return frac * p["joint_range"]

    @staticmethod
    def joint_path(layout: Layout, q0: float, q1: float, duration: float, grip: float = 1.0,
                   phase: str = "move") -> list[Segment]:
        """Segments that carry the grasped handle from joint value ``q0`` to ``q1``."""
        n = 1 if layout.params["articulation"] == "drawer" else DOOR_CHORDS
        segs = []
        for k in range(1, n + 1):
            pos, yaw = OpenClose.grasp_pose(layout, q0 + (q1 - q0) * k / n)
            segs.append(Segment(phase, pos, yaw, duration / n, grip))
        return segs

    # ------------------------------------------------------------------ expert
    def expert_program(self, layout: Layout) -> Program:
        p = layout.params
        q0 = p["start_fraction"] * p["joint_range"]
        grasp, yaw = self.grasp_pose(layout, q0)
        above = grasp + [0, 0, APPROACH_DZ]
        prog = Program(start_pos=np.array([0.40, 0.0, 0.35]), start_quat=topdown_quat(0.0))
        prog.segments = [
            Segment("approach", above, yaw, T_APPROACH, 0.0),
            Segment("descend", grasp, yaw, T_DESCEND, 0.0),
            Segment("grasp", grasp, yaw, T_GRASP, 1.0),
            *self.joint_path(layout, q0, self.joint_target(layout), T_MOVE),
        ]
        end = prog.segments[-1]
        prog.segments += [
            Segment("release", np.array(end.pos, float), end.yaw, T_RELEASE, 0.0),
            Segment("retreat", np.array(end.pos, float) + [0, 0, APPROACH_DZ], end.yaw, T_RETREAT, 0.0),
        ]
        hold = self.duration - prog.duration
        prog.segments.append(Segment("hold", np.array(end.pos, float) + [0, 0, APPROACH_DZ], end.yaw, max(hold, 0.1), 0.0))
        return prog

    # ------------------------------------------------------------------ labels
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return ocd.progress(trace, layout)

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        events: list[FailureEvent] = []
        events += ocd.articulation_events(trace, layout)
        events += ocd.knocked_off(trace, ["cup", "bottle"], layout)
        events += det.collisions(trace, ["cup", "bottle", "distractor"], layout)
        events += det.topples(trace, ["distractor"], layout)
        events += det.off_table(trace, layout.free_objects, layout)
        events += ocd.fixture_bumps(trace, layout)
        events += det.shaky_motion(trace, layout)
        events += det.robot_disturbances(trace, layout, events, layout.free_objects)
        success = ocd.reached_goal_at_rest(trace, layout)
        events += det.failure_verdict(
            trace, layout, success, events, lambda: self.progress(trace, layout), obj=ocd.handle_name(layout),
            engaged=trace.touch(ocd.handle_name(layout)).any(axis=1),
            at_goal=ocd.in_goal(ocd.fraction(trace, layout), layout.params["action"]),
            missed=f"never moves the {layout.params['articulation']} into its goal range",
            finish=f"the {layout.params['articulation']} does not end there at rest and released", verb="touches")
        return success, sorted(events, key=lambda e: (e.visible_frame, e.type))

    def perturbations(self):
        from simfail.perturbations.open_close import OPEN_CLOSE_PERTURBATIONS

        return dict(OPEN_CLOSE_PERTURBATIONS)


# ---------------------------------------------------------------------------- MJCF
def handle_local(params: dict, articulation: str) -> tuple[float, float, float]:
    """Grasp point [m] in the frame of the drawer / door body (origin at the closed front's
    outer face for the drawer, on the hinge axis at table height for the door)."""
    if articulation == "drawer":
        return (-GRASP_OUT, 0.0, params["handle_z_drawer"])
    d, w = params["door_sign"], params["door_width"]
    return (-PLATE - GRASP_OUT, d * door_handle_offset(w), params["handle_z_door"])


def door_handle_offset(width: float) -> float:
    """Distance [m] along the door from the hinge axis to the handle's centre plane."""
    return width - HANDLE_HALF[1] - 0.012


def drawer_origin(layout: Layout) -> np.ndarray:
    """World position [m] of the drawer body's origin when closed."""
    return np.array([layout.params["cabinet_front"], layout.obj("cabinet").pos[1], 0.0])


def door_hinge(layout: Layout) -> np.ndarray:
    """World x, y [m] of the door's hinge axis (the box's outer front edge)."""
    box = layout.obj("box")
    d = layout.params["door_sign"]
    return np.array([layout.params["box_front"], box.pos[1] - d * box.size[1]])


def _handle_body(name: str, pos: tuple[float, float, float]) -> str:
    """The handle tab as its own rigid child body (a tracked entity), its origin at the grasp
    point; the tab runs from the front face out to ``2 * HANDLE_HALF[0]`` in front of it."""
    centre = (GRASP_OUT - HANDLE_HALF[0], 0.0, 0.0)
    return (f'<body name="{name}" pos="{fmt(pos)}"><geom name="{name}" type="box" size="{fmt(HANDLE_HALF)}" '
            f'pos="{fmt(centre)}" rgba="0.15 0.15 0.17 1" mass="0.05" friction="1.2 0.02 0.001" condim="4"/></body>')


def _carcass(prefix: str, half: tuple[float, float, float], color: str, wall: float = 0.008) -> str:
    """Open-front shell of a fixture: top, bottom, two sides and a back, in its body frame."""
    hx, hy, hz = half
    col = rgba(color)
    parts = [
        ("top", (hx, hy, wall / 2), (0, 0, hz - wall / 2)),
        ("bottom", (hx, hy, wall / 2), (0, 0, -hz + wall / 2)),
        ("side_l", (hx, wall / 2, hz), (0, hy - wall / 2, 0)),
        ("side_r", (hx, wall / 2, hz), (0, -hy + wall / 2, 0)),
        ("back", (wall / 2, hy, hz), (hx - wall / 2, 0, 0)),
    ]
    return "".join(f'<geom name="{prefix}_{n}" type="box" size="{fmt(s)}" pos="{fmt(p)}" rgba="{col}"/>'
                   for n, s, p in parts)


def cabinet_xml(layout: Layout) -> str:
    """The cabinet shell and its drawer (front plate, tray, handle) on a slide joint."""
    cab = layout.obj("cabinet")
    p = layout.params
    hx, hy, hz = cab.size
    tray_len = 0.9 * hx
    drawer = (
        f'<body name="drawer" pos="{fmt(drawer_origin(layout))}">'
        f'<joint name="drawer_slide" type="slide" axis="-1 0 0" range="0 {p["drawer_range"]:.4f}" '
        f'damping="{DRAWER_DAMPING}" frictionloss="{DRAWER_FRICTIONLOSS}" solreflimit="{STOP_SOLREF}"/>'
        f'<geom name="drawer_front" type="box" size="{fmt((PLATE / 2, hy - 0.004, hz - 0.010))}" '
        f'pos="{fmt((PLATE / 2, 0, hz))}" rgba="{FRONT_RGBA}" mass="0.4"/>'
        f'<geom name="drawer_tray" type="box" size="{fmt((tray_len, hy - 0.016, 0.004))}" '
        f'pos="{fmt((PLATE + tray_len, 0, 0.016))}" rgba="{FRONT_RGBA}" mass="0.4"/>'
        + _handle_body("drawer_handle", handle_local(p, "drawer"))
        + "</body>"
    )
    return (f'    <body name="cabinet" pos="{fmt(cab.pos)}">{_carcass("cabinet", cab.size, cab.color)}</body>\n'
            f'    {drawer}')


def box_xml(layout: Layout) -> str:
    """The box shell and its door (plate, handle) on a vertical hinge at the outer edge."""
    box = layout.obj("box")
    p = layout.params
    hx, hy, hz = box.size
    d, w = p["door_sign"], p["door_width"]
    hinge = door_hinge(layout)
    door = (
        f'<body name="door" pos="{fmt((hinge[0], hinge[1], 0.0))}">'
        f'<joint name="door_hinge" type="hinge" axis="0 0 {d:.0f}" range="0 {DOOR_RANGE:.5f}" '
        f'damping="{DOOR_DAMPING}" frictionloss="{DOOR_FRICTIONLOSS}" solreflimit="{STOP_SOLREF}"/>'
        f'<geom name="door_plate" type="box" size="{fmt((PLATE / 2, w / 2, hz - 0.006))}" '
        f'pos="{fmt((-PLATE / 2, d * w / 2, hz))}" rgba="{FRONT_RGBA}" mass="0.3"/>'
        + _handle_body("door_handle", handle_local(p, "door"))
        + "</body>"
    )
    return (f'    <body name="box" pos="{fmt(box.pos)}">{_carcass("box", box.size, box.color)}</body>\n'
            f'    {door}')
