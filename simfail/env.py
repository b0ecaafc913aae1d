"""Gymnasium environment over the simfail simulation core.

``SimfailEnv`` wraps one :class:`~simfail.core.sim.SimCore`: every ``reset`` builds the scene
of a (task, scene seed) exactly as the generator does (:func:`~simfail.core.builder.build_scene`
+ :func:`~simfail.core.builder.make_core`), and every ``step`` advances the core one frame and
records it into a :class:`~simfail.labels.trace.Trace`. The generator and a learning agent can
therefore drive the *same* core: ``env.scene``, ``env.core``, ``env.trace`` and
``env.scene_seed`` are public.

``import simfail`` registers one Gymnasium id per task, ``simfail/PickPlace-v0`` for
``pick_place`` (an entry-point string: this module loads on ``gymnasium.make``)::

    import gymnasium as gym
    import simfail

    gym.register_envs(simfail)  # a no-op that keeps linters from dropping the import
    env = gym.make("simfail/PickPlace-v0", width=64, height=64)

Spaces
    *action*: ``Box(8,) float32``: seven arm joint position targets [rad] bounded by the arm
    actuators' ``ctrlrange`` (rounded outward to float32) and the gripper close command in
    [0, 1] (0 = open 8 cm, 1 = closed). Actions outside the box are **clipped** to it (no
    error); the core then clips the targets to the exact ``ctrlrange``. Non-finite actions
    raise ``ValueError``.

    *observation*: ``Dict`` with

    - ``state``: ``Box(9,) float32``: seven arm joint angles [rad] and the two finger
      positions [m] (:meth:`SimCore.robot_state`); bounds are the joint ranges widened by
      :data:`JOINT_MARGIN` / :data:`FINGER_MARGIN`, because MuJoCo's soft joint limits are
      overshot under violent actions (the margins are empirical, about 2-3x the worst
      overshoot measured, not a hard guarantee);
    - ``tcp_pos``: ``Box(3,) float32``: tool centre point, world frame [m]; bounds are the base
      position +- the arm's reach (sum of the link offsets down to the TCP site);
    - ``objects``: ``Box(7 * n_objects,) float32``: privileged pose of every free object in
      layout order (``scene.layout.tracked``: the free objects unless the task says otherwise), ``x y z qw qx qy qz`` each; positions are
      unbounded (an object pushed off the table falls freely: the floor does not collide),
      quaternion components lie in [-1, 1];
    - ``pixels`` (only with ``pixels=True``): ``Dict`` of ``Box(0, 255, (height, width, 3), uint8)``
      per camera in ``views``.

Reward, termination, info
    The online reward is the task's dense progress in [0, 1] at the new frame,
    ``task.progress(trace, layout)[-1]``. The failure-aware dense reward stored in datasets
    (:func:`simfail.labels.scoring.dense_reward`) needs the events of the *whole* episode and
    so is not available online. ``terminated`` is True at the first frame where ``task.detect``
    reports success (for Pick/Place: the cube is in the bowl, released and at rest);
    ``truncated`` is True once ``max_episode_steps`` steps were taken (default
    ``task.duration * fps``, i.e. the generator's episode length).

    ``info`` carries ``success`` (bool, also as ``is_success``), ``progress`` (float),
    ``events`` (the :class:`~simfail.core.episode.FailureEvent` s that ``task.detect`` reports on
    the episode so far), ``frame`` and ``scene_seed``. ``task.detect`` runs at every step: it is
    needed for ``terminated`` anyway and is cheap: about 0.3 ms per call at the default horizon
    of 80 steps (it grows with the trace: 2.3 ms at 1000 steps), against about 1.8 ms of
    physics per frame (``env.step`` about 2.2 ms in all, measured on the CPU). Events are those of the prefix: episode-level
    verdicts can be provisional (Pick/Place reports ``no_release`` while the cube is still
    being carried); the final verdict is the one at ``terminated`` / ``truncated``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from simfail.core.builder import BuiltScene, build_scene, make_core
from simfail.core.robot import ARM_JOINTS, FINGER_JOINTS, HOME_QPOS
from simfail.core.scene import StageConfig
from simfail.core.sim import SimCore
from simfail.core.task import Task, get_task, task_names
from simfail.task_registry import env_id, register_envs  # noqa: F401  (re-exported)
from simfail.labels.trace import Trace

#: Slack [rad] added to each arm joint range for the ``state`` bounds. MuJoCo joint limits
#: are soft: under bang-bang actions at the corners of the action box the arm overshot its
#: limits by at most 0.18 rad (240 episodes of 80 steps); the margin leaves ~3x room.
JOINT_MARGIN = 0.5
#: Slack [m] added to each finger joint range (0 .. 0.04 m) for the ``state`` bounds; the
#: largest overshoot seen in the same test was 0.047 m (fingers pried open by a violent swing).
FINGER_MARGIN = 0.1
#: Slack [m] added to the arm's reach for the ``tcp_pos`` bounds.
REACH_MARGIN = 0.05
#: Phase label written into the trace for env steps (the generator may set ``env.phase``).
DEFAULT_PHASE = "env"
#: Scene seeds drawn by ``reset`` are 31-bit, like :func:`simfail.generate.scene_seed`.
SEED_HIGH = 2**31


def _arm_reach(model, core: SimCore) -> tuple[np.ndarray, float]:
    """(centre, radius): a sphere that holds the TCP in every joint configuration.

    Walks from the TCP site up to the robot's root body (fixed to the world). Hinge joints
    keep the distance between a body's origin and its child's constant, so the sum of the
    offsets (plus twice each joint anchor's offset) bounds the TCP's distance from the root.
    """
    site = core.robot.tcp_site
    reach = float(np.linalg.norm(model.site_pos[site]))
    body = int(model.site_bodyid[site])
    root = int(model.body_rootid[body])
    while body != root:
        reach += float(np.linalg.norm(model.body_pos[body]))
        for j in range(model.body_jntadr[body], model.body_jntadr[body] + model.body_jntnum[body]):
            if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
                raise ValueError("the TCP reach bound assumes a chain of hinge joints")
            reach += 2.0 * float(np.linalg.norm(model.jnt_pos[j]))
        body = int(model.body_parentid[body])
    if model.body_jntnum[root] > 0:
        raise ValueError("the TCP reach bound assumes a robot base fixed to the world")
    return core.data.xpos[root].copy(), reach


class SimfailEnv(gymnasium.Env):
    """A simfail task as a Gymnasium environment (see the module docstring for the spaces).

    Args:
        task: Task name (``simfail.core.task.task_names()``).
        fps: Control frequency; one ``step`` is one frame of ``1 / fps`` seconds.
        width, height: Image size of the cameras (``render`` and ``pixels`` observations).
        render_mode: ``None`` or ``"rgb_array"`` (``render`` returns the ``left`` view).
        views: Cameras of the ``pixels`` observation.
        pixels: Add the camera images to the observation.
        max_episode_steps: Steps before ``truncated``; default ``round(task.duration * fps)``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        task: str = "pick_place",
        fps: int = 10,
        width: int = 256,
        height: int = 256,
        render_mode: str | None = None,
        views: tuple[str, ...] = ("left", "right", "wrist"),
        pixels: bool = False,
        max_episode_steps: int | None = None,
    ):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.task_name = task
        self.task: Task = get_task(task)
        self.fps = int(fps)
        self.width, self.height = int(width), int(height)
        self.render_mode = render_mode
        self.views = tuple(views)
        self.pixels = bool(pixels)
        self.max_episode_steps = (
            int(round(self.task.duration * self.fps)) if max_episode_steps is None else int(max_episode_steps)
        )
        self.metadata = {**type(self).metadata, "render_fps": self.fps}
        self.stage = StageConfig(width=self.width, height=self.height)
        #: Phase label recorded into the trace by the next ``step``.
        self.phase = DEFAULT_PHASE

        # The spaces come from a prototype scene: the robot (ctrlrange, joint ranges, reach)
        # and the number of free objects are the same in every layout of a task.
        proto = build_scene(self.task, 0, self.stage)
        proto_core = make_core(proto, self.fps)
        #: The prototype scene's model: its state size and joint table are those of every
        #: layout of the task (tests/test_suite.py checks this).
        self.prototype_model = proto.model
        self.object_names: list[str] = list(proto.layout.tracked)
        self.action_space = self._make_action_space(proto.model, proto_core)
        self.observation_space = self._make_observation_space(proto.model, proto_core)

        self.scene: BuiltScene | None = None
        self.core: SimCore | None = None
        self.trace: Trace | None = None
        self.scene_seed: int | None = None
        self.elapsed_steps = 0
        self._renderer = None
        self._frames: dict[str, np.ndarray] | None = None  # images of the current frame, if rendered
        self._frames_at = -1

    # ------------------------------------------------------------------ spaces
    def _make_action_space(self, model, core: SimCore) -> spaces.Box:
        rng = model.actuator_ctrlrange[core.robot.arm_ctrl]
        low = np.concatenate([rng[:, 0], [0.0]])
        high = np.concatenate([rng[:, 1], [1.0]])
        # round outward to float32 so the box holds every in-range float64 action: clipping to
        # the box then never alters an action the expert sends (the core clips to ctrlrange)
        low32, high32 = low.astype(np.float32), high.astype(np.float32)
        low32 = np.where(low32 > low, np.nextafter(low32, np.float32(-np.inf)), low32)
        high32 = np.where(high32 < high, np.nextafter(high32, np.float32(np.inf)), high32)
        self._action_low, self._action_high = low32.astype(np.float64), high32.astype(np.float64)
        return spaces.Box(low32, high32, dtype=np.float32)

    def _make_observation_space(self, model, core: SimCore) -> spaces.Dict:
        lo, hi = [], []
        for names, margin in ((ARM_JOINTS, JOINT_MARGIN), (FINGER_JOINTS, FINGER_MARGIN)):
            for name in names:
                j = model.joint(name).id
                if model.jnt_limited[j]:
                    lo.append(model.jnt_range[j, 0] - margin)
                    hi.append(model.jnt_range[j, 1] + margin)
                else:
                    lo.append(-np.inf)
                    hi.append(np.inf)
        centre, reach = _arm_reach(model, core)
        reach += REACH_MARGIN
        n = len(self.object_names)
        obj_lo = np.tile(np.array([-np.inf] * 3 + [-1.0] * 4), n)
        obj_hi = np.tile(np.array([np.inf] * 3 + [1.0] * 4), n)
        obs = {
            "state": spaces.Box(np.array(lo, np.float32), np.array(hi, np.float32), dtype=np.float32),
            "tcp_pos": spaces.Box((centre - reach).astype(np.float32), (centre + reach).astype(np.float32),
                                  dtype=np.float32),
            "objects": spaces.Box(obj_lo.astype(np.float32), obj_hi.astype(np.float32), dtype=np.float32),
        }
        if self.pixels:
            obs["pixels"] = spaces.Dict({
                v: spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8) for v in self.views
            })
        return spaces.Dict(obs)

    # ------------------------------------------------------------------ api
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Build a new scene and return its first observation.

        The scene seed is drawn from ``self.np_random`` (seeded by ``seed``) unless
        ``options={"scene_seed": int}`` is given, in which case nothing is drawn.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"scene_seed"}
        if unknown:
            raise ValueError(f"unknown reset options {sorted(unknown)}; supported: ['scene_seed']")
        if options.get("scene_seed") is not None:
            scene_seed = int(options["scene_seed"])
        else:
            scene_seed = int(self.np_random.integers(0, SEED_HIGH))
        scene = build_scene(self.task, scene_seed, self.stage)
        if list(scene.layout.tracked) != self.object_names:
            raise RuntimeError(
                f"task {self.task_name!r} laid out tracked objects {scene.layout.tracked} for seed {scene_seed}, "
                f"the observation space expects {self.object_names}"
            )
        self._close_renderer()  # the renderer is bound to the previous scene's model
        self.scene = scene
        self.scene_seed = scene_seed
        self.core = make_core(scene, self.fps)
        self.trace = Trace(self.fps, list(self.core.entity_names), list(self.core.entity_names[2:]),
                           joint_index=self.core.joint_index)
        self.trace.record(self.core, np.concatenate([HOME_QPOS, [0.0]]), None, self.phase)
        self.elapsed_steps = 0
        obs = self._observation()
        info = {
            "scene_seed": scene_seed,
            "instruction": scene.layout.instruction,
            "frame": 0,
            "success": False,
            "is_success": False,
            "progress": float(self.task.progress(self.trace, scene.layout)[-1]),
            "events": [],
        }
        return obs, info

    def step(self, action):
        if self.core is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        action = np.clip(action, self._action_low, self._action_high)
        contacts = self.core.step(action)
        self.trace.record(self.core, action, contacts, self.phase)
        self.elapsed_steps += 1
        layout = self.scene.layout
        reward = float(self.task.progress(self.trace, layout)[-1])
        success, events = self.task.detect(self.trace, layout)
        terminated = bool(success)
        truncated = self.elapsed_steps >= self.max_episode_steps
        info = {
            "scene_seed": self.scene_seed,
            "frame": len(self.trace) - 1,
            "success": bool(success),
            "is_success": bool(success),
            "progress": reward,
            "events": events,
        }
        return self._observation(), reward, terminated, truncated, info

    def render(self):
        """The ``left`` camera at the current frame, ``uint8 (height, width, 3)``."""
        if self.render_mode is None:
            gymnasium.logger.warn(
                "render() called without a render_mode; create the env with render_mode='rgb_array'"
            )
            return None
        if self.core is None:
            raise gymnasium.error.ResetNeeded("call reset() before render()")
        return self._render_views()["left"].copy()

    def close(self) -> None:
        self._close_renderer()

    # ------------------------------------------------------------------ helpers
    def _render_views(self) -> dict[str, np.ndarray]:
        """Images of the current frame (rendered once per frame for all cameras)."""
        frame = len(self.trace) - 1
        if self._frames is None or self._frames_at != frame:
            if self._renderer is None:
                from simfail.render.renderer import MultiViewRenderer

                views = self.views if self.pixels else ()
                if "left" not in views and self.render_mode is not None:
                    views = (*views, "left")
                self._renderer = MultiViewRenderer(self.scene.model, views, self.width, self.height)
            self._frames = self._renderer.render(self.core.data)
            self._frames_at = frame
        return self._frames

    def _close_renderer(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._frames = None
        self._frames_at = -1

    def _observation(self) -> dict[str, Any]:
        core = self.core
        d = core.data
        objects = np.concatenate([np.concatenate([d.body(n).xpos, d.body(n).xquat]) for n in self.object_names])
        obs: dict[str, Any] = {
            "state": core.robot_state().astype(np.float32),
            "tcp_pos": core.tcp_pos().astype(np.float32),
            "objects": objects.astype(np.float32),
        }
        if self.pixels:
            frames = self._render_views()
            obs["pixels"] = {v: frames[v].copy() for v in self.views}
        return obs


def make_env(task: str = "pick_place", **kwargs) -> SimfailEnv:
    """A bare :class:`SimfailEnv` (no Gymnasium wrappers): ``make_env("pick_place", width=64)``."""
    return SimfailEnv(task=task, **kwargs)


register_envs()
