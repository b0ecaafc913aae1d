"""Stack: build a tower of two or three blocks in the order the instruction names.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x): four
cubes (2.0-2.3 cm half size) and a cup stand on the table. ``block0`` is the requested base,
``block1`` goes on it and, in three-level scenes, ``block2`` on ``block1``; in two-level scenes
``block2`` is a second distractor. ``distractor`` is a cube that belongs to no tower, and the
*bystander* (a tall cup that topples when hit) stands near the base block. Every scene holds
the same five bodies, so ``sim.qpos`` has one width for the task; which of them form the
tower (two or three levels), colours, sizes and poses are drawn from the seed.

Expert: per level, approach above the block, descend, close, lift, carry above the tower,
lower until the block's bottom is ``RELEASE_GAP`` above the support, release, retreat. All
keyframes are relative to the sampled poses; each block is placed centred on the base's
sampled position, with its faces turned parallel to the base's.
"""

from __future__ import annotations

import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import detectors as det
from simfail.labels import stack_detectors as sdet
from simfail.labels.trace import Trace

TEMPLATES_2 = (
    "stack the {b1} on the {b0}",
    "put the {b1} on top of the {b0}",
    "place the {b1} onto the {b0}",
    "build a two-block tower: the {b0} at the bottom and the {b1} on top",
)
TEMPLATES_3 = (
    "stack the {b1} on the {b0}, then the {b2} on top",
    "put the {b1} on the {b0} and then the {b2} on the {b1}",
    "build a tower: the {b0} at the bottom, then the {b1}, then the {b2}",
    "stack the blocks with the {b0} at the bottom, the {b1} in the middle and the {b2} on top",
)

#: Names of the four cubes, in the scene's fixed order.
BLOCKS = ("block0", "block1", "block2", "distractor")
#: TCP height [m] while carrying (a carried block's bottom clears a three-block tower and the cup).
CARRY_Z = 0.22
#: TCP height above the block centre before descending [m].
APPROACH_DZ = 0.11
#: Gap [m] between the carried block's bottom and the support's top when the gripper opens.
RELEASE_GAP = 0.004
#: Smallest distance [m] between the centres of any two objects on the table.
MIN_SPACING = 0.115
#: Smallest distance [m] between the base block and any other block.
TOWER_CLEARANCE = 0.15
#: Distance [m] of the cup from the base block, and its least distance from the other blocks.
CUP_RING = (0.12, 0.15)
CUP_CLEARANCE = 0.14
#: Largest angle [rad] between the base-to-cup direction and a face normal of the base.
CUP_SPREAD = 0.45
#: Table area [m] the objects are drawn from (inside the expert's reach).
X_RANGE = (0.38, 0.62)
Y_RANGE = (-0.24, 0.24)


def grasp_yaw(yaw: float) -> float:
    """Grasp yaw aligned with a cube's faces, folded into [-pi/4, pi/4] (no wrist wrap)."""
    return float((yaw + np.pi / 4) % (np.pi / 2) - np.pi / 4)


