"""Pour: pour a cup of nuts into a named bowl, past a bottle, without using the other bowl.

Scene (world frame, metres; table top at z = 0, robot base at the origin facing +x): a square
*cup* (outer half width ``W``, height ``H``, origin at the centre of its base's underside)
holding ``N_NUTS`` *nuts* (small spheres, each a body on three slide joints ``nut<k>_x``,
``nut<k>_y``, ``nut<k>_z`` whose values are the nut centre's world coordinates) stands on one
side of the table; the *target* bowl and a second, *other* bowl stand on the opposite side,
side by side along y; a *bystander* bottle (topples when hit) and a *distractor* cube are
placed on free spots. Colours, sizes, poses and the nut radius are drawn from the seed; every
seed has the same bodies, so ``sim.qpos`` has one width.

The nuts are not tracked entities (``Layout.tracked_names`` leaves them out, keeping the
contact matrix small); detectors read them with
:func:`~simfail.labels.pour_detectors.nut_positions`. A nut translates but does not turn: real
nuts are irregular and slide rather than roll like marbles (the earlier free-jointed spheres
carried so much rotational damping that they never turned either, at twice the degrees of
freedom). The slide joints carry a little damping, negligible for falling (time constant
``NUT_MASS / NUT_DAMPING`` = 5 s).

Cost (2-core CPU, Mesa llvmpipe, mujoco 4.0.0; expert episodes, CPU time): particles dominate.
Every nut adds about two contacts (condim 3, elliptic cones, ``impratio`` 10, 2 ms steps, as in
every task) to the constraint solver, ~3.3 us per physics step each. The settings that keep
this down:

* 3 translational degrees of freedom per nut instead of 6: the Newton solver's cost grows with
  the degrees of freedom of the nuts' constraint island (2.5x faster per step);
* ``N_NUTS`` = 20 nuts of radius ``NUT_RADIUS`` and mass ``NUT_MASS``: the total volume and
  mass of the former 24 smaller nuts, and the same whole-nut thresholds in the detectors (2
  spilled nuts are a quality problem, 3 a task failure; success needs all but 3 in the target).
  Physics runs at ~9,800 steps/s (pick/place ~33,000): 5.1 ms of ``mj_step`` per 10 fps frame
  against 1.5 ms, 7.0 ms against 2.3 ms with the IK and the simulation core (was 14.9 and
  17.4 ms with 24 free-jointed nuts);
* rendering: the cup and each bowl are drawn as one closed mesh built from the sampled sizes
  (:func:`vessel_mesh`, 28 / 92 triangles) and each nut as an 80-triangle sphere
  (:func:`icosphere`; a primitive sphere has ~900 at the default quality, which is shared with
  every primitive of a scene and so is left alone). The collision geoms (boxes, cylinder,
  spheres) are unchanged and sit in ``COLLISION_GROUP``, which is not drawn: 39 drawn geoms
  instead of 71, and a moving pour scene renders ~1.1x as fast as pick/place's at 256x256
  (it was 1.4-1.6x slower). The extra visual geoms cost ~4% of the physics step.

Left as they were, measured: frictionless nut-nut contacts (no faster over an episode), the
solver (CG, PGS, dense Jacobians, looser tolerances or fewer line-search iterations were slower
or failed), a 4 ms step (halves the cost per frame but changed operator outcomes), and MuJoCo's
island sleeping (1.7x faster, but the simulation core snapshots states with ``mj_getState``,
which does not hold the sleep state: a variant branched from the expert's snapshot would no
longer equal a full replay).

Expert: grasp the cup's side walls from behind and above (TCP pitched ``GRASP_PITCH`` forward
from straight down, fingers closing along world y at ``GRASP_Z`` above the cup's base), lift,
carry above the target, tilt the cup about world y (mouth toward +x) while keeping its +x rim
(the *lip*) ``LIP_DZ`` above the bowl's rim and over its centre, hold while it drains, right
it, carry it back, set it down where it stood, release and back away along the TCP axis.
Keyframes are relative to the sampled poses. (A horizontal side grasp is out of reach for the
Panda's wrist this close to the table; the pitched grasp leaves ~100 degrees of wrist pitch
for the pour.)
"""

