"""GVL prompt, answer parsing and a round trip against a local chat-completions server."""

from __future__ import annotations

import base64
import io
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import imageio.v3 as iio
import numpy as np
import pytest

from simfail.stress import EpisodeInput, Example, predict_episode, run_model
from simfail.stress.gvl import (
    GVLParseError,
    GVLRequestError,
    GVLRewardModel,
    build_gvl_prompt,
    encode_png,
    parse_gvl_answer,
    restore_time_order,
)

MARK_A = "In-context reference behaviors"
MARK_B = "Task-specific failure descriptions"
MARK_C = "Visual failure references"


def coded_frames(t: int, h: int = 6, w: int = 5) -> np.ndarray:
    """Frames whose pixel value is 3 * frame index (so the server can read the time)."""
    return np.tile((np.arange(t) * 3).astype(np.uint8)[:, None, None, None], (1, h, w, 3))


def parts(prompt):
    return prompt.messages[1]["content"]


def n_image_parts(prompt) -> int:
    return sum(p["type"] == "image_url" for p in parts(prompt))


def all_text(prompt) -> str:
    return "".join(p["text"] for p in parts(prompt) if p["type"] == "text")


def decode_data_url(url: str) -> np.ndarray:
    assert url.startswith("data:image/png;base64,")
    return iio.imread(io.BytesIO(base64.b64decode(url.split(",", 1)[1])), extension=".png")


# --------------------------------------------------------------------------- PNG and prompt


def test_png_round_trip():
    img = np.random.default_rng(0).integers(0, 256, (7, 9, 3), dtype=np.uint8)
    back = iio.imread(io.BytesIO(encode_png(img)), extension=".png")
    assert np.array_equal(back, img)


def test_prompt_without_modules():
    p = build_gvl_prompt(coded_frames(40), "stack the blocks", k=15, seed=3)
    assert p.k == 15 and p.n_images == 16 and n_image_parts(p) == 16  # K + anchor
    assert p.messages[0]["role"] == "system" and p.messages[1]["role"] == "user"
    text = all_text(p)
    assert "TASK = stack the blocks" in text and "must be 0" in text
    for mark in (MARK_A, MARK_B, MARK_C):
        assert mark not in text
    assert re.findall(r"Frame (\d+):", text) == [str(i) for i in range(1, 16)]
    # the anchor is the first frame
    assert np.all(decode_data_url(parts(p)[1]["image_url"]["url"]) == 0)


def test_prompt_modules_only_when_enabled():
    refs = [Example(coded_frames(5), rewards=np.linspace(0, 1, 5)), Example(coded_frames(12), rewards=np.linspace(0, 0.5, 12))]
    fails = [Example(coded_frames(3), description="drops the cube", is_failure=True)]
    p = build_gvl_prompt(
        coded_frames(20), "t", k=10, seed=1, references=refs, failure_descriptions=["drops the cube"], failure_examples=fails,
        example_frames=8,
    )
    text = all_text(p)
    assert MARK_A in text and MARK_B in text and MARK_C in text
    assert "1. drops the cube" in text
    assert "known reward: 100." in text and "known reward: 50." in text
    assert p.n_images == n_image_parts(p) == 1 + 10 + (5 + 8) + 3
    only_b = build_gvl_prompt(coded_frames(20), "t", k=10, failure_descriptions=["spills"])
    assert MARK_B in all_text(only_b) and MARK_A not in all_text(only_b) and MARK_C not in all_text(only_b)
    assert only_b.n_images == 11
    only_c = build_gvl_prompt(coded_frames(20), "t", k=10, failure_examples=fails)
    assert MARK_C in all_text(only_c) and MARK_B not in all_text(only_c) and only_c.n_images == 14


