"""Compose MJCF documents and compile them with in-memory assets.

A scene is written as its own small MJCF document (table, objects, cameras, lights) and the
robot comes from ``scenes/robots/<robot>.xml``; :func:`merge` appends every top-level section
of the robot document (``default``, ``asset``, ``worldbody``, ``tendon`` ...) into the scene
document, so each stays a valid, readable MJCF file on its own.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from importlib import resources

import mujoco

#: Top-level MJCF sections that merge by appending children.
_SECTIONS = ("default", "asset", "worldbody", "contact", "tendon", "equality", "actuator", "sensor", "keyframe")


def read_scene_file(relpath: str) -> str:
    """Text of a file inside the ``scenes`` package (``simfail.scenes`` when installed)."""
    return resources.files("simfail.scenes").joinpath(relpath).read_text(encoding="utf-8")


def merge(scene_xml: str, *parts_xml: str) -> str:
    """Append each part's top-level sections into ``scene_xml`` and return the merged text."""
    scene = ET.fromstring(scene_xml)
    for part_xml in parts_xml:
        part = ET.fromstring(part_xml)
        for section in part:
            if section.tag not in _SECTIONS:
                continue
            target = scene.find(section.tag)
            if target is None:
                target = ET.SubElement(scene, section.tag)
            for child in list(section):
                target.append(child)
    # MuJoCo requires <default> before the elements that use its classes.
    order = {tag: i for i, tag in enumerate(("compiler", "option", "size", "visual", "statistic", "default", "asset"))}
    children = list(scene)
    children.sort(key=lambda el: order.get(el.tag, len(order)))
    for el in list(scene):
        scene.remove(el)
    scene.extend(children)
    return ET.tostring(scene, encoding="unicode")


def compile_model(xml: str, assets: dict[str, bytes]) -> mujoco.MjModel:
    """Compile MJCF text with the given in-memory asset files (e.g. meshes)."""
    return mujoco.MjModel.from_xml_string(xml, assets)
