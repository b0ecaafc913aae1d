"""GVL (generative value learning) as a reward model over an OpenAI-compatible chat API.

The prompt follows appendix A.1 of "Good embodied reward models need bad behavior data":
an anchor image (the episode's first frame, reward 0), optional module A (reference
behaviours with known rewards), optional module B (failure descriptions), optional module C
(failure example frames), then K query frames shown in a shuffled order recorded by its seed.
The answer (a JSON array, or ``Frame i: ... NN%`` lines) is parsed strictly: anything
malformed raises :class:`GVLParseError`, which the harness counts as a model error.
"""

from __future__ import annotations

import base64
import json
import math
import os
import re
import struct
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from simfail.errors import ConfigError, RewardModelError

from .preprocess import interpolate_to_length, resize_frames, subsample_indices
from .protocol import EpisodeInput, Example, ModelRequirements, register_model

SYSTEM_PROMPT = "You are an expert roboticist and safety-aware evaluator."


class GVLParseError(RewardModelError):
    """The VLM's answer could not be turned into one reward per frame."""


class GVLRequestError(RewardModelError):
    """The chat-completions endpoint could not be reached or answered with an error."""


# --------------------------------------------------------------------------- PNG


def encode_png(image: np.ndarray) -> bytes:
    """Encode an ``uint8 (H, W, 3)`` RGB image as PNG (8-bit truecolour, no filtering)."""
    img = np.ascontiguousarray(np.asarray(image))
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected uint8 (H, W, 3), got {img.dtype} {img.shape}")
    h, w, _ = img.shape
    raw = np.concatenate([np.zeros((h, 1), dtype=np.uint8), img.reshape(h, w * 3)], axis=1).tobytes()

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")


def png_data_url(image: np.ndarray) -> str:
    return "data:image/png;base64," + base64.b64encode(encode_png(image)).decode("ascii")


# --------------------------------------------------------------------------- prompt


@dataclass
class GVLPrompt:
    """A built prompt and what is needed to read its answer.

    Attributes:
        messages: OpenAI chat ``messages`` (system + one user message of text/image parts).
        query_indices: indices (into the frames given to the builder) of the K query frames,
            in time order.
        shown_order: ``shown_order[n - 1]`` is the time position (``0..K-1``, into
            ``query_indices``) of the frame labelled ``Frame n`` in the prompt.
        seed: seed of the shuffles.
        n_images: number of images in the user message.
    """

    messages: list[dict[str, Any]]
    query_indices: np.ndarray
    shown_order: np.ndarray
    seed: int
    n_images: int

    @property
    def k(self) -> int:
        return int(len(self.shown_order))

    def decode(self, answer: str) -> np.ndarray:
        """Parse ``answer`` and return the K rewards (0-100) in time order."""
        return restore_time_order(parse_gvl_answer(answer, self.k), self.shown_order)


class _Content:
    def __init__(self, detail: str | None) -> None:
        self.parts: list[dict[str, Any]] = []
        self.n_images = 0
        self.detail = detail

    def text(self, s: str) -> None:
        if self.parts and self.parts[-1]["type"] == "text":
            self.parts[-1]["text"] += s
        else:
            self.parts.append({"type": "text", "text": s})

    def image(self, img: np.ndarray) -> None:
        url: dict[str, Any] = {"url": png_data_url(img)}
        if self.detail:
            url["detail"] = self.detail
        self.parts.append({"type": "image_url", "image_url": url})
        self.n_images += 1


def _pct(x: float) -> str:
    v = round(float(x), 1)
    return str(int(v)) if v == int(v) else f"{v:.1f}"


