"""Text prompts per scene, built from the task layout: robot, table and every object.

``scene_prompt(layout)`` gives e.g. ``"photo of a Franka Panda robot arm on a wooden table,
a orange cube, a cyan bowl, a green cylinder, the robot is about to place the orange cube into
the cyan bowl, realistic lighting, sharp focus"``. The template is overridable in
``configs/realism.yaml`` (``prompt_template``; ``prompt`` replaces the whole text).
"""

from __future__ import annotations

from typing import Any

from simfail.errors import ConfigError

__all__ = ["DEFAULT_TEMPLATE", "DEFAULT_NEGATIVE", "object_phrases", "scene_prompt"]

DEFAULT_TEMPLATE = (
    "photo of a Franka Panda robot arm on a wooden table, {objects}, the robot is about to {instruction}, "
    "realistic lighting, sharp focus, high detail"
)
DEFAULT_NEGATIVE = "cartoon, render, CGI, blurry, low quality, distorted, extra objects, text, watermark"

_NOUN_FIX = {"object": "block"}


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def object_phrases(layout: Any) -> list[str]:
    """``["a red cube", "a blue bowl", ...]`` for the objects of a layout (each object once)."""
    out = []
    for o in layout.objects:
        noun = _NOUN_FIX.get(getattr(o, "noun", "object"), getattr(o, "noun", "object"))
        colour = str(getattr(o, "color", "")).replace("_", " ").strip()
        words = f"{colour} {noun}".strip()
        out.append(f"{_article(words)} {words}")
    return out


def scene_prompt(layout: Any, template: str | None = None, override: str | None = None) -> str:
    """The prompt of one scene. ``template`` may use ``{objects}``, ``{instruction}`` and
    ``{task}``; ``override`` (when not empty) is returned as is.

    Raises:
        ConfigError: the template names an unknown field.
    """
    if override:
        return str(override)
    template = template or DEFAULT_TEMPLATE
    fields = {
        "objects": ", ".join(object_phrases(layout)),
        "instruction": str(getattr(layout, "instruction", "")).strip().rstrip("."),
        "task": str(getattr(layout, "task", "")).replace("_", " "),
    }
    try:
        return " ".join(template.format(**fields).split())
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"prompt_template {template!r} is not valid: {exc!r}; it may use {{objects}}, {{instruction}}, {{task}}"
        ) from exc
