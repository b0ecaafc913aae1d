"""Pick/Place: put a block into a bowl, past a cup that can be knocked over.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x):
the *object* (a cube, 4-5 cm) and the *target* (a bowl) sit on opposite sides of the
workspace; an *obstacle* (a tall cup that topples when hit) stands beside the carry path; one
or two *distractors* (cubes of other colours) are scattered around. Colours, sizes, poses and
the number of distractors are drawn from the seed.

Expert: approach above the object, descend, close, lift, carry above the bowl, lower,
release, retreat, hold. Keyframes are relative to the objects' sampled poses.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import detectors as det
from simfail.labels.trace import Trace

TEMPLATES = (
    "put the {obj} in the {target}",
    "place the {obj} into the {target}",
    "pick up the {obj} and put it in the {target}",
    "move the {obj} into the {target}",
)

#: TCP height [m] while carrying (the cube's bottom clears the cup by > 8 cm).
CARRY_Z = 0.24
#: TCP height above the object centre before descending [m].
APPROACH_DZ = 0.12


def _yaw_for_grasp(yaw: float) -> float:
    """Grasp yaw aligned with the cube's faces, folded into [-pi/4, pi/4] (no wrist wrap)."""
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


@register_task
class PickPlace(Task):
    name = "pick_place"
    duration = 8.0
    description = "pick a cube and place it in a bowl without knocking over the cup"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        side = 1.0 if rng.random() < 0.5 else -1.0
        half = float(rng.uniform(0.020, 0.024))
        obj_xy = np.array([rng.uniform(0.45, 0.58), side * rng.uniform(0.10, 0.20)])
        bowl_r = float(rng.uniform(0.070, 0.080))
        bowl_xy = np.array([rng.uniform(0.45, 0.60), -side * rng.uniform(0.12, 0.20)])
        mid = (obj_xy + bowl_xy) / 2
        # the cup stands beside the straight carry path, in front of or behind it
        cup_xy = mid + np.array([rng.choice([-1.0, 1.0]) * rng.uniform(0.11, 0.14), rng.uniform(-0.03, 0.03)])
        cup_r, cup_hh = float(rng.uniform(0.026, 0.032)), float(rng.uniform(0.050, 0.060))
        objects = [
            ObjectSpec("object", "box", (half, half, half), (*obj_xy, half), colors[0],
                       yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)), mass=0.08, noun="cube",
                       friction=(1.2, 0.01, 0.001)),
            ObjectSpec("target", "bowl", (bowl_r, 0.045, 0.008), (*bowl_xy, 0.0), colors[1], mass=0.6, noun="bowl",
                       free=True),
            ObjectSpec("obstacle", "cylinder", (cup_r, cup_hh), (*cup_xy, cup_hh), colors[2], mass=0.12, noun="cup",
                       friction=(0.6, 0.01, 0.001)),
        ]
        taken = [obj_xy, bowl_xy, cup_xy]
        n_distract = 2  # fixed so every group has the same sim.qpos layout
        roles = {"object": "object", "target": "target", "obstacle": "obstacle"}
        for k in range(n_distract):
            for _ in range(100):
                xy = np.array([rng.uniform(0.35, 0.68), rng.uniform(-0.30, 0.30)])
                if all(np.linalg.norm(xy - t) > 0.13 for t in taken):
                    break
            taken.append(xy)
            dh = float(rng.uniform(0.018, 0.023))
            name = f"distractor{k}"
            objects.append(ObjectSpec(name, "box", (dh, dh, dh), (*xy, dh), colors[3 + k],
                                      yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)), mass=0.08, noun="cube",
                                      friction=(1.2, 0.01, 0.001)))
            roles[name] = name
        instruction = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(
            obj=objects[0].label, target=objects[1].label
        )
        params = {"bowl_radius": bowl_r, "bowl_wall": 0.045, "cube_half": half, "side": side}
        return Layout(self.name, seed, objects, roles, instruction, params)

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        body = "\n".join(o.to_xml() for o in layout.objects)
        return stage_xml(stage, body, model_name=f"pick_place_{layout.seed}")

    # ------------------------------------------------------------------ expert
    def grasp_keyframes(self, layout: Layout, role: str = "object") -> tuple[np.ndarray, float]:
        o = layout.obj(role)
        return np.array([o.pos[0], o.pos[1], o.pos[2]]), _yaw_for_grasp(o.yaw)

    def expert_program(self, layout: Layout, role: str = "object") -> Program:
        grasp, yaw = self.grasp_keyframes(layout, role)
        half = layout.obj(role).size[2]
        bowl = np.array(layout.obj("target").pos)
        # release with the cube's bottom 1.5 cm above the bowl's base plate
        place = np.array([bowl[0], bowl[1], 0.006 + half + 0.015])
        start = np.array([0.40, 0.0, 0.35])
        p = Program(start_pos=start, start_quat=topdown_quat(0.0))
        above = grasp + [0, 0, APPROACH_DZ]
        p.segments = [
            Segment("approach", above, yaw, 1.4, 0.0),
            Segment("descend", grasp, yaw, 0.8, 0.0),
            Segment("grasp", grasp, yaw, 0.5, 1.0),
            Segment("lift", np.array([grasp[0], grasp[1], CARRY_Z]), yaw, 0.7, 1.0),
            Segment("carry", np.array([place[0], place[1], CARRY_Z]), yaw, 1.4, 1.0),
            Segment("lower", place, yaw, 0.7, 1.0),
            Segment("release", place, yaw, 0.4, 0.0),
            Segment("retreat", np.array([place[0], place[1], CARRY_Z]), yaw, 0.7, 0.0),
        ]
        hold = self.duration - p.duration
        p.segments.append(Segment("hold", np.array([place[0], place[1], CARRY_Z]), yaw, max(hold, 0.1), 0.0))
        return p

    # ------------------------------------------------------------------ labels
    def in_target(self, trace: Trace, layout: Layout, name: str = "object") -> np.ndarray:
        """(T,) bool: the object's centre is inside the bowl (radially and in height)."""
        p = trace.pos(name)
        b = trace.pos("target")
        r = np.linalg.norm(p[:, :2] - b[:, :2], axis=1)
        dz = p[:, 2] - b[:, 2]
        return (r < layout.params["bowl_radius"] - 0.01) & (dz > 0.0) & (dz < layout.params["bowl_wall"] + 0.01)

    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return det.transport_progress(trace, "object", self.in_target(trace, layout), "target")

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        inside = self.in_target(trace, layout)
        events: list[FailureEvent] = []
        events += det.missed_grasps(trace, ["object"], layout)
        events += det.drops(trace, "object", inside, layout)
        events += det.collisions(trace, ["obstacle", *[r for r in layout.roles if r.startswith("distractor")]], layout,
                                 carried=["object"])
        events += det.topples(trace, ["obstacle"], layout)
        events += det.off_table(trace, layout.free_objects, layout)
        events += det.wrong_object(trace, "object", [r for r in layout.roles if r.startswith("distractor")], layout)
        events += det.not_released(trace, ["object", *[r for r in layout.roles if r.startswith("distractor")]], layout)
        events += det.placement(trace, "object", inside, layout, target="target")
        events += det.dragging(trace, ["object"], layout)
        events += det.shaky_motion(trace, layout)
        events += det.robot_disturbances(trace, layout, events, layout.free_objects)
        success = det.settled_success(trace, "object", inside)
        events += det.failure_verdict(
            trace, layout, success, events, lambda: self.progress(trace, layout), obj="object",
            engaged=det.grasped(trace, "object"), at_goal=inside,
            missed=f"never gets into the {det.object_label(layout, 'target')}",
            finish="it does not end released and at rest in it")
        return success, det.merge_events(events)

    def perturbations(self):
        from simfail.perturbations.pick_place import PICK_PLACE_PERTURBATIONS

        return dict(PICK_PLACE_PERTURBATIONS)
