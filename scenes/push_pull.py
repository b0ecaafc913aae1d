"""Push/Pull: slide a block or a puck along the table onto a marked goal region.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x): a small
table whose side edges (world y = +-``TABLE_HALF[1]``) are within reach. The *object* (a block
or a low puck, slippery on the table) lies on a straight line along world x with the *goal*, a
flat coloured square or disc drawn on the table (visual only: no collision, not tracked). In
``push`` mode the goal lies beyond the object (away from the robot, +x); in ``pull`` mode it
lies between the object and the robot (-x). A tall *bottle* (the bystander, topples when hit)
stands beside the path on the table's inner side; a *distractor* block lies behind the object
(against the push) on the edge side, and a second one beside the goal, further toward the
edge. ``side`` (+1 / -1) is the world-y side of the table the path lies on (the nearer edge).
Colours, sizes, poses, the object's shape and the mode are drawn from the seed; every seed has
the same bodies.

Expert: approach above a point behind the object (on the side away from the goal), descend to
fingertip height with the pads a little apart (both on a block's face, or a cradle for a
puck's rim), push in a straight line until the object's centre is over the goal's centre, back
off 1 cm, lift, hold.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, fmt, rgba, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import push_pull_detectors as pdet
from simfail.labels.trace import Trace

PUSH_TEMPLATES = (
    "push the {obj} to the {goal}",
    "slide the {obj} forward onto the {goal}",
    "push the {obj} away from you until it sits on the {goal}",
)
PULL_TEMPLATES = (
    "pull the {obj} back to the {goal}",
    "drag the {obj} toward you onto the {goal}",
    "pull the {obj} back until it sits on the {goal}",
)

#: Table top half extents (x, y) [m] and centre (x, y) [m]: the side edges are at y = +-0.36.
TABLE_HALF = (0.62, 0.36)
TABLE_CENTER = (0.32, 0.0)
#: TCP height [m] while pushing: the fingertip pads span z 0.007..0.027, the hand's underside
#: is at 0.054 (above every pushable object's top).
PUSH_Z = 0.016
#: TCP height [m] for moves above the scene (the fingertips clear the bottle's top).
TRAVEL_Z = 0.17
#: Gripper command while pushing a block (0.75: a 2 cm gap between the pads, both on its face)
#: and a puck (0.5: a 4 cm gap, a cradle for its rim); the gripper opens 8 cm at command 0.
BLOCK_GRIP, PUCK_GRIP = 0.75, 0.5
GRIPPER_OPEN = 0.08
#: Half thickness [m] of a fingertip pad along the push.
PAD_HALF = 0.0095
#: Gap [m] between the pads and the object before the push starts.
START_GAP = 0.025
#: Distance [m] the fingers back off from the object after the push.
BACKOFF = 0.012
#: Friction of the pushed objects (they set it against the table: a free slide decelerates at
#: about 1.3 m/s^2) and of the bystanders (the bottle tips before it slides, the distractor
#: blocks stay where they are unless pushed on purpose).
SLIDE_FRICTION = (0.13, 0.005, 0.0001)
GRIP_FRICTION = (0.9, 0.01, 0.001)
#: Distance [m] of the first distractor behind the object (against the push direction).
DISTRACTOR_BEHIND = 0.065
#: Expert phase durations [s].
APPROACH_S, DESCEND_S, PUSH_S, BACKOFF_S, LIFT_S = 1.4, 0.8, 2.4, 0.4, 0.7


def push_grip(o: ObjectSpec) -> float:
    """Gripper command [0, 1] the expert pushes ``o`` with."""
    return BLOCK_GRIP if o.kind == "box" else PUCK_GRIP


def contact_offset(o: ObjectSpec) -> float:
    """Distance [m] along the push from the TCP to the object's centre when the pads touch it.

    A block is pushed on a flat face (its half size); a puck sits in the cradle of the two pads,
    whose front faces meet its rim at half the pad gap to either side.
    """
    if o.kind == "box":
        return PAD_HALF + o.size[0]
    r, half_gap = o.size[0], (1.0 - push_grip(o)) * GRIPPER_OPEN / 2
    return PAD_HALF + float(np.sqrt(max(r * r - half_gap**2, 0.0)))


def slippery_xml(o: ObjectSpec) -> str:
    """MJCF of a free object whose own friction wins against the table's (geom priority)."""
    return o.to_xml().replace(' condim="4"', ' condim="4" priority="1"')