def test_shuffle_is_seeded_and_restored_by_parser():
    p = build_gvl_prompt(coded_frames(40), "t", k=15, seed=5)
    assert p.seed == 5 and not np.array_equal(p.shown_order, np.arange(15))
    assert np.array_equal(p.shown_order, build_gvl_prompt(coded_frames(40), "t", k=15, seed=5).shown_order)
    # each shown frame's image is the query frame at its recorded time position
    imgs = [q for q in parts(p) if q["type"] == "image_url"][1:]
    for n, q in enumerate(imgs):
        assert decode_data_url(q["image_url"]["url"])[0, 0, 0] == 3 * p.query_indices[p.shown_order[n]]
    # answer in shown order (and listed in a scrambled order): reward = 5 * time position
    answer = [{"frame_number": n + 1, "frame_description": "x", "task_reward": 5 * int(p.shown_order[n])} for n in range(15)]
    answer = [answer[i] for i in np.random.default_rng(0).permutation(15)]
    values = p.decode("Sure.\n```json\n" + json.dumps(answer) + "\n```\nDone.")
    assert np.array_equal(values, 5.0 * np.arange(15))
    assert np.array_equal(restore_time_order(np.array([10.0, 20.0, 30.0]), np.array([2, 0, 1])), [20.0, 30.0, 10.0])


# --------------------------------------------------------------------------- parsing


def test_parser_tolerates_prose_fences_and_lines():
    arr = json.dumps([{"frame_number": 2, "task_reward": "40%"}, {"frame_number": 1, "task_reward": 10}])
    assert list(parse_gvl_answer(f"Here you go: {arr} hope it helps", 2)) == [10.0, 40.0]
    assert list(parse_gvl_answer(f"```JSON\n{arr}\n```", 2)) == [10.0, 40.0]
    assert list(parse_gvl_answer("[note] then\n```\n" + arr + "\n```", 2)) == [10.0, 40.0]
    notes = json.dumps([{"observation": "gripper open"}])
    assert list(parse_gvl_answer(f"Notes: {notes}\nAnswer: {arr}", 2)) == [10.0, 40.0]
    lines = "Analysis:\nFrame 1: gripper open, 5%\n**Frame 2**: cube lifted (50% done) so 62.5%\nFrame 3 - done: 100 %"
    assert list(parse_gvl_answer(lines, 3)) == [5.0, 62.5, 100.0]


@pytest.mark.parametrize(
    "answer, match",
    [
        ("I cannot evaluate these frames.", "no JSON array"),
        ("", "empty"),
        ('[{"frame_number": 1, "task_reward": 10}]', r"misses frame\(s\) \[2\]"),
        ('[{"frame_number": 1, "task_reward": 10}, {"frame_number": 1, "task_reward": 20}]', "more than once"),
        ('[{"frame_number": 1, "task_reward": 10}, {"frame_number": 2, "task_reward": 120}]', "outside 0-100"),
        ('[{"frame_number": 1, "task_reward": -5}, {"frame_number": 2, "task_reward": 20}]', "outside 0-100"),
        ('[{"frame_number": 0, "task_reward": 10}, {"frame_number": 2, "task_reward": 20}]', "not an integer in 1..2"),
        ('[{"frame_number": 3, "task_reward": 10}, {"frame_number": 2, "task_reward": 20}]', "not an integer in 1..2"),
        ('[{"frame_number": 1.5, "task_reward": 10}, {"frame_number": 2, "task_reward": 20}]', "not an integer"),
        ('[{"frame_number": 1, "description": "x"}, {"frame_number": 2, "task_reward": 20}]', "no task reward"),
        ('[{"frame_number": 1, "task_reward": "high"}, {"frame_number": 2, "task_reward": 20}]', "not a number"),
        ('[{"frame_number": 1, "task_reward": true}, {"frame_number": 2, "task_reward": 20}]', "not a number"),
        ("Frame 1: 10%\nFrame 2: 150%", "outside 0-100"),
    ],
)
def test_malformed_answers_raise(answer, match):
    with pytest.raises(GVLParseError, match=match):
        parse_gvl_answer(answer, 2)