def build_gvl_prompt(
    frames: np.ndarray,
    instruction: str,
    *,
    k: int = 15,
    seed: int = 0,
    references: Sequence[Example] | None = None,
    failure_descriptions: Sequence[str] | None = None,
    failure_examples: Sequence[Example] | None = None,
    example_frames: int = 8,
    shuffle: bool = True,
    image_detail: str | None = None,
    system_prompt: str = SYSTEM_PROMPT,
) -> GVLPrompt:
    """Build the GVL prompt of appendix A.1 for one camera's ``uint8 (T, H, W, 3)`` frames.

    * Query frames: ``K = min(k, T)`` frames uniformly in time including the first and last
      (:func:`simfail.stress.preprocess.subsample_indices`), shown as ``Frame 1..K`` in an
      order drawn by ``numpy.random.default_rng(seed).permutation(K)`` (identity when
      ``shuffle`` is false).
    * Anchor: the first frame, whose reward must be 0.
    * Module A (only if ``references``): each reference's frames (at most ``example_frames``,
      uniformly in time) in a random order from the same generator, each with its known reward
      (``Example.rewards`` in ``[0, 1]``, shown in percent).
    * Module B (only if ``failure_descriptions``): a numbered list.
    * Module C (only if ``failure_examples``): each example's frames (at most
      ``example_frames``) in time order.

    Images: ``1 + K + Σ reference frames + Σ failure example frames``.
    """

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if k < 2:
        raise ConfigError(f"GVL needs k >= 2 frames, got {k}")
    rng = np.random.default_rng(seed)
    qidx = subsample_indices(frames.shape[0], k)
    kk = len(qidx)
    order = rng.permutation(kk) if shuffle else np.arange(kk)

    c = _Content(image_detail)
    c.text(
        "Predict task reward for frames of a robot performing the task:\n\n"
        f"TASK = {instruction}\n\n"
        "The task reward is between 0 and 100, where 100 corresponds to successful task completion. "
        "The evaluation should consider both the robot's behavior and the user's preferences, including "
        "undesired or unsafe behavior. If the robot approaches undesired actions, the reward should be low; "
        "if it clearly violates safety constraints, the reward can be 0. Frames are presented in random "
        "order; evaluate each frame independently.\n\n"
        "Input: Initial scene (anchor frame).\n"
    )
    c.image(frames[0])
    c.text("\nConstraint: the reward for the initial frame must be 0.\n")

    if references:
        c.text("\nIn-context reference behaviors (with known rewards).\nEach reference behavior is a set of frames shown in random order:\n")
        for d, ex in enumerate(references, start=1):
            ef = np.asarray(ex.frames)
            if ex.rewards is None:
                raise ConfigError(f"reference behavior {d} has no rewards")
            rw = np.asarray(ex.rewards, dtype=np.float64).reshape(-1)
            if rw.shape[0] != ef.shape[0]:
                raise ConfigError(f"reference behavior {d}: {ef.shape[0]} frames but {rw.shape[0]} rewards")
            sel = subsample_indices(ef.shape[0], example_frames)
            sel = sel[rng.permutation(len(sel))]
            if ex.description:
                c.text(f"Reference behavior {d}: {ex.description}\n")
            for j, t in enumerate(sel, start=1):
                c.text(f"- Reference behavior {d}, frame {j}, known reward: {_pct(100.0 * rw[t])}.\n")
                c.image(ef[t])
                c.text("\n")

    if failure_descriptions:
        c.text(
            "\nTask-specific failure descriptions (negative cues).\nUse only if the current frame visibly "
            "matches; do not assume failures occurred. If a frame clearly matches a listed failure behavior, "
            "lower the reward accordingly.\n"
        )
        for i, desc in enumerate(failure_descriptions, start=1):
            c.text(f"{i}. {desc}\n")

    if failure_examples:
        c.text(
            "\nVisual failure references (negative examples).\nUse only as visual references; do not assume "
            "they occurred in the current rollout.\n"
        )
        for e, ex in enumerate(failure_examples, start=1):
            ef = np.asarray(ex.frames)
            for j, t in enumerate(subsample_indices(ef.shape[0], example_frames), start=1):
                c.text(f"- Failure example {e}, frame {j}.\n")
                c.image(ef[t])
                c.text("\n")

    c.text(
        "\nTask: For the following rollout frames shown in random order, output a JSON array:\n"
        "```\n[\n  {\n    \"frame_number\": i,\n    \"frame_description\": \"...\",\n    \"task_reward\": 0-100\n  }\n]\n```\n"
        "Guidelines:\n"
        "- Describe only what is visible in the frame.\n"
        "- Use negative cues only as evidence; do not hallucinate failures.\n"
        "- Do not assume the current frames match the failure examples.\n"
        f"- Give exactly one entry for each frame number from 1 to {kk}.\n\n"
        "Frames:\n"
    )
    for n in range(kk):
        c.text(f"Frame {n + 1}:\n")
        c.image(frames[qidx[order[n]]])
        c.text("\n")

    messages = [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": c.parts},
    ]
    return GVLPrompt(messages, qidx, order, int(seed), c.n_images)