from __future__ import annotations

import mujoco
import numpy as np

from simfail.core.episode import FailureEvent
from simfail.core.program import Program, Segment
from simfail.core.robot import HOME_QPOS, RobotIndex, topdown_quat
from simfail.core.scene import PALETTE, ObjectSpec, StageConfig, fmt, rgba, stage_xml
from simfail.core.task import Layout, Task, register_task
from simfail.labels import detectors as det
from simfail.labels import pour_detectors as pdet
from simfail.labels.trace import Trace

TEMPLATES = (
    "pour the nuts from the {cup} into the {bowl}",
    "empty the {cup} into the {bowl}",
    "pour the nuts into the {bowl}",
    "tip the nuts from the {cup} into the {bowl} and put the cup back",
)

#: Number of nuts (fixed, so ``sim.qpos`` has one width).
N_NUTS = 20
#: Range [m] the nut radius is drawn from.
NUT_RADIUS = (0.0064, 0.0072)
#: Mass of one nut [kg] and the damping of each of its slide joints [N*s/m] (see module doc).
NUT_MASS = 0.003
NUT_DAMPING = 0.0006
#: World axes of a nut's slide joints (``nut<k>_x`` ...), in ``qpos`` order.
NUT_AXES = "xyz"
#: Geom group of the collision geoms that have a visual mesh of their own (cup, bowls, nuts):
#: like the robot's collision geoms, a group the renderer does not draw.
COLLISION_GROUP = 3
#: Cup wall and base thickness [m].
CUP_WALL = 0.004
CUP_BASE = 0.006
#: TCP height above the cup's base underside while grasping [m] (the pads span +-0.015 m).
GRASP_Z = 0.075
#: Pitch [rad] of the grasp: the TCP points forward-down, this far from straight down (the
#: Panda's wrist cannot point the hand much further forward near the table).
GRASP_PITCH = np.deg2rad(30.0)
#: TCP height [m] while carrying upright (the cup's bottom clears the bottle by > 2 cm).
CARRY_Z = 0.22
#: Cup tilt [rad] about world y at the end of the pour (0 = upright, pi/2 = mouth facing +x).
POUR_TILT = np.deg2rad(118.0)
#: Tilt [rad] the cup reaches by the end of the carry (nothing flows yet). Arriving pre-tilted
#: keeps the IK from snapping between elbow configurations when the tilt starts.
CARRY_TILT = np.deg2rad(25.0)
#: Tilt [rad] of the intermediate keyframe, just before the nuts start to flow.
PRE_TILT = np.deg2rad(70.0)
#: Height [m] of the lip above the receiving bowl's rim while pouring.
LIP_DZ = 0.035
#: Distance [m] along the TCP axis from where the hand lines up to the grasp.
REACH_BACK = 0.10
#: Gap [m] between the cup's base and the table when the gripper opens at the set-down.
SET_GAP = 0.004
#: Bowl wall height [m], wall thickness [m] and base plate thickness [m] (thicker than the
#: pick/place bowl's so a falling nut cannot tunnel through it in one 2 ms step).
BOWL_WALL = 0.045
BOWL_THICK = 0.008
BOWL_BASE = 0.012
#: Number of wall slabs of a bowl.
BOWL_SLABS = 12
#: Seconds the settling of the nuts runs before the episode starts.
SETTLE_S = 0.6


