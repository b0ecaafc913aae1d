"""Run LeRobot-style policies in simfail's scenes (lerobot itself is not a dependency).

A LeRobot policy exposes ``select_action(batch) -> action`` on a batch dict with

- ``observation.images.<view>``: float32 ``(1, 3, H, W)`` in [0, 1] (torch tensor, batch dim 1);
- ``observation.state``: float32 ``(1, 9)``: seven arm joint angles [rad], two finger positions [m]
  (the ``observation.state`` column of a simfail dataset);
- ``task``: ``[instruction]``;

and returns ``(1, 8)`` or ``(8,)`` (the ``action`` column of a simfail dataset: seven joint
targets [rad], gripper close command in [0, 1]); ``reset()`` clears its action queue.
:class:`LeRobotAdapter` turns such an object into a simfail policy, so a policy trained with
LeRobot on a simfail dataset runs unchanged where lerobot is installed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from simfail.core.episode import VIEWS
from simfail.policy.base import EpisodeContext, PolicyError, PolicyNeeds
from simfail.policy.registry import register_policy, resolve_factory


class LeRobotAdapter:
    """Wraps an object with LeRobot's ``select_action(batch)`` as a simfail policy.

    Args:
        policy: The LeRobot-style policy (``select_action``; ``reset()`` and ``eval()`` used
            when present).
        views: Cameras fed as ``observation.images.<view>`` (simfail's ``left``, ``right``,
            ``wrist``).
        image_size: ``(height, width)`` of the images; ``None``: the run's render size.
        device: Torch device the batch is put on.
        name: Display name.
    """

    def __init__(self, policy: Any, views: tuple[str, ...] | list[str] = VIEWS,
                 image_size: tuple[int, int] | list[int] | None = None, device: str = "cpu",
                 name: str = "lerobot"):
        if not callable(getattr(policy, "select_action", None)):
            raise PolicyError(f"{type(policy).__name__} has no select_action(batch) method")
        unknown = [v for v in views if v not in VIEWS]
        if unknown:
            raise PolicyError(f"unknown view(s) {unknown}; views: {list(VIEWS)}")
        self.policy = policy
        self.device = device
        self.name = name
        size = None if image_size is None else (int(image_size[0]), int(image_size[1]))
        self.needs = PolicyNeeds(views=tuple(views), image_size=size)
        self._instruction = ""
        if callable(getattr(policy, "eval", None)):
            policy.eval()

    def reset(self, seed: int) -> None:
        import torch

        torch.manual_seed(int(seed))
        if callable(getattr(self.policy, "reset", None)):
            self.policy.reset()

    def start_episode(self, context: EpisodeContext) -> None:
        self._instruction = context.instruction

    def batch(self, observation: dict[str, Any]) -> dict[str, Any]:
        """The LeRobot batch of one observation (see the module docstring)."""
        import torch

        out: dict[str, Any] = {}
        for view in self.needs.views:
            img = np.asarray(observation["pixels"][view])
            t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1))).to(torch.float32) / 255.0
            out[f"observation.images.{view}"] = t.unsqueeze(0).to(self.device)
        state = torch.from_numpy(np.asarray(observation["state"], np.float32).copy())
        out["observation.state"] = state.unsqueeze(0).to(self.device)
        out["task"] = [self._instruction]
        return out

    def act(self, observation: dict[str, Any]) -> np.ndarray:
        import torch

        with torch.inference_mode():
            action = self.policy.select_action(self.batch(observation))
        if isinstance(action, torch.Tensor):
            action = action.detach().to("cpu", torch.float64).numpy()
        action = np.asarray(action, np.float64)
        return action[0] if action.ndim == 2 and action.shape[0] == 1 else action


@register_policy("lerobot")
def make_lerobot_policy(target: str | None = None, path: str | None = None, views: list[str] | None = None,
                        image_size: list[int] | None = None, device: str = "cpu", **kwargs: Any) -> LeRobotAdapter:
    """A LeRobot-style policy behind :class:`LeRobotAdapter`.

    ``target=package.module:factory`` builds the inner policy with ``kwargs`` (any object with
    ``select_action``); ``path=DIR`` loads a pretrained LeRobot policy with lerobot's own
    ``PreTrainedPolicy.from_pretrained`` of the policy type named in ``DIR/config.json``
    (needs lerobot installed; never downloads: ``DIR`` must be a local folder).
    """
    if (target is None) == (path is None):
        raise PolicyError("policy=lerobot needs exactly one of policy.target=module:factory or policy.path=DIR")
    if target is not None:
        inner = resolve_factory(target)(**kwargs)
    else:
        inner = _load_pretrained(path, device)
    return LeRobotAdapter(inner, views=tuple(views or VIEWS), image_size=image_size, device=device)


def _load_pretrained(path: str, device: str) -> Any:
    import json
    from pathlib import Path

    cfg_path = Path(path) / "config.json"
    if not cfg_path.is_file():
        raise PolicyError(f"policy.path={path}: no config.json there (a local LeRobot policy folder is needed)")
    try:
        from lerobot.policies.factory import get_policy_class  # lerobot >= 0.3
    except ImportError as exc:
        raise PolicyError(f"policy.path needs lerobot installed (pip install lerobot): {exc}") from None
    kind = json.loads(cfg_path.read_text()).get("type")
    policy = get_policy_class(kind).from_pretrained(str(path), local_files_only=True)
    return policy.to(device)
