"""Per-frame record of a rollout: everything the detectors and labels read.

Frame 0 is the state after reset; frame ``t`` is the state after ``t`` calls to
:meth:`simfail.core.sim.SimCore.step` (time ``t / fps`` seconds). ``contact_impulse[t]`` holds
the contacts integrated over the step that *ended* at frame ``t`` (zeros for frame 0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from simfail.core.sim import FrameContacts, SimCore


@dataclass
class Trace:
    fps: int
    entity_names: list[str]
    object_names: list[str]
    qpos: list[np.ndarray] = field(default_factory=list)
    qvel: list[np.ndarray] = field(default_factory=list)
    action: list[np.ndarray] = field(default_factory=list)
    robot_state: list[np.ndarray] = field(default_factory=list)
    tcp: list[np.ndarray] = field(default_factory=list)
    width: list[float] = field(default_factory=list)
    obj_pos: list[np.ndarray] = field(default_factory=list)
    obj_quat: list[np.ndarray] = field(default_factory=list)
    obj_vel: list[np.ndarray] = field(default_factory=list)
    finger_touch: list[np.ndarray] = field(default_factory=list)
    contact_impulse: list[np.ndarray] = field(default_factory=list)
    contact_peak: list[np.ndarray] = field(default_factory=list)
    phase: list[str] = field(default_factory=list)
    #: joint name -> (qpos address, qpos width, dof address, dof width); see
    #: :func:`simfail.core.sim.joint_index`.
    joint_index: dict[str, tuple[int, int, int, int]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.qpos)

    def record(self, core: SimCore, action: np.ndarray, contacts: FrameContacts | None, phase: str) -> None:
        d = core.data
        self.qpos.append(d.qpos.copy())
        self.qvel.append(d.qvel.copy())
        self.action.append(np.asarray(action, np.float32).copy())
        self.robot_state.append(core.robot_state())
        self.tcp.append(core.tcp_pos())
        self.width.append(core.gripper_width())
        self.obj_pos.append(np.array([d.body(n).xpos for n in self.object_names]))
        self.obj_quat.append(np.array([d.body(n).xquat for n in self.object_names]))
        self.obj_vel.append(np.array([core.object_velocity(n) for n in self.object_names]))
        self.finger_touch.append(core.finger_touch())
        n = len(self.entity_names)
        if contacts is None:
            self.contact_impulse.append(np.zeros((n, n)))
            self.contact_peak.append(np.zeros((n, n)))
        else:
            self.contact_impulse.append(contacts.impulse)
            self.contact_peak.append(contacts.peak_force)
        self.phase.append(phase)

    def truncate(self, n: int) -> Trace:
        """A copy holding frames ``0..n-1`` (the shared prefix of a counterfactual)."""
        out = Trace(self.fps, list(self.entity_names), list(self.object_names), joint_index=dict(self.joint_index))
        for name in ("qpos", "qvel", "action", "robot_state", "tcp", "width", "obj_pos", "obj_quat", "obj_vel",
                     "finger_touch", "contact_impulse", "contact_peak", "phase"):
            setattr(out, name, list(getattr(self, name)[:n]))
        return out

    # ---- array views used by detectors --------------------------------------------------
    def _arr(self, name: str) -> np.ndarray:
        """Stacked array of a per-frame list, cached until the trace grows."""
        cache = self.__dict__.setdefault("_cache", {})
        hit = cache.get(name)
        if hit is None or hit[0] != len(self.qpos):
            hit = (len(self.qpos), np.array(getattr(self, name)))
            cache[name] = hit
        return hit[1]

    def pos(self, name: str) -> np.ndarray:
        """(T, 3) world position of an object's body origin [m]."""
        return self._arr("obj_pos")[:, self.object_names.index(name)]

    def quat(self, name: str) -> np.ndarray:
        return self._arr("obj_quat")[:, self.object_names.index(name)]

    def vel(self, name: str) -> np.ndarray:
        """(T, 3) linear velocity [m/s] of an object's body origin."""
        return self._arr("obj_vel")[:, self.object_names.index(name)]

    def touch(self, name: str) -> np.ndarray:
        """(T, 2) bool: left / right finger pad touching the object."""
        return self._arr("finger_touch")[:, self.object_names.index(name)]

    def impulse(self, a: str, b: str) -> np.ndarray:
        """(T,) normal impulse [N*s] between two entities over each frame's step."""
        i, j = self.entity_names.index(a), self.entity_names.index(b)
        return self._arr("contact_impulse")[:, i, j]

    def peak(self, a: str, b: str) -> np.ndarray:
        """(T,) largest total normal force [N] between two entities in one substep of each frame."""
        i, j = self.entity_names.index(a), self.entity_names.index(b)
        return self._arr("contact_peak")[:, i, j]

    def tilt(self, name: str) -> np.ndarray:
        """(T,) angle [rad] between the object's body z axis and world z."""
        q = self.quat(name)
        x, y = q[:, 1], q[:, 2]
        zz = 1.0 - 2.0 * (x * x + y * y)
        return np.arccos(np.clip(zz, -1.0, 1.0))

    def joint_qpos(self, joint: str) -> np.ndarray:
        """(T, width) positions of a named joint: [m] for a slide, [rad] for a hinge, and
        ``x y z qw qx qy qz`` (world frame, metres) for a free joint."""
        adr, width, _, _ = self._joint(joint)
        return self._arr("qpos")[:, adr : adr + width]

    def joint_qvel(self, joint: str) -> np.ndarray:
        """(T, width) velocities of a named joint: [m/s] or [rad/s]; a free joint gives its
        linear velocity (world frame) then its angular velocity (body frame)."""
        _, _, adr, width = self._joint(joint)
        return self._arr("qvel")[:, adr : adr + width]

    def _joint(self, joint: str) -> tuple[int, int, int, int]:
        try:
            return self.joint_index[joint]
        except KeyError:
            raise KeyError(f"no joint {joint!r} in the trace (known: {sorted(self.joint_index)})") from None

    def grip_cmd(self) -> np.ndarray:
        return self._arr("action")[:, 7]