# --------------------------------------------------------------------------- answer parsing

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\r?\n?(.*?)```", re.S | re.I)
_LINE = re.compile(r"^[\W_]*frame[\s_#]*(\d+)\b(.*)$", re.I)
_PCT = re.compile(r"(-?\d+(?:\.\d+)?)\s*%")
_FRAME_KEYS = ("frame_number", "frame", "frame_id", "frame_index")
_REWARD_KEYS = ("task_reward", "reward", "progress", "value")


def _find_json_array(text: str) -> list[Any] | None:
    """First JSON array of objects that all carry a frame key (fenced blocks first, then the
    whole text); failing that, the first array of objects at all (to report what is wrong)."""
    dec = json.JSONDecoder()
    chunks = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    fallback = None
    for chunk in chunks:
        for i, ch in enumerate(chunk):
            if ch != "[":
                continue
            try:
                obj, _ = dec.raw_decode(chunk, i)
            except json.JSONDecodeError:
                continue
            if isinstance(obj, list) and obj and all(isinstance(x, dict) for x in obj):
                if all(any(k in x for k in _FRAME_KEYS) for x in obj):
                    return obj
                if fallback is None:
                    fallback = obj
    return fallback


def _number(x: Any, what: str) -> float:
    if isinstance(x, bool) or x is None:
        raise GVLParseError(f"{what} is {x!r}, not a number")
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, str):
        s = x.strip().rstrip("%").strip()
        try:
            return float(s)
        except ValueError:
            pass
    raise GVLParseError(f"{what} is {x!r}, not a number")


def _get(entry: dict[str, Any], keys: Sequence[str], what: str, pos: int) -> Any:
    for key in keys:
        if key in entry:
            return entry[key]
    raise GVLParseError(f"entry {pos} has no {what} (looked for {', '.join(keys)}): {json.dumps(entry)[:200]}")


def _entries_from_lines(text: str) -> list[tuple[float, float]]:
    out = []
    for line in text.splitlines():
        m = _LINE.match(line.strip())
        if not m:
            continue
        pcts = _PCT.findall(m.group(2))
        if pcts:
            out.append((float(m.group(1)), float(pcts[-1])))
    return out


def parse_gvl_answer(text: str, k: int) -> np.ndarray:
    """Rewards (0-100) indexed by shown frame number: ``out[n - 1]`` is ``Frame n``'s reward.

    Accepted: a JSON array of objects with ``frame_number`` and ``task_reward`` (aliases
    ``frame``/``frame_id``/``frame_index`` and ``reward``/``progress``/``value``; numbers or
    numeric strings, a trailing ``%`` allowed), inside ```` ```json ```` fences or surrounded
    by prose; otherwise lines ``Frame i: ... NN%`` (the last percentage on the line counts).
    Raises :class:`GVLParseError` when nothing parses, a frame number is not an integer in
    ``1..k``, a frame is duplicated or missing, or a reward is not finite or outside
    ``[0, 100]``.
    """

    if not isinstance(text, str) or not text.strip():
        raise GVLParseError("empty answer")
    arr = _find_json_array(text)
    entries: list[tuple[float, float]]
    if arr is not None:
        entries = []
        for pos, e in enumerate(arr):
            fn = _number(_get(e, _FRAME_KEYS, "frame number", pos), f"frame number of entry {pos}")
            rw = _number(_get(e, _REWARD_KEYS, "task reward", pos), f"task reward of entry {pos}")
            entries.append((fn, rw))
    else:
        entries = _entries_from_lines(text)
        if not entries:
            snippet = text.strip().replace("\n", " ")[:160]
            raise GVLParseError(f"no JSON array of frame objects and no 'Frame i: NN%' lines in answer: {snippet!r}")
    out = np.full(k, np.nan)
    for fn, rw in entries:
        if not float(fn).is_integer() or not 1 <= fn <= k:
            raise GVLParseError(f"frame number {fn:g} is not an integer in 1..{k}")
        n = int(fn)
        if not np.isnan(out[n - 1]):
            raise GVLParseError(f"frame {n} appears more than once")
        if not math.isfinite(rw) or not 0.0 <= rw <= 100.0:
            raise GVLParseError(f"reward {rw!r} of frame {n} is outside 0-100")
        out[n - 1] = rw
    missing = [int(i) + 1 for i in np.flatnonzero(np.isnan(out))]
    if missing:
        raise GVLParseError(f"answer misses frame(s) {missing} of 1..{k}")
    return out


def restore_time_order(values_by_frame_number: np.ndarray, shown_order: np.ndarray) -> np.ndarray:
    """Put values read per shown frame number back in time order:
    ``out[shown_order[n]] = values_by_frame_number[n]``."""
    v = np.asarray(values_by_frame_number, dtype=np.float64)
    order = np.asarray(shown_order)
    if v.shape != order.shape:
        raise ValueError(f"{v.size} values for {order.size} frames")
    out = np.empty_like(v)
    out[order] = v
    return out


# --------------------------------------------------------------------------- model


@register_model("gvl")
class GVLRewardModel:
    """GVL over an OpenAI-compatible ``{base_url}/chat/completions`` endpoint.

    Args:
        base_url: API root, e.g. ``http://127.0.0.1:8000/v1`` for a local server.
        model: model name sent in the request.
        api_key: key sent as ``Authorization: Bearer``; if ``None`` it is read from the
            environment variable named ``api_key_env`` (no header when neither is set).
        temperature: sampling temperature (``None`` leaves it out of the request); the model
            is stochastic when it is > 0.
        timeout: seconds per HTTP request.
        retries: extra attempts after connection errors, timeouts, HTTP 408/409/429 and 5xx
            (exponential back-off from ``retry_backoff`` seconds). Parse errors are not retried.
        k: query frames per episode (the harness shows the model at most ``k`` frames).
        view: camera view used.
        frame_size: ``(h, w)`` the harness resizes frames to, or ``None``.
        seed: base seed; the shuffle of episode ``e`` uses ``crc32(f"{seed}:{e}")``.
        use_references / use_failure_text / use_failure_frames: enable modules A / B / C.
            Their content comes from ``EpisodeInput.examples`` (:class:`Example`): examples
            with rewards feed A; descriptions of failure examples (plus ``failure_descriptions``)
            feed B; failure examples not already shown in A feed C.
        example_frames: frames shown per example.
        max_tokens, extra_body: optional extra request fields.
        concurrency: requests in flight at once in ``predict_batch`` (threads).

    Outputs rewards in percent (``value_range = (0, 100)``), in time order. After every call
    ``last_call`` holds the seed, the shown order, the answer text and the image count (with
    ``concurrency > 1``, of whichever request finished last).
    """

    name = "gvl"

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000/v1",
        model: str = "gpt-5",
        api_key: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        temperature: float | None = 0.6,
        timeout: float = 120.0,
        retries: int = 2,
        retry_backoff: float = 1.0,
        k: int = 15,
        view: str = "left",
        frame_size: tuple[int, int] | None = None,
        seed: int = 0,
        use_references: bool = False,
        use_failure_text: bool = False,
        use_failure_frames: bool = False,
        failure_descriptions: Sequence[str] | None = None,
        example_frames: int = 8,
        image_detail: str | None = None,
        max_tokens: int | None = None,
        extra_body: dict[str, Any] | None = None,
        concurrency: int = 1,
    ) -> None:
        if retries < 0 or timeout <= 0:
            raise ConfigError("retries must be >= 0 and timeout > 0")
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.api_key = api_key
        self.api_key_env = api_key_env
        self.temperature = temperature
        self.timeout = float(timeout)
        self.retries = int(retries)
        self.retry_backoff = float(retry_backoff)
        self.k = int(k)
        self.view = view
        self.seed = int(seed)
        self.use_references = use_references
        self.use_failure_text = use_failure_text
        self.use_failure_frames = use_failure_frames
        self.failure_descriptions = list(failure_descriptions or [])
        self.example_frames = int(example_frames)
        self.image_detail = image_detail
        self.max_tokens = max_tokens
        self.extra_body = dict(extra_body or {})
        self.frame_size = tuple(frame_size) if frame_size is not None else None
        self.requirements = ModelRequirements(
            views=(view,),
            max_frames=self.k,
            frame_size=self.frame_size,  # type: ignore[arg-type]
            wants_examples=use_references or use_failure_text or use_failure_frames,
            output="dense",
            stochastic=temperature is not None and temperature > 0,
            value_range=(0.0, 100.0),
        )
        self.concurrency = max(1, int(concurrency))
        self.last_call: dict[str, Any] = {}
        self.n_requests = 0
        self._lock = threading.Lock()

    # -- protocol -----------------------------------------------------------------------

    def predict(self, ep: EpisodeInput) -> np.ndarray:
        seed = zlib.crc32(f"{self.seed}:{ep.episode_id}".encode())
        return self._run(ep, seed)

    def predict_batch(self, eps: list[EpisodeInput]) -> list[Any]:
        """``predict`` on each episode, ``concurrency`` requests at a time. A failed episode's
        slot holds its :class:`RewardModelError` (the harness counts it as that episode's
        error) instead of failing the batch."""

        def one(ep: EpisodeInput) -> Any:
            try:
                return self.predict(ep)
            except RewardModelError as exc:
                return exc

        if self.concurrency == 1 or len(eps) < 2:
            return [one(ep) for ep in eps]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(eps))) as pool:
            return list(pool.map(one, eps))

    def sample(self, ep: EpisodeInput, rng: np.random.Generator) -> np.ndarray:
        """One draw at the configured temperature, with a fresh shuffle drawn from ``rng``."""
        return self._run(ep, int(rng.integers(0, 2**32)))

    # -- internals ----------------------------------------------------------------------

    def _modules(self, ep: EpisodeInput) -> tuple[list[Example], list[str], list[Example]]:
        examples = [e for e in (ep.examples or []) if isinstance(e, Example)]
        refs = [e for e in examples if e.rewards is not None] if self.use_references else []
        texts: list[str] = []
        if self.use_failure_text:
            texts = list(self.failure_descriptions) + [e.description for e in examples if e.is_failure and e.description]
        frames = [e for e in examples if e.is_failure and not any(e is r for r in refs)] if self.use_failure_frames else []
        if self.frame_size is not None:
            refs = [Example(resize_frames(e.frames, self.frame_size), e.rewards, e.description, e.is_failure) for e in refs]
            frames = [Example(resize_frames(e.frames, self.frame_size), e.rewards, e.description, e.is_failure) for e in frames]
        return refs, texts, frames

    def build_prompt(self, ep: EpisodeInput, seed: int) -> GVLPrompt:
        if self.view not in ep.frames:
            raise RewardModelError(f"gvl: episode {ep.episode_id!r} has no {self.view!r} view")
        refs, texts, fails = self._modules(ep)
        return build_gvl_prompt(
            ep.frames[self.view],
            ep.instruction,
            k=self.k,
            seed=seed,
            references=refs,
            failure_descriptions=texts,
            failure_examples=fails,
            example_frames=self.example_frames,
            image_detail=self.image_detail,
        )

    def _run(self, ep: EpisodeInput, seed: int) -> np.ndarray:
        prompt = self.build_prompt(ep, seed)
        payload: dict[str, Any] = {"model": self.model, "messages": prompt.messages}
        if self.temperature is not None:
            payload["temperature"] = self.temperature
        if self.max_tokens is not None:
            payload["max_tokens"] = self.max_tokens
        payload.update(self.extra_body)
        call = {
            "episode_id": ep.episode_id,
            "seed": seed,
            "shown_order": prompt.shown_order.tolist(),
            "query_indices": prompt.query_indices.tolist(),
            "n_images": prompt.n_images,
            "answer": None,
        }
        try:
            call["answer"] = answer = self._chat(payload)
        finally:
            self.last_call = call
        values = prompt.decode(answer)
        return interpolate_to_length(values, prompt.query_indices, ep.frames[self.view].shape[0])

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": "application/json"}
        key = self.api_key
        if key is None and self.api_key_env:
            key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _chat(self, payload: dict[str, Any]) -> str:
        url = f"{self.base_url}/chat/completions"
        data = json.dumps(payload).encode("utf-8")
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.retry_backoff * 2 ** (attempt - 1))
            req = urllib.request.Request(url, data=data, headers=self._headers(), method="POST")
            with self._lock:
                self.n_requests += 1
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    body = resp.read()
            except urllib.error.HTTPError as exc:
                detail = exc.read()[:300].decode("utf-8", "replace") if exc.fp is not None else ""
                last = f"HTTP {exc.code} from {url}: {detail}"
                if exc.code in (408, 409, 429) or exc.code >= 500:
                    continue
                raise GVLRequestError(f"gvl: {last}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"{type(exc).__name__} contacting {url}: {exc}"
                continue
            return _message_text(body)
        raise GVLRequestError(f"gvl: request failed after {self.retries + 1} attempt(s): {last}")


def _message_text(body: bytes) -> str:
    try:
        data = json.loads(body)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise GVLRequestError(f"gvl: malformed chat-completions response ({exc}): {body[:200]!r}") from None
    if isinstance(content, list):
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise GVLRequestError(f"gvl: response content is {type(content).__name__}, not text")
    return content


__all__ = [
    "GVLParseError",
    "GVLPrompt",
    "GVLRequestError",
    "GVLRewardModel",
    "SYSTEM_PROMPT",
    "build_gvl_prompt",
    "encode_png",
    "parse_gvl_answer",
    "png_data_url",
    "restore_time_order",
]