def quat_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of two (w, x, y, z) quaternions."""
    out = np.zeros(4)
    mujoco.mju_mulQuat(out, np.asarray(a, float), np.asarray(b, float))
    return out


def tilt_quat(theta: float) -> np.ndarray:
    """TCP orientation (w, x, y, z) of the grasp with the cup tilted ``theta`` [rad] about world
    y (mouth toward +x): 0 = upright (TCP pitched ``GRASP_PITCH`` forward from straight down),
    ``GRASP_PITCH`` = TCP straight down."""
    a = theta - GRASP_PITCH
    return quat_mul(np.array([np.cos(a / 2), 0.0, np.sin(a / 2), 0.0]), topdown_quat(0.0))


def tcp_axis(theta: float) -> np.ndarray:
    """World direction of the TCP z axis (out of the hand) at cup tilt ``theta`` [rad]."""
    a = theta - GRASP_PITCH
    return np.array([-np.sin(a), 0.0, -np.cos(a)])


def lip_offset(theta: float, half_w: float, height: float) -> np.ndarray:
    """World offset [m] from the TCP to the cup's +x rim (the lip) at tilt ``theta``."""
    x, z = half_w, height - GRASP_Z
    c, s = np.cos(theta), np.sin(theta)
    return np.array([c * x + s * z, 0.0, -s * x + c * z])


def vessel_mesh(sides: int, inner: float, outer: float, floor_z: float, top_z: float) -> tuple[np.ndarray, np.ndarray]:
    """Visual mesh of an open vessel: a regular ``sides``-gon prism with a cavity, as one closed
    solid (vertices [m] in the body frame, origin at the centre of the base's underside;
    triangles wound counter-clockwise seen from outside).

    The outer wall has apothem ``outer`` and runs from z = 0 to ``top_z``; the cavity has
    apothem ``inner`` and its floor at ``floor_z``. Flat faces point along the angles
    ``2 pi k / sides`` (+x first), like the wall slabs of :func:`bowl_xml` and :func:`cup_xml`.
    """
    ang = np.pi / sides + 2 * np.pi * np.arange(sides) / sides  # corners between the flat faces
    ring = np.stack([np.cos(ang), np.sin(ang)], axis=1) / np.cos(np.pi / sides)
    n = sides
    verts = np.concatenate([
        np.column_stack([ring * outer, np.zeros(n)]),         # 0 .. n-1: outer, bottom
        np.column_stack([ring * outer, np.full(n, top_z)]),   # n ..: outer, rim
        np.column_stack([ring * inner, np.full(n, top_z)]),   # 2n ..: inner, rim
        np.column_stack([ring * inner, np.full(n, floor_z)]),  # 3n ..: inner, floor
    ])
    faces = []
    for a in range(n):
        b = (a + 1) % n
        faces += [(a, b, n + b), (a, n + b, n + a)]                                # outer wall
        faces += [(n + a, n + b, 2 * n + b), (n + a, 2 * n + b, 2 * n + a)]        # rim
        faces += [(2 * n + a, 2 * n + b, 3 * n + b), (2 * n + a, 3 * n + b, 3 * n + a)]  # cavity wall
    for k in range(1, n - 1):
        faces += [(0, k + 1, k), (3 * n, 3 * n + k, 3 * n + k + 1)]                # bottom, floor
    return verts, np.array(faces)


def icosphere() -> tuple[np.ndarray, np.ndarray]:
    """Unit sphere as an icosahedron subdivided once (trimesh): 42 vertices, 80 triangles (a
    primitive sphere at the default render quality has ~900)."""
    import trimesh

    m = trimesh.creation.icosphere(subdivisions=1, radius=1.0)
    return np.asarray(m.vertices, dtype=float), np.asarray(m.faces, dtype=np.int64)


def mesh_asset(name: str, verts: np.ndarray, faces: np.ndarray, extra: str = "") -> str:
    """An MJCF ``<mesh>`` asset with inline vertex and face data (no file, nothing to cache)."""
    vs = " ".join(f"{x:.6g}" for x in np.asarray(verts).ravel())
    fs = " ".join(str(int(x)) for x in np.asarray(faces).ravel())
    return f'<mesh name="{name}" vertex="{vs}" face="{fs}"{extra}/>'


def visual_geom(name: str, mesh: str, col: str) -> str:
    """A rendered-only mesh geom: no contacts, no mass (group 0, drawn by default)."""
    return f'<geom name="{name}" type="mesh" mesh="{mesh}" rgba="{col}" mass="0" contype="0" conaffinity="0"/>'


