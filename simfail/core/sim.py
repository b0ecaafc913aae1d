"""The simulation core: one MuJoCo model + data stepped at the frame rate.

Everything that moves in simfail goes through :class:`SimCore`: the Gymnasium environment,
the expert, and every counterfactual variant. One call to :meth:`SimCore.step` advances one
*frame* (``1 / fps`` seconds, ``substeps`` physics steps): actuator targets are interpolated
linearly from the previous frame's action to the new one over the substeps, and contact
forces between *entities* (world, robot, each object) are integrated into impulses, so the
detectors see every collision even between frames.

Actions are ``(8,)``: seven arm joint position targets [rad] and the gripper command in
[0, 1] (0 = open 8 cm, 1 = closed).
"""

from __future__ import annotations

from dataclasses import dataclass

import mujoco
import numpy as np

from simfail.core.robot import GRIPPER_OPEN_WIDTH, RobotIndex
from simfail.errors import SimulationUnstableError

#: MuJoCo warnings after which it resets the simulation state (NaN / huge qpos, qvel, qacc).
_DIVERGED = [int(w) for w in (mujoco.mjtWarning.mjWARN_BADQPOS, mujoco.mjtWarning.mjWARN_BADQVEL,
                               mujoco.mjtWarning.mjWARN_BADQACC)]

#: MuJoCo state components saved for exact branching (positions, velocities, controls,
#: warm-start accelerations, time, ...).
STATE_SPEC = mujoco.mjtState.mjSTATE_INTEGRATION


@dataclass
class FrameContacts:
    """Contacts integrated over one frame.

    ``impulse[i, j]`` is the normal impulse [N*s] between entities ``i`` and ``j`` (symmetric),
    ``peak_force[i, j]`` the largest total normal force [N] between them in one substep.
    """

    impulse: np.ndarray
    peak_force: np.ndarray


#: qpos / qvel widths of each MuJoCo joint type (free, ball, slide, hinge).
_QPOS_WIDTH = {mujoco.mjtJoint.mjJNT_FREE: 7, mujoco.mjtJoint.mjJNT_BALL: 4,
               mujoco.mjtJoint.mjJNT_SLIDE: 1, mujoco.mjtJoint.mjJNT_HINGE: 1}
_DOF_WIDTH = {mujoco.mjtJoint.mjJNT_FREE: 6, mujoco.mjtJoint.mjJNT_BALL: 3,
              mujoco.mjtJoint.mjJNT_SLIDE: 1, mujoco.mjtJoint.mjJNT_HINGE: 1}


def joint_index(model: mujoco.MjModel) -> dict[str, tuple[int, int, int, int]]:
    """Named joint -> ``(qpos address, qpos width, dof address, dof width)``.

    Lets detectors read any joint (a drawer slide [m], a lid hinge [rad], a particle's free
    joint ``x y z qw qx qy qz``) from the recorded ``qpos`` / ``qvel`` without the model.
    """
    out = {}
    for j in range(model.njnt):
        name = model.joint(j).name
        if name:
            t = mujoco.mjtJoint(model.jnt_type[j])
            out[name] = (int(model.jnt_qposadr[j]), _QPOS_WIDTH[t], int(model.jnt_dofadr[j]), _DOF_WIDTH[t])
    return out