def _positions(rng: np.random.Generator, base_yaw: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Table x-y [m] of the four blocks (``BLOCKS`` order) and of the cup.

    Blocks are ``MIN_SPACING`` apart and ``TOWER_CLEARANCE`` from the base block (the hand,
    about 0.2 m long along the finger gap, must clear the tower while grasping them); the cup
    stands ``CUP_RING`` from the base block and at least ``CUP_CLEARANCE`` from the other
    blocks (for the same reason). Seen from the base block, the cup lies within
    ``CUP_SPREAD`` of a face normal of the base at ``base_yaw`` [rad], the direction the hand's
    narrow side faces while it stacks there. The whole draw is repeated until everything fits.
    """
    for _ in range(500):
        spots: list[np.ndarray] = []
        for _ in range(len(BLOCKS)):
            xy = np.array([rng.uniform(*X_RANGE), rng.uniform(*Y_RANGE)])
            if all(np.linalg.norm(xy - t) >= (TOWER_CLEARANCE if k == 0 else MIN_SPACING) for k, t in enumerate(spots)):
                spots.append(xy)
        if len(spots) < len(BLOCKS):
            continue
        ang = base_yaw + rng.choice([0.0, np.pi]) + rng.uniform(-CUP_SPREAD, CUP_SPREAD)
        cup = spots[0] + rng.uniform(*CUP_RING) * np.array([np.cos(ang), np.sin(ang)])
        inside = X_RANGE[0] - 0.02 <= cup[0] <= X_RANGE[1] + 0.03 and abs(cup[1]) <= 0.27
        if inside and all(np.linalg.norm(cup - t) >= CUP_CLEARANCE for t in spots[1:]):
            return spots, cup
    raise RuntimeError("could not place the stack scene's objects")  # pragma: no cover


@register_task
class Stack(Task):
    name = "stack"
    duration = 14.0
    description = "stack two or three named blocks in the requested order without knocking anything over"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        levels = int(rng.choice([2, 3]))
        yaws = rng.uniform(-np.pi / 4, np.pi / 4, size=len(BLOCKS))
        spots, cup_xy = _positions(rng, float(yaws[0]))
        objects = []
        for k, name in enumerate(BLOCKS):
            half = float(rng.uniform(0.020, 0.023))
            objects.append(ObjectSpec(name, "box", (half, half, half), (*spots[k], half), colors[k],
                                      yaw=float(yaws[k]), mass=0.06, noun="block",
                                      friction=(1.0, 0.01, 0.001)))
        cup_r, cup_hh = float(rng.uniform(0.026, 0.030)), float(rng.uniform(0.050, 0.058))
        objects.append(ObjectSpec("bystander", "cylinder", (cup_r, cup_hh), (*cup_xy, cup_hh), colors[4], mass=0.12,
                                  noun="cup", friction=(0.6, 0.01, 0.001)))
        tower = [f"block{k}" for k in range(levels)]
        roles = {f"level{k}": n for k, n in enumerate(tower)}
        roles["bystander"] = "bystander"
        extras = [n for n in ("block2", "distractor") if n not in tower]
        for k, n in enumerate(extras):
            roles[f"distractor{k}"] = n
        labels = {f"b{k}": objects[k].label for k in range(levels)}
        templates = TEMPLATES_3 if levels == 3 else TEMPLATES_2
        instruction = templates[int(rng.integers(len(templates)))].format(**labels)
        params = {"levels": float(levels)}
        return Layout(self.name, seed, objects, roles, instruction, params)

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        body = "\n".join(o.to_xml() for o in layout.objects)
        return stage_xml(stage, body, model_name=f"stack_{layout.seed}")

    # ------------------------------------------------------------------ expert
    @staticmethod
    def tower(layout: Layout) -> list[str]:
        """The requested tower, bottom to top (object names)."""
        return [layout.roles[f"level{k}"] for k in range(int(layout.params["levels"]))]

    @staticmethod
    def distractors(layout: Layout) -> list[str]:
        return [n for r, n in layout.roles.items() if r.startswith("distractor")]

    def pick_place_segments(self, layout: Layout, block: str, below: list[str], xy: np.ndarray,
                            support_yaw: float, offset: np.ndarray | None = None) -> list[Segment]:
        """Pick ``block`` from its sampled pose and set it on the stack ``below`` (bottom first)
        standing at ``xy`` [m]; ``offset`` [m] shifts the release point horizontally."""
        o = layout.obj(block)
        grasp = np.array(o.pos, float)
        gy = grasp_yaw(o.yaw)
        py = grasp_yaw(support_yaw)
        top = sum(2 * layout.obj(n).size[2] for n in below)
        place = np.array([xy[0], xy[1], top + o.size[2] + RELEASE_GAP])
        if offset is not None:
            place[:2] += offset
        high = np.array([place[0], place[1], CARRY_Z])
        return [
            Segment("approach", grasp + [0, 0, APPROACH_DZ], gy, 1.0, 0.0),
            Segment("descend", grasp, gy, 0.6, 0.0),
            Segment("grasp", grasp, gy, 0.35, 1.0),
            Segment("lift", np.array([grasp[0], grasp[1], CARRY_Z]), gy, 0.9, 1.0),
            Segment("carry", high, py, 1.1, 1.0),
            Segment("lower", place, py, 0.7, 1.0),
            Segment("release", place, py, 0.35, 0.0),
            Segment("retreat", high, py, 0.8, 0.0),
        ]

    def expert_program(self, layout: Layout, order: list[str] | None = None,
                       last_offset: np.ndarray | None = None) -> Program:
        """Stack ``order`` (bottom to top; default the requested tower) on its bottom block.

        ``last_offset`` [m, world x-y] shifts the release point of the top block.
        """
        order = list(order or self.tower(layout))
        base = layout.obj(order[0])
        xy = np.array(base.pos[:2], float)
        p = Program(start_pos=np.array([0.40, 0.0, 0.35]), start_quat=topdown_quat(0.0))
        for k in range(1, len(order)):
            off = last_offset if k == len(order) - 1 else None
            p.segments += self.pick_place_segments(layout, order[k], order[:k], xy, base.yaw, off)
        end = p.segments[-1]
        p.segments.append(Segment("hold", np.array(end.pos, float), end.yaw, max(self.duration - p.duration, 0.1), 0.0))
        return p

    # ------------------------------------------------------------------ labels
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return sdet.stack_progress(trace, self.tower(layout), layout)

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        tower = self.tower(layout)
        blocks = list(BLOCKS)
        others = self.distractors(layout)
        events: list[FailureEvent] = []
        events += det.missed_grasps(trace, tower[1:], layout)
        events += sdet.block_drops(trace, blocks, tower, layout)
        events += sdet.stack_topples(trace, blocks, layout)
        events += sdet.tower_knocks(trace, blocks, layout)
        events += sdet.wrong_order(trace, tower, blocks, layout)
        events += sdet.misaligned(trace, tower, layout)
        events += det.collisions(trace, ["bystander", *others], layout, carried=tower)
        events += det.topples(trace, ["bystander"], layout)
        events += det.off_table(trace, layout.free_objects, layout)
        events += det.wrong_object(trace, tower[1], others, layout)
        events += det.not_released(trace, blocks, layout)
        events += det.shaky_motion(trace, layout)
        events += det.robot_disturbances(trace, layout, events, layout.free_objects)
        success = sdet.tower_built(trace, tower, layout)
        events += det.failure_verdict(
            trace, layout, success, events, lambda: self.progress(trace, layout), obj=tower[1],
            engaged=np.any([det.grasped(trace, b) for b in tower[1:]], axis=0),
            at_goal=sdet.resting(trace, tower[1], tower[0], layout),
            missed=f"never stands on the {det.object_label(layout, tower[0])}",
            finish="the tower is not built, released and at rest")
        return success, det.merge_events(events)

    def perturbations(self):
        from simfail.perturbations.stack import STACK_PERTURBATIONS

        return dict(STACK_PERTURBATIONS)
