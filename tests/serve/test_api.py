"""Every endpoint and every error of the HTTP API, through TestClient (the lifespan runs)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from lnrnn.serve.app import create_app
from tests.helpers import TestClient, TinyModel, error, settings_for

LONG = ("The quick brown fox jumps over the lazy dog; ünïcödé 日本語 🙂. " * 3).strip()


def test_health_models_docs(client: TestClient, tiny: TinyModel) -> None:
    assert client.get("/health/live").status_code == 200
    ready = client.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["provider"] == "CPUExecutionProvider"
    (info,) = client.get("/v1/models").json()["models"]
    assert (
        info["cell"] == "gru" and info["layers"] == 2 and info["hidden"] == 32 and info["vocab_size"] == 257
    )
    assert info["provider"] == "CPUExecutionProvider" and info["parameters"] == tiny.model.num_parameters()
    assert info["files"]["step.onnx"] > 0 and info["files"]["sequence.onnx"] > 0
    assert client.get("/docs").status_code == 200
    assert "/v1/score" in client.get("/openapi.json").json()["paths"]


def test_score_matches_pytorch_across_chunks(client: TestClient, tiny: TinyModel) -> None:
    data = LONG.encode()
    assert len(data) > 5 * 16  # the client's chunk size is 16 tokens
    body = client.post("/v1/score", json={"text": LONG, "per_char": True}).json()
    bits = tiny.bits(data)
    assert body["bits"] == pytest.approx(bits, abs=1e-3)
    assert body["bytes"] == len(data) and body["chars"] == len(LONG)
    assert body["bits_per_byte"] == pytest.approx(bits / len(data), abs=1e-5)
    assert body["bits_per_char"] == pytest.approx(bits / len(LONG), abs=1e-5)
    per_char = body["per_char_bits"]
    assert len(per_char) == len(LONG) and sum(per_char) == pytest.approx(body["bits"], abs=1e-6)
    assert per_char[LONG.index("日")] == pytest.approx(
        tiny.byte_bits(data)[data.index("日".encode()) :][:3].sum(), abs=1e-3
    )
    assert "per_char_bits" not in client.post("/v1/score", json={"text": "ab"}).json()


def test_score_batch_in_order(client: TestClient, tiny: TinyModel) -> None:
    texts = ["a", "hello", "日本"]
    results = client.post("/v1/score", json={"texts": texts}).json()["results"]
    assert [r["chars"] for r in results] == [1, 5, 2]
    for text, result in zip(texts, results, strict=True):
        assert result["bits"] == pytest.approx(tiny.bits(text.encode()), abs=1e-3)
    message = error(client.post("/v1/score", json={"texts": ["a"] * 5}), 422, "invalid_request")
    assert "LNRNN_MAX_BATCH" in message
    error(client.post("/v1/score", json={"texts": ["a", ""]}), 422, "invalid_request")
    message = error(client.post("/v1/score", json={"text": "a", "texts": ["b"]}), 422, "invalid_request")
    assert "exactly one" in message


def test_predict_distribution(client: TestClient) -> None:
    for text in ("", "caf", "日本"):
        body = client.post("/v1/predict", json={"text": text, "top_k": 7}).json()
        probs = [c["prob"] for c in body["candidates"]]
        assert len(probs) == 7 and probs == sorted(probs, reverse=True)
        assert sum(probs) + body["other"] == pytest.approx(1.0, abs=1e-4)
        for c in body["candidates"]:
            assert len(c["char"]) == 1 and c["bits"] == pytest.approx(-math.log2(c["prob"]))
    hot = client.post("/v1/predict", json={"text": "caf", "top_k": 3, "temperature": 0.2}).json()
    cold = client.post("/v1/predict", json={"text": "caf", "top_k": 3, "temperature": 5.0}).json()
    assert hot["candidates"][0]["prob"] > cold["candidates"][0]["prob"]


def test_generate_seeded_valid(client: TestClient) -> None:
    request = {"prompt": "Once", "max_chars": 40, "temperature": 1.0, "seed": 11}
    a = client.post("/v1/generate", json=request).json()["text"]
    assert len(a) == 40
    assert a == client.post("/v1/generate", json=request).json()["text"], "same seed, same text"
    assert a != client.post("/v1/generate", json={**request, "seed": 12}).json()["text"]
    assert len(client.post("/v1/generate", json={"max_chars": 5, "top_k": 3}).json()["text"]) == 5
    message = error(client.post("/v1/generate", json={"max_chars": 301}), 422, "invalid_request")
    assert "LNRNN_MAX_GENERATE_CHARS" in message


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/score", {"text": ""}, "text"),
        ("/v1/score", {}, "exactly one"),
        ("/v1/predict", {"text": "a", "top_k": 0}, "top_k"),
        ("/v1/predict", {"text": "a", "top_k": 101}, "top_k"),
        ("/v1/predict", {"text": "a", "temperature": 0}, "temperature"),
        ("/v1/predict", {"text": "a", "temperature": -1}, "temperature"),
        ("/v1/predict", {"text": "a", "extra": 1}, "extra"),
        ("/v1/generate", {"prompt": "a", "max_chars": 0}, "max_chars"),
        ("/v1/score", {"text": 5}, "text"),
    ],
)
def test_invalid_requests_are_422(client: TestClient, path: str, body: dict, field: str) -> None:
    assert field in error(client.post(path, json=body), 422, "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [
        b'{"text": "a", "temperature": NaN}',
        b'{"text": "a", "temperature": Infinity}',
        b'{"text": "a", "temperature": -Infinity}',
        b'{"text": "ab\\ud800c"}',
        b'{"text": "a",',
    ],
)
def test_non_finite_numbers_lone_surrogates_bad_json(client: TestClient, raw: bytes) -> None:
    response = client.post("/v1/predict", content=raw, headers={"content-type": "application/json"})
    message = error(response, 422, "invalid_request")
    assert message
    if b"ud800" in raw:
        assert "surrogate" in message
        response = client.post("/v1/score", content=raw, headers={"content-type": "application/json"})
        assert "surrogate" in error(response, 422, "invalid_request")


def test_size_limits(client: TestClient) -> None:
    message = error(client.post("/v1/score", json={"text": "a" * 4001}), 413, "payload_too_large")
    assert "LNRNN_MAX_TEXT_BYTES" in message
    error(client.post("/v1/score", json={"texts": ["a" * 2001, "b" * 2000]}), 413, "payload_too_large")
    error(client.post("/v1/predict", json={"text": "é" * 2001}), 413, "payload_too_large")
    big = (
        b'{"text": "' + b"a" * 100_000 + b'"}'
    )  # over the body cap (6 x 4000 + 64 KiB): refused before parsing
    message = error(
        client.post("/v1/score", content=big, headers={"content-type": "application/json"}),
        413,
        "payload_too_large",
    )
    assert "limit" in message

    def stream() -> Iterator[bytes]:  # no Content-Length: the cap applies while the body streams in
        yield b'{"text": "'
        for _ in range(100):
            yield b"a" * 1000
        yield b'"}'

    response = client.post("/v1/score", content=stream(), headers={"content-type": "application/json"})
    error(response, 413, "payload_too_large")


def test_404_405_are_json(client: TestClient) -> None:
    assert "/nope" in error(client.get("/nope"), 404, "not_found")
    assert "POST" in error(client.get("/v1/score"), 405, "method_not_allowed")


def test_metrics(client: TestClient) -> None:
    client.post("/v1/score", json={"text": "metrics!"})
    text = client.get("/metrics").text
    assert 'provider="CPUExecutionProvider"' in text
    assert 'lnrnn_requests_total{endpoint="/v1/score",method="POST",status="200"}' in text
    assert "lnrnn_request_duration_seconds_bucket" in text
    assert "lnrnn_bytes_scored_total" in text and "lnrnn_model_ready 1.0" in text


def test_concurrent_requests_match_serial(client: TestClient) -> None:
    jobs = [("/v1/score", {"text": LONG[: 20 + 7 * i]}) for i in range(16)]
    jobs += [("/v1/predict", {"text": LONG[: 3 + 9 * i], "top_k": 3}) for i in range(16)]
    serial = [client.post(path, json=body).json() for path, body in jobs]
    with ThreadPoolExecutor(32) as pool:
        parallel = list(pool.map(lambda job: client.post(job[0], json=job[1]).json(), jobs))
    for (path, _), a, b in zip(jobs, serial, parallel, strict=True):
        if path == "/v1/score":
            assert a["bits"] == pytest.approx(b["bits"], abs=1e-6)
        else:
            assert [c["char"] for c in a["candidates"]] == [c["char"] for c in b["candidates"]]
            for x, y in zip(a["candidates"], b["candidates"], strict=True):
                assert x["prob"] == pytest.approx(y["prob"], rel=1e-5)


@pytest.mark.parametrize("broken", ["missing", "garbage"])
def test_not_ready_without_a_model(tmp_path: Path, broken: str) -> None:
    model_dir = tmp_path / "model"
    if broken == "garbage":
        model_dir.mkdir()
        (model_dir / "step.onnx").write_bytes(b"\x00garbage")
        (model_dir / "sequence.onnx").write_bytes(b"\x00garbage")
    with TestClient(create_app(settings_for(model_dir))) as c:
        assert c.get("/health/live").status_code == 200
        message = error(c.get("/health/ready"), 503, "model_not_ready")
        assert str(model_dir) in message
        error(c.post("/v1/score", json={"text": "a"}), 503, "model_not_ready")
        error(c.get("/v1/models"), 503, "model_not_ready")
        assert "lnrnn_model_ready 0.0" in c.get("/metrics").text
