"""Reorient: turn a cylinder lying on the table to the goal orientation a marker shows.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x): the
*object* is a cylinder (a can, a bottle, a rolling pin) lying on its side; its body frame has
z up and x along the cylinder's axis, and its yaw is the axis' angle about world z. A flat
marker on the table (geoms with ``contype=0``: seen, never touched) shows the goal. Each seed
is one of two instances:

* ``yaw``: a rectangular outline of the object's footprint turned ``delta`` (40-80 degrees,
  either way) about the object's centre: turn the object about the vertical to match it;
* ``upright``: a ring around the object's centre: stand the can up (turn its axis by 90
  degrees about a horizontal axis). The can lies across the direction from the robot base and
  turns about that direction (the fingers close along it), so the gripper ends pointing
  sideways: a forward-pointing hand close to the table is beyond joint 6's range.

A *bystander* (a tall cup that topples when hit) stands beside the object and a *distractor*
(a long block) lies further away. Colours, sizes, poses, the instance and the turn are drawn
from the seed; every scene has the same three free bodies, so ``sim.qpos`` has one width.

Expert: approach above the object, descend, close across its middle (top-down, fingers
closing across the axis), lift, turn the hand by ``delta`` about ``rot_axis`` (the fingers
closing along that axis in the upright instance), lower until the object's lowest point is
``RELEASE_GAP`` above the table, release, back off, hold. Yaw targets are folded so the wrist
never wraps past joint 7's range. The object turns in place: the goal centre is its start.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, fmt, rgba, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import detectors as det
from simfail.labels import reorient_detectors as rdet
from simfail.labels.trace import Trace

TEMPLATES = {
    "yaw": (
        "turn the {obj} to line up with the {goal} outline",
        "rotate the {obj} so it matches the {goal} outline on the table",
        "reorient the {obj} to fit the {goal} outline",
        "pick up the {obj}, turn it to the {goal} outline and set it down",
    ),
    "upright": (
        "stand the {obj} upright in the {goal} ring",
        "turn the {obj} upright and set it down inside the {goal} ring",
        "pick up the {obj} and stand it on its end in the {goal} ring",
        "set the {obj} upright on the {goal} circle",
    ),
}
NOUNS = {"yaw": ("can", "bottle", "rolling pin", "tube"), "upright": ("can", "bottle")}
#: Share of seeds that are ``upright`` instances.
UPRIGHT_SHARE = 0.4

#: TCP height above the object's centre before descending [m].
APPROACH_DZ = 0.12
#: Clearance [m] of the object's lowest point above the table while it turns.
TURN_CLEARANCE = 0.055
#: Height [m] of the object's lowest point above the table when the gripper opens.
RELEASE_GAP = 0.004
#: Distance [m] the hand backs off along its own axis after an upright set-down, and rises.
BACK_OFF = 0.10
BACK_RISE = 0.06
#: Goal turn magnitude range [rad] of the yaw instance.
TURN_RANGE = (np.deg2rad(40.0), np.deg2rad(80.0))
#: Turning speed of the hand [rad/s] (segment duration = |angle| / speed, at least 0.8 s).
TURN_SPEED = np.deg2rad(60.0)
#: Object centre area [m] (inside the expert's reach).
X_RANGE = (0.46, 0.58)
Y_RANGE = (-0.12, 0.12)
#: Upright instance: largest angle [rad] between the can's axis and the horizontal normal of
#: the direction from the robot base (the can lies across that direction).
UPRIGHT_SPREAD = np.deg2rad(20.0)
#: Distance [m] of the bystander cup from the object centre (clear of the turning object
#: and of the hand, which is about 0.2 m wide along the finger axis).
CUP_RING = (0.17, 0.20)
#: Upright instance: least distance [m] of the cup and the block behind the object's centre,
#: seen from the hand (the hand and the arm reach the standing can from one side).
HAND_SIDE_CLEARANCE = 0.05
#: Least distance [m] of the distractor from the object and the cup.
DISTRACTOR_CLEARANCE = (0.19, 0.12)
#: Rolling friction [m] of the lying cylinder (condim 6).
ROLL_FRICTION = 0.002
#: Marker stroke width, margin around the object's footprint [m], and ring segments.
OUTLINE_WIDTH = 0.004
OUTLINE_MARGIN = 0.008
RING_SEGMENTS = 16


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of quaternions (w, x, y, z)."""
    w0, v0, w1, v1 = a[0], np.asarray(a[1:]), b[0], np.asarray(b[1:])
    return np.concatenate([[w0 * w1 - v0 @ v1], w0 * v1 + w1 * v0 + np.cross(v0, v1)])


