"""POST /v1/compress and /v1/decompress (octet-stream in and out), their errors, the API key, and
/v1/score's ``adaptive``: the bits the compressed payload holds."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from lnrnn.codec import StepGraph, compress, unpack
from lnrnn.codec.api import overhead_bound
from lnrnn.serve.app import create_app
from tests.helpers import TestClient, error, settings_for

OCTET = {"content-type": "application/octet-stream"}
LIMIT = 3000
TEXT = "Größe, naïve café: compress this sentence, then this sentence again. " * 8


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    with TestClient(create_app(settings_for(model_dir, max_text_bytes=LIMIT))) as c:
        yield c


def test_round_trip_any_bytes(client: TestClient) -> None:
    for data in (b"", b"\x00", bytes(range(256)) * 2, TEXT.encode()):
        packed = client.post("/v1/compress", content=data, headers=OCTET)
        assert packed.status_code == 200 and packed.headers["content-type"] == "application/octet-stream"
        assert packed.content[:4] == b"LNRZ"
        restored = client.post("/v1/decompress", content=packed.content, headers=OCTET)
        assert restored.status_code == 200 and restored.content == data
    neural = client.post("/v1/compress?neural_only=true", content=TEXT.encode(), headers=OCTET)
    assert neural.status_code == 200 and not unpack(neural.content)[0].adaptive
    assert client.post("/v1/decompress", content=neural.content, headers=OCTET).content == TEXT.encode()


def test_same_container_as_the_cli(client: TestClient, graph: StepGraph) -> None:
    data = TEXT.encode()
    packed = client.post("/v1/compress", content=data, headers=OCTET).content
    assert packed == compress(data, graph).blob  # same model, same format (2 by default), same bytes
    assert unpack(packed)[0].version == 2


def test_format_2_over_rest(client: TestClient, graph: StepGraph) -> None:
    data = TEXT.encode()
    for query in ("format=2", "format=2&neural_only=true"):
        packed = client.post(f"/v1/compress?{query}", content=data, headers=OCTET)
        assert packed.status_code == 200 and unpack(packed.content)[0].version == 2
        adaptive = "neural_only" not in query
        assert packed.content == compress(data, graph, adaptive=adaptive, version=2).blob  # the CLI's bytes
        restored = client.post("/v1/decompress", content=packed.content, headers=OCTET)
        assert restored.status_code == 200 and restored.content == data
    assert unpack(client.post("/v1/compress?format=1", content=data, headers=OCTET).content)[0].version == 1
    for bad in ("3", "0", "two"):
        assert "format" in error(client.post(f"/v1/compress?format={bad}", content=data, headers=OCTET), 422)


def test_media_type_and_size_limits(client: TestClient) -> None:
    msg = error(client.post("/v1/compress", json={"text": "x"}), 415, "unsupported_media_type")
    assert "application/octet-stream" in msg
    error(client.post("/v1/decompress", content=b"x"), 415)
    msg = error(client.post("/v1/compress", content=b"a" * (LIMIT + 1), headers=OCTET), 413)
    assert "LNRNN_MAX_TEXT_BYTES" in msg


def test_bad_containers_are_4xx(client: TestClient, other_model_dir: Path) -> None:
    packed = client.post("/v1/compress", content=TEXT.encode(), headers=OCTET).content
    header, _ = unpack(packed)
    msg = error(client.post("/v1/decompress", content=b"hello", headers=OCTET), 422, "invalid_container")
    assert "not an lnrnn compressed file" in msg
    error(client.post("/v1/decompress", content=packed[:-3], headers=OCTET), 422, "invalid_container")
    flipped = packed[:20] + bytes([packed[20] ^ 1]) + packed[21:]  # the fingerprint: header CRC fails
    error(client.post("/v1/decompress", content=flipped, headers=OCTET), 422, "invalid_container")
    at = header.overhead + 2
    payload = packed[:at] + bytes([packed[at] ^ 0x40]) + packed[at + 1 :]
    response = client.post("/v1/decompress", content=payload, headers=OCTET)
    assert response.status_code == 422 and response.json()["error"]["code"] in (
        "checksum_mismatch",
        "invalid_container",
    )
    other = compress(TEXT.encode(), StepGraph.load(other_model_dir)).blob
    msg = error(client.post("/v1/decompress", content=other, headers=OCTET), 409, "model_mismatch")
    assert "another model" in msg


def test_container_longer_than_the_limit_is_413(graph: StepGraph, model_dir: Path) -> None:
    big = compress(b"z" * 200, graph).blob
    with TestClient(create_app(settings_for(model_dir, max_text_bytes=100))) as c:
        msg = error(c.post("/v1/decompress", content=big, headers=OCTET), 413)
        assert "holds 200 bytes" in msg


def test_api_key_guards_the_routes(model_dir: Path) -> None:
    with TestClient(create_app(settings_for(model_dir, api_key="s3cret"))) as c:
        error(c.post("/v1/compress", content=b"abc", headers=OCTET), 401)
        ok = c.post("/v1/compress", content=b"abc", headers={**OCTET, "authorization": "Bearer s3cret"})
        assert ok.status_code == 200


def test_adaptive_score_is_the_compressed_size(client: TestClient) -> None:
    data = TEXT.encode()
    scored = client.post("/v1/score", json={"text": TEXT, "adaptive": True}).json()
    packed = client.post("/v1/compress", content=data, headers=OCTET).content
    header, payloads = unpack(packed)
    payload = sum(map(len, payloads))
    assert len(packed) - header.overhead == payload
    assert -header.n_blocks <= payload - math.ceil(scored["bits"] / 8) <= overhead_bound(header.n_blocks)
    assert scored["bytes"] == len(data) and scored["bits_per_byte"] == pytest.approx(
        scored["bits"] / len(data)
    )
    plain = client.post("/v1/score", json={"text": TEXT}).json()
    assert scored["bits"] < plain["bits"]  # the repeated sentence is learned
    batch = client.post("/v1/score", json={"texts": [TEXT, "abc"], "adaptive": True}).json()["results"]
    assert batch[0]["bits"] == pytest.approx(scored["bits"], rel=1e-9) and batch[1]["bytes"] == 3
    msg = error(client.post("/v1/score", json={"text": "x", "adaptive": True, "per_char": True}), 422)
    assert "per_char" in msg