# --------------------------------------------------------------------------- local server


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_POST(self):  # noqa: N802
        srv = self.server
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if srv.fail_first > 0:
            srv.fail_first -= 1
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"busy")
            return
        if srv.mode == "garbage":
            content = "I am not sure what these frames show."
        else:
            # reward of "Frame n" = pixel value of the image that follows it (3 * frame index)
            answer, pending = [], None
            for part in body["messages"][1]["content"]:
                if part["type"] == "text":
                    m = re.search(r"Frame (\d+):\s*$", part["text"])
                    pending = int(m.group(1)) if m else None
                elif pending is not None:
                    img = decode_data_url(part["image_url"]["url"])
                    answer.append({"frame_number": pending, "frame_description": "...", "task_reward": int(img[0, 0, 0])})
                    pending = None
            content = "Let me look.\n```json\n" + json.dumps(answer[::-1]) + "\n```"
        out = json.dumps({"choices": [{"index": 0, "message": {"role": "assistant", "content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture
def server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.requests, srv.mode, srv.fail_first = [], "ok", 0
    th = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    th.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    th.join(5)


def _model(srv, **kw) -> GVLRewardModel:
    base = f"http://127.0.0.1:{srv.server_address[1]}/v1"
    return GVLRewardModel(base_url=base, model="test-vlm", k=15, timeout=5, retry_backoff=0.0, **kw)


def _ep(eid: str, t: int = 30) -> EpisodeInput:
    return EpisodeInput(frames={"left": coded_frames(t)}, fps=10.0, instruction="pick up the cube", episode_id=eid)


def test_end_to_end_through_harness(server, monkeypatch):
    monkeypatch.setenv("SIMFAIL_TEST_KEY", "sk-local")
    model = _model(server, api_key_env="SIMFAIL_TEST_KEY", temperature=0.6)
    items = [(_ep("a"), {"context": 0, "task": "pick_place", "score": 100.0, "variant": "expert"}),
             (_ep("b", 21), {"context": 0, "task": "pick_place", "score": 20.0, "variant": "drop"})]
    run = run_model(model, items)
    assert [o.error for o in run.outcomes] == [None, None]
    a = run.outcomes[0]
    assert a.n_model_frames == 15 and a.dense.shape == (30,)
    assert np.allclose(a.dense, 3.0 * np.arange(30))  # time order restored, interpolated back
    assert np.allclose(run.outcomes[1].dense, 3.0 * np.arange(21))
    req = server.requests[0]
    assert req["path"] == "/v1/chat/completions"
    assert req["auth"] == "Bearer sk-local"
    assert req["body"]["model"] == "test-vlm" and req["body"]["temperature"] == 0.6
    assert sum(p["type"] == "image_url" for p in req["body"]["messages"][1]["content"]) == 16
    assert model.last_call["episode_id"] == "b" and model.last_call["n_images"] == 16


def test_examples_reach_the_prompt(server):
    model = _model(server, api_key="explicit", use_references=True, use_failure_frames=True, example_frames=4)
    ep = _ep("x")
    ep.examples = [Example(coded_frames(6), rewards=np.linspace(0, 1, 6)), Example(coded_frames(5), is_failure=True)]
    trace, _ = predict_episode(model, ep)
    assert np.allclose(trace, 3.0 * np.arange(30))
    req = server.requests[-1]
    assert req["auth"] == "Bearer explicit"
    assert sum(p["type"] == "image_url" for p in req["body"]["messages"][1]["content"]) == 16 + 4 + 4


def test_concurrent_batch(server):
    model = _model(server, concurrency=3)
    items = [(_ep(f"c{i}", 10 + i), {"context": 0, "task": "t", "score": float(i)}) for i in range(5)]
    run = run_model(model, items)
    assert len(server.requests) == 5
    for i, o in enumerate(run.outcomes):
        assert o.error is None and np.allclose(o.dense, 3.0 * np.arange(10 + i))


def test_retry_then_success_and_sample(server):
    server.fail_first = 1
    model = _model(server, retries=2)
    out = model.sample(_ep("s", 15), np.random.default_rng(0))
    assert np.allclose(out, 3.0 * np.arange(15))
    assert len(server.requests) == 2


def test_errors_are_counted_by_the_harness(server):
    server.mode = "garbage"
    model = _model(server)
    run = run_model(model, [(_ep("g"), {"context": 0, "task": "t", "score": 1.0})])
    o = run.outcomes[0]
    assert o.dense is None and np.isnan(o.value)
    assert o.error_type == "GVLParseError" and "no JSON array" in o.error
    assert len(run.errors) == 1


def test_unreachable_server_raises_request_error():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    port = srv.server_address[1]
    srv.server_close()  # nothing listens there any more
    model = GVLRewardModel(base_url=f"http://127.0.0.1:{port}/v1", retries=1, retry_backoff=0.0, timeout=2)
    with pytest.raises(GVLRequestError, match="2 attempt"):
        model.predict(_ep("u", 5))