def cup_xml(o: ObjectSpec) -> str:
    """MJCF of the square cup (origin: base underside): a base slab and four wall slabs that
    collide but are not drawn (``COLLISION_GROUP``), and one visual mesh ``cup_mesh`` of the same
    shape (see :meth:`Pour.mesh_assets`)."""
    w, h = o.size
    m = o.mass
    col = rgba(o.color)
    inner = w - CUP_WALL
    wall_h = (h - CUP_BASE) / 2
    zc = CUP_BASE + wall_h
    fr = fmt(o.friction)
    grp = f'group="{COLLISION_GROUP}"'
    parts = [f'<geom name="{o.name}" type="box" size="{w:.4f} {w:.4f} {CUP_BASE / 2:.4f}" pos="0 0 {CUP_BASE / 2:.4f}" '
             f'rgba="{col}" mass="{m * 0.4:.4f}" friction="{fr}" condim="4" {grp}/>']
    for k, (x, y, sx, sy) in enumerate(((w - CUP_WALL / 2, 0, CUP_WALL / 2, w), (-(w - CUP_WALL / 2), 0, CUP_WALL / 2, w),
                                        (0, w - CUP_WALL / 2, inner, CUP_WALL / 2), (0, -(w - CUP_WALL / 2), inner, CUP_WALL / 2))):
        parts.append(f'<geom name="{o.name}_wall{k}" type="box" size="{sx:.4f} {sy:.4f} {wall_h:.4f}" '
                     f'pos="{x:.4f} {y:.4f} {zc:.4f}" rgba="{col}" mass="{m * 0.15:.4f}" friction="{fr}" condim="4" {grp}/>')
    parts.append(visual_geom(f"{o.name}_visual", f"{o.name}_mesh", col))
    quat = f"{np.cos(o.yaw / 2):.6f} 0 0 {np.sin(o.yaw / 2):.6f}"
    return (f'    <body name="{o.name}" pos="{fmt(o.pos)}" quat="{quat}"><freejoint name="{o.name}_free"/>'
            + "".join(parts) + "</body>")


def bowl_xml(o: ObjectSpec) -> str:
    """MJCF of a bowl (origin: base underside): a ``BOWL_BASE`` thick disc and ``BOWL_SLABS``
    wall slabs that collide but are not drawn, and one visual mesh ``<name>_mesh`` of the same
    shape. ``o.size`` = (inner radius, wall height, wall thickness) [m]."""
    radius, wall, thick = o.size
    col = rgba(o.color)
    grp = f'group="{COLLISION_GROUP}"'
    parts = [f'<geom name="{o.name}" type="cylinder" size="{radius + thick:.4f} {BOWL_BASE / 2:.4f}" '
             f'pos="0 0 {BOWL_BASE / 2:.4f}" rgba="{col}" mass="{o.mass * 0.4:.4f}" {grp}/>']
    seg = (radius + thick / 2) * np.tan(np.pi / BOWL_SLABS) + 0.002
    for i in range(BOWL_SLABS):
        a = 2 * np.pi * i / BOWL_SLABS
        cx, cy = (radius + thick / 2) * np.cos(a), (radius + thick / 2) * np.sin(a)
        parts.append(f'<geom name="{o.name}_wall{i}" type="box" size="{thick / 2:.4f} {seg:.4f} {wall / 2:.4f}" '
                     f'pos="{cx:.4f} {cy:.4f} {BOWL_BASE + wall / 2:.4f}" quat="{np.cos(a / 2):.5f} 0 0 {np.sin(a / 2):.5f}" '
                     f'rgba="{col}" mass="{o.mass * 0.6 / BOWL_SLABS:.4f}" {grp}/>')
    parts.append(visual_geom(f"{o.name}_visual", f"{o.name}_mesh", col))
    return (f'    <body name="{o.name}" pos="{fmt(o.pos)}"><freejoint name="{o.name}_free"/>'
            + "".join(parts) + "</body>")


