"""Turn (task, seed) into a compiled scene: layout -> MJCF -> MjModel -> SimCore at rest."""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from simfail.core.mjcf import compile_model, merge
from simfail.core.robot import HOME_QPOS, PandaIK, robot_assets, robot_xml
from simfail.core.scene import StageConfig
from simfail.core.sim import SimCore
from simfail.core.task import Layout, Task


@dataclass
class BuiltScene:
    task: Task
    layout: Layout
    model: mujoco.MjModel
    xml: str
    qpos0: np.ndarray


def layout_rng(seed: int) -> np.random.Generator:
    """The generator that draws a group's scene: a function of the seed alone."""
    return np.random.default_rng(np.random.SeedSequence([int(seed), 0x5F1A]))


def build_scene(task: Task, seed: int, stage: StageConfig) -> BuiltScene:
    layout = task.sample_layout(layout_rng(seed), seed)
    xml = merge(task.scene_xml(layout, stage), robot_xml())
    model = compile_model(xml, robot_assets())
    return BuiltScene(task, layout, model, xml, task.initial_qpos(model, layout))


def make_core(scene: BuiltScene, fps: int) -> SimCore:
    core = SimCore(scene.model, scene.layout.tracked, fps=fps)
    core.reset(scene.qpos0, np.concatenate([HOME_QPOS, [0.0]]))
    return core


def make_ik() -> PandaIK:
    ik = PandaIK()
    ik.reset(HOME_QPOS)
    return ik
