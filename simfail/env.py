"""Gymnasium environment: a thin adapter over the scene runner.

``SimfailEnv`` adds spaces, seeding and Gymnasium's step contract to one
:class:`~simfail.core.runner.SceneRunner`, the object that also runs ``generate`` and policy
rollouts: every ``reset`` builds the scene of a (task, scene seed) exactly as the generator does,
and every ``step`` advances it one frame and records it into a
:class:`~simfail.labels.trace.Trace`. ``env.runner``, ``env.scene``, ``env.core``, ``env.trace``
and ``env.scene_seed`` are public.

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
      unbounded (an object pushed off the table lands on the floor, 0.76 m below the top),
      quaternion components lie in [-1, 1];
    - ``pixels`` (only with ``pixels=True``): ``Dict`` of ``Box(0, 255, (height, width, 3), uint8)``
      per camera in ``views``.

    ``obs_mode="lerobot"`` gives LeRobot's keys instead: ``pixels`` (``Dict`` of images per
    camera in ``views``) and ``agent_pos`` (the ``state`` above).

Reward, termination, info
    ``reward_mode="progress"`` (default): the task's dense progress in [0, 1] at the new frame,
    exactly ``task.progress(trace, layout)[-1]``, computed incrementally
    (:class:`~simfail.labels.online.OnlineProgress`: frame 0, the new frame and O(1) carried
    state, never the whole trace). ``reward_mode="dense"``: the failure-aware dense reward
    of datasets (:func:`simfail.labels.scoring.dense_reward`) as far as it is known online
    (:func:`simfail.labels.online.online_dense_reward`): progress scaled down by every task or
    quality event already reported and visible, 0 once a safety event is. Penalties that can
    only land at the end: episode-level verdicts the detectors reach on the finished episode
    (the task left incomplete, a placement judged at rest, ``no_release``), and any event
    reported late lowers only the rewards from its report on, not those already paid.

    Detection is incremental (:class:`~simfail.labels.online.OnlineLabeler`): ``task.detect``
    reruns only when the trace has grown by ``detect_ratio`` (25 %) since its last run, so a
    step costs O(1) amortized; at the last step (``truncated``) it reruns on the whole episode,
    and those final labels are exactly the ones a dataset episode gets. ``terminated`` is True
    at the first detection that reports success (so up to ``detect_ratio`` of the elapsed frames
    after the success frame; ``detect_ratio=0`` detects at every step); ``truncated`` is True
    once ``max_episode_steps`` steps were taken (default ``task.duration * fps``, the
    generator's episode length). Between checkpoints a step reads a constant number of trace
    frames (the progress term reads two; ``env.progress_tracker.frames_read`` counts them).

    ``info`` carries ``success`` (bool, also as ``is_success``, LeRobot's convention),
    ``progress`` (float), ``events`` (the :class:`~simfail.core.episode.FailureEvent` s known so
    far: provisional between checkpoints, see :mod:`simfail.labels.online`), ``frame``,
    ``checked_at`` (the frame of the last detection) and ``scene_seed``.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import mujoco
import numpy as np
from gymnasium import spaces

from simfail.core.builder import BuiltScene, make_core
from simfail.core.observation import OBS_MODES, Observer
from simfail.core.robot import ARM_JOINTS, FINGER_JOINTS
from simfail.core.runner import HOME_ACTION, SceneRunner
from simfail.core.scene import StageConfig
from simfail.core.sim import SimCore
from simfail.core.task import Task, get_task, task_names
from simfail.labels.online import DEFAULT_RATIO, OnlineLabeler, OnlineProgress, online_dense_reward
from simfail.task_registry import env_id, register_envs  # noqa: F401  (re-exported)
from simfail.labels.trace import Trace

#: Rewards the env can pay (see the module docstring).
REWARD_MODES: tuple[str, ...] = ("progress", "dense")

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
        reward_mode: ``"progress"`` or ``"dense"`` (see the module docstring).
        obs_mode: ``"default"`` or ``"lerobot"`` (``pixels`` + ``agent_pos``).
        detect_ratio: Growth of the trace between two detections (0 = every step).
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
        reward_mode: str = "progress",
        obs_mode: str = "default",
        detect_ratio: float = DEFAULT_RATIO,
    ):
        if reward_mode not in REWARD_MODES:
            raise ValueError(f"reward_mode must be one of {list(REWARD_MODES)}, got {reward_mode!r}")
        if obs_mode not in OBS_MODES:
            raise ValueError(f"obs_mode must be one of {list(OBS_MODES)}, got {obs_mode!r}")
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.task_name = task
        self.task: Task = get_task(task)
        self.fps = int(fps)
        self.width, self.height = int(width), int(height)
        self.render_mode = render_mode
        self.views = tuple(views)
        self.obs_mode = obs_mode
        self.pixels = bool(pixels) or obs_mode == "lerobot"
        self.reward_mode = reward_mode
        self.detect_ratio = float(detect_ratio)
        self.max_episode_steps = (
            int(round(self.task.duration * self.fps)) if max_episode_steps is None else int(max_episode_steps)
        )
        self.metadata = {**type(self).metadata, "render_fps": self.fps}
        self.stage = StageConfig(width=self.width, height=self.height)
        #: Phase label recorded into the trace by the next ``step``.
        self.phase = DEFAULT_PHASE

        # The spaces come from a prototype scene: the robot (ctrlrange, joint ranges, reach)
        # and the number of free objects are the same in every layout of a task.
        self.runner = SceneRunner(self.task, self.fps, self.stage)
        proto = self.runner.prototype
        proto_core = make_core(proto, self.fps)
        #: The prototype scene's model: its state size and joint table are those of every
        #: layout of the task (tests/test_suite.py checks this).
        self.prototype_model = proto.model
        self.object_names: list[str] = list(proto.layout.tracked)
        self.action_space = self._make_action_space(proto.model, proto_core)
        self.observation_space = self._make_observation_space(proto.model, proto_core)

        self.elapsed_steps = 0
        self.labeler: OnlineLabeler | None = None
        self.progress_tracker: OnlineProgress | None = None
        extra = ("left",) if render_mode is not None else ()
        self.observer = Observer(self.object_names, self.views, self.width, self.height, pixels=self.pixels,
                                 mode=obs_mode, extra_views=extra)
        self._episode = 0  # observation cache key: (episode, frame)

    # the runner's scene, core and trace, under the names the env has always had
    @property
    def scene(self) -> BuiltScene | None:
        return self.runner.scene

    @property
    def core(self) -> SimCore | None:
        return self.runner.core

    @property
    def trace(self) -> Trace | None:
        return self.runner.trace

    @property
    def scene_seed(self) -> int | None:
        return self.runner.scene_seed

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
        state = spaces.Box(np.array(lo, np.float32), np.array(hi, np.float32), dtype=np.float32)
        pixels = spaces.Dict({
            v: spaces.Box(0, 255, (self.height, self.width, 3), dtype=np.uint8) for v in self.views
        })
        if self.obs_mode == "lerobot":
            return spaces.Dict({"pixels": pixels, "agent_pos": state})
        obs = {
            "state": state,
            "tcp_pos": spaces.Box((centre - reach).astype(np.float32), (centre + reach).astype(np.float32),
                                  dtype=np.float32),
            "objects": spaces.Box(obj_lo.astype(np.float32), obj_hi.astype(np.float32), dtype=np.float32),
        }
        if self.pixels:
            obs["pixels"] = pixels
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
        scene = self.runner.load(scene_seed)
        if list(scene.layout.tracked) != self.object_names:
            raise RuntimeError(
                f"task {self.task_name!r} laid out tracked objects {scene.layout.tracked} for seed {scene_seed}, "
                f"the observation space expects {self.object_names}"
            )
        self.runner.start(HOME_ACTION, self.phase)
        self.labeler = OnlineLabeler(self.task, scene.layout, self.detect_ratio)
        self.progress_tracker = OnlineProgress(self.task, scene.layout)
        self.elapsed_steps = 0
        self._episode += 1
        obs = self._observation()
        info = {
            "scene_seed": scene_seed,
            "instruction": scene.layout.instruction,
            "frame": 0,
            "checked_at": -1,
            "success": False,
            "is_success": False,
            "progress": self.progress_tracker.update(self.trace),
            "events": [],
        }
        return obs, info

    def step(self, action):
        if self.core is None or self.trace is None:
            raise gymnasium.error.ResetNeeded("call reset() before step()")
        action = np.asarray(action, dtype=np.float64).reshape(self.action_space.shape)
        if not np.all(np.isfinite(action)):
            raise ValueError(f"action must be finite, got {action}")
        action = np.clip(action, self._action_low, self._action_high)
        self.runner.step(action, self.phase)
        self.elapsed_steps += 1
        trace = self.trace
        progress = self.progress_tracker.update(trace)
        truncated = self.elapsed_steps >= self.max_episode_steps
        verdict = self.labeler.final(trace) if truncated else self.labeler.update(trace)
        terminated = bool(verdict.success)
        frame = len(trace) - 1
        if self.reward_mode == "dense":
            reward = online_dense_reward(progress, verdict.events, frame)
        else:
            reward = progress
        info = {
            "scene_seed": self.scene_seed,
            "frame": frame,
            "checked_at": verdict.checked_at,
            "success": terminated,
            "is_success": terminated,
            "progress": progress,
            "events": list(verdict.events),
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
        return self.observer.frames(self.core, self._frame_key())["left"].copy()

    def close(self) -> None:
        self.observer.close()

    # ------------------------------------------------------------------ helpers
    def _frame_key(self) -> tuple[int, int]:
        return (self._episode, len(self.trace) - 1)

    def _observation(self) -> dict[str, Any]:
        return self.observer.observe(self.core, self._frame_key())


def make_env(task: str = "pick_place", **kwargs) -> SimfailEnv:
    """A bare :class:`SimfailEnv` (no Gymnasium wrappers): ``make_env("pick_place", width=64)``."""
    return SimfailEnv(task=task, **kwargs)


register_envs()
