"""Hand-made bad input: each case has an expected status, error code and message fragment (never 5xx).

Decisions documented here: whitespace-only text is legitimate text and is scored (200); unknown fields
are rejected (422), never ignored; a body over the cap is refused from its Content-Length before any
JSON parsing (413 even when the body is not JSON).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lnrnn.serve.engine.runtime import Runtime
from tests.helpers import TestClient, error

pytestmark = pytest.mark.timeout(120)  # never hang
JSON = {"content-type": "application/json"}
PLAIN = {"content-type": "text/plain"}

CASES = [
    # (name, path, raw body or JSON object, headers, status, code, message fragment)
    ("empty text", "/v1/score", {"text": ""}, JSON, 422, "invalid_request", "at least one character"),
    ("empty batch item", "/v1/score", {"texts": ["a", ""]}, JSON, 422, "invalid_request", "texts[1]"),
    ("invalid JSON", "/v1/score", b'{"text": "a",', JSON, 422, "invalid_request", "not valid JSON"),
    ("empty body", "/v1/score", b"", JSON, 422, "invalid_request", "Field required"),
    ("lone surrogate", "/v1/score", b'{"text": "a\\ud800"}', JSON, 422, "invalid_request", "surrogate"),
    ("lone surrogate predict", "/v1/predict", b'{"text": "\\udfff"}', JSON, 422, "invalid_request", "U+DFFF"),
    ("NaN temperature", "/v1/predict", b'{"temperature": NaN}', JSON, 422, "invalid_request", "temperature"),
    ("Infinity temperature", "/v1/generate", b'{"temperature": Infinity}', JSON, 422, None, "temperature"),
    ("negative temperature", "/v1/predict", {"temperature": -1}, JSON, 422, "invalid_request", "temperature"),
    ("zero temperature", "/v1/generate", {"temperature": 0}, JSON, 422, "invalid_request", "temperature"),
    ("top_k 0", "/v1/predict", {"top_k": 0}, JSON, 422, "invalid_request", "top_k"),
    ("top_k -1", "/v1/predict", {"top_k": -1}, JSON, 422, "invalid_request", "top_k"),
    ("top_k 1e9", "/v1/predict", {"top_k": 10**9}, JSON, 422, "invalid_request", "top_k"),
    ("generate top_k -1", "/v1/generate", {"top_k": -1}, JSON, 422, "invalid_request", "top_k"),
    ("generate top_k 1e9", "/v1/generate", {"top_k": 10**9}, JSON, 422, "invalid_request", "top_k"),
    ("max_chars 1e9", "/v1/generate", {"max_chars": 10**9}, JSON, 422, None, "LNRNN_MAX_GENERATE_CHARS"),
    ("max_chars 0", "/v1/generate", {"max_chars": 0}, JSON, 422, "invalid_request", "max_chars"),
    ("text/plain", "/v1/score", b'{"text": "a"}', PLAIN, 415, None, "application/json"),
    ("no content-type", "/v1/score", b'{"text": "a"}', {}, 415, "unsupported_media_type", "no content-type"),
    (
        "form body",
        "/v1/predict",
        b"text=a",
        {"content-type": "application/x-www-form-urlencoded"},
        415,
        "unsupported_media_type",
        "application/json",
    ),  # fmt: skip
    ("unknown field", "/v1/predict", {"text": "a", "model": "x"}, JSON, 422, None, "unknown field"),
    ("unknown path field", "/v1/score", {"text": "a", "path": "/etc/x"}, JSON, 422, None, "unknown field"),
    ("non-UTF-8 body", "/v1/score", b'{"text": "\xff\xfe"}', JSON, 400, "bad_request", "not valid UTF-8"),
    ("latin-1 body", "/v1/predict", '{"text": "café"}'.encode("latin-1"), JSON, 400, None, "UTF-8"),
    ("wrong type", "/v1/score", {"text": ["a"]}, JSON, 422, "invalid_request", "text"),
    ("both fields", "/v1/score", {"text": "a", "texts": ["b"]}, JSON, 422, None, "exactly one"),
    ("JSON array body", "/v1/score", [1, 2], JSON, 422, "invalid_request", "dictionary"),
    ("too many texts", "/v1/score", {"texts": ["a"] * 33}, JSON, 422, None, "LNRNN_MAX_BATCH"),
    # JSON types are not coerced: a boolean is not an integer, a string is not a number (schemathesis).
    ("boolean top_k", "/v1/generate", {"top_k": False}, JSON, 422, "invalid_request", "top_k"),
    ("boolean seed", "/v1/generate", {"seed": True}, JSON, 422, "invalid_request", "seed"),
    ("float max_chars", "/v1/generate", {"max_chars": 5.0}, JSON, 422, "invalid_request", "max_chars"),
    ("boolean temperature", "/v1/predict", {"temperature": True}, JSON, 422, None, "temperature"),
    ("string temperature", "/v1/generate", {"temperature": "0.5"}, JSON, 422, None, "temperature"),
    ("integer per_char", "/v1/score", {"text": "a", "per_char": 1}, JSON, 422, None, "per_char"),
    ("text over the limit", "/v1/score", {"text": "a" * 4001}, JSON, 413, "payload_too_large", "LNRNN_MAX"),
]


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code", "fragment"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_bad_input(
    client: TestClient, path: str, body: object, headers: dict, status: int, code: str | None, fragment: str
) -> None:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    message = error(client.post(path, content=raw, headers=headers), status, code)
    assert fragment in message


def test_whitespace_is_scored(client: TestClient) -> None:
    """Whitespace is text: scoring it is legitimate (a decision, documented in the README)."""
    for text in (" ", "   ", "\n\t \r\n", "\u00a0\u3000"):
        body = client.post("/v1/score", json={"text": text}).json()
        assert body["bytes"] == len(text.encode()) and body["bits"] > 0
    assert client.post("/v1/predict", json={"text": "   "}).status_code == 200
    assert client.post("/v1/generate", json={"prompt": " ", "max_chars": 3}).status_code == 200


def test_ten_megabyte_body_is_413(default_client: TestClient) -> None:
    body = b'{"text": "' + b"a" * 10_000_000 + b'"}'
    message = error(default_client.post("/v1/score", content=body, headers=JSON), 413, "payload_too_large")
    assert "limit" in message


def test_oversized_invalid_json_is_413_not_422(client: TestClient) -> None:
    """Rejected before parsing: an over-limit body that is not even JSON still gets 413."""
    junk = b"{" * 200_000  # over 6 x 4000 + 64 KiB
    message = error(client.post("/v1/score", content=junk, headers=JSON), 413, "payload_too_large")
    assert "over the" in message


@pytest.mark.parametrize("shape", ["lists", "objects"])
def test_deeply_nested_json_is_400(default_client: TestClient, shape: str) -> None:
    n = 100_000
    inner = b"[" * n + b"]" * n if shape == "lists" else b'{"a":' * n + b"1" + b"}" * n
    body = b'{"text": ' + inner + b"}"
    message = error(default_client.post("/v1/score", content=body, headers=JSON), 400, "bad_request")
    assert "nested too deeply" in message
    assert default_client.get("/health/ready").status_code == 200  # the server is fine afterwards


def test_tiny_temperatures_give_finite_numbers(client: TestClient) -> None:
    """1e-300 and the smallest subnormal overflow x / T: still a valid answer, never NaN or null."""
    for t in (1e-300, 5e-324, 1e-5, 100.0):
        body = client.post("/v1/predict", json={"text": "a", "top_k": 100, "temperature": t}).json()
        assert body["candidates"] and all(0 < c["prob"] <= 1 and c["bits"] >= 0 for c in body["candidates"])
        out = client.post("/v1/generate", json={"prompt": "a", "max_chars": 5, "temperature": t, "seed": 1})
        assert out.status_code == 200 and len(out.json()["text"]) == 5


# --- the runtime refuses empty input itself, before ONNX Runtime sees it ------------------------------


@pytest.fixture
def guarded(model_dir: Path) -> Runtime:
    runtime = Runtime.load(model_dir)

    def forbidden(*_: object, **__: object) -> None:
        raise AssertionError("ONNX Runtime was called with an empty input")

    runtime.step_session.run = forbidden  # type: ignore[method-assign]
    runtime.sequence_session.run = forbidden  # type: ignore[method-assign]
    return runtime


def test_runtime_refuses_empty_input_before_ort(guarded: Runtime) -> None:
    state = guarded.initial_state
    empty = np.zeros(0, dtype=np.int64)
    with pytest.raises(ValueError, match="empty"):
        guarded.score(b"")
    scorer = guarded.scorer
    with pytest.raises(ValueError, match="T >= 1"):
        scorer.feed(empty, state)
    with pytest.raises(ValueError, match="B >= 1"):
        scorer.next(empty, state[:, :0])
    with pytest.raises(ValueError, match="B = 1"):
        scorer.next(np.array([5]), state[:, :0])  # token and state batch disagree
    for tokens in (np.zeros((1, 0), np.int64), empty):
        with pytest.raises(ValueError, match="T >= 1"):
            scorer.sequence(tokens, state)
    with pytest.raises(ValueError, match="B >= 1"):
        scorer.sequence(np.zeros((0, 5), np.int64), state[:, :0])