def nut_joint(k: int, axis: str) -> str:
    """Name of nut ``k``'s slide joint along world ``axis`` (``x``, ``y`` or ``z``); its
    ``qpos`` is the nut centre's world coordinate [m]."""
    return f"nut{k}_{axis}"


def nut_xml(k: int, pos: np.ndarray, radius: float, color: str) -> str:
    """MJCF of nut ``k``: a sphere on three damped slide joints (x, y, z; ``ref`` = the start
    position, so each joint's value is a world coordinate), drawn as ``nut_mesh``."""
    xyz = [f"{p:.6f}" for p in pos]  # the same digits for the body position and the joints' ref
    joints = "".join(f'<joint name="{nut_joint(k, a)}" type="slide" axis="{ax}" ref="{p}" damping="{NUT_DAMPING}"/>'
                     for a, ax, p in zip(NUT_AXES, ("1 0 0", "0 1 0", "0 0 1"), xyz))
    col = rgba(color)
    body_pos = " ".join(xyz)
    return (f'    <body name="nut{k}" pos="{body_pos}">{joints}'
            f'<geom name="nut{k}" type="sphere" size="{radius:.4f}" rgba="{col}" mass="{NUT_MASS}" '
            f'friction="0.2 0.005 0.0001" condim="3" group="{COLLISION_GROUP}"/>'
            + visual_geom(f"nut{k}_visual", "nut_mesh", col) + "</body>")


def nut_start_positions(layout: Layout) -> np.ndarray:
    """(N_NUTS, 3) lattice positions [m] of the nuts inside the cup before settling: 3 x 3 per
    layer, layers stacked with a 1.5 mm gap."""
    cup = layout.obj("cup")
    r = layout.params["nut_radius"]
    inner = cup.size[0] - CUP_WALL
    pitch = inner - r - 0.0008
    out = []
    for k in range(N_NUTS):
        layer, cell = divmod(k, 9)
        i, j = divmod(cell, 3)
        x = cup.pos[0] + (i - 1) * pitch
        y = cup.pos[1] + (j - 1) * pitch
        z = CUP_BASE + r + 0.001 + layer * (2 * r + 0.0015)
        out.append((x, y, z))
    return np.array(out)


def _far(xy: np.ndarray, others: list[tuple[np.ndarray, float]], r: float) -> bool:
    return all(np.linalg.norm(xy - p) > r + q for p, q in others)