def goal_xml(goal: ObjectSpec) -> str:
    """A flat marker on the table: a fixed body with one visual-only geom (no contacts)."""
    kind = "box" if goal.kind == "box" else "cylinder"
    size = fmt(goal.size)
    return (f'    <body name="{goal.name}" pos="{fmt(goal.pos)}"><geom name="{goal.name}" type="{kind}" size="{size}" '
            f'rgba="{rgba(goal.color)}" contype="0" conaffinity="0" mass="0.001"/></body>')


@register_task
class PushPull(Task):
    name = "push_pull"
    duration = 10.0
    description = "push or pull a block or puck across the table onto a marked goal, past a bottle"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        mode = "push" if rng.random() < 0.5 else "pull"
        d = 1.0 if mode == "push" else -1.0  # push direction along world x
        side = 1.0 if rng.random() < 0.5 else -1.0
        y0 = side * rng.uniform(0.04, 0.10)
        dist = rng.uniform(0.15, 0.18)
        ox = rng.uniform(0.42, 0.46) if mode == "push" else rng.uniform(0.55, 0.58)
        gx = ox + d * dist
        if rng.random() < 0.5:
            h = float(rng.uniform(0.020, 0.024))
            obj = ObjectSpec("object", "box", (h, h, h), (ox, y0, h), colors[0], yaw=float(rng.uniform(-0.15, 0.15)),
                             mass=0.10, noun="block", friction=SLIDE_FRICTION)
        else:
            r, hh = float(rng.uniform(0.026, 0.032)), float(rng.uniform(0.014, 0.018))
            obj = ObjectSpec("object", "cylinder", (r, hh), (ox, y0, hh), colors[0], mass=0.10, noun="puck",
                             friction=SLIDE_FRICTION)
        gh = float(rng.uniform(0.040, 0.048))
        if rng.random() < 0.5:
            goal = ObjectSpec("goal", "box", (gh, gh, 0.0005), (gx, y0, 0.0005), colors[1], free=False, noun="square")
        else:
            goal = ObjectSpec("goal", "cylinder", (gh, 0.0005), (gx, y0, 0.0005), colors[1], free=False, noun="disc")
        mid = (ox + gx) / 2
        br, bhh = float(rng.uniform(0.024, 0.030)), float(rng.uniform(0.060, 0.070))
        bottle = ObjectSpec("bottle", "cylinder", (br, bhh), (mid + rng.uniform(-0.03, 0.03),
                            y0 - side * rng.uniform(0.19, 0.21), bhh), colors[2], mass=0.15, noun="bottle",
                            friction=GRIP_FRICTION)
        dh0, dh1 = float(rng.uniform(0.018, 0.021)), float(rng.uniform(0.018, 0.021))
        # distractor0 behind the object on the edge side, distractor1 beside the goal further out
        d0 = ObjectSpec("distractor0", "box", (dh0, dh0, dh0), (ox - d * DISTRACTOR_BEHIND,
                        y0 + side * rng.uniform(0.085, 0.095), dh0), colors[3], yaw=float(rng.uniform(-0.3, 0.3)),
                        mass=0.10, noun="block", friction=GRIP_FRICTION)
        d1 = ObjectSpec("distractor1", "box", (dh1, dh1, dh1), (gx - d * rng.uniform(0.0, 0.03),
                        y0 + side * rng.uniform(0.17, 0.19), dh1), colors[4], yaw=float(rng.uniform(-0.15, 0.15)),
                        mass=0.10, noun="block", friction=GRIP_FRICTION)
        objects = [obj, goal, bottle, d0, d1]
        roles = {"object": "object", "goal": "goal", "bottle": "bottle", "distractor0": "distractor0",
                 "distractor1": "distractor1"}
        templates = PUSH_TEMPLATES if mode == "push" else PULL_TEMPLATES
        instruction = templates[int(rng.integers(len(templates)))].format(obj=obj.label, goal=goal.label)
        params = {"direction": d, "side": side, "goal_half": gh, "goal_round": float(goal.kind == "cylinder"),
                  "table_half_y": TABLE_HALF[1], "table_far_x": TABLE_CENTER[0] + TABLE_HALF[0]}
        return Layout(self.name, seed, objects, roles, instruction, params)

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        # only the pushed object slides on its own (low) friction; the bystanders grip the table
        parts = [goal_xml(o) if not o.free else (slippery_xml(o) if o.name == "object" else o.to_xml())
                 for o in layout.objects]
        return stage_xml(stage, "\n".join(parts), model_name=f"push_pull_{layout.seed}",
                         table_half=TABLE_HALF, table_center=TABLE_CENTER)

    # ------------------------------------------------------------------ expert
    @staticmethod
    def push_line(layout: Layout, role: str = "object",
                  goal_xy: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
        """(start TCP, end TCP, unit push direction, yaw) of a straight push of ``role`` whose
        centre ends at ``goal_xy`` (default: the goal's centre), world frame [m] / [rad]."""
        o = layout.obj(role)
        g = np.array(layout.obj("goal").pos[:2]) if goal_xy is None else np.asarray(goal_xy, float)
        p = np.array(o.pos[:2])
        u = (g - p) / np.linalg.norm(g - p)
        off = contact_offset(o)
        start = p - u * (off + START_GAP)
        end = g - u * off
        # pads side by side across the push: hand x along the push, folded so |yaw| <= pi/2
        yaw = float(np.arctan2(u[1], u[0]))
        yaw = (yaw + np.pi / 2) % np.pi - np.pi / 2
        return np.array([*start, PUSH_Z]), np.array([*end, PUSH_Z]), u, yaw

    @staticmethod
    def push_segments(start: np.ndarray, end: np.ndarray, u: np.ndarray, yaw: float, grip: float) -> list[Segment]:
        """approach -> descend -> push -> backoff -> lift for a push from ``start`` to ``end``
        with gripper command ``grip``."""
        back = end - np.array([*u, 0.0]) * BACKOFF
        return [
            Segment("approach", np.array([start[0], start[1], TRAVEL_Z]), yaw, APPROACH_S, grip),
            Segment("descend", start, yaw, DESCEND_S, grip),
            Segment("push", end, yaw, PUSH_S, grip),
            Segment("backoff", back, yaw, BACKOFF_S, grip),
            Segment("lift", np.array([back[0], back[1], TRAVEL_Z]), yaw, LIFT_S, grip),
        ]

    def expert_program(self, layout: Layout) -> Program:
        start, end, u, yaw = self.push_line(layout)
        grip = push_grip(layout.obj("object"))
        p = Program(start_pos=np.array([0.40, 0.0, 0.35]), start_quat=topdown_quat(0.0))
        p.segments = self.push_segments(start, end, u, yaw, grip)
        last = p.segments[-1]
        p.segments.append(Segment("hold", np.array(last.pos, float), yaw, max(self.duration - p.duration, 0.1), grip))
        return p

    # ------------------------------------------------------------------ labels
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return pdet.push_progress(trace, layout)

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        return pdet.detect(trace, layout)

    def perturbations(self):
        from simfail.perturbations.push_pull import PUSH_PULL_PERTURBATIONS

        return dict(PUSH_PULL_PERTURBATIONS)
