"""simfail: synthetic robot failure data for stress-testing embodied reward models.

Importing simfail selects MuJoCo's EGL backend (``MUJOCO_GL=egl``) unless the user chose one:
EGL renders headless on Mesa llvmpipe (CPU) or on the GPU driver where there is one.
"""

import os

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"] if os.environ["MUJOCO_GL"] in ("egl", "osmesa") else "")

__version__ = "0.1.0"