@register_task
class Pour(Task):
    name = "pour"
    duration = 14.0
    description = "pour a cup of nuts into the named bowl, then put the cup back upright"

    # ------------------------------------------------------------------ layout
    def sample_layout(self, rng: np.random.Generator, seed: int) -> Layout:
        colors = list(PALETTE)
        rng.shuffle(colors)
        side = 1.0 if rng.random() < 0.5 else -1.0
        cup_w, cup_h = float(rng.uniform(0.027, 0.029)), float(rng.uniform(0.095, 0.105))
        cup_xy = np.array([rng.uniform(0.40, 0.46), side * rng.uniform(0.17, 0.21)])
        r_t, r_o = float(rng.uniform(0.068, 0.076)), float(rng.uniform(0.060, 0.068))
        inner = np.array([rng.uniform(0.42, 0.50), -side * rng.uniform(0.02, 0.05)])
        outer = np.array([rng.uniform(0.42, 0.50), -side * rng.uniform(0.21, 0.23)])
        t_xy, o_xy = (inner, outer) if rng.random() < 0.5 else (outer, inner)
        taken = [(cup_xy, 0.04), (t_xy, r_t + BOWL_THICK), (o_xy, r_o + BOWL_THICK)]
        bottle_r, bottle_hh = float(rng.uniform(0.022, 0.026)), float(rng.uniform(0.055, 0.065))
        bottle_xy = self._free_spot(rng, taken, bottle_r, cup_xy, [t_xy, o_xy])
        taken.append((bottle_xy, bottle_r))
        cube_h = float(rng.uniform(0.018, 0.022))
        cube_xy = self._free_spot(rng, taken, cube_h * 1.5, cup_xy, [t_xy, o_xy])
        objects = [
            ObjectSpec("cup", "cup", (cup_w, cup_h), (*cup_xy, 0.0), colors[0], mass=0.08, noun="cup",
                       friction=(0.2, 0.01, 0.001)),
            ObjectSpec("target", "bowl", (r_t, BOWL_WALL, BOWL_THICK), (*t_xy, 0.0), colors[1], mass=0.6, noun="bowl"),
            ObjectSpec("other", "bowl", (r_o, BOWL_WALL, BOWL_THICK), (*o_xy, 0.0), colors[2], mass=0.6, noun="bowl"),
            ObjectSpec("bystander", "cylinder", (bottle_r, bottle_hh), (*bottle_xy, bottle_hh), colors[3], mass=0.12,
                       noun="bottle", friction=(0.6, 0.01, 0.001)),
            ObjectSpec("distractor", "box", (cube_h, cube_h, cube_h), (*cube_xy, cube_h), colors[4],
                       yaw=float(rng.uniform(-np.pi / 4, np.pi / 4)), mass=0.08, noun="cube"),
        ]
        roles = {o.name: o.name for o in objects}
        instruction = TEMPLATES[int(rng.integers(len(TEMPLATES)))].format(cup=objects[0].label, bowl=objects[1].label)
        params = {"side": side, "nut_radius": float(rng.uniform(*NUT_RADIUS)), "nut_color": colors[5],
                  "bowl_radius": r_t, "other_radius": r_o, "bowl_wall": BOWL_WALL}
        return Layout(self.name, seed, objects, roles, instruction, params,
                      tracked_names=["cup", "target", "other", "bystander", "distractor"])

    @staticmethod
    def _free_spot(rng: np.random.Generator, taken: list[tuple[np.ndarray, float]], r: float,
                   cup_xy: np.ndarray, bowls: list[np.ndarray]) -> np.ndarray:
        """A table spot [m] at least 3 cm (plus radii) from everything placed, out of the band
        behind the cup the hand sweeps through when it reaches in, and out of the band in front
        of each bowl where the hand hangs while pouring (it points back toward the robot)."""
        for _ in range(400):
            xy = np.array([rng.uniform(0.36, 0.66), rng.uniform(-0.27, 0.27)])
            behind = abs(xy[1] - cup_xy[1]) < 0.12 and xy[0] < cup_xy[0] + 0.07
            front = any(abs(xy[1] - b[1]) < 0.14 and xy[0] > b[0] - 0.02 for b in bowls)
            if not behind and not front and _far(xy, taken, r + 0.03):
                return xy
        raise RuntimeError("could not place the pour scene's objects")  # pragma: no cover

    def scene_xml(self, layout: Layout, stage: StageConfig) -> str:
        writers = {"cup": cup_xml, "bowl": bowl_xml}
        parts = [writers.get(o.kind, ObjectSpec.to_xml)(o) for o in layout.objects]
        r, col = layout.params["nut_radius"], layout.params["nut_color"]
        parts += [nut_xml(k, p, r, col) for k, p in enumerate(nut_start_positions(layout))]
        return stage_xml(stage, "\n".join(parts), model_name=f"pour_{layout.seed}", extra_assets=self.mesh_assets(layout))

    @staticmethod
    def mesh_assets(layout: Layout) -> str:
        """The visual meshes, built from the layout's sizes: ``cup_mesh``, ``target_mesh``,
        ``other_mesh`` (the vessels' collision shapes as single closed solids: 28 / 92
        triangles, one draw each instead of 5 / 13 boxes) and ``nut_mesh`` (an 80-triangle
        sphere scaled to the nut radius)."""
        w, h = layout.obj("cup").size
        assets = [mesh_asset("cup_mesh", *vessel_mesh(4, w - CUP_WALL, w, CUP_BASE, h))]
        for b in ("target", "other"):
            radius, wall, thick = layout.obj(b).size
            assets.append(mesh_asset(f"{b}_mesh", *vessel_mesh(BOWL_SLABS, radius, radius + thick, BOWL_BASE,
                                                                BOWL_BASE + wall)))
        r = layout.params["nut_radius"]
        assets.append(mesh_asset("nut_mesh", *icosphere(), f' scale="{r:.4f} {r:.4f} {r:.4f}" smoothnormal="true"'))
        return "\n    ".join(assets)

    def initial_qpos(self, model: mujoco.MjModel, layout: Layout) -> np.ndarray:
        """Home pose, objects at their MJCF poses, nuts settled in the cup for ``SETTLE_S``
        seconds with the robot held still (deterministic: same model, same steps)."""
        qpos = super().initial_qpos(model, layout)
        data = mujoco.MjData(model)
        data.qpos[:] = qpos
        idx = RobotIndex.from_model(model)
        data.ctrl[idx.arm_ctrl] = HOME_QPOS
        data.ctrl[idx.gripper_ctrl] = 0.08
        for _ in range(int(SETTLE_S / model.opt.timestep)):
            mujoco.mj_step(model, data)
        adr = [int(model.jnt_qposadr[model.joint(nut_joint(k, a)).id]) for k in range(N_NUTS) for a in NUT_AXES]
        qpos[adr] = data.qpos[adr]
        return qpos

    # ------------------------------------------------------------------ expert
    def pour_pose(self, layout: Layout, container: str, theta: float, lip_dz: float = LIP_DZ,
                  shift: np.ndarray | None = None) -> np.ndarray:
        """TCP position [m] that puts the lip ``lip_dz`` above ``container``'s rim and over its
        centre (plus ``shift`` [m, world x-y]) at tilt ``theta``."""
        cup = layout.obj("cup")
        c = np.array(layout.obj(container).pos, float)
        lip = np.array([c[0], c[1], BOWL_BASE + BOWL_WALL + lip_dz])
        if shift is not None:
            lip[:2] += shift
        return lip - lip_offset(theta, *cup.size)

    def pour_segments(self, layout: Layout, container: str = "target", lip_dz: float = LIP_DZ,
                      shift: np.ndarray | None = None) -> list[Segment]:
        """Carry above ``container``, tilt, drain and right the cup (ends upright at carry height)."""
        above = self.pour_pose(layout, container, PRE_TILT, lip_dz, shift)
        above[2] = max(CARRY_Z, above[2])
        return [
            Segment("carry", above, 0.0, 1.8, 1.0, quat=tilt_quat(CARRY_TILT)),
            Segment("tilt", self.pour_pose(layout, container, PRE_TILT, lip_dz, shift), 0.0, 1.2, 1.0,
                    quat=tilt_quat(PRE_TILT)),
            Segment("pour", self.pour_pose(layout, container, POUR_TILT, lip_dz, shift), 0.0, 0.9, 1.0,
                    quat=tilt_quat(POUR_TILT)),
            Segment("drain", self.pour_pose(layout, container, POUR_TILT, lip_dz, shift), 0.0, 0.6, 1.0,
                    quat=tilt_quat(POUR_TILT)),
            Segment("untilt", above, 0.0, 1.2, 1.0, quat=tilt_quat(0.0)),
        ]

    def return_segments(self, layout: Layout, theta: float = 0.0) -> list[Segment]:
        """Carry the cup back to where it stood, set it down (tilted ``theta`` [rad]), let go,
        back away and hold until the episode ends."""
        cup = layout.obj("cup")
        home = np.array([cup.pos[0], cup.pos[1], GRASP_Z + SET_GAP])
        # keep the cup's lowest corner SET_GAP above the table when set down tilted
        corner = max(0.0, cup.size[0] * np.sin(abs(theta)) - GRASP_Z * (1 - np.cos(theta)))
        place = home + [0.0, 0.0, corner]
        q = tilt_quat(theta)
        back = place - REACH_BACK * tcp_axis(theta)
        return [
            Segment("return", np.array([home[0], home[1], CARRY_Z]), 0.0, 1.7, 1.0, quat=tilt_quat(0.0)),
            Segment("lower", place, 0.0, 0.9, 1.0, quat=q),
            Segment("release", place, 0.0, 0.4, 0.0, quat=q),
            Segment("retreat", back, 0.0, 0.6, 0.0, quat=q),
        ]

    def expert_program(self, layout: Layout, container: str = "target") -> Program:
        cup = layout.obj("cup")
        grasp = np.array([cup.pos[0], cup.pos[1], GRASP_Z])
        line_up = grasp - REACH_BACK * tcp_axis(0.0)
        side = tilt_quat(0.0)
        p = Program(start_pos=np.array([0.40, 0.0, 0.35]), start_quat=topdown_quat(0.0))
        p.segments = [
            Segment("approach", line_up, 0.0, 1.6, 0.0, quat=side),
            Segment("reach", grasp, 0.0, 0.9, 0.0, quat=side),
            Segment("grasp", grasp, 0.0, 0.5, 1.0, quat=side),
            Segment("lift", np.array([grasp[0], grasp[1], CARRY_Z]), 0.0, 0.9, 1.0, quat=side),
            *self.pour_segments(layout, container),
            *self.return_segments(layout),
        ]
        return self.with_hold(p)

    def with_hold(self, p: Program) -> Program:
        """Append a hold at the last keyframe until ``duration``."""
        end = p.segments[-1]
        p.segments.append(Segment("hold", np.array(end.pos, float), 0.0, max(self.duration - p.duration, 0.1),
                                  end.grip, quat=end.quat))
        return p

    # ------------------------------------------------------------------ labels
    def progress(self, trace: Trace, layout: Layout) -> np.ndarray:
        return pdet.pour_progress(trace, layout, N_NUTS)

    def detect(self, trace: Trace, layout: Layout) -> tuple[bool, list[FailureEvent]]:
        nuts = pdet.nut_states(trace, layout, N_NUTS)
        events: list[FailureEvent] = []
        events += det.missed_grasps(trace, ["cup"], layout)
        events += pdet.cup_drops(trace, layout)
        events += pdet.spills(trace, layout, nuts)
        events += pdet.pour_placement(trace, layout, nuts)
        events += pdet.wrong_container(trace, layout, nuts)
        events += pdet.incomplete_pour(trace, layout, nuts)
        events += pdet.cup_topples(trace, layout)
        events += det.collisions(trace, ["bystander", "distractor", "other"], layout, carried=["cup"])
        events += det.topples(trace, ["bystander"], layout)
        events += det.off_table(trace, layout.tracked, layout)
        events += det.not_released(trace, ["cup"], layout)
        events += det.shaky_motion(trace, layout)
        events += det.robot_disturbances(trace, layout, events, layout.tracked)
        # a task-category event (a drop, a topple, nuts in the wrong bowl ...) fails the task,
        # unless it is a setback the robot repaired (the cup taken again: docs/recovery.md)
        from simfail.labels.recovery import repaired_setbacks

        repaired = {id(e) for e, _ in repaired_setbacks(trace, events)}
        success = pdet.pour_success(trace, layout, nuts) and not any(
            e.category == "task" and id(e) not in repaired for e in events)
        events += det.failure_verdict(
            trace, layout, success, events, lambda: self.progress(trace, layout), obj="cup",
            engaged=det.grasped(trace, "cup"), at_goal=nuts.in_target.mean(axis=1) >= pdet.GOAL_SHARE,
            missed=f"never pours its nuts into the {det.object_label(layout, 'target')}",
            finish="the cup does not end upright, released and at rest")
        return success, det.merge_events(events)

    def perturbations(self):
        from simfail.perturbations.pour import POUR_PERTURBATIONS

        return dict(POUR_PERTURBATIONS)