def axis_angle_quat(axis: np.ndarray, angle: float) -> np.ndarray:
    """Quaternion (w, x, y, z) of a rotation by ``angle`` [rad] about the unit ``axis``."""
    return np.concatenate([[np.cos(angle / 2)], np.sin(angle / 2) * np.asarray(axis, float)])


def quat_axes(q: np.ndarray) -> np.ndarray:
    """(3, 3) rotation matrix of quaternion ``q`` (columns: the frame's x, y, z axes in the world)."""
    w, x, y, z = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
        [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
        [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
    ])


def fold_yaws(axis_yaw: float, delta: float) -> tuple[float, float]:
    """Grasp and final TCP yaws [rad] for turning an object whose axis is at ``axis_yaw``
    by ``delta`` about the vertical: the hand's x axis along the cylinder (fingers close across
    it), with the representation (mod pi, the grasp is symmetric) whose mid-turn yaw is in
    [-pi/2, pi/2], so both ends stay within |yaw| <= pi/2 + |delta|/2 and joint 7 never wraps."""
    mid = axis_yaw + delta / 2
    folded = (mid + np.pi / 2) % np.pi - np.pi / 2
    start = float(axis_yaw + (folded - mid))
    return start, start + float(delta)


def _clear_of_hand(p: np.ndarray, centre: np.ndarray, hand_side: np.ndarray | None) -> bool:
    """``p`` [m] is not on the side of ``centre`` where a sideways-pointing hand ends up
    (``hand_side``: unit x-y direction from the object to the hand; None: a top-down hand)."""
    return hand_side is None or float((p - centre) @ hand_side) < -HAND_SIDE_CLEARANCE


def _ring(rng: np.random.Generator, centre: np.ndarray, radii: tuple[float, float],
          hand_side: np.ndarray | None) -> np.ndarray:
    """A point [m] at a distance in ``radii`` from ``centre``, in the workspace, clear of the hand."""
    for _ in range(400):
        ang = rng.uniform(0, 2 * np.pi)
        xy = centre + rng.uniform(*radii) * np.array([np.cos(ang), np.sin(ang)])
        if 0.36 <= xy[0] <= 0.68 and abs(xy[1]) <= 0.28 and _clear_of_hand(xy, centre, hand_side):
            return xy
    raise RuntimeError("could not place an object around the reorient target")  # pragma: no cover


def lying_cylinder_xml(o: ObjectSpec) -> str:
    """Body of a cylinder lying on its side: body z up, the cylinder's axis along body x.

    ``condim=6`` gives it rolling friction (``o.friction[2]`` [m]): without it a lying cylinder
    creeps on the table from contact noise alone; with it, it still rolls away when pushed.
    """
    r, hl = o.size
    quat = f"{np.cos(o.yaw / 2):.6f} 0 0 {np.sin(o.yaw / 2):.6f}"
    geom = (f'<geom name="{o.name}" type="cylinder" size="{r:.4f} {hl:.4f}" quat="0.707107 0 0.707107 0" '
            f'rgba="{rgba(o.color)}" mass="{o.mass}" friction="{fmt(o.friction)}" condim="6"/>')
    return f'    <body name="{o.name}" pos="{fmt(o.pos)}" quat="{quat}"><freejoint name="{o.name}_free"/>{geom}</body>'


def _strip(k: int, px: float, py: float, sx: float, sy: float, yaw: float, color: str) -> str:
    """One flat marker strip [m] (no collisions), centred at (px, py) in the marker's frame."""
    return (f'<geom name="goal_{k}" type="box" pos="{px:.4f} {py:.4f} 0.0006" size="{sx:.4f} {sy:.4f} 0.0006" '
            f'quat="{np.cos(yaw / 2):.6f} 0 0 {np.sin(yaw / 2):.6f}" rgba="{rgba(color)}" contype="0" conaffinity="0"/>')


