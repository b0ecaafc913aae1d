"""simfail: synthetic robot failure data for stress-testing embodied reward models.

Importing simfail selects MuJoCo's EGL backend (``MUJOCO_GL=egl``) unless the user chose one:
EGL renders headless on Mesa llvmpipe (CPU) or on the GPU driver where there is one.

Importing simfail also registers every task's Gymnasium id (``simfail/PickPlace-v0`` ...) with
an entry-point string, so nothing heavy (MuJoCo, the scenes) is imported until
``gymnasium.make``::

    import gymnasium as gym
    import simfail

    gym.register_envs(simfail)
    env = gym.make("simfail/PickPlace-v0", width=64, height=64)
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"] if os.environ["MUJOCO_GL"] in ("egl", "osmesa") else "")

__version__ = "0.1.0"

from simfail.task_registry import register_envs as _register_envs  # noqa: E402

_register_envs()
