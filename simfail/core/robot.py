"""The Franka Panda: model loading, named indices, and inverse kinematics (mink).

Frames: world z up, robot base at the world origin. The tool centre point (site ``tcp``) lies
midway between the fingertip pads; a *top-down* grasp orientation has the TCP z axis pointing
to -z (world) and is parameterised by its yaw (rotation about world z, radians).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import mink
import mujoco
import numpy as np

from simfail.core.mjcf import compile_model, read_scene_file
from simfail.render.meshes import load_panda_meshes

ARM_JOINTS: tuple[str, ...] = tuple(f"joint{i}" for i in range(1, 8))
FINGER_JOINTS: tuple[str, ...] = ("finger_joint1", "finger_joint2")
ARM_ACTUATORS: tuple[str, ...] = tuple(f"act_joint{i}" for i in range(1, 8))
GRIPPER_ACTUATOR = "act_gripper"
#: Gripper opening [m] at command 0 (open) and 1 (closed).
GRIPPER_OPEN_WIDTH = 0.08
#: Arm joint angles [rad] of the home pose: TCP at (0.40, 0, 0.35) m pointing down, yaw 0.
HOME_QPOS = np.array([0.0, -0.471, 0.0, -2.490, 0.0, 0.449, 0.0])
ROBOT_BODIES: tuple[str, ...] = (
    "link0", "link1", "link2", "link3", "link4", "link5", "link6", "link7", "hand", "left_finger", "right_finger",
)


def robot_xml() -> str:
    return read_scene_file("robots/panda.xml")


@lru_cache(maxsize=2)
def robot_assets(mesh_scale: float = 1.0) -> dict[str, bytes]:
    return dict(load_panda_meshes(mesh_scale).files)


def topdown_quat(yaw: float) -> np.ndarray:
    """World-frame orientation (w, x, y, z) of a TCP pointing down, rotated ``yaw`` about z.

    Yaw 0 puts the finger opening direction (hand y axis) along world y.
    """
    # Rz(yaw) * Rx(pi) in closed form
    return np.array([0.0, np.cos(yaw / 2.0), np.sin(yaw / 2.0), 0.0])


@dataclass
class RobotIndex:
    """Addresses of the robot's joints and actuators inside a compiled scene model."""

    arm_qpos: np.ndarray
    arm_qvel: np.ndarray
    finger_qpos: np.ndarray
    arm_ctrl: np.ndarray
    gripper_ctrl: int
    tcp_site: int
    body_ids: np.ndarray

    @classmethod
    def from_model(cls, model: mujoco.MjModel) -> RobotIndex:
        def jq(name: str) -> int:
            return int(model.jnt_qposadr[model.joint(name).id])

        def jv(name: str) -> int:
            return int(model.jnt_dofadr[model.joint(name).id])

        return cls(
            arm_qpos=np.array([jq(j) for j in ARM_JOINTS]),
            arm_qvel=np.array([jv(j) for j in ARM_JOINTS]),
            finger_qpos=np.array([jq(j) for j in FINGER_JOINTS]),
            arm_ctrl=np.array([model.actuator(a).id for a in ARM_ACTUATORS]),
            gripper_ctrl=int(model.actuator(GRIPPER_ACTUATOR).id),
            tcp_site=int(model.site("tcp").id),
            body_ids=np.array([model.body(b).id for b in ROBOT_BODIES]),
        )


class PandaIK:
    """Differential inverse kinematics for the TCP with mink, on a robot-only model.

    Solving on the robot alone keeps the problem 9-dimensional whatever the scene holds
    (hundreds of particles in pouring scenes). The solver is deterministic: the same
    sequence of targets from the same start gives the same joint angles.
    """

    def __init__(self, posture_cost: float = 1e-2, orientation_cost: float = 0.5):
        xml = robot_xml().replace("<mujoco model=\"panda\">", "<mujoco model=\"panda\"><compiler angle=\"radian\" autolimits=\"true\"/>", 1)
        self.model = compile_model(xml, robot_assets())
        self.configuration = mink.Configuration(self.model)
        self.frame_task = mink.FrameTask("tcp", "site", position_cost=1.0, orientation_cost=orientation_cost, lm_damping=1e-6)
        self.posture_task = mink.PostureTask(self.model, cost=posture_cost)
        self.limits = [mink.ConfigurationLimit(self.model)]
        self._arm = np.array([self.model.jnt_qposadr[self.model.joint(j).id] for j in ARM_JOINTS])
        self.reset(HOME_QPOS)

    def reset(self, arm_q: np.ndarray) -> None:
        q = np.zeros(self.model.nq)
        q[self._arm] = arm_q
        self.configuration.update(q)
        self.posture_task.set_target(q.copy())

    def warm_start(self, arm_q: np.ndarray) -> None:
        """Continue solving from joint angles ``arm_q`` [rad] (the posture target is kept)."""
        q = self.configuration.q.copy()
        q[self._arm] = arm_q
        self.configuration.update(q)

    @property
    def arm_q(self) -> np.ndarray:
        return self.configuration.q[self._arm].copy()

    def solve(self, pos: np.ndarray, quat_wxyz: np.ndarray, iters: int = 20, tol: float = 5e-4, dt: float = 0.05) -> np.ndarray:
        """Move the internal configuration toward the TCP pose; return arm joint angles [rad].

        Args:
            pos: TCP position in the world frame [m].
            quat_wxyz: TCP orientation in the world frame.
            iters: Maximum solver iterations.
            tol: Stop when the position error [m] falls below this and rotation error below 10*tol rad.
        """
        target = mink.SE3.from_rotation_and_translation(mink.SO3(np.asarray(quat_wxyz, float)), np.asarray(pos, float))
        self.frame_task.set_target(target)
        tasks = [self.frame_task, self.posture_task]
        for _ in range(iters):
            vel = mink.solve_ik(self.configuration, tasks, dt, solver="daqp", damping=1e-3, limits=self.limits)
            self.configuration.integrate_inplace(vel, dt)
            err = self.frame_task.compute_error(self.configuration)
            if np.linalg.norm(err[:3]) < tol and np.linalg.norm(err[3:]) < 10 * tol:
                break
        return self.arm_q

    def tcp_pose(self) -> tuple[np.ndarray, np.ndarray]:
        data = self.configuration.data
        sid = self.model.site("tcp").id
        pos = data.site_xpos[sid].copy()
        quat = np.zeros(4)
        mujoco.mju_mat2Quat(quat, data.site_xmat[sid])
        return pos, quat
