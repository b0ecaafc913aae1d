"""Building blocks for tabletop scenes: the stage (table, lights, cameras) and object MJCF.

Frames and units: world z up, metres; the table top is the plane z = 0; the robot base is at
the world origin and faces +x. Object poses are given by the position of the body origin and
a yaw about world z (radians).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Named colours used for objects and in instructions (RGBA in [0, 1]).
PALETTE: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.10, 1.0),
    "green": (0.15, 0.65, 0.20, 1.0),
    "blue": (0.12, 0.30, 0.85, 1.0),
    "yellow": (0.95, 0.85, 0.10, 1.0),
    "orange": (0.95, 0.50, 0.05, 1.0),
    "purple": (0.55, 0.20, 0.70, 1.0),
    "pink": (0.95, 0.45, 0.65, 1.0),
    "cyan": (0.10, 0.75, 0.80, 1.0),
}

TABLE_TOP_Z = 0.0
#: Height [m] of the floor under the table. It collides: an object that leaves the table lands
#: on it (and on the table's base, which collides too), as in a lab.
FLOOR_Z = -0.76
#: Floor friction: sliding, torsional, rolling [m]. The rolling term (condim 6) stops a cup or
#: can that lands on its side within about a metre instead of letting it roll on for ever.
FLOOR_FRICTION = (0.9, 0.01, 0.002)


def look_at_xyaxes(pos: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 0.0, 1.0])) -> str:
    """MJCF ``xyaxes`` of a camera at ``pos`` looking at ``target`` (image up close to ``up``)."""
    fwd = np.asarray(target, float) - np.asarray(pos, float)
    fwd /= np.linalg.norm(fwd)
    x = np.cross(fwd, up)
    x /= np.linalg.norm(x)
    y = np.cross(x, fwd)
    return " ".join(f"{v:.5f}" for v in (*x, *y))


def fmt(v) -> str:
    return " ".join(f"{float(x):.5g}" for x in np.atleast_1d(v))


def rgba(c: tuple[float, ...] | str) -> str:
    return fmt(PALETTE[c] if isinstance(c, str) else c)


@dataclass(frozen=True)
class StageConfig:
    """Camera rig and render quality of the stage.

    ``left``/``right`` are shoulder views placed like a DROID/RoboArena rig: beside and
    slightly behind the workspace, looking at its centre. Distances in metres, fovy in degrees.
    """

    width: int = 256
    height: int = 256
    look_at: tuple[float, float, float] = (0.50, 0.0, 0.05)
    left_pos: tuple[float, float, float] = (0.30, 0.62, 0.48)
    right_pos: tuple[float, float, float] = (0.30, -0.62, 0.48)
    fovy: float = 62.0


def stage_xml(cfg: StageConfig, body: str, model_name: str, extra_assets: str = "", timestep: float = 0.002,
              table_half: tuple[float, float] = (0.62, 0.75), table_center: tuple[float, float] = (0.32, 0.0)) -> str:
    """A complete scene document: options, visual settings, table, lights, cameras + ``body``.

    ``table_half`` are the table top's half extents in x and y [m], ``table_center`` the centre
    of the top in the world x-y plane [m] (the top surface is always z = 0). Tasks whose
    failures involve the table edge (pushing an object off it) use a smaller table.

    Shadows and reflections are off and MSAA is disabled: on a CPU renderer (Mesa llvmpipe)
    they cost several times the frame time and matter little to reward models.
    """
    look = np.array(cfg.look_at)
    left = look_at_xyaxes(np.array(cfg.left_pos), look)
    right = look_at_xyaxes(np.array(cfg.right_pos), look)
    return f"""<mujoco model="{model_name}">
  <compiler angle="radian" autolimits="true"/>
  <option timestep="{timestep}" integrator="implicitfast" cone="elliptic" impratio="10"/>
  <visual>
    <quality shadowsize="0" offsamples="0"/>
    <global offwidth="{max(cfg.width, 64)}" offheight="{max(cfg.height, 64)}"/>
    <headlight ambient="0.35 0.35 0.35" diffuse="0.45 0.45 0.45" specular="0.1 0.1 0.1"/>
    <map znear="0.01"/>
  </visual>
  <asset>
    <texture name="wood" type="2d" builtin="checker" rgb1="0.72 0.58 0.42" rgb2="0.68 0.54 0.38" width="64" height="64"/>
    <material name="table" texture="wood" texrepeat="6 6" specular="0.1"/>
    <texture name="floor" type="2d" builtin="flat" rgb1="0.35 0.35 0.38" width="16" height="16"/>
    <material name="floor" texture="floor"/>
    {extra_assets}
  </asset>
  <worldbody>
    <light name="key" pos="0.6 0.4 1.6" dir="-0.1 -0.2 -1" diffuse="0.55 0.55 0.55" castshadow="false"/>
    <light name="fill" pos="0.2 -0.6 1.2" dir="0.2 0.4 -1" diffuse="0.25 0.25 0.25" castshadow="false"/>
    <geom name="floor" type="plane" size="3 3 0.1" pos="0 0 {FLOOR_Z}" material="floor" condim="6" friction="{fmt(FLOOR_FRICTION)}"/>
    <geom name="table" type="box" size="{table_half[0]:.4f} {table_half[1]:.4f} 0.02" pos="{table_center[0]:.4f} {table_center[1]:.4f} -0.02" material="table" friction="0.8 0.01 0.001"/>
    <geom name="table_leg" type="box" size="{table_half[0] - 0.07:.4f} {table_half[1] - 0.1:.4f} {(FLOOR_Z + 0.04) / -2:.4f}" pos="{table_center[0]:.4f} {table_center[1]:.4f} {(FLOOR_Z - 0.04) / 2:.4f}" rgba="0.3 0.25 0.2 1"/>
    <camera name="left" pos="{fmt(cfg.left_pos)}" xyaxes="{left}" fovy="{cfg.fovy}"/>
    <camera name="right" pos="{fmt(cfg.right_pos)}" xyaxes="{right}" fovy="{cfg.fovy}"/>
{body}
  </worldbody>
