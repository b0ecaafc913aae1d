"""Render presets: the look of the rendered frames, never the physics.

A preset turns a built scene's MJCF into the model the *renderer* draws. The simulation always
runs on the scene's own model (``BuiltScene.model``); a preset only edits visual elements of a
copy: ``<visual>`` settings, lights, textures and materials, and adds geoms that collide with
nothing in one static body appended after every other body. Bodies, joints and the ids of the
scene's own bodies and geoms are unchanged, so a recorded ``sim.qpos`` row poses the preset
model exactly as it posed the simulated one (:func:`render_model` checks the layouts match).

Presets (``render.preset``):

``fast`` (the default)
    The scene as built: flat-shaded primitives on black, no shadows, no MSAA; chosen for the
    speed of a CPU rasterizer (Mesa llvmpipe).
``lab``
    A lab room: a shadow-casting directional key light and softer fill lights, a tiled
    bench-top texture on the table, a tiled floor, four walls and a light grey skybox
    instead of the black void, 4x MSAA. All textures are MJCF builtin (procedural)
    textures; nothing is downloaded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Callable

from simfail.errors import ConfigError, RenderBackendError

if TYPE_CHECKING:  # this module stays light: simfail.config reads PRESET_NAMES
    import mujoco

__all__ = ["PRESETS", "PRESET_NAMES", "preset_names", "preset_xml", "render_model"]

#: Name of the static body that holds the lab room's visual-only geoms.
ROOM_BODY = "lab_room"


def _fast(root: ET.Element) -> None:
    """Today's look: the scene as built."""


def _set(parent: ET.Element, tag: str, **attrs: str) -> ET.Element:
    el = parent.find(tag)
    if el is None:
        el = ET.SubElement(parent, tag)
    el.attrib.update(attrs)
    return el


def _lab(root: ET.Element) -> None:
    """Shadows, textured table and floor, walls, softer lighting (see the module docstring)."""
    visual = _set(root, "visual")
    _set(visual, "quality", shadowsize="2048", offsamples="4")
    # a dim headlight: the room lights do the work, so surfaces facing away from the camera
    # are not flat-lit
    _set(visual, "headlight", ambient="0.25 0.25 0.25", diffuse="0.2 0.2 0.2", specular="0.05 0.05 0.05")
    asset = _set(root, "asset")
    for el in (
        '<texture name="lab_wood" type="2d" builtin="checker" rgb1="0.74 0.6 0.45" rgb2="0.68 0.54 0.4" '
        'mark="edge" markrgb="0.6 0.47 0.34" width="256" height="256"/>',
        '<material name="lab_table" texture="lab_wood" texrepeat="5 5" specular="0.25" shininess="0.4"/>',
        '<texture name="lab_tiles" type="2d" builtin="checker" rgb1="0.62 0.62 0.6" rgb2="0.5 0.5 0.49" '
        'mark="edge" markrgb="0.35 0.35 0.35" width="256" height="256"/>',
        '<material name="lab_floor" texture="lab_tiles" texrepeat="8 8" specular="0.15" shininess="0.3"/>',
        '<texture name="lab_wall" type="2d" builtin="gradient" rgb1="0.86 0.86 0.82" rgb2="0.7 0.72 0.72" '
        'width="128" height="128"/>',
        '<material name="lab_wall" texture="lab_wall" texrepeat="1 1" specular="0.05"/>',
        '<texture name="lab_sky" type="skybox" builtin="flat" rgb1="0.8 0.8 0.78" rgb2="0.8 0.8 0.78" '
        'width="32" height="32"/>',
    ):
        asset.append(ET.fromstring(el))
    world = root.find("worldbody")
    for geom in world.iter("geom"):
        name = geom.get("name")
        if name == "table":  # visual attributes only; size, pose and friction are untouched
            geom.set("material", "lab_table")
        elif name == "floor":
            geom.set("material", "lab_floor")
        elif name == "table_leg":
            geom.set("rgba", "0.42 0.33 0.24 1")
    for light in world.iter("light"):
        name = light.get("name")
        if name == "key":
            light.attrib.update(castshadow="true", directional="true", diffuse="0.4 0.4 0.38",
                                ambient="0.12 0.12 0.12", specular="0.2 0.2 0.2")
        else:
            light.attrib.update(diffuse="0.22 0.22 0.24", ambient="0.06 0.06 0.06", cutoff="80", exponent="1")
    # the room: three walls and a back wall behind the robot, visual only (no contacts, no mass)
    room = ET.SubElement(world, "body", name=ROOM_BODY)
    vis = {"contype": "0", "conaffinity": "0", "material": "lab_wall", "mass": "0"}
    for name, size, pos in (
        ("lab_wall_front", "0.02 2.2 1.2", "2.0 0 0.2"),
        ("lab_wall_back", "0.02 2.2 1.2", "-1.3 0 0.2"),
        ("lab_wall_left", "1.65 0.02 1.2", "0.35 2.2 0.2"),
        ("lab_wall_right", "1.65 0.02 1.2", "0.35 -2.2 0.2"),
    ):
        ET.SubElement(room, "geom", name=name, type="box", size=size, pos=pos, **vis)
    ET.SubElement(room, "light", name="lab_fill_top", pos="0.4 0 1.3", dir="0 0 -1", directional="false",
                  diffuse="0.15 0.15 0.15", ambient="0.04 0.04 0.04", castshadow="false", cutoff="90", exponent="1")


#: ``render.preset`` name -> an in-place edit of the scene's MJCF tree.
PRESETS: dict[str, Callable[[ET.Element], None]] = {"fast": _fast, "lab": _lab}

#: The allowed ``render.preset`` values, default first.
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def preset_names() -> list[str]:
    return sorted(PRESETS)


def preset_xml(xml: str, preset: str) -> str:
    """The scene document ``xml`` with ``preset``'s look applied (``fast``: unchanged)."""
    if preset not in PRESETS:
        raise ConfigError(f"unknown render preset {preset!r}; known: {', '.join(preset_names())}")
    if preset == "fast":
        return xml
    root = ET.fromstring(xml)
    PRESETS[preset](root)
    return ET.tostring(root, encoding="unicode")


def render_model(model: mujoco.MjModel, xml: str, preset: str) -> mujoco.MjModel:
    """The model the renderer draws for a scene whose simulated model is ``model`` (built
    from ``xml``). ``fast`` returns ``model`` itself; other presets compile a copy whose
    bodies, joints and first ``model.ngeom`` geoms are those of ``model``.

    Raises:
        RenderBackendError: the preset changed the state layout (a bug in the preset).
    """
    if preset == "fast":
        return model
    from simfail.core.mjcf import compile_model
    from simfail.core.robot import robot_assets

    out = compile_model(preset_xml(xml, preset), robot_assets())
    same = (out.nq == model.nq and out.nv == model.nv and out.nmocap == model.nmocap
            and out.nbody == model.nbody + 1 and out.ngeom >= model.ngeom
            and all(out.body(i).name == model.body(i).name for i in range(model.nbody))
            and all(out.geom(i).name == model.geom(i).name for i in range(model.ngeom)))
    if not same:
        raise RenderBackendError(f"render preset {preset!r} changed the scene's bodies, joints or geoms")
    # The room's walls enlarge the model's extent, and OpenGL's near plane is znear * extent:
    # keep the scene's own extent so the wrist camera still sees the hand (not clipped away).
    out.stat.extent = model.stat.extent
    out.stat.center[:] = model.stat.center
    return out