class SimCore:
    """Owns the MjModel/MjData of one scene and steps it frame by frame.

    Args:
        model: Compiled scene (robot + table + objects).
        entities: Names of the free objects whose contacts are tracked. Entity 0 is the static
            world (table, floor), entity 1 the robot, entities 2.. the objects in this order.
        fps: Frames per second.
    """

    def __init__(self, model: mujoco.MjModel, entities: list[str], fps: int = 10):
        self.model = model
        self.data = mujoco.MjData(model)
        self.robot = RobotIndex.from_model(model)
        self.fps = int(fps)
        self.substeps = max(1, int(round(1.0 / (fps * model.opt.timestep))))
        self.entity_names = ["world", "robot", *entities]
        self.geom_entity = self._geom_entities(entities)
        self._last_action = np.zeros(8)
        self._ctrl_lo = model.actuator_ctrlrange[:, 0].copy()
        self._ctrl_hi = model.actuator_ctrlrange[:, 1].copy()
        self._state_size = mujoco.mj_stateSize(model, STATE_SPEC)
        #: dof address of each tracked object's free joint (-1 for fixed fixtures)
        self.free_dof = {}
        for name in entities:
            body = model.body(name)
            jnt = int(model.body_jntadr[body.id])
            ok = jnt >= 0 and model.jnt_type[jnt] == mujoco.mjtJoint.mjJNT_FREE
            self.free_dof[name] = int(model.jnt_dofadr[jnt]) if ok else -1
        self._geom_body = model.geom_bodyid.copy()
        self.joint_index = joint_index(model)

    # ------------------------------------------------------------------ set-up
    def _geom_entities(self, entities: list[str]) -> np.ndarray:
        m = self.model
        ent = np.zeros(m.ngeom, dtype=np.int64)
        robot_bodies = set(self.robot.body_ids.tolist())
        obj_root = {m.body(name).id: k + 2 for k, name in enumerate(entities)}
        for g in range(m.ngeom):
            b = int(m.geom_bodyid[g])
            if b in robot_bodies:
                ent[g] = 1
                continue
            root = int(m.body_rootid[b])
            ent[g] = obj_root.get(b, obj_root.get(root, 0))
        return ent

    def entity(self, name: str) -> int:
        return self.entity_names.index(name)

    # ------------------------------------------------------------------ state
    def reset(self, qpos: np.ndarray, action: np.ndarray) -> None:
        """Put the scene at rest in configuration ``qpos`` with controls set to ``action``."""
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.0
        self._last_action = np.asarray(action, float).copy()
        self.data.ctrl[:] = self._action_to_ctrl(self._last_action)
        mujoco.mj_forward(self.model, self.data)

    def get_state(self) -> np.ndarray:
        """Full integration state plus the last action (needed to continue interpolation)."""
        state = np.empty(self._state_size)
        mujoco.mj_getState(self.model, self.data, state, STATE_SPEC)
        return np.concatenate([state, self._last_action])

    def set_state(self, state: np.ndarray) -> None:
        mujoco.mj_setState(self.model, self.data, state[: self._state_size], STATE_SPEC)
        self._last_action = state[self._state_size :].copy()
        mujoco.mj_forward(self.model, self.data)

    # ------------------------------------------------------------------ stepping
    def _action_to_ctrl(self, action: np.ndarray) -> np.ndarray:
        ctrl = np.zeros(self.model.nu)
        ctrl[self.robot.arm_ctrl] = action[:7]
        ctrl[self.robot.gripper_ctrl] = (1.0 - float(np.clip(action[7], 0.0, 1.0))) * GRIPPER_OPEN_WIDTH
        return np.clip(ctrl, self._ctrl_lo, self._ctrl_hi)

    def _divergences(self) -> int:
        w = self.data.warning
        return sum(int(w[i].number) for i in _DIVERGED)

    def step(self, action: np.ndarray) -> FrameContacts:
        """Advance one frame toward ``action``; return the contacts integrated over it."""
        m, d = self.model, self.data
        action = np.asarray(action, float)
        c0 = self._action_to_ctrl(self._last_action)
        c1 = self._action_to_ctrl(action)
        n_ent = len(self.entity_names)
        n2 = n_ent * n_ent
        nsub = self.substeps
        geom_entity = self.geom_entity
        # per substep only the raw contact arrays are kept (geom pairs, constraint addresses,
        # constraint forces); mapping to entities and reducing happen once per frame
        subs: list[int] = []
        counts: list[int] = []
        geoms: list[np.ndarray] = []
        adrs: list[np.ndarray] = []
        forces: list[np.ndarray] = []
        bad_before = self._divergences()
        ctrls = c0 + (c1 - c0) * (np.arange(1, nsub + 1) / nsub)[:, None]
        step = mujoco.mj_step
        for k in range(nsub):
            d.ctrl[:] = ctrls[k]
            step(m, d)
            ncon = d.ncon
            if ncon:
                con = d.contact
                adr = con.efc_address.copy()
                efc = d.efc_force
                subs.append(k)
                counts.append(ncon)
                geoms.append(con.geom.copy())
                adrs.append(adr)
                # a contact without constraint rows (adr < 0) is zeroed below
                forces.append(efc[adr] if len(efc) else np.zeros(ncon))
        if self._divergences() != bad_before:
            # MuJoCo reset the data after a NaN/huge acceleration: the rollout is meaningless
            raise SimulationUnstableError(f"the physics diverged near t = {d.time:.3f} s (NaN or huge "
                                          "position, velocity or acceleration; MuJoCo reset the state)")
        if subs:
            g = np.concatenate(geoms)
            # elliptic cones: the first constraint row of a contact is its normal force
            fn = np.abs(np.concatenate(forces))
            fn[np.concatenate(adrs) < 0] = 0.0
            sub = np.repeat(np.asarray(subs, dtype=np.int64), counts)
            pairs = sub * n2 + geom_entity[g[:, 0]] * n_ent + geom_entity[g[:, 1]]
            per_sub = np.bincount(pairs, weights=fn, minlength=nsub * n2).reshape(nsub, n2)
            impulse = per_sub.sum(axis=0) * m.opt.timestep
            peak = per_sub.max(axis=0)
        else:
            impulse = np.zeros(n2)
            peak = np.zeros(n2)
        impulse = impulse.reshape(n_ent, n_ent)
        peak = peak.reshape(n_ent, n_ent)
        self._last_action = action.copy()
        # refresh derived quantities (poses, contacts) for the new state; mj_step leaves them
        # one substep stale. This does not touch the integration state, so it keeps determinism.
        mujoco.mj_forward(m, d)
        impulse = impulse + impulse.T
        peak = peak + peak.T
        return FrameContacts(impulse=impulse, peak_force=peak)

    # ------------------------------------------------------------------ readouts
    def robot_state(self) -> np.ndarray:
        """(9,) float32: seven arm joint angles [rad] and two finger positions [m]."""
        d = self.data
        return np.concatenate([d.qpos[self.robot.arm_qpos], d.qpos[self.robot.finger_qpos]]).astype(np.float32)

    def tcp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.robot.tcp_site].copy()

    def gripper_width(self) -> float:
        return float(self.data.qpos[self.robot.finger_qpos].sum())

    def body_pos(self, name: str) -> np.ndarray:
        return self.data.body(name).xpos.copy()

    def body_quat(self, name: str) -> np.ndarray:
        return self.data.body(name).xquat.copy()

    def object_velocity(self, name: str) -> np.ndarray:
        """Linear velocity [m/s] of a free object's body origin, world frame (0 if fixed)."""
        adr = self.free_dof[name]
        return self.data.qvel[adr : adr + 3].copy() if adr >= 0 else np.zeros(3)

    def finger_touch(self) -> np.ndarray:
        """(n_objects, 2) bool: left / right finger touches each tracked object now."""
        m, d = self.model, self.data
        out = np.zeros((len(self.entity_names) - 2, 2), dtype=bool)
        ncon = d.ncon
        if not ncon:
            return out
        lb, rb = m.body("left_finger").id, m.body("right_finger").id
        geoms = d.contact.geom[:ncon]
        bodies = self._geom_body[geoms]
        ents = self.geom_entity[geoms]
        for side, fb in enumerate((lb, rb)):
            for a, b in ((0, 1), (1, 0)):
                hit = (bodies[:, a] == fb) & (ents[:, b] >= 2)
                out[ents[hit, b] - 2, side] = True
        return out