</mujoco>"""


@dataclass
class ObjectSpec:
    """A free-floating rigid object (or a fixed fixture when ``free`` is False).

    Attributes:
        name: Body name (also used in event labels).
        kind: ``box`` | ``cylinder`` | ``bowl`` | ``plate``.
        size: ``box``: half extents (x, y, z); ``cylinder``: (radius, half height);
            ``bowl``: (inner radius, wall height, wall thickness); ``plate``: (radius, half thickness).
        pos: Body origin in the world [m]. Boxes and cylinders have their origin at the centre;
            bowls and plates at the centre of their base's underside.
        yaw: Rotation about world z [rad].
        color: Palette name.
        mass: kg.
        noun: Word used in instructions ("cube", "cup", "bowl").
    """

    name: str
    kind: str
    size: tuple[float, ...]
    pos: tuple[float, float, float]
    color: str
    yaw: float = 0.0
    mass: float = 0.1
    noun: str = "object"
    free: bool = True
    friction: tuple[float, float, float] = (1.0, 0.01, 0.001)
    extra: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        return f"{self.color} {self.noun}"

    def height(self) -> float:
        if self.kind == "box":
            return 2 * self.size[2]
        if self.kind == "cylinder":
            return 2 * self.size[1]
        if self.kind == "bowl":
            return self.size[1]
        return 2 * self.size[1]

    def to_xml(self) -> str:
        quat = f"{np.cos(self.yaw / 2):.6f} 0 0 {np.sin(self.yaw / 2):.6f}"
        joint = f'<freejoint name="{self.name}_free"/>' if self.free else ""
        col = rgba(self.color)
        fr = fmt(self.friction)
        if self.kind == "box":
            geoms = f'<geom name="{self.name}" type="box" size="{fmt(self.size)}" rgba="{col}" mass="{self.mass}" friction="{fr}" condim="4"/>'
        elif self.kind == "cylinder":
            geoms = f'<geom name="{self.name}" type="cylinder" size="{fmt(self.size)}" rgba="{col}" mass="{self.mass}" friction="{fr}" condim="4"/>'
        elif self.kind == "bowl":
            geoms = _bowl_geoms(self.name, *self.size, col, self.mass)
        elif self.kind == "plate":
            r, ht = self.size
            geoms = (
                f'<geom name="{self.name}" type="cylinder" size="{r:.4f} {ht:.4f}" pos="0 0 {ht:.4f}" rgba="{col}" mass="{self.mass}" friction="{fr}"/>'
            )
        else:  # pragma: no cover - guarded by the task definitions
            raise ValueError(f"unknown object kind {self.kind!r}")
        return f'    <body name="{self.name}" pos="{fmt(self.pos)}" quat="{quat}">{joint}{geoms}</body>'


def _bowl_geoms(name: str, radius: float, wall: float, thick: float, col: str, mass: float, n: int = 12) -> str:
    """A bowl approximated by a base disc and ``n`` wall slabs (MuJoCo has no concave primitive)."""
    base_h = 0.006
    parts = [
        f'<geom name="{name}" type="cylinder" size="{radius + thick:.4f} {base_h / 2:.4f}" pos="0 0 {base_h / 2:.4f}" rgba="{col}" mass="{mass * 0.4:.4f}"/>'
    ]
    seg = 2 * (radius + thick / 2) * np.tan(np.pi / n) / 2 + 0.002
    for i in range(n):
        a = 2 * np.pi * i / n
        cx, cy = (radius + thick / 2) * np.cos(a), (radius + thick / 2) * np.sin(a)
        parts.append(
            f'<geom name="{name}_wall{i}" type="box" size="{thick / 2:.4f} {seg:.4f} {wall / 2:.4f}" '
            f'pos="{cx:.4f} {cy:.4f} {base_h + wall / 2:.4f}" quat="{np.cos(a / 2):.5f} 0 0 {np.sin(a / 2):.5f}" '
            f'rgba="{col}" mass="{mass * 0.6 / n:.4f}"/>'
        )
    return "".join(parts)