def outline_xml(centre: np.ndarray, yaw: float, half_l: float, half_w: float, color: str) -> str:
    """A static rectangular outline (four flat strips) on the table top, turned ``yaw`` [rad]."""
    w = OUTLINE_WIDTH / 2
    strips = [((0.0, half_w), (half_l + w, w)), ((0.0, -half_w), (half_l + w, w)),
              ((half_l, 0.0), (w, half_w + w)), ((-half_l, 0.0), (w, half_w + w))]
    geoms = "".join(_strip(k, px, py, sx, sy, 0.0, color) for k, ((px, py), (sx, sy)) in enumerate(strips))
    quat = f"{np.cos(yaw / 2):.6f} 0 0 {np.sin(yaw / 2):.6f}"
    return f'    <body name="goal" pos="{centre[0]:.4f} {centre[1]:.4f} 0" quat="{quat}">{geoms}</body>'


def ring_xml(centre: np.ndarray, radius: float, color: str) -> str:
    """A static ring of ``RING_SEGMENTS`` flat strips of radius ``radius`` [m] on the table top."""
    half = radius * np.tan(np.pi / RING_SEGMENTS) + OUTLINE_WIDTH / 2
    geoms = "".join(
        _strip(k, radius * np.cos(a), radius * np.sin(a), OUTLINE_WIDTH / 2, half, a, color)
        for k, a in enumerate(np.arange(RING_SEGMENTS) * 2 * np.pi / RING_SEGMENTS))
    return f'    <body name="goal" pos="{centre[0]:.4f} {centre[1]:.4f} 0">{geoms}</body>'


def _instance(rng: np.random.Generator) -> dict:
    """Mode, object centre and size [m], axis yaw, goal and turn [rad] of one seed's instance."""
    xy = np.array([rng.uniform(*X_RANGE), rng.uniform(*Y_RANGE)])
    if rng.random() < UPRIGHT_SHARE:
        radius, half_l = float(rng.uniform(0.024, 0.028)), float(rng.uniform(0.055, 0.068))
        yaw0 = float(np.arctan2(xy[1], xy[0]) + np.pi / 2 + rng.uniform(-UPRIGHT_SPREAD, UPRIGHT_SPREAD))
        # hand x along the can, pointing away from the centreline y = 0: the hand ends on the
        # outer side of the standing can, the cup and the block stand on the inner side
        hand_x = fold_yaws(yaw0, 0.0)[0]
        if np.sin(hand_x) * (1.0 if xy[1] >= 0 else -1.0) < 0:
            hand_x -= np.pi * np.sign(hand_x)
        d0 = np.array([np.cos(hand_x), np.sin(hand_x), 0.0])
        return {"mode": "upright", "xy": xy, "radius": radius, "half_length": half_l, "yaw0": yaw0,
                "delta": np.pi / 2, "goal_dir": [0.0, 0.0, 1.0],
                "rot_axis": [float(v) for v in np.cross([0.0, 0.0, 1.0], d0)], "goal_yaw": yaw0,
                "grasp_yaw": float(hand_x)}
    radius, half_l = float(rng.uniform(0.021, 0.026)), float(rng.uniform(0.065, 0.085))
    yaw0 = float(rng.uniform(-np.pi / 2, np.pi / 2))
    delta = float(rng.choice([-1.0, 1.0]) * rng.uniform(*TURN_RANGE))
    goal = yaw0 + delta
    return {"mode": "yaw", "xy": xy, "radius": radius, "half_length": half_l, "yaw0": yaw0, "delta": delta,
            "goal_dir": [float(np.cos(goal)), float(np.sin(goal)), 0.0], "rot_axis": [0.0, 0.0, 1.0], "goal_yaw": goal,
            "grasp_yaw": fold_yaws(yaw0, delta)[0]}


@register_task
class Reorient(Task):
    name = "reorient"
    duration = 8.0
    description = "turn a lying cylinder to a marked goal orientation (a new yaw, or upright), without knocking over the cup"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        inst = _instance(rng)
        mode, xy = inst["mode"], inst["xy"]
        hand_side = None
        if mode == "upright":
            hand_side = np.array([np.cos(inst["grasp_yaw"]), np.sin(inst["grasp_yaw"])])
        cup_xy = _ring(rng, xy, CUP_RING, hand_side)
        for _ in range(400):
            dxy = np.array([rng.uniform(0.36, 0.66), rng.uniform(-0.26, 0.26)])
            if (np.linalg.norm(dxy - xy) >= DISTRACTOR_CLEARANCE[0]
                    and np.linalg.norm(dxy - cup_xy) >= DISTRACTOR_CLEARANCE[1]
                    and _clear_of_hand(dxy, xy, hand_side)):
                break
        cup_r, cup_hh = float(rng.uniform(0.026, 0.030)), float(rng.uniform(0.048, 0.055))
        bh = float(rng.uniform(0.018, 0.022))
        r, hl = inst["radius"], inst["half_length"]
        objects = [
            ObjectSpec("object", "cylinder", (r, hl), (*xy, r), colors[0], yaw=inst["yaw0"], mass=0.12,
                       noun=str(rng.choice(NOUNS[mode])), friction=(1.0, 0.01, ROLL_FRICTION)),
            ObjectSpec("bystander", "cylinder", (cup_r, cup_hh), (*cup_xy, cup_hh), colors[2], mass=0.12, noun="cup",
                       friction=(0.6, 0.01, 0.001)),
            ObjectSpec("distractor", "box", (float(rng.uniform(0.05, 0.065)), bh, bh), (*dxy, bh), colors[3],
                       yaw=float(rng.uniform(-np.pi / 2, np.pi / 2)), mass=0.1, noun="block",
                       friction=(1.0, 0.01, 0.001)),
        ]
        roles = {"object": "object", "bystander": "bystander", "distractor0": "distractor"}
        templates = TEMPLATES[mode]
        instruction = templates[int(rng.integers(len(templates)))].format(obj=objects[0].label, goal=colors[1])
        params = {k: v for k, v in inst.items() if k not in ("yaw0", "xy")}
        params.update({"goal_color": colors[1], "goal_xy": [float(xy[0]), float(xy[1])]})
        return Layout(self.name, seed, objects, roles, instruction, params)

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        p = layout.params
        centre = np.array(p["goal_xy"])
        if p["mode"] == "upright":
            marker = ring_xml(centre, p["radius"] + OUTLINE_MARGIN, p["goal_color"])
        else:
            marker = outline_xml(centre, p["goal_yaw"], p["half_length"] + OUTLINE_MARGIN,
                                 p["radius"] + OUTLINE_MARGIN, p["goal_color"])
        parts = [lying_cylinder_xml(layout.obj("object")), *(x.to_xml() for x in layout.objects[1:]), marker]
        return stage_xml(stage, "\n".join(parts), model_name=f"reorient_{layout.seed}")

    # ------------------------------------------------------------------ expert geometry
    def grasp_yaw(self, layout: Layout) -> float:
        """TCP yaw [rad] of the top-down grasp (hand x along the cylinder, folded for the turn)."""
        return float(layout.params["grasp_yaw"])

    def turn_quat(self, layout: Layout, angle: float, grasp_yaw: float | None = None) -> np.ndarray:
        """TCP orientation (w, x, y, z) after turning the grasp by ``angle`` [rad] about ``rot_axis``."""
        yaw = self.grasp_yaw(layout) if grasp_yaw is None else grasp_yaw
        return quat_mul(axis_angle_quat(np.array(layout.params["rot_axis"]), angle), topdown_quat(yaw))

    def low_offset(self, layout: Layout, angle: float) -> float:
        """Height [m] of the object's centre above its lowest point after a turn by ``angle`` [rad]."""
        d0 = np.array([np.cos(layout.obj("object").yaw), np.sin(layout.obj("object").yaw), 0.0])
        axis = quat_axes(axis_angle_quat(np.array(layout.params["rot_axis"]), angle)) @ d0
        s = min(abs(float(axis[2])), 1.0)
        return float(layout.params["half_length"] * s + layout.params["radius"] * np.sqrt(1.0 - s * s))

    def set_down(self, layout: Layout, angle: float, gap: float = RELEASE_GAP) -> np.ndarray:
        """TCP position [m] that holds the object, turned by ``angle``, ``gap`` above the table."""
        g = layout.params["goal_xy"]
        return np.array([g[0], g[1], self.low_offset(layout, angle) + gap])

    def lifted(self, layout: Layout) -> np.ndarray:
        """TCP position [m] the object turns at: its lowest point clears the table by
        ``TURN_CLEARANCE`` at every angle of the turn."""
        worst = max(self.low_offset(layout, a) for a in np.linspace(0.0, layout.params["delta"], 9))
        g = layout.params["goal_xy"]
        return np.array([g[0], g[1], worst + TURN_CLEARANCE])

    def turn_duration(self, angle: float) -> float:
        """Seconds to turn the hand by ``angle`` [rad]."""
        return max(0.8, abs(angle) / TURN_SPEED)

    def after_release(self, layout: Layout, place: np.ndarray, quat: np.ndarray) -> np.ndarray:
        """Where the open hand goes after a set-down at ``place`` [m] with orientation ``quat``:
        straight up (top-down hand) or back along its own axis and up (tilted hand)."""
        if layout.params["mode"] == "yaw":
            return np.array([place[0], place[1], layout.params["radius"] + APPROACH_DZ])
        back = -quat_axes(quat)[:, 2]
        back[2] = 0.0
        return place + BACK_OFF * back / np.linalg.norm(back) + [0.0, 0.0, BACK_RISE]

    def finish(self, layout: Layout, angle: float, t_now: float, grasp_yaw: float | None = None) -> list[Segment]:
        """lower -> release -> retreat -> hold after a turn by ``angle`` [rad] that ends at
        ``t_now`` [s], with the hold lasting to the episode's end."""
        q = self.turn_quat(layout, angle, grasp_yaw)
        place = self.set_down(layout, angle)
        away = self.after_release(layout, place, q)
        segs = [Segment("lower", place, 0.0, 0.6, 1.0, q), Segment("release", place, 0.0, 0.4, 0.0, q),
                Segment("retreat", away, 0.0, 0.7, 0.0, q)]
        used = t_now + sum(s.duration for s in segs)
        segs.append(Segment("hold", away, 0.0, max(self.duration - used, 0.1), 0.0, q))
        return segs

    def expert_program(self, layout: Layout) -> Program:
        o = layout.obj("object")
        yaw0 = self.grasp_yaw(layout)
        grasp = np.array([o.pos[0], o.pos[1], layout.params["radius"]])
        lifted = self.lifted(layout)
        delta = layout.params["delta"]
        p = Program(start_pos=np.array([0.40, 0.0, 0.35]), start_quat=topdown_quat(0.0))
        p.segments = [
            Segment("approach", grasp + [0, 0, APPROACH_DZ], yaw0, 1.4, 0.0),
            Segment("descend", grasp, yaw0, 0.8, 0.0),
            Segment("grasp", grasp, yaw0, 0.5, 1.0),
            Segment("lift", lifted, yaw0, 0.6, 1.0),
            Segment("rotate", lifted, 0.0, self.turn_duration(delta), 1.0, self.turn_quat(layout, delta)),
        ]
        p.segments += self.finish(layout, delta, p.duration)
        return p

    # ------------------------------------------------------------------ labels
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return rdet.reorient_progress(trace, layout)

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        others = ["bystander", "distractor"]
        events: list[FailureEvent] = []
        events += det.missed_grasps(trace, ["object"], layout)
        dropped = rdet.drops(trace, layout)
        events += dropped
        if not dropped:  # after a drop, where and how the object lands is part of the drop
            rolled = rdet.rolls_off(trace, layout)
            events += rolled or rdet.misplaced(trace, layout)
            events += rdet.orientation_outcome(trace, layout)
        events += rdet.overshoot(trace, layout)
        events += det.collisions(trace, others, layout, carried=["object"])
        events += det.topples(trace, ["bystander"], layout)
        events += det.off_table(trace, layout.free_objects, layout)
        events += det.wrong_object(trace, "object", ["distractor"], layout)
        events += det.not_released(trace, ["object", "distractor"], layout)
        events += det.shaky_motion(trace, layout)
        events += det.robot_disturbances(trace, layout, events, layout.free_objects)
        success = rdet.settled(trace, layout)
        events += det.failure_verdict(
            trace, layout, success, events, lambda: self.progress(trace, layout), obj="object",
            engaged=det.grasped(trace, "object"),
            at_goal=rdet.orientation_error(trace, layout) <= rdet.ORIENT_TOL,
            missed="is never turned to its goal orientation",
            finish="it does not end released at rest on its goal")
        return success, det.merge_events(events)

    def perturbations(self):
        from simfail.perturbations.reorient import REORIENT_PERTURBATIONS

        return dict(REORIENT_PERTURBATIONS)
